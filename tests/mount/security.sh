# Crafted names and links never lead a mount outside its datastore.
# - Lookups of names no PBS datastore can hold (control characters, "...",
#   format strings, over-long names, server-side names like .chunks or
#   drive-scsi0.img.fidx) at every level of the tree give ENOENT (or EINVAL,
#   ENAMETOOLONG), never a crash. ".." never reaches dsfs (the kernel
#   resolves it), and resolves inside the mount.
# - Directories and files written by hand into the datastore with names
#   breaking PBS's rules (a namespace deeper than 7, "bad name", ".hidden",
#   control characters, a bad snapshot time, an invalid archive name) are
#   neither listed nor found.
# - Symlinks inside the datastore (a group, a snapshot, an owner or notes
#   file, a blob, an index pointing outside) are not followed: not listed, not
#   found, and the daemon never opens their targets (inotify on a canary).
# - pxar symlinks pointing outside (/etc/shadow, ../../etc/passwd, the
#   canary) are data: lstat says S_IFLNK with the target's length, readlink
#   returns the stored bytes, and the daemon does not open the target.
# - Names with control characters inside a pxar archive are found as stored.
# - Crafted pxar hardlinks (target path absolute, or the canary's; delta
#   zero, huge, pointing at a directory or into an item) are data too: a
#   hardlink is resolved by its delta inside the archive only, to the
#   earlier file's bytes or EIO; the stored path is never used.
# - Refused before touching the filesystem: under strace, lookups of
#   hostile names (control characters, "...", leading '-' or '.', bytes
#   that are not UTF-8, a namespace at depth 8) and `dsfs` command lines
#   with "..", absolute paths and too-deep namespaces make no file system
#   call naming them (a valid name looked up in the same window does).
# - Encrypted archives (image, blob, pxar) are never served without the key
#   (ENOKEY) nor with a wrong one (EIO or ENOKEY); the right key reads them
#   (control). Key files that group or others can access are refused by
#   mount.dsfs and dsfs with a message saying why; nothing is mounted.
# - An image index claiming a chunk size far past the 16 MiB chunk limit
#   (any power of two passes the format check) is answered at once: stat
#   (its st_blocks) and open do not hash that many zeros for the zero-chunk
#   digest, and reading it gives EIO.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
# The store on tmpfs when there is one: removing dsfs init's 65536 prefix
# directories takes ~20 s on a slow disk.
SHM=$(mktemp -d /dev/shm/dsfs-test.XXXXXX 2>/dev/null || mktemp -d "$T/shm.XXXXXX")
trap 'cleanup; rm -rf "$SHM"' EXIT
S=$SHM/store
M=$T/m
OUT=$T/outside
mkdir -p "$OUT" "$T/canary" "$T/src/dir/sub"
printf 'CANARY-%s\n' "$$" >"$T/canary/secret"
chmod 600 "$T/canary/secret"

# The archive: links pointing outside, names with control characters.
printf 'plain\n' >"$T/src/plain.txt"
ln -s /etc/shadow "$T/src/shadow"
ln -s ../../../../../../../../etc/passwd "$T/src/dir/sub/up"
ln -s "$T/canary/secret" "$T/src/canary"
ln -s /etc "$T/src/etcdir"
python3 - "$T/src" <<'PY'
import os, sys
d = os.fsencode(sys.argv[1])
for n in (b"ctl\x01name", b"new\nline", b"tab\tname", b"esc\x1b[31m", b"%s%n%n", b"back\\slash",
          b"lat\xe9n1", b"x" * 255):
    with open(os.path.join(d, n), "wb") as f:
        f.write(b"name:" + n)
PY
"$DSFS" init "$S" >/dev/null
T0=2025-01-01T00:00:00Z
"$DSFS" backup "$S" host/h --time $T0 root.pxar="$T/src" >/dev/null
"$DSFS" backup "$S" vm/1 --time $T0 qemu-server.conf="$T/src/plain.txt" >/dev/null
"$DSFS" backup "$S" --ns a/b/c/d/e/f/g vm/1 --time $T0 qemu-server.conf="$T/src/plain.txt" >/dev/null
SNAP=$S/vm/1/$T0

