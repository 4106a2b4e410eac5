/* Suite for store/pxar on archives that PBS's own reader takes although no
 * PBS client writes them (spec pxar-format.md): a directory wider than
 * 2.8 million entries, mode bits outside S_IFMT | 07777 and unknown file
 * types, mtime nanoseconds of 1e9 and more, ACL permission words with more
 * than rwx, an ACL id above 32 bits, an XATTR with an empty name. PBS's
 * decoder checks none of these (§1.3); a restore from dsfs must not fail
 * where one from PBS works. The archives are built here item by item. */
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

/* Counts the log lines (the skipped items must say so). */
static int warnings;

static void count_log(enum ds_log_level level, const char *msg, void *userdata)
{
	(void)msg;
	(void)userdata;
	warnings += level <= DS_LOG_WARN;
}

/* --- building a v1 archive: a root holding kids --- */

struct raw {
	uint64_t type;
	const void *data;
	size_t len;
};

/* The item that ends a kid comes from these, not from its mode, so that
 * a mode can disagree with it. */
struct kid {
	const char *name;
	uint64_t mode;
	uint32_t nsec;
	const struct raw *attrs;
	size_t nattrs;
	const char *data; /* PAYLOAD */
	const char *link; /* SYMLINK */
	bool dev;         /* DEVICE 8:1 */
	bool dir;         /* an empty goodbye table */
};

