# Notes of a finished snapshot this mount made, written or removed while
# this mount writes another snapshot of the same group: they go into the
# manifest at once, under the manifest lock alone, as PBS writes notes. They
# used to wait for the group lock, which the other snapshot's open file
# holds: `cat notes` hung for 30 s and the notes were then dropped (logged
# "notes not written: Device or resource busy") after close had returned
# 0; `rm notes` hung 30 s and failed with EBUSY.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
mount_new_snapshot
REL1=vm/100/2026-01-01T00:00:00Z
echo data >"$SNAP/a.conf"
SNAP2=$M/vm/100/2026-01-02T00:00:00Z
mkdir "$SNAP2"
# an image of the second snapshot stays open: its session holds the group lock
exec 3>"$SNAP2/disk.img"
echo x >&3

notes_of() { manifest_py "$REL1" 'repr(m.get("unprotected", {}).get("notes"))'; }
# a.conf's commit runs in the release after close(2): wait for its manifest
wait_until "first snapshot finished" test -e "$S/$REL1/index.json.blob"

echo "written while the group is busy" >"$SNAP/notes"
got=$(timeout 10 cat "$SNAP/notes") || fail "cat notes: exit $? (hung waiting for the group lock?)"
[ "$got" = "written while the group is busy" ] || fail "cat notes: '$got'"
[ "$(notes_of)" = "'written while the group is busy\\n'" ] || fail "manifest notes: '$(notes_of)'"

timeout 10 rm "$SNAP/notes" || fail "rm notes: exit $?"
[ "$(notes_of)" = "''" ] || fail "manifest notes after rm: '$(notes_of)'"
echo "again" >"$SNAP/notes"
[ "$(timeout 10 cat "$SNAP/notes")" = again ] || fail "notes rewritten"

# the other snapshot is unaffected
echo y >&3
exec 3>&-
wait_until "second snapshot committed" test -e "$S/vm/100/2026-01-02T00:00:00Z/disk.img.fidx"
unmount_dsfs "$M"
grep -q "notes not written" "$T/mount.log" && { cat "$T/mount.log" >&2; fail "notes dropped"; }
[ "$(notes_of)" = "'again\\n'" ] || fail "manifest notes at the end: '$(notes_of)'"
"$DSFS" verify "$S" >"$T/verify.out" || { cat "$T/verify.out" >&2; fail "verify"; }
echo "write_notes_group_busy: ok"
