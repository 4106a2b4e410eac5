# A stop signal the daemon was started with ignored stays ignored, with
# libfuse's request loop and with -o spin= (fs/mount/loop.c): under
# `nohup mount.dsfs -f …` a hangup (the terminal closed) leaves the mount
# serving. The spin loop installed its handlers over SIG_IGN, so the hangup
# stopped it and the mount went away; libfuse leaves an ignored signal
# alone. SIGTERM, not ignored, still stops both (exit 0, mount gone).
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse
command -v nohup >/dev/null || { echo "SKIP: nohup missing" >&2; exit 77; }

fixture_copy pbs-store-a "$T/st"
M=$T/m
mkdir -p "$M"
for opt in spin=0 spin=500; do
	: >"$T/mount.log"
	nohup "$MOUNT_DSFS" "$T/st" "$M" -f -o "ro,$opt" >"$T/mount.log" 2>&1 &
	pid=$!
	cleanup_hooks+=("fusermount3 -u '$M' 2>/dev/null; kill $pid 2>/dev/null")
	for _ in $(seq 100); do mountpoint -q "$M" && break; sleep 0.1; done
	mountpoint -q "$M" || { cat "$T/mount.log" >&2; fail "$opt: not mounted"; }
	ls "$M/vm" >/dev/null || fail "$opt: ls"
	kill -HUP "$pid"
	sleep 1
	kill -0 "$pid" 2>/dev/null || { cat "$T/mount.log" >&2; fail "$opt: an ignored SIGHUP stopped the daemon"; }
	mountpoint -q "$M" || fail "$opt: an ignored SIGHUP removed the mount"
	[ -d "$M/vm/101" ] || fail "$opt: mount not serving after SIGHUP"
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" = 0 ] || { cat "$T/mount.log" >&2; fail "$opt: exit $rc after SIGTERM"; }
	grep -q "stopping on signal 15" "$T/mount.log" || fail "$opt: no 'stopping on signal 15'"
	! mountpoint -q "$M" || fail "$opt: still mounted after SIGTERM"
done
echo "ignored signals ok"
