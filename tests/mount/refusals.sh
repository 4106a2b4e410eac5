# The refusal table of DESIGN.md through a real mount of a datastore given by
# name: each maintenance mode, set by hand (a new file renamed over
# datastore.cfg, and an in-place rewrite of the same inode) and by
# `dsfs maintenance`, gives the user the table's errno within ~2 s, without
# remounting. A file opened before "offline" keeps reading; once it is
# closed the daemon holds no descriptor on the datastore. A multi-store
# mount drops a deleted store from its root. A bad edit keeps the last good
# config and logs file:line. Each access change is logged with the
# maintenance message, a store removed from the config as removed.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse

NAME=dsfs-test-$$
fixture_copy pbs-store-a "$T/store"
STORE=$(realpath "$T/store")
CFG=$T/datastore.cfg
OPS=/run/proxmox-backup/active-operations
remove_after_unmount "$OPS/$NAME" "$OPS/$NAME.lock"
M=$T/m
SNAP=vm/101/2024-03-02T08:02:17Z
FILE=$M/$SNAP/qemu-server.conf
"$DSFS" cat "$STORE" "$SNAP" qemu-server.conf >"$T/conf.want"

# The fixture's section, renamed, path substituted, maintenance-mode $1
# ("none": no maintenance line) with an optional message $2.
cfg_text() {
	local mode=$1 msg=${2:-}
	sed -e "s|^datastore: .*|datastore: $NAME|" -e "s|^\tpath .*|\tpath $STORE|" \
		"$FIX/pbs-store-a.datastore.cfg" | while IFS= read -r line; do
		case $line in
		$'\tpath '*)
			if [ "$mode" != none ] && [ -n "$msg" ]; then
				printf '\tmaintenance-mode type=%s,message="%s"\n' "$mode" "$msg"
			elif [ "$mode" != none ]; then
				printf '\tmaintenance-mode %s\n' "$mode"
			fi
			;;
		esac
		printf '%s\n' "$line"
	done
}
cfg_text none >"$CFG"
grep -q "^	path $STORE\$" "$CFG" || fail "path substitution"
grep -q "^datastore: $NAME\$" "$CFG" || fail "name substitution"

# set_mode METHOD MODE: rename (new file renamed over the old), inplace
# (same inode truncated and rewritten), dsfs (`dsfs maintenance`).
set_mode() {
	local method=$1 mode=$2 ino
	case $method in
	rename)
		cfg_text "$mode" "hand edit $mode" >"$CFG.new"
		mv "$CFG.new" "$CFG"
		;;
	inplace)
		ino=$(stat -c %i "$CFG")
		cfg_text "$mode" >"$CFG"
		[ "$(stat -c %i "$CFG")" = "$ino" ] || fail "in-place rewrite changed the inode"
		;;
	dsfs)
		if [ "$mode" = none ]; then
			"$DSFS" maintenance --config "$CFG" "$NAME" clear || fail "dsfs maintenance clear"
		else
			"$DSFS" maintenance --config "$CFG" "$NAME" "$mode" --message "dsfs says $mode" ||
				fail "dsfs maintenance $mode"
		fi
		;;
	esac
	case $mode in
	none) ! grep -q maintenance-mode "$CFG" || fail "$method: clear left a mode: $(cat "$CFG")" ;;
	*) grep -q "maintenance-mode.*$mode" "$CFG" || fail "$method: $mode not in: $(cat "$CFG")" ;;
	esac
}

# check.py: one process (python starts slowly) answering requests on stdin,
# one a line, tab-separated: DEADLINE [WANT KIND PATH]... It polls until
# every KIND on PATH gives WANT (OK or an errno name) and answers "ok", or
# after DEADLINE seconds answers with what it saw. KIND: ls, stat, read (open
# + read all), create (O_CREAT|O_EXCL a new file). WANT "EROFS+ro" /
# "EROFS-ro": EROFS and the attempt did / did not add a "write refused:
# read-only" line to the mount log (the mount answers EROFS inside snapshots
# anyway; only the log says why).
cat >"$T/check.py" <<'PY'
import errno, os, sys, time
log = os.environ["MLOG"]
def ro_lines():
    with open(log, errors="replace") as f:
        return sum("write refused: read-only" in l for l in f)
