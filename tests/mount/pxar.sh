# Every pxar archive of the fixture store, seen through the mount as the
# directory root.pxar/, has exactly the entries of pbs-store-a.expect.json
# (written by PBS's own encoder): path, type, full st_mode, uid, gid, size,
# mtime with nanoseconds, symlink targets, device numbers, xattrs, POSIX ACLs
# as system.posix_acl_*, file capabilities, content SHA-256, hardlinks as one
# inode with the true st_nlink — every entry, nothing extra. v1 and v2 (split)
# archives, encrypted ones with the key. The link counts of v1 archives come
# from the snapshot's catalog (PBS wrote these), not from a scan of the
# archive: the mount's debug log says which, and the counts are checked.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse
key=$(fixture_key)
M=$T/m
mount_dsfs "$FIX/pbs-store-a" "$M" -d -o "keyfile=$key"
python3 - "$FIX" "$M" <<'PY'
import hashlib, json, os, stat, struct, sys
fix, m = sys.argv[1:3]
exp = json.load(open(f"{fix}/pbs-store-a.expect.json"))
TYPES = {"dir": stat.S_ISDIR, "file": stat.S_ISREG, "symlink": stat.S_ISLNK, "chardev": stat.S_ISCHR,
         "blockdev": stat.S_ISBLK, "fifo": stat.S_ISFIFO, "socket": stat.S_ISSOCK}

def acl_bytes(mode, users, groups, group_obj, user_obj=None, mask=None, other=None):
    # Linux's POSIX ACL xattr encoding (what getfattr shows for an ACL).
    ents = [(1, (mode >> 6) & 7 if user_obj is None else user_obj, 0xffffffff)]
    ents += [(2, u["perm"], u["uid"]) for u in sorted(users, key=lambda u: u["uid"])]
    ents += [(4, group_obj, 0xffffffff)]
    ents += [(8, g["perm"], g["gid"]) for g in sorted(groups, key=lambda g: g["gid"])]
    if mask is not None:
        ents += [(0x10, mask, 0xffffffff)]
    ents += [(0x20, mode & 7 if other is None else other, 0xffffffff)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in ents)

def content_sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while b := f.read(1 << 20):
            h.update(b)
    return h.hexdigest()

