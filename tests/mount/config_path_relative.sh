# A mounted datastore whose path in datastore.cfg is changed to a relative
# one: PBS refuses to open such a store (ChunkStore::open: "expected
# absolute path"), and a mount refuses it at first use
# (config_relative_path). Changed while mounted, the mount used to go on
# serving the old directory without a word. Now the store is refused from
# then on: its own directory still stats (from the config only, as under
# a maintenance mode), whatever needs the disk gets EINVAL, the log says
# which path and why, and a file opened before goes on reading to its end.
# The path made absolute again, the store is served again. Both for a
# mount of the store by name and for the root of a whole config.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse

NAME=dsfs-pathrel-$$
OPS=/run/proxmox-backup/active-operations
fixture_copy pbs-store-a "$T/store"
STORE=$(realpath "$T/store")
REL=${STORE#/}
SNAP=vm/101/2024-03-02T08:02:17Z
CFG=$T/datastore.cfg
# set_path DIR: datastore.cfg names DIR, replaced as PBS replaces it.
set_path() {
	printf 'datastore: %s\n\tpath %s\n' "$NAME" "$1" >"$CFG.new"
	mv "$CFG.new" "$CFG"
}
"$DSFS" cat "$STORE" "$SNAP" drive-scsi0.img >"$T/img" || fail "dsfs cat"
refused() { [ "$(errno_of list "$1/vm/101")" = EINVAL ]; }
served() { listed "$1/vm/101" 2024-03-02T08:02:17Z; }

# check ROOT: ROOT, the store's directory, follows the path's changes.
check() {
	local root=$1 n
	served "$root" || fail "$root: not served at first"
	cmp "$root/$SNAP/qemu-server.conf" <("$DSFS" cat "$STORE" "$SNAP" qemu-server.conf) ||
		fail "$root: qemu-server.conf"
	exec 3<"$root/$SNAP/drive-scsi0.img"
	dd bs=65536 count=1 iflag=fullblock <&3 >"$T/part" 2>/dev/null || fail "first read"
	n=$(grep -c "path '$REL' is not absolute" "$T/mount.log" || true)

	set_path "$REL"
	wait_until "$root: refused after the path turned relative" refused "$root"
	expect_errno OK stat "$root"
	expect_errno EINVAL stat "$root/vm"
	expect_errno EINVAL read "$root/$SNAP/qemu-server.conf"
	expect_errno EINVAL mkdir "$root/vm/102"
	[ "$(grep -c "datastore $NAME: path '$REL' is not absolute (PBS refuses it too)" \
		"$T/mount.log")" -gt "$n" ] || fail "$root: not logged: $(cat "$T/mount.log")"
	[ ! -e "$STORE/vm/102" ] || fail "$root: a group was made through a relative path"
	cat <&3 >>"$T/part" || fail "$root: the file opened before the change fails"
	exec 3<&-
	cmp "$T/part" "$T/img" || fail "$root: the file opened before read other bytes"

	set_path "$STORE"
	wait_until "$root: served again after the path is absolute again" served "$root"
	cmp "$root/$SNAP/qemu-server.conf" <("$DSFS" cat "$STORE" "$SNAP" qemu-server.conf) ||
		fail "$root: qemu-server.conf after"
	grep -q "datastore $NAME: path $STORE usable again" "$T/mount.log" ||
		fail "$root: not logged as usable again"
}

set_path "$STORE"
M=$T/m
remove_after_unmount "$OPS/$NAME" "$OPS/$NAME.lock"
mount_dsfs "$NAME" "$M" -o "config=$CFG"
check "$M"
unmount_dsfs "$M"

R=$T/r
mount_dsfs "$CFG" "$R"
check "$R/$NAME"
listed "$R" "$NAME" || fail "store not in the root listing"
unmount_dsfs "$R"
echo "path turned relative while mounted: refused, then served again"
