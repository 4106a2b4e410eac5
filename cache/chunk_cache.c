#include "cache/chunk_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cache/chunk_cache_internal.h"
#include "store/log.h"

/* Decoded chunks live in anonymous mappings of their own, not in malloc'ed
 * blocks. Each buffer is a fixed DS_MAX_CHUNK_SIZE mapping (the loader
 * needs the capacity), 2 MiB aligned and marked for transparent huge pages;
 * after a load the pages past the chunk's length are given back with
 * MADV_DONTNEED, at huge-page granularity when THP is on, so that the
 * resident size follows the data without splitting huge pages. Evicted
 * buffers go to a small pool and are reused by the next load with their
 * pages still in place.
 *
 * Measured on a 2-vCPU guest, first-touch page faults cost ~13 ms per
 * 4 MiB with 4 KiB pages (~0.45 ms with huge pages) against ~3.5 ms to
 * decode and verify a 4 MiB chunk: a fresh buffer (malloc or mmap) per load
 * would cut the throughput of misses by more than half. With the pool, a
 * miss costs the load alone. (glibc's malloc of 16 MiB also mmaps, but after the first free it
 * raises its mmap threshold and serves such blocks from the heap.) The
 * mappings use MAP_NORESERVE: under strict overcommit (mode 2) every cached
 * entry commits 16 MiB.
 *
 * Chunks below COPY_MAX are copied into a malloc'ed block of their size and
 * the buffer goes back to the pool at once: a mapping per small chunk would
 * waste up to a huge page each and could exhaust vm.max_map_count. The
 * budget is enforced on what entries hold (cost: the trimmed mapping or the
 * block) plus the pool's resident pages and the room reserved for loads in
 * flight, so resident memory follows it;
 * stats.bytes reports the data. */
#define COPY_MAX (1 * DS_MIB)
/* Buffers the workers keep ready in the pool, their pages faulted in,
 * while the budget has room: a load on a reader's path then finds one
 * instead of faulting in fresh pages itself. On this project's VMs fresh
 * memory is slow (the host backs it on first touch): zeroing it was 37 %
 * of the daemon's time in `find` over a fresh mount. The workers do it on
 * the other core, ahead of need. */
#define PREFILL 2
#define PREFILL_SIZE (4 * DS_MIB)
/* Chunks a sequential reader has passed that are kept, oldest dropped
 * first: room for a second reader close behind (cmp of two snapshots, a
 * pxar file's neighbour in the same chunk) without letting a long read
 * push everything else out. */
#define BEHIND_MAX 8
#define INITIAL_BUCKETS 256

static size_t bucket_of(const struct ds_chunk_cache *c, const struct ds_digest *d)
{
	uint64_t h;

	/* SHA-256 output is uniform: its first bytes are hash enough. */
	memcpy(&h, d->b, sizeof(h));
	return (size_t)h & (c->nbuckets - 1);
}

struct entry *cc_lookup(struct ds_chunk_cache *c, const struct ds_digest *d)
{
	for (struct entry *e = c->buckets[bucket_of(c, d)]; e; e = e->hnext)
		if (ds_digest_eq(&e->d, d))
			return e;
	return NULL;
}

static void table_remove(struct ds_chunk_cache *c, struct entry *e)
{
	struct entry **pp = &c->buckets[bucket_of(c, &e->d)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->hnext = NULL;
	c->nentries--;
}

/* Doubling is best effort: a failed calloc only leaves chains longer. */
static void table_grow(struct ds_chunk_cache *c)
{
	size_t n = c->nbuckets * 2;
	struct entry **nb = calloc(n, sizeof(*nb));

	if (!nb)
		return;
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct entry *e = c->buckets[i], *next;

		for (; e; e = next) {
			uint64_t h;

			next = e->hnext;
			memcpy(&h, e->d.b, sizeof(h));
			e->hnext = nb[(size_t)h & (n - 1)];
			nb[(size_t)h & (n - 1)] = e;
		}
	}
	free(c->buckets);
	c->buckets = nb;
	c->nbuckets = n;
}

static void table_insert(struct ds_chunk_cache *c, struct entry *e)
{
	size_t i;

	if (c->nentries >= c->nbuckets)
		table_grow(c);
	i = bucket_of(c, &e->d);
	e->hnext = c->buckets[i];
	c->buckets[i] = e;
	c->nentries++;
}

