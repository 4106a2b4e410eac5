# dsfs maintenance / dsfs status: datastore.cfg rewritten as PBS writes it
# (under its config lock, mode and owner kept), the refusals that follow
# from each mode, the one-way "delete", PBS's ConfigVersionCache bumped once
# per change, and the active-operation totals of spec §6.5.
. "$(dirname "$0")/../testlib.bash"
need_fixtures
umask 022 # the usual one: what dsfs creates must not depend on it

# A private copy of the store: if a refusal were missing, backup would
# write into it.
fixture_copy pbs-store-a "$T/store"
mkdir "$T/etc"
cfg=$T/etc/datastore.cfg
sed "s|^\tpath .*|\tpath $T/store|" "$FIX/pbs-store-a.datastore.cfg" >"$cfg"
grep -q "^	path $T/store\$" "$cfg" || fail "path substitution"
chmod 0640 "$cfg"
if [ "$(id -u)" = 0 ]; then
	chown 34:34 "$cfg" # PBS: root:backup; any non-root owner shows it is kept
fi
owner_before=$(stat -c '%a %u:%g' "$cfg")

# PBS's ConfigVersionCache (spec §6.6), made the way PBS lays it out.
shm=$T/shmem/config-versions
mkdir -m 0770 "$T/shmem"
python3 - "$shm" <<'PY'
import struct, sys
buf = bytearray(4096)
buf[0:8] = bytes.fromhex("19c6a8e69a848f83")
struct.pack_into("<Q", buf, 24, 41)   # datastore_generation
struct.pack_into("<Q", buf, 8, 5)     # user_cache_generation: must not move
open(sys.argv[1], "wb").write(buf)
PY
export DSFS_CONFIG_VERSIONS=$shm
# u64 at byte offset $1 (little-endian: host order on x86, as PBS writes it)
u64_at() { od -An -t u8 --endian=little -j "$1" -N 8 "$shm" | tr -d ' '; }
expect_gen() {
	[ "$(u64_at 24)" = "$1" ] || fail "datastore generation $(u64_at 24), want $1"
	[ "$(u64_at 8)" = 5 ] && [ "$(u64_at 16)" = 0 ] || fail "another generation changed"
}
expect_gen 41

snap=vm/101/2024-03-02T08:02:17Z
echo "tiny" >"$T/f.conf"

# offline, with a message
expect_status 0 "$DSFS" maintenance store-a offline --message "disk swap" --config "$cfg"
printf 'datastore: store-a\n\tcomment pbs-oracle fixture (seed 1)\n\tgc-schedule daily\n\tmaintenance-mode type=offline,message="disk swap"\n\tpath %s\n' \
	"$T/store" >"$T/want.cfg"
cmp -s "$cfg" "$T/want.cfg" || { diff -u "$T/want.cfg" "$cfg" >&2; fail "datastore.cfg as PBS writes it"; }
[ "$(stat -c '%a %u:%g' "$cfg")" = "$owner_before" ] || fail "mode/owner $(stat -c '%a %u:%g' "$cfg"), want $owner_before"
ls "$T/etc" | grep -q tmp_ && fail "temp file left behind"
expect_gen 42
# The config lock made here is PBS's: backup:backup 0660 (open_backup_lockfile),
# whatever the umask, so that PBS's proxy (user backup) can still lock the
# config; one that root made earlier is given back.
lck=$T/etc/.datastore.lck
if [ "$(id -u)" = 0 ] && id backup >/dev/null 2>&1; then
	want="660 $(id -u backup):$(id -g backup)"
	[ "$(stat -c '%a %u:%g' "$lck")" = "$want" ] ||
		fail ".datastore.lck is $(stat -c '%a %u:%g' "$lck"), want $want (PBS's)"
	chmod 0711 "$T" # mktemp's 0700 would keep backup out before the lock's mode does
	setpriv --reuid=backup --regid=backup --clear-groups flock -n "$lck" true ||
		fail "user backup cannot lock .datastore.lck"
