/* Suite for store/chunkstore: creation as PBS does it, verified loads of the
 * fixture chunks, PBS's insert rules (spec §1.2), the .lock protocol
 * (spec §1.7.1), counting and temp-file cleanup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/blob.h"
#include "store/chunkstore.h"
#include "store/crypt.h"
#include "store/util.h"
#include "testutil.h"

/* Fixture chunks (pbs-store-a.expect.json): the ct/301 catalog (plain, one
 * chunk, digest = SHA-256 of the stream) and the delta-63 catalog
 * (encrypted, one chunk of 146 bytes). */
#define PLAIN_HEX "7caf236974f17406f7747d71566dd68784fbcac15f894629d099c50471ba43e0"
#define PLAIN_LEN 3413
#define PLAIN2_HEX "76cf665bb7500689a5f9d6c3953459071ae2bb198d5d3e4d1bc3b4eb785510e0"
#define ENC_HEX "fd76c670aeacf5e13f46e1ac7bdae8cb0407e5296c067643ff06fed4f1bcc7f8"
#define ENC_LEN 146
#define ENC_SHA "f99221e01c50625012a1f5ddd67a1f6a9c697f094b5f8305fc3277c29d8a8aac"
#define CORRUPT_HEX "d3d62b1f9bbfbacbf229b89beddd9cdb10d59536f4ead7d4bd13a0cd71c07269"

static struct ds_digest hexd(const char *hex)
{
	struct ds_digest d;

	assert_int_equal(ds_digest_from_hex(hex, &d), 0);
	return d;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(ds_write_all(fd, buf, len), 0);
	close(fd);
}

static struct ds_crypt *fixture_key(void)
{
	char *p = tu_pathf("%s/pbs-store-a.enc-key.json", tu_fixtures());
	struct ds_crypt *c;
	uint8_t *json;
	size_t len;

	/* The file is 0444, which ds_keyfile_load refuses; parse the text. */
	json = tu_read(p, &len);
	assert_int_equal(ds_keyfile_parse((const char *)json, len, NULL, &c), 0);
	free(json);
	free(p);
	return c;
}

/* A datastore without prefix directories, like the fixture. */
static char *mini_store(void)
{
	char *base = tu_tmpdir();
	char *p = tu_pathf("%s/.chunks", base);

	assert_int_equal(mkdir(p, 0750), 0);
	free(p);
	p = tu_pathf("%s/.lock", base);
	write_file(p, "", 0);
	free(p);
	return base;
}

static void check_mode(const char *path, mode_t type, mode_t mode)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & S_IFMT, type);
	assert_int_equal(st.st_mode & 07777, mode);
}

/* Creating 65536 directories and removing them again is ten times faster
 * on tmpfs than on an overlay /tmp. */
static char *fast_tmpdir(void)
{
	char tmpl[] = "/dev/shm/dsfs-test-XXXXXX";

	if (mkdtemp(tmpl))
		return strdup(tmpl);
	return tu_tmpdir();
}

struct progress {
	int calls, first, last;
	bool monotonic;
};

static void on_progress(int pct, void *ud)
{
	struct progress *p = ud;

	if (p->calls++ == 0)
		p->first = pct;
	else if (pct < p->last)
		p->monotonic = false;
	p->last = pct;
}

static void test_create_modes(void **state)
{
	struct progress pr = { .monotonic = true };
	char *tmp = fast_tmpdir(), *p;
	mode_t old;
	uint64_t files = 1, bytes = 1;
	struct ds_chunkstore *cs;

	(void)state;
	/* Dot-files and lost+found are tolerated in the new store's directory. */
	p = tu_pathf("%s/.hidden", tmp);
	write_file(p, "x", 1);
	free(p);
	p = tu_pathf("%s/lost+found", tmp);
	assert_int_equal(mkdir(p, 0700), 0);
	free(p);

	old = umask(077);
	assert_int_equal(ds_chunkstore_create(tmp, on_progress, &pr), 0);
	umask(old);
	assert_true(pr.calls >= 2);
	assert_int_equal(pr.first, 0);
	assert_int_equal(pr.last, 100);
	assert_true(pr.monotonic);

	check_mode(tmp, S_IFDIR, 0755); /* mkdtemp made it 0700 */
	p = tu_pathf("%s/.chunks", tmp);
	check_mode(p, S_IFDIR, 0750);
	free(p);
	p = tu_pathf("%s/.lock", tmp);
	check_mode(p, S_IFREG, 0644);
	free(p);
	for (unsigned i = 0; i < 65536; i++) {
		struct stat st;
		char sub[64];

		snprintf(sub, sizeof(sub), "%s/.chunks/%04x", tmp, i);
		assert_int_equal(stat(sub, &st), 0);
		if (!S_ISDIR(st.st_mode) || (st.st_mode & 07777) != 0750)
			fail_msg("%s: mode %o", sub, st.st_mode);
	}
	assert_int_equal(ds_chunkstore_open(tmp, &cs), 0);
	assert_int_equal(ds_chunkstore_count(cs, &files, &bytes), 0);
	assert_int_equal(files, 0);
	assert_int_equal(bytes, 0);
	ds_chunkstore_free(cs);
	/* An existing datastore is not made again (its .chunks is a dot-file,
	 * which the emptiness check tolerates), and nothing is left beside it. */
	assert_int_equal(ds_chunkstore_create(tmp, NULL, NULL), -EEXIST);
	p = tu_pathf("%s/.chunks.init", tmp);
	assert_int_equal(access(p, F_OK), -1);
	free(p);
	tu_rmtree(tmp);
	free(tmp);
}

