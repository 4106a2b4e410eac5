# Stress campaign for issue 7. ctest runs it (label "stress", 15 s, refusal
# lag 5 s) in the normal pass only. By hand, longer or under ThreadSanitizer:
#   DSFS=build/dsfs MOUNT_DSFS=build/mount.dsfs DSFS_FIXTURES=../shared/fixtures \
#   DSFS_STRESS_SECONDS=60 DSFS_STRESS_LAG=2 bash tests/stress/stress.sh
# (a TSan build: CC=clang cmake -DCMAKE_C_FLAGS=-fsanitize=thread; give it
# DSFS_STRESS_LAG=15 and TSAN_OPTIONS=log_path=/tmp/tsan/report).
# Stress (issue 7): 16 readers checking every archive kind against PBS-oracle
# hashes, 4 writers in their own groups, maintenance toggled every 200-500 ms
# between none, read-only and offline for DSFS_STRESS_SECONDS (default 20).
# Zero wrong bytes, only ENXIO/EROFS in matching windows; afterwards zero
# active operations, no fd leak, daemon alive, verify clean (but for the
# snapshots whose first write was refused: abandoned, as verify says).
# The test watchdog (testlib.bash) allows the run its length and 300 s.
DSFS_TEST_TIMEOUT=${DSFS_TEST_TIMEOUT:-$((${DSFS_STRESS_SECONDS:-20} + 300))}
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fixtures
need_fuse
NAME=dsfs-stress-$$
fixture_copy pbs-store-a "$T/store"
STORE=$(realpath "$T/store")
CFG=$T/datastore.cfg
OPS=/run/proxmox-backup/active-operations
cleanup_hooks+=("rm -f '$OPS/$NAME' '$OPS/$NAME.lock'")
printf 'datastore: %s\n\tpath %s\n' "$NAME" "$STORE" >"$CFG"
KEY=$(fixture_key)
M=$T/m
mount_dsfs "$NAME" "$M" -o "config=$CFG,keyfile=$KEY"
export DSFS STORE KEY CFG NAME M T FIX MOUNT_PID
python3 "$(dirname "$0")/stress.py" || fail "stress driver"
kill -0 "$MOUNT_PID" || fail "daemon died"
# no descriptor leak: what the daemon had open before the run, plus a few
# (the config watcher, open archives' readers) — fd_before from the driver
before=$(python3 -c "import json,sys; print(json.load(open('$T/stress.json'))['fd_before'])")
n=$(ls /proc/$MOUNT_PID/fd | wc -l)
echo "fds before: $before, after: $n"
[ "$n" -le $((before + 8)) ] || fail "descriptors leaked: $before before, $n after"
# Open pxar archives keep a reader (their decoder's) while the datastore
# serves; a refusing mode closes them, as PBS's unmount/maintenance tasks
# expect: with 'offline' set, the counts must fall to zero.
"$DSFS" maintenance --config "$CFG" "$NAME" offline >/dev/null
for _ in $(seq 50); do
	ops=$(python3 -c "import json,sys; e=[x for x in json.load(open('$OPS/$NAME')) if x['pid']==$MOUNT_PID]; o=e[0]['active_operations'] if e else {'read':0,'write':0}; print(o['read'],o['write'])")
	[ "$ops" = "0 0" ] && break; sleep 0.1
done
[ "$ops" = "0 0" ] || fail "active operations left: $ops"
"$DSFS" maintenance --config "$CFG" "$NAME" clear >/dev/null
# Verify: no damage. A snapshot whose first write was refused stays
# unfinished (made by mkdir, no manifest), and verify reports each such
# abandoned backup as PBS's does; those and only those may be reported.
verify_clean_but_abandoned "$STORE" "$STORE"/vm/*/2030-* -- --keyfile "$KEY"
unmount_dsfs "$M"
