# mount.dsfs options and mount points that used to mount and then fail.
#
# -o max_read=N (the usage text listed it among the options passed to
# libfuse): libfuse refuses INIT unless the init op asks for the max_read
# of the mount options, and ours always asked for 1 MiB, so any other value
# mounted, the daemon exited 1 at the first request ("init() and
# fuse_session_new() requested different maximum read size") and a
# daemonized mount had already reported success. Now 4096..1048576 mounts
# and reads, the kernel has the value (/proc/mounts), and other values are
# refused before mounting (exit 2).
#
# A mount point that is not a directory (a file, a symlink to one): the
# kernel gives the root the mount point's type, so it mounted (exit 0) and
# every access to it failed with EIO. Now refused: exit 1, "Not a
# directory", nothing mounted.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse

fixture_copy pbs-store-a "$T/st"
M=$T/m
IMG=vm/101/2024-03-02T08:02:17Z/drive-scsi0.img
want=$("$DSFS" cat "$T/st" "${IMG%/*}" "${IMG##*/}" | md5sum)

for v in 131072 4096 1048576; do
	: >"$T/mount.log"
	mount_dsfs "$T/st" "$M" -o "ro,max_read=$v"
	got=$(md5sum <"$M/$IMG") || fail "max_read=$v: reading $IMG"
	[ "$got" = "$want" ] || fail "max_read=$v: $IMG reads other bytes"
	kill -0 "$MOUNT_PID" 2>/dev/null || { cat "$T/mount.log" >&2; fail "max_read=$v: daemon gone"; }
	grep -q " $M fuse.dsfs .*max_read=$v[ ,]" /proc/self/mounts ||
		fail "max_read=$v: not in the mount options: $(grep " $M " /proc/self/mounts)"
	unmount_dsfs "$M"
done

for v in 0 4095 1048577 abc "" -1 99999999999999999999; do
	expect_status 2 "$MOUNT_DSFS" "$T/st" "$M" -o "max_read=$v"
	grep -q "want max_read=4096..1048576" "$T/err" || fail "max_read=$v: message: $(cat "$T/err")"
	! mountpoint -q "$M" || fail "max_read=$v: mounted"
done

# A regular file and a symlink to one as mount point, daemonized and in
# the foreground: refused before anything is mounted.
: >"$T/file"
ln -s file "$T/flink"
cleanup_hooks+=("umount -l '$T/file' 2>/dev/null")
for mp in "$T/file" "$T/flink"; do
	for fg in "" -f; do
		expect_status 1 timeout 10 "$MOUNT_DSFS" "$T/st" "$mp" $fg
		grep -q "Not a directory" "$T/err" || fail "$mp $fg: message: $(cat "$T/err")"
		! grep -q " $T/file " /proc/self/mounts || fail "$mp $fg: mounted on a file"
	done
done
echo "mount options ok"
