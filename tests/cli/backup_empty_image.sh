# An empty image file cannot be stored (a fixed index needs at least one
# chunk; PBS's client refuses it with "got zero-sized file" before the
# backup starts). dsfs started the snapshot, wrote the archives before it
# and then failed with "disk.img.fidx: Invalid argument". Now it is
# refused first, naming the file, status 2, and nothing is written.
. "$(dirname "$0")/../testlib.bash"
S=$T/store
"$DSFS" init "$S" >/dev/null
: >"$T/empty"
head -c 100000 /dev/urandom >"$T/conf"

expect_status 2 "$DSFS" backup "$S" vm/1 --time 2025-01-01T00:00:00Z \
	a.conf="$T/conf" disk.img="$T/empty"
grep -q "$T/empty: zero-sized file" "$T/err" || { cat "$T/err"; fail "empty image not explained"; }
[ ! -e "$S/vm/1" ] || fail "refused backup started a group or snapshot"
[ -z "$(find "$S/.chunks" -type f)" ] || fail "refused backup wrote chunks"
# As the explicit .img.fidx name too.
expect_status 2 "$DSFS" backup "$S" vm/1 --time 2025-01-01T00:00:00Z disk.img.fidx="$T/empty"
grep -q "zero-sized file" "$T/err" || { cat "$T/err"; fail "empty .img.fidx not explained"; }

# An empty stream (size unknown until read) still fails, with the reason,
# and leaves no snapshot: status 1, a run-time failure (it was 2, the usage
# error).
expect_status 1 "$DSFS" backup "$S" vm/1 --time 2025-01-02T00:00:00Z disk.img=/dev/null
grep -q "/dev/null: empty: an image" "$T/err" || { cat "$T/err"; fail "empty stream not explained"; }
[ ! -e "$S/vm/1/2025-01-02T00:00:00Z" ] || fail "empty stream left a snapshot"

# An empty file under any other name is an ordinary (empty) archive.
expect_status 0 "$DSFS" backup "$S" vm/1 --time 2025-01-03T00:00:00Z a.conf="$T/empty" \
	d.didx="$T/empty" disk.img="$T/conf"
exit 0
