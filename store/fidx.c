/* Fixed index (.fidx, spec §3.1): reader checks and the writer. */
#include "store/index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/index_internal.h"
#include "store/log.h"

static bool is_pow2(uint64_t v)
{
	return v != 0 && (v & (v - 1)) == 0;
}

/* ceil(size / cs) without the size + cs - 1 overflow. */
static uint64_t chunk_count(uint64_t size, uint64_t cs)
{
	return size / cs + (size % cs != 0);
}

int ds_fidx_validate(struct ds_index *idx, const char *what)
{
	uint64_t size = ds_le64(idx->data + DS_FIDX_OFF_SIZE);
	uint64_t cs = ds_le64(idx->data + DS_FIDX_OFF_CHUNK_SIZE);
	size_t body = idx->len - DS_INDEX_HEADER_LEN;
	uint64_t n;

	if (!is_pow2(cs)) {
		ds_err("fidx %s: chunk size %llu is not a power of two", what,
		       (unsigned long long)cs);
		return -EBADMSG;
	}
	/* Compare in entries rather than computing 4096 + 32*n, which a
	 * hostile size/chunk_size pair could overflow. */
	n = chunk_count(size, cs);
	if (body % DS_FIDX_ENTRY_LEN != 0 || body / DS_FIDX_ENTRY_LEN != n) {
		ds_err("fidx %s: %zu bytes, but size %llu / chunk size %llu needs %llu entries",
		       what, idx->len, (unsigned long long)size, (unsigned long long)cs,
		       (unsigned long long)n);
		return -EBADMSG;
	}
	idx->count = (size_t)n;
	idx->size = size;
	idx->chunk_size = cs;
	return 0;
}

void ds_fidx_chunk(const struct ds_index *idx, size_t i, struct ds_index_chunk *ret)
{
	/* i < count = ceil(size/cs), so i*cs < size: no overflow. */
	uint64_t start = (uint64_t)i * idx->chunk_size;

	ret->start = start;
	ret->end = idx->size - start > idx->chunk_size ? start + idx->chunk_size : idx->size;
	memcpy(ret->digest.b, idx->data + DS_INDEX_HEADER_LEN + i * DS_FIDX_ENTRY_LEN,
	       DS_DIGEST_LEN);
}

/* --- writer --- */

/* Largest entry count whose file length 4096 + 32*n still fits off_t. */
#define FIDX_MAX_ENTRIES ((uint64_t)(INT64_MAX - DS_INDEX_HEADER_LEN) / DS_FIDX_ENTRY_LEN)

struct ds_fidx_writer {
	int fd;
	int dirfd;        /* private duplicate */
	char *name;
	char *tmp;
	uint64_t size;    /* 0 = unknown until commit */
	uint64_t chunk_size;
	size_t cap;       /* entries the file and the bitmap have room for */
	size_t used;      /* highest set position + 1 */
	uint8_t *set;     /* bitmap of positions written */
	bool done;        /* committed, or a commit failed past the point of return */
};

static bool bit_get(const uint8_t *bm, size_t i)
{
	return bm[i / 8] & (1u << (i % 8));
}

static int fidx_resize(struct ds_fidx_writer *w, size_t cap)
{
	uint8_t *bm;
	size_t old = (w->cap + 7) / 8, want = (cap + 7) / 8;

	/* ftruncate both preallocates (sparse) and keeps pwrite positions
	 * inside the file. */
	if (ftruncate(w->fd, (off_t)(DS_INDEX_HEADER_LEN + (uint64_t)cap * DS_FIDX_ENTRY_LEN)) < 0)
		return -errno;
	bm = realloc(w->set, want ? want : 1);
	if (!bm)
		return -ENOMEM;
	if (want > old)
		memset(bm + old, 0, want - old);
	w->set = bm;
	w->cap = cap;
	return 0;
}

int ds_fidx_writer_new(int dirfd, const char *name, uint64_t size, uint64_t chunk_size,
		       struct ds_fidx_writer **ret)
{
	struct ds_fidx_writer *w;
	uint8_t extra[16];
	uint64_t n;
	int r;

	if (!name || !*name || !is_pow2(chunk_size))
		return -EINVAL;
	n = size ? chunk_count(size, chunk_size) : 0;
	if (n > FIDX_MAX_ENTRIES || n > SIZE_MAX / 2)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->dirfd = -1;
	w->size = size;
	w->chunk_size = chunk_size;
	w->name = strdup(name);
	if (!w->name) {
		r = -ENOMEM;
		goto fail;
	}
	/* The size field is rewritten at commit; writing it now too makes a
	 * known-size temp file self-describing, as PBS's is. */
	ds_put_le64(extra, size);
	ds_put_le64(extra + 8, chunk_size);
	r = ds_index_tmp_create(dirfd, name, "tmp_fidx", ds_fidx_magic, extra, &w->fd,
				&w->dirfd, &w->tmp);
	if (r < 0)
		goto fail;
	/* Unknown size: start with room for 16 entries and double. */
	r = fidx_resize(w, n ? (size_t)n : 16);
	if (r < 0)
		goto fail;
	*ret = w;
	return 0;

fail:
	ds_fidx_writer_free(w);
	return r;
}

