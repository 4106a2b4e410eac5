# Every open file holds a descriptor in the daemon (its snapshot lock, and
# for pxar files their archive), so the daemon raises its soft limit of open
# files to the hard one at start: under the usual soft limit of 1024 a
# program holding a few hundred files open got EMFILE (as EIO or EMFILE on
# open) although the hard limit allowed many more. Run here with a soft
# limit of 256 and a hard one of 8192.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
command -v prlimit >/dev/null || { echo "SKIP: prlimit missing" >&2; exit 77; }
S=$T/store
"$DSFS" init "$S" >/dev/null
mkdir "$T/src"
printf 'f\n' >"$T/src/f"
printf 'x\n' >"$T/x.conf"
"$DSFS" backup --time 2026-01-01T00:00:00Z "$S" vm/1 x.conf="$T/x.conf" \
	root.pxar="$T/src" >/dev/null
mkdir "$T/m"
prlimit --nofile=256:8192 "$MOUNT_DSFS" "$S" "$T/m" -f >>"$T/mount.log" 2>&1 &
MOUNT_PID=$!
cleanup_hooks+=("fusermount3 -u '$T/m' 2>/dev/null; kill $MOUNT_PID 2>/dev/null")
wait_until "mounted" mountpoint -q "$T/m"
grep -q "^Max open files  *8192  *8192 " "/proc/$MOUNT_PID/limits" ||
	fail "soft limit not raised: $(grep 'open files' "/proc/$MOUNT_PID/limits")"
python3 - "$T/m/vm/1/2026-01-01T00:00:00Z" <<'PY'
import os, sys
snap = sys.argv[1]
fds = []
for i in range(600):
    fds.append(os.open(snap + ("/x.conf" if i % 2 else "/root.pxar/f"), os.O_RDONLY))
for i, fd in enumerate(fds):
    assert os.read(fd, 10) == (b"x\n" if i % 2 else b"f\n"), i
    os.close(fd)
PY
unmount_dsfs "$T/m"
echo "many_open: ok"
