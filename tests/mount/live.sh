# A mount follows its datastore live and behaves like a file system to the
# usual tools: a snapshot written by `dsfs backup` shows up (and `latest`
# moves to it) within ~2 s, one removed on disk disappears; inode numbers
# survive a remount; an ext4 image in a backup loop-mounts read-only from the
# mount; `mount.dsfs --help` documents every option the parser accepts;
# mount(8) runs it as a helper (mount -t dsfs, and an fstab line).
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse

# Unique names (the active-operations files are shared by all runs). Not
# one name for both: mount(8) takes a SOURCE that exists in its working
# directory for a path.
NAME=dsfs-test-$$     # the store by name, through a config
DIRNAME=dsfs-live-$$  # the store by directory (its name is the basename)
fixture_copy pbs-store-a "$T/$DIRNAME"
STORE=$(realpath "$T/$DIRNAME")
OPS=/run/proxmox-backup/active-operations
remove_after_unmount "$OPS/$NAME" "$OPS/$NAME.lock" "$OPS/$DIRNAME" "$OPS/$DIRNAME.lock"
M=$T/m
G=$M/vm/101

latest_is() { [ "$(readlink "$G/latest")" = "$1" ]; }

mount_dsfs "$STORE" "$M"
[ "$(readlink "$G/latest")" = 2024-03-04T08:02:17Z ] || fail "latest of the fixture"
ls "$G" >/dev/null
cat "$G/latest/qemu-server.conf" >/dev/null # the kernel caches what it can

# --- a new snapshot appears, latest moves to it; removed, it goes ---

NEW=2024-03-05T08:02:17Z
printf 'a new snapshot\n' >"$T/new.conf"
head -c 300000 /dev/urandom >"$T/new.img"
"$DSFS" backup --time "$NEW" "$STORE" vm/101 qemu-server.conf="$T/new.conf" \
	drive-scsi0.img="$T/new.img" >/dev/null
wait_until "new snapshot listed" listed "$G" "$NEW"
wait_until "latest moved to the new snapshot" latest_is "$NEW"
cmp "$G/latest/qemu-server.conf" "$T/new.conf" || fail "latest/qemu-server.conf is not the new one"
cmp "$G/$NEW/drive-scsi0.img" "$T/new.img" || fail "new image differs"
# A new group in a new namespace appears too.
"$DSFS" backup --ns live --time "$NEW" "$STORE" ct/777 pct.conf="$T/new.conf" >/dev/null
wait_until "new namespace listed" listed "$M/ns" live
wait_until "new group listed" listed "$M/ns/live/ct" 777
cmp "$M/ns/live/ct/777/latest/pct.conf" "$T/new.conf" || fail "new group's file"

rm -rf "${STORE:?}/vm/101/$NEW"
wait_until "removed snapshot gone" not_listed "$G" "$NEW"
wait_until "latest moved back" latest_is 2024-03-04T08:02:17Z
[ ! -e "$G/$NEW" ] || wait_until "removed snapshot not found" test ! -e "$G/$NEW"
cmp -s "$G/latest/qemu-server.conf" "$T/new.conf" && fail "latest still shows the removed snapshot"

# --- inode numbers are stable across mounts ---

SNAPDIR=$G/2024-03-02T08:02:17Z
inos() { stat -c %i "$SNAPDIR" "$SNAPDIR/drive-scsi0.img" "$G" "$G/latest" "$M/ns/prod"; }
before=$(inos)
unmount_dsfs "$M"
mount_dsfs "$STORE" "$M"
after=$(inos)
[ "$before" = "$after" ] || fail "inode numbers changed across a remount: $before / $after"
[ "$(echo "$before" | sort -u | wc -l)" = 5 ] || fail "inode numbers not distinct: $before"

# --- an ext4 image in a backup loop-mounts read-only from the mount ---

if [ "$(id -u)" = 0 ] && command -v losetup >/dev/null && command -v mkfs.ext4 >/dev/null; then
	mkdir -p "$T/fsroot/etc"
	head -c 200000 /dev/urandom >"$T/fsroot/etc/known.bin"
	printf 'hello from inside the image\n' >"$T/fsroot/hello.txt"
	truncate -s 16M "$T/ext4.img"
	mkfs.ext4 -q -F -d "$T/fsroot" "$T/ext4.img"
	"$DSFS" backup --time 2024-06-01T00:00:00Z "$STORE" vm/950 disk.img="$T/ext4.img" >/dev/null
	IMG=$M/vm/950/2024-06-01T00:00:00Z/disk.img
	wait_until "image snapshot listed" test -f "$IMG"
	cmp "$IMG" "$T/ext4.img" || fail "ext4 image differs"
	LOOP=$(losetup -r -f --show "$IMG")
	cleanup_hooks+=("umount '$T/lm' 2>/dev/null; losetup -d '$LOOP' 2>/dev/null")
	mkdir -p "$T/lm"
	mount -o ro "$LOOP" "$T/lm" || fail "cannot mount the image from the mount"
	cmp "$T/lm/etc/known.bin" "$T/fsroot/etc/known.bin" || fail "file inside the image differs"
	cmp "$T/lm/hello.txt" "$T/fsroot/hello.txt" || fail "hello.txt inside the image differs"
	umount "$T/lm"
	losetup -d "$LOOP"
else
	echo "note: not root or no losetup/mkfs.ext4: loop-mount part skipped" >&2
fi
unmount_dsfs "$M"

# --- mount.dsfs --help documents every option the parser accepts ---

