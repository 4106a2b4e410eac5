/* Suite for store/crypt: spec §2.9 and §4.3 vectors, AES-GCM, key files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "store/crypt.h"
#include "store/log.h"
#include "store/util.h"
#include "testutil.h"

/* spec §2.9: scrypt("test", salt "", N=65536, r=8, p=1). */
#define ENC_KEY_HEX "28cdb1a3bef39396c3860e00d448fe7a0efd8244486ab6feb30457681d31597e"
#define ID_KEY_HEX "758495a21c31047f543f46d694700e02d168568bab37bb0ceece947b591f5100"
#define FP_STR                                                                          \
	"12:b9:b7:74:bb:3d:89:95:2b:97:cb:c2:82:f0:0c:14:2b:83:ba:7f:96:62:6a:a1:5a:44:" \
	"9a:63:e8:91:fe:25"
#define FIXTURE_FP                                                                      \
	"57:67:1a:72:75:99:2d:9e:21:7a:2c:2b:e9:64:bc:d8:51:25:90:25:62:71:f3:01:1a:7a:" \
	"9c:05:98:ff:6c:e0"
#define FIXTURE_KEY_HEX "c75aae56f692578f2efee8d65da0c467c094163668d4338693b7029737fe1c4d"

/* Key files wrapping ENC_KEY with passphrase "hunter2pbs", salt 00..1f and
 * IV 40..4f, made independently with Python's hashlib and cryptography
 * (AESGCM with a 16-byte nonce). */
static const char scrypt_keyfile[] =
	"{\"kdf\":{\"Scrypt\":{\"n\":1024,\"r\":8,\"p\":1,\"salt\":"
	"\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}},"
	"\"created\":\"2024-05-07T16:25:51+02:00\",\"modified\":\"2024-05-07T16:25:51+02:00\","
	"\"data\":\"QEFCQ0RFRkdISUpLTE1OT4TGVO92qGsDokX6AOTNgV3Ia7kY2YhTx6qMoEYJLhrOr0hyelHfF"
	"tVUs6ze1mf9eA==\",\"fingerprint\":\"" FP_STR "\"}";
static const char pbkdf2_keyfile[] =
	"{\"kdf\":{\"PBKDF2\":{\"iter\":65535,\"salt\":"
	"\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"}},"
	"\"created\":\"2024-05-07T16:25:51+02:00\",\"modified\":\"2024-05-07T16:25:51+02:00\","
	"\"data\":\"QEFCQ0RFRkdISUpLTE1OT+rH8kbyxlmtFwfCDlX1nLuKMatFr5S1V+wFFE7DnE+lUTGOtXdgf"
	"greTziV5zEm3Q==\",\"fingerprint\":\"" FP_STR "\"}";

static void hex_of(const void *b, size_t n, char *out)
{
	ds_hex_encode(b, n, out);
}

static struct ds_crypt *vector_key(void)
{
	uint8_t key[32];
	struct ds_crypt *c;

	assert_int_equal(ds_hex_decode(ENC_KEY_HEX, key, 32), 0);
	assert_int_equal(ds_crypt_new(key, &c), 0);
	return c;
}

static char *fixture_keyfile(size_t *len)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/pbs-store-a.enc-key.json", tu_fixtures());
	return (char *)tu_read(path, len);
}

static int parse_str(const char *json, const char *pass, struct ds_crypt **c)
{
	return ds_keyfile_parse(json, strlen(json), pass, c);
}

