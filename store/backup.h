/* backup — writing a new snapshot into a datastore (spec §9 writer checklist).
 *
 * ds_backup_begin creates the namespace/type/group directories as needed
 * (a new group gets its `owner` file, O_EXCL), creates the snapshot directory
 * and locks it exclusively. Archives are added as blobs or streamed through
 * archive writers (fixed index: cut every chunk_size bytes; dynamic index:
 * the PBS chunker), each index written to its temp name and renamed into
 * place when finished. ds_backup_finish writes index.json.blob last (signed
 * when a key is used); until then the snapshot counts as unfinished. A backup
 * freed without finishing removes its snapshot directory, so nothing partial
 * stays visible.
 *
 * Not for: deciding whether writing is allowed (the struct ds_writer handle
 * given to _begin was granted by datastore.h) or modifying finished
 * snapshots (only notes and protection change after finish; see
 * ds_snapshot_set_notes / ds_snapshot_set_protected).
 * Thread-safety: one struct ds_backup and its archive writers belong to one
 * thread at a time, but for ds_archive_encode_chunk (see there).
 */
#ifndef DSFS_STORE_BACKUP_H
#define DSFS_STORE_BACKUP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/util.h"

struct ds_crypt;
struct ds_lookup;
struct ds_writer;
struct ds_backup;
struct ds_archive_writer;

#define DS_DEFAULT_OWNER "root@pam"
#define DS_DYNAMIC_DEFAULT_AVG (4 * DS_MIB)

struct ds_backup_stats {
	uint64_t chunks;       /* chunks referenced by the archives written */
	uint64_t new_chunks;   /* of which newly written to .chunks */
	uint64_t bytes;        /* plaintext bytes */
	uint64_t new_bytes;    /* encoded bytes newly written */
};

/* Starts snapshot ns/type/id/time. owner (NULL: root@pam) is written when the
 * group is new; an owner given (not NULL) must also be allowed into an
 * existing group (ds_owner_allows), as PBS's backup API checks it.
 * crypt (may be NULL) encrypts every archive and signs the manifest; it is
 * borrowed until _free. The writer is borrowed too.
 * Errors: -EINVAL bad names or owner; -EEXIST the snapshot exists; -EPERM
 * the group belongs to another owner; -errno. */
int ds_backup_begin(const struct ds_writer *w, const char *ns, const char *type, const char *id,
		    int64_t time, const char *owner, const struct ds_crypt *crypt,
		    struct ds_backup **ret);

/* Creates group ns/type/id if needed (with its owner file; owner NULL:
 * root@pam) — like mkdir -p. Errors -EINVAL bad names, -errno. */
int ds_group_create(const struct ds_writer *w, const char *ns, const char *type, const char *id,
		    const char *owner);
/* Creates the (empty, unfinished) snapshot directory ns/type/id/time, and its
 * group as ds_group_create does; an owner given (not NULL) must be allowed
 * into an existing group, as for ds_backup_begin (-EPERM). -EEXIST when it
 * exists; -EINVAL also for a time before 1970-01-01T00:00:01Z (PBS's
 * backup-time is at least 1, as ds_backup_begin requires). */
int ds_snapshot_create(const struct ds_writer *w, const char *ns, const char *type,
		       const char *id, const char *time, const char *owner);
/* Opens an existing snapshot (snaprel as from ds_snapshot_relpath) for
 * adding archives: takes the group and snapshot locks exclusively (-EBUSY
 * when held elsewhere) and loads its manifest, if it has one. Each
 * ds_backup_finish then rewrites the manifest with what was added. Unlike
 * ds_backup_begin, _free never removes the snapshot. */
int ds_backup_open(const struct ds_writer *w, const char *snaprel, const struct ds_crypt *crypt,
		   struct ds_backup **ret);
/* Whether the snapshot has a manifest (counts as finished). */
bool ds_backup_has_manifest(const struct ds_backup *b);
/* Whether name is an archive of the snapshot (in the manifest or on disk). */
bool ds_backup_has_file(const struct ds_backup *b, const char *name);
/* Sets the manifest's notes; written by the next ds_backup_finish. */
int ds_backup_set_notes(struct ds_backup *b, const char *notes);

