# Writing through the mount (issue 5): mkdir of types, groups, namespaces and
# snapshots (bad names: EINVAL); a multi-GiB image copied in with cp reads
# back identical through a fresh mount and passes `dsfs verify`; the same
# image again adds no chunk; random-offset writes into images and streams
# (more partly written chunks than are kept in memory); small files become
# blobs, large ones dynamic indexes; notes and .protected round-trip and show
# in `dsfs ls`; rmdir of protected (EPERM) and in-use (EBUSY, our own reader
# and a PBS-style flock on the lock file) snapshots; finished archives and
# other snapshots are immutable (EROFS); -o ro and maintenance read-only
# refuse writes (EROFS); encrypted writes with -o keyfile= (signed manifest,
# ENOKEY without the key).
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse

BIG_MIB=${DSFS_WRITE_BIG_MIB:-2304} # a multi-GiB image, mostly sparse
S=$T/store
M=$T/m
"$DSFS" init "$S" >/dev/null

count_chunks() { find "$S/.chunks" -type f | wc -l; }
# same A B: byte equality with 8 MiB reads (sha256sum and cmp read in small
# steps and take several times longer on multi-GiB files).
same() {
	python3 -c '
import sys
with open(sys.argv[1], "rb", 0) as a, open(sys.argv[2], "rb", 0) as b:
    while True:
        x, y = a.read(8 << 20), b.read(8 << 20)
        if x != y:
            sys.exit(1)
        if not x:
            break
' "$1" "$2"
}

mount_dsfs "$S" "$M" -o owner=backup@pbs

# --- mkdir: types, groups (owner), namespaces, snapshots; bad names ---

mkdir -p "$M/vm/100/2026-01-01T00:00:00Z"
[ "$(cat "$S/vm/100/owner")" = backup@pbs ] || fail "owner of the new group: $(cat "$S/vm/100/owner")"
[ -d "$S/vm/100/2026-01-01T00:00:00Z" ] || fail "snapshot directory not made"
mkdir -p "$M/ns/a/ns/b/host/web"
[ -d "$S/ns/a/ns/b/host/web" ] || fail "namespaced group not made"
expect_errno EEXIST mkdir "$M/vm/100"
expect_errno EINVAL mkdir "$M/xx"
expect_errno EINVAL mkdir "$M/vm/bad:id"
expect_errno EINVAL mkdir "$M/vm/100/2026-13-01T00:00:00Z"
expect_errno EINVAL mkdir "$M/vm/100/yesterday"
expect_errno EINVAL mkdir "$M/vm/100/2026-01-01T00:00:00+01:00"
mkdir -p "$M/ns/1/ns/2/ns/3/ns/4/ns/5/ns/6/ns/7"
expect_errno EINVAL mkdir "$M/ns/1/ns/2/ns/3/ns/4/ns/5/ns/6/ns/7/ns"
expect_errno EINVAL mkdir "$M/ns/bad:name"
expect_errno EINVAL mkdir "$M/ns/-dash"
[ ! -e "$S/xx" ] && [ ! -e "$S/vm/100/yesterday" ] || fail "a refused name reached the disk"
expect_errno EROFS mkdir "$M/vm/100/2026-01-01T00:00:00Z/dir"

# --- a multi-GiB image: random and text regions, the rest a hole ---

SNAP=$M/vm/100/2026-01-01T00:00:00Z
IMG=$T/big.img
truncate -s "${BIG_MIB}M" "$IMG"
dd if=/dev/urandom of="$IMG" bs=1M count=24 conv=notrunc status=none
seq 1 4000000 >"$T/text"
dd if="$T/text" of="$IMG" bs=1M count=20 seek=1000 conv=notrunc status=none
dd if=/dev/urandom of="$IMG" bs=1M count=9 seek=$((BIG_MIB - 9)) conv=notrunc status=none
chunks0=$(count_chunks)
cp "$IMG" "$SNAP/disk.img"
echo small >"$T/small.txt"
cp "$T/small.txt" "$SNAP/small.txt"
head -c $((5 << 20)) /dev/urandom >"$T/stream.bin"
cp "$T/stream.bin" "$SNAP/stream.bin"
# Right after cp (the release that commits it may still be running).
same "$IMG" "$SNAP/disk.img" || fail "image differs right after cp"
chunks1=$(count_chunks)
[ "$chunks1" -gt "$chunks0" ] || fail "no chunks written"

