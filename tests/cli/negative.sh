# Bad input gives the documented exit status and a message, never a crash or
# wrong bytes: usage errors (2), refused names (2), missing or damaged data (1/3).
. "$(dirname "$0")/../testlib.bash"
need_fixtures
store=$FIX/pbs-store-a
expect_status 2 "$DSFS"
expect_status 2 "$DSFS" frobnicate
expect_status 0 "$DSFS" --help
expect_status 0 "$DSFS" --version
grep -q '^dsfs [0-9]' "$T/out" || fail "--version"
expect_status 2 "$DSFS" cat "$store" vm/101/not-a-time drive-scsi0.img
expect_status 2 "$DSFS" cat "$store" ../../etc/2024-03-02T08:02:17Z passwd.blob
expect_status 2 "$DSFS" cat "$store" vm/101/2024-03-02T08:02:17Z ../../../owner
expect_status 2 "$DSFS" cat "$store" vm/101/2024-03-02T08:02:17Z "a/b.blob"
expect_status 2 "$DSFS" ls "$store" vm/../../x
expect_status 2 "$DSFS" backup "$T" "vm/1/../x" a.conf=/etc/hostname
expect_status 2 "$DSFS" backup --ns "a/../b" "$T" vm/1 a.conf=/etc/hostname
expect_status 2 "$DSFS" backup --ns a/b/c/d/e/f/g/h "$T" vm/1 a.conf=/etc/hostname
expect_status 1 "$DSFS" cat "$store" vm/101/2024-03-02T08:02:17Z nothere.img
expect_status 1 "$DSFS" ls /nonexistent-store-dir
expect_status 1 "$DSFS" ls no-such-store --config "$FIX/pbs-store-a.datastore.cfg"

# A datastore.cfg with an error names the file and line.
printf 'datastore: good\n\tpath /x\n\ndatastore: bad\n\tpath /y\n\tfrobs 1\n' >"$T/ds.cfg"
expect_status 1 "$DSFS" ls good --config "$T/ds.cfg"
grep -q "ds.cfg:6" "$T/err" || { cat "$T/err"; fail "line number not reported"; }

# A configured store by name, with its path substituted.
sed "s|path .*|path $store|" "$FIX/pbs-store-a.datastore.cfg" >"$T/a.cfg"
expect_status 0 "$DSFS" ls store-a --config "$T/a.cfg" vm/101
[ "$(grep -c snapshot "$T/out")" = 3 ] || fail "ls by name"
printf '\tmaintenance-mode offline\n' >>"$T/a.cfg"
expect_status 1 "$DSFS" cat store-a --config "$T/a.cfg" vm/101/2024-03-02T08:02:17Z qemu-server.conf
grep -q "offline" "$T/err" || fail "offline refusal not explained"

# Damaged copies: truncated blob and index, wrong magic, CRC, missing chunk.
fixture_copy pbs-store-a-corrupt "$T/s"
snap=$T/s/vm/101/2024-03-04T08:02:17Z
truncate -s 10 "$snap/qemu-server.conf.blob"
expect_status 1 "$DSFS" cat "$T/s" vm/101/2024-03-04T08:02:17Z qemu-server.conf
[ -s "$T/out" ] && fail "bytes written for a truncated blob"
truncate -s 5000 "$snap/drive-efidisk0.img.fidx"
expect_status 1 "$DSFS" cat "$T/s" vm/101/2024-03-04T08:02:17Z drive-efidisk0.img
snap=$T/s/vm/101/2024-03-03T08:02:17Z
printf 'XXXXXXXX' | dd of="$snap/qemu-server.conf.blob" conv=notrunc status=none
expect_status 1 "$DSFS" cat "$T/s" vm/101/2024-03-03T08:02:17Z qemu-server.conf
# A blob the manifest does not list (PBS never lists client.log.blob):
# damaged (its CRC), it fails with a message naming it, not in silence.
printf 'XXXX' | dd of="$snap/client.log.blob" bs=1 seek=20 conv=notrunc status=none
expect_status 1 "$DSFS" cat "$T/s" vm/101/2024-03-03T08:02:17Z client.log
[ -s "$T/out" ] && fail "bytes written for a damaged client.log.blob"
grep -q "client.log.blob: damaged" "$T/err" || fail "damaged client.log.blob: message '$(cat "$T/err")'"
truncate -s 5 "$snap/client.log.blob"
expect_status 1 "$DSFS" cat "$T/s" vm/101/2024-03-03T08:02:17Z client.log
grep -q "client.log.blob: damaged" "$T/err" || fail "truncated client.log.blob: message '$(cat "$T/err")'"
# the corrupt chunk: a read of the image fails, nothing wrong is written
bad=d3d62b1f9bbfbacbf229b89beddd9cdb10d59536f4ead7d4bd13a0cd71c07269
expect_status 1 "$DSFS" cat "$T/s" vm/101/2024-03-02T08:02:17Z drive-scsi0.img
[ -s "$T/out" ] && fail "bytes written before the corrupt first chunk"
grep -q "$bad" "$T/err" || fail "corrupt chunk not named"
grep -q "drive-scsi0.img.fidx: bytes 0\.\.[0-9]* unreadable" "$T/err" || fail "no byte range: $(cat "$T/err")"
# a missing chunk: named once, with its byte range (not again as a whole)
rm "$T/s/.chunks/${bad:0:4}/$bad"
expect_status 1 "$DSFS" cat "$T/s" vm/101/2024-03-02T08:02:17Z drive-scsi0.img
grep -q "drive-scsi0.img.fidx: bytes 0\.\.[0-9]* unreadable: No such file" "$T/err" ||
	fail "no byte range: $(cat "$T/err")"
[ "$(grep -c "drive-scsi0.img" "$T/err")" = 1 ] || fail "reported more than once: $(cat "$T/err")"
echo "negative tests ok"
