# dsfs ls of a snapshot: its archives with size and crypt mode, and
# "(unfinished: no manifest)" only when there is no manifest. A damaged
# manifest makes no unfinished snapshot (ls of its group says "finished",
# as PBS decides by the manifest's presence): it is listed as a damaged
# index.json.blob and the reason goes to stderr. An archive the manifest
# lists but the snapshot lacks is listed as missing, with the manifest's size.
# One the manifest does not list is "unlisted", a blob as an index (but
# client.log.blob, which PBS never lists).
. "$(dirname "$0")/../testlib.bash"
need_fixtures
fixture_copy pbs-store-a "$T/store"
snap=vm/101/2024-03-02T08:02:17Z

expect_status 0 "$DSFS" ls "$T/store" "$snap"
grep -qx "drive-scsi0.img.fidx	fidx	23081529	none" "$T/out" || { cat "$T/out"; fail "archive line"; }
grep -q unfinished "$T/out" && fail "finished snapshot listed as unfinished"

# Unlisted: copies of listed archives under other names, plain and encrypted.
cp "$T/store/$snap/qemu-server.conf.blob" "$T/store/$snap/plain.conf.blob"
cp "$T/store/$snap/drive-scsi0.img.fidx" "$T/store/$snap/other.img.fidx"
enc=ns/prod/vm/201/2024-03-02T11:02:17Z
cp "$T/store/$enc/qemu-server.conf.blob" "$T/store/$enc/secret.conf.blob"
expect_status 0 "$DSFS" ls "$T/store" "$snap"
grep -qx "plain.conf.blob	blob	[0-9]*	unlisted" "$T/out" &&
	grep -qx "other.img.fidx	fidx	23081529	unlisted" "$T/out" &&
	grep -qx "qemu-server.conf.blob	blob	[0-9]*	none" "$T/out" &&
	! grep "client.log.blob" "$T/out" | grep -q unlisted ||
	{ cat "$T/out"; fail "unlisted archives of $snap"; }
expect_status 0 "$DSFS" ls "$T/store" "$enc"
grep -qx "secret.conf.blob	blob	[0-9]*	unlisted" "$T/out" &&
	grep -qx "qemu-server.conf.blob	blob	[0-9]*	encrypt" "$T/out" &&
	grep -qx "client.log.blob	blob	[0-9]*	encrypt" "$T/out" ||
	{ cat "$T/out"; fail "unlisted archives of $enc"; }

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
