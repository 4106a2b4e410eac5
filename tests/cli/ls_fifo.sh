# dsfs ls, cat and verify do not wait on a FIFO where the datastore should
# hold a regular file (a group's owner, a snapshot's manifest or archive, a
# chunk file; made by hand, or by anyone who can write the datastore). They
# opened such files without O_NONBLOCK: open(2) waited for a writer that
# never comes, and `dsfs ls STORE` hung forever. A FIFO owner is no owner
# ("owner -"), a FIFO manifest is unreadable, a FIFO archive is not listed,
# and a FIFO chunk file is a damaged chunk (cat fails, verify exits 3).
. "$(dirname "$0")/../testlib.bash"
command -v mkfifo >/dev/null || { echo "SKIP: mkfifo missing" >&2; exit 77; }

S=$T/store
bare_store "$S"
echo "conf" >"$T/qemu.conf"
head -c 300000 /dev/urandom >"$T/disk.img"
"$DSFS" backup "$S" vm/100 --time 2025-01-01T00:00:00Z disk.img="$T/disk.img" >/dev/null ||
	fail "backup"
"$DSFS" backup "$S" vm/555 --time 2025-01-01T00:00:00Z qemu-server.conf="$T/qemu.conf" \
	>/dev/null || fail "backup"
G=$S/vm/555
mkdir "$G/2025-01-02T00:00:00Z"
rm "$G/owner"
chunkfile=$(find "$S/.chunks" -type f -print -quit)
rm "$chunkfile"
fifos=("$G/owner" "$G/2025-01-02T00:00:00Z/index.json.blob"
	"$G/2025-01-02T00:00:00Z/x.conf.blob" "$chunkfile")
mkfifo "${fifos[@]}"
release() { local f; for f in "${fifos[@]}"; do timeout 2 sh -c ": <>'$f'" || true; done; }
cleanup_hooks=("release" "${cleanup_hooks[@]}")

# within WANT CMD...: CMD exits WANT within 5 s; else the FIFOs are
# released (opened read-write, which lets a blocked open return) and the
# test fails.
within() {
	local want=$1 pid i got=0
	shift
	"$@" >"$T/out" 2>"$T/err" &
	pid=$!
	for i in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		release
		wait "$pid" || true
		fail "'$*': still blocked after 5 s"
	fi
	wait "$pid" || got=$?
	[ "$got" = "$want" ] || { cat "$T/out" "$T/err" >&2; fail "'$*' exited $got, want $want"; }
}

within 0 "$DSFS" ls "$S"
grep -qx "vm/555	group	1 snapshots	owner -" "$T/out" || fail "ls: $(cat "$T/out")"
within 0 "$DSFS" ls "$S" vm/555
grep -qx "vm/555/2025-01-02T00:00:00Z	snapshot	unfinished" "$T/out" || fail "ls group: $(cat "$T/out")"
within 0 "$DSFS" ls "$S" vm/555/2025-01-02T00:00:00Z
grep -q "conf" "$T/out" && fail "a FIFO listed as an archive: $(cat "$T/out")"
grep -q "manifest unreadable" "$T/err" || fail "ls snapshot: $(cat "$T/out" "$T/err")"
within 1 "$DSFS" cat "$S" vm/100/2025-01-01T00:00:00Z disk.img
within 3 "$DSFS" verify "$S" vm/100/2025-01-01T00:00:00Z
echo "dsfs ls does not wait on FIFOs"
