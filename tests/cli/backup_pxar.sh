# dsfs backup NAME.pxar=DIR: a directory tree becomes a pxar archive (v1,
# with catalog.pcat1.didx) or, with --split, a v2 .mpxar/.ppxar pair without
# catalog, as proxmox-backup-client writes them. The streams are checked here
# with Python from the spec, not with dsfs's own decoder.
. "$(dirname "$0")/../testlib.bash"
S=$T/store
D=$T/src
"$DSFS" init "$S" >/dev/null
mkdir -p "$D/dir/sub" "$D/empty-dir"
printf 'hello\n' >"$D/a.txt"
head -c 6291456 /dev/urandom >"$D/big.bin"
: >"$D/zero"
ln "$D/a.txt" "$D/dir/hard"
ln -s a.txt "$D/sym"
mkfifo "$D/fifo"
printf 'deep' >"$D/dir/sub/deep"
printf 'latin' >"$D/$(printf 'caf\351')"
touch -d '1969-07-20 20:17:40.5' "$D/dir/sub/deep"

expect_status 0 "$DSFS" backup "$S" host/h1 --time 2025-01-01T00:00:00Z root.pxar="$D"
grep -q "^root.pxar.didx: 5 files, 4 dirs, 1 symlinks, 1 hardlinks, 0 devices, 1 fifos, 0 sockets" \
	"$T/out" || { cat "$T/out"; fail "stats line"; }
v1=host/h1/2025-01-01T00:00:00Z
[ -f "$S/$v1/root.pxar.didx" ] && [ -f "$S/$v1/catalog.pcat1.didx" ] || fail "v1 archives"
expect_status 0 "$DSFS" verify "$S"
"$DSFS" cat "$S" $v1 root.pxar >"$T/root.pxar"
"$DSFS" cat "$S" $v1 catalog.pcat1 >"$T/catalog"

expect_status 0 "$DSFS" backup "$S" host/h1 --split --time 2025-01-02T00:00:00Z root.pxar="$D"
v2=host/h1/2025-01-02T00:00:00Z
[ -f "$S/$v2/root.mpxar.didx" ] && [ -f "$S/$v2/root.ppxar.didx" ] || fail "split archives"
[ ! -e "$S/$v2/catalog.pcat1.didx" ] && [ ! -e "$S/$v2/root.pxar.didx" ] || fail "split wrote v1/catalog"
expect_status 0 "$DSFS" verify "$S"
"$DSFS" cat "$S" $v2 root.mpxar >"$T/root.mpxar"
"$DSFS" cat "$S" $v2 root.ppxar >"$T/root.ppxar"

python3 - "$T" "$D" <<'PY'
import os, struct, sys
t, src = sys.argv[1:3]
ENTRY, FILENAME, PAYLOAD, PREF = 0xd5956474e588acef, 0x16701121063917b3, 0x28147a1b0b7c1a25, 0x419d3d6bc4ba977e
GOODBYE, TAIL, FMT = 0x2fec4fa642d5731d, 0xef5eed5b753e1555, 0x730f6c75df16a40d
START, PTAIL, HARDLINK = 0x834c68c2194a4ed2, 0x6c72b78b984c81b5, 0x51269c8422bd7275

def items(b, off=0):
    while off < len(b):
        ty, size = struct.unpack_from("<QQ", b, off)
        assert size >= 16 and off + size <= len(b), (off, size)
        yield off, ty, b[off + 16: off + size]
        off += size

def root_tail(b):
    h, o, s = struct.unpack_from("<QQQ", b, len(b) - 24)
    g = len(b) - s
    assert h == TAIL and o == g and struct.unpack_from("<Q", b, g)[0] == GOODBYE, "root tail"

def files(b, pay=None):
    """name -> content of every regular file, by sequential decoding"""
    out, name = {}, None
    for off, ty, c in items(b):
        if ty == FILENAME:
            name = c[:-1]
        elif ty == PAYLOAD:
            out[name] = c
        elif ty == PREF:
            q, n = struct.unpack("<QQ", c)
            ty2, size = struct.unpack_from("<QQ", pay, q)
            assert ty2 == PAYLOAD and size == n + 16
            out[name] = pay[q + 16: q + 16 + n]
        elif ty == HARDLINK:
            assert c[8:-1] == b"a.txt", c  # path relative to the root, no '/'
    return out

