/* Suite for cache/chunk_cache: accounting, LRU order, budget, pinning,
 * single flight, failed flights, prefetch, and a multi-threaded stress run.
 * cmocka's asserts are not thread-safe, so threads record what they saw and
 * the main thread asserts after joining them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/chunk_cache.h"
#include "store/util.h"

#define NTHREADS 8

/* The fake loader: bytes derived from the digest, a call counter, one
 * digest that fails, an optional delay, and a gate that holds loads until
 * opened. Configuration is written only while no load runs. */
struct fake {
	atomic_int calls;
	atomic_int done_calls;
	bool fixed;       /* every chunk fixed_len bytes; else derived from the digest: */
	size_t fixed_len;
	bool big;         /* 1..3 MiB (kept in their load buffers), else 1..8 KiB (copied) */
	unsigned sleep_ms;
	bool fail_set;
	struct ds_digest fail;
	int fail_err;
	bool bad_len; /* report a length beyond cap */
	bool part_fail; /* fake_part_load: extensions fail (-ESTALE) */
	bool part_fail_all; /* and loads from the start too */
	atomic_int part_calls;
	atomic_int ext_calls; /* part_calls that went on from a continuation */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cv;
	bool gated;
};

static void fake_init(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->gate_lock, NULL);
	pthread_cond_init(&f->gate_cv, NULL);
}

static void fake_release(struct fake *f)
{
	pthread_cond_destroy(&f->gate_cv);
	pthread_mutex_destroy(&f->gate_lock);
}

static void fake_gate(struct fake *f, bool closed)
{
	pthread_mutex_lock(&f->gate_lock);
	f->gated = closed;
	pthread_cond_broadcast(&f->gate_cv);
	pthread_mutex_unlock(&f->gate_lock);
}

/* Loads of d fail with err. */
static void fake_fail(struct fake *f, struct ds_digest d, int err)
{
	f->fail_set = true;
	f->fail = d;
	f->fail_err = err;
}

static struct ds_digest dig(unsigned i)
{
	struct ds_digest d;
	char s[32];

	snprintf(s, sizeof(s), "chunk-%u", i);
	ds_sha256(s, strlen(s), &d);
	return d;
}

static size_t fake_len(const struct fake *f, const struct ds_digest *d)
{
	if (f->fixed)
		return f->fixed_len;
	if (f->big)
		return DS_MIB + (size_t)d->b[2] * 8192 + d->b[3];
	return 1024 + (size_t)(d->b[2] % 8) * 1024;
}

/* Chunk contents: 64-bit words derived from the digest, little-endian. */
static uint64_t pattern_word(const struct ds_digest *d, size_t k)
{
	uint64_t seed;

	memcpy(&seed, d->b + 8, sizeof(seed));
	return seed ^ (k * UINT64_C(0x9E3779B97F4A7C15));
}

static void fill(const struct ds_digest *d, uint8_t *p, size_t len)
{
	size_t k;

	for (k = 0; k < len / 8; k++)
		ds_put_le64(p + 8 * k, pattern_word(d, k));
	for (size_t j = 8 * k; j < len; j++)
		p[j] = (uint8_t)(pattern_word(d, k) >> (8 * (j - 8 * k)));
}

static bool word_ok(const struct ds_digest *d, const uint8_t *p, size_t len, size_t k)
{
	uint8_t w[8];
	size_t n = len - 8 * k < 8 ? len - 8 * k : 8;

	ds_put_le64(w, pattern_word(d, k));
	return memcmp(p + 8 * k, w, n) == 0;
}

/* stride 1 checks every byte; larger strides sample (and the last word). */
static bool data_ok_stride(const struct ds_digest *d, const uint8_t *p, size_t len, size_t stride)
{
	size_t words = (len + 7) / 8;

	for (size_t k = 0; k < words; k += stride)
		if (!word_ok(d, p, len, k))
			return false;
	return words == 0 || word_ok(d, p, len, words - 1);
}

static bool data_ok(const struct ds_digest *d, const uint8_t *p, size_t len)
{
	return data_ok_stride(d, p, len, 1);
}

static int fake_loader(void *ctx, const struct ds_digest *d, size_t expect_len, uint8_t *buf,
		       size_t cap, size_t *ret_len)
{
	struct fake *f = ctx;
	size_t len = fake_len(f, d);

	atomic_fetch_add(&f->calls, 1);
	pthread_mutex_lock(&f->gate_lock);
	while (f->gated)
		pthread_cond_wait(&f->gate_cv, &f->gate_lock);
	pthread_mutex_unlock(&f->gate_lock);
	if (f->sleep_ms)
		usleep(f->sleep_ms * 1000);
	if (cap != DS_MAX_CHUNK_SIZE || (expect_len && expect_len != len))
		return -EPROTO;
	if (f->fail_set && ds_digest_eq(d, &f->fail))
		return f->fail_err;
	if (f->bad_len) {
		*ret_len = cap + 1;
		return 0;
	}
	fill(d, buf, len);
	*ret_len = len;
	return 0;
}

/* The fake part loader: decodes in steps of PART_STEP, writes garbage just
 * past what it decoded (as zstd may), and checks that the cache hands it
 * back its own buffer and progress. Live continuations are counted. */
#define PART_STEP (256 * 1024)

static atomic_int live_states;

struct fake_state {
	size_t done;
	const uint8_t *buf;
};

static void fill_range(const struct ds_digest *d, uint8_t *p, size_t from, size_t to,
		       size_t len)
{
	uint8_t w[8];

	for (size_t k = from / 8; 8 * k < to; k++) {
		size_t n = len - 8 * k < 8 ? len - 8 * k : 8;

		ds_put_le64(w, pattern_word(d, k));
		memcpy(p + 8 * k, w, n);
	}
}

static void fake_free_state(void *state)
{
	atomic_fetch_sub(&live_states, 1);
	free(state);
}

static int fake_part_load(void *ctx, const struct ds_digest *d, size_t expect_len, uint8_t *buf,
			  size_t cap, struct ds_chunk_part *p)
{
	struct fake *f = ctx;
	struct fake_state *st = p->state;
	size_t len = fake_len(f, d), to;

	atomic_fetch_add(&f->part_calls, 1);
	pthread_mutex_lock(&f->gate_lock);
	while (f->gated)
		pthread_cond_wait(&f->gate_cv, &f->gate_lock);
	pthread_mutex_unlock(&f->gate_lock);
	if (f->sleep_ms)
		usleep(f->sleep_ms * 1000);
	if (cap != DS_MAX_CHUNK_SIZE || (expect_len && expect_len != len))
		return -EPROTO;
	if (f->fail_set && ds_digest_eq(d, &f->fail))
		return f->fail_err;
	if (!st) {
		if (p->valid != 0)
			return -EPROTO;
		if (f->part_fail_all)
			return -ESTALE;
		if (p->want >= len) {
			fill(d, buf, len);
			p->valid = p->len = len;
			return 0;
		}
		st = calloc(1, sizeof(*st));
		if (!st)
			return -ENOMEM;
		st->buf = buf;
		atomic_fetch_add(&live_states, 1);
		p->state = st;
	} else {
		atomic_fetch_add(&f->ext_calls, 1);
		/* Its own buffer and progress, the decoded part intact. */
		if (st->buf != buf || st->done != p->valid || p->len != len ||
		    !data_ok_stride(d, buf, p->valid, 61))
			return -EPROTO;
		if (f->part_fail)
			return -ESTALE;
	}
	to = p->want >= len ? len : (p->want + PART_STEP - 1) / PART_STEP * PART_STEP;
	if (to > len)
		to = len;
	fill_range(d, buf, p->valid, to, len);
	if (to < len)
		memset(buf + to, 0xee, len - to < 32 ? len - to : 32);
	st->done = to;
	p->valid = to;
	p->len = len;
	if (to == len) {
		fake_free_state(st);
		p->state = NULL;
	}
	return 0;
}

