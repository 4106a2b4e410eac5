/* Common part of the index reader (open/map/parse, accessors, csum) and the
 * temp-file protocol both writers share. Format specifics: fidx.c, didx.c. */
#include "store/index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uuid/uuid.h>

#include "store/index_internal.h"
#include "store/log.h"

const uint8_t ds_fidx_magic[8] = { 0x2f, 0x7f, 0x41, 0xed, 0x91, 0xfd, 0x0f, 0xcd };
const uint8_t ds_didx_magic[8] = { 0x1c, 0x91, 0x4e, 0xa5, 0x19, 0xba, 0xb3, 0xcd };

/* Largest index read: 1 GiB holds 2^25 fidx entries (a 128 TiB image in
 * 4 MiB chunks). */
#define DS_INDEX_MAX_LEN ((size_t)1 << 30)

/* Dispatches on the magic; idx->data/len are set by the caller. */
static int index_validate(struct ds_index *idx, const char *what)
{
	if (idx->len < DS_INDEX_HEADER_LEN) {
		ds_err("index %s: %zu bytes, shorter than the %d-byte header", what, idx->len,
		       DS_INDEX_HEADER_LEN);
		return -EBADMSG;
	}
	if (memcmp(idx->data, ds_fidx_magic, 8) == 0) {
		idx->kind = DS_INDEX_FIXED;
		return ds_fidx_validate(idx, what);
	}
	if (memcmp(idx->data, ds_didx_magic, 8) == 0) {
		idx->kind = DS_INDEX_DYNAMIC;
		return ds_didx_validate(idx, what);
	}
	ds_err("index %s: unknown magic", what);
	return -EBADMSG;
}

int ds_index_open(int dirfd, const char *path, struct ds_index **ret)
{
	struct ds_index *idx;
	uint8_t *buf;
	size_t len;
	int r;

	/* Read, not mapped: a mapped index truncated or unreadable (a disk
	 * error) under an open file would kill the daemon with SIGBUS. */
	r = ds_read_file_at(dirfd, path, DS_INDEX_MAX_LEN, &buf, &len);
	if (r < 0)
		return r;
	/* A short file is a corrupt index, not an I/O problem. */
	if (len < DS_INDEX_HEADER_LEN) {
		ds_err("index %s: %zu bytes, shorter than the %d-byte header", path, len,
		       DS_INDEX_HEADER_LEN);
		free(buf);
		return -EBADMSG;
	}
	idx = calloc(1, sizeof(*idx));
	if (!idx) {
		free(buf);
		return -ENOMEM;
	}
	idx->data = buf;
	idx->len = len;
	r = index_validate(idx, path);
	if (r < 0) {
		ds_index_free(idx);
		return r;
	}
	*ret = idx;
	return 0;
}

int ds_index_parse(const uint8_t *buf, size_t len, struct ds_index **ret)
{
	struct ds_index *idx;
	uint8_t *copy;
	int r;

	idx = calloc(1, sizeof(*idx));
	if (!idx)
		return -ENOMEM;
	/* +1 so that an empty buffer still gets a distinct allocation. */
	copy = malloc(len + 1);
	if (!copy) {
		free(idx);
		return -ENOMEM;
	}
	if (len)
		memcpy(copy, buf, len);
	idx->data = copy;
	idx->len = len;
	r = index_validate(idx, "buffer");
	if (r < 0) {
		ds_index_free(idx);
		return r;
	}
	*ret = idx;
	return 0;
}

void ds_index_free(struct ds_index *idx)
{
	if (!idx)
		return;
	if (idx->mapped)
		munmap((void *)idx->data, idx->len);
	else
		free((void *)idx->data);
	free(idx);
}

enum ds_index_kind ds_index_kind(const struct ds_index *idx)
{
	return idx->kind;
}

size_t ds_index_count(const struct ds_index *idx)
{
	return idx->count;
}

uint64_t ds_index_size(const struct ds_index *idx)
{
	return idx->size;
}

uint64_t ds_index_chunk_size(const struct ds_index *idx)
{
	return idx->kind == DS_INDEX_FIXED ? idx->chunk_size : 0;
}

void ds_index_uuid(const struct ds_index *idx, uint8_t out[16])
{
	memcpy(out, idx->data + DS_INDEX_OFF_UUID, 16);
}

