# Attributes in directory listings (READDIRPLUS) go to the readers that use
# them: `ls -lR` and `du` get them and need no LOOKUP per entry, `find` does
# not (it would pay a lookup and a kernel inode per entry for nothing).
# Counted from libfuse's own request log (mount.dsfs -d), for a pxar tree of
# 12 directories of 150 files made here; every walk must also show exactly
# the source tree (names, types, sizes, modes, mtimes), including walks that
# mix readers on one mount (find, then ls -lR and stat of what find listed
# without attributes).
# A directory larger than the chunk cache is listed in archive order (name
# order), one pass over its span: `ls -f` shows the names sorted, and
# `ls -l` of 3000 files of 16 KiB (v1: the contents lie between the
# entries) through a 24 MiB cache loads each chunk once, plus at most
# three (in hash order it loaded a chunk per entry; decoding the whole
# directory before READDIRPLUS looked its entries up, twice; looking each
# entry up by name in the goodbye table at the directory's end kept going
# back to the last chunk, up to 1.5 loads a chunk); listing it again (`ls -f`,
# `find`) loads nothing: the kernel answers from its cache, and the mount
# decodes entries at readdir, not at each opendir. Entries READDIRPLUS
# gives attributes (decoded where the listing found them) have the inode
# number, mode and size a LOOKUP by name on a fresh mount gives.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
src=$T/tree
python3 - "$src" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(12):
    os.makedirs(f"{root}/d{d:02d}/sub")
    for i in range(150):
        p = f"{root}/d{d:02d}/f{i:03d}"
        with open(p, "w") as f:
            f.write("x" * (i * 7 + d))
        os.chmod(p, 0o600 + (i % 3) * 0o40)
        os.utime(p, (1700000000 + i, 1700000000 + i * 3 + d))
PY
"$DSFS" init "$T/store" >/dev/null
"$DSFS" backup "$T/store" host/l --time 2025-01-01T00:00:00Z root.pxar="$src" >/dev/null ||
	fail "backup"
M=$T/m
R=$M/host/l/2025-01-01T00:00:00Z/root.pxar
dirs=$(find "$src" -type d | wc -l)
files=$(find "$src" -type f | wc -l)

# What a walk shows, relative to its root: path, type, size, mode, mtime
# (directories without size: ours are 0, ext4's are not).
tree_of() {
	(cd "$1" && find . -printf '%p %y %m %T@ ' -a \( -type d -printf '-\n' -o -printf '%s\n' \) | sort)
}
want=$(tree_of "$src")

# walk CMD...: runs CMD on a fresh mount with the request log; sets OPS to
# the LOOKUP count, LISTED to the entries listed by READDIRPLUS and ATTRS
# to those of them given attributes (mount.dsfs's debug lines), and checks
# the mount shows the source tree after it.
walk() {
	: >"$T/mount.log"
	mount_dsfs "$T/store" "$M" -d
	"$@" >"$T/out" || fail "$*"
	OPS=$(grep -c 'opcode: LOOKUP' "$T/mount.log")
	LISTED=$(sed -n 's/.*readdirplus [0-9]* from [0-9]*: \([0-9]*\) entries, [0-9]* with attributes$/\1/p' \
		"$T/mount.log" | awk '{ s += $1 } END { print s + 0 }')
	ATTRS=$(sed -n 's/.*readdirplus [0-9]* from [0-9]*: [0-9]* entries, \([0-9]*\) with attributes$/\1/p' \
		"$T/mount.log" | awk '{ s += $1 } END { print s + 0 }')
	[ "$(tree_of "$R")" = "$want" ] || fail "after $*: the mount does not show the source tree"
	unmount_dsfs "$M"
}

walk find "$R"
[ "$(wc -l <"$T/out")" = $((dirs + files)) ] || fail "find listed $(wc -l <"$T/out") entries"
# Everything was listed (. and .. in each directory); attributes went
# with the first listing only (the root's 12 directories), and each other
# directory took one lookup to descend.
[ "$LISTED" -ge $((dirs + files)) ] || fail "find: $LISTED entries listed by READDIRPLUS"
[ "$ATTRS" -le 12 ] || fail "find: $ATTRS entries listed with attributes, want at most 12"
[ "$OPS" -le $((dirs + 8)) ] || fail "find: $OPS LOOKUPs for $dirs directories"
find_ops=$OPS find_attrs=$ATTRS

walk ls -lR "$R"
[ "$(grep -c '^-rw' "$T/out")" = "$files" ] || fail "ls -lR: $(grep -c '^-rw' "$T/out") files"
[ "$OPS" -le 8 ] || fail "ls -lR: $OPS LOOKUPs (listings without attributes?)"
[ "$ATTRS" = $((dirs + files - 1)) ] || fail "ls -lR: $ATTRS entries with attributes, want $((dirs + files - 1))"

