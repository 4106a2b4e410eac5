# Shared by the CLI and mount test scripts: fixtures, temp dirs, assertions.
# Sourced, not run. $DSFS is the dsfs binary (set by ctest).
set -euo pipefail

: "${DSFS:?DSFS must point to the dsfs binary}"
# Python helpers of the scripts (pcat.py) are imported from tests/.
PYTHONPATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)${PYTHONPATH:+:$PYTHONPATH}
export PYTHONPATH
FIX=${DSFS_FIXTURES:-}
T=$(mktemp -d /tmp/dsfs-cli.XXXXXX)
# PBS's lock files are by datastore name, and most tests' stores are named
# "store" (their directory's name): in the shared /run/proxmox-backup/locks,
# tests running at the same time (ctest -j) would lock each other's groups.
export DSFS_LOCK_DIR=$T/locks
cleanup_hooks=()
cleanup() {
	local h
	for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done
	rm -rf "$T"
}
trap cleanup EXIT

need_fixtures() {
	if [ -z "$FIX" ] || [ ! -f "$FIX/pbs-store-a.expect.json" ]; then
		echo "SKIP: PBS fixtures not found (DSFS_FIXTURES=$FIX); put shared/ beside the checkout" >&2
		exit 77
	fi
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# need_root_with TOOL...: skips the test unless it runs as root (loop
# devices, mount, chattr) with every TOOL installed.
need_root_with() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || { echo "SKIP: $tool missing" >&2; exit 77; }
	done
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: needs root (loop devices, mount, chattr)" >&2
		exit 77
	fi
}

# expect_status WANT CMD...: runs CMD, fails unless it exits WANT.
expect_status() {
	local want=$1 got=0
	shift
	"$@" >"$T/out" 2>"$T/err" || got=$?
	[ "$got" = "$want" ] || { cat "$T/err" >&2; fail "'$*' exited $got, want $want"; }
}

# fixture_copy NAME DEST: a writable copy of fixture datastore NAME.
fixture_copy() {
	cp -r "$FIX/$1" "$2" && chmod -R u+w "$2"
}

# A private key copy with mode 0600 (fixtures are world-readable, which
# dsfs refuses for key files).
fixture_key() {
	install -m 0600 "$FIX/pbs-store-a.enc-key.json" "$T/key.json"
	echo "$T/key.json"
}

# verify_clean_but_abandoned STORE SNAPDIR... -- [VERIFY ARGS...]: `dsfs
# verify` of STORE finds no damage. Of the snapshot directories SNAPDIR...,
# those without a manifest (left unfinished by a refused or killed writer)
# must be reported as abandoned backups, as PBS's verify reports them, and
# nothing else may be.
verify_clean_but_abandoned() {
	local store=$1 unfinished=0 st=0 want=0 other
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		[ -d "$1" ] && [ ! -e "$1/index.json.blob" ] && unfinished=$((unfinished + 1))
		shift
	done
	[ $# -gt 0 ] && shift
	"$DSFS" verify "$@" "$store" >"$T/verify.out" 2>&1 || st=$?
	[ "$unfinished" = 0 ] || want=3
	other=$(grep "^dsfs: verify: " "$T/verify.out" |
		grep -v "/index.json.blob: missing: unfinished snapshot that no backup is writing$" || true)
	[ "$st" = "$want" ] && [ -z "$other" ] && grep -q ": $unfinished errors$" "$T/verify.out" ||
		{ tail "$T/verify.out" >&2; fail "verify: exit $st, want $want ($unfinished unfinished snapshots)"; }
}

# need_backup_user: skips the test unless it runs as root and user backup
# (PBS's daemons' user) exists; then as_backup CMD... runs CMD as backup,
# who can reach $T.
need_backup_user() {
	[ "$(id -u)" = 0 ] || { echo "SKIP: needs root" >&2; exit 77; }
	getent passwd backup >/dev/null || { echo "SKIP: no user backup" >&2; exit 77; }
	command -v setpriv >/dev/null || { echo "SKIP: setpriv missing" >&2; exit 77; }
	chmod 755 "$T"
}
as_backup() { setpriv --reuid=backup --regid=backup --clear-groups "$@"; }

# bare_store DIR...: datastores without dsfs init's 65536 chunk directories
# (.chunks and .lock only: a backup makes the chunk directories it needs),
# made in no time.
bare_store() {
	local d
	for d in "$@"; do
		mkdir -p "$d/.chunks"
		: >"$d/.lock"
	done
}
