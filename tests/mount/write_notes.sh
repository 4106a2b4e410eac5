# Notes that the manifest cannot hold (not UTF-8, or a NUL byte, which
# would cut them short) fail the writer's close(2) with EINVAL and leave
# the notes as they were; the notes are written in the release, after close
# has returned, so an error there would only be logged.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
mount_new_snapshot
echo data >"$SNAP/f.txt"
printf 'kept\n' >"$SNAP/notes"

python3 - "$SNAP/notes" <<'EOF2' || fail "bad notes"
import errno, os, sys
path = sys.argv[1]
for bad in (b"bad \xff\xfe\n", b"cut\0short\n", "caf\u00e9".encode()[:-1]):
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, bad)
    try:
        os.close(fd)
        sys.exit("close of notes %r succeeded" % bad)
    except OSError as e:
        assert e.errno == errno.EINVAL, (bad, e)
# The refused notes are gone once the last close's release has run (after
# close returned): the notes read as they were, "kept\n".
import time
for _ in range(100):
    if os.stat(path).st_size == 5 and open(path, "rb").read() == b"kept\n":
        break
    time.sleep(0.05)
else:
    sys.exit("notes not back to b'kept\\n' after the refused writes: %r" % open(path, "rb").read())
# O_APPEND: checked as a whole
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
os.write(fd, "caf\u00e9 \u2713\n".encode())
os.close(fd)
EOF2
want=$(printf 'kept\ncaf\xc3\xa9 \xe2\x9c\x93')
[ "$(cat "$SNAP/notes")" = "$want" ] || fail "notes now: $(cat -v "$SNAP/notes")"
[ "$(manifest_py vm/100/2026-01-01T00:00:00Z 'm["unprotected"]["notes"] == "kept\ncaf\u00e9 \u2713\n"')" = True ] ||
	fail "notes in the manifest: $(manifest_py vm/100/2026-01-01T00:00:00Z 'repr(m["unprotected"].get("notes"))')"
unmount_dsfs "$M"
"$DSFS" verify "$S" >"$T/verify.out" || { cat "$T/verify.out" >&2; fail "verify"; }
echo "write_notes: ok"
