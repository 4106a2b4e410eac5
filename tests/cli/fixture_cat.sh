# Every archive of every fixture snapshot read with `dsfs cat` has exactly the
# size and SHA-256 that pbs-store-a.expect.json gives (written by PBS's code).
. "$(dirname "$0")/../testlib.bash"
need_fixtures
key=$(fixture_key)
python3 - "$FIX" "$DSFS" "$key" <<'PY'
import hashlib, json, subprocess, sys
fix, dsfs, key = sys.argv[1:4]
store = f"{fix}/pbs-store-a"
exp = json.load(open(f"{fix}/pbs-store-a.expect.json"))
checked = 0
for snap in exp["snapshots"]:
    enc = any(a["crypt_mode"] == "encrypt" for a in snap["archives"])
    items = [(a["name"], a["size"], a["sha256"]) for a in snap["archives"]]
    if snap.get("client_log"):
        cl = snap["client_log"]
        items.append(("client.log.blob", cl["size"], cl["sha256"]))
    for name, size, sha in items:
        # with the server extension, and without it where PBS allows that
        names = [name]
        short = name.rsplit(".", 1)[0]
        if short.endswith((".img", ".pxar", ".mpxar", ".ppxar", ".pcat1", ".conf", ".log", ".json")):
            names.append(short)
        for n in names:
            cmd = [dsfs, "cat"] + (["--keyfile", key] if enc else []) + [store, snap["path"], n]
            p = subprocess.run(cmd, capture_output=True)
            if p.returncode != 0:
                sys.exit(f"FAIL: {' '.join(cmd)}: exit {p.returncode}: {p.stderr.decode()}")
            got = hashlib.sha256(p.stdout).hexdigest()
            if len(p.stdout) != size or got != sha:
                sys.exit(f"FAIL: {snap['path']}/{n}: size {len(p.stdout)} sha {got}, want {size} {sha}")
            checked += 1
    if enc:
        # without the key: refused, nothing written
        a = next(a for a in snap["archives"] if a["crypt_mode"] == "encrypt")
        p = subprocess.run([dsfs, "cat", store, snap["path"], a["name"]], capture_output=True)
        if p.returncode != 1 or p.stdout or b"encrypted" not in p.stderr:
            sys.exit(f"FAIL: {snap['path']}/{a['name']} without key: exit {p.returncode}, {len(p.stdout)} bytes out")
# the manifest itself: decoded JSON, checked independently with the zstd tool
for snap in exp["snapshots"][:3]:
    p = subprocess.run([dsfs, "cat", store, snap["path"], "index.json"], capture_output=True, check=True)
    raw = open(f"{store}/{snap['path']}/index.json.blob", "rb").read()
    ref = subprocess.run(["zstd", "-dc"], input=raw[12:], capture_output=True, check=True).stdout
    if p.stdout != ref:
        sys.exit(f"FAIL: {snap['path']}/index.json differs from zstd -dc of the blob")
if checked < 60:
    sys.exit(f"FAIL: only {checked} archives checked")
print(f"{checked} archive reads match the expect file")
PY
