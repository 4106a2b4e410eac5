# With -o keyfile=, a snapshot whose manifest is signed with the mount's key
# (and verifies) holds the archives that manifest lists, and no others, as
# PBS's client restores only those. Whoever can write the datastore could
# otherwise put another snapshot's index (encrypted with the same key, its
# chunks present) or blob into the snapshot under a new name, and the mount
# served it as part of the authenticated snapshot. Such files are not listed
# and their lookup gives ENOENT, with a log line naming them;
# client.log.blob (uploaded after the manifest, never listed) and the
# manifest itself are still served. A mount without a key, or with another
# key (nothing to authenticate the list with), shows them as before.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse
signed_fixture

# Planted: B's encrypted image index and config blob into A, Q's pxar
# archive into P (whole, and as the halves of a split one), each under a
# name A's or P's manifest does not list.
cp "$S/$B/drive-scsi0.img.fidx" "$S/$A/evil.img.fidx"
cp "$S/$B/qemu-server.conf.blob" "$S/$A/evil.conf.blob"
cp "$S/$Q/root.pxar.didx" "$S/$P/evil.pxar.didx"
# A split pair (X.mpxar.didx + X.ppxar.didx is the directory X.pxar).
cp "$S/$Q/root.pxar.didx" "$S/$P/split.mpxar.didx"
cp "$S/$Q/catalog.pcat1.didx" "$S/$P/split.ppxar.didx"
"$DSFS" cat --keyfile "$key" "$S" "$B" drive-scsi0.img >"$T/b.img" || fail "cat B's image"
"$DSFS" cat --keyfile "$key" "$S" "$A" drive-scsi0.img >"$T/a.img" || fail "cat A's image"
"$DSFS" cat --keyfile "$key" "$S" "$A" client.log >"$T/a.log" || fail "cat A's client.log"
[ -s "$T/a.log" ] || fail "A's client.log is empty: no test"

# Independently of dsfs: A's and P's manifests are signed with the key
# (HMAC-SHA256 with its id key over the canonical JSON of all but
# "unprotected" and "signature", spec §4.3), list what the snapshot held
# and not the planted names.
for snap in "$A" "$P"; do
	"$DSFS" cat "$S" "$snap" index.json >"$T/check.json" || fail "cat $snap manifest"
	python3 - "$key" "$T/check.json" <<'PY' || fail "$snap: manifest check"
import json, sys
from pbs_manifest import signature_ok
m = json.load(open(sys.argv[2]))
assert signature_ok(sys.argv[1], m), "signature"
names = {f["filename"] for f in m["files"]}
assert not names & {"evil.img.fidx", "evil.conf.blob", "evil.pxar.didx", "split.mpxar.didx",
                    "split.ppxar.didx", "client.log.blob"}, names
PY
done

# check MOUNT HIDDEN: with HIDDEN=1 the planted archives are not there
# (ENOENT), else they are there as before; the rest reads either way.
check() {
	python3 - "$1" "$A" "$P" "$2" "$T/a.img" "$T/a.log" <<'PY'
import errno, os, sys
m, a, p, hidden, aimg, alog = sys.argv[1:7]
hidden = hidden == "1"
def absent(path):
    try:
        os.stat(path)
    except OSError as e:
        assert e.errno == errno.ENOENT, (path, e)
        return True
    return False
la, lp = set(os.listdir(f"{m}/{a}")), set(os.listdir(f"{m}/{p}"))
for d, ls, name in ((a, la, "evil.img"), (a, la, "evil.conf"), (p, lp, "evil.pxar"),
                     (p, lp, "split.pxar")):
    path = f"{m}/{d}/{name}"
    if hidden:
        assert name not in ls, (d, sorted(ls))
        assert absent(path), f"{path}: found"
        try:
            open(path, "rb").close()
            sys.exit(f"{path}: opened")
        except OSError as e:
            assert e.errno == errno.ENOENT, (path, e)
    else:
        assert name in ls, (d, sorted(ls))
        assert not absent(path), f"{path}: not found"
assert {"drive-scsi0.img", "qemu-server.conf", "client.log", "index.json"} <= la, sorted(la)
assert {"root.pxar", "catalog.pcat1", "client.log", "index.json"} <= lp, sorted(lp)
assert not {"split.mpxar", "split.ppxar"} & lp, sorted(lp)
assert open(f"{m}/{a}/index.json", "rb").read().startswith(b"{"), "index.json"
if hidden:  # the mount's key is the snapshots' (client.log is encrypted too)
    assert open(f"{m}/{a}/client.log", "rb").read() == open(alog, "rb").read(), "client.log"
    os.listdir(f"{m}/{p}/root.pxar")
PY
}

