# Edges of pxar archives as real tools see them through the mount, in v1
# and split archives: symlink targets longer than 255 bytes (readlink,
# cp -a), a tree deeper than PATH_MAX (find, openat), an archive whose
# last chunk is missing when it is first opened and comes back, and a split
# archive whose PAYLOAD_REF does not point at a
# PAYLOAD header (the file must fail with EIO, not show other bytes).
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse

S=$T/src
mkdir -p "$S/dir"
for n in 1 255 256 1000 4095; do
	ln -s "$(head -c "$n" /dev/zero | tr '\0' t)" "$S/sym$n"
done
ln -s "dir/$(head -c 3000 /dev/zero | tr '\0' x)" "$S/dir/rel3000"
echo "plain file" >"$S/plain"

# A tree whose paths pass PATH_MAX (4096 bytes): 20 directories of 203-byte
# names. Linux has no limit on depth; find and tar walk such trees with
# openat, and so does anything restoring them.
python3 - "$T/deep" <<'PY'
import os, sys
os.mkdir(sys.argv[1])
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
for i in range(20):
    n = "d%02d" % i + "x" * 200
    os.mkdir(n, dir_fd=fd)
    fd = os.open(n, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
f = os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
os.write(f, b"deep leaf\n")
PY

store=$T/store
"$DSFS" init "$store" >/dev/null
"$DSFS" backup "$store" host/e --time 2025-03-01T00:00:00Z root.pxar="$S" deep.pxar="$T/deep" \
	>/dev/null
"$DSFS" backup "$store" host/e --time 2025-03-02T00:00:00Z --split root.pxar="$S" \
	deep.pxar="$T/deep" >/dev/null

# A split archive (the upstream fixture) whose PAYLOAD_REF of many/f00 points
# one byte past its PAYLOAD header: the bytes there are the file's data
# shifted by one, which only the header check can tell.
python3 - "$FIX/pxar/all-kinds.v2.mpxar" "$T/bad.mpxar" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
off, name, done = 0, None, False
while off < len(b):
    t, size = struct.unpack_from("<QQ", b, off)
    if t == 0x16701121063917b3:  # FILENAME
        name = bytes(b[off + 16:off + size - 1])
    if t == 0x419d3d6bc4ba977e and name == b"f00":  # its PAYLOAD_REF
        po, = struct.unpack_from("<Q", b, off + 16)
        struct.pack_into("<Q", b, off + 16, po + 1)
        done = True
    off += size
assert done
open(sys.argv[2], "wb").write(b)
PY
"$DSFS" backup "$store" host/bad --time 2025-03-01T00:00:00Z root.mpxar="$T/bad.mpxar" \
	root.ppxar="$FIX/pxar/all-kinds.v2.ppxar" >/dev/null

# An archive of its own chunk (one chunk), which is away when the mount
# first opens the archive, then put back (a sync repairing the store).
mkdir -p "$T/heal"
echo "back again" >"$T/heal/file"
"$DSFS" backup "$store" host/heal --time 2025-03-01T00:00:00Z root.pxar="$T/heal" >/dev/null
heal_chunk=$(python3 - "$store/host/heal/2025-03-01T00:00:00Z/root.pxar.didx" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
assert len(b) == 4096 + 40, len(b)
d = b[4096 + 8:4096 + 40].hex()
print(f"{d[:4]}/{d}")
PY
)
mv "$store/.chunks/$heal_chunk" "$T/heal.chunk"

M=$T/m
mount_dsfs "$store" "$M"
H=$M/host/heal/2025-03-01T00:00:00Z/root.pxar
if ls "$H" >/dev/null 2>&1; then fail "an archive without its chunk was listed"; fi
mv "$T/heal.chunk" "$store/.chunks/$heal_chunk"
# Looked up again within seconds, as a refusal's end is, not after the hour
# the kernel keeps a readable archive's entry.
wait_until "the archive whose chunk came back" test -f "$H/file"
[ "$(cat "$H/file")" = "back again" ] || fail "file of the archive whose chunk came back"
for snap in 2025-03-01T00:00:00Z 2025-03-02T00:00:00Z; do
	A=$M/host/e/$snap/root.pxar
	for l in sym1 sym255 sym256 sym1000 sym4095 dir/rel3000; do
		want=$(readlink "$S/$l")
		got=$(readlink "$A/$l") || fail "readlink $l ($snap)"
		[ "$got" = "$want" ] || fail "readlink $l ($snap): ${#got} bytes, want ${#want}"
		[ "$(stat -c %s "$A/$l")" = "${#want}" ] || fail "st_size of $l ($snap)"
	done
	cp -a "$A" "$T/cp-$snap" || fail "cp -a out of $snap"
	diff -r --no-dereference "$S" "$T/cp-$snap" || fail "cp -a copy differs ($snap)"
	# Every entry of the deep tree, the leaf (at 4,080 bytes below the
	# archive) included; lookups deep down used to fail with ENOMEM.
	D=$M/host/e/$snap/deep.pxar
	n=$(cd "$D" && { find . 2>"$T/find.err" || true; } | wc -l)
	[ "$n" = 22 ] || fail "find in the deep archive ($snap): $n of 22 entries: $(tail -c 200 "$T/find.err")"
	got=$(python3 - "$D" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
for i in range(20):
    fd = os.open("d%02d" % i + "x" * 200, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
f = os.open("leaf", os.O_RDONLY, dir_fd=fd)
sys.stdout.write(os.read(f, 100).decode())
PY
) || fail "openat down to the deep leaf ($snap)"
	[ "$got" = "deep leaf" ] || fail "deep leaf ($snap): $got"
done
B=$M/host/bad/latest/root.pxar
[ "$(cat "$B/many/f01")" = "content of f01" ] || fail "an intact file of the damaged archive"
if out=$(cat "$B/many/f00" 2>&1); then
	fail "a PAYLOAD_REF beside its PAYLOAD header was read: $(printf %q "$out")"
fi
case "$out" in *"Input/output error"*) ;; *) fail "want EIO, got: $out" ;; esac
grep -q "no PAYLOAD header" "$T/mount.log" || fail "no log line for the bad PAYLOAD_REF"
unmount_dsfs "$M"
echo "pxar edges ok"
