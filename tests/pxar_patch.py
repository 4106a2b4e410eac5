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


SYMLINK = 0x27f971e7dbf5dc5f


def _root(b):
    """Parses a v1 archive whose root holds files (and symlinks) only:
    its children as [name, FILENAME offset, offset of the child's SYMLINK
    item or None], the root goodbye table's offset, and each child's span
    by FILENAME offset (from the old table)."""
    off, children = 0, []
    while off < len(b):
        ty, size = struct.unpack_from("<QQ", b, off)
        if ty == FILENAME:
            children.append([bytes(b[off + 16:off + size - 1]), off, None])
        if ty == SYMLINK:
            children[-1][2] = off
        if ty == GOODBYE:
            break
        off += size
    assert ty == GOODBYE and off + size == len(b), "root with files and symlinks only"
    spans = {}
    for k in range((size - 16) // 24 - 1):
        h, o, sz = struct.unpack_from("<QQQ", b, off + 16 + 24 * k)
        spans[off - o] = sz
    return children, off, spans


def _replace(b, at, old_len, item, child_off):
    """b (bytearray) with old_len bytes at `at`, inside the child whose
    FILENAME is at child_off, replaced by item; the root goodbye table
    rebuilt for the moved offsets, the changed span and the children's
    (possibly new) names. Returns bytes."""
    children, g, spans = _root(b)
    d = len(item) - old_len
    b[at:at + old_len] = item
    if child_off == at:  # the FILENAME itself: the child's name changed
        children = [[bytes(item[16:-1]) if f == at else n, f, s] for n, f, s in children]
    g += d
    recs = []
    for name, f, _ in children:
        span = spans[f]
        if f == child_off:
            span += d
        elif f > child_off:
            f += d
        recs.append((siphash24(name), g - f, span))
    recs.sort()
    table = b"".join(struct.pack("<QQQ", *recs[i]) for i in _bst_order(len(recs)))
    table += struct.pack("<QQQ", TAIL, g, 16 + 24 * (len(recs) + 1))
    b[g + 16:] = table
    return bytes(b)


def rename_root_child(b, old, new):
    """The archive b (v1, root of files only) with its child `old` named
    `new` (bytes)."""
    b = bytearray(b)
    f = next(f for name, f, _ in _root(b)[0] if name == old)
    item = struct.pack("<QQ", FILENAME, 16 + len(new) + 1) + new + b"\0"
    return _replace(b, f, 16 + len(old) + 1, item, f)


def retarget_root_symlink(b, name, target):
    """The archive b (v1, root of files and symlinks only) with the target
    of its child symlink `name` replaced by `target` (bytes, no NUL; pxar
    takes up to 4096 bytes)."""
    b = bytearray(b)
    f, s_link = next((f, s) for n, f, s in _root(b)[0] if n == name and s is not None)
    old_size = struct.unpack_from("<QQ", b, s_link)[1]
    item = struct.pack("<QQ", SYMLINK, 16 + len(target) + 1) + target + b"\0"
    return _replace(b, s_link, old_size, item, f)


def add_root_child_item(b, name, item_type, content):
    """The archive b (v1, root of files and symlinks only) with an item
    (type, content bytes) inserted right after the ENTRY of its child
    `name`, among its attributes."""
    b = bytearray(b)
    f = next(f for n, f, _ in _root(b)[0] if n == name)
    e = f + struct.unpack_from("<QQ", b, f)[1]
    ty, size = struct.unpack_from("<QQ", b, e)
    assert ty == ENTRY
    item = struct.pack("<QQ", item_type, 16 + len(content)) + content
    return _replace(b, e + size, 0, item, f)
