# dsfs verify on a terminal: its progress line ("snapshot 1/3, 0 chunks
# checked", no newline) is cleared before anything else is written to
# stderr, also before the messages the store code logs (a missing chunk:
# "dsfs: error: chunk ...: missing"). Those used to be appended to the
# progress line: "... 0 chunks checkeddsfs: error: chunk ...".
# The terminal is script(1)'s pseudo-terminal; what it would show is the
# text after the last carriage return of each line.
. "$(dirname "$0")/../testlib.bash"
need_fixtures
command -v script >/dev/null || { echo "SKIP: script(1) missing" >&2; exit 77; }

bad=d3d62b1f9bbfbacbf229b89beddd9cdb10d59536f4ead7d4bd13a0cd71c07269
fixture_copy pbs-store-a-corrupt "$T/s"
rm "$T/s/.chunks/${bad:0:4}/$bad"
got=0
script -qec "$(printf '%q ' "$DSFS" verify "$T/s")" /dev/null >"$T/tty" </dev/null || got=$?
[ "$got" = 3 ] || { cat -v "$T/tty"; fail "verify on a terminal exited $got, want 3"; }
grep -q "chunks checked" "$T/tty" || { cat -v "$T/tty"; fail "no progress shown on a terminal"; }
python3 - "$T/tty" "$bad" <<'PY'
import re, sys
raw = open(sys.argv[1], "rb").read().decode()
shown = [re.sub(r"\x1b\[K", "", l.split("\r")[-1]) for l in raw.replace("\r\n", "\n").split("\n")]
for l in shown:
    if "dsfs:" in l and not l.startswith("dsfs:"):
        sys.exit("FAIL: a message written after the progress line: %r" % l)
if not any(l.startswith("dsfs: error: chunk " + sys.argv[2]) for l in shown):
    sys.exit("FAIL: the store's message about the missing chunk is not shown:\n" + "\n".join(shown))
if not any(l.startswith("verified 3 snapshots") for l in shown):
    sys.exit("FAIL: no summary:\n" + "\n".join(shown))
PY
echo "verify on a terminal ok"
