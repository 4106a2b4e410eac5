# Faults under a live mount (issue 7). One mount.dsfs serves four datastores
# from one datastore.cfg; three of them are broken while in use and the
# fourth (B, the control) must keep serving its exact bytes throughout:
#  1. A's directory renamed away, then removed (rm -rf), while an image is
#     being read: the reader gets only correct bytes, then EIO (logged with
#     the chunk); new opens fail with ENOENT.
#  2. L's disk (a loop-mounted ext4) lazily unmounted (umount -l) mid-read:
#     the open file goes on with correct bytes (or an error), new opens fail
#     with ENOENT and do not hang; mounted again, L serves again.
#  3. E's disk starts failing writes: E is an ext4 on a loop device whose
#     backing file lives on another ext4, and `chattr +i` on that file makes
#     every write to the device fail with EIO (device-mapper's error and
#     flakey targets are not in every kernel; this needs only loop and ext4).
#     a) transient (dm-flakey-like): chunk writeback fails, the device heals,
#        the copy finishes; b) permanent (dm-error-like) until the end.
#     The failure is reported (to the writer or in the log), nothing partial
#     is visible, and after the disk is repaired (e2fsck) `dsfs verify` and a
#     fresh mount find only complete archives.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
need_root_with losetup mkfs.ext4 e2fsck chattr

R=$T/ram # everything on a tmpfs: 65536 chunk directories are removed fast
M=$T/m
A=faults-a-$$
L=faults-l-$$
E=faults-e-$$
B=faults-b-$$
IMG=vm/1/2024-05-01T10:00:00Z
IMG2=vm/1/2024-05-02T10:00:00Z
LOOPL= LOOPO= LOOPE=
mkdir -p "$R" "$M"
faults_cleanup() {
	if mountpoint -q "$M"; then fusermount3 -u "$M" 2>/dev/null || fusermount3 -u -z "$M"; fi
	[ ! -e "$R/outer/e.img" ] || chattr -i "$R/outer/e.img" 2>/dev/null
	local d
	for d in "$R/edisk" "$R/ldisk" "$R/outer"; do
		if mountpoint -q "$d"; then umount "$d" 2>/dev/null || umount -l "$d"; fi
	done
	[ -z "$LOOPE" ] || losetup -d "$LOOPE" 2>/dev/null
	[ -z "$LOOPL" ] || losetup -d "$LOOPL" 2>/dev/null
	[ -z "$LOOPO" ] || losetup -d "$LOOPO" 2>/dev/null
	if mountpoint -q "$R"; then umount "$R" || umount -l "$R"; fi
	for d in "$A" "$L" "$E" "$B"; do
		rm -f "/run/proxmox-backup/active-operations/$d" "/run/proxmox-backup/active-operations/$d.lock"
	done
}
cleanup_hooks+=(faults_cleanup)
for d in "$A" "$L" "$E" "$B"; do
	remove_after_unmount "/run/proxmox-backup/active-operations/$d" \
		"/run/proxmox-backup/active-operations/$d.lock"
done
mount -t tmpfs -o size=1200M tmpfs "$R"

# --- helpers ---

# check WHAT CMD...: CMD must succeed.
check() {
	local what=$1
	shift
	"$@" || fail "$what"
}
alive() { kill -0 "$MOUNT_PID" 2>/dev/null || { cat "$T/mount.log" >&2; fail "mount.dsfs died"; }; }
log_mark() { wc -l <"$T/mount.log"; }
# log_since MARK: the log lines written after MARK
log_since() { tail -n +$(($1 + 1)) "$T/mount.log"; }
# has_log MARK REGEX: a matching line after MARK (not grep -q in a pipe:
# with pipefail, its early exit fails the pipe)
has_log() { log_since "$1" >"$T/log.part"; grep -Eq "$2" "$T/log.part"; }
# wait_log MARK REGEX: up to 10 s for a matching line after MARK
wait_log() {
	local i
	for i in $(seq 100); do
		has_log "$1" "$2" && return 0
		sleep 0.1
	done
	return 1
}
# same FILE WANT: FILE reads back as WANT through dsfs (the kernel's pages
# of FILE are dropped first)
same() {
	dd if="$1" iflag=nocache count=0 status=none 2>/dev/null || true
	cmp -s "$1" "$2" 2>/dev/null
}
check_b() {
	same "$M/$B/$IMG/disk.img" "$R/b.want" || fail "$1: datastore B does not read its exact bytes"
	same "$M/$B/$IMG2/disk.img" "$R/b2.want" || fail "$1: datastore B (second image) differs"
	alive
}

