# The test scripts' watchdog (testlib.bash): a test whose daemon never
# answers, or whose shell waits on a FIFO nobody opens, fails after
# DSFS_TEST_TIMEOUT seconds, and leaves no mount, daemon or directory.
# Without it such a test hung the whole suite (a reader whose request the
# daemon took cannot be killed, so ctest's own timeout cannot end it).
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
lib=$(cd "$(dirname "$0")/.." && pwd)
# hung KIND: a test script, hung in one of two ways.
hung() {
	cat <<SH
. "$lib/testlib.bash"
. "$lib/mountlib.bash"
echo "child T=\$T"
bare_store "\$T/store"
mount_dsfs "\$T/store" "\$T/m"
case $1 in
daemon) kill -STOP "\$MOUNT_PID"; ls "\$T/m" ;; # the daemon never answers
fifo) mkfifo "\$T/f"; echo >"\$T/f" ;;          # the shell itself waits
esac
echo "child: not reached"
SH
}
for kind in daemon fifo; do
	hung $kind >"$T/$kind.sh"
	rc=0
	start=$SECONDS
	DSFS_TEST_TIMEOUT=3 timeout -s KILL 60 bash "$T/$kind.sh" >"$T/$kind.out" 2>&1 || rc=$?
	[ $((SECONDS - start)) -lt 40 ] || fail "$kind: still running after 40 s: $(tail -5 "$T/$kind.out")"
	child=$(sed -n 's/^child T=//p' "$T/$kind.out")
	[ -n "$child" ] || fail "$kind: the child did not start: $(cat "$T/$kind.out")"
	case $kind:$rc in
	daemon:124 | fifo:137) ;;
	*) fail "$kind: exit $rc: $(tail -5 "$T/$kind.out")" ;;
	esac
	[ $kind = daemon ] || grep -q "the test's shell is stuck itself: killed" "$T/$kind.out" ||
		fail "$kind: the shell was not killed"
	grep -q "FAIL: $kind.sh still running after 3 s" "$T/$kind.out" || fail "$kind: no FAIL line"
	grep -q "aborting the FUSE connection of $child/m" "$T/$kind.out" || fail "$kind: no abort"
	! grep -q "child: not reached" "$T/$kind.out" || fail "$kind: the child went on"
	! grep -qF " $child/" /proc/self/mountinfo || fail "$kind: a mount is left"
	[ ! -e "$child" ] || fail "$kind: $child is left"
	! daemon_of "$child/m" >/dev/null || fail "$kind: a daemon is left"
done
echo "watchdog: ok"
