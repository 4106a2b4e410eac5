/* chunk_cache internals, shared by chunk_cache.c (the table, LRU, buffers,
 * loads, gets and partial entries) and chunk_cache_prefetch.c (the
 * prefetch queue and its worker threads). Not a public API: the contract
 * is chunk_cache.h's. Functions named *_locked are called with c->lock
 * held. */
#ifndef DSFS_CACHE_CHUNK_CACHE_INTERNAL_H
#define DSFS_CACHE_CHUNK_CACHE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/chunk_cache.h"

#define POOL_MAX 4    /* free buffers kept for reuse */
#define QUEUE_LEN 32  /* prefetch requests */
#define MAX_WORKERS 8 /* prefetch threads */

enum entry_state { LOADING, READY, FAILED };

struct buf {
	uint8_t *p; /* DS_MAX_CHUNK_SIZE bytes mapped */
	size_t resident; /* bytes from p that may hold pages */
};

struct entry {
	struct ds_digest d;
	struct entry *hnext;             /* hash chain; victim list after eviction */
	struct entry *lru_prev, *lru_next; /* in the LRU only while READY and unpinned */
	struct buf b;     /* a large chunk's buffer; b.p == NULL for a copied one */
	const uint8_t *data; /* b.p or a malloc'ed block of len bytes */
	size_t len;
	/* Bytes of data decoded: len, or less for a partial entry
	 * (ds_chunk_cache_get_part), which then holds its loader's
	 * continuation in part. Grows only by an extension, under lock, which
	 * writes past valid only: pinned readers read below it. */
	size_t valid;
	void *part;
	const struct ds_chunk_part_ops *ops; /* part's */
	size_t cost;      /* memory held, charged against the budget */
	/* Pins of READY entries plus, while LOADING, the loading thread and the
	 * waiters; a FAILED entry is out of the table and freed by the last of
	 * its waiters. */
	unsigned refs;
	bool behind; /* passed by a sequential reader: the behind list when unpinned */
	bool extending; /* a get_part is decoding more of it, with a pin */
	/* Out of the table while pinned (replaced after a failed extension,
	 * or by a get wanting the whole of a partial entry): the last unpin
	 * frees it. Neither in the table nor on a list. */
	bool orphan;
	/* LOADING for a prefetch, with the prefetch's loader and context:
	 * a get that waited for it loads the chunk itself when it fails. */
	bool prefetch;
	/* LOADING for a get: its loader's context. A get with another one
	 * (another file, whose copy of the chunk may be in another
	 * datastore) that waited for it loads the chunk itself when it
	 * fails. */
	void *ctx;
	enum entry_state state;
	int err; /* FAILED: the loader's -errno */
};

struct prefetch_req {
	struct ds_digest d;
	size_t expect_len;
	ds_chunk_loader loader;
	void *ctx;
	void (*done)(void *ctx);
};

struct ds_chunk_cache {
	pthread_mutex_t lock;
	pthread_cond_t flight_done; /* broadcast whenever a flight ends */
	pthread_cond_t work;        /* queue not empty, or stopping */
	pthread_cond_t idle;        /* queue empty and no prefetch running */
	size_t budget;
	size_t gran; /* trim granularity: the THP size if THP is on, else a page */
	bool raw_in_buffer; /* ds_chunk_cache_set_raw_in_buffer; set before use */

	/* protected by lock: */
	struct entry **buckets;
	size_t nbuckets; /* power of two */
	size_t nentries; /* in the table: LOADING and READY */
	size_t held;     /* sum of cost of READY entries */
	struct entry lru; /* sentinel; lru.lru_next is the most recently used */
	struct entry behind; /* sentinel; behind.lru_next is the oldest passed */
	unsigned nbehind;
	struct buf pool[POOL_MAX];
	unsigned npool;
	size_t pooled;   /* sum of resident of the pool's buffers */
	size_t loading;  /* room reserved for the loads in flight */
	struct ds_chunk_cache_stats st;

	struct prefetch_req queue[QUEUE_LEN];
	unsigned qhead, qlen;
	unsigned active; /* prefetches popped and not finished */
	bool refill;     /* a worker is to fill the pool (or is at it) */
	bool stop;
	pthread_t workers[MAX_WORKERS];
	unsigned nworkers;
};

/* How a flight loads: with a loader of the whole chunk, or with part ops
 * that may stop after want bytes. */
struct how {
	ds_chunk_loader loader;
	const struct ds_chunk_part_ops *ops;
	void *ctx;
	size_t want;
};

/* The entry for d in the table (LOADING or READY), or NULL. Under lock. */
struct entry *cc_lookup(struct ds_chunk_cache *c, const struct ds_digest *d);
/* Inserts a LOADING entry for d, one reference held; NULL on ENOMEM. */
struct entry *cc_start_flight_locked(struct ds_chunk_cache *c, const struct ds_digest *d);
/* Runs the flight of e (without the lock): 0 with e READY and pinned by
 * the caller's reference, or -errno with e FAILED. */
int cc_load(struct ds_chunk_cache *c, struct entry *e, size_t expect_len, const struct how *how);
/* Drops a pin of a READY entry (takes the lock). */
void cc_unpin(struct ds_chunk_cache *c, struct entry *e);
/* Off the LRU or the behind list; onto the hot end of the one it belongs
 * to. Under lock. */
void cc_lru_unlink(struct ds_chunk_cache *c, struct entry *e);
void cc_lru_push_front(struct ds_chunk_cache *c, struct entry *e);
/* Asks a worker to fill the pool; a worker's share of it (drops the
 * lock meanwhile). */
void cc_want_refill_locked(struct ds_chunk_cache *c);
void cc_refill_locked(struct ds_chunk_cache *c);

#endif
