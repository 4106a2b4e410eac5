# A blob's source may be a pipe or a device, read to its end, as a
# stream's may: qemu-server.conf=/dev/stdin, a process substitution,
# /dev/null. Past 128 MiB (PBS's blob limit) it is refused with a hint,
# also for an endless source, and no snapshot is left.
. "$(dirname "$0")/../testlib.bash"
S=$T/store
bare_store "$S"
backup() { # GROUP NAME=SOURCE (stdin passed on)
	"$DSFS" backup --time 2026-01-01T00:00:00Z "$S" "$@"
}
blob() { "$DSFS" cat "$S" "$1/2026-01-01T00:00:00Z" "$2"; }

printf 'memory: 512\n' | backup vm/1 qemu-server.conf=/dev/stdin >/dev/null || fail "blob from stdin"
[ "$(blob vm/1 qemu-server.conf)" = "memory: 512" ] || fail "stdin blob reads $(blob vm/1 qemu-server.conf)"
backup vm/2 x.conf=<(printf 'a\nb\n') >/dev/null || fail "blob from a process substitution"
[ "$(blob vm/2 x.conf)" = "$(printf 'a\nb')" ] || fail "substituted blob reads $(blob vm/2 x.conf)"
backup vm/3 empty.conf=/dev/null >/dev/null || fail "blob from /dev/null"
[ "$(blob vm/3 empty.conf | wc -c)" = 0 ] || fail "/dev/null blob not empty"

# Exactly 128 MiB fits, one byte more does not.
head -c $((128 << 20)) /dev/zero | backup vm/4 max.conf=/dev/stdin >/dev/null ||
	fail "a 128 MiB blob from a pipe"
[ "$(blob vm/4 max.conf | wc -c)" = $((128 << 20)) ] || fail "128 MiB blob size"
head -c $((128 << 20 | 1)) /dev/zero | expect_status 1 backup vm/5 big.conf=/dev/stdin
grep -q "/dev/stdin: more than 128 MiB: too large for a blob" "$T/err" || fail "no hint: $(cat "$T/err")"
expect_status 1 backup vm/6 zero.conf=/dev/zero
grep -q "too large for a blob" "$T/err" || fail "no hint: $(cat "$T/err")"
for g in vm/5 vm/6; do
	[ -z "$(ls "$S/$g")" ] || [ "$(ls "$S/$g")" = owner ] || fail "$g left: $(ls "$S/$g")"
done
echo "blobs from pipes and devices ok"
