# --chunk-size takes a whole number of bytes with an optional K, M or G
# suffix (as mount.dsfs's cache_size=); anything after it is a usage
# error, status 2, before a snapshot starts. It used to be read with
# strtoull and no end check, so "65536abc" was taken as 65536.
. "$(dirname "$0")/../testlib.bash"
S=$T/store
"$DSFS" init "$S" >/dev/null
head -c 300000 /dev/urandom >"$T/f"

n=0
for bad in 65536abc 64Kx 64KB "" -65536 " 65536" 18446744073709551616 \
	17592186044416G; do
	n=$((n + 1))
	expect_status 2 "$DSFS" backup --chunk-size "$bad" "$S" host/x \
		--time "2025-01-0${n}T00:00:00Z" a.didx="$T/f"
	grep -q -- "--chunk-size" "$T/err" || { cat "$T/err"; fail "'$bad': no message"; }
	[ ! -e "$S/host/x/2025-01-0${n}T00:00:00Z" ] || fail "'$bad': snapshot left"
done

# Suffixes: 64K and 65536 are one size, and 1M a bigger one; a small
# average cuts more chunks than a big one, so the counts tell them apart.
chunks() {
	python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); print((len(d)-4096)//40)' "$1"
}
expect_status 0 "$DSFS" backup --chunk-size 64K "$S" host/y --time 2025-02-01T00:00:00Z a.didx="$T/f"
expect_status 0 "$DSFS" backup --chunk-size 65536 "$S" host/y --time 2025-02-02T00:00:00Z a.didx="$T/f"
expect_status 0 "$DSFS" backup --chunk-size 4m "$S" host/y --time 2025-02-03T00:00:00Z a.didx="$T/f"
a=$(chunks "$S/host/y/2025-02-01T00:00:00Z/a.didx")
b=$(chunks "$S/host/y/2025-02-02T00:00:00Z/a.didx")
c=$(chunks "$S/host/y/2025-02-03T00:00:00Z/a.didx")
[ "$a" = "$b" ] || fail "64K and 65536 differ: $a vs $b chunks"
[ "$a" -gt 1 ] || fail "64K: $a chunks of 300000 random bytes"
[ "$c" = 1 ] || fail "4m: $c chunks of 300000 random bytes"
exit 0
