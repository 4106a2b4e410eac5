# With -o allow_other,default_permissions an unprivileged user (nobody)
# sees exactly what the modes stored in a pxar archive allow: reads what
# owner, group or other bits grant (owner bits for the files it owns, group
# bits — and not the other bits — for a file of its group), gets EACCES for
# a root-only file, for listing or entering a 0700 directory, for listing a
# 0711 directory (whose known names still open), and for a 0604 file of
# its own group; POSIX ACLs are enforced too (a file the group bits grant
# but a named-user entry denies, one no bit grants but the ACL does, a
# directory the ACL closes). Root reads everything (the bytes are right:
# the refusals are the modes' doing). Without allow_other the user cannot enter the
# mount at all. With allow_other alone the modes are enforced all the same.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
	echo "SKIP: needs root and setpriv (util-linux) to act as another user" >&2
	exit 77
fi
U=$(id -u nobody) || { echo "SKIP: no user nobody" >&2; exit 77; }
G=$(id -g nobody)
# A python nobody may run (not one under root's home).
PY=$(PATH=/usr/local/bin:/usr/bin:/bin command -v python3) || { echo "SKIP: no system python3" >&2; exit 77; }
SHM=$(mktemp -d /dev/shm/dsfs-test.XXXXXX 2>/dev/null || mktemp -d "$T/shm.XXXXXX")
# The mount point must be reachable for nobody ($T is 0700).
P=$(mktemp -d /tmp/dsfs-nonroot.XXXXXX)
trap 'cleanup; rm -rf "$SHM"; rm -f "$P/check.py"; rmdir "$P/m" "$P"' EXIT
chmod 755 "$P"
S=$SHM/store
D=$T/src
M=$P/m

mkdir -p "$D/pub" "$D/private" "$D/xonly" "$D/grp"
w() { printf '%s\n' "$1" >"$D/$1"; chown "$2" "$D/$1"; chmod "$3" "$D/$1"; }
w pub/readable.txt 0:0 0644
w pub/secret.txt 0:0 0600
w pub/mine.txt "$U:$G" 0600       # nobody's own file
w pub/mine-noread.txt "$U:$G" 0244 # nobody's, but no owner read bit
w grp/group-read.txt "0:$G" 0640   # group bits grant
w grp/group-denied.txt "0:$G" 0604 # group bits deny although other allows
w grp/other-group.txt 0:0 0640
w private/inner.txt 0:0 0644
w xonly/known.txt 0:0 0644
# POSIX ACLs: the kernel must enforce them, not the mode bits alone (the
# group bits of a file with an ACL are its mask).
mkdir -p "$D/acl/denied-dir"
w acl/user-denied.txt "0:$G" 0640  # group bits grant, ACL denies nobody
w acl/user-granted.txt 0:0 0600    # no bit grants, ACL grants nobody
w acl/denied-dir/inner.txt 0:0 0644
setfacl -m "u:$U:---" "$D/acl/user-denied.txt" "$D/acl/denied-dir" &&
	setfacl -m "u:$U:r--" "$D/acl/user-granted.txt" ||
	{ echo "SKIP: setfacl does not work under $D" >&2; exit 77; }
chmod 0700 "$D/private"
chmod 0711 "$D/xonly"
chmod 0755 "$D/pub" "$D/grp" "$D"
"$DSFS" init "$S" >/dev/null
T0=2025-01-01T00:00:00Z
"$DSFS" backup "$S" host/h --time $T0 root.pxar="$D" >/dev/null
R=$M/host/h/$T0/root.pxar

mount_dsfs "$S" "$M" -o allow_other,default_permissions
# As root: every file reads its own name back (the archive is right).
for f in pub/readable.txt pub/secret.txt pub/mine.txt pub/mine-noread.txt grp/group-read.txt \
	grp/group-denied.txt grp/other-group.txt private/inner.txt xonly/known.txt; do
	[ "$(cat "$R/$f")" = "$f" ] || fail "root reads $f wrong"
done
[ "$(stat -c '%a %u %g' "$R/pub/mine.txt")" = "600 $U $G" ] || fail "owner/mode not kept: $(stat -c '%a %u %g' "$R/pub/mine.txt")"
[ "$(stat -c %a "$R/private")" = 700 ] || fail "0700 directory shows $(stat -c %a "$R/private")"
for f in acl/user-denied.txt acl/user-granted.txt acl/denied-dir/inner.txt; do
	[ "$(cat "$R/$f")" = "$f" ] || fail "root reads $f wrong"
