# dsfs init that fails half-way (a small disk runs out of inodes after a few
# hundred of the 65536 prefix directories) leaves no half datastore: the
# directory is not a datastore (no .chunks: PBS, dsfs ls and a mount all
# open any directory with one), and once the disk has room the same
# `dsfs init` finishes it, with PBS's modes and owner throughout. An
# existing datastore is still refused, and so is a read-only filesystem.
. "$(dirname "$0")/../testlib.bash"
need_root_with mount umount

D=$T/disk
mkdir "$D"
mount -t tmpfs -o size=64M,nr_inodes=1000,mode=0755 dsfs-init-test "$D"
cleanup_hooks+=("umount '$D'")

expect_status 1 "$DSFS" init "$D/store"
grep -q "No space left on device" "$T/err" || { cat "$T/err" >&2; fail "ENOSPC not reported"; }
[ -e "$D/store/.chunks" ] && fail "a failed init left a half datastore (.chunks with $(ls "$D/store/.chunks" | wc -l) of 65536 directories)"
expect_status 1 "$DSFS" ls "$D/store"
grep -q "not a datastore" "$T/err" || { cat "$T/err" >&2; fail "half datastore opened"; }

# Room again: the same command finishes the job.
mount -o remount,nr_inodes=80000 "$D"
expect_status 0 "$DSFS" init "$D/store"
[ "$(find "$D/store/.chunks" -mindepth 1 -maxdepth 1 -type d -name '[0-9a-f][0-9a-f][0-9a-f][0-9a-f]' | wc -l)" = 65536 ] ||
	fail "not 65536 prefix directories"
[ "$(find "$D/store/.chunks" -mindepth 1 | wc -l)" = 65536 ] || fail "something else in .chunks"
ls -A "$D/store" | sort >"$T/top"
printf '.chunks\n.lock\n' | cmp -s - "$T/top" || fail "left over in the store: $(cat "$T/top")"
[ "$(stat -c %a "$D/store")" = 755 ] || fail "base mode $(stat -c %a "$D/store")"
[ "$(stat -c %a "$D/store/.chunks")" = 750 ] || fail ".chunks mode"
[ "$(stat -c '%a %s' "$D/store/.lock")" = "644 0" ] || fail ".lock mode/size $(stat -c '%a %s' "$D/store/.lock")"
[ -z "$(find "$D/store/.chunks" -mindepth 1 ! -perm 0750)" ] || fail "a prefix directory is not 0750"
if id backup >/dev/null 2>&1; then
	bk="$(id -u backup):$(id -g backup)"
	[ -z "$(find "$D/store" \( ! -uid "$(id -u backup)" -o ! -gid "$(id -g backup)" \) -print -quit)" ] ||
		fail "not all backup:backup ($bk)"
fi
expect_status 0 "$DSFS" ls "$D/store"

# A datastore is not made again.
expect_status 1 "$DSFS" init "$D/store"
grep -q "already a datastore" "$T/err" || { cat "$T/err" >&2; fail "existing datastore not named"; }

# A read-only filesystem: refused, nothing made.
mount -o remount,ro "$D"
expect_status 1 "$DSFS" init "$D/other"
grep -q "Read-only file system" "$T/err" || { cat "$T/err" >&2; fail "EROFS not reported"; }
echo "init after a failed init ok"
