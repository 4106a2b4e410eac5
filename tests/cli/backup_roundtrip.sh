# dsfs init + backup: what it writes reads back exactly, passes verify,
# follows the spec's writer checklist byte by byte (checked here with Python's
# hashlib and the zstd tool, not with dsfs), and deduplicates on a re-run.
. "$(dirname "$0")/../testlib.bash"
S=$T/store
"$DSFS" init "$S"
[ "$(find "$S/.chunks" -mindepth 1 -maxdepth 1 -type d | wc -l)" = 65536 ] || fail "prefix dirs"
[ "$(stat -c %a "$S")" = 755 ] && [ "$(stat -c %a "$S/.chunks")" = 750 ] && \
	[ "$(stat -c %a "$S/.lock")" = 644 ] || fail "modes of a new datastore"
expect_status 1 "$DSFS" init "$S"   # not empty

# Data: an image of 2.5 chunks with an all-zero chunk, a stream, a config.
python3 - "$T" <<'PY'
import os, random, sys
t = sys.argv[1]
r = random.Random(7)
mib = 1 << 20
img = bytes(r.getrandbits(8) for _ in range(mib)) * 4 + bytes(4 * mib) + b"tail" * (mib // 2)
open(f"{t}/disk.img", "wb").write(img)
stream = b"".join(b"line %d of a log-like stream %x\n" % (i, r.getrandbits(32)) for i in range(300000))
open(f"{t}/stream.bin", "wb").write(stream)
open(f"{t}/vm.conf", "w").write("memory: 2048\ncores: 2\n")
PY
expect_status 0 "$DSFS" backup "$S" vm/100 --time 2025-01-01T00:00:00Z \
	drive-scsi0.img="$T/disk.img" qemu-server.conf="$T/vm.conf" data.didx="$T/stream.bin"
snap=vm/100/2025-01-01T00:00:00Z
[ "$(cat "$S/vm/100/owner")" = "root@pam" ] || fail "owner"
for a in drive-scsi0.img qemu-server.conf data.didx; do
	"$DSFS" cat "$S" "$snap" "$a" >"$T/back"
done
"$DSFS" cat "$S" $snap drive-scsi0.img | cmp - "$T/disk.img" || fail "image differs"
"$DSFS" cat "$S" $snap qemu-server.conf | cmp - "$T/vm.conf" || fail "blob differs"
"$DSFS" cat "$S" $snap data.didx | cmp - "$T/stream.bin" || fail "stream differs"
expect_status 0 "$DSFS" verify "$S"
ls "$S/$snap" | grep -q tmp_ && fail "temp files left"

python3 - "$S/$snap" "$T" <<'PY'
import hashlib, json, os, struct, subprocess, sys
snap, t = sys.argv[1:3]
store = os.path.dirname(os.path.dirname(os.path.dirname(snap)))
def blob_payload(raw):
    magic = raw[:8].hex()
    assert magic in ("42ab3807be8370a1", "31b958426fb6a37f"), magic
    import zlib
    assert struct.unpack("<I", raw[8:12])[0] == zlib.crc32(raw[12:]), "blob crc"
    if magic == "31b958426fb6a37f":
        return subprocess.run(["zstd", "-dc"], input=raw[12:], capture_output=True, check=True).stdout
    return raw[12:]
def chunk(d):
    return blob_payload(open(f"{store}/.chunks/{d[:4]}/{d}", "rb").read())
# fixed index: header layout of spec §3.1
f = open(f"{snap}/drive-scsi0.img.fidx", "rb").read()
size = os.path.getsize(f"{t}/disk.img")
assert f[:8].hex() == "2f7f41ed91fd0fcd"
ctime, = struct.unpack("<q", f[24:32]); assert abs(ctime - __import__("time").time()) < 600
fsize, cs = struct.unpack("<QQ", f[64:80])
assert fsize == size and cs == 4 << 20, (fsize, cs)
assert f[80:4096] == bytes(4016), "reserved area"
n = -(-size // cs); assert len(f) == 4096 + 32 * n
digests = [f[4096 + 32 * i: 4096 + 32 * (i + 1)].hex() for i in range(n)]
assert hashlib.sha256(f[4096:]).digest() == f[32:64], "index csum"
img = open(f"{t}/disk.img", "rb").read()
for i, d in enumerate(digests):
    data = chunk(d)
    assert data == img[i * cs:(i + 1) * cs] and hashlib.sha256(data).hexdigest() == d
assert digests[1] == "bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8", "zero chunk"
# dynamic index: §3.2
f = open(f"{snap}/data.didx", "rb").read()
assert f[:8].hex() == "1c914ea519bab3cd" and f[64:4096] == bytes(4032) and (len(f) - 4096) % 40 == 0
assert hashlib.sha256(f[4096:]).digest() == f[32:64]
stream = open(f"{t}/stream.bin", "rb").read(); prev = 0
for i in range((len(f) - 4096) // 40):
    end, = struct.unpack("<Q", f[4096 + 40 * i: 4104 + 40 * i]); d = f[4104 + 40 * i: 4136 + 40 * i].hex()
    assert chunk(d) == stream[prev:end]; prev = end
assert prev == len(stream)
# manifest: pretty JSON, sorted keys, sizes and csums per §4.2
raw = open(f"{snap}/index.json.blob", "rb").read()
text = blob_payload(raw).decode()
m = json.loads(text)
assert text == json.dumps(m, indent=2, sort_keys=True, ensure_ascii=False), "not PBS's pretty JSON"
assert not text.endswith("\n")
assert m["backup-type"] == "vm" and m["backup-id"] == "100" and m["backup-time"] == 1735689600
assert m["signature"] is None
files = {x["filename"]: x for x in m["files"]}
assert set(files) == {"drive-scsi0.img.fidx", "qemu-server.conf.blob", "data.didx"}, files
assert files["drive-scsi0.img.fidx"]["size"] == size
assert files["drive-scsi0.img.fidx"]["csum"] == hashlib.sha256(b"".join(bytes.fromhex(d) for d in digests)).hexdigest()
b = open(f"{snap}/qemu-server.conf.blob", "rb").read()
assert files["qemu-server.conf.blob"] == {"crypt-mode": "none", "csum": hashlib.sha256(b).hexdigest(), "filename": "qemu-server.conf.blob", "size": len(b)}
for x in m["files"]:
    assert list(x) == sorted(x)
print("writer checklist ok")
PY

# Same data again: no new chunk.
before=$(find "$S/.chunks" -type f | wc -l)
expect_status 0 "$DSFS" backup "$S" vm/100 --time 2025-01-02T00:00:00Z \
	drive-scsi0.img="$T/disk.img" qemu-server.conf="$T/vm.conf" data.didx="$T/stream.bin"
grep -q ", 0 new," "$T/out" || { cat "$T/out"; fail "re-run wrote new chunks"; }
[ "$(find "$S/.chunks" -type f | wc -l)" = "$before" ] || fail "chunk count changed"
expect_status 1 "$DSFS" backup "$S" vm/100 --time 2025-01-02T00:00:00Z x.conf="$T/vm.conf"
grep -q "exists" "$T/err" || fail "existing snapshot not refused"

# Encrypted: a fresh key, encrypted archives, signed manifest.
DSFS_KEY_PASSWORD=correct-horse "$DSFS" key create "$T/k.json" --kdf pbkdf2
[ "$(stat -c %a "$T/k.json")" = 600 ] || fail "key file mode"
DSFS_KEY_PASSWORD=correct-horse expect_status 0 "$DSFS" backup --keyfile "$T/k.json" "$S" --ns a/b host/h1 \
	--time 2025-01-03T00:00:00Z root.pxar="$T/stream.bin" x.conf="$T/vm.conf"
es=ns/a/ns/b/host/h1/2025-01-03T00:00:00Z
DSFS_KEY_PASSWORD=correct-horse "$DSFS" cat --keyfile "$T/k.json" "$S" $es root.pxar | cmp - "$T/stream.bin" \
	|| fail "encrypted stream differs"
expect_status 1 "$DSFS" cat "$S" $es root.pxar
DSFS_KEY_PASSWORD=wrong-horse expect_status 1 "$DSFS" cat --keyfile "$T/k.json" "$S" $es x.conf
DSFS_KEY_PASSWORD=correct-horse expect_status 0 "$DSFS" verify --keyfile "$T/k.json" "$S"
expect_status 0 "$DSFS" verify "$S"   # CRC-level without the key
python3 - "$S/$es" <<'PY'
import json, subprocess, sys
raw = open(f"{sys.argv[1]}/index.json.blob", "rb").read()
m = json.loads(subprocess.run(["zstd", "-dc"], input=raw[12:], capture_output=True).stdout or raw[12:])
assert len(m["signature"]) == 64 and all(f["crypt-mode"] == "encrypt" for f in m["files"]), m
assert len(m["unprotected"]["key-fingerprint"].split(":")) == 32
c = open(f"{sys.argv[1]}/x.conf.blob", "rb").read()
assert c[:8].hex() in ("7b6785be222d4cf0", "e6591bbf0bbfd80b"), "blob not encrypted"
PY
echo "backup round trip ok"
