# Notes written into a new snapshot before any of its archives wait for
# the first commit: a manifest holding them alone would finish the
# snapshot with no archive, which PBS and the group's `latest` take for a
# finished backup (and a backup that then failed would look whole).
# Meanwhile they are listed and read back; the first archive's manifest
# holds them; a snapshot that never gets an archive stays unfinished, and
# the unmount logs that its notes were not written.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
mount_new_snapshot
disk=$S/vm/100/2026-01-01T00:00:00Z
manifest_notes() {
	manifest_py "vm/100/$1" \
		'repr(m.get("unprotected", {}).get("notes")) + " " + repr(sorted(f["filename"] for f in m["files"]))'
}
manifest_is() { [ "$(manifest_notes "$1")" = "$2" ]; }

printf 'first\n' >"$SNAP/notes"
printf 'second\n' >>"$SNAP/notes"
[ ! -e "$disk/index.json.blob" ] || fail "notes alone finished the snapshot"
listed "$SNAP" notes || fail "notes not listed: $(ls "$SNAP")"
[ "$(cat "$SNAP/notes")" = "$(printf 'first\nsecond')" ] || fail "notes read $(cat -v "$SNAP/notes")"
[ "$(stat -c %s "$SNAP/notes")" = 13 ] || fail "notes size $(stat -c %s "$SNAP/notes")"
[ ! -e "$M/vm/100/latest" ] || fail "the group has a latest snapshot"
expect_status 3 "$DSFS" verify "$S" vm/100/2026-01-01T00:00:00Z # unfinished, nobody writing
grep -q "unfinished snapshot" "$T/err" || fail "verify: $(cat "$T/err")"

echo data >"$SNAP/f.txt"
wait_until "the first commit" test -e "$disk/index.json.blob"
[ "$(manifest_notes 2026-01-01T00:00:00Z)" = "'first\\nsecond\\n' ['f.txt.blob']" ] ||
	fail "manifest after the first commit: $(manifest_notes 2026-01-01T00:00:00Z)"
# Once finished, notes go into the manifest at once.
printf 'third\n' >"$SNAP/notes"
wait_until "notes in the manifest" manifest_is 2026-01-01T00:00:00Z "'third\\n' ['f.txt.blob']"

# Emptied before any archive: none.
SNAP2=$M/vm/100/2026-01-02T00:00:00Z
mkdir "$SNAP2"
printf 'gone\n' >"$SNAP2/notes"
rm "$SNAP2/notes"
not_listed "$SNAP2" notes || fail "emptied notes still listed"
echo x >"$SNAP2/g.txt"
wait_until "the second snapshot's commit" test -e "$S/vm/100/2026-01-02T00:00:00Z/index.json.blob"
[ "$(manifest_notes 2026-01-02T00:00:00Z)" = "None ['g.txt.blob']" ] ||
	fail "emptied notes written: $(manifest_notes 2026-01-02T00:00:00Z)"

# Notes alone, then unmount: no manifest, a log line.
SNAP3=$M/vm/100/2026-01-03T00:00:00Z
mkdir "$SNAP3"
printf 'orphan\n' >"$SNAP3/notes"
unmount_dsfs "$M"
[ ! -e "$S/vm/100/2026-01-03T00:00:00Z/index.json.blob" ] || fail "notes alone finished a snapshot"
grep -q "vm/100/2026-01-03T00:00:00Z: notes not written" "$T/mount.log" ||
	fail "no log line: $(cat "$T/mount.log")"
[ "$(grep -c "notes not written" "$T/mount.log")" = 1 ] ||
	fail "notes that were written logged as lost: $(grep "notes not written" "$T/mount.log")"
echo "write_notes_first: ok"