static void test_vector_keys(void **state)
{
	uint8_t key[32];
	char hex[65], fp[DS_FINGERPRINT_STR_LEN];
	struct ds_digest d, d2;
	struct ds_crypt *c;

	(void)state;
	assert_int_equal(EVP_PBE_scrypt("test", 4, (const unsigned char *)"", 0, 65536, 8, 1,
					1025ull << 20, key, 32), 1);
	hex_of(key, 32, hex);
	assert_string_equal(hex, ENC_KEY_HEX);
	assert_int_equal(ds_crypt_new(key, &c), 0);
	hex_of(ds_crypt_enc_key(c), 32, hex);
	assert_string_equal(hex, ENC_KEY_HEX);
	hex_of(ds_crypt_id_key(c), 32, hex);
	assert_string_equal(hex, ID_KEY_HEX);
	ds_crypt_fingerprint_str(c, fp);
	assert_string_equal(fp, FP_STR);
	assert_int_equal(strlen(fp), DS_FINGERPRINT_STR_LEN - 1);
	ds_crypt_fingerprint(c, &d);
	ds_digest_to_hex(&d, hex);
	assert_string_equal(hex, "12b9b774bb3d89952b97cbc282f00c142b83ba7f96626aa15a449a63e891fe25");
	/* The fingerprint is the keyed digest of FP_INPUT (spec §2.8). */
	assert_int_equal(ds_hex_decode("6ed0ef77471fff4d55c7a8fe4a9db62161407f134c725ddf30992d25ec45ed26",
				       key, 32), 0);
	ds_crypt_digest(c, key, 32, &d2);
	assert_true(ds_digest_eq(&d, &d2));

	ds_crypt_digest(c, "hello", 5, &d);
	ds_digest_to_hex(&d, hex);
	assert_string_equal(hex, "2c5ad03c8f9335f35f1f0ad59e40bba52664b9f7f8586b0bf49658c963f2b33a");
	ds_crypt_digest(NULL, "hello", 5, &d);
	ds_digest_to_hex(&d, hex);
	assert_string_equal(hex, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
	ds_crypt_free(c);
	ds_crypt_free(NULL);
}

static void test_manifest_signature(void **state)
{
	char text[1024], c1[65], c2[65], hex[65];
	struct ds_crypt *c = vector_key();
	struct ds_digest sig;

	(void)state;
	memset(c1, '0', 64);
	memset(c2, '0', 64);
	for (int i = 1; i < 64; i += 2) {
		c1[i] = '1';
		c2[i] = '2';
	}
	c1[64] = c2[64] = '\0';
	snprintf(text, sizeof(text),
		 "{\"backup-id\":\"elsa\",\"backup-time\":1593179765,\"backup-type\":\"host\","
		 "\"files\":[{\"crypt-mode\":\"encrypt\",\"csum\":\"%s\",\"filename\":"
		 "\"test1.img.fidx\",\"size\":200},{\"crypt-mode\":\"none\",\"csum\":\"%s\","
		 "\"filename\":\"abc.blob\",\"size\":200}]}",
		 c1, c2);
	ds_crypt_sign(c, text, strlen(text), &sig);
	ds_digest_to_hex(&sig, hex);
	assert_string_equal(hex, "d7b446fb7db081662081d4b40fedd858a1d6307a5aff4ecff7d5bf4fd35679e9");
	ds_crypt_free(c);
}

static void test_gcm(void **state)
{
	static const uint8_t zero_iv[16];
	struct ds_crypt *c = vector_key();
	uint8_t ct[5], pt[5], tag[16], big[4096], big_ct[4096], big_pt[4096], iv[32];
	char hex[65];

	(void)state;
	/* spec §2.9: "hello" under the vector key with an all-zero IV. */
	assert_int_equal(ds_crypt_encrypt(c, zero_iv, "hello", 5, ct, tag), 0);
	hex_of(ct, 5, hex);
	assert_string_equal(hex, "8921fca557");
	hex_of(tag, 16, hex);
	assert_string_equal(hex, "23b31e836a159e56534f5e52d861c329");
	assert_int_equal(ds_crypt_decrypt(c, zero_iv, tag, ct, 5, pt), 0);
	assert_memory_equal(pt, "hello", 5);
	ct[2] ^= 1;
	assert_int_equal(ds_crypt_decrypt(c, zero_iv, tag, ct, 5, pt), -EBADMSG);
	ct[2] ^= 1;
	tag[15] ^= 0x80;
	assert_int_equal(ds_crypt_decrypt(c, zero_iv, tag, ct, 5, pt), -EBADMSG);
	tag[15] ^= 0x80;
	iv[0] = 1;
	memset(iv + 1, 0, 15);
	assert_int_equal(ds_crypt_decrypt(c, iv, tag, ct, 5, pt), -EBADMSG);

	/* Empty plaintext still carries a tag. */
	assert_int_equal(ds_crypt_encrypt(c, zero_iv, NULL, 0, NULL, tag), 0);
	assert_int_equal(ds_crypt_decrypt(c, zero_iv, tag, NULL, 0, NULL), 0);
	tag[0] ^= 1;
	assert_int_equal(ds_crypt_decrypt(c, zero_iv, tag, NULL, 0, NULL), -EBADMSG);

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	assert_int_equal(ds_crypt_random_key(iv), 0); /* the first 16 bytes serve */
	assert_int_equal(ds_crypt_encrypt(c, iv, big, sizeof(big), big_ct, tag), 0);
	assert_memory_not_equal(big, big_ct, sizeof(big));
	assert_int_equal(ds_crypt_decrypt(c, iv, tag, big_ct, sizeof(big), big_pt), 0);
	assert_memory_equal(big, big_pt, sizeof(big));
	ds_crypt_free(c);
}

static void test_random_key(void **state)
{
	uint8_t a[32], b[32];

	(void)state;
	assert_int_equal(ds_crypt_random_key(a), 0);
	assert_int_equal(ds_crypt_random_key(b), 0);
	assert_memory_not_equal(a, b, 32);
}

static void test_keyfile_fixture(void **state)
{
	size_t len;
	char *json = fixture_keyfile(&len);
	char fp[DS_FINGERPRINT_STR_LEN], hex[65];
	struct ds_crypt *c;

	(void)state;
	assert_int_equal(ds_keyfile_parse(json, len, NULL, &c), 0);
	ds_crypt_fingerprint_str(c, fp);
	assert_string_equal(fp, FIXTURE_FP);
	hex_of(ds_crypt_enc_key(c), 32, hex);
	assert_string_equal(hex, FIXTURE_KEY_HEX);
	ds_crypt_free(c);
	/* kdf null: a passphrase is not needed and ignored. */
	assert_int_equal(ds_keyfile_parse(json, len, "whatever", &c), 0);
	ds_crypt_free(c);
	free(json);
}

static void expect_vector_key(struct ds_crypt *c)
{
	char hex[65], fp[DS_FINGERPRINT_STR_LEN];

	hex_of(ds_crypt_enc_key(c), 32, hex);
	assert_string_equal(hex, ENC_KEY_HEX);
	ds_crypt_fingerprint_str(c, fp);
	assert_string_equal(fp, FP_STR);
}

static void test_keyfile_wrapped(void **state)
{
	const char *files[] = { scrypt_keyfile, pbkdf2_keyfile };
	struct ds_crypt *c = NULL;

	(void)state;
	for (size_t i = 0; i < DS_ARRAY_SIZE(files); i++) {
		assert_int_equal(parse_str(files[i], "hunter2pbs", &c), 0);
		expect_vector_key(c);
		ds_crypt_free(c);
		assert_int_equal(parse_str(files[i], "hunter2pbz", &c), -EKEYREJECTED);
		assert_int_equal(parse_str(files[i], NULL, &c), -ENOKEY);
		/* Under 5 bytes is refused before any derivation. */
		assert_int_equal(parse_str(files[i], "test", &c), -EKEYREJECTED);
		assert_int_equal(parse_str(files[i], "", &c), -EKEYREJECTED);
	}
}

/* Replaces the first occurrence of from in s (a static key-file template). */
static char *subst(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	char *out;

	assert_non_null(p);
	assert_true(asprintf(&out, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from)) > 0);
	return out;
}

