# -h and --help, with any command (dsfs(1) OPTIONS): that command's usage on
# standard output, status 0, and nothing done; a bad command line is a usage
# error (2) with a message on standard error.
. "$(dirname "$0")/../testlib.bash"
cd "$T"
export DSFS_KEY_PASSWORD=secret-enough
for cmd in init ls cat verify backup key maintenance status; do
	for h in -h --help; do
		expect_status 0 "$DSFS" "$cmd" "$h"
		grep -q "^Usage: dsfs $cmd" "$T/out" || fail "$cmd $h: no usage on stdout"
	done
done
# "key create --help" is a request for help, not a key file named --help
for h in -h --help; do
	expect_status 0 "$DSFS" key create $h
	grep -q "^Usage: dsfs key create" "$T/out" || fail "key create $h: no usage"
	[ -e "$T/$h" ] && fail "key create $h wrote a key file named $h"
done
# a key file of that name, if really wanted
expect_status 0 "$DSFS" key create --kdf none -- --help
grep -q '"kdf": *null' -- "$T/--help" || fail "key create -- --help"
# options after and before FILE, as the synopsis and getopt allow
expect_status 0 "$DSFS" key create k1.json --kdf none
expect_status 0 "$DSFS" key create --kdf pbkdf2 k2.json
grep -q PBKDF2 k2.json || fail "--kdf pbkdf2 before FILE"
[ "$(stat -c %a k2.json)" = 600 ] || fail "key file mode"
for bad in "key" "key create" "key make k3.json" "key create k3.json extra" \
	"key create k3.json --kdf bogus" "key create k3.json --kdf"; do
	# shellcheck disable=SC2086 # the words are the arguments
	expect_status 2 "$DSFS" $bad
	[ -s "$T/err" ] || fail "'$bad': usage error without a message"
	[ -e k3.json ] && fail "'$bad' wrote a key"
done
echo "help and usage ok"
