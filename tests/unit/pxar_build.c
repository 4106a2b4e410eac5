/* Crafted pxar archives for the unit suites (pxar_build.h). */
#include "pxar_build.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/pxar_format.h"
#include "store/util.h"

void pb_put(struct pb_out *o, const void *p, size_t n)
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

void pb_put64(struct pb_out *o, uint64_t v)
{
	uint8_t b[8];

	ds_put_le64(b, v);
	pb_put(o, b, 8);
}

void pb_item(struct pb_out *o, uint64_t type, const void *p, size_t n)
{
	pb_put64(o, type);
	pb_put64(o, 16 + n);
	pb_put(o, p, n);
}

void pb_entry(struct pb_out *o, uint64_t mode, int64_t sec, uint32_t nsec)
{
	uint8_t st[40] = { 0 };

	ds_put_le64(st, mode);
	ds_put_le32(st + 16, 1000);
	ds_put_le32(st + 20, 100);
	ds_put_le64(st + 24, (uint64_t)sec);
	ds_put_le32(st + 32, nsec);
	pb_item(o, PXAR_ENTRY, st, sizeof(st));
}

void pb_child_begin(struct pb_out *o, struct pb_child *c, const char *name)
{
	c->hash = ds_pxar_hash(name, strlen(name));
	c->f = o->len;
	c->end = 0;
}

static int child_cmp(const void *a, const void *b)
{
	const struct pb_child *x = a, *y = b;

	return x->hash < y->hash ? -1 : x->hash > y->hash;
}

/* The in-order walk of the heap-shaped tree gives slot -> sorted index
 * (spec §2.5). */
static void bst(size_t *slot_of, size_t n, size_t i, size_t *k)
{
	if (i >= n)
		return;
	bst(slot_of, n, 2 * i + 1, k);
	slot_of[(*k)++] = i;
	bst(slot_of, n, 2 * i + 2, k);
}

void pb_goodbye(struct pb_out *o, struct pb_child *kids, size_t n, uint64_t entry_off)
{
	size_t *slot_of = calloc(n + 1, sizeof(*slot_of)), k = 0;
	uint8_t *recs = calloc(n + 1, 24);
	uint64_t g = o->len;

	assert_non_null(slot_of);
	assert_non_null(recs);
	if (n)
		qsort(kids, n, sizeof(*kids), child_cmp);
	bst(slot_of, n, 0, &k);
	for (size_t i = 0; i < n; i++) {
		uint8_t *r = recs + 24 * slot_of[i];

		ds_put_le64(r, kids[i].hash);
		ds_put_le64(r + 8, g - kids[i].f);
		ds_put_le64(r + 16, kids[i].end - kids[i].f);
	}
	free(slot_of);
	pb_goodbye_raw(o, recs, n, entry_off);
}

void pb_goodbye_raw(struct pb_out *o, uint8_t *recs, size_t n, uint64_t entry_off)
{
	uint64_t g = o->len;

	recs = realloc(recs, 24 * (n + 1));
	assert_non_null(recs);
	ds_put_le64(recs + 24 * n, PXAR_GOODBYE_TAIL_MARKER);
	ds_put_le64(recs + 24 * n + 8, g - entry_off);
	ds_put_le64(recs + 24 * n + 16, 16 + 24 * (n + 1));
	pb_item(o, PXAR_GOODBYE, recs, 24 * (n + 1));
	free(recs);
}

static int mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct pb_mem *m = ctx;

	assert_true(off <= m->len && len <= m->len - off);
	if (off < m->fail_below || off + len > m->fail_from)
		return -EIO;
	memcpy(buf, m->b + off, len);
	return 0;
}

int pb_open_mem(struct pb_arch *a, struct pb_mem m, const struct pb_mem *p)
{
	memset(a, 0, sizeof(*a));
	a->m = m;
	if (p)
		a->p = *p;
	a->ms = (struct ds_pxar_source){ mem_pread, a->m.len, &a->m, NULL };
	a->ps = (struct ds_pxar_source){ mem_pread, a->p.len, &a->p, NULL };
	return ds_pxar_open(&a->ms, p ? &a->ps : NULL, &a->px);
}

int pb_open(struct pb_arch *a, const uint8_t *b, size_t len, const uint8_t *pb, size_t plen)
{
	struct pb_mem p = { pb, plen, 0, UINT64_MAX };

	return pb_open_mem(a, (struct pb_mem){ b, len, 0, UINT64_MAX }, pb ? &p : NULL);
}

int pb_lookup(struct ds_pxar *px, const char *name, struct ds_pxar_entry *ret)
{
	struct ds_pxar_entry root;

	ds_pxar_root(px, &root);
	return ds_pxar_lookup(px, &root, name, strlen(name), ret);
}

int pb_xattr_fn(void *ud, const char *name, const void *value, size_t len)
{
	struct pb_xattrs *x = ud;

	assert_true(x->n < 8 && len <= 128 && strlen(name) < 64);
	strcpy(x->names[x->n], name);
	memcpy(x->values[x->n], value, len);
	x->lens[x->n++] = len;
	return 0;
}

int pb_xattr_find(const struct pb_xattrs *x, const char *name)
{
	for (int i = 0; i < x->n; i++)
		if (strcmp(x->names[i], name) == 0)
			return i;
	return -1;
}
