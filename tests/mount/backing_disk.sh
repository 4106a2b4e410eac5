# A removable datastore (spec §6.7) on a real ext4 filesystem in a loop
# device, mounted the way PBS mounts it (the store's subdirectory bind-mounted
# at /mnt/datastore/<name>). While dsfs is mounted and idle the disk can be
# unmounted (no EBUSY from our descriptors); then reads give ENOMEDIUM within
# ~2 s; mounted again, reads work again, with no remount of dsfs.
. "$(dirname "$0")/../testlib.bash"
. "$(dirname "$0")/../mountlib.bash"
need_fuse
need_root_with losetup mkfs.ext4

NAME=dsfs-test-$$
# Fixed, but per run: test runs of several build trees may overlap.
UUID=5a1e0c2e-7d3f-4e3d-9c8b-$(printf '%012x' $$)
REL=pbs/store # the config's path: relative to the disk's root
MNT=/mnt/datastore/$NAME
LINK=/dev/disk/by-uuid/$UUID
OPS=/run/proxmox-backup/active-operations
M=$T/m
LOOP=
made_link=false
made_mntdir=false
[ -d /mnt/datastore ] || made_mntdir=true
[ ! -e "$LINK" ] && [ ! -L "$LINK" ] || fail "$LINK exists already (a stale run?)"
grep -q " $MNT " /proc/self/mountinfo && fail "$MNT is mounted already"

disk_cleanup() {
	if mountpoint -q "$M"; then fusermount3 -u "$M" 2>/dev/null || true; fi
	# our own mount daemon is gone now; anything else keeping the disk busy
	# is not ours, so detach lazily rather than leave a loop device behind
	while grep -q " $MNT " /proc/self/mountinfo; do umount "$MNT" 2>/dev/null || umount -l "$MNT"; done
	if mountpoint -q "$T/tmp"; then umount "$T/tmp" || umount -l "$T/tmp"; fi
	[ -z "$LOOP" ] || losetup -d "$LOOP"
	if $made_link; then rm -f "$LINK"; rmdir /dev/disk/by-uuid /dev/disk 2>/dev/null || true; fi
	rmdir "$MNT" 2>/dev/null || true
	if $made_mntdir; then rmdir /mnt/datastore 2>/dev/null || true; fi
	rm -f "$OPS/$NAME" "$OPS/$NAME.lock"
}
cleanup_hooks+=(disk_cleanup)
remove_after_unmount "$OPS/$NAME" "$OPS/$NAME.lock"

# 64 MiB of ext4 with a fixed UUID. `dsfs init` makes 65536 directories:
# inline_data keeps empty ones inside their inodes, so they fit.
truncate -s 64M "$T/disk.img"
mkfs.ext4 -q -F -O inline_data -N 70000 -U "$UUID" "$T/disk.img"
LOOP=$(losetup -f --show "$T/disk.img")
mkdir -p "$T/tmp"
mount "$LOOP" "$T/tmp"
mkdir -p "$T/tmp/$REL"
"$DSFS" init "$T/tmp/$REL" >/dev/null
head -c 5000000 /dev/urandom >"$T/img.want"
"$DSFS" backup --time 2024-05-01T10:00:00Z "$T/tmp/$REL" vm/900 disk.img="$T/img.want" >/dev/null
umount "$T/tmp"
IMG=$M/vm/900/2024-05-01T10:00:00Z/disk.img

# udev may not run here: the by-uuid link PBS's mount check stats is made by
# hand when udev did not make it.
if command -v udevadm >/dev/null; then udevadm settle -t 5 2>/dev/null || true; fi
if [ ! -e "$LINK" ]; then
	# another run's cleanup may remove the directory under us: retry
	for _ in 1 2 3; do
		mkdir -p /dev/disk/by-uuid
		ln -s "../../${LOOP#/dev/}" "$LINK" 2>/dev/null && break
	done
	made_link=true
fi
[ -b "$LINK" ] || fail "$LINK is not a block device"

