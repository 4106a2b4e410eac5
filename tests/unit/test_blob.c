/* Suite for store/blob: spec §2 vectors, round trips, bounds, corruption and
 * every blob and chunk of the PBS-written fixture store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>
#include <zstd.h>

#include "store/blob.h"
#include "store/crypt.h"
#include "store/util.h"
#include "testutil.h"

#define ENC_KEY_HEX "28cdb1a3bef39396c3860e00d448fe7a0efd8244486ab6feb30457681d31597e"

static struct ds_crypt *vector_key(void)
{
	uint8_t key[32];
	struct ds_crypt *c;

	assert_int_equal(ds_hex_decode(ENC_KEY_HEX, key, 32), 0);
	assert_int_equal(ds_crypt_new(key, &c), 0);
	return c;
}

static struct ds_crypt *fixture_key(void)
{
	char path[4096];
	struct ds_crypt *c;
	size_t len;
	uint8_t *json;

	snprintf(path, sizeof(path), "%s/pbs-store-a.enc-key.json", tu_fixtures());
	json = tu_read(path, &len);
	assert_int_equal(ds_keyfile_parse((char *)json, len, NULL, &c), 0);
	free(json);
	return c;
}

static void fix_crc(uint8_t *raw, size_t len)
{
	size_t hl = ds_blob_type_encrypted(ds_blob_type(raw, len)) ? DS_BLOB_ENC_HEADER_LEN
								    : DS_BLOB_HEADER_LEN;

	ds_put_le32(raw + 8, ds_crc32(raw + hl, len - hl));
}

static void test_hello_plain(void **state)
{
	static const uint8_t want[] = { 0x42, 0xab, 0x38, 0x07, 0xbe, 0x83, 0x70, 0xa1, 0x86,
					0xa6, 0x10, 0x36, 'h',  'e',  'l',  'l',  'o' };
	uint8_t *raw, *data, out[5];
	size_t len, dlen;

	(void)state;
	for (int compress = 0; compress <= 1; compress++) {
		/* zstd cannot shrink 5 bytes: compress=true stays plain too. */
		assert_int_equal(ds_blob_encode((const uint8_t *)"hello", 5, NULL, compress, &raw,
						&len), 0);
		assert_int_equal(len, sizeof(want));
		assert_memory_equal(raw, want, sizeof(want));
		free(raw);
	}
	assert_int_equal(ds_blob_type(want, sizeof(want)), DS_BLOB_PLAIN);
	assert_int_equal(ds_blob_verify_crc(want, sizeof(want)), 0);
	assert_int_equal(ds_blob_decode(want, sizeof(want), NULL, 100, &data, &dlen), 0);
	assert_int_equal(dlen, 5);
	assert_memory_equal(data, "hello", 5);
	free(data);
	assert_int_equal(ds_blob_decode_into(want, sizeof(want), NULL, out, 5, &dlen), 0);
	assert_memory_equal(out, "hello", 5);
	assert_int_equal(ds_blob_decode_into(want, sizeof(want), NULL, out, 4, &dlen), -EFBIG);
	assert_int_equal(ds_blob_decode(want, sizeof(want), NULL, 4, &data, &dlen), -EFBIG);
}

static void test_hello_encrypted(void **state)
{
	static const uint8_t zero_iv[16];
	static const char want_hex[] =
		"7b6785be222d4cf0" "eaebfbf8" "00000000000000000000000000000000"
		"23b31e836a159e56534f5e52d861c329" "8921fca557";
	uint8_t want[49], *raw, *data, other_key[32] = { 1 };
	struct ds_crypt *c = vector_key(), *other;
	size_t len, dlen;

	(void)state;
	assert_int_equal(ds_hex_decode(want_hex, want, sizeof(want)), 0);
	assert_int_equal(ds_blob_encode_iv((const uint8_t *)"hello", 5, c, false, zero_iv, &raw,
					   &len), 0);
	assert_int_equal(len, 49);
	assert_memory_equal(raw, want, 49);
	free(raw);
	/* compress=true: zstd does not help, so the same bytes. */
	assert_int_equal(ds_blob_encode_iv((const uint8_t *)"hello", 5, c, true, zero_iv, &raw,
					   &len), 0);
	assert_memory_equal(raw, want, 49);
	free(raw);

	assert_int_equal(ds_blob_type(want, 49), DS_BLOB_ENCRYPTED);
	assert_int_equal(ds_blob_verify_crc(want, 49), 0);
	assert_int_equal(ds_blob_decode(want, 49, c, 100, &data, &dlen), 0);
	assert_int_equal(dlen, 5);
	assert_memory_equal(data, "hello", 5);
	free(data);
	assert_int_equal(ds_blob_decode(want, 49, NULL, 100, &data, &dlen), -ENOKEY);
	assert_int_equal(ds_crypt_new(other_key, &other), 0);
	assert_int_equal(ds_blob_decode(want, 49, other, 100, &data, &dlen), -EBADMSG);
	ds_crypt_free(other);
	ds_crypt_free(c);
}

/* Bytes zstd cannot compress, and bytes it can. */
static uint8_t *random_bytes(size_t n)
{
	uint8_t *b = malloc(n);

	assert_non_null(b);
	for (size_t i = 0; i < n; i += 32)
		assert_int_equal(ds_crypt_random_key(b + i), 0);
	return b;
}