static void build(uint32_t root_nsec, const struct kid *kids, size_t n, struct pb_out *m)
{
	struct pb_child *recs = calloc(n + 1, sizeof(*recs));

	assert_non_null(recs);
	memset(m, 0, sizeof(*m));
	pb_entry(m, S_IFDIR | 0755, 1700000000, root_nsec);
	for (size_t i = 0; i < n; i++) {
		const struct kid *c = &kids[i];
		uint64_t e;

		pb_child_begin(m, &recs[i], c->name);
		pb_item(m, PXAR_FILENAME, c->name, strlen(c->name) + 1);
		e = m->len;
		pb_entry(m, c->mode, 1700000000, c->nsec);
		for (size_t j = 0; j < c->nattrs; j++)
			pb_item(m, c->attrs[j].type, c->attrs[j].data, c->attrs[j].len);
		if (c->data)
			pb_item(m, PXAR_PAYLOAD, c->data, strlen(c->data));
		if (c->link)
			pb_item(m, PXAR_SYMLINK, c->link, strlen(c->link) + 1);
		if (c->dev) {
			uint8_t d[16] = { 8, 0, 0, 0, 0, 0, 0, 0, 1 };

			pb_item(m, PXAR_DEVICE, d, sizeof(d));
		}
		if (c->dir)
			pb_goodbye(m, NULL, 0, e);
		recs[i].end = m->len;
	}
	pb_goodbye(m, recs, n, 0);
	free(recs);
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
	struct pb_out m = { 0 };
	struct pb_arch a;
	char name[8], buf[4];
	size_t len, cnt = 0;

	(void)state;
	assert_true((n + 1) * 24 > PXAR_GOODBYE_MAX);
	pb_entry(&m, S_IFDIR | 0755, 0, 0);
	f = m.len;
	pb_item(&m, PXAR_FILENAME, "a", 2);
	pb_entry(&m, S_IFREG | 0644, 0, 0);
	pb_item(&m, PXAR_PAYLOAD, "xyz", 3);
	end = m.len;
	g = m.len;
	table = malloc(24 * (n + 1));
	assert_non_null(table);
	for (size_t i = 0; i < n; i++) {
		ds_put_le64(table + 24 * i, hash);
		ds_put_le64(table + 24 * i + 8, g - f);
		ds_put_le64(table + 24 * i + 16, end - f);
	}
	pb_goodbye_raw(&m, table, n, 0);

	assert_int_equal(pb_open(&a, m.b, m.len, NULL, 0), 0);
	ds_pxar_root(a.px, &root);
	assert_int_equal(ds_pxar_child_count(a.px, &root, &cnt), 0);
	assert_int_equal(cnt, n);
	assert_int_equal(pb_lookup(a.px, "a", &e), 0);
	assert_int_equal(ds_pxar_read(a.px, &e, buf, sizeof(buf), 0), 3);
	assert_memory_equal(buf, "xyz", 3);
	assert_int_equal(pb_lookup(a.px, "b", &e), -ENOENT);
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

/* --- modes --- */

/* PBS's decoder takes any mode: the item that ends an entry makes it a
 * file, symlink or device, an entry without one is a fifo or socket by
 * its mode and otherwise a directory. Bits above S_IFMT | 07777 are
 * dropped by the kernel and by PBS's restore. */
static void test_modes(void **state)
{
	static const struct kid kids[] = {
		{ .name = "high", .mode = S_IFREG | 0644 | (1u << 20) | (UINT64_C(1) << 40),
		  .data = "high data" },
		{ .name = "high-dir", .mode = S_IFDIR | 0750 | (UINT64_C(1) << 63), .dir = true },
		{ .name = "unk-file", .mode = 0640, .data = "unknown" },
		{ .name = "unk-link", .mode = 0170777, .link = "unk-file" },
		{ .name = "unk-dir", .mode = 0030755, .dir = true },
		{ .name = "unk-dev", .mode = 0050644, .dev = true },
		{ .name = "unk-none", .mode = 0070644 },
		{ .name = "fifo", .mode = S_IFIFO | 0644 },
	};
	struct ds_pxar_entry e;
	struct pb_out m;
	struct pb_arch a;
	char buf[32];
	size_t cnt;

	(void)state;
	build(0, kids, DS_ARRAY_SIZE(kids), &m);
	assert_int_equal(pb_open(&a, m.b, m.len, NULL, 0), 0);

	warnings = 0;
	ds_log_set_sink(count_log, NULL);
	assert_int_equal(pb_lookup(a.px, "high", &e), 0);
	assert_int_equal(e.mode, S_IFREG | 0644);
	assert_int_equal(ds_pxar_read(a.px, &e, buf, sizeof(buf), 0), 9);
	assert_memory_equal(buf, "high data", 9);
	assert_int_equal(pb_lookup(a.px, "high-dir", &e), 0);
	assert_int_equal(e.mode, S_IFDIR | 0750);
	assert_int_equal(warnings, 0); /* silent, like PBS */

	assert_int_equal(pb_lookup(a.px, "unk-file", &e), 0);
	assert_int_equal(e.mode, S_IFREG | 0640);
	assert_int_equal(ds_pxar_read(a.px, &e, buf, sizeof(buf), 0), 7);
	assert_memory_equal(buf, "unknown", 7);
	assert_int_equal(pb_lookup(a.px, "unk-link", &e), 0);
	assert_int_equal(e.mode, S_IFLNK | 0777);
	assert_int_equal(ds_pxar_readlink(a.px, &e, buf, sizeof(buf)), 8);
	assert_string_equal(buf, "unk-file");
	assert_int_equal(pb_lookup(a.px, "unk-dir", &e), 0);
	assert_int_equal(e.mode, S_IFDIR | 0755);
	assert_int_equal(ds_pxar_child_count(a.px, &e, &cnt), 0);
	assert_int_equal(cnt, 0);
	assert_int_equal(warnings, 3); /* each unknown type says so */

	/* A device of unknown type (block or char?) and an entry taken as a
	 * directory without a goodbye table stay refused, the others not. */
	assert_int_equal(pb_lookup(a.px, "unk-dev", &e), -EIO);
	assert_int_equal(pb_lookup(a.px, "unk-none", &e), -EIO);
	assert_int_equal(pb_lookup(a.px, "fifo", &e), 0);
	assert_int_equal(e.mode, S_IFIFO | 0644);
	ds_log_set_sink(NULL, NULL);
	ds_pxar_free(a.px);
	free(m.b);
}

/* --- mtime nanoseconds --- */

/* Upstream writes 0..999999999; a larger value is taken as 999999999 (a
 * struct timespec must stay below 1e9), the seconds unchanged. */
static void test_mtime_nsec(void **state)
{
	static const struct kid kids[] = {
		{ .name = "max", .mode = S_IFREG | 0644, .nsec = 999999999, .data = "" },
		{ .name = "1e9", .mode = S_IFREG | 0644, .nsec = 1000000000, .data = "" },
		{ .name = "u32", .mode = S_IFREG | 0644, .nsec = UINT32_MAX, .data = "" },
		{ .name = "dir", .mode = S_IFDIR | 0755, .nsec = 2000000001, .dir = true },
	};
	static const uint32_t want[] = { 999999999, 999999999, 999999999, 999999999 };
	struct ds_pxar_entry e, root;
	struct pb_out m;
	struct pb_arch a;

	(void)state;
	/* The root too: before, the whole archive did not open. */
	build(1500000000, kids, DS_ARRAY_SIZE(kids), &m);
	assert_int_equal(pb_open(&a, m.b, m.len, NULL, 0), 0);
	ds_pxar_root(a.px, &root);
	assert_int_equal(root.mtime_sec, 1700000000);
	assert_int_equal(root.mtime_nsec, 999999999);
	for (size_t i = 0; i < DS_ARRAY_SIZE(kids); i++) {
		assert_int_equal(pb_lookup(a.px, kids[i].name, &e), 0);
		assert_int_equal(e.mtime_sec, 1700000000);
		assert_int_equal(e.mtime_nsec, want[i]);
	}
	ds_pxar_free(a.px);
	free(m.b);
}

/* --- ACLs and xattrs --- */

/* One Linux ACL xattr entry (<linux/posix_acl_xattr.h>): le16 tag, le16
 * perm, le32 id. */
static uint8_t *ace(uint8_t *p, uint16_t tag, uint16_t perm, uint32_t id)
{
	p[0] = (uint8_t)tag;
	p[1] = (uint8_t)(tag >> 8);
	p[2] = (uint8_t)perm;
	p[3] = (uint8_t)(perm >> 8);
	ds_put_le32(p + 4, id);
	return p + 8;
}

static void u64s(uint8_t *b, uint64_t a, uint64_t c)
{
	ds_put_le64(b, a);
	ds_put_le64(b + 8, c);
}

/* PBS's restore sets only the rwx bits of a permission word (libacl
 * permset) and skips an XATTR with an empty name ("skipping invalid
 * xattr"): a listing shows the rest instead of failing whole. */
static void test_acl_xattr(void **state)
{
	uint8_t user[16], user_big[16], group[16], group_obj[8], def[32], want[64], *p;
	const struct raw fattrs[] = {
		{ PXAR_XATTR, "user.a\0x", 8 },
		{ PXAR_XATTR, "\0no name", 8 },
		{ PXAR_XATTR, "user.b\0y", 8 },
		{ PXAR_ACL_USER, user, 16 },
		{ PXAR_ACL_USER, user_big, 16 },
		{ PXAR_ACL_GROUP, group, 16 },
		{ PXAR_ACL_GROUP_OBJ, group_obj, 8 },
	};
	const struct raw dattrs[] = { { PXAR_ACL_DEFAULT, def, 32 } };
	const struct kid kids[] = {
		{ .name = "f", .mode = S_IFREG | 0640, .attrs = fattrs,
		  .nattrs = DS_ARRAY_SIZE(fattrs), .data = "" },
		{ .name = "d", .mode = S_IFDIR | 0755, .attrs = dattrs,
		  .nattrs = DS_ARRAY_SIZE(dattrs), .dir = true },
	};
	struct ds_pxar_entry e;
	struct pb_xattrs x = { 0 };
	struct pb_out m;
	struct pb_arch a;
	int i;

	(void)state;
	u64s(user, 1000, 0x0e);              /* rw- plus an unknown bit */
	u64s(user_big, UINT64_C(1) << 32, 7); /* no Linux uid */
	u64s(group, 100, 0xff05);            /* r-x */
	ds_put_le64(group_obj, 0x1f);        /* rwx */
	u64s(def, 0xf7, 5);                  /* user_obj rwx, group_obj r-x */
	u64s(def + 16, 0x104, UINT64_MAX);   /* other r--, no mask */
	build(0, kids, DS_ARRAY_SIZE(kids), &m);
	assert_int_equal(pb_open(&a, m.b, m.len, NULL, 0), 0);

	warnings = 0;
	ds_log_set_sink(count_log, NULL);
	assert_int_equal(pb_lookup(a.px, "f", &e), 0);
	assert_int_equal(ds_pxar_xattrs(a.px, &e, pb_xattr_fn, &x), 0);
	assert_int_equal(x.n, 3);
	assert_int_equal(warnings, 2); /* the empty name, the id */
	i = pb_xattr_find(&x, "user.a");
	assert_true(i >= 0);
	assert_int_equal(x.lens[i], 1);
	assert_memory_equal(x.values[i], "x", 1);
	i = pb_xattr_find(&x, "user.b");
	assert_true(i >= 0);
	assert_memory_equal(x.values[i], "y", 1);
	/* Mode 0640 with ACL_GROUP_OBJ: the group bits (r--) are the mask. */
	ds_put_le32(want, 2);
	p = ace(want + 4, 0x01, 6, UINT32_MAX);
	p = ace(p, 0x02, 6, 1000);
	p = ace(p, 0x04, 7, UINT32_MAX);
	p = ace(p, 0x08, 5, 100);
	p = ace(p, 0x10, 4, UINT32_MAX);
	p = ace(p, 0x20, 0, UINT32_MAX);
	i = pb_xattr_find(&x, "system.posix_acl_access");
	assert_true(i >= 0);
	assert_int_equal(x.lens[i], (size_t)(p - want));
	assert_memory_equal(x.values[i], want, (size_t)(p - want));

	memset(&x, 0, sizeof(x));
	assert_int_equal(pb_lookup(a.px, "d", &e), 0);
	assert_int_equal(ds_pxar_xattrs(a.px, &e, pb_xattr_fn, &x), 0);
	assert_int_equal(x.n, 1);
	p = ace(want + 4, 0x01, 7, UINT32_MAX);
	p = ace(p, 0x04, 5, UINT32_MAX);
	p = ace(p, 0x20, 4, UINT32_MAX);
	assert_string_equal(x.names[0], "system.posix_acl_default");
	assert_int_equal(x.lens[0], (size_t)(p - want));
	assert_memory_equal(x.values[0], want, (size_t)(p - want));
	ds_log_set_sink(NULL, NULL);
	ds_pxar_free(a.px);
	free(m.b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wide_dir),
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_mtime_nsec),
		cmocka_unit_test(test_acl_xattr),
	};

	return tu_run_group("pxar_lenient", tests, NULL, NULL);
}
