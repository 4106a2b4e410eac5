# dsfs cat into a regular file leaves a hole for each chunk of zeros, as
# cp --sparse=auto does, so restoring a VM image does not allocate its
# empty space (it wrote every zero). Output to a pipe, appended (>>) or
# over a file's existing bytes (1<>) is every byte, written.
. "$(dirname "$0")/../testlib.bash"
S=$T/store
bare_store "$S"
MiB=$((1 << 20))
# 4 MiB of data, 8 MiB of zeros, 4 MiB of data, 4 MiB of zeros at the end.
{
	head -c $((4 * MiB)) /dev/urandom
	head -c $((8 * MiB)) /dev/zero
	head -c $((4 * MiB)) /dev/urandom
	head -c $((4 * MiB)) /dev/zero
} >"$T/disk.img"
"$DSFS" backup --time 2026-01-01T00:00:00Z "$S" vm/1 disk.img="$T/disk.img" >/dev/null ||
	fail "backup"
SNAP=vm/1/2026-01-01T00:00:00Z

"$DSFS" cat "$S" "$SNAP" disk.img >"$T/out" || fail "cat into a file"
cmp "$T/disk.img" "$T/out" || fail "cat into a file: other bytes"
used=$(($(stat -c %b "$T/out") * 512))
[ "$used" -le $((9 * MiB)) ] || fail "cat into a file: $used bytes allocated, want the 8 MiB of data"

"$DSFS" cat "$S" "$SNAP" disk.img | cat >"$T/piped" || fail "cat into a pipe"
cmp "$T/disk.img" "$T/piped" || fail "cat into a pipe: other bytes"

printf 'head' >"$T/appended"
"$DSFS" cat "$S" "$SNAP" disk.img >>"$T/appended" || fail "cat appended"
{ printf 'head'; cat "$T/disk.img"; } | cmp - "$T/appended" || fail "cat appended: other bytes"

head -c 100 /dev/urandom >"$T/over"
"$DSFS" cat "$S" "$SNAP" disk.img 1<>"$T/over" || fail "cat over a file"
cmp "$T/disk.img" "$T/over" || fail "cat over a file's bytes: other bytes"
echo "cat_sparse: ok"
