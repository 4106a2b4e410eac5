# Damaged datastores through a real mount: hundreds of trials each damage one
# random chunk of a copy of the fixture store (bytes flipped, with and
# without a recomputed CRC, truncated, emptied, extended, swapped with
# another chunk, removed), mount it afresh and read every archive using the
# chunk: each range reads the right bytes or fails with EIO, and only where
# the damaged chunk is (never wrong bytes, never a silently short file, the
# daemon never crashes); the mount log names the chunk, and `dsfs verify`
# names it for every archive and position using it and nothing else. A
# full-size zero chunk of an image is the exception: its digest names its
# bytes, so the mount serves zeros without loading it, damaged or missing
# (checked first with the plain and the encrypted zero chunk removed). Then
# truncated indexes, damaged manifests and an encrypted chunk in a plain
# index: a clean errno, and verify reports each. See corruption.py.
# DSFS_CORRUPTION_TRIALS sets the number of chunk trials (default 300, about
# 40 s; 60 under ASan; a longer campaign: DSFS_CORRUPTION_TRIALS=5000),
# DSFS_CORRUPTION_SEED repeats a run (the seed is printed).
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse
fixture_copy pbs-store-a "$T/store"
key=$(fixture_key)
mkdir -p "$T/m"
cleanup_hooks+=("fusermount3 -u '$T/m' 2>/dev/null || fusermount3 -uz '$T/m' 2>/dev/null")
if [ -z "${DSFS_CORRUPTION_TRIALS:-}" ] && sanitized "$MOUNT_DSFS"; then
	export DSFS_CORRUPTION_TRIALS=60
fi
STORE=$T/store KEY=$key FIX=$FIX T=$T \
	python3 "$(dirname "$0")/corruption.py" || fail "corruption checks (mount log: $T/mount.log)"
echo "corruption ok"
