# An explicit --owner is checked against an existing group's owner, as
# PBS's backup API checks the session's auth id (check_backup_owner):
# the same auth id, or the user of the token owning the group. Without
# --owner a backup goes into any group (the group keeps its owner).
. "$(dirname "$0")/../testlib.bash"
S=$T/store
bare_store "$S"
printf 'x\n' >"$T/x.conf"
n=0
backup() { # GROUP [--owner AUTHID]
	local g=$1
	shift
	n=$((n + 1))
	"$DSFS" backup "$@" --time "$(printf '2026-01-01T00:00:%02dZ' $n)" "$S" "$g" x.conf="$T/x.conf"
}
owner_of() { cat "$S/$1/owner"; }

backup vm/1 --owner alice@pbs >/dev/null || fail "a new group with --owner"
[ "$(owner_of vm/1)" = alice@pbs ] || fail "owner is $(owner_of vm/1)"
backup vm/1 --owner alice@pbs >/dev/null || fail "its owner backs up again"
snaps=$(ls "$S/vm/1" | grep -c T)
expect_status 1 backup vm/1 --owner bob@pbs
grep -q "backup owner check failed (bob@pbs != alice@pbs)" "$T/err" ||
	fail "no reason given: $(cat "$T/err")"
[ "$(ls "$S/vm/1" | grep -c T)" = "$snaps" ] || fail "the refused backup left a snapshot"
[ "$(owner_of vm/1)" = alice@pbs ] || fail "the refused backup changed the owner"
# A token is not its user, and another user's token is not the user.
expect_status 1 backup vm/1 --owner 'alice@pbs!t1'
expect_status 1 backup vm/1 --owner alice@pam
# Without --owner the group keeps its owner.
backup vm/1 >/dev/null || fail "a backup without --owner"
[ "$(owner_of vm/1)" = alice@pbs ] || fail "a backup without --owner changed the owner"

# A group owned by a token takes its user and that token, not another token.
backup ct/2 --owner 'carol@pbs!job' >/dev/null || fail "a group owned by a token"
backup ct/2 --owner carol@pbs >/dev/null || fail "the token's user is refused"
backup ct/2 --owner 'carol@pbs!job' >/dev/null || fail "the token is refused"
expect_status 1 backup ct/2 --owner 'carol@pbs!other'
expect_status 1 backup ct/2 --owner carol@pb

# A group whose owner cannot be read (a symlink, never followed) is
# refused, as PBS's get_owner fails there; without --owner nothing is checked.
mkdir -p "$S/host/h"
echo root@pam >"$T/owner"
ln -s "$T/owner" "$S/host/h/owner"
expect_status 1 backup host/h --owner root@pam
grep -q "cannot read its owner" "$T/err" || fail "no reason given: $(cat "$T/err")"
[ -z "$(ls "$S/host/h" | grep T)" ] || fail "the refused backup left a snapshot"
echo "backup owner check ok"
