# dsfs verify: clean on the fixture store (with and without the key), and on
# the corrupted copy it names the damaged chunk once per snapshot and exits 3.
. "$(dirname "$0")/../testlib.bash"
need_fixtures
key=$(fixture_key)
store=$FIX/pbs-store-a
expect_status 0 "$DSFS" verify "$store"
grep -q "verified 14 snapshots, 35 archives, 82 chunks" "$T/out" || { cat "$T/out"; fail "summary"; }
grep -q ": 0 errors" "$T/out" || fail "errors reported on a clean store"
expect_status 0 "$DSFS" verify --keyfile "$key" "$store"
grep -q ": 0 errors" "$T/out" || fail "errors with key"
expect_status 0 "$DSFS" verify "$store" ns/prod/vm/201
grep -q "verified 2 snapshots" "$T/out" || fail "group verify"

bad=d3d62b1f9bbfbacbf229b89beddd9cdb10d59536f4ead7d4bd13a0cd71c07269
expect_status 3 "$DSFS" verify "$FIX/pbs-store-a-corrupt"
n=$(grep -c "$bad" "$T/err" || true)
[ "$n" = 3 ] || { cat "$T/err"; fail "corrupt chunk named $n times, want 3"; }
for s in 2024-03-02T08:02:17Z 2024-03-03T08:02:17Z 2024-03-04T08:02:17Z; do
	grep -q "vm/101/$s/drive-scsi0.img.fidx: chunk 0 ($bad" "$T/err" || fail "snapshot $s not named"
done
grep -q ": 3 errors" "$T/out" || fail "summary of corrupt store"

# A missing chunk and a damaged index in a private copy.
cp -r "$FIX/pbs-store-a-corrupt" "$T/s"
chmod -R u+w "$T/s"
rm "$T/s/.chunks/${bad:0:4}/$bad"
expect_status 3 "$DSFS" verify "$T/s" vm/101/2024-03-02T08:02:17Z
grep -q "$bad.*missing" "$T/err" || fail "missing chunk not reported"
f=$T/s/vm/101/2024-03-03T08:02:17Z/drive-efidisk0.img.fidx
printf '\xff' | dd of="$f" bs=1 seek=4100 conv=notrunc status=none
expect_status 3 "$DSFS" verify "$T/s" vm/101/2024-03-03T08:02:17Z
grep -q "drive-efidisk0.img.fidx: index checksum does not match" "$T/err" || fail "index csum"
echo "verify ok"
