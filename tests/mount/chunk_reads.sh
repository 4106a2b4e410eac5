# How image reads use the chunk cache.
# 1. Random reads of plain (incompressible) chunks are read in place once
#    the chunk was verified whole: an image of 8 random 4 MiB chunks and a
#    16 MiB cache, so most chunks are not cached when read again. Every read
#    must give the source's bytes; most must be in place (mount.dsfs -d
#    counts them at unmount); and a chunk file changed after it was
#    verified must fail (EIO), never hand out the changed bytes, and read
#    again once restored.
# 2. A compressed (zstd) chunk verified whole and pushed out of the cache
#    is decoded again without hashing it, as long as its file is the one
#    verified: random reads of a text image of 33 chunks through that
#    16 MiB cache must mostly load that way (counted at unmount) and give
#    the source's bytes, and a chunk file changed since must fail (EIO).
#    A random reader has such a chunk decoded only up to the part it
#    reads, and decoded on from there for a later read further in: random
#    reads of that image after it was read whole once must give the
#    source's bytes and be loaded by parts, decoding on average well under
#    a whole chunk per load (counted at unmount); a chunk file changed
#    between two parts must fail (EIO) further in, not hand out bytes
#    decoded from the changed file.
#    With -o verify=always nothing is trusted: the same reads, none in
#    place or by identity.
# 3. A sequential reader lets the chunks it has passed go first: reading a
#    128 MiB image through a 256 MiB cache holds a few chunks at a time,
#    not the whole image (the cache's peak, logged at unmount), and two
#    readers of one image at once both read it right.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
head -c $((32 << 20)) /dev/urandom >"$T/disk.img"
# Text-like (base64): zstd chunks.
head -c $((96 << 20)) /dev/urandom | base64 -w 100 >"$T/big.img" # 129 MiB
"$DSFS" init "$T/store" >/dev/null
"$DSFS" backup "$T/store" vm/1 --time 2025-01-01T00:00:00Z disk.img="$T/disk.img" \
	big.img="$T/big.img" >/dev/null || fail "backup"
M=$T/m
IMG=$M/vm/1/2025-01-01T00:00:00Z/disk.img
mount_dsfs "$T/store" "$M" -d -o cache_size=16M

