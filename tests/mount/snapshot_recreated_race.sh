# A snapshot made again under the same time while a process holds a
# directory of the old one open: requests on the old directory that the
# kernel sends while the mount answers the first lookup of the new one
# must still be the old snapshot's. They used to get the new one's (the old
# and the new nodes had one node id, the kernel tells them apart by
# generation only once it has the lookup's answer): through the old
# directories, an open read the new blob and the new archive's file, and
# snapshot_recreated.sh hung in CI when its one open hit that window. Here
# a process opens through the old directories in a loop while the new
# snapshot is looked up, a few times over; every wait is bounded.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
S=$T/store
"$DSFS" init "$S" >/dev/null
TS=2026-01-01T00:00:00Z
make_snapshot() { # LETTER
	rm -rf "${S:?}/vm/1/$TS" "$T/src"
	mkdir -p "$T/src/d"
	head -c 100000 /dev/zero | tr '\0' "$1" >"$T/disk.img"
	printf '%s\n' "$1$1$1" >"$T/y.conf"
	printf '%s\n' "$1$1$1$1" >"$T/src/d/f"
	printf '%s\n' "$1$1$1$1" >"$T/src/d/g"
	# Every other one has a file before f and g: their entries move.
	case $1 in b | d | f) head -c 3000 /dev/urandom >"$T/src/d/e" ;; esac
	"$DSFS" backup --time "$TS" "$S" vm/1 disk.img="$T/disk.img" y.conf="$T/y.conf" \
		root.pxar="$T/src" >/dev/null || fail "backup $1"
}
make_snapshot a
mount_dsfs "$S" "$T/m"
P=$T/m/vm/1/$TS
STALE=
cleanup_hooks=("[ -z \"\$STALE\" ] || kill \$STALE 2>/dev/null" "${cleanup_hooks[@]}")
old=a
for new in b c d e f; do
	[ "$(cat "$P/y.conf")" = "$old$old$old" ] || fail "blob before $new"
	[ "$(cat "$P/root.pxar/d/f")" = "$old$old$old$old" ] || fail "pxar file before $new"
	rm -f "$T/ready" "$T/go"
	mkfifo "$T/ready" "$T/go"
	# Whatever an open through the old directories gives, it is not the
	# new snapshot's file: the old bytes, or an error.
	timeout 60 python3 - "$P" "$T/ready" "$T/go" "$old" >"$T/stale.out" 2>&1 <<'PY' &
import errno, os, sys, time
snap = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
d = os.open(sys.argv[1] + "/root.pxar/d", os.O_RDONLY | os.O_DIRECTORY)
c = sys.argv[4].encode()
open(sys.argv[2], "w").close()
open(sys.argv[3]).read()
seen, end = {}, time.monotonic() + 2
while time.monotonic() < end:
    for dirfd, name, want in ((d, "g", c * 4 + b"\n"), (snap, "y.conf", c * 3 + b"\n")):
        try:
            fd = os.open(name, os.O_RDONLY, dir_fd=dirfd)
            data = os.read(fd, 100)
            os.close(fd)
            assert data == want, (name, data)
            k = (name, "old bytes")
        except OSError as e:
            assert e.errno in (errno.ESTALE, errno.EIO, errno.ENOENT), (name, e)
            k = (name, errno.errorcode[e.errno])
        seen[k] = seen.get(k, 0) + 1
print(seen)
PY
	STALE=$!
	timeout 60 cat "$T/ready" >/dev/null || fail "the old directories were not opened: $(cat "$T/stale.out")"
	make_snapshot "$new"
	sleep 1.2 # past the snapshot directory's entry timeout
	timeout 60 bash -c 'echo >"$1"' _ "$T/go" || fail "go: $(cat "$T/stale.out")"
	[ "$(cat "$P/y.conf")" = "$new$new$new" ] || fail "blob after $new"
	[ "$(cat "$P/root.pxar/d/f")" = "$new$new$new$new" ] || fail "pxar file after $new"
	wait $STALE || fail "through the old directories ($old to $new): $(cat "$T/stale.out")"
	STALE=
	echo "$old to $new: $(cat "$T/stale.out")"
	old=$new
done
unmount_dsfs "$T/m"
echo "snapshot_recreated_race: ok"
