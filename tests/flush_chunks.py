# flush_chunks.py STORE SRC N: waits (up to 10 s each) for the chunk files
# of SRC's first N 4 MiB chunks (an image being written into datastore
# STORE), then writes their data back with sync_file_range: data only, no
# journal commit. Prints how many of those writebacks failed. Used by the
# tests that fail a disk's writes under a backup (live_faults.sh,
# writeback_lost.sh).
import ctypes
import hashlib
import os
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
store, src, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
bad = 0
with open(src, "rb") as f:
    for i in range(n):
        d = hashlib.sha256(f.read(4 << 20)).hexdigest()
        p = os.path.join(store, ".chunks", d[:4], d)
        deadline = time.monotonic() + 10
        while not os.path.exists(p) and time.monotonic() < deadline:
            time.sleep(0.05)
        fd = os.open(p, os.O_RDONLY | os.O_NOATIME)
        # WAIT_BEFORE | WRITE | WAIT_AFTER
        if libc.sync_file_range(fd, 0, 0, 7) != 0:
            bad += 1
        os.close(fd)
print(bad)
