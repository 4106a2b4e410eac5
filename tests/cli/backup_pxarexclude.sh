# dsfs backup NAME.pxar=DIR honours .pxarexclude files and --exclude as
# proxmox-backup-client does (pbs-client/src/pxar/create.rs with the
# pathpatterns crate): the archive and the catalog hold exactly the paths
# PBS's client would store, checked here by decoding both with Python from
# the spec; --exclude is recorded as .pxarexclude-cli (v1) or in the
# PRELUDE (v2) byte for byte as that client writes it.
. "$(dirname "$0")/../testlib.bash"
S=$T/store
D=$T/src
"$DSFS" init "$S" >/dev/null
mkdir -p "$D/build" "$D/notdir" "$D/secret" "$D/sub/cache/deep" "$D/sub/inner" "$D/other"
# Root rules: any-depth glob, anchored, directories only, '**', a later
# re-include, an anchored directory, a re-include of a --exclude match.
cat >"$D/.pxarexclude" <<'EOF'
# comment line
*.log
  /top-only.txt	
build/
**/cache/**

!keep.log
/secret
!sub/anch.txt
EOF
for f in a.log keep.log top-only.txt plain.txt build/x notdir/build secret/s.txt sub/top-only.txt \
	sub/b.log sub/anch.txt sub/x.tmp sub/cache/c1 sub/cache/deep/x sub/inner/x.tmp \
	sub/inner/y.tmp other/b.log; do
	printf '%s\n' "$f" >"$D/$f"
done
printf 'bogus\n' >"$D/.pxarexclude-cli"       # never stored at the top
printf '!x\n' >"$D/build/.pxarexclude"        # not read: build/ is excluded
printf '!*\n' >"$D/secret/.pxarexclude"       # not read: secret is excluded
# In sub: a re-include of the root's *.log, an anchored line (which PBS's
# client never matches below the root), a glob re-included deeper down.
printf '!*.log\n/anch.txt\n*.tmp\n' >"$D/sub/.pxarexclude"
printf '!x.tmp\n' >"$D/sub/inner/.pxarexclude"
ln -s ../sub "$D/other/build"                 # a symlink is no directory

expect_status 0 "$DSFS" backup "$S" host/x --time 2025-01-01T00:00:00Z root.pxar="$D"
grep -q "^root.pxar.didx: .*, 0 skipped, 9 excluded$" "$T/out" || { cat "$T/out"; fail "stats line"; }
expect_status 0 "$DSFS" backup "$S" host/x --time 2025-01-02T00:00:00Z root.pxar="$D" \
	--exclude '*.txt' --exclude '!plain.txt' --exclude 'notdir/'
expect_status 0 "$DSFS" backup "$S" host/x --time 2025-01-03T00:00:00Z --split root.pxar="$D" \
	--exclude '*.txt' --exclude '!plain.txt' --exclude 'notdir/'
expect_status 0 "$DSFS" verify "$S"
for d in 01 02; do
	"$DSFS" cat "$S" host/x/2025-01-${d}T00:00:00Z root.pxar >"$T/$d.pxar"
	"$DSFS" cat "$S" host/x/2025-01-${d}T00:00:00Z catalog.pcat1 >"$T/$d.cat"
done
"$DSFS" cat "$S" host/x/2025-01-03T00:00:00Z root.mpxar >"$T/03.mpxar"

# A pattern PBS's client refuses refuses the backup before it starts.
expect_status 2 "$DSFS" backup "$S" host/y --time 2025-01-04T00:00:00Z root.pxar="$D" \
	--exclude '[[:bogus:]]'
grep -q "invalid exclude pattern" "$T/err" || fail "bad --exclude not explained"
[ ! -e "$S/host/y" ] || fail "refused backup left a group"

python3 - "$T" <<'PY'
import os, stat, struct, sys
t = sys.argv[1]
ENTRY, FILENAME, PAYLOAD, PREF = 0xd5956474e588acef, 0x16701121063917b3, 0x28147a1b0b7c1a25, 0x419d3d6bc4ba977e
GOODBYE, FMT, PRELUDE, HARDLINK = 0x2fec4fa642d5731d, 0x730f6c75df16a40d, 0xe309d79d9f7b771b, 0x51269c8422bd7275

def items(b):
    off = 0
    while off < len(b):
        ty, size = struct.unpack_from("<QQ", b, off)
        assert size >= 16 and off + size <= len(b), (off, size)
        yield ty, b[off + 16: off + size]
        off += size

def archive(b):
    """path -> (mode, uid, gid, mtime, payload) by sequential decoding; the
    root's children in archive order; the PRELUDE"""
    out, top, stack, name, prelude, last = {}, [], None, None, None, None
    for ty, c in items(b):
        if ty == PRELUDE:
            prelude = c
        elif ty == FILENAME:
            name = c[:-1]
            if stack is not None and len(stack) == 1:
                top.append(name)
        elif ty == ENTRY:
            mode, _, uid, gid, sec, ns = struct.unpack_from("<QQIIqI", c)
            if stack is None:
                stack = [b""]
                continue
            last = b"/".join(stack[1:] + [name])
            out[last] = [mode, uid, gid, (sec, ns), None]
            if stat.S_ISDIR(mode):
                stack.append(name)
        elif ty == PAYLOAD:
            out[last][4] = c
        elif ty == HARDLINK:
            out[b"/".join(stack[1:] + [name])] = [None] * 5
        elif ty == GOODBYE:
            stack.pop()
    assert stack == [], "unbalanced directories"
    return out, top, prelude

from pcat import entries

def catalog(b):
    """path below the archive -> (type, size, mtime)"""
    top = b"/root.pxar.didx"
    return {e[0][len(top) + 1:]: e[1:] for e in entries(b) if e[0].startswith(top + b"/")}

# What PBS's client keeps of the tree (worked out from its rules, see the
# comments where the tree is made).
base = {b".pxarexclude", b"keep.log", b"plain.txt", b"notdir", b"notdir/build", b"other",
        b"other/build", b"sub", b"sub/.pxarexclude", b"sub/top-only.txt", b"sub/b.log",
        b"sub/anch.txt", b"sub/cache", b"sub/inner", b"sub/inner/.pxarexclude",
        b"sub/inner/x.tmp"}
# --exclude '*.txt' '!plain.txt' 'notdir/': the root's "!sub/anch.txt"
# comes later and wins; sub/top-only.txt and notdir go.
cli = (base - {b"notdir", b"notdir/build", b"sub/top-only.txt"}) | {b".pxarexclude-cli"}
text = b"*.txt\n!plain.txt\nnotdir/\n"

a1, top1, p1 = archive(open(f"{t}/01.pxar", "rb").read())
assert set(a1) == base, sorted(set(a1) ^ base)
assert p1 is None and b".pxarexclude-cli" not in top1
c1 = catalog(open(f"{t}/01.cat", "rb").read())
assert set(c1) == base, sorted(set(c1) ^ base)
assert stat.S_ISLNK(a1[b"other/build"][0]) and c1[b"other/build"] == ("l",)
assert a1[b".pxarexclude"][4] == open(f"{t}/src/.pxarexclude", "rb").read()

a2, top2, p2 = archive(open(f"{t}/02.pxar", "rb").read())
assert set(a2) == cli, sorted(set(a2) ^ cli)
c2 = catalog(open(f"{t}/02.cat", "rb").read())
assert set(c2) == cli, sorted(set(c2) ^ cli)
# .pxarexclude-cli: the root's last entry, a 0600 file of the client's ids,
# mtime 0, holding the patterns (create.rs encode_pxarexclude_cli)
assert top2[-1] == b".pxarexclude-cli" and top2[:-1] == sorted(top2[:-1]), top2
mode, uid, gid, mtime, data = a2[b".pxarexclude-cli"]
assert (mode, uid, gid, mtime, data) == (0o100600, os.getuid(), os.getgid(), (0, 0), text)
assert c2[b".pxarexclude-cli"] == ("f", len(text), 0), c2[b".pxarexclude-cli"]
assert p2 is None

a3, top3, p3 = archive(open(f"{t}/03.mpxar", "rb").read())
assert set(a3) == cli - {b".pxarexclude-cli"}, sorted(set(a3) ^ cli)
assert p3 == b'{"exclude-patterns":"*.txt\\n!plain.txt\\nnotdir/\\n"}', p3
print("pxarexclude ok")
PY
echo "backup pxarexclude ok"
