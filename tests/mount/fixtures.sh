# Every fixture archive read through a real mount (cat on the mounted file)
# has the size and SHA-256 of pbs-store-a.expect.json; the tree has the
# groups, snapshots, owners, notes, `latest` and .protected the fixture has;
# encrypted archives need -o keyfile (ENOKEY without); images report their
# zero chunks as holes; a damaged chunk gives EIO for its range only.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse
key=$(fixture_key)
M=$T/m
mount_dsfs "$FIX/pbs-store-a" "$M" -o "keyfile=$key"
python3 - "$FIX" "$M" <<'PY'
import hashlib, json, os, sys
fix, m = sys.argv[1:3]
exp = json.load(open(f"{fix}/pbs-store-a.expect.json"))
def sha(p):
    h = hashlib.sha256(); n = 0
    with open(p, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b: break
            h.update(b); n += len(b)
    return n, h.hexdigest()
checked = 0
for g in exp["groups"]:
    gp = (("ns/" + "/ns/".join(g["ns"].split("/")) + "/") if g["ns"] else "") + f"{g['type']}/{g['id']}"
    assert open(f"{m}/{gp}/owner").read().strip() == g["owner"], gp
    listing = sorted(os.listdir(f"{m}/{gp}"))
    assert listing == sorted(g["snapshots"] + ["latest", "owner"]), (gp, listing)
    assert os.readlink(f"{m}/{gp}/latest") == g["snapshots"][-1]
for s in exp["snapshots"]:
    d = f"{m}/{s['path']}"
    names = set(os.listdir(d))
    def shown(n):
        # pxar archives (v1, or the split pair) are the directory X.pxar
        for ext in (".pxar.didx", ".mpxar.didx", ".ppxar.didx"):
            if n.endswith(ext):
                return n[:-len(ext)] + ".pxar"
        return n.rsplit(".", 1)[0]
    want = {shown(a["name"]) for a in s["archives"]} | {"index.json"}
    if s.get("client_log"): want.add("client.log")
    if s["manifest"]["unprotected"].get("notes"): want.add("notes")
    if s["protected"]: want.add(".protected")
    assert names == want, (s["path"], names, want)
    if "notes" in want:
        assert open(f"{d}/notes").read() == s["manifest"]["unprotected"]["notes"]
    st = os.stat(d)
    assert st.st_mtime == s["epoch"], (d, st.st_mtime)
    for a in s["archives"] + ([dict(name="client.log.blob", **s["client_log"])] if s.get("client_log") else []):
        p = f"{d}/{shown(a['name'])}"
        if p.endswith(".pxar"):
            assert os.path.isdir(p), p  # its contents: tests/mount/pxar.sh
            continue
        assert os.stat(p).st_size == a["size"], (p, os.stat(p).st_size, a["size"])
        n, h = sha(p)
        assert (n, h) == (a["size"], a["sha256"]), (p, n, h)
        checked += 1
assert checked == 37, checked  # 47 files less the 10 pxar index files
# Holes: chunks 1 and 3 of drive-scsi0.img are the zero chunk.
p = f"{m}/vm/101/2024-03-02T08:02:17Z/drive-scsi0.img"
fd = os.open(p, os.O_RDONLY)
mib4 = 4 << 20
assert os.lseek(fd, 0, os.SEEK_HOLE) == mib4
assert os.lseek(fd, mib4, os.SEEK_DATA) == 2 * mib4
assert os.lseek(fd, 2 * mib4 + 5, os.SEEK_HOLE) == 3 * mib4
assert os.lseek(fd, 3 * mib4, os.SEEK_DATA) == 4 * mib4
size = os.fstat(fd).st_size
assert os.lseek(fd, 4 * mib4, os.SEEK_HOLE) == size
os.close(fd)
assert os.stat(p).st_blocks == (size - 2 * mib4 + 511) // 512, os.stat(p).st_blocks
print(f"{checked} archives read through the mount match the expect file")
PY
unmount_dsfs "$M"

# Without the key: listed, but open gives ENOKEY; plain archives still read.
mount_dsfs "$FIX/pbs-store-a" "$M"
enc=$M/ns/prod/vm/201/2024-03-02T11:02:17Z/drive-scsi0.img
[ -f "$enc" ] || fail "encrypted image not listed"
out=$(cat "$enc" 2>&1 >/dev/null || true)
case "$out" in *"Required key not available"*) ;; *) fail "want ENOKEY, got: $out" ;; esac
grep -q "encrypted, mount with -o keyfile" "$T/mount.log" || fail "ENOKEY not logged"
cmp -s "$M/vm/101/2024-03-03T08:02:17Z/.protected" /dev/null || fail ".protected not empty"
unmount_dsfs "$M"