static const struct ds_chunk_part_ops fake_part_ops = {
	.load = fake_part_load,
	.free_state = fake_free_state,
	.state_size = 100 * 1024,
};

static void fake_done(void *ctx)
{
	struct fake *f = ctx;

	atomic_fetch_add(&f->done_calls, 1);
}

static struct ds_chunk_cache_stats stats(struct ds_chunk_cache *c)
{
	struct ds_chunk_cache_stats st;

	ds_chunk_cache_stats(c, &st);
	return st;
}

/* get + verify + put; returns the get's result. */
static int get_put(struct ds_chunk_cache *c, struct fake *f, unsigned i)
{
	struct ds_digest d = dig(i);
	struct ds_chunk_ref ref;
	int r = ds_chunk_cache_get(c, &d, 0, fake_loader, f, &ref);

	if (r < 0)
		return r;
	assert_int_equal(ref.len, fake_len(f, &d));
	assert_true(data_ok(&d, ref.data, ref.len));
	ds_chunk_cache_put(c, &ref);
	assert_null(ref.priv);
	return 0;
}

static void test_new_invalid(void **state)
{
	struct ds_chunk_cache *c = NULL;

	(void)state;
	assert_int_equal(ds_chunk_cache_new(0, &c), -EINVAL);
	assert_null(c);
	ds_chunk_cache_free(NULL);
}

static void test_hit_miss(void **state)
{
	struct ds_chunk_cache *c;
	struct ds_chunk_ref r1, r2;
	struct ds_digest a = dig(1), b = dig(2);
	struct ds_chunk_cache_stats st;
	struct fake f;

	(void)state;
	fake_init(&f);
	assert_int_equal(ds_chunk_cache_new(1 << 20, &c), 0);
	assert_int_equal(ds_chunk_cache_get(c, &a, fake_len(&f, &a), fake_loader, &f, &r1), 0);
	assert_int_equal(r1.len, fake_len(&f, &a));
	assert_true(data_ok(&a, r1.data, r1.len));
	/* Pinned twice: the same bytes. */
	assert_int_equal(ds_chunk_cache_get(c, &a, 0, fake_loader, &f, &r2), 0);
	assert_ptr_equal(r1.data, r2.data);
	ds_chunk_cache_put(c, &r1);
	ds_chunk_cache_put(c, &r2);
	assert_int_equal(get_put(c, &f, 1), 0);
	assert_int_equal(get_put(c, &f, 2), 0);
	st = stats(c);
	assert_int_equal(st.misses, 2);
	assert_int_equal(st.hits, 2);
	assert_int_equal(st.waits, 0);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.bytes, fake_len(&f, &a) + fake_len(&f, &b));
	assert_int_equal(atomic_load(&f.calls), 2);
	/* Another index naming a with another length is corrupt: refused on a
	 * hit, and the entry stays for its right readers. */
	assert_int_equal(ds_chunk_cache_get(c, &a, fake_len(&f, &a) + 1, fake_loader, &f, &r1),
			 -EBADMSG);
	assert_int_equal(ds_chunk_cache_get(c, &a, fake_len(&f, &a), fake_loader, &f, &r1), 0);
	ds_chunk_cache_put(c, &r1);
	assert_int_equal(atomic_load(&f.calls), 2);
	/* A loader claiming more than cap is refused, not trusted. */
	f.bad_len = true;
	assert_int_equal(get_put(c, &f, 3), -EIO);
	assert_int_equal(stats(c).load_errors, 1);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

/* A partial entry: its start decoded, more of it decoded in place while
 * its start stays pinned, a hit when it holds enough, the whole for a
 * sequential reader; _get and _peek do not take it for the whole. */
static void test_part(void **state)
{
	struct ds_chunk_cache *c;
	struct ds_chunk_ref r1, r2, r3, r4;
	struct ds_digest a = dig(7), b = dig(8), s = dig(9);
	struct ds_chunk_cache_stats st;
	const size_t len = 4 * DS_MIB;
	struct fake f;

	(void)state;
	fake_init(&f);
	f.fixed = true;
	f.fixed_len = len;
	assert_int_equal(ds_chunk_cache_new(64 * DS_MIB, &c), 0);
	assert_int_equal(ds_chunk_cache_get_part(c, &a, len, 100, &fake_part_ops, &f, &r1), 0);
	assert_int_equal(r1.len, PART_STEP);
	assert_true(data_ok(&a, r1.data, r1.len));
	st = stats(c);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.partial, 1);
	assert_int_equal(st.bytes, PART_STEP);
	assert_true(st.resident >= PART_STEP + fake_part_ops.state_size);
	assert_int_equal(atomic_load(&live_states), 1);
	/* Enough decoded: a hit. Not the whole: no peek. */
	assert_int_equal(ds_chunk_cache_get_part(c, &a, len, PART_STEP, &fake_part_ops, &f, &r2), 0);
	assert_ptr_equal(r2.data, r1.data);
	assert_int_equal(r2.len, PART_STEP);
	ds_chunk_cache_put(c, &r2);
	assert_int_equal(stats(c).hits, 1);
	assert_int_equal(ds_chunk_cache_peek(c, &a, len, &r2), -ENOENT);
	/* More: decoded on in place while r1 pins the start. */
	assert_int_equal(ds_chunk_cache_get_part(c, &a, len, DS_MIB + 1, &fake_part_ops, &f, &r2), 0);
	assert_ptr_equal(r2.data, r1.data);
	assert_int_equal(r2.len, DS_MIB + PART_STEP);
	assert_true(data_ok(&a, r2.data, r2.len));
	assert_true(data_ok(&a, r1.data, r1.len));
	st = stats(c);
	assert_int_equal(st.extends, 1);
	assert_int_equal(st.bytes, DS_MIB + PART_STEP);
	assert_int_equal(atomic_load(&f.part_calls), 2);
	/* All of it (a sequential reader): the continuation is finished. */
	assert_int_equal(ds_chunk_cache_get_part(c, &a, len, 0, &fake_part_ops, &f, &r3), 0);
	assert_int_equal(r3.len, len);
	assert_true(data_ok(&a, r3.data, r3.len));
	assert_int_equal(atomic_load(&live_states), 0);
	assert_int_equal(ds_chunk_cache_peek(c, &a, len, &r4), 0);
	assert_int_equal(r4.len, len);
	ds_chunk_cache_put(c, &r4);
	ds_chunk_cache_put(c, &r3);
	ds_chunk_cache_put(c, &r2);
	ds_chunk_cache_put(c, &r1);
	st = stats(c);
	assert_int_equal(st.hits + st.misses + st.waits + st.extends, 5);
	assert_int_equal(st.bytes, len);

	/* _get of a partial entry (another loader) loads the whole anew; the
	 * partial one stays readable for its pins and is freed after them. */
	assert_int_equal(ds_chunk_cache_get_part(c, &b, len, 5000, &fake_part_ops, &f, &r1), 0);
	assert_int_equal(r1.len, PART_STEP);
	assert_int_equal(ds_chunk_cache_get(c, &b, len, fake_loader, &f, &r2), 0);
	assert_int_equal(r2.len, len);
	assert_ptr_not_equal(r2.data, r1.data);
	assert_true(data_ok(&b, r2.data, r2.len));
	assert_int_equal(atomic_load(&f.calls), 1);
	st = stats(c);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.bytes, 2 * len);
	assert_true(data_ok(&b, r1.data, r1.len));
	ds_chunk_cache_put(c, &r1);
	assert_int_equal(atomic_load(&live_states), 0);
	ds_chunk_cache_put(c, &r2);
	/* A small chunk is never partial. */
	f.fixed_len = 100 * 1024;
	assert_int_equal(ds_chunk_cache_get_part(c, &s, 100 * 1024, 10, &fake_part_ops, &f, &r1), 0);
	assert_int_equal(r1.len, 100 * 1024);
	assert_true(data_ok(&s, r1.data, r1.len));
	ds_chunk_cache_put(c, &r1);
	assert_int_equal(stats(c).partial, 2);
	ds_chunk_cache_free(c);
	assert_int_equal(atomic_load(&live_states), 0);
	fake_release(&f);
}

