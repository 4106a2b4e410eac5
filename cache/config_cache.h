/* config_cache — datastore.cfg parsed once, re-parsed only when it changed.
 *
 * ds_config_cache_get is the hot path: it returns the current parsed config
 * without touching the file system (a reference-counted snapshot; no stat, no
 * read). Change detection runs in ds_config_cache_refresh, which a watcher
 * calls when inotify reports a change of the file (or its directory entry),
 * and which also checks PBS's ConfigVersionCache generation
 * (/run/proxmox-backup/shmem/config-versions, spec §6.6) when present.
 * Re-parsing happens only when the generation moved or the file's identity
 * (device, inode, size, mtime with nanoseconds) or content digest changed. A
 * bad edit keeps the last good config and logs the error with its line.
 * A file that does not exist is an empty config (no datastores), as PBS
 * reads it; one that appears later is picked up like any change, and one
 * removed counts as removing all its stores (confirmed as below).
 * A file being rewritten in place (modified and not yet closed by its
 * writer, up to 2 s after its last write) is not read until its writer is
 * done, and a read that raced a write is dropped: a part of the file can
 * parse as a config that lacks stores. For the same reason a config
 * without some stores of the current one is installed only once the file
 * has said so for a second.
 *
 * Not for: applying the config to datastores (the caller does that with
 * ds_datastore_configure on the snapshot it gets).
 * Thread-safety: all functions are thread-safe; _get is lock-free for
 * readers apart from one atomic reference count.
 */
#ifndef DSFS_CACHE_CONFIG_CACHE_H
#define DSFS_CACHE_CONFIG_CACHE_H

#include <stdbool.h>
#include <stdint.h>

struct ds_config;
struct ds_config_cache;

/* A parsed config pinned for reading. */
struct ds_config_snap {
	const struct ds_config *cfg;
	uint64_t version; /* increases by one on every successful re-parse */
	void *priv;
};

/* Loads path once (no file at path: an empty config). shm_path: the
 * ConfigVersionCache file, NULL for PBS's default; a missing file is fine
 * (no generation checks then).
 * Returns 0 or the parse/load -errno of the first load. */
int ds_config_cache_new(const char *path, const char *shm_path, struct ds_config_cache **ret);
void ds_config_cache_free(struct ds_config_cache *cc); /* accepts NULL */

/* The current config (no I/O). Release with ds_config_cache_put. */
void ds_config_cache_get(struct ds_config_cache *cc, struct ds_config_snap *ret);
void ds_config_cache_put(struct ds_config_cache *cc, struct ds_config_snap *snap);

/* Checks for a change and re-parses if needed. Returns 1 when a new config
 * was installed, 0 when nothing changed or a change is not taken yet (an
 * in-place write in progress, stores removed less than a second ago: a
 * later refresh installs it), -errno when the file is unreadable
 * or invalid (the last good config stays; the reason is logged once per
 * distinct failure, and an invalid file keeps returning its error, unlogged,
 * until it changes). */
int ds_config_cache_refresh(struct ds_config_cache *cc);

/* An inotify descriptor watching the config file's directory, for a poll
 * loop: when it is readable, drain it with ds_config_cache_drain_events and
 * call _refresh (also once a second: a change waiting to be confirmed is
 * taken by a later refresh, with no event). Borrowed; -1 if inotify is
 * unavailable. */
int ds_config_cache_fd(struct ds_config_cache *cc);
void ds_config_cache_drain_events(struct ds_config_cache *cc);

/* Number of parses so far (for tests and the benchmark). */
uint64_t ds_config_cache_parses(struct ds_config_cache *cc);

/* --- PBS's ConfigVersionCache (spec §6.6) --- */

#define DS_CONFIG_VERSIONS_PATH "/run/proxmox-backup/shmem/config-versions"

/* Reads the datastore generation (offset 24). -ENOENT when absent,
 * -EBADMSG wrong magic or size. */
int ds_config_generation_read(const char *shm_path, uint64_t *ret);
/* Atomically increments the datastore generation, creating the file as PBS
 * does (O_TMPFILE + linkat, 4096 bytes, magic; missing directories 0770,
 * file 0660, owned by the caller) if it does not exist and create is true.
 * PBS insists that directory is on tmpfs; this does not check. Returns 0,
 * -ENOENT (absent and !create), -EBADMSG (wrong magic or size) or -errno. */
int ds_config_generation_bump(const char *shm_path, bool create);

#endif
