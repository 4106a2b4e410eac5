# An image whose size is no multiple of its chunk size ends in a short
# chunk. When that chunk is all zeros it is a hole like any full zero
# chunk: st_blocks leaves it out, SEEK_HOLE finds it, SEEK_DATA skips it,
# and it reads as zeros, also encrypted (its digest is keyed). It used to
# count as data.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
S=$T/store
"$DSFS" init "$S" >/dev/null
"$DSFS" key create "$T/key" --kdf none >/dev/null
mib=$((1 << 20))
# 4 MiB of data, then 1 MiB of zeros: chunks [0, 4M) data, [4M, 5M) zero.
python3 - "$T/tail.img" "$T/data.img" <<'PY'
import os, sys
data = os.urandom(4 << 20)
open(sys.argv[1], "wb").write(data + bytes(1 << 20))
# And a control: its short last chunk is data.
open(sys.argv[2], "wb").write(data + b"x" * (1 << 20))
PY
"$DSFS" backup --time 2026-01-01T00:00:00Z "$S" vm/1 tail.img="$T/tail.img" \
	data.img="$T/data.img" >/dev/null
"$DSFS" backup --keyfile "$T/key" --time 2026-01-01T00:00:00Z "$S" vm/2 \
	tail.img="$T/tail.img" >/dev/null
mount_dsfs "$S" "$T/m" -o keyfile="$T/key"
python3 - "$T/m" "$T/tail.img" <<'PY'
import os, sys
m, src = sys.argv[1], sys.argv[2]
mib4, size = 4 << 20, 5 << 20
for vm in ("1", "2"):
    p = f"{m}/vm/{vm}/2026-01-01T00:00:00Z/tail.img"
    st = os.stat(p)
    assert st.st_size == size, st.st_size
    assert st.st_blocks == mib4 // 512, (vm, st.st_blocks)
    fd = os.open(p, os.O_RDONLY)
    assert os.lseek(fd, 0, os.SEEK_HOLE) == mib4, (vm, os.lseek(fd, 0, os.SEEK_HOLE))
    assert os.lseek(fd, mib4 + 5, os.SEEK_HOLE) == mib4 + 5
    try:
        got = os.lseek(fd, mib4, os.SEEK_DATA)
        raise SystemExit(f"vm/{vm}: SEEK_DATA in the tail hole gave {got}, want ENXIO")
    except OSError as e:
        assert e.errno == 6, e  # ENXIO
    os.close(fd)
    assert open(p, "rb").read() == open(src, "rb").read(), vm
# The control: a short last chunk of data is data.
p = f"{m}/vm/1/2026-01-01T00:00:00Z/data.img"
assert os.stat(p).st_blocks == size // 512, os.stat(p).st_blocks
fd = os.open(p, os.O_RDONLY)
assert os.lseek(fd, 0, os.SEEK_HOLE) == size
PY
unmount_dsfs "$T/m"
echo "image_tail_hole: ok"
