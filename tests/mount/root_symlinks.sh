# Run as root, dsfs gives what it creates in PBS's directories to the
# backup user. Those directories belong to that user (the datastore, the
# group and snapshot directories, /run/proxmox-backup/active-operations,
# /etc/proxmox-backup), so the user can put a symlink where dsfs creates a
# file. dsfs must never follow it: opening it to create, then chowning and
# chmodding what it opened, gave the backup user any file of root's (here a
# stand-in for /etc/shadow: 0600 root, must stay so, with its content).
# Each case used to follow the link: the active-operations lock file of a
# mount, a snapshot's .protected made through the mount, and the
# datastore.cfg lock of `dsfs maintenance`.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root" >&2; exit 77; }
NAME=rootlinks-$$
OPS=/run/proxmox-backup/active-operations
remove_after_unmount "$OPS/$NAME" "$OPS/$NAME.lock"
mkdir -p "$OPS"
victim() { # NAME: a root-only file with known content
	printf 'root secret\n' >"$T/$1"
	chmod 0600 "$T/$1"
}
untouched() { # NAME WHAT
	local got
	got=$(stat -c '%a %u:%g' "$T/$1")
	[ "$got" = "600 0:0" ] || fail "$2: the link's target became $got"
	[ "$(cat "$T/$1")" = "root secret" ] || fail "$2: the link's target was written"
}
S=$T/$NAME
"$DSFS" init "$S" >/dev/null
printf 'x\n' >"$T/x.conf"
"$DSFS" backup --time 2026-01-01T00:00:00Z "$S" vm/1 x.conf="$T/x.conf" >/dev/null
SNAP=vm/1/2026-01-01T00:00:00Z

# The mount's active-operations lock file.
victim ops
rm -f "$OPS/$NAME.lock"
ln -s "$T/ops" "$OPS/$NAME.lock"
mount_dsfs "$S" "$T/m"
cmp -s "$T/m/$SNAP/x.conf" "$T/x.conf" || fail "reading with a linked lock file"
untouched ops "active-operations lock"

# The active-operations directory itself replaced by a link (the directory
# above it, /run/proxmox-backup, is the backup user's too): nothing is made
# in the link's target. Not on a host where PBS runs (it uses the directory).
if [ -e /run/proxmox-backup/proxy.pid ]; then
	echo "root_symlinks: PBS runs here: the active-operations directory case left out" >&2
else
	unmount_dsfs "$T/m"
	mkdir -m 0700 "$T/rootdir"
	mv "$OPS" "$OPS.dsfs-test-$$"
	cleanup_hooks=("rm -f '$OPS'; mv '$OPS.dsfs-test-$$' '$OPS'" "${cleanup_hooks[@]}")
	ln -s "$T/rootdir" "$OPS"
	mount_dsfs "$S" "$T/m"
	cmp -s "$T/m/$SNAP/x.conf" "$T/x.conf" || fail "reading with a linked active-operations directory"
	[ -z "$(ls -A "$T/rootdir")" ] || fail "made in the link's target: $(ls -A "$T/rootdir")"
	grep -q "active operations" "$T/mount.log" || fail "not logged: $(cat "$T/mount.log")"
	unmount_dsfs "$T/m"
	rm "$OPS"
	mv "$OPS.dsfs-test-$$" "$OPS"
	cleanup_hooks=("${cleanup_hooks[@]:1}")
	mount_dsfs "$S" "$T/m"
fi

# .protected made through the mount where a link is.
victim prot
ln -s "$T/prot" "$S/$SNAP/.protected"
if touch "$T/m/$SNAP/.protected" 2>/dev/null && [ -L "$S/$SNAP/.protected" ]; then
	fail ".protected: touch succeeded through the link"
fi
untouched prot ".protected"
unmount_dsfs "$T/m"

# dsfs maintenance: PBS's config lock beside datastore.cfg.
victim cfglock
mkdir "$T/etc"
printf 'datastore: %s\n\tpath %s\n' "$NAME" "$S" >"$T/etc/datastore.cfg"
ln -s "$T/cfglock" "$T/etc/.datastore.lck"
expect_status 1 "$DSFS" maintenance --config "$T/etc/datastore.cfg" "$NAME" read-only
untouched cfglock "datastore.cfg lock"
echo "root_symlinks: ok"
