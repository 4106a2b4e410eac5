/* The content of a file being written into a snapshot through the mount.
 *
 * Images (NAME.img → fixed index, 4 MiB chunks): a write lands in the buffer
 * of its chunk; a chunk whose every byte has been written is encoded and
 * inserted at once, so a sequential writer streams straight into the chunk
 * store. At most VW_MEM_CHUNKS partly written chunks are held in memory; the
 * least recently written one beyond that is moved to a staging file (an
 * unnamed O_TMPFILE in the snapshot directory, gone with the process however
 * it ends) and completed there. A write into a chunk already inserted loads
 * it back. On finish, chunks never written become the zero chunk.
 * A chunk completed by a write is compressed, hashed and inserted on one of
 * VW_WORKERS encoding threads (shared by all files) while the writer goes
 * on: at most VW_INFLIGHT chunks per file are in flight, and anything that
 * needs one of them (a rewrite, a read-back, truncate, finish, free) waits
 * for it. Both cores work on a sequential `cp`.
 *
 * Other names (blob or dynamic index): bytes appended at the end are kept in
 * memory up to VW_BLOB_MAX, then fed to the PBS chunker (a dynamic index);
 * writing past the end appends zeros. A write before the end of a stream
 * already being chunked moves it to the staging file (the chunks written so
 * far are read back) and the stream is chunked from there on finish.
 */
#include "fs/mount/vfs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/backup.h"
#include "store/datastore.h"
#include "store/index.h"
#include "store/log.h"

#define VW_CS DS_FIDX_DEFAULT_CHUNK_SIZE
#define VW_MEM_CHUNKS 8
#define VW_BLOB_MAX (1 * DS_MIB)
#define VW_WORKERS 2
#define VW_INFLIGHT 4

/* C_ENC: complete, being encoded by a worker (its buffer is the job's). */
enum cstate { C_EMPTY, C_PART, C_ENC, C_DONE };

struct ivl {
	uint64_t a, b; /* [a, b) */
};

/* A partly written image chunk. */
struct part {
	size_t idx;
	uint8_t *buf; /* NULL: the data is in the staging file */
	struct ivl *iv;
	size_t niv, cap;
	uint64_t tick;
	bool reloaded; /* loaded back from the store: flushed on eviction only */
	bool used;
	bool stale;    /* buf outside iv may hold an earlier chunk's bytes */
};

struct dchunk {
	uint64_t end;
	struct ds_digest d;
};

struct vwfile {
	pthread_mutex_t lock;
	pthread_mutex_t *blk; /* the session's: around ds_backup calls */
	struct ds_backup *b;
	const struct ds_reader *rd;
	const struct ds_crypt *crypt;
	int snapfd;
	char server[300];
	bool image;
	int err;        /* sticky: a failed insert fails every later call */
	uint64_t size;  /* logical size */
	int stagefd;    /* -1 until needed */
	uint64_t tick;
	struct ds_archive_writer *aw;
	bool pooled;           /* the workers encode its chunks */
	unsigned inflight;     /* chunks with the encoding workers */
	pthread_cond_t cond;   /* a chunk came back from a worker */
	/* image */
	uint8_t *cst;          /* enum cstate per chunk */
	uint32_t *slot;        /* C_PART: index into parts */
	struct ds_digest *dg;  /* C_DONE: the digest */
	uint32_t *dlen;        /* C_DONE: the chunk length inserted */
	size_t nci;
	struct part *parts;
	size_t nparts;
	unsigned in_mem;
	/* stream */
	uint8_t *small;        /* the first VW_BLOB_MAX bytes, while small */
	bool streaming, staged;
	struct dchunk *dch;
	size_t ndch, capdch;
};

/* --- intervals --- */

static int ivl_add(struct part *p, uint64_t a, uint64_t b)
{
	size_t i = 0, j;

	while (i < p->niv && p->iv[i].b < a)
		i++;
	j = i;
	while (j < p->niv && p->iv[j].a <= b) {
		if (p->iv[j].a < a)
			a = p->iv[j].a;
		if (p->iv[j].b > b)
			b = p->iv[j].b;
		j++;
	}
	if (j == i) {
		if (p->niv == p->cap) {
			size_t nc = p->cap ? 2 * p->cap : 4;
			struct ivl *n = realloc(p->iv, nc * sizeof(*n));

			if (!n)
				return -ENOMEM;
			p->iv = n;
			p->cap = nc;
		}
		memmove(p->iv + i + 1, p->iv + i, (p->niv - i) * sizeof(*p->iv));
		p->niv++;
	} else if (j > i + 1) {
		memmove(p->iv + i + 1, p->iv + j, (p->niv - j) * sizeof(*p->iv));
		p->niv -= j - i - 1;
	}
	p->iv[i].a = a;
	p->iv[i].b = b;
	return 0;
}

