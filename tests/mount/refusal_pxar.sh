# Inside a pxar archive across refusals: a shell whose working directory is
# in root.pxar/ keeps listing and reading under "read-only" (reads are
# allowed), gets ENXIO under "offline", and lists again once the mode is
# cleared, without anything looking the archive up again by path.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse

NAME=dsfs-test-$$
fixture_copy pbs-store-a "$T/store"
STORE=$(realpath "$T/store")
CFG=$T/datastore.cfg
M=$T/m
DIR=ns/prod/ct/301/2024-03-03T10:02:17Z/root.pxar/etc

printf 'datastore: %s\n\tpath %s\n' "$NAME" "$STORE" >"$CFG"
mount_dsfs "$NAME" "$M" -o "config=$CFG"
ls "$M/$DIR" >/dev/null || fail "cannot list $DIR"

NAME=$NAME STORE=$STORE CFG=$CFG python3 - "$M/$DIR" "$T" <<'PY' || fail "inside a pxar directory across refusals"
import errno, os, sys, time
d, t = sys.argv[1:3]
os.chdir(d)
want = sorted(os.listdir("."))
first = want[0]
data = open(first, "rb").read()

def set_mode(mode):
    cfg = os.environ["CFG"]
    text = f"datastore: {os.environ['NAME']}\n\tpath {os.environ['STORE']}\n"
    if mode != "none":
        text += f"\tmaintenance-mode {mode}\n"
    with open(cfg + ".new", "w") as f:
        f.write(text)
    os.rename(cfg + ".new", cfg)

def state():
    try:
        got = sorted(os.listdir("."))
        if got != want:
            return "wrong listing"
        with open(first, "rb") as f:
            if f.read() != data:
                return "wrong bytes"
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def expect(mode, want_state, settle=1.5):
    set_mode(mode)
    end = time.monotonic() + 3
    while True:
        got = state()
        if got == want_state:
            break
        if time.monotonic() > end:
            sys.exit(f"{mode}: got {got}, want {want_state}")
        time.sleep(0.05)
    # Past the watcher's tick: the refusal has been applied by now.
    time.sleep(settle)
    got = state()
    if got != want_state:
        sys.exit(f"{mode}, after the refusal was applied: got {got}, want {want_state}")

expect("read-only", "OK")
expect("none", "OK")
expect("offline", "ENXIO")
expect("none", "OK")
PY
unmount_dsfs "$M"
echo "pxar directories across refusals ok"
