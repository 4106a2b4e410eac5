# Edges of pxar archives as real tools see them through the mount, in v1
# and split archives: symlink targets longer than 255 bytes (readlink,
# cp -a).
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse

S=$T/src
mkdir -p "$S/dir"
for n in 1 255 256 1000 4095; do
	ln -s "$(head -c "$n" /dev/zero | tr '\0' t)" "$S/sym$n"
done
ln -s "dir/$(head -c 3000 /dev/zero | tr '\0' x)" "$S/dir/rel3000"
echo "plain file" >"$S/plain"

store=$T/store
"$DSFS" init "$store" >/dev/null
"$DSFS" backup "$store" host/e --time 2025-03-01T00:00:00Z root.pxar="$S" >/dev/null
"$DSFS" backup "$store" host/e --time 2025-03-02T00:00:00Z --split root.pxar="$S" >/dev/null

M=$T/m
mount_dsfs "$store" "$M"
for snap in 2025-03-01T00:00:00Z 2025-03-02T00:00:00Z; do
	A=$M/host/e/$snap/root.pxar
	for l in sym1 sym255 sym256 sym1000 sym4095 dir/rel3000; do
		want=$(readlink "$S/$l")
		got=$(readlink "$A/$l") || fail "readlink $l ($snap)"
		[ "$got" = "$want" ] || fail "readlink $l ($snap): ${#got} bytes, want ${#want}"
		[ "$(stat -c %s "$A/$l")" = "${#want}" ] || fail "st_size of $l ($snap)"
	done
	cp -a "$A" "$T/cp-$snap" || fail "cp -a out of $snap"
	diff -r --no-dereference "$S" "$T/cp-$snap" || fail "cp -a copy differs ($snap)"
done
unmount_dsfs "$M"
echo "pxar edges ok"
