# dsfs verify DATASTORE ns/NS[/ns/NS...]: a namespace run, as dsfs(1) and
# PBS's verify of a namespace have it: every snapshot below the namespace,
# the group host/benchmark left out; a missing namespace fails (1) as a
# missing group or snapshot does, and a path that is no namespace is a
# usage error (2).
. "$(dirname "$0")/../testlib.bash"
need_fixtures
fixture_copy pbs-store-a "$T/store"
echo "bench" >"$T/b.conf"
expect_status 0 "$DSFS" backup --ns prod --time 2024-03-05T00:00:00Z "$T/store" host/benchmark \
	b.conf="$T/b.conf"

expect_status 0 "$DSFS" verify "$T/store" ns/prod
grep -q "verified 8 snapshots, 20 archives" "$T/out" || { cat "$T/out"; fail "ns/prod summary"; }
grep -q ": 0 errors" "$T/out" || fail "errors in ns/prod"
grep -q "ns/prod/host/benchmark: skipped" "$T/err" || { cat "$T/err"; fail "benchmark not left out"; }
expect_status 0 "$DSFS" verify "$T/store" ns/prod/ns/db/
grep -q "verified 4 snapshots, 10 archives" "$T/out" || { cat "$T/out"; fail "ns/prod/ns/db summary"; }

# damage in the namespace is found (status 3), outside it is not looked at
f=$T/store/ns/prod/ns/db/ct/401/2024-03-02T14:02:17Z/root.pxar.didx
printf '\xff' | dd of="$f" bs=1 seek=5000 conv=notrunc status=none
expect_status 3 "$DSFS" verify "$T/store" ns/prod
grep -q "ns/prod/ns/db/ct/401/2024-03-02T14:02:17Z/root.pxar.didx" "$T/err" || fail "damage not named"
expect_status 0 "$DSFS" verify "$T/store" vm/101

expect_status 1 "$DSFS" verify "$T/store" ns/nope
expect_status 1 "$DSFS" verify "$T/store" ns/prod/ns/nope
expect_status 1 "$DSFS" verify "$T/store" vm/999
expect_status 1 "$DSFS" verify "$T/store" vm/101/2020-01-01T00:00:00Z
grep -q "vm/101/2020-01-01T00:00:00Z: No such file or directory" "$T/err" ||
	fail "missing snapshot not named: $(cat "$T/err")"
expect_status 1 "$DSFS" verify "$T/store" ns/prod/vm/101/2020-01-01T00:00:00Z
expect_status 2 "$DSFS" verify "$T/store" ns
expect_status 2 "$DSFS" verify "$T/store" ns/prod/ns
expect_status 2 "$DSFS" verify "$T/store" ns/a/ns/b/ns/c/ns/d/ns/e/ns/f/ns/g/ns/h
expect_status 2 "$DSFS" verify "$T/store" ns/../ns/prod
echo "verify of namespaces ok"
