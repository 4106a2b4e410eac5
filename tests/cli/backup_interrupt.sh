# A `dsfs backup` stopped by SIGINT (Ctrl-C), SIGTERM or SIGHUP removes its
# unfinished snapshot, as PBS removes a backup that fails: no snapshot
# directory without a manifest (PBS lists it as an incomplete snapshot, its
# verify jobs report it failed, and the next backup at that time is refused)
# and no temp index are left. Chunks already written stay (GC's to remove).
. "$(dirname "$0")/../testlib.bash"
S=$T/store
"$DSFS" init "$S" >/dev/null
# A check that fails leaves the feeder (sleep 600) and the backup behind:
# the feeder held ctest's output pipe, and ctest waited for it to close.
# (Not a hook per round: the names are looked up when cleanup runs.)
feeder=
pid=
cleanup_hooks+=('[ -z "$feeder" ] || kill "$feeder" 2>/dev/null' '[ -z "$pid" ] || { kill -9 "$pid"; wait "$pid"; } 2>/dev/null')

n=0
for sig in INT TERM HUP; do
	n=$((n + 1))
	time=2025-01-01T00:00:0${n}Z
	rm -f "$T/fifo"
	mkfifo "$T/fifo"
	# 40 MiB: the chunker cuts at 16 MiB at the latest (4 x the 4 MiB
	# average), so at least two chunks are written whatever the bytes. With
	# 12 MiB, about one round in sixty had no cut at all (e^-4.1: a cut is
	# 3 in 8 Mi per byte past the 1 MiB minimum), and the wait below ran
	# its 600 rounds of a half-second find over 65536 directories: past
	# the watchdog's 300 s in CI.
	head -c $((40 << 20)) /dev/urandom >"$T/part"
	before=$(find "$S/.chunks" -type f | wc -l)
	# The source delivers 40 MiB, then stalls (kept open) as a slow one
	# does, for longer than a loaded machine (ASan, ctest -j) takes to get
	# here: with 30 s the backup once reached the end and exited before
	# the signal. It is killed below.
	(cat "$T/part"; exec sleep 600) >"$T/fifo" 2>/dev/null </dev/null &
	feeder=$!
	# (a background job of a script starts with SIGINT ignored; a
	# terminal's Ctrl-C reaches a foreground one with the default action)
	env --default-signal=INT "$DSFS" backup "$S" vm/100 --time "$time" \
		data.didx="$T/fifo" >"$T/out" 2>"$T/err" &
	pid=$!
	# wait until chunks of this run are on disk (the backup is under way);
	# bounded in time, not in rounds, as each round is a find
	end=$((SECONDS + 120))
	while [ "$(find "$S/.chunks" -type f | wc -l)" -le "$before" ] && [ "$SECONDS" -lt "$end" ]; do
		sleep 0.2
	done
	[ "$(find "$S/.chunks" -type f | wc -l)" -gt "$before" ] || fail "SIG$sig: no chunk written in 120 s: $(cat "$T/err")"
	[ -d "$S/vm/100/$time" ] || fail "SIG$sig: the backup did not start"
	kill -s "$sig" "$pid"
	rc=0
	wait "$pid" || rc=$?
	kill "$feeder" 2>/dev/null || true
	wait "$feeder" 2>/dev/null || true
	[ "$rc" = $((128 + $(kill -l "$sig"))) ] || fail "SIG$sig: dsfs backup exited $rc: $(cat "$T/err")"
	[ ! -e "$S/vm/100/$time" ] || fail "SIG$sig: unfinished snapshot left: $(ls -A "$S/vm/100/$time")"
	left=$(find "$S" -name '*.tmp_*' | head -3)
	[ -z "$left" ] || fail "SIG$sig: temp files left: $left"
	grep -q "interrupted" "$T/err" || fail "SIG$sig: not reported: $(cat "$T/err")"
done
# A blob read from a stalled source (qemu-server.conf=/dev/stdin of a
# pipe whose writer hangs) stops at the first signal too: it was read
# to its end first, so only a second Ctrl-C killed dsfs, leaving the
# unfinished snapshot behind.
time=2025-01-01T00:00:05Z
rm -f "$T/fifo"
mkfifo "$T/fifo"
(printf 'memory: 512\n'; exec sleep 600) >"$T/fifo" 2>/dev/null </dev/null &
feeder=$!
env --default-signal=INT "$DSFS" backup "$S" vm/101 --time "$time" \
	qemu-server.conf="$T/fifo" >"$T/out" 2>"$T/err" &
pid=$!
for i in $(seq 600); do
	[ -d "$S/vm/101/$time" ] && break
	sleep 0.1
done
[ -d "$S/vm/101/$time" ] || fail "blob: the backup did not start"
sleep 0.5 # into the read of the blob
kill -s INT "$pid"
for i in $(seq 100); do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
	kill -s KILL "$pid"
	kill "$feeder" 2>/dev/null || true
	fail "blob: SIGINT did not stop a backup reading a stalled blob source"
fi
rc=0
wait "$pid" || rc=$?
kill "$feeder" 2>/dev/null || true
wait "$feeder" 2>/dev/null || true
[ "$rc" = 130 ] || fail "blob: dsfs backup exited $rc: $(cat "$T/err")"
[ ! -e "$S/vm/101/$time" ] || fail "blob: unfinished snapshot left: $(ls -A "$S/vm/101/$time")"
grep -q "interrupted" "$T/err" || fail "blob: not reported: $(cat "$T/err")"
# The store is clean and usable: a backup at one of those times works.
expect_status 0 "$DSFS" backup "$S" vm/100 --time 2025-01-01T00:00:01Z data.didx="$T/part"
expect_status 0 "$DSFS" verify "$S"
exit 0
