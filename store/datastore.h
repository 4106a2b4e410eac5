/* datastore — one datastore and its typed access handles (DESIGN.md,
 * spec §6.1–§6.5, §6.7).
 *
 * Every access goes through a handle of one of three C types:
 *   struct ds_lookup — names, stat, manifests, index headers; holds no
 *                      descriptor on the datastore between calls;
 *   struct ds_reader — a lookup that may also read chunk data;
 *   struct ds_writer — a reader that may also insert chunks and write
 *                      indexes, blobs and manifests.
 * Reading chunk data takes a `const struct ds_reader *`; inserting takes a
 * `const struct ds_writer *`. There is no conversion from lookup to reader,
 * so passing a lookup handle to a read function does not compile
 * (tests/compile-fail proves it). Conversions go only downwards: writer →
 * reader → lookup.
 *
 * Acquisition applies the refusals of DESIGN.md from the datastore's current
 * state (maintenance mode from datastore.cfg, backing-device mount status):
 *   lookup: -ENOENT under "delete"; otherwise granted. A lookup granted while
 *           the store is offline/unmount/unmounted answers from the config
 *           only: ds_lookup_check_io() then returns the read errno, and every
 *           hierarchy function refuses with it before touching the disk.
 *   reader: -ENOENT delete, -ENXIO offline and s3-refresh, -EBUSY unmount,
 *           -ENOMEDIUM removable store whose disk is not mounted.
 *   writer: as reader, plus -EROFS read-only (maintenance or ds_datastore's
 *           read_only flag); -EBUSY when GC holds the chunk store lock.
 * Handles already granted keep working until released. When the last reader
 * or writer is released while the store is in a refusing state, the chunk
 * store's descriptors are closed, so the backing disk can be unmounted; a
 * removable store (backing device) is closed whenever its last one goes.
 *
 * Thread-safety: a struct ds_datastore may be used from any number of
 * threads; acquire/release and _configure are serialised by its lock.
 * Handles may be used from any thread, and concurrently for reads.
 */
#ifndef DSFS_STORE_DATASTORE_H
#define DSFS_STORE_DATASTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/config.h"
#include "store/util.h"

struct ds_blob_part;
struct ds_crypt;
struct ds_datastore;
struct ds_lookup;
struct ds_reader;
struct ds_writer;

/* A datastore named name (used for logs and the active-operations file) at
 * base. No I/O happens here. Returns 0, -EINVAL or -ENOMEM. */
int ds_datastore_new(const char *name, const char *base, struct ds_datastore **ret);
/* Frees; every handle must have been released. Accepts NULL. */
void ds_datastore_free(struct ds_datastore *ds);

/* What ds_datastore_configure changed (a bit mask; 0: nothing). */
enum {
	DS_CONFIGURE_ACCESS = 1, /* the refusal state */
	DS_CONFIGURE_PATH = 2,   /* the directory: the store there is another one */
};
/* Applies a (re-)read config section: maintenance mode and message, the
 * backing device (NULL: not removable), sync level, and the directory when
 * cfg names a path (ds_datastore_cfg_base). cfg may be NULL (a store given
 * by directory: no maintenance). If the store enters a refusing state and
 * no handle is open, its descriptors are closed at once. A new directory is
 * used by the handles acquired from then on; handles already held go on
 * with the old one (and its chunk store, closed when the last goes).
 * A path that cannot be used (not absolute: ds_datastore_cfg_base fails)
 * refuses new readers and writers with that errno (-EINVAL), after the
 * maintenance mode's refusals, until a section names a usable one; lookups
 * are granted from the config only (ds_lookup_check_io). Logged once.
 * Returns DS_CONFIGURE_* bits (callers invalidate caches when not 0). */
unsigned ds_datastore_configure(struct ds_datastore *ds, const struct ds_datastore_cfg *cfg);
/* Re-checks whether a removable store's backing device is mounted (the
 * result is cached: acquisition never parses mountinfo). Call when
 * /proc/self/mountinfo changes. Returns true when the state changed. */
bool ds_datastore_refresh_mount(struct ds_datastore *ds);
/* Refuse writers with -EROFS regardless of maintenance (mount -o ro). */
void ds_datastore_set_read_only(struct ds_datastore *ds, bool ro);
/* Record handles in /run/proxmox-backup/active-operations/<name> as PBS does
 * (spec §6.5). Off by default; dir overrides the directory (tests). */
void ds_datastore_track_operations(struct ds_datastore *ds, bool on, const char *dir);
/* Publishes counts that changed without being published (only the first
 * operation is at once); the mount calls it every second. */
void ds_datastore_sync_operations(struct ds_datastore *ds);

const char *ds_datastore_name(const struct ds_datastore *ds);
/* The effective base directory (borrowed until the next
 * ds_datastore_configure, which may change it). */
const char *ds_datastore_base(const struct ds_datastore *ds);
enum ds_maintenance ds_datastore_maintenance(const struct ds_datastore *ds);
/* Copies the maintenance message as refusals show it into buf (len > 0;
 * "" when there is none; cut to len - 1 bytes). Thread-safe. */
void ds_datastore_maintenance_message(struct ds_datastore *ds, char *buf, size_t len);
/* Which directory the store is at now, and which one a writer uses: equal
 * serials, the same (a path changed away and back is another serial).
 * Serials are never reused within the process. */
uint64_t ds_datastore_base_serial(struct ds_datastore *ds);
uint64_t ds_writer_base_serial(const struct ds_writer *w);

/* The errno a new reader would get now (0 when it would be granted), with
 * no side effects: for deciding what to show without acquiring. */
