/* Datastore lookups per second: the config cache against parse-per-lookup.
 * Built and run by scripts/bench-config; not part of the test suite.
 *
 * A lookup picks a random datastore name and reads its maintenance mode,
 * which is what every FUSE operation on a datastore needs to know. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/config_cache.h"
#include "store/config.h"
#include "store/util.h"

#define MAX_STORES 100000

static char **names;
static size_t n_names;
static volatile unsigned sink; /* keeps the lookups from being optimised away */

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static const char *random_name(uint64_t *rng)
{
	return names[xorshift(rng) % n_names];
}

/* Runs lookups until secs have passed; returns lookups per second. */
static double bench_cached(struct ds_config_cache *cc, double secs, uint64_t seed)
{
	uint64_t start = ds_now_ns(), end = start + (uint64_t)(secs * 1e9), n = 0, now;
	uint64_t rng = seed;

	do {
		for (int i = 0; i < 1024; i++) {
			struct ds_config_snap s;
			const struct ds_datastore_cfg *d;

			ds_config_cache_get(cc, &s);
			d = ds_config_find(s.cfg, random_name(&rng));
			if (!d)
				abort();
			sink += (unsigned)d->maintenance;
			ds_config_cache_put(cc, &s);
		}
		n += 1024;
		now = ds_now_ns();
	} while (now < end);
	return (double)n * 1e9 / (double)(now - start);
}

static double bench_parse(const char *path, double secs)
{
	uint64_t start = ds_now_ns(), end = start + (uint64_t)(secs * 1e9), n = 0, now;
	uint64_t rng = 42;

	do {
		struct ds_config *cfg;
		const struct ds_datastore_cfg *d;

		if (ds_config_load(path, &cfg) < 0)
			abort();
		d = ds_config_find(cfg, random_name(&rng));
		if (!d)
			abort();
		sink += (unsigned)d->maintenance;
		ds_config_free(cfg);
		n++;
		now = ds_now_ns();
	} while (now < end);
	return (double)n * 1e9 / (double)(now - start);
}

struct worker {
	pthread_t t;
	struct ds_config_cache *cc;
	double secs, rate;
	uint64_t seed;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	w->rate = bench_cached(w->cc, w->secs, w->seed);
	return NULL;
}

int main(int argc, char **argv)
{
	struct ds_config_cache *cc;
	struct ds_config_snap s;
	struct worker w[4];
	double secs = argc > 2 ? atof(argv[2]) : 2.0, cached, parsed, multi = 0;
	int r;

	if (argc < 2) {
		fprintf(stderr, "usage: %s DATASTORE.CFG [SECONDS]\n", argv[0]);
		return 2;
	}
	r = ds_config_cache_new(argv[1], "/nonexistent/config-versions", &cc);
	if (r < 0) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	ds_config_cache_get(cc, &s);
	n_names = s.cfg->n_stores;
	names = calloc(n_names, sizeof(*names));
	for (size_t i = 0; names && i < n_names; i++)
		names[i] = strdup(s.cfg->stores[i].name);
	ds_config_cache_put(cc, &s);
	if (!names || !n_names || n_names > MAX_STORES)
		return 1;

	cached = bench_cached(cc, secs, 7);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .cc = cc, .secs = secs, .seed = 1000 + (uint64_t)i };
		pthread_create(&w[i].t, NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(w[i].t, NULL);
		multi += w[i].rate;
	}
	parsed = bench_parse(argv[1], secs);

	printf("datastores:                     %zu\n", n_names);
	printf("cached (get+find+put), 1 thread: %12.0f lookups/s\n", cached);
	printf("cached, 4 threads (total):       %12.0f lookups/s\n", multi);
	printf("parse per lookup (load+find):    %12.0f lookups/s\n", parsed);
	printf("ratio cached/parse (1 thread):   %12.0fx\n", cached / parsed);
	printf("parses by the cache:             %12llu\n",
	       (unsigned long long)ds_config_cache_parses(cc));
	for (size_t i = 0; i < n_names; i++)
		free(names[i]);
	free(names);
	ds_config_cache_free(cc);
	return 0;
}
