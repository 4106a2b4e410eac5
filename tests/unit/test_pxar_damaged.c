/* Suite for store/pxar on damaged archives: truncated at every length,
 * bytes flipped at many positions, and crafted offsets (goodbye records
 * pointing outside, hardlinks pointing forward or at non-files, a directory
 * containing itself). The decoder must give an error or consistent data,
 * never read outside the stream, crash or hang (wall-clock guard). */
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
#include <unistd.h>

#include "store/log.h"
#include "store/pxar.h"
#include "store/util.h"
#include "testutil.h"

static unsigned long oob_reads;
static unsigned long walks, walked_entries; /* damaged archives that opened */

struct mem {
	const uint8_t *b;
	size_t len;
};

static int mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct mem *m = ctx;

	if (off > m->len || len > m->len - off) {
		oob_reads++;
		return -EIO;
	}
	memcpy(buf, m->b + off, len);
	return 0;
}

struct arch {
	struct mem m, p;
	struct ds_pxar_source ms, ps;
	struct ds_pxar *px;
};

static int arch_open(struct arch *a, const uint8_t *b, size_t len, const uint8_t *pb, size_t plen)
{
	memset(a, 0, sizeof(*a));
	a->m = (struct mem){ b, len };
	a->p = (struct mem){ pb, plen };
	a->ms = (struct ds_pxar_source){ mem_pread, len, &a->m, NULL };
	a->ps = (struct ds_pxar_source){ mem_pread, plen, &a->p, NULL };
	return ds_pxar_open(&a->ms, pb ? &a->ps : NULL, &a->px);
}

static void quiet(enum ds_log_level level, const char *msg, void *userdata)
{
	(void)level;
	(void)msg;
	(void)userdata;
}

static uint8_t *fixture(const char *name, size_t *len)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/pxar/%s", tu_fixtures(), name);
	return tu_read(path, len);
}

/* --- walking a damaged tree: every call, results checked for consistency --- */

struct walk {
	struct ds_pxar *px;
	uint64_t size;
	const struct ds_pxar_entry *dir;
	unsigned entries;
};

static int xattr_fn(void *ud, const char *name, const void *value, size_t len)
{
	(void)ud;
	(void)value;
	(void)len;
	assert_true(name[0] != 0);
	return 0;
}

static void visit(struct walk *w, const struct ds_pxar_entry *dir);

static int child_fn(void *ud, const char *name, size_t len, const struct ds_pxar_entry *e)
{
	struct walk *w = ud;
	struct ds_pxar_entry le;
	char buf[4097];
	uint64_t off = 0;
	ssize_t n;

	assert_true(len > 0 && len <= 4096 && !memchr(name, '/', len) && !memchr(name, 0, len));
	assert_true(e->entry_off < w->size && e->end <= w->size);
	/* A child lies strictly inside its directory (hardlinks: before it). */
	assert_true(e->hardlink || (e->entry_off > w->dir->entry_off && e->end <= w->dir->goodbye_off));
	if (++w->entries > 10000)
		return 1;
	if (S_ISREG(e->mode)) {
		while ((n = ds_pxar_read(w->px, e, buf, 1000, off)) > 0)
			off += (uint64_t)n;
		assert_true(n < 0 || off == e->size);
		assert_true(ds_pxar_nlink(w->px, e) != 0);
	}
	if (S_ISLNK(e->mode)) {
		int r = ds_pxar_readlink(w->px, e, buf, sizeof(buf));

		assert_true(r < 0 || ((uint64_t)r == e->size && buf[r] == 0));
	}
	ds_pxar_xattrs(w->px, e, xattr_fn, NULL);
	if (ds_pxar_lookup(w->px, w->dir, name, len, &le) == 0)
		assert_true(le.entry_off < w->size);
	if (S_ISDIR(e->mode))
		visit(w, e);
	return 0;
}

static void visit(struct walk *w, const struct ds_pxar_entry *dir)
{
	const struct ds_pxar_entry *up = w->dir;
	size_t n;

	w->dir = dir;
	if (ds_pxar_readdir(w->px, dir, 0, child_fn, w) >= 0) {
		assert_int_equal(ds_pxar_child_count(w->px, dir, &n), 0);
	}
	w->dir = up;
}

