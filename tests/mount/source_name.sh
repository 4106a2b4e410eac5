# mount.dsfs NAME mounts the datastore NAME of datastore.cfg, also when the
# working directory holds a directory of that name: the mount then obeys
# the store's maintenance mode (here offline: ENXIO inside), where the
# directory would obey nothing. ./NAME mounts the directory.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
NAME=dsfs-srcname-$$
OPS=/run/proxmox-backup/active-operations
remove_after_unmount "$OPS/$NAME" "$OPS/$NAME.lock"
bare_store "$T/real" "$T/cwd/$NAME"
printf 'x\n' >"$T/x.conf"
"$DSFS" backup --time 2026-01-01T00:00:00Z "$T/cwd/$NAME" vm/7 x.conf="$T/x.conf" >/dev/null ||
	fail "backup into the directory"
CFG=$T/datastore.cfg
printf 'datastore: %s\n\tpath %s\n\tmaintenance-mode offline\n' "$NAME" "$T/real" >"$CFG"
cd "$T/cwd"
mount_dsfs "$NAME" "$T/m" -o "config=$CFG"
if ls "$T/m/vm" >/dev/null 2>"$T/err"; then
	fail "mount of $NAME shows ./$NAME, not the offline store"
fi
grep -q "No such device or address" "$T/err" || fail "not ENXIO: $(cat "$T/err")"
unmount_dsfs "$T/m"
mount_dsfs "./$NAME" "$T/m"
[ -d "$T/m/vm/7" ] || fail "./$NAME does not mount the directory"
unmount_dsfs "$T/m"
echo "source name ok"
