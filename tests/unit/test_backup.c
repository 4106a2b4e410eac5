/* Suite for store/backup: snapshots written into a fresh datastore and read
 * back through a reader — fixed (sequential and out of order) and dynamic
 * archives, blobs, the manifest's sizes and checksums, dedup statistics,
 * owner files, unfinished backups, encryption and signed manifests, notes
 * and protection (spec §1.4, §1.5, §3, §4). */
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

#include "store/backup.h"
#include "store/blob.h"
#include "store/chunkstore.h"
#include "store/crypt.h"
#include "store/datastore.h"
#include "store/hierarchy.h"
#include "store/index.h"
#include "store/manifest.h"
#include "store/util.h"
#include "testutil.h"

#define T1 1704067200 /* 2024-01-01T00:00:00Z */
#define CS (64 * 1024) /* fixed chunk size: small, a power of two */

struct env {
	char *base;
	struct ds_datastore *ds;
	struct ds_writer *w;
};

/* One datastore for the whole suite (65536 directories are not free);
 * every test uses its own group. tmpfs when there is one: much faster. */
static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	char tmpl[] = "/dev/shm/dsfs-test-XXXXXX";

	e->base = mkdtemp(tmpl) ? strdup(tmpl) : tu_tmpdir();
	if (ds_chunkstore_create(e->base, NULL, NULL) < 0 ||
	    ds_datastore_new("store1", e->base, &e->ds) < 0 || ds_writer_acquire(e->ds, &e->w) < 0)
		return -1;
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	ds_writer_release(e->w);
	ds_datastore_free(e->ds);
	tu_rmtree(e->base);
	free(e->base);
	free(e);
	return 0;
}

static uint8_t *random_data(size_t len, uint32_t seed)
{
	uint8_t *p = malloc(len);
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
	return p;
}

struct input {
	uint8_t *conf, *img, *efi, *stream;
	size_t conf_len, img_len, efi_len, stream_len;
};

static void input_init(struct input *in)
{
	static const char conf[] = "boot: order=scsi0\ncores: 2\nmemory: 2048\n";

	in->conf = (uint8_t *)strdup(conf);
	in->conf_len = strlen(conf);
	in->img_len = 3 * CS + 12345;
	in->img = random_data(in->img_len, 1);
	in->efi_len = 3 * CS + 500;
	in->efi = random_data(in->efi_len, 2);
	/* Compressible with repeats, so the chunker sees structure. */
	in->stream_len = 1024 * 1024 + 77;
	in->stream = random_data(in->stream_len, 3);
	memset(in->stream + 100000, 0, 200000);
}

static void input_free(struct input *in)
{
	free(in->conf);
	free(in->img);
	free(in->efi);
	free(in->stream);
}