# the server names: fixed index, blob, dynamic index
unmount_dsfs "$M"
D=$S/vm/100/2026-01-01T00:00:00Z
for f in disk.img.fidx small.txt.blob stream.bin.didx index.json.blob; do
	[ -f "$D/$f" ] || fail "$f missing: $(ls "$D")"
done
! ls -a "$D" | grep -q tmp_ || fail "temp files left: $(ls -a "$D")"

# --- a fresh mount reads everything back; verify is clean ---

mount_dsfs "$S" "$M"
cmp "$IMG" "$SNAP/disk.img" || fail "image differs through a fresh mount"
cmp "$T/small.txt" "$SNAP/small.txt" || fail "blob differs"
cmp "$T/stream.bin" "$SNAP/stream.bin" || fail "stream differs"
"$DSFS" verify "$S" >"$T/verify.out" || { cat "$T/verify.out" >&2; fail "verify after writing"; }

# --- the same image again: no new chunk ---

mkdir "$M/vm/100/2026-01-02T00:00:00Z"
cp "$IMG" "$M/vm/100/2026-01-02T00:00:00Z/disk.img"
# at once into another snapshot of the group: the first copy's commit (in
# the asynchronous release) may still hold the group lock; that is waited for
mkdir "$M/vm/100/2026-01-02T00:00:01Z"
cp "$T/small.txt" "$M/vm/100/2026-01-02T00:00:01Z/small.txt" || fail "back-to-back copies into one group"
same "$IMG" "$M/vm/100/2026-01-02T00:00:00Z/disk.img" || fail "second copy differs"
[ "$(count_chunks)" = "$chunks1" ] || fail "second copy added chunks: $chunks1 -> $(count_chunks)"

# --- random-offset writes (in one open): images and streams ---

