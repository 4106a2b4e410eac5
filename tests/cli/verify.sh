# dsfs verify: clean on the fixture store (with and without the key), and on
# the corrupted copy it names the damaged chunk once per snapshot and exits 3.
. "$(dirname "$0")/../testlib.bash"
need_fixtures
key=$(fixture_key)
store=$FIX/pbs-store-a
expect_status 0 "$DSFS" verify "$store"
grep -q "verified 14 snapshots, 35 archives, 82 chunks" "$T/out" || { cat "$T/out"; fail "summary"; }
grep -q ": 0 errors" "$T/out" || fail "errors reported on a clean store"
expect_status 0 "$DSFS" verify --keyfile "$key" "$store"
grep -q ": 0 errors" "$T/out" || fail "errors with key"
expect_status 0 "$DSFS" verify "$store" ns/prod/vm/201
grep -q "verified 2 snapshots" "$T/out" || fail "group verify"

bad=d3d62b1f9bbfbacbf229b89beddd9cdb10d59536f4ead7d4bd13a0cd71c07269
expect_status 3 "$DSFS" verify "$FIX/pbs-store-a-corrupt"
n=$(grep -c "$bad" "$T/err" || true)
[ "$n" = 3 ] || { cat "$T/err"; fail "corrupt chunk named $n times, want 3"; }
for s in 2024-03-02T08:02:17Z 2024-03-03T08:02:17Z 2024-03-04T08:02:17Z; do
	grep -q "vm/101/$s/drive-scsi0.img.fidx: chunk 0 ($bad" "$T/err" || fail "snapshot $s not named"
done
grep -q ": 3 errors" "$T/out" || fail "summary of corrupt store"

# A missing chunk and a damaged index in a private copy.
fixture_copy pbs-store-a-corrupt "$T/s"
rm "$T/s/.chunks/${bad:0:4}/$bad"
expect_status 3 "$DSFS" verify "$T/s" vm/101/2024-03-02T08:02:17Z
grep -q "$bad.*missing" "$T/err" || fail "missing chunk not reported"
f=$T/s/vm/101/2024-03-03T08:02:17Z/drive-efidisk0.img.fidx
printf '\xff' | dd of="$f" bs=1 seek=4100 conv=notrunc status=none
expect_status 3 "$DSFS" verify "$T/s" vm/101/2024-03-03T08:02:17Z
grep -q "drive-efidisk0.img.fidx: index checksum does not match" "$T/err" || fail "index csum"
# A blob whose size, SHA-256 and CRC all match the manifest, but whose zstd
# payload does not decode: PBS's verify_blob decodes unencrypted blobs and
# fails it. The manifest is rewritten as a plain blob with hashlib and zlib.
fixture_copy pbs-store-a "$T/b"
snap=$T/b/vm/101/2024-03-02T08:02:17Z
python3 - "$snap" <<'PY'
import hashlib, json, subprocess, sys, zlib
snap = sys.argv[1]
def blob(magic, payload):
    return bytes.fromhex(magic) + zlib.crc32(payload).to_bytes(4, "little") + payload
bad = blob("31b958426fb6a37f", b"not a zstd frame")
open(snap + "/qemu-server.conf.blob", "wb").write(bad)
raw = open(snap + "/index.json.blob", "rb").read()
text = subprocess.run(["zstd", "-dc"], input=raw[12:], capture_output=True).stdout or raw[12:]
m = json.loads(text)
for f in m["files"]:
    if f["filename"] == "qemu-server.conf.blob":
        f["size"] = len(bad)
        f["csum"] = hashlib.sha256(bad).hexdigest()
out = json.dumps(m, indent=2, sort_keys=True).encode()
open(snap + "/index.json.blob", "wb").write(blob("42ab3807be8370a1", out))
PY
expect_status 3 "$DSFS" verify "$T/b" vm/101/2024-03-02T08:02:17Z
grep -q "qemu-server.conf.blob: .*decode" "$T/err" || { cat "$T/err"; fail "undecodable blob"; }
grep -q ": 1 errors" "$T/out" || { cat "$T/out"; fail "summary of undecodable blob"; }
# Snapshots encrypted with another key than --keyfile's: their chunks are not
# damaged. The manifest names its key; the chunks are checked as without a
# key (CRC), never reported undecodable.
"$DSFS" key create "$T/key2.json" --kdf none >/dev/null
head -c 5000000 /dev/urandom >"$T/disk.img"
expect_status 0 "$DSFS" backup --keyfile "$T/key2.json" --time 2025-01-01T00:00:00Z "$T/b" \
	host/other drive.img="$T/disk.img"
