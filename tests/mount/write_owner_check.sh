# With -o owner=AUTHID, mkdir of a snapshot in an existing group is
# checked as PBS's backup API checks its session's auth id
# (check_backup_owner, as `dsfs backup --owner`): the group must be that
# auth id's, or a token's of that user; else EPERM and nothing is made.
# Without owner= nothing is checked.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
S=$T/store
"$DSFS" init "$S" >/dev/null
printf 'x\n' >"$T/x.conf"
"$DSFS" backup --owner bob@pbs --time 2026-01-01T00:00:00Z "$S" vm/1 x.conf="$T/x.conf" >/dev/null
"$DSFS" backup --owner 'alice@pbs!job' --time 2026-01-01T00:00:00Z "$S" vm/2 x.conf="$T/x.conf" >/dev/null

mount_dsfs "$S" "$T/m" -o owner=alice@pbs
python3 - "$T/m" <<'PY' || fail "mkdir under owner=alice@pbs"
import errno, os, sys
m = sys.argv[1]
try:
    os.mkdir(m + "/vm/1/2026-01-02T00:00:00Z")
    sys.exit("mkdir in bob's group succeeded")
except OSError as e:
    assert e.errno == errno.EPERM, e
os.mkdir(m + "/vm/2/2026-01-02T00:00:00Z")   # the user of the owning token
os.mkdir(m + "/vm/3")                         # a new group: alice's
os.mkdir(m + "/vm/3/2026-01-02T00:00:00Z")
PY
[ ! -e "$S/vm/1/2026-01-02T00:00:00Z" ] || fail "the refused snapshot was made"
[ "$(cat "$S/vm/3/owner")" = alice@pbs ] || fail "new group's owner: $(cat "$S/vm/3/owner")"
[ "$(cat "$S/vm/1/owner")" = bob@pbs ] || fail "bob's group changed owner"
grep -q "backup owner check failed (alice@pbs != bob@pbs)" "$T/mount.log" || fail "no log line"
unmount_dsfs "$T/m"

mount_dsfs "$S" "$T/m"
mkdir "$T/m/vm/1/2026-01-03T00:00:00Z" || fail "mkdir without owner= refused"
unmount_dsfs "$T/m"
echo "write_owner_check: ok"