mount_dsfs "$S" "$M" -o "keyfile=$key"
check "$M" 1 || fail "with the key, the planted archives are part of the signed snapshots"
cmp -s "$M/$A/drive-scsi0.img" "$T/a.img" || fail "A's own image"
for f in "$A/evil.img.fidx" "$A/evil.conf.blob" "$P/evil.pxar.didx" "$P/split.mpxar.didx" \
	"$P/split.ppxar.didx"; do
	grep -q "$f: not in the snapshot's signed manifest" "$T/mount.log" ||
		fail "no log line for $f: $(cat "$T/mount.log")"
done
grep -q "client.log.blob: not in" "$T/mount.log" && fail "client.log.blob logged as unlisted"
# A snapshot written through the mount (signed with its key as it goes)
# shows each archive written, the second one too.
W=$M/vm/300/2026-01-01T00:00:00Z
mkdir -p "$W"
head -c 5M /dev/urandom >"$T/w.img"
cp "$T/w.img" "$W/w.img"
echo second >"$W/w.conf"
ls "$W" | grep -qx w.conf && cmp -s "$W/w.img" "$T/w.img" && [ "$(cat "$W/w.conf")" = second ] ||
	fail "written snapshot: $(ls "$W")"
unmount_dsfs "$M"
grep -q "w.conf.blob: not in" "$T/mount.log" && fail "an archive written through the mount logged as unlisted"

# Without a key, as before: listed, open says ENOKEY for the encrypted.
mount_dsfs "$S" "$M"
check "$M" 0 || fail "without a key, the planted archives are not shown as before"
unmount_dsfs "$M"

# With another key: the manifests name the fixture key, nothing binds.
"$DSFS" key create "$T/other.json" --kdf none >/dev/null || fail "key create"
chmod 600 "$T/other.json"
mount_dsfs "$S" "$M" -o "keyfile=$T/other.json"
check "$M" 0 || fail "with another key, the planted archives are not shown as before"
unmount_dsfs "$M"

# A manifest whose signature no longer matches (tampered with) lists
# nothing the mount reads (EIO), and what it does not list stays hidden:
# breaking the signature showed the planted archives again.
"$DSFS" cat "$S" "$A" index.json >"$T/m.json" || fail "cat A's manifest"
python3 - "$T/m.json" "$S/$A/index.json.blob" <<'PY' || fail "tamper A's signature"
import json, struct, sys, zlib
m = json.load(open(sys.argv[1]))
sig = m["signature"]
m["signature"] = ("0" if sig[0] != "0" else "1") + sig[1:]
text = json.dumps(m, indent=2, sort_keys=True, ensure_ascii=False).encode()
magic = bytes.fromhex("42ab3807be8370a1")  # uncompressed blob
open(sys.argv[2], "wb").write(magic + struct.pack("<I", zlib.crc32(text)) + text)
PY
"$DSFS" cat "$S" "$A" index.json >"$T/check.json" || fail "cat A's tampered manifest"
[ "$(python3 -m pbs_manifest "$key" "$T/check.json")" = False ] || fail "A's signature still matches: no test"
: >"$T/mount.log"
mount_dsfs "$S" "$M" -o "keyfile=$key"
python3 - "$M/$A" <<'PY' || fail "tampered manifest: $(cat "$T/mount.log")"
import errno, os, sys
d = sys.argv[1]
ls = set(os.listdir(d))
assert "evil.img" not in ls and "evil.conf" not in ls, sorted(ls)
for name in ("evil.img", "evil.conf"):
    try:
        os.stat(f"{d}/{name}")
        sys.exit(f"{name}: found")
    except OSError as e:
        assert e.errno == errno.ENOENT, (name, e)
try:
    open(f"{d}/drive-scsi0.img", "rb").read(4096)
    sys.exit("drive-scsi0.img read under a tampered manifest")
except OSError as e:
    assert e.errno == errno.EIO, e
PY
unmount_dsfs "$M"
grep -q "$A/evil.img.fidx: not in the snapshot's signed manifest" "$T/mount.log" ||
	fail "no log line for the planted image: $(cat "$T/mount.log")"
echo "unlisted_archives: ok"