# The corrupted store: the first 4 MiB of each image fail with EIO, the rest
# reads back correctly (compared with the clean store through dsfs cat).
mount_dsfs "$FIX/pbs-store-a-corrupt" "$M"
for s in 2024-03-02T08:02:17Z 2024-03-03T08:02:17Z 2024-03-04T08:02:17Z; do
	img=$M/vm/101/$s/drive-scsi0.img
	if dd if="$img" of=/dev/null bs=1M count=4 status=none 2>"$T/dd.err"; then
		fail "damaged range of $s read without error"
	fi
	grep -q "Input/output error" "$T/dd.err" || fail "want EIO: $(cat "$T/dd.err")"
	dd if="$img" bs=1M skip=4 status=none >"$T/rest"
	"$DSFS" cat "$FIX/pbs-store-a" "vm/101/$s" drive-scsi0.img | tail -c +$((4 * 1048576 + 1)) | \
		cmp - "$T/rest" || fail "undamaged range of $s differs"
done
grep -q "d3d62b1f9bbfbacbf229b89beddd9cdb10d59536f4ead7d4bd13a0cd71c07269" "$T/mount.log" || \
	fail "damaged chunk digest not logged"
unmount_dsfs "$M"
# An image that is all zeros is all hole: no blocks, no data.
truncate -s 12M "$T/zero.img"
"$DSFS" init "$T/zs" >/dev/null
"$DSFS" backup "$T/zs" vm/9 --time 2025-01-01T00:00:00Z drive-scsi0.img="$T/zero.img" >/dev/null
mount_dsfs "$T/zs" "$M"
python3 - "$M/vm/9/2025-01-01T00:00:00Z/drive-scsi0.img" <<'PY'
import errno, os, sys
st = os.stat(sys.argv[1])
assert st.st_size == 12 << 20 and st.st_blocks == 0, (st.st_size, st.st_blocks)
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    os.lseek(fd, 0, os.SEEK_DATA)
    raise SystemExit("SEEK_DATA found data in an all-zero image")
except OSError as e:
    assert e.errno == errno.ENXIO, e
assert os.lseek(fd, 0, os.SEEK_HOLE) == 0
assert os.read(fd, 1 << 20) == bytes(1 << 20)
PY
unmount_dsfs "$M"
# The daemon stopped (SIGTERM) while files are open: the kernel never sends
# their RELEASE. Their state is freed at exit (LeakSanitizer checks it under
# ASan), with a log line, and the daemon exits 0.
mount_dsfs "$FIX/pbs-store-a" "$M"
img=$M/vm/101/2024-03-02T08:02:17Z/drive-scsi0.img
exec 7<"$img" 8<"$img"
head -c 4096 <&7 >/dev/null || fail "read through the open file"
kill -TERM "$MOUNT_PID"
rc=0
wait "$MOUNT_PID" || rc=$?
exec 7<&- 8<&-
[ "$rc" = 0 ] || { cat "$T/mount.log" >&2; fail "mount.dsfs exited $rc on SIGTERM with open files"; }
grep -q "2 file(s) still open at unmount: released" "$T/mount.log" ||
	{ cat "$T/mount.log" >&2; fail "open files at exit not released (or not logged)"; }
mountpoint -q "$M" && fusermount3 -u -z "$M"
echo "fixtures through the mount ok"
