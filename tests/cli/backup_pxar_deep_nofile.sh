# A tree nested 1,100 levels deep (the encoder takes 2,047) is backed up
# under the usual soft RLIMIT_NOFILE of 1024: the walk keeps one
# descriptor open a level, and such a tree failed with "Too many open
# files" (status 1) until dsfs raised its soft limit towards the hard one.
# The archive is checked with Python from the spec: 1,100 directory
# FILENAMEs "d" and the leaf's content.
. "$(dirname "$0")/../testlib.bash"
S=$T/store
D=$T/src
bare_store "$S"
[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 4096 ] || {
	echo "SKIP: hard RLIMIT_NOFILE below 4096" >&2
	exit 77
}
python3 - "$D" <<'PY'
import os, sys
os.makedirs(sys.argv[1])
os.chdir(sys.argv[1])
for _ in range(1100):
    os.mkdir("d")
    os.chdir("d")
with open("leaf", "w") as f:
    f.write("bottom\n")
PY
rc=0
(
	ulimit -Sn 1024
	exec "$DSFS" backup "$S" host/deep --time 2025-01-01T00:00:00Z root.pxar="$D" >"$T/out" 2>"$T/err"
) || rc=$?
[ "$rc" = 0 ] || { cat "$T/err" >&2; fail "deep tree under ulimit -n 1024: status $rc"; }
grep -q "^root.pxar.didx: 1 files, 1101 dirs" "$T/out" || fail "stats: $(cat "$T/out")"
"$DSFS" cat "$S" host/deep/2025-01-01T00:00:00Z root.pxar >"$T/root.pxar"
python3 - "$T/root.pxar" <<'PY' || fail "archive content"
import struct, sys
FILENAME, PAYLOAD = 0x16701121063917b3, 0x28147a1b0b7c1a25
b = open(sys.argv[1], "rb").read()
off, names, payload = 0, [], None
while off < len(b):
    ty, size = struct.unpack_from("<QQ", b, off)
    assert size >= 16 and off + size <= len(b), (off, size)
    if ty == FILENAME:
        names.append(b[off + 16: off + size])
    elif ty == PAYLOAD:
        payload = b[off + 16: off + size]
    off += size
assert names == [b"d\0"] * 1100 + [b"leaf\0"], (len(names), names[-3:])
assert payload == b"bottom\n", payload
PY