# Crafted hardlinks: a tree whose file A… has seven more names is encoded,
# its stream patched (same sizes, so the goodbye tables stay valid) and
# stored as a raw pxar archive. The first name's path is as long as the
# canary's, so a hardlink can name the canary.
canary_path=$T/canary/secret
mkdir -p "$T/hl/dir0"
A=$(printf "A%.0s" $(seq ${#canary_path}))
printf 'TARGET\n' >"$T/hl/$A"
for n in hl-abs hl-canary hl-dir hl-fwd hl-good hl-huge hl-mid; do ln "$T/hl/$A" "$T/hl/$n"; done
echo x >"$T/hl/dir0/f"
"$DSFS" backup "$S" host/hlsrc --time $T0 root.pxar="$T/hl" >/dev/null
"$DSFS" cat "$S" host/hlsrc/$T0 root.pxar.didx >"$T/hl.pxar"
python3 - "$T/hl.pxar" "$canary_path" <<'PY'
import struct, sys
p, canary = sys.argv[1], sys.argv[2].encode()
b = bytearray(open(p, "rb").read())
FILENAME, HARDLINK = 0x16701121063917b3, 0x51269c8422bd7275
off, fn, links, dir0 = 0, None, {}, None
while off < len(b):
    t, s = struct.unpack_from("<QQ", b, off)
    if t == FILENAME:
        fn = (off, bytes(b[off + 16:off + s - 1]))
        if fn[1] == b"dir0":
            dir0 = off
    elif t == HARDLINK:
        links[fn[1]] = (fn[0], off, s)
    off += s
assert dir0 and len(links) == 7, links
def path(n, v):
    f, o, s = links[n]
    assert len(v) == s - 25, (n, v)
    b[o + 24:o + s - 1] = v
def delta(n, v):
    struct.pack_into("<Q", b, links[n][1] + 16, v)
path(b"hl-abs", b"/etc/" + b"/" * (len(canary) - 11) + b"passwd")
path(b"hl-canary", canary)
delta(b"hl-dir", links[b"hl-dir"][0] - dir0)       # a directory
delta(b"hl-fwd", 0)                                 # itself
delta(b"hl-huge", 1 << 63)                          # before the archive
delta(b"hl-mid", links[b"hl-mid"][0] - 60)          # inside an item
open(p, "wb").write(b)
PY
"$DSFS" backup "$S" host/hl --time $T0 root.pxar="$T/hl.pxar" >/dev/null

# Encrypted archives (host/enc) of a marker text.
key=$T/key.json
"$DSFS" key create "$key" --kdf none >/dev/null
wrongkey=$T/wrong.json
"$DSFS" key create "$wrongkey" --kdf none >/dev/null
mkdir -p "$T/encsrc"
for i in $(seq 200); do echo "SECRET-MARKER-$i"; done >"$T/encsrc/secret.txt"
head -c 1048576 /dev/urandom >"$T/disk.img"
cat "$T/encsrc/secret.txt" >>"$T/disk.img"
"$DSFS" backup "$S" host/enc --time $T0 --keyfile "$key" disk.img="$T/disk.img" \
	notes.conf="$T/encsrc/secret.txt" root.pxar="$T/encsrc" >/dev/null
if grep -rqa SECRET-MARKER "$S/.chunks" "$S/host/enc"; then
	fail "the marker text is stored in the clear in an encrypted backup"
fi

# Crafted by hand: each a valid snapshot under a name PBS would refuse.
deep=$S/ns/a/ns/b/ns/c/ns/d/ns/e/ns/f/ns/g
mkdir -p "$deep/ns/eight/vm/1" "$S/ns/bad name/vm/1" "$S/ns/.hidden/vm/1" "$S/ns/.../vm/1"
for g in "$deep/ns/eight/vm/1" "$S/ns/bad name/vm/1" "$S/ns/.hidden/vm/1" "$S/ns/.../vm/1" \
	"$S/vm/bad name" "$S/vm/.hidden" "$S/vm/a$(printf '\001')b" "$S/vm/-x"; do
	mkdir -p "$g"
	cp -r "$SNAP" "$g/"
	cp "$S/vm/1/owner" "$g/"
done
cp -r "$SNAP" "$S/vm/1/not-a-time"
cp -r "$SNAP" "$S/vm/1/2024-13-01T00:00:00Z"
cp "$SNAP/qemu-server.conf.blob" "$SNAP/evil name.conf.blob"
cp "$SNAP/qemu-server.conf.blob" "$SNAP/-x.conf.blob"
# Links pointing outside the datastore.
cp -r "$S/vm/1" "$OUT/group"
cp "$SNAP/qemu-server.conf.blob" "$OUT/valid.conf.blob"
ln -s "$OUT/group" "$S/vm/666"
ln -s "$OUT/group/$T0" "$S/vm/1/2030-01-01T00:00:00Z"
ln -s "$OUT/valid.conf.blob" "$SNAP/linked.conf.blob"
mkdir -p "$S/vm/2/$T0"
cp -r "$SNAP/." "$S/vm/2/$T0/"
ln -s "$T/canary/secret" "$S/vm/2/owner"
ln -s "$T/canary/secret" "$S/vm/2/notes" # group notes: were listed (ls -l: "?"), lookup ENOENT
ln -s "$T/canary/secret" "$S/vm/2/$T0/.protected" # not listed, but was found
ln -s "$T/canary" "$S/ns/linked"
ln -s "$OUT" "$S/ct" # a type (holding group "group")

mount_dsfs "$S" "$M" -o allow_other
# Refused before touching the file system: every file system call the
# daemon makes while hostile names are looked up, with its path arguments
# in hex (strace -xx), split into components; none may be a hostile name.
if command -v strace >/dev/null && [ -z "${DSFS_NO_STRACE:-}" ]; then
	python3 - "$M" "$T0" "$MOUNT_PID" "$T/strace.log" <<'PY'
import errno, os, re, signal, subprocess, sys, time
m, t0, pid, log = os.fsencode(sys.argv[1]), sys.argv[2].encode(), int(sys.argv[3]), sys.argv[4]
hostile = [b"\x01", b"a\nb", b"\x7f", b"...", b" ", b"-", b"*", b"%s%n%n%s", b"a\\b", b"..a", b".hidden",
           b"\xff", b"\xc0\xae\xc0\xae", b"\xe2\x80\xae", b"ns\x01", b"vm ", b"owner\n", b"latest\x01",
           b"2025-01-01T00:00:00Z\n", b"-x", b"a b", b"a:b", b"a@b", b"bad name", b"\x1b[2J", b"a\rb"]
deep = b"/ns/a/ns/b/ns/c/ns/d/ns/e/ns/f/ns/g"
levels = [b"", b"/ns", b"/ns/a", deep, deep + b"/ns", b"/vm", b"/vm/1", b"/vm/1/" + t0, b"/host"]
for lv in levels:  # the levels themselves are looked up before tracing
    os.listdir(m + lv)
tr = subprocess.Popen(["strace", "-f", "-qq", "-xx", "-s", "4096", "-e", "trace=%file", "-o", log,
                       "-p", str(pid)], stderr=subprocess.DEVNULL)
def traced():
    tasks = os.listdir(f"/proc/{pid}/task")
    return all(re.search(r"TracerPid:\s+[1-9]", open(f"/proc/{pid}/task/{t}/status").read())
               for t in tasks)
end = time.monotonic() + 20
while not traced():
    if tr.poll() is not None or time.monotonic() > end:
        print("SKIP (strace part): cannot attach strace to the daemon", file=sys.stderr)
        tr.kill()
        sys.exit(0)
    time.sleep(0.05)
n = 0
for lv in levels:
    for name in hostile:
        try:
            os.lstat(m + lv + b"/" + name)
            sys.exit(f"FAIL: {lv + b'/' + name!r} found")
        except OSError as e:
            assert e.errno in (errno.ENOENT, errno.EINVAL), (lv, name, e)
        n += 1
for p in (deep + b"/ns/eight", deep + b"/ns/eight/vm/1"):   # depth 8, on disk
    try:
        os.lstat(m + p)
        sys.exit(f"FAIL: {p!r} found")
    except OSError as e:
        assert e.errno in (errno.ENOENT, errno.EINVAL), (p, e)
    n += 1
# control: a valid name is looked up on disk in the same window
try:
    os.lstat(m + b"/vm/7777777")
except OSError:
    pass
time.sleep(0.2)
tr.send_signal(signal.SIGINT)
tr.wait(timeout=20)
bad = set(hostile) | {b"eight"}
seen, hits = set(), []
for line in open(log, encoding="ascii", errors="replace"):
    for arg in re.findall(r'"((?:\\x[0-9a-f]{2})*)"', line):
        raw = bytes.fromhex(arg.replace("\\x", ""))
        comps = set(raw.split(b"/"))
        seen |= comps
        if comps & bad:
            hits.append(line.strip())
if b"7777777" not in seen:
    sys.exit(f"FAIL: strace control: the lookup of vm/7777777 made no traced file system call "
             f"(trace: {log})")
if hits:
    sys.exit("FAIL: hostile names reached the file system:\n" + "\n".join(hits[:20]))
print(f"{n} hostile lookups under strace: no file system call names them")
PY
else
	echo "strace not installed (or DSFS_NO_STRACE): the system-call check is not run"
fi
python3 - "$M" "$T" "$T0" "$MOUNT_PID" <<'PY'
import ctypes, errno, os, stat, struct, sys
m, t, t0, pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
M = os.fsencode(m)
canary = os.fsencode(f"{t}/canary/secret")
secret = open(canary, "rb").read()
fails = []

def fail(msg):
    fails.append(msg)

# inotify on the canary: the daemon must never open it.
libc = ctypes.CDLL(None, use_errno=True)
ino = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
assert ino >= 0
IN_ACCESS, IN_OPEN = 0x1, 0x20
assert libc.inotify_add_watch(ino, canary, IN_ACCESS | IN_OPEN) >= 0

def canary_events():
    try:
        return len(os.read(ino, 65536))
    except BlockingIOError:
        return 0

OKERR = {errno.ENOENT, errno.EINVAL, errno.ENAMETOOLONG}

def absent(p, allowed=OKERR):
    try:
        st = os.lstat(p)
        fail(f"{p!r}: found (mode {oct(st.st_mode)})")
    except OSError as e:
        if e.errno not in allowed:
            fail(f"{p!r}: {errno.errorcode.get(e.errno)}, want one of {sorted(errno.errorcode[x] for x in allowed)}")

# --- lookups of names no datastore holds, at every level ---
levels = [b"", b"/ns", b"/ns/a", b"/ns/a/ns/b/ns/c/ns/d/ns/e/ns/f/ns/g", b"/ns/a/ns/b/ns/c/ns/d/ns/e/ns/f/ns/g/ns",
          b"/vm", b"/vm/1", b"/vm/1/" + t0.encode(), b"/host/h/" + t0.encode() + b"/root.pxar",
          b"/host/h/" + t0.encode() + b"/root.pxar/dir"]
names = [b"\x01", b"a\nb", b"\x7f", b"...", b" ", b"-", b"*", b"%s%n%n%s", b"a\\b", b"..a", b".hidden",
         b"\xff", b"\xc0\xae\xc0\xae", b"\xe2\x80\xae", b"a" * 255, b"a" * 256, b"a" * 1000, b"a" * 1024,
         b".chunks", b".lock", b"index.json.blob", b"qemu-server.conf.blob", b"root.pxar.didx",
         b"catalog.pcat1.didx", b"owner\n", b"latest\x01", b"ns\x01", b"vm ", b"2025-01-01T00:00:00Z\n"]
n = 0
for lv in levels:
    d = M + lv
    if not os.path.isdir(d):
        fail(f"{d!r}: missing level")
        continue
    listing = set(os.listdir(d))
    for name in names:
        if name in listing:
            continue  # (a pxar file of that name exists)
        absent(d + b"/" + name)
        n += 1
# names over the kernel's limit for FUSE never reach the daemon
absent(M + b"/vm/" + b"a" * 1100, {errno.ENAMETOOLONG})
# ".." is the kernel's: it resolves inside the mount
if os.stat(M + b"/vm/1/../../vm/..").st_ino != os.stat(M).st_ino:
    fail("vm/1/../../vm/.. is not the mount root")
if os.path.realpath(M + b"/vm/1/../../..") != os.path.dirname(os.path.realpath(M)):
    fail(".. above the mount root does not go to its parent")

# --- crafted directories and files are neither listed nor found ---
# What a listing leaves out, a lookup does not find: ENOENT, as for a
# name that is not there at all (not ELOOP for a link, nor EINVAL).
def hidden(parent, name, allowed={errno.ENOENT}):
    try:
        if name in os.listdir(parent):
            fail(f"{parent!r}: lists {name!r}")
    except OSError as e:
        fail(f"{parent!r}: listdir: {errno.errorcode.get(e.errno)}")
    absent(parent + b"/" + name, allowed)

deepns = M + b"/ns/a/ns/b/ns/c/ns/d/ns/e/ns/f/ns/g"
if os.listdir(deepns + b"/vm/1") != [t0.encode(), b"latest", b"owner"] and \
        sorted(os.listdir(deepns + b"/vm/1")) != sorted([t0.encode(), b"latest", b"owner"]):
    fail(f"depth-7 group: {os.listdir(deepns + b'/vm/1')}")
hidden(deepns + b"/ns", b"eight")                  # depth 8
hidden(M + b"/ns", b"bad name")
hidden(M + b"/ns", b".hidden")
hidden(M + b"/ns", b"...")
hidden(M + b"/vm", b"bad name")
hidden(M + b"/vm", b".hidden")
hidden(M + b"/vm", b"a\x01b")
hidden(M + b"/vm", b"-x")
hidden(M + b"/vm/1", b"not-a-time")
hidden(M + b"/vm/1", b"2024-13-01T00:00:00Z")
snap = M + b"/vm/1/" + t0.encode()
# Archive files with names PBS refuses: not found. (They are listed, as
# PBS's own snapshot listing, ^.*\.(fidx|didx|blob)$, would list them.)
absent(snap + b"/evil name.conf")
absent(snap + b"/-x.conf")

# --- links inside the datastore are not followed ---
hidden(M + b"/vm", b"666")                          # group -> outside
hidden(M + b"/vm/1", b"2030-01-01T00:00:00Z")       # snapshot -> outside
hidden(snap, b"linked.conf")                        # blob -> outside
hidden(M + b"/ns", b"linked")                       # namespace -> outside
hidden(M, b"ct")                                    # type -> outside
hidden(M + b"/vm/2", b"owner")                      # owner -> the canary
hidden(M + b"/vm/2", b"notes")                      # group notes -> the canary
hidden(M + b"/vm/2/" + t0.encode(), b".protected")  # .protected -> the canary
for p in (M + b"/vm/2/owner", M + b"/vm/2/notes", snap + b"/linked.conf"):
    try:
        with open(p, "rb") as f:
            data = f.read()
        fail(f"{p!r}: read {data[:40]!r}")
    except OSError:
        pass
if sorted(os.listdir(M + b"/vm")) != [b"1", b"2"]:
    fail(f"vm lists {sorted(os.listdir(M + b'/vm'))}")

# --- pxar symlinks are data ---
root = M + b"/host/h/" + t0.encode() + b"/root.pxar"
links = {b"/shadow": b"/etc/shadow", b"/dir/sub/up": b"../../../../../../../../etc/passwd",
         b"/canary": canary, b"/etcdir": b"/etc"}
for p, target in links.items():
    st = os.lstat(root + p)
    if not stat.S_ISLNK(st.st_mode) or st.st_size != len(target):
        fail(f"{p!r}: lstat mode {oct(st.st_mode)} size {st.st_size}")
    if os.readlink(root + p) != target:
        fail(f"{p!r}: readlink {os.readlink(root + p)!r}, want {target!r}")
    try:
        os.listxattr(root + p, follow_symlinks=False)
    except OSError as e:
        if e.errno not in (errno.ENOTSUP, errno.ENODATA):
            fail(f"{p!r}: listxattr: {errno.errorcode.get(e.errno)}")
# names as stored
for nm in (b"ctl\x01name", b"new\nline", b"tab\tname", b"esc\x1b[31m", b"%s%n%n", b"back\\slash",
           b"lat\xe9n1", b"x" * 255):
    try:
        with open(root + b"/" + nm, "rb") as f:
            if f.read() != b"name:" + nm:
                fail(f"{nm!r}: wrong content")
    except OSError as e:
        fail(f"{nm!r}: {errno.errorcode.get(e.errno)}")
for r, ds, fs in os.walk(root):
    for f in fs:
        p = os.path.join(r, f)
        if not os.path.islink(p):
            open(p, "rb").read()

# --- crafted pxar hardlinks: resolved by delta inside the archive, or EIO ---
hl = M + b"/host/hl/" + t0.encode() + b"/root.pxar"
try:
    names = sorted(os.listdir(hl))
    want = sorted([b"A" * len(canary), b"dir0", b"hl-abs", b"hl-canary", b"hl-dir", b"hl-fwd",
                   b"hl-good", b"hl-huge", b"hl-mid"])
    if names != want:
        fail(f"crafted hardlinks: lists {names}")
except OSError as e:
    # A malformed child may fail its whole directory's listing.
    if e.errno != errno.EIO:
        fail(f"crafted hardlinks: listdir: {errno.errorcode.get(e.errno)}")
target = os.stat(hl + b"/" + b"A" * len(canary))
for ln in (b"hl-good", b"hl-abs", b"hl-canary"):
    # the stored path (/etc/passwd, the canary) is not used
    st = os.stat(hl + b"/" + ln)
    if not stat.S_ISREG(st.st_mode) or st.st_ino != target.st_ino:
        fail(f"{ln!r}: not the archive's own file (mode {oct(st.st_mode)}, ino {st.st_ino})")
    if open(hl + b"/" + ln, "rb").read() != b"TARGET\n":
        fail(f"{ln!r}: wrong content")
for ln in (b"hl-dir", b"hl-fwd", b"hl-huge", b"hl-mid"):
    for what, fn in (("lstat", os.lstat), ("open", lambda p: open(p, "rb").read())):
        try:
            fn(hl + b"/" + ln)
            fail(f"{ln!r}: {what} succeeded")
        except OSError as e:
            if e.errno != errno.EIO:
                fail(f"{ln!r}: {what}: {errno.errorcode.get(e.errno)}, want EIO")
if canary_events():
    fail("the daemon opened the canary (a link was followed)")
# the watch works: our own read is seen
open(canary, "rb").read()
if not canary_events():
    fail("inotify control: our own read of the canary was not seen")
os.kill(pid, 0)  # the daemon is alive
if fails:
    sys.exit("FAIL:\n" + "\n".join(fails))
print(f"{n} crafted lookups refused; crafted dirs, files and links hidden; pxar links are data")
PY
unmount_dsfs "$M"

# Command lines: hostile snapshot paths and archive names are refused by
# dsfs before any file system call names them (strace, as above).
for args in "ls|$S|vm/../vm" "ls|$S|vm/1/../../../etc" "ls|$S|/etc" "ls|$S|ns/a/ns/b/ns/c/ns/d/ns/e/ns/f/ns/g/ns/eight" \
	"ls|$S|ns/.hidden/vm/1" "ls|$S|vm/-x" "cat|$S|vm/1/$T0|../../../../etc/passwd" \
	"cat|$S|vm/1/$T0|/etc/passwd" "cat|$S|vm/1/..|qemu-server.conf.blob" \
	"cat|$S|vm/1/$T0/../../..|qemu-server.conf.blob" "verify|$S|vm/1/../../../../etc" \
	"cat|$S|vm/1/$T0|.chunks" "cat|$S|vm/a$(printf '\001')b/$T0|qemu-server.conf.blob"; do
	IFS='|' read -r -a argv <<<"$args"
	rc=0
	if command -v strace >/dev/null && [ -z "${DSFS_NO_STRACE:-}" ]; then
		strace -f -qq -xx -s 4096 -e trace=%file -o "$T/cli.strace" "$DSFS" "${argv[@]}" \
			>"$T/out" 2>"$T/err" || rc=$?
	else
		"$DSFS" "${argv[@]}" >"$T/out" 2>"$T/err" || rc=$?
	fi
	[ "$rc" != 0 ] || fail "dsfs ${argv[*]}: succeeded"
	[ -s "$T/err" ] || fail "dsfs ${argv[*]}: refused without a message"
	[ -e "$T/cli.strace" ] || continue
	python3 - "$T/cli.strace" <<'PY' || fail "dsfs ${argv[*]}: touched the file system"
import re, sys
bad = []
for line in open(sys.argv[1], encoding="ascii", errors="replace"):
    if re.match(r"\d+ +execve\(", line):
        continue  # the command line itself
    for arg in re.findall(r'"((?:\\x[0-9a-f]{2})*)"', line):
        raw = bytes.fromhex(arg.replace("\\x", ""))
        comps = raw.split(b"/")
        if (b".." in comps or raw in (b"/etc", b"/etc/passwd") or raw.endswith(b"Z/.chunks") or
                {b"eight", b".hidden", b"-x", b"a\x01b"} & set(comps)):
            bad.append(line.strip())
if bad:
    sys.exit("\n".join(bad[:10]))
PY
	rm -f "$T/cli.strace"
done

# Encrypted data: without the key ENOKEY, with a wrong key EKEYREJECTED
# (the manifest's key-fingerprint is not the key's; it used to be EIO,
# logged as corrupt chunks), never bytes; the right key reads them (the
# control).
E=host/enc/$T0
for k in none wrong right; do
	case $k in
	none) mount_dsfs "$S" "$M" ;;
	wrong) mount_dsfs "$S" "$M" -o keyfile="$wrongkey" ;;
	right) mount_dsfs "$S" "$M" -o keyfile="$key" ;;
	esac
	python3 - "$M/$E" "$k" "$T/disk.img" "$T/encsrc/secret.txt" <<'PY' || fail "encrypted data with key $k"
