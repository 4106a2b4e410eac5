# Files written through the mount and closed just before an unmount are
# committed. The kernel sends RELEASE after close(2) returns and drops it
# if the unmount ends the connection first; the daemon then abandoned the
# files as "still open at unmount" (2 of 40 rounds of close + umount2
# lost them here, more with the cores busy). A file whose process closed it
# (a FLUSH after its last write) is now released at the daemon's exit as
# that request would have released it.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
S=$T/store
M=$T/m
bare_store "$S"
mkdir -p "$M"
# Both cores busy: the daemon's threads then read the queued RELEASE
# later, and the race shows in a few rounds in a hundred.
for _ in 1 2; do
	(while :; do :; done) &
	cleanup_hooks+=("kill $! 2>/dev/null")
done
python3 - "$MOUNT_DSFS" "$M" "$S" "$T/mount.log" 60 <<'PY' || fail "files closed before the unmount were lost (log: $(grep -c 'still open at unmount' "$T/mount.log") abandoned)"
import ctypes, os, subprocess, sys, time
libc = ctypes.CDLL("libc.so.6", use_errno=True)
mount_dsfs, mnt, store, log, rounds = sys.argv[1:4] + [sys.argv[4], int(sys.argv[5])]
lost = []
for i in range(rounds):
    p = subprocess.Popen([mount_dsfs, store, mnt, "-f"], stdout=subprocess.DEVNULL,
                         stderr=open(log, "a"))
    for _ in range(200):
        if os.path.ismount(mnt):
            break
        assert p.poll() is None, "mount.dsfs exited"
        time.sleep(0.05)
    assert os.path.ismount(mnt), "not mounted in 10 s"
    rel = f"vm/{100 + i}/2026-01-01T00:00:00Z"
    os.makedirs(f"{mnt}/{rel}")
    for name, data in (("a.conf", b"memory: %d\n" % i), ("b.img", bytes([i]) * 65536)):
        fd = os.open(f"{mnt}/{rel}/{name}", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, data)
        os.close(fd)
    # At once, from this process: no exec between the close and the unmount.
    if libc.umount2(mnt.encode(), 0) != 0:
        subprocess.run(["fusermount3", "-u", mnt])
        sys.exit(f"round {i}: umount2: {os.strerror(ctypes.get_errno())}")
    assert p.wait(timeout=120) == 0, f"round {i}: mount.dsfs exited {p.returncode}"
    for f in ("a.conf.blob", "b.img.fidx", "index.json.blob"):
        if not os.path.exists(f"{store}/{rel}/{f}"):
            lost.append(f"{rel}/{f}")
print(f"{rounds} rounds, lost: {lost}")
assert not lost, lost
PY
# What was committed reads back whole.
"$DSFS" cat "$S" vm/107/2026-01-01T00:00:00Z a.conf | grep -qx "memory: 7" || fail "a.conf of round 7"
"$DSFS" cat "$S" vm/107/2026-01-01T00:00:00Z b.img | cmp -s - <(head -c 65536 /dev/zero | tr '\0' '\7') ||
	fail "b.img of round 7"
"$DSFS" verify "$S" >"$T/verify.out" 2>&1 || { cat "$T/verify.out" >&2; fail "verify"; }
echo "unmount_after_close: ok ($(grep -c 'released now' "$T/mount.log") unmount(s) released closed files)"
