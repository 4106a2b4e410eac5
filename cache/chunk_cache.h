/* chunk_cache — decoded chunks shared by every open file of every snapshot.
 *
 * Keyed by digest (so snapshots that share chunks share cache entries),
 * bounded in bytes of decoded data, least-recently-used eviction, and
 * single-flight on misses: when several threads want the same missing chunk,
 * one loads it and the others wait for that result. A failed load is not
 * cached (the next request retries) but every waiter of that flight with
 * the same loader context gets its errno; a get that waited for a
 * prefetch's load, or for a get's with another context, loads the chunk
 * itself instead when that fails.
 *
 * Entries are reference-counted: a struct ds_chunk_ref pins its data until
 * ds_chunk_cache_put, so eviction never frees bytes a reader is copying out.
 * Pinned entries still count against the budget; the budget may be exceeded
 * by at most the pinned entries.
 *
 * Not for: knowing how to load a chunk — the caller passes a loader (the fs
 * layer's loader reads through its struct ds_reader handle, so the cache
 * itself needs no handle and cannot bypass the handle rules).
 * Thread-safety: all functions are thread-safe.
 */
#ifndef DSFS_CACHE_CHUNK_CACHE_H
#define DSFS_CACHE_CHUNK_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "store/util.h"

struct ds_chunk_cache;

/* A pinned cache entry: data[0..len) is valid until ds_chunk_cache_put.
 * len is the chunk's length, except from ds_chunk_cache_get_part, where it
 * may be only the part of it decoded so far (at least what was wanted). */
struct ds_chunk_ref {
	const uint8_t *data;
	size_t len;
	void *priv; /* the entry; do not touch */
};

/* Loads the chunk named by d into buf (capacity cap, DS_MAX_CHUNK_SIZE)
 * and sets *ret_len. Returns 0 or -errno. Called without any cache lock. */
typedef int (*ds_chunk_loader)(void *ctx, const struct ds_digest *d, size_t expect_len,
			       uint8_t *buf, size_t cap, size_t *ret_len);

/* A load that may stop short of the whole chunk (ds_chunk_cache_get_part):
 * a reader that wants 4 KiB of a 4 MiB zstd chunk needs only the chunk's
 * start up to it decoded, and a later reader further in has the decode go
 * on from there instead of starting over. */
struct ds_chunk_part {
	size_t want;  /* in: bytes wanted from the chunk's start */
	size_t valid; /* in: bytes decoded into buf by earlier calls (0 at first);
		       * out: bytes decoded now, at least want (or all) */
	size_t len;   /* in: the chunk's length after the first call; out: it */
	void *state;  /* in: the continuation earlier calls left (NULL at first);
		       * out: the one to go on with while valid < len, else NULL */
};

struct ds_chunk_part_ops {
	/* Loads chunk d into buf (capacity cap, DS_MAX_CHUNK_SIZE): at first
	 * (p->state NULL) the whole chunk, or, when it can, only its first
	 * p->want bytes or a little more, leaving a continuation in p->state;
	 * later, from p->valid on, with that continuation, into the same buf,
	 * whose first p->valid bytes are as it left them; it may write past
	 * what it decodes, never before p->valid. A continuation it finishes
	 * it frees. On failure it leaves p->state to the cache, which frees
	 * it. Returns 0 or -errno. Called without any cache lock, one call per
	 * entry at a time. */
	int (*load)(void *ctx, const struct ds_digest *d, size_t expect_len, uint8_t *buf,
		    size_t cap, struct ds_chunk_part *p);
	void (*free_state)(void *state);
	size_t state_size; /* memory a continuation holds, charged to the budget */
};

/* A cache holding at most budget bytes of decoded chunk data (plus pinned
 * entries). Returns 0, -EINVAL (budget 0) or -ENOMEM. The budget counts the
 * memory entries hold: a chunk of 1 MiB or more is charged its length
 * rounded up to a transparent huge page (2 MiB) when THP is enabled, to a
 * page otherwise. Beyond it: one 16 MiB buffer per load in flight and up to
 * 4 free buffers kept for reuse. Prefetch threads (one per online CPU, at
 * most 8) start on the first prefetch. */
int ds_chunk_cache_new(size_t budget, struct ds_chunk_cache **ret);
/* Whether loaders may read the encoded chunk into their buffer past the
 * bytes they decode, as a load of an encrypted chunk does: a load in flight
 * then reserves twice the chunk's length in the budget, else once (a load
 * whose chunk turns out damaged may still go past it until it fails).
 * true by default; to be set before the cache is used. */
void ds_chunk_cache_set_raw_in_buffer(struct ds_chunk_cache *c, bool raw);
/* Frees the cache after draining the prefetch queue (every pending done()
 * runs); no entry may be pinned and no other call may be running. Accepts
 * NULL. */
void ds_chunk_cache_free(struct ds_chunk_cache *c);

