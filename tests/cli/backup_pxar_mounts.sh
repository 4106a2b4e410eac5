# dsfs backup NAME.pxar=DIR stays on DIR's file system, as
# proxmox-backup-client does by default: a directory where another file
# system is mounted is stored as an empty directory ("skipping mount
# point"), with the mounted root's own metadata. --include-dev PATH takes
# the file system PATH is on into the backup, --all-file-systems every one;
# the two conflict, as there. Backing up / used to take every mount below
# it: /boot, /home on its own disk, NFS shares, the datastore itself.
# Archive and catalog are read with Python from the spec.
. "$(dirname "$0")/../testlib.bash"
need_root_with mount umount
S=$T/store
D=$T/src
"$DSFS" init "$S" >/dev/null
mkdir -p "$D/mnt/other" "$D/mnt/second" "$D/plain"
printf 'root fs\n' >"$D/plain/file"
mount -t tmpfs -o size=4M,mode=0710,uid=1234,gid=5678 dsfs-test "$D/mnt/other"
cleanup_hooks+=("umount '$D/mnt/other'")
mount -t tmpfs -o size=4M dsfs-test "$D/mnt/second"
cleanup_hooks+=("umount '$D/mnt/second'")
mkdir "$D/mnt/other/sub"
printf 'other fs\n' >"$D/mnt/other/sub/file"
printf 'second fs\n' >"$D/mnt/second/file"
touch -d '2020-02-02 02:02:02' "$D/mnt/other"

# names NAME TIME: the catalog's paths of archive NAME.pxar in snapshot
# host/m/TIME, one a line, and a check that the archive holds the same.
names() {
	"$DSFS" cat "$S" "host/m/$2" catalog.pcat1 >"$T/cat"
	"$DSFS" cat "$S" "host/m/$2" "$1.pxar" >"$T/px"
	python3 - "$T/cat" "$T/px" "$1" <<'PY'
import struct, sys
from pcat import entries
cat = [e[0].split(b"/", 2)[2] for e in entries(open(sys.argv[1], "rb").read())
       if e[0].count(b"/") > 1 and e[0].startswith(b"/" + sys.argv[3].encode() + b".pxar.didx/")]
b = open(sys.argv[2], "rb").read()
FILENAME, GOODBYE = 0x16701121063917b3, 0x2fec4fa642d5731d
path, names, off, pending = [], [], 0, None
while off < len(b):
    ty, size = struct.unpack_from("<QQ", b, off)
    if ty == FILENAME:
        pending = b[off + 16:off + size - 1]
        names.append(b"/".join(path + [pending]))
    elif ty == 0xd5956474e588acef and pending is not None:
        if struct.unpack_from("<Q", b, off + 16)[0] & 0o170000 == 0o040000:
            path.append(pending)
        pending = None
    elif ty == GOODBYE:
        path = path[:-1]
    off += size
assert sorted(names) == sorted(cat), (names, cat)
print("\n".join(n.decode() for n in names))
PY
}

# Default: the mount points are empty directories, the rest is stored.
expect_status 0 "$DSFS" backup "$S" host/m --time 2025-01-01T00:00:00Z root.pxar="$D"
grep -q "mnt/other: skipping mount point" "$T/err" || { cat "$T/err"; fail "no skip message"; }
names root 2025-01-01T00:00:00Z >"$T/got"
printf '%s\n' mnt mnt/other mnt/second plain plain/file >"$T/want"
diff -u "$T/want" "$T/got" || fail "default backup crossed into other file systems"
# The empty directory keeps the mounted root's metadata (what a restore
# recreates as the mount point), as PBS's client writes it.
python3 - "$T/px" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
i = b.index(b"other\0")
ty, size = struct.unpack_from("<QQ", b, i + 6)
mode, flags, uid, gid, sec = struct.unpack_from("<QQIIq", b, i + 6 + 16)
assert (mode, uid, gid) == (0o40710, 1234, 5678), (oct(mode), uid, gid)
assert sec == 1580608922, sec
PY

# --include-dev: that file system too (and the root's own).
expect_status 0 "$DSFS" backup "$S" host/m --time 2025-01-02T00:00:00Z \
	--include-dev "$D/mnt/other/sub" root.pxar="$D"
names root 2025-01-02T00:00:00Z >"$T/got"
printf '%s\n' mnt mnt/other mnt/other/sub mnt/other/sub/file mnt/second plain plain/file >"$T/want"
diff -u "$T/want" "$T/got" || fail "--include-dev"

# --all-file-systems: everything.
expect_status 0 "$DSFS" backup "$S" host/m --time 2025-01-03T00:00:00Z --all-file-systems \
	root.pxar="$D"
names root 2025-01-03T00:00:00Z >"$T/got"
printf '%s\n' mnt mnt/other mnt/other/sub mnt/other/sub/file mnt/second mnt/second/file \
	plain plain/file >"$T/want"
diff -u "$T/want" "$T/got" || fail "--all-file-systems"

# Backing up a mounted file system's root itself takes its contents.
expect_status 0 "$DSFS" backup "$S" host/m --time 2025-01-04T00:00:00Z other.pxar="$D/mnt/other"
names other 2025-01-04T00:00:00Z >"$T/got"
printf '%s\n' sub sub/file >"$T/want"
diff -u "$T/want" "$T/got" || fail "backup of a mount's root"

# The options conflict, as in PBS: a usage error. A missing --include-dev
# path is a failure (status 1), as a missing --keyfile or source is: the
# command line is right (it was status 2). Checked after the command line,
# whose errors come first.
expect_status 2 "$DSFS" backup "$S" host/m --time 2025-01-05T00:00:00Z --all-file-systems \
	--include-dev "$D" root.pxar="$D"
grep -q "conflicts" "$T/err" || { cat "$T/err"; fail "conflict not explained"; }
expect_status 1 "$DSFS" backup "$S" host/m --time 2025-01-05T00:00:00Z \
	--include-dev "$T/nonexistent" root.pxar="$D"
grep -qxF "dsfs: --include-dev $T/nonexistent: No such file or directory" "$T/err" ||
	{ cat "$T/err"; fail "bad --include-dev not explained"; }
expect_status 2 "$DSFS" backup "$S" host/m --include-dev "$T/nonexistent" --time bogus \
	root.pxar="$D"
grep -q -- "--time bogus" "$T/err" || { cat "$T/err"; fail "the usage error is not the one said"; }
[ ! -e "$S/host/m/2025-01-05T00:00:00Z" ] || fail "refused backup left a snapshot"
expect_status 0 "$DSFS" verify "$S"
echo "backup pxar mounts ok"
