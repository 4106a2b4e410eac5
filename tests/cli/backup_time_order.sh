# As PBS's backup API, a backup's time must be after the group's newest
# finished snapshot ("backup timestamp is older than last backup"), unless
# that snapshot's last verification failed. An unfinished newer snapshot
# does not count.
. "$(dirname "$0")/../testlib.bash"
S=$T/store
bare_store "$S"
printf 'x\n' >"$T/x.conf"
backup() { "$DSFS" backup --time "$1" "$S" vm/1 x.conf="$T/x.conf"; }
backup 2026-01-02T00:00:00Z >/dev/null || fail "first backup"
expect_status 1 backup 2026-01-01T00:00:00Z
grep -q "not after the group's last backup vm/1/2026-01-02T00:00:00Z" "$T/err" ||
	fail "no reason given: $(cat "$T/err")"
[ ! -e "$S/vm/1/2026-01-01T00:00:00Z" ] || fail "the refused snapshot was left"
expect_status 1 backup 2026-01-02T00:00:00Z
backup 2026-01-03T00:00:00Z >/dev/null || fail "a later backup"
# A newer unfinished snapshot (an abandoned backup) is no last backup.
mkdir "$S/vm/1/2026-02-01T00:00:00Z"
backup 2026-01-04T00:00:00Z >/dev/null || fail "a backup before an unfinished snapshot"
# The newest finished one failed verification: any time goes.
python3 - "$S/vm/1/2026-01-04T00:00:00Z/index.json.blob" <<'PY'
import json, struct, subprocess, sys, zlib
p = sys.argv[1]
raw = open(p, "rb").read()
magic = raw[:8].hex()
data = raw[12:]
if magic == "31b958426fb6a37f":
    data = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
else:
    assert magic == "42ab3807be8370a1", magic
m = json.loads(data)
m.setdefault("unprotected", {})["verify_state"] = {"state": "failed", "upid": "UPID:x"}
data = json.dumps(m, separators=(",", ":")).encode()
open(p, "wb").write(bytes.fromhex("42ab3807be8370a1") + struct.pack("<I", zlib.crc32(data)) + data)
PY
backup 2026-01-01T00:00:00Z >/dev/null || fail "a backup after a failed verification"
echo "backup time order ok"