"$MOUNT_DSFS" --help >"$T/help" || fail "--help exited non-zero"
"$MOUNT_DSFS" -V | grep -q "^mount.dsfs " || fail "-V"
src=$DSFS_SOURCE/fs/mount/main.c
# Options compared in parse_opts/parse_args, and the ignored fstab list.
opts=$( {
	grep -oE 'str(n)?cmp\((opt|a), "[^"]+"' "$src" | sed -E 's/.*"([^"]+)"/\1/'
	sed -n '/static bool ignored_opt/,/^}/p' "$src" | grep -oE '"[a-z_]+"' | tr -d '"'
} | sort -u)
[ "$(echo "$opts" | wc -l)" -ge 15 ] || fail "could not read the options of $src: $opts"
man=$DSFS_SOURCE/docs/mount.dsfs.8
[ -f "$man" ] || fail "no $man"
sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$man" >"$T/man"
for o in $opts; do
	grep -qF -- "$o" "$T/man" || fail "mount.dsfs(8) does not mention $o"
	case $o in -[nsv]) continue ;; esac # mount(8)'s own flags, accepted silently
	grep -qF -- "$o" "$T/help" || fail "--help does not mention $o"
done
"$MOUNT_DSFS" 2>/dev/null && fail "no arguments accepted"
expect_status 2 "$MOUNT_DSFS" "$STORE" "$M" -o cache_size=1K
expect_status 2 "$MOUNT_DSFS" "$STORE" "$M" -o verify=sometimes
expect_status 2 "$MOUNT_DSFS" "$STORE" "$M" --no-such-option

# --- mount(8) helper: mount -t dsfs, and an fstab line ---

if [ "$(id -u)" != 0 ]; then
	echo "note: not root: mount(8) part skipped" >&2
	echo "live mount ok"
	exit 0
fi
# Runs from other build trees may be here at the same time: the helper
# link is theirs or ours, one at a time (a lock on /sbin itself leaves no
# file behind).
exec 9</sbin/
flock -w 120 9 || fail "another test run holds /sbin"
made_helper=false
if [ ! -e /sbin/mount.dsfs ] && [ ! -L /sbin/mount.dsfs ]; then
	ln -s "$(realpath "$MOUNT_DSFS")" /sbin/mount.dsfs
	made_helper=true
	cleanup_hooks+=("rm -f /sbin/mount.dsfs")
elif [ "$(realpath /sbin/mount.dsfs)" != "$(realpath "$MOUNT_DSFS")" ]; then
	echo "note: /sbin/mount.dsfs is another binary; testing it as installed" >&2
fi

# helper_mount DIR MOUNT-ARGS...: mount(8) must return with the mount in
# place (the helper daemonizes).
helper_mount() {
	local dir=$1 pid
	shift
	mkdir -p "$dir"
	cleanup_hooks+=("umount '$dir' 2>/dev/null")
	(cd "$T" && mount "$@" 9<&-) || fail "mount $*"
	mountpoint -q "$dir" || fail "mount $*: no mount on $dir"
	grep -q " $dir fuse.dsfs " /proc/self/mounts || fail "$dir is not a fuse.dsfs mount"
	pid=$(daemon_of "$dir") || fail "no mount.dsfs daemon for $dir"
	cleanup_hooks+=("kill $pid 2>/dev/null")
	HELPER_PID=$pid
}
helper_unmount() {
	local dir=$1
	umount "$dir" || fail "umount $dir"
	# gone, or a zombie (whoever reaps the daemon need not be us)
	for _ in $(seq 50); do
		case $(sed -E 's/.*\) (.).*/\1/' /proc/"$HELPER_PID"/stat 2>/dev/null) in "" | Z) return 0 ;; esac
		sleep 0.1
	done
	fail "mount.dsfs for $dir did not exit after umount"
}

# By name, with a config relative to the working directory (mount(8) runs
# the helper there; the daemon must still follow the file after it
# daemonized).
printf 'datastore: %s\n\tpath %s\n' "$NAME" "$STORE" >"$T/datastore.cfg"
D=$T/helper
helper_mount "$D" -t dsfs "$NAME" "$D" -o ro,config=datastore.cfg
[ "$(ls "$D/vm/101" | grep -c T)" = 3 ] || fail "mount -t dsfs: ls: $(ls "$D/vm/101")"
cmp "$D/vm/101/2024-03-02T08:02:17Z/qemu-server.conf" \
	<("$DSFS" cat "$STORE" vm/101/2024-03-02T08:02:17Z qemu-server.conf) || fail "mount -t dsfs: read"
out=$(touch "$D/vm/101/x" 2>&1) && fail "write on a ro mount"
case $out in *"Read-only file system"*) ;; *) fail "ro mount: want EROFS, got: $out" ;; esac
printf 'datastore: %s\n\tmaintenance-mode offline\n\tpath %s\n' "$NAME" "$STORE" >"$T/cfg.new"
mv "$T/cfg.new" "$T/datastore.cfg"
wait_until "daemonized mount follows its config" \
	sh -c "ls '$D' 2>&1 >/dev/null | grep -q 'No such device or address'"
helper_unmount "$D"

# An fstab line (noauto: only mounted when asked for).
printf '%s %s dsfs ro,noauto 0 0\n' "$STORE" "$D" >"$T/fstab"
mount -a -T "$T/fstab" 9<&-
mountpoint -q "$D" && fail "noauto line mounted by mount -a"
helper_mount "$D" -T "$T/fstab" "$D"
cmp "$D/vm/101/2024-03-02T08:02:17Z/qemu-server.conf" \
	<("$DSFS" cat "$STORE" vm/101/2024-03-02T08:02:17Z qemu-server.conf) || fail "fstab mount: read"
grep -q "^$STORE $D fuse.dsfs ro," /proc/self/mounts || fail "fstab mount: $(grep " $D " /proc/self/mounts)"
helper_unmount "$D"
$made_helper && rm -f /sbin/mount.dsfs
echo "live mount ok"
