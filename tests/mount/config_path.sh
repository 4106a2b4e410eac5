# A datastore whose path is changed in datastore.cfg while mounted is, from
# then on, the datastore at the new path, without a remount: as if the old
# one had gone and a new one come under the same name. What the kernel
# cached of the old one (entries, attributes, the pages of archives it keeps
# for an hour) is dropped, a pxar archive browsed before is the new store's
# afterwards, and a file opened before the change goes on reading the old
# store's bytes to its end. Both for a mount of the store by name and for
# the root of a whole config, and back again.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse

. "$(dirname "$0")/two_stores.bash"

set_path "$A"


# check_store ROOT WHICH: ROOT shows store WHICH (a or b) throughout.
check_store() {
	local root=$1 which=$2
	cmp "$root/$SNAP/qemu-server.conf" "$T/$which.conf" ||
		fail "$root: qemu-server.conf is not store $which's"
	[ "$(stat -c %s "$root/$SNAP/drive-scsi0.img")" = "$(stat -c %s "$T/$which.img")" ] ||
		fail "$root: drive-scsi0.img has not store $which's size"
	cmp "$root/$SNAP/drive-scsi0.img" "$T/$which.img" ||
		fail "$root: drive-scsi0.img is not store $which's"
	if [ "$which" = a ]; then
		listed "$root/vm/101" 2024-03-04T08:02:17Z || fail "$root: a's snapshot not listed"
		test -d "$root/ns/prod/vm" || fail "$root: a's namespace content missing"
		test ! -e "$root/$CT/root.pxar/etc/b-file" || fail "$root: b's pxar file in a"
	else
		not_listed "$root/vm/101" 2024-03-04T08:02:17Z || fail "$root: a's snapshot listed"
		test ! -e "$root/ns/prod/vm" || fail "$root: a's namespace content still there"
		cmp "$root/$CT/root.pxar/etc/b-file" "$T/tree/etc/b-file" ||
			fail "$root: pxar archive is not b's"
	fi
}

M=$T/m
mount_dsfs "$NAME" "$M" -o "config=$CFG"
# The kernel caches what it can: entries, attributes, archive pages.
check_store "$M" a
ls "$M/$CT/root.pxar/" >/dev/null || fail "a's pxar archive"
# A file of the old store open across the change.
exec 3<"$M/$SNAP/drive-scsi0.img"
dd bs=65536 count=1 iflag=fullblock <&3 >"$T/a.part" 2>/dev/null || fail "first read"

set_path "$B"
wait_until "a's other snapshots gone after the path change" not_listed "$M/vm/101" \
	2024-03-04T08:02:17Z
check_store "$M" b
grep -q "datastore $NAME: path changed from $A to $B" "$T/mount.log" ||
	fail "path change not logged"
cat <&3 >>"$T/a.part" || fail "the file opened before the change fails"
exec 3<&-
cmp "$T/a.part" "$T/a.img" || fail "the file opened before the change did not read a's bytes"

set_path "$A"
wait_until "a's snapshots back after the path change" listed "$M/vm/101" 2024-03-04T08:02:17Z
check_store "$M" a
unmount_dsfs "$M"

# The root of a whole config: the store's directory there follows too.
R=$T/r
mount_dsfs "$CFG" "$R"
check_store "$R/$NAME" a
set_path "$B"
wait_until "multi-store root: a's snapshots gone" not_listed "$R/$NAME/vm/101" 2024-03-04T08:02:17Z
check_store "$R/$NAME" b
listed "$R" "$NAME" || fail "store not in the root listing after the path change"
unmount_dsfs "$R"
echo "config path change ok"