# errno_of OP PATH: what one operation gets: OK, an errno name (from the
# tool's message), HANG after 10 s, or EMPTY for an empty listing (op
# "empty"). Shell tools: starting python takes over a second on a loaded
# machine.
# (replaces mountlib's errno_of and expect_errno: by the message, under a timeout)
errno_of() {
	local op=$1 p=$2 err rc=0
	case $op in
	read) err=$(LC_ALL=C timeout 10 head -c 1 -- "$p" 2>&1 >/dev/null) || rc=$? ;;
	ls | empty) err=$(LC_ALL=C timeout 10 ls -A -- "$p" 2>&1) || rc=$? ;;
	stat) err=$(LC_ALL=C timeout 10 stat -- "$p" 2>&1 >/dev/null) || rc=$? ;;
	mkdir) err=$(LC_ALL=C timeout 10 mkdir -- "$p" 2>&1) || rc=$? ;;
	esac
	if [ "$rc" = 124 ]; then echo HANG; return; fi
	if [ "$rc" = 0 ]; then
		if [ "$op" = empty ] && [ -z "$err" ]; then echo EMPTY; else echo OK; fi
		return
	fi
	case $err in
	*"No such file or directory"*) echo ENOENT ;;
	*"Input/output error"*) echo EIO ;;
	*"Read-only file system"*) echo EROFS ;;
	*"Stale file handle"*) echo ESTALE ;;
	*"No medium found"*) echo ENOMEDIUM ;;
	*"No such device or address"*) echo ENXIO ;;
	*"Transport endpoint is not connected"*) echo ENOTCONN ;;
	*) echo "OTHER($err)" ;;
	esac
}
# expect_errno WHAT WANT... -- OP PATH: the result is one of WANT
expect_errno() {
	local what=$1 got w
	shift
	local want=()
	while [ "$1" != -- ]; do want+=("$1"); shift; done
	shift
	got=$(errno_of "$@")
	for w in "${want[@]}"; do [ "$got" = "$w" ] && return 0; done
	fail "$what: $* gave $got, want ${want[*]}"
}
# poll_errno "WANT..." OP PATH: up to 2.5 s until OP gives one of WANT
# (kernel entries above snapshots are cached for 1 s)
poll_errno() {
	local i got w
	for i in $(seq 25); do
		got=$(errno_of "$2" "$3")
		for w in $1; do [ "$got" = "$w" ] && return 0; done
		sleep 0.1
	done
	echo "  $2 $3: got $got, want $1" >&2
	return 1
}

# rd.py FILE WANT PAUSE_AT READY GO: reads FILE in 1 MiB steps comparing
# with WANT; after PAUSE_AT bytes creates READY and waits for GO. Prints
# "GOOD n" (bytes that matched) and how it ended: END, ERRNO name, or WRONG.
cat >"$T/rd.py" <<'PY'
import errno, os, sys, time
path, want, pause_at, ready, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
ref = open(want, "rb").read()
fd = os.open(path, os.O_RDONLY)
off, res, paused = 0, "END", False
while True:
    if not paused and off >= pause_at:
        open(ready, "w").close()
        while not os.path.exists(go):
            time.sleep(0.02)
        paused = True
    try:
        b = os.pread(fd, 1 << 20, off)
    except OSError as e:
        res = "ERRNO " + errno.errorcode.get(e.errno, str(e.errno))
        break
    if b != ref[off:off + len(b)]:
        res = f"WRONG bytes at {off}"
        break
    if not b:
        if off != len(ref):
            res = f"WRONG: end of file at {off}, want {len(ref)}"
        break
    off += len(b)
print(f"GOOD {off}")
print(res)
PY
# wr.py SRC DST PAUSE_AT READY GO: writes SRC to DST in 1 MiB steps; after
# PAUSE_AT bytes creates READY and waits for GO; then fsync and close.
# Prints "write=R fsync=R close=R" (OK or an errno name).
cat >"$T/wr.py" <<'PY'
import errno, os, sys, time
src, dst, pause_at, ready, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
def name(e): return errno.errorcode.get(e.errno, str(e.errno))
data = open(src, "rb").read()
fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
off, res = 0, {"write": "OK", "fsync": "OK", "close": "OK"}
try:
    while off < len(data):
        if off == pause_at:
            open(ready, "w").close()
            while not os.path.exists(go):
                time.sleep(0.02)
        off += os.write(fd, data[off:off + (1 << 20)])