static void test_create_refuses_nonempty(void **state)
{
	char *tmp = fast_tmpdir(), *p;
	struct stat st;

	(void)state;
	p = tu_pathf("%s/data", tmp);
	write_file(p, "x", 1);
	free(p);
	assert_int_equal(ds_chunkstore_create(tmp, NULL, NULL), -ENOTEMPTY);
	p = tu_pathf("%s/.chunks", tmp);
	assert_int_equal(stat(p, &st), -1);
	free(p);
	/* A base that does not exist yet is created. */
	p = tu_pathf("%s/new", tmp);
	assert_int_equal(ds_chunkstore_create(p, NULL, NULL), 0);
	check_mode(p, S_IFDIR, 0755);
	free(p);
	tu_rmtree(tmp);
	free(tmp);
}

static void test_open_errors(void **state)
{
	char *tmp = tu_tmpdir(), *p;
	struct ds_chunkstore *cs = NULL;

	(void)state;
	assert_int_equal(ds_chunkstore_open(tmp, &cs), -ENOENT);
	p = tu_pathf("%s/missing", tmp);
	assert_int_equal(ds_chunkstore_open(p, &cs), -ENOENT);
	assert_null(cs);
	free(p);
	ds_chunkstore_free(NULL);
	tu_rmtree(tmp);
	free(tmp);
}

static void test_relpath(void **state)
{
	struct ds_digest d = hexd("bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8");
	char rel[DS_CHUNK_RELPATH_LEN];

	(void)state;
	ds_chunk_relpath(&d, rel);
	assert_string_equal(rel,
		"bb9f/bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8");
}

static void test_load_fixture(void **state)
{
	char *base = tu_pathf("%s/pbs-store-a", tu_fixtures()), *p;
	struct ds_digest d = hexd(PLAIN_HEX), e = hexd(ENC_HEX), zero = { { 0 } };
	struct ds_crypt *c = fixture_key();
	uint8_t *buf = malloc(DS_MAX_CHUNK_SIZE), *raw;
	struct ds_chunkstore *cs;
	size_t len = 0, raw_len;
	char hex[65];
	struct stat st;

	(void)state;
	assert_non_null(buf);
	assert_int_equal(ds_chunkstore_open(base, &cs), 0);
	assert_int_equal(ds_chunkstore_load(cs, &d, NULL, PLAIN_LEN, buf, DS_MAX_CHUNK_SIZE, &len), 0);
	assert_int_equal(len, PLAIN_LEN);
	tu_sha256_hex(buf, len, hex);
	assert_string_equal(hex, PLAIN_HEX);
	/* A key does not matter for a plain chunk; expect_len 0 skips the check. */
	assert_int_equal(ds_chunkstore_load(cs, &d, c, 0, buf, DS_MAX_CHUNK_SIZE, &len), 0);
	assert_int_equal(len, PLAIN_LEN);
	assert_int_equal(ds_chunkstore_load(cs, &d, NULL, PLAIN_LEN + 1, buf, DS_MAX_CHUNK_SIZE,
					     &len), -EBADMSG);
	assert_int_equal(ds_chunkstore_load(cs, &d, NULL, PLAIN_LEN - 1, buf, DS_MAX_CHUNK_SIZE,
					     &len), -EBADMSG);
	/* A buffer too small for what the caller asked for: -EFBIG; one that
	 * holds the promised length but not the plaintext: corrupt. */
	assert_int_equal(ds_chunkstore_load(cs, &d, NULL, 0, buf, 100, &len), -EFBIG);
	assert_int_equal(ds_chunkstore_load(cs, &d, NULL, PLAIN_LEN, buf, 100, &len), -EFBIG);
	assert_int_equal(ds_chunkstore_load(cs, &d, NULL, 50, buf, 100, &len), -EBADMSG);

	assert_int_equal(ds_chunkstore_load(cs, &e, c, ENC_LEN, buf, DS_MAX_CHUNK_SIZE, &len), 0);
	assert_int_equal(len, ENC_LEN);
	tu_sha256_hex(buf, len, hex);
	assert_string_equal(hex, ENC_SHA);
	assert_int_equal(ds_chunkstore_load(cs, &e, NULL, ENC_LEN, buf, DS_MAX_CHUNK_SIZE, &len),
			 -ENOKEY);
	assert_int_equal(ds_chunkstore_load(cs, &e, c, ENC_LEN + 1, buf, DS_MAX_CHUNK_SIZE, &len),
			 -EBADMSG);
	assert_int_equal(ds_chunkstore_load(cs, &zero, NULL, 0, buf, DS_MAX_CHUNK_SIZE, &len),
			 -ENOENT);

	assert_int_equal(ds_chunkstore_read_raw(cs, &e, &raw, &raw_len), 0);
	p = tu_pathf("%s/.chunks/fd76/%s", base, ENC_HEX);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(raw_len, st.st_size);
	assert_int_equal(ds_blob_verify_crc(raw, raw_len), 0);
	assert_true(ds_blob_type_encrypted(ds_blob_type(raw, raw_len)));
	free(raw);
	free(p);
	assert_int_equal(ds_chunkstore_read_raw(cs, &zero, &raw, &raw_len), -ENOENT);
	assert_int_equal(ds_chunkstore_stat(cs, &d, &st), 0);
	assert_int_equal(ds_chunkstore_stat(cs, &zero, &st), -ENOENT);
	ds_chunkstore_free(cs);

	free(base);
	base = tu_pathf("%s/pbs-store-a-corrupt", tu_fixtures());
	d = hexd(CORRUPT_HEX);
	assert_int_equal(ds_chunkstore_open(base, &cs), 0);
	assert_int_equal(ds_chunkstore_load(cs, &d, NULL, 4 * DS_MIB, buf, DS_MAX_CHUNK_SIZE, &len),
			 -EBADMSG);
	ds_chunkstore_free(cs);
	ds_crypt_free(c);
	free(base);
	free(buf);
}

