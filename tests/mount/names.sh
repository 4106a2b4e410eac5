# Names at the edges of PBS's rules, read and written through a real mount.
# Every entry a directory listing shows above the archives' contents can be
# looked up (stat): no name is listed that the mount then refuses. Made by
# hand in the datastore: a namespace whose full name ("a/b") is longer than
# PBS's 256 characters (listing it showed the child, stat said ENOENT);
# archive files whose names are not PBS archive names (".x.blob", "-x.blob",
# "a b.blob": listed, ENOENT); half of a split pxar archive (X.mpxar.didx
# without X.ppxar.didx, as while a backup still writes its payload: listed as
# the directory X.pxar, which cannot be opened without its payload, ENOENT; it
# is now the stream file X.mpxar that a lookup finds); two files that show as
# one name (listed twice). And mkdir of a snapshot before 1970-01-01T00:00:01Z
# is refused (EINVAL), as `dsfs backup --time` refuses it: PBS's backup-time
# is at least 1 (its API cannot name such a snapshot, and 1969-12-31T23:59:59Z
# makes PBS's listing of the whole group fail).
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse

S=$T/store
M=$T/m
"$DSFS" init "$S" >/dev/null
mkdir -p "$T/src/d"
echo hello >"$T/src/d/f"
echo "conf" >"$T/qemu.conf"
"$DSFS" backup "$S" host/x --time 2025-01-01T00:00:00Z -S root.pxar="$T/src" \
	qemu-server.conf="$T/qemu.conf" >/dev/null || fail "backup"
SNAP=$S/host/x/2025-01-01T00:00:00Z
[ -f "$SNAP/root.mpxar.didx" ] && [ -f "$SNAP/qemu-server.conf.blob" ] ||
	fail "backup made: $(ls "$SNAP")"

# Made by hand, as another tool (or a person) could.
long_a=$(printf 'a%.0s' $(seq 200))
long_b=$(printf 'b%.0s' $(seq 60))
mkdir -p "$S/ns/$long_a/ns/$long_b/host/y" "$S/ns/$long_a/ns/ok/host/z"
for n in .x -x "a b"; do
	cp "$SNAP/qemu-server.conf.blob" "$SNAP/$n.blob"
done
cp "$SNAP/root.mpxar.didx" "$SNAP/half.mpxar.didx"
cp "$SNAP/qemu-server.conf.blob" "$SNAP/root.pxar.blob"

mount_dsfs "$S" "$M"
# Every name listed from the datastore down to the snapshots' files can be
# stat'ed; pxar archives' own trees are tests/mount/pxar.sh's.
python3 - "$M" >"$T/walk" <<'PY' || fail "walk: $(cat "$T/walk")"
import os, stat, sys
m = sys.argv[1]
bad = []
def walk(d, depth):
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        try:
            st = os.lstat(p)
        except OSError as e:
            bad.append(f"{os.path.relpath(p, m)}: listed, but lstat: {e.strerror}")
            continue
        print(os.path.relpath(p, m))
        if stat.S_ISDIR(st.st_mode) and not name.endswith(".pxar") and depth < 40:
            walk(p, depth + 1)
walk(m, 0)
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
PY
ns_ok="ns/$long_a/ns/ok"
grep -qx "$ns_ok/host/z" "$T/walk" || fail "namespace $ns_ok not shown"
! grep -q "/ns/$long_b" "$T/walk" || fail "a namespace longer than 256 characters is shown"
snap=host/x/2025-01-01T00:00:00Z
for n in root.pxar qemu-server.conf index.json half.mpxar; do
	grep -qx "$snap/$n" "$T/walk" || fail "$snap/$n not listed: $(grep "^$snap/" "$T/walk")"
done
for n in .x -x "a b" half.pxar; do
	! grep -qx "$snap/$n" "$T/walk" || fail "$snap/$n listed"
done
dups=$(ls -a "$M/$snap" | sort | uniq -d)
[ -z "$dups" ] || fail "listed twice: $dups"
# The listing's types are the lookup's (readdir's d_type): root.pxar is the
# archive's directory, not the blob root.pxar.blob.
python3 - "$M/$snap" <<'PY' || fail "types differ"
import os, stat, sys
for e in os.scandir(sys.argv[1]):
    if e.is_dir(follow_symlinks=False) != stat.S_ISDIR(os.lstat(e.path).st_mode):
        sys.exit(f"{e.name}: listed as {'dir' if e.is_dir() else 'file'}")
PY
[ -d "$M/$snap/root.pxar" ] || fail "root.pxar is not the archive's directory"
# The half archive reads as the stream it is.
[ -f "$M/$snap/half.mpxar" ] && [ -s "$M/$snap/half.mpxar" ] || fail "half.mpxar is not a file"
cmp -s "$M/$snap/half.mpxar" "$M/$snap/root.mpxar" || fail "half.mpxar does not read as root.mpxar"
unmount_dsfs "$M"

# --- mkdir of snapshots at the lower end of backup-time ---
errno_of_mkdir() {
	python3 -c '
import errno, os, sys
try:
    os.mkdir(sys.argv[1]); print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])' "$1"
}
mount_dsfs "$S" "$M"
for t in 1970-01-01T00:00:00Z 1969-12-31T23:59:59Z 0000-01-01T00:00:00Z; do
	got=$(errno_of_mkdir "$M/host/x/$t")
	[ "$got" = EINVAL ] || fail "mkdir host/x/$t: $got, want EINVAL"
	[ ! -e "$S/host/x/$t" ] || fail "host/x/$t made on disk"
done
got=$(errno_of_mkdir "$M/host/x/1970-01-01T00:00:01Z")
[ "$got" = OK ] || fail "mkdir host/x/1970-01-01T00:00:01Z: $got"
[ -d "$S/host/x/1970-01-01T00:00:01Z" ] || fail "1970-01-01T00:00:01Z not made"
unmount_dsfs "$M"
echo ok
