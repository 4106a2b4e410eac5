# Round trip: a tree with every entry kind (hardlink groups, devices, fifos,
# sockets, xattrs, ACLs, fcaps, 255-byte and UTF-8 names, a 10,000-entry
# directory, deep nesting, sparse and empty files, nanosecond mtimes) →
# `dsfs backup` as v1 and as a split archive → mount → `rsync -aHAX` out
# → identical to the source: rsync's own checksum comparison finds nothing,
# and ownership, modes, mtimes, hardlink groups, xattrs and ACLs are compared
# entry by entry. Source and target are loop-mounted ext4 (real xattrs/ACLs).
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
command -v rsync >/dev/null && command -v setfacl >/dev/null || { echo "SKIP: rsync/acl tools missing" >&2; exit 77; }

mkfs_mount() { # FILE DIR
	truncate -s 256M "$1"
	mkfs.ext4 -q -F -O ^has_journal "$1"
	mkdir -p "$2"
	mount -o loop "$1" "$2"
	cleanup_hooks+=("umount '$2'")
}
mkfs_mount "$T/src.img" "$T/src"
S=$T/src/tree
mkdir "$S"
python3 - "$S" <<'PY'
import os, socket, stat, sys
s = sys.argv[1]
os.makedirs(f"{s}/dir/sub")
open(f"{s}/empty", "w").close()
open(f"{s}/small.txt", "w").write("hello pxar\n")
with open(f"{s}/random.bin", "wb") as f:
    f.write(os.urandom(3 * 1024 * 1024 + 17))
with open(f"{s}/sparse.img", "wb") as f:
    f.truncate(32 * 1024 * 1024); f.seek(5 * 1024 * 1024); f.write(b"data in the middle")
open(f"{s}/hl-a", "w").write("linked three times\n")
os.link(f"{s}/hl-a", f"{s}/dir/hl-b"); os.link(f"{s}/hl-a", f"{s}/dir/sub/hl-c")
open(f"{s}/pair-1", "w").write("second group\n"); os.link(f"{s}/pair-1", f"{s}/pair-2")
os.symlink("dir/sub", f"{s}/link-rel"); os.symlink("/nonexistent/target", f"{s}/link-dangling")
os.symlink("x" * 200, f"{s}/link-long")
os.mkfifo(f"{s}/fifo")
os.mknod(f"{s}/null-ish", 0o620 | stat.S_IFCHR, os.makedev(1, 3))
os.mknod(f"{s}/blk", 0o640 | stat.S_IFBLK, os.makedev(259, 65537))
sk = socket.socket(socket.AF_UNIX); sk.bind(f"{s}/sock"); sk.close()
open(f"{s}/" + "n" * 255, "w").write("255-byte name\n")
open(f"{s}/" + "é" * 127, "w").write("254 bytes of UTF-8\n")
open(f"{s}/ünïcödé 😀 name", "w").write("utf-8\n")
open(f"{s}/tab\there and\nnewline", "w").write("odd\n")
os.mkdir(f"{s}/big")
for i in range(10000):
    open(f"{s}/big/f{i:05d}", "w").write(str(i))
d = s
for i in range(50):
    d = f"{d}/d{i}"
os.makedirs(d); open(f"{d}/deep.txt", "w").write("deep\n")
open(f"{s}/modes-suid", "w").close(); os.chmod(f"{s}/modes-suid", 0o4755)
open(f"{s}/modes-000", "w").close(); os.chmod(f"{s}/modes-000", 0)
os.mkdir(f"{s}/sticky"); os.chmod(f"{s}/sticky", 0o1777)
os.mkdir(f"{s}/setgid"); os.chmod(f"{s}/setgid", 0o2750)
os.chown(f"{s}/small.txt", 65534, 65534)
os.chown(f"{s}/random.bin", 4000000000, 3999999999)
os.setxattr(f"{s}/small.txt", "user.comment", b"a comment")
os.setxattr(f"{s}/small.txt", "user.empty", b"")
os.setxattr(f"{s}/small.txt", "user.binary", bytes(range(256)))
os.setxattr(f"{s}/dir", "trusted.dsfs", b"trusted value")
os.setxattr(f"{s}/random.bin", "security.capability", bytes.fromhex("0100000200200000000000000000000000000000"))
for p, t in [("small.txt", (1, 123456789)), ("dir", (1700000000, 999999999)), ("empty", (-18489601, 500000000)),
             ("random.bin", (4102444800, 1)), ("link-rel", (1234567890, 42))]:
    os.utime(f"{s}/{p}", ns=(0, t[0] * 10**9 + t[1]), follow_symlinks=False)
PY
setfacl -m u:1000:rw-,g:100:r--,m::rw- "$S/small.txt"
setfacl -m u:1002:rwx "$S/dir"
setfacl -d -m u:1002:rwx,g:1003:r-x "$S/dir"
touch -h -d "2001-02-03 04:05:06.123456789" "$S/dir/sub"