/* Chunk files that do not match their names, empty or oversized. */
static void test_load_bad_files(void **state)
{
	char *base = mini_store(), *src, *p;
	struct ds_digest other = hexd(PLAIN2_HEX), empty = hexd(CORRUPT_HEX), big;
	uint8_t *buf = malloc(DS_MAX_CHUNK_SIZE), *raw;
	struct ds_chunkstore *cs;
	size_t len, raw_len;
	int fd;

	(void)state;
	src = tu_pathf("%s/pbs-store-a/.chunks/7caf/%s", tu_fixtures(), PLAIN_HEX);
	raw = tu_read(src, &raw_len);
	p = tu_pathf("%s/.chunks/76cf", base);
	assert_int_equal(mkdir(p, 0750), 0);
	free(p);
	p = tu_pathf("%s/.chunks/76cf/%s", base, PLAIN2_HEX);
	write_file(p, raw, raw_len); /* valid blob, other digest's name */
	free(raw);
	free(p);
	p = tu_pathf("%s/.chunks/d3d6", base);
	assert_int_equal(mkdir(p, 0750), 0);
	free(p);
	p = tu_pathf("%s/.chunks/d3d6/%s", base, CORRUPT_HEX);
	write_file(p, "", 0);
	free(p);
	memset(&big, 0xaa, sizeof(big));
	p = tu_pathf("%s/.chunks/aaaa", base);
	assert_int_equal(mkdir(p, 0750), 0);
	free(p);
	p = tu_pathf("%s/.chunks/aaaa/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", base);
	fd = open(p, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, DS_MAX_CHUNK_SIZE + DS_BLOB_ENC_HEADER_LEN + 1), 0);
	close(fd);
	free(p);

	assert_int_equal(ds_chunkstore_open(base, &cs), 0);
	assert_int_equal(ds_chunkstore_load(cs, &other, NULL, 0, buf, DS_MAX_CHUNK_SIZE, &len),
			 -EBADMSG);
	assert_int_equal(ds_chunkstore_load(cs, &empty, NULL, 0, buf, DS_MAX_CHUNK_SIZE, &len),
			 -EBADMSG);
	assert_int_equal(ds_chunkstore_read_raw(cs, &empty, &raw, &raw_len), -EBADMSG);
	assert_int_equal(ds_chunkstore_load(cs, &big, NULL, 0, buf, DS_MAX_CHUNK_SIZE, &len),
			 -EBADMSG);
	ds_chunkstore_free(cs);
	free(src);
	tu_rmtree(base);
	free(base);
	free(buf);
}

/* Names in dir, except "." and "..", as one ", "-joined string. */
static char *list_names(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char *out = strdup("");

	assert_non_null(d);
	while ((de = readdir(d))) {
		char *n;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n = tu_pathf("%s%s%s", out, *out ? ", " : "", de->d_name);
		free(out);
		out = n;
	}
	closedir(d);
	return out;
}

static void encode(const char *text, size_t reps, const struct ds_crypt *c, bool compress,
		   uint8_t **data, size_t *data_len, uint8_t **raw, size_t *raw_len,
		   struct ds_digest *d)
{
	size_t tl = strlen(text);

	*data_len = tl * reps;
	*data = malloc(*data_len);
	for (size_t i = 0; i < reps; i++)
		memcpy(*data + i * tl, text, tl);
	ds_crypt_digest(c, *data, *data_len, d);
	assert_int_equal(ds_blob_encode(*data, *data_len, c, compress, raw, raw_len), 0);
}

/* A plain chunk verified by _load_file is read in place by _read_plain
 * while its file is the one verified; any change to the file (its bytes,
 * even in place at the same size and mtime; its times; a replacement;
 * removal) gives -ESTALE. Compressed and encrypted chunks have no
 * identity. */