except OSError as e:
    res["write"] = name(e)
for step, fn in (("fsync", os.fsync), ("close", os.close)):
    try:
        fn(fd)
    except OSError as e:
        res[step] = name(e)
print(" ".join(f"{k}={v}" for k, v in res.items()))
PY
# run_paused WHAT SCRIPT ARGS... -- ACTION...: runs SCRIPT (rd.py or wr.py,
# which pause at their PAUSE_AT), runs ACTION during the pause, lets SCRIPT
# finish (at most 60 s) and leaves its output in $T/run.out.
run_paused() {
	local what=$1 script=$2 pid i
	shift 2
	local args=()
	while [ "$1" != -- ]; do args+=("$1"); shift; done
	shift
	rm -f "$T/ready" "$T/go"
	timeout 60 python3 "$T/$script" "${args[@]}" "$T/ready" "$T/go" >"$T/run.out" 2>&1 &
	pid=$!
	for i in $(seq 300); do
		[ -e "$T/ready" ] && break
		kill -0 "$pid" 2>/dev/null || { cat "$T/run.out" >&2; fail "$what: $script ended early"; }
		sleep 0.05
	done
	[ -e "$T/ready" ] || fail "$what: $script did not reach its pause"
	"$@"
	touch "$T/go"
	wait "$pid" || { cat "$T/run.out" >&2; fail "$what: $script failed or hung"; }
}
# reader_ok WHAT: the reader saw only correct bytes; echoes how it ended
reader_ok() {
	grep -q '^WRONG' "$T/run.out" && fail "$1: wrong bytes: $(tr '\n' ' ' <"$T/run.out")"
	grep -Eq '^(END|ERRNO )' "$T/run.out" || fail "$1: reader output: $(cat "$T/run.out")"
	tr '\n' ' ' <"$T/run.out"
}

# --- the datastores ---

# A, B: directories on the tmpfs. Two snapshots each, different data.
for s in a b; do
	"$DSFS" init "$R/$s" >/dev/null
done
head -c 48M /dev/urandom >"$R/a.want"
head -c 8M /dev/urandom >"$R/a-extra.want"
head -c 48M /dev/urandom >"$R/a2.want"
head -c 16M /dev/urandom >"$R/b.want"
head -c 8M /dev/urandom >"$R/b2.want"
"$DSFS" backup --time 2024-05-01T10:00:00Z "$R/a" vm/1 disk.img="$R/a.want" extra.img="$R/a-extra.want" >/dev/null
"$DSFS" backup --time 2024-05-02T10:00:00Z "$R/a" vm/1 disk.img="$R/a2.want" >/dev/null
"$DSFS" backup --time 2024-05-01T10:00:00Z "$R/b" vm/1 disk.img="$R/b.want" >/dev/null
"$DSFS" backup --time 2024-05-02T10:00:00Z "$R/b" vm/1 disk.img="$R/b2.want" >/dev/null

# L: an ext4 of its own (loop device), the datastore at its root.
truncate -s 160M "$R/l.img"
mkfs.ext4 -q -F -O inline_data -N 70000 "$R/l.img"
LOOPL=$(losetup -f --show "$R/l.img")
mkdir -p "$R/ldisk"
mount "$LOOPL" "$R/ldisk"
"$DSFS" init "$R/ldisk" >/dev/null
head -c 48M /dev/urandom >"$R/l.want"
head -c 8M /dev/urandom >"$R/l-extra.want"
"$DSFS" backup --time 2024-05-01T10:00:00Z "$R/ldisk" vm/1 disk.img="$R/l.want" extra.img="$R/l-extra.want" >/dev/null

# E: ext4 on a loop device over e.img, a file on another ext4 ("outer",
# itself a loop device over a tmpfs file). commit=60: the journal commits
# only when something syncs, so a short fault hits data writeback only.
truncate -s 200M "$R/outer.img"
mkfs.ext4 -q -F "$R/outer.img"
LOOPO=$(losetup -f --show "$R/outer.img")
mkdir -p "$R/outer" "$R/edisk"
mount "$LOOPO" "$R/outer"
truncate -s 128M "$R/outer/e.img"
mkfs.ext4 -q -F -O inline_data -N 70000 "$R/outer/e.img"
LOOPE=$(losetup -f --show "$R/outer/e.img")
mount -o commit=60 "$LOOPE" "$R/edisk"
"$DSFS" init "$R/edisk" >/dev/null
for f in good bad bad2; do head -c 24M /dev/urandom >"$R/$f.src"; done
sync -f "$R/edisk"