/* Writes every kind of archive of in into b. */
static void write_archives(struct ds_backup *b, const struct input *in)
{
	struct ds_archive_writer *aw, *aw2;
	static const size_t order[] = { 3, 1, 0, 2 };

	assert_int_equal(ds_backup_add_blob(b, "qemu-server.conf.blob", in->conf, in->conf_len), 0);

	/* Sequential fixed archive of unknown size, fed in odd pieces. */
	assert_int_equal(ds_backup_fixed_begin(b, "drive-scsi0.img.fidx", 0, CS, &aw), 0);
	for (size_t off = 0; off < in->img_len; off += 1000) {
		size_t n = in->img_len - off < 1000 ? in->img_len - off : 1000;

		assert_int_equal(ds_archive_write(aw, in->img + off, n), 0);
	}
	assert_int_equal(ds_archive_finish(aw, 0), 0);

	/* Fixed archive filled out of order. */
	assert_int_equal(ds_backup_fixed_begin(b, "drive-efidisk0.img.fidx", in->efi_len, CS, &aw),
			 0);
	for (size_t k = 0; k < DS_ARRAY_SIZE(order); k++) {
		size_t i = order[k], off = i * CS;
		size_t n = in->efi_len - off < CS ? in->efi_len - off : CS;

		assert_int_equal(ds_archive_put_fixed_chunk(aw, i, in->efi + off, n, NULL), 0);
	}
	assert_int_equal(ds_archive_put_fixed_chunk(aw, 0, in->efi, CS + 1, NULL), -EINVAL);
	assert_int_equal(ds_archive_finish(aw, in->efi_len), 0);

	/* Dynamic archive through the chunker; two archives open at once. */
	assert_int_equal(ds_backup_dynamic_begin(b, "root.pxar.didx", 64 * 1024, &aw), 0);
	assert_int_equal(ds_backup_dynamic_begin(b, "catalog.pcat1.didx", 64 * 1024, &aw2), 0);
	assert_int_equal(ds_archive_put_fixed_chunk(aw, 0, in->conf, in->conf_len, NULL), -EINVAL);
	for (size_t off = 0; off < in->stream_len; off += 7777) {
		size_t n = in->stream_len - off < 7777 ? in->stream_len - off : 7777;

		assert_int_equal(ds_archive_write(aw, in->stream + off, n), 0);
	}
	assert_int_equal(ds_archive_write(aw2, in->conf, in->conf_len), 0);
	assert_int_equal(ds_archive_finish(aw2, 0), 0);
	assert_int_equal(ds_archive_finish(aw, 0), 0);

	/* Names already used, wrong kinds, bad parameters. */
	assert_int_equal(ds_backup_add_blob(b, "qemu-server.conf.blob", in->conf, 3), -EINVAL);
	assert_int_equal(ds_backup_add_blob(b, "index.json.blob", in->conf, 3), -EINVAL);
	assert_int_equal(ds_backup_add_blob(b, "x.fidx", in->conf, 3), -EINVAL);
	assert_int_equal(ds_backup_add_blob(b, "../x.blob", in->conf, 3), -EINVAL);
	assert_int_equal(ds_backup_fixed_begin(b, "drive-scsi0.img.fidx", 0, CS, &aw), -EINVAL);
	assert_int_equal(ds_backup_fixed_begin(b, "root.pxar.didx", 0, CS, &aw), -EINVAL);
	assert_int_equal(ds_backup_fixed_begin(b, "x.img.fidx", 0, 3000, &aw), -EINVAL);
	assert_int_equal(ds_backup_dynamic_begin(b, "root.pxar.didx", 64 * 1024, &aw), -EINVAL);
	assert_int_equal(ds_backup_dynamic_begin(b, "y.pxar.didx", 1000, &aw), -EINVAL);
	assert_int_equal(ds_backup_dynamic_begin(b, "y.pxar.didx", 8 * DS_MIB, &aw), -EINVAL);
}

/* Reads index name of snapshot snapfd back through the reader, checking
 * the manifest entry against the header and content against want. */
static void check_index(const struct ds_reader *rd, int snapfd, const struct ds_manifest *m,
			const char *name, const struct ds_crypt *c, const uint8_t *want,
			size_t want_len)
{
	uint8_t *buf = malloc(DS_MAX_CHUNK_SIZE);
	struct ds_manifest_file f;
	struct ds_index *idx;
	struct ds_digest h, comp;
	uint64_t off = 0;

	assert_int_equal(ds_manifest_find(m, name, &f), 0);
	assert_int_equal(f.crypt_mode, c ? DS_CRYPT_ENCRYPT : DS_CRYPT_NONE);
	assert_int_equal(ds_index_open(snapfd, name, &idx), 0);
	ds_index_header_csum(idx, &h);
	ds_index_compute_csum(idx, &comp);
	assert_true(ds_digest_eq(&h, &comp));
	assert_true(ds_digest_eq(&f.csum, &h));
	assert_int_equal(f.size, ds_index_size(idx));
	assert_int_equal(ds_index_size(idx), want_len);
	for (size_t i = 0; i < ds_index_count(idx); i++) {
		struct ds_index_chunk ch;
		size_t len;

		assert_int_equal(ds_index_chunk(idx, i, &ch), 0);
		assert_int_equal(ch.start, off);
		assert_int_equal(ds_reader_load_chunk(rd, &ch.digest, c, ch.end - ch.start, buf,
						      DS_MAX_CHUNK_SIZE, &len), 0);
		assert_memory_equal(buf, want + off, len);
		off += len;
		if (c && i == 0)
			assert_int_equal(ds_reader_load_chunk(rd, &ch.digest, NULL, len, buf,
							      DS_MAX_CHUNK_SIZE, &len), -ENOKEY);
	}
	assert_int_equal(off, want_len);
	ds_index_free(idx);
	free(buf);
}

