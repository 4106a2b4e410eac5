# A write refused while the datastore is read-only abandons its file: every
# later write and truncate of it fails too, also once the refusal is over
# (README "Writing through the mount": "returned by that write, by every
# later one and by close/fsync"), instead of being accepted into an archive
# that will never be committed.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse

S=$T/store
"$DSFS" init "$S" >/dev/null
NAME=dsfs-sticky-$$
cleanup_hooks+=("rm -f /run/proxmox-backup/active-operations/$NAME /run/proxmox-backup/active-operations/$NAME.lock")
printf 'datastore: %s\n\tpath %s\n' "$NAME" "$S" >"$T/datastore.cfg"
M=$T/m
mount_dsfs "$T/datastore.cfg" "$M"
SNAP=$M/$NAME/vm/100/2026-01-01T00:00:00Z
mkdir -p "$SNAP"

python3 - "$SNAP" "$DSFS" "$T/datastore.cfg" "$NAME" <<'EOF' || fail "sticky write errors"
import errno, os, subprocess, sys, time
snap, dsfs, cfg, name = sys.argv[1:]
def mode(m):
    subprocess.run([dsfs, "maintenance", "--config", cfg, name, m], check=True,
                   stdout=subprocess.DEVNULL)
    time.sleep(2.5) # the mount notices config changes within 2 s
def res(f, *a):
    try:
        f(*a)
        return "OK"
    except OSError as e:
        return errno.errorcode[e.errno]
fds = {}
for f in ("a.img", "a.txt"):
    fds[f] = os.open(os.path.join(snap, f), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    assert res(os.pwrite, fds[f], b"y" * 4096, 0) == "OK"
mode("read-only")
for f, fd in fds.items():
    got = res(os.pwrite, fd, b"y" * 4096, 4096)
    assert got == "EROFS", (f, "while read-only", got)
mode("clear")
bad = []
for f, fd in fds.items():
    for what, got in (("write", res(os.pwrite, fd, b"y" * 4096, 8192)),
                      ("ftruncate", res(os.ftruncate, fd, 100)),
                      ("close", res(os.close, fd))):
        if got != "EROFS":
            bad.append((f, what, got))
assert not bad, bad
EOF
sleep 0.5
D=$S/vm/100/2026-01-01T00:00:00Z
[ ! -e "$D/a.img.fidx" ] && [ ! -e "$D/a.txt.blob" ] || fail "an abandoned archive was committed"
unmount_dsfs "$M"
echo "write_sticky: ok"
