# `dsfs backup`: status 2 is for a command line that is wrong, status 1 for
# what fails while the snapshot is written, and the command line is left as
# given.
#  - dsfs cut each NAME=FILE argument at its '=' (it wrote a NUL into its
#    own argv), so ps and /proc/PID/cmdline showed "disk.img FILE" while a
#    backup ran;
#  - any "Invalid argument" during the backup was status 2, the usage
#    error: an empty pipe or device given as an image, a tree of a virtual
#    file system; a wrong argument after the first ones was found only
#    after those were written.
. "$(dirname "$0")/../testlib.bash"
S=$T/store
bare_store "$S"
head -c 100000 /dev/urandom >"$T/conf"

# --- argv: read /proc/PID/cmdline of a backup stalled on a FIFO source ---
feeder=
pid=
cleanup_hooks+=('[ -z "$feeder" ] || kill "$feeder" 2>/dev/null' '[ -z "$pid" ] || { kill -9 "$pid"; wait "$pid"; } 2>/dev/null')
mkfifo "$T/fifo"
(head -c 1000 /dev/urandom; exec sleep 600) >"$T/fifo" 2>/dev/null </dev/null &
feeder=$!
"$DSFS" backup "$S" vm/1 --time 2025-01-01T00:00:00Z a.conf="$T/conf" \
	data.didx="$T/fifo" >"$T/out" 2>"$T/err" &
pid=$!
# The source is open (so the argument has been taken apart): the backup
# waits for the rest of the stream.
opened=
for i in $(seq 300); do
	for fd in /proc/"$pid"/fd/*; do
		[ "$(readlink "$fd" 2>/dev/null)" = "$T/fifo" ] && opened=1
	done
	[ -n "$opened" ] && break
	kill -0 "$pid" 2>/dev/null || fail "backup exited early: $(cat "$T/err")"
	sleep 0.1
done
[ -n "$opened" ] || fail "the backup never opened its source: $(cat "$T/err")"
mapfile -d '' args <"/proc/$pid/cmdline"
n=${#args[@]}
[ "${args[n - 2]}" = "a.conf=$T/conf" ] && [ "${args[n - 1]}" = "data.didx=$T/fifo" ] ||
	fail "cmdline of a running backup: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
kill "$feeder" 2>/dev/null || true
wait "$feeder" 2>/dev/null || true
feeder=
[ "$rc" = 143 ] || fail "stopped backup exited $rc: $(cat "$T/err")"
[ ! -e "$S/vm/1/2025-01-01T00:00:00Z" ] || fail "stopped backup left its snapshot"

# --- run-time failures: status 1, with the reason ---
# An empty device, an empty pipe and an empty FIFO as an image (size unknown
# until read): "empty", after the snapshot was started.
expect_status 1 "$DSFS" backup "$S" vm/2 --time 2025-01-01T00:00:01Z a.conf="$T/conf" \
	disk.img=/dev/null
grep -q "/dev/null: empty: an image" "$T/err" || fail "empty device: $(cat "$T/err")"
expect_status 1 bash -c 'true | "$0" backup "$1" vm/2 --time 2025-01-01T00:00:02Z disk.img=/dev/stdin' \
	"$DSFS" "$S"
grep -q "/dev/stdin: empty: an image" "$T/err" || fail "empty pipe: $(cat "$T/err")"
rm -f "$T/fifo"
mkfifo "$T/fifo"
(: >"$T/fifo") &
feeder=$!
expect_status 1 "$DSFS" backup "$S" vm/2 --time 2025-01-01T00:00:03Z disk.img="$T/fifo"
wait "$feeder"
feeder=
grep -q "$T/fifo: empty: an image" "$T/err" || fail "empty FIFO: $(cat "$T/err")"
# A tree of a virtual file system is refused when it is opened.
if [ -d /proc/self ]; then
	expect_status 1 "$DSFS" backup "$S" vm/2 --time 2025-01-01T00:00:04Z root.pxar=/proc
	grep -q "virtual file system" "$T/err" || fail "/proc: $(cat "$T/err")"
	# The encoder's reason alone: no "dsfs: /proc: Invalid argument" after it.
	[ "$(wc -l <"$T/err")" = 1 ] || fail "/proc: more than one line: $(cat "$T/err")"
fi
# A tree whose archive cannot be written (a full disk): the CLI's line
# names the tree, as the encoder does not log its sink's failures.
if [ "$(id -u)" = 0 ] && mkdir "$T/small" && mount -t tmpfs -o size=1m tmpfs "$T/small"; then
	cleanup_hooks+=("umount '$T/small'")
	bare_store "$T/small/s"
	mkdir "$T/tree"
	head -c 3000000 /dev/urandom >"$T/tree/f"
	expect_status 1 "$DSFS" backup "$T/small/s" host/x --time 2025-01-01T00:00:04Z \
		root.pxar="$T/tree"
	grep -qxF "dsfs: $T/tree: No space left on device" "$T/err" ||
		fail "full disk: $(cat "$T/err")"
fi
# A source that is missing.
expect_status 1 "$DSFS" backup "$S" vm/2 --time 2025-01-01T00:00:05Z a.conf="$T/nothing"
grep -q "$T/nothing: No such file" "$T/err" || fail "missing source: $(cat "$T/err")"
left=$(find "$S/vm/2" -mindepth 1 -type d)
[ -z "$left" ] || fail "failed backups left snapshots: $left"

# --- usage errors: status 2, before anything is written, whatever the
# place of the wrong argument ---
n_chunks() { find "$S/.chunks" -type f | wc -l; }
before=$(n_chunks)
for bad in "noequals" "=$T/conf" "../x.conf=$T/conf" "a/b.conf=$T/conf" "index.json=$T/conf" "dir.conf=$T"; do
	expect_status 2 "$DSFS" backup "$S" vm/3 --time 2025-01-01T00:00:00Z \
		b.img="$T/conf" "$bad"
	[ -s "$T/err" ] || fail "'$bad': no message"
	[ ! -e "$S/vm/3" ] || fail "'$bad': the backup started"
	[ "$(n_chunks)" = "$before" ] || fail "'$bad': chunks written before the refusal"
done
# A time PBS does not take (backup-time is 1 at least).
expect_status 2 "$DSFS" backup "$S" vm/3 --time 1970-01-01T00:00:00Z b.conf="$T/conf"
expect_status 2 "$DSFS" backup "$S" vm/3 --time 1960-01-01T00:00:00Z b.conf="$T/conf"
[ ! -e "$S/vm/3" ] || fail "a bad time started the backup"
exit 0