/* Adds a blob archive (name must end in .blob) with data as content.
 * Errors: -EINVAL bad name or a name already added, -EFBIG > 128 MiB, -errno. */
int ds_backup_add_blob(struct ds_backup *b, const char *name, const uint8_t *data, size_t len);

/* Starts a fixed-index archive (name ends in .fidx). size may be 0 if not
 * known in advance. chunk_size a power of two (DS_FIDX_DEFAULT_CHUNK_SIZE). */
int ds_backup_fixed_begin(struct ds_backup *b, const char *name, uint64_t size,
			  uint64_t chunk_size, struct ds_archive_writer **ret);
/* Starts a dynamic-index archive (name ends in .didx) cut with average
 * chunk size avg (power of two, 64 KiB .. 4 MiB). */
int ds_backup_dynamic_begin(struct ds_backup *b, const char *name, size_t avg,
			    struct ds_archive_writer **ret);
/* Appends data to the archive stream. Returns 0 or -errno. */
int ds_archive_write(struct ds_archive_writer *aw, const void *data, size_t len);
/* Fixed archives only: sets chunk i (len = chunk_size, or less for the last
 * one) directly, for writers that fill an image out of order; a chunk may be
 * set again (the last one counts). The digest goes to *ret_digest (may be
 * NULL). */
int ds_archive_put_fixed_chunk(struct ds_archive_writer *aw, size_t i, const uint8_t *data,
			       size_t len, struct ds_digest *ret_digest);
/* The same in two steps, for writers that encode on several threads:
 * ds_archive_encode_chunk compresses (encrypts), hashes and inserts one
 * chunk of a fixed archive and changes nothing in aw but its statistics
 * (atomics), so it may run concurrently for chunks of one archive;
 * ds_archive_set_fixed_digest then records it as chunk i (callers
 * serialise it with every other call on aw). */
int ds_archive_encode_chunk(struct ds_archive_writer *aw, const uint8_t *data, size_t len,
			    struct ds_digest *ret_digest);
int ds_archive_set_fixed_digest(struct ds_archive_writer *aw, size_t i,
				const struct ds_digest *d);
/* Chunk i is the same as one this backup put before (digest d, len bytes):
 * set and counted as a chunk that existed, with no encoding, hashing or
 * touching of its file again (the earlier put touched it). */
int ds_archive_repeat_fixed_chunk(struct ds_archive_writer *aw, size_t i,
				  const struct ds_digest *d, size_t len);
/* Fixed archives begun with size 0 and filled with _put_fixed_chunk /
 * _set_fixed_digest: the image was cut to size bytes, the chunks set past
 * it are forgotten (else _finish with that size refuses the index). The
 * chunk holding byte size - 1 must be set again if it changed. Returns 0 or
 * -EINVAL (not such an archive). */
int ds_archive_truncate_fixed(struct ds_archive_writer *aw, uint64_t size);
/* Dynamic archives: fn(ctx, end, digest) is called for every chunk cut, end
 * being its end offset in the stream. */
typedef void (*ds_archive_chunk_fn)(void *ctx, uint64_t end, const struct ds_digest *d);
void ds_archive_set_chunk_fn(struct ds_archive_writer *aw, ds_archive_chunk_fn fn, void *ctx);
/* The stream bytes written but not yet cut into a chunk (valid until the
 * next call on aw). */
void ds_archive_pending(const struct ds_archive_writer *aw, const uint8_t **ret_data,
			size_t *ret_len);
/* Flushes the last chunk, commits the index and records it for the manifest.
 * For fixed archives with out-of-order chunks, final_size gives the image
 * size (0 = bytes written). Frees aw in all cases. Returns 0 or -errno. */
int ds_archive_finish(struct ds_archive_writer *aw, uint64_t final_size);
/* Abandons an archive: its temp index is removed. Accepts NULL. */
void ds_archive_abort(struct ds_archive_writer *aw);