/* The fixture key's data, and a minimal key file around kdf and data. */
#define FKEY "x1quVvaSV48u/ujWXaDEZ8CUFjZo1DOGk7cClzf+HE0"
#define KF(kdf, data) "{\"kdf\":" kdf ",\"created\":\"a\",\"modified\":\"b\",\"data\":" data "}"

static void test_keyfile_errors(void **state)
{
	static const char *bad[] = {
		"",
		"{",
		"[]",
		"null",
		"{\"kdf\":null}",
		/* no created/modified; no kdf key at all */
		"{\"kdf\":null,\"data\":\"" FKEY "=\"}",
		"{\"created\":\"a\",\"modified\":\"b\",\"data\":\"" FKEY "=\"}",
		/* 31-byte and 33-byte keys */
		KF("null", "\"x1quVvaSV48u/ujWXaDEZ8CUFjZo1DOGk7cClzf+HA==\""),
		KF("null", "\"" FKEY "A\""),
		/* base64: unpadded, whitespace, bad character, '=' inside */
		KF("null", "\"" FKEY "\""),
		KF("null", "\"" FKEY " =\""),
		KF("null", "\"x1quVvaSV48u/ujWXaDEZ8CUFjZo1DOGk7cClzf-HE0=\""),
		KF("null", "\"x1qu=vaSV48u/ujWXaDEZ8CUFjZo1DOGk7cClzf+HE0=\""),
		/* data not a string */
		KF("null", "[1,2]"),
		/* unknown kdf, pbs-plus's Go spelling, two tags, body not an object */
		KF("{\"Argon2\":{\"salt\":\"\"}}", "\"\""),
		KF("{\"type\":\"scrypt\",\"n\":65536,\"r\":8,\"p\":1,\"salt\":\"\"}", "\"\""),
		KF("{\"Scrypt\":{},\"PBKDF2\":{}}", "\"\""),
		KF("{\"PBKDF2\":65535}", "\"\""),
		/* duplicate field */
		"{\"kdf\":null,\"kdf\":null,\"created\":\"a\",\"modified\":\"b\",\"data\":\"" FKEY "=\"}",
		/* malformed fingerprints */
		KF("null", "\"" FKEY "=\",\"fingerprint\":\"57:67\""),
		KF("null", "\"" FKEY "=\",\"fingerprint\":42"),
	};
	struct ds_crypt *c = (struct ds_crypt *)0x1;
	char *s;

	(void)state;
	for (size_t i = 0; i < DS_ARRAY_SIZE(bad); i++) {
		print_message("bad key file %zu\n", i);
		assert_int_equal(parse_str(bad[i], "hunter2pbs", &c), -EINVAL);
	}
	assert_ptr_equal(c, (struct ds_crypt *)0x1); /* ret untouched on failure */
	/* The frame around them is fine: each one fails for its own reason. */
	assert_int_equal(parse_str(KF("null", "\"" FKEY "=\""), NULL, &c), 0);
	ds_crypt_free(c);

	/* Fingerprint of another key: refused; none at all: accepted. */
	s = subst(pbkdf2_keyfile, FP_STR, FIXTURE_FP);
	assert_int_equal(parse_str(s, "hunter2pbs", &c), -EBADMSG);
	free(s);
	s = subst(pbkdf2_keyfile, ",\"fingerprint\":\"" FP_STR "\"", "");
	assert_int_equal(parse_str(s, "hunter2pbs", &c), 0);
	expect_vector_key(c);
	ds_crypt_free(c);
	free(s);
	/* Upper-case hex is the same fingerprint. */
	s = subst(pbkdf2_keyfile, "12:b9:b7:74", "12:B9:B7:74");
	assert_int_equal(parse_str(s, "hunter2pbs", &c), 0);
	ds_crypt_free(c);
	free(s);
	/* So is one with the colons left out or elsewhere: PBS's serde drops
	 * every ':' and decodes the 64 hex digits left. */
	s = subst(pbkdf2_keyfile, FP_STR,
		  "12b9b774bb3d89952b97cbc282f00c142b83ba7f96626aa15a449a63e891fe25");
	assert_int_equal(parse_str(s, "hunter2pbs", &c), 0);
	expect_vector_key(c);
	ds_crypt_free(c);
	free(s);
	s = subst(pbkdf2_keyfile, FP_STR,
		  "12b9b774:bb3d8995:2b97cbc2:82f00c14:2b83ba7f:96626aa1:5a449a63:e891fe25");
	assert_int_equal(parse_str(s, "hunter2pbs", &c), 0);
	ds_crypt_free(c);
	free(s);
	/* 63 or 65 hex digits are no fingerprint. */
	s = subst(pbkdf2_keyfile, FP_STR,
		  "12b9b774bb3d89952b97cbc282f00c142b83ba7f96626aa15a449a63e891fe2");
	assert_int_equal(parse_str(s, "hunter2pbs", &c), -EINVAL);
	free(s);
	s = subst(pbkdf2_keyfile, FP_STR,
		  "12b9b774bb3d89952b97cbc282f00c142b83ba7f96626aa15a449a63e891fe255");
	assert_int_equal(parse_str(s, "hunter2pbs", &c), -EINVAL);
	free(s);
	/* Unusable kdf parameters. */
	s = subst(scrypt_keyfile, "\"n\":1024", "\"n\":1000");
	assert_int_equal(parse_str(s, "hunter2pbs", &c), -EINVAL);
	free(s);
	s = subst(scrypt_keyfile, "\"n\":1024", "\"n\":-1024");
	assert_int_equal(parse_str(s, "hunter2pbs", &c), -EINVAL);
	free(s);
	s = subst(scrypt_keyfile, "\"r\":8", "\"r\":\"8\"");
	assert_int_equal(parse_str(s, "hunter2pbs", &c), -EINVAL);
	free(s);
	s = subst(pbkdf2_keyfile, "\"iter\":65535", "\"iter\":0");
	assert_int_equal(parse_str(s, "hunter2pbs", &c), -EINVAL);
	free(s);
	s = subst(pbkdf2_keyfile, "\"iter\":65535", "\"iter\":4294967296");
	assert_int_equal(parse_str(s, "hunter2pbs", &c), -EINVAL);
	free(s);
	/* Wrapped data of the wrong size. */
	s = subst(pbkdf2_keyfile, "V5zEm3Q==", "V5zEm");
	assert_int_equal(parse_str(s, "hunter2pbs", &c), -EINVAL);
	free(s);
	/* A different salt derives a different key: the tag check fails. */
	s = subst(pbkdf2_keyfile, "AAECAwQF", "AQECAwQF");
	assert_int_equal(parse_str(s, "hunter2pbs", &c), -EKEYREJECTED);
	free(s);
	/* Unknown extra fields (e.g. "hint") are ignored, as by serde. */
	s = subst(pbkdf2_keyfile, "\"created\"", "\"hint\":\"h\",\"created\"");
	assert_int_equal(parse_str(s, "hunter2pbs", &c), 0);
	ds_crypt_free(c);
	free(s);
}

