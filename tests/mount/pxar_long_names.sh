# pxar takes names up to 4 KiB, Linux 255 bytes. A crafted archive with a
# longer name is listed without it (logged) instead of failing: past 1 KiB
# the kernel failed the whole listing with EIO, and between 256 bytes and
# 1 KiB `ls` listed a name no lookup could reach. The archive is made by
# dsfs backup and one name patched longer (tests/pxar_patch.py, the
# goodbye table rebuilt), then stored as a raw root.pxar stream.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
S=$T/store
"$DSFS" init "$S" >/dev/null
mkdir "$T/src"
echo kept >"$T/src/kept.txt"
echo long >"$T/src/long.txt"
"$DSFS" backup "$S" host/src --time 2025-01-01T00:00:00Z root.pxar="$T/src" >/dev/null
"$DSFS" cat "$S" host/src/2025-01-01T00:00:00Z root.pxar >"$T/src.pxar"
i=0
for len in 255 300 1100 4000; do
	i=$((i + 1))
	python3 - "$T/src.pxar" "$T/p$len.pxar" "$len" <<'PY'
import sys
from pxar_patch import rename_root_child
b = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(rename_root_child(b, b"long.txt", b"L" * int(sys.argv[3])))
PY
	"$DSFS" backup "$S" host/n$len --time 2025-01-01T00:00:00Z root.pxar="$T/p$len.pxar" >/dev/null
done
mount_dsfs "$S" "$T/m"
python3 - "$T/m" <<'PY' || fail "listing"
import errno, os, sys
m = sys.argv[1]
for n in (255, 300, 1100, 4000):
    d = f"{m}/host/n{n}/2025-01-01T00:00:00Z/root.pxar"
    try:
        got = sorted(os.listdir(d))
    except OSError as e:
        sys.exit(f"{n}: listdir: {errno.errorcode.get(e.errno)}")
    want = ["L" * 255, "kept.txt"] if n == 255 else ["kept.txt"]
    if got != [w for w in want]:
        sys.exit(f"{n}: lists {[x[:12] + '...' if len(x) > 12 else x for x in got]}")
    if open(f"{d}/kept.txt").read() != "kept\n":
        sys.exit(f"{n}: kept.txt")
    if n == 255 and open(f"{d}/{'L' * 255}").read() != "long\n":
        sys.exit("255: the 255-byte name does not read")
PY
grep -q "an entry with a name of 1100 bytes (Linux takes 255) is not listed" "$T/mount.log" ||
	fail "not logged: $(cat "$T/mount.log")"
echo "pxar_long_names: ok"
