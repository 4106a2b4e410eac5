# Each archive name is written once per backup; a clash is refused
# before the snapshot starts, with a message naming it. A v1
# NAME.pxar=DIR backup writes the snapshot's catalog.pcat1.didx, so an
# explicit archive of that name in the same backup (catalog.pcat1=FILE or
# catalog.pcat1.didx=FILE) clashes too. It used to start the snapshot and
# then fail with "DIR: Invalid argument" (the file first) or
# "catalog.pcat1.didx: No such file or directory" (the tree first: both
# writers shared one file). With --split there is no catalog, and alone
# the file is an ordinary archive (a catalog copied from another snapshot).
. "$(dirname "$0")/../testlib.bash"
S=$T/store
"$DSFS" init "$S" >/dev/null
mkdir -p "$T/src"
printf 'data\n' >"$T/src/a"
head -c 3000 /dev/urandom >"$T/cat.pcat1"

n=0
for args in "catalog.pcat1=$T/cat.pcat1 root.pxar=$T/src" \
	"root.pxar=$T/src catalog.pcat1=$T/cat.pcat1" \
	"root.pxar=$T/src catalog.pcat1.didx=$T/cat.pcat1"; do
	n=$((n + 1))
	# shellcheck disable=SC2086
	expect_status 2 "$DSFS" backup "$S" host/x --time "2025-01-0${n}T00:00:00Z" $args
	grep -q "catalog.pcat1.didx is written for the NAME.pxar=DIR archives" "$T/err" ||
		{ cat "$T/err"; fail "clash not explained: $args"; }
	[ ! -e "$S/host/x/2025-01-0${n}T00:00:00Z" ] || fail "refused backup left a snapshot: $args"
done

# Two arguments writing one archive name: refused before the snapshot
# starts, naming both (was a bare "Invalid argument" after the first one
# was written).
head -c 100000 /dev/urandom >"$T/f"
n=0
for args in "root.pxar=$T/src root.pxar=$T/src|root.pxar.didx" \
	"x.conf=$T/f x.conf.blob=$T/f|x.conf.blob" \
	"disk.img=$T/f disk.img.fidx=$T/f|disk.img.fidx" \
	"--split root.pxar=$T/src root.mpxar.didx=$T/f|root.mpxar.didx" \
	"--split root.ppxar.didx=$T/f root.pxar=$T/src|root.ppxar.didx"; do
	n=$((n + 1))
	# shellcheck disable=SC2086
	expect_status 2 "$DSFS" backup "$S" host/y --time "2025-02-0${n}T00:00:00Z" ${args%|*}
	grep -q "both write ${args#*|}\$" "$T/err" || { cat "$T/err"; fail "clash not named: $args"; }
	[ ! -e "$S/host/y" ] || fail "refused backup left a group or snapshot: $args"
done

# --split: no catalog, the file is stored under that name.
expect_status 0 "$DSFS" backup "$S" host/x --time 2025-01-05T00:00:00Z --split \
	root.pxar="$T/src" catalog.pcat1="$T/cat.pcat1"
"$DSFS" cat "$S" host/x/2025-01-05T00:00:00Z catalog.pcat1 | cmp - "$T/cat.pcat1" ||
	fail "split: catalog.pcat1 not stored as given"
# The file alone, and a v1 tree alone (its catalog lists it).
expect_status 0 "$DSFS" backup "$S" host/x --time 2025-01-06T00:00:00Z catalog.pcat1="$T/cat.pcat1"
"$DSFS" cat "$S" host/x/2025-01-06T00:00:00Z catalog.pcat1 | cmp - "$T/cat.pcat1" ||
	fail "alone: catalog.pcat1 not stored as given"
expect_status 0 "$DSFS" backup "$S" host/x --time 2025-01-07T00:00:00Z root.pxar="$T/src"
"$DSFS" cat "$S" host/x/2025-01-07T00:00:00Z catalog.pcat1 >"$T/c7"
python3 - "$T/c7" <<'PY'
import sys
from pcat import entries
got = [e[:2] for e in entries(open(sys.argv[1], "rb").read())]
assert got == [(b"/root.pxar.didx", "d"), (b"/root.pxar.didx/a", "f")], got
PY
expect_status 0 "$DSFS" verify "$S"
echo "backup archive names ok"
