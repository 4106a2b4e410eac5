# Notes being written through the handle of a create (`exec 3>notes` where
# there were none) are listed and found by name while the handle is open,
# as files being written are: they were left out of `ls`, and once the
# kernel's entry had expired (1 s) looking them up by name failed with
# ENOENT, while they were read back through the entry the create made.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
mount_finished_snapshot
SNAP2=$M/vm/100/2026-01-02T00:00:00Z
mkdir "$SNAP2"
# a finished snapshot without notes, and one waiting for its first archive
for snap in "$SNAP" "$SNAP2"; do
	not_listed "$snap" notes || fail "$snap: notes listed before any were written"
	exec 3>"$snap/notes"
	printf 'being written\n' >&3
	listed "$snap" notes || fail "$snap: notes being written not listed: $(ls "$snap")"
	sleep 1.2 # past the kernel's entry for notes: looked up anew
	[ "$(timeout 10 cat "$snap/notes")" = "being written" ] || fail "$snap: notes not read back by name"
	[ "$(stat -c %s "$snap/notes")" = 14 ] || fail "$snap: notes size $(stat -c %s "$snap/notes")"
	listed "$snap" notes || fail "$snap: notes being written not listed after 1 s: $(ls "$snap")"
	exec 3>&-
	wait_until "$snap: notes written" listed "$snap" notes
	[ "$(timeout 10 cat "$snap/notes")" = "being written" ] || fail "$snap: notes after close"
done
[ "$(manifest_py vm/100/2026-01-01T00:00:00Z 'repr(m["unprotected"]["notes"])')" = "'being written\\n'" ] ||
	fail "manifest notes: $(manifest_py vm/100/2026-01-01T00:00:00Z 'repr(m["unprotected"].get("notes"))')"
# an emptied writer (`exec 3>notes`, nothing written) is listed while
# open, as an empty file being written is, and the notes are empty after
exec 3>"$SNAP/notes"
listed "$SNAP" notes || fail "emptied notes being written not listed"
[ "$(stat -c %s "$SNAP/notes")" = 0 ] || fail "emptied notes size $(stat -c %s "$SNAP/notes")"
exec 3>&-
notes_emptied() { [ "$(manifest_py vm/100/2026-01-01T00:00:00Z 'repr(m["unprotected"].get("notes", ""))')" = "''" ]; }
wait_until "notes emptied" notes_emptied
unmount_dsfs "$M"
echo "write_notes_listed: ok"
