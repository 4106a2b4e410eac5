# A datastore given as a directory that datastore.cfg configures is that
# datastore, used by name: its maintenance mode applies, and PBS's lock
# files and active-operations file are the ones PBS uses for it. They used
# to be named by the directory's last component, so PBS saw none of a
# backup's or a mount's locks and operations (a prune could remove what
# dsfs was writing), and an offline store could be written by its path.
# A directory that is not configured, but whose last component names
# another configured store (a copy of it), gets a name of its own
# ("NAME~HASH"), so that it does not take that store's locks.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
NAME=pbsname-$$
OPS=/run/proxmox-backup/active-operations
remove_after_unmount "$OPS/$NAME" "$OPS/$NAME.lock" "$OPS/$NAME~*"
"$DSFS" init "$T/disk1" >/dev/null
mkdir "$T/copy"
"$DSFS" init "$T/copy/$NAME" >/dev/null
printf 'x\n' >"$T/x.conf"
cfg() { # [MODE]
	printf 'datastore: %s\n\tpath %s\n' "$NAME" "$T/disk1"
	[ -z "${1:-}" ] || printf '\tmaintenance-mode type=%s\n' "$1"
}
cfg offline >"$T/datastore.cfg"

# The CLI: offline applies to the path; then locks under PBS's name.
expect_status 1 "$DSFS" backup --config "$T/datastore.cfg" "$T/disk1" host/x x.conf="$T/x.conf"
grep -q offline "$T/err" || { cat "$T/err"; fail "backup by path not refused as offline"; }
expect_status 1 "$DSFS" ls --config "$T/datastore.cfg" "$T/disk1"
cfg >"$T/datastore.cfg"
expect_status 0 "$DSFS" backup --config "$T/datastore.cfg" "$T/disk1" host/x x.conf="$T/x.conf"
[ -d "$DSFS_LOCK_DIR/$NAME" ] || fail "no lock under the configured name: $(ls "$DSFS_LOCK_DIR")"
[ ! -e "$DSFS_LOCK_DIR/disk1" ] || fail "locks under the directory's name"
# The copy named like the configured store: locks of its own.
expect_status 0 "$DSFS" backup --config "$T/datastore.cfg" "$T/copy/$NAME" host/x x.conf="$T/x.conf"
ls "$DSFS_LOCK_DIR" | grep -qx "$NAME~[0-9a-f]\{8\}" || fail "copy's locks: $(ls "$DSFS_LOCK_DIR")"

# The mount: by path, the configured store's refusals and active operations.
cfg offline >"$T/datastore.cfg"
mount_dsfs "$T/disk1" "$T/m" -o config="$T/datastore.cfg"
if ls "$T/m/host" >/dev/null 2>&1; then fail "offline store listed through a mount by path"; fi
cfg >"$T/datastore.cfg"
wait_until "store back online" ls "$T/m/host/x"
snap=$(ls "$T/m/host/x" | grep -v latest | head -1)
exec 8<"$T/m/host/x/$snap/x.conf"
grep -q "\"pid\": *$MOUNT_PID\b" "$OPS/$NAME" || fail "open file not in $OPS/$NAME: $(cat "$OPS/$NAME" 2>&1)"
exec 8<&-
unmount_dsfs "$T/m"
mount_dsfs "$T/copy/$NAME" "$T/m" -o config="$T/datastore.cfg"
snap=$(ls "$T/m/host/x" | grep -v latest | head -1)
exec 8<"$T/m/host/x/$snap/x.conf"
ls "$OPS" | grep -qx "$NAME~[0-9a-f]\{8\}" || fail "the copy's operations: $(ls "$OPS")"
! grep -q "\"pid\": *$MOUNT_PID\b" "$OPS/$NAME" 2>/dev/null || fail "the copy counted as $NAME"
exec 8<&-
unmount_dsfs "$T/m"
echo "dir_configured: ok"