expect_status 3 "$DSFS" verify --keyfile "$key" "$T/b" host/other
grep -q "index.json.blob: signed with key" "$T/err" || { cat "$T/err"; fail "other key not named"; }
! grep -q ": chunk [0-9]" "$T/err" || { cat "$T/err"; fail "chunks of another key reported damaged"; }
grep -q "verified 1 snapshots, 1 archives, 2 chunks.*: 1 errors" "$T/out" || { cat "$T/out"; fail "summary with another key"; }
expect_status 0 "$DSFS" verify --keyfile "$T/key2.json" "$T/b" host/other
# The manifest's key-fingerprint (outside the signature) is read as PBS's
# serde reads it: colons dropped, either case. Rewritten so, it still names
# key2, and still not the fixture key.
python3 - "$T/b/host/other/2025-01-01T00:00:00Z" <<'PY3'
import re, subprocess, sys, zlib
snap = sys.argv[1]
raw = open(snap + "/index.json.blob", "rb").read()
text = subprocess.run(["zstd", "-dc"], input=raw[12:], capture_output=True).stdout or raw[12:]
fp = re.search(rb'"key-fingerprint": *"([0-9a-f:]+)"', text)
assert fp and b":" in fp.group(1), text
new = text.replace(fp.group(1), fp.group(1).replace(b":", b"").upper())
open(snap + "/index.json.blob", "wb").write(
    bytes.fromhex("42ab3807be8370a1") + zlib.crc32(new).to_bytes(4, "little") + new)
PY3
expect_status 0 "$DSFS" verify --keyfile "$T/key2.json" "$T/b" host/other
grep -q "verified 1 snapshots, 1 archives, 2 chunks.*: 0 errors" "$T/out" ||
	{ cat "$T/out" "$T/err"; fail "a colonless upper-case fingerprint of the key"; }
expect_status 3 "$DSFS" verify --keyfile "$key" "$T/b" host/other
grep -q "index.json.blob: signed with key" "$T/err" || { cat "$T/err"; fail "other key, colonless"; }
# A manifest that names no key (older clients wrote none; it is outside the
# signature): the signature tells the key. With another key it does not
# match, and the chunks are checked by CRC, not reported undecodable.
python3 - "$T/b/host/other/2025-01-01T00:00:00Z" <<'PY3'
import json, subprocess, sys, zlib
snap = sys.argv[1]
raw = open(snap + "/index.json.blob", "rb").read()
text = subprocess.run(["zstd", "-dc"], input=raw[12:], capture_output=True).stdout or raw[12:]
m = json.loads(text)
del m["unprotected"]["key-fingerprint"]
new = json.dumps(m, indent=2).encode()
open(snap + "/index.json.blob", "wb").write(
    bytes.fromhex("42ab3807be8370a1") + zlib.crc32(new).to_bytes(4, "little") + new)
PY3
expect_status 0 "$DSFS" verify --keyfile "$T/key2.json" "$T/b" host/other
expect_status 3 "$DSFS" verify --keyfile "$key" "$T/b" host/other
grep -q "index.json.blob: signature mismatch" "$T/err" || { cat "$T/err"; fail "no fingerprint, other key"; }
! grep -q ": chunk [0-9]" "$T/err" || { cat "$T/err"; fail "no fingerprint: chunks of another key reported damaged"; }
grep -q "verified 1 snapshots, 1 archives, 2 chunks.*: 1 errors" "$T/out" ||
	{ cat "$T/out"; fail "summary, no fingerprint, another key"; }
# Directories PBS never lists as namespaces (deeper than 7 levels, or a
# name past the 256-character limit) do not stop verify of the rest.
mkdir -p "$T/b/ns/a/ns/b/ns/c/ns/d/ns/e/ns/f/ns/g/ns/h/vm/1/2025-01-01T00:00:00Z"
expect_status 3 "$DSFS" verify "$T/b"
grep -q "verified 15 snapshots" "$T/out" || { cat "$T/out" "$T/err"; fail "too deep a namespace stopped verify"; }
long=$(printf 'x%.0s' $(seq 1 200))/ns/$(printf 'y%.0s' $(seq 1 100))
mkdir -p "$T/b/ns/$long"
expect_status 3 "$DSFS" verify "$T/b"
grep -q "verified 15 snapshots" "$T/out" || { cat "$T/out" "$T/err"; fail "too long a namespace stopped verify"; }
grep -q "cannot list" "$T/err" || { cat "$T/err"; fail "too long a namespace not reported"; }
# PBS's verify of a datastore or namespace leaves out the group
# host/benchmark (verify_all_backups: proxmox-backup-client benchmark's
# uploads); named as a group, it is verified like any other.
fixture_copy pbs-store-a "$T/c"
for g in host/benchmark ns/prod/host/benchmark; do
	mkdir -p "$T/c/$g"
	cp "$T/c/vm/101/owner" "$T/c/$g/owner"
	cp -r "$T/c/vm/101/2024-03-02T08:02:17Z" "$T/c/$g/"
	printf '\xff' | dd of="$T/c/$g/2024-03-02T08:02:17Z/qemu-server.conf.blob" bs=1 seek=20 \
		conv=notrunc status=none
