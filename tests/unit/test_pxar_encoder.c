/* Suite for store/pxar_encoder, byte level: the upstream-written fixtures
 * (the empty root, and subtrees of all-kinds.v1.pxar rebuilt on disk) are
 * reproduced byte for byte, goodbye tables follow the §2.5 slot tables for
 * n = 1..17, and argument and sink errors come back. Every archive also
 * passes the structure validator of pxar_check.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pxar_check.h"
#include "store/pxar_encoder.h"
#include "store/util.h"
#include "testutil.h"

static void test_empty_root_fixture(void **state)
{
	const char *fix = tu_fixtures();
	char *t = tu_tmpdir(), p[4096];
	static const uint8_t v2_head[24] = { 0x0d, 0xa4, 0x16, 0xdf, 0x75, 0x6c, 0x0f, 0x73,
					     24, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0 };
	struct enc_out o;
	uint8_t *want;
	size_t wlen;

	(void)state;
	if (geteuid() != 0) {
		tu_rmtree(t);
		free(t);
		tu_skip("needs root (files owned by uid 0)");
	}
	PJ(p, "%s/e", t);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(chmod(p, 0755), 0);
	assert_int_equal(chown(p, 0, 0), 0);
	set_time(p, 1700000000, 0);
	assert_int_equal(encode(p, false, &o), 0);
	PJ(p, "%s/pxar/empty-root.v1.pxar", fix);
	want = tu_read(p, &wlen);
	assert_int_equal(o.meta.len, wlen);
	assert_memory_equal(o.meta.p, want, wlen);
	assert_int_equal(o.st.dirs, 1);
	enc_out_free(&o);

	/* v2: FORMAT_VERSION, the same root, the tail pointing at offset 0. */
	PJ(p, "%s/e", t);
	assert_int_equal(encode(p, true, &o), 0);
	assert_int_equal(o.meta.len, 24 + wlen);
	assert_memory_equal(o.meta.p, v2_head, 24);
	assert_memory_equal(o.meta.p + 24, want, 56 + 24);
	assert_true(ds_le64(o.meta.p + 24 + 56 + 16 + 8) == 24 + 56); /* G - 0 */
	assert_int_equal(o.pay.len, 32);
	assert_true(ds_le64(o.pay.p) == T_PAYLOAD_START && ds_le64(o.pay.p + 8) == 16);
	assert_true(ds_le64(o.pay.p + 16) == T_PAYLOAD_TAIL && ds_le64(o.pay.p + 24) == 16);
	validate(&o, true, NULL);
	enc_out_free(&o);
	free(want);
	tu_rmtree(t);
	free(t);
}