printf 'datastore: %s\n\tpath %s\n\n' "$A" "$R/a" "$L" "$R/ldisk" "$E" "$R/edisk" "$B" "$R/b" \
	>"$R/datastore.cfg"
mount_dsfs "$R/datastore.cfg" "$M" -o cache_size=16M,owner=backup@pbs
[ "$(ls "$M" | sort | tr '\n' ' ')" = "$(printf '%s\n' "$A" "$L" "$E" "$B" | sort | tr '\n' ' ')" ] ||
	fail "the root does not list exactly the four datastores: $(ls "$M")"
check_b "at start"

# --- 1. A's directory renamed away, then removed, mid-read ---

# a) renamed: dsfs holds the chunk store open, so the open file may go on
mark=$(log_mark)
run_paused "rename" rd.py "$M/$A/$IMG/disk.img" "$R/a.want" $((8 << 20)) -- mv "$R/a" "$R/a.moved"
echo "1a rename mid-read: $(reader_ok "rename")"
poll_errno ENOENT read "$M/$A/$IMG/extra.img" || fail "rename: new opens do not fail with ENOENT"
expect_errno "rename: listing the store" ENOENT -- ls "$M/$A"
[ "$(errno_of ls "$M")" = OK ] || fail "rename: the root stopped listing"
check_b "after rename"
check "rename: a log line names datastore $A" has_log "$mark" "$A"
mv "$R/a.moved" "$R/a"
poll_errno OK read "$M/$A/$IMG/extra.img" || fail "rename back: A does not serve again"
cmp -s "$M/$A/$IMG/extra.img" "$R/a-extra.want" || fail "rename back: wrong bytes"

# b) removed: the chunks are gone; what was read before is right, then EIO
mark=$(log_mark)
run_paused "rm -rf" rd.py "$M/$A/$IMG2/disk.img" "$R/a2.want" $((8 << 20)) -- rm -rf "$R/a"
out=$(reader_ok "rm -rf")
echo "1b rm -rf mid-read: $out"
case $out in *"ERRNO EIO"*) ;; *) fail "rm -rf: the reader did not end with EIO: $out" ;; esac
has_log "$mark" "chunk [0-9a-f]{64}: missing" || fail "rm -rf: missing chunk not logged"
has_log "$mark" "$A/$IMG2/disk.img: read at [0-9]*: No such file or directory" ||
	fail "rm -rf: failed read not logged"
poll_errno ENOENT read "$M/$A/$IMG/disk.img" || fail "rm -rf: new opens do not fail with ENOENT"
check_b "after rm -rf"

# c) a new datastore made at the same path is served (no remount)
"$DSFS" init "$R/a" >/dev/null
head -c 8M /dev/urandom >"$R/a3.want"
"$DSFS" backup --time 2024-05-03T10:00:00Z "$R/a" vm/1 disk.img="$R/a3.want" >/dev/null
poll_errno OK stat "$M/$A/vm/1/2024-05-03T10:00:00Z/disk.img" || fail "recreated: not listed"
check "recreated: the new datastore at A's path reads back" \
	same "$M/$A/vm/1/2024-05-03T10:00:00Z/disk.img" "$R/a3.want"
check_b "after recreating A"

# --- 2. L's disk lazily unmounted mid-read ---

mark=$(log_mark)
run_paused "umount -l" rd.py "$M/$L/$IMG/disk.img" "$R/l.want" $((8 << 20)) -- umount -l "$R/ldisk"
echo "2 umount -l mid-read: $(reader_ok "umount -l")"
# (ENOMEDIUM would say better what happened)
poll_errno "ENOENT ENOMEDIUM" read "$M/$L/$IMG/extra.img" ||
	fail "umount -l: new opens do not fail with ENOENT or ENOMEDIUM"
check_b "after umount -l"
check "umount -l: a log line names datastore $L" has_log "$mark" "$L"
# the mount point is an empty directory now, not a datastore
check "umount -l: listing L fails (not an empty datastore)" \
	test "$(errno_of empty "$M/$L")" != EMPTY
mount "$LOOPL" "$R/ldisk"
poll_errno OK read "$M/$L/$IMG/extra.img" || fail "mounted again: L does not serve"
cmp -s "$M/$L/$IMG/extra.img" "$R/l-extra.want" || fail "mounted again: wrong bytes"

# --- 3. E's disk fails writes ---

