# Run as root, dsfs creates, chowns and removes files below the datastore's
# base, whose directories are PBS's backup user's: that user can put a
# symlink in place of any directory in a path dsfs then walks (a type or
# group directory, a chunk prefix directory .chunks/XXXX, a directory of
# the lock tree). O_NOFOLLOW on the last component alone does not help:
# dsfs followed the link in the middle of the path and made or removed
# files in whatever directory it led to, giving new ones to the backup
# user. Here each such target is a root-only directory outside the
# datastore, which must stay exactly as it was.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root" >&2; exit 77; }

outside() { # NAME: a root-only directory with one root-only file
	mkdir -m 0700 "$T/$1"
	printf 'root secret\n' >"$T/$1/keep"
	chmod 0600 "$T/$1/keep"
}
untouched() { # NAME WHAT: the directory holds its one file, unchanged
	local got
	got=$(cd "$T/$1" && find . -mindepth 1 | sort | tr '\n' ' ')
	[ "$got" = "./keep " ] || fail "$2: outside directory now holds: $got"
	[ "$(stat -c '%a %u:%g' "$T/$1/keep")" = "600 0:0" ] || fail "$2: its file was given away"
	[ "$(cat "$T/$1/keep")" = "root secret" ] || fail "$2: its file was changed"
}
head -c 65536 /dev/urandom >"$T/disk.img"
printf 'x\n' >"$T/x.conf"

# 1. A type directory ("vm") that is a link: `dsfs backup vm/1` made the
# group directory, its owner file and the snapshot in the link's target.
outside t1
S=$T/s1
bare_store "$S"
ln -s "$T/t1" "$S/vm"
"$DSFS" backup --time 2026-01-01T00:00:00Z "$S" vm/1 x.conf="$T/x.conf" >/dev/null 2>&1 &&
	fail "backup through a linked type directory succeeded"
untouched t1 "type directory link"

# The same through the mount: mkdir of a group, then of a snapshot.
outside t1m
S=$T/s1m
bare_store "$S"
mkdir "$S/vm"
mount_dsfs "$S" "$T/m1"
ls "$T/m1/vm" >/dev/null
rmdir "$S/vm"
ln -s "$T/t1m" "$S/vm"
mkdir "$T/m1/vm/1" 2>/dev/null && fail "mkdir of a group through a linked type directory succeeded"
untouched t1m "mount: type directory link"
unmount_dsfs "$T/m1"

# 2. A chunk prefix directory that is a link: the backup's new chunk was
# created in the link's target. Its digest is learned from another store.
outside t2
bare_store "$T/learn" "$T/s2"
"$DSFS" backup --time 2026-01-01T00:00:00Z "$T/learn" vm/1 disk.img="$T/disk.img" >/dev/null
prefix=$(cd "$T/learn/.chunks" && find . -type f -print -quit | cut -d/ -f2)
[ -n "$prefix" ] || fail "no chunk written to learn its prefix"
ln -s "$T/t2" "$T/s2/.chunks/$prefix"
"$DSFS" backup --time 2026-01-01T00:00:00Z "$T/s2" vm/1 disk.img="$T/disk.img" >/dev/null 2>&1 &&
	fail "backup through a linked chunk prefix directory succeeded"
untouched t2 "chunk prefix link"

# 3. rmdir of a snapshot through the mount, the group directory replaced
# by a link after the mount had looked it up: the snapshot's files were
# removed in the link's target (a directory with a snapshot's name there).
S=$T/s3
T3=2026-01-01T00:00:00Z
bare_store "$S"
"$DSFS" backup --time "$T3" "$S" vm/1 x.conf="$T/x.conf" >/dev/null
mkdir -m 0700 "$T/t3"
mkdir -m 0700 "$T/t3/$T3"
printf 'root secret\n' >"$T/t3/$T3/keep"
chmod 0600 "$T/t3/$T3/keep"
mount_dsfs "$S" "$T/m3"
stat "$T/m3/vm/1/$T3" >/dev/null
mv "$S/vm/1" "$S/vm/1.moved"
ln -s "$T/t3" "$S/vm/1"
rmdir "$T/m3/vm/1/$T3" 2>/dev/null || true
[ "$(cat "$T/t3/$T3/keep" 2>/dev/null)" = "root secret" ] ||
	fail "rmdir through a linked group directory removed a file outside the datastore"
unmount_dsfs "$T/m3"

# 4. The lock tree (/run/proxmox-backup/locks, here $DSFS_LOCK_DIR) is the
# backup user's too: a link for the datastore's directory in it made the
# group's lock file (and directories) in the link's target.
outside t4
S=$T/s4
bare_store "$S"
mkdir -p "$DSFS_LOCK_DIR"
ln -s "$T/t4" "$DSFS_LOCK_DIR/s4"
"$DSFS" backup --time 2026-01-01T00:00:00Z "$S" vm/1 x.conf="$T/x.conf" >/dev/null 2>&1 &&
	fail "backup with a linked lock directory succeeded"
untouched t4 "lock directory link"

# The admin's own link above the datastore still works.
bare_store "$T/s5real"
ln -s "$T/s5real" "$T/s5"
"$DSFS" backup --time 2026-01-01T00:00:00Z "$T/s5" vm/2 disk.img="$T/disk.img" >/dev/null ||
	fail "backup into a datastore reached through a link"
[ -f "$T/s5real/vm/2/2026-01-01T00:00:00Z/index.json.blob" ] || fail "backup through a linked base: no manifest"
echo "root_links_below: ok"