/* Returns the chunk d, loading it with loader(ctx, …) on a miss (single
 * flight). expect_len is passed to the loader. On success *ret pins the
 * entry. Returns 0 or the loader's -errno (-ENOMEM on allocation failure);
 * -EBADMSG when expect_len is not 0 and the chunk, cached or loaded for
 * another caller, has another length (the entry stays cached), or when
 * expect_len is beyond DS_MAX_CHUNK_SIZE (nothing is loaded, reserved or
 * evicted for it). */
int ds_chunk_cache_get(struct ds_chunk_cache *c, const struct ds_digest *d, size_t expect_len,
		       ds_chunk_loader loader, void *ctx, struct ds_chunk_ref *ret);
/* Like _get, for a reader that needs only the chunk's first want bytes:
 * *ret may pin an entry holding only part of the chunk, ret->len >= want.
 * On a miss ops->load decides whether to stop short (chunks under 1 MiB
 * and want 0 or >= expect_len: the whole). A cached partial entry holding
 * less is decoded on in place by this caller, with ops->load and ctx,
 * while readers of its start go on reading it and others wanting more
 * wait. When that fails the entry is dropped and loaded again from its
 * start, once. A partial entry is charged its decoded pages plus
 * ops->state_size; _get of it (another loader) drops it and loads the
 * whole anew. Returns as _get. */
int ds_chunk_cache_get_part(struct ds_chunk_cache *c, const struct ds_digest *d,
			    size_t expect_len, size_t want, const struct ds_chunk_part_ops *ops,
			    void *ctx, struct ds_chunk_ref *ret);
/* Like _get, but never loads: 0 and *ret pinned when d is cached whole (a
 * hit, moved to the hot end); -ENOENT when it is not cached, still
 * loading, or partial; -EBADMSG as _get. */
int ds_chunk_cache_peek(struct ds_chunk_cache *c, const struct ds_digest *d, size_t expect_len,
			struct ds_chunk_ref *ret);
/* Unpins and clears *ref. Accepts a cleared ref. */
void ds_chunk_cache_put(struct ds_chunk_cache *c, struct ds_chunk_ref *ref);

/* Starts loading d in the background on one of the cache's worker threads
 * (prefetch), unless it is cached or being loaded. ctx must stay valid until
 * the load finishes: the cache calls done(ctx) afterwards (if not NULL).
 * Returns 0 when queued, 1 when nothing was needed (cached, being loaded
 * or already queued; a cached entry is moved to the hot end), -EAGAIN when
 * the queue (32 requests) is full — it never blocks — -EBADMSG when
 * expect_len is beyond DS_MAX_CHUNK_SIZE, or -errno of pthread_create.
 * done(ctx) is called exactly once, on a worker thread, iff 0 was
 * returned, whether or not the load succeeded (a failure only counts in
 * load_errors; a later get, or one waiting for it, retries). done must not
 * call _drain or _free. */
int ds_chunk_cache_prefetch(struct ds_chunk_cache *c, const struct ds_digest *d,
			    size_t expect_len, ds_chunk_loader loader, void *ctx,
			    void (*done)(void *ctx));
/* A sequential reader has passed chunk d (or a random reader reads it in
 * place from now on): when unpinned it goes to a short list of passed
 * chunks (8) instead of the hot end, from which the
 * oldest are dropped first and beyond 8 at once, its buffer reused by the
 * next load. So a long sequential read holds a few chunks, not the whole
 * budget, and does not push out what other readers use. A get, peek or
 * prefetch of d before it is dropped takes it back (another reader wants
 * it). Nothing happens when d is not cached. */
void ds_chunk_cache_drop_behind(struct ds_chunk_cache *c, const struct ds_digest *d);

/* Waits until every queued prefetch has finished. */
void ds_chunk_cache_drain(struct ds_chunk_cache *c);

/* hits: gets (and peeks) served from a cached entry; misses: gets that ran
 * the loader themselves; waits: gets that joined a load in flight (a get's
 * or a prefetch's) or waited for an extension; extends: gets that decoded
 * more of a partial entry themselves; so hits + misses + waits + extends
 * counts every get (a get that waits and then extends counts once, as a
 * wait). Prefetch loads count in none of these. partial: loads that
 * stopped short of the whole chunk. evictions: entries dropped, for the budget
 * or as passed by sequential readers; load_errors: failed loads and extensions
 * (flights, not waiters). bytes, entries: decoded bytes and number of
 * cached entries, pinned or not, not counting loads in flight. resident: the
 * memory the budget bounds (entries' mappings and blocks plus the pages of
 * pooled buffers kept for reuse); above it only while entries are pinned.
 * peak: the highest resident seen after a load. pooled: the part of
 * resident in pooled buffers. fresh_maps: buffers a load had to map (and
 * fault in) itself, with none in the pool; prefilled: buffers the workers
 * mapped and faulted in ahead of need. */
struct ds_chunk_cache_stats {
	uint64_t hits, misses, waits, extends, partial, evictions, load_errors, fresh_maps,
		prefilled;
	size_t bytes, entries, resident, peak, pooled;
};
void ds_chunk_cache_stats(struct ds_chunk_cache *c, struct ds_chunk_cache_stats *ret);

#endif