S0=$M/$E/vm/2/2026-01-01T00:00:00Z
S1=$M/$E/vm/2/2026-01-01T00:00:01Z
S2=$M/$E/vm/2/2026-01-01T00:00:02Z
mkdir -p "$S0"
cp "$R/good.src" "$S0/good.img" || fail "a copy onto the healthy disk"
cmp -s "$S0/good.img" "$R/good.src" || fail "good.img differs"

# a) transient: the device fails from the start of the copy until the
# first two chunks have been written back (their writeback fails), then
# heals; the copy goes on and closes
fault_on() { chattr +i "$R/outer/e.img"; }
fault_off() { chattr -i "$R/outer/e.img"; }
flush_then_heal() {
	python3 "$(dirname "$0")/../flush_chunks.py" "$R/edisk" "$R/bad.src" 2 >"$T/flush.out"
	fault_off
}
mkdir "$S1"
# another file of the same snapshot, open throughout: once the snapshot's
# data is lost, its writes and its close fail too (its commit would)
rm -f "$T/comp.ready" "$T/comp.go"
timeout 90 python3 - "$S1/other.txt" "$T/comp.ready" "$T/comp.go" >"$T/comp.out" 2>&1 <<'PY' &
import os, sys, time
from outcome import outcome as res
dst, ready, go = sys.argv[1:]
fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
first = res(os.write, fd, b"before\n")
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.02)
print(f"first={first} write={res(os.write, fd, b'after')} close={res(os.close, fd)}")
PY
comp=$!
cleanup_hooks=("kill $comp 2>/dev/null" "${cleanup_hooks[@]}") # before the unmount
for i in $(seq 200); do [ -e "$T/comp.ready" ] && break; sleep 0.05; done
[ -e "$T/comp.ready" ] || { cat "$T/comp.out" >&2; fail "flakey: the other file was not opened"; }
mark=$(log_mark)
fault_on
run_paused "flakey" wr.py "$R/bad.src" "$S1/bad.img" $((8 << 20)) -- flush_then_heal
res=$(cat "$T/run.out")
echo "3a transient write errors: writer: $res; chunk writebacks failed: $(cat "$T/flush.out")"
[ "$(cat "$T/flush.out")" -ge 1 ] || fail "flakey: no writeback failed: the fault was not injected"
wait_log "$mark" "$E/vm/2/2026-01-01T00:00:01Z(/bad.img: archive abandoned|: bad.img.fidx written)" ||
	fail "flakey: the commit was not logged"
echo "3a log: $(log_since "$mark" | tr '\n' ' ')"
case $res in
*=EIO*) ;;
*) has_log "$mark" "bad.img: archive abandoned: Input/output error" ||
	fail "flakey: neither the writer nor the log got EIO ($res)" ;;
esac
check "flakey: fsync or close reports EIO" \
	grep -Eq 'fsync=EIO|close=EIO' "$T/run.out"
touch "$T/comp.go"
wait "$comp"
echo "3a the other file of the snapshot: $(cat "$T/comp.out")"
check "flakey: the other file of the snapshot fails its write and close with EIO" \
	grep -q '^first=OK write=EIO close=EIO$' "$T/comp.out"
# anything visible reads back exactly (the page cache may still hold the
# lost chunks), and an abandoned archive is not listed
if [ "$(errno_of stat "$S1/bad.img")" = OK ]; then
	r=$(errno_of read "$S1/bad.img")
	[ "$r" = OK ] && { cmp -s "$S1/bad.img" "$R/bad.src" || fail "flakey: bad.img visible with wrong bytes"; }
fi
if has_log "$mark" "bad.img: archive abandoned"; then
	check "flakey: the abandoned bad.img is not listed" \
		test "$(errno_of stat "$S1/bad.img")" = ENOENT
fi
check_b "after transient faults"

# b) permanent: from the middle of the copy to the end of the test
mkdir "$S2"
mark=$(log_mark)
run_paused "error" wr.py "$R/bad2.src" "$S2/bad2.img" $((8 << 20)) -- fault_on
res=$(cat "$T/run.out")
echo "3b permanent write errors: writer: $res"
wait_log "$mark" "bad2.img(: archive abandoned|.fidx written)" || fail "error: the commit was not logged"
echo "3b log: $(log_since "$mark" | tr '\n' ' ')"
has_log "$mark" "bad2.img: archive abandoned: (Input/output error|Read-only file system)" ||
	fail "error: no EIO/EROFS abandon in the log"