/* §2.5 slot → sorted-index tables for n = 1..17 (-1: not given there). */
static const int slot_tables[18][17] = {
	[1] = { 0 },
	[2] = { 1, 0 },
	[3] = { 1, 0, 2 },
	[4] = { 2, 1, 3, 0 },
	[5] = { 3, 1, 4, 0, 2 },
	[6] = { 3, 1, 5, 0, 2, 4 },
	[7] = { 3, 1, 5, 0, 2, 4, 6 },
	[8] = { 4, 2, 6, 1, 3, 5, 7, 0 },
	[9] = { -1 },
	[10] = { 6, 3, 8, 1, 5, 7, 9, 0, 2, 4 },
	[11] = { -1 }, [12] = { -1 }, [13] = { -1 }, [14] = { -1 }, [15] = { -1 },
	[16] = { 8, 4, 12, 2, 6, 10, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0 },
	[17] = { 9, 5, 13, 3, 7, 11, 15, 1, 4, 6, 8, 10, 12, 14, 16, 0, 2 },
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static void test_goodbye_layout(void **state)
{
	char *t = tu_tmpdir(), p[4096], f[4096];

	(void)state;
	for (int n = 1; n <= 17; n++) {
		uint64_t hashes[17], g, size;
		struct enc_out o;
		const uint8_t *tab;

		PJ(p, "%s/n%d", t, n);
		assert_int_equal(mkdir(p, 0755), 0);
		for (int i = 0; i < n; i++) {
			char name[16];
			int fd;

			snprintf(name, sizeof(name), "c%d", i);
			hashes[i] = ds_pxar_hash(name, strlen(name));
			PJ(f, "%s/%s", p, name);
			fd = open(f, O_CREAT | O_WRONLY, 0644);
			assert_true(fd >= 0);
			close(fd);
		}
		qsort(hashes, (size_t)n, sizeof(hashes[0]), cmp_u64);
		assert_int_equal(encode(p, false, &o), 0);
		validate(&o, false, NULL);
		/* From the end, as a reader opens the root (§3.1). */
		size = ds_le64(o.meta.p + o.meta.len - 8);
		assert_int_equal(size, 16 + 24 * (n + 1));
		g = o.meta.len - size;
		assert_true(ds_le64(o.meta.p + o.meta.len - 16) == g); /* root: G - 0 */
		assert_true(ds_le64(o.meta.p + o.meta.len - 24) == T_TAIL);
		assert_true(ds_le64(o.meta.p + g) == T_GOODBYE);
		tab = o.meta.p + g + 16;
		if (slot_tables[n][0] >= 0)
			for (int i = 0; i < n; i++)
				assert_true(ds_le64(tab + 24 * i) == hashes[slot_tables[n][i]]);
		enc_out_free(&o);
	}
	tu_rmtree(t);
	free(t);
}

static void test_errors(void **state)
{
	char *t = tu_tmpdir(), p[4096];
	struct mem m = { 0 }, bad = { .fail_after = 300 }, pay = { 0 };
	struct ds_pxar_sink ms = { mem_write, &m }, bs = { mem_write, &bad };
	struct ds_pxar_sink ps = { mem_write, &pay };
	int fd;

	(void)state;
	PJ(p, "%s/missing", t);
	assert_int_equal(ds_pxar_encode_dir(p, &ms, NULL, NULL, NULL, NULL), -ENOENT);
	PJ(p, "%s/file", t);
	fd = open(p, O_CREAT | O_WRONLY, 0644);
	assert_int_equal(ds_write_all(fd, "data", 4), 0);
	close(fd);
	assert_int_equal(ds_pxar_encode_dir(p, &ms, NULL, NULL, NULL, NULL), -ENOTDIR);
	assert_int_equal(ds_pxar_encode_dir(t, NULL, NULL, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(ds_pxar_encode_dir(t, &ms, NULL, &ms, NULL, NULL), -EINVAL);
	assert_int_equal(m.len, 0);
	/* Sink errors come back. */
	assert_int_equal(ds_pxar_encode_dir(t, &bs, NULL, NULL, NULL, NULL), 0); /* 217 bytes */
	for (int i = 0; i < 40; i++) {
		PJ(p, "%s/f%02d", t, i);
		fd = open(p, O_CREAT | O_WRONLY, 0644);
		close(fd);
	}
	bad.len = 0;
	assert_int_equal(ds_pxar_encode_dir(t, &bs, NULL, NULL, NULL, NULL), -ENOSPC);
	bad.len = 0;
	assert_int_equal(ds_pxar_encode_dir(t, &ms, &bs, NULL, NULL, NULL), -ENOSPC);
	bad.len = 0;
	assert_int_equal(ds_pxar_encode_dir(t, &ms, &ps, &bs, "x.mpxar.didx", NULL), -ENOSPC);
	free(m.p);
	free(bad.p);
	free(pay.p);
	tu_rmtree(t);
	free(t);
}

static void test_fixture_subtrees(void **state)
{
	const char *fix = tu_fixtures();
	char *t = tu_tmpdir(), d[4096], p[4096];
	struct enc_out o;
	uint8_t *want;
	size_t wlen;

	(void)state;
	if (geteuid() != 0) {
		tu_rmtree(t);
		free(t);
		tu_skip("needs root (files owned by uid 0)");
	}
	PJ(p, "%s/pxar/all-kinds.v1.pxar", fix);
	want = tu_read(p, &wlen);
	assert_int_equal(wlen, 7416);
	assert_memory_equal(want + 378 + 16, "dir", 4);
	assert_memory_equal(want + 1006 + 16, "many", 5);

	PJ(d, "%s/dir", t);
	mkd(t, "dir", 0755);
	mkd(t, "dir/empty-sub", 0700);
	mkf(t, "dir/nested", "nested file contents", 20, 0600);
	owner(t, "dir", 1000, 1000);
	owner(t, "dir/empty-sub", 1000, 1000);
	owner(t, "dir/nested", 1000, 1000);
	tset(t, "dir/empty-sub", 1700000000, 0);
	tset(t, "dir/nested", 1700000000, 0);
	tset(t, "dir", 1700000000, 5);
	assert_int_equal(encode(d, false, &o), 0);
	assert_int_equal(o.meta.len, 779 - 398);
	assert_memory_equal(o.meta.p, want + 398, 779 - 398);
	enc_out_free(&o);

	PJ(d, "%s/many", t);
	mkd(t, "many", 0755);
	for (int i = 0; i < 40; i++) {
		char n[32], c[32];

		snprintf(n, sizeof(n), "many/f%02d", i);
		snprintf(c, sizeof(c), "content of f%02d\n", i);
		mkf(t, n, c, strlen(c), 0644);
		owner(t, n, 0, 0);
		tset(t, n, 1700000000, 0);
	}
	owner(t, "many", 0, 0);
	tset(t, "many", 1700000000, 0);
	assert_int_equal(encode(d, false, &o), 0);
	assert_int_equal(o.meta.len, 6363 - 1027);
	assert_memory_equal(o.meta.p, want + 1027, 6363 - 1027);
	enc_out_free(&o);
	free(want);
	tu_rmtree(t);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_root_fixture),
		cmocka_unit_test(test_goodbye_layout),
		cmocka_unit_test(test_fixture_subtrees),
		cmocka_unit_test(test_errors),
	};

	return tu_run_group("pxar_encoder", tests, NULL, NULL);
}
