"""A PBS catalog (catalog.pcat1) read as the spec describes it, for the
test scripts (testlib.bash puts tests/ on PYTHONPATH)."""
import struct

MAGIC = bytes([0x91, 0xfd, 0x60, 0xf9, 0xc4, 0x67, 0x58, 0xd5])


def varint(b, o):
    v = s = 0
    while True:
        x = b[o]; o += 1; v |= (x & 0x7f) << s; s += 7
        if x < 0x80: return v, o


def svarint(b, o):
    v = s = 0
    while True:
        x = b[o]; o += 1
        if x == 0: return (-v if v else 0), o
        v |= (x & 0x7f) << s; s += 7
        if x < 0x80: return v, o


def entries(b):
    """Every entry in catalog order: (b"/archive/path", type), files
    (type "f") with their size and mtime after."""
    assert b[:8] == MAGIC
    out = []
    def walk(off, prefix):
        n, o = varint(b, off); end = o + n
        cnt, p = varint(b, o)
        for _ in range(cnt):
            ty = chr(b[p]); l, p = varint(b, p + 1); name = b[p:p + l]; p += l
            path = prefix + b"/" + name
            if ty == "d":
                d, p = varint(b, p); out.append((path, ty)); walk(off - d, path)
            elif ty == "f":
                size, p = varint(b, p); mt, p = svarint(b, p); out.append((path, ty, size, mt))
            else:
                out.append((path, ty))
        assert p == end
    walk(struct.unpack_from("<Q", b, len(b) - 8)[0], b"")
    return out