done
getfacl -cn "$R/acl/user-granted.txt" 2>/dev/null | grep -qx "user:$U:r--" ||
	fail "the archive lost the ACL of acl/user-granted.txt: $(getfacl -cn "$R/acl/user-granted.txt" 2>&1)"

cat >"$P/check.py" <<'PY'
import errno, os, sys
r = sys.argv[1]
assert os.getuid() != 0 and os.geteuid() != 0, "still root"
fails = []
def want(what, fn, err):
    try:
        got = fn()
        if err:
            fails.append(f"{what}: succeeded, want {errno.errorcode[err]}")
        return got
    except OSError as e:
        if e.errno != err:
            fails.append(f"{what}: {errno.errorcode.get(e.errno)}, want {errno.errorcode[err] if err else 'success'}")
def read(p):
    with open(f"{r}/{p}") as f:
        got = f.read()
    if got != p + "\n":
        fails.append(f"{p}: read {got!r}")
OK = 0
want("read pub/readable.txt", lambda: read("pub/readable.txt"), OK)
want("read pub/secret.txt (0600 root)", lambda: read("pub/secret.txt"), errno.EACCES)
want("stat pub/secret.txt", lambda: os.stat(f"{r}/pub/secret.txt"), OK)
want("read pub/mine.txt (0600 nobody)", lambda: read("pub/mine.txt"), OK)
want("read pub/mine-noread.txt (0244 nobody)", lambda: read("pub/mine-noread.txt"), errno.EACCES)
want("read grp/group-read.txt (0640 root:nogroup)", lambda: read("grp/group-read.txt"), OK)
want("read grp/group-denied.txt (0604 root:nogroup)", lambda: read("grp/group-denied.txt"), errno.EACCES)
want("read grp/other-group.txt (0640 root:root)", lambda: read("grp/other-group.txt"), errno.EACCES)
want("list private (0700)", lambda: os.listdir(f"{r}/private"), errno.EACCES)
want("stat private/inner.txt", lambda: os.stat(f"{r}/private/inner.txt"), errno.EACCES)
want("read private/inner.txt", lambda: read("private/inner.txt"), errno.EACCES)
want("list xonly (0711)", lambda: os.listdir(f"{r}/xonly"), errno.EACCES)
want("read acl/user-denied.txt (0640 root:nogroup, ACL user:nobody:---)",
     lambda: read("acl/user-denied.txt"), errno.EACCES)
want("read acl/user-granted.txt (0640 root:root, ACL user:nobody:r--)",
     lambda: read("acl/user-granted.txt"), OK)
want("list acl/denied-dir (0755, ACL user:nobody:---)",
     lambda: os.listdir(f"{r}/acl/denied-dir"), errno.EACCES)
want("read acl/denied-dir/inner.txt", lambda: read("acl/denied-dir/inner.txt"), errno.EACCES)
want("read xonly/known.txt", lambda: read("xonly/known.txt"), OK)
names = want("list root.pxar", lambda: sorted(os.listdir(r)), OK)
if names != ["acl", "grp", "private", "pub", "xonly"]:
    fails.append(f"root.pxar lists {names}")
# outside the archive: the datastore tree is readable, writes refused
snap = os.path.dirname(r)
want("read index.json", lambda: open(f"{snap}/index.json").read(), OK)
want("read owner", lambda: open(f"{os.path.dirname(snap)}/owner").read(), OK)
try:
    os.open(f"{r}/pub/new", os.O_WRONLY | os.O_CREAT, 0o644)
    fails.append("create in the archive succeeded")
except OSError as e:
    if e.errno not in (errno.EACCES, errno.EROFS):
        fails.append(f"create: {errno.errorcode.get(e.errno)}")
if fails:
    sys.exit("FAIL:\n" + "\n".join(fails))
print("nobody sees what the modes allow")
PY
as_nobody() { setpriv --reuid="$U" --regid="$G" --init-groups -- "$@"; }
as_nobody "$PY" "$P/check.py" "$R" || fail "unprivileged checks"
unmount_dsfs "$M"

# allow_other alone: dsfs checks no modes itself, so the kernel's checks
# must be on all the same (else every user reads a 0600 /etc/shadow).
mount_dsfs "$S" "$M" -o allow_other
as_nobody "$PY" "$P/check.py" "$R" || fail "unprivileged checks with -o allow_other (no default_permissions)"
unmount_dsfs "$M"

# Without allow_other, the mount is the mounting user's alone.
mount_dsfs "$S" "$M"
out=$(as_nobody ls "$M" 2>&1) && fail "nobody lists a mount without allow_other: $out"
case $out in *"Permission denied"*) ;; *) fail "without allow_other: want EACCES, got: $out" ;; esac
unmount_dsfs "$M"
echo "non-root access ok"
