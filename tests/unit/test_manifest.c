/* Suite for store/manifest: the §4.3 signature vector, byte-exact round trips
 * of every fixture manifest, signatures of the encrypted fixture snapshots,
 * serde_json's escaping and layout, malformed input, store/load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "store/blob.h"
#include "store/crypt.h"
#include "store/log.h"
#include "store/manifest.h"
#include "store/util.h"
#include "testutil.h"

#define H01 "0101010101010101010101010101010101010101010101010101010101010101"
#define H02 "0202020202020202020202020202020202020202020202020202020202020202"
#define HAA "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HBB "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HCC "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static int err_lines;

static void count_sink(enum ds_log_level level, const char *msg, void *ud)
{
	(void)msg;
	(void)ud;
	if (level <= DS_LOG_ERR)
		err_lines++;
}

static struct ds_digest fill(uint8_t b)
{
	struct ds_digest d;

	memset(d.b, b, sizeof(d.b));
	return d;
}

static struct ds_manifest *parse_ok(const char *text)
{
	struct ds_manifest *m = NULL;

	assert_int_equal(ds_manifest_parse(text, strlen(text), &m), 0);
	assert_non_null(m);
	return m;
}

static void assert_format(const struct ds_manifest *m, const char *expect)
{
	char *text;
	size_t len;

	assert_int_equal(ds_manifest_format(m, &text, &len), 0);
	assert_string_equal(text, expect);
	assert_int_equal(len, strlen(expect));
	free(text);
}

static struct ds_crypt *spec_key(void)
{
	/* §2.9: enc_key of PBS's test_manifest_signature. */
	uint8_t key[32];
	struct ds_crypt *c;

	assert_int_equal(ds_hex_decode("28cdb1a3bef39396c3860e00d448fe7a"
				       "0efd8244486ab6feb30457681d31597e", key, 32), 0);
	assert_int_equal(ds_crypt_new(key, &c), 0);
	return c;
}

static struct ds_crypt *fixture_key(void)
{
	char path[4096];
	struct ds_crypt *c;
	uint8_t *buf;
	size_t len;

	/* The fixture file is 0444, which ds_keyfile_load refuses. */
	snprintf(path, sizeof(path), "%s/pbs-store-a.enc-key.json", tu_fixtures());
	buf = tu_read(path, &len);
	assert_int_equal(ds_keyfile_parse((const char *)buf, len, NULL, &c), 0);
	free(buf);
	return c;
}

static void test_signature_vector(void **state)
{
	static const char canon[] =
		"{\"backup-id\":\"elsa\",\"backup-time\":1593179765,\"backup-type\":\"host\","
		"\"files\":[{\"crypt-mode\":\"encrypt\",\"csum\":\"" H01 "\","
		"\"filename\":\"test1.img.fidx\",\"size\":200},"
		"{\"crypt-mode\":\"none\",\"csum\":\"" H02 "\","
		"\"filename\":\"abc.blob\",\"size\":200}]}";
	struct ds_digest d1 = fill(1), d2 = fill(2);
	struct ds_manifest *m, *m2;
	struct ds_crypt *other = fixture_key(), *c = spec_key(); /* may skip: first */
	char *text, *pretty;
	size_t len;

	(void)state;
	assert_int_equal(ds_manifest_new("host", "elsa", 1593179765, &m), 0);
	assert_int_equal(ds_manifest_set_file(m, "test1.img.fidx", 200, &d1, DS_CRYPT_ENCRYPT), 0);
	assert_int_equal(ds_manifest_set_file(m, "abc.blob", 200, &d2, DS_CRYPT_NONE), 0);
	assert_int_equal(ds_manifest_canonical(m, &text, &len), 0);
	assert_string_equal(text, canon);
	assert_int_equal(len, strlen(canon));
	free(text);

	assert_null(ds_manifest_signature(m));
	assert_int_equal(ds_manifest_verify(m, c), -EBADMSG); /* not signed */
	assert_int_equal(ds_manifest_sign(m, c), 0);
	assert_string_equal(ds_manifest_signature(m),
			    "d7b446fb7db081662081d4b40fedd858a1d6307a5aff4ecff7d5bf4fd35679e9");
	assert_string_equal(ds_manifest_fingerprint(m),
			    "12:b9:b7:74:bb:3d:89:95:2b:97:cb:c2:82:f0:0c:14:"
			    "2b:83:ba:7f:96:62:6a:a1:5a:44:9a:63:e8:91:fe:25");
	assert_int_equal(ds_manifest_verify(m, c), 0);
	assert_int_equal(ds_manifest_verify(m, other), -EKEYREJECTED);

	/* The signed manifest survives format + parse and still verifies. */
	assert_int_equal(ds_manifest_format(m, &pretty, &len), 0);
	assert_int_equal(ds_manifest_parse(pretty, len, &m2), 0);
	assert_int_equal(ds_manifest_verify(m2, c), 0);
	assert_string_equal(ds_manifest_signature(m2), ds_manifest_signature(m));
	free(pretty);
	ds_manifest_free(m2);
	ds_manifest_free(m);
	ds_crypt_free(other);
	ds_crypt_free(c);
}