static void test_read_plain(void **state)
{
	char *base = mini_store(), *p, *tmp;
	uint8_t *data = malloc(256 * 1024), *raw, *zdata, *zraw, *buf = malloc(DS_MAX_CHUNK_SIZE);
	uint8_t b[4096];
	size_t raw_len, zraw_len, len, zlen;
	uint64_t x = 88172645463325252u;
	struct ds_chunk_file f, f2;
	struct ds_chunkstore *cs;
	struct ds_digest d, z;
	char rel[DS_CHUNK_RELPATH_LEN];
	struct timespec keep[2];
	struct stat st;
	int fd;

	(void)state;
	assert_non_null(data);
	assert_non_null(buf);
	for (size_t i = 0; i < 256 * 1024; i++) { /* xorshift: incompressible */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		data[i] = (uint8_t)(x >> 24);
	}
	ds_sha256(data, 256 * 1024, &d);
	assert_int_equal(ds_blob_encode(data, 256 * 1024, NULL, true, &raw, &raw_len), 0);
	assert_int_equal(ds_blob_type(raw, raw_len), DS_BLOB_PLAIN); /* random: not compressed */
	encode("compressible ", 1000, NULL, true, &zdata, &zlen, &zraw, &zraw_len, &z);
	assert_int_equal(ds_chunkstore_open(base, &cs), 0);
	assert_int_equal(ds_chunkstore_insert(cs, &d, raw, raw_len, false, NULL), 0);

	assert_int_equal(ds_chunkstore_load_file(cs, &d, NULL, 256 * 1024, buf, DS_MAX_CHUNK_SIZE,
						 &len, &f), 0);
	assert_int_equal(len, 256 * 1024);
	assert_int_equal(f.size, raw_len);
	ds_chunk_relpath(&d, rel);
	p = tu_pathf("%s/.chunks/%s", base, rel);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(f.ino, st.st_ino);
	assert_int_equal(ds_chunkstore_read_plain(cs, &d, &f, 0, b, 4096), 0);
	assert_memory_equal(b, data, 4096);
	assert_int_equal(ds_chunkstore_read_plain(cs, &d, &f, 256 * 1024 - 100, b, 100), 0);
	assert_memory_equal(b, data + 256 * 1024 - 100, 100);
	assert_int_equal(ds_chunkstore_read_plain(cs, &d, &f, 256 * 1024 - 100, b, 101), -EINVAL);
	assert_int_equal(ds_chunkstore_read_plain(cs, &d, &f, 256 * 1024 + 1, b, 0), -EINVAL);

	/* One byte changed in place, mtime put back: ctime still moves. */
	keep[0] = st.st_atim;
	keep[1] = st.st_mtim;
	fd = open(p, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "x", 1, 12 + 5000), 1);
	close(fd);
	assert_int_equal(utimensat(AT_FDCWD, p, keep, 0), 0);
	assert_int_equal(ds_chunkstore_read_plain(cs, &d, &f, 0, b, 4096), -ESTALE);
	/* Loading it again finds the damage (and gives no identity). */
	assert_int_equal(ds_chunkstore_load_file(cs, &d, NULL, 0, buf, DS_MAX_CHUNK_SIZE, &len,
						 &f2), -EBADMSG);
	assert_int_equal(f2.size, 0);

	/* Replaced by a good copy (a new inode): stale, then verified anew. */
	tmp = tu_pathf("%s.new", p);
	write_file(tmp, raw, raw_len);
	assert_int_equal(rename(tmp, p), 0);
	assert_int_equal(ds_chunkstore_read_plain(cs, &d, &f, 0, b, 4096), -ESTALE);
	assert_int_equal(ds_chunkstore_load_file(cs, &d, NULL, 0, buf, DS_MAX_CHUNK_SIZE, &len, &f),
			 0);
	assert_int_equal(ds_chunkstore_read_plain(cs, &d, &f, 4096, b, 4096), 0);
	assert_memory_equal(b, data + 4096, 4096);
	/* Touched (as garbage collection and writers of the same data do). */
	assert_int_equal(ds_chunkstore_insert(cs, &d, raw, raw_len, false, NULL), 0);
	assert_int_equal(ds_chunkstore_read_plain(cs, &d, &f, 0, b, 4096), -ESTALE);
	assert_int_equal(ds_chunkstore_load_file(cs, &d, NULL, 0, buf, DS_MAX_CHUNK_SIZE, &len, &f),
			 0);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(ds_chunkstore_read_plain(cs, &d, &f, 0, b, 4096), -ESTALE);

	/* A compressed chunk: an identity to load by, not to read in place. */
	assert_int_equal(ds_chunkstore_insert(cs, &z, zraw, zraw_len, false, NULL), 0);
	assert_int_equal(ds_chunkstore_load_file(cs, &z, NULL, 0, buf, DS_MAX_CHUNK_SIZE, &len, &f),
			 0);
	assert_int_equal(f.size, zraw_len);
	assert_false(f.plain);
	assert_int_equal(ds_chunkstore_read_plain(cs, &z, &f, 0, b, 10), -EINVAL);
	memset(buf, 0, zlen);
	assert_int_equal(ds_chunkstore_load_known(cs, &z, &f, zlen, buf, DS_MAX_CHUNK_SIZE, &len), 0);
	assert_int_equal(len, zlen);
	assert_memory_equal(buf, zdata, zlen);
	assert_int_equal(ds_chunkstore_load_known(cs, &z, &f, 0, buf, DS_MAX_CHUNK_SIZE, &len), 0);
	/* Not the length the caller expects, or not of the type verified. */
	assert_int_equal(ds_chunkstore_load_known(cs, &z, &f, zlen + 1, buf, DS_MAX_CHUNK_SIZE,
						  &len), -ESTALE);
	f.plain = true;
	assert_int_equal(ds_chunkstore_load_known(cs, &z, &f, zlen, buf, DS_MAX_CHUNK_SIZE, &len),
			 -ESTALE);
	f.plain = false;
	/* Touched, replaced, gone: stale. */
	assert_int_equal(ds_chunkstore_insert(cs, &z, zraw, zraw_len, false, NULL), 0);
	assert_int_equal(ds_chunkstore_load_known(cs, &z, &f, zlen, buf, DS_MAX_CHUNK_SIZE, &len),
			 -ESTALE);
	assert_int_equal(ds_chunkstore_load_file(cs, &z, NULL, 0, buf, DS_MAX_CHUNK_SIZE, &len, &f),
			 0);
	free(p);
	ds_chunk_relpath(&z, rel);
	p = tu_pathf("%s/.chunks/%s", base, rel);
	free(tmp);
	tmp = tu_pathf("%s.new", p);
	write_file(tmp, zraw, zraw_len);
	assert_int_equal(rename(tmp, p), 0);
	assert_int_equal(ds_chunkstore_load_known(cs, &z, &f, zlen, buf, DS_MAX_CHUNK_SIZE, &len),
			 -ESTALE);
	assert_int_equal(ds_chunkstore_load_file(cs, &z, NULL, 0, buf, DS_MAX_CHUNK_SIZE, &len, &f),
			 0);
	assert_int_equal(ds_chunkstore_load_known(cs, &z, &f, zlen, buf, DS_MAX_CHUNK_SIZE, &len), 0);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(ds_chunkstore_load_known(cs, &z, &f, zlen, buf, DS_MAX_CHUNK_SIZE, &len),
			 -ESTALE);

	/* What a load by identity trusts: the file, not its digest. Chunk z's
	 * blob under d's name fails a load, but given the file's identity as
	 * if it had been verified, it decodes (the mount only ever gives an
	 * identity its own verified load took). */
	free(p);
	ds_chunk_relpath(&d, rel);
	p = tu_pathf("%s/.chunks/%s", base, rel);
	write_file(p, zraw, zraw_len);
	assert_int_equal(ds_chunkstore_load_file(cs, &d, NULL, 0, buf, DS_MAX_CHUNK_SIZE, &len, &f2),
			 -EBADMSG);
	assert_int_equal(stat(p, &st), 0);
	f2 = (struct ds_chunk_file){ .dev = (uint64_t)st.st_dev, .ino = (uint64_t)st.st_ino,
				     .size = (uint64_t)st.st_size,
				     .mtime_ns = st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
				     .ctime_ns = st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec };
	assert_int_equal(ds_chunkstore_load_known(cs, &d, &f2, zlen, buf, DS_MAX_CHUNK_SIZE, &len),
			 0);
	assert_memory_equal(buf, zdata, zlen);
	/* Its CRC is still checked: a blob whose CRC field is wrong (its
	 * frame decodes) is stale, for the full load to name. */
	zraw[DS_BLOB_MAGIC_LEN] ^= 1;
	write_file(p, zraw, zraw_len);
	assert_int_equal(stat(p, &st), 0);
	f2.ino = (uint64_t)st.st_ino;
	f2.mtime_ns = st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	f2.ctime_ns = st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
	assert_int_equal(ds_chunkstore_load_known(cs, &d, &f2, zlen, buf, DS_MAX_CHUNK_SIZE, &len),
			 -ESTALE);

	ds_chunkstore_free(cs);
	free(tmp);
	free(p);
	free(raw);
	free(zraw);
	free(zdata);
	free(data);
	free(buf);
	free(base);
}

