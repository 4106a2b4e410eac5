# Run as root, what is written through the mount is PBS's service user's
# (backup:backup), as PBS's daemons (running as backup) create it: the
# namespace, type, group and snapshot directories, the group's owner file,
# chunks, indexes, blobs, the manifest (with notes) and .protected. As user
# backup, PBS's GC must then be able to touch a chunk's atime alone
# (utimensat, mtime omitted: only the owner may) and PBS must be able to add
# a snapshot to the group and prune this one.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
need_backup_user
S=$T/store
M=$T/m
"$DSFS" init "$S" >/dev/null
# A store PBS made: its own directories are backup's already.
chown -R backup:backup "$S"

head -c $((6 << 20)) /dev/urandom >"$T/disk.img"
head -c $((5 << 20)) /dev/urandom >"$T/data.bin"
mount_dsfs "$S" "$M"
SNAP=$M/ns/a/vm/100/2026-01-01T00:00:00Z
mkdir -p "$SNAP"
cp "$T/disk.img" "$SNAP/drive-scsi0.img"
cp "$T/data.bin" "$SNAP/data.bin"
echo "memory: 512" >"$SNAP/qemu-server.conf"
echo "a note" >"$SNAP/notes"
: >"$SNAP/.protected"
unmount_dsfs "$M"

snap=ns/a/vm/100/2026-01-01T00:00:00Z
[ -f "$S/$snap/index.json.blob" ] || fail "no manifest"
[ -e "$S/$snap/.protected" ] || fail "not protected"
bad=$(find "$S" \( ! -user backup -o ! -group backup \) -printf '%P %u:%g\n' | head -5)
[ -z "$bad" ] || fail "not owned by backup:backup: $bad"

n=0
for c in $(find "$S/.chunks" -type f); do
	touch -a -d 2020-01-01 "$c"
	as_backup touch -a -c "$c" 2>"$T/err" || fail "GC cannot touch a chunk: $(cat "$T/err")"
	[ "$(stat -c %X "$c")" -gt $(($(date +%s) - 60)) ] || fail "atime of $c not updated"
	n=$((n + 1))
done
[ "$n" -ge 3 ] || fail "only $n chunks written"
as_backup mkdir "$S/ns/a/vm/100/2026-01-02T00:00:00Z" 2>"$T/err" ||
	fail "PBS cannot add a snapshot: $(cat "$T/err")"
as_backup rm -f "$S/$snap/.protected" 2>"$T/err" || fail "PBS cannot unprotect: $(cat "$T/err")"
as_backup rm -rf "$S/$snap" 2>"$T/err" || fail "PBS cannot prune the snapshot: $(cat "$T/err")"
exit 0
