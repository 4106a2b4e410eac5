/* Suite for store/pxar on archives that upstream's decoder refuses (spec
 * pxar-format.md): a second FCAPS / QUOTA_PROJID / ACL_GROUP_OBJ /
 * ACL_DEFAULT in one entry (§2.1), a split archive's payload stream
 * without its start or tail marker, a PAYLOAD_REF over a marker (§4). The archives are built here, item
 * by item, with correct goodbye tables, so that the one flaw is the only
 * one; the same builder without the flaw must read. */
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
#include "pxar_build.h"
#include "testutil.h"

static void quiet(enum ds_log_level level, const char *msg, void *userdata)
{
	(void)level;
	(void)msg;
	(void)userdata;
}

/* --- building an archive: a root holding files and fifos --- */

/* An attribute item: type and content. */
struct raw {
	uint64_t type;
	const char *data;
	size_t len;
};

struct kid {
	const char *name;
	uint64_t mode;         /* S_IFREG or S_IFIFO with permissions */
	const struct raw *attrs;
	size_t nattrs;
	const char *data;      /* regular files */
};

static void put_attrs(struct pb_out *m, const struct raw *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pb_item(m, a[i].type, a[i].data, a[i].len);
}

/* v1 (pay NULL) or v2 split archive of a root with root_attrs and kids. */
static void build(const struct raw *root_attrs, size_t nroot, const struct kid *kids, size_t n,
		  struct pb_out *m, struct pb_out *pay)
{
	struct pb_child *recs = calloc(n + 1, sizeof(*recs));

	assert_non_null(recs);
	memset(m, 0, sizeof(*m));
	if (pay) {
		uint8_t v[8];

		memset(pay, 0, sizeof(*pay));
		ds_put_le64(v, 2);
		pb_item(m, PXAR_FORMAT_VERSION, v, 8);
		pb_item(pay, PXAR_PAYLOAD_START_MARKER, NULL, 0);
	}
	pb_entry(m, S_IFDIR | 0755, 0, 0);
	put_attrs(m, root_attrs, nroot);
	for (size_t i = 0; i < n; i++) {
		pb_child_begin(m, &recs[i], kids[i].name);
		pb_item(m, PXAR_FILENAME, kids[i].name, strlen(kids[i].name) + 1);
		pb_entry(m, kids[i].mode, 0, 0);
		put_attrs(m, kids[i].attrs, kids[i].nattrs);
		if (S_ISREG(kids[i].mode)) {
			size_t dl = strlen(kids[i].data);

			if (pay) {
				uint8_t ref[16];

				ds_put_le64(ref, pay->len);
				ds_put_le64(ref + 8, dl);
				pb_item(pay, PXAR_PAYLOAD, kids[i].data, dl);
				pb_item(m, PXAR_PAYLOAD_REF, ref, sizeof(ref));
			} else {
				pb_item(m, PXAR_PAYLOAD, kids[i].data, dl);
			}
		}
		recs[i].end = m->len;
	}
	pb_goodbye(m, recs, n, 0);
	if (pay)
		pb_item(pay, PXAR_PAYLOAD_TAIL_MARKER, NULL, 0);
	free(recs);
}

/* --- checks --- */

struct xa {
	int n, fcaps;
};

static int xa_fn(void *ud, const char *name, const void *value, size_t len)
{
	struct xa *x = ud;

	(void)value;
	(void)len;
	x->n++;
	x->fcaps += strcmp(name, "security.capability") == 0;
	return 0;
}

static int count_fn(void *ud, const char *name, size_t len, const struct ds_pxar_entry *e)
{
	(void)name;
	(void)len;
	(void)e;
	(*(size_t *)ud)++;
	return 0;
}

static const char acl_default[32] = { 7, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0,
				      5, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0 };
static const char u64_5[8] = { 5 };
static const char acl_user[16] = { 0xe8, 3, 0, 0, 0, 0, 0, 0, 6 };

