# A v1 archive's link counts come from its snapshot's catalog. A process
# sitting in the archive (an open directory) keeps the old archive when the
# snapshot is made again under the same time (snapshot_recreated.sh); the
# counts it sees there must still be the old archive's, not ones built
# from the new snapshot's catalog. Old tree: d/hl1, f and hl2 are one file
# (3 links); new tree: d/hl1 alone, f and hl2 one file (2 links). The new
# catalog's only hardlink, hl2, is a hardlink in the old archive too, so
# nothing in the archive tells the catalogs apart.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
S=$T/store
"$DSFS" init "$S" >/dev/null
TS=2026-01-01T00:00:00Z
rm -rf "$T/src"
mkdir -p "$T/src/d"
echo one >"$T/src/d/hl1"
ln "$T/src/d/hl1" "$T/src/f"
ln "$T/src/d/hl1" "$T/src/hl2"
"$DSFS" backup --time "$TS" "$S" vm/1 root.pxar="$T/src" >/dev/null || fail "backup a"
mount_dsfs "$S" "$T/m"
P=$T/m/vm/1/$TS

mkfifo "$T/go" "$T/ready"
timeout 60 python3 - "$P" "$T/go" "$T/ready" >"$T/py.out" 2>&1 <<'PY' &
import os, sys
# The archive's root only: no file of it is looked up before the re-creation.
d = os.open(sys.argv[1] + "/root.pxar", os.O_RDONLY | os.O_DIRECTORY)
open(sys.argv[3], "w").close()
open(sys.argv[2]).read()
for name in ("f", "hl2", "d/hl1"):
    print(name, os.stat(name, dir_fd=d).st_nlink)
PY
PY_PID=$!
cleanup_hooks=("kill $PY_PID 2>/dev/null" "${cleanup_hooks[@]}")
timeout 60 cat "$T/ready" >/dev/null || fail "old archive not opened: $(cat "$T/py.out")"

rm -rf "${S:?}/vm/1/$TS" "$T/src"
mkdir -p "$T/src/d"
echo one >"$T/src/d/hl1"
echo one >"$T/src/f"
ln "$T/src/f" "$T/src/hl2"
"$DSFS" backup --time "$TS" "$S" vm/1 root.pxar="$T/src" >/dev/null || fail "backup b"
timeout 60 bash -c 'echo >"$1"' _ "$T/go" || fail "go: $(cat "$T/py.out")"
wait "$PY_PID" || fail "stat in the old archive: $(cat "$T/py.out")"
want=$'f 3\nhl2 3\nd/hl1 3'
[ "$(cat "$T/py.out")" = "$want" ] ||
	fail "link counts in the old archive: $(tr '\n' ' ' <"$T/py.out"), want 3 each"
# And the new snapshot, looked up again (past the snapshot directory's
# entry timeout), has its own.
sleep 1.2
n=$(stat -c %h "$P/root.pxar/f") && [ "$n" = 2 ] || fail "f in the new archive: $n links"
n=$(stat -c %h "$P/root.pxar/d/hl1") && [ "$n" = 1 ] || fail "d/hl1 in the new archive: $n links"
unmount_dsfs "$T/m"
echo "pxar links after re-creation ok"