int64_t ds_index_ctime(const struct ds_index *idx)
{
	return (int64_t)ds_le64(idx->data + DS_INDEX_OFF_CTIME);
}

void ds_index_header_csum(const struct ds_index *idx, struct ds_digest *ret)
{
	memcpy(ret->b, idx->data + DS_INDEX_OFF_CSUM, DS_DIGEST_LEN);
}

void ds_index_compute_csum(const struct ds_index *idx, struct ds_digest *ret)
{
	/* Both formats hash their raw entry array: fidx the concatenated
	 * digests, didx the (end LE ‖ digest) records. Validation made the
	 * entry area exactly the rest of the file. */
	ds_sha256(idx->data + DS_INDEX_HEADER_LEN, idx->len - DS_INDEX_HEADER_LEN, ret);
}

int ds_index_chunk(const struct ds_index *idx, size_t i, struct ds_index_chunk *ret)
{
	if (i >= idx->count)
		return -ERANGE;
	if (idx->kind == DS_INDEX_FIXED)
		ds_fidx_chunk(idx, i, ret);
	else
		ds_didx_chunk(idx, i, ret);
	return 0;
}

ssize_t ds_index_find(const struct ds_index *idx, uint64_t off)
{
	if (off >= idx->size)
		return -ERANGE;
	/* count <= len / 32, so every position fits in ssize_t. */
	if (idx->kind == DS_INDEX_FIXED)
		return (ssize_t)(off / idx->chunk_size);
	return (ssize_t)ds_didx_find(idx, off);
}

/* --- writer helpers --- */

int ds_index_tmp_create(int dirfd, const char *name, const char *suffix,
			const uint8_t magic[8], const uint8_t *extra16, int *ret_fd,
			int *ret_dirfd, char **ret_tmp)
{
	uint8_t hdr[DS_INDEX_HEADER_LEN] = { 0 };
	char tmp[4096];
	uuid_t uuid;
	char *tmp_copy;
	int fd, dfd, r;

	r = ds_tmp_name(name, suffix, tmp, sizeof(tmp));
	if (r < 0)
		return r;
	tmp_copy = strdup(tmp);
	if (!tmp_copy)
		return -ENOMEM;
	dfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (dfd < 0) {
		r = -errno;
		goto out_free;
	}
	/* PBS uses one fixed temp name per archive, so a crashed writer
	 * leaves it behind; the snapshot lock keeps live writers apart.
	 * Unlink-then-O_EXCL replaces the leftover without ever writing
	 * through a symlink or into another writer's inode. */
	if (unlinkat(dfd, tmp, 0) < 0 && errno != ENOENT) {
		r = -errno;
		goto out_dir;
	}
	fd = openat(dfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		goto out_dir;
	}
	/* 0644 regardless of the umask and backup's (as root), like the rest
	 * of a PBS snapshot; chown before chmod. */
	r = ds_own_fd(fd);
	if (r < 0)
		goto out_unlink;
	if (fchmod(fd, 0644) < 0) {
		r = -errno;
		goto out_unlink;
	}
	memcpy(hdr + DS_INDEX_OFF_MAGIC, magic, 8);
	uuid_generate(uuid);
	memcpy(hdr + DS_INDEX_OFF_UUID, uuid, 16);
	ds_put_le64(hdr + DS_INDEX_OFF_CTIME, (uint64_t)(int64_t)time(NULL));
	if (extra16)
		memcpy(hdr + DS_FIDX_OFF_SIZE, extra16, 16);
	r = ds_write_all(fd, hdr, sizeof(hdr));
	if (r < 0)
		goto out_unlink;
	*ret_fd = fd;
	*ret_dirfd = dfd;
	*ret_tmp = tmp_copy;
	return 0;

out_unlink:
	close(fd);
	unlinkat(dfd, tmp, 0);
out_dir:
	close(dfd);
out_free:
	free(tmp_copy);
	return r;
}

int ds_index_tmp_finish(int fd, int dirfd, const char *tmp, const char *name, bool do_fsync)
{
	int r = 0;

	if (do_fsync && fsync(fd) < 0)
		r = -errno;
	/* close errors matter: NFS reports failed writeback here. */
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r < 0) {
		/* Not renamed: the temp file must not stay behind. */
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	return do_fsync ? ds_fsync_parent_at(dirfd, name) : 0;
}
