# dsfs key create that cannot write its file (here: RLIMIT_FSIZE, as a
# full disk or a quota would) fails with a message and leaves no file: it
# left an empty or partial key file behind, which a retry refused to
# replace (EEXIST) and keyfile= then took for a damaged key.
. "$(dirname "$0")/../testlib.bash"

K=$T/enc.key
out=$( (trap '' XFSZ; ulimit -f 0; "$DSFS" key create "$K" --kdf none) 2>&1 | cat) &&
	fail "key create succeeded with no room to write"
case $out in *"$K"*) ;; *) fail "no message naming the file: $out" ;; esac
[ ! -e "$K" ] || fail "a failed key create left $(stat -c %s "$K") bytes in $K"
"$DSFS" key create "$K" --kdf none || fail "key create after the failed one"
[ "$(stat -c %a "$K")" = 600 ] || fail "mode $(stat -c %a "$K")"
echo "key create ok"