v1 = open(f"{t}/root.pxar", "rb").read()
assert struct.unpack_from("<Q", v1)[0] == ENTRY, "v1 starts with the root ENTRY"
root_tail(v1)
want = {b"a.txt": b"hello\n", b"big.bin": open(f"{src}/big.bin", "rb").read(), b"zero": b"",
        b"deep": b"deep", "café".encode("latin1"): b"latin"}
assert files(v1) == want, sorted(files(v1))

m, p = open(f"{t}/root.mpxar", "rb").read(), open(f"{t}/root.ppxar", "rb").read()
assert struct.unpack_from("<QQQ", m) == (FMT, 24, 2), "v2 starts with FORMAT_VERSION 2"
assert struct.unpack_from("<QQ", p) == (START, 16) and struct.unpack_from("<QQ", p, len(p) - 16) == (PTAIL, 16)
assert PAYLOAD not in [ty for _, ty, _ in items(m)], "payload in the metadata stream"
root_tail(m)
assert files(m, p) == want
assert len(p) == 32 + sum(16 + len(c) for c in want.values())

# The catalog: magic, post-order blocks, one 'd' per archive in the root.
from pcat import entries
cat = entries(open(f"{t}/catalog", "rb").read())
st = os.lstat(f"{src}/dir/sub/deep")
assert cat[0] == (b"/root.pxar.didx", "d"), cat[0]
assert (b"/root.pxar.didx/dir/sub/deep", "f", 4, st.st_mtime_ns // 10**9) in cat, cat
assert st.st_mtime_ns < 0 and st.st_mtime_ns % 10**9 == 5 * 10**8, "pre-1970 mtime"
assert (b"/root.pxar.didx/a.txt", "f", 6, int(os.lstat(f"{src}/a.txt").st_mtime)) in cat
assert (b"/root.pxar.didx/dir/hard", "h") in cat and (b"/root.pxar.didx/fifo", "p") in cat
assert (b"/root.pxar.didx/sym", "l") in cat and (b"/root.pxar.didx/empty-dir", "d") in cat
assert len(cat) == 12, cat
print("pxar streams ok")
PY

# Same tree again: the streams are identical, so nothing new is stored.
expect_status 0 "$DSFS" backup "$S" host/h1 --time 2025-01-03T00:00:00Z root.pxar="$D"
grep -q ", 0 new," "$T/out" || { cat "$T/out"; fail "v1 re-run wrote new chunks"; }
expect_status 0 "$DSFS" backup "$S" host/h1 --split --time 2025-01-04T00:00:00Z root.pxar="$D"
grep -q ", 0 new," "$T/out" || { cat "$T/out"; fail "split re-run wrote new chunks"; }

# Two trees in one snapshot share one catalog with an entry per archive.
expect_status 0 "$DSFS" backup "$S" host/h2 --time 2025-01-05T00:00:00Z root.pxar="$D" \
	etc.pxar="$D/dir" notes.conf="$D/a.txt"
"$DSFS" cat "$S" host/h2/2025-01-05T00:00:00Z catalog.pcat1 | python3 -c '
import struct, sys
b = sys.stdin.buffer.read()
root = struct.unpack_from("<Q", b, len(b) - 8)[0]
n, o = b[root], root + 1
assert b[o] == 2, "two archives in the root block"
o += 1
names = []
for _ in range(2):
    assert b[o] == ord("d"); l = b[o + 1]; names.append(b[o + 2:o + 2 + l]); o += 2 + l
    while b[o] & 0x80: o += 1
    o += 1
assert names == [b"root.pxar.didx", b"etc.pxar.didx"], names
'
expect_status 0 "$DSFS" verify "$S"

# A directory needs a .pxar name.
expect_status 2 "$DSFS" backup "$S" host/h3 --time 2025-01-06T00:00:00Z data.didx="$D"
grep -q "NAME.pxar=DIR" "$T/err" || fail "directory without .pxar name not explained"
[ ! -e "$S/host/h3/2025-01-06T00:00:00Z" ] || fail "refused backup left a snapshot"
echo "backup pxar ok"
