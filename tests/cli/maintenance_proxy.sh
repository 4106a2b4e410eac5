# dsfs maintenance tells a running PBS proxy, as PBS's own API does after a
# maintenance change (api2/config/datastore.rs): the line
# {"command":"update-datastore-cache","args":"<store>"} on the control
# socket of the pid in /run/proxmox-backup/proxy.pid (the abstract socket
# "\0/run/proxmox-backup/control-<pid>.sock"), once the config lock is
# released (the proxy may take it to look). Without that the proxy keeps
# an idle store it has opened (.lock, .chunks) open after "offline" or
# "unmount", and the disk cannot be unmounted. No proxy, a dead pid, or an
# error reply change nothing of the outcome.
. "$(dirname "$0")/../testlib.bash"
need_fixtures
fixture_copy pbs-store-a "$T/store"
mkdir "$T/etc"
cfg=$T/etc/datastore.cfg
sed "s|^\tpath .*|\tpath $T/store|" "$FIX/pbs-store-a.datastore.cfg" >"$cfg"
export DSFS_CONFIG_VERSIONS=$T/none/config-versions
export DSFS_PROXY_PID_FILE=$T/proxy.pid

# A stand-in proxy: listens where PBS's proxy of pid $$ of the listener
# would, writes its pid file, and for each connection records the line it
# got and whether .datastore.lck was free then; replies $1 ("OK: null").
cat >"$T/proxy.py" <<'PY'
import fcntl, os, socket, sys
t, reply = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(f"\0/run/proxmox-backup/control-{os.getpid()}.sock")
s.listen(4)
s.settimeout(20)
open(f"{t}/proxy.pid.tmp", "w").write(f"{os.getpid()}\n")
os.rename(f"{t}/proxy.pid.tmp", f"{t}/proxy.pid")
c, _ = s.accept()
data = b""
while not data.endswith(b"\n"):
    b = c.recv(4096)
    if not b:
        break
    data += b
with open(f"{t}/etc/.datastore.lck", "a") as lck:
    try:
        fcntl.flock(lck, fcntl.LOCK_EX | fcntl.LOCK_NB)
        free = "free"
    except BlockingIOError:
        free = "held"
open(f"{t}/got", "w").write(f"{data.decode()}{free}\n")
c.sendall(reply.encode() + b"\n")
c.close()
PY
start_proxy() {
	rm -f "$T/proxy.pid" "$T/got"
	python3 "$T/proxy.py" "$T" "$1" &
	proxy=$!
	cleanup_hooks+=("kill $proxy 2>/dev/null")
	for _ in $(seq 100); do [ -e "$T/proxy.pid" ] && return 0; sleep 0.05; done
	fail "stand-in proxy did not start"
}

start_proxy "OK: null"
expect_status 0 "$DSFS" maintenance store-a offline --config "$cfg"
for _ in $(seq 40); do [ -e "$T/got" ] && break; sleep 0.05; done
[ -e "$T/got" ] || fail "the PBS proxy was not told (no update-datastore-cache)"
wait "$proxy" || fail "stand-in proxy failed"
printf '{"command":"update-datastore-cache","args":"store-a"}\nfree\n' | cmp -s - "$T/got" ||
	fail "proxy got: $(cat "$T/got")"
[ -s "$T/err" ] && { cat "$T/err" >&2; fail "warnings on success"; }

# An error reply is shown as a warning; the change stands.
start_proxy "ERROR: no such datastore"
expect_status 0 "$DSFS" maintenance store-a clear --config "$cfg"
wait "$proxy" || fail "stand-in proxy failed"
grep -q "no such datastore" "$T/err" || { cat "$T/err" >&2; fail "proxy error not shown"; }
grep -q maintenance-mode "$cfg" && fail "mode not cleared"

# A pid file naming a process without a socket, or none at all: silent.
echo "$proxy" >"$T/proxy.pid"
expect_status 0 "$DSFS" maintenance store-a unmount --config "$cfg"
[ -s "$T/err" ] && { cat "$T/err" >&2; fail "warning without a proxy"; }
rm "$T/proxy.pid"
expect_status 0 "$DSFS" maintenance store-a read-only --config "$cfg"
[ -s "$T/err" ] && { cat "$T/err" >&2; fail "warning without a pid file"; }
grep -q "maintenance-mode type=read-only" "$cfg" || fail "mode not set"
# A failed change tells nobody.
start_proxy "OK: null"
expect_status 2 "$DSFS" maintenance store-a sleeping --config "$cfg"
expect_status 1 "$DSFS" maintenance no-such-store offline --config "$cfg"
sleep 0.3
[ -e "$T/got" ] && fail "proxy told of a failed change"
kill "$proxy" 2>/dev/null || true
echo "PBS proxy told of maintenance changes"