/* ds_manifest_verify_quiet answers as ds_manifest_verify, without a log
 * line; ds_manifest_covers: the listed files, the manifest itself and
 * client.log.blob. */
static void test_verify_quiet_and_covers(void **state)
{
	struct ds_digest d1 = fill(1);
	struct ds_crypt *other = fixture_key(), *c = spec_key(); /* may skip: first */
	struct ds_manifest *m;

	(void)state;
	assert_int_equal(ds_manifest_new("host", "elsa", 1593179765, &m), 0);
	assert_int_equal(ds_manifest_set_file(m, "test1.img.fidx", 200, &d1, DS_CRYPT_ENCRYPT), 0);
	ds_log_set_sink(count_sink, NULL);
	err_lines = 0;
	assert_int_equal(ds_manifest_verify_quiet(m, c), -EBADMSG); /* not signed */
	assert_int_equal(ds_manifest_sign(m, c), 0);
	assert_int_equal(ds_manifest_verify_quiet(m, c), 0);
	assert_int_equal(ds_manifest_verify_quiet(m, other), -EKEYREJECTED);
	assert_int_equal(err_lines, 0);
	assert_int_equal(ds_manifest_verify(m, other), -EKEYREJECTED);
	assert_int_equal(err_lines, 1);
	ds_log_set_sink(NULL, NULL);

	assert_true(ds_manifest_covers(m, "test1.img.fidx"));
	assert_true(ds_manifest_covers(m, "index.json.blob"));
	assert_true(ds_manifest_covers(m, "client.log.blob"));
	assert_false(ds_manifest_covers(m, "test2.img.fidx"));
	assert_false(ds_manifest_covers(m, "test1.img.didx"));
	assert_false(ds_manifest_covers(m, "qemu-server.conf.blob"));
	ds_manifest_free(m);
	ds_crypt_free(other);
	ds_crypt_free(c);
}

/* PBS checks the signature over the JSON as read (spec §4.3: canonical JSON
 * of the manifest without "unprotected" and "signature"), not over the fields
 * its struct keeps: text that parses to the same fields but is not what was
 * signed fails there, and must fail here too. Whitespace and key order are
 * not part of the canonical form. */
static void expect_verify(const char *text, const struct ds_crypt *c, int want)
{
	struct ds_manifest *m = parse_ok(text);

	assert_int_equal(ds_manifest_verify(m, c), want);
	ds_manifest_free(m);
}

static char *replace(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	char *out;

	assert_non_null(at);
	assert_true(asprintf(&out, "%.*s%s%s", (int)(at - text), text, to,
			     at + strlen(from)) > 0);
	return out;
}

/* The unsigned key-fingerprint is read as PBS's serde reads it
 * (bytes_as_fingerprint): colons dropped, either case; a string that is
 * not 32 bytes of hex is no fingerprint. */
static void test_fingerprint_forms(void **state)
{
	static const char fp[] = "\"12:b9:b7:74:bb:3d:89:95:2b:97:cb:c2:82:f0:0c:14:"
				 "2b:83:ba:7f:96:62:6a:a1:5a:44:9a:63:e8:91:fe:25\"";
	static const char *const same[] = {
		"12b9b774bb3d89952b97cbc282f00c142b83ba7f96626aa15a449a63e891fe25",
		"12B9B774:BB3D8995:2B97CBC2:82F00C14:2B83BA7F:96626AA1:5A449A63:E891FE25",
	};
	static const char *const bad[] = { "12:b9", "zz", "" };
	struct ds_digest d1 = fill(1);
	struct ds_crypt *other = fixture_key(), *c = spec_key(); /* may skip: first */
	struct ds_manifest *m;
	char *pretty;
	size_t len;

	(void)state;
	assert_int_equal(ds_manifest_new("host", "elsa", 1593179765, &m), 0);
	assert_int_equal(ds_manifest_set_file(m, "test1.img.fidx", 200, &d1, DS_CRYPT_ENCRYPT), 0);
	assert_int_equal(ds_manifest_sign(m, c), 0);
	assert_int_equal(ds_manifest_format(m, &pretty, &len), 0);
	for (size_t i = 0; i < DS_ARRAY_SIZE(same) + DS_ARRAY_SIZE(bad); i++) {
		bool ok = i < DS_ARRAY_SIZE(same);
		char *q = tu_pathf("\"%s\"", ok ? same[i] : bad[i - DS_ARRAY_SIZE(same)]);
		char *t = replace(pretty, fp, q);

		print_message("key-fingerprint %s\n", q);
		expect_verify(t, c, ok ? 0 : -EBADMSG);
		if (ok)
			expect_verify(t, other, -EKEYREJECTED);
		free(t);
		free(q);
	}
	free(pretty);
	ds_manifest_free(m);
	ds_crypt_free(other);
	ds_crypt_free(c);
}