static void walk_damaged(const uint8_t *b, size_t len, const uint8_t *pb, size_t plen)
{
	struct arch a;
	struct ds_pxar_entry root;
	struct walk w = { .size = len };

	if (arch_open(&a, b, len, pb, plen) < 0)
		return;
	w.px = a.px;
	ds_pxar_root(a.px, &root);
	assert_true(S_ISDIR(root.mode) && root.end == len);
	visit(&w, &root);
	walks++;
	walked_entries += w.entries;
	ds_pxar_free(a.px);
}

/* --- damaged archives: an error or consistent data, never a crash --- */

static void test_truncated(void **state)
{
	uint8_t buf[200] = { 0 };
	size_t l1, lm, lp, le;
	uint8_t *empty_root = fixture("empty-root.v1.pxar", &le);
	uint8_t *v1 = fixture("all-kinds.v1.pxar", &l1);
	uint8_t *m = fixture("all-kinds.v2.mpxar", &lm);
	uint8_t *p = fixture("all-kinds.v2.ppxar", &lp);
	struct arch a;

	(void)state;
	oob_reads = walks = walked_entries = 0;
	ds_log_set_sink(quiet, NULL);
	/* Prefixes of the empty root, and the empty root plus trailing bytes. */
	for (size_t n = 0; n <= sizeof(buf); n++) {
		memcpy(buf, empty_root, n < le ? n : le);
		assert_int_equal(arch_open(&a, buf, n, NULL, 0), n == 96 ? 0 : -EIO);
		ds_pxar_free(a.px);
	}
	/* Every prefix and every suffix of all-kinds; payload cut anywhere. */
	for (size_t n = 0; n < l1; n++) {
		walk_damaged(v1, n, NULL, 0);
		walk_damaged(v1 + n, l1 - n, NULL, 0);
	}
	for (size_t n = 0; n < lm; n += 7)
		walk_damaged(m, n, p, lp);
	for (size_t n = 0; n <= lp; n += 5)
		walk_damaged(m, lm, p, n);
	assert_int_equal(oob_reads, 0);
	print_message("%lu truncated archives opened, %lu entries walked\n", walks,
		      walked_entries);
	ds_log_set_sink(NULL, NULL);
	free(v1);
	free(empty_root);
	free(m);
	free(p);
}

static void test_bitflips(void **state)
{
	static const uint8_t xors[] = { 0x01, 0x80, 0xff, 0x10 };
	size_t l1, lm, lp, le;
	uint8_t *empty_root = fixture("empty-root.v1.pxar", &le);
	uint8_t er[96];
	uint8_t *v1 = fixture("all-kinds.v1.pxar", &l1);
	uint8_t *m = fixture("all-kinds.v2.mpxar", &lm);
	uint8_t *p = fixture("all-kinds.v2.ppxar", &lp);
	unsigned seed = 12345;

	(void)state;
	oob_reads = walks = walked_entries = 0;
	ds_log_set_sink(quiet, NULL);
	assert_int_equal(le, sizeof(er));
	for (size_t i = 0; i < sizeof(er); i++) {
		for (size_t j = 0; j < DS_ARRAY_SIZE(xors); j++) {
			memcpy(er, empty_root, sizeof(er));
			er[i] ^= xors[j];
			walk_damaged(er, sizeof(er), NULL, 0);
		}
	}
	for (int i = 0; i < 400; i++) {
		size_t pos = (size_t)rand_r(&seed) % l1;
		uint8_t x = (uint8_t)(rand_r(&seed) % 255 + 1);

		v1[pos] ^= x;
		walk_damaged(v1, l1, NULL, 0);
		v1[pos] ^= x;
	}
	for (int i = 0; i < 200; i++) {
		size_t pos = (size_t)rand_r(&seed) % lm;
		uint8_t x = (uint8_t)(rand_r(&seed) % 255 + 1);

		m[pos] ^= x;
		walk_damaged(m, lm, p, lp);
		m[pos] ^= x;
		pos = (size_t)rand_r(&seed) % lp;
		p[pos] ^= x;
		walk_damaged(m, lm, p, lp);
		p[pos] ^= x;
	}
	assert_int_equal(oob_reads, 0);
	print_message("%lu damaged archives opened, %lu entries walked\n", walks,
		      walked_entries);
	/* Most flips leave the archive openable: the walks must really run. */
	assert_true(walks > 400);
	ds_log_set_sink(NULL, NULL);
	free(v1);
	free(empty_root);
	free(m);
	free(p);
}

