# mount.dsfs's command line as users and mount(8) give it.
#
# A mount point given relative to the working directory: a daemon stopped
# by SIGTERM (systemd at shutdown, kill) removes its mount, in the
# foreground and daemonized, as it does for an absolute one; it used to
# leave a dead mount (ENOTCONN) behind, having chdir'ed to / before
# unmounting "m".
#
# A source whose path holds a comma or a backslash mounts, and is the
# mount's source as given (/proc/self/mounts): it is one mount option
# (fsname=) to libfuse, which split it at the comma ('fuse: unknown
# option(s): `-o x'') and dropped the backslash.
#
# Type fuse.dsfs (what /proc/mounts and findmnt show, so what ends up in
# fstab): the install has mount.fuse.dsfs, which mount(8) runs for it.
# Without it mount(8) fell back to mount.fuse3, which runs a program
# named "dsfs" (the CLI: "unknown command", or "dsfs: not found").
#
# cache_size= refuses what it cannot hold: a negative size (strtoull took
# "-1" for 2^64-1, an unbounded cache) and sizes past 2^64 (a suffix
# shifted them round: 17179869185G was 1G).
#
# keyfile= with a passphrase-protected key and no $DSFS_KEY_PASSWORD says
# so (it said only "cannot load key"); a wrong one says that.
#
# ro and rw: the last one given wins, as for mount(8) (rw was ignored, so
# "-o ro -o rw" or "-o ro,rw" mounted read-only).
#
# The atime options of an fstab line (noatime,nodiratime is a common
# habit; mount(8) passes them on) mount: libfuse knows only atime and
# noatime and refused the others ('fuse: unknown option(s)'). The kernel
# never updates the atime of a FUSE inode, so they change nothing.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: needs root (mounts as root; unmount by umount2)" >&2
	exit 77
fi

fixture_copy pbs-store-a "$T/st"
cd "$T"

mounted() { grep -q " $T/$1 " /proc/self/mounts; }
# gone PID: the process exits (or is a zombie) within 5 s.
gone() {
	local i
	for i in $(seq 50); do
		case $(sed -E 's/.*\) (.).*/\1/' /proc/"$1"/stat 2>/dev/null) in "" | Z) return 0 ;; esac
		sleep 0.1
	done
	return 1
}

# --- cache_size= ---

mkdir cs
cleanup_hooks+=("umount '$T/cs' 2>/dev/null")
for v in -1 -16M 17179869185G 18446744073709551616; do
	expect_status 2 "$MOUNT_DSFS" st cs -o "cache_size=$v"
	grep -q "cache_size=" "$T/err" || fail "cache_size=$v: message: $(cat "$T/err")"
done
for v in 16M 17179869183G 16384k; do
	"$MOUNT_DSFS" st cs -o "cache_size=$v" || fail "cache_size=$v refused"
	umount cs
done

# --- keyfile= messages ---

DSFS_KEY_PASSWORD=secret1 "$DSFS" key create "$T/pw.key" --kdf pbkdf2 || fail "key create"
env -u DSFS_KEY_PASSWORD "$MOUNT_DSFS" st cs -o keyfile="$T/pw.key" 2>"$T/err" &&
	fail "mounted with a protected key and no passphrase"
grep -q "DSFS_KEY_PASSWORD" "$T/err" || fail "no passphrase: message: $(cat "$T/err")"
DSFS_KEY_PASSWORD=wrong-one "$MOUNT_DSFS" st cs -o keyfile="$T/pw.key" 2>"$T/err" &&
	fail "mounted with a wrong passphrase"
grep -q "wrong passphrase" "$T/err" || fail "wrong passphrase: message: $(cat "$T/err")"

# --- ro, rw: the last wins ---

"$MOUNT_DSFS" st cs -o ro -o rw || fail "-o ro -o rw"
grep -q " $T/cs fuse.dsfs rw," /proc/self/mounts || fail "-o ro -o rw: $(grep " $T/cs " /proc/self/mounts)"
mkdir cs/vm/555 || fail "-o ro -o rw: mkdir refused"
umount cs
rm -rf st/vm/555
"$MOUNT_DSFS" st cs -o rw,ro || fail "-o rw,ro"
grep -q " $T/cs fuse.dsfs ro," /proc/self/mounts || fail "-o rw,ro: $(grep " $T/cs " /proc/self/mounts)"
mkdir cs/vm/555 2>/dev/null && fail "-o rw,ro: mkdir allowed"
umount cs

# --- atime options ---

for o in noatime,nodiratime relatime strictatime,lazytime norelatime,nostrictatime,nolazytime \
	diratime silent loud; do
	"$MOUNT_DSFS" st cs -o "ro,$o" 2>"$T/err" || fail "-o $o refused: $(cat "$T/err")"
	umount cs
