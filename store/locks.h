/* locks — PBS's group, snapshot and manifest locks (spec §1.7.2), so that
 * dsfs and a PBS on the same host keep out of each other's way.
 *
 * Both schemes are taken, because which one a running PBS uses depends on
 * its version and on /run/proxmox-backup/old-locking:
 *   - the new scheme (PBS >= 3.3.5): flock on a file under
 *     <lockdir>/<store>/<ns a:b>/<systemd-escaped path>, mode 0660, owned by
 *     user backup when it exists; skipped when old-locking exists;
 *   - the old scheme: flock on the group or snapshot directory itself.
 * The manifest lock is a file only (new scheme path, or the old scheme's
 * "<ns>/<type>/<id>/<time>/<time>.index.json.lck" when old-locking exists).
 * <lockdir> is /run/proxmox-backup/locks ($DSFS_LOCK_DIR overrides it, for
 * tests).
 *
 * flock locks belong to open file descriptions: two locks of one process on
 * the same object conflict like locks of two processes would.
 *
 * Not for: the chunk store's .lock record lock (chunkstore.h).
 * Thread-safety: all functions are thread-safe; a struct ds_lock belongs to
 * its caller.
 */
#ifndef DSFS_STORE_LOCKS_H
#define DSFS_STORE_LOCKS_H

#include <stdbool.h>
#include <stddef.h>

struct ds_lock;

/* Locks snapshot snaprel (as from ds_snapshot_relpath) of datastore store
 * whose base directory is basefd: exclusive (writers, forget) or shared
 * (readers). Never waits. Errors: -EBUSY someone holds a conflicting lock,
 * -ENOENT no such snapshot, -EINVAL bad path, -errno. */
int ds_lock_snapshot(int basefd, const char *store, const char *snaprel, bool exclusive,
		     struct ds_lock **ret);
/* The old scheme alone: flock on the snapshot directory, for a reader that
 * cannot make the lock file of ds_lock_snapshot (no write access to the
 * lock directory). dsfs's writers and an old-locking PBS still show up;
 * a PBS on the new scheme does not. Errors as ds_lock_snapshot. */
int ds_lock_snapshot_dir(int basefd, const char *snaprel, bool exclusive, struct ds_lock **ret);
/* Locks group grouprel exclusively (backups into the group, its removal).
 * Errors as ds_lock_snapshot. */
int ds_lock_group(int basefd, const char *store, const char *grouprel, struct ds_lock **ret);
/* Locks the manifest of snaprel for a read-modify-write, waiting up to 5 s
 * (-EBUSY after that), as PBS does. */
int ds_lock_manifest(const char *store, const char *snaprel, struct ds_lock **ret);
/* Unlocks and frees; accepts NULL. */
void ds_lock_release(struct ds_lock *l);

/* The new scheme's lock file name of rel (a path without namespace, such
 * as "vm/100"), systemd-path-escaped, or its "hashed/…" form when too long.
 * Returns 0 or -ENAMETOOLONG. Exposed for tests. */
int ds_lock_escape(const char *rel, char *out, size_t outlen);

#endif