int ds_fidx_writer_set(struct ds_fidx_writer *w, size_t i, const struct ds_digest *d)
{
	int r;

	if (w->done)
		return -EINVAL;
	if (i >= w->cap) {
		size_t cap = w->cap;

		if (w->size || i >= FIDX_MAX_ENTRIES || i >= SIZE_MAX / 4)
			return -ERANGE;
		while (cap <= i)
			cap *= 2;
		if (cap > FIDX_MAX_ENTRIES)
			cap = (size_t)FIDX_MAX_ENTRIES;
		r = fidx_resize(w, cap);
		if (r < 0)
			return r;
	}
	r = ds_pwrite_all(w->fd, d->b, DS_DIGEST_LEN,
			  (off_t)(DS_INDEX_HEADER_LEN + (uint64_t)i * DS_FIDX_ENTRY_LEN));
	if (r < 0)
		return r;
	w->set[i / 8] |= (uint8_t)(1u << (i % 8));
	if (i >= w->used)
		w->used = i + 1;
	return 0;
}

int ds_fidx_writer_truncate(struct ds_fidx_writer *w, size_t n)
{
	if (w->done || w->size)
		return -EINVAL;
	for (size_t i = n; i < w->used; i++)
		w->set[i / 8] &= (uint8_t)~(1u << (i % 8));
	if (w->used > n)
		w->used = n;
	while (w->used > 0 && !bit_get(w->set, w->used - 1))
		w->used--;
	return 0;
}

static int pread_all(int fd, void *buf, size_t len, off_t off)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

/* index_csum over the digests as written, read back in batches so that a
 * huge image does not need its digest array in memory twice. */
static int fidx_csum(struct ds_fidx_writer *w, size_t n, struct ds_digest *ret)
{
	uint8_t buf[2048 * DS_FIDX_ENTRY_LEN];
	struct ds_sha256 *h = ds_sha256_new();
	size_t done = 0;
	int r = 0;

	if (!h)
		return -ENOMEM;
	while (done < n) {
		size_t k = n - done > 2048 ? 2048 : n - done;

		r = pread_all(w->fd, buf, k * DS_FIDX_ENTRY_LEN,
			      (off_t)(DS_INDEX_HEADER_LEN + (uint64_t)done * DS_FIDX_ENTRY_LEN));
		if (r < 0)
			goto out;
		ds_sha256_update(h, buf, k * DS_FIDX_ENTRY_LEN);
		done += k;
	}
	ds_sha256_final(h, ret);
out:
	ds_sha256_free(h);
	return r;
}

int ds_fidx_writer_commit(struct ds_fidx_writer *w, uint64_t final_size, bool do_fsync,
			  struct ds_digest *ret_csum, uint64_t *ret_size)
{
	uint8_t tail[16];
	struct ds_digest csum;
	uint64_t n;
	int fd, r;

	if (w->done)
		return -EINVAL;
	if (w->size && final_size != w->size) {
		ds_err("fidx %s: final size %llu differs from the declared %llu", w->name,
		       (unsigned long long)final_size, (unsigned long long)w->size);
		return -EINVAL;
	}
	n = chunk_count(final_size, w->chunk_size);
	if (n == 0) {
		/* PBS refuses too: "must have at least one chunk". */
		ds_err("fidx %s: an image needs at least one chunk", w->name);
		return -EINVAL;
	}
	if (n > w->cap || w->used > n) {
		ds_err("fidx %s: %zu chunks set, size %llu needs %llu", w->name, w->used,
		       (unsigned long long)final_size, (unsigned long long)n);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!bit_get(w->set, i)) {
			ds_err("fidx %s: chunk %zu was never set", w->name, i);
			return -EINVAL;
		}
	}
	r = fidx_csum(w, (size_t)n, &csum);
	if (r < 0)
		return r;
	r = ds_pwrite_all(w->fd, csum.b, DS_DIGEST_LEN, DS_INDEX_OFF_CSUM);
	if (r < 0)
		return r;
	ds_put_le64(tail, final_size);
	ds_put_le64(tail + 8, w->chunk_size);
	r = ds_pwrite_all(w->fd, tail, sizeof(tail), DS_FIDX_OFF_SIZE);
	if (r < 0)
		return r;
	if (ftruncate(w->fd, (off_t)(DS_INDEX_HEADER_LEN + n * DS_FIDX_ENTRY_LEN)) < 0)
		return -errno;
	fd = w->fd;
	w->fd = -1;
	w->done = true;
	r = ds_index_tmp_finish(fd, w->dirfd, w->tmp, w->name, do_fsync);
	if (r < 0)
		return r;
	if (ret_csum)
		*ret_csum = csum;
	if (ret_size)
		*ret_size = final_size;
	return 0;
}

void ds_fidx_writer_free(struct ds_fidx_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0) {
		close(w->fd);
		unlinkat(w->dirfd, w->tmp, 0);
	}
	if (w->dirfd >= 0)
		close(w->dirfd);
	free(w->set);
	free(w->tmp);
	free(w->name);
	free(w);
}
