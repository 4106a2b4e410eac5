# pxar takes symlink targets up to 4096 bytes; the kernel takes at most
# PAGE_SIZE - 1 bytes from a FUSE readlink reply. A target that fits is
# returned whole; a longer one (crafted: Linux's symlink(2) makes none
# longer than 4095) fails readlink with ENAMETOOLONG and a log line. It
# failed with ERANGE ("Numerical result out of range"), unexplained,
# because the reply buffer held 4095 bytes and a NUL.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
S=$T/store
"$DSFS" init "$S" >/dev/null
mkdir "$T/src"
echo kept >"$T/src/kept.txt"
ln -s kept.txt "$T/src/link"
"$DSFS" backup "$S" host/src --time 2025-01-01T00:00:00Z root.pxar="$T/src" >/dev/null
"$DSFS" cat "$S" host/src/2025-01-01T00:00:00Z root.pxar >"$T/src.pxar"
for len in 1000 4095 4096; do
	python3 - "$T/src.pxar" "$T/p$len.pxar" "$len" <<'PY'
import sys
from pxar_patch import retarget_root_symlink
b = open(sys.argv[1], "rb").read()
n = int(sys.argv[3])
t = (b"d/" * n)[:n - 1] + b"x"
open(sys.argv[2], "wb").write(retarget_root_symlink(b, b"link", t))
PY
	"$DSFS" backup "$S" host/l$len --time 2025-01-01T00:00:00Z root.pxar="$T/p$len.pxar" >/dev/null
done
mount_dsfs "$S" "$T/m"
python3 - "$T/m" "$(getconf PAGESIZE)" <<'PY' || fail "readlink"
import errno, os, sys
m, page = sys.argv[1], int(sys.argv[2])
for n in (1000, 4095, 4096):
    d = f"{m}/host/l{n}/2025-01-01T00:00:00Z/root.pxar"
    want = ("d/" * n)[:n - 1] + "x"
    if open(f"{d}/kept.txt").read() != "kept\n":
        sys.exit(f"{n}: kept.txt")
    if os.lstat(f"{d}/link").st_size != n:
        sys.exit(f"{n}: st_size {os.lstat(f'{d}/link').st_size}")
    try:
        got = os.readlink(f"{d}/link")
    except OSError as e:
        if n < page:
            sys.exit(f"{n}: readlink: {errno.errorcode.get(e.errno)}")
        if e.errno != errno.ENAMETOOLONG:
            sys.exit(f"{n}: readlink: {errno.errorcode.get(e.errno)}, want ENAMETOOLONG")
        continue
    if n >= page:
        sys.exit(f"{n}: readlink returned {len(got)} bytes past the kernel's limit")
    if got != want:
        sys.exit(f"{n}: readlink gives {len(got)} bytes, not the target")
PY
if [ "$(getconf PAGESIZE)" -le 4096 ]; then
	grep -q "symlink target of 4096 bytes" "$T/mount.log" ||
		fail "not logged: $(cat "$T/mount.log")"
fi
echo "pxar_long_symlink: ok"
