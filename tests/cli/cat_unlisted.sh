# dsfs cat --keyfile of an archive that a snapshot's manifest, signed with
# that key (and verified), does not list: refused (exit 1, a message naming
# it, no bytes), as PBS's client restores only the archives such a manifest
# lists; otherwise whoever writes the datastore could plant another
# snapshot's index or blob (same key) under a new name. client.log.blob
# (never listed) and index.json are still served; without a key (nothing
# authenticates the list) or with another key's manifest, as before.
. "$(dirname "$0")/../testlib.bash"
need_fixtures
key=$(fixture_key)
S=$T/store
fixture_copy pbs-store-a "$S"
A=ns/prod/vm/201/2024-03-02T11:02:17Z
B=ns/prod/vm/201/2024-03-03T11:02:17Z
cp "$S/$B/drive-scsi0.img.fidx" "$S/$A/evil.img.fidx"
cp "$S/$B/qemu-server.conf.blob" "$S/$A/evil.conf.blob"
# Independently of dsfs: A's manifest is signed and lists neither.
"$DSFS" cat "$S" "$A" index.json >"$T/m.json" || fail "cat A's manifest"
python3 - "$T/m.json" <<'PY' || fail "A's manifest: $(cat "$T/m.json")"
import json, sys
m = json.load(open(sys.argv[1]))
assert len(m["signature"]) == 64 and m["unprotected"]["key-fingerprint"]
names = {f["filename"] for f in m["files"]}
assert "drive-scsi0.img.fidx" in names and not names & {"evil.img.fidx", "evil.conf.blob"}, names
PY
# What B's archives hold: what a planted copy would give.
"$DSFS" cat --keyfile "$key" "$S" "$B" drive-scsi0.img >"$T/b.img" || fail "cat B's image"
"$DSFS" cat --keyfile "$key" "$S" "$B" qemu-server.conf >"$T/b.conf" || fail "cat B's conf"
[ -s "$T/b.img" ] && [ -s "$T/b.conf" ] || fail "B's archives are empty: no test"

for f in evil.img evil.img.fidx evil.conf evil.conf.blob; do
	expect_status 1 "$DSFS" cat --keyfile "$key" "$S" "$A" "$f"
	[ -s "$T/out" ] && fail "$f: $(stat -c %s "$T/out") bytes written"
	grep -q "$A/evil\..*: not in the snapshot's signed manifest" "$T/err" ||
		fail "$f: message '$(cat "$T/err")'"
done
expect_status 0 "$DSFS" cat --keyfile "$key" "$S" "$A" client.log
[ -s "$T/out" ] || fail "client.log is empty"
expect_status 0 "$DSFS" cat --keyfile "$key" "$S" "$A" index.json
expect_status 0 "$DSFS" cat --keyfile "$key" "$S" "$A" drive-scsi0.img

# Without a key: the image's chunks cannot be read (ENOKEY), as before.
expect_status 1 "$DSFS" cat "$S" "$A" evil.img
grep -q "encrypted: give --keyfile" "$T/err" || fail "without a key: '$(cat "$T/err")'"
# A manifest that is not signed authenticates no list: served as before.
python3 - "$T/m.json" "$S/$A/index.json.blob" <<'PY' || fail "unsigned manifest"
import json, struct, sys, zlib
m = json.load(open(sys.argv[1]))
m["signature"] = None
m["unprotected"].pop("key-fingerprint")
text = json.dumps(m, indent=2, sort_keys=True).encode()
open(sys.argv[2], "wb").write(bytes.fromhex("42ab3807be8370a1") + struct.pack("<I", zlib.crc32(text)) + text)
PY
expect_status 0 "$DSFS" cat --keyfile "$key" "$S" "$A" evil.img
cmp -s "$T/out" "$T/b.img" || fail "unsigned: evil.img is not B's image"
expect_status 0 "$DSFS" cat --keyfile "$key" "$S" "$A" evil.conf
cmp -s "$T/out" "$T/b.conf" || fail "unsigned: evil.conf is not B's config"
echo "cat of unlisted archives ok"