# What PBS's mount-device task does: mount the disk at a temporary place,
# bind its datastore directory at /mnt/datastore/<name>, drop the temporary.
attach() {
	mount "$LOOP" "$T/tmp"
	mkdir -p "$MNT"
	mount --bind "$T/tmp/$REL" "$MNT"
	umount "$T/tmp"
}
attach

printf 'datastore: %s\n\tbacking-device %s\n\tcomment dsfs removable test\n\tpath %s\n' \
	"$NAME" "$UUID" "$REL" >"$T/datastore.cfg"
"$DSFS" status --config "$T/datastore.cfg" "$NAME" >"$T/status" || fail "dsfs status"
grep -qx "mounted: yes" "$T/status" || fail "dsfs status: $(cat "$T/status")"

cat >"$T/check.py" <<'PY'
# check.py DEADLINE [WANT KIND PATH]...: polls until every check gives WANT
# (OK or an errno name) or fails after DEADLINE seconds, printing what it saw.
import errno, os, sys, time
deadline = time.monotonic() + float(sys.argv[1])
checks = [sys.argv[i:i + 3] for i in range(2, len(sys.argv), 3)]
def run(kind, p):
    try:
        if kind == "ls":
            os.listdir(p)
        elif kind == "stat":
            os.stat(p)
        elif kind == "read":
            with open(p, "rb") as f:
                f.read()
        return "OK"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
while True:
    got = [run(kind, p) for _, kind, p in checks]
    if all(g == c[0] for g, c in zip(got, checks)):
        sys.exit(0)
    if time.monotonic() > deadline:
        for g, (want, kind, p) in zip(got, checks):
            print(f"  {kind} {p}: got {g}, want {want}", file=sys.stderr)
        sys.exit(1)
    time.sleep(0.05)
PY
expect_state() {
	local what=$1
	shift
	python3 "$T/check.py" 2.5 "$@" || fail "$what: not reached within 2.5 s"
}

mount_dsfs "$NAME" "$M" -o "config=$T/datastore.cfg"
pid=$MOUNT_PID
expect_state "mounted" OK ls "$M" OK ls "$M/vm/900" OK read "$IMG"
cmp "$IMG" "$T/img.want" || fail "image read through the mount differs"

for round in 1 2; do
	# Idle (the file was read and closed): the disk unmounts without EBUSY.
	# FUSE's release is asynchronous, so give it a moment.
	ok=false
	for _ in $(seq 20); do
		if umount "$MNT" 2>"$T/umount.err"; then ok=true; break; fi
		sleep 0.1
	done
	$ok || { ls -l /proc/"$pid"/fd >&2; fail "round $round: umount $MNT: $(cat "$T/umount.err")"; }
	expect_state "round $round: unmounted" ENOMEDIUM ls "$M" OK stat "$M" \
		ENOMEDIUM stat "$M/vm" ENOMEDIUM read "$IMG"
	out=$(ls "$M" 2>&1) && fail "round $round: ls of an unmounted store succeeded"
	case $out in *"No medium found"*) ;; *) fail "round $round: want ENOMEDIUM, got: $out" ;; esac
	grep -q "backing device $UUID not mounted" "$T/mount.log" || fail "round $round: refusal not logged"
	attach
	expect_state "round $round: mounted again" OK ls "$M" OK ls "$M/vm/900" OK read "$IMG"
	cmp "$IMG" "$T/img.want" || fail "round $round: image differs after re-attach"
	[ "$MOUNT_PID" = "$pid" ] && kill -0 "$pid" || fail "round $round: dsfs was restarted"
done

# While a file is open the disk stays busy (the reader holds the store);
# once it is closed the disk unmounts.
exec 7<"$IMG"
head -c 1 <&7 >/dev/null
if umount "$MNT" 2>/dev/null; then
	attach
	fail "disk unmounted under an open file"
fi
exec 7<&-
ok=false
for _ in $(seq 20); do
	if umount "$MNT" 2>/dev/null; then ok=true; break; fi
	sleep 0.1
done
$ok || fail "disk still busy after the file was closed"
expect_state "after close" ENOMEDIUM ls "$M"
unmount_dsfs "$M"
echo "removable datastore through the mount ok"