/* A failed extension drops the entry and loads it again from its start,
 * once; a second failure is the get's error. Pins of the dropped entry
 * stay readable. */
static void test_part_fails(void **state)
{
	struct ds_chunk_cache *c;
	struct ds_chunk_ref r1, r2;
	struct ds_digest a = dig(11);
	struct ds_chunk_cache_stats st;
	const size_t len = 4 * DS_MIB;
	struct fake f;

	(void)state;
	fake_init(&f);
	f.fixed = true;
	f.fixed_len = len;
	assert_int_equal(ds_chunk_cache_new(64 * DS_MIB, &c), 0);
	assert_int_equal(ds_chunk_cache_get_part(c, &a, len, 1, &fake_part_ops, &f, &r1), 0);
	f.part_fail = true;
	assert_int_equal(ds_chunk_cache_get_part(c, &a, len, 3 * DS_MIB, &fake_part_ops, &f, &r2), 0);
	assert_ptr_not_equal(r2.data, r1.data);
	assert_true(r2.len >= 3 * DS_MIB);
	assert_true(data_ok(&a, r2.data, r2.len));
	assert_true(data_ok(&a, r1.data, r1.len));
	st = stats(c);
	assert_int_equal(st.load_errors, 1);
	assert_int_equal(st.extends, 1);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.bytes, r2.len);
	ds_chunk_cache_put(c, &r1);
	ds_chunk_cache_put(c, &r2);
	assert_int_equal(atomic_load(&live_states), 1);
	/* Both fail: the error, and nothing cached. */
	f.part_fail_all = true;
	assert_int_equal(ds_chunk_cache_get_part(c, &a, len, len - 1, &fake_part_ops, &f, &r1),
			 -ESTALE);
	st = stats(c);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(atomic_load(&live_states), 0);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

/* Partial entries are charged their pages and continuation: a cache of
 * many of them stays within its budget. */
static void test_part_budget(void **state)
{
	const size_t budget = 16 * DS_MIB;
	struct ds_chunk_cache_stats st;
	struct ds_chunk_cache *c;
	struct ds_chunk_ref ref;
	struct fake f;

	(void)state;
	fake_init(&f);
	f.fixed = true;
	f.fixed_len = 4 * DS_MIB;
	assert_int_equal(ds_chunk_cache_new(budget, &c), 0);
	for (unsigned i = 0; i < 60; i++) {
		struct ds_digest d = dig(700 + i % 4);
		size_t want = (size_t)(i * 7919 % 4096) * 1024;

		assert_int_equal(ds_chunk_cache_get_part(c, &d, 4 * DS_MIB, want, &fake_part_ops, &f,
							 &ref), 0);
		assert_true(ref.len >= want);
		assert_true(data_ok(&d, ref.data, ref.len));
		ds_chunk_cache_put(c, &ref);
		st = stats(c);
		assert_true(st.resident <= budget);
		assert_true(st.resident >= st.bytes + (size_t)atomic_load(&live_states) *
								fake_part_ops.state_size);
	}
	st = stats(c);
	assert_true(st.evictions > 0);
	assert_true(st.extends > 0);
	ds_chunk_cache_free(c);
	assert_int_equal(atomic_load(&live_states), 0);
	fake_release(&f);
}

