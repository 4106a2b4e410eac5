# kill -9 of mount.dsfs at random moments while files are being written
# (an image and a stream, each several chunks, in two snapshots at once).
# After each kill the next mount cleans up: no temp file is left anywhere
# in the datastore, `dsfs verify` is clean (but for snapshots killed before
# their first commit, reported as abandoned), and every archive that is there
# reads back exactly as its source: nothing partial is ever visible.
# DSFS_CRASH_ROUNDS sets the number of random kills (default 8). A last
# kill comes right after the first commit of its snapshot (its manifest
# appears), so that at least one archive is read back after a kill even
# when every random kill came before any commit.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse

ROUNDS=${DSFS_CRASH_ROUNDS:-8}
S=$T/store
M=$T/m
"$DSFS" init "$S" >/dev/null
# sources: 48 MiB random + 48 MiB text (image), 24 MiB random (stream)
dd if=/dev/urandom of="$T/src.img" bs=1M count=48 status=none
seq 1 20000000 | head -c $((48 << 20)) >>"$T/src.img" || true
dd if=/dev/urandom of="$T/src.bin" bs=1M count=24 status=none
[ "$(stat -c %s "$T/src.img")" = $((96 << 20)) ] || fail "source image size"

crash_mount() {
	mount_dsfs "$S" "$M"
}
# the snapshot time of round i (one per round, all in group vm/1)
snap_of() { printf '2026-01-01T00:%02d:%02dZ' $(($1 / 60)) $(($1 % 60)); }

check_store() {
	local left
	left=$(find "$S" -name '*.tmp_*' -o -name '*.tmp_fidx' -o -name '*.tmp_didx' | head -5)
	[ -z "$left" ] || fail "temp files left after the restart: $left"
	# A snapshot killed before its first commit stays unfinished: an
	# abandoned backup, which verify reports as PBS's does.
	verify_clean_but_abandoned "$S" "$S"/vm/1/*
	# the snapshot written when the daemon was killed (earlier ones were
	# checked in their round and are not written again)
	for d in "$M/vm/1/$1"; do
		[ -d "$d" ] || continue
		if [ -e "$d/disk.img" ]; then
			cmp -s "$T/src.img" "$d/disk.img" || fail "$d/disk.img is partial"
			readback=$((readback + 1))
		fi
		if [ -e "$d/data.bin" ]; then
			cmp -s "$T/src.bin" "$d/data.bin" || fail "$d/data.bin is partial"
			readback=$((readback + 1))
		fi
	done
}

mkdir -p "$T/m"
committed=0
readback=0
for i in $(seq 1 $((ROUNDS + 1))); do
	crash_mount
	[ "$i" = 1 ] || check_store "$(snap_of $((i - 1)))"
	s=$(snap_of "$i")
	mkdir -p "$M/vm/1/$s"
	(cp "$T/src.img" "$M/vm/1/$s/disk.img" 2>/dev/null; cp "$T/src.bin" "$M/vm/1/$s/data.bin" 2>/dev/null) &
	writer=$!
	if [ "$i" -le "$ROUNDS" ]; then
		# a random moment: before, during or after the copies
		sleep "$(python3 -c "import random; print(round(random.uniform(0.05, 1.5), 2))")"
	else
		# the last round: as soon as the first commit wrote the
		# manifest (disk.img's, while data.bin is being written)
		for _ in $(seq 1200); do
			[ -e "$S/vm/1/$s/index.json.blob" ] && break
			kill -0 "$MOUNT_PID" 2>/dev/null || break
			sleep 0.1
		done
		[ -e "$S/vm/1/$s/index.json.blob" ] || fail "no commit within 120 s in the last round"
	fi
	kill -9 "$MOUNT_PID"
	wait "$MOUNT_PID" 2>/dev/null || true
	wait "$writer" 2>/dev/null || true
	fusermount3 -u -z "$M" 2>/dev/null || umount -l "$M" 2>/dev/null || true
	for f in "$S/vm/1/$s"/*.fidx "$S/vm/1/$s"/*.didx; do
		[ -e "$f" ] && committed=$((committed + 1))
	done
done
crash_mount
check_store "$(snap_of $((ROUNDS + 1)))"
unmount_dsfs "$M"
# the last round made sure of one; without it, every kill may have come
# before any commit and the read-back checked nothing
[ "$readback" -ge 1 ] || fail "no archive was read back after a kill"
echo "write_crash: ok ($((ROUNDS + 1)) kills, $committed archives committed before a kill, $readback read back)"
