/* index — fixed (.fidx) and dynamic (.didx) chunk indexes (spec §3).
 *
 * Reading: ds_index_open maps an index file read-only and validates it (magic,
 * power-of-two chunk size and exact length for fidx; entry alignment and
 * strictly increasing ends for didx). Lookups are O(1) for fidx and
 * O(log n) binary search for didx. Writing: ds_fidx_writer / ds_didx_writer
 * produce files byte-compatible with PBS's writers: random uuid, ctime,
 * index_csum, reserved area zero, written to "<name-without-ext>.tmp_fidx" /
 * ".tmp_didx" and renamed into place on commit.
 *
 * Not for: chunk contents (chunkstore.h) — an index only names digests.
 * Thread-safety: an open struct ds_index is immutable; any number of threads
 * may call the const accessors concurrently. Writers are single-threaded.
 */
#ifndef DSFS_STORE_INDEX_H
#define DSFS_STORE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/util.h"

#define DS_INDEX_HEADER_LEN 4096
#define DS_FIDX_DEFAULT_CHUNK_SIZE (4 * DS_MIB)

enum ds_index_kind {
	DS_INDEX_FIXED = 1,
	DS_INDEX_DYNAMIC = 2,
};

struct ds_index;

/* One chunk of an index: bytes [start, end) of the archive, named by digest. */
struct ds_index_chunk {
	uint64_t start;
	uint64_t end;
	struct ds_digest digest;
};

/* Opens the index file at path (relative to dirfd, or AT_FDCWD) and reads
 * it into memory (not mapped: an open index must survive its file being
 * truncated or failing to read). Nothing stays open.
 * Errors: -errno of open/read; -EFBIG over 1 GiB; -EBADMSG wrong magic, bad
 * length, chunk size not a power of two, didx ends not increasing (logged
 * with path). */
int ds_index_open(int dirfd, const char *path, struct ds_index **ret);

/* Parses an index from memory (copied), for fuzzing and tests. Same checks. */
int ds_index_parse(const uint8_t *buf, size_t len, struct ds_index **ret);

void ds_index_free(struct ds_index *idx); /* accepts NULL */

enum ds_index_kind ds_index_kind(const struct ds_index *idx);
size_t ds_index_count(const struct ds_index *idx);
/* Archive length: fidx size field / last didx end (0 for empty didx). */
uint64_t ds_index_size(const struct ds_index *idx);
/* fidx chunk size; 0 for didx. */
uint64_t ds_index_chunk_size(const struct ds_index *idx);
/* Header fields. */
void ds_index_uuid(const struct ds_index *idx, uint8_t out[16]);
int64_t ds_index_ctime(const struct ds_index *idx);
void ds_index_header_csum(const struct ds_index *idx, struct ds_digest *ret);
/* Recomputes index_csum from the entries (spec §3.1, §3.2). */
void ds_index_compute_csum(const struct ds_index *idx, struct ds_digest *ret);

/* Chunk i (i < count). Returns 0 or -ERANGE. */
int ds_index_chunk(const struct ds_index *idx, size_t i, struct ds_index_chunk *ret);
/* The chunk holding byte offset off: its position, or -ERANGE when
 * off >= size. */
ssize_t ds_index_find(const struct ds_index *idx, uint64_t off);

/* --- writers ---
 * A writer keeps its own duplicate of dirfd (the caller may close theirs).
 * A failed _set leaves that position unset; a didx writer whose write failed
 * reports that error from then on. A fidx _commit refused for a missing
 * chunk or a wrong size may be retried; after any other failed _commit only
 * _free is useful (it removes the temp file). */

struct ds_fidx_writer;

/* Creates "<dirfd>/<tmp name of name>" (O_EXCL; a stale temp file from a crash
 * is replaced) for an image of size bytes (size may be 0 = unknown: the
 * digest array then grows and size is fixed by _commit's final_size).
 * chunk_size must be a power of two. Errors -EINVAL, -errno. */
int ds_fidx_writer_new(int dirfd, const char *name, uint64_t size, uint64_t chunk_size,
		       struct ds_fidx_writer **ret);
/* Sets the digest of chunk i. -ERANGE beyond the size given at _new. */
int ds_fidx_writer_set(struct ds_fidx_writer *w, size_t i, const struct ds_digest *d);
/* Size unknown at _new only: forgets positions n and above (an image cut
 * short before commit), so that _commit of a size needing n chunks accepts
 * it. -EINVAL for a known-size or committed writer. */
int ds_fidx_writer_truncate(struct ds_fidx_writer *w, size_t n);
/* Writes index_csum and size, truncates to the exact length, fsyncs if
 * do_fsync, renames into place. final_size is the image size (must equal the
 * size given at _new when that was non-zero). Every chunk must have been set
 * (-EINVAL otherwise). Returns 0 or -errno; on success the csum and size the
 * manifest records are in *ret_csum / *ret_size (either may be NULL). */
int ds_fidx_writer_commit(struct ds_fidx_writer *w, uint64_t final_size, bool do_fsync,
			  struct ds_digest *ret_csum, uint64_t *ret_size);
/* Frees; if not committed, removes the temp file. Accepts NULL. */
void ds_fidx_writer_free(struct ds_fidx_writer *w);

struct ds_didx_writer;

/* Creates "<dirfd>/<name with last ext replaced by tmp_didx>" like
 * ds_fidx_writer_new. Errors -EINVAL (empty name), -errno. */
int ds_didx_writer_new(int dirfd, const char *name, struct ds_didx_writer **ret);
/* Appends a chunk ending at archive offset end (must be > previous end, so
 * the first end must be > 0; -EINVAL otherwise). Entries are buffered. */
int ds_didx_writer_append(struct ds_didx_writer *w, uint64_t end, const struct ds_digest *d);
/* Flushes, writes index_csum (SHA-256 of the raw entries), fsyncs if
 * do_fsync, renames into place. Zero entries are allowed (size 0). Returns
 * 0 or -errno; on success *ret_csum / *ret_size (either may be NULL) hold
 * what the manifest records. A second commit is -EINVAL. */
int ds_didx_writer_commit(struct ds_didx_writer *w, bool do_fsync, struct ds_digest *ret_csum,
			  uint64_t *ret_size);
/* Frees; if not committed, removes the temp file. Accepts NULL. */
void ds_didx_writer_free(struct ds_didx_writer *w);

#endif
