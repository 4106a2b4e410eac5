# -o spin=USEC: mount.dsfs's own request loop (fs/mount/loop.c) in place of
# libfuse's.
# 1. It serves the same tree: `ls -lR` of a pxar archive and the bytes of
#    every file are the same as through a mount with libfuse's loop; four
#    readers of one image and a listing at once (requests handed to other
#    threads while the reader reads on) each get the source's bytes.
# 2. It polls: of 3,000 lgetxattr calls in a row, answered by the reader
#    itself, some were found while polling (counted at unmount with -d); the
#    daemon exits 0 on fusermount3 -u.
# 3. An idle mount neither polls nor ticks: its daemon uses (almost) no
#    CPU and wakes (almost) never for 2 s after the last request.
# 4. SIGTERM stops it (mount gone, "stopping on signal 15"), and bad
#    values of spin= are refused.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
command -v python3 >/dev/null || { echo "SKIP: python3 missing" >&2; exit 77; }

mkdir -p "$T/src/d1/d2" "$T/src/e"
for i in $(seq 1 300); do
	head -c $((i * 37)) /dev/urandom >"$T/src/d1/f$i"
done
for i in $(seq 1 50); do echo "file $i" >"$T/src/d1/d2/g$i"; done
head -c $((3 << 20)) /dev/urandom >"$T/src/e/big"
ln -s d1/f1 "$T/src/link"
head -c $((12 << 20)) /dev/urandom | base64 -w 100 >"$T/disk.img"
"$DSFS" init "$T/store" >/dev/null
"$DSFS" backup "$T/store" host/1 --time 2025-01-01T00:00:00Z root.pxar="$T/src" \
	disk.img="$T/disk.img" >/dev/null || fail "backup"
M=$T/m
SNAP=$M/host/1/2025-01-01T00:00:00Z

# 1. The reference: libfuse's loop (spin=0, the default).
mount_dsfs "$T/store" "$M" -o spin=0
(cd "$SNAP/root.pxar" && ls -lR . && find . -type f -exec md5sum {} +) >"$T/ref.txt" ||
	fail "listing with spin=0"
unmount_dsfs "$M"
[ "$(grep -c ' \./' "$T/ref.txt")" -ge 351 ] || fail "reference listing too short"

: >"$T/mount.log"
mount_dsfs "$T/store" "$M" -d -o spin=1000
(cd "$SNAP/root.pxar" && ls -lR . && find . -type f -exec md5sum {} +) >"$T/spin.txt" ||
	fail "listing with spin=1000"
cmp -s "$T/ref.txt" "$T/spin.txt" || {
	diff "$T/ref.txt" "$T/spin.txt" | head >&2
	fail "spin=1000 lists or reads the archive differently"
}
pids=()
for j in 1 2 3 4; do
	cmp -s "$SNAP/disk.img" "$T/disk.img" &
	pids+=($!)
done
ls -lR "$SNAP/root.pxar" >/dev/null || fail "listing beside the readers"
for p in "${pids[@]}"; do wait "$p" || fail "a parallel reader got other bytes"; done

# 2. Round trips in a row.
python3 - "$SNAP/root.pxar/d1/f7" <<'PY' || fail "lgetxattr loop"
import errno, os, sys
for _ in range(3000):
    try:
        os.getxattr(sys.argv[1], "user.none", follow_symlinks=False)
    except OSError as e:
        if e.errno != errno.ENODATA:
            raise
PY
unmount_dsfs "$M"
line=$(grep 'debug: request loop: ' "$T/mount.log") || fail "no request loop line in the log"
read -r req inl found taken < <(echo "$line" |
	sed -E 's/.*: ([0-9]+) requests, ([0-9]+) answered by the reader, ([0-9]+) found while polling, ([0-9]+) taken over.*/\1 \2 \3 \4/')
[ "${req:-0}" -ge 3000 ] || fail "request loop counted ${req:-?} requests, want >= 3000: $line"
[ "${inl:-0}" -ge 3000 ] || fail "reader answered ${inl:-?} requests itself, want >= 3000: $line"
[ "${found:-0}" -gt 0 ] || fail "no request found while polling: $line"
echo "ok: $line"

# 3. Idle: no polling once requests stop.
mount_dsfs "$T/store" "$M" -o spin=10000
ls -lR "$SNAP/root.pxar" >/dev/null
sleep 0.5
ticks() { awk '{ print $14 + $15 }' "/proc/$MOUNT_PID/stat"; }
# Wakeups of all its threads: the config watcher's once a second, no more
# (the request loop's watchdog parks while the reader sleeps).
wakeups() { cat /proc/"$MOUNT_PID"/task/*/status | awk '/^voluntary_ctxt_switches/ { s += $2 } END { print s }'; }
c0=$(ticks) w0=$(wakeups)
sleep 2
c1=$(ticks) w1=$(wakeups)
[ $((c1 - c0)) -le 20 ] || fail "idle daemon used $((c1 - c0)) ticks of CPU in 2 s"
[ $((w1 - w0)) -le 20 ] || fail "idle daemon woke $((w1 - w0)) times in 2 s"
echo "ok: idle daemon used $((c1 - c0)) ticks and woke $((w1 - w0)) times in 2 s"

# 4. SIGTERM stops the loop; the mount goes with it.
kill -TERM "$MOUNT_PID"
rc=0
wait "$MOUNT_PID" || rc=$?
[ "$rc" = 0 ] || fail "mount.dsfs exited $rc after SIGTERM"
grep -q "stopping on signal 15" "$T/mount.log" || fail "no 'stopping on signal 15' in the log"
for _ in $(seq 50); do mountpoint -q "$M" || break; sleep 0.1; done
mountpoint -q "$M" && fail "still mounted after SIGTERM"

for bad in spin=abc spin= spin=10001 spin=-1; do
	rc=0
	"$MOUNT_DSFS" "$T/store" "$M" -f -o "$bad" 2>"$T/bad.err" || rc=$?
	[ "$rc" = 2 ] || fail "-o $bad: exit $rc, want 2"
	grep -q "want spin=0..10000" "$T/bad.err" || fail "-o $bad: no message"
done
echo "ok"