/* A zstd chunk verified by _load_file decodes a part at a time while its
 * file is the one verified; a change between two parts gives -ESTALE. */
static void test_decode_known_part(void **state)
{
	char *base = mini_store();
	uint8_t *data, *raw, *buf = malloc(DS_MAX_CHUNK_SIZE);
	struct ds_blob_part *part = NULL;
	struct ds_chunkstore *cs;
	struct ds_chunk_file f, pf;
	struct ds_digest d;
	size_t len, raw_len, got, done;

	(void)state;
	encode("a line of text that compresses, number ", 60000, NULL, true, &data, &len, &raw,
	       &raw_len, &d);
	assert_int_equal(ds_blob_type(raw, raw_len), DS_BLOB_ZSTD);
	assert_int_equal(ds_chunkstore_open(base, &cs), 0);
	assert_int_equal(ds_chunkstore_insert(cs, &d, raw, raw_len, false, NULL), 0);
	assert_int_equal(ds_chunkstore_load_file(cs, &d, NULL, len, buf, DS_MAX_CHUNK_SIZE, &got,
						 &f), 0);
	assert_false(f.plain);

	memset(buf, 0, DS_MAX_CHUNK_SIZE);
	assert_int_equal(ds_chunkstore_decode_known_part(cs, &d, &f, len, &part, buf,
							 DS_MAX_CHUNK_SIZE, 1000, &done), 0);
	assert_non_null(part);
	assert_true(done >= 1000 && done < len);
	assert_memory_equal(buf, data, done);
	assert_int_equal(ds_blob_part_len(part), len);
	assert_int_equal(ds_chunkstore_decode_known_part(cs, &d, &f, len, &part, buf,
							 DS_MAX_CHUNK_SIZE, len / 2, &done), 0);
	assert_true(done >= len / 2 && done < len);
	assert_int_equal(ds_chunkstore_decode_known_part(cs, &d, &f, len, &part, buf,
							 DS_MAX_CHUNK_SIZE, len, &done), 0);
	assert_int_equal(done, len);
	assert_memory_equal(buf, data, len);
	ds_blob_part_free(part);
	part = NULL;

	/* Another length than the index says, or a plain identity: no part. */
	assert_int_equal(ds_chunkstore_decode_known_part(cs, &d, &f, len + 1, &part, buf,
							 DS_MAX_CHUNK_SIZE, 1000, &done), -ESTALE);
	assert_null(part);
	pf = f;
	pf.plain = true;
	assert_int_equal(ds_chunkstore_decode_known_part(cs, &d, &pf, len, &part, buf,
							 DS_MAX_CHUNK_SIZE, 1000, &done), -EINVAL);
	assert_null(part);

	/* Touched (as a backup's insert does) between two parts: stale. */
	assert_int_equal(ds_chunkstore_decode_known_part(cs, &d, &f, len, &part, buf,
							 DS_MAX_CHUNK_SIZE, 1000, &done), 0);
	assert_int_equal(ds_chunkstore_insert(cs, &d, raw, raw_len, false, NULL), 0);
	assert_int_equal(ds_chunkstore_decode_known_part(cs, &d, &f, len, &part, buf,
							 DS_MAX_CHUNK_SIZE, len, &done), -ESTALE);
	ds_blob_part_free(part);

	ds_chunkstore_free(cs);
	free(raw);
	free(data);
	free(buf);
	tu_rmtree(base);
	free(base);
}