done
expect_status 0 "$DSFS" verify "$T/c"
grep -q "verified 14 snapshots, 35 archives, 82 chunks.*: 0 errors" "$T/out" ||
	{ cat "$T/out" "$T/err"; fail "host/benchmark verified with the datastore"; }
grep -q "^dsfs: verify: host/benchmark: skipped" "$T/err" &&
	grep -q "^dsfs: verify: ns/prod/host/benchmark: skipped" "$T/err" ||
	{ cat "$T/err"; fail "host/benchmark skip not said"; }
expect_status 3 "$DSFS" verify "$T/c" host/benchmark
grep -q "host/benchmark/2024-03-02T08:02:17Z/qemu-server.conf.blob: " "$T/err" ||
	{ cat "$T/err"; fail "host/benchmark named as a group not verified"; }
# A manifest entry naming a file outside its snapshot ("../", an absolute
# path) is not an archive name PBS writes (its upload API takes SAFE_ID
# names only): reported, never opened, even when a file there matches.
fixture_copy pbs-store-a "$T/m"
cp "$T/m/vm/101/2024-03-02T08:02:17Z/qemu-server.conf.blob" "$T/outside.blob"
python3 - "$T/m/vm/101/2024-03-03T08:02:17Z" "$T/outside.blob" <<'PY2'
import hashlib, json, subprocess, sys, zlib
snap, outside = sys.argv[1:3]
raw = open(snap + "/index.json.blob", "rb").read()
text = subprocess.run(["zstd", "-dc"], input=raw[12:], capture_output=True).stdout or raw[12:]
m = json.loads(text)
data = open(outside, "rb").read()
for name in ("../2024-03-02T08:02:17Z/qemu-server.conf.blob", outside):
    m["files"].append({"filename": name, "size": len(data), "crypt-mode": "none",
                       "csum": hashlib.sha256(data).hexdigest()})
out = json.dumps(m, indent=2, sort_keys=True).encode()
open(snap + "/index.json.blob", "wb").write(
    bytes.fromhex("42ab3807be8370a1") + zlib.crc32(out).to_bytes(4, "little") + out)
PY2
expect_status 3 "$DSFS" verify "$T/m" vm/101/2024-03-03T08:02:17Z
grep -q "/\.\./2024-03-02T08:02:17Z/qemu-server.conf.blob: not an archive name" "$T/err" &&
	grep -q "$T/outside.blob: not an archive name" "$T/err" ||
	{ cat "$T/err"; fail "manifest names outside the snapshot not reported"; }
grep -q "verified 1 snapshots, 5 archives, .*: 2 errors" "$T/out" ||
	{ cat "$T/out"; fail "summary, names outside the snapshot"; }
# An index whose magic is not the one its name says (a dynamic index
# stored as NAME.img.fidx, the manifest's size and checksum matching it):
# PBS opens a .fidx with its fixed reader, which refuses any other magic,
# so its verify, restore and mount all fail it.
fixture_copy pbs-store-a "$T/x"
python3 - "$T/x/host/tundra-87/2024-03-02T09:02:17Z" <<'PY4'
import json, os, subprocess, sys, zlib
snap = sys.argv[1]
raw = open(snap + "/index.json.blob", "rb").read()
text = subprocess.run(["zstd", "-dc"], input=raw[12:], capture_output=True).stdout or raw[12:]
m = json.loads(text)
for f in m["files"]:
    if f["filename"] == "root.pxar.didx":
        f["filename"] = "root.img.fidx"
os.rename(snap + "/root.pxar.didx", snap + "/root.img.fidx")
out = json.dumps(m, indent=2, sort_keys=True).encode()
open(snap + "/index.json.blob", "wb").write(
    bytes.fromhex("42ab3807be8370a1") + zlib.crc32(out).to_bytes(4, "little") + out)
PY4
expect_status 3 "$DSFS" verify "$T/x" host/tundra-87/2024-03-02T09:02:17Z
grep -q "root.img.fidx: a dynamic index, not the fixed index its name says" "$T/err" ||
	{ cat "$T/err"; fail "a dynamic index named .fidx not reported"; }
grep -q "verified 1 snapshots, 2 archives, .*: 1 errors" "$T/out" ||
	{ cat "$T/out"; fail "summary, index kind"; }
echo "verify ok"