/* Offset of the goodbye record for name in the table whose header is at g. */
static size_t find_rec(const uint8_t *b, size_t g, const char *name)
{
	size_t n = (ds_le64(b + g + 8) - 16) / 24;
	uint64_t h = ds_pxar_hash(name, strlen(name));

	for (size_t i = 0; i < n; i++)
		if (ds_le64(b + g + 16 + 24 * i) == h)
			return g + 16 + 24 * i;
	fail_msg("no goodbye record for %s", name);
	return 0;
}

static int open_and_get(uint8_t *b, size_t len, const char *path, struct ds_pxar_entry *ret)
{
	struct ds_pxar_entry cur;
	struct arch a;
	int r;

	r = arch_open(&a, b, len, NULL, 0);
	assert_int_equal(r, 0);
	ds_pxar_root(a.px, &cur);
	for (const char *p = path, *s; *p; p = s ? s + 1 : p + strlen(p)) {
		s = strchr(p, '/');
		r = ds_pxar_lookup(a.px, &cur, p, s ? (size_t)(s - p) : strlen(p), &cur);
		if (r < 0)
			break;
	}
	if (r == 0 && ret)
		*ret = cur;
	if (r == 0 && S_ISREG(cur.mode))
		r = ds_pxar_nlink(a.px, &cur) < 0 ? -EIO : 0;
	ds_pxar_free(a.px);
	return r;
}

