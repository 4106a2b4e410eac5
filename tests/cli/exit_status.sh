# Exit statuses and messages of ls, verify and cat for a wrong path, a
# missing datastore and one the caller cannot read (README: 1 failure, 2
# usage error).
#  - ls and verify checked their PATH only after opening the datastore: a
#    wrong PATH of a missing datastore was status 1, not the usage error;
#    ls took any -EINVAL of the listing for one (status 2, no message);
#  - verify of a whole datastore it could not list said "dsfs: : Permission
#    denied" (the empty path as the name);
#  - a datastore directory the caller cannot search was "not a datastore
#    (no .chunks directory)", which sent one looking for a wrong path;
#  - cat of a missing datastore added "vm/…/disk.img.fidx: No such file or
#    directory", an archive it never looked for;
#  - maintenance checked --message only after locking and reading the
#    config: a bad one with a missing config was status 1.
. "$(dirname "$0")/../testlib.bash"
S=$T/store
bare_store "$S"
head -c 100000 /dev/urandom >"$T/conf"
"$DSFS" backup "$S" vm/1 --time 2025-01-01T00:00:00Z a.conf="$T/conf" >/dev/null
snap=vm/1/2025-01-01T00:00:00Z

# A wrong PATH is a usage error, the datastore there or not.
for store in "$S" "$T/missing"; do
	for bad in 'vm/1/bad!' 'nsx/a' 'ns/a/ns' 'vm/1/2025-13-01T00:00:00Z'; do
		expect_status 2 "$DSFS" ls "$store" "$bad"
		grep -q "not a namespace, group or snapshot path" "$T/err" || fail "ls $store $bad: $(cat "$T/err")"
		expect_status 2 "$DSFS" verify "$store" "$bad"
		grep -q "not a namespace, group or snapshot path" "$T/err" || fail "verify $store $bad: $(cat "$T/err")"
	done
done

# Missing things: status 1, naming them.
expect_status 1 "$DSFS" ls "$T/missing"
grep -q "$T/missing: No such file" "$T/err" || fail "ls of a missing store: $(cat "$T/err")"
expect_status 1 "$DSFS" ls "$S" vm/2
grep -q "vm/2: No such file" "$T/err" || fail "ls of a missing group: $(cat "$T/err")"
expect_status 1 "$DSFS" verify "$S" vm/1/2025-01-02T00:00:00Z
grep -q "vm/1/2025-01-02T00:00:00Z: No such file" "$T/err" || fail "verify of a missing snapshot: $(cat "$T/err")"
expect_status 1 "$DSFS" cat "$T/missing" "$snap" a.conf
grep -q "$T/missing: No such file" "$T/err" || fail "cat of a missing store: $(cat "$T/err")"
! grep -q "a.conf" "$T/err" || fail "cat of a missing store names the archive: $(cat "$T/err")"
expect_status 1 "$DSFS" cat "$S" "$snap" b.conf
grep -q "$snap/b.conf.blob: No such file" "$T/err" || fail "cat of a missing archive: $(cat "$T/err")"

# maintenance: a bad --message is a usage error whatever the config (one
# that is missing made it status 1: the message was checked after the
# config was locked and read).
mkdir "$T/etc"
for msg in "$(printf 'a\nb')" "$(printf '%065d' 0)"; do
	expect_status 2 "$DSFS" maintenance --config "$T/etc/missing.cfg" store offline --message "$msg"
	grep -q "invalid maintenance message" "$T/err" || fail "maintenance --message: '$(cat "$T/err")'"
done
expect_status 1 "$DSFS" maintenance --config "$T/etc/missing.cfg" store offline --message ok
grep -q "missing.cfg" "$T/err" || fail "maintenance, no config: '$(cat "$T/err")'"

# key create: a DSFS_KEY_PASSWORD missing or too short is a failure, as a
# password-protected --keyfile without it is: the environment is not the
# command line (it was status 2). A wrong command line stays 2.
for pw in unset "" abcd; do
	if [ "$pw" = unset ]; then
		expect_status 1 env -u DSFS_KEY_PASSWORD "$DSFS" key create "$T/k.json"
	else
		expect_status 1 env DSFS_KEY_PASSWORD="$pw" "$DSFS" key create "$T/k.json" --kdf pbkdf2
	fi
	grep -q "set DSFS_KEY_PASSWORD" "$T/err" || fail "key create, password '$pw': $(cat "$T/err")"
	[ ! -e "$T/k.json" ] || fail "key create, password '$pw': a key was written"
done
expect_status 2 env -u DSFS_KEY_PASSWORD "$DSFS" key create "$T/k.json" --kdf bogus
expect_status 0 env -u DSFS_KEY_PASSWORD "$DSFS" key create "$T/k.json" --kdf none

# Access denied, as user nobody (the backup made its directories user
# backup's).
as_nobody() { setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups "$@"; }
if [ "$(id -u)" = 0 ] && getent passwd nobody >/dev/null && command -v setpriv >/dev/null; then
	chmod 755 "$T"
	mkdir -p "$T/locks"
	chmod 777 "$T/locks"
	chmod 700 "$S/vm"
	expect_status 1 as_nobody "$DSFS" verify "$S"
	grep -q "^dsfs: $S: Permission denied" "$T/err" || fail "verify, no access: '$(cat "$T/err")'"
	expect_status 1 as_nobody "$DSFS" ls "$S"
	grep -q "^dsfs: $S: Permission denied" "$T/err" || fail "ls, no access: '$(cat "$T/err")'"
	chmod 755 "$S/vm"
	chmod 700 "$S"
	for cmd in ls verify status; do
		expect_status 1 as_nobody "$DSFS" "$cmd" "$S"
		grep -q "^dsfs: $S: Permission denied" "$T/err" || fail "$cmd, no access to the store: '$(cat "$T/err")'"
	done
	chmod 755 "$S"
fi
exit 0