fi
expect_status 1 "$DSFS" cat store-a --config "$cfg" "$snap" qemu-server.conf
grep -q offline "$T/err" || fail "offline refusal not explained"
grep -q "disk swap" "$T/err" || fail "maintenance message not shown"
expect_status 0 "$DSFS" status store-a --config "$cfg"
grep -qx "name: store-a" "$T/out" || fail "status: name"
grep -qx "path: $T/store" "$T/out" || fail "status: path"
grep -qx "present: yes" "$T/out" || fail "status: present"
grep -qx "maintenance-mode: offline" "$T/out" || fail "status: mode"
grep -qx "maintenance-message: disk swap" "$T/out" || fail "status: message"
grep -qx "removable: no" "$T/out" || fail "status: removable"

# read-only: readers yes, writers no
expect_status 0 "$DSFS" maintenance store-a read-only --config "$cfg"
grep -qx '	maintenance-mode type=read-only' "$cfg" || fail "read-only line"
grep -q message "$cfg" && fail "old message kept"
expect_gen 43
expect_status 0 "$DSFS" cat store-a --config "$cfg" "$snap" qemu-server.conf
cmp -s "$T/out" <("$DSFS" cat "$FIX/pbs-store-a" "$snap" qemu-server.conf) || fail "cat under read-only"
expect_status 1 "$DSFS" backup --config "$cfg" store-a vm/999 f.conf="$T/f.conf"
grep -q "Read-only file system" "$T/err" || { cat "$T/err" >&2; fail "backup not refused with EROFS"; }
[ -e "$T/store/vm/999" ] && fail "backup wrote under read-only"
grep -qx "maintenance-mode: read-only" <("$DSFS" status store-a --config "$cfg") || fail "status: read-only"

# clear: everything works again, and the file is the original one
expect_status 0 "$DSFS" maintenance store-a clear --config "$cfg"
sed "s|^\tpath .*|\tpath $T/store|" "$FIX/pbs-store-a.datastore.cfg" | cmp -s - "$cfg" || fail "clear did not restore the file"
expect_gen 44
expect_status 0 "$DSFS" backup --config "$cfg" store-a vm/999 f.conf="$T/f.conf"
grep -qx "maintenance-mode: none" <("$DSFS" status store-a --config "$cfg") || fail "status: none"

# A store whose directory is gone, or holds no datastore (its disk not
# mounted there), says so; the command still works (status 0).
mv "$T/store" "$T/store.away"
expect_status 0 "$DSFS" status store-a --config "$cfg"
grep -qx "present: no (No such file or directory)" "$T/out" || fail "status: missing: $(cat "$T/out")"
mkdir "$T/store"
expect_status 0 "$DSFS" status store-a --config "$cfg"
grep -qx "present: no (no .chunks: not a datastore, or its disk is not mounted)" "$T/out" ||
	fail "status: empty directory: $(cat "$T/out")"
rmdir "$T/store"
mv "$T/store.away" "$T/store"

# Usage errors and unknown stores change nothing.
cp "$cfg" "$T/before.cfg"
expect_status 2 "$DSFS" maintenance store-a sleeping --config "$cfg"
expect_status 2 "$DSFS" maintenance store-a clear --message x --config "$cfg"
expect_status 2 "$DSFS" maintenance store-a --config "$cfg"
expect_status 1 "$DSFS" maintenance no-such-store offline --config "$cfg"
grep -q "no-such-store" "$T/err" || fail "unknown store not named"
expect_status 1 "$DSFS" status no-such-store --config "$cfg"
cmp -s "$cfg" "$T/before.cfg" || fail "a failed command changed the file"
# The new file gets the old one's owner before it is renamed into place: if
# that fails (strace makes every chown fail), datastore.cfg stays as it was,
# never root's (which PBS's proxy, group backup, could not read).
if [ "$(id -u)" = 0 ] && command -v strace >/dev/null; then
	# (LeakSanitizer cannot run under ptrace.)
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
		expect_status 1 strace -f -qq -o /dev/null -e trace=fchown,fchownat,chown,lchown \
		-e inject=fchown,fchownat,chown,lchown:error=EPERM \
		"$DSFS" maintenance store-a offline --config "$cfg"
	[ "$(stat -c '%a %u:%g' "$cfg")" = "$owner_before" ] ||
		fail "a failed chown left datastore.cfg $(stat -c '%a %u:%g' "$cfg"), want $owner_before"
	cmp -s "$cfg" "$T/before.cfg" || fail "datastore.cfg replaced although its owner could not be kept"
	ls "$T/etc" | grep -q tmp_ && fail "temp file left behind after a failed chown"
