# What ordinary programs get from the mount's operations, beyond reads and
# the writes write.sh covers: the errno of each refused operation in each
# place (symlink, mknod, link: EROFS where the tree is read-only, EPERM in a
# snapshot this mount writes, never ENOSYS "Function not implemented");
# extended attributes and ACLs on a file being written are "not supported"
# (ENOTSUP), so `cp -a` copies into a snapshot; statfs (`df`) gives the
# datastore's filesystem; lseek SEEK_DATA/SEEK_HOLE on every file kind,
# ENXIO at and past the end; O_DIRECTORY on a file, over-long names; the
# inode number listed for "..".
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse
command -v setfattr >/dev/null || { echo "SKIP: setfattr missing" >&2; exit 77; }

fixture_copy pbs-store-a "$T/store"
M=$T/m
mount_dsfs "$T/store" "$M"
SNAP=$M/vm/101/2024-03-02T08:02:17Z
PXAR=$M/host/tundra-87/2024-03-02T09:02:17Z
NEW=$M/vm/101/2030-01-01T00:00:00Z
mkdir "$NEW" || fail "mkdir of a new snapshot"
failed=()

python3 - "$M" "$SNAP" "$PXAR" "$NEW" <<'PY' || failed+=("operation semantics (above)")
import os, sys
from outcome import outcome as got
M, SNAP, PXAR, NEW = sys.argv[1:5]
bad = []
def want(what, w, f, *a):
    g = got(f, *a)
    if g != w:
        bad.append(f"{what}: got {g}, want {w}")

blob = SNAP + "/qemu-server.conf"
# Refused node creation: the place's errno, never ENOSYS.
places = {"root": (M, "EROFS"), "group": (M + "/vm/101", "EROFS"),
          "snapshot": (SNAP, "EROFS"), "pxar": (PXAR + "/root.pxar", "EROFS"),
          "new snapshot": (NEW, "EPERM")}
for what, (d, e) in places.items():
    want(f"symlink in {what}", e, os.symlink, "target", d + "/l")
    want(f"mkfifo in {what}", e, os.mkfifo, d + "/f")
    want(f"mknod in {what}", e, os.mknod, d + "/n")
    want(f"link in {what}", e, os.link, blob, d + "/h")
    want(f"rename in {what}", "EROFS", os.rename, blob, d + "/r")

# Extended attributes: read-only nodes EROFS, a file being written ENOTSUP.
want("setxattr on an archive", "EROFS", os.setxattr, blob, "user.x", b"1")
want("removexattr on an archive", "EROFS", os.removexattr, blob, "user.x")
want("setxattr on a snapshot", "EROFS", os.setxattr, SNAP, "user.x", b"1")
fd = os.open(NEW + "/x.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
want("fsetxattr on a file being written", "ENOTSUP", os.setxattr, fd, "user.x", b"1")
want("fremovexattr on a file being written", "ENOTSUP", os.removexattr, fd, "user.x")
want("fchmod on a file being written", "OK", os.fchmod, fd, 0o600)
os.write(fd, b"x")
os.close(fd)

# lseek on every file kind: data up to the end, ENXIO at and past it.
files = [SNAP + "/drive-scsi0.img", blob, SNAP + "/index.json",
         PXAR + "/catalog.pcat1", M + "/vm/101/owner",
         PXAR + "/root.pxar/alpha-manuals/notes-00001-9b2.dat"]
for p in files:
    size = os.stat(p).st_size
    fd = os.open(p, os.O_RDONLY)
    want(f"SEEK_DATA 0 {p}", "OK", os.lseek, fd, 0, os.SEEK_DATA)
    if os.lseek(fd, size - 1, os.SEEK_HOLE) != size:
        bad.append(f"SEEK_HOLE before the end of {p} is not the end")
    for off in (size, size + 1):
        want(f"SEEK_DATA {off} {p}", "ENXIO", os.lseek, fd, off, os.SEEK_DATA)
        want(f"SEEK_HOLE {off} {p}", "ENXIO", os.lseek, fd, off, os.SEEK_HOLE)
    os.close(fd)
    want(f"O_DIRECTORY on {p}", "ENOTDIR", os.open, p, os.O_RDONLY | os.O_DIRECTORY)
want("256-byte name", "ENAMETOOLONG", os.stat, SNAP + "/" + "a" * 256)
want("256-byte name in pxar", "ENAMETOOLONG", os.stat, PXAR + "/root.pxar/" + "a" * 256)

# statfs: the datastore's filesystem, whose total size does not change.
got_st = os.statvfs(SNAP)
store = os.statvfs(sys.argv[1] + "/../store")
if got_st.f_blocks * got_st.f_frsize != store.f_blocks * store.f_frsize:
    bad.append(f"statfs: {got_st.f_blocks} blocks of {got_st.f_frsize}, the store's "
               f"filesystem has {store.f_blocks} of {store.f_frsize}")
if got_st.f_bavail == 0 or got_st.f_files != store.f_files:
    bad.append(f"statfs: free {got_st.f_bavail}, files {got_st.f_files} (store {store.f_files})")
if os.statvfs(M + "/vm").f_blocks != got_st.f_blocks:
    bad.append("statfs differs between directories of one datastore")
for b in bad:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# cp -a of a file with an extended attribute, rsync -aA of one without an
# ACL: the file is copied, what an archive cannot keep is left out without
# an error (an ACL that the mode cannot express is still reported).
echo "with attributes" >"$T/attr.txt"
setfattr -n user.note -v kept "$T/attr.txt"
cp -a "$T/attr.txt" "$NEW/cp.txt" || failed+=("cp -a into a new snapshot")
rsync -aA --inplace "$T/attr.txt" "$NEW/rsync.txt" || failed+=("rsync -aA into a new snapshot")
cmp "$T/attr.txt" "$NEW/cp.txt" || failed+=("cp -a: wrong bytes")
cmp "$T/attr.txt" "$NEW/rsync.txt" || failed+=("rsync -aA: wrong bytes")
# A listing's ".." carries the parent's inode number, as stat of DIR/..
# finds it (at the mount root, the root's own, as the kernel gives no other).
python3 - "$M" "$M/vm" "$M/vm/101" "$SNAP" "$PXAR/root.pxar" \
	"$PXAR/root.pxar/alpha-manuals" "$NEW" <<'PY' || failed+=('".." inode numbers (above)')
import os, sys
from dirents import dirents
bad = 0
for i, d in enumerate(sys.argv[1:]):
    listed = {name: ino for name, ino, _ in dirents(d)}
    want = os.stat(d).st_ino if i == 0 else os.stat(d + "/..").st_ino
    if listed.get(b"..") != want or listed.get(b".") != os.stat(d).st_ino:
        print(f"{d}: . and .. listed as {listed.get(b'.')} and {listed.get(b'..')}, "
              f"are {os.stat(d).st_ino} and {want}", file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
PY
df -P "$M" | awk 'NR == 2 && $2 > 0 { ok = 1 } END { exit !ok }' ||
	failed+=("df shows no size: $(df -P "$M" | tail -1)")
[ ${#failed[@]} = 0 ] || fail "$(printf '%s; ' "${failed[@]}")"
unmount_dsfs "$M"
echo "operation semantics ok"