# reads SEED COUNT [CHUNK]: COUNT random O_DIRECT reads (4 KiB, some across
# a chunk boundary; only in CHUNK if given), each compared with the
# source. Prints "ok N" or the first mismatch or error.
reads() {
	python3 - "${RIMG:-$IMG}" "${RSRC:-$T/disk.img}" "$@" <<'PY'
import mmap, os, random, sys
img, src, seed, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
chunk = int(sys.argv[5]) if len(sys.argv) > 5 else None
rng = random.Random(seed)
want = open(src, "rb").read()
fd = os.open(img, os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
for i in range(count):
    if chunk is not None:
        off = chunk * (4 << 20) + rng.randrange(1024) * 4096
    elif i % 10 == 0:
        off = rng.randrange(1, 8) * (4 << 20) - 2048 // 512 * 512 - 1536
    else:
        off = rng.randrange(len(want) // 4096) * 4096
    try:
        n = os.preadv(fd, [buf], off)
    except OSError as e:
        print(f"error at {off}: {e.strerror}")
        sys.exit(0)
    if buf[:n] != want[off:off + n] or n != 4096:
        print(f"mismatch at {off} ({n} bytes)")
        sys.exit(0)
print(f"ok {count}")
PY
}

out=$(reads 1 400)
[ "$out" = "ok 400" ] || fail "random reads: $out"

# Change a byte of chunk 3's file in place (its size stays), then push
# chunk 3 out of the cache by reading the others whole.
# flip FILE: changes a byte of FILE in place, or changes it back.
flip() { python3 -c 'import sys
f = open(sys.argv[1], "r+b"); f.seek(12 + 8192); b = f.read(1); f.seek(12 + 8192)
f.write(bytes([b[0] ^ 0xff]))' "$1"; }
# digest IMAGE N: the digest of chunk N of IMAGE's index (.fidx).
digest() {
	python3 - "$T/store/vm/1/2025-01-01T00:00:00Z/$1.fidx" "$2" <<'PY'
import sys
n = int(sys.argv[2])
print(open(sys.argv[1], "rb").read()[4096 + n * 32:4096 + (n + 1) * 32].hex())
PY
}
d3=$(digest disk.img 3)
f3=$T/store/.chunks/${d3:0:4}/$d3
[ "$(head -c 8 "$f3" | od -An -tx1 | tr -d ' \n')" = 42ab3807be8370a1 ] ||
	fail "chunk 3 is not a plain blob"
flip "$f3"
for c in 0 1 2 4 5 6 7; do dd if="$IMG" of=/dev/null bs=1M skip=$((c * 4)) count=4 iflag=direct 2>/dev/null; done
out=$(reads 2 20 3)
case $out in "error at "*": Input/output error") ;; *) fail "changed chunk file: $out, want EIO" ;; esac
grep -q "chunk $d3: corrupt (CRC mismatch)" "$T/mount.log" || fail "no log line names chunk 3"
flip "$f3"
out=$(reads 3 50 3)
[ "$out" = "ok 50" ] || fail "restored chunk file: $out"

unmount_dsfs "$M"
line=$(grep 'debug: chunk cache: ' "$T/mount.log") || fail "no chunk cache line in the log"
inplace=$(sed -n 's/.* \([0-9]*\) reads in place,.*/\1/p' <<<"$line")
misses=$(sed -n 's/.* \([0-9]*\) misses,.*/\1/p' <<<"$line")
echo "$line"
# 8 chunks, each loaded once per change of its file (chunk 3: three times,
# each read of the others whole once more after the eviction); everything
# else was either a cache hit or in place.
[ "${inplace:-0}" -ge 200 ] || fail "only ${inplace:-0} of 470 reads in place"
[ "${misses:-99}" -le 30 ] || fail "$misses chunk loads"

: >"$T/mount.log"
mount_dsfs "$T/store" "$M" -d -o cache_size=16M
d5=$(digest big.img 5)
f5=$T/store/.chunks/${d5:0:4}/$d5
[ "$(head -c 8 "$f5" | od -An -tx1 | tr -d ' \n')" = 31b958426fb6a37f ] ||
	fail "chunk 5 of big.img is not a zstd blob"
export RIMG=$M/vm/1/2025-01-01T00:00:00Z/big.img RSRC=$T/big.img
out=$(reads 4 300)
[ "$out" = "ok 300" ] || fail "random reads of zstd chunks: $out"
flip "$f5"
for c in 0 1 2 3 4 6 7; do dd if="$RIMG" of=/dev/null bs=1M skip=$((c * 4)) count=4 iflag=direct 2>/dev/null; done
out=$(reads 5 20 5)
case $out in "error at "*": Input/output error") ;; *) fail "changed zstd chunk file: $out, want EIO" ;; esac
grep -q "chunk $d5: corrupt" "$T/mount.log" || fail "no log line names chunk 5 of big.img"
flip "$f5"
out=$(reads 6 50 5)
[ "$out" = "ok 50" ] || fail "restored zstd chunk file: $out"
unset RIMG RSRC
unmount_dsfs "$M"
line=$(grep 'debug: chunk cache: ' "$T/mount.log") || fail "no chunk cache line in the log"
echo "$line"
known=$(sed -n 's/.*, \([0-9]*\) loads by identity$/\1/p' <<<"$line")
# 33 chunks, 4 of them cached at a time: each loaded whole once (chunk 5
# three times), all other loads by identity.
[ "${known:-0}" -ge 200 ] || fail "only ${known:-0} loads by identity"

: >"$T/mount.log"
mount_dsfs "$T/store" "$M" -d -o cache_size=16M
export RIMG=$M/vm/1/2025-01-01T00:00:00Z/big.img RSRC=$T/big.img
cmp "$RIMG" "$RSRC" || fail "big.img read whole"
out=$(reads 9 400)
[ "$out" = "ok 400" ] || fail "random reads of zstd chunks by parts: $out"
# at OFF: one O_DIRECT 4 KiB read of RIMG at OFF, compared with RSRC:
# "ok", "mismatch" or the error.
at() {
	python3 - "$RIMG" "$RSRC" "$1" <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
off = int(sys.argv[3])
buf = mmap.mmap(-1, 4096)
try:
    n = os.preadv(fd, [buf], off)
except OSError as e:
    print(e.strerror)
    sys.exit(0)
with open(sys.argv[2], "rb") as f:
    f.seek(off)
    print("ok" if n == 4096 and buf[:] == f.read(4096) else "mismatch")
PY
}
# Chunk 7 decoded up to its first 4 KiB, after random reads of the ends
# of eight other chunks pushed it out; its file changed; then a read in
# its middle (before its end, where the CRC would show the change anyway).
for c in 10 11 12 13 14 15 16 17; do
	out=$(at $(((c + 1) * (4 << 20) - 4096)))
	[ "$out" = ok ] || fail "end of chunk $c: $out"
