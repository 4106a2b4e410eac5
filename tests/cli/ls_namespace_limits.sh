# dsfs ls lists namespaces within PBS's limits only (7 levels, 256
# characters for the whole name), as PBS, the mount and verify do. A
# deeper or longer one (made by hand) made ls print a nameless
# "<TAB>namespace" line, stop listing, and exit 2 (usage error).
. "$(dirname "$0")/../testlib.bash"
mkdir -p "$T/store/.chunks" # a reader needs no prefix directories
deep=
for i in 1 2 3 4 5 6 7 8 9; do deep=$deep/ns/d$i; done
mkdir -p "$T/store$deep/vm/1"
d7=${deep%/ns/d8/ns/d9}
mkdir -p "$T/store$d7/ct/7" # a group at depth 7
long=
for c in a b c d e; do long=$long/ns/$(printf "%060d" 0 | tr 0 "$c"); done
mkdir -p "$T/store$long/vm/2"
mkdir -p "$T/store/ns/zz/vm/3" # listed after both

expect_status 0 "$DSFS" ls "$T/store"
grep -q "^	" "$T/out" && { cat "$T/out"; fail "nameless line"; }
grep -qx "ns/zz/vm/3	group	0 snapshots	owner -" "$T/out" || { cat "$T/out"; fail "listing stopped"; }
grep -qx "ns/d1/ns/d2/ns/d3/ns/d4/ns/d5/ns/d6/ns/d7/	namespace" "$T/out" || fail "depth 7 not listed"
grep -q "ns/d8" "$T/out" && fail "depth 8 listed"
grep -q "ns/eeee" "$T/out" && fail "namespace longer than 256 characters listed"
[ "$(grep -c "namespace$" "$T/out")" = 12 ] || { cat "$T/out"; fail "namespace count"; }
# below a namespace of depth 7: its groups, no children
expect_status 0 "$DSFS" ls "$T/store" "$d7"
[ "$(cat "$T/out")" = "${d7#/}/ct/7	group	0 snapshots	owner -" ] ||
	{ cat "$T/out"; fail "depth 7: not its one group alone"; }
echo "ls keeps to PBS's namespace limits"
