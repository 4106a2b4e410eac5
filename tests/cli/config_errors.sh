# A datastore.cfg that does not parse is a failure (status 1) for every
# command that looks a datastore up in it, as dsfs(1) EXIT STATUS has it,
# never a usage error (2): the command line is right. The error names the
# file and line.
. "$(dirname "$0")/../testlib.bash"
need_fixtures
fixture_copy pbs-store-a "$T/store"
echo "tiny" >"$T/f.conf"
snap=vm/101/2024-03-02T08:02:17Z
export DSFS_CONFIG_VERSIONS=$T/config-versions DSFS_ACTIVEOPS_DIR=$T/activeops

# a good section, then one whose name PBS refuses (SAFE_ID of 3..32)
cfg=$T/datastore.cfg
printf 'datastore: store-a\n\tpath %s\n\ndatastore: n2\n\tpath /x\n' "$T/store" >"$cfg"
for cmd in "ls store-a" "cat store-a $snap qemu-server.conf" "verify store-a" \
	"verify store-a vm/101" "status store-a" "maintenance store-a offline" \
	"backup --time 2025-01-01T00:00:00Z store-a vm/1 f.conf=$T/f.conf"; do
	# The reason once: no "cannot load: Invalid argument" after it.
	fails_once "$cmd --config $cfg" "datastore.cfg:4: invalid datastore name 'n2'"
done
[ -d "$T/store/vm/1" ] && fail "backup wrote with a broken config"
grep -q maintenance "$cfg" && fail "maintenance changed a broken config"

# a file too large to be a datastore.cfg: said once too
big=$T/big.cfg
head -c $((16 * 1024 * 1024 + 1)) /dev/zero >"$big"
for cmd in "ls store-a" "maintenance store-a offline"; do
	fails_once "$cmd --config $big" "big.cfg: larger than"
done
echo "broken datastore.cfg: status 1 everywhere"