static uint8_t *text_bytes(size_t n)
{
	uint8_t *b = malloc(n);
	size_t i = 0;

	assert_non_null(b);
	while (i < n) {
		char line[80];
		int k = snprintf(line, sizeof(line), "line %zu: the quick brown fox\n", i / 37);

		for (int j = 0; j < k && i < n; j++)
			b[i++] = (uint8_t)line[j];
	}
	return b;
}

/* ds_blob_decode_fd on raw (from a memfd); on success the digest it
 * returns must be the plaintext's SHA-256, computed here in one piece, and
 * the type it returns the one in raw's magic. */
static int decode_fd(const uint8_t *raw, size_t len, uint8_t *out, size_t cap, size_t *ret_len)
{
	int fd = memfd_create("blob", MFD_CLOEXEC), r, type = -1;
	struct ds_digest got, want;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, raw, len), (ssize_t)len);
	r = ds_blob_decode_fd(fd, len, out, cap, &got, ret_len, &type);
	close(fd);
	if (r == 0) {
		ds_sha256(out, *ret_len, &want);
		assert_memory_equal(got.b, want.b, DS_DIGEST_LEN);
		assert_int_equal(type, ds_blob_type(raw, len));
	}
	return r;
}

static void roundtrip_one(const uint8_t *data, size_t n, const struct ds_crypt *c,
			  bool compress, int want_type)
{
	uint8_t *raw, *back, *out;
	size_t len, blen;

	assert_int_equal(ds_blob_encode(data, n, c, compress, &raw, &len), 0);
	assert_int_equal(ds_blob_type(raw, len), want_type);
	assert_int_equal(ds_blob_verify_crc(raw, len), 0);
	assert_int_equal(ds_blob_decode(raw, len, c, n, &back, &blen), 0);
	assert_int_equal(blen, n);
	if (n)
		assert_memory_equal(back, data, n);
	free(back);
	out = malloc(n + 1);
	assert_int_equal(ds_blob_decode_into(raw, len, c, out, n, &blen), 0);
	assert_int_equal(blen, n);
	if (n) {
		assert_memory_equal(out, data, n);
		assert_int_equal(ds_blob_decode_into(raw, len, c, out, n - 1, &blen), -EFBIG);
		assert_int_equal(ds_blob_decode(raw, len, c, n - 1, &back, &blen), -EFBIG);
	}
	if (c)
		assert_int_equal(ds_blob_decode_into(raw, len, NULL, out, n, &blen), -ENOKEY);
	/* The file path: unencrypted blobs only, and only when they fit;
	 * an empty payload goes to _into as well. */
	if (c || n == 0) {
		assert_int_equal(decode_fd(raw, len, out, n, &blen), -EAGAIN);
	} else {
		memset(out, 0xa5, n + 1);
		assert_int_equal(decode_fd(raw, len, out, n, &blen), 0);
		assert_int_equal(blen, n);
		assert_memory_equal(out, data, n);
		assert_int_equal(out[n], 0xa5);
		assert_int_equal(decode_fd(raw, len, out, n - 1, &blen), -EAGAIN);
		/* A flipped payload byte (CRC mismatch) and a flipped CRC. */
		raw[len - 1] ^= 1;
		assert_int_equal(decode_fd(raw, len, out, n, &blen), -EAGAIN);
		raw[len - 1] ^= 1;
		raw[9] ^= 1;
		assert_int_equal(decode_fd(raw, len, out, n, &blen), -EAGAIN);
		raw[9] ^= 1;
		assert_int_equal(decode_fd(raw, len - 1, out, n, &blen), -EAGAIN);
	}
	free(out);
	free(raw);
}

static void test_roundtrips(void **state)
{
	struct ds_crypt *c = vector_key();
	size_t n = DS_MIB;
	uint8_t *rnd = random_bytes(n), *txt = text_bytes(n), *a, *b;
	size_t alen, blen;

	(void)state;
	roundtrip_one(txt, n, NULL, false, DS_BLOB_PLAIN);
	roundtrip_one(txt, n, NULL, true, DS_BLOB_ZSTD);
	roundtrip_one(txt, n, c, false, DS_BLOB_ENCRYPTED);
	roundtrip_one(txt, n, c, true, DS_BLOB_ENCRYPTED_ZSTD);
	roundtrip_one(rnd, n, NULL, true, DS_BLOB_PLAIN);
	roundtrip_one(rnd, n, c, true, DS_BLOB_ENCRYPTED);
	roundtrip_one(rnd, 4096, NULL, true, DS_BLOB_PLAIN);
	roundtrip_one(txt, 4096, NULL, true, DS_BLOB_ZSTD);
	roundtrip_one(NULL, 0, NULL, false, DS_BLOB_PLAIN);
	roundtrip_one(NULL, 0, NULL, true, DS_BLOB_PLAIN);
	roundtrip_one(NULL, 0, c, true, DS_BLOB_ENCRYPTED);

	/* Random IVs: the same plaintext encrypts differently each time. */
	assert_int_equal(ds_blob_encode(txt, 100, c, false, &a, &alen), 0);
	assert_int_equal(ds_blob_encode(txt, 100, c, false, &b, &blen), 0);
	assert_int_equal(alen, blen);
	assert_memory_not_equal(a + 12, b + 12, 16);
	free(a);
	free(b);

	/* The payload limit is checked before anything is read. */
	assert_int_equal(ds_blob_encode(txt, DS_MAX_BLOB_SIZE + 1, NULL, true, &a, &alen),
			 -EFBIG);
	free(rnd);
	free(txt);
	ds_crypt_free(c);
}