static void check_format(const char *json, const char *kdf_prefix)
{
	static const char *order[] = { "{\"kdf\":", ",\"created\":\"", ",\"modified\":\"",
				       ",\"data\":\"", ",\"fingerprint\":\"" };
	const char *p = json;
	regex_t re;

	assert_int_equal(strncmp(json, order[0], strlen(order[0])), 0);
	assert_int_equal(strncmp(json + strlen(order[0]), kdf_prefix, strlen(kdf_prefix)), 0);
	for (size_t i = 0; i < DS_ARRAY_SIZE(order); i++) {
		const char *q = strstr(p, order[i]);

		assert_non_null(q);
		p = q + strlen(order[i]);
	}
	assert_int_equal(regcomp(&re,
				 "^\\{\"kdf\":.*,\"created\":\"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:"
				 "[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2})\",\"modified\":\"\\1\","
				 "\"data\":\"[A-Za-z0-9+/]+=*\",\"fingerprint\":\"([0-9a-f]{2}:){31}"
				 "[0-9a-f]{2}\"\\}$",
				 REG_EXTENDED), 0);
	assert_int_equal(regexec(&re, json, 0, NULL, 0), 0);
	regfree(&re);
	assert_null(strchr(json, ' '));
	assert_null(strchr(json, '\n'));
}

