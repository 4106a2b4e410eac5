# Sourced by the config_path*.sh tests: two datastores for one name. A is a
# copy of the PBS fixture store; B has the fixture's chunk store and, at two
# of A's snapshot paths ($SNAP, a plain snapshot, and $CT, a pxar one),
# snapshots with other content. $T/a.conf and $T/a.img are A's files of
# $SNAP, $T/b.conf and $T/b.img B's. set_path DIR makes $CFG name DIR as
# the store's path.
NAME=dsfs-test-$$
OPS=/run/proxmox-backup/active-operations
remove_after_unmount "$OPS/$NAME" "$OPS/$NAME.lock"
cp -r "$FIX/pbs-store-a" "$T/a"
chmod -R u+w "$T/a"
A=$(realpath "$T/a")
# B: the fixture's chunk store with other snapshots (faster than dsfs init).
cp -r "$A" "$T/b"
rm -rf "$T/b/vm" "$T/b/ns" "$T/b/host" "$T/b/ct"
B=$(realpath "$T/b")
SNAP=vm/101/2024-03-02T08:02:17Z
CT=ns/prod/ct/301/2024-03-02T10:02:17Z
printf 'the store at the new path\n' >"$T/b.conf"
head -c 3000000 /dev/urandom >"$T/b.img"
mkdir -p "$T/tree/etc"
printf 'only in b\n' >"$T/tree/etc/b-file"
"$DSFS" backup --time 2024-03-02T08:02:17Z "$B" vm/101 qemu-server.conf="$T/b.conf" \
	drive-scsi0.img="$T/b.img" >/dev/null || fail "backup into b"
"$DSFS" backup --ns prod --time 2024-03-02T10:02:17Z "$B" ct/301 root.pxar="$T/tree" \
	>/dev/null || fail "pxar backup into b"
"$DSFS" cat "$A" "$SNAP" qemu-server.conf >"$T/a.conf"
"$DSFS" cat "$A" "$SNAP" drive-scsi0.img >"$T/a.img"
if cmp -s "$T/a.conf" "$T/b.conf"; then fail "the two stores' files must differ"; fi
CFG=$T/datastore.cfg
# set_path DIR: datastore.cfg names DIR, replaced as PBS replaces it.
set_path() {
	printf 'datastore: %s\n\tpath %s\n' "$NAME" "$1" >"$CFG.new"
	mv "$CFG.new" "$CFG"
}
