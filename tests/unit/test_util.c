/* Suite for store/util: hex, SHA-256, CRC-32, times, atomic replace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/util.h"
#include "testutil.h"

static void test_hex(void **state)
{
	uint8_t b[3] = { 0x00, 0xab, 0xff }, back[3];
	char s[7];

	(void)state;
	ds_hex_encode(b, 3, s);
	assert_string_equal(s, "00abff");
	assert_int_equal(ds_hex_decode("00ABff", back, 3), 0);
	assert_memory_equal(b, back, 3);
	assert_int_equal(ds_hex_decode("00abf", back, 3), -EINVAL);
	assert_int_equal(ds_hex_decode("00abffa", back, 3), -EINVAL);
	assert_int_equal(ds_hex_decode("0xabff", back, 3), -EINVAL);
}

static void test_sha256_crc(void **state)
{
	struct ds_digest d, d2;
	char hex[65];
	struct ds_sha256 *h;

	(void)state;
	/* spec §2.9: digest of "hello" */
	ds_sha256("hello", 5, &d);
	ds_digest_to_hex(&d, hex);
	assert_string_equal(hex, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
	h = ds_sha256_new();
	assert_non_null(h);
	ds_sha256_update(h, "he", 2);
	ds_sha256_update(h, "llo", 3);
	ds_sha256_final(h, &d2);
	assert_true(ds_digest_eq(&d, &d2));
	ds_sha256_free(h);
	/* spec §2.3: CRC of "hello" is 0x3610a686 */
	assert_int_equal(ds_crc32("hello", 5), 0x3610a686u);
	assert_int_equal(ds_crc32_update(ds_crc32("he", 2), "llo", 3), 0x3610a686u);
}

/* ds_sha256 knows the digest of a 4 MiB zero chunk without hashing it:
 * it must be the real one (the fixture store's zero chunk, written by PBS,
 * has this name), and a single non-zero byte anywhere must be seen. */
static void test_sha256_zero_chunk(void **state)
{
	size_t len = 4 * DS_MIB;
	uint8_t *z = calloc(1, len);
	struct ds_digest d, d2;
	struct ds_sha256 *h = ds_sha256_new();
	char hex[65];

	(void)state;
	assert_non_null(z);
	assert_non_null(h);
	ds_sha256(z, len, &d);
	ds_digest_to_hex(&d, hex);
	assert_string_equal(hex, "bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8");
	for (size_t at = 0; at < len; at += len / 5 + 1) {
		for (size_t k = 0; k < 2; k++) {
			size_t i = k ? len - 1 : at;

			z[i] = 1;
			ds_sha256(z, len, &d);
			ds_sha256_update(h, z, len);
			ds_sha256_final(h, &d2);
			assert_true(ds_digest_eq(&d, &d2));
			ds_digest_to_hex(&d, hex);
			assert_string_not_equal(hex, "bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8");
			z[i] = 0;
		}
	}
	/* Other lengths of zeros are hashed as usual. */
	ds_sha256(z, len - 1, &d);
	ds_sha256_update(h, z, len - 1);
	ds_sha256_final(h, &d2);
	assert_true(ds_digest_eq(&d, &d2));
	ds_sha256_free(h);
	free(z);
}

static void test_parse_size(void **state)
{
	static const char *const bad[] = { "", "K", "-1", " 1", "+1", "1x", "1KB", "1 K",
					   "0x10", "18446744073709551616", "17179869184G" };
	size_t v;

	(void)state;
	assert_int_equal(ds_parse_size("65536", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(ds_parse_size("64k", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(ds_parse_size("4M", &v), 0);
	assert_int_equal(v, 4 << 20);
	assert_int_equal(ds_parse_size("2G", &v), 0);
	assert_int_equal(v, (size_t)2 << 30);
	assert_int_equal(ds_parse_size("0", &v), 0);
	assert_int_equal(v, 0);
	for (size_t i = 0; i < DS_ARRAY_SIZE(bad); i++) {
		v = 7;
		assert_int_equal(ds_parse_size(bad[i], &v), -EINVAL);
		assert_int_equal(v, 7);
	}
}

static void test_time(void **state)
{
	char s[DS_TIME_LEN + 1];
	int64_t t;

	(void)state;
	assert_int_equal(ds_time_format(1709366537, s), 0);
	assert_string_equal(s, "2024-03-02T08:02:17Z");
	assert_int_equal(ds_time_parse("2024-03-02T08:02:17Z", &t), 0);
	assert_int_equal(t, 1709366537);
	assert_int_equal(ds_time_parse("2020-06-26T13:56:05Z", &t), 0);
	assert_int_equal(t, 1593179765);
	assert_int_equal(ds_time_parse("1969-12-31T23:59:59Z", &t), 0);
	assert_int_equal(t, -1);
	assert_int_equal(ds_time_parse("2024-02-30T00:00:00Z", &t), -EINVAL);
	assert_int_equal(ds_time_parse("2023-02-29T00:00:00Z", &t), -EINVAL);
	assert_int_equal(ds_time_parse("2024-02-29T00:00:00Z", &t), 0);
	assert_int_equal(ds_time_parse("2024-03-02T08:02:17+00:00", &t), -EINVAL);
	assert_int_equal(ds_time_parse("2024-03-02T08:02:17", &t), -EINVAL);
	assert_int_equal(ds_time_parse("2024-03-02 08:02:17Z", &t), -EINVAL);
	assert_int_equal(ds_time_parse("2024-03-02T24:02:17Z", &t), -EINVAL);
}

static void test_tmp_name(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(ds_tmp_name("index.json.blob", "tmp_fidx", out, sizeof(out)), 0);
	assert_string_equal(out, "index.json.tmp_fidx");
	assert_int_equal(ds_tmp_name("abc", "tmp_XXXXXX", out, sizeof(out)), 0);
	assert_string_equal(out, "abc.tmp_XXXXXX");
	assert_int_equal(ds_tmp_name("drive-scsi0.img.fidx", "tmp_fidx", out, 8), -ENAMETOOLONG);
}

static void test_replace_file(void **state)
{
	char *dir = tu_tmpdir();
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	uint8_t *buf;
	size_t len;
	struct stat st;
	DIR *d;
	struct dirent *de;
	int n = 0;

	(void)state;
	assert_true(dfd >= 0);
	assert_int_equal(ds_replace_file_at(dfd, "a.blob", "one", 3, 0644, true), 0);
	assert_int_equal(ds_replace_file_at(dfd, "a.blob", "second", 6, 0640, false), 0);
	assert_int_equal(ds_read_file_at(dfd, "a.blob", 100, &buf, &len), 0);
	assert_int_equal(len, 6);
	assert_memory_equal(buf, "second", 6);
	free(buf);
	assert_int_equal(fstatat(dfd, "a.blob", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(ds_read_file_at(dfd, "a.blob", 5, &buf, &len), -EFBIG);
	/* Failure leaves no temp file: target directory does not exist. */
	assert_int_equal(ds_replace_file_at(dfd, "nodir/x.blob", "x", 1, 0644, false), -ENOENT);
	d = fdopendir(dfd);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	assert_int_equal(n, 1);
	tu_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_sha256_crc),
		cmocka_unit_test(test_sha256_zero_chunk),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_tmp_name),
		cmocka_unit_test(test_replace_file),
	};
	return tu_run_group("util", tests, NULL, NULL);
}
