# A datastore whose `path` is not absolute: PBS reads such a datastore.cfg
# but refuses to open the store (ChunkStore::open: "expected absolute
# path"). In a multi-store mount it is listed (from the config only, as
# PBS lists it) and its lookup fails with EINVAL and a log line saying why;
# it used to fail with ENOMEM ("Cannot allocate memory") and no log line.
# The file's other stores work. Mounted by name, it is refused with the
# reason.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse

NAME=dsfs-cfgrel-$$
OPS=/run/proxmox-backup/active-operations
fixture_copy pbs-store-a "$T/store"
STORE=$(realpath "$T/store")
CFG=$T/datastore.cfg
REL=${STORE#/}
printf 'datastore: rel-%s\n\tpath %s\n\ndatastore: %s\n\tpath %s\n' \
	"$NAME" "$REL" "$NAME" "$STORE" >"$CFG"
M=$T/m

remove_after_unmount "$OPS/$NAME" "$OPS/$NAME.lock" "$OPS/rel-$NAME" "$OPS/rel-$NAME.lock"
mount_dsfs "$CFG" "$M"
listed "$M" "rel-$NAME" || fail "the store is not listed: $(ls "$M")"
[ -f "$M/$NAME/vm/101/2024-03-02T08:02:17Z/qemu-server.conf" ] || fail "the other store"
got=$(python3 -c 'import errno, os, sys
try:
    os.stat(sys.argv[1]); print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])' "$M/rel-$NAME")
[ "$got" = EINVAL ] || fail "lookup of the store with a relative path: $got, want EINVAL"
grep -qF "datastore rel-$NAME: path '$REL' in $CFG is not absolute (PBS refuses it too)" \
	"$T/mount.log" || fail "log: $(cat "$T/mount.log")"
unmount_dsfs "$M"

mkdir -p "$T/m2"
expect_status 1 "$MOUNT_DSFS" "rel-$NAME" "$T/m2" -o "config=$CFG"
grep -qF "path '$REL' in $CFG is not absolute" "$T/err" || fail "by name: $(cat "$T/err")"
mountpoint -q "$T/m2" && fail "mounted"
echo "relative path: listed, refused with EINVAL and a reason"