import errno, hashlib, os, sys
d, k, img, txt = sys.argv[1:]
want = {"disk.img": open(img, "rb").read(), "notes.conf": open(txt, "rb").read(),
        "root.pxar/secret.txt": open(txt, "rb").read()}
errs = {"none": {errno.ENOKEY}, "wrong": {errno.EKEYREJECTED}}.get(k)
fails = []
listing = sorted(os.listdir(d))
for n in ("disk.img", "notes.conf", "root.pxar"):
    if n not in listing:
        fails.append(f"{n} not listed: {listing}")
for n, w in want.items():
    try:
        with open(f"{d}/{n}", "rb") as f:
            got = f.read()
        if errs:
            fails.append(f"{n}: read {len(got)} bytes without the right key")
        elif got != w:
            fails.append(f"{n}: wrong bytes with the right key")
    except OSError as e:
        if not errs or e.errno not in errs:
            fails.append(f"{n}: {errno.errorcode.get(e.errno)}")
if errs:
    try:
        os.listdir(f"{d}/root.pxar")
        fails.append("root.pxar lists without the right key")
    except OSError as e:
        if e.errno not in errs:
            fails.append(f"root.pxar: listdir: {errno.errorcode.get(e.errno)}")
if fails:
    sys.exit("FAIL (key " + k + "):\n" + "\n".join(fails))