/* A zstd blob built from raw frame bytes, CRC fixed up. */
static uint8_t *zstd_blob(const void *frames, size_t n, size_t *ret_len)
{
	uint8_t *raw = malloc(12 + n);

	assert_non_null(raw);
	memcpy(raw, "\x31\xb9\x58\x42\x6f\xb6\xa3\x7f", 8);
	memcpy(raw + 12, frames, n);
	fix_crc(raw, 12 + n);
	*ret_len = 12 + n;
	return raw;
}

/* A frame without the content-size field, as PBS <= 3.2.8's streaming
 * encoder wrote them. */
static size_t stream_compress(const void *src, size_t n, void *dst, size_t cap)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	ZSTD_inBuffer in = { src, n, 0 };
	ZSTD_outBuffer out = { dst, cap, 0 };
	size_t r;

	assert_non_null(cc);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, 1);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
	do {
		r = ZSTD_compressStream2(cc, &out, &in, ZSTD_e_end);
		assert_false(ZSTD_isError(r));
	} while (r != 0);
	ZSTD_freeCCtx(cc);
	return out.pos;
}

static void test_zstd_frames(void **state)
{
	size_t n = 300 * 1000, cap = ZSTD_compressBound(n) * 2 + 64, f1, f2, len, dlen;
	uint8_t *txt = text_bytes(n), *frames = malloc(cap), *raw, *data, *out = malloc(n);
	unsigned long long fcs;

	(void)state;
	f1 = stream_compress(txt, n, frames, cap);
	fcs = ZSTD_getFrameContentSize(frames, f1);
	assert_true(fcs == ZSTD_CONTENTSIZE_UNKNOWN);
	raw = zstd_blob(frames, f1, &len);
	assert_int_equal(ds_blob_decode(raw, len, NULL, DS_MAX_BLOB_SIZE, &data, &dlen), 0);
	assert_int_equal(dlen, n);
	assert_memory_equal(data, txt, n);
	free(data);
	assert_int_equal(ds_blob_decode_into(raw, len, NULL, out, n, &dlen), 0);
	assert_memory_equal(out, txt, n);
	assert_int_equal(ds_blob_decode_into(raw, len, NULL, out, n - 1, &dlen), -EFBIG);
	assert_int_equal(ds_blob_decode(raw, len, NULL, n - 1, &data, &dlen), -EFBIG);
	memset(out, 0, n);
	assert_int_equal(decode_fd(raw, len, out, n, &dlen), 0);
	assert_int_equal(dlen, n);
	assert_memory_equal(out, txt, n);
	assert_int_equal(decode_fd(raw, len, out, n - 1, &dlen), -EAGAIN);
	free(raw);

	/* Two concatenated frames decode to the concatenation (zstd's
	 * decode_all in PBS); the second one declares its size. */
	f2 = ZSTD_compress(frames + f1, cap - f1, txt, 1000, 1);
	assert_false(ZSTD_isError(f2));
	raw = zstd_blob(frames, f1 + f2, &len);
	assert_int_equal(ds_blob_decode(raw, len, NULL, DS_MAX_BLOB_SIZE, &data, &dlen), 0);
	assert_int_equal(dlen, n + 1000);
	assert_memory_equal(data + n, txt, 1000);
	free(data);
	assert_int_equal(ds_blob_decode_into(raw, len, NULL, out, n, &dlen), -EFBIG);
	assert_int_equal(decode_fd(raw, len, out, n, &dlen), -EAGAIN);
	{
		uint8_t *big = malloc(n + 1000);

		assert_int_equal(decode_fd(raw, len, big, n + 1000, &dlen), 0);
		assert_int_equal(dlen, n + 1000);
		assert_memory_equal(big, txt, n);
		assert_memory_equal(big + n, txt, 1000);
		free(big);
	}
	free(raw);

	/* Truncated frames and trailing garbage are corrupt. */
	for (size_t cut = 1; cut < f1; cut += f1 / 7) {
		raw = zstd_blob(frames, f1 - cut, &len);
		assert_int_equal(ds_blob_decode(raw, len, NULL, DS_MAX_BLOB_SIZE, &data, &dlen),
				 -EBADMSG);
		assert_int_equal(ds_blob_decode_into(raw, len, NULL, out, n, &dlen), -EBADMSG);
		assert_int_equal(decode_fd(raw, len, out, n, &dlen), -EAGAIN);
		free(raw);
	}
	memcpy(frames + f1, "garbage!", 8);
	raw = zstd_blob(frames, f1 + 8, &len);
	assert_int_equal(ds_blob_decode(raw, len, NULL, DS_MAX_BLOB_SIZE, &data, &dlen), -EBADMSG);
	assert_int_equal(decode_fd(raw, len, out, n, &dlen), -EAGAIN);
	free(raw);
	raw = zstd_blob("not zstd at all", 15, &len);
	assert_int_equal(ds_blob_decode(raw, len, NULL, DS_MAX_BLOB_SIZE, &data, &dlen), -EBADMSG);
	assert_int_equal(decode_fd(raw, len, out, n, &dlen), -EAGAIN);
	free(raw);
	raw = zstd_blob("", 0, &len);
	assert_int_equal(ds_blob_decode(raw, len, NULL, DS_MAX_BLOB_SIZE, &data, &dlen), -EBADMSG);
	free(raw);
	free(frames);
	free(out);
	free(txt);
}

