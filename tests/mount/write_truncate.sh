# Truncation of files being written through the mount: an image shrunk
# (ftruncate, or an O_TRUNC open while it is still open) after some of its
# chunks went into the store commits with the new size and content, as do
# streams; close reports nothing, so a refused commit would lose the file
# silently.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
mount_new_snapshot

python3 - "$SNAP" "$T" <<'EOF'
import os, sys
snap, tmp = sys.argv[1], sys.argv[2]
CS = 4 << 20
def ref(name, data):
    with open(os.path.join(tmp, name), "wb") as f:
        f.write(data)
# three full chunks (inserted at once), then cut into the second
d = os.urandom(3 * CS)
fd = os.open(os.path.join(snap, "cut.img"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, d)
os.ftruncate(fd, CS + 100)
os.close(fd)
ref("cut.img", d[:CS + 100])
# cut to a chunk boundary, then written past it again
fd = os.open(os.path.join(snap, "regrow.img"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, d)
os.ftruncate(fd, CS)
os.pwrite(fd, b"tail", 2 * CS)
os.close(fd)
ref("regrow.img", d[:CS] + bytes(CS) + b"tail")
# O_TRUNC open of an image still being written
fd = os.open(os.path.join(snap, "otrunc.img"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, d)
fd2 = os.open(os.path.join(snap, "otrunc.img"), os.O_WRONLY | os.O_TRUNC)
os.write(fd2, b"x" * 100)
os.close(fd2)
os.close(fd)
ref("otrunc.img", b"x" * 100)
# a stream being chunked, cut back to a blob's size
fd = os.open(os.path.join(snap, "cut.bin"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, d[:5 << 20])
os.ftruncate(fd, 1000)
os.close(fd)
ref("cut.bin", d[:1000])
# an image empty at its commit cannot be stored (PBS refuses a fixed index
# without a chunk): dropped and logged
fd = os.open(os.path.join(snap, "empty.img"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, d[:CS + 1])
os.ftruncate(fd, 0)
os.close(fd)
EOF
unmount_dsfs "$M"
grep -v "empty.img" "$T/mount.log" | grep -q "abandoned" && { cat "$T/mount.log" >&2; fail "an archive was abandoned"; }
grep -q "empty.img: archive abandoned" "$T/mount.log" || fail "empty.img: no abandon logged"
mount_dsfs "$S" "$M"
for f in cut.img regrow.img otrunc.img cut.bin; do
	[ -e "$SNAP/$f" ] || fail "$f not committed: $(ls "$SNAP")"
	cmp "$T/$f" "$SNAP/$f" || fail "$f differs"
done
[ ! -e "$SNAP/empty.img" ] || fail "empty.img listed"
unmount_dsfs "$M"
"$DSFS" verify "$S" >"$T/verify.out" || { cat "$T/verify.out" >&2; fail "verify"; }
echo "write_truncate: ok"