int ds_datastore_read_refusal(struct ds_datastore *ds);
/* The same for a writer. */
int ds_datastore_write_refusal(struct ds_datastore *ds);
/* When err is the refusal a reader gets now, logs why (mode and message,
 * or the unmounted disk) as a refused reader acquisition does: for users
 * of lookup handles, whose acquisition logs nothing. */
void ds_datastore_log_read_refusal(struct ds_datastore *ds, int err);
/* Live reader and writer handles of this process. */
void ds_datastore_counts(struct ds_datastore *ds, unsigned *ret_readers, unsigned *ret_writers);

/* Removable stores (spec §6.7): whether the filesystem with UUID uuid is
 * mounted exactly at /mnt/datastore/<name> (or at mountpoint if not NULL). */
bool ds_backing_device_mounted(const char *name, const char *uuid, const char *mountpoint);

/* --- acquisition and release --- */

int ds_lookup_acquire(struct ds_datastore *ds, struct ds_lookup **ret);
int ds_reader_acquire(struct ds_datastore *ds, struct ds_reader **ret);
int ds_writer_acquire(struct ds_datastore *ds, struct ds_writer **ret);
void ds_lookup_release(struct ds_lookup *lk); /* all accept NULL */
void ds_reader_release(struct ds_reader *r);
void ds_writer_release(struct ds_writer *w);

/* Downward conversions (borrowed, valid while the handle is held). */
const struct ds_reader *ds_writer_reader(const struct ds_writer *w);
const struct ds_lookup *ds_reader_lookup(const struct ds_reader *r);
const struct ds_lookup *ds_writer_lookup(const struct ds_writer *w);

struct ds_datastore *ds_lookup_datastore(const struct ds_lookup *lk);
/* 0 when this lookup may touch the datastore's directory, else the read
 * refusal errno it was granted under (-ENXIO, -EBUSY, -ENOMEDIUM). */
int ds_lookup_check_io(const struct ds_lookup *lk);
/* Opens base/relpath (relpath "" = base) as a directory (O_RDONLY|O_DIRECTORY)
 * after ds_lookup_check_io. No symlink below base is followed (-ELOOP, or
 * -ENOTDIR), and "." or ".." components are refused (-EINVAL). The caller
 * closes the descriptor before the call that uses the lookup returns:
 * lookups hold no descriptor. */
int ds_lookup_open_dir(const struct ds_lookup *lk, const char *relpath);

/* --- chunk data: readers only --- */

/* Reads, decodes and verifies one chunk (see ds_chunkstore_load). */
int ds_reader_load_chunk(const struct ds_reader *r, const struct ds_digest *d,
			 const struct ds_crypt *c, size_t expect_len, uint8_t *out, size_t cap,
			 size_t *ret_len);
/* The same, and the identity of an unencrypted chunk's file, for reads in
 * place and loads by identity (ds_chunkstore_load_file). */
int ds_reader_load_chunk_file(const struct ds_reader *r, const struct ds_digest *d,
			      const struct ds_crypt *c, size_t expect_len, uint8_t *out,
			      size_t cap, size_t *ret_len, struct ds_chunk_file *ret_file);
/* Part of a plain chunk verified whole before, read in place
 * (ds_chunkstore_read_plain): -ESTALE when its file changed since. */
int ds_reader_read_plain_chunk(const struct ds_reader *r, const struct ds_digest *d,
			       const struct ds_chunk_file *f, uint64_t off, void *buf, size_t len);
/* A chunk verified whole before, decoded again without its digest
 * (ds_chunkstore_load_known): -ESTALE when its file changed since. */
int ds_reader_load_known_chunk(const struct ds_reader *r, const struct ds_digest *d,
			       const struct ds_chunk_file *f, size_t expect_len, uint8_t *out,
			       size_t cap, size_t *ret_len);
/* A zstd chunk verified whole before, decoded a part at a time without
 * its digest (ds_chunkstore_decode_known_part): -ESTALE when its file
 * changed since. */
int ds_reader_decode_known_part(const struct ds_reader *r, const struct ds_digest *d,
				const struct ds_chunk_file *f, size_t expect_len,
				struct ds_blob_part **pp, uint8_t *out, size_t cap, size_t want,
				size_t *ret_done);
/* The raw encoded chunk file (for CRC-only checks of encrypted chunks
 * without a key). *ret_raw malloc'ed. */
int ds_reader_read_raw_chunk(const struct ds_reader *r, const struct ds_digest *d,
			     uint8_t **ret_raw, size_t *ret_len);
/* Counts chunk files in the store. */
int ds_reader_count_chunks(const struct ds_reader *r, uint64_t *ret_files, uint64_t *ret_bytes);

/* --- writing: writers only --- */

/* Encodes plaintext chunk data (compressed, encrypted with c if not NULL)
 * and inserts it deduplicated; *ret_digest gets its digest, *ret_existed
 * (may be NULL) whether it was already there. Holds the shared .lock while
 * the writer lives. Returns 0 or -errno. */
int ds_writer_put_chunk(const struct ds_writer *w, const uint8_t *data, size_t len,
			const struct ds_crypt *c, struct ds_digest *ret_digest, bool *ret_existed);
/* After a failed writeback: checks chunk d on the disk and removes it when
 * it is not intact there (ds_chunkstore_check_disk: 0 kept, 1 removed,
 * -ENOENT missing, -errno). c as given to _put_chunk. */
int ds_writer_check_chunk_disk(const struct ds_writer *w, const struct ds_digest *d,
			       const struct ds_crypt *c);
/* True when sync-level=file: fsync every chunk and index. */
bool ds_writer_sync_each(const struct ds_writer *w);
/* Base directory descriptor for writing (borrowed, valid while w is held). */
int ds_writer_basefd(const struct ds_writer *w);
/* The datastore name a handle belongs to (lock files, log lines). */
const char *ds_lookup_store(const struct ds_lookup *lk);

#endif
