/* index_internal — declarations shared by index.c, fidx.c and didx.c only.
 *
 * Not a public header: nothing outside store/index*.c, fidx.c and didx.c may
 * include it. The public contract is store/index.h.
 */
#ifndef DSFS_STORE_INDEX_INTERNAL_H
#define DSFS_STORE_INDEX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/index.h"

/* Header layout shared by both formats (spec §3.1, §3.2). */
#define DS_INDEX_OFF_MAGIC 0
#define DS_INDEX_OFF_UUID 8
#define DS_INDEX_OFF_CTIME 24
#define DS_INDEX_OFF_CSUM 32
#define DS_FIDX_OFF_SIZE 64
#define DS_FIDX_OFF_CHUNK_SIZE 72

#define DS_FIDX_ENTRY_LEN 32
#define DS_DIDX_ENTRY_LEN 40

extern const uint8_t ds_fidx_magic[8];
extern const uint8_t ds_didx_magic[8];

struct ds_index {
	enum ds_index_kind kind;
	const uint8_t *data; /* whole file: header + entries */
	size_t len;
	bool mapped;         /* munmap (true) or free (false) on _free */
	size_t count;
	uint64_t size;
	uint64_t chunk_size; /* fidx only */
};

/* Format checks on idx->data/len (magic already matched); fill count, size,
 * chunk_size. what names the source for the log line (a path or "buffer").
 * Return 0 or -EBADMSG, logged once here. */
int ds_fidx_validate(struct ds_index *idx, const char *what);
int ds_didx_validate(struct ds_index *idx, const char *what);

/* Per-format accessors; i < count and off < size are checked by the caller. */
void ds_fidx_chunk(const struct ds_index *idx, size_t i, struct ds_index_chunk *ret);
void ds_didx_chunk(const struct ds_index *idx, size_t i, struct ds_index_chunk *ret);
size_t ds_didx_find(const struct ds_index *idx, uint64_t off);

/* Writer helpers. ds_index_tmp_create removes a stale temp file of name
 * (a crash leftover: PBS's temp name is fixed), creates it afresh with
 * O_EXCL, mode 0644, and writes the 4096-byte header: magic, a random v4
 * uuid, ctime = now, everything else zero except the 16 bytes at offset 64
 * (fidx size and chunk_size; pass NULL for didx). The descriptor is left
 * positioned after the header. On success *ret_fd, *ret_dirfd (a private
 * duplicate of dirfd), *ret_tmp (malloc'ed temp name) are set. */
int ds_index_tmp_create(int dirfd, const char *name, const char *suffix,
			const uint8_t magic[8], const uint8_t *extra16, int *ret_fd,
			int *ret_dirfd, char **ret_tmp);

/* fsync (optional), close fd, rename tmp over name, fsync the directory
 * (optional). fd is closed in every case. Returns 0 or -errno. A failure
 * before the rename unlinks tmp. A failure of the directory fsync comes
 * after the rename: the file is in place, yet the caller must not record it
 * as durable. */
int ds_index_tmp_finish(int fd, int dirfd, const char *tmp, const char *name, bool do_fsync);

#endif
