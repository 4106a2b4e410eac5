/* chunk_cache's prefetch: a bounded queue of chunks to load ahead of
 * sequential readers, and the worker threads that load them (and keep the
 * pool of prefilled buffers full when no prefetch waits). See
 * chunk_cache.h for the contract. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "cache/chunk_cache_internal.h"
#include "store/log.h"

static bool queued_locked(const struct ds_chunk_cache *c, const struct ds_digest *d)
{
	for (unsigned i = 0; i < c->qlen; i++)
		if (ds_digest_eq(&c->queue[(c->qhead + i) % QUEUE_LEN].d, d))
			return true;
	return false;
}

static void *worker_main(void *arg)
{
	struct ds_chunk_cache *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		struct prefetch_req req;
		struct entry *e = NULL;

		while (c->qlen == 0 && !c->refill && !c->stop)
			pthread_cond_wait(&c->work, &c->lock);
		/* Prefetches first; the pool is filled when none waits. */
		if (c->qlen == 0 && c->refill && !c->stop) {
			cc_refill_locked(c);
			continue;
		}
		/* Stopping still empties the queue: every queued done() runs. */
		if (c->qlen == 0)
			break;
		req = c->queue[c->qhead];
		c->qhead = (c->qhead + 1) % QUEUE_LEN;
		c->qlen--;
		c->active++;
		/* A chunk that got cached or is being loaded since it was queued
		 * needs nothing more; waiting on its flight would only idle a
		 * worker. */
		if (!cc_lookup(c, &req.d)) {
			e = cc_start_flight_locked(c, &req.d);
			if (e)
				e->prefetch = true;
		}
		pthread_mutex_unlock(&c->lock);

		if (e) {
			const struct how how = { req.loader, NULL, req.ctx, SIZE_MAX };

			if (cc_load(c, e, req.expect_len, &how) == 0)
				cc_unpin(c, e);
		}
		if (req.done)
			req.done(req.ctx);

		pthread_mutex_lock(&c->lock);
		c->active--;
		if (c->qlen == 0 && c->active == 0)
			pthread_cond_broadcast(&c->idle);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Started on the first prefetch, so caches that never prefetch (the CLI)
 * run no threads. Workers block all signals: they belong to the process's
 * main loop (FUSE's session handlers). Called under lock. */
static int start_workers_locked(struct ds_chunk_cache *c)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned want = ncpu < 1 ? 1 : ncpu > MAX_WORKERS ? MAX_WORKERS : (unsigned)ncpu;
	sigset_t all, old;
	int r = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (c->nworkers < want) {
		r = pthread_create(&c->workers[c->nworkers], NULL, worker_main, c);
		if (r != 0)
			break;
		c->nworkers++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (c->nworkers == 0) {
		ds_err("chunk cache: cannot start a prefetch thread: %s", strerror(r));
		return -r;
	}
	cc_want_refill_locked(c);
	return 0;
}

int ds_chunk_cache_prefetch(struct ds_chunk_cache *c, const struct ds_digest *d,
			    size_t expect_len, ds_chunk_loader loader, void *ctx,
			    void (*done)(void *ctx))
{
	struct prefetch_req *q;
	struct entry *e;
	int r;

	if (!c || !d || !loader)
		return -EINVAL;
	/* No chunk is that long (a damaged index): the get names it. */
	if (expect_len > DS_MAX_CHUNK_SIZE)
		return -EBADMSG;

	pthread_mutex_lock(&c->lock);
	e = cc_lookup(c, d);
	if (e) {
		/* About to be read: keep it away from the cold end, and
		 * off the passed list when it is unpinned. */
		if (e->state == READY && e->refs == 0) {
			cc_lru_unlink(c, e);
			e->behind = false;
			cc_lru_push_front(c, e);
		} else if (e->state == READY) {
			e->behind = false;
		}
		r = 1;
		goto out;
	}
	if (queued_locked(c, d)) {
		r = 1;
		goto out;
	}
	if (c->qlen == QUEUE_LEN) {
		r = -EAGAIN;
		goto out;
	}
	if (c->nworkers == 0) {
		r = start_workers_locked(c);
		if (r < 0)
			goto out;
	}
	q = &c->queue[(c->qhead + c->qlen) % QUEUE_LEN];
	q->d = *d;
	q->expect_len = expect_len;
	q->loader = loader;
	q->ctx = ctx;
	q->done = done;
	c->qlen++;
	pthread_cond_signal(&c->work);
	r = 0;
out:
	pthread_mutex_unlock(&c->lock);
	return r;
}

void ds_chunk_cache_drain(struct ds_chunk_cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	while (c->qlen > 0 || c->active > 0)
		pthread_cond_wait(&c->idle, &c->lock);
	pthread_mutex_unlock(&c->lock);
}
