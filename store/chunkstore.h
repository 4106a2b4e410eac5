/* chunkstore — the `.chunks/XXXX/<digest>` store of one datastore (spec §1.2,
 * §1.7.1, §7.1).
 *
 * Reads chunks with full verification (CRC, decode, digest, length), inserts
 * them crash-safely (temp file + fsync + rename + directory fsync) and
 * deduplicating (an existing chunk is only touched, as PBS's insert_chunk
 * does, so garbage collection keeps it), and holds the shared process lock on
 * `<base>/.lock` that PBS backup writers hold.
 *
 * Not for front ends: fs/ and the CLI reach chunks only through the typed
 * handles of datastore.h (a struct ds_chunkstore is owned by a reader
 * handle). That is what makes "no chunk data through a lookup handle" a
 * compile-time property.
 * Thread-safety: reads and inserts may run concurrently from any number of
 * threads on one struct ds_chunkstore; _free and _lock_shared must not race
 * with anything else on it.
 */
#ifndef DSFS_STORE_CHUNKSTORE_H
#define DSFS_STORE_CHUNKSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "store/util.h"

struct ds_blob_part;
struct ds_crypt;
struct ds_chunkstore;

/* Creates an empty datastore at base as PBS does: base (0755), .chunks
 * (0750), all 65536 prefix directories 0000..ffff (0750), an empty .lock
 * (0644). base may exist but must be empty except for dot-files and
 * lost+found (-ENOTEMPTY otherwise); -EEXIST when it has a .chunks. The
 * prefix directories are made in base/.chunks.init, renamed to .chunks when
 * complete: a failed or interrupted create leaves no half datastore, and
 * the next one on base finishes it. progress, if not NULL, is called with
 * 0..100 as prefix directories are made. Returns 0 or -errno. */
int ds_chunkstore_create(const char *base, void (*progress)(int percent, void *ud), void *ud);

/* Opens the chunk store of the datastore at base (needs base/.chunks).
 * Holds a descriptor on base/.chunks until _free. -errno on failure
 * (-ENOENT: not a datastore). */
int ds_chunkstore_open(const char *base, struct ds_chunkstore **ret);

/* Releases the lock (if taken) and closes every descriptor. Accepts NULL. */
void ds_chunkstore_free(struct ds_chunkstore *cs);

/* Takes the shared F_RDLCK on base/.lock (opened once, kept until _free).
 * -EBUSY when garbage collection holds the exclusive lock; -errno otherwise.
 * Idempotent. */
int ds_chunkstore_lock_shared(struct ds_chunkstore *cs);

/* Drops the shared lock (closes the .lock descriptor). Idempotent. */
void ds_chunkstore_unlock(struct ds_chunkstore *cs);

/* The datastore base directory descriptor (borrowed until _free). */
int ds_chunkstore_basefd(const struct ds_chunkstore *cs);

/* "XXXX/<64 hex>" relative to .chunks; out must hold 70 bytes. */
#define DS_CHUNK_RELPATH_LEN 70
void ds_chunk_relpath(const struct ds_digest *d, char out[DS_CHUNK_RELPATH_LEN]);

/* Reads the raw (encoded) chunk file. *ret_raw malloc'ed, caller frees.
 * -ENOENT missing; -EBADMSG empty or larger than 16 MiB + header. */
int ds_chunkstore_read_raw(struct ds_chunkstore *cs, const struct ds_digest *d,
			   uint8_t **ret_raw, size_t *ret_len);

/* Reads, decodes and verifies chunk d into out (capacity cap): CRC, GCM,
 * bounded zstd, then the digest (keyed with c for encrypted chunks) and, when
 * expect_len is not 0, the plaintext length. Every failure is logged once
 * with the digest. Errors: -ENOENT missing; -EBADMSG corrupt or digest/length
 * mismatch; -ENOKEY encrypted chunk and c == NULL; -EFBIG larger than cap
 * while cap is below 16 MiB and below expect_len (or expect_len is 0) — past
 * a cap that holds either, the chunk is corrupt: -EBADMSG. Bytes of out
 * past the result may be overwritten up to cap: with expect_len set and
 * room past it, the chunk file is read there and decoded below it. */
int ds_chunkstore_load(struct ds_chunkstore *cs, const struct ds_digest *d,
		       const struct ds_crypt *c, size_t expect_len, uint8_t *out, size_t cap,
		       size_t *ret_len);

/* _load, and when the chunk was unencrypted and read and verified by the
 * fast path, its file's identity in *ret_file (taken before its bytes were
 * read; ret_file->plain for a plain blob, else zstd); else
 * ret_file->size = 0. ret_file may be NULL. */
int ds_chunkstore_load_file(struct ds_chunkstore *cs, const struct ds_digest *d,
			    const struct ds_crypt *c, size_t expect_len, uint8_t *out, size_t cap,
			    size_t *ret_len, struct ds_chunk_file *ret_file);