done
# Other options still reach libfuse, which refuses what it does not know.
expect_status 1 "$MOUNT_DSFS" st cs -o no_such_option
grep -q "unknown option" "$T/err" || fail "no_such_option: $(cat "$T/err")"

# --- relative mount point, SIGTERM ---

mkdir fg bg
cleanup_hooks+=("umount -l '$T/fg' 2>/dev/null; umount -l '$T/bg' 2>/dev/null")
"$MOUNT_DSFS" st fg -f 2>"$T/fg.log" &
pid=$!
for _ in $(seq 100); do mounted fg && break; sleep 0.1; done
mounted fg || { cat "$T/fg.log" >&2; fail "foreground mount on fg not up"; }
ls fg/vm >/dev/null || fail "ls fg/vm"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" = 0 ] || { cat "$T/fg.log" >&2; fail "foreground daemon exited $rc after SIGTERM"; }
! mounted fg || { cat "$T/fg.log" >&2; fail "SIGTERM left the mount on fg (relative) behind"; }
grep -q "failed to unmount" "$T/fg.log" && fail "unmount failed: $(cat "$T/fg.log")"

"$MOUNT_DSFS" st bg || fail "daemonized mount exited $?"
mounted bg || fail "daemonized mount on bg not up when mount.dsfs returned"
pid=$(daemon_of bg) || fail "no daemon for bg"
cleanup_hooks+=("kill $pid 2>/dev/null")
ls bg/vm >/dev/null || fail "ls bg/vm"
kill -TERM "$pid"
gone "$pid" || fail "daemon $pid did not exit on SIGTERM"
! mounted bg || fail "SIGTERM left the daemonized mount on bg (relative) behind"

# --- a source path with a comma or a backslash ---

cp -r st 'st,x'
cp -r st 'st\y'
mount_dsfs "$T/st,x" "$T/comma"
[ -d "$T/comma/vm/101" ] || fail "st,x: no vm/101"
grep -q "^$T/st,x $T/comma fuse.dsfs " /proc/self/mounts ||
	fail "st,x: source in mounts: $(grep " $T/comma " /proc/self/mounts)"
unmount_dsfs "$T/comma"
mount_dsfs "$T/st\y" "$T/bslash"
[ -d "$T/bslash/vm/101" ] || fail "st\\y: no vm/101"
# the kernel shows a backslash as \134
grep -qF "$T/st\134y $T/bslash fuse.dsfs " /proc/self/mounts ||
	fail "st\\y: source in mounts: $(grep " $T/bslash " /proc/self/mounts)"
unmount_dsfs "$T/bslash"

# --- mount -t fuse.dsfs, fstab type fuse.dsfs ---

BUILD=$(dirname "$MOUNT_DSFS")
cmake --install "$BUILD" --prefix "$T/inst" >/dev/null || fail "cmake --install"
H=$T/inst/sbin/mount.fuse.dsfs
[ -L "$H" ] || fail "the install has no sbin/mount.fuse.dsfs"
[ "$(realpath "$H")" = "$(realpath "$T/inst/sbin/mount.dsfs")" ] ||
	fail "mount.fuse.dsfs is not mount.dsfs: $(ls -l "$H")"
# As live.sh: one test run at a time adds helpers to /sbin.
exec 9</sbin/
flock -w 120 9 || fail "another test run holds /sbin"
if [ -e /sbin/mount.fuse.dsfs ] || [ -L /sbin/mount.fuse.dsfs ]; then
	echo "note: /sbin/mount.fuse.dsfs exists; mount -t fuse.dsfs part skipped" >&2
else
	ln -s "$H" /sbin/mount.fuse.dsfs
	cleanup_hooks+=("rm -f /sbin/mount.fuse.dsfs")
	mkdir ft
	cleanup_hooks+=("umount '$T/ft' 2>/dev/null")
	mount -t fuse.dsfs "$T/st" "$T/ft" -o ro 9<&- || fail "mount -t fuse.dsfs"
	grep -q "^$T/st $T/ft fuse.dsfs ro," /proc/self/mounts || fail "mount -t fuse.dsfs: not mounted"
	[ -d ft/vm/101 ] || fail "mount -t fuse.dsfs: no vm/101"
	umount "$T/ft"
	printf '%s %s fuse.dsfs ro,noauto 0 0\n' "$T/st" "$T/ft" >fstab
	mount -T fstab "$T/ft" 9<&- || fail "fstab line of type fuse.dsfs"
	grep -q "^$T/st $T/ft fuse.dsfs ro," /proc/self/mounts || fail "fstab fuse.dsfs: not mounted"
	umount "$T/ft"
	rm -f /sbin/mount.fuse.dsfs
fi
exec 9<&-

echo "cmdline ok"
