# A snapshot removed and made again under the same time while mounted (PBS
# forgot it and a sync or `dsfs backup --time` wrote another one) is
# another snapshot: once the mount looks its directory up again (within a
# second), its files show the new contents, although the kernel was told
# to keep the old ones' pages and names for an hour. The old and the new
# files have the same sizes, so nothing but the snapshot's identity tells
# them apart.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
S=$T/store
"$DSFS" init "$S" >/dev/null
TS=2026-01-01T00:00:00Z
make_snapshot() { # LETTER: an image, a blob and a pxar tree full of it
	rm -rf "$T/src"
	mkdir -p "$T/src/d"
	python3 -c "import sys; open(sys.argv[1], 'wb').write(sys.argv[2].encode() * (3 << 20))" \
		"$T/disk.img" "$1"
	printf '%s\n' "$1$1$1" >"$T/x.conf"
	cp "$T/x.conf" "$T/y.conf"
	printf '%s\n' "$1$1$1$1" >"$T/src/d/f"
	printf '%s\n' "$1$1$1$1" >"$T/src/d/g"
	# The second one has a file before f and g: their entries move.
	[ "$1" = a ] || head -c 3000 /dev/urandom >"$T/src/d/e"
	"$DSFS" backup --time "$TS" "$S" vm/1 disk.img="$T/disk.img" x.conf="$T/x.conf" \
		y.conf="$T/y.conf" root.pxar="$T/src" >/dev/null || fail "backup $1"
}
make_snapshot a
mount_dsfs "$S" "$T/m"
P=$T/m/vm/1/$TS
[ "$(head -c 4 "$P/disk.img")" = aaaa ] || fail "first image"
[ "$(cat "$P/x.conf")" = aaa ] || fail "first blob"
[ "$(cat "$P/root.pxar/d/f")" = aaaa ] || fail "first pxar file"
# A process sitting in the old archive's directory (a shell's working
# directory) keeps the old directory; what it opens there afterwards is the
# old file, or fails: never the new archive's bytes at the old file's place.
# (g was never read, so no page of it is cached.)
# Every wait on the FIFOs is bounded: python failing (an assertion) left
# bash waiting forever to open go2 (a CI run hung here).
mkfifo "$T/go" "$T/done" "$T/go2"
timeout 60 python3 - "$P" "$T/go" "$T/done" "$T/go2" >"$T/stale.out" 2>&1 <<'PY' &
import errno, os, sys
snap = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
d = os.open(sys.argv[1] + "/root.pxar/d", os.O_RDONLY | os.O_DIRECTORY)
open(sys.argv[3], "w").close()  # ready
open(sys.argv[2]).read()       # re-created
for dirfd, name, old in ((d, "g", b"aaaa\n"), (snap, "y.conf", b"aaa\n")):
    try:  # neither was read before
        fd = os.open(name, os.O_RDONLY, dir_fd=dirfd)
        data = os.read(fd, 100)
        print(name, "read", data)
        assert data == old, data
    except OSError as e:
        print(name, "error", e)
        assert e.errno in (errno.ESTALE, errno.EIO, errno.ENOENT), e
open(sys.argv[4]).read()       # the new archive was opened: the old one closed
try:
    names = os.listdir(d)
    print("old directory lists", names)
    assert sorted(names) == ["f", "g"], names
except OSError as e:
    print("old directory:", e)
    # ESTALE from dsfs (the old archive is closed). EIO was the kernel's
    # while the new directory had the old one's node id (another
    # generation makes the old inode bad); it has its own now.
    assert e.errno in (errno.ESTALE, errno.EIO), e
PY
STALE=$!
cleanup_hooks=("[ -z \"\$STALE\" ] || kill \$STALE 2>/dev/null" "${cleanup_hooks[@]}")
timeout 60 cat "$T/done" >/dev/null || fail "old directories not opened: $(cat "$T/stale.out")"

rm -rf "${S:?}/vm/1/$TS"
make_snapshot b
sleep 1.2 # past the snapshot directory's entry timeout
timeout 60 bash -c 'echo >"$1"' _ "$T/go" || fail "go: $(cat "$T/stale.out")"
[ "$(head -c 4 "$P/disk.img")" = bbbb ] || fail "image after re-creation: $(head -c 4 "$P/disk.img")"
cmp -s "$P/disk.img" "$T/disk.img" || fail "image after re-creation differs"
[ "$(cat "$P/x.conf")" = bbb ] || fail "blob after re-creation: $(cat "$P/x.conf")"
[ "$(cat "$P/root.pxar/d/f")" = bbbb ] ||
	fail "pxar file after re-creation: $(cat "$P/root.pxar/d/f")"
timeout 60 bash -c 'echo >"$1"' _ "$T/go2" ||
	fail "opens through the old directories: $(cat "$T/stale.out")"
wait $STALE || fail "old directory after re-creation: $(cat "$T/stale.out")"
STALE=
"$DSFS" verify "$S" >/dev/null || fail "verify"
unmount_dsfs "$T/m"
echo "snapshot_recreated: ok"
