# A datastore.cfg that does not exist yet mounts, as PBS reads such a file:
# no datastores (pbs-config's config(): file_read_optional_string). A
# fresh PBS host has none until its first datastore: `mount.dsfs
# /etc/proxmox-backup/datastore.cfg DIR` used to fail there ("no such
# datastore, directory or config file"). The root is empty, the log says
# why, and the file is followed once it appears, made by rename (as PBS
# saves it) or written in place; removed, its stores go (after the second
# any removal waits). A missing SOURCE not named *.cfg is still an error,
# and so is a datastore name looked up in a config that does not exist
# (not in it: "not in").
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse

NAME=dsfs-cfgmiss-$$
OPS=/run/proxmox-backup/active-operations
fixture_copy pbs-store-a "$T/store"
STORE=$(realpath "$T/store")
mkdir "$T/etc"
CFG=$T/etc/datastore.cfg
M=$T/m
section() { printf 'datastore: %s\n\tpath %s\n' "$NAME" "$STORE"; }
# gone_within SECONDS CMD...: CMD succeeds within SECONDS (a removal waits
# a second for the file to confirm it, then up to the watcher's tick).
within() {
	local n=$(($1 * 10)) i
	shift
	for i in $(seq "$n"); do
		"$@" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
root_empty() { [ -z "$(ls -A "$M")" ]; }

remove_after_unmount "$OPS/$NAME" "$OPS/$NAME.lock"
mount_dsfs "$CFG" "$M"
[ -z "$(ls -A "$M")" ] || fail "root of a missing config not empty: $(ls -A "$M")"
grep -q "$CFG does not exist" "$T/mount.log" || fail "log: $(cat "$T/mount.log")"

# The first datastore: PBS writes the file by rename.
section >"$CFG.tmp"
mv "$CFG.tmp" "$CFG"
wait_until "store listed once the config appears" listed "$M" "$NAME"
[ -f "$M/$NAME/vm/101/2024-03-02T08:02:17Z/qemu-server.conf" ] || fail "store content"

# Removed: the store goes.
rm "$CFG"
within 4 root_empty || fail "store still listed after the config was removed: $(ls -A "$M")"

# Made again by writing in place.
section >"$CFG"
wait_until "store listed once the config is written again" listed "$M" "$NAME"
unmount_dsfs "$M"

# Still errors: a missing path that does not name a .cfg file, and a
# datastore name that a missing config does not hold.
mkdir -p "$T/m2"
expect_status 1 "$MOUNT_DSFS" "$T/nostore" "$T/m2"
grep -q "no such datastore, directory or config file" "$T/err" ||
	fail "missing directory: $(cat "$T/err")"
expect_status 1 "$MOUNT_DSFS" "$NAME" "$T/m2" -o "config=$T/etc/none.cfg"
grep -q "datastore '$NAME' is not in $T/etc/none.cfg" "$T/err" ||
	fail "name in a missing config: $(cat "$T/err")"
mountpoint -q "$T/m2" && fail "mounted"
echo "missing datastore.cfg: mounts empty, follows the file"