static void test_output_bound(void **state)
{
	struct ds_crypt *c = vector_key();
	uint8_t *zeros = calloc(1, DS_MIB), *raw, *data, out[1000];
	size_t len, dlen;

	(void)state;
	for (int enc = 0; enc <= 1; enc++) {
		assert_int_equal(ds_blob_encode(zeros, DS_MIB, enc ? c : NULL, true, &raw, &len), 0);
		assert_true(len < 1000);
		assert_int_equal(ds_blob_type(raw, len),
				 enc ? DS_BLOB_ENCRYPTED_ZSTD : DS_BLOB_ZSTD);
		assert_int_equal(ds_blob_decode_into(raw, len, enc ? c : NULL, out, sizeof(out),
						     &dlen), -EFBIG);
		assert_int_equal(ds_blob_decode(raw, len, enc ? c : NULL, 1000, &data, &dlen),
				 -EFBIG);
		assert_int_equal(ds_blob_decode(raw, len, enc ? c : NULL, DS_MIB, &data, &dlen), 0);
		assert_int_equal(dlen, DS_MIB);
		assert_memory_equal(data, zeros, DS_MIB);
		free(data);
		free(raw);
	}
	free(zeros);
	ds_crypt_free(c);
}

static void test_corrupt(void **state)
{
	static const char *bad_magic[] = {
		"1f87eee291ce0502", /* historical "authenticated" blobs */
		"7ea60fbe911fa960",
		"4f7fc804794a87ef", /* pre-1.0 chunk */
		"2f7f41ed91fd0fcd", /* a fixed index, not a blob */
		"0000000000000000",
	};
	struct ds_crypt *c = vector_key();
	uint8_t *raw, *data, buf[128];
	size_t len, dlen;

	(void)state;
	/* Too short for any header, and for the encrypted one. */
	assert_int_equal(ds_blob_encode((const uint8_t *)"hello", 5, c, false, &raw, &len), 0);
	assert_int_equal(ds_blob_type(raw, 44), DS_BLOB_ENCRYPTED);
	assert_int_equal(ds_blob_type(raw, 43), -EBADMSG);
	assert_int_equal(ds_blob_type(raw, 11), -EBADMSG);
	assert_int_equal(ds_blob_verify_crc(raw, 43), -EBADMSG);
	assert_int_equal(ds_blob_decode(raw, 43, c, 100, &data, &dlen), -EBADMSG);
	assert_int_equal(ds_blob_decode(raw, 0, c, 100, &data, &dlen), -EBADMSG);
	/* The tag is outside the CRC: GCM must catch it. */
	raw[30] ^= 1;
	assert_int_equal(ds_blob_verify_crc(raw, len), 0);
	assert_int_equal(ds_blob_decode(raw, len, c, 100, &data, &dlen), -EBADMSG);
	assert_int_equal(ds_blob_decode_into(raw, len, c, buf, sizeof(buf), &dlen), -EBADMSG);
	raw[30] ^= 1;
	/* A flipped ciphertext byte with a matching CRC: GCM failure. */
	raw[46] ^= 0x40;
	fix_crc(raw, len);
	assert_int_equal(ds_blob_verify_crc(raw, len), 0);
	assert_int_equal(ds_blob_decode(raw, len, c, 100, &data, &dlen), -EBADMSG);
	/* Without fixing the CRC it is a CRC failure, key or no key. */
	raw[46] ^= 0x40;
	assert_int_equal(ds_blob_verify_crc(raw, len), -EBADMSG);
	assert_int_equal(ds_blob_decode(raw, len, c, 100, &data, &dlen), -EBADMSG);
	free(raw);

	assert_int_equal(ds_blob_encode((const uint8_t *)"hello world", 11, NULL, false, &raw,
					&len), 0);
	raw[13] ^= 1;
	assert_int_equal(ds_blob_verify_crc(raw, len), -EBADMSG);
	assert_int_equal(ds_blob_decode(raw, len, NULL, 100, &data, &dlen), -EBADMSG);
	raw[13] ^= 1;
	raw[9] ^= 1; /* the CRC field itself */
	assert_int_equal(ds_blob_decode(raw, len, NULL, 100, &data, &dlen), -EBADMSG);
	raw[9] ^= 1;
	for (size_t i = 0; i < DS_ARRAY_SIZE(bad_magic); i++) {
		assert_int_equal(ds_hex_decode(bad_magic[i], raw, 8), 0);
		assert_int_equal(ds_blob_type(raw, len), -EBADMSG);
		assert_int_equal(ds_blob_verify_crc(raw, len), -EBADMSG);
		assert_int_equal(ds_blob_decode(raw, len, NULL, 100, &data, &dlen), -EBADMSG);
	}
	free(raw);
	ds_crypt_free(c);
}

