"""Crafting pxar v1 archives for the mount tests (testlib.bash puts tests/
on PYTHONPATH): the filename hash (SipHash-2-4 with pxar's keys, spec
§2.4) and renaming a child of the root to a name of another length, with
the sizes, the root's goodbye table (§2.3, §2.5) and its hashes fixed
up. Enough for archives whose root holds files only."""
import struct

FILENAME, ENTRY, GOODBYE = 0x16701121063917b3, 0xd5956474e588acef, 0x2fec4fa642d5731d
TAIL = 0xef5eed5b753e1555
K0, K1 = 0x83ac3f1cfbb450db, 0xaa4f1b6879369fbd
M64 = (1 << 64) - 1


def _rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & M64


def siphash24(data, k0=K0, k1=K1):
    v0, v1 = k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d
    v2, v3 = k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573

    def rnd():
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & M64; v1 = _rotl(v1, 13) ^ v0; v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & M64; v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & M64; v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & M64; v1 = _rotl(v1, 17) ^ v2; v2 = _rotl(v2, 32)

    n = len(data)
    for i in range(0, n - n % 8, 8):
        m = struct.unpack_from("<Q", data, i)[0]
        v3 ^= m; rnd(); rnd(); v0 ^= m
    last = (n & 0xff) << 56
    for i, c in enumerate(data[n - n % 8:]):
        last |= c << (8 * i)
    v3 ^= last; rnd(); rnd(); v0 ^= last
    v2 ^= 0xff
    for _ in range(4):
        rnd()
    return v0 ^ v1 ^ v2 ^ v3


assert siphash24(b"") == 0x76614015f8d1bb6c and siphash24(b"file_0") == 0xa72d4eec8843fa66
assert siphash24(b"0123456789abcdefg") == 0x1af044155301f259


def _bst_order(n):
    """Slot -> sorted index, the in-order layout of a heap-shaped tree."""
    order, out = [], [None] * n
    def walk(i):
        if i < n:
            walk(2 * i + 1); order.append(i); walk(2 * i + 2)
    walk(0)
    for k, slot in enumerate(order):
        out[slot] = k
    return out


def rename_root_child(b, old, new):
    """The archive b (v1, root of files only) with its child `old` named
    `new` (bytes)."""
    b = bytearray(b)
    off, children, f_old = 0, [], None
    while off < len(b):
        ty, size = struct.unpack_from("<QQ", b, off)
        if ty == FILENAME:
            name = bytes(b[off + 16:off + size - 1])
            children.append([name, off])
            if name == old:
                f_old = off
        if ty == GOODBYE:
            g = off
            break
        off += size
    assert f_old is not None and g + size == len(b), "root with files only"
    # child spans from the old goodbye table, by offset
    spans = {}
    for k in range((size - 16) // 24 - 1):
        h, o, sz = struct.unpack_from("<QQQ", b, g + 16 + 24 * k)
        spans[g - o] = sz
    d = len(new) - len(old)
    item = struct.pack("<QQ", FILENAME, 16 + len(new) + 1) + new + b"\0"
    b[f_old:f_old + 16 + len(old) + 1] = item
    g += d
    recs = []
    for name, f in children:
        span = spans[f]
        if f == f_old:
            name, span = new, span + d
        elif f > f_old:
            f += d
        recs.append((siphash24(name), g - f, span))
    recs.sort()
    table = b"".join(struct.pack("<QQQ", *recs[i]) for i in _bst_order(len(recs)))
    table += struct.pack("<QQQ", TAIL, g, 16 + 24 * (len(recs) + 1))
    b[g + 16:] = table
    return bytes(b)


SYMLINK = 0x27f971e7dbf5dc5f


def retarget_root_symlink(b, name, target):
    """The archive b (v1, root of files and symlinks only) with the target
    of its child symlink `name` replaced by `target` (bytes, no NUL; pxar
    takes up to 4096 bytes)."""
    b = bytearray(b)
    off, children, f_link, s_link = 0, [], None, None
    while off < len(b):
        ty, size = struct.unpack_from("<QQ", b, off)
        if ty == FILENAME:
            child = bytes(b[off + 16:off + size - 1])
            children.append([child, off])
            cur = child
        if ty == SYMLINK and cur == name:
            f_link, s_link = children[-1][1], off
            old_size = size
        if ty == GOODBYE:
            g = off
            break
        off += size
    assert s_link is not None and g + size == len(b), "root with files and symlinks only"
    spans = {}
    for k in range((size - 16) // 24 - 1):
        h, o, sz = struct.unpack_from("<QQQ", b, g + 16 + 24 * k)
        spans[g - o] = sz
    item = struct.pack("<QQ", SYMLINK, 16 + len(target) + 1) + target + b"\0"
    d = len(item) - old_size
    b[s_link:s_link + old_size] = item
    g += d
    recs = []
    for child, f in children:
        span = spans[f]
        if f == f_link:
            span += d
        elif f > f_link:
            f += d
        recs.append((siphash24(child), g - f, span))
    recs.sort()
    table = b"".join(struct.pack("<QQQ", *recs[i]) for i in _bst_order(len(recs)))
    table += struct.pack("<QQQ", TAIL, g, 16 + 24 * (len(recs) + 1))
    b[g + 16:] = table
    return bytes(b)