archives = 0
for s in exp["snapshots"]:
    for a in s["archives"]:
        if "pxar" not in a:
            continue
        base = f"{m}/{s['path']}/{a['name'].replace('.mpxar.didx', '.pxar').replace('.didx', '')}"
        assert os.path.isdir(base), base
        ents = a["pxar"]["entries"]
        want = {}
        for e in ents:
            raw = bytes.fromhex(e["path_hex"]) if "path_hex" in e else e["path"].encode()
            want[raw] = e
        # nothing extra, nothing missing
        seen = {b"/"}
        for root, dirs, files in os.walk(base.encode()):
            for n in dirs + files:
                seen.add(os.path.join(root, n)[len(base.encode()):])
        assert seen == set(want), (base, sorted(seen ^ set(want))[:5])
        targets = {}
        for raw, e in want.items():
            p = base.encode() + (raw if raw != b"/" else b"")
            st = os.lstat(p)
            if e["type"] == "hardlink":
                tgt = base.encode() + b"/" + (bytes.fromhex(e["target_hex"]) if "target_hex" in e else e["target"].encode())
                tst = os.lstat(tgt)
                assert st.st_ino == tst.st_ino and stat.S_ISREG(st.st_mode), p
                targets.setdefault(tgt, 1)
                targets[tgt] += 1
                assert content_sha(p) == e["sha256"], p
                continue
            assert TYPES[e["type"]](st.st_mode) and st.st_mode == e["st_mode"], (p, oct(st.st_mode), e)
            assert (st.st_uid, st.st_gid) == (e["uid"], e["gid"]), p
            assert st.st_mtime_ns == e["mtime"]["sec"] * 10**9 + e["mtime"]["nsec"], (p, st.st_mtime_ns, e["mtime"])
            if e["type"] == "file":
                assert st.st_size == e["size"], (p, st.st_size)
                assert content_sha(p) == e["sha256"], p
            if e["type"] == "symlink":
                t = bytes.fromhex(e["target_hex"]) if "target_hex" in e else e["target"].encode()
                assert os.readlink(p) == t, p
            if e["type"] in ("chardev", "blockdev"):
                assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (e["major"], e["minor"]), p
            if e["type"] == "symlink":
                continue  # xattrs of symlinks are not stored by PBS
            names = set(os.listxattr(p, follow_symlinks=False))
            wantx = {x["name"] for x in e.get("xattrs", [])}
            if e.get("fcaps_hex"):
                wantx.add("security.capability")
            acl = e.get("acl")
            if acl and (acl["users"] or acl["groups"] or acl["group_obj"] is not None):
                wantx.add("system.posix_acl_access")
            if acl and acl["default"] is not None:
                wantx.add("system.posix_acl_default")
            assert names == wantx, (p, names, wantx)
            for x in e.get("xattrs", []):
                assert os.getxattr(p, x["name"], follow_symlinks=False) == bytes.fromhex(x["value_hex"]), (p, x["name"])
            if e.get("fcaps_hex"):
                assert os.getxattr(p, "security.capability", follow_symlinks=False).hex() == e["fcaps_hex"], p
            if "system.posix_acl_access" in wantx:
                mode = e["st_mode"]
                has_mask = acl["group_obj"] is not None
                got = os.getxattr(p, "system.posix_acl_access", follow_symlinks=False)
                want_b = acl_bytes(mode, acl["users"], acl["groups"],
                                   acl["group_obj"] if has_mask else (mode >> 3) & 7,
                                   mask=(mode >> 3) & 7 if has_mask else None)
                assert got == want_b, (p, got.hex(), want_b.hex())
            if "system.posix_acl_default" in wantx:
                d = acl["default"]
                got = os.getxattr(p, "system.posix_acl_default", follow_symlinks=False)
                want_b = acl_bytes(0, acl["default_users"], acl["default_groups"], d["group_obj"],
                                   user_obj=d["user_obj"], mask=d["mask"], other=d["other"])
                assert got == want_b, (p, got.hex(), want_b.hex())
        for tgt, n in targets.items():
            assert os.lstat(tgt).st_nlink == n, (tgt, os.lstat(tgt).st_nlink, n)
        archives += 1
assert archives == 9, archives
print(f"{archives} pxar archives match the expect file entry for entry")
PY
unmount_dsfs "$M"
# 8 v1 archives (the ninth is split: no catalog, its metadata stream is
# scanned); the two v1 tundra-87 archives have hardlinks.
n=$(grep -c 'root.pxar: hardlinks from the catalog$' "$T/mount.log" || true)
[ "$n" = 8 ] || fail "hardlinks of 8 v1 archives from their catalogs: $n"
if grep 'hardlinks by a scan' "$T/mount.log"; then fail "a v1 archive was scanned"; fi

# Without the key the encrypted archive is listed but refuses with ENOKEY.
mount_dsfs "$FIX/pbs-store-a" "$M"
d=$M/ns/prod/ns/db/host/delta-63/2024-03-02T13:02:17Z/root.pxar
[ -d "$d" ] || fail "encrypted pxar not listed as a directory"
# It has the snapshot's time, as the snapshot's other files (not 1970).
[ "$(stat -c %Y "$d")" = "$(stat -c %Y "$d/..")" ] ||
	fail "mtime of the unreadable archive: $(stat -c %y "$d"), snapshot $(stat -c %y "$d/..")"
out=$(ls "$d" 2>&1 || true)
case "$out" in *"Required key not available"*) ;; *) fail "want ENOKEY, got: $out" ;; esac
unmount_dsfs "$M"
echo "pxar through the mount ok"