/* ---- the fixture store ---- */

static uint8_t *read_store_file(const char *store, const char *rel, size_t *len)
{
	char path[4096];

	if (ds_path_fmt(path, sizeof(path), "%s/%s/%s", tu_fixtures(), store, rel) < 0)
		abort();
	return tu_read(path, len);
}

static json_t *load_expect(void)
{
	char path[4096];
	json_error_t err;
	json_t *j;

	snprintf(path, sizeof(path), "%s/pbs-store-a.expect.json", tu_fixtures());
	j = json_load_file(path, 0, &err);
	if (!j)
		fail_msg("%s: %s", path, err.text);
	return j;
}

/* Decodes one fixture blob and checks it against size/sha256. */
static void check_blob(const char *rel, const struct ds_crypt *key, bool encrypted,
		       int compressed, json_int_t size, const char *sha)
{
	size_t len, dlen;
	uint8_t *raw = read_store_file("pbs-store-a", rel, &len), *data;
	char hex[65];
	int type = ds_blob_type(raw, len);

	print_message("blob %s\n", rel);
	assert_true(type >= 0);
	assert_int_equal(ds_blob_type_encrypted(type), encrypted);
	if (compressed >= 0)
		assert_int_equal(type == DS_BLOB_ZSTD || type == DS_BLOB_ENCRYPTED_ZSTD,
				 compressed);
	assert_int_equal(ds_blob_verify_crc(raw, len), 0);
	if (encrypted)
		assert_int_equal(ds_blob_decode(raw, len, NULL, DS_MAX_BLOB_SIZE, &data, &dlen),
				 -ENOKEY);
	assert_int_equal(ds_blob_decode(raw, len, encrypted ? key : NULL, DS_MAX_BLOB_SIZE, &data,
					&dlen), 0);
	assert_int_equal(dlen, size);
	tu_sha256_hex(data, dlen, hex);
	assert_string_equal(hex, sha);
	free(data);
	free(raw);
}

static void test_fixture_blobs(void **state)
{
	struct ds_crypt *key = fixture_key();
	json_t *expect = load_expect(), *snap, *arch;
	size_t i, j, nblobs = 0, nlogs = 0, nmanifests = 0;

	(void)state;
	json_array_foreach(json_object_get(expect, "snapshots"), i, snap) {
		const char *sp = json_string_value(json_object_get(snap, "path"));
		json_t *log = json_object_get(snap, "client_log");
		json_t *man = json_object_get(snap, "manifest");
		char rel[4096];
		size_t len, dlen;
		uint8_t *raw, *data;
		json_t *mj;

		assert_non_null(sp);
		json_array_foreach(json_object_get(snap, "archives"), j, arch) {
			const char *name = json_string_value(json_object_get(arch, "name"));
			bool enc;
			char hex[65];

			if (strcmp(json_string_value(json_object_get(arch, "kind")), "blob") != 0)
				continue;
			enc = strcmp(json_string_value(json_object_get(arch, "crypt_mode")),
				     "encrypt") == 0;
			snprintf(rel, sizeof(rel), "%s/%s", sp, name);
			raw = read_store_file("pbs-store-a", rel, &len);
			assert_int_equal(len, json_integer_value(json_object_get(arch, "manifest_size")));
			assert_int_equal(len, json_integer_value(json_object_get(arch, "raw_size")));
			tu_sha256_hex(raw, len, hex);
			assert_string_equal(hex, json_string_value(json_object_get(arch, "manifest_csum")));
			free(raw);
			check_blob(rel, key, enc,
				   json_is_true(json_object_get(arch, "compressed")),
				   json_integer_value(json_object_get(arch, "size")),
				   json_string_value(json_object_get(arch, "sha256")));
			nblobs++;
		}
		if (json_is_object(log)) {
			snprintf(rel, sizeof(rel), "%s/client.log.blob", sp);
			check_blob(rel, key, json_is_true(json_object_get(log, "encrypted")), -1,
				   json_integer_value(json_object_get(log, "size")),
				   json_string_value(json_object_get(log, "sha256")));
			nlogs++;
		}
		/* The manifest: never encrypted, decodes to JSON naming the snapshot. */
		snprintf(rel, sizeof(rel), "%s/index.json.blob", sp);
		raw = read_store_file("pbs-store-a", rel, &len);
		assert_int_equal(len, json_integer_value(json_object_get(man, "raw_size")));
		assert_false(ds_blob_type_encrypted(ds_blob_type(raw, len)));
		assert_int_equal(ds_blob_decode(raw, len, NULL, DS_MAX_BLOB_SIZE, &data, &dlen), 0);
		mj = json_loadb((const char *)data, dlen, 0, NULL);
		assert_non_null(mj);
		assert_string_equal(json_string_value(json_object_get(mj, "backup-id")),
				    json_string_value(json_object_get(snap, "id")));
		json_decref(mj);
		free(data);
		free(raw);
		nmanifests++;
	}
	assert_int_equal(nblobs, 9);
	assert_int_equal(nlogs, 12);
	assert_int_equal(nmanifests, 14);
	json_decref(expect);
	ds_crypt_free(key);
}