static void test_crafted(void **state)
{
	size_t l1;
	uint8_t *v1 = fixture("all-kinds.v1.pxar", &l1);
	uint8_t *b = malloc(l1);
	/* Offsets in all-kinds.v1.pxar (checked below): hardlink FILENAME,
	 * the dir's FILENAME and GOODBYE, the root GOODBYE. */
	const size_t hl_f = 950, dir_f = 378, dir_g = 691, root_g = 7088;
	size_t rec;
	struct ds_pxar_entry e;
	struct arch a;

	(void)state;
	ds_log_set_sink(quiet, NULL);
	assert_int_equal(ds_le64(v1 + hl_f + 25 + 16), 894); /* HARDLINK delta */
	assert_int_equal(ds_le64(v1 + dir_g), 0x2fec4fa642d5731d);
	assert_int_equal(ds_le64(v1 + root_g), 0x2fec4fa642d5731d);
	assert_int_equal(ds_le64(v1 + dir_f), 0x16701121063917b3);

	/* Hardlink delta 0, forward (wraps below 0), to a directory, to an
	 * ENTRY instead of a FILENAME. */
	static const uint64_t deltas[] = { 0, 951, UINT64_MAX - 10, hl_f - dir_f, hl_f - 79 };
	for (size_t i = 0; i < DS_ARRAY_SIZE(deltas); i++) {
		memcpy(b, v1, l1);
		ds_put_le64(b + hl_f + 25 + 16, deltas[i]);
		assert_int_equal(open_and_get(b, l1, "hardlink", NULL), -EIO);
		/* The scan behind nlink refuses the archive as well. */
		assert_int_equal(open_and_get(b, l1, "a-file", NULL), -EIO);
		assert_int_equal(open_and_get(b, l1, "dir/nested", &e), -EIO);
	}

	/* Goodbye offsets pointing outside the directory, beyond G, and spans
	 * beyond the parent. */
	static const uint64_t offs[] = { 0, 7089, 7088 + 100, UINT64_MAX, 7088 - 50 };
	rec = find_rec(v1, root_g, "fifo");
	for (size_t i = 0; i < DS_ARRAY_SIZE(offs); i++) {
		memcpy(b, v1, l1);
		ds_put_le64(b + rec + 8, offs[i]);
		assert_int_equal(open_and_get(b, l1, "fifo", NULL), -EIO);
		assert_int_equal(open_and_get(b, l1, "a-file", NULL), 0);
	}
	memcpy(b, v1, l1);
	rec = find_rec(v1, root_g, "dir");
	ds_put_le64(b + rec + 16, ds_le64(v1 + rec + 16) + 24);
	assert_int_equal(open_and_get(b, l1, "dir", NULL), -EIO);
	ds_put_le64(b + rec + 16, UINT64_MAX);
	assert_int_equal(open_and_get(b, l1, "dir", NULL), -EIO);

	/* A directory containing itself: dir's record for "nested" points at
	 * dir's own FILENAME, or at the archive start. */
	memcpy(b, v1, l1);
	rec = find_rec(v1, dir_g, "nested");
	ds_put_le64(b + rec + 8, dir_g - dir_f);
	assert_int_equal(open_and_get(b, l1, "dir/nested", NULL), -EIO);
	assert_int_equal(open_and_get(b, l1, "dir/empty-sub", NULL), 0);
	ds_put_le64(b + rec + 8, dir_g);
	assert_int_equal(open_and_get(b, l1, "dir/nested", NULL), -EIO);
	/* ... or the root's record for "dir" points at the root itself. */
	memcpy(b, v1, l1);
	rec = find_rec(v1, root_g, "dir");
	ds_put_le64(b + rec + 8, root_g);
	ds_put_le64(b + rec + 16, l1);
	assert_int_equal(open_and_get(b, l1, "dir", NULL), -EIO);

	/* Equal hashes in both subtrees (§2.5): the root slot of many/'s tree
	 * takes the hash of its right child; lookup must go on into the right
	 * subtree after the name mismatch at the root. Likewise in dir/ with
	 * both records swapped under one hash (left subtree). */
	memcpy(b, v1, l1);
	const size_t many_g = 5363;
	char name[8] = { 0 };
	uint64_t f = many_g - ds_le64(v1 + many_g + 16 + 2 * 24 + 8);

	assert_int_equal(ds_le64(v1 + many_g), 0x2fec4fa642d5731d);
	memcpy(name, v1 + f + 16, 3);
	ds_put_le64(b + many_g + 16, ds_le64(v1 + many_g + 16 + 2 * 24));
	assert_int_equal(open_and_get(b, l1, "many", &e), 0);
	assert_int_equal(open_and_get(b, l1, "many", NULL), 0);
	char path[16];
	snprintf(path, sizeof(path), "many/%s", name);
	assert_int_equal(open_and_get(b, l1, path, &e), 0);
	assert_int_equal(e.entry_off, f + 20);
	memcpy(b, v1, l1);
	rec = find_rec(v1, dir_g, "nested");
	size_t other = rec == dir_g + 16 ? dir_g + 40 : dir_g + 16;
	memcpy(b + rec + 8, v1 + other + 8, 16);
	memcpy(b + other, v1 + rec, 8);
	memcpy(b + other + 8, v1 + rec + 8, 16);
	assert_int_equal(open_and_get(b, l1, "dir/nested", &e), 0);
	assert_int_equal(e.mode, S_IFREG | 0600);

	/* Root tail record and GOODBYE header disagreeing. */
	memcpy(b, v1, l1);
	b[l1 - 16] ^= 1;
	assert_int_equal(arch_open(&a, b, l1, NULL, 0), -EIO);
	memcpy(b, v1, l1);
	b[l1 - 8] ^= 1;
	assert_int_equal(arch_open(&a, b, l1, NULL, 0), -EIO);
	ds_log_set_sink(NULL, NULL);
	free(b);
	free(v1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bitflips),
		cmocka_unit_test(test_crafted),
	};

	/* Wall-clock guard: a decoder loop must fail the suite, not hang it. */
	alarm(30);
	return tu_run_group("pxar_damaged", tests, NULL, NULL);
}
