# An entry holds at most one FCAPS, QUOTA_PROJID, ACL_GROUP_OBJ and
# ACL_DEFAULT item; upstream's decoder refuses the entry at a second one.
# A crafted archive whose file had two FCAPS items showed
# security.capability twice in listxattr (getfattr -d printed both); now
# that file fails with EIO and a log line, its siblings read as before.
# The archive is made by dsfs backup, items inserted after the ENTRY of
# some files (tests/pxar_patch.py), then stored as a raw root.pxar stream.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
S=$T/store
"$DSFS" init "$S" >/dev/null
mkdir "$T/src"
for f in caps1 caps2 proj2 kept; do echo "$f" >"$T/src/$f"; done
"$DSFS" backup "$S" host/src --time 2025-01-01T00:00:00Z root.pxar="$T/src" >/dev/null
"$DSFS" cat "$S" host/src/2025-01-01T00:00:00Z root.pxar >"$T/src.pxar"
python3 - "$T/src.pxar" "$T/p.pxar" <<'PY'
import struct, sys
from pxar_patch import add_root_child_item
FCAPS, QUOTA_PROJID = 0x2da9dd9db5f7fb67, 0xe07540e82f7d1cbb
b = open(sys.argv[1], "rb").read()
# A valid vfs_cap_data (v2, cap_net_bind_service): the kernel checks it.
CAP = bytes.fromhex("0100000200040000000000000000000000000000")
b = add_root_child_item(b, b"caps1", FCAPS, CAP)
b = add_root_child_item(b, b"caps2", FCAPS, CAP)
b = add_root_child_item(b, b"caps2", FCAPS, CAP)
b = add_root_child_item(b, b"proj2", QUOTA_PROJID, struct.pack("<Q", 7))
b = add_root_child_item(b, b"proj2", QUOTA_PROJID, struct.pack("<Q", 8))
open(sys.argv[2], "wb").write(b)
PY
"$DSFS" backup "$S" host/p --time 2025-01-01T00:00:00Z root.pxar="$T/p.pxar" >/dev/null
mount_dsfs "$S" "$T/m"
python3 - "$T/m/host/p/2025-01-01T00:00:00Z/root.pxar" <<'PY' || fail "entries"
import errno, os, sys
d = sys.argv[1]
for f in ("caps1", "kept"):
    if open(f"{d}/{f}").read() != f + "\n":
        sys.exit(f"{f} does not read")
got = os.listxattr(f"{d}/caps1")
if got != ["security.capability"]:
    sys.exit(f"caps1: listxattr {got}")
if os.getxattr(f"{d}/caps1", "security.capability").hex() != "0100000200040000000000000000000000000000":
    sys.exit("caps1: security.capability")
for f in ("caps2", "proj2"):
    try:
        os.lstat(f"{d}/{f}")
        sys.exit(f"{f}: lstat passed, listxattr {os.listxattr(f'{d}/{f}')}")
    except OSError as e:
        if e.errno != errno.EIO:
            sys.exit(f"{f}: {errno.errorcode.get(e.errno)}, not EIO")
PY
grep -q "second item of type 2da9dd9db5f7fb67 in an entry" "$T/mount.log" ||
	fail "not logged: $(cat "$T/mount.log")"
echo "pxar_once_items: ok"
