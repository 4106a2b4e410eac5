# Mount-test helpers, sourced after testlib.bash. $MOUNT_DSFS is the real
# mount.dsfs binary (set by ctest).
: "${MOUNT_DSFS:?MOUNT_DSFS must point to mount.dsfs}"

need_fuse() {
	if [ ! -e /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
		echo "SKIP: FUSE unavailable (/dev/fuse or fusermount3 missing)" >&2
		exit 77
	fi
}

# remove_after_unmount PATTERN...: files (globs allowed) removed at cleanup
# once each mount's daemon has exited: the active-operations files a
# daemon writes on its way out. A removal registered as a plain hook
# before mount_dsfs ran before that mount's unmount hook (hooks run in
# order), and one registered after the first mount still ran before a
# later mount's: a failing run left the files behind. Call it any time.
after_unmount=()
remove_after_unmount() {
	after_unmount+=("$@")
	cleanup_hooks+=(remove_registered_files)
}
remove_registered_files() {
	local p f
	for p in "${after_unmount[@]}"; do
		while IFS= read -r f; do rm -f -- "$f" 2>/dev/null || true; done < <(compgen -G "$p" || true)
	done
}

# mount_dsfs SOURCE DIR [ARGS...]: runs mount.dsfs in the foreground (log in
# $T/mount.log), waits up to 10 s ($DSFS_MOUNT_TIMEOUT: under valgrind) for
# the mount to appear, and registers the unmount for cleanup (and then the
# removal of the files of remove_after_unmount). Sets MOUNT_PID.
mount_dsfs() {
	local src=$1 dir=$2
	shift 2
	mkdir -p "$dir"
	"$MOUNT_DSFS" "$src" "$dir" -f "$@" >>"$T/mount.log" 2>&1 &
	MOUNT_PID=$!
	cleanup_hooks+=("fusermount3 -u '$dir' 2>/dev/null; kill $MOUNT_PID 2>/dev/null; wait $MOUNT_PID 2>/dev/null; remove_registered_files")
	local i
	for i in $(seq $((${DSFS_MOUNT_TIMEOUT:-10} * 10))); do
		if mountpoint -q "$dir"; then return 0; fi
		kill -0 "$MOUNT_PID" 2>/dev/null || { cat "$T/mount.log" >&2; fail "mount.dsfs exited"; }
		sleep 0.1
	done
	cat "$T/mount.log" >&2
	fail "mount of $src on $dir not ready after ${DSFS_MOUNT_TIMEOUT:-10} s"
}

# unmount_dsfs DIR: unmounts and waits for the daemon to exit cleanly.
unmount_dsfs() {
	fusermount3 -u "$1" || fail "fusermount3 -u $1"
	local rc=0
	wait "$MOUNT_PID" || rc=$?
	[ "$rc" = 0 ] || { cat "$T/mount.log" >&2; fail "mount.dsfs exited $rc"; }
}

# wait_until DESC CMD...: CMD succeeds within ~2.5 s (for changes the mount
# follows: inotify makes them immediate, its 1 s tick is the fallback).
wait_until() {
	local what=$1 i
	shift
	for i in $(seq 25); do
		"$@" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "$what: not within 2.5 s"
}
# daemon_of WORD: the pid of a mount.dsfs whose command line holds the
# argument WORD (its mount point, its source).
daemon_of() {
	local p
	for p in /proc/[0-9]*; do
		if tr '\0' '\n' 2>/dev/null <"$p/cmdline" | grep -qxF "$1" &&
			tr '\0' '\n' 2>/dev/null <"$p/cmdline" | grep -q 'mount\.dsfs$'; then
			echo "${p#/proc/}"
			return 0
		fi
	done
	return 1
}

# listed DIR NAME / not_listed DIR NAME: whether ls DIR shows NAME. Both
# are false when DIR cannot be listed: a listing that fails shows nothing,
# which is no proof that NAME is gone.
listed() { ls "$1" | grep -qx "$2"; }
not_listed() {
	local out
	out=$(ls "$1") || return 1
	! grep -qx "$2" <<<"$out"
}

# manifest_py SNAP EXPR: prints EXPR, a Python expression over the manifest
# m of snapshot SNAP (vm/100/TIME) of datastore $S, read with dsfs cat.
manifest_py() {
	"$DSFS" cat "$S" "$1" index.json | python3 -c '
import json, sys
m = json.load(sys.stdin)
print(eval(sys.argv[1]))' "$2"
}

# mount_new_snapshot: an empty datastore $S (dsfs init) mounted on $M, and a
# new snapshot $SNAP made in it through the mount, for tests that write.
mount_new_snapshot() {
	S=$T/store
	M=$T/m
	"$DSFS" init "$S" >/dev/null
	mount_dsfs "$S" "$M"
	SNAP=$M/vm/100/2026-01-01T00:00:00Z
	mkdir -p "$SNAP"
}

# mount_finished_snapshot: mount_new_snapshot, with one archive (f.txt)
# committed, so the snapshot has its manifest.
mount_finished_snapshot() {
	mount_new_snapshot
	echo data >"$SNAP/f.txt"
	wait_until "first commit" test -e "$S/vm/100/2026-01-01T00:00:00Z/index.json.blob"
}

# signed_fixture: a writable copy of fixture pbs-store-a in $S, its key in
# $key, $M to mount it on, and four snapshots whose manifests are signed
# with that key: A and B of vm/201 (encrypted images, blobs), P and Q of
# host/delta-63 (pxar archives), both in namespace prod.
signed_fixture() {
	key=$(fixture_key)
	S=$T/store
	M=$T/m
	fixture_copy pbs-store-a "$S"
	A=ns/prod/vm/201/2024-03-02T11:02:17Z
	B=ns/prod/vm/201/2024-03-03T11:02:17Z
	P=ns/prod/ns/db/host/delta-63/2024-03-02T13:02:17Z
	Q=ns/prod/ns/db/host/delta-63/2024-03-03T13:02:17Z
}

# errno_of OP PATH [ARG]: what the operation gets ("OK" or an errno name).
errno_of() {
	python3 - "$@" <<'EOF'
import errno, os, sys
op, path = sys.argv[1], sys.argv[2]
try:
    if op == "mkdir":
        os.mkdir(path)
    elif op == "rmdir":
        os.rmdir(path)
    elif op == "unlink":
        os.unlink(path)
    elif op == "create":
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    elif op == "openw":
        os.close(os.open(path, os.O_WRONLY))
    elif op == "rename":
        os.rename(path, sys.argv[3])
    elif op == "truncate":
        os.truncate(path, 0)
    elif op == "stat":
        os.stat(path)
    elif op == "list":
        os.listdir(path)
    elif op == "read":
        with open(path, "rb") as f:
            f.read()
    print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])
EOF
}
# expect_errno WANT OP PATH [ARG]: errno_of gives WANT.
expect_errno() {
	local want=$1 got
	shift
	got=$(errno_of "$@")
	[ "$got" = "$want" ] || fail "$*: got $got, want $want"
}

# hold_lock -s|-x FILE SECONDS: FILE flocked, shared or exclusive, in the
# background from when this returns, for SECONDS (as a PBS reader or notes
# update holds its lock); the holder's pid in $holder. Wait for it rather
# than kill it: a killed flock(1) leaves its sleep holding the lock.
hold_lock() {
	local _
	rm -f "$T/held"
	flock "$1" "$2" sh -c ": >'$T/held'; exec sleep $3" >/dev/null 2>&1 &
	holder=$!
	for _ in $(seq 100); do [ -e "$T/held" ] && return 0; sleep 0.05; done
	fail "$2: lock not taken in 5 s"
}
