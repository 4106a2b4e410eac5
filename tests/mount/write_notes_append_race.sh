# An appending open of notes (`>>`) that races a truncating writer's
# open, write and close: the appending open read the current notes from
# the manifest before waiting for the other writer's release, which was
# still writing its notes into the manifest, so the append went after the
# notes from before both, and the other writer's notes were lost although
# its close had returned 0. Each round here: from notes X, one thread
# writes "aN" (O_TRUNC), another appends "bN"; the only results are "aN"
# (the append came first and was truncated) and "aN bN", never "X bN"
# (before the fix, in about 4 rounds of 5).
# Large notes (about 600 KiB) make the manifest's load and rewrite slow
# enough for the race to show.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
mount_finished_snapshot
timeout 200 python3 - "$SNAP/notes" "${ROUNDS:-50}" <<'EOF2' || fail "lost notes"
import os, sys, threading, time
path, rounds = sys.argv[1], int(sys.argv[2])
pad = "x" * (600 * 1024) + "\n"
def settled(want):
    for _ in range(100):
        with open(path) as f:
            if f.read() == want:
                return True
        time.sleep(0.02)
    return False
with open(path, "w") as f:
    f.write("start\n" + pad)
assert settled("start\n" + pad)
bad = 0
for n in range(rounds):
    a, b = "a%d\n%s" % (n, pad), "b%d\n" % n
    with open(path) as f:
        x = f.read()
    bar = threading.Barrier(2)
    def trunc():
        bar.wait()
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        os.write(fd, a.encode())
        os.close(fd)
    def append():
        bar.wait()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b.encode())
        os.close(fd)
    ts = [threading.Thread(target=trunc), threading.Thread(target=append)]
    for t in ts: t.start()
    for t in ts: t.join()
    # the releases run after close returned: wait for the notes to settle
    last = None
    for _ in range(100):
        with open(path) as f:
            got = f.read()
        if got == last:
            break
        last = got
        time.sleep(0.02)
    if got not in (a, a + b):
        bad += 1
        print("round %d: notes %r...%r (was %r...)" % (n, got[:8], got[-8:], x[:8]), file=sys.stderr)
if bad:
    sys.exit("%d of %d rounds lost a write" % (bad, rounds))
EOF2
unmount_dsfs "$M"
grep -q "notes not written" "$T/mount.log" && { cat "$T/mount.log" >&2; fail "notes dropped"; }
echo "write_notes_append_race: ok"