static void test_signature_over_text(void **state)
{
	static const char upper[] =
		"ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB";
	struct ds_digest d1 = fill(1), dab;
	struct ds_crypt *c = spec_key();
	struct ds_manifest *m;
	char *text, *t;
	size_t len;

	(void)state;
	assert_int_equal(ds_digest_from_hex(upper, &dab), 0);
	assert_int_equal(ds_manifest_new("host", "elsa", 1593179765, &m), 0);
	assert_int_equal(ds_manifest_set_file(m, "test1.img.fidx", 200, &d1, DS_CRYPT_ENCRYPT), 0);
	assert_int_equal(ds_manifest_set_file(m, "abc.blob", 200, &dab, DS_CRYPT_NONE), 0);
	assert_int_equal(ds_manifest_sign(m, c), 0);
	assert_int_equal(ds_manifest_format(m, &text, &len), 0);
	expect_verify(text, c, 0);

	/* Not part of the canonical form: layout and key order. */
	t = replace(text, "{\n  \"backup-id\": \"elsa\",\n  \"backup-time\": 1593179765,",
		    "{\"backup-time\":1593179765 ,  \"backup-id\":\"elsa\",");
	expect_verify(t, c, 0);
	free(t);

	/* A key PBS's struct drops is still signed text. */
	t = replace(text, "\"backup-id\"", "\"added\": 1,\n  \"backup-id\"");
	expect_verify(t, c, -EBADMSG);
	free(t);
	/* A key inside a file entry, likewise. */
	t = replace(text, "\"filename\": \"abc.blob\",",
		    "\"filename\": \"abc.blob\",\n      \"added\": true,");
	expect_verify(t, c, -EBADMSG);
	free(t);
	/* The same digest in upper case is another string. */
	t = replace(text, "abababababababababababababababababababababababababababababababab", upper);
	expect_verify(t, c, -EBADMSG);
	free(t);
	/* A missing crypt-mode reads as "none", but is not what was signed. */
	t = replace(text, "\"crypt-mode\": \"none\",\n", "");
	expect_verify(t, c, -EBADMSG);
	free(t);

	free(text);
	ds_manifest_free(m);
	ds_crypt_free(c);
}

/* ---- every fixture manifest ---- */

static char *found[64];
static size_t nfound;

static int collect(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	const char *base = path + ftw->base;

	(void)st;
	if (type == FTW_F && strcmp(base, DS_MANIFEST_NAME) == 0 && nfound < DS_ARRAY_SIZE(found))
		found[nfound++] = strdup(path);
	return 0;
}

static json_t *load_expect(void)
{
	char path[4096];
	json_error_t jerr;
	json_t *e;

	snprintf(path, sizeof(path), "%s/pbs-store-a.expect.json", tu_fixtures());
	e = json_load_file(path, 0, &jerr);
	assert_non_null(e);
	return e;
}

static json_t *expect_snapshot(json_t *expect, const char *relpath)
{
	json_t *s;
	size_t i;

	json_array_foreach(json_object_get(expect, "snapshots"), i, s)
		if (strcmp(json_string_value(json_object_get(s, "path")), relpath) == 0)
			return s;
	fail_msg("no snapshot %s in expect.json", relpath);
	return NULL;
}

static void check_against_expect(const struct ds_manifest *m, json_t *snap)
{
	json_t *man = json_object_get(snap, "manifest"), *f, *v, *unprot;
	struct ds_manifest_file mf;
	char hex[DS_DIGEST_HEX_LEN + 1], *ujson;
	size_t i;

	assert_string_equal(ds_manifest_type(m), json_string_value(json_object_get(snap, "type")));
	assert_string_equal(ds_manifest_id(m), json_string_value(json_object_get(snap, "id")));
	assert_int_equal(ds_manifest_time(m), json_integer_value(json_object_get(snap, "epoch")));
	assert_int_equal(ds_manifest_file_count(m), json_array_size(json_object_get(man, "files")));
	json_array_foreach(json_object_get(man, "files"), i, f) {
		const char *name = json_string_value(json_object_get(f, "filename"));

		assert_int_equal(ds_manifest_file(m, i, &mf), 0);
		assert_string_equal(mf.filename, name);
		assert_int_equal(mf.size, json_integer_value(json_object_get(f, "size")));
		ds_digest_to_hex(&mf.csum, hex);
		assert_string_equal(hex, json_string_value(json_object_get(f, "csum")));
		assert_string_equal(ds_crypt_mode_name(mf.crypt_mode),
				    json_string_value(json_object_get(f, "crypt-mode")));
		assert_int_equal(ds_manifest_find(m, name, &mf), 0);
		assert_string_equal(mf.filename, name);
	}
	assert_int_equal(ds_manifest_file(m, i, &mf), -ERANGE);
	assert_int_equal(ds_manifest_find(m, "index.json.blob", &mf), -ENOENT);

	v = json_object_get(man, "signature");
	if (json_is_null(v))
		assert_null(ds_manifest_signature(m));
	else
		assert_string_equal(ds_manifest_signature(m), json_string_value(v));
	v = json_object_get(man, "key_fingerprint");
	if (json_is_null(v))
		assert_null(ds_manifest_fingerprint(m));
	else
		assert_string_equal(ds_manifest_fingerprint(m), json_string_value(v));

	ujson = ds_manifest_unprotected_json(m);
	assert_non_null(ujson);
	unprot = json_loads(ujson, 0, NULL);
	assert_non_null(unprot);
	assert_true(json_equal(unprot, json_object_get(man, "unprotected")));
	json_decref(unprot);
	free(ujson);

	v = json_object_get(json_object_get(man, "unprotected"), "notes");
	if (v)
		assert_string_equal(ds_manifest_notes(m), json_string_value(v));
	else
		assert_null(ds_manifest_notes(m));
}