static void ivl_clip(struct part *p, uint64_t end)
{
	size_t n = 0;

	for (size_t i = 0; i < p->niv; i++) {
		if (p->iv[i].a >= end)
			break;
		if (p->iv[i].b > end)
			p->iv[i].b = end;
		n++;
	}
	p->niv = n;
}

static bool ivl_full(const struct part *p, uint64_t len)
{
	return p->niv == 1 && p->iv[0].a == 0 && p->iv[0].b >= len;
}

/* Zeroes the bytes of out, which holds the chunk's bytes [from, from + n),
 * that no write of the part covers. */
static void zero_gaps(const struct part *p, uint8_t *out, uint64_t from, size_t n)
{
	uint64_t at = from, end = from + n;

	for (size_t i = 0; i < p->niv && at < end; i++) {
		if (p->iv[i].a > at)
			memset(out + (at - from), 0, (p->iv[i].a < end ? p->iv[i].a : end) - at);
		if (p->iv[i].b > at)
			at = p->iv[i].b;
	}
	if (at < end)
		memset(out + (at - from), 0, end - at);
}

/* --- staging file --- */

static int stage_open(struct vwfile *w)
{
	if (w->stagefd >= 0)
		return 0;
	w->stagefd = openat(w->snapfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (w->stagefd < 0) {
		int r = -errno;

		ds_err("%s: cannot create a staging file: %s", w->server, strerror(-r));
		return r;
	}
	return 0;
}

static int stage_pread(struct vwfile *w, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(w->stagefd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			memset(p, 0, len); /* past the end: a hole */
			return 0;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* n bytes of staged part p from coff on. Only what the part's writes
 * cover is taken from the staging file: its other bytes are punched holes,
 * unless punching failed or is not supported there, and then they may
 * still hold a dropped part's bytes. */
static int stage_read_part(struct vwfile *w, const struct part *p, uint8_t *out, uint64_t coff,
			   size_t n)
{
	int r = stage_pread(w, out, n, (uint64_t)p->idx * VW_CS + coff);

	if (r == 0)
		zero_gaps(p, out, coff, n);
	return r;
}

static void stage_punch(struct vwfile *w, uint64_t off, uint64_t len)
{
	if (w->stagefd >= 0)
		fallocate(w->stagefd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			  (off_t)len);
}

/* --- images --- */

static int grow(struct vwfile *w, size_t need)
{
	size_t n = w->nci ? w->nci : 64;
	uint8_t *cst;
	uint32_t *slot, *dlen;
	struct ds_digest *dg;

	if (need <= w->nci)
		return 0;
	while (n < need)
		n *= 2;
	cst = realloc(w->cst, n);
	if (cst)
		w->cst = cst;
	slot = realloc(w->slot, n * sizeof(*slot));
	if (slot)
		w->slot = slot;
	dg = realloc(w->dg, n * sizeof(*dg));
	if (dg)
		w->dg = dg;
	dlen = realloc(w->dlen, n * sizeof(*dlen));
	if (dlen)
		w->dlen = dlen;
	if (!cst || !slot || !dg || !dlen)
		return -ENOMEM;
	memset(w->cst + w->nci, C_EMPTY, n - w->nci);
	w->nci = n;
	return 0;
}

/* --- chunk buffers ---
 *
 * A 4 MiB malloc is a fresh mapping: every page of it faults in, zeroed by
 * the kernel, as the writer fills it, and goes back to the kernel on free.
 * For a `cp` that is 1,024 faults per chunk, a fifth of the daemon's time
 * when the chunks are known and only hashed. So the buffers of finished
 * chunks are kept, up to VW_SPARE of them, while any image is open, and
 * the last image to close lets them go. A reused buffer is not zeroed: the
 * bytes outside what was written are zeroed only when something reads
 * them (part_clean), which a sequential writer never makes happen.
 */
#define VW_SPARE (VW_INFLIGHT + VW_WORKERS)

static struct {
	pthread_mutex_t mu;
	uint8_t *buf[VW_SPARE];
	unsigned n;
	unsigned users; /* open images */
} spare = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* A chunk buffer; *ret_stale tells whether it may hold old bytes. */
static uint8_t *cbuf_get(bool *ret_stale)
{
	uint8_t *b = NULL;

	pthread_mutex_lock(&spare.mu);
	if (spare.n > 0)
		b = spare.buf[--spare.n];
	pthread_mutex_unlock(&spare.mu);
	*ret_stale = b != NULL;
	return b ? b : calloc(1, VW_CS);
}

static void cbuf_put(uint8_t *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&spare.mu);
	if (spare.users > 0 && spare.n < VW_SPARE) {
		spare.buf[spare.n++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&spare.mu);
	free(b);
}

static void spare_hold(void)
{
	pthread_mutex_lock(&spare.mu);
	spare.users++;
	pthread_mutex_unlock(&spare.mu);
}

/* One image fewer; with none open, the spare buffers are freed. */
static void spare_release(bool held)
{
	uint8_t *drop[VW_SPARE];
	unsigned n = 0;

	pthread_mutex_lock(&spare.mu);
	if (held)
		spare.users--;
	if (spare.users == 0) {
		n = spare.n;
		memcpy(drop, spare.buf, n * sizeof(*drop));
		spare.n = 0;
	}
	pthread_mutex_unlock(&spare.mu);
	for (unsigned i = 0; i < n; i++)
		free(drop[i]);
}

/* Zeroes what of p's buffer was not written, before it is read whole. */
static void part_clean(struct part *p)
{
	if (!p->buf || !p->stale)
		return;
	zero_gaps(p, p->buf, 0, VW_CS);
	p->stale = false;
}

/* --- the encoding workers --- */

struct job {
	struct vwfile *w;
	size_t idx, len;
	uint8_t *buf;
	struct job *next;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct job *head, *tail;
	pthread_t th[VW_WORKERS];
	unsigned started;
	bool stop;
} pool = { .mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		struct ds_digest d;
		struct vwfile *w;
		struct job *j;
		int r;

		pthread_mutex_lock(&pool.mu);
		while (!pool.head && !pool.stop)
			pthread_cond_wait(&pool.cond, &pool.mu);
		j = pool.head;
		if (j) {
			pool.head = j->next;
			if (!pool.head)
				pool.tail = NULL;
		}
		pthread_mutex_unlock(&pool.mu);
		if (!j)
			return NULL; /* stopping, queue empty */
		w = j->w;
		r = ds_archive_encode_chunk(w->aw, j->buf, j->len, &d);
		pthread_mutex_lock(&w->lock);
		if (r == 0)
			r = ds_archive_set_fixed_digest(w->aw, j->idx, &d);
		if (r == 0) {
			w->dg[j->idx] = d;
			w->dlen[j->idx] = (uint32_t)j->len;
			w->cst[j->idx] = C_DONE;
		} else {
			ds_err("%s: chunk %zu: %s", w->server, j->idx, strerror(-r));
			w->cst[j->idx] = C_EMPTY;
			if (!w->err)
				w->err = r;
		}
		w->inflight--;
		pthread_cond_broadcast(&w->cond);
		/* w may be freed as soon as the lock is dropped. */
		pthread_mutex_unlock(&w->lock);
		cbuf_put(j->buf);
		free(j);
	}
}

/* Starts the workers on first use. Returns 0 or -errno. */
static int pool_start(void)
{
	int r = 0;

	pthread_mutex_lock(&pool.mu);
	pool.stop = false;
	while (pool.started < VW_WORKERS) {
		r = -pthread_create(&pool.th[pool.started], NULL, worker, NULL);
		if (r < 0)
			break;
		pool.started++;
	}
	if (pool.started > 0)
		r = 0; /* one worker is enough to make progress */
	pthread_mutex_unlock(&pool.mu);
	return r;
}

void vw_pool_stop(void)
{
	pthread_mutex_lock(&pool.mu);
	pool.stop = true;
	pthread_cond_broadcast(&pool.cond);
	pthread_mutex_unlock(&pool.mu);
	for (unsigned i = 0; i < pool.started; i++)
		pthread_join(pool.th[i], NULL);
	pool.started = 0;
	spare_release(false);
}

/* w->lock held: waits until chunk idx is back from the workers. */
static void wait_chunk(struct vwfile *w, size_t idx)
{
	while (idx < w->nci && w->cst[idx] == C_ENC)
		pthread_cond_wait(&w->cond, &w->lock);
}

/* w->lock held: waits until at most max chunks are in flight. */
static void wait_inflight(struct vwfile *w, unsigned max)
{
	while (w->inflight > max)
		pthread_cond_wait(&w->cond, &w->lock);
}

static struct part *part_of(struct vwfile *w, size_t idx)
{
	return &w->parts[w->slot[idx]];
}

static void part_drop(struct vwfile *w, struct part *p)
{
	if (p->buf) {
		cbuf_put(p->buf);
		w->in_mem--;
	} else {
		stage_punch(w, (uint64_t)p->idx * VW_CS, VW_CS);
	}
	free(p->iv);
	w->cst[p->idx] = C_EMPTY;
	memset(p, 0, sizeof(*p));
}

/* The bytes of chunk idx as they are now (len bytes). */
static int chunk_data(struct vwfile *w, size_t idx, uint8_t *out, size_t len)
{
	switch (w->cst[idx]) {
	case C_EMPTY:
		memset(out, 0, len);
		return 0;
	case C_PART: {
		struct part *p = part_of(w, idx);

		if (p->buf) {
			part_clean(p);
			memcpy(out, p->buf, len);
			return 0;
		}
		return stage_read_part(w, p, out, 0, len);
	}
	default: {
		size_t got = 0;
		int r;

		memset(out, 0, len);
		/* cap = the length: the bytes of out past it stay as they
		 * are (a load may use spare room as scratch space). */
		r = ds_reader_load_chunk(w->rd, &w->dg[idx], w->crypt, w->dlen[idx], out,
					 w->dlen[idx], &got);
		if (r < 0)
			ds_err("%s: cannot read back chunk %zu: %s", w->server, idx, strerror(-r));
		return r;
	}
	}
}

/* Inserts chunk idx (len bytes from data) and records it. */
static int put(struct vwfile *w, size_t idx, const uint8_t *data, size_t len)
{
	int r = ds_archive_put_fixed_chunk(w->aw, idx, data, len, &w->dg[idx]);

	if (r < 0)
		return r;
	w->dlen[idx] = (uint32_t)len;
	return 0;
}

/* Inserts a partly written chunk as it is (len bytes) and frees its part. */
static int part_flush(struct vwfile *w, struct part *p, size_t len)
{
	size_t idx = p->idx;
	uint8_t *tmp = NULL;
	const uint8_t *data = p->buf;
	int r;

	part_clean(p);
	if (!data) {
		tmp = malloc(VW_CS);
		if (!tmp)
			return -ENOMEM;
		r = stage_read_part(w, p, tmp, 0, len);
		if (r < 0) {
			free(tmp);
			return r;
		}
		data = tmp;
	}
	r = put(w, idx, data, len);
	free(tmp);
	if (r < 0)
		return r;
	part_drop(w, p);
	w->cst[idx] = C_DONE;
	return 0;
}

/* Hands a complete chunk (all VW_CS bytes written) to the workers, or
 * inserts it here when it is staged or there are no workers. The part is
 * freed either way. */
static int part_submit(struct vwfile *w, struct part *p)
{
	size_t idx = p->idx;
	struct job *j;

	if (!p->buf || !w->pooled || !(j = malloc(sizeof(*j))))
		return part_flush(w, p, VW_CS);
	*j = (struct job){ .w = w, .idx = idx, .len = VW_CS, .buf = p->buf };
	p->buf = NULL;
	w->in_mem--;
	free(p->iv);
	memset(p, 0, sizeof(*p));
	w->cst[idx] = C_ENC;
	w->inflight++;
	pthread_mutex_lock(&pool.mu);
	if (pool.tail)
		pool.tail->next = j;
	else
		pool.head = j;
	pool.tail = j;
	pthread_cond_signal(&pool.cond);
	pthread_mutex_unlock(&pool.mu);
	return 0;
}

/* Makes room for one more chunk in memory: the least recently written one
 * goes to the staging file (or, when it is complete, into the store). */
static int evict(struct vwfile *w)
{
	struct part *old = NULL;
	int r;

	while (w->in_mem >= VW_MEM_CHUNKS) {
		for (size_t i = 0; i < w->nparts; i++) {
			struct part *p = &w->parts[i];

			if (p->used && p->buf && (!old || p->tick < old->tick))
				old = p;
		}
		if (!old)
			return -EIO;
		if (ivl_full(old, VW_CS))
			return part_flush(w, old, VW_CS);
		r = stage_open(w);
		if (r < 0)
			return r;
		for (size_t i = 0; i < old->niv; i++) {
			r = ds_pwrite_all(w->stagefd, old->buf + old->iv[i].a,
					  old->iv[i].b - old->iv[i].a,
					  (off_t)((uint64_t)old->idx * VW_CS + old->iv[i].a));
			if (r < 0) {
				ds_err("%s: staging file: %s", w->server, strerror(-r));
				return r;
			}
		}
		cbuf_put(old->buf);
		old->buf = NULL;
		w->in_mem--;
		old = NULL;
	}
	return 0;
}

static int part_new(struct vwfile *w, size_t idx, struct part **ret)
{
	struct part *p = NULL;
	size_t s;
	int r;

	r = evict(w);
	if (r < 0)
		return r;
	for (s = 0; s < w->nparts; s++)
		if (!w->parts[s].used)
			break;
	if (s == w->nparts) {
		struct part *np = realloc(w->parts, (w->nparts + 1) * sizeof(*np));

		if (!np)
			return -ENOMEM;
		w->parts = np;
		memset(&w->parts[w->nparts++], 0, sizeof(*p));
	}
	p = &w->parts[s];
	p->buf = cbuf_get(&p->stale);
	if (!p->buf)
		return -ENOMEM;
	p->used = true;
	p->idx = idx;
	w->in_mem++;
	w->slot[idx] = (uint32_t)s;
	w->cst[idx] = C_PART;
	*ret = p;
	return 0;
}

static int image_write(struct vwfile *w, const uint8_t *data, size_t len, uint64_t off)
{
	while (len > 0) {
		size_t idx = (size_t)(off / VW_CS);
		uint64_t coff = off % VW_CS;
		size_t n = VW_CS - coff < len ? (size_t)(VW_CS - coff) : len;
		struct part *p;
		int r;

		r = grow(w, idx + 1);
		if (r < 0)
			return r;
		wait_chunk(w, idx); /* a rewrite of a chunk being encoded */
		if (w->err)
			return w->err;
		if (w->cst[idx] == C_PART) {
			p = part_of(w, idx);
		} else {
			bool was_done = w->cst[idx] == C_DONE;
			size_t old_len = was_done ? w->dlen[idx] : 0;

			r = part_new(w, idx, &p);
			if (r < 0)
				return r;
			if (was_done) {
				/* Rewriting an inserted chunk: start from its data. */
				w->cst[idx] = C_DONE;
				r = chunk_data(w, idx, p->buf, old_len);
				w->cst[idx] = C_PART;
				if (r == 0)
					r = ivl_add(p, 0, old_len);
				if (r < 0) {
					part_drop(w, p);
					return r;
				}
				p->reloaded = true;
			}
		}
		p->tick = ++w->tick;
		if (p->buf) {
			memcpy(p->buf + coff, data, n);
		} else {
			r = ds_pwrite_all(w->stagefd, data, n, (off_t)(off));
			if (r < 0)
				return r;
		}
		r = ivl_add(p, coff, coff + n);
		if (r < 0)
			return r;
		if (!p->reloaded && ivl_full(p, VW_CS)) {
			r = part_submit(w, p);
			if (r < 0)
				return r;
		}
		data += n;
		off += n;
		len -= n;
	}
	return 0;
}

static int image_read(struct vwfile *w, uint8_t *out, size_t len, uint64_t off)
{
	uint8_t *tmp = NULL;
	int r = 0;

	while (len > 0 && r == 0) {
		size_t idx = (size_t)(off / VW_CS);
		uint64_t coff = off % VW_CS;
		size_t n = VW_CS - coff < len ? (size_t)(VW_CS - coff) : len;

		wait_chunk(w, idx);
		if (w->err) {
			r = w->err;
			break;
		}
		if (idx >= w->nci || w->cst[idx] == C_EMPTY) {
			memset(out, 0, n);
		} else if (w->cst[idx] == C_PART && part_of(w, idx)->buf) {
			part_clean(part_of(w, idx));
			memcpy(out, part_of(w, idx)->buf + coff, n);
		} else if (w->cst[idx] == C_PART) {
			r = stage_read_part(w, part_of(w, idx), out, coff, n);
		} else {
			if (!tmp && !(tmp = malloc(VW_CS)))
				r = -ENOMEM;
			if (r == 0)
				r = chunk_data(w, idx, tmp, VW_CS);
			if (r == 0)
				memcpy(out, tmp + coff, n);
		}
		out += n;
		off += n;
		len -= n;
	}
	free(tmp);
	return r;
}

/* Cuts the image to size: chunks past it are dropped, the last one's tail
 * is zeroed. */
static int image_truncate(struct vwfile *w, uint64_t size)
{
	size_t last = (size_t)(size / VW_CS);
	uint64_t tail = size % VW_CS;

	wait_inflight(w, 0);
	if (w->err)
		return w->err;
	for (size_t i = last; i < w->nci; i++) {
		if (i == last && tail) {
			if (w->cst[i] == C_DONE) {
				struct part *p;
				int r = part_new(w, i, &p);

				if (r < 0)
					return r;
				w->cst[i] = C_DONE;
				r = chunk_data(w, i, p->buf, w->dlen[i]);
				w->cst[i] = C_PART;
				if (r == 0)
					r = ivl_add(p, 0, w->dlen[i]);
				if (r < 0) {
					part_drop(w, p);
					return r;
				}
				p->reloaded = true;
			}
			if (w->cst[i] == C_PART) {
				struct part *p = part_of(w, i);

				if (p->buf)
					memset(p->buf + tail, 0, VW_CS - tail);
				else
					stage_punch(w, (uint64_t)i * VW_CS + tail, VW_CS - tail);
				ivl_clip(p, tail);
			}
			continue;
		}
		if (w->cst[i] == C_PART)
			part_drop(w, part_of(w, i));
		w->cst[i] = C_EMPTY;
	}
	/* The chunks dropped may be in the index already: the commit of the
	 * smaller image would refuse them. */
	return ds_archive_truncate_fixed(w->aw, size);
}

static int image_finish(struct vwfile *w)
{
	size_t n = (size_t)((w->size + VW_CS - 1) / VW_CS);
	/* A never-written full chunk put already: the zero chunk, whose
	 * digest stands for every other one (a sparse image of 1 TiB has
	 * 262,144; each put cost about 0.17 ms here, zeroing, checking and
	 * touching its file). */
	size_t zi = SIZE_MAX;
	uint8_t *buf = NULL;
	int r;

	wait_inflight(w, 0);
	if (w->err)
		return w->err;
	r = grow(w, n + 1);

	for (size_t i = 0; i < n && r == 0; i++) {
		size_t len = i + 1 < n || w->size % VW_CS == 0 ? VW_CS : (size_t)(w->size % VW_CS);

		if (w->cst[i] == C_DONE && w->dlen[i] == len)
			continue;
		if (w->cst[i] == C_PART && part_of(w, i)->buf) {
			r = part_flush(w, part_of(w, i), len);
			continue;
		}
		if (w->cst[i] == C_EMPTY && len == VW_CS && zi != SIZE_MAX) {
			r = ds_archive_repeat_fixed_chunk(w->aw, i, &w->dg[zi], len);
			if (r == 0) {
				w->dg[i] = w->dg[zi];
				w->dlen[i] = (uint32_t)len;
				w->cst[i] = C_DONE;
			}
			continue;
		}
		if (w->cst[i] == C_EMPTY && len == VW_CS)
			zi = i; /* once put below */
		if (!buf && !(buf = malloc(VW_CS))) {
			r = -ENOMEM;
			break;
		}
		/* Never written (zeros), staged, or inserted with another
		 * length (the image grew or shrank past it). */
		r = chunk_data(w, i, buf, w->cst[i] == C_DONE ? w->dlen[i] : len);
		if (r == 0 && w->cst[i] == C_DONE && w->dlen[i] < len)
			memset(buf + w->dlen[i], 0, len - w->dlen[i]);
		if (r == 0)
			r = put(w, i, buf, len);
		if (r == 0 && w->cst[i] == C_PART)
			part_drop(w, part_of(w, i));
		if (r == 0)
			w->cst[i] = C_DONE;
	}
	free(buf);
	if (r < 0)
		return r;
	pthread_mutex_lock(w->blk);
	r = ds_archive_finish(w->aw, w->size);
	pthread_mutex_unlock(w->blk);
	w->aw = NULL;
	return r;
}

/* --- streams --- */

static void stream_chunk_cut(void *ctx, uint64_t end, const struct ds_digest *d)
{
	struct vwfile *w = ctx;

	if (w->err)
		return;
	if (w->ndch == w->capdch) {
		size_t nc = w->capdch ? 2 * w->capdch : 64;
		struct dchunk *n = realloc(w->dch, nc * sizeof(*n));

		if (!n) {
			w->err = -ENOMEM;
			return;
		}
		w->dch = n;
		w->capdch = nc;
	}
	w->dch[w->ndch].end = end;
	w->dch[w->ndch].d = *d;
	w->ndch++;
}

static int stream_begin(struct vwfile *w)
{
	int r;

	pthread_mutex_lock(w->blk);
	r = ds_backup_dynamic_begin(w->b, w->server, DS_DYNAMIC_DEFAULT_AVG, &w->aw);
	pthread_mutex_unlock(w->blk);
	if (r < 0)
		return r;
	ds_archive_set_chunk_fn(w->aw, stream_chunk_cut, w);
	return 0;
}

/* The server name of a stream: a blob while small, else a dynamic index. */
static void stream_name(struct vwfile *w, bool blob)
{
	char *dot = strrchr(w->server, '.');

	strcpy(dot, blob ? ".blob" : ".didx");
}

/* Appends len bytes (data, or zeros when data is NULL) at the end. */
static int stream_append(struct vwfile *w, const uint8_t *data, size_t len)
{
	static const uint8_t zeros[64 * 1024];
	int r;

	if (!w->streaming && w->size + len <= VW_BLOB_MAX) {
		if (data)
			memcpy(w->small + w->size, data, len);
		else
			memset(w->small + w->size, 0, len);
		w->size += len;
		return 0;
	}
	if (!w->streaming) {
		stream_name(w, false);
		r = stream_begin(w);
		if (r == 0)
			r = ds_archive_write(w->aw, w->small, (size_t)w->size);
		if (r < 0)
			return r;
		free(w->small);
		w->small = NULL;
		w->streaming = true;
	}
	while (len > 0) {
		size_t n = data || len < sizeof(zeros) ? len : sizeof(zeros);

		r = ds_archive_write(w->aw, data ? data : zeros, n);
		if (r < 0)
			return r;
		if (data)
			data += n;
		w->size += n;
		len -= n;
	}
	return w->err;
}

/* Moves a stream that is being chunked to the staging file. */
static int stream_stage(struct vwfile *w)
{
	uint8_t *buf = NULL;
	uint64_t start = 0;
	const uint8_t *pend;
	size_t pend_len;
	int r;

	r = stage_open(w);
	if (r < 0)
		return r;
	if (!w->streaming) {
		r = ds_pwrite_all(w->stagefd, w->small, (size_t)w->size, 0);
		if (r == 0) {
			free(w->small);
			w->small = NULL;
			w->staged = true;
		}
		return r;
	}
	buf = malloc(4 * DS_DYNAMIC_DEFAULT_AVG);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < w->ndch && r == 0; i++) {
		size_t len = (size_t)(w->dch[i].end - start), got;

		r = ds_reader_load_chunk(w->rd, &w->dch[i].d, w->crypt, len, buf,
					 4 * DS_DYNAMIC_DEFAULT_AVG, &got);
		if (r == 0)
			r = ds_pwrite_all(w->stagefd, buf, len, (off_t)start);
		start = w->dch[i].end;
	}
	free(buf);
	if (r < 0)
		return r;
	ds_archive_pending(w->aw, &pend, &pend_len);
	r = ds_pwrite_all(w->stagefd, pend, pend_len, (off_t)start);
	if (r < 0)
		return r;
	ds_archive_abort(w->aw); /* the chunks stay, for GC to judge */
	w->aw = NULL;
	w->streaming = false;
	w->staged = true;
	return 0;
}

static int stream_write(struct vwfile *w, const uint8_t *data, size_t len, uint64_t off)
{
	int r;

	if (!w->staged && off >= w->size) {
		r = stream_append(w, NULL, (size_t)(off - w->size));
		return r < 0 ? r : stream_append(w, data, len);
	}
	if (!w->staged && !w->streaming && off + len <= VW_BLOB_MAX) {
		memcpy(w->small + off, data, len); /* rewrite inside the buffer */
		if (off + len > w->size)
			w->size = off + len;
		return 0;
	}
	if (!w->staged) {
		r = stream_stage(w);
		if (r < 0)
			return r;
	}
	r = ds_pwrite_all(w->stagefd, data, len, (off_t)off);
	if (r == 0 && off + len > w->size)
		w->size = off + len;
	return r;
}

static int stream_read(struct vwfile *w, uint8_t *out, size_t len, uint64_t off)
{
	if (w->staged)
		return stage_pread(w, out, len, off);
	if (w->streaming) {
		int r = stream_stage(w); /* chunks would have to be read back */

		return r < 0 ? r : stage_pread(w, out, len, off);
	}
	memcpy(out, w->small + off, len);
	return 0;
}

static int stream_truncate(struct vwfile *w, uint64_t size)
{
	int r;

	if (!w->staged && size >= w->size)
		return stream_append(w, NULL, (size_t)(size - w->size));
	if (!w->staged && !w->streaming) {
		w->size = size;
		return 0;
	}
	if (!w->staged && (r = stream_stage(w)) < 0)
		return r;
	if (ftruncate(w->stagefd, (off_t)size) < 0)
		return -errno;
	w->size = size;
	return 0;
}

static int stream_finish(struct vwfile *w)
{
	uint8_t *buf = NULL;
	bool pxar = false;
	int r;

	{
		const char *ext = strrchr(w->server, '.');
		char base[300];

		snprintf(base, sizeof(base), "%.*s", (int)(ext - w->server), w->server);
		ext = strrchr(base, '.');
		/* pxar and catalog streams are always dynamic indexes. */
		pxar = ext && (strcmp(ext, ".pxar") == 0 || strcmp(ext, ".mpxar") == 0 ||
			       strcmp(ext, ".ppxar") == 0 || strcmp(ext, ".pcat1") == 0);
	}
	if (w->staged && w->size <= VW_BLOB_MAX && !pxar) {
		buf = malloc(w->size ? (size_t)w->size : 1);
		if (!buf)
			return -ENOMEM;
		r = stage_pread(w, buf, (size_t)w->size, 0);
		if (r < 0)
			goto out;
		free(w->small);
		w->small = buf;
		buf = NULL;
		w->staged = false;
	}
	if (!w->staged && !w->streaming) {
		if (!pxar) {
			stream_name(w, true);
			pthread_mutex_lock(w->blk);
			r = ds_backup_add_blob(w->b, w->server, w->small, (size_t)w->size);
			pthread_mutex_unlock(w->blk);
			goto out;
		}
		stream_name(w, false);
		r = stream_begin(w);
		if (r == 0)
			r = ds_archive_write(w->aw, w->small, (size_t)w->size);
		if (r < 0)
			goto out;
		w->streaming = true;
	}
	if (w->staged) {
		uint64_t off = 0;

		stream_name(w, false);
		r = stream_begin(w);
		buf = malloc(DS_MIB);
		if (!buf)
			r = -ENOMEM;
		while (r == 0 && off < w->size) {
			size_t n = w->size - off < DS_MIB ? (size_t)(w->size - off) : DS_MIB;

			r = stage_pread(w, buf, n, off);
			if (r == 0)
				r = ds_archive_write(w->aw, buf, n);
			off += n;
		}
		if (r < 0)
			goto out;
	}
	if (w->err) {
		r = w->err;
		goto out;
	}
	pthread_mutex_lock(w->blk);
	r = ds_archive_finish(w->aw, 0);
	pthread_mutex_unlock(w->blk);
	w->aw = NULL;
out:
	free(buf);
	return r;
}

/* --- the interface --- */

int vw_new(struct ds_backup *b, pthread_mutex_t *blk, const struct ds_reader *rd,
	   const struct ds_crypt *crypt, int snapfd, const char *server, struct vwfile **ret)
{
	struct vwfile *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->b = b;
	w->blk = blk;
	w->rd = rd;
	w->crypt = crypt;
	w->snapfd = snapfd;
	w->stagefd = -1;
	snprintf(w->server, sizeof(w->server), "%s", server);
	w->image = ds_archive_kind(server) == DS_ARCHIVE_FIDX;
	if (w->image) {
		pthread_mutex_lock(blk);
		r = ds_backup_fixed_begin(b, server, 0, VW_CS, &w->aw);
		pthread_mutex_unlock(blk);
		w->pooled = r == 0 && pool_start() == 0;
		spare_hold();
	} else {
		w->small = malloc(VW_BLOB_MAX);
		r = w->small ? 0 : -ENOMEM;
	}
	if (r < 0) {
		vw_free(w);
		return r;
	}
	*ret = w;
	return 0;
}

ssize_t vw_write(struct vwfile *w, const void *buf, size_t len, uint64_t off)
{
	int r;

	if (off + len < off || off + len > (UINT64_C(1) << 50))
		return -EFBIG;
	pthread_mutex_lock(&w->lock);
	if (w->image)
		wait_inflight(w, VW_INFLIGHT - 1); /* bounded memory */
	r = w->err;
	if (r == 0) {
		if (w->image) {
			r = image_write(w, buf, len, off);
			if (r == 0 && off + len > w->size)
				w->size = off + len;
		} else {
			r = stream_write(w, buf, len, off);
		}
		if (r < 0)
			w->err = r;
	}
	pthread_mutex_unlock(&w->lock);
	return r < 0 ? r : (ssize_t)len;
}

ssize_t vw_read(struct vwfile *w, void *buf, size_t len, uint64_t off)
{
	int r;

	pthread_mutex_lock(&w->lock);
	if (off >= w->size)
		len = 0;
	else if (len > w->size - off)
		len = (size_t)(w->size - off);
	r = w->err;
	if (r == 0 && len > 0)
		r = w->image ? image_read(w, buf, len, off) : stream_read(w, buf, len, off);
	pthread_mutex_unlock(&w->lock);
	return r < 0 ? r : (ssize_t)len;
}

int vw_truncate(struct vwfile *w, uint64_t size)
{
	int r;

	if (size > (UINT64_C(1) << 50))
		return -EFBIG;
	pthread_mutex_lock(&w->lock);
	r = w->err;
	if (r == 0 && w->image) {
		if (size < w->size)
			r = image_truncate(w, size);
		if (r == 0)
			w->size = size;
	} else if (r == 0) {
		r = stream_truncate(w, size);
	}
	if (r < 0)
		w->err = r;
	pthread_mutex_unlock(&w->lock);
	return r;
}

uint64_t vw_size(struct vwfile *w)
{
	uint64_t s;

	pthread_mutex_lock(&w->lock);
	s = w->size;
	pthread_mutex_unlock(&w->lock);
	return s;
}

int vw_error(struct vwfile *w)
{
	int r;

	pthread_mutex_lock(&w->lock);
	/* close(2) and fsync(2) report the inserts of chunks still with the
	 * workers too. */
	wait_inflight(w, 0);
	r = w->err;
	pthread_mutex_unlock(&w->lock);
	return r;
}

int vw_finish(struct vwfile *w, char *ret_server, size_t len)
{
	int r;

	pthread_mutex_lock(&w->lock);
	r = w->err;
	if (r == 0)
		r = w->image ? image_finish(w) : stream_finish(w);
	if (r < 0)
		w->err = r;
	snprintf(ret_server, len, "%s", w->server);
	pthread_mutex_unlock(&w->lock);
	return r;
}

void vw_wait(struct vwfile *w)
{
	pthread_mutex_lock(&w->lock);
	wait_inflight(w, 0);
	pthread_mutex_unlock(&w->lock);
}

void vw_free(struct vwfile *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	wait_inflight(w, 0); /* the workers use w and its archive */
	pthread_mutex_unlock(&w->lock);
	ds_archive_abort(w->aw);
	for (size_t i = 0; i < w->nparts; i++)
		if (w->parts[i].used) {
			cbuf_put(w->parts[i].buf);
			free(w->parts[i].iv);
		}
	if (w->image)
		spare_release(true);
	free(w->parts);
	free(w->cst);
	free(w->slot);
	free(w->dg);
	free(w->dlen);
	free(w->small);
	free(w->dch);
	if (w->stagefd >= 0)
		close(w->stagefd);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
