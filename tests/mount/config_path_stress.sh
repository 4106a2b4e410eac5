# A datastore's path flipped back and forth in datastore.cfg (A, B, A, ...)
# while readers (cat of an image and a blob, ls -R of a pxar archive) and a
# writer (cp into new snapshots) run through the mount: every cat gives
# exactly the bytes of one of the two stores, every snapshot written reads
# back (one cut by a change is left unfinished), the daemon survives and unmounts cleanly, and both stores verify.
# Then, deterministically: a writer held across A -> B -> A and one started
# after the return share the store's shared .lock, so the first one's end
# does not let garbage collection in under the second (before: a second
# chunk store on A, whose .lock's record lock died with the first's close).
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse

SECS=${DSFS_PATH_STRESS_SECS:-6}
. "$(dirname "$0")/two_stores.bash"
head -c 300000 /dev/urandom >"$T/w.img"

set_path "$A"
M=$T/m
mount_dsfs "$NAME" "$M" -o "config=$CFG"

STOP=$T/stop
# reader F FILE: each cat of $SNAP's FILE is a's or b's bytes whole ($T/a.F,
# $T/b.F), or an error. $T/n.F: how many cats read it whole (some must, or
# nothing was compared: the reader once read "$SNAP/conf", which is no
# file, so every cat failed and nothing was checked).
reader() {
	local f=$1 file=$2 n=0
	while [ ! -e "$STOP" ]; do
		cat "$M/$SNAP/$file" >"$T/r.$f" 2>/dev/null || continue
		cmp -s "$T/r.$f" "$T/a.$f" || cmp -s "$T/r.$f" "$T/b.$f" ||
			{ echo "reader: $f is neither a's nor b's" >"$T/bad.$f"; return 1; }
		n=$((n + 1))
	done
	echo "$n" >"$T/n.$f"
}
lister() {
	while [ ! -e "$STOP" ]; do ls -R "$M/$CT/root.pxar" >/dev/null 2>&1 || true; done
}
# writer: snapshots of vm/900 written with cp; each one written whole is
# read back (it may be in either store).
writer() {
	local n=0 s
	while [ ! -e "$STOP" ]; do
		n=$((n + 1))
		s=vm/900/$(date -u -d "@$((1700000000 + n))" +%Y-%m-%dT%H:%M:%SZ)
		mkdir -p "$M/vm/900" 2>/dev/null || continue
		mkdir "$M/$s" 2>/dev/null || continue
		cp "$T/w.img" "$M/$s/disk.img" 2>/dev/null || continue
		echo "$s" >>"$T/written"
	done
}
reader conf qemu-server.conf & P1=$!
reader img drive-scsi0.img & P2=$!
lister & P3=$!
writer & P4=$!
end=$((SECONDS + SECS))
flips=0
while [ "$SECONDS" -lt "$end" ]; do
	set_path "$B"
	sleep 0.15
	set_path "$A"
	sleep 0.15
	flips=$((flips + 2))
	kill -0 "$MOUNT_PID" 2>/dev/null || { cat "$T/mount.log" >&2; fail "mount.dsfs died"; }
done
touch "$STOP"
rc=0
for p in $P1 $P2 $P3 $P4; do wait "$p" || rc=1; done
cat "$T"/bad.* 2>/dev/null >&2 && fail "a reader saw mixed bytes"
[ "$rc" = 0 ] || fail "a stress job failed"
for f in conf img; do
	[ "$(cat "$T/n.$f")" -gt 0 ] || fail "no cat of $f read it whole: nothing was compared"
done
kill -0 "$MOUNT_PID" 2>/dev/null || { cat "$T/mount.log" >&2; fail "mount.dsfs died"; }
nw=$(wc -l <"$T/written" 2>/dev/null || echo 0)
echo "$flips path changes, $nw snapshots written"
[ "$nw" -gt 0 ] || fail "no snapshot written during the stress"
# Each written snapshot is whole in exactly one of the stores.
while read -r s; do
	if [ -d "$A/$s" ] && [ -d "$B/$s" ]; then fail "$s in both stores"; fi
	st=$A
	[ -d "$B/$s" ] && st=$B
	"$DSFS" cat "$st" "$s" disk.img | cmp - "$T/w.img" || fail "$s in $st: bytes differ"
done <"$T/written"

# A writer held across A -> B -> A, another started after the return.
set_path "$A"
wait_until "back at a" listed "$M/vm/101" 2024-03-04T08:02:17Z
mkdir "$M/vm/901" "$M/vm/901/2024-05-01T00:00:00Z" "$M/vm/902" "$M/vm/902/2024-05-01T00:00:00Z"
exec 4>"$M/vm/901/2024-05-01T00:00:00Z/disk.img"
head -c 65536 "$T/w.img" >&4
set_path "$B"
wait_until "at b" not_listed "$M/vm/101" 2024-03-04T08:02:17Z
set_path "$A"
wait_until "at a again" listed "$M/vm/101" 2024-03-04T08:02:17Z
exec 5>"$M/vm/902/2024-05-01T00:00:00Z/disk.img"
head -c 65536 "$T/w.img" >&5
exec 4>&-
# gc_lock: whether another process gets PBS GC's exclusive lock on A/.lock.
gc_lock() {
	python3 -c '
import fcntl, sys
f = open(sys.argv[1], "r+")
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("granted")
except OSError:
    print("refused")' "$A/.lock"
}
sleep 0.3 # the first file's release is asynchronous
[ "$(gc_lock)" = refused ] || fail "GC's lock granted on $A while a writer is active"
exec 5>&-
unmount_dsfs "$M"
[ "$(gc_lock)" = granted ] || fail "GC's lock refused after the unmount"
# A cp cut by a path change leaves its snapshot unfinished: only those.
for st in "$A" "$B"; do
	verify_clean_but_abandoned "$st" "$st"/vm/900/*
done
echo "config path stress ok"
