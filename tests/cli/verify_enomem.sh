# Running out of memory while verifying says nothing of the data: the run
# stops with status 1 and a message, never status 3. dsfs verify marked a
# good chunk bad when its set of checked chunks could not grow (status 3,
# "marked bad earlier in this run"). The failure is injected with
# tests/failcalloc.c: calloc(1024, 1) is the set's first allocation.
. "$(dirname "$0")/../testlib.bash"
[ -n "${DSFS_FAILCALLOC:-}" ] && [ -e "$DSFS_FAILCALLOC" ] || { echo "SKIP: no failcalloc shim" >&2; exit 77; }
sanitized "$DSFS" && { echo "SKIP: sanitizer build: the shim cannot come first" >&2; exit 77; }
S=$T/store
"$DSFS" init "$S" >/dev/null
head -c 300000 /dev/urandom >"$T/f"
"$DSFS" backup "$S" host/x --time 2025-01-01T00:00:00Z a.didx="$T/f" >/dev/null
expect_status 0 "$DSFS" verify "$S"
# The shim loaded, and failing: an allocation the run needs fails.
expect_status 1 env LD_PRELOAD="$DSFS_FAILCALLOC" DSFS_FAIL_CALLOC=1024 "$DSFS" verify "$S"
grep -q "Cannot allocate memory" "$T/err" || { cat "$T/err"; fail "no out-of-memory message"; }
grep -q "marked bad\|chunk 0" "$T/err" && { cat "$T/err"; fail "a good chunk reported bad"; }
# Other sizes are unaffected: the same run with the shim passes.
expect_status 0 env LD_PRELOAD="$DSFS_FAILCALLOC" DSFS_FAIL_CALLOC=7777 "$DSFS" verify "$S"
exit 0