/* Checks the blob entry and returns the decoded content's check. */
static void check_blob(int snapfd, const struct ds_manifest *m, const char *name,
		       const struct ds_crypt *c, const uint8_t *want, size_t want_len)
{
	struct ds_manifest_file f;
	struct ds_digest d;
	uint8_t *raw, *data;
	size_t raw_len, len;

	assert_int_equal(ds_manifest_find(m, name, &f), 0);
	assert_int_equal(ds_read_file_at(snapfd, name, DS_MAX_BLOB_SIZE, &raw, &raw_len), 0);
	/* For a blob the manifest has the raw file's size and SHA-256. */
	assert_int_equal(f.size, raw_len);
	ds_sha256(raw, raw_len, &d);
	assert_true(ds_digest_eq(&f.csum, &d));
	assert_int_equal(ds_blob_type_encrypted(ds_blob_type(raw, raw_len)), c != NULL);
	assert_int_equal(ds_blob_decode(raw, raw_len, c, DS_MAX_BLOB_SIZE, &data, &len), 0);
	assert_int_equal(len, want_len);
	assert_memory_equal(data, want, len);
	free(data);
	free(raw);
}

static void check_snapshot(struct env *e, const char *snaprel, const struct ds_crypt *c,
			   const struct input *in)
{
	const struct ds_reader *rd = ds_writer_reader(e->w);
	struct ds_manifest *m;
	int fd = openat(ds_writer_basefd(e->w), snaprel, O_RDONLY | O_DIRECTORY);

	assert_true(fd >= 0);
	assert_int_equal(ds_manifest_load(fd, &m), 0);
	assert_int_equal(ds_manifest_file_count(m), 5);
	check_blob(fd, m, "qemu-server.conf.blob", c, in->conf, in->conf_len);
	check_index(rd, fd, m, "drive-scsi0.img.fidx", c, in->img, in->img_len);
	check_index(rd, fd, m, "drive-efidisk0.img.fidx", c, in->efi, in->efi_len);
	check_index(rd, fd, m, "root.pxar.didx", c, in->stream, in->stream_len);
	check_index(rd, fd, m, "catalog.pcat1.didx", c, in->conf, in->conf_len);
	/* No temp file is left (index writers' *.tmp_fidx / *.tmp_didx). */
	assert_int_equal(faccessat(fd, "drive-scsi0.img.tmp_fidx", F_OK, 0), -1);
	assert_int_equal(faccessat(fd, "root.pxar.tmp_didx", F_OK, 0), -1);
	ds_manifest_free(m);
	close(fd);
}

static char *read_text(struct env *e, const char *rel)
{
	char *p = tu_pathf("%s/%s", e->base, rel);
	size_t len;
	char *t = (char *)tu_read(p, &len);

	free(p);
	return t;
}

static bool snapshot_finished(struct env *e, const char *id, const char *time)
{
	const struct ds_lookup *lk = ds_writer_lookup(e->w);
	struct ds_snapshot *s;
	size_t n;
	bool fin = false;

	assert_int_equal(ds_list_snapshots(lk, "", "vm", id, &s, &n), 0);
	for (size_t i = 0; i < n; i++)
		if (strcmp(s[i].time, time) == 0)
			fin = s[i].finished;
	free(s);
	return fin;
}