/* Takes e off the LRU or the behind list, whichever it is on. */
void cc_lru_unlink(struct ds_chunk_cache *c, struct entry *e)
{
	e->lru_prev->lru_next = e->lru_next;
	e->lru_next->lru_prev = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
	if (e->behind)
		c->nbehind--;
}

/* An unpinned READY entry goes to the hot end of the LRU, or, when a
 * sequential reader has passed it, to the young end of the behind list. */
void cc_lru_push_front(struct ds_chunk_cache *c, struct entry *e)
{
	if (e->behind) {
		e->lru_next = &c->behind;
		e->lru_prev = c->behind.lru_prev;
		c->behind.lru_prev->lru_next = e;
		c->behind.lru_prev = e;
		c->nbehind++;
		return;
	}
	e->lru_prev = &c->lru;
	e->lru_next = c->lru.lru_next;
	c->lru.lru_next->lru_prev = e;
	c->lru.lru_next = e;
}

static void buf_unmap(struct buf *b)
{
	if (b->p)
		munmap(b->p, DS_MAX_CHUNK_SIZE);
	b->p = NULL;
	b->resident = 0;
}

/* A fresh mapping; the alignment and the huge-page advice are hints. */
static uint8_t *map_fresh(size_t align)
{
	const size_t len = DS_MAX_CHUNK_SIZE;
	uint8_t *p, *a;

	p = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	a = (uint8_t *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	if (p + align > a)
		munmap(a + len, (size_t)(p + align - a));
	madvise(a, len, MADV_HUGEPAGE);
	return a;
}

/* A buffer that holds want beats one that does not; among those that hold
 * it the smallest wins (keeping big ones for big chunks), among the rest the
 * largest. */
static bool better_fit(size_t cand, size_t cur, size_t want)
{
	if ((cand >= want) != (cur >= want))
		return cand >= want;
	return cand >= want ? cand < cur : cand > cur;
}

/* Whether a prefilled buffer would fit: the pool has a free slot and the
 * budget room, without evicting anything. Called under lock. */
static bool refill_room_locked(const struct ds_chunk_cache *c)
{
	return c->npool < PREFILL && c->pooled + PREFILL_SIZE <= c->budget / 4 &&
	       c->held + c->pooled + c->loading + PREFILL_SIZE <= c->budget;
}

/* Asks a worker to fill the pool, once workers run. Called under lock. */
void cc_want_refill_locked(struct ds_chunk_cache *c)
{
	if (c->nworkers > 0 && !c->refill && !c->stop && refill_room_locked(c)) {
		c->refill = true;
		pthread_cond_signal(&c->work);
	}
}

static bool pool_put_locked(struct ds_chunk_cache *c, struct buf *b);

/* A worker's share of want_refill: buffers mapped and faulted in outside
 * the lock, kept if there is still room. Called under lock, drops it. */
void cc_refill_locked(struct ds_chunk_cache *c)
{
	while (!c->stop && refill_room_locked(c)) {
		struct buf b = { NULL, PREFILL_SIZE };

		pthread_mutex_unlock(&c->lock);
		b.p = map_fresh(c->gran);
		if (b.p && madvise(b.p, PREFILL_SIZE, MADV_POPULATE_WRITE) < 0)
			for (size_t i = 0; i < PREFILL_SIZE; i += 4096)
				((volatile uint8_t *)b.p)[i] = 0; /* before Linux 5.14 */
		pthread_mutex_lock(&c->lock);
		if (!b.p)
			break;
		if (refill_room_locked(c) && pool_put_locked(c, &b)) {
			c->st.prefilled++;
		} else {
			pthread_mutex_unlock(&c->lock);
			buf_unmap(&b);
			pthread_mutex_lock(&c->lock);
		}
	}
	c->refill = false;
}

/* Returns a buffer, preferably a pooled one whose resident pages already
 * cover want bytes, so that the load touches as few fresh pages as it can. */
static int buf_get(struct ds_chunk_cache *c, size_t want, struct buf *ret)
{
	struct buf b = { NULL, 0 };
	int best = -1;

	pthread_mutex_lock(&c->lock);
	for (unsigned i = 0; i < c->npool; i++)
		if (best < 0 || better_fit(c->pool[i].resident, c->pool[best].resident, want))
			best = (int)i;
	if (best >= 0) {
		b = c->pool[best];
		c->pool[best] = c->pool[--c->npool];
		c->pooled -= b.resident;
	}
	if (!b.p)
		c->st.fresh_maps++;
	cc_want_refill_locked(c);
	pthread_mutex_unlock(&c->lock);

	if (!b.p) {
		b.p = map_fresh(c->gran);
		if (!b.p) {
			ds_err("chunk cache: cannot map a %llu-byte chunk buffer: %s",
			       (unsigned long long)DS_MAX_CHUNK_SIZE, strerror(errno));
			return -ENOMEM;
		}
	}
	*ret = b;
	return 0;
}

/* n rounded up to the trim granularity. */
static size_t gran_up(const struct ds_chunk_cache *c, size_t n)
{
	return (n + c->gran - 1) & ~(c->gran - 1);
}

/* Gives back the pages past len rounded up to the trim granularity. The
 * loader may have touched anything up to cap, so the whole tail goes. A
 * failed madvise only costs memory. */
static void buf_trim(struct ds_chunk_cache *c, struct buf *b, size_t len)
{
	size_t keep = gran_up(c, len);

	if (keep < DS_MAX_CHUNK_SIZE)
		madvise(b->p + keep, DS_MAX_CHUNK_SIZE - keep, MADV_DONTNEED);
	b->resident = keep;
}

/* Takes the buffer for the pool if there is room. Pooled pages are
 * resident memory too: they count against the budget (evict_locked), so a
 * full pool leaves that much less room for cached chunks; it may take at
 * most a quarter of the budget. Called under lock. */
static bool pool_put_locked(struct ds_chunk_cache *c, struct buf *b)
{
	if (c->npool == POOL_MAX || c->pooled + b->resident > c->budget / 4)
		return false;
	c->pooled += b->resident;
	c->pool[c->npool++] = *b;
	b->p = NULL;
	return true;
}

/* Takes a READY entry out of the table: freed with the victims when
 * unpinned, else an orphan its last unpin frees. Called under lock. */
static void drop_locked(struct ds_chunk_cache *c, struct entry *e, struct entry **victims)
{
	table_remove(c, e);
	c->st.bytes -= e->valid;
	c->held -= e->cost;
	c->st.entries--;
	if (e->refs == 0) {
		cc_lru_unlink(c, e);
		e->hnext = *victims;
		*victims = e;
	} else {
		e->orphan = true;
	}
}

/* Evicts unpinned entries from the cold end until the budget holds. The
 * victims are chained on *victims for release_victims once the lock is
 * dropped (munmap is not something to do under the table lock). */
static void evict_locked(struct ds_chunk_cache *c, struct entry **victims)
{
	for (;;) {
		struct entry *e;

		/* Passed chunks beyond BEHIND_MAX go at once, and first when
		 * room is needed; then the least recently used. */
		if (c->nbehind > BEHIND_MAX ||
		    (c->nbehind && c->held + c->pooled + c->loading > c->budget))
			e = c->behind.lru_next;
		else if (c->held + c->pooled + c->loading > c->budget && c->lru.lru_prev != &c->lru)
			e = c->lru.lru_prev;
		else
			break;
		drop_locked(c, e, victims);
		c->st.evictions++;
		if (e->b.p && pool_put_locked(c, &e->b))
			e->data = NULL;
	}
}

/* Frees a READY entry that nothing refers to any more. */
static void entry_free(struct entry *e)
{
	if (e->part)
		e->ops->free_state(e->part);
	if (e->b.p)
		buf_unmap(&e->b);
	else
		free((void *)e->data);
	free(e);
}

static void release_victims(struct entry *victims)
{
	while (victims) {
		struct entry *next = victims->hnext;

		entry_free(victims);
		victims = next;
	}
}

/* Drops a waiter's or the loader's reference on an entry that is not
 * READY; the last one frees a FAILED entry. Called under lock. */
static void unref_failed_locked(struct entry *e)
{
	if (--e->refs == 0 && e->state == FAILED)
		free(e);
}

/* Checks what a part loader returned (after an earlier call that left
 * prev_valid of prev_len bytes; 0, 0 at first); frees a state it left on
 * failure. */
static int part_result(const struct ds_chunk_part_ops *ops, int r, const struct ds_chunk_part *p,
		       size_t prev_valid, size_t prev_len)
{
	if (r == 0 && (p->len > DS_MAX_CHUNK_SIZE || (prev_len && p->len != prev_len) ||
		       p->valid > p->len || p->valid < prev_valid ||
		       p->valid < (p->want < p->len ? p->want : p->len) ||
		       (p->state != NULL) != (p->valid < p->len))) {
		ds_err("chunk cache: part loader returned %zu of %zu bytes (%zu wanted)", p->valid,
		       p->len, p->want);
		r = -EIO;
	}
	if (r != 0 && p->state)
		ops->free_state(p->state);
	return r > 0 ? -EIO : r;
}

/* Runs one flight for e (LOADING, in the table, one reference held by the
 * caller). On success e is READY and stays pinned by that reference. */
int cc_load(struct ds_chunk_cache *c, struct entry *e, size_t expect_len,
		const struct how *how)
{
	struct entry *victims = NULL;
	struct buf b = { NULL, 0 };
	struct ds_chunk_part p = { 0 };
	uint8_t *copy = NULL;
	size_t len = 0, valid, reserve = c->raw_in_buffer ? 2 * expect_len : expect_len;
	int r;

	/* A part: about what it wants (a loader that loads the whole after
	 * all is over the budget until the eviction after it). */
	if (how->ops && how->want < expect_len)
		reserve = gran_up(c, how->want) + c->gran;

	/* Room for what the load will decode (when the caller knows it) and,
	 * unless the loaders say they do not, for the encoded chunk read past
	 * it in the same buffer (at most about as large) is made before it
	 * runs: loads in flight count against the budget as cached chunks
	 * do. */
	pthread_mutex_lock(&c->lock);
	c->loading += reserve;
	evict_locked(c, &victims);
	pthread_mutex_unlock(&c->lock);
	release_victims(victims);
	victims = NULL;

	r = buf_get(c, expect_len ? expect_len : DS_MAX_CHUNK_SIZE, &b);
	if (r == 0 && how->ops) {
		p.want = how->want;
		r = how->ops->load(how->ctx, &e->d, expect_len, b.p, DS_MAX_CHUNK_SIZE, &p);
		r = part_result(how->ops, r, &p, 0, 0);
		len = p.len;
	} else if (r == 0) {
		r = how->loader(how->ctx, &e->d, expect_len, b.p, DS_MAX_CHUNK_SIZE, &len);
		if (r > 0 || (r == 0 && len > DS_MAX_CHUNK_SIZE)) {
			ds_err("chunk cache: loader returned %d with length %zu", r, len);
			r = -EIO;
		}
		p.valid = len;
	}
	valid = p.valid;
	/* Without memory for the copy, the chunk keeps its buffer; a partial
	 * one keeps it to be decoded on into. */
	if (r == 0 && len < COPY_MAX && valid == len) {
		copy = malloc(len ? len : 1);
		if (copy)
			memcpy(copy, b.p, len);
	}
	/* A buffer that stays with its chunk is trimmed to it; one going back
	 * to the pool keeps its warm pages up to where they are known to be. */
	if (b.p) {
		size_t keep = b.resident;

		if (r == 0 && (!copy || valid > keep))
			keep = valid;
		buf_trim(c, &b, keep);
	}

	pthread_mutex_lock(&c->lock);
	c->loading -= reserve;
	if (r == 0) {
		e->len = len;
		e->valid = valid;
		if (copy) {
			e->data = copy;
			e->cost = len;
			pool_put_locked(c, &b);
		} else {
			e->b = b;
			e->data = b.p;
			e->cost = b.resident;
			b.p = NULL;
		}
		if (p.state) {
			e->part = p.state;
			e->ops = how->ops;
			e->cost += how->ops->state_size;
			c->st.partial++;
		}
		e->state = READY;
		c->st.bytes += valid;
		c->st.entries++;
		c->held += e->cost;
		evict_locked(c, &victims);
		/* Highest after eviction: pinned entries and the pool can
		 * hold it above the budget, loads in flight cannot. */
		if (c->held + c->pooled > c->st.peak)
			c->st.peak = c->held + c->pooled;
	} else {
		e->state = FAILED;
		e->err = r;
		c->st.load_errors++;
		table_remove(c, e);
		unref_failed_locked(e);
		if (b.p)
			pool_put_locked(c, &b);
	}
	pthread_cond_broadcast(&c->flight_done);
	pthread_mutex_unlock(&c->lock);
	buf_unmap(&b);
	release_victims(victims);
	return r;
}

/* Inserts a LOADING entry for d. Called under lock; NULL on ENOMEM. */
struct entry *cc_start_flight_locked(struct ds_chunk_cache *c, const struct ds_digest *d)
{
	struct entry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->d = *d;
	e->state = LOADING;
	e->refs = 1;
	table_insert(c, e);
	return e;
}

/* Drops a pin of a READY entry; the last one of an orphan frees it. */
static void unpin_locked(struct ds_chunk_cache *c, struct entry *e, struct entry **victims)
{
	if (--e->refs > 0)
		return;
	if (e->orphan) {
		e->hnext = *victims;
		*victims = e;
		return;
	}
	cc_lru_push_front(c, e);
	evict_locked(c, victims);
}

void cc_unpin(struct ds_chunk_cache *c, struct entry *e)
{
	struct entry *victims = NULL;

	pthread_mutex_lock(&c->lock);
	unpin_locked(c, e, &victims);
	pthread_mutex_unlock(&c->lock);
	release_victims(victims);
}

/* e is pinned by the caller and READY, with valid bytes decoded when the
 * caller looked under lock: fills *ret, or unpins it when its length is
 * not the one expected. */
static int hand_out(struct ds_chunk_cache *c, struct entry *e, const struct ds_digest *d,
		    size_t expect_len, size_t valid, struct ds_chunk_ref *ret)
{
	/* A pinned READY entry's buffer and length never change, and its
	 * first valid bytes neither: no lock.
	 * The loader checked the length for the index that loaded the chunk;
	 * another index naming the same digest with another length is corrupt,
	 * and its reader must not be handed a chunk shorter than it thinks. */
	if (expect_len && e->len != expect_len) {
		char hex[DS_DIGEST_HEX_LEN + 1];

		ds_digest_to_hex(d, hex);
		ds_err("chunk %s: length %zu, index says %zu", hex, e->len, expect_len);
		cc_unpin(c, e);
		return -EBADMSG;
	}
	ret->data = e->data;
	ret->len = valid;
	ret->priv = e;
	return 0;
}

/* Decodes more of e (READY, pinned by the caller, partial, not being
 * extended, and how->ops its ops) until it holds how->want bytes. On
 * failure e is dropped, the caller's pin with it. Called under lock,
 * drops it meanwhile. */
static int extend_locked(struct ds_chunk_cache *c, struct entry *e, size_t expect_len,
			 const struct how *how, struct entry **victims)
{
	struct ds_chunk_part p = { .want = how->want, .valid = e->valid, .len = e->len,
				   .state = e->part };
	size_t prev = e->valid, reserve = e->len - e->valid;
	struct buf b = e->b;
	int r;

	e->extending = true;
	c->loading += reserve;
	evict_locked(c, victims);
	pthread_mutex_unlock(&c->lock);

	r = how->ops->load(how->ctx, &e->d, expect_len, b.p, DS_MAX_CHUNK_SIZE, &p);
	r = part_result(how->ops, r, &p, prev, e->len);
	/* The loader may write past what it decoded (zstd keeps literals
	 * there): as after a load, the tail goes. Only this extension
	 * touches the buffer's pages past valid, so no lock. */
	if (r == 0)
		buf_trim(c, &b, p.valid);

	pthread_mutex_lock(&c->lock);
	c->loading -= reserve;
	e->extending = false;
	if (r == 0) {
		size_t old_cost = e->cost;

		e->b.resident = b.resident;
		e->part = p.state;
		e->cost = e->b.resident + (e->part ? e->ops->state_size : 0);
		if (!e->orphan) {
			c->held += e->cost - old_cost;
			c->st.bytes += p.valid - prev;
		}
		e->valid = p.valid;
		evict_locked(c, victims);
		if (c->held + c->pooled > c->st.peak)
			c->st.peak = c->held + c->pooled;
	} else {
		e->part = NULL; /* freed by part_result */
		c->st.load_errors++;
		if (!e->orphan)
			drop_locked(c, e, victims);
		unpin_locked(c, e, victims);
	}
	pthread_cond_broadcast(&c->flight_done);
	return r;
}

/* _get and _get_part: a hit, a wait for another's load or extension, a
 * load, or an extension of a partial entry; counted once, as the first
 * of these it came to. */
static int get(struct ds_chunk_cache *c, const struct ds_digest *d, size_t expect_len,
	       const struct how *how, struct ds_chunk_ref *ret)
{
	struct entry *victims = NULL, *e;
	bool counted = false, retried = false;
	size_t valid;
	int r;

	/* No chunk is that long: a damaged index. Refused before a load
	 * reserves room for it, which would push out every cached chunk. */
	if (expect_len > DS_MAX_CHUNK_SIZE) {
		char hex[DS_DIGEST_HEX_LEN + 1];

		ds_digest_to_hex(d, hex);
		ds_err("chunk %s: index says %zu bytes, more than a chunk holds", hex, expect_len);
		return -EBADMSG;
	}
	pthread_mutex_lock(&c->lock);
again:
	e = cc_lookup(c, d);
	if (!e) {
		e = cc_start_flight_locked(c, d);
		if (!e) {
			pthread_mutex_unlock(&c->lock);
			release_victims(victims);
			return -ENOMEM;
		}
		e->ctx = how->ctx;
		if (!counted)
			c->st.misses++;
		pthread_mutex_unlock(&c->lock);
		release_victims(victims);
		r = cc_load(c, e, expect_len, how);
		if (r < 0)
			return r;
		pthread_mutex_lock(&c->lock);
		valid = e->valid;
		pthread_mutex_unlock(&c->lock);
		return hand_out(c, e, d, expect_len, valid, ret);
	}
	e->refs++;
	if (e->state == LOADING) {
		if (!counted)
			c->st.waits++;
		counted = true;
		while (e->state == LOADING)
			pthread_cond_wait(&c->flight_done, &c->lock);
		if (e->state == FAILED) {
			/* A prefetch's failure, or another file's, is its
			 * loader's (another archive's, another datastore's):
			 * this get tries with its own. */
			bool own = e->prefetch || e->ctx != how->ctx;

			r = e->err;
			unref_failed_locked(e);
			if (own)
				goto again;
			pthread_mutex_unlock(&c->lock);
			release_victims(victims);
			return r;
		}
	} else if (e->refs == 1) {
		cc_lru_unlink(c, e);
	}
	e->behind = false; /* wanted again */
	/* Pinned and READY: it holds enough, or more of it is decoded. */
	while (e->valid < how->want && e->valid < e->len) {
		if (e->orphan || how->ops != e->ops) {
			/* Only its own loader can go on with it: loaded anew. */
			if (!e->orphan)
				drop_locked(c, e, &victims);
			unpin_locked(c, e, &victims);
			goto again;
		}
		if (e->extending) {
			if (!counted)
				c->st.waits++;
			counted = true;
			pthread_cond_wait(&c->flight_done, &c->lock);
			continue;
		}
		if (!counted)
			c->st.extends++;
		counted = true;
		r = extend_locked(c, e, expect_len, how, &victims);
		if (r < 0) {
			/* Dropped: loaded again from its start, once. */
			if (retried) {
				pthread_mutex_unlock(&c->lock);
				release_victims(victims);
				return r;
			}
			retried = true;
			goto again;
		}
	}
	if (!counted)
		c->st.hits++;
	valid = e->valid;
	pthread_mutex_unlock(&c->lock);
	release_victims(victims);
	return hand_out(c, e, d, expect_len, valid, ret);
}

int ds_chunk_cache_get(struct ds_chunk_cache *c, const struct ds_digest *d, size_t expect_len,
		       ds_chunk_loader loader, void *ctx, struct ds_chunk_ref *ret)
{
	const struct how how = { loader, NULL, ctx, SIZE_MAX };

	if (!c || !d || !loader || !ret)
		return -EINVAL;
	return get(c, d, expect_len, &how, ret);
}

int ds_chunk_cache_get_part(struct ds_chunk_cache *c, const struct ds_digest *d,
			    size_t expect_len, size_t want, const struct ds_chunk_part_ops *ops,
			    void *ctx, struct ds_chunk_ref *ret)
{
	struct how how = { NULL, ops, ctx, want };

	if (!c || !d || !ops || !ops->load || !ops->free_state || !ret)
		return -EINVAL;
	/* Small chunks are copied whole into blocks of their own. */
	if (want == 0 || want >= expect_len || expect_len < COPY_MAX)
		how.want = SIZE_MAX;
	return get(c, d, expect_len, &how, ret);
}

int ds_chunk_cache_peek(struct ds_chunk_cache *c, const struct ds_digest *d, size_t expect_len,
			struct ds_chunk_ref *ret)
{
	struct entry *e;

	if (!c || !d || !ret)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	e = cc_lookup(c, d);
	if (!e || e->state != READY || e->valid < e->len) {
		pthread_mutex_unlock(&c->lock);
		return -ENOENT;
	}
	c->st.hits++;
	if (e->refs++ == 0)
		cc_lru_unlink(c, e);
	e->behind = false; /* wanted again */
	pthread_mutex_unlock(&c->lock);
	return hand_out(c, e, d, expect_len, e->len, ret);
}

void ds_chunk_cache_put(struct ds_chunk_cache *c, struct ds_chunk_ref *ref)
{
	if (!c || !ref || !ref->priv)
		return;
	cc_unpin(c, ref->priv);
	ref->data = NULL;
	ref->len = 0;
	ref->priv = NULL;
}

void ds_chunk_cache_drop_behind(struct ds_chunk_cache *c, const struct ds_digest *d)
{
	struct entry *victims = NULL, *e;

	if (!c || !d)
		return;
	pthread_mutex_lock(&c->lock);
	e = cc_lookup(c, d);
	if (e && e->state == READY && !e->behind) {
		if (e->refs == 0)
			cc_lru_unlink(c, e);
		e->behind = true;
		if (e->refs == 0)
			cc_lru_push_front(c, e);
		evict_locked(c, &victims);
	}
	pthread_mutex_unlock(&c->lock);
	release_victims(victims);
}

void ds_chunk_cache_stats(struct ds_chunk_cache *c, struct ds_chunk_cache_stats *ret)
{
	pthread_mutex_lock(&c->lock);
	*ret = c->st;
	ret->resident = c->held + c->pooled;
	ret->pooled = c->pooled;
	if (ret->resident > ret->peak)
		ret->peak = ret->resident;
	pthread_mutex_unlock(&c->lock);
}

/* Huge pages, when the kernel offers them (THP "always" or "madvise"). */
static size_t trim_granularity(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), huge = 0;
	char mode[128] = "";
	FILE *f;

	f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "re");
	if (f) {
		if (!fgets(mode, sizeof(mode), f))
			mode[0] = '\0';
		fclose(f);
	}
	if (!strstr(mode, "[always]") && !strstr(mode, "[madvise]"))
		return page;
	f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "re");
	if (f) {
		if (fscanf(f, "%zu", &huge) != 1)
			huge = 0;
		fclose(f);
	}
	/* A power of two the fixed buffer size is a multiple of, or nothing. */
	if (huge <= page || (huge & (huge - 1)) || DS_MAX_CHUNK_SIZE % huge)
		return page;
	return huge;
}