def run(kind, p):
    try:
        if kind == "ls":
            os.listdir(p)
        elif kind == "stat":
            os.stat(p)
        elif kind == "read":
            with open(p, "rb") as f:
                f.read()
        elif kind == "create":
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            os.unlink(p)
        else:
            raise SystemExit(f"unknown kind {kind}")
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def check(args):
    deadline = time.monotonic() + float(args[0])
    checks = [args[i:i + 3] for i in range(1, len(args), 3)]
    while True:
        got = []
        for want, kind, p in checks:
            before = ro_lines() if want.endswith("ro") else 0
            r = run(kind, p)
            if want.endswith("ro"):
                r += "+ro" if ro_lines() > before else "-ro"
            got.append(r)
        if all(g == c[0] for g, c in zip(got, checks)):
            return "ok"
        if time.monotonic() > deadline:
            return "; ".join(f"{kind} {p}: got {g}, want {want}"
                             for g, (want, kind, p) in zip(got, checks))
        time.sleep(0.05)
for line in sys.stdin:
    print(check(line.rstrip("\n").split("\t")), flush=True)
PY
export MLOG=$T/mount.log
touch "$MLOG"
coproc CHECK { exec python3 -S "$T/check.py"; }
cleanup_hooks+=("kill $CHECK_PID 2>/dev/null")
# within ~2 s of the change (inotify makes it immediate; the watcher's 1 s
# tick is the fallback)
DEADLINE=2.5
expect_state() {
	local what=$1 IFS=$'\t' reply
	shift
	echo "$DEADLINE	$*" >&"${CHECK[1]}"
	read -r reply <&"${CHECK[0]}" || fail "checker died"
	[ "$reply" = ok ] || fail "$what: not reached within ${DEADLINE}s: $reply"
}

# The errno of each mode, for a mount whose root is the datastore.
expect_mode() {
	local how=$1 mode=$2
	case $mode in
	none)
		expect_state "$how: clear" OK ls "$M" OK stat "$M" OK read "$FILE" \
			OK ls "$M/$SNAP" EROFS-ro create "$M/$SNAP/new"
		cmp -s "$FILE" "$T/conf.want" || fail "$how: clear: wrong bytes"
		;;
	read-only)
		expect_state "$how: read-only" OK ls "$M" OK read "$FILE" OK ls "$M/$SNAP" \
			EROFS+ro create "$M/$SNAP/new"
		cmp -s "$FILE" "$T/conf.want" || fail "$how: read-only: wrong bytes"
		;;
	offline | unmount)
		local e=ENXIO
		[ "$mode" = unmount ] && e=EBUSY
		expect_state "$how: $mode" $e ls "$M" OK stat "$M" $e read "$FILE" \
			$e stat "$M/vm" $e ls "$M/$SNAP" $e create "$M/$SNAP/new"
		;;
	delete)
		expect_state "$how: delete" ENOENT ls "$M" ENOENT stat "$M" ENOENT read "$FILE" \
			ENOENT stat "$M/vm" ENOENT create "$M/$SNAP/new"
		;;
	esac
}

mount_dsfs "$NAME" "$M" -o "config=$CFG"
expect_mode start none

# What a shell user reads (strerror texts).
shell_err() { # MODE TEXT CMD...
	local mode=$1 text=$2 out
	shift 2
	out=$("$@" 2>&1 >/dev/null) && fail "$mode: '$*' succeeded"
	case $out in *"$text"*) ;; *) fail "$mode: '$*': want '$text', got: $out" ;; esac
}
shell_checks() { # MODE
	case $1 in
	read-only)
		shell_err read-only "Read-only file system" touch "$M/$SNAP/new"
		shell_err read-only "Read-only file system" mkdir "$M/vm/101/2030-01-01T00:00:00Z"
		;;
	offline)
		shell_err offline "No such device or address" ls "$M"
		shell_err offline "No such device or address" cat "$FILE"
		stat "$M" >/dev/null || fail "offline: stat of the mount root"
		;;
	unmount) shell_err unmount "Device or resource busy" ls "$M/vm" ;;
	delete) shell_err delete "No such file or directory" ls "$M" ;;
	none) ls "$M/vm/101" >/dev/null || fail "clear: ls" ;;
	esac
}

