"""The raw directory entries of a directory, for the test scripts
(testlib.bash puts tests/ on PYTHONPATH): [(name, d_ino, d_type)] as
getdents64(2) returns them, "." and ".." included (os.listdir drops those,
and ls -i stats ".." instead of showing the listed number)."""
import ctypes
import os
import struct

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_getdents64 = 217  # x86_64


def dirents(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    buf = ctypes.create_string_buffer(65536)
    out = []
    try:
        while True:
            n = _libc.syscall(_SYS_getdents64, fd, buf, len(buf))
            if n < 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e), path)
            if n == 0:
                return out
            off = 0
            while off < n:
                ino, _, reclen, dtype = struct.unpack_from("<QqHB", buf.raw, off)
                name = buf.raw[off + 19:off + reclen].split(b"\0", 1)[0]
                out.append((name, ino, dtype))
                off += reclen
    finally:
        os.close(fd)