walk du -s --apparent-size -B1 "$R"
# du's total: the files' sizes plus the directories' (0 here).
want_du=$(cd "$src" && find . -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
[ "$(cut -f1 "$T/out")" = "$want_du" ] || fail "du: $(cut -f1 "$T/out"), want $want_du"
# du's stats come from the kernel's cache: at most one directory of
# lookups before its listings get attributes for good.
[ "$OPS" -le $((150 + dirs + 8)) ] || fail "du: $OPS LOOKUPs (attributes withheld from du)"

# One mount, readers mixed: find first (entries listed without
# attributes), then the same entries stat'ed and listed long.
: >"$T/mount.log"
mount_dsfs "$T/store" "$M" -d
find "$R" >/dev/null
stat -c '%n %s %a %Y' "$R"/d03/f1* | sed "s|$R|.|" | sort >"$T/got"
(cd "$src" && stat -c '%n %s %a %Y' ./d03/f1* | sort) >"$T/want"
cmp -s "$T/got" "$T/want" || fail "stat after find differs: $(diff "$T/got" "$T/want" | head -5)"
[ "$(tree_of "$R")" = "$want" ] || fail "after find and stat: the mount does not show the source tree"
ls -lR "$R" >/dev/null
unmount_dsfs "$M"

# A directory larger than the cache.
python3 - "$T/wide" <<'PY'
import os, random, sys
r = random.Random(7)
os.makedirs(f"{sys.argv[1]}/big")
words = [bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(r.randrange(2, 9)))
         for _ in range(3000)]
for i in range(3000):
    with open(f"{sys.argv[1]}/big/f{i:04d}", "wb") as f:
        f.write(b" ".join(r.choice(words) for _ in range(3000))[:16384])
PY
out=$("$DSFS" backup "$T/store" host/wide --time 2025-01-01T00:00:00Z root.pxar="$T/wide") ||
	fail "backup of the wide tree"
chunks=$(sed -n 's/.*: \([0-9]*\) chunks, .*/\1/p' <<<"$out")
[ "${chunks:-0}" -ge 8 ] || fail "the wide archive has ${chunks:-?} chunks, want at least 8: $out"
W=$M/host/wide/2025-01-01T00:00:00Z/root.pxar/big
: >"$T/mount.log"
mount_dsfs "$T/store" "$M" -d -o cache_size=24M
ls -f "$W" | grep -v '^\.\.\?$' >"$T/order"
(cd "$T/wide/big" && ls | LC_ALL=C sort) >"$T/want"
cmp -s "$T/order" "$T/want" || fail "ls -f of a wide directory: not in name order: $(head -3 "$T/order" | tr '\n' ' ')"
unmount_dsfs "$M"
: >"$T/mount.log"
mount_dsfs "$T/store" "$M" -d -o cache_size=24M
ls -li "$W" >"$T/out" || fail "ls -l of the wide directory"
# Listed again from the kernel's cache: no decoding at OPENDIR.
for _ in 1 2 3; do ls -f "$W" >/dev/null; done
files_listed=$(awk '$2 ~ /^-/' "$T/out" | wc -l)
[ "$files_listed" = 3000 ] || fail "ls -li listed $files_listed files"
(cd "$T/wide/big" && find . -type f -printf '%p %s %T@\n' | sort) >"$T/want"
(cd "$W" && find . -type f -printf '%p %s %T@\n' | sort) >"$T/got"
cmp -s "$T/got" "$T/want" || fail "the wide directory differs from its source"
unmount_dsfs "$M"
line=$(grep 'debug: chunk cache: ' "$T/mount.log") || fail "no chunk cache line in the log"
loads=$(sed -n 's/.* \([0-9]*\) chunk loads,.*/\1/p' <<<"$line")
[ "${loads:-99999}" -le $((chunks + 3)) ] ||
	fail "ls -l of a wide directory: ${loads:-?} chunk loads for $chunks chunks: $line"
# READDIRPLUS made those entries' nodes from where the listing found them;
# a LOOKUP by name (a fresh mount, no listing) searches the goodbye table.
# Both must give the same inode and attributes.
awk '$2 ~ /^-/ { print $NF, $1, $2, $6 }' "$T/out" | sort >"$T/listed"
mount_dsfs "$T/store" "$M"
# Names spelled out, not globbed: a glob would list the directory first.
(cd "$W" && seq 7 10 2997 | xargs printf 'f%04d\n' | xargs stat -c '%n %i %A %s') | sort >"$T/looked"
unmount_dsfs "$M"
[ "$(wc -l <"$T/looked")" = 300 ] || fail "stat by name: $(wc -l <"$T/looked") files"
join "$T/looked" "$T/listed" >"$T/both"
[ "$(wc -l <"$T/both")" = 300 ] || fail "stat by name: names not in the listing"
awk '$2 != $5 || $3 != $6 || $4 != $7' "$T/both" >"$T/differ"
[ ! -s "$T/differ" ] ||
	fail "a LOOKUP by name and READDIRPLUS disagree (name, ino, mode, size; then the listing's): $(head -3 "$T/differ")"

echo "listing ok: wide directory $loads chunk loads for $chunks chunks; find $find_ops lookups and $find_attrs entries with attributes for $dirs directories and $files files"