PY
	unmount_dsfs "$M"
done
grep -q 'encrypted, mount with -o keyfile= to read it' "$T/mount.log" ||
	fail "no log line says the key is missing"
grep -q "disk.img: encrypted with another key (fingerprint .*), not the mount's" "$T/mount.log" &&
	grep -q "root.pxar: encrypted with another key" "$T/mount.log" ||
	fail "no log line says the key is another"
# A manifest without a key-fingerprint (PBS's own before it signed them)
# says nothing: the chunks decide, and do not decrypt (EIO).
python3 - "$S/$E/index.json.blob" <<'PY'
import json, struct, subprocess, sys, zlib
p = sys.argv[1]
raw = open(p, "rb").read()
data = raw[12:]
if raw[:8].hex() == "31b958426fb6a37f":
    data = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
m = json.loads(data)
del m["unprotected"]["key-fingerprint"]
data = json.dumps(m, indent=2, sort_keys=True).encode()
open(p, "wb").write(bytes.fromhex("42ab3807be8370a1") + struct.pack("<I", zlib.crc32(data)) + data)
PY
mount_dsfs "$S" "$M" -o keyfile="$wrongkey"
python3 - "$M/$E/disk.img" <<'PY' || fail "wrong key, no fingerprint"
import errno, sys
try:
    open(sys.argv[1], "rb").read()
    sys.exit("read with the wrong key")
