# Many readers inside a pxar archive that a refusal closed come back at
# once: the archive is opened again once, not once per reader. Each reader
# whose directory's archive was closed opens it again (node_archive);
# two that did so at the same time used to both register their copy, so
# the names of one hardlinked file could get two node ids, and each copy
# held its own indexes and decoder.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse

NAME=dsfs-test-$$
fixture_copy pbs-store-a "$T/store"
STORE=$(realpath "$T/store")
CFG=$T/datastore.cfg
M=$T/m
AR=ns/prod/ct/301/2024-03-03T10:02:17Z/root.pxar

printf 'datastore: %s\n\tpath %s\n' "$NAME" "$STORE" >"$CFG"
mount_dsfs "$NAME" "$M" -o "config=$CFG" -d
opened() { grep -c "$AR: archive opened" "$T/mount.log" || true; }
ls "$M/$AR" >/dev/null || fail "cannot list $AR"
[ "$(opened)" = 1 ] || fail "no log line for the archive's first opening"

for round in 1 2 3; do
	before=$(opened)
	NAME=$NAME STORE=$STORE CFG=$CFG python3 - "$M/$AR" <<'PY' || fail "round $round: readers across a refusal"
import errno, os, sys, threading, time
ar = sys.argv[1]
dirs = [ar] + [os.path.join(r, d) for r, ds, _ in os.walk(ar) for d in ds]
fds = [os.open(d, os.O_RDONLY | os.O_DIRECTORY) for d in dirs for _ in range(3)]
want = [sorted(os.listdir(fd)) for fd in fds]

def set_mode(mode):
    cfg = os.environ["CFG"]
    text = f"datastore: {os.environ['NAME']}\n\tpath {os.environ['STORE']}\n"
    if mode != "none":
        text += f"\tmaintenance-mode {mode}\n"
    with open(cfg + ".new", "w") as f:
        f.write(text)
    os.rename(cfg + ".new", cfg)

def wait_for(ok):
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            os.stat(os.path.join(ar, "etc"))
            got = "OK"
        except OSError as e:
            got = errno.errorcode.get(e.errno, str(e.errno))
        if got == ok:
            return
        time.sleep(0.05)
    sys.exit(f"no {ok} within 5 s")

set_mode("offline")
wait_for("ENXIO")
time.sleep(1.5)  # past the watcher's tick: the archive is closed
set_mode("none")
time.sleep(1.5)
go = threading.Barrier(len(fds))
errs = []

def reader(i):
    go.wait()
    try:
        if sorted(os.listdir(fds[i])) != want[i]:
            errs.append(f"{dirs[i // 3]}: wrong listing")
    except OSError as e:
        errs.append(f"{dirs[i // 3]}: {e}")

ts = [threading.Thread(target=reader, args=(i,)) for i in range(len(fds))]
for t in ts:
    t.start()
for t in ts:
    t.join()
if errs:
    sys.exit("; ".join(errs))
PY
	after=$(opened)
	[ "$((after - before))" = 1 ] ||
		fail "round $round: the archive was opened $((after - before)) times for the readers coming back, want 1"
done
unmount_dsfs "$M"
echo "pxar archive opened again once after a refusal ok"
