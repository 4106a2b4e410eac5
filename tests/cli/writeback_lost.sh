# A backup whose chunk writeback fails leaves no lost chunk behind for the
# next backup to reuse. The datastore is an ext4 on a loop device over an
# image file on another ext4 (itself a loop device over a tmpfs file);
# `chattr +i` on the image makes every write to the inner device fail, as in
# tests/mount/live_faults.sh. commit=60: the journal commits only when
# something syncs, so the fault hits data writeback only.
#
# The first backup reads its image from a FIFO: once its first two chunks
# are in the store (in the page cache), the disk fails, those two chunk
# files are written back (and fail), the disk heals, and the rest of the
# image follows. The backup must fail (its syncfs reports the lost
# writeback), and the chunks it created whose bytes did not reach the disk
# must be gone. After the inner ext4 is mounted again (only what is on the
# disk is left), the same backup must succeed, verify clean and read back
# exactly. Without the re-check, the second backup reuses the two chunk
# files, whose contents were lost, and verify fails.
. "$(dirname "$0")/../testlib.bash"
need_root_with losetup mkfs.ext4 chattr mkfifo

R=$T/ram
E=$R/edisk
LOOPO= LOOPE= B1=
mkdir -p "$R"
wb_cleanup() {
	[ -z "$B1" ] || kill "$B1" 2>/dev/null || true
	[ ! -e "$R/outer/e.img" ] || chattr -i "$R/outer/e.img" 2>/dev/null
	local d
	for d in "$E" "$R/outer"; do
		if mountpoint -q "$d"; then umount "$d" 2>/dev/null || umount -l "$d"; fi
	done
	[ -z "$LOOPE" ] || losetup -d "$LOOPE" 2>/dev/null
	[ -z "$LOOPO" ] || losetup -d "$LOOPO" 2>/dev/null
	if mountpoint -q "$R"; then umount "$R" || umount -l "$R"; fi
}
cleanup_hooks+=(wb_cleanup)
mount -t tmpfs -o size=400M tmpfs "$R"

truncate -s 200M "$R/outer.img"
mkfs.ext4 -q -F "$R/outer.img"
LOOPO=$(losetup -f --show "$R/outer.img")
mkdir -p "$R/outer" "$E"
mount "$LOOPO" "$R/outer"
truncate -s 128M "$R/outer/e.img"
mkfs.ext4 -q -F -N 70000 "$R/outer/e.img"
LOOPE=$(losetup -f --show "$R/outer/e.img")
mount -o commit=60 "$LOOPE" "$E"
"$DSFS" init "$E" >/dev/null
sync -f "$E"

# 16 MiB, four 4 MiB chunks: random (a plain blob), compressible (zstd),
# random, random.
head -c 4M /dev/urandom >"$R/src"
{ yes "a line of a compressible chunk" || true; } | head -c 4M >>"$R/src"
head -c 8M /dev/urandom >>"$R/src"
# chunk_path N: the chunk file of the source's chunk N (0-based)
chunk_path() {
	local d
	d=$(dd if="$R/src" bs=4M skip="$1" count=1 status=none | sha256sum | cut -c1-64)
	echo "$E/.chunks/${d:0:4}/$d"
}


# --- 1. the backup whose writeback fails ---

mkfifo "$R/fifo"
"$DSFS" backup --time 2026-01-01T00:00:00Z "$E" vm/1 disk.img="$R/fifo" \
	>"$T/b1.out" 2>"$T/b1.err" &
B1=$!
# read-write: opening never waits for the reader
exec 3<>"$R/fifo"
head -c 8M "$R/src" >&3
C0=$(chunk_path 0) C1=$(chunk_path 1) C2=$(chunk_path 2) C3=$(chunk_path 3)
chattr +i "$R/outer/e.img"
python3 "$(dirname "$0")/../flush_chunks.py" "$E" "$R/src" 2 >"$T/flush.out" || true
chattr -i "$R/outer/e.img"
tail -c +$((8 * 1024 * 1024 + 1)) "$R/src" >&3
exec 3>&-
rc=0
wait "$B1" || rc=$?
B1=
echo "first backup: exit $rc; chunk writebacks failed: $(cat "$T/flush.out")"
sed 's/^/  /' "$T/b1.err"
[ "$(cat "$T/flush.out")" = 2 ] || fail "the fault was not injected (flush_chunks.py: $(cat "$T/flush.out"))"
[ "$rc" != 0 ] || fail "the backup succeeded although its chunk writeback failed"
grep -q "data written to the datastore was lost" "$T/b1.err" ||
	fail "the lost writeback was not reported"
[ ! -e "$E/vm/1/2026-01-01T00:00:00Z" ] || fail "the failed snapshot stayed"
# the two lost chunks are named and removed; the two written back by the
# syncfs that reported the failure are checked too, and kept
for c in "$C0" "$C1"; do
	grep -q "chunk ${c##*/}: not intact on the disk (.*), removed" "$T/b1.err" ||
		fail "lost chunk ${c##*/} not reported as removed"
	[ ! -e "$c" ] || fail "lost chunk ${c##*/} is still in the store"
done
[ -e "$C2" ] && [ -e "$C3" ] || fail "chunks whose writeback succeeded were removed"

# --- 2. from the disk alone, the same backup again ---

umount "$E"
mount "$LOOPE" "$E"
expect_status 0 "$DSFS" backup --time 2026-01-01T00:00:01Z "$E" vm/1 disk.img="$R/src"
echo "second backup: $(cat "$T/out")"
grep -q ": 4 chunks, 2 new," "$T/out" || fail "the second backup did not write the lost chunks again"
umount "$E"
mount "$LOOPE" "$E"
snap=vm/1/2026-01-01T00:00:01Z
"$DSFS" verify "$E" "$snap" >"$T/verify.out" 2>&1 || {
	sed 's/^/  /' "$T/verify.out" >&2
	fail "verify of the backup made after the failed one"
}
"$DSFS" cat "$E" "$snap" disk.img >"$T/back" || fail "cat of the new snapshot"
cmp -s "$T/back" "$R/src" || fail "the new snapshot does not read back as its source"
echo "writeback_lost: ok"