static void test_insert_new_and_touch(void **state)
{
	char *base = mini_store(), *p, *dir, *names;
	uint8_t *data, *raw, *got, out[4096];
	size_t data_len, raw_len, got_len, len;
	struct ds_chunkstore *cs;
	struct ds_digest d;
	char hex[65], rel[DS_CHUNK_RELPATH_LEN];
	bool existed = true;
	struct stat st;
	mode_t old;
	const struct timespec past[2] = { { .tv_sec = 1000000000 }, { .tv_sec = 1000000000 } };

	(void)state;
	encode("chunk data ", 300, NULL, true, &data, &data_len, &raw, &raw_len, &d);
	ds_digest_to_hex(&d, hex);
	ds_chunk_relpath(&d, rel);
	assert_int_equal(ds_chunkstore_open(base, &cs), 0);
	old = umask(077);
	assert_int_equal(ds_chunkstore_insert(cs, &d, raw, raw_len, true, &existed), 0);
	umask(old);
	assert_false(existed);
	/* The missing prefix directory was made; the file is exactly raw. */
	p = tu_pathf("%s/.chunks/%s", base, rel);
	check_mode(p, S_IFREG, 0644);
	got = tu_read(p, &got_len);
	assert_int_equal(got_len, raw_len);
	assert_memory_equal(got, raw, raw_len);
	free(got);
	dir = tu_pathf("%s/.chunks/%.4s", base, hex);
	names = list_names(dir);
	assert_string_equal(names, hex); /* no temp file left */
	free(names);
	assert_int_equal(ds_chunkstore_load(cs, &d, NULL, data_len, out, sizeof(out), &len), 0);
	assert_int_equal(len, data_len);
	assert_memory_equal(out, data, len);

	/* Inserting it again only moves the atime forward (for GC). */
	assert_int_equal(utimensat(AT_FDCWD, p, past, 0), 0);
	assert_int_equal(ds_chunkstore_insert(cs, &d, raw, raw_len, false, &existed), 0);
	assert_true(existed);
	assert_int_equal(stat(p, &st), 0);
	assert_true(st.st_atim.tv_sec > time(NULL) - 60);
	assert_int_equal(st.st_mtim.tv_sec, 1000000000);
	assert_int_equal(ds_chunkstore_insert(cs, &d, raw, raw_len, false, NULL), 0);
	names = list_names(dir);
	assert_string_equal(names, hex);
	free(names);

	/* The writers' fast path: a known chunk of the same kind is touched
	 * without being written; another kind, an empty file or none is left
	 * to the insert. */
	assert_int_equal(utimensat(AT_FDCWD, p, past, 0), 0);
	assert_int_equal(ds_chunkstore_touch_existing(cs, &d, false), 1);
	assert_int_equal(stat(p, &st), 0);
	assert_true(st.st_atim.tv_sec > time(NULL) - 60);
	assert_int_equal(st.st_mtim.tv_sec, 1000000000);
	assert_int_equal(ds_chunkstore_touch_existing(cs, &d, true), 0);
	assert_int_equal(truncate(p, 0), 0);
	assert_int_equal(ds_chunkstore_touch_existing(cs, &d, false), 0);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(ds_chunkstore_touch_existing(cs, &d, false), 0);

	ds_chunkstore_free(cs);
	free(dir);
	free(p);
	free(raw);
	free(data);
	tu_rmtree(base);
	free(base);
}

/* _check_disk, what a failed backup runs over the chunks it wrote: intact
 * ones stay (plain, zstd, encrypted with or without the key); a file of
 * the right size with other bytes (what a lost writeback leaves), an empty
 * one, one that holds another chunk, or an encrypted one that does not
 * decrypt with the backup's key is removed; a missing one is -ENOENT. */
static void test_check_disk(void **state)
{
	char *base = mini_store(), *p;
	uint8_t key[DS_CRYPT_KEY_LEN], *data, *plain, *zst, *enc, *zeros;
	size_t data_len, plain_len, zst_len, enc_len;
	struct ds_digest dp, dz, de, other;
	struct ds_crypt *c, *c2;
	struct ds_chunkstore *cs;
	char rel[DS_CHUNK_RELPATH_LEN];
	struct stat st;

	(void)state;
	assert_int_equal(ds_crypt_random_key(key), 0);
	assert_int_equal(ds_crypt_new(key, &c), 0);
	assert_int_equal(ds_crypt_random_key(key), 0);
	assert_int_equal(ds_crypt_new(key, &c2), 0);
	assert_int_equal(ds_chunkstore_open(base, &cs), 0);
	encode("plain chunk ", 1000, NULL, false, &data, &data_len, &plain, &plain_len, &dp);
	free(data);
	encode("zstd chunk ", 1000, NULL, true, &data, &data_len, &zst, &zst_len, &dz);
	free(data);
	encode("encrypted chunk ", 1000, c, true, &data, &data_len, &enc, &enc_len, &de);
	free(data);
	assert_int_equal(ds_chunkstore_insert(cs, &dp, plain, plain_len, false, NULL), 0);
	assert_int_equal(ds_chunkstore_insert(cs, &dz, zst, zst_len, false, NULL), 0);
	assert_int_equal(ds_chunkstore_insert(cs, &de, enc, enc_len, false, NULL), 0);

	/* Intact: kept. */
	assert_int_equal(ds_chunkstore_check_disk(cs, &dp, NULL), 0);
	assert_int_equal(ds_chunkstore_check_disk(cs, &dz, c), 0);
	assert_int_equal(ds_chunkstore_check_disk(cs, &de, c), 0);
	assert_int_equal(ds_chunkstore_check_disk(cs, &de, NULL), 0); /* its CRC */
	assert_int_equal(ds_chunkstore_stat(cs, &dp, &st), 0);
	assert_int_equal(ds_chunkstore_stat(cs, &dz, &st), 0);
	assert_int_equal(ds_chunkstore_stat(cs, &de, &st), 0);

	/* Not what the backup's key made: removed. */
	assert_int_equal(ds_chunkstore_check_disk(cs, &de, c2), 1);
	assert_int_equal(ds_chunkstore_stat(cs, &de, &st), -ENOENT);
	assert_int_equal(ds_chunkstore_check_disk(cs, &de, c), -ENOENT);

	/* Its size right, its bytes lost: removed, and the next insert
	 * writes it again instead of touching it. */
	zeros = calloc(1, zst_len);
	ds_chunk_relpath(&dz, rel);
	p = tu_pathf("%s/.chunks/%s", base, rel);
	write_file(p, zeros, zst_len);
	assert_int_equal(ds_chunkstore_check_disk(cs, &dz, NULL), 1);
	assert_int_equal(ds_chunkstore_touch_existing(cs, &dz, false), 0);
	assert_int_equal(ds_chunkstore_insert(cs, &dz, zst, zst_len, false, NULL), 0);
	assert_int_equal(ds_chunkstore_check_disk(cs, &dz, NULL), 0);
	/* One byte wrong in place. */
	zst[zst_len / 2] ^= 1;
	write_file(p, zst, zst_len);
	assert_int_equal(ds_chunkstore_check_disk(cs, &dz, NULL), 1);
	/* Empty. */
	write_file(p, "", 0);
	assert_int_equal(ds_chunkstore_check_disk(cs, &dz, NULL), 1);
	free(p);

	/* A whole chunk, but another one than its name says. */
	ds_sha256("other", 5, &other);
	ds_chunk_relpath(&other, rel);
	p = tu_pathf("%s/.chunks/%.4s", base, rel);
	mkdir(p, 0750);
	free(p);
	p = tu_pathf("%s/.chunks/%s", base, rel);
	write_file(p, plain, plain_len);
	assert_int_equal(ds_chunkstore_check_disk(cs, &other, NULL), 1);
	assert_int_equal(access(p, F_OK), -1);
	free(p);

	ds_chunkstore_free(cs);
	ds_crypt_free(c);
	ds_crypt_free(c2);
	free(zeros);
	free(plain);
	free(zst);
	free(enc);
	tu_rmtree(base);
	free(base);
}