done
out=$(at $((7 * (4 << 20))))
[ "$out" = ok ] || fail "start of chunk 7: $out"
d7=$(digest big.img 7)
f7=$T/store/.chunks/${d7:0:4}/$d7
flip "$f7"
out=$(at $((7 * (4 << 20) + (2 << 20))))
[ "$out" = "Input/output error" ] || fail "chunk 7 changed between two parts: $out, want EIO"
grep -q "chunk $d7: corrupt" "$T/mount.log" || fail "no log line names chunk 7 of big.img"
flip "$f7"
out=$(reads 11 50 7)
[ "$out" = "ok 50" ] || fail "restored chunk 7: $out"
unset RIMG RSRC
unmount_dsfs "$M"
line=$(grep 'debug: chunk cache parts: ' "$T/mount.log") || fail "no chunk cache parts line in the log"
echo "$line"
parts=$(sed -n 's/.*parts: \([0-9]*\) loads of a part.*/\1/p' <<<"$line")
mib=$(sed -n 's/.*extended, \([0-9]*\) MiB decoded by parts.*/\1/p' <<<"$line")
# 400 random reads over 33 chunks, 4 cached: most load a part. A part is
# on average half a chunk (2 MiB), a whole one 4 MiB.
[ "${parts:-0}" -ge 200 ] || fail "only ${parts:-0} loads of a part"
[ "${mib:-999999}" -le $((parts * 3)) ] || fail "$mib MiB decoded by $parts loads of a part"

: >"$T/mount.log"
mount_dsfs "$T/store" "$M" -d -o cache_size=16M,verify=always
out=$(reads 7 200)
[ "$out" = "ok 200" ] || fail "verify=always: random reads: $out"
export RIMG=$M/vm/1/2025-01-01T00:00:00Z/big.img RSRC=$T/big.img
out=$(reads 8 200)
[ "$out" = "ok 200" ] || fail "verify=always: random reads of zstd chunks: $out"
unset RIMG RSRC
unmount_dsfs "$M"
line=$(grep 'debug: chunk cache: ' "$T/mount.log") || fail "no chunk cache line in the log"
echo "$line"
case $line in
*" chunk loads, 0 reads in place, 0 loads by identity") ;;
*) fail "verify=always trusted a chunk file: $line" ;;
esac
grep -q 'debug: chunk cache parts: 0 loads of a part' "$T/mount.log" ||
	fail "verify=always decoded by parts: $(grep 'chunk cache parts' "$T/mount.log")"
misses=$(sed -n 's/.* \([0-9]*\) misses,.*/\1/p' <<<"$line")
[ "${misses:-0}" -ge 200 ] || fail "verify=always: only ${misses:-0} loads"

: >"$T/mount.log"
mount_dsfs "$T/store" "$M" -d -o cache_size=256M
BIG=$M/vm/1/2025-01-01T00:00:00Z/big.img
cmp "$BIG" "$T/big.img" || fail "sequential read of big.img"
unmount_dsfs "$M"
line=$(grep 'debug: chunk cache: ' "$T/mount.log") || fail "no chunk cache line in the log"
echo "$line"
peak=$(sed -n 's/.*, peak \([0-9]*\) KiB;.*/\1/p' <<<"$line")
# The chunk being read, 4 ahead, 8 passed, buffers kept for reuse: about
# 18 chunks at most (72 MiB), where keeping all would hold 128 MiB.
[ "${peak:-999999}" -le $((80 << 10)) ] || fail "peak ${peak:-?} KiB for a 128 MiB sequential read"

mount_dsfs "$T/store" "$M" -o cache_size=16M
cmp "$BIG" "$T/big.img" & one=$!
cmp "$BIG" "$T/big.img" || fail "second of two readers at once"
wait $one || fail "first of two readers at once"
unmount_dsfs "$M"