static void test_roundtrip_and_dedup(void **state)
{
	struct env *e = *state;
	struct ds_backup_stats st, st2;
	struct ds_backup *b, *b2;
	struct input in;
	char *owner;

	input_init(&in);
	assert_int_equal(ds_backup_begin(e->w, "", "vm", "100", T1, "user@pbs", NULL, &b), 0);
	write_archives(b, &in);
	assert_false(snapshot_finished(e, "100", "2024-01-01T00:00:00Z"));
	assert_int_equal(ds_backup_finish(b), 0);
	ds_backup_stats(b, &st);
	ds_backup_free(b);
	assert_true(snapshot_finished(e, "100", "2024-01-01T00:00:00Z"));
	check_snapshot(e, "vm/100/2024-01-01T00:00:00Z", NULL, &in);
	owner = read_text(e, "vm/100/owner");
	assert_string_equal(owner, "user@pbs\n");
	free(owner);

	assert_int_equal(st.bytes, in.img_len + in.efi_len + in.stream_len + in.conf_len);
	assert_true(st.chunks >= 4 + 4 + 4 + 1);
	assert_int_equal(st.new_chunks, st.chunks); /* random data: all distinct */
	assert_true(st.new_bytes > 0);

	/* Another owner is refused (PBS's check_backup_owner), the user's
	 * token too: only a token's user may use the token's group. */
	assert_int_equal(ds_backup_begin(e->w, "", "vm", "100", T1 + 60, "other@pbs!tok", NULL,
					 &b2), -EPERM);
	assert_int_equal(ds_backup_begin(e->w, "", "vm", "100", T1 + 60, "user@pbs!tok", NULL,
					 &b2), -EPERM);
	/* The same data again, no owner given: all chunks deduplicated, the
	 * owner file untouched (written once, at group creation). */
	assert_int_equal(ds_backup_begin(e->w, "", "vm", "100", T1 + 60, NULL, NULL, &b2), 0);
	write_archives(b2, &in);
	assert_int_equal(ds_backup_finish(b2), 0);
	ds_backup_stats(b2, &st2);
	ds_backup_free(b2);
	assert_int_equal(st2.chunks, st.chunks);
	assert_int_equal(st2.bytes, st.bytes);
	assert_int_equal(st2.new_chunks, 0);
	assert_int_equal(st2.new_bytes, 0);
	owner = read_text(e, "vm/100/owner");
	assert_string_equal(owner, "user@pbs\n");
	free(owner);
	check_snapshot(e, "vm/100/2024-01-01T00:01:00Z", NULL, &in);

	/* A snapshot that exists is refused and left alone. */
	assert_int_equal(ds_backup_begin(e->w, "", "vm", "100", T1, NULL, NULL, &b), -EEXIST);
	check_snapshot(e, "vm/100/2024-01-01T00:00:00Z", NULL, &in);
	input_free(&in);
}

