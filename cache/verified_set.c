#include "cache/verified_set.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 4

struct slot {
	struct ds_digest d;
	struct ds_chunk_file f; /* f.size 0: empty */
	uint64_t used;          /* s->clock when last added or found */
};

struct ds_verified_set {
	pthread_mutex_t lock;
	size_t nsets; /* power of two */
	uint64_t clock;
	struct slot *slots; /* nsets * WAYS */
};

int ds_verified_set_new(size_t capacity, struct ds_verified_set **ret)
{
	struct ds_verified_set *s;
	size_t nsets = 1;

	if (capacity == 0)
		return -EINVAL;
	while (nsets * WAYS < capacity)
		nsets *= 2;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->slots = calloc(nsets * WAYS, sizeof(*s->slots));
	if (!s->slots) {
		free(s);
		return -ENOMEM;
	}
	s->nsets = nsets;
	pthread_mutex_init(&s->lock, NULL);
	*ret = s;
	return 0;
}

void ds_verified_set_free(struct ds_verified_set *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s->slots);
	free(s);
}

/* The WAYS slots d may live in. SHA-256 output is uniform: its first bytes
 * are hash enough. */
static struct slot *set_of(struct ds_verified_set *s, const struct ds_digest *d)
{
	uint64_t h;

	memcpy(&h, d->b, sizeof(h));
	return &s->slots[(h & (s->nsets - 1)) * WAYS];
}

static struct slot *find_locked(struct ds_verified_set *s, const struct ds_digest *d)
{
	struct slot *set = set_of(s, d);

	for (int i = 0; i < WAYS; i++)
		if (set[i].f.size && ds_digest_eq(&set[i].d, d))
			return &set[i];
	return NULL;
}

void ds_verified_set_add(struct ds_verified_set *s, const struct ds_digest *d,
			 const struct ds_chunk_file *f)
{
	struct slot *e;

	if (!f->size)
		return;
	pthread_mutex_lock(&s->lock);
	e = find_locked(s, d);
	if (!e) {
		struct slot *set = set_of(s, d);

		/* An empty slot has used 0, older than any other. */
		e = &set[0];
		for (int i = 1; i < WAYS; i++)
			if (set[i].used < e->used)
				e = &set[i];
	}
	e->d = *d;
	e->f = *f;
	e->used = ++s->clock;
	pthread_mutex_unlock(&s->lock);
}

bool ds_verified_set_find(struct ds_verified_set *s, const struct ds_digest *d,
			  struct ds_chunk_file *ret)
{
	struct slot *e;

	pthread_mutex_lock(&s->lock);
	e = find_locked(s, d);
	if (e) {
		*ret = e->f;
		e->used = ++s->clock;
	}
	pthread_mutex_unlock(&s->lock);
	return e != NULL;
}

void ds_verified_set_forget(struct ds_verified_set *s, const struct ds_digest *d,
			    const struct ds_chunk_file *f)
{
	struct slot *e;

	pthread_mutex_lock(&s->lock);
	e = find_locked(s, d);
	if (e && ds_chunk_file_same(&e->f, f))
		memset(e, 0, sizeof(*e));
	pthread_mutex_unlock(&s->lock);
}
