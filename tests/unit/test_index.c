/* Suite for store/index: every index of the PBS fixture store against
 * expect.json, writer round trips and byte layout, and malformed input. */
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
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "store/index.h"
#include "store/log.h"
#include "store/util.h"
#include "testutil.h"

/* --- log capture: every refusal must be logged exactly once --- */

static int log_count;
static char log_last[1024];

static void capture(enum ds_log_level level, const char *msg, void *userdata)
{
	(void)level;
	(void)userdata;
	log_count++;
	snprintf(log_last, sizeof(log_last), "%s", msg);
}

static int setup_log(void **state)
{
	(void)state;
	log_count = 0;
	log_last[0] = 0;
	ds_log_set_sink(capture, NULL);
	return 0;
}

static int teardown_log(void **state)
{
	(void)state;
	ds_log_set_sink(NULL, NULL);
	return 0;
}

static void digest_of(uint64_t i, struct ds_digest *d)
{
	uint8_t b[8];

	ds_put_le64(b, i);
	ds_sha256(b, sizeof(b), d);
}

static int count_dir(int dfd)
{
	/* A fresh open file description: a dup would share the read offset. */
	DIR *d = fdopendir(openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* --- fixture store --- */

static json_t *expect;
static const char *store_root;
static int indexes_seen;

static json_t *find_archive(const char *rel)
{
	json_t *snaps = json_object_get(expect, "snapshots"), *snap;
	size_t i;

	json_array_foreach(snaps, i, snap) {
		const char *sp = json_string_value(json_object_get(snap, "path"));
		size_t n = strlen(sp);
		json_t *arch;
		size_t j;

		if (strncmp(rel, sp, n) != 0 || rel[n] != '/')
			continue;
		json_array_foreach(json_object_get(snap, "archives"), j, arch) {
			if (!strcmp(json_string_value(json_object_get(arch, "name")), rel + n + 1))
				return arch;
		}
	}
	return NULL;
}

static uint64_t jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	assert_true(json_is_integer(v));
	return (uint64_t)json_integer_value(v);
}

static void jdigest(json_t *o, const char *key, struct ds_digest *d)
{
	assert_int_equal(ds_digest_from_hex(json_string_value(json_object_get(o, key)), d), 0);
}

static void check_against_expect(const struct ds_index *idx, json_t *arch, bool fixed)
{
	json_t *chunks = json_object_get(arch, "chunks"), *c;
	struct ds_digest want, hdr, comp;
	size_t n = ds_index_count(idx), i;
	uint64_t size = jint(arch, "size");

	assert_int_equal(ds_index_kind(idx), fixed ? DS_INDEX_FIXED : DS_INDEX_DYNAMIC);
	assert_int_equal(n, jint(arch, "chunk_count"));
	assert_int_equal(n, json_array_size(chunks));
	assert_true(n > 0);
	assert_int_equal(ds_index_size(idx), size);
	assert_int_equal(ds_index_chunk_size(idx), fixed ? jint(arch, "chunk_size") : 0);
	jdigest(arch, "index_csum", &want);
	ds_index_header_csum(idx, &hdr);
	ds_index_compute_csum(idx, &comp);
	assert_true(ds_digest_eq(&hdr, &want));
	assert_true(ds_digest_eq(&comp, &want));
	/* The manifest records the same pair (spec §3.1 compute_csum). */
	assert_int_equal(jint(arch, "manifest_size"), size);
	jdigest(arch, "manifest_csum", &want);
	assert_true(ds_digest_eq(&comp, &want));

	json_array_foreach(chunks, i, c) {
		struct ds_index_chunk ch;
		struct ds_digest d;

		assert_int_equal(ds_index_chunk(idx, i, &ch), 0);
		assert_int_equal(ch.start, jint(c, "start"));
		assert_int_equal(ch.end, jint(c, "end"));
		jdigest(c, "digest", &d);
		assert_true(ds_digest_eq(&ch.digest, &d));
		assert_int_equal(ds_index_find(idx, ch.start), (ssize_t)i);
		assert_int_equal(ds_index_find(idx, ch.end - 1), (ssize_t)i);
		if (ch.end - ch.start > 2)
			assert_int_equal(ds_index_find(idx, ch.start + (ch.end - ch.start) / 2),
					 (ssize_t)i);
	}
	assert_int_equal(ds_index_find(idx, size), -ERANGE);
	assert_int_equal(ds_index_find(idx, UINT64_MAX), -ERANGE);
	{
		struct ds_index_chunk ch;

		assert_int_equal(ds_index_chunk(idx, n, &ch), -ERANGE);
	}
}

static int visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	const char *rel = path + strlen(store_root) + 1;
	size_t len = strlen(path);
	bool fixed;
	struct ds_index *idx, *idx2;
	json_t *arch;
	uint8_t *buf;
	size_t blen;

	(void)st;
	(void)ftw;
	if (flag != FTW_F || len < 5)
		return 0;
	if (!strcmp(path + len - 5, ".fidx"))
		fixed = true;
	else if (!strcmp(path + len - 5, ".didx"))
		fixed = false;
	else
		return 0;
	arch = find_archive(rel);
	if (!arch)
		fail_msg("%s is not in expect.json", rel);
	assert_string_equal(json_string_value(json_object_get(arch, "kind")),
			    fixed ? "fidx" : "didx");
	assert_int_equal(ds_index_open(AT_FDCWD, path, &idx), 0);
	check_against_expect(idx, arch, fixed);

	/* The in-memory parser must agree with the mapped reader. */
	buf = tu_read(path, &blen);
	assert_int_equal(ds_index_parse(buf, blen, &idx2), 0);
	check_against_expect(idx2, arch, fixed);
	{
		uint8_t u1[16], u2[16];

		ds_index_uuid(idx, u1);
		ds_index_uuid(idx2, u2);
		assert_memory_equal(u1, buf + 8, 16);
		assert_memory_equal(u1, u2, 16);
		assert_int_equal(ds_index_ctime(idx), (int64_t)ds_le64(buf + 24));
	}
	free(buf);
	ds_index_free(idx2);
	ds_index_free(idx);
	indexes_seen++;
	return 0;
}

