# Long archive names through the mount: a name is accepted at create only
# if its archive and the temp file its commit writes (the last extension
# replaced by .tmp_XXXXXX for a blob, .tmp_fidx / .tmp_didx for an index)
# fit in 255 bytes, so an accepted file is never lost at its commit, after
# close has already succeeded. Longer names get ENAMETOOLONG at create.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
mount_new_snapshot

# For each name: what create + write + close gets, then (after the
# commits) whether the file reads back what was written. A blob, a stream
# (2 MiB: a dynamic index) and an image at the longest name that fits and
# one byte over; 255 bytes for each.
python3 - "$SNAP" >"$T/names.out" <<'EOF2'
import errno, os, sys
snap = sys.argv[1]
def names():
    for n in (244, 245, 255):
        yield "b" * n, b"small"
        yield "s" * n, bytes(range(256)) * (8 << 10)
    for n in (246, 247, 255):
        yield "i" * (n - 4) + ".img", b"image" * 1000
got = {}
for name, data in names():
    try:
        fd = os.open(os.path.join(snap, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        got[name] = "OK"
    except OSError as e:
        got[name] = errno.errorcode[e.errno]
for name, data in names():
    if got[name] == "OK":
        try:
            with open(os.path.join(snap, name), "rb") as f:
                if f.read() != data:
                    got[name] = "OK but reads back different"
        except OSError as e:
            got[name] = "OK but then " + errno.errorcode[e.errno]
    print(name[0], len(name), got[name])
EOF2
cat >"$T/want" <<'EOF2'
b 244 OK
s 244 OK
b 245 ENAMETOOLONG
s 245 ENAMETOOLONG
b 255 ENAMETOOLONG
s 255 ENAMETOOLONG
i 246 OK
i 247 ENAMETOOLONG
i 255 ENAMETOOLONG
EOF2
diff "$T/want" "$T/names.out" >&2 || fail "long names (want, got above)"
unmount_dsfs "$M"
! grep -q "abandoned" "$T/mount.log" || { cat "$T/mount.log" >&2; fail "an archive was abandoned"; }
"$DSFS" verify "$S" >"$T/verify.out" || { cat "$T/verify.out" >&2; fail "verify"; }
echo "write_names: ok"
