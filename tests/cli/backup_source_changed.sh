# An image (NAME.img=FILE) whose file changes size while it is read is
# refused with a message naming the file, exit status 1 (a failure, not a
# usage error), and no snapshot is left, as PBS's client fails it
# ("unexpected file size"). A shrunk file used to fail with "Invalid
# argument" and status 2, a grown one with "Numerical result out of range".
. "$(dirname "$0")/../testlib.bash"
S=$T/store
bare_store "$S"

# Shrinks: a sysfs attribute says 4096 bytes and reads a few.
src=
for f in /sys/kernel/mm/transparent_hugepage/enabled /sys/devices/system/cpu/online \
	/sys/kernel/profiling; do
	if [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt "$(wc -c <"$f")" ]; then
		src=$f
		break
	fi
done
if [ -n "$src" ]; then
	expect_status 1 "$DSFS" backup "$S" vm/1 --time 2025-01-01T00:00:00Z disk.img="$src"
	grep -q "$src: changed size while read" "$T/err" || fail "shrunk: $(cat "$T/err")"
	[ -z "$(ls "$S/vm/1" | grep -v owner)" ] || fail "shrunk: snapshot left"
else
	echo "no sysfs file to shrink, that part skipped" >&2
fi

# Grows: appended to while dsfs reads it (64 MiB take dsfs far longer
# than the first 1 MiB append).
head -c $((64 << 20)) /dev/urandom >"$T/grow"
(for i in $(seq 200); do head -c $((1 << 20)) /dev/zero >>"$T/grow"; sleep 0.01; done) &
appender=$!
cleanup_hooks+=("kill $appender 2>/dev/null")
expect_status 1 "$DSFS" backup "$S" vm/2 --time 2025-01-01T00:00:00Z disk.img="$T/grow"
grep -q "$T/grow: changed size while read" "$T/err" || fail "grown: $(cat "$T/err")"
[ -z "$(ls "$S/vm/2" | grep -v owner)" ] || fail "grown: snapshot left"
wait "$appender" || true

# A file that stays as it is still backs up.
expect_status 0 "$DSFS" backup "$S" vm/2 --time 2025-01-01T00:00:00Z disk.img="$T/grow"
"$DSFS" cat "$S" vm/2/2025-01-01T00:00:00Z disk.img | cmp - "$T/grow" || fail "image differs"
echo "source changed while read ok"