static void test_refusals_and_unfinished(void **state)
{
	struct env *e = *state;
	struct ds_archive_writer *aw;
	struct ds_backup *b, *b2;
	struct stat st;
	char *p, *owner;

	assert_int_equal(ds_backup_begin(e->w, "", "vm", "200", T1, "nobody", NULL, &b), -EINVAL);
	assert_int_equal(ds_backup_begin(e->w, "", "xx", "200", T1, NULL, NULL, &b), -EINVAL);
	assert_int_equal(ds_backup_begin(e->w, "", "vm", "../200", T1, NULL, NULL, &b), -EINVAL);
	assert_int_equal(ds_backup_begin(e->w, "a//b", "vm", "200", T1, NULL, NULL, &b), -EINVAL);
	assert_int_equal(ds_backup_begin(e->w, "", "vm", "200", 0, NULL, NULL, &b), -EINVAL);
	p = tu_pathf("%s/vm/200", e->base);
	assert_int_equal(stat(p, &st), -1); /* nothing created by a refusal */
	free(p);

	/* Freed without finish: the snapshot directory goes, the group stays. */
	assert_int_equal(ds_backup_begin(e->w, "", "vm", "200", T1, NULL, NULL, &b), 0);
	/* A second backup of the same snapshot while the first runs. */
	assert_int_equal(ds_backup_begin(e->w, "", "vm", "200", T1, NULL, NULL, &b2), -EEXIST);
	assert_int_equal(ds_backup_add_blob(b, "a.conf.blob", (const uint8_t *)"x", 1), 0);
	assert_int_equal(ds_backup_fixed_begin(b, "d.img.fidx", 0, CS, &aw), 0);
	assert_int_equal(ds_archive_write(aw, "abc", 3), 0);
	ds_archive_abort(aw);
	ds_archive_abort(NULL);
	assert_int_equal(ds_backup_dynamic_begin(b, "r.pxar.didx", 64 * 1024, &aw), 0);
	assert_int_equal(ds_archive_write(aw, "abc", 3), 0);
	ds_archive_abort(aw);
	p = tu_pathf("%s/vm/200/2024-01-01T00:00:00Z", e->base);
	assert_int_equal(stat(p, &st), 0);
	assert_false(snapshot_finished(e, "200", "2024-01-01T00:00:00Z"));
	ds_backup_free(b);
	assert_int_equal(stat(p, &st), -1);
	assert_int_equal(errno, ENOENT);
	free(p);
	owner = read_text(e, "vm/200/owner");
	assert_string_equal(owner, "root@pam\n"); /* DS_DEFAULT_OWNER */
	free(owner);
	ds_backup_free(NULL);

	/* The time is free again. */
	assert_int_equal(ds_backup_begin(e->w, "", "vm", "200", T1, NULL, NULL, &b), 0);
	assert_int_equal(ds_backup_finish(b), 0);
	ds_backup_free(b);
	assert_true(snapshot_finished(e, "200", "2024-01-01T00:00:00Z"));
}

/* mkdir-style creation, forget, removal of groups and namespaces, and the
 * cleanup of temp files interrupted writers left (spec §1.7.2, §1.8). */
