/* Dynamic index (.didx, spec §3.2): reader checks, lookup and the writer. */
#include "store/index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/index_internal.h"
#include "store/log.h"

static uint64_t entry_end(const struct ds_index *idx, size_t i)
{
	return ds_le64(idx->data + DS_INDEX_HEADER_LEN + i * DS_DIDX_ENTRY_LEN);
}

int ds_didx_validate(struct ds_index *idx, const char *what)
{
	size_t body = idx->len - DS_INDEX_HEADER_LEN;
	uint64_t prev = 0;
	size_t n;

	if (body % DS_DIDX_ENTRY_LEN != 0) {
		ds_err("didx %s: %zu entry bytes, not a multiple of %d", what, body,
		       DS_DIDX_ENTRY_LEN);
		return -EBADMSG;
	}
	n = body / DS_DIDX_ENTRY_LEN;
	/* PBS does not check this, but its binary search silently returns
	 * wrong chunks without it; refusing here turns that into -EBADMSG.
	 * An empty chunk (end == previous end, or a first end of 0) is
	 * refused too: no PBS writer produces one. */
	for (size_t i = 0; i < n; i++) {
		uint64_t end = entry_end(idx, i);

		if (end <= prev) {
			ds_err("didx %s: entry %zu ends at %llu, not after %llu", what, i,
			       (unsigned long long)end, (unsigned long long)prev);
			return -EBADMSG;
		}
		prev = end;
	}
	idx->count = n;
	idx->size = prev;
	idx->chunk_size = 0;
	return 0;
}

void ds_didx_chunk(const struct ds_index *idx, size_t i, struct ds_index_chunk *ret)
{
	const uint8_t *e = idx->data + DS_INDEX_HEADER_LEN + i * DS_DIDX_ENTRY_LEN;

	ret->start = i ? entry_end(idx, i - 1) : 0;
	ret->end = ds_le64(e);
	memcpy(ret->digest.b, e + 8, DS_DIGEST_LEN);
}

size_t ds_didx_find(const struct ds_index *idx, uint64_t off)
{
	/* First entry whose end lies beyond off; exists because off < size. */
	size_t lo = 0, hi = idx->count - 1;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (entry_end(idx, mid) > off)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* --- writer --- */

/* Entries are buffered and written in batches of this many. */
#define DIDX_BATCH 1024

struct ds_didx_writer {
	int fd;
	int dirfd;          /* private duplicate */
	char *name;
	char *tmp;
	struct ds_sha256 *sha; /* running index_csum over the raw entries */
	uint64_t last_end;
	size_t buffered;
	int err;            /* sticky: the first write error */
	bool done;
	uint8_t buf[DIDX_BATCH * DS_DIDX_ENTRY_LEN];
};

int ds_didx_writer_new(int dirfd, const char *name, struct ds_didx_writer **ret)
{
	struct ds_didx_writer *w;
	int r;

	if (!name || !*name)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->dirfd = -1;
	w->name = strdup(name);
	w->sha = ds_sha256_new();
	if (!w->name || !w->sha) {
		r = -ENOMEM;
		goto fail;
	}
	r = ds_index_tmp_create(dirfd, name, "tmp_didx", ds_didx_magic, NULL, &w->fd,
				&w->dirfd, &w->tmp);
	if (r < 0)
		goto fail;
	*ret = w;
	return 0;

fail:
	ds_didx_writer_free(w);
	return r;
}

static int didx_flush(struct ds_didx_writer *w)
{
	int r;

	if (w->err)
		return w->err;
	if (!w->buffered)
		return 0;
	/* The descriptor's offset follows the header and earlier batches. */
	r = ds_write_all(w->fd, w->buf, w->buffered * DS_DIDX_ENTRY_LEN);
	if (r < 0) {
		w->err = r;
		return r;
	}
	w->buffered = 0;
	return 0;
}

int ds_didx_writer_append(struct ds_didx_writer *w, uint64_t end, const struct ds_digest *d)
{
	uint8_t *e;

	if (w->done)
		return -EINVAL;
	if (w->err)
		return w->err;
	if (end <= w->last_end) {
		ds_err("didx %s: chunk end %llu does not follow %llu", w->name,
		       (unsigned long long)end, (unsigned long long)w->last_end);
		return -EINVAL;
	}
	if (w->buffered == DIDX_BATCH) {
		int r = didx_flush(w);

		if (r < 0)
			return r;
	}
	e = w->buf + w->buffered * DS_DIDX_ENTRY_LEN;
	ds_put_le64(e, end);
	memcpy(e + 8, d->b, DS_DIGEST_LEN);
	ds_sha256_update(w->sha, e, DS_DIDX_ENTRY_LEN);
	w->buffered++;
	w->last_end = end;
	return 0;
}

int ds_didx_writer_commit(struct ds_didx_writer *w, bool do_fsync, struct ds_digest *ret_csum,
			  uint64_t *ret_size)
{
	struct ds_digest csum;
	int fd, r;

	if (w->done)
		return -EINVAL;
	r = didx_flush(w);
	if (r < 0)
		return r;
	ds_sha256_final(w->sha, &csum);
	r = ds_pwrite_all(w->fd, csum.b, DS_DIGEST_LEN, DS_INDEX_OFF_CSUM);
	if (r < 0) {
		/* The running hash is spent; this writer cannot commit again. */
		w->err = r;
		return r;
	}
	fd = w->fd;
	w->fd = -1;
	w->done = true;
	r = ds_index_tmp_finish(fd, w->dirfd, w->tmp, w->name, do_fsync);
	if (r < 0)
		return r;
	if (ret_csum)
		*ret_csum = csum;
	if (ret_size)
		*ret_size = w->last_end;
	return 0;
}

void ds_didx_writer_free(struct ds_didx_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0) {
		close(w->fd);
		unlinkat(w->dirfd, w->tmp, 0);
	}
	if (w->dirfd >= 0)
		close(w->dirfd);
	ds_sha256_free(w->sha);
	free(w->tmp);
	free(w->name);
	free(w);
}
