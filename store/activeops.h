/* activeops — PBS's active-operations file (spec §6.5).
 *
 * `<dir>/<store>` holds a compact JSON array with one element per process:
 * {"pid":N,"starttime":T,"active_operations":{"read":R,"write":W}}; it is
 * updated under an exclusive flock on `<dir>/<store>.lock` (10 s timeout) and
 * replaced atomically. Entries of dead processes are dropped on every update.
 * PBS's unmount and maintenance tasks wait for these totals to reach zero, so
 * registering here makes dsfs's readers and writers visible to PBS.
 *
 * Not for: deciding whether an operation is allowed (datastore.h does that).
 * Thread-safety: calls for one store must be serialised by the caller (the
 * datastore lock does); the flock serialises against other processes.
 */
#ifndef DSFS_STORE_ACTIVEOPS_H
#define DSFS_STORE_ACTIVEOPS_H

#include <stddef.h>
#include <stdint.h>

#define DS_ACTIVEOPS_DIR "/run/proxmox-backup/active-operations"

enum ds_operation {
	DS_OP_LOOKUP = 0,
	DS_OP_READ = 1,
	DS_OP_WRITE = 2,
};

/* Adds delta to this process's counter for op (lookup changes nothing but
 * creates the entry), creating dir if needed. Run as root, what it creates
 * or replaces is backup:backup (files 0660, directories 0770), as PBS's proxy
 * needs. Returns 0 or -errno (-ETIMEDOUT when the lock is not granted
 * within 10 s). */
int ds_activeops_update(const char *dir, const char *store, enum ds_operation op, int delta);

/* Sets this process's counters to read and write, creating the entry with
 * them (none is created for 0 and 0). Returns as ds_activeops_update. */
int ds_activeops_set(const char *dir, const char *store, int64_t read, int64_t write);

/* Sums the live entries (pid running and starttime matching).
 * A missing file is all zeros. Returns 0 or -errno / -EBADMSG. */
int ds_activeops_get(const char *dir, const char *store, int64_t *ret_read, int64_t *ret_write);

/* Parses the file content, keeping only entries for which alive(pid,
 * starttime) is true; sums the counts (for tests and fuzzing). */
int ds_activeops_parse(const char *json, size_t len, int64_t *ret_read, int64_t *ret_write);

/* Field 22 of /proc/<pid>/stat (start time in clock ticks), or -errno. */
int64_t ds_process_starttime(int pid);

#endif
