# A datastore whose `path` is not absolute (and which is not removable, whose
# path is relative to its disk): PBS reads such a datastore.cfg, but refuses
# to open the store (ChunkStore::open: "expected absolute path"). Every dsfs
# command that uses it fails with status 1 and says why; they used to exit 1
# without a word. The file's other stores are unaffected.
. "$(dirname "$0")/../testlib.bash"
need_fixtures
fixture_copy pbs-store-a "$T/store"
echo "tiny" >"$T/f.conf"
snap=vm/101/2024-03-02T08:02:17Z
export DSFS_CONFIG_VERSIONS=$T/config-versions DSFS_ACTIVEOPS_DIR=$T/activeops
cfg=$T/datastore.cfg
# relative to / and to the working directory alike: neither may be used
rel=${T#/}/store
printf 'datastore: rel-store\n\tpath %s\n\ndatastore: good\n\tpath %s\n' "$rel" "$T/store" >"$cfg"
cd /
for cmd in "ls rel-store" "cat rel-store $snap qemu-server.conf" "verify rel-store" \
	"status rel-store" "backup --time 2025-01-01T00:00:00Z rel-store vm/1 f.conf=$T/f.conf"; do
	fails_once "$cmd --config $cfg" -xF \
		"dsfs: datastore 'rel-store': path '$rel' is not absolute (PBS refuses it too)"
done
[ -d "$T/store/vm/1" ] && fail "backup wrote through a relative path"
"$DSFS" ls good vm/101 --config "$cfg" >"$T/out" || fail "the other store"
grep -q 2024-03-02T08:02:17Z "$T/out" || fail "the other store: $(cat "$T/out")"
echo "relative path: refused with a reason, as by PBS"