/* Puts content as the existing file of d, inserts raw, and checks whether
 * the result is ret and which content the file holds afterwards. */
static void insert_over(struct ds_chunkstore *cs, const char *base, const struct ds_digest *d,
			const uint8_t *existing, size_t existing_len, const uint8_t *raw,
			size_t raw_len, int ret, bool want_existed, bool want_new)
{
	char rel[DS_CHUNK_RELPATH_LEN], *p, *dir;
	bool existed = !want_existed;
	uint8_t *got;
	size_t got_len;

	ds_chunk_relpath(d, rel);
	dir = tu_pathf("%s/.chunks/%.4s", base, rel);
	mkdir(dir, 0750);
	p = tu_pathf("%s/.chunks/%s", base, rel);
	write_file(p, existing, existing_len);
	assert_int_equal(ds_chunkstore_insert(cs, d, raw, raw_len, false, &existed), ret);
	if (ret == 0)
		assert_int_equal(existed, want_existed);
	got = tu_read(p, &got_len);
	if (want_new) {
		assert_int_equal(got_len, raw_len);
		assert_memory_equal(got, raw, raw_len);
	} else {
		assert_int_equal(got_len, existing_len);
		assert_memory_equal(got, existing, existing_len);
	}
	free(got);
	free(p);
	free(dir);
}

static void test_insert_size_rules(void **state)
{
	char *base = mini_store();
	struct ds_crypt *c = fixture_key();
	uint8_t *data, *plain, *zst, *enc, *encz, *junk;
	size_t data_len, plain_len, zst_len, enc_len, encz_len;
	struct ds_digest d, dk;
	struct ds_chunkstore *cs;

	(void)state;
	encode("compressible ", 500, NULL, false, &data, &data_len, &plain, &plain_len, &d);
	free(data);
	encode("compressible ", 500, NULL, true, &data, &data_len, &zst, &zst_len, &d);
	free(data);
	encode("compressible ", 500, c, false, &data, &data_len, &enc, &enc_len, &dk);
	free(data);
	encode("compressible ", 500, c, true, &data, &data_len, &encz, &encz_len, &dk);
	assert_true(zst_len < plain_len);
	assert_true(encz_len < enc_len);
	assert_int_equal(ds_blob_type(encz, encz_len), DS_BLOB_ENCRYPTED_ZSTD);
	assert_int_equal(ds_blob_type(enc, enc_len), DS_BLOB_ENCRYPTED);
	assert_int_equal(ds_chunkstore_open(base, &cs), 0);

	/* A zero-size file is replaced. */
	insert_over(cs, base, &d, (const uint8_t *)"", 0, zst, zst_len, 0, false, true);
	/* Unencrypted new: a smaller existing file is kept, a larger replaced. */
	insert_over(cs, base, &d, zst, zst_len, plain, plain_len, 0, true, false);
	insert_over(cs, base, &d, plain, plain_len, zst, zst_len, 0, false, true);
	/* Encrypted new vs an unencrypted existing file: not the same chunk. */
	insert_over(cs, base, &dk, zst, zst_len, enc, enc_len, -EEXIST, false, false);
	insert_over(cs, base, &dk, plain, plain_len, encz, encz_len, -EEXIST, false, false);
	/* Both encrypted: only two uncompressed ones of different size clash;
	 * otherwise zstd versions may differ and the existing file is kept. */
	junk = malloc(enc_len + 5);
	memcpy(junk, enc, enc_len);
	memset(junk + enc_len, 0, 5);
	insert_over(cs, base, &dk, junk, enc_len + 5, enc, enc_len, -EEXIST, false, false);
	insert_over(cs, base, &dk, encz, encz_len, enc, enc_len, 0, true, false);
	insert_over(cs, base, &dk, enc, enc_len, encz, encz_len, 0, true, false);
	/* Same size is always "existed", whatever the content. */
	memset(junk, 0x55, enc_len);
	insert_over(cs, base, &dk, junk, enc_len, enc, enc_len, 0, true, false);

	ds_chunkstore_free(cs);
	ds_crypt_free(c);
	free(junk);
	free(data);
	free(plain);
	free(zst);
	free(enc);
	free(encz);
	tu_rmtree(base);
	free(base);
}

/* Reads one byte from a child's pipe, failing instead of hanging when the
 * child died before writing it. */
static void wait_byte(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char b;

	assert_int_equal(poll(&p, 1, 30000), 1);
	assert_int_equal(read(fd, &b, 1), 1);
}

/* In a child: tries F_SETLK F_WRLCK on path; exit 0 = granted, 1 = refused,
 * 2 = error. With hold, keeps the lock until a byte arrives on hold. */
static pid_t child_wrlock(const char *path, int ready_w, int hold_r)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		int fd = open(path, O_RDWR);
		char b;

		if (fd < 0)
			_exit(2);
		if (fcntl(fd, F_SETLK, &fl) < 0)
			_exit(errno == EAGAIN || errno == EACCES ? 1 : 2);
		if (ready_w >= 0) {
			if (write(ready_w, "r", 1) != 1)
				_exit(2);
			if (read(hold_r, &b, 1) < 0)
				_exit(2);
		}
		_exit(0);
	}
	return pid;
}

static int child_status(pid_t pid)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* In a child: F_GETLK for a write lock; exits 0 when the lock that blocks
 * it is a read lock of parent. */