if [ "$(errno_of stat "$S2/bad2.img")" = OK ]; then
	r=$(errno_of read "$S2/bad2.img")
	[ "$r" = OK ] && { cmp -s "$S2/bad2.img" "$R/bad2.src" || fail "error: bad2.img visible with wrong bytes"; }
	[ "$r" = OK ] || [ "$r" = EIO ] || fail "error: reading bad2.img gave $r"
fi
check "error: the abandoned bad2.img is not listed" \
	test "$(errno_of stat "$S2/bad2.img")" = ENOENT
# new writes do not hang; none is committed as if all were well (the
# disk's cache may still take a mkdir)
S3=$M/$E/vm/2/2026-01-01T00:00:03Z
mark=$(log_mark)
expect_errno "error: mkdir on the failing disk" OK EIO EROFS -- mkdir "$S3"
if [ -d "$S3" ]; then
	echo small >"$T/small.txt"
	if timeout 30 cp "$T/small.txt" "$S3/small.txt" 2>"$T/cp.err"; then
		wait_log "$mark" "small.txt(: archive abandoned|.blob written)" || fail "error: small.txt commit not logged"
	fi
	! has_log "$mark" "small.txt.blob written" || fail "error: a commit on the failing disk succeeded"
	echo "3b small file on the failing disk: cp: $(cat "$T/cp.err" 2>/dev/null)$(log_since "$mark" | tr '\n' ' ')"
fi
r=$(errno_of read "$S0/good.img")
case $r in
OK) cmp -s "$S0/good.img" "$R/good.src" || fail "error: good.img wrong while the disk fails" ;;
EIO) ;;
*) fail "error: reading good.img gave $r" ;;
esac
check_b "with E failing"
expect_errno "A still lists" OK -- ls "$M/$A/vm/1"
cmp -s "$M/$L/$IMG/disk.img" "$R/l.want" || fail "L no longer serves"
unmount_dsfs "$M"

# --- after the repair: e2fsck, verify, a fresh mount ---

fault_off
umount "$R/edisk"
rc=0
e2fsck -fy "$LOOPE" >"$T/fsck.out" 2>&1 || rc=$?
[ "$rc" -le 1 ] || { cat "$T/fsck.out" >&2; fail "e2fsck exited $rc"; }
mount "$LOOPE" "$R/edisk"
"$DSFS" verify "$R/edisk" vm/2/2026-01-01T00:00:00Z >"$T/verify.out" 2>&1 ||
	{ cat "$T/verify.out" >&2; fail "verify of the good snapshot"; }
if [ -e "$R/edisk/vm/2/2026-01-01T00:00:02Z/index.json.blob" ]; then
	"$DSFS" verify "$R/edisk" vm/2/2026-01-01T00:00:02Z >"$T/verify.out" 2>&1 ||
		{ cat "$T/verify.out" >&2; fail "verify of the snapshot written while the disk failed"; }
fi
# the snapshot written through transient faults: no manifest (nothing was
# published), or one whose archives verify
s1_clean() {
	[ ! -e "$R/edisk/vm/2/2026-01-01T00:00:01Z/index.json.blob" ] && return 0
	"$DSFS" verify "$R/edisk" vm/2/2026-01-01T00:00:01Z >"$T/verify.out" 2>&1 && return 0
	grep -h "dsfs: verify" "$T/verify.out" >&2 || true
	return 1
}
check "repaired: the snapshot written through transient faults verifies" s1_clean
mount_dsfs "$R/datastore.cfg" "$M" -o cache_size=16M
# a writable mount removes what interrupted writers left (a store of a
# config is set up on its first lookup)
ls "$M/$E" >/dev/null || fail "fresh mount: E does not list"
left=$(find "$R/edisk" -name '*.tmp_*' -print -quit)
[ -z "$left" ] || fail "temp files on the repaired disk: $left"
same "$S0/good.img" "$R/good.src" || fail "fresh mount: good.img differs"
for f in "$S1/bad.img:$R/bad.src" "$S2/bad2.img:$R/bad2.src"; do
	[ "$(errno_of stat "${f%%:*}")" = OK ] || continue
	r=$(errno_of read "${f%%:*}")
	case $r in
	OK) cmp -s "${f%%:*}" "${f#*:}" || fail "fresh mount: ${f%%:*} visible with wrong bytes" ;;
	EIO) fail "fresh mount: ${f%%:*} gives EIO" ;;
	*) fail "fresh mount: reading ${f%%:*} gave $r" ;;
	esac
done
check_b "fresh mount"
unmount_dsfs "$M"
echo "live_faults: ok"