/* Every once-only item, once; the named kid has one of them twice. */
static void once_only_case(uint64_t twice, bool v2, bool in_root)
{
	struct raw attrs[] = {
		{ PXAR_XATTR, "user.a\0x", 8 },
		{ PXAR_XATTR, "user.b\0y", 8 },
		{ PXAR_ACL_USER, acl_user, 16 },
		{ PXAR_ACL_USER, acl_user, 16 },
		{ PXAR_ACL_GROUP_OBJ, u64_5, 8 },
		{ PXAR_ACL_DEFAULT, acl_default, 32 },
		{ PXAR_FCAPS, "caps", 4 },
		{ PXAR_QUOTA_PROJID, u64_5, 8 },
		{ 0, NULL, 0 }, /* the second one, if any */
	};
	size_t na = DS_ARRAY_SIZE(attrs) - 1;
	struct kid kids[] = {
		{ "bad", S_IFREG | 0644, attrs, na + 1, "bad data" },
		{ "fifo", S_IFIFO | 0644, attrs, na, NULL },
		{ "good", S_IFREG | 0644, attrs, na, "good data" },
	};
	struct ds_pxar_entry e, root;
	struct pb_out m, p;
	struct pb_arch a;
	struct xa x = { 0 };
	size_t nkids = 0;
	char buf[16];

	for (size_t i = 0; i < na; i++)
		if (attrs[i].type == twice)
			attrs[na] = attrs[i];
	if (!twice)
		kids[0].nattrs--;
	build(in_root ? attrs : NULL, in_root ? na + !!twice : 0, kids, DS_ARRAY_SIZE(kids), &m,
	      v2 ? &p : NULL);
	if (in_root) {
		/* upstream: the root entry itself does not decode */
		assert_int_equal(pb_open(&a, m.b, m.len, v2 ? p.b : NULL, v2 ? p.len : 0),
				 twice ? -EIO : 0);
		ds_pxar_free(a.px);
		goto out;
	}
	assert_int_equal(pb_open(&a, m.b, m.len, v2 ? p.b : NULL, v2 ? p.len : 0), 0);
	/* The others read, their once-only items once. */
	assert_int_equal(pb_lookup(a.px, "good", &e), 0);
	assert_int_equal(ds_pxar_xattrs(a.px, &e, xa_fn, &x), 0);
	assert_int_equal(x.fcaps, 1);
	assert_int_equal(x.n, 2 + 1 + 2); /* 2 XATTR, FCAPS, access + default ACL */
	assert_int_equal(ds_pxar_read(a.px, &e, buf, sizeof(buf), 0), 9);
	assert_memory_equal(buf, "good data", 9);
	assert_int_equal(pb_lookup(a.px, "fifo", &e), 0);
	assert_true(S_ISFIFO(e.mode));
	/* The one with a second once-only item is refused like other
	 * malformed entries: EIO, on lookup and on listing. */
	assert_int_equal(pb_lookup(a.px, "bad", &e), twice ? -EIO : 0);
	ds_pxar_root(a.px, &root);
	assert_int_equal(ds_pxar_readdir(a.px, &root, 0, count_fn, &nkids), twice ? -EIO : 0);
	if (!twice) {
		x = (struct xa){ 0 };
		assert_int_equal(ds_pxar_xattrs(a.px, &e, xa_fn, &x), 0);
		assert_int_equal(x.fcaps, 1);
	}
	ds_pxar_free(a.px);
out:
	free(m.b);
	if (v2)
		free(p.b);
}

static void test_once_only_items(void **state)
{
	static const uint64_t types[] = { 0, PXAR_FCAPS, PXAR_QUOTA_PROJID, PXAR_ACL_GROUP_OBJ,
					  PXAR_ACL_DEFAULT };

	(void)state;
	ds_log_set_sink(quiet, NULL);
	for (size_t i = 0; i < DS_ARRAY_SIZE(types); i++) {
		once_only_case(types[i], false, false);
		once_only_case(types[i], true, false);
		once_only_case(types[i], false, true);
	}
	ds_log_set_sink(NULL, NULL);
}

/* Opens meta + a payload copy of plen bytes (pay's bytes, then zeros),
 * with reads below fail_below failing; reads file "f" whole into buf. */