static void test_fixture_store(void **state)
{
	char path[4096], root[4096];
	json_error_t jerr;
	json_t *snap;
	size_t i, want = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/pbs-store-a.expect.json", tu_fixtures());
	snprintf(root, sizeof(root), "%s/pbs-store-a", tu_fixtures());
	expect = json_load_file(path, 0, &jerr);
	if (!expect)
		fail_msg("%s: %s", path, jerr.text);
	json_array_foreach(json_object_get(expect, "snapshots"), i, snap) {
		json_t *arch;
		size_t j;

		json_array_foreach(json_object_get(snap, "archives"), j, arch) {
			const char *k = json_string_value(json_object_get(arch, "kind"));

			if (!strcmp(k, "fidx") || !strcmp(k, "didx"))
				want++;
		}
	}
	store_root = root;
	indexes_seen = 0;
	assert_int_equal(nftw(root, visit, 32, FTW_PHYS), 0);
	/* Every index archive in expect.json was found on disk, and vice versa. */
	assert_int_equal(indexes_seen, want);
	assert_true(want >= 20);
	assert_int_equal(log_count, 0);
	json_decref(expect);
	expect = NULL;
}

/* Spec §3.3: vm/101 drive-scsi0 is 5 full 4 MiB chunks plus 2110009 bytes. */
static void test_fixture_fidx_shape(void **state)
{
	char path[4096];
	struct ds_index *idx;
	struct ds_index_chunk ch;

	(void)state;
	snprintf(path, sizeof(path),
		 "%s/pbs-store-a/vm/101/2024-03-02T08:02:17Z/drive-scsi0.img.fidx",
		 tu_fixtures());
	assert_int_equal(ds_index_open(AT_FDCWD, path, &idx), 0);
	assert_int_equal(ds_index_size(idx), 23081529);
	assert_int_equal(ds_index_chunk_size(idx), 4 * DS_MIB);
	assert_int_equal(ds_index_count(idx), 6);
	assert_int_equal(ds_index_chunk(idx, 5, &ch), 0);
	assert_int_equal(ch.start, 5 * 4 * DS_MIB);
	assert_int_equal(ch.end - ch.start, 2110009);
	assert_int_equal(ds_index_find(idx, 4 * DS_MIB), 1);
	assert_int_equal(ds_index_find(idx, 4 * DS_MIB - 1), 0);
	ds_index_free(idx);
}

