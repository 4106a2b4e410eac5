# Open files of a mount are PBS active operations (spec §6.5): while files
# are held open, /run/proxmox-backup/active-operations/<name> has an entry
# for the mount's pid (with its starttime) counting one read per open file;
# after close the count goes back to 0. Lookups (ls, stat) count nothing.
# `dsfs status` reports the same totals. The first open is in the file
# before open(2) returns; exact counts and the drop to 0 follow within about
# a second (the mount publishes them from its watcher), which is what PBS's
# tasks need: they poll once a second for the totals to reach 0.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse

NAME=teststore-$$ # directory mode: the datastore's name is its basename
STORE=$T/$NAME
OPS=/run/proxmox-backup/active-operations
remove_after_unmount "$OPS/$NAME" "$OPS/$NAME.lock"
fixture_copy pbs-store-a "$STORE"
printf 'datastore: %s\n\tpath %s\n' "$NAME" "$STORE" >"$T/datastore.cfg"
M=$T/m
SNAP=$M/vm/101/2024-03-02T08:02:17Z

mount_dsfs "$STORE" "$M"
ls -R "$M/vm" >/dev/null
stat "$SNAP/qemu-server.conf" >/dev/null

# ops_of: "read write" of the mount's entry ("none" without one), after
# checking the entry's starttime is the mount process's (field 22 of stat).
ops_of() {
	python3 - "$OPS/$NAME" "$MOUNT_PID" <<'PY'
import json, sys
path, pid = sys.argv[1], int(sys.argv[2])
try:
    entries = json.load(open(path))
except FileNotFoundError:
    print("none"); sys.exit(0)
assert isinstance(entries, list), entries
mine = [e for e in entries if e["pid"] == pid]
if not mine:
    print("none"); sys.exit(0)
assert len(mine) == 1, entries
stat = open(f"/proc/{pid}/stat").read()
starttime = int(stat[stat.rindex(")") + 2:].split()[19])
assert mine[0]["starttime"] == starttime, (mine[0], starttime)
ops = mine[0]["active_operations"]
print(ops["read"], ops["write"])
PY
}
# expect_ops "R W" [dsfs status too]: polls for ~3 s (FUSE's release is
# asynchronous, and counts are published within a second).
expect_ops() {
	local want=$1 got
	for _ in $(seq 30); do
		got=$(ops_of) || fail "bad active-operations file: $(cat "$OPS/$NAME")"
		[ "$got" = "$want" ] && break
		sleep 0.1
	done
	[ "$got" = "$want" ] || fail "active operations '$got', want '$want': $(cat "$OPS/$NAME" 2>&1)"
	"$DSFS" status --config "$T/datastore.cfg" "$NAME" >"$T/status" || fail "dsfs status"
	grep -qx "active-read: ${want% *}" "$T/status" && grep -qx "active-write: ${want#* }" "$T/status" ||
		fail "dsfs status, want $want: $(cat "$T/status")"
}

# Lookups and listings are not operations: no count (the entry may or may
# not exist yet; a writable mount's startup cleanup of the store is a write
# operation that has ended, published within a second).
for _ in $(seq 30); do
	case $(ops_of) in "none" | "0 0") break ;; esac
	sleep 0.1
done
case $(ops_of) in "none" | "0 0") ;; *) fail "lookups counted: $(ops_of)" ;; esac

# hold.py FILE...: opens each file, reads a byte, then waits for
# $T/s.close<i> before closing file i; $T/s.opened when all are open.
cat >"$T/hold.py" <<'PY'
import os, sys, time
t, files = sys.argv[1], sys.argv[2:]
fs = []
for p in files:
    f = open(p, "rb", buffering=0)
    assert len(f.read(1)) == 1, p
    fs.append(f)
open(f"{t}/s.opened", "w").close()
end = time.monotonic() + 30
for i, f in enumerate(fs):
    while not os.path.exists(f"{t}/s.close{i}"):
        if time.monotonic() > end:
            sys.exit("not told to close")
        time.sleep(0.02)
    f.close()
    open(f"{t}/s.closed{i}", "w").close()
PY
wait_for() {
	for _ in $(seq 200); do [ -e "$1" ] && return 0; sleep 0.05; done
	cat "$T/hold.log" >&2
	fail "no $1"
}

# One file held open: read 1.
python3 "$T/hold.py" "$T" "$SNAP/drive-scsi0.img" >"$T/hold.log" 2>&1 &
hold=$!
wait_for "$T/s.opened"
# at once, no polling: PBS must not see 0 while the file is open
[ "$(ops_of)" = "1 0" ] || fail "the open is not in the file at once: $(ops_of)"
expect_ops "1 0"
touch "$T/s.close0"
wait "$hold" || { cat "$T/hold.log" >&2; fail "holder failed"; }
expect_ops "0 0"

# Two files, and one of them twice: each open is one operation.
rm -f "$T/s."*
python3 "$T/hold.py" "$T" "$SNAP/drive-scsi0.img" "$SNAP/qemu-server.conf" \
	"$SNAP/drive-scsi0.img" >"$T/hold.log" 2>&1 &
hold=$!
wait_for "$T/s.opened"
expect_ops "3 0"
touch "$T/s.close0"
wait_for "$T/s.closed0"
expect_ops "2 0"
touch "$T/s.close1" "$T/s.close2"
wait "$hold" || { cat "$T/hold.log" >&2; fail "holder failed"; }
expect_ops "0 0"

# A refused open is no operation: writes fail with EROFS, nothing counted.
if (: >"$SNAP/qemu-server.conf") 2>/dev/null; then fail "write open succeeded"; fi
expect_ops "0 0"

# When the mount goes away its entry is dead: the totals (live pids) are 0.
unmount_dsfs "$M"
"$DSFS" status --config "$T/datastore.cfg" "$NAME" >"$T/status" || fail "dsfs status"
grep -qx "active-read: 0" "$T/status" || fail "dead mount still counted: $(cat "$T/status")"
# The file cannot be updated (its lock file is a directory here; a /run
# the mount cannot write, or a mount not run as root): files still open,
# and the failure is logged once, not at every open and every second.
rm -f "$OPS/$NAME.lock"
mkdir "$OPS/$NAME.lock"
cleanup_hooks+=("rmdir '$OPS/$NAME.lock' 2>/dev/null")
: >"$T/mount.log"
mount_dsfs "$STORE" "$M"
for i in $(seq 20); do
	cmp -s "$SNAP/qemu-server.conf" "$SNAP/qemu-server.conf" || fail "read $i"
done
sleep 2.2 # two of the watcher's rounds
n=$(grep -c "cannot update active operations" "$T/mount.log")
[ "$n" = 1 ] || { cat "$T/mount.log" >&2; fail "the failure was logged $n times, not once"; }
# Once it can be updated again, that is logged, and counting goes on.
rmdir "$OPS/$NAME.lock"
exec 8<"$SNAP/qemu-server.conf"
wait_until "active operations recorded again" grep -q "active operations recorded again" "$T/mount.log"
expect_ops "1 0"
exec 8<&-
expect_ops "0 0"
unmount_dsfs "$M"
echo "active operations of the mount ok"
