# Notes of an unfinished snapshot this mount did not make (another
# writer's backup in progress, or one abandoned) cannot be written: no
# manifest holds them, and this mount may not make one. As for creating a
# file there, opening its notes for writing fails with EROFS; they used to
# be accepted, close returned 0 and the release dropped them with a log
# line only. A snapshot whose manifest goes away while its notes are open
# (forgotten meanwhile) fails the close with EROFS.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
mount_finished_snapshot
unmount_dsfs "$M"
# another writer's snapshot in progress: a directory with an archive and no manifest
other=vm/100/2026-01-05T00:00:00Z
mkdir "$S/$other"
echo partial >"$S/$other/x.conf.blob"
mount_dsfs "$S" "$M"
OTHER=$M/$other
[ -d "$OTHER" ] || fail "the other writer's snapshot not seen"

for redir in '>' '>>'; do
	if timeout 10 bash -c "echo x $redir '$OTHER/notes'" 2>"$T/err"; then
		fail "notes ($redir) of another's unfinished snapshot accepted"
	fi
	grep -q "Read-only file system" "$T/err" || fail "notes ($redir): $(cat "$T/err")"
done
python3 - "$OTHER/notes" <<'EOF2' || fail "open of another's unfinished snapshot's notes"
import errno, os, sys
for flags in (os.O_WRONLY | os.O_CREAT | os.O_TRUNC, os.O_WRONLY | os.O_CREAT | os.O_APPEND, os.O_RDWR | os.O_CREAT):
    try:
        os.close(os.open(sys.argv[1], flags))
        sys.exit("open %#o succeeded" % flags)
    except OSError as e:
        assert e.errno == errno.EROFS, (flags, e)
EOF2
not_listed "$OTHER" notes || fail "notes listed in another's unfinished snapshot"
[ ! -e "$S/$other/index.json.blob" ] || fail "a manifest was made"

# a finished snapshot of another mount (this one did not make it): its
# notes are written; forgotten while they are open: close fails
echo "kept" >"$SNAP/notes"
[ "$(timeout 10 cat "$SNAP/notes")" = kept ] || fail "notes of a finished snapshot"
python3 - "$SNAP/notes" "$S/vm/100/2026-01-01T00:00:00Z/index.json.blob" "$T/manifest.saved" <<'EOF2' ||
import errno, os, sys
path, manifest, saved = sys.argv[1:]
fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"lost\n")
os.rename(manifest, saved)
try:
    os.close(fd)
    err = None
except OSError as e:
    err = e.errno
os.rename(saved, manifest)
assert err == errno.EROFS, "close gave %r" % err
EOF2
	fail "close of notes of a snapshot that lost its manifest"
sleep 0.5 # the release, after close returned, must not write them either
[ "$(timeout 10 cat "$SNAP/notes")" = kept ] || fail "refused notes written: $(cat "$SNAP/notes")"
[ "$(manifest_py vm/100/2026-01-01T00:00:00Z 'repr(m["unprotected"]["notes"])')" = "'kept\\n'" ] ||
	fail "manifest notes: $(manifest_py vm/100/2026-01-01T00:00:00Z 'repr(m["unprotected"].get("notes"))')"
unmount_dsfs "$M"
echo "write_notes_unfinished: ok"
