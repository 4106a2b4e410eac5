# .chunks may be a link (an admin's, to another disk), followed only if
# root made it. The datastore directory belongs to PBS's backup user, and
# dsfs, run as root, makes chunk prefix directories and chunk files in
# .chunks and gives them to that user: a link of the backup user's had root
# make them wherever it pointed (any directory of root's).
. "$(dirname "$0")/../testlib.bash"
need_root_with python3
need_backup_user
S=$T/store
"$DSFS" init "$S" >/dev/null
head -c 300000 /dev/urandom >"$T/disk.img"

# Root's link to the chunks on "another disk": followed.
mkdir "$T/disk2"
mv "$S/.chunks" "$T/disk2/chunks"
ln -s "$T/disk2/chunks" "$S/.chunks"
"$DSFS" backup --time 2026-01-01T00:00:00Z "$S" vm/1 disk.img="$T/disk.img" >/dev/null ||
	fail "backup through root's link"
"$DSFS" cat "$S" vm/1/2026-01-01T00:00:00Z disk.img >"$T/back.img" || fail "cat through root's link"
cmp -s "$T/disk.img" "$T/back.img" || fail "cat through root's link: other bytes"
[ -n "$(find "$T/disk2/chunks" -type f -print -quit)" ] || fail "no chunk on the other disk"

# The backup user's link to a directory of root's: not followed, nothing
# made there.
mkdir -m 0700 "$T/roots"
rm "$S/.chunks"
ln -s "$T/roots" "$S/.chunks"
chown -h backup:backup "$S/.chunks"
head -c 300000 /dev/urandom >"$T/disk2.img"
expect_status 1 "$DSFS" backup --time 2026-01-02T00:00:00Z "$S" vm/1 disk.img="$T/disk2.img"
grep -q "\.chunks: a link that root did not make" "$T/err" || fail "no reason given: $(cat "$T/err")"
[ -z "$(ls -A "$T/roots")" ] || fail "made in root's directory: $(ls -A "$T/roots" | head -3)"
expect_status 1 "$DSFS" cat "$S" vm/1/2026-01-01T00:00:00Z disk.img
echo "chunks_link: ok"
