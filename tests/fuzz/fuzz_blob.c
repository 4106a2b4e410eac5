/* Fuzz target for store/blob's decoder: type and CRC checks, then decoding
 * with and without a key, once as given and once with the CRC patched so
 * that mutations reach GCM and zstd. A successful decode must survive an
 * encode/decode round trip unchanged. Decoding by parts (ds_blob_part)
 * must give the whole decode's bytes, and never finish where the whole
 * decode fails. */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/blob.h"
#include "store/crypt.h"
#include "store/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The fixture store's key (pbs-store-a.enc-key.json), so that the encrypted
 * seeds decrypt. */
static const uint8_t fuzz_key[DS_CRYPT_KEY_LEN] = {
	0xc7, 0x5a, 0xae, 0x56, 0xf6, 0x92, 0x57, 0x8f, 0x2e, 0xfe, 0xe8,
	0xd6, 0x5d, 0xa0, 0xc4, 0x67, 0xc0, 0x94, 0x16, 0x36, 0x68, 0xd4,
	0x33, 0x86, 0x93, 0xb7, 0x02, 0x97, 0x37, 0xfe, 0x1c, 0x4d,
};

static struct ds_crypt *key(void)
{
	static struct ds_crypt *c;

	if (!c && ds_crypt_new(fuzz_key, &c) < 0)
		abort();
	return c;
}

static void roundtrip(const uint8_t *plain, size_t len, const struct ds_crypt *c)
{
	uint8_t *raw, *back;
	size_t raw_len, back_len;

	if (ds_blob_encode(plain, len, c, true, &raw, &raw_len) < 0)
		abort();
	if (ds_blob_decode(raw, raw_len, c, len, &back, &back_len) < 0 || back_len != len ||
	    (len && memcmp(back, plain, len) != 0))
		abort();
	free(back);
	free(raw);
}

/* ds_blob_part over raw in a memfd, in three steps; plain (len bytes, or
 * NULL when the whole decode failed) is what the whole decode gave. */
static void decode_parts(const uint8_t *raw, size_t size, const uint8_t *plain, size_t len)
{
	static uint8_t out[256 * 1024];
	static int fd = -1;
	const size_t wants[] = { 1, len / 2, SIZE_MAX };
	struct ds_blob_part *p = NULL;
	size_t done = 0;
	int r;

	if (fd < 0)
		fd = memfd_create("fuzz-part", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 0) < 0 || pwrite(fd, raw, size, 0) != (ssize_t)size)
		abort();
	r = ds_blob_part_new(fd, size, plain ? len : 0, sizeof(out), &p);
	/* A prefix may decode where the whole does not (damage further on);
	 * all of it may not. */
	for (size_t i = 0; r == 0 && i < 3; i++) {
		r = ds_blob_part_decode(p, fd, size, out, wants[i], &done);
		if (r == 0 && plain && (done > len || memcmp(out, plain, done) != 0))
			abort();
	}
	if (r == 0 && (!plain || done != len))
		abort();
	ds_blob_part_free(p);
}

static void decode_all(const uint8_t *raw, size_t size)
{
	static uint8_t out[64 * 1024];
	const struct ds_crypt *keys[] = { NULL, key() };
	int type = ds_blob_type(raw, size);

	for (size_t i = 0; i < 2; i++) {
		uint8_t *plain;
		size_t len, len2;
		int r = ds_blob_decode(raw, size, keys[i], DS_MAX_CHUNK_SIZE, &plain, &len);
		int r2 = ds_blob_decode_into(raw, size, keys[i], out, sizeof(out), &len2);

		/* A decode must not succeed where the type is unknown, and
		 * the bounded decode must agree with the allocating one. */
		if (r == 0 && type < 0)
			abort();
		if (r == 0 && len <= sizeof(out) && (r2 != 0 || len2 != len ||
						     (len && memcmp(out, plain, len) != 0)))
			abort();
		if (r == 0 && len > sizeof(out) && r2 != -EFBIG)
			abort();
		if (r == 0 && len <= 256 * 1024)
			roundtrip(plain, len, keys[i]);
		if (!keys[i] && type == DS_BLOB_ZSTD)
			decode_parts(raw, size, r == 0 ? plain : NULL, r == 0 ? len : 0);
		if (r == 0)
			free(plain);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;
	int type;

	ds_blob_verify_crc(data, size);
	decode_all(data, size);

	type = ds_blob_type(data, size);
	if (type < 0)
		return 0;
	copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	{
		size_t hl = ds_blob_type_encrypted(type) ? DS_BLOB_ENC_HEADER_LEN
							 : DS_BLOB_HEADER_LEN;

		ds_put_le32(copy + 8, ds_crc32(copy + hl, size - hl));
	}
	if (ds_blob_verify_crc(copy, size) != 0)
		abort();
	decode_all(copy, size);
	free(copy);
	return 0;
}
