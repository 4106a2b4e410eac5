# datastore.cfg texts that PBS's own parser (proxmox-section-config and
# proxmox-schema's property strings) takes are taken by every dsfs command
# too, and `dsfs maintenance` writes them back so that PBS still takes
# them: a config PBS is happy with must not make dsfs fail (and one it
# refuses is refused).
. "$(dirname "$0")/../testlib.bash"
need_fixtures
fixture_copy pbs-store-a "$T/store"
export DSFS_CONFIG_VERSIONS=$T/config-versions DSFS_ACTIVEOPS_DIR=$T/activeops
cfg=$T/datastore.cfg

# One trailing comma in a property string: proxmox-schema's next_property
# takes the comma with the item before it and then finds the string done.
printf 'datastore: store-a\n\tmaintenance-mode type=read-only,message="disk swap",\n\tpath %s\n\ttuning sync-level=file,\n\ndatastore: other\n\tmaintenance-mode offline,\n\tpath /nonexistent\n' \
	"$T/store" >"$cfg"
expect_status 0 "$DSFS" status store-a --config "$cfg"
grep -qx "maintenance-mode: read-only" "$T/out" || { cat "$T/out"; fail "mode not read"; }
grep -qx "maintenance-message: disk swap" "$T/out" || { cat "$T/out"; fail "message not read"; }
expect_status 0 "$DSFS" ls store-a --config "$cfg"
grep -q "^vm/101" "$T/out" || { cat "$T/out"; fail "ls store-a: no vm/101"; }
expect_status 0 "$DSFS" maintenance other clear --config "$cfg"
printf 'datastore: store-a\n\tmaintenance-mode type=read-only,message="disk swap"\n\tpath %s\n\ttuning sync-level=file,\n\ndatastore: other\n\tpath /nonexistent\n' \
	"$T/store" >"$T/want.cfg"
cmp -s "$cfg" "$T/want.cfg" || { diff -u "$T/want.cfg" "$cfg" >&2; fail "rewrite"; }
# Two commas are an empty item: PBS takes it for a second "type" (refused).
printf 'datastore: store-a\n\tmaintenance-mode read-only,,\n\tpath %s\n' "$T/store" >"$cfg"
expect_status 1 "$DSFS" status store-a --config "$cfg"
grep -q "datastore.cfg:2: .*empty item" "$T/err" || { cat "$T/err"; fail "no empty-item error"; }
echo "trailing comma in a property string: taken, as by PBS"

# A datastore's second section: PBS keeps sections in a map by id, so the
# later one is the datastore (here: the one with the real path).
printf 'datastore: store-a\n\tcomment stale copy\n\tmaintenance-mode offline\n\tpath /nonexistent\n\ndatastore: other\n\tpath /nonexistent\n\ndatastore: store-a\n\tpath %s\n' \
	"$T/store" >"$cfg"
expect_status 0 "$DSFS" status store-a --config "$cfg"
grep -qx "path: $T/store" "$T/out" || { cat "$T/out"; fail "status: not the later section's path"; }
grep -qx "maintenance-mode: none" "$T/out" || { cat "$T/out"; fail "status: the earlier section's mode"; }
grep -q "datastore.cfg:9: datastore 'store-a' again" "$T/err" || { cat "$T/err"; fail "no warning"; }
expect_status 0 "$DSFS" ls store-a --config "$cfg"
grep -q "^vm/101" "$T/out" || { cat "$T/out"; fail "ls store-a: no vm/101"; }
# Written back once, in the first section's place.
expect_status 0 "$DSFS" maintenance store-a read-only --config "$cfg"
printf 'datastore: store-a\n\tmaintenance-mode type=read-only\n\tpath %s\n\ndatastore: other\n\tpath /nonexistent\n' \
	"$T/store" >"$T/want.cfg"
cmp -s "$cfg" "$T/want.cfg" || { diff -u "$T/want.cfg" "$cfg" >&2; fail "rewrite of a repeated section"; }
# The replaced section is still checked, as by PBS.
printf 'datastore: store-a\n\tcomment no path\n\ndatastore: store-a\n\tpath %s\n' "$T/store" >"$cfg"
expect_status 1 "$DSFS" status store-a --config "$cfg"
grep -q "datastore.cfg:1: .*'path' is missing" "$T/err" || { cat "$T/err"; fail "first section not checked"; }
echo "repeated datastore section: the later one, as in PBS"

# CRLF line ends are line ends (Rust's str::lines), not whitespace: a key
# with nothing after it but the "\r\n" has no value, for PBS a syntax error.
printf 'datastore: store-a\r\n\tpath %s\r\n\tcomment crlf\r\n' "$T/store" >"$cfg"
expect_status 0 "$DSFS" ls store-a --config "$cfg"
printf 'datastore: store-a\r\n\tpath %s\r\n\tcomment\r\n' "$T/store" >"$cfg"
expect_status 1 "$DSFS" ls store-a --config "$cfg"
grep -q "datastore.cfg:3: property 'comment' has no value" "$T/err" || { cat "$T/err"; fail "CRLF: no error"; }
echo "CRLF: a line end, as for PBS"
