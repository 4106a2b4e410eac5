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
	# The watchdog goes first (only the test's own shell has one), so
	# that it cannot fire during a slow cleanup.
	# (One that fired ends by itself once this shell is gone.)
	if [ -n "${WATCHDOG_PID:-}" ] && [ "$BASHPID" = "$$" ] && [ ! -e "$T.watchdog" ]; then
		pkill -P "$WATCHDOG_PID" 2>/dev/null || true
		kill "$WATCHDOG_PID" 2>/dev/null || true
		wait "$WATCHDOG_PID" 2>/dev/null || true
	fi
	for h in "${cleanup_hooks[@]}"; do eval "$h" || true; done
	rm -rf "$T"
	if [ -e "$T.watchdog" ] && [ "$BASHPID" = "$$" ]; then
		rm -f "$T.watchdog"
		exit 124 # whatever the test went on to do after its processes were killed
	fi
}
trap cleanup EXIT

# descendants PID [EXCEPT]: the processes below PID, leaving out EXCEPT and
# those below it.
descendants() {
	local table queue=("$1") p c
	table=$(ps -eo pid=,ppid=)
	while [ ${#queue[@]} -gt 0 ]; do
		p=${queue[0]}
		queue=("${queue[@]:1}")
		for c in $(awk -v p="$p" '$2 == p { print $1 }' <<<"$table"); do
			[ "$c" = "${2:-}" ] && continue
			echo "$c"
			queue+=("$c")
		done
	done
}

# proc_state PID: the state letter of PID (R, S, D...), empty when gone.
proc_state() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1; }

# The watchdog. A test that hangs (a request its daemon never answers, a
# FIFO that nobody opens) fails after DSFS_TEST_TIMEOUT seconds (300; the
# slowest test, mount/write, takes about 70 s) and does not hang the suite:
# neither ctest's timeout nor SIGKILL ends a process whose FUSE request the
# daemon has taken, nor a daemon with a thread waiting in the kernel for
# such a process. It prints what is stuck (kernel stacks, the daemons'
# threads), aborts the FUSE connections of the mounts under $T (their
# requests then fail with ENOTCONN) and kills the test's processes. The
# test's shell then fails and cleans up (cleanup sees $T.watchdog), or is
# killed if it is stuck itself.
test_watchdog() {
	local main=$1 limit=$2 me=$BASHPID pids p line dev i
	# sleep holds none of ctest's pipes: ctest waits for them to close.
	sleep "$limit" </dev/null >/dev/null 2>&1
	trap '' TERM # cleanup's, from here on
	: >"$T.watchdog"
	exec 1>&2
	echo "FAIL: ${0##*/} still running after $limit s (DSFS_TEST_TIMEOUT); its processes:"
	pids=$(descendants "$main" "$me" | tr '\n' ' ')
	ps -o pid,ppid,stat,wchan:32,args -p "$(echo $main $pids | tr " " ,)" || true
	for p in $main $pids; do
		if [ "$(proc_state "$p")" = D ]; then
			echo "== kernel stack of $p ($(cat "/proc/$p/comm" 2>/dev/null)):"
			cat "/proc/$p/stack" 2>/dev/null || true
		fi
	done
	for p in $pids; do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = mount.dsfs ] || continue
		echo "== threads of mount.dsfs $p, kernel side:"
		for line in /proc/"$p"/task/*; do
			echo "-- ${line##*/} $(cat "$line/comm" 2>/dev/null) wchan=$(cat "$line/wchan" 2>/dev/null)"
			cat "$line/stack" 2>/dev/null || true
		done
		if command -v gdb >/dev/null; then
			echo "== threads of mount.dsfs $p, user side:"
			timeout 30 gdb -p "$p" -batch -ex 'thread apply all bt' 2>&1 |
				grep -E '^(Thread|#)' || true
		fi
	done
	if [ "$(id -u)" = 0 ]; then
		mountpoint -q /sys/fs/fuse/connections ||
			mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null || true
		while read -r _ _ dev _ line _; do
			case $line in "$T"/*) ;; *) continue ;; esac
			echo "== aborting the FUSE connection of $line"
			echo 1 >"/sys/fs/fuse/connections/${dev#*:}/abort" 2>/dev/null || true
		done < <(grep ' - fuse' /proc/self/mountinfo)
	fi
	# shellcheck disable=SC2046
	kill -KILL $(descendants "$main" "$me") 2>/dev/null || true
	for i in $(seq 10); do
		kill -0 "$main" 2>/dev/null || return 0
		sleep 1
	done
	echo "== the test's shell is stuck itself: killed"
	# Its cleanup, then the shell: whoever waits for it finds all gone.
	# shellcheck disable=SC2046
	kill -KILL $(descendants "$main" "$me") 2>/dev/null || true
	grep -o " $T/[^ ]* " /proc/self/mountinfo | sort -r | while read -r line; do
		umount -l "$line" 2>/dev/null || fusermount3 -uz "$line" 2>/dev/null || true
	done
	rm -rf "$T" "$T.watchdog"
	kill -KILL "$main" 2>/dev/null || true
}
if [ "${DSFS_TEST_TIMEOUT:-300}" != 0 ]; then
	test_watchdog "$$" "${DSFS_TEST_TIMEOUT:-300}" &
	WATCHDOG_PID=$!
fi

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

# fails_once "DSFS ARGS" GREP_ARGS...: `$DSFS ARGS` (word-split) exits 1
# with exactly one line on stderr, which grep -q GREP_ARGS matches: the
# reason once, not followed by a second line saying it again.
fails_once() {
	local cmd=$1
	shift
	# shellcheck disable=SC2086 # the words of $cmd are the arguments
	expect_status 1 "$DSFS" $cmd
	grep -q "$@" "$T/err" || { cat "$T/err"; fail "$cmd: message"; }
	[ "$(wc -l <"$T/err")" = 1 ] || { cat "$T/err"; fail "$cmd: more than one line"; }
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

# sanitized PROGRAM: true if PROGRAM is linked with ASan. Not
# `ldd ... | grep -q`: grep leaves at the first match, the loader's
# further lines then die on SIGPIPE, and pipefail fails the pipeline
# (a sanitizer build once ran verify_enomem's allocator shim that way).
sanitized() {
	case "$(ldd "$1" 2>/dev/null)" in
	*libasan*) return 0 ;;
	esac
	return 1
}
