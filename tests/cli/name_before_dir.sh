# A bare word names the datastore of that name in datastore.cfg, also when
# the working directory holds a directory of that name (a datastore's own
# parent, say): the name obeys the store's maintenance mode, a directory
# nothing. ./NAME is the directory.
. "$(dirname "$0")/../testlib.bash"
bare_store "$T/real" "$T/cwd/store1"
printf 'x\n' >"$T/x.conf"
"$DSFS" backup --time 2026-01-01T00:00:00Z "$T/cwd/store1" vm/7 x.conf="$T/x.conf" >/dev/null ||
	fail "backup into the directory"
CFG=$T/datastore.cfg
printf 'datastore: store1\n\tpath %s\n\tmaintenance-mode offline,message="disk swap"\n' \
	"$T/real" >"$CFG"
cd "$T/cwd"
for cmd in ls verify; do
	expect_status 1 "$DSFS" "$cmd" --config "$CFG" store1
done
"$DSFS" status --config "$CFG" store1 | grep -q "offline" || fail "status store1 is not the store"
"$DSFS" ls --config "$CFG" store1 2>"$T/err" && fail "ls store1 ignored the maintenance mode"
grep -q "disk swap" "$T/err" || fail "ls store1: the refusal does not name the mode: $(cat "$T/err")"
if "$DSFS" backup --config "$CFG" --time 2026-01-02T00:00:00Z store1 vm/7 x.conf="$T/x.conf" \
	2>/dev/null; then
	fail "backup into an offline store by name"
fi
[ ! -e "$T/cwd/store1/vm/7/2026-01-02T00:00:00Z" ] || fail "backup went into ./store1"
"$DSFS" ls --config "$CFG" ./store1 | grep -q "vm/7" || fail "./store1 is not the directory"
# A name the config does not have is still the directory.
mv "$T/cwd/store1" "$T/cwd/other"
"$DSFS" ls --config "$CFG" other | grep -q "vm/7" || fail "a directory the config does not name"
echo "name before directory ok"
