/* Suite for cache/verified_set: found what was added, a newer identity
 * replaces an older one, a full set forgets its least recently used
 * entry, forget only drops the identity it names, and concurrent use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "cache/verified_set.h"
#include "store/util.h"

/* Digests that all fall in one set: their first 8 bytes (the hash) are 0. */
static struct ds_digest dig(uint8_t tag)
{
	struct ds_digest d;

	memset(&d, 0, sizeof(d));
	d.b[31] = tag;
	return d;
}

static struct ds_chunk_file ident(uint64_t ino)
{
	return (struct ds_chunk_file){ .dev = 1, .ino = ino, .size = 4096 + 12, .ctime_ns = 7 };
}

static void test_add_find_replace(void **state)
{
	struct ds_verified_set *s;
	struct ds_chunk_file f, a = ident(1), b = ident(2), empty = { 0 };
	struct ds_digest d = dig(1), e = dig(2);

	(void)state;
	assert_int_equal(ds_verified_set_new(0, &s), -EINVAL);
	assert_int_equal(ds_verified_set_new(100, &s), 0);
	assert_false(ds_verified_set_find(s, &d, &f));
	ds_verified_set_add(s, &d, &empty); /* no identity: ignored */
	assert_false(ds_verified_set_find(s, &d, &f));
	ds_verified_set_add(s, &d, &a);
	assert_true(ds_verified_set_find(s, &d, &f));
	assert_memory_equal(&f, &a, sizeof(f));
	assert_false(ds_verified_set_find(s, &e, &f));
	ds_verified_set_add(s, &d, &b); /* verified again, another file */
	assert_true(ds_verified_set_find(s, &d, &f));
	assert_memory_equal(&f, &b, sizeof(f));
	/* forget names the identity it found stale: an older one is no
	 * reason to drop the newer. */
	ds_verified_set_forget(s, &d, &a);
	assert_true(ds_verified_set_find(s, &d, &f));
	ds_verified_set_forget(s, &d, &b);
	assert_false(ds_verified_set_find(s, &d, &f));
	ds_verified_set_free(s);
	ds_verified_set_free(NULL);
}

/* Capacity 4 is one set of 4: a fifth digest replaces the one least
 * recently added or found. */
static void test_full_set(void **state)
{
	struct ds_verified_set *s;
	struct ds_chunk_file f;

	(void)state;
	assert_int_equal(ds_verified_set_new(4, &s), 0);
	for (uint8_t i = 1; i <= 4; i++) {
		struct ds_digest d = dig(i);
		struct ds_chunk_file fi = ident(i);

		ds_verified_set_add(s, &d, &fi);
	}
	{
		struct ds_digest d1 = dig(1), d2 = dig(2), d5 = dig(5);
		struct ds_chunk_file f5 = ident(5);

		assert_true(ds_verified_set_find(s, &d1, &f)); /* 2 is now the oldest */
		ds_verified_set_add(s, &d5, &f5);
		assert_false(ds_verified_set_find(s, &d2, &f));
		assert_true(ds_verified_set_find(s, &d5, &f));
		assert_int_equal(f.ino, 5);
	}
	for (uint8_t i = 1; i <= 5; i++) {
		struct ds_digest d = dig(i);

		assert_int_equal(ds_verified_set_find(s, &d, &f), i != 2);
		if (i != 2)
			assert_int_equal(f.ino, i);
	}
	ds_verified_set_free(s);
}

/* Many digests across many sets: what was added last is found, and a set
 * never holds more than it can (nothing found under a wrong digest). */
static void test_many(void **state)
{
	struct ds_verified_set *s;
	struct ds_chunk_file f;
	unsigned found = 0;

	(void)state;
	assert_int_equal(ds_verified_set_new(1024, &s), 0);
	for (uint32_t i = 0; i < 4096; i++) {
		struct ds_digest d;
		struct ds_chunk_file fi = ident(i + 1);

		ds_sha256(&i, sizeof(i), &d);
		ds_verified_set_add(s, &d, &fi);
	}
	for (uint32_t i = 0; i < 4096; i++) {
		struct ds_digest d;

		ds_sha256(&i, sizeof(i), &d);
		if (ds_verified_set_find(s, &d, &f)) {
			assert_int_equal(f.ino, i + 1);
			found++;
		}
	}
	assert_true(found <= 1024);
	assert_true(found >= 512); /* mostly the last quarter */
	ds_verified_set_free(s);
}

struct worker {
	struct ds_verified_set *s;
	uint32_t base;
	unsigned wrong;
};

static void *hammer(void *arg)
{
	struct worker *w = arg;
	struct ds_chunk_file f;

	for (uint32_t n = 0; n < 20000; n++) {
		uint32_t i = w->base + n % 300;
		struct ds_digest d;
		struct ds_chunk_file fi = ident(i + 1);

		ds_sha256(&i, sizeof(i), &d);
		if (n % 3 == 0)
			ds_verified_set_add(w->s, &d, &fi);
		else if (ds_verified_set_find(w->s, &d, &f) && f.ino != i + 1)
			w->wrong++;
		else if (n % 7 == 0)
			ds_verified_set_forget(w->s, &d, &fi);
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct worker w[4];
	pthread_t t[4];
	struct ds_verified_set *s;

	(void)state;
	assert_int_equal(ds_verified_set_new(256, &s), 0);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .s = s, .base = (uint32_t)i * 1000 };
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].wrong, 0);
	}
	ds_verified_set_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_find_replace),
		cmocka_unit_test(test_full_set),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