/* --- writers --- */

static void test_fidx_writer(void **state)
{
	const uint64_t cs = 64 * DS_KIB, size = 3 * cs + 100;
	char *dir = tu_tmpdir();
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct ds_fidx_writer *w;
	struct ds_digest d[4], csum, got, want;
	struct ds_index *idx;
	struct stat st;
	uint64_t rsize = 0;
	uint8_t *buf, zero[4096] = { 0 };
	size_t len;
	time_t before, after;
	mode_t old_umask;

	(void)state;
	assert_true(dfd >= 0);
	assert_int_equal(ds_fidx_writer_new(dfd, "a.img.fidx", size, 3, &w), -EINVAL);
	assert_int_equal(ds_fidx_writer_new(dfd, "a.img.fidx", size, 0, &w), -EINVAL);
	/* A umask that would strip 0644 to 0600: the writer must still give 0644. */
	old_umask = umask(077);
	before = time(NULL);
	assert_int_equal(ds_fidx_writer_new(dfd, "drive-scsi0.img.fidx", size, cs, &w), 0);
	after = time(NULL);
	umask(old_umask);
	assert_int_equal(faccessat(dfd, "drive-scsi0.img.tmp_fidx", F_OK, 0), 0);
	/* Addressed by position, in any order. */
	for (int i = 3; i >= 0; i--) {
		digest_of((uint64_t)i, &d[i]);
		assert_int_equal(ds_fidx_writer_set(w, (size_t)i, &d[i]), 0);
	}
	assert_int_equal(ds_fidx_writer_set(w, 4, &d[0]), -ERANGE);
	assert_int_equal(ds_fidx_writer_commit(w, size + 1, false, NULL, NULL), -EINVAL);
	assert_int_equal(ds_fidx_writer_commit(w, size, true, &csum, &rsize), 0);
	assert_int_equal(ds_fidx_writer_commit(w, size, true, &csum, &rsize), -EINVAL);
	ds_fidx_writer_free(w);
	ds_sha256(d, sizeof(d), &want);
	assert_true(ds_digest_eq(&csum, &want));
	assert_int_equal(rsize, size);

	/* Byte layout. */
	assert_int_equal(faccessat(dfd, "drive-scsi0.img.tmp_fidx", F_OK, 0), -1);
	assert_int_equal(fstatat(dfd, "drive-scsi0.img.fidx", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(ds_read_file_at(dfd, "drive-scsi0.img.fidx", 1 << 20, &buf, &len), 0);
	assert_int_equal(len, 4096 + 4 * 32);
	assert_memory_equal(buf, "\x2f\x7f\x41\xed\x91\xfd\x0f\xcd", 8);
	assert_int_equal(buf[8 + 6] >> 4, 4);       /* uuid version 4 */
	assert_int_equal(buf[8 + 8] & 0xc0, 0x80);  /* RFC 4122 variant */
	assert_true((int64_t)ds_le64(buf + 24) >= before && (int64_t)ds_le64(buf + 24) <= after);
	assert_memory_equal(buf + 32, want.b, 32);
	assert_int_equal(ds_le64(buf + 64), size);
	assert_int_equal(ds_le64(buf + 72), cs);
	assert_memory_equal(buf + 80, zero, 4096 - 80);
	assert_memory_equal(buf + 4096, d, sizeof(d));
	free(buf);

	assert_int_equal(ds_index_open(dfd, "drive-scsi0.img.fidx", &idx), 0);
	assert_int_equal(ds_index_count(idx), 4);
	assert_int_equal(ds_index_size(idx), size);
	assert_int_equal(ds_index_chunk_size(idx), cs);
	ds_index_compute_csum(idx, &got);
	assert_true(ds_digest_eq(&got, &want));
	for (size_t i = 0; i < 4; i++) {
		struct ds_index_chunk ch;

		assert_int_equal(ds_index_chunk(idx, i, &ch), 0);
		assert_int_equal(ch.start, i * cs);
		assert_int_equal(ch.end, i == 3 ? size : (i + 1) * cs);
		assert_true(ds_digest_eq(&ch.digest, &d[i]));
	}
	assert_int_equal(ds_index_find(idx, size - 1), 3);
	ds_index_free(idx);
	assert_int_equal(count_dir(dfd), 1);
	close(dfd);
	tu_rmtree(dir);
	free(dir);
}

static void test_fidx_writer_unknown_size(void **state)
{
	const uint64_t cs = 4 * DS_MIB, size = 39 * cs + 1;
	char *dir = tu_tmpdir();
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct ds_fidx_writer *w;
	struct ds_digest d[40], csum, want;
	struct ds_index *idx;
	uint64_t rsize;

	(void)state;
	assert_true(dfd >= 0);
	/* Grows past the initial capacity (16) twice. */
	assert_int_equal(ds_fidx_writer_new(dfd, "x.img.fidx", 0, cs, &w), 0);
	for (size_t i = 0; i < 40; i++) {
		digest_of(i + 100, &d[i]);
		assert_int_equal(ds_fidx_writer_set(w, i, &d[i]), 0);
	}
	/* 41 chunks needed but 40 set; 39 needed but 40 set. */
	assert_int_equal(ds_fidx_writer_commit(w, 40 * cs + 1, false, NULL, NULL), -EINVAL);
	assert_int_equal(ds_fidx_writer_commit(w, 39 * cs, false, NULL, NULL), -EINVAL);
	assert_int_equal(ds_fidx_writer_commit(w, size, false, &csum, &rsize), 0);
	ds_fidx_writer_free(w);
	ds_sha256(d, sizeof(d), &want);
	assert_true(ds_digest_eq(&csum, &want));
	assert_int_equal(rsize, size);
	assert_int_equal(ds_index_open(dfd, "x.img.fidx", &idx), 0);
	assert_int_equal(ds_index_count(idx), 40);
	assert_int_equal(ds_index_size(idx), size);
	{
		struct ds_index_chunk ch;

		assert_int_equal(ds_index_chunk(idx, 39, &ch), 0);
		assert_int_equal(ch.end - ch.start, 1);
		assert_true(ds_digest_eq(&ch.digest, &d[39]));
	}
	ds_index_free(idx);
	assert_int_equal(count_dir(dfd), 1);
	close(dfd);
	tu_rmtree(dir);
	free(dir);
}

/* An image cut short before commit (ftruncate through the mount): the
 * positions past the new size are forgotten and the commit takes the
 * smaller size; a known-size writer refuses it. */
static void test_fidx_writer_truncate(void **state)
{
	const uint64_t cs = 4096;
	char *dir = tu_tmpdir();
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct ds_fidx_writer *w;
	struct ds_digest d[20], csum, want;
	struct ds_index *idx;
	uint64_t rsize;

	(void)state;
	assert_true(dfd >= 0);
	assert_int_equal(ds_fidx_writer_new(dfd, "t.img.fidx", 0, cs, &w), 0);
	for (size_t i = 0; i < 20; i++) {
		digest_of(i + 300, &d[i]);
		assert_int_equal(ds_fidx_writer_set(w, i, &d[i]), 0);
	}
	assert_int_equal(ds_fidx_writer_commit(w, 2 * cs + 5, false, NULL, NULL), -EINVAL);
	assert_int_equal(ds_fidx_writer_truncate(w, 3), 0);
	/* position 3 is unset now: a size needing 4 chunks is refused */
	assert_int_equal(ds_fidx_writer_commit(w, 3 * cs + 1, false, NULL, NULL), -EINVAL);
	assert_int_equal(ds_fidx_writer_commit(w, 2 * cs + 5, false, &csum, &rsize), 0);
	ds_fidx_writer_free(w);
	ds_sha256(d, 3 * sizeof(d[0]), &want);
	assert_true(ds_digest_eq(&csum, &want));
	assert_int_equal(rsize, 2 * cs + 5);
	assert_int_equal(ds_index_open(dfd, "t.img.fidx", &idx), 0);
	assert_int_equal(ds_index_count(idx), 3);
	ds_index_free(idx);

	assert_int_equal(ds_fidx_writer_new(dfd, "k.img.fidx", 4 * cs, cs, &w), 0);
	assert_int_equal(ds_fidx_writer_truncate(w, 1), -EINVAL);
	ds_fidx_writer_free(w);
	close(dfd);
	tu_rmtree(dir);
	free(dir);
}

static void test_fidx_writer_refusals(void **state)
{
	char *dir = tu_tmpdir();
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct ds_fidx_writer *w;
	struct ds_digest d;

	(void)state;
	assert_true(dfd >= 0);
	digest_of(1, &d);
	/* A chunk never set. */
	assert_int_equal(ds_fidx_writer_new(dfd, "a.img.fidx", 3 * 4096, 4096, &w), 0);
	assert_int_equal(ds_fidx_writer_set(w, 0, &d), 0);
	assert_int_equal(ds_fidx_writer_set(w, 2, &d), 0);
	log_count = 0;
	assert_int_equal(ds_fidx_writer_commit(w, 3 * 4096, false, NULL, NULL), -EINVAL);
	assert_int_equal(log_count, 1);
	ds_fidx_writer_free(w);
	/* Zero chunks. */
	assert_int_equal(ds_fidx_writer_new(dfd, "b.img.fidx", 0, 4096, &w), 0);
	assert_int_equal(ds_fidx_writer_commit(w, 0, false, NULL, NULL), -EINVAL);
	ds_fidx_writer_free(w);
	/* A size whose entry count cannot be a file length. */
	assert_int_equal(ds_fidx_writer_new(dfd, "c.img.fidx", UINT64_MAX, 1, &w), -EINVAL);
	/* Free without commit leaves nothing behind. */
	assert_int_equal(count_dir(dfd), 0);
	close(dfd);
	tu_rmtree(dir);
	free(dir);
}

static void test_didx_writer(void **state)
{
	enum { N = 2500 }; /* more than one write batch */
	char *dir = tu_tmpdir();
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct ds_didx_writer *w;
	struct ds_digest d, csum, want;
	struct ds_index *idx;
	uint8_t *entries = malloc(N * 40), *buf, zero[4096] = { 0 };
	uint64_t end = 0, rsize = 0, ends[N];
	struct stat st;
	size_t len;
	int fd;

	(void)state;
	assert_true(dfd >= 0);
	assert_non_null(entries);
	/* A stale temp file from a crash is replaced. */
	fd = openat(dfd, "root.pxar.tmp_didx", O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "junk", 4), 4);
	close(fd);
	assert_int_equal(ds_didx_writer_new(dfd, "root.pxar.didx", &w), 0);
	digest_of(0, &d);
	assert_int_equal(ds_didx_writer_append(w, 0, &d), -EINVAL);
	for (size_t i = 0; i < N; i++) {
		end += 1 + (i * 7919) % 100000;
		ends[i] = end;
		digest_of(i, &d);
		ds_put_le64(entries + 40 * i, end);
		memcpy(entries + 40 * i + 8, d.b, 32);
		assert_int_equal(ds_didx_writer_append(w, end, &d), 0);
	}
	assert_int_equal(ds_didx_writer_append(w, end, &d), -EINVAL);
	assert_int_equal(ds_didx_writer_append(w, end - 1, &d), -EINVAL);
	assert_int_equal(ds_didx_writer_commit(w, true, &csum, &rsize), 0);
	ds_didx_writer_free(w);
	ds_sha256(entries, N * 40, &want);
	assert_true(ds_digest_eq(&csum, &want));
	assert_int_equal(rsize, end);

	assert_int_equal(faccessat(dfd, "root.pxar.tmp_didx", F_OK, 0), -1);
	assert_int_equal(fstatat(dfd, "root.pxar.didx", &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(ds_read_file_at(dfd, "root.pxar.didx", 1 << 20, &buf, &len), 0);
	assert_int_equal(len, 4096 + N * 40);
	assert_memory_equal(buf, "\x1c\x91\x4e\xa5\x19\xba\xb3\xcd", 8);
	assert_int_equal(buf[8 + 6] >> 4, 4);
	assert_memory_equal(buf + 32, want.b, 32);
	assert_memory_equal(buf + 64, zero, 4096 - 64);
	assert_memory_equal(buf + 4096, entries, N * 40);
	free(buf);

	assert_int_equal(ds_index_open(dfd, "root.pxar.didx", &idx), 0);
	assert_int_equal(ds_index_kind(idx), DS_INDEX_DYNAMIC);
	assert_int_equal(ds_index_count(idx), N);
	assert_int_equal(ds_index_size(idx), end);
	assert_int_equal(ds_index_chunk_size(idx), 0);
	for (size_t i = 0; i < N; i++) {
		struct ds_index_chunk ch;

		assert_int_equal(ds_index_chunk(idx, i, &ch), 0);
		assert_int_equal(ch.start, i ? ends[i - 1] : 0);
		assert_int_equal(ch.end, ends[i]);
		digest_of(i, &d);
		assert_true(ds_digest_eq(&ch.digest, &d));
		assert_int_equal(ds_index_find(idx, ch.start), (ssize_t)i);
		assert_int_equal(ds_index_find(idx, ch.end - 1), (ssize_t)i);
	}
	assert_int_equal(ds_index_find(idx, end), -ERANGE);
	ds_index_free(idx);
	free(entries);
	assert_int_equal(count_dir(dfd), 1);
	close(dfd);
	tu_rmtree(dir);
	free(dir);
}

static void test_didx_writer_empty_and_abort(void **state)
{
	char *dir = tu_tmpdir();
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct ds_didx_writer *w;
	struct ds_digest d, csum, want;
	struct ds_index *idx;
	uint64_t rsize = 1;

	(void)state;
	assert_true(dfd >= 0);
	/* Aborted: the temp file goes, nothing else appears. */
	assert_int_equal(ds_didx_writer_new(dfd, "a.pxar.didx", &w), 0);
	digest_of(1, &d);
	assert_int_equal(ds_didx_writer_append(w, 10, &d), 0);
	assert_int_equal(count_dir(dfd), 1);
	ds_didx_writer_free(w);
	assert_int_equal(count_dir(dfd), 0);
	/* Empty: csum of nothing, size 0. */
	assert_int_equal(ds_didx_writer_new(dfd, "e.didx", &w), 0);
	assert_int_equal(ds_didx_writer_commit(w, false, &csum, &rsize), 0);
	ds_didx_writer_free(w);
	ds_sha256("", 0, &want);
	assert_true(ds_digest_eq(&csum, &want));
	assert_int_equal(rsize, 0);
	assert_int_equal(ds_index_open(dfd, "e.didx", &idx), 0);
	assert_int_equal(ds_index_count(idx), 0);
	assert_int_equal(ds_index_size(idx), 0);
	assert_int_equal(ds_index_find(idx, 0), -ERANGE);
	ds_index_free(idx);
	/* A writer for a missing directory fails and leaves nothing. */
	assert_int_equal(ds_didx_writer_new(dfd, "nodir/x.didx", &w), -ENOENT);
	assert_int_equal(count_dir(dfd), 1);
	close(dfd);
	tu_rmtree(dir);
	free(dir);
}

/* --- malformed input --- */

static uint8_t *make_fidx(uint64_t size, uint64_t cs, size_t n, size_t *ret_len)
{
	size_t len = 4096 + 32 * n;
	uint8_t *b = calloc(1, len + 64);

	assert_non_null(b);
	memcpy(b, "\x2f\x7f\x41\xed\x91\xfd\x0f\xcd", 8);
	ds_put_le64(b + 64, size);
	ds_put_le64(b + 72, cs);
	for (size_t i = 0; i < n; i++)
		memset(b + 4096 + 32 * i, (int)i + 1, 32);
	*ret_len = len;
	return b;
}

static uint8_t *make_didx(const uint64_t *ends, size_t n, size_t *ret_len)
{
	size_t len = 4096 + 40 * n;
	uint8_t *b = calloc(1, len + 64);

	assert_non_null(b);
	memcpy(b, "\x1c\x91\x4e\xa5\x19\xba\xb3\xcd", 8);
	for (size_t i = 0; i < n; i++) {
		ds_put_le64(b + 4096 + 40 * i, ends[i]);
		memset(b + 4096 + 40 * i + 8, (int)i + 1, 32);
	}
	*ret_len = len;
	return b;
}

#define expect_bad(buf, len)                                                   \
	do {                                                                   \
		struct ds_index *bad_ = NULL;                                  \
		log_count = 0;                                                 \
		assert_int_equal(ds_index_parse((buf), (len), &bad_), -EBADMSG); \
		assert_null(bad_);                                             \
		assert_int_equal(log_count, 1);                                \
	} while (0)

static void test_bad_header(void **state)
{
	uint8_t *b;
	size_t len;

	(void)state;
	b = make_fidx(4096, 4096, 1, &len);
	expect_bad(b, 0);
	expect_bad(b, 100);
	expect_bad(b, 4095);
	b[0] ^= 1;
	expect_bad(b, len);
	free(b);
	b = make_didx((const uint64_t[]){ 5 }, 1, &len);
	b[7] ^= 0x80;
	expect_bad(b, len);
	free(b);
}

static void test_bad_fidx(void **state)
{
	struct ds_index *idx;
	uint8_t *b;
	size_t len;

	(void)state;
	b = make_fidx(3 * 4096, 4096, 3, &len);
	assert_int_equal(ds_index_parse(b, len, &idx), 0);
	assert_int_equal(ds_index_count(idx), 3);
	ds_index_free(idx);
	expect_bad(b, len + 1);
	expect_bad(b, len - 1);
	expect_bad(b, len + 32);
	expect_bad(b, len - 32);
	ds_put_le64(b + 64, 3 * 4096 + 1); /* now needs 4 entries */
	expect_bad(b, len);
	ds_put_le64(b + 64, 3 * 4096);
	ds_put_le64(b + 72, 3);
	expect_bad(b, len);
	ds_put_le64(b + 72, 0);
	expect_bad(b, len);
	ds_put_le64(b + 72, 4096 + 2048);
	expect_bad(b, len);
	/* 4096 + 32*n wraps to exactly this length for n = 2^59 + 3: a
	 * reader multiplying in u64 would accept it. */
	ds_put_le64(b + 64, (UINT64_C(1) << 59) + 3);
	ds_put_le64(b + 72, 1);
	expect_bad(b, len);
	ds_put_le64(b + 64, UINT64_MAX);
	expect_bad(b, len);
	ds_put_le64(b + 72, UINT64_C(1) << 63);
	ds_put_le64(b + 64, UINT64_MAX); /* 2 chunks */
	expect_bad(b, len);
	free(b);
	/* Size 0: PBS's reader accepts the zero-entry file. */
	b = make_fidx(0, 4096, 0, &len);
	assert_int_equal(ds_index_parse(b, len, &idx), 0);
	assert_int_equal(ds_index_count(idx), 0);
	assert_int_equal(ds_index_find(idx, 0), -ERANGE);
	ds_index_free(idx);
	free(b);
	/* The largest chunk size, one chunk: end must not overflow. */
	b = make_fidx(UINT64_MAX, UINT64_C(1) << 63, 2, &len);
	assert_int_equal(ds_index_parse(b, len, &idx), 0);
	{
		struct ds_index_chunk ch;

		assert_int_equal(ds_index_chunk(idx, 1, &ch), 0);
		assert_int_equal(ch.start, UINT64_C(1) << 63);
		assert_int_equal(ch.end, UINT64_MAX);
		assert_int_equal(ds_index_find(idx, UINT64_MAX - 1), 1);
	}
	ds_index_free(idx);
	free(b);
}

static void test_bad_didx(void **state)
{
	struct ds_index *idx;
	uint8_t *b;
	size_t len;

	(void)state;
	b = make_didx((const uint64_t[]){ 10, 20, 30 }, 3, &len);
	assert_int_equal(ds_index_parse(b, len, &idx), 0);
	assert_int_equal(ds_index_size(idx), 30);
	assert_int_equal(ds_index_find(idx, 9), 0);
	assert_int_equal(ds_index_find(idx, 10), 1);
	assert_int_equal(ds_index_find(idx, 29), 2);
	ds_index_free(idx);
	expect_bad(b, len + 1);
	expect_bad(b, len - 1);
	expect_bad(b, len + 39);
	free(b);
	b = make_didx((const uint64_t[]){ 10, 30, 20 }, 3, &len);
	expect_bad(b, len);
	free(b);
	b = make_didx((const uint64_t[]){ 10, 20, 20 }, 3, &len);
	expect_bad(b, len);
	free(b);
	b = make_didx((const uint64_t[]){ 0, 20, 30 }, 3, &len);
	expect_bad(b, len);
	free(b);
	b = make_didx(NULL, 0, &len);
	assert_int_equal(ds_index_parse(b, len, &idx), 0);
	assert_int_equal(ds_index_count(idx), 0);
	ds_index_free(idx);
	free(b);
}

/* Files on disk: the refusal names the path; a missing file is -ENOENT. */
static void test_open_errors(void **state)
{
	char *dir = tu_tmpdir();
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct ds_index *idx = NULL;
	uint8_t *b;
	size_t len;
	int fd;

	(void)state;
	assert_true(dfd >= 0);
	assert_int_equal(ds_index_open(dfd, "missing.didx", &idx), -ENOENT);
	fd = openat(dfd, "empty.fidx", O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	close(fd);
	log_count = 0;
	assert_int_equal(ds_index_open(dfd, "empty.fidx", &idx), -EBADMSG);
	assert_int_equal(log_count, 1);
	assert_non_null(strstr(log_last, "empty.fidx"));
	b = make_didx((const uint64_t[]){ 10, 5 }, 2, &len);
	fd = openat(dfd, "dec.didx", O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ds_write_all(fd, b, len), 0);
	close(fd);
	free(b);
	log_count = 0;
	assert_int_equal(ds_index_open(dfd, "dec.didx", &idx), -EBADMSG);
	assert_int_equal(log_count, 1);
	assert_non_null(strstr(log_last, "dec.didx"));
	assert_null(idx);
	assert_int_equal(ds_index_open(dfd, ".", &idx), -EISDIR);
	close(dfd);
	tu_rmtree(dir);
	free(dir);
}

/* An open index does not depend on its file any more: truncated (or
 * unreadable) underneath, it still answers, where a mapping would SIGBUS. */
static void test_open_then_truncated(void **state)
{
	char *dir = tu_tmpdir();
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	const uint64_t ends[] = { 100, 5000, 9000 };
	struct ds_index_chunk ch;
	struct ds_index *idx;
	uint8_t *b;
	size_t len;
	int fd;

	(void)state;
	assert_true(dfd >= 0);
	b = make_didx(ends, 3, &len);
	fd = openat(dfd, "t.didx", O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ds_write_all(fd, b, len), 0);
	close(fd);
	free(b);
	assert_int_equal(ds_index_open(dfd, "t.didx", &idx), 0);
	fd = openat(dfd, "t.didx", O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(ds_index_count(idx), 3);
	assert_int_equal(ds_index_find(idx, 8999), 2);
	ds_index_chunk(idx, 2, &ch);
	assert_int_equal(ch.start, 5000);
	assert_int_equal(ch.end, 9000);
	ds_index_free(idx);
	close(dfd);
	tu_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture_store),
		cmocka_unit_test(test_fixture_fidx_shape),
		cmocka_unit_test(test_fidx_writer),
		cmocka_unit_test(test_fidx_writer_unknown_size),
		cmocka_unit_test(test_fidx_writer_truncate),
		cmocka_unit_test(test_fidx_writer_refusals),
		cmocka_unit_test(test_didx_writer),
		cmocka_unit_test(test_didx_writer_empty_and_abort),
		cmocka_unit_test(test_bad_header),
		cmocka_unit_test(test_bad_fidx),
		cmocka_unit_test(test_bad_didx),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_open_then_truncated),
	};

	return tu_run_group("index", tests, setup_log, teardown_log);
}
