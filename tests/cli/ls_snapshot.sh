# dsfs ls of a snapshot: its archives with size and crypt mode, and
# "(unfinished: no manifest)" only when there is no manifest. A damaged
# manifest makes no unfinished snapshot (ls of its group says "finished",
# as PBS decides by the manifest's presence): it is listed as a damaged
# index.json.blob and the reason goes to stderr. An archive the manifest
# lists but the snapshot lacks is listed as missing, with the manifest's size.
. "$(dirname "$0")/../testlib.bash"
need_fixtures
fixture_copy pbs-store-a "$T/store"
snap=vm/101/2024-03-02T08:02:17Z

expect_status 0 "$DSFS" ls "$T/store" "$snap"
grep -qx "drive-scsi0.img.fidx	fidx	23081529	none" "$T/out" || { cat "$T/out"; fail "archive line"; }
grep -q unfinished "$T/out" && fail "finished snapshot listed as unfinished"

printf 'XXXX' | dd of="$T/store/$snap/index.json.blob" bs=1 seek=20 conv=notrunc status=none
expect_status 0 "$DSFS" ls "$T/store" vm/101
grep -qx "$snap	snapshot	finished" "$T/out" || { cat "$T/out"; fail "group listing"; }
expect_status 0 "$DSFS" ls "$T/store" "$snap"
grep -qx "index.json.blob	blob	?	damaged" "$T/out" || { cat "$T/out"; fail "damaged manifest not shown"; }
grep -q "manifest unreadable" "$T/err" || fail "no reason on stderr"
grep -q unfinished "$T/out" && { cat "$T/out"; fail "damaged manifest listed as unfinished"; }

snap=vm/101/2024-03-03T08:02:17Z
rm "$T/store/$snap/drive-efidisk0.img.fidx" "$T/store/$snap/qemu-server.conf.blob"
expect_status 0 "$DSFS" ls "$T/store" "$snap"
grep -qx "drive-efidisk0.img.fidx	fidx	540672	missing" "$T/out" &&
	grep -qx "qemu-server.conf.blob	blob	[0-9]*	missing" "$T/out" &&
	grep -qx "drive-scsi0.img.fidx	fidx	23081529	none" "$T/out" ||
	{ cat "$T/out"; fail "missing archives not listed"; }
[ "$(grep -c missing "$T/out")" = 2 ] || { cat "$T/out"; fail "more listed missing"; }
rm "$T/store/$snap/index.json.blob"
expect_status 0 "$DSFS" ls "$T/store" "$snap"
grep -qx "(unfinished: no manifest)" "$T/out" || { cat "$T/out"; fail "unfinished snapshot"; }
echo "ls of snapshots ok"