SNAP3=$M/vm/100/2026-01-03T00:00:00Z
mkdir "$SNAP3"
python3 - "$SNAP3" "$T" <<'EOF'
import os, random, sys
snap, tmp = sys.argv[1], sys.argv[2]
rnd = random.Random(7)
CS = 4 << 20
for name, size in (("random.img", 20 * CS + 12345), ("random.bin", 9 << 20)):
    ref = bytearray(size)
    fd = os.open(os.path.join(snap, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    # partial writes into 20 chunks in random order (more than the 8 kept in
    # memory), rewrites, a write that spans chunks, then the rest
    spans = []
    for _ in range(300):
        off = rnd.randrange(0, size - 1)
        ln = min(rnd.randrange(1, 300000), size - off)
        spans.append((off, ln))
    spans.append((size - 1000, 1000))
    for off, ln in spans:
        data = rnd.randbytes(ln)
        os.pwrite(fd, data, off)
        ref[off:off + ln] = data
    os.close(fd)
    with open(os.path.join(tmp, name), "wb") as f:
        f.write(ref)
EOF
cmp "$T/random.img" "$SNAP3/random.img" || fail "random writes into an image"
cmp "$T/random.bin" "$SNAP3/random.bin" || fail "random writes into a stream"

# --- a write-only open does not fill the page cache ---
# Writes of a write-only open go to the daemon directly (direct I/O); a
# read-write open's go through page cache pages of the mount's file, which is
# the control that shows the measure works. Zeros, so the datastore's own
# files add almost nothing to the page cache meanwhile.
python3 - "$SNAP3" <<'EOF' || fail "page cache while writing"
import os, sys
def cached_mib():
    for line in open("/proc/meminfo"):
        if line.startswith("Cached:"):
            return int(line.split()[1]) // 1024
zero = bytes(1 << 20)
grew = {}
for name, mode in (("rw.img", os.O_RDWR), ("wo.img", os.O_WRONLY)):
    fd = os.open(os.path.join(sys.argv[1], name), mode | os.O_CREAT | os.O_EXCL, 0o644)
    before = cached_mib()
    for _ in range(256):
        os.write(fd, zero)
    grew[name] = cached_mib() - before
    os.close(fd)
print("page cache grew by", grew, "(MiB) writing 256 MiB", file=sys.stderr)
assert grew["rw.img"] >= 128, "the control did not fill the page cache"
assert grew["wo.img"] < 64, "a write-only open filled the page cache"
EOF

# --- finished archives and other snapshots are immutable ---

expect_errno EROFS openw "$SNAP/disk.img"
expect_errno EROFS truncate "$SNAP/small.txt"
expect_errno EEXIST create "$SNAP/disk.img"
expect_errno EROFS unlink "$SNAP/disk.img"
expect_errno EROFS rename "$SNAP/disk.img" "$SNAP/other.img"
expect_errno EINVAL create "$SNAP/bad:name.txt"
expect_errno EINVAL create "$SNAP/.hidden"

# --- notes and protection round-trip, and show in dsfs ls ---

printf 'first line\nsecond line\n' >"$SNAP/notes"
[ "$(cat "$SNAP/notes")" = "$(printf 'first line\nsecond line')" ] || fail "notes read back"
echo "third line" >>"$SNAP/notes"
[ "$(tail -n 1 "$SNAP/notes")" = "third line" ] || fail "notes appended"
"$DSFS" ls "$S" vm/100/2026-01-01T00:00:00Z >"$T/ls.out"
grep -q "first line" "$T/ls.out" || fail "notes not in dsfs ls: $(cat "$T/ls.out")"
[ "$(manifest_py vm/100/2026-01-01T00:00:00Z 'm["unprotected"]["notes"] == "first line\nsecond line\nthird line\n"')" = True ] ||
	fail "notes in the manifest: $(manifest_py vm/100/2026-01-01T00:00:00Z 'repr(m["unprotected"].get("notes"))')"
touch "$SNAP/.protected"
[ -f "$D/.protected" ] || fail ".protected not made"
"$DSFS" ls "$S" vm/100 >"$T/ls.out"
grep "2026-01-01T00:00:00Z" "$T/ls.out" | grep -qi protected || fail "protection not in dsfs ls: $(cat "$T/ls.out")"
expect_errno EPERM rmdir "$SNAP"
rm "$SNAP/.protected"
[ ! -e "$D/.protected" ] || fail ".protected not removed"
"$DSFS" verify "$S" >"$T/verify.out" || { cat "$T/verify.out" >&2; fail "verify after notes"; }

# --- rmdir: in use (our reader, a PBS reader's lock), then forgotten ---

exec 3<"$SNAP/disk.img"
expect_errno EBUSY rmdir "$SNAP"
exec 3<&-
LOCK="$DSFS_LOCK_DIR/$(basename "$S")/vm-100-2026\\x2d01\\x2d01T00\\x3a00\\x3a00Z"
[ -f "$LOCK" ] || fail "no lock file at $LOCK: $(ls "$DSFS_LOCK_DIR"/*)"
hold_lock -s "$LOCK" 3
expect_errno EBUSY rmdir "$SNAP"
wait $holder
rmdir "$SNAP" || fail "rmdir of a snapshot"
[ ! -e "$D" ] || fail "snapshot directory still there"
expect_errno ENOTEMPTY rmdir "$M/vm/100"
rmdir "$M/ns/a/ns/b/host/web" "$M/ns/a/ns/b/host" "$M/ns/a/ns/b" || fail "rmdir of an empty group/type/namespace"
[ ! -e "$S/ns/a/ns/b" ] || fail "namespace b still there"

# --- -o ro and maintenance read-only refuse writes ---

unmount_dsfs "$M"
mount_dsfs "$S" "$M" -o ro
expect_errno EROFS mkdir "$M/vm/100/2026-01-04T00:00:00Z"
expect_errno EROFS create "$SNAP3/new.txt"
expect_errno EROFS rmdir "$SNAP3"
unmount_dsfs "$M"

NAME=dsfs-write-$$
cleanup_hooks+=("rm -f /run/proxmox-backup/active-operations/$NAME /run/proxmox-backup/active-operations/$NAME.lock")
printf 'datastore: %s\n\tpath %s\n' "$NAME" "$S" >"$T/datastore.cfg"
mount_dsfs "$T/datastore.cfg" "$M"
mkdir "$M/$NAME/vm/100/2026-01-05T00:00:00Z"
exec 4>"$M/$NAME/vm/100/2026-01-05T00:00:00Z/during.img"
head -c 1M /dev/urandom >&4
"$DSFS" maintenance --config "$T/datastore.cfg" "$NAME" read-only >/dev/null
sleep 2.5
expect_errno EROFS mkdir "$M/$NAME/vm/100/2026-01-06T00:00:00Z"
! head -c 5M /dev/urandom >&4 2>/dev/null || fail "a write after read-only was accepted"
exec 4>&-
sleep 0.5
[ ! -e "$S/vm/100/2026-01-05T00:00:00Z/during.img.fidx" ] || fail "an interrupted archive was committed"
! ls -a "$S/vm/100/2026-01-05T00:00:00Z" | grep -q tmp_ || fail "temp index left"
"$DSFS" maintenance --config "$T/datastore.cfg" "$NAME" clear >/dev/null
unmount_dsfs "$M"
# The interrupted backup left its snapshot unfinished, its lock free: an
# abandoned backup, which verify fails as PBS's does, until it is removed.
expect_status 3 "$DSFS" verify "$S" vm/100/2026-01-05T00:00:00Z
grep -q "2026-01-05T00:00:00Z/index.json.blob: missing: unfinished snapshot" "$T/err" ||
	{ cat "$T/err" >&2; fail "abandoned snapshot not reported by verify"; }
rmdir "$S/vm/100/2026-01-05T00:00:00Z" || fail "abandoned snapshot not empty"

# --- encrypted: -o keyfile= encrypts and signs ---

if [ -n "$FIX" ] && [ -f "$FIX/pbs-store-a.enc-key.json" ]; then
	KEY=$(fixture_key)
	mount_dsfs "$S" "$M" -o "keyfile=$KEY"
	mkdir "$M/vm/200" "$M/vm/200/2026-02-01T00:00:00Z"
	head -c 9M /dev/urandom >"$T/enc.img"
	cp "$T/enc.img" "$M/vm/200/2026-02-01T00:00:00Z/enc.img"
	echo secret >"$M/vm/200/2026-02-01T00:00:00Z/conf.txt"
	unmount_dsfs "$M"
	"$DSFS" ls "$S" vm/200/2026-02-01T00:00:00Z >"$T/ls.out"
	grep enc.img.fidx "$T/ls.out" | grep -q encrypt || fail "image not encrypted: $(cat "$T/ls.out")"
	# the manifest (a plain blob, as PBS writes it) carries the signature
	"$DSFS" cat "$S" vm/200/2026-02-01T00:00:00Z index.json >"$T/manifest.json"
	python3 - "$T/manifest.json" <<'EOF' || fail "manifest not signed: $(cat "$T/manifest.json")"
import json, sys
m = json.load(open(sys.argv[1]))
assert len(m.get("signature", "")) == 64, m
assert all(f["crypt-mode"] == "encrypt" for f in m["files"]), m["files"]
EOF
	mount_dsfs "$S" "$M" -o "keyfile=$KEY"
	cmp "$T/enc.img" "$M/vm/200/2026-02-01T00:00:00Z/enc.img" || fail "encrypted image read back"
	[ "$(cat "$M/vm/200/2026-02-01T00:00:00Z/conf.txt")" = secret ] || fail "encrypted blob read back"
	unmount_dsfs "$M"
	mount_dsfs "$S" "$M"
	! cat "$M/vm/200/2026-02-01T00:00:00Z/enc.img" >/dev/null 2>"$T/err" || fail "encrypted image served without key"
	grep -qi "key" "$T/err" || fail "no ENOKEY: $(cat "$T/err")"
	unmount_dsfs "$M"
	"$DSFS" verify --keyfile "$KEY" "$S" >"$T/verify.out" || { cat "$T/verify.out" >&2; fail "verify with key"; }
else
	echo "note: encryption part skipped (no fixture key)" >&2
fi
"$DSFS" verify "$S" >"$T/verify.out" || { cat "$T/verify.out" >&2; fail "final verify"; }
echo "write: ok"