store=$T/store
"$DSFS" init "$store" >/dev/null
"$DSFS" backup "$store" host/rt --time 2025-03-01T00:00:00Z root.pxar="$S" >/dev/null
"$DSFS" backup "$store" host/rt --time 2025-03-02T00:00:00Z --split root.pxar="$S" >/dev/null
"$DSFS" verify "$store" >/dev/null || fail "verify after pxar backups"
M=$T/m
mount_dsfs "$store" "$M"
mkfs_mount "$T/dst.img" "$T/dst"
for snap in 2025-03-01T00:00:00Z 2025-03-02T00:00:00Z; do
	D=$T/dst/$snap
	rsync -aHAX --numeric-ids "$M/host/rt/$snap/root.pxar/" "$D/" || fail "rsync out of $snap"
	# rsync itself compares both trees by content, metadata, xattrs, ACLs and
	# hardlinks: a dry run from the source must want to change nothing.
	changes=$(rsync -aHAXc --numeric-ids -n -i "$S/" "$D/")
	[ -z "$changes" ] || { head -20 <<<"$changes" >&2; fail "rsync finds differences ($snap)"; }
	# diff -r: contents and symlink targets. It cannot compare special files
	# and says so for each pair of the same kind; nothing else may appear.
	diff -r --no-dereference "$S" "$D" >"$T/diff" 2>&1 || true
	# (not `grep -v | grep -q .` under pipefail: grep -q leaves at the first
	# line, the first grep then dies of SIGPIPE when it has more than a
	# pipe buffer to write, and the pipeline's failure hid the differences)
	grep -vE '^File .* is a (fifo|socket|character special file|block special file) while file .* is a (fifo|socket|character special file|block special file)$' \
		"$T/diff" >"$T/diff.other" || true
	if [ -s "$T/diff.other" ]; then
		head -20 "$T/diff.other" >&2
		fail "diff -r finds differences ($snap)"
	fi
	python3 - "$S" "$D" <<'PY' || fail "entry comparison ($snap)"
import os, stat, sys
a, b = sys.argv[1:3]
def walk(root):
    out = {}
    for d, dirs, files in os.walk(root.encode()):
        for n in dirs + files + [b""] * (d == root.encode()):
            p = os.path.join(d, n) if n else d
            out[p[len(root.encode()):]] = p
    return out
wa, wb = walk(a), walk(b)
assert set(wa) == set(wb), sorted(set(wa) ^ set(wb))[:5]
groups_a, groups_b = {}, {}
for rel in wa:
    sa, sb = os.lstat(wa[rel]), os.lstat(wb[rel])
    for f in ("st_mode", "st_uid", "st_gid", "st_rdev"):
        assert getattr(sa, f) == getattr(sb, f), (rel, f, getattr(sa, f), getattr(sb, f))
    if not stat.S_ISLNK(sa.st_mode) and rel:
        assert sa.st_mtime_ns == sb.st_mtime_ns, (rel, sa.st_mtime_ns, sb.st_mtime_ns)
    if stat.S_ISREG(sa.st_mode):
        assert sa.st_size == sb.st_size and sa.st_nlink == sb.st_nlink, rel
        groups_a.setdefault(sa.st_ino, set()).add(rel); groups_b.setdefault(sb.st_ino, set()).add(rel)
        assert open(wa[rel], "rb").read() == open(wb[rel], "rb").read(), rel
    if stat.S_ISLNK(sa.st_mode):
        assert os.readlink(wa[rel]) == os.readlink(wb[rel]), rel
    else:
        xa = {n: os.getxattr(wa[rel], n, follow_symlinks=False) for n in os.listxattr(wa[rel], follow_symlinks=False)}
        xb = {n: os.getxattr(wb[rel], n, follow_symlinks=False) for n in os.listxattr(wb[rel], follow_symlinks=False)}
        assert xa == xb, (rel, set(xa) ^ set(xb))
assert sorted(map(sorted, groups_a.values())) == sorted(map(sorted, groups_b.values())), "hardlink groups"
print(f"{len(wa)} entries identical")
PY
done
acls() { (cd "$1" && find . ! -type l -print0 | sort -z | xargs -0 getfacl -P 2>/dev/null); }
acls "$S" >"$T/acl.src"
acls "$T/dst/2025-03-01T00:00:00Z" >"$T/acl.dst"
diff -u "$T/acl.src" "$T/acl.dst" >&2 || fail "ACLs differ"
grep -q "user:1002:rwx" "$T/acl.dst" && grep -q "default:group:1003:r-x" "$T/acl.dst" || fail "ACLs not restored"
unmount_dsfs "$M"
echo "rsync -aHAX round trip ok"
