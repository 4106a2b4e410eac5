# dsfs verify on a datastore that changes under it, as PBS's verify sees
# one (src/backup/verify.rs, verify_backup_dir): a snapshot removed after it
# was listed is skipped, not an error; each snapshot is checked under its
# shared lock, so a prune cannot remove it meanwhile; a snapshot locked by a
# backup still writing it is skipped; an unfinished snapshot whose lock is
# free (an abandoned backup) is an error.
#
# The removal is made deterministic with a fanotify permission event: the
# kernel holds verify's open of the first snapshot's index until the test
# has removed a later snapshot (taking its lock exclusively, as a prune
# does) and tried to lock the first one. The backup in progress is a real
# `dsfs backup` reading a FIFO the test keeps open without writing.
. "$(dirname "$0")/../testlib.bash"
need_fixtures
need_root_with python3 flock mkfifo

fixture_copy pbs-store-a "$T/s"
export A=$T/s/vm/101/2024-03-02T08:02:17Z B=$T/s/vm/101/2024-03-04T08:02:17Z T

# hold_open FILE CMD: runs until a process opens FILE, runs the shell
# command CMD while that open waits, then lets it go. $T/ready appears once
# the watch is in place.
hold_open() {
	python3 - "$1" "$2" "$T/ready" <<'PY'
import ctypes, os, select, struct, subprocess, sys
watch, cmd, ready = sys.argv[1:4]
libc = ctypes.CDLL(None, use_errno=True)
libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int,
                               ctypes.c_char_p]
FAN_CLOEXEC, FAN_CLASS_CONTENT, FAN_MARK_ADD, FAN_OPEN_PERM, FAN_ALLOW = 1, 4, 1, 0x10000, 1
fd = libc.fanotify_init(FAN_CLOEXEC | FAN_CLASS_CONTENT, os.O_RDONLY)
if fd < 0:
    sys.exit("fanotify_init: " + os.strerror(ctypes.get_errno()))
if libc.fanotify_mark(fd, FAN_MARK_ADD, FAN_OPEN_PERM, -100, watch.encode()) < 0:
    sys.exit("fanotify_mark: " + os.strerror(ctypes.get_errno()))
open(ready, "w").close()
if not select.select([fd], [], [], 60)[0]:
    sys.exit("nobody opened " + watch + " within 60 s")
buf, off, ran = os.read(fd, 4096), 0, False
while off + 24 <= len(buf):
    ev_len, _, _, _, mask, efd, pid = struct.unpack_from("<IBBHQii", buf, off)
    if not ran:
        subprocess.run(["sh", "-c", cmd], check=True)
        ran = True
    os.write(fd, struct.pack("<iI", efd, FAN_ALLOW))
    os.close(efd)
    off += ev_len
PY
}

# 1. B is removed while verify checks A, after both were listed; A's lock
#    is held meanwhile.
hold_open "$A/drive-scsi0.img.fidx" \
	'if flock -n -x "$A" true; then echo unlocked; else echo locked; fi >"$T/lockstate"
	 flock -n -x "$B" rm -rf "$B"' 2>"$T/hold.err" &
hold=$!
for _ in $(seq 200); do [ -e "$T/ready" ] && break; sleep 0.05; done
[ -e "$T/ready" ] || { cat "$T/hold.err"; fail "fanotify watch not set up"; }
got=0
"$DSFS" verify "$T/s" vm/101 >"$T/out" 2>"$T/err" || got=$?
wait "$hold" || { cat "$T/hold.err"; fail "the watch saw no open of A's index"; }
[ ! -e "$B" ] || fail "B was not removed during the run"
[ "$(cat "$T/lockstate")" = locked ] || fail "A could be locked exclusively while verify checked it"
[ "$got" = 0 ] || { cat "$T/err"; fail "verify exited $got after a snapshot was removed, want 0"; }
grep -q "vm/101/2024-03-04T08:02:17Z: skipped: snapshot does not exist (anymore)" "$T/err" ||
	{ cat "$T/err"; fail "removed snapshot not reported as skipped"; }
grep -q "verified 2 snapshots, .* (1 skipped: .*): 0 errors" "$T/out" ||
	{ cat "$T/out"; fail "summary after a removal"; }
rm -f "$T/ready"

# 2. A backup in progress: its snapshot has no manifest yet and is locked
#    exclusively by the writer. Verify skips it, as PBS does.
mkfifo "$T/fifo"
exec 3<>"$T/fifo"
"$DSFS" backup --time 2025-01-01T00:00:00Z "$T/s" host/inprog data.didx="$T/fifo" \
	>"$T/bk.out" 2>"$T/bk.err" &
bk=$!
cleanup_hooks+=("kill -9 $bk")
snap=$T/s/host/inprog/2025-01-01T00:00:00Z
for _ in $(seq 200); do
	[ -d "$snap" ] && ! flock -n -s "$snap" true 2>/dev/null && break
	sleep 0.05
done
! flock -n -s "$snap" true || { cat "$T/bk.err"; fail "backup did not lock its snapshot"; }
expect_status 0 "$DSFS" verify "$T/s" host/inprog
grep -q "host/inprog/2025-01-01T00:00:00Z: skipped: locked by another operation" "$T/err" ||
	{ cat "$T/err"; fail "snapshot in progress not reported as skipped"; }
grep -q "verified 0 snapshots, .* (1 skipped: .*): 0 errors" "$T/out" ||
	{ cat "$T/out"; fail "summary with a backup in progress"; }
expect_status 0 "$DSFS" verify "$T/s"
grep -q "verified 13 snapshots, .* (1 skipped: .*): 0 errors" "$T/out" ||
	{ cat "$T/out"; fail "whole-store summary with a backup in progress"; }

# 2b. The same when verify cannot make PBS's lock files (no write access to
#    the lock directory, here a path under a FIFO): it still takes
#    the directory lock, which the writer holds, and skips the snapshot.
#    It used to check it unlocked and report an abandoned backup (3).
DSFS_LOCK_DIR=$T/fifo/locks expect_status 0 "$DSFS" verify "$T/s" host/inprog
grep -q "cannot take snapshot locks" "$T/err" || { cat "$T/err"; fail "no warning about the locks"; }
grep -q "host/inprog/2025-01-01T00:00:00Z: skipped: locked by another operation" "$T/err" ||
	{ cat "$T/err"; fail "snapshot in progress not skipped without lock files"; }
grep -q "verified 0 snapshots, .* (1 skipped: .*): 0 errors" "$T/out" ||
	{ cat "$T/out"; fail "summary with a backup in progress, without lock files"; }

# 3. The writer dies (kill -9: nothing removes its snapshot). The unfinished
#    snapshot's lock is free now: an abandoned backup, which PBS's verify
#    fails with a manifest load error.
kill -9 "$bk"
wait "$bk" 2>/dev/null || true
exec 3>&-
[ -d "$snap" ] && [ ! -e "$snap/index.json.blob" ] || fail "no abandoned snapshot left"
expect_status 3 "$DSFS" verify "$T/s" host/inprog
grep -q "host/inprog/2025-01-01T00:00:00Z/index.json.blob: missing: unfinished snapshot" "$T/err" ||
	{ cat "$T/err"; fail "abandoned snapshot not reported"; }
grep -q "verified 0 snapshots, .*: 1 errors" "$T/out" || { cat "$T/out"; fail "summary, abandoned"; }
expect_status 3 "$DSFS" verify "$T/s"
grep -q "verified 13 snapshots, .*: 1 errors" "$T/out" ||
	{ cat "$T/out"; fail "whole-store summary, abandoned"; }
echo "verify_concurrent ok"