static void test_keyfile_format(void **state)
{
	static const struct {
		enum ds_kdf kdf;
		const char *prefix;
	} kinds[] = {
		{ DS_KDF_NONE, "null," },
		{ DS_KDF_PBKDF2, "{\"PBKDF2\":{\"iter\":65535,\"salt\":\"" },
		{ DS_KDF_SCRYPT, "{\"Scrypt\":{\"n\":65536,\"r\":8,\"p\":1,\"salt\":\"" },
	};
	struct ds_crypt *c = vector_key(), *back;
	char *json, *json2;

	(void)state;
	for (size_t i = 0; i < DS_ARRAY_SIZE(kinds); i++) {
		assert_int_equal(ds_keyfile_format(c, kinds[i].kdf, "hunter2pbs", &json), 0);
		check_format(json, kinds[i].prefix);
		assert_int_equal(parse_str(json, "hunter2pbs", &back), 0);
		expect_vector_key(back);
		ds_crypt_free(back);
		if (kinds[i].kdf != DS_KDF_NONE) {
			assert_int_equal(parse_str(json, "Hunter2pbs", &back), -EKEYREJECTED);
			assert_int_equal(parse_str(json, NULL, &back), -ENOKEY);
			/* Fresh salt and IV every time. */
			if (kinds[i].kdf == DS_KDF_PBKDF2) {
				assert_int_equal(ds_keyfile_format(c, kinds[i].kdf, "hunter2pbs",
								   &json2), 0);
				assert_string_not_equal(strstr(json, "\"data\""),
							strstr(json2, "\"data\""));
				free(json2);
			}
		}
		free(json);
	}
	assert_int_equal(ds_keyfile_format(c, DS_KDF_SCRYPT, NULL, &json), -EINVAL);
	assert_int_equal(ds_keyfile_format(c, DS_KDF_PBKDF2, "abc", &json), -EINVAL);
	ds_crypt_free(c);
}