for method in rename inplace dsfs; do
	for mode in read-only offline unmount delete none; do
		if [ "$method" = dsfs ] && [ "$mode" = none ]; then
			# "delete" is one-way for dsfs maintenance (as for PBS):
			# only a hand edit brings the store back.
			expect_status 1 "$DSFS" maintenance --config "$CFG" "$NAME" clear
			set_mode inplace none
		else
			set_mode "$method" "$mode"
		fi
		expect_mode "$method" "$mode"
		[ "$method" != rename ] || shell_checks "$mode"
	done
done
grep -q "write refused: read-only: dsfs says read-only" "$MLOG" ||
	fail "maintenance message not logged"
# Under offline and unmount nothing is opened (lookups fail first), so the
# change itself must say why (mount.dsfs(8): "each change of a datastore's
# state ... is logged with the reason and the maintenance message").
for mode in offline unmount; do
	grep -q "$NAME: access changed (maintenance $mode: hand edit $mode," "$MLOG" ||
		fail "$mode: the access change does not name the message"
done
# The longest message PBS takes, 64 characters of four bytes, is logged whole.
long=$(python3 -c 'print("\U0001F600" * 64)')
"$DSFS" maintenance --config "$CFG" "$NAME" read-only --message "$long" ||
	fail "dsfs maintenance with a 64-character message"
wait_until "the long message logged whole" \
	grep -qF "access changed (maintenance read-only: $long, read allowed)" "$MLOG"
"$DSFS" maintenance --config "$CFG" "$NAME" clear || fail "dsfs maintenance clear"

# --- a file opened before "offline" keeps reading; closing it lets go ---