static void test_fixture_roundtrip(void **state)
{
	char root[4096];
	json_t *expect = load_expect();
	size_t nsigned = 0, nnotes = 0;

	(void)state;
	snprintf(root, sizeof(root), "%s/pbs-store-a", tu_fixtures());
	nfound = 0;
	assert_int_equal(nftw(root, collect, 16, FTW_PHYS), 0);
	assert_int_equal(nfound, 14);
	for (size_t i = 0; i < nfound; i++) {
		struct ds_manifest *m, *m2;
		uint8_t *raw, *text;
		size_t rawlen, len, outlen;
		char *out, *rel, *slash;
		int dfd;

		raw = tu_read(found[i], &rawlen);
		assert_int_equal(ds_blob_decode(raw, rawlen, NULL, DS_MAX_BLOB_SIZE, &text, &len), 0);
		assert_int_equal(ds_manifest_parse((const char *)text, len, &m), 0);
		assert_int_equal(ds_manifest_format(m, &out, &outlen), 0);
		/* PBS's own formatting, reproduced byte for byte. */
		assert_int_equal(outlen, len);
		assert_memory_equal(out, text, len);

		rel = strdup(found[i] + strlen(root) + 1);
		slash = strrchr(rel, '/');
		*slash = '\0';
		check_against_expect(m, expect_snapshot(expect, rel));
		if (ds_manifest_signature(m))
			nsigned++;
		if (ds_manifest_notes(m))
			nnotes++;

		/* ds_manifest_load reads the same thing from the snapshot dir. */
		*strrchr(found[i], '/') = '\0';
		dfd = open(found[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_true(dfd >= 0);
		assert_int_equal(ds_manifest_load(dfd, &m2), 0);
		close(dfd);
		free(out);
		assert_int_equal(ds_manifest_format(m2, &out, &outlen), 0);
		assert_int_equal(outlen, len);
		assert_memory_equal(out, text, len);

		free(out);
		free(rel);
		ds_manifest_free(m2);
		ds_manifest_free(m);
		free(text);
		free(raw);
		free(found[i]);
	}
	assert_int_equal(nsigned, 4);
	assert_int_equal(nnotes, 1);
	json_decref(expect);
}

/* ---- signed fixtures ---- */

static struct ds_manifest *load_fixture(const char *rel)
{
	char path[4096];
	struct ds_manifest *m;
	int dfd;

	snprintf(path, sizeof(path), "%s/pbs-store-a/%s", tu_fixtures(), rel);
	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(ds_manifest_load(dfd, &m), 0);
	close(dfd);
	return m;
}

static void test_fixture_signatures(void **state)
{
	static const char *const signed_snaps[] = {
		"ns/prod/vm/201/2024-03-02T11:02:17Z",
		"ns/prod/vm/201/2024-03-03T11:02:17Z",
		"ns/prod/ns/db/host/delta-63/2024-03-02T13:02:17Z",
		"ns/prod/ns/db/host/delta-63/2024-03-03T13:02:17Z",
	};
	struct ds_crypt *c = fixture_key(), *other = spec_key();

	(void)state;
	for (size_t i = 0; i < DS_ARRAY_SIZE(signed_snaps); i++) {
		struct ds_manifest *m = load_fixture(signed_snaps[i]);
		struct ds_manifest_file f;
		char *orig;

		assert_non_null(ds_manifest_signature(m));
		orig = strdup(ds_manifest_signature(m));
		assert_int_equal(ds_manifest_verify(m, c), 0);
		assert_int_equal(ds_manifest_verify(m, other), -EKEYREJECTED);

		/* Re-signing reproduces the signature PBS wrote. */
		assert_int_equal(ds_manifest_sign(m, c), 0);
		assert_string_equal(ds_manifest_signature(m), orig);

		/* Notes are unprotected: the signature stays valid. */
		assert_int_equal(ds_manifest_set_notes(m, "changed\nnotes"), 0);
		assert_int_equal(ds_manifest_verify(m, c), 0);

		/* A file's size is protected. */
		assert_int_equal(ds_manifest_file(m, 0, &f), 0);
		assert_int_equal(ds_manifest_set_file(m, f.filename, f.size + 1, &f.csum,
						      f.crypt_mode), 0);
		assert_int_equal(ds_manifest_verify(m, c), -EBADMSG);
		assert_int_equal(ds_manifest_set_file(m, f.filename, f.size, &f.csum,
						      f.crypt_mode), 0);
		assert_int_equal(ds_manifest_verify(m, c), 0);
		free(orig);
		ds_manifest_free(m);
	}

	{
		/* Unsigned fixture: verify refuses, signing makes it verify. */
		struct ds_manifest *m = load_fixture("vm/101/2024-03-02T08:02:17Z");

		assert_null(ds_manifest_fingerprint(m));
		assert_int_equal(ds_manifest_verify(m, c), -EBADMSG);
		assert_int_equal(ds_manifest_sign(m, c), 0);
		assert_string_equal(ds_manifest_fingerprint(m),
				    "57:67:1a:72:75:99:2d:9e:21:7a:2c:2b:e9:64:bc:d8:"
				    "51:25:90:25:62:71:f3:01:1a:7a:9c:05:98:ff:6c:e0");
		assert_int_equal(ds_manifest_verify(m, c), 0);
		ds_manifest_free(m);
	}
	{
		/* Without a stored fingerprint a wrong key is only a bad signature. */
		struct ds_manifest *m = parse_ok(
			"{\"backup-type\":\"vm\",\"backup-id\":\"1\",\"backup-time\":0,"
			"\"files\":[],\"signature\":\"" H01 "\"}");

		assert_int_equal(ds_manifest_verify(m, c), -EBADMSG);
		ds_manifest_free(m);
	}
	ds_crypt_free(other);
	ds_crypt_free(c);
}

/* ---- layout and escaping, expected texts written from serde's rules ---- */

static void test_set_file_and_notes(void **state)
{
	static const char two_files[] =
		"{\n"
		"  \"backup-id\": \"100\",\n"
		"  \"backup-time\": 1700000000,\n"
		"  \"backup-type\": \"vm\",\n"
		"  \"files\": [\n"
		"    {\n"
		"      \"crypt-mode\": \"sign-only\",\n"
		"      \"csum\": \"" HCC "\",\n"
		"      \"filename\": \"a.img.fidx\",\n"
		"      \"size\": 3\n"
		"    },\n"
		"    {\n"
		"      \"crypt-mode\": \"none\",\n"
		"      \"csum\": \"" HBB "\",\n"
		"      \"filename\": \"b.conf.blob\",\n"
		"      \"size\": 2\n"
		"    }\n"
		"  ],\n"
		"  \"signature\": null,\n"
		"  \"unprotected\": {}\n"
		"}";
	static const char escaped_notes[] =
		"{\n"
		"  \"backup-id\": \"x\",\n"
		"  \"backup-time\": -5,\n"
		"  \"backup-type\": \"ct\",\n"
		"  \"files\": [],\n"
		"  \"signature\": null,\n"
		"  \"unprotected\": {\n"
		"    \"notes\": \"q\\\"b\\\\s\\u0001\\u001f\\b\\f\\n\\r\\t\x7f/<>\\u0000\xc3\xa9\xf0\x9f\x98\x80\"\n"
		"  }\n"
		"}";
	struct ds_digest a = fill(0xaa), b = fill(0xbb), cc = fill(0xcc);
	struct ds_manifest *m;
	struct ds_manifest_file f;
	char *text;

	(void)state;
	assert_int_equal(ds_manifest_new("vm", "100", 1700000000, &m), 0);
	assert_int_equal(ds_manifest_set_file(m, "a.img.fidx", 1, &a, DS_CRYPT_ENCRYPT), 0);
	assert_int_equal(ds_manifest_set_file(m, "b.conf.blob", 2, &b, DS_CRYPT_NONE), 0);
	assert_int_equal(ds_manifest_set_file(m, "a.img.fidx", 3, &cc, DS_CRYPT_SIGN_ONLY), 0);
	assert_int_equal(ds_manifest_file_count(m), 2);
	assert_int_equal(ds_manifest_find(m, "a.img.fidx", &f), 0);
	assert_int_equal(f.size, 3);
	assert_true(ds_digest_eq(&f.csum, &cc));
	assert_int_equal(f.crypt_mode, DS_CRYPT_SIGN_ONLY);
	assert_format(m, two_files);
	text = ds_manifest_unprotected_json(m);
	assert_string_equal(text, "{}");
	free(text);

	assert_int_equal(ds_manifest_set_file(m, "", 1, &a, DS_CRYPT_NONE), -EINVAL);
	assert_int_equal(ds_manifest_set_file(m, "c.blob", 1, &a, 7), -EINVAL);
	assert_int_equal(ds_manifest_set_file(m, "c.blob", UINT64_MAX, &a, DS_CRYPT_NONE), -EINVAL);
	assert_int_equal(ds_manifest_set_file(m, "c\xff.blob", 1, &a, DS_CRYPT_NONE), -EINVAL);
	assert_int_equal(ds_manifest_file_count(m), 2);

	assert_null(ds_manifest_notes(m));
	assert_int_equal(ds_manifest_set_notes(m, "first\nsecond"), 0);
	assert_string_equal(ds_manifest_notes(m), "first\nsecond");
	text = ds_manifest_unprotected_json(m);
	assert_string_equal(text, "{\"notes\":\"first\\nsecond\"}");
	free(text);
	assert_int_equal(ds_manifest_set_notes(m, NULL), 0);
	assert_null(ds_manifest_notes(m));
	assert_format(m, two_files);
	assert_int_equal(ds_manifest_set_notes(m, "bad \xc0\x80 utf8"), -EINVAL);
	ds_manifest_free(m);

	/* A NUL can only come from parsed JSON. */
	m = parse_ok("{\"backup-type\":\"ct\",\"backup-id\":\"x\",\"backup-time\":-5,\"files\":[],"
		     "\"unprotected\":{\"notes\":\"q\\\"b\\\\s\\u0001\\u001F\\b\\f\\n\\r\\t\x7f"
		     "\\/<>\\u0000\\u00e9\\ud83d\\ude00\"}}");
	assert_format(m, escaped_notes);
	ds_manifest_free(m);

	/* The same escapes through the setter (without the NUL). */
	assert_int_equal(ds_manifest_new("ct", "x", -5, &m), 0);
	assert_int_equal(ds_manifest_set_notes(m, "\"\\\x01\x1f\b\f\n\r\t\x7f\xc3\xa9\xf0\x9f\x98\x80"), 0);
	text = ds_manifest_unprotected_json(m);
	assert_string_equal(text, "{\"notes\":\"\\\"\\\\\\u0001\\u001f\\b\\f\\n\\r\\t\x7f"
				  "\xc3\xa9\xf0\x9f\x98\x80\"}");
	free(text);
	ds_manifest_free(m);

	assert_int_equal(ds_manifest_new("qemu", "x", 0, &m), -EINVAL);
	assert_int_equal(ds_manifest_new("vm", "", 0, &m), -EINVAL);
	assert_string_equal(ds_crypt_mode_name(DS_CRYPT_SIGN_ONLY), "sign-only");
	assert_null(ds_crypt_mode_name(3));
}

/* Any key order in, sorted out; defaults; uppercase csum; unknown keys. */
static void test_parse_normalises(void **state)
{
	static const char in[] =
		"{\"unprotected\":{\"z\":[1,true,false,null,1.5,{},[]],\"a\":0.1,\"b\":1e20,"
		"\"c\":-0.0,\"d\":1e-7,\"e\":1.0,\"f\":{\"y\":1,\"x\":{}},\"\xc3\xa9\":0,"
		"\"Z\":0,\"g\":123456.5e3,\"r\":[0.00001,1e-6,1e15,1e16,-1.5e300,123.456]},"
		"\"files\":[{\"size\":0,\"filename\":\"f.didx\",\"csum\":\"" HAA "\"},"
		"{\"filename\":\"g.blob\",\"csum\":\"ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB\","
		"\"size\":9223372036854775807,\"crypt-mode\":\"encrypt\",\"extra\":1}],"
		"\"extra\":{\"dropped\":true},\"backup-time\":9,\"backup-id\":\"i\","
		"\"backup-type\":\"host\"}";
	static const char out[] =
		"{\n"
		"  \"backup-id\": \"i\",\n"
		"  \"backup-time\": 9,\n"
		"  \"backup-type\": \"host\",\n"
		"  \"files\": [\n"
		"    {\n"
		"      \"crypt-mode\": \"none\",\n"
		"      \"csum\": \"" HAA "\",\n"
		"      \"filename\": \"f.didx\",\n"
		"      \"size\": 0\n"
		"    },\n"
		"    {\n"
		"      \"crypt-mode\": \"encrypt\",\n"
		"      \"csum\": \"abababababababababababababababababababababababababababababababab\",\n"
		"      \"filename\": \"g.blob\",\n"
		"      \"size\": 9223372036854775807\n"
		"    }\n"
		"  ],\n"
		"  \"signature\": null,\n"
		"  \"unprotected\": {\n"
		"    \"Z\": 0,\n"
		"    \"a\": 0.1,\n"
		"    \"b\": 1e20,\n"
		"    \"c\": -0.0,\n"
		"    \"d\": 1e-7,\n"
		"    \"e\": 1.0,\n"
		"    \"f\": {\n"
		"      \"x\": {},\n"
		"      \"y\": 1\n"
		"    },\n"
		"    \"g\": 123456500.0,\n"
		"    \"r\": [\n"
		"      0.00001,\n"
		"      1e-6,\n"
		"      1000000000000000.0,\n"
		"      1e16,\n"
		"      -1.5e300,\n"
		"      123.456\n"
		"    ],\n"
		"    \"z\": [\n"
		"      1,\n"
		"      true,\n"
		"      false,\n"
		"      null,\n"
		"      1.5,\n"
		"      {},\n"
		"      []\n"
		"    ],\n"
		"    \"\xc3\xa9\": 0\n"
		"  }\n"
		"}";
	struct ds_manifest *m = parse_ok(in);
	struct ds_manifest_file f;
	char *text;

	(void)state;
	assert_format(m, out);
	assert_int_equal(ds_manifest_file(m, 1, &f), 0);
	assert_int_equal(f.size, INT64_MAX);
	assert_int_equal(f.crypt_mode, DS_CRYPT_ENCRYPT);
	text = ds_manifest_unprotected_json(m);
	assert_string_equal(text, "{\"Z\":0,\"a\":0.1,\"b\":1e20,\"c\":-0.0,\"d\":1e-7,\"e\":1.0,"
				  "\"f\":{\"x\":{},\"y\":1},\"g\":123456500.0,"
				  "\"r\":[0.00001,1e-6,1000000000000000.0,1e16,-1.5e300,123.456],"
				  "\"z\":[1,true,false,null,1.5,{},[]],\"\xc3\xa9\":0}");
	free(text);
	ds_manifest_free(m);

	/* "unprotected": null is read as {}. */
	m = parse_ok("{\"backup-type\":\"vm\",\"backup-id\":\"1\",\"backup-time\":0,"
		     "\"files\":[],\"unprotected\":null,\"signature\":null}");
	text = ds_manifest_unprotected_json(m);
	assert_string_equal(text, "{}");
	free(text);
	ds_manifest_free(m);
}

static void test_malformed(void **state)
{
#define HDR "\"backup-type\":\"vm\",\"backup-id\":\"1\",\"backup-time\":0"
#define FILE_OK "\"filename\":\"a.blob\",\"size\":1,\"csum\":\"" HAA "\""
	static const char *const bad[] = {
		"",
		"not json",
		"{\"backup-type\":\"vm\"",
		"[]",
		"\"string\"",
		"{}",
		"{" HDR "}",
		"{" HDR ",\"files\":[]} x",
		"{\"backup-id\":\"1\",\"backup-time\":0,\"files\":[]}",
		"{\"backup-type\":5,\"backup-id\":\"1\",\"backup-time\":0,\"files\":[]}",
		"{\"backup-type\":\"qemu\",\"backup-id\":\"1\",\"backup-time\":0,\"files\":[]}",
		"{\"backup-type\":\"vm\",\"backup-time\":0,\"files\":[]}",
		"{\"backup-type\":\"vm\",\"backup-id\":null,\"backup-time\":0,\"files\":[]}",
		"{\"backup-type\":\"vm\",\"backup-id\":\"1\",\"files\":[]}",
		"{\"backup-type\":\"vm\",\"backup-id\":\"1\",\"backup-time\":\"0\",\"files\":[]}",
		"{\"backup-type\":\"vm\",\"backup-id\":\"1\",\"backup-time\":1.5,\"files\":[]}",
		"{\"backup-type\":\"vm\",\"backup-id\":\"1\",\"backup-time\":18446744073709551615,\"files\":[]}",
		"{" HDR ",\"files\":{}}",
		"{" HDR ",\"files\":[1]}",
		"{" HDR ",\"files\":[{\"size\":1,\"csum\":\"" HAA "\"}]}",
		"{" HDR ",\"files\":[{\"filename\":5,\"size\":1,\"csum\":\"" HAA "\"}]}",
		"{" HDR ",\"files\":[{\"filename\":\"\",\"size\":1,\"csum\":\"" HAA "\"}]}",
		"{" HDR ",\"files\":[{\"filename\":\"a\\u0000b\",\"size\":1,\"csum\":\"" HAA "\"}]}",
		"{" HDR ",\"files\":[{\"filename\":\"a.blob\",\"csum\":\"" HAA "\"}]}",
		"{" HDR ",\"files\":[{\"filename\":\"a.blob\",\"size\":-1,\"csum\":\"" HAA "\"}]}",
		"{" HDR ",\"files\":[{\"filename\":\"a.blob\",\"size\":\"1\",\"csum\":\"" HAA "\"}]}",
		"{" HDR ",\"files\":[{\"filename\":\"a.blob\",\"size\":1.0,\"csum\":\"" HAA "\"}]}",
		"{" HDR ",\"files\":[{\"filename\":\"a.blob\",\"size\":1}]}",
		"{" HDR ",\"files\":[{\"filename\":\"a.blob\",\"size\":1,\"csum\":\"aa\"}]}",
		"{" HDR ",\"files\":[{\"filename\":\"a.blob\",\"size\":1,\"csum\":\"" HAA "a\"}]}",
		"{" HDR ",\"files\":[{\"filename\":\"a.blob\",\"size\":1,\"csum\":"
		"\"gaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
		"{" HDR ",\"files\":[{\"filename\":\"a.blob\",\"size\":1,\"csum\":null}]}",
		"{" HDR ",\"files\":[{" FILE_OK ",\"crypt-mode\":\"bogus\"}]}",
		"{" HDR ",\"files\":[{" FILE_OK ",\"crypt-mode\":null}]}",
		"{" HDR ",\"files\":[{" FILE_OK ",\"crypt-mode\":1}]}",
		"{" HDR ",\"files\":[],\"unprotected\":[]}",
		"{" HDR ",\"files\":[],\"unprotected\":\"x\"}",
		"{" HDR ",\"files\":[],\"signature\":5}",
		"{" HDR ",\"files\":[],\"signature\":{}}",
		"{" HDR ",\"files\":[],\"unprotected\":{\"notes\":\"\xff\"}}",
		"{" HDR ",\"files\":[],\"unprotected\":{\"n\":18446744073709551616}}",
	};
	struct ds_manifest *m;

	(void)state;
	ds_log_set_sink(count_sink, NULL);
	for (size_t i = 0; i < DS_ARRAY_SIZE(bad); i++) {
		m = NULL;
		err_lines = 0;
		if (ds_manifest_parse(bad[i], strlen(bad[i]), &m) != -EBADMSG)
			fail_msg("input %zu was not refused: %s", i, bad[i]);
		assert_null(m);
		if (err_lines != 1)
			fail_msg("input %zu logged %d error lines", i, err_lines);
	}
	ds_log_set_sink(NULL, NULL);

	/* The good sibling of the inputs above parses. */
	m = parse_ok("{" HDR ",\"files\":[{" FILE_OK ",\"crypt-mode\":\"sign-only\"}]}");
	ds_manifest_free(m);
#undef HDR
#undef FILE_OK
}

static void test_store_load(void **state)
{
	struct ds_crypt *c = fixture_key(); /* first: it may skip the test */
	char *dir = tu_tmpdir();
	struct ds_manifest *m, *m2;
	struct ds_digest d = fill(0x5a);
	struct stat st;
	struct dirent *de;
	char *t1, *t2;
	uint8_t *raw, *blob;
	size_t l1, l2, rawlen, bloblen;
	DIR *dh;
	int dfd, n = 0;

	(void)state;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(ds_manifest_load(dfd, &m), -ENOENT);

	assert_int_equal(ds_manifest_new("ct", "301", 1709373737, &m), 0);
	assert_int_equal(ds_manifest_set_file(m, "root.pxar.didx", 12345, &d, DS_CRYPT_NONE), 0);
	assert_int_equal(ds_manifest_set_notes(m, "n\xc3\xb6tes"), 0);
	assert_int_equal(ds_manifest_sign(m, c), 0);
	umask(077);
	assert_int_equal(ds_manifest_store(dfd, m), 0);
	umask(022);
	assert_int_equal(fstatat(dfd, DS_MANIFEST_NAME, &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0644);

	assert_int_equal(ds_read_file_at(dfd, DS_MANIFEST_NAME, 1 << 20, &raw, &rawlen), 0);
	assert_true(ds_blob_type(raw, rawlen) == DS_BLOB_PLAIN ||
		    ds_blob_type(raw, rawlen) == DS_BLOB_ZSTD);
	free(raw);

	assert_int_equal(ds_manifest_load(dfd, &m2), 0);
	assert_int_equal(ds_manifest_format(m, &t1, &l1), 0);
	assert_int_equal(ds_manifest_format(m2, &t2, &l2), 0);
	assert_int_equal(l1, l2);
	assert_memory_equal(t1, t2, l1);
	assert_int_equal(ds_manifest_verify(m2, c), 0);
	free(t2);

	/* Rewrite in place: still exactly one file, no temp files left. */
	assert_int_equal(ds_manifest_set_notes(m2, NULL), 0);
	assert_int_equal(ds_manifest_store(dfd, m2), 0);
	dh = opendir(dir);
	assert_non_null(dh);
	while ((de = readdir(dh)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			assert_string_equal(de->d_name, DS_MANIFEST_NAME);
			n++;
		}
	closedir(dh);
	assert_int_equal(n, 1);
	ds_manifest_free(m2);
	assert_int_equal(ds_manifest_load(dfd, &m2), 0);
	assert_null(ds_manifest_notes(m2));
	ds_manifest_free(m2);

	/* The stored blob is never encrypted; an encrypted one is refused. */
	assert_int_equal(ds_blob_encode((const uint8_t *)t1, l1, c, true, &blob, &bloblen), 0);
	assert_int_equal(ds_replace_file_at(dfd, DS_MANIFEST_NAME, blob, bloblen, 0644, false), 0);
	free(blob);
	ds_log_set_sink(count_sink, NULL);
	assert_int_equal(ds_manifest_load(dfd, &m2), -EBADMSG);
	/* A damaged blob too. */
	assert_int_equal(ds_blob_encode((const uint8_t *)t1, l1, NULL, false, &blob, &bloblen), 0);
	blob[bloblen - 1] ^= 1;
	assert_int_equal(ds_replace_file_at(dfd, DS_MANIFEST_NAME, blob, bloblen, 0644, false), 0);
	free(blob);
	assert_int_equal(ds_manifest_load(dfd, &m2), -EBADMSG);
	ds_log_set_sink(NULL, NULL);

	free(t1);
	ds_manifest_free(m);
	ds_crypt_free(c);
	close(dfd);
	tu_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signature_vector),
		cmocka_unit_test(test_verify_quiet_and_covers),
		cmocka_unit_test(test_fingerprint_forms),
		cmocka_unit_test(test_fixture_roundtrip),
		cmocka_unit_test(test_fixture_signatures),
		cmocka_unit_test(test_signature_over_text),
		cmocka_unit_test(test_set_file_and_notes),
		cmocka_unit_test(test_parse_normalises),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_store_load),
	};
	return tu_run_group("manifest", tests, NULL, NULL);
}