/* The plain form is byte-identical to what PBS wrote, apart from the times;
 * and the times carry the local offset as "+HH:MM". */
static void test_keyfile_format_pbs(void **state)
{
	static const struct {
		const char *tz, *suffix;
	} zones[] = { { "UTC0", "+00:00\"" }, { "IST-5:30", "+05:30\"" }, { "NST3:30", "-03:30\"" } };
	size_t len;
	char *want = fixture_keyfile(&len), *json, *tail;
	const char *old_tz = getenv("TZ");
	char *saved = old_tz ? strdup(old_tz) : NULL;
	struct ds_crypt *c;

	(void)state;
	assert_int_equal(ds_keyfile_parse(want, len, NULL, &c), 0);
	for (size_t i = 0; i < DS_ARRAY_SIZE(zones); i++) {
		setenv("TZ", zones[i].tz, 1);
		tzset();
		assert_int_equal(ds_keyfile_format(c, DS_KDF_NONE, NULL, &json), 0);
		check_format(json, "null,");
		/* "…:SS+HH:MM\"," : the offset ends right before the closing quote. */
		tail = strstr(json, ",\"modified\"");
		assert_non_null(tail);
		assert_int_equal(strncmp(tail - strlen(zones[i].suffix), zones[i].suffix,
					 strlen(zones[i].suffix)), 0);
		/* Same bytes as the fixture once the times are aligned. */
		memcpy(json + strlen("{\"kdf\":null,\"created\":\""),
		       want + strlen("{\"kdf\":null,\"created\":\""), 25);
		memcpy(strstr(json, "\"modified\":\"") + 12,
		       strstr(want, "\"modified\":\"") + 12, 25);
		assert_int_equal(strlen(json), len);
		assert_memory_equal(json, want, len);
		free(json);
	}
	if (saved)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
	ds_crypt_free(c);
	free(want);
}

static char last_log[1024];

static void capture(enum ds_log_level level, const char *msg, void *ud)
{
	(void)level;
	(void)ud;
	snprintf(last_log, sizeof(last_log), "%s", msg);
}

static void test_keyfile_load(void **state)
{
	size_t len;
	char *json = fixture_keyfile(&len); /* first: it may skip the test */
	char *dir = tu_tmpdir(), path[4096], fp[DS_FINGERPRINT_STR_LEN];
	struct ds_crypt *c = NULL;
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/key.json", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ds_write_all(fd, json, len), 0);
	close(fd);

	ds_log_set_sink(capture, NULL);
	assert_int_equal(chmod(path, 0644), 0);
	last_log[0] = '\0';
	assert_int_equal(ds_keyfile_load(path, NULL, &c), -EPERM);
	assert_non_null(strstr(last_log, path));
	assert_non_null(strstr(last_log, "0644"));
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(ds_keyfile_load(path, NULL, &c), -EPERM);
	assert_int_equal(chmod(path, 0602), 0);
	assert_int_equal(ds_keyfile_load(path, NULL, &c), -EPERM);
	assert_null(c);
	ds_log_set_sink(NULL, NULL);

	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(ds_keyfile_load(path, NULL, &c), 0);
	ds_crypt_fingerprint_str(c, fp);
	assert_string_equal(fp, FIXTURE_FP);
	ds_crypt_free(c);
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(ds_keyfile_load(path, "ignored", &c), 0);
	ds_crypt_free(c);

	snprintf(path, sizeof(path), "%s/missing.json", dir);
	assert_int_equal(ds_keyfile_load(path, NULL, &c), -ENOENT);
	tu_rmtree(dir);
	free(dir);
	free(json);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector_keys),
		cmocka_unit_test(test_manifest_signature),
		cmocka_unit_test(test_gcm),
		cmocka_unit_test(test_random_key),
		cmocka_unit_test(test_keyfile_fixture),
		cmocka_unit_test(test_keyfile_wrapped),
		cmocka_unit_test(test_keyfile_errors),
		cmocka_unit_test(test_keyfile_format),
		cmocka_unit_test(test_keyfile_format_pbs),
		cmocka_unit_test(test_keyfile_load),
	};
	return tu_run_group("crypt", tests, NULL, NULL);
}