/* Writes the manifest (the snapshot is finished from here on) and syncs.
 * Returns 0 or -errno; the snapshot stays in place either way only if the
 * manifest was written. */
int ds_backup_finish(struct ds_backup *b);
/* syncfs of the snapshot's filesystem; a failure is kept (every later
 * _sync and _finish fail with it). After a failure, every chunk this
 * backup wrote anew (and, at each later _sync, _finish and _free, those
 * written since) is read back from the disk and removed when it is not
 * intact there (ds_writer_check_chunk_disk), so that no later backup takes
 * a chunk whose bytes were lost as present. Only the digests of chunks
 * written since the last good sync are kept for that (32 bytes each); a
 * good sync costs nothing more. */
int ds_backup_sync(struct ds_backup *b);
/* The failure a _sync kept (-errno), or 0; callable from any thread,
 * without the caller's lock around the backup's other calls. */
int ds_backup_failed(const struct ds_backup *b);
/* Takes an archive that was put in place but not published (a failed
 * _finish) out of the manifest and off the disk. Returns false, and leaves
 * it, when the manifest on disk names it already (stored by another
 * _finish of this backup since the archive was put in place: a _finish
 * syncs before it stores, so the archive is durable and published). */
bool ds_backup_drop_file(struct ds_backup *b, const char *name);
/* The chunk counts so far. */
void ds_backup_stats(const struct ds_backup *b, struct ds_backup_stats *ret);
/* Makes every later chunk, archive write, blob and _finish of b fail with
 * -EINTR once *stop is non-zero (set by a signal handler: the backup stops
 * at its next step, and _free removes the unfinished snapshot). */
void ds_backup_set_stop(struct ds_backup *b, const volatile sig_atomic_t *stop);
/* Frees; an unfinished backup's snapshot directory is removed. NULL ok. */
void ds_backup_free(struct ds_backup *b);

/* Snapshot metadata changes after finish (spec §1.5, §4.2): the manifest's
 * unprotected notes (re-written atomically, signature untouched), and the
 * .protected marker. Writers only. snaprel as from ds_snapshot_relpath
 * (-EINVAL otherwise); -ENOENT when the snapshot does not exist. */
int ds_snapshot_set_notes(const struct ds_writer *w, const char *snaprel, const char *notes);
/* .protected is changed under the snapshot's exclusive lock, as PBS's
 * update_protection: -EBUSY while a backup writes the snapshot or a reader
 * holds it. _at: in the snapshot directory snapdirfd of a ds_backup the
 * caller has open (which holds that lock). */
int ds_snapshot_set_protected(const struct ds_writer *w, const char *snaprel, bool protect);
int ds_snapshot_protect_at(int snapdirfd, bool protect);

/* Forgets a snapshot as PBS does: -EPERM when protected, -EBUSY when its
 * lock is held (a reader or writer); the manifest goes first, so an
 * interrupted forget leaves an unfinished snapshot, never a damaged one. */
int ds_snapshot_forget(const struct ds_writer *w, const char *snaprel);
/* Removes a group that holds no snapshot (its owner and notes files with
 * it): -ENOTEMPTY otherwise, -EBUSY when locked. */
int ds_group_remove(const struct ds_writer *w, const char *ns, const char *type, const char *id);
/* Removes an empty namespace (empty type and ns/ directories go with it),
 * -ENOTEMPTY otherwise. ns must not be the root. */
int ds_ns_remove(const struct ds_writer *w, const char *ns);
/* Removes the temp files (*.tmp_fidx, *.tmp_didx, *.tmp_XXXXXX) an
 * interrupted writer left in snapshot snaprel, if no one holds its lock.
 * Returns the number removed, -EBUSY, or -errno. */
int ds_snapshot_cleanup(const struct ds_writer *w, const char *snaprel);
/* ds_snapshot_cleanup over every snapshot of the datastore that holds a temp
 * file. Returns the number of files removed or -errno. */
int ds_datastore_cleanup(const struct ds_writer *w);

#endif
