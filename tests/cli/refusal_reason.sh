# dsfs(1) REFUSALS: a datastore addressed by name that refuses (maintenance
# mode, unmounted removable disk) fails every command inside it with status
# 1, and "the error names the reason and the maintenance message" -- for
# ls as for cat, verify and backup (ls printed only the errno), the message
# percent-decoded as PBS shows it (it was shown encoded).
. "$(dirname "$0")/../testlib.bash"
need_fixtures
fixture_copy pbs-store-a "$T/store"
echo "tiny" >"$T/f.conf"
export DSFS_CONFIG_VERSIONS=$T/config-versions
cfg=$T/datastore.cfg
printf 'datastore: store-a\n\tpath %s\n' "$T/store" >"$cfg"
snap=vm/101/2024-03-02T08:02:17Z

# expect_refused WHY: every command fails with 1 and names WHY on stderr
expect_refused() {
	local why=$1 cmd
	for cmd in "ls store-a" "ls store-a vm/101" "ls store-a $snap" "ls store-a ns/prod" \
		"cat store-a $snap qemu-server.conf" "verify store-a" \
		"backup --time 2025-01-01T00:00:00Z store-a vm/1 f.conf=$T/f.conf"; do
		# shellcheck disable=SC2086 # the words of $cmd are the arguments
		expect_status 1 "$DSFS" $cmd --config "$cfg"
		grep -qF "$why" "$T/err" || { cat "$T/err" >&2; fail "$cmd: '$why' not named"; }
		[ -s "$T/out" ] && fail "$cmd: output although refused"
	done
	[ -d "$T/store/vm/1" ] && fail "backup wrote although refused"
	return 0
}

for mode in offline unmount s3-refresh delete; do
	sed -i '/maintenance-mode/d' "$cfg"
	expect_status 0 "$DSFS" maintenance store-a "$mode" --message "disk swap ($mode)" \
		--config "$cfg"
	expect_refused "$mode: disk swap ($mode)"
done
# The message as PBS shows it (MaintenanceMode::check, spec 6.2): percent-
# decoded, for the percent-encoded messages older PBS web UIs wrote; a '%'
# that starts no escape stays.
printf 'datastore: store-a\n\tmaintenance-mode type=offline,message="disk%%20swap%%2C%%20back at 9%%, 100%%25"\n\tpath %s\n' \
	"$T/store" >"$cfg"
expect_refused "offline: disk swap, back at 9%, 100%"
# dsfs status shows the message as the refusals do (it showed it encoded).
expect_status 0 "$DSFS" status store-a --config "$cfg"
grep -qxF "maintenance-message: disk swap, back at 9%, 100%" "$T/out" ||
	{ cat "$T/out" >&2; fail "status: message not as PBS shows it"; }
# a removable datastore whose disk is not mounted
printf 'datastore: store-a\n\tbacking-device 01234567-89ab-cdef-0123-456789abcdef\n\tpath %s\n' \
	"$T/store" >"$cfg"
expect_refused "backing device not mounted"
echo "refusals name their reason"