static int open_split(const struct pb_out *m, const uint8_t *pay, size_t plen, uint64_t fail_below,
		      char *buf, size_t len)
{
	struct pb_mem p = { pay, plen, fail_below, UINT64_MAX };
	struct ds_pxar_entry e;
	struct pb_arch a;
	int r;

	r = pb_open_mem(&a, (struct pb_mem){ m->b, m->len, 0, UINT64_MAX }, &p);
	if (r < 0)
		return r;
	r = pb_lookup(a.px, "f", &e);
	if (r == 0)
		r = (int)ds_pxar_read(a.px, &e, buf, len, 0);
	ds_pxar_free(a.px);
	return r;
}

static void test_payload_markers(void **state)
{
	struct kid kids[] = { { "f", S_IFREG | 0644, NULL, 0, "file data" } };
	struct pb_out m, p;
	uint8_t *c;
	char buf[32];
	size_t pl;

	(void)state;
	ds_log_set_sink(quiet, NULL);
	build(NULL, 0, kids, 1, &m, &p);
	pl = p.len;
	assert_int_equal(pl, 16 + 16 + 9 + 16);
	c = calloc(1, pl + 64);
	assert_non_null(c);

	memcpy(c, p.b, pl);
	assert_int_equal(open_split(&m, c, pl, 0, buf, sizeof(buf)), 9);
	assert_memory_equal(buf, "file data", 9);
	/* Start marker: another type, or the PAYLOAD that would follow it. */
	c[0] ^= 1;
	assert_int_equal(open_split(&m, c, pl, 0, buf, sizeof(buf)), -EIO);
	memcpy(c, p.b, pl);
	ds_put_le64(c, PXAR_PAYLOAD);
	assert_int_equal(open_split(&m, c, pl, 0, buf, sizeof(buf)), -EIO);
	/* Tail marker: another type or size, missing (stream cut, or bytes
	 * after it). */
	memcpy(c, p.b, pl);
	c[pl - 16] ^= 0x80;
	assert_int_equal(open_split(&m, c, pl, 0, buf, sizeof(buf)), -EIO);
	memcpy(c, p.b, pl);
	ds_put_le64(c + pl - 8, 24);
	assert_int_equal(open_split(&m, c, pl, 0, buf, sizeof(buf)), -EIO);
	memcpy(c, p.b, pl);
	assert_int_equal(open_split(&m, c, pl - 16, 0, buf, sizeof(buf)), -EIO);
	assert_int_equal(open_split(&m, c, pl + 16, 0, buf, sizeof(buf)), -EIO);
	assert_int_equal(open_split(&m, c, 16, 0, buf, sizeof(buf)), -EIO);
	assert_int_equal(open_split(&m, c, 0, 0, buf, sizeof(buf)), -EIO);
	/* A start marker that cannot be read (damaged chunk) does not fail
	 * the archive; the file behind it reads. */
	assert_int_equal(open_split(&m, c, pl, 16, buf, sizeof(buf)), 9);
	/* A PAYLOAD_REF pointing at the start marker or over the tail
	 * marker is refused with the entry. */
	memcpy(c, p.b, pl);
	for (size_t off = 0; off + 16 <= m.len; off++) {
		if (ds_le64(m.b + off) != PXAR_PAYLOAD_REF)
			continue;
		ds_put_le64(m.b + off + 16, 0);
		assert_int_equal(open_split(&m, c, pl, 0, buf, sizeof(buf)), -EIO);
		/* size 9 -> 25: the data ends where the tail marker does. */
		ds_put_le64(m.b + off + 16, 16);
		ds_put_le64(m.b + off + 24, 25);
		ds_put_le64(c + 24, 16 + 25);
		assert_int_equal(open_split(&m, c, pl, 0, buf, sizeof(buf)), -EIO);
	}
	free(c);
	free(m.b);
	free(p.b);
	ds_log_set_sink(NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_once_only_items),
		cmocka_unit_test(test_payload_markers),
	};

	return tu_run_group("pxar_strict", tests, NULL, NULL);
}