static void test_lru_order(void **state)
{
	struct ds_chunk_cache *c;
	struct fake f;

	(void)state;
	fake_init(&f);
	f.fixed = true;
	f.fixed_len = 4096;
	assert_int_equal(ds_chunk_cache_new(3 * 4096, &c), 0);
	for (unsigned i = 1; i <= 3; i++)
		assert_int_equal(get_put(c, &f, i), 0);
	assert_int_equal(get_put(c, &f, 1), 0); /* touch: 2 is now the coldest */
	assert_int_equal(get_put(c, &f, 4), 0);
	assert_int_equal(stats(c).evictions, 1);
	assert_int_equal(atomic_load(&f.calls), 4);
	assert_int_equal(get_put(c, &f, 1), 0);
	assert_int_equal(get_put(c, &f, 3), 0);
	assert_int_equal(get_put(c, &f, 4), 0);
	assert_int_equal(atomic_load(&f.calls), 4);
	assert_int_equal(get_put(c, &f, 2), 0); /* was evicted: loads again */
	assert_int_equal(atomic_load(&f.calls), 5);
	/* 1 was the coldest when 2 came back. */
	assert_int_equal(get_put(c, &f, 1), 0);
	assert_int_equal(atomic_load(&f.calls), 6);
	assert_int_equal(stats(c).entries, 3);
	assert_int_equal(stats(c).bytes, 3 * 4096);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

/* peek: a hit pins without loading; a miss loads nothing. */
static void test_peek(void **state)
{
	struct ds_chunk_cache *c;
	struct ds_chunk_ref ref = { 0 };
	struct ds_digest a = dig(1), b = dig(2);
	struct fake f;

	(void)state;
	fake_init(&f);
	f.fixed = true;
	f.fixed_len = 4096;
	assert_int_equal(ds_chunk_cache_new(10 * 4096, &c), 0);
	assert_int_equal(ds_chunk_cache_peek(c, &a, 4096, &ref), -ENOENT);
	assert_int_equal(get_put(c, &f, 1), 0);
	assert_int_equal(ds_chunk_cache_peek(c, &a, 4096, &ref), 0);
	assert_true(data_ok(&a, ref.data, ref.len));
	assert_int_equal(stats(c).hits, 1);
	ds_chunk_cache_put(c, &ref);
	assert_int_equal(ds_chunk_cache_peek(c, &a, 4095, &ref), -EBADMSG);
	assert_null(ref.priv);
	assert_int_equal(ds_chunk_cache_peek(c, &b, 0, &ref), -ENOENT);
	assert_int_equal(atomic_load(&f.calls), 1);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

/* pass: get, put, then drop_behind, as a sequential reader does. */
static void pass(struct ds_chunk_cache *c, struct fake *f, unsigned i)
{
	struct ds_digest d = dig(i);

	assert_int_equal(get_put(c, f, i), 0);
	ds_chunk_cache_drop_behind(c, &d);
}

/* A sequential reader's passed chunks: at most 8 kept, dropped before
 * anything else, so a long read does not push out the chunks others use;
 * one wanted again (get or prefetch, pinned or not) is taken back; one
 * passed while pinned goes behind when unpinned. */
static void test_drop_behind(void **state)
{
	struct ds_chunk_cache *c;
	struct ds_chunk_ref ref;
	struct ds_digest d;
	struct fake f;
	int calls;

	(void)state;
	fake_init(&f);
	f.fixed = true;
	f.fixed_len = 4096;
	assert_int_equal(ds_chunk_cache_new(100 * 4096, &c), 0);
	for (unsigned i = 1; i <= 5; i++)
		assert_int_equal(get_put(c, &f, i), 0);
	for (unsigned i = 100; i < 140; i++)
		pass(c, &f, i);
	assert_int_equal(stats(c).entries, 5 + 8);
	assert_int_equal(stats(c).evictions, 40 - 8);
	assert_true(stats(c).peak <= (5 + 9) * 4096);
	calls = atomic_load(&f.calls);
	for (unsigned i = 1; i <= 5; i++)
		assert_int_equal(get_put(c, &f, i), 0); /* never pushed out */
	assert_int_equal(get_put(c, &f, 132), 0);       /* kept, and taken back */
	assert_int_equal(atomic_load(&f.calls), calls);
	for (unsigned i = 200; i < 208; i++)
		pass(c, &f, i);
	assert_int_equal(get_put(c, &f, 132), 0);
	assert_int_equal(atomic_load(&f.calls), calls + 8);
	assert_int_equal(get_put(c, &f, 133), 0); /* the oldest passed: dropped */
	assert_int_equal(atomic_load(&f.calls), calls + 9);

	/* Passed while pinned: behind once unpinned, then dropped in turn. */
	d = dig(300);
	assert_int_equal(ds_chunk_cache_get(c, &d, 0, fake_loader, &f, &ref), 0);
	ds_chunk_cache_drop_behind(c, &d);
	for (unsigned i = 400; i < 408; i++)
		pass(c, &f, i);
	ds_chunk_cache_put(c, &ref); /* the youngest passed now */
	pass(c, &f, 408);
	calls = atomic_load(&f.calls);
	assert_int_equal(get_put(c, &f, 300), 0);
	assert_int_equal(atomic_load(&f.calls), calls);
	for (unsigned i = 500; i < 509; i++)
		pass(c, &f, i);
	ds_chunk_cache_drop_behind(c, &d); /* after the get above: passed again */
	for (unsigned i = 600; i < 608; i++)
		pass(c, &f, i);
	calls = atomic_load(&f.calls);
	assert_int_equal(get_put(c, &f, 300), 0);
	assert_int_equal(atomic_load(&f.calls), calls + 1);

	/* Prefetch of a passed chunk takes it back too. */
	pass(c, &f, 700);
	d = dig(700);
	assert_int_equal(ds_chunk_cache_prefetch(c, &d, 0, fake_loader, &f, fake_done), 1);
	for (unsigned i = 800; i < 820; i++)
		pass(c, &f, i);
	calls = atomic_load(&f.calls);
	assert_int_equal(get_put(c, &f, 700), 0);
	assert_int_equal(atomic_load(&f.calls), calls);

	/* Passed while pinned, then prefetched (a reader ahead wants it):
	 * taken back too, not dropped once unpinned. */
	d = dig(900);
	assert_int_equal(ds_chunk_cache_get(c, &d, 0, fake_loader, &f, &ref), 0);
	ds_chunk_cache_drop_behind(c, &d);
	assert_int_equal(ds_chunk_cache_prefetch(c, &d, 0, fake_loader, &f, fake_done), 1);
	ds_chunk_cache_put(c, &ref);
	for (unsigned i = 910; i < 920; i++)
		pass(c, &f, i);
	calls = atomic_load(&f.calls);
	assert_int_equal(get_put(c, &f, 900), 0);
	assert_int_equal(atomic_load(&f.calls), calls);

	/* Not cached: nothing happens. */
	d = dig(999);
	ds_chunk_cache_drop_behind(c, &d);
	/* The 5, the 5 got again (132, 133, 300, 700, 900) and 8 passed. */
	assert_int_equal(stats(c).entries, 5 + 5 + 8);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

static void test_budget(void **state)
{
	struct ds_chunk_cache *c;
	struct ds_chunk_cache_stats st;
	const size_t budget = 20000;
	struct fake f;

	(void)state;
	fake_init(&f);
	assert_int_equal(ds_chunk_cache_new(budget, &c), 0);
	for (unsigned i = 0; i < 200; i++) {
		assert_int_equal(get_put(c, &f, i % 50), 0);
		st = stats(c);
		assert_true(st.bytes <= budget);
		assert_true(st.entries >= (i == 0 ? 1u : 2u));
	}
	assert_true(st.evictions > 0);
	assert_int_equal(st.hits + st.misses, 200);
	assert_int_equal(st.misses, (uint64_t)atomic_load(&f.calls));
	/* A chunk larger than the whole budget is served, then dropped. */
	f.fixed = true;
	f.fixed_len = budget + 1;
	assert_int_equal(get_put(c, &f, 1000), 0);
	st = stats(c);
	assert_true(st.bytes <= budget);
	assert_int_equal(st.entries, 0);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

/* A load in flight reserves room in the budget for its chunk, twice when
 * loaders may read the encoded chunk past it (the default). Three 4 MiB
 * chunks loaded one after another into 12 MiB: the third load evicts the
 * first when it reserves 8 MiB, and nothing when it reserves 4. */
static void load_room(bool raw, unsigned want_cached)
{
	const size_t len = 4 * DS_MIB;
	struct ds_chunk_cache *c;
	struct ds_chunk_ref ref;
	unsigned cached = 0;
	struct fake f;

	fake_init(&f);
	f.fixed = true;
	f.fixed_len = len;
	assert_int_equal(ds_chunk_cache_new(3 * len, &c), 0);
	ds_chunk_cache_set_raw_in_buffer(c, raw);
	for (unsigned i = 1; i <= 3; i++) {
		struct ds_digest d = dig(i);

		assert_int_equal(ds_chunk_cache_get(c, &d, len, fake_loader, &f, &ref), 0);
		ds_chunk_cache_put(c, &ref);
	}
	for (unsigned i = 1; i <= 3; i++) {
		struct ds_digest d = dig(i);

		if (ds_chunk_cache_peek(c, &d, len, &ref) == 0) {
			cached++;
			ds_chunk_cache_put(c, &ref);
		}
	}
	assert_int_equal(cached, want_cached);
	assert_int_equal(stats(c).evictions, 3 - want_cached);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

static void test_load_room(void **state)
{
	(void)state;
	load_room(true, 2);
	load_room(false, 3);
}

/* Pins a (by a hit) and b (by its own load) of len bytes each, in a
 * budget of two, and streams other chunks past them: evicted buffers are
 * recycled for new loads, so a wrongly evicted pin would be overwritten. */
static void pinned_survives(size_t len, unsigned others)
{
	struct ds_chunk_cache *c;
	struct ds_chunk_ref ra, rb;
	struct ds_digest a = dig(7), b = dig(8);
	struct fake f;

	fake_init(&f);
	f.fixed = true;
	f.fixed_len = len;
	assert_int_equal(ds_chunk_cache_new(2 * len, &c), 0);
	assert_int_equal(get_put(c, &f, 7), 0);
	assert_int_equal(ds_chunk_cache_get(c, &a, 0, fake_loader, &f, &ra), 0);
	assert_int_equal(ds_chunk_cache_get(c, &b, 0, fake_loader, &f, &rb), 0);
	for (unsigned i = 100; i < 100 + others; i++) {
		assert_int_equal(get_put(c, &f, i), 0);
		assert_true(stats(c).bytes <= 3 * len);
		assert_true(data_ok(&a, ra.data, ra.len));
		assert_true(data_ok(&b, rb.data, rb.len));
	}
	assert_int_equal(ra.len, len);
	ds_chunk_cache_put(c, &ra);
	ds_chunk_cache_put(c, &rb);
	assert_true(stats(c).bytes <= 2 * len);
	/* Unpinned last, so hottest: both still cached. */
	assert_int_equal(get_put(c, &f, 7), 0);
	assert_int_equal(get_put(c, &f, 8), 0);
	assert_int_equal(atomic_load(&f.calls), 2 + (int)others);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

static void test_pinned_survives(void **state)
{
	(void)state;
	pinned_survives(64 * 1024, 40);       /* copied out of the load buffer */
	pinned_survives(4 * DS_MIB, 12);      /* kept in it */
}

/* Sizes across the whole range and both sides of the 1 MiB copy threshold,
 * so recycled buffers are trimmed and refilled to every extent. */
static void test_big_chunks(void **state)
{
	static const size_t lens[] = { DS_MAX_CHUNK_SIZE, 4 * DS_MIB, 1, 0, DS_MIB - 1,
				       DS_MIB, DS_MAX_CHUNK_SIZE, 4097, 4 * DS_MIB + 1,
				       DS_MAX_CHUNK_SIZE };
	struct ds_chunk_cache *c;
	struct fake f;

	(void)state;
	fake_init(&f);
	f.fixed = true;
	assert_int_equal(ds_chunk_cache_new(20 * DS_MIB, &c), 0);
	for (unsigned round = 0; round < 2; round++) {
		for (unsigned i = 0; i < DS_ARRAY_SIZE(lens); i++) {
			f.fixed_len = lens[i];
			assert_int_equal(get_put(c, &f, 200 + round * 100 + i), 0);
			assert_true(stats(c).bytes <= 20 * DS_MIB);
		}
	}
	assert_true(stats(c).evictions > 0);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

/* A sequential reader streaming 4 MiB chunks through a full cache: the
 * pages of the buffers pooled for reuse count against the budget too, so
 * what the cache holds stays within it (issue 6: RSS within the budget),
 * and the pool is used (evicted buffers come back for the next loads). */
static void test_resident_within_budget(void **state)
{
	const size_t budget = 32 * DS_MIB;
	struct ds_chunk_cache_stats st;
	struct ds_chunk_cache *c;
	struct fake f;
	size_t peak = 0;

	(void)state;
	fake_init(&f);
	f.fixed = true;
	f.fixed_len = 4 * DS_MIB;
	assert_int_equal(ds_chunk_cache_new(budget, &c), 0);
	for (unsigned i = 0; i < 40; i++) {
		assert_int_equal(get_put(c, &f, 500 + i), 0);
		st = stats(c);
		assert_true(st.resident <= budget);
		assert_true(st.resident >= st.bytes);
		if (st.resident > peak)
			peak = st.resident;
	}
	st = stats(c);
	assert_true(st.evictions >= 30);
	/* Cached data alone stays below the budget by what the pool keeps. */
	assert_true(st.bytes < budget);
	assert_true(peak > budget / 2);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

struct racer {
	struct ds_chunk_cache *c;
	struct fake *f;
	struct ds_digest d;
	int r;
	const uint8_t *data;
	size_t len;
	bool ok;
};

static void *racer_main(void *arg)
{
	struct racer *t = arg;
	struct ds_chunk_ref ref;

	t->r = ds_chunk_cache_get(t->c, &t->d, 0, fake_loader, t->f, &ref);
	if (t->r == 0) {
		t->data = ref.data;
		t->len = ref.len;
		t->ok = data_ok(&t->d, ref.data, ref.len);
		ds_chunk_cache_put(t->c, &ref);
	}
	return NULL;
}

/* NTHREADS gets of d while the fake's gate is closed: the gate opens once
 * misses + waits reach arrived, i.e. when every get has joined the flight,
 * however slowly the threads get scheduled. */
static void race(struct ds_chunk_cache *c, struct fake *f, const struct ds_digest *d,
		 struct racer t[NTHREADS], uint64_t arrived)
{
	pthread_t th[NTHREADS];
	struct ds_chunk_cache_stats st;

	for (int i = 0; i < NTHREADS; i++) {
		t[i] = (struct racer){ .c = c, .f = f, .d = *d };
		assert_int_equal(pthread_create(&th[i], NULL, racer_main, &t[i]), 0);
	}
	for (int ms = 0; ms < 30000; ms++) {
		st = stats(c);
		if (st.misses + st.waits >= arrived)
			break;
		usleep(1000);
	}
	fake_gate(f, false);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
}

/* Starts a get of d with f on *th and waits until it has joined the flight
 * in progress (the cache counts a wait). */
static void join_flight(struct ds_chunk_cache *c, struct fake *f, const struct ds_digest *d,
			struct racer *t, pthread_t *th)
{
	uint64_t waits = stats(c).waits;

	*t = (struct racer){ .c = c, .f = f, .d = *d };
	assert_int_equal(pthread_create(th, NULL, racer_main, t), 0);
	for (int ms = 0; ms < 30000 && stats(c).waits < waits + 1; ms++)
		usleep(1000);
	assert_int_equal(stats(c).waits, waits + 1);
}

static void test_single_flight(void **state)
{
	struct ds_chunk_cache *c;
	struct racer t[NTHREADS];
	struct ds_digest d = dig(42);
	struct ds_chunk_cache_stats st;
	struct fake f;

	(void)state;
	fake_init(&f);
	fake_gate(&f, true);
	assert_int_equal(ds_chunk_cache_new(1 << 20, &c), 0);
	race(c, &f, &d, t, NTHREADS);
	assert_int_equal(atomic_load(&f.calls), 1);
	for (int i = 0; i < NTHREADS; i++) {
		assert_int_equal(t[i].r, 0);
		assert_true(t[i].ok);
		assert_ptr_equal(t[i].data, t[0].data);
		assert_int_equal(t[i].len, fake_len(&f, &d));
	}
	st = stats(c);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.waits, NTHREADS - 1);
	assert_int_equal(st.hits, 0);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

static void test_failed_flight(void **state)
{
	struct ds_chunk_cache *c;
	struct racer t[NTHREADS];
	struct ds_digest d = dig(43);
	struct ds_chunk_cache_stats st;
	struct fake f;

	(void)state;
	fake_init(&f);
	fake_gate(&f, true);
	fake_fail(&f, d, -EBADMSG);
	assert_int_equal(ds_chunk_cache_new(1 << 20, &c), 0);
	race(c, &f, &d, t, NTHREADS);
	assert_int_equal(atomic_load(&f.calls), 1);
	for (int i = 0; i < NTHREADS; i++)
		assert_int_equal(t[i].r, -EBADMSG);
	st = stats(c);
	assert_int_equal(st.load_errors, 1);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.waits, NTHREADS - 1);
	/* Not cached: the next get tries again, and now succeeds. */
	assert_int_equal(get_put(c, &f, 43), -EBADMSG);
	assert_int_equal(atomic_load(&f.calls), 2);
	f.fail_set = false;
	assert_int_equal(get_put(c, &f, 43), 0);
	assert_int_equal(get_put(c, &f, 43), 0);
	assert_int_equal(atomic_load(&f.calls), 3);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

static void test_prefetch(void **state)
{
	struct ds_chunk_cache *c;
	struct ds_digest a = dig(60), b = dig(61);
	struct ds_chunk_cache_stats st;
	struct fake f;

	(void)state;
	fake_init(&f);
	assert_int_equal(ds_chunk_cache_new(1 << 20, &c), 0);
	assert_int_equal(ds_chunk_cache_prefetch(c, &a, 0, fake_loader, &f, fake_done), 0);
	ds_chunk_cache_drain(c);
	assert_int_equal(atomic_load(&f.done_calls), 1);
	assert_int_equal(atomic_load(&f.calls), 1);
	assert_int_equal(stats(c).entries, 1);
	assert_int_equal(get_put(c, &f, 60), 0);
	st = stats(c);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.misses, 0);
	assert_int_equal(atomic_load(&f.calls), 1);
	/* Cached: nothing to do, and done is not called. */
	assert_int_equal(ds_chunk_cache_prefetch(c, &a, 0, fake_loader, &f, fake_done), 1);
	ds_chunk_cache_drain(c);
	assert_int_equal(atomic_load(&f.done_calls), 1);
	/* done may be NULL; a failing prefetch is counted and not cached. */
	fake_fail(&f, b, -ENOENT);
	assert_int_equal(ds_chunk_cache_prefetch(c, &b, 0, fake_loader, &f, NULL), 0);
	ds_chunk_cache_drain(c);
	st = stats(c);
	assert_int_equal(st.load_errors, 1);
	assert_int_equal(st.entries, 1);
	assert_int_equal(ds_chunk_cache_prefetch(c, &b, 0, fake_loader, &f, fake_done), 0);
	ds_chunk_cache_drain(c);
	assert_int_equal(atomic_load(&f.done_calls), 2);
	assert_int_equal(atomic_load(&f.calls), 3);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

/* Once workers run, they keep PREFILL buffers faulted in in the pool while
 * the budget has room, so loads on a reader's path map nothing fresh; a
 * budget whose quarter cannot hold one gets none. */
static void test_prefill(void **state)
{
	struct ds_chunk_cache *c;
	struct ds_digest a = dig(70);
	struct ds_chunk_cache_stats st;
	struct fake f;

	(void)state;
	fake_init(&f);
	f.fixed = true;
	f.fixed_len = 4 * DS_MIB;
	assert_int_equal(ds_chunk_cache_new(64 * DS_MIB, &c), 0);
	st = stats(c);
	assert_int_equal(st.pooled, 0); /* no workers yet: nothing prefilled */
	assert_int_equal(ds_chunk_cache_prefetch(c, &a, 0, fake_loader, &f, NULL), 0);
	ds_chunk_cache_drain(c);
	for (int ms = 0; ms < 10000 && stats(c).pooled < 8 * DS_MIB; ms++)
		usleep(1000);
	st = stats(c);
	assert_int_equal(st.pooled, 8 * DS_MIB);
	assert_int_equal(st.prefilled, 2);
	assert_int_equal(st.fresh_maps, 1); /* the prefetch's, before any prefill */
	assert_true(st.resident <= 64 * DS_MIB);
	/* Loads take the prefilled buffers, and the workers fill the pool
	 * again behind them. */
	for (unsigned i = 0; i < 6; i++) {
		assert_int_equal(get_put(c, &f, 71 + i), 0);
		for (int ms = 0; ms < 10000 && stats(c).pooled < 8 * DS_MIB; ms++)
			usleep(1000);
	}
	st = stats(c);
	assert_int_equal(st.fresh_maps, 1);
	assert_int_equal(st.prefilled, 8);
	assert_true(st.resident <= 64 * DS_MIB);
	ds_chunk_cache_free(c);

	/* 12 MiB: a quarter (3 MiB) cannot hold a 4 MiB buffer. */
	assert_int_equal(ds_chunk_cache_new(12 * DS_MIB, &c), 0);
	assert_int_equal(ds_chunk_cache_prefetch(c, &a, 0, fake_loader, &f, NULL), 0);
	ds_chunk_cache_drain(c);
	usleep(100000);
	st = stats(c);
	assert_int_equal(st.prefilled, 0);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

static void test_prefetch_queue_full(void **state)
{
	struct ds_chunk_cache *c;
	struct ds_digest d;
	int queued = 0, r = 0;
	unsigned i;
	struct fake f;

	(void)state;
	fake_init(&f);
	fake_gate(&f, true);
	assert_int_equal(ds_chunk_cache_new(64 << 20, &c), 0);
	for (i = 0; i < 100; i++) {
		d = dig(1000 + i);
		r = ds_chunk_cache_prefetch(c, &d, 0, fake_loader, &f, fake_done);
		if (r < 0)
			break;
		assert_int_equal(r, 0);
		queued++;
		/* Queued (or loading) already: nothing more to do. */
		assert_int_equal(ds_chunk_cache_prefetch(c, &d, 0, fake_loader, &f, fake_done), 1);
	}
	assert_int_equal(r, -EAGAIN);
	assert_true(queued >= 32 && queued <= 32 + 8);
	fake_gate(&f, false);
	ds_chunk_cache_drain(c);
	assert_int_equal(atomic_load(&f.done_calls), queued);
	assert_int_equal(atomic_load(&f.calls), queued);
	assert_int_equal(stats(c).entries, (size_t)queued);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

/* _free drains: every queued done() runs before it returns. */
static void test_free_drains(void **state)
{
	struct ds_chunk_cache *c;
	struct ds_digest d;
	struct fake f;

	(void)state;
	fake_init(&f);
	f.sleep_ms = 5;
	assert_int_equal(ds_chunk_cache_new(64 << 20, &c), 0);
	for (unsigned i = 0; i < 10; i++) {
		d = dig(2000 + i);
		assert_int_equal(ds_chunk_cache_prefetch(c, &d, 0, fake_loader, &f, fake_done), 0);
	}
	ds_chunk_cache_free(c);
	assert_int_equal(atomic_load(&f.done_calls), 10);
	assert_int_equal(atomic_load(&f.calls), 10);
	fake_release(&f);
}

static void test_get_races_prefetch(void **state)
{
	struct ds_chunk_cache *c;
	struct racer t[NTHREADS];
	struct ds_digest a = dig(70), b = dig(71);
	struct ds_chunk_cache_stats st;
	struct fake f;

	(void)state;
	fake_init(&f);
	f.sleep_ms = 50;
	assert_int_equal(ds_chunk_cache_new(1 << 20, &c), 0);
	/* Either order loads once: a get arriving during the prefetch's load
	 * waits for it; a get that beats the worker loads, and the worker then
	 * skips. */
	assert_int_equal(ds_chunk_cache_prefetch(c, &a, 0, fake_loader, &f, fake_done), 0);
	assert_int_equal(get_put(c, &f, 70), 0);
	ds_chunk_cache_drain(c);
	assert_int_equal(atomic_load(&f.calls), 1);
	assert_int_equal(atomic_load(&f.done_calls), 1);
	/* Once a worker's load of b has started, another prefetch needs
	 * nothing and every get joins that flight. */
	f.sleep_ms = 0;
	fake_gate(&f, true);
	assert_int_equal(ds_chunk_cache_prefetch(c, &b, 0, fake_loader, &f, fake_done), 0);
	while (atomic_load(&f.calls) < 2)
		usleep(1000);
	assert_int_equal(ds_chunk_cache_prefetch(c, &b, 0, fake_loader, &f, fake_done), 1);
	st = stats(c);
	race(c, &f, &b, t, st.misses + st.waits + NTHREADS);
	for (int i = 0; i < NTHREADS; i++) {
		assert_int_equal(t[i].r, 0);
		assert_true(t[i].ok);
	}
	ds_chunk_cache_drain(c);
	assert_int_equal(atomic_load(&f.calls), 2);
	assert_int_equal(atomic_load(&f.done_calls), 2);
	assert_int_equal(stats(c).waits, st.waits + NTHREADS);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

/* A get that joined a prefetch's flight is not failed by it: the prefetch
 * loaded with another context (an archive closed since the advice, the
 * copy of the chunk in another datastore), and its failure only counts in
 * load_errors. The get then loads the chunk with its own loader. */
static void test_get_outlives_failed_prefetch(void **state)
{
	struct ds_chunk_cache *c;
	struct ds_digest d = dig(72);
	struct ds_chunk_cache_stats st;
	struct racer t;
	pthread_t th;
	struct fake fa, fb;

	(void)state;
	fake_init(&fa);
	fake_init(&fb);
	fake_fail(&fa, d, -ESTALE);
	fake_gate(&fa, true);
	assert_int_equal(ds_chunk_cache_new(1 << 20, &c), 0);
	assert_int_equal(ds_chunk_cache_prefetch(c, &d, 0, fake_loader, &fa, fake_done), 0);
	while (atomic_load(&fa.calls) < 1) /* the worker's flight has begun */
		usleep(1000);
	join_flight(c, &fb, &d, &t, &th); /* the prefetch's */
	fake_gate(&fa, false);
	pthread_join(th, NULL);
	ds_chunk_cache_drain(c);
	assert_int_equal(t.r, 0);
	assert_true(t.ok);
	assert_int_equal(atomic_load(&fa.calls), 1);
	assert_int_equal(atomic_load(&fb.calls), 1);
	assert_int_equal(atomic_load(&fa.done_calls), 1);
	st = stats(c);
	assert_int_equal(st.load_errors, 1);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.hits + st.misses + st.waits + st.extends, 1);
	ds_chunk_cache_free(c);
	fake_release(&fb);
	fake_release(&fa);
}

/* Nor by another get's flight with another context: the copy of the chunk
 * that get loads (another datastore's, damaged or missing there) is not
 * this reader's. Only gets with the flight's own context share its
 * failure (test_failed_flight). */
static void test_get_outlives_failed_get(void **state)
{
	struct ds_chunk_cache *c;
	struct ds_digest d = dig(73);
	struct ds_chunk_cache_stats st;
	struct racer ta, tb;
	pthread_t tha, thb;
	struct fake fa, fb;

	(void)state;
	fake_init(&fa);
	fake_init(&fb);
	fake_fail(&fa, d, -EBADMSG);
	fake_gate(&fa, true);
	assert_int_equal(ds_chunk_cache_new(1 << 20, &c), 0);
	ta = (struct racer){ .c = c, .f = &fa, .d = d };
	assert_int_equal(pthread_create(&tha, NULL, racer_main, &ta), 0);
	while (atomic_load(&fa.calls) < 1) /* a's flight has begun */
		usleep(1000);
	join_flight(c, &fb, &d, &tb, &thb); /* a's */
	fake_gate(&fa, false);
	pthread_join(tha, NULL);
	pthread_join(thb, NULL);
	assert_int_equal(ta.r, -EBADMSG);
	assert_int_equal(tb.r, 0);
	assert_true(tb.ok);
	assert_int_equal(atomic_load(&fa.calls), 1);
	assert_int_equal(atomic_load(&fb.calls), 1);
	st = stats(c);
	assert_int_equal(st.load_errors, 1);
	assert_int_equal(st.entries, 1);
	ds_chunk_cache_free(c);
	fake_release(&fb);
	fake_release(&fa);
}

/* An index that names a chunk longer than any chunk can be (a damaged or
 * crafted .didx) is refused before anything is reserved for it: its reads
 * fail with -EBADMSG, and what other readers have cached stays. */
static void test_oversize(void **state)
{
	static const size_t lens[] = { DS_MAX_CHUNK_SIZE + 1, (size_t)1 << 40, SIZE_MAX };
	struct ds_chunk_cache *c;
	struct ds_chunk_cache_stats st;
	struct ds_chunk_ref ref = { 0 };
	struct ds_digest d = dig(90);
	struct fake f;

	(void)state;
	fake_init(&f);
	assert_int_equal(ds_chunk_cache_new(16 * DS_MIB, &c), 0);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(get_put(c, &f, 100 + i), 0);
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		assert_int_equal(ds_chunk_cache_get(c, &d, lens[k], fake_loader, &f, &ref),
				 -EBADMSG);
		assert_int_equal(ds_chunk_cache_get_part(c, &d, lens[k], 4096, &fake_part_ops,
							 &f, &ref), -EBADMSG);
		assert_int_equal(ds_chunk_cache_get_part(c, &d, lens[k], 0, &fake_part_ops,
							 &f, &ref), -EBADMSG);
		assert_int_equal(ds_chunk_cache_prefetch(c, &d, lens[k], fake_loader, &f,
							 fake_done), -EBADMSG);
		ds_chunk_cache_drain(c);
	}
	assert_null(ref.priv);
	assert_int_equal(atomic_load(&f.calls), 8);
	assert_int_equal(atomic_load(&f.part_calls), 0);
	assert_int_equal(atomic_load(&f.done_calls), 0);
	st = stats(c);
	assert_int_equal(st.entries, 8);
	assert_int_equal(st.evictions, 0);
	/* Nothing stays reserved: the budget is whole again. */
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(get_put(c, &f, 100 + i), 0);
	assert_int_equal(atomic_load(&f.calls), 8);
	ds_chunk_cache_free(c);
	fake_release(&f);
}

#define STRESS_THREADS 4
#define STRESS_OPS 20000
#define STRESS_PINS 4

struct stresser {
	struct ds_chunk_cache *c;
	struct fake *f;
	unsigned seed, ops, ndigests; /* the last digest fails to load */
	size_t stride;
	bool part; /* some gets are get_part, of random parts */
	unsigned gets, bad_data, bad_errors, prefetched;
};

static void *stress_main(void *arg)
{
	struct stresser *s = arg;
	struct ds_chunk_ref pins[STRESS_PINS];
	struct ds_digest pin_d[STRESS_PINS];
	unsigned npins = 0;

	for (unsigned op = 0; op < s->ops; op++) {
		unsigned i = (unsigned)rand_r(&s->seed) % s->ndigests;
		struct ds_digest d = dig(i);
		unsigned action = (unsigned)rand_r(&s->seed) % 16;
		struct ds_chunk_ref ref;
		int r;

		if (action == 0) {
			r = ds_chunk_cache_prefetch(s->c, &d, 0, fake_loader, s->f, fake_done);
			if (r == 0)
				s->prefetched++;
			else if (r != 1 && r != -EAGAIN)
				s->bad_errors++;
			continue;
		}
		s->gets++;
		if (s->part && action < 6) {
			size_t len = fake_len(s->f, &d);
			size_t want = action == 1 ? 0 : (size_t)rand_r(&s->seed) % len;

			r = ds_chunk_cache_get_part(s->c, &d, len, want, &fake_part_ops, s->f, &ref);
			if (i == s->ndigests - 1) {
				if (r != -EIO)
					s->bad_errors++;
				if (r == 0)
					ds_chunk_cache_put(s->c, &ref);
				continue;
			}
			if (r != 0) {
				s->bad_errors++;
				continue;
			}
			if (ref.len < (want ? want : len) || ref.len > len ||
			    !data_ok_stride(&d, ref.data, ref.len, s->stride))
				s->bad_data++;
			ds_chunk_cache_put(s->c, &ref);
			continue;
		}
		r = ds_chunk_cache_get(s->c, &d, 0, fake_loader, s->f, &ref);
		if (i == s->ndigests - 1) {
			if (r != -EIO)
				s->bad_errors++;
			if (r == 0)
				ds_chunk_cache_put(s->c, &ref);
			continue;
		}
		if (r != 0) {
			s->bad_errors++;
			continue;
		}
		if (ref.len != fake_len(s->f, &d) || !data_ok_stride(&d, ref.data, ref.len, s->stride))
			s->bad_data++;
		if (action < 8) {
			ds_chunk_cache_put(s->c, &ref);
			continue;
		}
		/* Keep it pinned for a while; unpin a random older pin when full. */
		if (npins == STRESS_PINS) {
			unsigned k = (unsigned)rand_r(&s->seed) % STRESS_PINS;

			if (!data_ok_stride(&pin_d[k], pins[k].data, pins[k].len, s->stride))
				s->bad_data++;
			ds_chunk_cache_put(s->c, &pins[k]);
			pins[k] = pins[--npins];
			pin_d[k] = pin_d[npins];
		}
		pins[npins] = ref;
		pin_d[npins++] = d;
		if (action == 15)
			usleep((unsigned)rand_r(&s->seed) % 200);
	}
	while (npins > 0) {
		npins--;
		if (!data_ok_stride(&pin_d[npins], pins[npins].data, pins[npins].len, s->stride))
			s->bad_data++;
		ds_chunk_cache_put(s->c, &pins[npins]);
	}
	return NULL;
}

static void stress(bool big, bool part, unsigned ops, unsigned ndigests)
{
	struct ds_chunk_cache *c;
	struct stresser s[STRESS_THREADS];
	pthread_t th[STRESS_THREADS];
	struct ds_chunk_cache_stats st;
	/* Ten chunks of the average length. */
	const size_t budget = 10 * (big ? 2 * DS_MIB : 4608);
	unsigned gets = 0, prefetched = 0;
	struct fake f;

	fake_init(&f);
	f.big = big;
	fake_fail(&f, dig(ndigests - 1), -EIO);
	assert_int_equal(ds_chunk_cache_new(budget, &c), 0);
	for (unsigned i = 0; i < STRESS_THREADS; i++) {
		s[i] = (struct stresser){ .c = c, .f = &f, .seed = 12345 + i, .ops = ops,
					  .ndigests = ndigests,
					  .stride = big ? 257 : 1, .part = part };
		assert_int_equal(pthread_create(&th[i], NULL, stress_main, &s[i]), 0);
	}
	for (unsigned i = 0; i < STRESS_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(s[i].bad_data, 0);
		assert_int_equal(s[i].bad_errors, 0);
		gets += s[i].gets;
		prefetched += s[i].prefetched;
	}
	ds_chunk_cache_drain(c);
	st = stats(c);
	assert_int_equal(st.hits + st.misses + st.waits + st.extends, gets);
	if (part && big) {
		assert_true(st.partial > 0);
		assert_true(atomic_load(&f.ext_calls) > 0);
	}
	assert_true(st.bytes <= budget);
	assert_true(st.evictions > 0);
	assert_true(st.load_errors > 0);
	assert_true((uint64_t)atomic_load(&f.calls) + (uint64_t)atomic_load(&f.part_calls) >=
		    st.misses);
	assert_int_equal(atomic_load(&f.done_calls), prefetched);
	ds_chunk_cache_free(c);
	assert_int_equal(atomic_load(&live_states), 0);
	fake_release(&f);
}

static void test_stress(void **state)
{
	(void)state;
	stress(false, false, STRESS_OPS, 64);
}

/* The same with chunks that keep their load buffers (pool, trim, reuse);
 * contents are sampled, every 257th word. */
static void test_stress_big(void **state)
{
	(void)state;
	stress(true, false, STRESS_OPS / 20, 24);
}

/* Gets of parts among them: partial entries loaded, extended while
 * others read their starts, dropped for whole gets, evicted. */
static void test_stress_part(void **state)
{
	(void)state;
	stress(true, true, STRESS_OPS / 20, 24);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_invalid),
		cmocka_unit_test(test_hit_miss),
		cmocka_unit_test(test_part),
		cmocka_unit_test(test_part_fails),
		cmocka_unit_test(test_part_budget),
		cmocka_unit_test(test_lru_order),
		cmocka_unit_test(test_peek),
		cmocka_unit_test(test_drop_behind),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_pinned_survives),
		cmocka_unit_test(test_load_room),
		cmocka_unit_test(test_big_chunks),
		cmocka_unit_test(test_resident_within_budget),
		cmocka_unit_test(test_single_flight),
		cmocka_unit_test(test_failed_flight),
		cmocka_unit_test(test_prefetch),
		cmocka_unit_test(test_prefill),
		cmocka_unit_test(test_prefetch_queue_full),
		cmocka_unit_test(test_free_drains),
		cmocka_unit_test(test_get_races_prefetch),
		cmocka_unit_test(test_get_outlives_failed_prefetch),
		cmocka_unit_test(test_get_outlives_failed_get),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_stress),
		cmocka_unit_test(test_stress_big),
		cmocka_unit_test(test_stress_part),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