int ds_chunk_cache_new(size_t budget, struct ds_chunk_cache **ret)
{
	struct ds_chunk_cache *c;

	if (budget == 0 || !ret)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->nbuckets = INITIAL_BUCKETS;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return -ENOMEM;
	}
	c->budget = budget;
	c->gran = trim_granularity();
	c->raw_in_buffer = true;
	c->lru.lru_next = c->lru.lru_prev = &c->lru;
	c->behind.lru_next = c->behind.lru_prev = &c->behind;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->flight_done, NULL);
	pthread_cond_init(&c->work, NULL);
	pthread_cond_init(&c->idle, NULL);
	*ret = c;
	return 0;
}

void ds_chunk_cache_set_raw_in_buffer(struct ds_chunk_cache *c, bool raw)
{
	c->raw_in_buffer = raw;
}

void ds_chunk_cache_free(struct ds_chunk_cache *c)
{
	if (!c)
		return;
	ds_chunk_cache_drain(c);
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_broadcast(&c->work);
	pthread_mutex_unlock(&c->lock);
	for (unsigned i = 0; i < c->nworkers; i++)
		pthread_join(c->workers[i], NULL);

	for (size_t i = 0; i < c->nbuckets; i++) {
		struct entry *e = c->buckets[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			if (e->refs)
				ds_err("chunk cache: freed with a pinned chunk (%u references)",
				       e->refs);
			entry_free(e);
		}
	}
	for (unsigned i = 0; i < c->npool; i++)
		buf_unmap(&c->pool[i]);
	free(c->buckets);
	pthread_cond_destroy(&c->idle);
	pthread_cond_destroy(&c->work);
	pthread_cond_destroy(&c->flight_done);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