# Descriptors of the daemon under the datastore's directory.
store_fds() {
	local l n=0
	for l in /proc/"$MOUNT_PID"/fd/*; do
		case $(readlink "$l" || true) in "$STORE" | "$STORE"/*) n=$((n + 1)) ;; esac
	done
	echo "$n"
}
IMG=vm/101/2024-03-04T08:02:17Z/drive-scsi0.img
"$DSFS" cat "$STORE" "${IMG%/*}" drive-scsi0.img >"$T/img.want"
for method in rename dsfs; do
	rm -f "$T/s."*
	python3 - "$M/$IMG" "$T" >"$T/held.log" 2>&1 <<'PY' &
import os, sys, time
path, t = sys.argv[1:3]
def wait(name):
    end = time.monotonic() + 20
    while not os.path.exists(f"{t}/s.{name}"):
        if time.monotonic() > end:
            sys.exit(f"no s.{name}")
        time.sleep(0.02)
with open(path, "rb", buffering=0) as f:
    head = f.read(1 << 20)
    open(f"{t}/s.opened", "w").close()
    wait("go")
    rest = b""
    while True:
        b = f.read(1 << 20)
        if not b:
            break
        rest += b
    with open(f"{t}/held.out", "wb") as o:
        o.write(head + rest)
    open(f"{t}/s.read", "w").close()
    wait("close")
PY
	held=$!
	for _ in $(seq 200); do [ -e "$T/s.opened" ] && break; sleep 0.05; done
	[ -e "$T/s.opened" ] || { cat "$T/held.log" >&2; fail "$method: held file not opened"; }
	[ "$(store_fds)" -ge 1 ] || fail "$method: no descriptor on the store while a file is open"
	set_mode "$method" offline
	expect_mode "held/$method" offline
	[ "$(store_fds)" -ge 1 ] || fail "$method: store closed under an open file"
	touch "$T/s.go"
	for _ in $(seq 400); do [ -e "$T/s.read" ] && break; sleep 0.05; done
	[ -e "$T/s.read" ] || { cat "$T/held.log" >&2; fail "$method: held file not read"; }
	cmp -s "$T/held.out" "$T/img.want" || fail "$method: held file read wrong bytes after offline"
	touch "$T/s.close"
	wait "$held" || { cat "$T/held.log" >&2; fail "$method: held reader failed"; }
	# FUSE's release is asynchronous: the descriptors go within ~2 s.
	for _ in $(seq 40); do [ "$(store_fds)" = 0 ] && break; sleep 0.05; done
	[ "$(store_fds)" = 0 ] || {
		ls -l /proc/"$MOUNT_PID"/fd >&2
		fail "$method: daemon still holds the offline store open"
	}
	grep -q "datastore $NAME: closed (offline)" "$MLOG" || fail "close not logged"
	set_mode inplace none
	expect_mode "held/$method" none
done

# --- a bad edit keeps the last good config ---

{
	cfg_text offline
	printf 'this is not a property line\n'
} >"$CFG.new"
bad_line=$(wc -l <"$CFG.new")
mv "$CFG.new" "$CFG"
for _ in $(seq 50); do grep -q "$CFG:$bad_line:" "$MLOG" && break; sleep 0.05; done
grep -q "$CFG:$bad_line:" "$MLOG" || fail "bad edit not logged with file:line"
sleep 1.5 # past the watcher's tick: still the last good config
expect_state "bad edit" OK ls "$M" OK read "$FILE" OK ls "$M/$SNAP"
cmp -s "$FILE" "$T/conf.want" || fail "bad edit: wrong bytes"
set_mode inplace offline # a good edit after a bad one applies
expect_mode "after bad edit" offline
set_mode rename none
expect_mode "after bad edit" none
unmount_dsfs "$M"

# --- a multi-store mount: the config file itself as SOURCE ---

mount_dsfs "$CFG" "$M"
python3 -c 'import os, sys; l = os.listdir(sys.argv[1]); assert l == [sys.argv[2]], l' \
	"$M" "$NAME" || fail "multi-store root does not list exactly the datastore"
S=$M/$NAME
expect_state "multi: clear" OK ls "$S" OK read "$S/$SNAP/qemu-server.conf"
set_mode rename offline
expect_state "multi: offline" OK ls "$M" OK stat "$S" ENXIO ls "$S" \
	ENXIO read "$S/$SNAP/qemu-server.conf"
set_mode dsfs delete
expect_state "multi: delete" OK ls "$M" ENOENT stat "$S" ENOENT ls "$S"
for _ in $(seq 50); do [ -z "$(ls "$M")" ] && break; sleep 0.05; done
[ -z "$(ls "$M")" ] || fail "deleted store still listed: $(ls "$M")"
set_mode rename none
expect_state "multi: clear again" OK ls "$S" OK read "$S/$SNAP/qemu-server.conf"
[ "$(ls "$M")" = "$NAME" ] || fail "store not listed again: $(ls "$M")"
cmp -s "$S/$SNAP/qemu-server.conf" "$T/conf.want" || fail "multi: wrong bytes"
# A store removed from the config is gone as under "delete" (within 1-2 s),
# and the log says it was removed, not that it was set to "delete".
cp "$CFG" "$T/keep.cfg"
mark=$(wc -l <"$MLOG")
: >"$CFG.new"
mv "$CFG.new" "$CFG"
DEADLINE=4 expect_state "multi: removed" OK ls "$M" ENOENT stat "$S"
tail -n +$((mark + 1)) "$MLOG" >"$T/removed.log"
grep -q "$NAME: access changed (removed from $CFG" "$T/removed.log" ||
	fail "removal not logged as such: $(cat "$T/removed.log")"
grep -q "$NAME: access changed (maintenance delete" "$T/removed.log" &&
	fail "removal logged as 'delete'"
mv "$T/keep.cfg" "$CFG"
expect_state "multi: back" OK ls "$S"
unmount_dsfs "$M"
echo "refusals through the mount ok"
