# The decoded manifest (index.json) of a snapshot is not immutable as its
# archives are: PBS rewrites index.json.blob when notes change or a verify
# records its state, and so does the mount when notes are written through
# it. A reader of index.json must see the manifest as it is now, not the
# page cache and size of an earlier open.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
printf 'a = 1\n' >"$T/a.conf"
"$DSFS" init "$T/store" >/dev/null
"$DSFS" backup "$T/store" host/1 --time 2025-01-01T00:00:00Z a.conf="$T/a.conf" >/dev/null ||
	fail "backup"
M=$T/m
SNAP=$M/host/1/2025-01-01T00:00:00Z
mount_dsfs "$T/store" "$M"

cat "$SNAP/index.json" >"$T/before.json" || fail "read index.json"
grep -q "written through the mount" "$T/before.json" && fail "notes already there"
printf 'written through the mount\n' >"$SNAP/notes" || fail "write notes"
[ "$(cat "$SNAP/notes")" = "written through the mount" ] || fail "notes read back"
"$DSFS" cat "$T/store" host/1/2025-01-01T00:00:00Z index.json >"$T/disk.json"
grep -q "written through the mount" "$T/disk.json" || fail "notes not in the manifest on disk"
# Through the mount: the same bytes as on disk, whole (size included).
cat "$SNAP/index.json" >"$T/after.json" || fail "read index.json again"
cmp -s "$T/disk.json" "$T/after.json" ||
	fail "index.json through the mount is stale: $(wc -c <"$T/after.json") bytes, on disk $(wc -c <"$T/disk.json")"
[ "$(stat -c %s "$SNAP/index.json")" = "$(wc -c <"$T/disk.json")" ] ||
	fail "index.json size $(stat -c %s "$SNAP/index.json"), on disk $(wc -c <"$T/disk.json")"

# Rewritten outside the mount (as PBS's verify and notes do): seen within
# a few seconds.
python3 - "$T/store/host/1/2025-01-01T00:00:00Z/index.json.blob" "$T/disk.json" <<'PY'
import json, os, struct, sys, zlib
path = sys.argv[1]
m = json.load(open(sys.argv[2]))
m.setdefault("unprotected", {})["verify_state"] = {"state": "ok", "upid": "UPID:test"}
body = json.dumps(m, indent=2, sort_keys=True).encode()
tmp = path + ".tmp_test"
with open(tmp, "wb") as f: # an uncompressed blob
    f.write(bytes.fromhex("42ab3807be8370a1") + struct.pack("<I", zlib.crc32(body)) + body)
os.rename(tmp, path)
PY
ok=
for i in $(seq 30); do
	if grep -q "UPID:test" "$SNAP/index.json"; then ok=1; break; fi
	sleep 0.2
done
[ -n "$ok" ] || fail "index.json rewritten on disk still read as before after 6 s"
"$DSFS" cat "$T/store" host/1/2025-01-01T00:00:00Z index.json >"$T/disk.json"
cmp -s "$T/disk.json" "$SNAP/index.json" || fail "index.json differs from the manifest on disk"
unmount_dsfs "$M"
echo PASS