static int child_sees_rdlock(const char *path, pid_t parent)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
		int fd = open(path, O_RDONLY);

		if (fd < 0 || fcntl(fd, F_GETLK, &fl) < 0)
			_exit(2);
		_exit(fl.l_type == F_RDLCK && fl.l_pid == parent ? 0 : 1);
	}
	return child_status(pid);
}

static void test_lock_shared(void **state)
{
	char *base = mini_store(), *lock = tu_pathf("%s/.lock", base);
	struct ds_chunkstore *cs;
	int ready[2], hold[2];
	pid_t pid;

	(void)state;
	assert_int_equal(ds_chunkstore_open(base, &cs), 0);
	assert_int_equal(child_status(child_wrlock(lock, -1, -1)), 0);
	assert_int_equal(ds_chunkstore_lock_shared(cs), 0);
	assert_int_equal(ds_chunkstore_lock_shared(cs), 0); /* idempotent */
	assert_int_equal(child_sees_rdlock(lock, getpid()), 0);
	assert_int_equal(child_status(child_wrlock(lock, -1, -1)), 1);
	ds_chunkstore_unlock(cs);
	ds_chunkstore_unlock(cs);
	assert_int_equal(child_status(child_wrlock(lock, -1, -1)), 0);

	/* Garbage collection (another process) holds F_WRLCK: -EBUSY. */
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(hold), 0);
	pid = child_wrlock(lock, ready[1], hold[0]);
	wait_byte(ready[0]);
	assert_int_equal(ds_chunkstore_lock_shared(cs), -EBUSY);
	assert_int_equal(write(hold[1], "x", 1), 1);
	assert_int_equal(child_status(pid), 0);
	assert_int_equal(ds_chunkstore_lock_shared(cs), 0);
	ds_chunkstore_free(cs); /* releases it */
	assert_int_equal(child_status(child_wrlock(lock, -1, -1)), 0);
	for (int i = 0; i < 2; i++) {
		close(ready[i]);
		close(hold[i]);
	}
	free(lock);
	tu_rmtree(base);
	free(base);
}

static void test_count_cleanup(void **state)
{
	char *base = mini_store(), *p, *names;
	struct ds_chunkstore *cs;
	uint64_t files = 0, bytes = 0, want_bytes = 0;
	char hex[65], rel[DS_CHUNK_RELPATH_LEN], upper[65];
	struct ds_digest first;

	(void)state;
	assert_int_equal(ds_chunkstore_open(base, &cs), 0);
	for (int i = 0; i < 3; i++) {
		uint8_t *data, *raw;
		size_t data_len, raw_len;
		struct ds_digest d;
		char text[32];

		snprintf(text, sizeof(text), "chunk %d ", i);
		encode(text, 10 + i, NULL, false, &data, &data_len, &raw, &raw_len, &d);
		assert_int_equal(ds_chunkstore_insert(cs, &d, raw, raw_len, false, NULL), 0);
		want_bytes += raw_len;
		if (i == 0)
			first = d;
		free(data);
		free(raw);
	}
	ds_digest_to_hex(&first, hex);
	ds_chunk_relpath(&first, rel);
	for (int i = 0; i < 64; i++)
		upper[i] = (char)(hex[i] >= 'a' ? hex[i] - 32 : hex[i]);
	upper[64] = '\0';
	/* Only exact 64-hex names count; only <hex>.tmp_* is cleaned up. */
	const char *junk[] = { ".tmp_Ab12Cd", ".0.bad", ".using", ".tmp_" };
	for (size_t i = 0; i < DS_ARRAY_SIZE(junk); i++) {
		p = tu_pathf("%s/.chunks/%.4s/%s%s", base, hex, hex, junk[i]);
		write_file(p, "junk", 4);
		free(p);
	}
	p = tu_pathf("%s/.chunks/%.4s/%s", base, hex, upper);
	write_file(p, "junk", 4);
	free(p);
	p = tu_pathf("%s/.chunks/%.4s/notahexname.tmp_Ab12Cd", base, hex);
	write_file(p, "junk", 4);
	free(p);
	p = tu_pathf("%s/.chunks/%.4s/%.63sg.tmp_Ab12Cd", base, hex, hex);
	write_file(p, "junk", 4);
	free(p);

	assert_int_equal(ds_chunkstore_count(cs, &files, &bytes), 0);
	assert_int_equal(files, 3);
	assert_int_equal(bytes, want_bytes);
	assert_int_equal(ds_chunkstore_cleanup_tmp(cs), 1);
	assert_int_equal(ds_chunkstore_cleanup_tmp(cs), 0);
	p = tu_pathf("%s/.chunks/%.4s/%s.tmp_Ab12Cd", base, hex, hex);
	assert_int_equal(access(p, F_OK), -1);
	free(p);
	p = tu_pathf("%s/.chunks/%.4s", base, hex);
	names = list_names(p);
	assert_non_null(strstr(names, ".0.bad"));
	assert_non_null(strstr(names, "notahexname.tmp_Ab12Cd"));
	assert_non_null(strstr(names, "g.tmp_Ab12Cd"));
	free(names);
	free(p);
	assert_int_equal(ds_chunkstore_count(cs, &files, NULL), 0);
	assert_int_equal(files, 3);
	ds_chunkstore_free(cs);
	tu_rmtree(base);
	free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_modes),
		cmocka_unit_test(test_create_refuses_nonempty),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_relpath),
		cmocka_unit_test(test_load_fixture),
		cmocka_unit_test(test_load_bad_files),
		cmocka_unit_test(test_read_plain),
		cmocka_unit_test(test_decode_known_part),
		cmocka_unit_test(test_insert_new_and_touch),
		cmocka_unit_test(test_insert_size_rules),
		cmocka_unit_test(test_check_disk),
		cmocka_unit_test(test_lock_shared),
		cmocka_unit_test(test_count_cleanup),
	};

	tu_fixtures();
	return tu_run_group("chunkstore", tests, NULL, NULL);
}
