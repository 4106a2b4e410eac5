# ENOSPC while writing through the mount: the datastore sits on a small
# loop-mounted ext4. A copy larger than the free space fails with ENOSPC
# (cp says so); nothing of it stays visible (no index, no temp file, not in
# the manifest); what was written before still reads back, the mount keeps
# serving, `dsfs verify` is clean, and after space is freed writing works.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
need_root_with losetup mkfs.ext4

DISK=$T/disk
M=$T/m
LOOP=
mkdir -p "$DISK" "$M"
disk_cleanup() {
	if mountpoint -q "$M"; then fusermount3 -u "$M" 2>/dev/null || fusermount3 -u -z "$M"; fi
	if mountpoint -q "$DISK"; then umount "$DISK" || umount -l "$DISK"; fi
	[ -z "$LOOP" ] || losetup -d "$LOOP"
}
cleanup_hooks+=(disk_cleanup)

# 1 KiB blocks: the 65536 chunk directories take 64 MiB; ~60 MiB stay free.
truncate -s 150M "$T/disk.img"
mkfs.ext4 -q -F -b 1024 -N 70000 -m 0 "$T/disk.img"
LOOP=$(losetup --find --show "$T/disk.img")
mount "$LOOP" "$DISK"
S=$DISK/store
"$DSFS" init "$S" >/dev/null
free_kib=$(df -k --output=avail "$DISK" | tail -1)
[ "$free_kib" -lt $((100 << 10)) ] || fail "the disk has too much room ($free_kib KiB)"

mount_dsfs "$S" "$M"
SNAP=$M/vm/1/2026-01-01T00:00:00Z
mkdir -p "$SNAP"
head -c $((6 << 20)) /dev/urandom >"$T/before.img"
cp "$T/before.img" "$SNAP/before.img" || fail "a copy that fits"
# incompressible and larger than the free space
head -c $((120 << 20)) /dev/urandom >"$T/big.img"
if cp "$T/big.img" "$SNAP/big.img" 2>"$T/cp.err"; then
	fail "a copy larger than the disk succeeded"
fi
grep -q "No space left on device" "$T/cp.err" || fail "cp did not get ENOSPC: $(cat "$T/cp.err")"
head -c $((120 << 20)) /dev/urandom >"$T/big.bin"
if cp "$T/big.bin" "$SNAP/big.bin" 2>"$T/cp.err"; then
	fail "a stream larger than the disk succeeded"
fi
grep -q "No space left on device" "$T/cp.err" || fail "stream: no ENOSPC: $(cat "$T/cp.err")"
sleep 0.5 # the releases commit (here: abandon) asynchronously

# nothing partial: no index, no temp file, not listed, not in the manifest
D=$S/vm/1/2026-01-01T00:00:00Z
ls -a "$D" >"$T/ls"
! grep -q "big" "$T/ls" || fail "something of the failed copies stayed: $(cat "$T/ls")"
! grep -q "tmp" "$T/ls" || fail "temp files stayed: $(cat "$T/ls")"
! ls "$SNAP" | grep -q big || fail "the failed copies are listed: $(ls "$SNAP")"
[ ! -e "$SNAP/big.img" ] || fail "big.img can be looked up"
grep -q "big" <("$DSFS" ls "$S" vm/1/2026-01-01T00:00:00Z) && fail "big in the manifest"

# reads go on
cmp "$T/before.img" "$SNAP/before.img" || fail "the earlier archive no longer reads"
ls "$M/vm/1" >/dev/null || fail "the mount stopped serving"
"$DSFS" verify "$S" >"$T/verify.out" || { cat "$T/verify.out" >&2; fail "verify after ENOSPC"; }

# with room again (the failed copies' chunks are garbage for PBS's GC; here
# the disk is emptied by hand), writing works again
find "$S/.chunks" -type f -newer "$D/index.json.blob" -delete
"$DSFS" verify "$S" >"$T/verify.out" || { cat "$T/verify.out" >&2; fail "verify after freeing"; }
head -c $((2 << 20)) /dev/urandom >"$T/after.img"
cp "$T/after.img" "$SNAP/after.img" || fail "writing after space was freed"
unmount_dsfs "$M"
mount_dsfs "$S" "$M"
cmp "$T/after.img" "$SNAP/after.img" || fail "after.img"
cmp "$T/before.img" "$SNAP/before.img" || fail "before.img after remount"
unmount_dsfs "$M"
echo "write_enospc: ok"
