# Run as root, `dsfs init` and `dsfs backup` leave every file and directory
# they create in the datastore to PBS's service user backup:backup, with
# PBS's modes whatever the umask (group and snapshot directories and the
# owner file were 0700/0600 under umask 077), as
# PBS's own daemons (running as backup) create them: the proxy must be able
# to touch reused chunks during GC (utimensat with atime = now and mtime
# omitted needs the file's owner, not only write access), remove unused
# ones, add snapshots to a group, rewrite a manifest and prune a snapshot.
# Each of those is done here as user backup, with the syscalls PBS uses.
. "$(dirname "$0")/../testlib.bash"
need_backup_user
S=$T/store

umask 077 # modes must not follow the umask either
"$DSFS" init "$S" >/dev/null
umask 022
for p in "$S" "$S/.chunks" "$S/.chunks/0000" "$S/.chunks/ffff" "$S/.lock"; do
	[ "$(stat -c %U:%G "$p")" = backup:backup ] || fail "$p is $(stat -c %U:%G "$p"), not backup:backup"
done

head -c $((5 << 20)) /dev/urandom >"$T/disk.img"
head -c $((3 << 20)) /dev/urandom >"$T/stream.bin"
echo "memory: 512" >"$T/vm.conf"
# Under umask 077 too (a root shell's): the modes below are PBS's, exactly.
umask 077
expect_status 0 "$DSFS" backup "$S" --ns a/b vm/100 --time 2025-01-01T00:00:00Z \
	drive-scsi0.img="$T/disk.img" qemu-server.conf="$T/vm.conf" data.didx="$T/stream.bin"
umask 022
g=ns/a/ns/b/vm/100
snap=$g/2025-01-01T00:00:00Z
[ -f "$S/$snap/index.json.blob" ] || fail "no manifest"

# Everything in the store is backup's, with PBS's modes.
bad=$(find "$S" \( ! -user backup -o ! -group backup \) -printf '%P %u:%g\n' | head -5)
[ -z "$bad" ] || fail "not owned by backup:backup: $bad"
for d in ns/a ns/a/ns/b/vm "$g" "$snap"; do
	[ "$(stat -c %a "$S/$d")" = 755 ] || fail "$d has mode $(stat -c %a "$S/$d")"
done
for f in "$g/owner" "$snap/index.json.blob" "$snap/drive-scsi0.img.fidx" \
	"$snap/data.didx" "$snap/qemu-server.conf.blob"; do
	[ "$(stat -c %a "$S/$f")" = 644 ] || fail "$f has mode $(stat -c %a "$S/$f")"
done
chunk=$(find "$S/.chunks" -type f -print -quit)
[ -n "$chunk" ] || fail "no chunk written"
[ "$(stat -c %a "$chunk")" = 644 ] || fail "chunk has mode $(stat -c %a "$chunk")"

# PBS's GC phase 1 (cond_touch_chunk: utimensat atime UTIME_NOW, mtime
# UTIME_OMIT, which touch -a does) and phase 2 (unlink), as backup.
touch -a -d '2020-01-01' "$chunk"
as_backup touch -a -c "$chunk" 2>"$T/err" || fail "GC cannot touch the chunk: $(cat "$T/err")"
[ "$(stat -c %X "$chunk")" -gt $(($(date +%s) - 60)) ] || fail "atime not updated"
# A second backup of the same data reuses (and touches) chunks; PBS
# must still be able to touch them afterwards.
expect_status 0 "$DSFS" backup "$S" --ns a/b vm/100 --time 2025-01-02T00:00:00Z \
	drive-scsi0.img="$T/disk.img"
as_backup touch -a -c "$chunk" 2>"$T/err" || fail "GC cannot touch a reused chunk: $(cat "$T/err")"

# PBS's next backup into the group, a manifest update (verify state,
# notes: a temp file renamed over it), a prune, GC's sweep.
as_backup mkdir "$S/$g/2025-01-03T00:00:00Z" 2>"$T/err" || fail "PBS cannot add a snapshot: $(cat "$T/err")"
as_backup cp "$S/$snap/index.json.blob" "$S/$snap/index.json.tmp_abcdef" 2>"$T/err" &&
	as_backup mv "$S/$snap/index.json.tmp_abcdef" "$S/$snap/index.json.blob" 2>>"$T/err" ||
	fail "PBS cannot rewrite the manifest: $(cat "$T/err")"
as_backup rm -rf "$S/$snap" 2>"$T/err" || fail "PBS cannot prune the snapshot: $(cat "$T/err")"
as_backup rm -f "$chunk" 2>"$T/err" || fail "GC cannot remove a chunk: $(cat "$T/err")"
exit 0
