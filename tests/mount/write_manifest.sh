# index.json of a snapshot being written through the mount follows each
# commit: every archive's commit rewrites the manifest (the first one makes
# it), and the kernel kept index.json's size, or the "no such file" of an
# earlier lookup, for a second after it: a `cat index.json` right after a
# copy read the new manifest cut at the old size (invalid JSON), or did not
# find it.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
mount_new_snapshot
REL=vm/100/2026-01-01T00:00:00Z

# disk_has NAME: the manifest on disk lists NAME (the commit of NAME, which
# runs after close(2) has returned, is done).
disk_has() {
	"$DSFS" cat "$S" "$REL" index.json 2>/dev/null | grep -q "\"$1\""
}

[ -e "$SNAP/index.json" ] && fail "index.json before any commit"
for f in a b c d e; do
	# The mount's entry and size of index.json as of now, kept by the
	# kernel for a second unless the mount drops them.
	stat "$SNAP/index.json" >/dev/null 2>&1 || true
	printf '%s = %s\n' "$f" "$(seq -s, 1 20)" >"$SNAP/$f.conf" || fail "write $f.conf"
	wait_until "$f.conf committed" disk_has "$f.conf.blob"
	# The commit's release sends its invalidations right after the
	# manifest's rename; well within the kernel's second.
	sleep 0.2
	"$DSFS" cat "$S" "$REL" index.json >"$T/disk.json"
	cat "$SNAP/index.json" >"$T/mount.json" 2>"$T/err" ||
		fail "after $f.conf: index.json through the mount: $(cat "$T/err")"
	cmp -s "$T/disk.json" "$T/mount.json" ||
		fail "after $f.conf: index.json through the mount is $(wc -c <"$T/mount.json") bytes, on disk $(wc -c <"$T/disk.json")"
	python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$T/mount.json" ||
		fail "after $f.conf: index.json is not JSON"
done
unmount_dsfs "$M"
echo PASS