except OSError as e:
    assert e.errno == errno.EIO, errno.errorcode.get(e.errno)
PY
unmount_dsfs "$M"

# Key files that group or others can access are refused, with the reason;
# nothing is mounted.
for mode in 0644 0640 0604 0660 0606 0610; do
	install -m "$mode" "$key" "$T/loose.json"
	rc=0
	timeout 20 "$MOUNT_DSFS" "$S" "$M" -f -o keyfile="$T/loose.json" >"$T/out" 2>&1 || rc=$?
	[ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "mount.dsfs with a $mode key file: exit $rc"
	! mountpoint -q "$M" || { fusermount3 -u "$M"; fail "mounted with a $mode key file"; }
	grep -q "has mode $mode; refusing a key that group or others can access (chmod 600)" "$T/out" ||
		fail "mount.dsfs, $mode key: unclear message: $(cat "$T/out")"
	rc=0
	"$DSFS" cat --keyfile "$T/loose.json" "$S" "$E" notes.conf.blob >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" != 0 ] && [ ! -s "$T/out" ] || fail "dsfs cat with a $mode key file: exit $rc"
	grep -q "has mode $mode; refusing" "$T/err" || fail "dsfs cat, $mode key: $(cat "$T/err")"
done

# An image index with a chunk size of 2^40, not in the manifest: stat
# took 43 s for 2^36 when st_blocks hashed the zero chunk it names.
python3 - "$SNAP/huge.img.fidx" <<'PY'
import struct, sys
h = bytearray(4096)
h[0:8] = bytes([0x2f, 0x7f, 0x41, 0xed, 0x91, 0xfd, 0x0f, 0xcd])
h[64:80] = struct.pack("<QQ", 1 << 40, 1 << 40)  # size, chunk size: one chunk
open(sys.argv[1], "wb").write(bytes(h) + bytes(32))
PY
mount_dsfs "$S" "$M"
H=$M/vm/1/$T0/huge.img
# A daemon stuck hashing would not unmount: kill it before failing. (The
# commands write to files: a failing $(...) would run the exit trap in
# its subshell, whose cleanup waits for that daemon.)
stuck() { kill -9 "$MOUNT_PID"; fusermount3 -u -z "$M"; fail "$1"; }
rc=0
timeout -s KILL 10 stat -c '%s %b' "$H" >"$T/out" || rc=$?
[ "$rc" = 0 ] || stuck "stat of an index with a 2^40 chunk size: exit $rc (137: no answer in 10 s)"
[ "$(cat "$T/out")" = "$((1 << 40)) $(((1 << 40) / 512))" ] || fail "stat of huge.img: $(cat "$T/out")"
rc=0
timeout -s KILL 10 dd if="$H" of=/dev/null bs=4096 count=1 2>"$T/out" || rc=$?
[ "$rc" != 137 ] || stuck "read of huge.img: no answer in 10 s"
[ "$rc" != 0 ] || fail "read of huge.img succeeded"
grep -q "Input/output error" "$T/out" || fail "read of huge.img: $(cat "$T/out"), want EIO"
unmount_dsfs "$M"
rm "$SNAP/huge.img.fidx"

# A multi-store mount: crafted store names at its root.
printf 'datastore: store1\n\tpath %s\n' "$S" >"$T/datastore.cfg"
mount_dsfs "$T/datastore.cfg" "$M"
python3 - "$M" <<'PY'
import errno, os, sys
m = os.fsencode(sys.argv[1])
assert os.listdir(m) == [b"store1"], os.listdir(m)
for n in (b"store1\n", b"store\x01", b"...", b"x" * 300, b".chunks", b"%s%n", b"Store1", b"store1 "):
    try:
        os.lstat(m + b"/" + n)
        sys.exit(f"FAIL: {n!r} found at the root")
    except OSError as e:
        assert e.errno in (errno.ENOENT, errno.EINVAL, errno.ENAMETOOLONG), (n, e)
PY
unmount_dsfs "$M"
echo "security ok"