else
	echo "note: not root or no strace: the failed-chown part is not run" >&2
fi
expect_gen 44

# The config lock: a holder of .datastore.lck delays the change.
flock "$T/etc/.datastore.lck" sleep 1 &
holder=$!
cleanup_hooks+=("kill $holder 2>/dev/null")
for _ in $(seq 100); do flock -n "$T/etc/.datastore.lck" true || break; sleep 0.02; done
flock -n "$T/etc/.datastore.lck" true && fail "test could not take the lock"
start=$(date +%s%N)
expect_status 0 "$DSFS" maintenance store-a unmount --config "$cfg"
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$elapsed" -ge 500 ] || fail "maintenance did not wait for the config lock (${elapsed} ms)"
wait "$holder" || true
expect_gen 45
expect_status 1 "$DSFS" cat store-a --config "$cfg" "$snap" qemu-server.conf

# delete is one-way
expect_status 0 "$DSFS" maintenance store-a delete --config "$cfg"
expect_gen 46
cp "$cfg" "$T/before.cfg"
expect_status 1 "$DSFS" maintenance store-a clear --config "$cfg"
grep -q "being deleted" "$T/err" || { cat "$T/err" >&2; fail "delete refusal not explained"; }
expect_status 1 "$DSFS" maintenance store-a read-only --config "$cfg"
cmp -s "$cfg" "$T/before.cfg" || fail "changed away from delete"
expect_gen 46
expect_status 1 "$DSFS" ls store-a --config "$cfg"

# Without PBS's shm file nothing is created and the change still works.
cp "$FIX/pbs-store-a.datastore.cfg" "$T/etc/other.cfg"
DSFS_CONFIG_VERSIONS=$T/none/config-versions \
	expect_status 0 "$DSFS" maintenance store-a offline --config "$T/etc/other.cfg"
[ -e "$T/none" ] && fail "ConfigVersionCache created by dsfs"
grep -q 'maintenance-mode type=offline$' "$T/etc/other.cfg" || fail "change without shm"
# A .datastore.lck that root made (an older dsfs) is given back to backup.
if [ "$(id -u)" = 0 ] && id backup >/dev/null 2>&1; then
	chown 0:0 "$lck"
	chmod 0640 "$lck"
	DSFS_CONFIG_VERSIONS=$T/none/config-versions \
		expect_status 0 "$DSFS" maintenance store-a read-only --config "$T/etc/other.cfg"
	[ "$(stat -c '%a %u:%g' "$lck")" = "$want" ] || fail "root's .datastore.lck not given back"
fi

# status: active operations of live processes only (spec §6.5)
ops=$T/ops
mkdir "$ops"
st=$(sed 's/.*) //' /proc/$$/stat | awk '{print $20}')
[ -n "$st" ] || fail "starttime of the test shell"
sed "s|^\tpath .*|\tpath $T/store|" "$FIX/pbs-store-a.datastore.cfg" >"$T/etc/ops.cfg"
printf '[{"pid":%d,"starttime":%s,"active_operations":{"read":2,"write":0}},{"pid":1,"starttime":1,"active_operations":{"read":5,"write":7}}]' \
	"$$" "$st" >"$ops/store-a"
DSFS_ACTIVEOPS_DIR=$ops expect_status 0 "$DSFS" status store-a --config "$T/etc/ops.cfg"
grep -qx "active-read: 2" "$T/out" || { cat "$T/out" >&2; fail "status: active read"; }
grep -qx "active-write: 0" "$T/out" || fail "status: active write"
rm "$ops/store-a"
DSFS_ACTIVEOPS_DIR=$ops expect_status 0 "$DSFS" status store-a --config "$T/etc/ops.cfg"
grep -qx "active-read: 0" "$T/out" || fail "status: no active operations"
echo "maintenance tests ok"
