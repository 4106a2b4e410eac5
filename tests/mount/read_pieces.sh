# A read that spans many small chunks is answered. A reply is written to
# the kernel with one writev of its pieces (one per chunk), and writev takes
# at most IOV_MAX (1024): a 1 MiB read of an index with chunks under 1 KiB
# failed to be written ("fuse: writing device: Invalid argument" in the
# log), and the reader waited forever, in the D state, until the mount was
# killed. PBS's own chunks are 16 KiB and larger, but an index from a
# damaged or hostile store may have any: a stream (.didx) of 3000 chunks of
# 100 bytes, and an image (.fidx) of 256-byte chunks, data and all-zero
# ones in turn, both not in the manifest, must read back whole (cat,
# O_DIRECT 1 MiB reads) with the bytes the index names, within 10 s.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse
fixture_copy pbs-store-a "$T/store"
SNAP=vm/101/2024-03-02T08:02:17Z
python3 - "$T/store" "$SNAP" "$T" <<'PY'
import hashlib, os, struct, sys, zlib
store, snap, tmp = sys.argv[1:4]
PLAIN = bytes([66, 171, 56, 7, 190, 131, 112, 161])  # unencrypted, uncompressed blob

def chunk(data):
    d = hashlib.sha256(data).digest()
    h = d.hex()
    os.makedirs(f"{store}/.chunks/{h[:4]}", exist_ok=True)
    with open(f"{store}/.chunks/{h[:4]}/{h}", "wb") as f:
        f.write(PLAIN + struct.pack("<I", zlib.crc32(data)) + data)
    return d

def header(magic):
    h = bytearray(4096)
    h[0:8] = magic
    h[8:24] = os.urandom(16)
    return h

# stream: 3000 chunks of 100 bytes, three different ones in turn
pieces = [bytes([65 + k]) * 100 for k in range(3)]
digests = [chunk(p) for p in pieces]
ents = b"".join(struct.pack("<Q", 100 * (i + 1)) + digests[i % 3] for i in range(3000))
h = header(bytes([0x1c, 0x91, 0x4e, 0xa5, 0x19, 0xba, 0xb3, 0xcd]))
h[32:64] = hashlib.sha256(ents).digest()
open(f"{store}/{snap}/tiny.pcat1.didx", "wb").write(bytes(h) + ents)
open(f"{tmp}/tiny.want", "wb").write(b"".join(pieces[i % 3] for i in range(3000)))

# image: 2 MiB + 100 bytes in 256-byte chunks, every other one all zero
size, cs = (2 << 20) + 100, 256
data, ents = bytearray(), b""
for i in range((size + cs - 1) // cs):
    n = min(cs, size - i * cs)
    c = bytes(n) if i % 2 else hashlib.sha256(struct.pack("<I", i)).digest() * (n // 32) + bytes(n % 32)
    data += c
    ents += chunk(c)
h = header(bytes([0x2f, 0x7f, 0x41, 0xed, 0x91, 0xfd, 0x0f, 0xcd]))
h[32:64] = hashlib.sha256(ents).digest()
h[64:80] = struct.pack("<QQ", size, cs)
open(f"{store}/{snap}/small.img.fidx", "wb").write(bytes(h) + ents)
open(f"{tmp}/small.want", "wb").write(data)
PY
M=$T/m
mount_dsfs "$T/store" "$M"
# A reader stuck in the kernel cannot be killed: killing the daemon ends
# its wait. (The commands write to files: a failing $(...) would run the
# exit trap in its subshell, whose cleanup waits for that daemon.)
stuck() { kill -9 "$MOUNT_PID"; fusermount3 -u -z "$M"; fail "$1"; }
for f in tiny.pcat1:tiny small.img:small; do
	file=$M/$SNAP/${f%%:*}
	want=$T/${f##*:}.want
	rc=0
	timeout -s KILL 10 cat "$file" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" != 137 ] || stuck "cat ${f%%:*}: no answer in 10 s ($(grep -c 'writing device' "$T/mount.log") failed replies)"
	[ "$rc" = 0 ] || fail "cat ${f%%:*}: exit $rc: $(cat "$T/err")"
	cmp "$T/out" "$want" || fail "cat ${f%%:*}: wrong bytes"
	rc=0
	timeout -s KILL 10 dd if="$file" of="$T/out" bs=1M iflag=direct status=none 2>"$T/err" || rc=$?
	[ "$rc" != 137 ] || stuck "O_DIRECT read of ${f%%:*}: no answer in 10 s"
	[ "$rc" = 0 ] || fail "O_DIRECT read of ${f%%:*}: exit $rc: $(cat "$T/err")"
	cmp "$T/out" "$want" || fail "O_DIRECT read of ${f%%:*}: wrong bytes"
done
# The image's zero chunks are holes still.
[ "$(python3 -c 'import os, sys; print(os.lseek(os.open(sys.argv[1], os.O_RDONLY), 0, os.SEEK_HOLE))' \
	"$M/$SNAP/small.img")" = 256 ] || fail "first hole of small.img not at 256"
! grep -q "writing device" "$T/mount.log" || fail "a reply could not be written: $(grep 'writing device' "$T/mount.log")"
unmount_dsfs "$M"
echo "reads of many small chunks ok"