/* Reads len bytes at plaintext offset off of the plain chunk d in place,
 * without verifying them: only for a plain chunk verified whole by
 * _load_file, whose identity f it gives. Returns 0; -ESTALE when the file
 * under d's name is not that one any more (changed, replaced, removed,
 * shorter), before or after the read: load it again; -EINVAL when
 * [off, off + len) is past the chunk or f is not plain; other -errno from
 * open or read. Logs nothing. */
int ds_chunkstore_read_plain(struct ds_chunkstore *cs, const struct ds_digest *d,
			     const struct ds_chunk_file *f, uint64_t off, void *buf, size_t len);

/* Decodes the chunk d again into out (as _load) without computing its
 * digest: only for a chunk verified whole by _load_file, whose identity f
 * it gives. The CRC is still checked. Returns 0 and *ret_len; -ESTALE when
 * the file under d's name is not that one any more, before or after the
 * read, or it does not decode to what was verified (expect_len bytes, if
 * set, of f's type): load it again, which names any fault; other -errno
 * from open or read. Logs nothing. */
int ds_chunkstore_load_known(struct ds_chunkstore *cs, const struct ds_digest *d,
			     const struct ds_chunk_file *f, size_t expect_len, uint8_t *out,
			     size_t cap, size_t *ret_len);

/* Decodes the zstd chunk d a part at a time (ds_blob_part): its first
 * want bytes or more, and on a later call more of it, without computing its
 * digest; only for a chunk verified whole by _load_file, whose identity f
 * (not plain) it gives. *pp NULL: starts a new part (freed by the caller
 * with ds_blob_part_free, also after a failure), checking that the chunk
 * decodes to expect_len bytes if set; its length is then
 * ds_blob_part_len(*pp). out (cap bytes) is the same buffer at every call
 * of one part, as ds_blob_part_decode says. The CRC is checked when the
 * last part is decoded, and the file's identity before and after every
 * call. Returns 0 and *ret_done (>= want, or the whole length); -ESTALE
 * when the file under d's name is not that one any more or does not decode
 * as verified: free the part and load it again, which names any fault;
 * -EINVAL f is plain; other -errno from open, read or allocation. Logs
 * nothing. */
int ds_chunkstore_decode_known_part(struct ds_chunkstore *cs, const struct ds_digest *d,
				    const struct ds_chunk_file *f, size_t expect_len,
				    struct ds_blob_part **pp, uint8_t *out, size_t cap, size_t want,
				    size_t *ret_done);

/* Inserts an encoded chunk under digest d, following PBS's insert rules
 * (spec §1.2): an existing file of the same size is only touched (atime =
 * now), a zero-size one is replaced, a smaller existing unencrypted one is
 * kept, a larger one replaced; encrypted vs unencrypted clashes are refused
 * with -EEXIST. New files are written atomically (temp + rename) and, when
 * do_fsync, fsync'ed with their directory. *ret_existed (may be NULL) tells
 * whether nothing new was written. Returns 0 or -errno. */
int ds_chunkstore_insert(struct ds_chunkstore *cs, const struct ds_digest *d,
			 const uint8_t *raw, size_t len, bool do_fsync, bool *ret_existed);

/* The writer's fast path for known chunks (what PBS's client does by not
 * uploading chunks the previous snapshot has): when chunk d exists,
 * non-empty and of the same kind (encrypted or not), only its atime is
 * touched and 1 returned, with no encoding done; 0 means the chunk must be
 * inserted with ds_chunkstore_insert. Or -errno. */
int ds_chunkstore_touch_existing(struct ds_chunkstore *cs, const struct ds_digest *d,
				 bool encrypted);

/* After a writeback of the store's filesystem failed: reads chunk d as the
 * disk holds it (O_DIRECT, past the page cache, which may still hold the
 * bytes the disk lost; a plain read where O_DIRECT is refused with EINVAL,
 * as on tmpfs), verifies it as _load does (keyed with c; an encrypted
 * chunk without c by its CRC only) and removes it when it does not verify
 * or cannot be read, so that the next insert writes it again instead of
 * touching it; the removal is made durable (directory fsync). Only the
 * file that was read is removed: one put under the name since is kept.
 * Returns 0 kept, 1 removed, -ENOENT missing, other -errno when it could
 * not be checked or removed. Every removal and failure is logged with the
 * digest. Allocates one chunk's encoded and decoded bytes for the call. */
int ds_chunkstore_check_disk(struct ds_chunkstore *cs, const struct ds_digest *d,
			     const struct ds_crypt *c);

/* stat of the chunk file (-ENOENT if missing). */
int ds_chunkstore_stat(struct ds_chunkstore *cs, const struct ds_digest *d, struct stat *ret);

/* Counts chunk files (names of exactly 64 hex characters) under .chunks. */
int ds_chunkstore_count(struct ds_chunkstore *cs, uint64_t *ret_files, uint64_t *ret_bytes);

/* Removes "<digest>.tmp_*" files left by interrupted inserts. Returns the
 * number removed or -errno. Only safe while no other writer runs. */
int ds_chunkstore_cleanup_tmp(struct ds_chunkstore *cs);

#endif
