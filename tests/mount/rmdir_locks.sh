# rmdir of a snapshot takes PBS's locks in PBS's order (BackupDir::destroy):
# the snapshot's, then the manifest's, and only then looks at .protected,
# which is changed under the snapshot's lock too.
# A notes update under way (PBS holds the manifest lock for it) is waited
# for, up to the lock's 5 s; one that goes on longer leaves the snapshot as
# it was, with EBUSY. The snapshot used to be removed under the update's
# feet, whatever held the manifest lock.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
mount_finished_snapshot
REL=vm/100/2026-01-01T00:00:00Z
ML="$DSFS_LOCK_DIR/$(basename "$S")/vm-100-2026\\x2d01\\x2d01T00\\x3a00\\x3a00Z-.index.json.lck"

# held past the lock's 5 s: EBUSY, the snapshot untouched
hold_lock -x "$ML" 11
t0=$SECONDS
expect_errno EBUSY rmdir "$SNAP"
[ $((SECONDS - t0)) -ge 4 ] || fail "rmdir gave up after $((SECONDS - t0)) s, not the manifest lock's 5 s"
[ -e "$S/$REL/index.json.blob" ] && [ -e "$S/$REL/f.txt.blob" ] ||
	fail "snapshot touched: $(ls -A "$S/$REL")"
wait "$holder"

# held 3 s: rmdir waits for it, then removes the snapshot
hold_lock -x "$ML" 3
start=$(date +%s%N)
rmdir "$SNAP" || fail "rmdir after the manifest lock's release"
took=$((($(date +%s%N) - start) / 1000000))
[ "$took" -ge 1000 ] || fail "rmdir took $took ms: it did not wait for the manifest lock"
wait "$holder" || true
[ ! -e "$S/$REL" ] || fail "snapshot still there: $(ls -A "$S/$REL")"

# protected: EPERM, looked at with both locks held
mkdir "$SNAP"
echo data >"$SNAP/f.txt"
wait_until "commit" test -e "$S/$REL/index.json.blob"
# Protection changes under the snapshot's exclusive lock, as PBS's
# update_protection: refused while a reader (here PBS's) holds it.
SL="$DSFS_LOCK_DIR/$(basename "$S")/vm-100-2026\\x2d01\\x2d01T00\\x3a00\\x3a00Z"
hold_lock -s "$SL" 3
! touch "$SNAP/.protected" 2>"$T/err" || fail "protected while a reader holds the snapshot"
grep -q "busy" "$T/err" || fail "touch .protected: $(cat "$T/err")"
[ ! -e "$S/$REL/.protected" ] || fail ".protected made while a reader holds the snapshot"
wait "$holder"
: >"$SNAP/.protected"
[ -e "$S/$REL/.protected" ] || fail ".protected not made"
expect_errno EPERM rmdir "$SNAP"
rm "$SNAP/.protected"
rmdir "$SNAP" || fail "rmdir after unprotecting"
unmount_dsfs "$M"
echo "rmdir_locks: ok"
