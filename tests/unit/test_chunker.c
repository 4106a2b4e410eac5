/* Suite for store/chunker: the buzhash table and PBS's boundary vectors
 * (spec §5). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/chunker.h"
#include "store/util.h"
#include "testutil.h"

/* The spec's input stream: 32-bit xorshift from 0x12345678, low byte. */
static uint8_t *xorshift_stream(size_t len)
{
	uint8_t *buf = malloc(len);
	uint32_t x = 0x12345678;

	assert_non_null(buf);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)x;
	}
	return buf;
}

/* Chunk sizes of buf fed in one piece; the last is the remainder. */
static size_t chunk_all(size_t avg, const uint8_t *buf, size_t len, size_t *sizes, size_t max)
{
	struct ds_chunker c;
	size_t pos = 0, start = 0, n = 0;

	assert_int_equal(ds_chunker_init(&c, avg), 0);
	while (pos < len) {
		size_t k = ds_chunker_scan(&c, buf + pos, len - pos);

		if (k == 0)
			break;
		assert_true(k <= len - pos);
		pos += k;
		assert_true(n < max);
		sizes[n++] = pos - start;
		start = pos;
	}
	if (start < len) {
		assert_true(n < max);
		sizes[n++] = len - start;
	}
	return n;
}

/* Same, but fed in pieces of pseudo-random length (1 .. maxpiece). */
static size_t chunk_pieces(size_t avg, const uint8_t *buf, size_t len, size_t maxpiece,
			   uint32_t seed, size_t *sizes, size_t max)
{
	struct ds_chunker c;
	size_t pos = 0, start = 0, n = 0;

	assert_int_equal(ds_chunker_init(&c, avg), 0);
	while (pos < len) {
		size_t piece, k;

		seed = seed * 1103515245u + 12345u;
		piece = 1 + (seed >> 8) % maxpiece;
		if (piece > len - pos)
			piece = len - pos;
		/* A piece may hold several boundaries: rescan its rest. */
		while (piece > 0) {
			k = ds_chunker_scan(&c, buf + pos, piece);
			if (k == 0) {
				pos += piece;
				break;
			}
			pos += k;
			piece -= k;
			assert_true(n < max);
			sizes[n++] = pos - start;
			start = pos;
		}
	}
	if (start < len) {
		assert_true(n < max);
		sizes[n++] = len - start;
	}
	return n;
}

static void test_table(void **state)
{
	uint8_t packed[1024];
	char hex[65];

	(void)state;
	assert_int_equal(ds_buzhash_table[0], 0x458be752u);
	assert_int_equal(ds_buzhash_table[1], 0xc10748ccu);
	assert_int_equal(ds_buzhash_table[254], 0x593ade65u);
	assert_int_equal(ds_buzhash_table[255], 0xd95ddf11u);
	for (int i = 0; i < 256; i++)
		ds_put_le32(packed + 4 * i, ds_buzhash_table[i]);
	tu_sha256_hex(packed, sizeof(packed), hex);
	assert_string_equal(hex, "5b52080d38287da9d2e278466e3e0db7ec98e5e8b226f50612a56fa012b1f660");
}

static void test_init(void **state)
{
	struct ds_chunker c;

	(void)state;
	assert_int_equal(ds_chunker_init(&c, 0), -EINVAL);
	assert_int_equal(ds_chunker_init(&c, 32), -EINVAL);
	assert_int_equal(ds_chunker_init(&c, 65536 + 1), -EINVAL);
	assert_int_equal(ds_chunker_init(&c, 3 * 65536), -EINVAL);
	assert_int_equal(ds_chunker_init(&c, 4 * DS_MIB), 0);
	assert_int_equal(c.min, 1 * DS_MIB);
	assert_int_equal(c.max, 16 * DS_MIB);
	assert_int_equal(c.mask, 8 * DS_MIB - 1);
	assert_int_equal(c.threshold, 8 * DS_MIB - 3);
	/* No boundary in an empty or short buffer. */
	assert_int_equal(ds_chunker_scan(&c, (const uint8_t *)"abc", 0), 0);
	assert_int_equal(ds_chunker_scan(&c, (const uint8_t *)"abc", 3), 0);
	assert_int_equal(c.count, 3);
}

static const size_t vec_64k[] = {
	107028, 182439, 58729,  56561,  113003, 24038,  55899,  63980,  24192,  17278,
	71828,  39874,  66654,  23602,  33103,  56175,  102497, 33802,  25471,  159701,
	60635,  88026,  127244, 26806,  115861, 24662,  89838,  36581,  85541,  61371,
	57787,  32145,  69080,  35744,  47306,  35167,  31653,  48513,  29020,  30017,
	28872,  55099,  52343,  148458, 105756, 118967, 20122,  115623, 125114, 39946,
	102207, 26962,  70177,  105639, 49547,  57107,  119012, 16924,  94351,  41179,
	50699,  73280,  36182,  26106,  59096,  6685,
};

