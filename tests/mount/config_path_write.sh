# What this mount wrote into a snapshot of its store stays with that
# store's directory when the store's path changes in datastore.cfg: the
# snapshot at the same place in the new directory is another one. A file
# still open for writing in the old one is not listed in the new one, and
# neither it (its write session) nor a snapshot this mount made there gives
# a right to add archives to the new directory's snapshot, which someone
# else finished. The open file is committed into the old directory.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse

. "$(dirname "$0")/two_stores.bash"

OPEN=vm/900/2026-01-01T00:00:00Z # A: a file open across the change
MADE=vm/901/2026-02-01T00:00:00Z # A: made by mkdir, its file committed
# In B, both are finished snapshots of someone else.
printf 'b 900\n' >"$T/b900.conf"
printf 'b 901\n' >"$T/b901.conf"
"$DSFS" backup --time 2026-01-01T00:00:00Z "$B" vm/900 b.conf="$T/b900.conf" >/dev/null ||
	fail "backup of b's vm/900"
"$DSFS" backup --time 2026-02-01T00:00:00Z "$B" vm/901 b.conf="$T/b901.conf" >/dev/null ||
	fail "backup of b's vm/901"
b_before=$(cd "$B" && find "$OPEN" "$MADE" -type f -exec sha256sum {} + | sort)
head -c $((3 << 20)) /dev/urandom >"$T/first.img"
head -c $((1 << 20)) /dev/urandom >"$T/second.img"

set_path "$A"
M=$T/m
mount_dsfs "$NAME" "$M" -o "config=$CFG"
mkdir -p "$M/$OPEN" "$M/$MADE" || fail "mkdir in a"
exec 4>"$M/$OPEN/first.img"
head -c $((2 << 20)) "$T/first.img" >&4 || fail "first write in a"
printf 'made in a\n' >"$M/$MADE/a.conf" || fail "file in a's new snapshot"

set_path "$B"
wait_until "a's other snapshots gone after the path change" not_listed "$M/vm/101" \
	2024-03-04T08:02:17Z
cmp "$M/$OPEN/b.conf" "$T/b900.conf" || fail "$OPEN is not b's after the change"
not_listed "$M/$OPEN" first.img || fail "a's open file listed in b's snapshot"
test ! -e "$M/$OPEN/first.img" || fail "a's open file found in b's snapshot"
for f in "$OPEN/second.img" "$MADE/new.conf"; do
	if cp "$T/second.img" "$M/$f" 2>"$T/err"; then
		fail "$f: added to b's finished snapshot"
	fi
	grep -q "Read-only file system" "$T/err" || fail "$f: $(cat "$T/err"), not EROFS"
done
b_after=$(cd "$B" && find "$OPEN" "$MADE" -type f -exec sha256sum {} + | sort)
[ "$b_before" = "$b_after" ] || fail "b's snapshots changed: $b_after"

# The file open in a is finished there (its commit, in the release after
# the close, is over once the mount is).
tail -c +$(((2 << 20) + 1)) "$T/first.img" >&4 || fail "last write in a"
exec 4>&-
unmount_dsfs "$M"
"$DSFS" cat "$A" "$OPEN" first.img | cmp - "$T/first.img" || fail "a's archive is not the file"
test ! -e "$A/$OPEN/second.img.fidx" || fail "the copy into b's snapshot went into a's"
"$DSFS" verify "$A" "$OPEN" >/dev/null || fail "a's snapshot does not verify"
echo "config path write ok"
