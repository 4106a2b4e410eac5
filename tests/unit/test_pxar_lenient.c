/* Suite for store/pxar on archives that PBS's own reader takes although no
 * PBS client writes them by default (spec pxar-format.md): a directory
 * wider than 2.8 million entries. A restore from dsfs must not fail where
 * one from PBS works. The archives are built here item by item. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/log.h"
#include "store/pxar.h"
#include "store/pxar_format.h"
#include "store/util.h"
#include "testutil.h"

/* --- a source over a buffer --- */

struct mem {
	const uint8_t *b;
	size_t len;
};

static int mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct mem *m = ctx;

	assert_true(off <= m->len && len <= m->len - off);
	memcpy(buf, m->b + off, len);
	return 0;
}

struct arch {
	struct mem m;
	struct ds_pxar_source ms;
	struct ds_pxar *px;
};

static int arch_open(struct arch *a, const uint8_t *b, size_t len)
{
	memset(a, 0, sizeof(*a));
	a->m = (struct mem){ b, len };
	a->ms = (struct ds_pxar_source){ mem_pread, len, &a->m, NULL };
	return ds_pxar_open(&a->ms, NULL, &a->px);
}

/* --- building a v1 archive: a root holding kids --- */

struct out {
	uint8_t *b;
	size_t len, cap;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (o->len + n > o->cap) {
		o->cap = 2 * (o->len + n) + 256;
		o->b = realloc(o->b, o->cap);
		assert_non_null(o->b);
	}
	if (n)
		memcpy(o->b + o->len, p, n);
	o->len += n;
}

static void put64(struct out *o, uint64_t v)
{
	uint8_t b[8];

	ds_put_le64(b, v);
	put(o, b, 8);
}

static void item(struct out *o, uint64_t type, const void *p, size_t n)
{
	put64(o, type);
	put64(o, 16 + n);
	put(o, p, n);
}

static void entry(struct out *o, uint64_t mode, int64_t sec, uint32_t nsec)
{
	uint8_t st[40] = { 0 };

	ds_put_le64(st, mode);
	ds_put_le32(st + 16, 1000);
	ds_put_le32(st + 20, 100);
	ds_put_le64(st + 24, (uint64_t)sec);
	ds_put_le32(st + 32, nsec);
	item(o, PXAR_ENTRY, st, sizeof(st));
}

static void goodbye(struct out *o, uint8_t *recs, size_t n, uint64_t entry_off)
{
	uint64_t g = o->len;

	recs = realloc(recs, 24 * (n + 1));
	assert_non_null(recs);
	ds_put_le64(recs + 24 * n, PXAR_GOODBYE_TAIL_MARKER);
	ds_put_le64(recs + 24 * n + 8, g - entry_off);
	ds_put_le64(recs + 24 * n + 16, 16 + 24 * (n + 1));
	item(o, PXAR_GOODBYE, recs, 24 * (n + 1));
	free(recs);
}

static int lookup(struct ds_pxar *px, const char *name, struct ds_pxar_entry *ret)
{
	struct ds_pxar_entry root;

	ds_pxar_root(px, &root);
	return ds_pxar_lookup(px, &root, name, strlen(name), ret);
}

/* --- a directory wider than 2.8 million entries --- */

/* PBS has no limit on a directory's width (its client stops at 1,048,576
 * entries by default, --entries-max raises that). The root here has one
 * child more than a 64 MiB goodbye table holds: all records lead to the
 * same child "a", which the reader does not mind, and keeps the archive
 * at the size of its table. */
static void test_wide_dir(void **state)
{
	const size_t n = PXAR_GOODBYE_MAX / 24; /* (n + 1) * 24 > PXAR_GOODBYE_MAX */
	struct ds_pxar_entry e, root;
	struct ds_pxar_dir *d;
	uint64_t f, end, g, hash = ds_pxar_hash("a", 1);
	uint8_t *table;
	struct out m = { 0 };
	struct arch a;
	char name[8], buf[4];
	size_t len, cnt = 0;

	(void)state;
	assert_true((n + 1) * 24 > PXAR_GOODBYE_MAX);
	entry(&m, S_IFDIR | 0755, 0, 0);
	f = m.len;
	item(&m, PXAR_FILENAME, "a", 2);
	entry(&m, S_IFREG | 0644, 0, 0);
	item(&m, PXAR_PAYLOAD, "xyz", 3);
	end = m.len;
	g = m.len;
	table = malloc(24 * (n + 1));
	assert_non_null(table);
	for (size_t i = 0; i < n; i++) {
		ds_put_le64(table + 24 * i, hash);
		ds_put_le64(table + 24 * i + 8, g - f);
		ds_put_le64(table + 24 * i + 16, end - f);
	}
	goodbye(&m, table, n, 0);

	assert_int_equal(arch_open(&a, m.b, m.len), 0);
	ds_pxar_root(a.px, &root);
	assert_int_equal(ds_pxar_child_count(a.px, &root, &cnt), 0);
	assert_int_equal(cnt, n);
	assert_int_equal(lookup(a.px, "a", &e), 0);
	assert_int_equal(ds_pxar_read(a.px, &e, buf, sizeof(buf), 0), 3);
	assert_memory_equal(buf, "xyz", 3);
	assert_int_equal(lookup(a.px, "b", &e), -ENOENT);
	assert_int_equal(ds_pxar_dir_open(a.px, &root, &d), 0);
	assert_int_equal(ds_pxar_dir_count(d), n);
	assert_int_equal(ds_pxar_dir_child(a.px, d, 0, 0, name, &len, &e), 0);
	assert_int_equal(len, 1);
	assert_int_equal(name[0], 'a');
	assert_int_equal(ds_pxar_dir_child(a.px, d, n - 1, n - 1, name, &len, &e), 0);
	assert_int_equal(len, 1);
	assert_true(S_ISREG(e.mode));
	ds_pxar_dir_free(d);
	ds_pxar_free(a.px);
	free(m.b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wide_dir),
	};

	return tu_run_group("pxar_lenient", tests, NULL, NULL);
}
