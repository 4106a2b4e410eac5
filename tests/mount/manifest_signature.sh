# With -o keyfile=, a snapshot whose manifest is signed (with the mount's
# key) is read only if the signature matches, as PBS's client checks it
# before it restores or mounts anything of the snapshot. The signature is
# what binds the encrypted indexes to the key: without the check, whoever
# can write the datastore could put another snapshot's index (encrypted
# with the same key) under this snapshot's name, fix up the manifest's
# csum, and the mount served the other snapshot's data as this one's.
# Now every listed archive of such a snapshot gives EIO, with a log line;
# the untouched snapshot beside it reads as before.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse
signed_fixture
"$DSFS" cat --keyfile "$key" "$S" "$A" drive-scsi0.img >"$T/a.img" || fail "cat A"
"$DSFS" cat --keyfile "$key" "$S" "$B" drive-scsi0.img >"$T/b.img" || fail "cat B"
cmp -s "$T/a.img" "$T/b.img" && fail "the two images are the same: no test"

# tamper SNAP DONOR FILE: DONOR's FILE (an index) replaces SNAP's, and
# SNAP's manifest gets DONOR's csum and size for it; its signature stays.
# The manifest is written as an uncompressed blob (PBS reads either).
tamper() {
	cp "$S/$2/$3" "$S/$1/$3"
	"$DSFS" cat "$S" "$1" index.json >"$T/m.json" || fail "cat $1 manifest"
	"$DSFS" cat "$S" "$2" index.json >"$T/d.json" || fail "cat $2 manifest"
	python3 - "$T/m.json" "$T/d.json" "$3" "$S/$1/index.json.blob" <<'PY' || fail "tamper $1"
import json, struct, sys, zlib
m = json.load(open(sys.argv[1]))
d = json.load(open(sys.argv[2]))
name = sys.argv[3]
src = [f for f in d["files"] if f["filename"] == name][0]
for f in m["files"]:
    if f["filename"] == name:
        assert f["csum"] != src["csum"]
        f["csum"], f["size"] = src["csum"], src["size"]
text = json.dumps(m, indent=2, sort_keys=True, ensure_ascii=False).encode()
magic = bytes.fromhex("42ab3807be8370a1")
open(sys.argv[4], "wb").write(magic + struct.pack("<I", zlib.crc32(text)) + text)
PY
}
tamper "$A" "$B" drive-scsi0.img.fidx
tamper "$P" "$Q" root.pxar.didx

# Independently of dsfs: by PBS's rule (HMAC-SHA256 with the id key over
# the canonical JSON of all but "unprotected" and "signature") the
# tampered manifests' signatures are wrong and the untouched ones right.
for snap in "$A" "$P" "$B" "$Q"; do
	"$DSFS" cat "$S" "$snap" index.json >"$T/check.json" || fail "cat $snap manifest"
	python3 -m pbs_manifest "$key" "$T/check.json"
done >"$T/sigs"
[ "$(tr '\n' ' ' <"$T/sigs")" = "False False True True " ] || fail "signature check by PBS's rule: $(cat "$T/sigs")"

# dsfs cat refuses them (it checks the signature).
"$DSFS" cat --keyfile "$key" "$S" "$A" drive-scsi0.img >/dev/null 2>&1 && fail "cat of the tampered A"

mount_dsfs "$S" "$M" -o "keyfile=$key"
python3 - "$M" "$A" "$P" "$T/b.img" <<'PY' || fail "reads of the tampered snapshots"
import errno, os, sys
m, a, p, bimg = sys.argv[1:5]
def eio(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        assert e.errno == errno.EIO, (path, e)
        return
    same = data == open(bimg, "rb").read()
    sys.exit(f"{path}: read {len(data)} bytes" + (" (the other snapshot's image)" if same else ""))
eio(f"{m}/{a}/drive-scsi0.img")
eio(f"{m}/{a}/qemu-server.conf")
try:
    os.listdir(f"{m}/{p}/root.pxar")
    sys.exit(f"{p}/root.pxar: listed")
except OSError as e:
    assert e.errno == errno.EIO, e
PY
grep -q "signature" "$T/mount.log" || fail "no log line about the signature: $(cat "$T/mount.log")"
# The snapshots beside them read as before.
cmp -s "$M/$B/drive-scsi0.img" "$T/b.img" || fail "B's image"
ls "$M/$Q/root.pxar" >/dev/null || fail "Q's archive"
unmount_dsfs "$M"
echo "manifest_signature: ok"