static void test_forget_remove_cleanup(void **state)
{
	struct env *e = *state;
	struct ds_backup *b;
	struct stat st;
	char *p;
	int fd;

	assert_int_equal(ds_snapshot_create(e->w, "x/y", "ct", "300", "2024-01-01T00:00:00Z", NULL), 0);
	assert_int_equal(ds_snapshot_create(e->w, "x/y", "ct", "300", "2024-01-01T00:00:00Z", NULL),
			 -EEXIST);
	assert_int_equal(ds_snapshot_create(e->w, "", "ct", "300", "yesterday", NULL), -EINVAL);
	/* PBS's backup-time is at least 1, as for ds_backup_begin */
	assert_int_equal(ds_snapshot_create(e->w, "", "ct", "301", "1970-01-01T00:00:00Z", NULL),
			 -EINVAL);
	assert_int_equal(ds_snapshot_create(e->w, "", "ct", "301", "1969-12-31T23:59:59Z", NULL),
			 -EINVAL);
	p = tu_pathf("%s/ct/301", e->base);
	assert_int_equal(stat(p, &st), -1); /* refused before the group was made */
	free(p);
	assert_int_equal(ds_snapshot_create(e->w, "", "ct", "301", "1970-01-01T00:00:01Z", NULL), 0);
	assert_int_equal(ds_group_create(e->w, "x/y", "ct", "300", NULL), 0); /* mkdir -p */
	/* a group with a snapshot is not empty; its owner file is no content */
	assert_int_equal(ds_group_remove(e->w, "x/y", "ct", "300"), -ENOTEMPTY);
	assert_int_equal(ds_ns_remove(e->w, "x/y"), -ENOTEMPTY);

	/* temp files as an interrupted writer leaves them; cleanup takes them
	 * only when no one holds the snapshot's lock */
	p = tu_pathf("%s/ns/x/ns/y/ct/300/2024-01-01T00:00:00Z/d.img.tmp_fidx", e->base);
	fd = open(p, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
	free(p);
	assert_int_equal(ds_backup_open(e->w, "ns/x/ns/y/ct/300/2024-01-01T00:00:00Z", NULL, &b), 0);
	assert_int_equal(ds_snapshot_cleanup(e->w, "ns/x/ns/y/ct/300/2024-01-01T00:00:00Z"), -EBUSY);
	assert_int_equal(ds_snapshot_forget(e->w, "ns/x/ns/y/ct/300/2024-01-01T00:00:00Z"), -EBUSY);
	ds_backup_free(b); /* opened, not begun: the snapshot stays */
	p = tu_pathf("%s/ns/x/ns/y/ct/300/2024-01-01T00:00:00Z/index.json.tmp_AbC123", e->base);
	fd = open(p, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_true(ds_datastore_cleanup(e->w) >= 2);
	assert_int_equal(stat(p, &st), -1);
	free(p);
	p = tu_pathf("%s/ns/x/ns/y/ct/300/2024-01-01T00:00:00Z/d.img.tmp_fidx", e->base);
	assert_int_equal(stat(p, &st), -1);
	free(p);

	/* protected: EPERM; then forgotten, and the group and namespaces go */
	assert_int_equal(ds_snapshot_set_protected(e->w, "ns/x/ns/y/ct/300/2024-01-01T00:00:00Z", true),
			 0);
	assert_int_equal(ds_snapshot_forget(e->w, "ns/x/ns/y/ct/300/2024-01-01T00:00:00Z"), -EPERM);
	assert_int_equal(ds_snapshot_set_protected(e->w, "ns/x/ns/y/ct/300/2024-01-01T00:00:00Z", false),
			 0);
	assert_int_equal(ds_snapshot_forget(e->w, "ns/x/ns/y/ct/300/2024-01-01T00:00:00Z"), 0);
	assert_int_equal(ds_group_remove(e->w, "x/y", "ct", "300"), 0);
	p = tu_pathf("%s/ns/x/ns/y/ct/300", e->base);
	assert_int_equal(stat(p, &st), -1);
	free(p);
	assert_int_equal(ds_ns_remove(e->w, "x"), -ENOTEMPTY); /* y is still there */
	assert_int_equal(ds_ns_remove(e->w, "x/y"), 0);
	assert_int_equal(ds_ns_remove(e->w, "x"), 0);
	p = tu_pathf("%s/ns/x", e->base);
	assert_int_equal(stat(p, &st), -1);
	free(p);
}

/* ds_create_file_at: all or nothing, never over an existing file. */
static void test_create_file_at(void **state)
{
	struct env *e = *state;
	int dfd = open(e->base, O_RDONLY | O_DIRECTORY);
	char *p;
	struct stat st;

	assert_true(dfd >= 0);
	assert_int_equal(ds_create_file_at(dfd, "cf-test", "hello", 5, 0644, true), 0);
	assert_int_equal(ds_create_file_at(dfd, "cf-test", "other", 5, 0644, false), -EEXIST);
	p = tu_pathf("%s/cf-test", e->base);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 5);
	assert_int_equal(st.st_mode & 0777, 0644);
	unlink(p);
	free(p);
	close(dfd);
}

static void test_encrypted_notes_protected(void **state)
{
	struct env *e = *state;
	const char *snaprel = "ns/sec/vm/300/2024-01-01T00:00:00Z";
	const struct ds_lookup *lk = ds_writer_lookup(e->w);
	uint8_t key[DS_CRYPT_KEY_LEN], key2[DS_CRYPT_KEY_LEN];
	char fp[DS_FINGERPRINT_STR_LEN], *sig;
	struct ds_crypt *c, *c2;
	struct ds_manifest *m;
	struct ds_backup *b;
	struct ds_strv files = { 0 };
	struct input in;
	bool prot;
	int fd;

	input_init(&in);
	assert_int_equal(ds_crypt_random_key(key), 0);
	assert_int_equal(ds_crypt_random_key(key2), 0);
	assert_int_equal(ds_crypt_new(key, &c), 0);
	assert_int_equal(ds_crypt_new(key2, &c2), 0);
	/* A namespace that does not exist yet is created. */
	assert_int_equal(ds_backup_begin(e->w, "sec", "vm", "300", T1, NULL, c, &b), 0);
	write_archives(b, &in);
	assert_int_equal(ds_backup_finish(b), 0);
	ds_backup_free(b);
	check_snapshot(e, snaprel, c, &in);

	fd = openat(ds_writer_basefd(e->w), snaprel, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(ds_manifest_load(fd, &m), 0); /* the manifest is never encrypted */
	assert_non_null(ds_manifest_signature(m));
	ds_crypt_fingerprint_str(c, fp);
	assert_string_equal(ds_manifest_fingerprint(m), fp);
	assert_int_equal(ds_manifest_verify(m, c), 0);
	assert_int_equal(ds_manifest_verify(m, c2), -EKEYREJECTED);
	sig = strdup(ds_manifest_signature(m));
	ds_manifest_free(m);

	/* Notes live in "unprotected": the signature stays valid. */
	assert_int_equal(ds_snapshot_set_notes(e->w, snaprel, "first line\nsecond"), 0);
	assert_int_equal(ds_manifest_load(fd, &m), 0);
	assert_string_equal(ds_manifest_notes(m), "first line\nsecond");
	assert_string_equal(ds_manifest_signature(m), sig);
	assert_int_equal(ds_manifest_verify(m, c), 0);
	assert_int_equal(ds_manifest_file_count(m), 5);
	ds_manifest_free(m);
	assert_int_equal(ds_snapshot_set_notes(e->w, snaprel, NULL), 0);
	assert_int_equal(ds_manifest_load(fd, &m), 0);
	assert_null(ds_manifest_notes(m));
	assert_int_equal(ds_manifest_verify(m, c), 0);
	ds_manifest_free(m);
	assert_int_equal(faccessat(fd, "index.json.tmp_XXXXXX", F_OK, 0), -1);

	assert_int_equal(ds_snapshot_set_protected(e->w, snaprel, true), 0);
	assert_int_equal(faccessat(fd, ".protected", F_OK, 0), 0);
	assert_int_equal(ds_list_snapshot_files(lk, snaprel, &files, &prot), 0);
	assert_true(prot);
	ds_strv_free(&files);
	assert_int_equal(ds_snapshot_set_protected(e->w, snaprel, true), 0);
	assert_int_equal(ds_snapshot_set_protected(e->w, snaprel, false), 0);
	assert_int_equal(faccessat(fd, ".protected", F_OK, 0), -1);
	assert_int_equal(ds_snapshot_set_protected(e->w, snaprel, false), 0);
	close(fd);

	assert_int_equal(ds_snapshot_set_notes(e->w, "vm/300/2024-01-01T00:00:00Z", "x"), -ENOENT);
	assert_int_equal(ds_snapshot_set_protected(e->w, "vm/300/2024-01-01T00:00:00Z", true),
			 -ENOENT);
	assert_int_equal(ds_snapshot_set_notes(e->w, "../x/vm/300/2024-01-01T00:00:00Z", "x"),
			 -EINVAL);
	assert_int_equal(ds_snapshot_set_protected(e->w, "ns/sec/vm/300", true), -EINVAL);

	free(sig);
	ds_crypt_free(c);
	ds_crypt_free(c2);
	input_free(&in);
}

/* Notes changed on the disk while a backup is open (PBS's notes update
 * takes the manifest lock alone, not the snapshot lock the backup holds)
 * survive its next commit; notes the backup sets afterwards win. The
 * commit used to write its own copy back over them. */
static void test_notes_kept(void **state)
{
	struct env *e = *state;
	const char *rel = "vm/211/2024-01-01T00:00:00Z";
	struct ds_manifest *m;
	struct ds_backup *b;
	char *p;
	int fd;

	assert_int_equal(ds_backup_begin(e->w, "", "vm", "211", T1, NULL, NULL, &b), 0);
	assert_int_equal(ds_backup_set_notes(b, "ours"), 0);
	assert_int_equal(ds_backup_add_blob(b, "a.conf.blob", (const uint8_t *)"x", 1), 0);
	assert_int_equal(ds_backup_finish(b), 0);
	assert_int_equal(ds_snapshot_set_notes(e->w, rel, "theirs"), 0);
	assert_int_equal(ds_backup_add_blob(b, "b.conf.blob", (const uint8_t *)"y", 1), 0);
	assert_int_equal(ds_backup_finish(b), 0);

	p = tu_pathf("%s/%s", e->base, rel);
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(p);
	assert_true(fd >= 0);
	assert_int_equal(ds_manifest_load(fd, &m), 0);
	assert_non_null(ds_manifest_notes(m));
	assert_string_equal(ds_manifest_notes(m), "theirs");
	ds_manifest_free(m);

	/* removed on the disk: stays removed */
	assert_int_equal(ds_snapshot_set_notes(e->w, rel, NULL), 0);
	assert_int_equal(ds_backup_add_blob(b, "c.conf.blob", (const uint8_t *)"z", 1), 0);
	assert_int_equal(ds_backup_finish(b), 0);
	assert_int_equal(ds_manifest_load(fd, &m), 0);
	assert_null(ds_manifest_notes(m));
	ds_manifest_free(m);

	/* set by the backup after theirs: the backup's */
	assert_int_equal(ds_snapshot_set_notes(e->w, rel, "theirs again"), 0);
	assert_int_equal(ds_backup_set_notes(b, "ours again"), 0);
	assert_int_equal(ds_backup_finish(b), 0);
	assert_int_equal(ds_manifest_load(fd, &m), 0);
	assert_string_equal(ds_manifest_notes(m), "ours again");
	ds_manifest_free(m);
	ds_backup_free(b);
	close(fd);
}

/* The mount commits each file of a snapshot by itself: a file put in place
 * is published by any commit that follows, also another file's. When its
 * own commit then fails (a later sync lost other data), dropping it would
 * leave the manifest on disk naming a missing file: it stays. A file no
 * stored manifest names goes. */
static void test_drop_published(void **state)
{
	struct env *e = *state;
	struct ds_manifest_file mf;
	struct ds_manifest *m;
	struct ds_backup *b;
	struct stat st;
	char *p;
	int fd;

	assert_int_equal(ds_backup_begin(e->w, "", "vm", "210", T1, NULL, NULL, &b), 0);
	assert_int_equal(ds_backup_add_blob(b, "a.conf.blob", (const uint8_t *)"x", 1), 0);
	assert_int_equal(ds_backup_add_blob(b, "b.conf.blob", (const uint8_t *)"y", 1), 0);
	assert_int_equal(ds_backup_finish(b), 0); /* a's commit, naming b too */
	assert_false(ds_backup_drop_file(b, "b.conf.blob"));
	assert_int_equal(ds_backup_add_blob(b, "c.conf.blob", (const uint8_t *)"z", 1), 0);
	assert_true(ds_backup_drop_file(b, "c.conf.blob"));
	assert_int_equal(ds_backup_finish(b), 0);
	ds_backup_free(b);

	p = tu_pathf("%s/vm/210/2024-01-01T00:00:00Z", e->base);
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(p);
	assert_true(fd >= 0);
	assert_int_equal(fstatat(fd, "b.conf.blob", &st, 0), 0);
	assert_int_equal(fstatat(fd, "c.conf.blob", &st, 0), -1);
	assert_int_equal(ds_manifest_load(fd, &m), 0);
	assert_int_equal(ds_manifest_find(m, "a.conf.blob", &mf), 0);
	assert_int_equal(ds_manifest_find(m, "b.conf.blob", &mf), 0);
	assert_true(ds_manifest_find(m, "c.conf.blob", &mf) < 0);
	ds_manifest_free(m);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_and_dedup),
		cmocka_unit_test(test_refusals_and_unfinished),
		cmocka_unit_test(test_encrypted_notes_protected),
		cmocka_unit_test(test_forget_remove_cleanup),
		cmocka_unit_test(test_create_file_at),
		cmocka_unit_test(test_notes_kept),
		cmocka_unit_test(test_drop_published),
	};

	return tu_run_group("backup", tests, setup, teardown);
}