static const size_t vec_4m[] = {
	2309648, 4177402, 4471572, 2738445, 3685083, 4682801, 14305589, 2355777,
	3068619, 1863479, 2756356, 6347986, 3572530, 2472296, 3604504,  4696777,
};

static void test_xorshift_64k(void **state)
{
	size_t len = 4 * DS_MIB, sizes[128], n, sum = 0;
	uint8_t *buf = xorshift_stream(len);
	char hex[65];

	(void)state;
	tu_sha256_hex(buf, len, hex);
	assert_string_equal(hex, "2e0621ee4683533b9e8e35610d41c33e982a9bfd325492f38038a6a5071bba9d");
	n = chunk_all(64 * DS_KIB, buf, len, sizes, DS_ARRAY_SIZE(sizes));
	assert_int_equal(n, DS_ARRAY_SIZE(vec_64k));
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(sizes[i], vec_64k[i]);
		sum += sizes[i];
	}
	assert_int_equal(sum, len);

	/* Piecewise feeding must not move a boundary: tiny pieces exercise the
	 * fill phase across calls, large ones several boundaries per call. */
	n = chunk_pieces(64 * DS_KIB, buf, len, 7, 1, sizes, DS_ARRAY_SIZE(sizes));
	assert_int_equal(n, DS_ARRAY_SIZE(vec_64k));
	assert_memory_equal(sizes, vec_64k, sizeof(vec_64k));
	n = chunk_pieces(64 * DS_KIB, buf, len, 100, 2, sizes, DS_ARRAY_SIZE(sizes));
	assert_memory_equal(sizes, vec_64k, sizeof(vec_64k));
	n = chunk_pieces(64 * DS_KIB, buf, len, 300000, 3, sizes, DS_ARRAY_SIZE(sizes));
	assert_int_equal(n, DS_ARRAY_SIZE(vec_64k));
	assert_memory_equal(sizes, vec_64k, sizeof(vec_64k));
	free(buf);
}

static void test_xorshift_4m(void **state)
{
	size_t len = 64 * DS_MIB, sizes[32], n;
	uint8_t *buf = xorshift_stream(len);

	(void)state;
	n = chunk_all(4 * DS_MIB, buf, len, sizes, DS_ARRAY_SIZE(sizes));
	assert_int_equal(n, DS_ARRAY_SIZE(vec_4m));
	assert_memory_equal(sizes, vec_4m, sizeof(vec_4m));
	n = chunk_pieces(4 * DS_MIB, buf, len, 1 << 20, 4, sizes, DS_ARRAY_SIZE(sizes));
	assert_int_equal(n, DS_ARRAY_SIZE(vec_4m));
	assert_memory_equal(sizes, vec_4m, sizeof(vec_4m));
	free(buf);
}

/* PBS's own chunker unit test: i as u32 LE for i in 0..262144, avg 64 KiB.
 * One regular boundary, then max-size (262144) forced cuts. */
static void test_pbs_vector(void **state)
{
	size_t len = 262144 * 4, sizes[16], n;
	uint8_t *buf = malloc(len);

	(void)state;
	assert_non_null(buf);
	for (uint32_t i = 0; i < 262144; i++)
		ds_put_le32(buf + 4 * i, i);
	n = chunk_all(64 * DS_KIB, buf, len, sizes, DS_ARRAY_SIZE(sizes));
	assert_int_equal(n, 5);
	assert_int_equal(sizes[0], 143377);
	assert_int_equal(sizes[1], 262144);
	assert_int_equal(sizes[2], 262144);
	assert_int_equal(sizes[3], 262144);
	assert_int_equal(sizes[4], 118767);
	free(buf);
}

/* All-zero input: the hash is constant, so only max cuts happen. */
static void test_zeros(void **state)
{
	size_t len = 1 * DS_MIB, sizes[8], n;
	uint8_t *buf = calloc(1, len);

	(void)state;
	assert_non_null(buf);
	n = chunk_all(64 * DS_KIB, buf, len, sizes, DS_ARRAY_SIZE(sizes));
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(sizes[i], 256 * DS_KIB);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_xorshift_64k),
		cmocka_unit_test(test_xorshift_4m),
		cmocka_unit_test(test_pbs_vector),
		cmocka_unit_test(test_zeros),
	};

	return tu_run_group("chunker", tests, NULL, NULL);
}