struct chunk_job {
	const struct ds_crypt *key;
	char **names; /* "<4hex>/<64hex>" */
	size_t count, first, step;
	size_t per_type[4];
	size_t failures;
};

/* cmocka's asserts longjmp into the test's own thread: the workers count
 * failures instead and the test asserts on the count. */
static void chunk_fail(struct chunk_job *job, const char *name, const char *what)
{
	fprintf(stderr, "chunk %s: %s\n", name, what);
	job->failures++;
}

static void *check_chunks(void *arg)
{
	struct chunk_job *job = arg;
	uint8_t *out = malloc(DS_MAX_CHUNK_SIZE);

	if (!out) {
		job->failures++;
		return NULL;
	}
	for (size_t i = job->first; i < job->count; i += job->step) {
		const char *name = job->names[i];
		struct ds_digest want, got;
		size_t len, dlen;
		uint8_t *raw = read_store_file("pbs-store-a/.chunks", name, &len);
		int type = ds_blob_type(raw, len);
		const struct ds_crypt *c = ds_blob_type_encrypted(type) ? job->key : NULL;

		if (type < 0) {
			chunk_fail(job, name, "bad type");
			free(raw);
			continue;
		}
		job->per_type[type]++;
		if (ds_digest_from_hex(name + 5, &want) < 0)
			chunk_fail(job, name, "bad name");
		else if (ds_blob_decode_into(raw, len, c, out, DS_MAX_CHUNK_SIZE, &dlen) < 0)
			chunk_fail(job, name, "decode failed");
		else if (ds_crypt_digest(c, out, dlen, &got), !ds_digest_eq(&got, &want))
			chunk_fail(job, name, "digest mismatch");
		if (c && ds_blob_decode_into(raw, len, NULL, out, DS_MAX_CHUNK_SIZE, &dlen) != -ENOKEY)
			chunk_fail(job, name, "decodes without key");
		free(raw);
	}
	free(out);
	return NULL;
}

static char **list_chunks(size_t *ret_count)
{
	char dir[4096];
	char **names = NULL;
	size_t n = 0;
	DIR *top, *sub;
	struct dirent *de, *ce;

	snprintf(dir, sizeof(dir), "%s/pbs-store-a/.chunks", tu_fixtures());
	top = opendir(dir);
	assert_non_null(top);
	while ((de = readdir(top))) {
		char p[4096];

		if (strlen(de->d_name) != 4)
			continue;
		assert_int_equal(ds_path_fmt(p, sizeof(p), "%s/%s", dir, de->d_name), 0);
		sub = opendir(p);
		assert_non_null(sub);
		while ((ce = readdir(sub))) {
			if (strlen(ce->d_name) != 64)
				continue;
			names = realloc(names, (n + 1) * sizeof(*names));
			assert_non_null(names);
			assert_true(asprintf(&names[n++], "%s/%s", de->d_name, ce->d_name) > 0);
		}
		closedir(sub);
	}
	closedir(top);
	*ret_count = n;
	return names;
}

/* Every chunk decodes to data whose (keyed) digest is its name; decoded from
 * four threads at once to exercise the per-thread zstd contexts. */
static void test_fixture_chunks(void **state)
{
	struct ds_crypt *key = fixture_key();
	struct chunk_job jobs[4];
	pthread_t tids[4];
	size_t count, per_type[4] = { 0 };
	char **names = list_chunks(&count);

	(void)state;
	assert_int_equal(count, 82);
	for (size_t t = 0; t < 4; t++) {
		jobs[t] = (struct chunk_job){ .key = key, .names = names, .count = count,
					      .first = t, .step = 4 };
		assert_int_equal(pthread_create(&tids[t], NULL, check_chunks, &jobs[t]), 0);
	}
	for (size_t t = 0; t < 4; t++) {
		assert_int_equal(pthread_join(tids[t], NULL), 0);
		assert_int_equal(jobs[t].failures, 0);
		for (int k = 0; k < 4; k++)
			per_type[k] += jobs[t].per_type[k];
	}
	/* The fixture holds all four kinds. */
	for (int k = 0; k < 4; k++)
		assert_true(per_type[k] > 0);
	assert_int_equal(per_type[0] + per_type[1] + per_type[2] + per_type[3], 82);
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
	ds_crypt_free(key);
}

