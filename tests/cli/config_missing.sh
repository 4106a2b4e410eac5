# A datastore.cfg that does not exist configures no datastore, as PBS
# reads it (pbs-config's config(): file_read_optional_string, then an empty
# section config): a fresh PBS host has none until its first datastore.
# Every command that looks a name up says the name is not found (status 1,
# as for a name the file does not hold), naming the file that is missing;
# they used to fail with "cannot load: No such file or directory".
# `dsfs maintenance` makes no datastore.cfg, also when the directory is
# missing (no lock file to take there: the same message). A directory
# given as DATASTORE needs no config and still works.
. "$(dirname "$0")/../testlib.bash"
need_fixtures
fixture_copy pbs-store-a "$T/store"
echo "tiny" >"$T/f.conf"
snap=vm/101/2024-03-02T08:02:17Z
export DSFS_CONFIG_VERSIONS=$T/config-versions DSFS_ACTIVEOPS_DIR=$T/activeops

mkdir "$T/etc"
for cfg in "$T/etc/datastore.cfg" "$T/noetc/datastore.cfg"; do
	for cmd in "ls store-a" "cat store-a $snap qemu-server.conf" "verify store-a" \
		"status store-a" "maintenance store-a offline" "maintenance store-a clear" \
		"backup --time 2025-01-01T00:00:00Z store-a vm/1 f.conf=$T/f.conf"; do
		fails_once "$cmd --config $cfg" -xF \
			"dsfs: datastore 'store-a' not found: $cfg does not exist"
	done
	[ ! -e "$cfg" ] || fail "a command made $cfg"
done
[ ! -e "$T/noetc" ] || fail "a command made the config's directory"

# The same message as for a name the file does not hold, but for the file.
printf 'datastore: other\n\tpath %s\n' "$T/store" >"$T/etc/datastore.cfg"
expect_status 1 "$DSFS" ls store-a --config "$T/etc/datastore.cfg"
grep -qxF "dsfs: datastore 'store-a' not found in $T/etc/datastore.cfg" "$T/err" ||
	{ cat "$T/err"; fail "unknown name: message"; }
rm "$T/etc/datastore.cfg"

# A directory needs no config.
"$DSFS" ls "$T/store" vm/101 --config "$T/etc/datastore.cfg" >"$T/out" ||
	fail "ls of a directory with no config"
grep -q 2024-03-02T08:02:17Z "$T/out" || fail "ls of a directory: $(cat "$T/out")"
echo "missing datastore.cfg: no datastores, status 1 with the file named"
