# A FIFO where the datastore should hold a regular file (a group's owner or
# notes, a snapshot's manifest or archive, a chunk file: made by hand, or by
# anyone who can write the datastore, which PBS's backup user can) is no
# such file: it is neither listed nor found, an image whose chunk file is a
# FIFO reads EIO, and nothing waits for a writer. The daemon opened these
# files without O_NONBLOCK, so open(2) of the FIFO blocked for a writer
# that never comes: `ls` of the group hung in opendir, unkillable (D
# state, even by SIGKILL), as did every later request that thread was to
# answer; `dsfs ls` hung too (tests/cli/ls_fifo.sh).
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
command -v mkfifo >/dev/null || { echo "SKIP: mkfifo missing" >&2; exit 77; }

S=$T/store
M=$T/m
bare_store "$S"
head -c 300000 /dev/urandom >"$T/disk.img"
echo "conf" >"$T/qemu.conf"
"$DSFS" backup "$S" vm/100 --time 2025-01-01T00:00:00Z disk.img="$T/disk.img" \
	qemu-server.conf="$T/qemu.conf" >/dev/null || fail "backup"
"$DSFS" backup "$S" vm/555 --time 2025-01-01T00:00:00Z qemu-server.conf="$T/qemu.conf" \
	>/dev/null || fail "backup"
G=$S/vm/555
mkdir "$G/2025-01-02T00:00:00Z" "$G/2025-01-03T00:00:00Z"
rm "$G/owner"
fifos=("$G/owner" "$G/notes" "$G/2025-01-02T00:00:00Z/index.json.blob"
	"$G/2025-01-03T00:00:00Z/x.conf.blob" "$G/2025-01-03T00:00:00Z/y.img.fidx")
# A chunk of vm/100's image.
chunk=$(python3 - "$S/vm/100/2025-01-01T00:00:00Z/disk.img.fidx" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
print(d[4096:4128].hex())
PY
)
rm "$S/.chunks/${chunk:0:4}/$chunk"
fifos+=("$S/.chunks/${chunk:0:4}/$chunk")
mkfifo "${fifos[@]}"
# Whatever happens, nothing stays blocked on them: a FIFO opened read-write
# never waits, and lets a blocked reader's open return.
release() { local f; for f in "${fifos[@]}"; do timeout 2 sh -c ": <>'$f'" || true; done; }
cleanup_hooks=("release" "${cleanup_hooks[@]}")

mount_dsfs "$S" "$M"

# within DESC CMD...: CMD ends within 5 s (its status is left in
# within_rc, its output in $T/out and $T/err); else the FIFOs are released
# so that it can end, and the test fails.
within() {
	local what=$1 pid i
	shift
	"$@" >"$T/out" 2>"$T/err" &
	pid=$!
	for i in $(seq 50); do
		if ! kill -0 "$pid" 2>/dev/null; then
			within_rc=0
			wait "$pid" || within_rc=$?
			return 0
		fi
		sleep 0.1
	done
	release
	wait "$pid" || true
	fail "$what: still blocked after 5 s (released by opening the FIFOs)"
}

within "ls -l of the group" ls -l "$M/vm/555"
grep -q "2025-01-01T00:00:00Z" "$T/out" || fail "ls -l of the group: $(cat "$T/out" "$T/err")"
grep -Eq " (owner|notes)$" "$T/out" && fail "FIFO listed as owner or notes: $(cat "$T/out")"
[ "$(readlink "$M/vm/555/latest")" = 2025-01-01T00:00:00Z ] ||
	fail "latest is not the one snapshot with a manifest: $(readlink "$M/vm/555/latest")"
for f in owner notes; do
	within "stat $f" stat "$M/vm/555/$f"
	grep -q "No such file" "$T/err" || fail "stat of the FIFO $f: $(cat "$T/out" "$T/err")"
done
# Listed, as empty (no manifest, no archive): ls succeeds and says nothing
# else (it also printed nothing when it failed).
for snap in 2025-01-02T00:00:00Z 2025-01-03T00:00:00Z; do
	within "ls -l of the snapshot $snap (FIFO manifest or archives)" ls -l "$M/vm/555/$snap"
	[ "$within_rc" = 0 ] && [ ! -s "$T/err" ] ||
		fail "ls -l of $snap: status $within_rc: $(cat "$T/err")"
	[ ! -s "$T/out" ] || grep -qx "total 0" "$T/out" || fail "listed: $(cat "$T/out")"
done
for f in x.conf y.img index.json; do
	within "stat $f" stat "$M/vm/555/2025-01-03T00:00:00Z/$f"
	grep -q "No such file" "$T/err" || fail "stat of the FIFO $f: $(cat "$T/out" "$T/err")"
done
within "reading an image whose chunk file is a FIFO" \
	cat "$M/vm/100/2025-01-01T00:00:00Z/disk.img"
grep -q "Input/output error" "$T/err" || fail "read of the FIFO chunk: $(cat "$T/err")"
# The mount still answers.
cmp "$M/vm/100/2025-01-01T00:00:00Z/qemu-server.conf" "$T/qemu.conf" || fail "mount after"
unmount_dsfs "$M"
echo "FIFOs in the datastore are not waited on"