static void test_fixture_corrupt_chunk(void **state)
{
	static const char rel[] =
		".chunks/d3d6/d3d62b1f9bbfbacbf229b89beddd9cdb10d59536f4ead7d4bd13a0cd71c07269";
	struct ds_digest want, got;
	size_t len, good_len, dlen;
	uint8_t *raw = read_store_file("pbs-store-a-corrupt", rel, &len), *data;
	uint8_t *good = read_store_file("pbs-store-a", rel, &good_len);
	int r;

	(void)state;
	assert_int_equal(len, good_len);
	assert_int_equal(ds_blob_type(raw, len), DS_BLOB_ZSTD);
	assert_int_equal(ds_blob_verify_crc(raw, len), -EBADMSG);
	assert_int_equal(ds_blob_decode(raw, len, NULL, DS_MAX_CHUNK_SIZE, &data, &dlen), -EBADMSG);

	assert_int_equal(ds_digest_from_hex(rel + 13, &want), 0);
	assert_int_equal(ds_blob_decode(good, good_len, NULL, DS_MAX_CHUNK_SIZE, &data, &dlen), 0);
	assert_int_equal(dlen, 4 * DS_MIB);
	ds_sha256(data, dlen, &got);
	assert_true(ds_digest_eq(&got, &want));
	free(data);

	/* With the CRC patched the damage must still show: as a zstd error or
	 * as a digest that no longer matches the name. */
	fix_crc(raw, len);
	r = ds_blob_decode(raw, len, NULL, DS_MAX_CHUNK_SIZE, &data, &dlen);
	if (r == 0) {
		ds_sha256(data, dlen, &got);
		assert_false(ds_digest_eq(&got, &want));
		free(data);
	} else {
		assert_int_equal(r, -EBADMSG);
	}
	free(good);
	free(raw);
}

/* ---- ds_blob_part ---- */

static int memfd_of(const uint8_t *raw, size_t len)
{
	int fd = memfd_create("part", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, raw, len), (ssize_t)len);
	return fd;
}

/* Decodes raw (n bytes decoded) by parts, want growing by step, each part
 * checked against data unless it is NULL; returns the last result (0 when
 * all of it decoded). */
static int decode_by_parts(const uint8_t *raw, size_t len, const uint8_t *data, size_t n,
			   size_t step, size_t *ret_calls)
{
	int fd = memfd_of(raw, len), r;
	uint8_t *out = malloc(n + 64);
	struct ds_blob_part *p = NULL;
	size_t done = 0, calls = 0;

	assert_non_null(out);
	r = ds_blob_part_new(fd, len, n, n + 64, &p);
	if (r == 0) {
		assert_int_equal(ds_blob_part_len(p), n);
		for (size_t want = step; r == 0 && done < n; want += step) {
			size_t prev = done;

			r = ds_blob_part_decode(p, fd, len, out, want, &done);
			if (r < 0)
				break;
			calls++;
			assert_true(done >= (want < n ? want : n));
			assert_true(done >= prev);
			if (data)
				assert_memory_equal(out, data, done);
		}
	}
	ds_blob_part_free(p);
	free(out);
	close(fd);
	if (ret_calls)
		*ret_calls = calls;
	return r;
}

/* Text with runs of incompressible bytes: zstd writes compressed and raw
 * blocks. */
static uint8_t *mixed_bytes(size_t n)
{
	uint8_t *b = text_bytes(n);
	uint32_t x = 2463534242u;

	for (size_t i = 0; i < n; i++) {
		if ((i / (200 * 1000)) % 3 != 1)
			continue;
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (uint8_t)x;
	}
	return b;
}

static void test_part_decode(void **state)
{
	size_t n = 3 * DS_MIB, cap = ZSTD_compressBound(n) + 64, flen, len, done, calls;
	uint8_t *data = mixed_bytes(n), *frame = malloc(cap), *raw, *out = malloc(n + 64);
	struct ds_blob_part *p = NULL;
	int fd;

	(void)state;
	flen = ZSTD_compress(frame, cap, data, n, 1);
	assert_false(ZSTD_isError(flen));
	raw = zstd_blob(frame, flen, &len);

	/* A prefix, more of it, all of it; each a few blocks, not the whole. */
	fd = memfd_of(raw, len);
	assert_int_equal(ds_blob_part_new(fd, len, 0, n, &p), 0);
	assert_int_equal(ds_blob_part_len(p), n);
	assert_int_equal(ds_blob_part_decode(p, fd, len, out, 1, &done), 0);
	assert_true(done >= 1 && done <= 128 * 1024);
	assert_memory_equal(out, data, done);
	assert_int_equal(ds_blob_part_decode(p, fd, len, out, 1000 * 1000, &done), 0);
	assert_true(done >= 1000 * 1000 && done <= 1000 * 1000 + 128 * 1024);
	assert_memory_equal(out, data, done);
	/* Asking for less than is there decodes nothing more. */
	assert_int_equal(ds_blob_part_decode(p, fd, len, out, 10, &done), 0);
	assert_true(done >= 1000 * 1000 && done <= 1000 * 1000 + 128 * 1024);
	assert_int_equal(ds_blob_part_decode(p, fd, len, out, SIZE_MAX, &done), 0);
	assert_int_equal(done, n);
	assert_memory_equal(out, data, n);
	assert_int_equal(ds_blob_part_decode(p, fd, len, out, n, &done), 0);
	assert_int_equal(done, n);
	/* zstd refers back into the first buffer: no other one. */
	assert_int_equal(ds_blob_part_decode(p, fd, len, out + 1, n, &done), -EINVAL);
	ds_blob_part_free(p);
	p = NULL;
	/* Too small a buffer, another length than expected, not a zstd blob:
	 * not by parts. */
	assert_int_equal(ds_blob_part_new(fd, len, 0, n - 1, &p), -EAGAIN);
	assert_int_equal(ds_blob_part_new(fd, len, n - 1, n, &p), -EAGAIN);
	close(fd);
	assert_int_equal(decode_by_parts(raw, len, data, n, 64 * 1024, &calls), 0);
	assert_true(calls >= 20);
	free(raw);
	assert_int_equal(ds_blob_encode(data, n, NULL, false, &raw, &len), 0);
	fd = memfd_of(raw, len);
	assert_int_equal(ds_blob_part_new(fd, len, n, n, &p), -EAGAIN);
	close(fd);
	free(raw);
	/* A frame without its size (PBS <= 3.2.8): the caller's length is
	 * needed, and must be right. */
	{
		size_t sc = stream_compress(data, n, frame, cap);

		raw = zstd_blob(frame, sc, &len);
		fd = memfd_of(raw, len);
		assert_int_equal(ds_blob_part_new(fd, len, 0, n, &p), -EAGAIN);
		close(fd);
		assert_int_equal(decode_by_parts(raw, len, data, n, 256 * 1024, &calls), 0);
		assert_true(calls >= 10);
		/* One byte short or long: found at the end. */
		assert_int_equal(decode_by_parts(raw, len, NULL, n - 1, 256 * 1024, NULL), -EAGAIN);
		assert_int_equal(decode_by_parts(raw, len, NULL, n + 1, 256 * 1024, NULL), -EAGAIN);
		free(raw);
		flen = ZSTD_compress(frame, cap, data, n, 1);
	}

	/* A wrong CRC shows once the last part is decoded; the prefixes
	 * before it decode (the caller trusts the file's identity for them). */
	raw = zstd_blob(frame, flen, &len);
	raw[DS_BLOB_MAGIC_LEN] ^= 1;
	assert_int_equal(decode_by_parts(raw, len, data, n, 512 * 1024, &calls), -EAGAIN);
	assert_true(calls >= 5);
	free(raw);
	/* Trailing bytes after the frame, a frame cut short, a damaged last
	 * block (CRC fixed): -EAGAIN, never a short or wrong "whole". */
	raw = malloc(12 + flen + 8);
	memcpy(raw, "\x31\xb9\x58\x42\x6f\xb6\xa3\x7f", 8);
	memcpy(raw + 12, frame, flen);
	memcpy(raw + 12 + flen, "garbage!", 8);
	fix_crc(raw, 12 + flen + 8);
	assert_int_equal(decode_by_parts(raw, 12 + flen + 8, data, n, 512 * 1024, NULL), -EAGAIN);
	fix_crc(raw, 12 + flen - 100);
	assert_int_equal(decode_by_parts(raw, 12 + flen - 100, data, n, 512 * 1024, NULL), -EAGAIN);
	raw[12 + flen - 50] ^= 0x55;
	fix_crc(raw, 12 + flen);
	assert_int_equal(decode_by_parts(raw, 12 + flen, data, n, 512 * 1024, NULL), -EAGAIN);
	free(raw);
	free(frame);
	free(data);
	free(out);
}

/* PBS's own chunks decode by parts to what they decode to whole; the
 * damaged fixture chunk fails by parts too. */
static void test_part_fixture_chunks(void **state)
{
	static const char bad[] =
		".chunks/d3d6/d3d62b1f9bbfbacbf229b89beddd9cdb10d59536f4ead7d4bd13a0cd71c07269";
	size_t count, tried = 0, len, dlen;
	char **names = list_chunks(&count);
	uint8_t *out = malloc(DS_MAX_CHUNK_SIZE), *raw;

	(void)state;
	for (size_t i = 0; i < count; i++) {
		raw = read_store_file("pbs-store-a/.chunks", names[i], &len);
		if (ds_blob_type(raw, len) == DS_BLOB_ZSTD) {
			assert_int_equal(ds_blob_decode_into(raw, len, NULL, out, DS_MAX_CHUNK_SIZE,
							     &dlen), 0);
			assert_int_equal(decode_by_parts(raw, len, out, dlen, 300 * 1000, NULL), 0);
			tried++;
		}
		free(raw);
		free(names[i]);
	}
	free(names);
	assert_true(tried > 0);
	/* Its damaged bytes may decode to other bytes before zstd or the CRC
	 * notices: no comparison on the way. */
	raw = read_store_file("pbs-store-a-corrupt", bad, &len);
	assert_int_equal(ds_blob_type(raw, len), DS_BLOB_ZSTD);
	assert_int_equal(decode_by_parts(raw, len, NULL, 4 * DS_MIB, 300 * 1000, NULL), -EAGAIN);
	free(raw);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello_plain),
		cmocka_unit_test(test_hello_encrypted),
		cmocka_unit_test(test_roundtrips),
		cmocka_unit_test(test_zstd_frames),
		cmocka_unit_test(test_output_bound),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_fixture_blobs),
		cmocka_unit_test(test_fixture_chunks),
		cmocka_unit_test(test_fixture_corrupt_chunk),
		cmocka_unit_test(test_part_decode),
		cmocka_unit_test(test_part_fixture_chunks),
	};
	return tu_run_group("blob", tests, NULL, NULL);
}
