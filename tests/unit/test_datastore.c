/* Suite for store/datastore: the refusal table of DESIGN.md, handles that
 * outlive a state change, descriptors closed after the last handle, the
 * writers' shared .lock, chunk puts and active-operations tracking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "store/activeops.h"
#include "store/config.h"
#include "store/crypt.h"
#include "store/datastore.h"
#include "store/util.h"
#include "testutil.h"

#define PLAIN_HEX "7caf236974f17406f7747d71566dd68784fbcac15f894629d099c50471ba43e0"
#define PLAIN_LEN 3413
#define NO_SUCH_UUID "0badc0de-0000-4000-8000-00000000dead"

/* A datastore with just .chunks and .lock (no prefix directories). */
static char *mini_store(void)
{
	char *base = tu_tmpdir();
	char *p = tu_pathf("%s/.chunks", base);
	int fd;

	assert_int_equal(mkdir(p, 0750), 0);
	free(p);
	p = tu_pathf("%s/.lock", base);
	fd = open(p, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
	free(p);
	return base;
}

static void set_cfg(struct ds_datastore_cfg *cfg, enum ds_maintenance m, const char *backing)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->maintenance = m;
	cfg->backing_device = (char *)backing;
	cfg->maintenance_message = m ? (char *)"testing" : NULL;
}

static bool configure(struct ds_datastore *ds, enum ds_maintenance m, const char *backing)
{
	struct ds_datastore_cfg cfg;

	set_cfg(&cfg, m, backing);
	return ds_datastore_configure(ds, &cfg);
}

/* Open descriptors of this process on base or below it. */
static int fds_under(const char *path)
{
	DIR *d = opendir("/proc/self/fd");
	char base[PATH_MAX];
	size_t bl;
	struct dirent *de;
	int n = 0;

	/* /proc shows resolved paths: compare with the resolved base. */
	assert_non_null(realpath(path, base));
	bl = strlen(base);
	assert_non_null(d);
	while ((de = readdir(d))) {
		char link[300], target[PATH_MAX];
		ssize_t l;

		if (de->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		l = readlink(link, target, sizeof(target) - 1);
		if (l < 0)
			continue;
		target[l] = '\0';
		if (strncmp(target, base, bl) == 0 && (target[bl] == '\0' || target[bl] == '/'))
			n++;
	}
	closedir(d);
	return n;
}

struct row {
	const char *what;
	enum ds_maintenance m;
	const char *backing;
	int lookup, io, reader, writer;
};

static void test_refusal_table(void **state)
{
	static const struct row rows[] = {
		{ "none", DS_MAINT_NONE, NULL, 0, 0, 0, 0 },
		{ "read-only", DS_MAINT_READ_ONLY, NULL, 0, 0, 0, -EROFS },
		{ "offline", DS_MAINT_OFFLINE, NULL, 0, -ENXIO, -ENXIO, -ENXIO },
		{ "unmount", DS_MAINT_UNMOUNT, NULL, 0, -EBUSY, -EBUSY, -EBUSY },
		{ "delete", DS_MAINT_DELETE, NULL, -ENOENT, 0, -ENOENT, -ENOENT },
		{ "s3-refresh", DS_MAINT_S3_REFRESH, NULL, 0, -ENXIO, -ENXIO, -ENXIO },
		{ "not mounted", DS_MAINT_NONE, NO_SUCH_UUID, 0, -ENOMEDIUM, -ENOMEDIUM,
		  -ENOMEDIUM },
		{ "ro, not mounted", DS_MAINT_READ_ONLY, NO_SUCH_UUID, 0, -ENOMEDIUM, -ENOMEDIUM,
		  -ENOMEDIUM },
		{ "delete, not mounted", DS_MAINT_DELETE, NO_SUCH_UUID, -ENOENT, 0, -ENOENT,
		  -ENOENT },
		{ "none again", DS_MAINT_NONE, NULL, 0, 0, 0, 0 },
	};
	char *base = mini_store();
	struct ds_datastore *ds;

	(void)state;
	assert_false(ds_backing_device_mounted("store1", NO_SUCH_UUID, NULL));
	assert_int_equal(ds_datastore_new("store1", "relative/path", &ds), -EINVAL);
	assert_int_equal(ds_datastore_new("store1", base, &ds), 0);
	assert_string_equal(ds_datastore_name(ds), "store1");
	assert_string_equal(ds_datastore_base(ds), base);
	for (size_t i = 0; i < DS_ARRAY_SIZE(rows); i++) {
		const struct row *w = &rows[i];
		struct ds_lookup *lk = NULL;
		struct ds_reader *rd = NULL;
		struct ds_writer *wr = NULL;
		int r;

		print_message("row: %s\n", w->what);
		configure(ds, w->m, w->backing);
		assert_int_equal(ds_datastore_maintenance(ds), w->m);
		assert_int_equal(ds_datastore_read_refusal(ds), w->reader);
		assert_int_equal(ds_datastore_write_refusal(ds), w->writer);
		assert_int_equal(ds_lookup_acquire(ds, &lk), w->lookup);
		if (w->lookup == 0) {
			assert_ptr_equal(ds_lookup_datastore(lk), ds);
			assert_int_equal(ds_lookup_check_io(lk), w->io);
			r = ds_lookup_open_dir(lk, "");
			if (w->io < 0) {
				assert_int_equal(r, w->io);
			} else {
				assert_true(r >= 0);
				close(r);
				assert_int_equal(ds_lookup_open_dir(lk, "no-such-dir"), -ENOENT);
			}
			ds_lookup_release(lk);
		}
		assert_int_equal(ds_reader_acquire(ds, &rd), w->reader);
		assert_int_equal(ds_writer_acquire(ds, &wr), w->writer);
		ds_writer_release(wr);
		ds_reader_release(rd);
		if (w->reader < 0)
			assert_int_equal(fds_under(base), 0);
	}
	ds_datastore_free(ds);
	tu_rmtree(base);
	free(base);
}

static void test_configure_result(void **state)
{
	char *base = mini_store();
	struct ds_datastore *ds;
	struct ds_reader *rd;
	struct ds_writer *wr;

	(void)state;
	assert_int_equal(ds_datastore_new("store1", base, &ds), 0);
	assert_false(ds_datastore_configure(ds, NULL));
	assert_false(configure(ds, DS_MAINT_NONE, NULL));
	assert_true(configure(ds, DS_MAINT_READ_ONLY, NULL));
	assert_false(configure(ds, DS_MAINT_READ_ONLY, NULL));
	assert_true(configure(ds, DS_MAINT_OFFLINE, NULL));
	/* Same errnos for every kind of handle: nothing to invalidate. */
	assert_false(configure(ds, DS_MAINT_S3_REFRESH, NULL));
	assert_true(configure(ds, DS_MAINT_UNMOUNT, NULL));
	assert_true(configure(ds, DS_MAINT_NONE, NO_SUCH_UUID));
	assert_true(configure(ds, DS_MAINT_DELETE, NULL));
	assert_true(ds_datastore_configure(ds, NULL));
	assert_false(ds_datastore_configure(ds, NULL));

	/* mount -o ro: writers refused regardless of maintenance. */
	ds_datastore_set_read_only(ds, true);
	assert_int_equal(ds_writer_acquire(ds, &wr), -EROFS);
	assert_int_equal(ds_reader_acquire(ds, &rd), 0);
	ds_reader_release(rd);
	assert_false(configure(ds, DS_MAINT_READ_ONLY, NULL));
	assert_false(ds_datastore_configure(ds, NULL));
	assert_int_equal(ds_datastore_write_refusal(ds), -EROFS);
	ds_datastore_set_read_only(ds, false);
	assert_int_equal(ds_writer_acquire(ds, &wr), 0);
	ds_writer_release(wr);
	ds_datastore_free(ds);
	tu_rmtree(base);
	free(base);
}

/* Handles granted before the store went offline keep working; the last
 * release closes every descriptor under the base. */
static void test_handles_outlive_offline(void **state)
{
	char *base = tu_pathf("%s/pbs-store-a", tu_fixtures());
	struct ds_digest d;
	struct ds_datastore *ds;
	struct ds_lookup *lk, *lk2;
	struct ds_reader *rd, *rd2;
	uint8_t *buf = malloc(DS_MAX_CHUNK_SIZE), *raw;
	size_t len, raw_len;
	uint64_t files, bytes;
	unsigned nr, nw;
	char hex[65];
	int fd;

	(void)state;
	assert_int_equal(ds_digest_from_hex(PLAIN_HEX, &d), 0);
	assert_int_equal(ds_datastore_new("pbs-store-a", base, &ds), 0);
	assert_int_equal(ds_lookup_acquire(ds, &lk), 0);
	assert_int_equal(fds_under(base), 0); /* lookups hold nothing */
	assert_int_equal(ds_reader_acquire(ds, &rd), 0);
	assert_true(fds_under(base) > 0);
	ds_datastore_counts(ds, &nr, &nw);
	assert_int_equal(nr, 1);
	assert_int_equal(nw, 0);

	assert_true(configure(ds, DS_MAINT_OFFLINE, NULL));
	assert_int_equal(ds_reader_acquire(ds, &rd2), -ENXIO);
	assert_int_equal(ds_lookup_acquire(ds, &lk2), 0);
	assert_int_equal(ds_lookup_check_io(lk2), -ENXIO);
	assert_int_equal(ds_lookup_open_dir(lk2, "vm"), -ENXIO);
	ds_lookup_release(lk2);
	/* The older lookup keeps the state it was granted under. */
	assert_int_equal(ds_lookup_check_io(lk), 0);
	fd = ds_lookup_open_dir(lk, "vm");
	assert_true(fd >= 0);
	close(fd);
	ds_lookup_release(lk);

	assert_int_equal(ds_reader_load_chunk(rd, &d, NULL, PLAIN_LEN, buf, DS_MAX_CHUNK_SIZE,
					      &len), 0);
	assert_int_equal(len, PLAIN_LEN);
	tu_sha256_hex(buf, len, hex);
	assert_string_equal(hex, PLAIN_HEX);
	assert_int_equal(ds_reader_read_raw_chunk(rd, &d, &raw, &raw_len), 0);
	free(raw);
	assert_int_equal(ds_reader_count_chunks(rd, &files, &bytes), 0);
	assert_int_equal(files, 82); /* expect.json chunk_store */
	assert_int_equal(bytes, 14533868);
	assert_true(fds_under(base) > 0);
	ds_reader_release(rd);
	assert_int_equal(fds_under(base), 0);
	ds_datastore_counts(ds, &nr, &nw);
	assert_int_equal(nr, 0);

	/* Back online: a released reader leaves the store open (PBS caches
	 * it); going offline with no handle closes it at once. */
	assert_true(ds_datastore_configure(ds, NULL));
	assert_int_equal(ds_reader_acquire(ds, &rd), 0);
	ds_reader_release(rd);
	assert_true(fds_under(base) > 0);
	assert_true(configure(ds, DS_MAINT_UNMOUNT, NULL));
	assert_int_equal(fds_under(base), 0);
	ds_datastore_free(ds);
	free(buf);
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

/* Child: F_SETLK F_WRLCK on path; 0 granted, 1 refused, 2 error. With
 * ready/hold pipes it keeps the lock until hold is written to. */
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
		if (ready_w >= 0 && (write(ready_w, "r", 1) != 1 || read(hold_r, &b, 1) < 0))
			_exit(2);
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

static int try_gc_lock(const char *lock)
{
	return child_status(child_wrlock(lock, -1, -1));
}

static void test_writer_lock(void **state)
{
	char *base = mini_store(), *lock = tu_pathf("%s/.lock", base);
	struct ds_datastore *ds;
	struct ds_reader *rd;
	struct ds_writer *w1, *w2;
	unsigned nr, nw;
	int ready[2], hold[2];
	pid_t pid;

	(void)state;
	assert_int_equal(ds_datastore_new("store1", base, &ds), 0);
	assert_int_equal(ds_reader_acquire(ds, &rd), 0);
	assert_int_equal(try_gc_lock(lock), 0); /* readers take no lock */
	assert_int_equal(ds_writer_acquire(ds, &w1), 0);
	assert_int_equal(try_gc_lock(lock), 1);
	assert_int_equal(ds_writer_acquire(ds, &w2), 0);
	ds_datastore_counts(ds, &nr, &nw);
	assert_int_equal(nr, 1);
	assert_int_equal(nw, 2);
	ds_writer_release(w1);
	assert_int_equal(try_gc_lock(lock), 1);
	ds_writer_release(w2);
	assert_int_equal(try_gc_lock(lock), 0);

	/* GC in another process holds the exclusive lock: writers -EBUSY,
	 * readers still granted. */
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(hold), 0);
	pid = child_wrlock(lock, ready[1], hold[0]);
	wait_byte(ready[0]);
	assert_int_equal(ds_writer_acquire(ds, &w1), -EBUSY);
	ds_datastore_counts(ds, &nr, &nw);
	assert_int_equal(nw, 0);
	assert_int_equal(write(hold[1], "x", 1), 1);
	assert_int_equal(child_status(pid), 0);
	assert_int_equal(ds_writer_acquire(ds, &w1), 0);
	assert_int_equal(try_gc_lock(lock), 1);
	ds_writer_release(w1);
	ds_reader_release(rd);
	for (int i = 0; i < 2; i++) {
		close(ready[i]);
		close(hold[i]);
	}
	ds_datastore_free(ds);
	free(lock);
	tu_rmtree(base);
	free(base);
}

static void test_put_chunk(void **state)
{
	/* spec §2.9 */
	static const char *enc_key =
		"28cdb1a3bef39396c3860e00d448fe7a0efd8244486ab6feb30457681d31597e";
	char *base = mini_store();
	struct ds_datastore_cfg cfg;
	struct ds_datastore *ds;
	struct ds_writer *w;
	const struct ds_reader *rd;
	struct ds_crypt *c;
	struct ds_digest d;
	uint8_t key[32], out[64];
	uint64_t files;
	bool existed = true;
	size_t len;
	char hex[65];

	(void)state;
	assert_int_equal(ds_hex_decode(enc_key, key, sizeof(key)), 0);
	assert_int_equal(ds_crypt_new(key, &c), 0);
	assert_int_equal(ds_datastore_new("store1", base, &ds), 0);
	assert_int_equal(ds_writer_acquire(ds, &w), 0);
	assert_false(ds_writer_sync_each(w));
	rd = ds_writer_reader(w);
	assert_ptr_equal(ds_reader_lookup(rd), ds_writer_lookup(w));

	assert_int_equal(ds_writer_put_chunk(w, (const uint8_t *)"hello", 5, NULL, &d, &existed),
			 0);
	assert_false(existed);
	ds_digest_to_hex(&d, hex);
	assert_string_equal(hex, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
	assert_int_equal(ds_writer_put_chunk(w, (const uint8_t *)"hello", 5, NULL, &d, &existed),
			 0);
	assert_true(existed);
	assert_int_equal(ds_writer_put_chunk(w, (const uint8_t *)"hello", 5, c, &d, &existed), 0);
	assert_false(existed);
	ds_digest_to_hex(&d, hex);
	assert_string_equal(hex, "2c5ad03c8f9335f35f1f0ad59e40bba52664b9f7f8586b0bf49658c963f2b33a");
	assert_int_equal(ds_writer_put_chunk(w, (const uint8_t *)"hello", 5, c, &d, NULL), 0);
	assert_int_equal(ds_reader_load_chunk(rd, &d, c, 5, out, sizeof(out), &len), 0);
	assert_memory_equal(out, "hello", 5);
	assert_int_equal(ds_reader_load_chunk(rd, &d, NULL, 5, out, sizeof(out), &len), -ENOKEY);
	assert_int_equal(ds_writer_put_chunk(w, out, 0, NULL, &d, NULL), -EINVAL);
	assert_int_equal(ds_reader_count_chunks(rd, &files, NULL), 0);
	assert_int_equal(files, 2);
	assert_true(ds_writer_basefd(w) >= 0);
	ds_writer_release(w);

	set_cfg(&cfg, DS_MAINT_NONE, NULL);
	cfg.sync_level = (char *)"file";
	ds_datastore_configure(ds, &cfg);
	assert_int_equal(ds_writer_acquire(ds, &w), 0);
	assert_true(ds_writer_sync_each(w));
	ds_writer_release(w);
	ds_datastore_free(ds);
	ds_crypt_free(c);
	tu_rmtree(base);
	free(base);
}

/* Our entry in the active-operations file: read and write counts. */
static void our_entry(const char *path, json_int_t *ret_read, json_int_t *ret_write)
{
	json_t *arr = json_load_file(path, 0, NULL), *e;
	size_t i;
	int found = 0;

	assert_true(json_is_array(arr));
	json_array_foreach(arr, i, e) {
		json_t *ops = json_object_get(e, "active_operations");

		if (json_integer_value(json_object_get(e, "pid")) != getpid())
			continue;
		found++;
		assert_int_equal(json_integer_value(json_object_get(e, "starttime")),
				 ds_process_starttime(getpid()));
		*ret_read = json_integer_value(json_object_get(ops, "read"));
		*ret_write = json_integer_value(json_object_get(ops, "write"));
	}
	assert_int_equal(found, 1);
	json_decref(arr);
}

static void test_track_operations(void **state)
{
	char *base = mini_store(), *ops = tu_tmpdir();
	char *file = tu_pathf("%s/store1", ops);
	struct ds_datastore *ds;
	struct ds_reader *rd, *rd2;
	struct ds_writer *w;
	json_int_t r, wr;
	int64_t gr, gw;

	(void)state;
	assert_int_equal(ds_datastore_new("store1", base, &ds), 0);
	/* Off by default: nothing written. */
	assert_int_equal(ds_reader_acquire(ds, &rd), 0);
	ds_reader_release(rd);
	assert_int_equal(access(file, F_OK), -1);

	ds_datastore_track_operations(ds, true, ops);
	/* The first operation of a kind is in the file before acquire
	 * returns: PBS must never see zero while one runs. */
	assert_int_equal(ds_reader_acquire(ds, &rd), 0);
	our_entry(file, &r, &wr);
	assert_int_equal(r, 1);
	assert_int_equal(wr, 0);
	assert_int_equal(ds_writer_acquire(ds, &w), 0);
	our_entry(file, &r, &wr);
	assert_int_equal(r, 1);
	assert_int_equal(wr, 1);
	assert_int_equal(ds_activeops_get(ops, "store1", &gr, &gw), 0);
	assert_int_equal(gr, 1);
	assert_int_equal(gw, 1);
	/* Further counts and the drop to zero wait for a sync. */
	assert_int_equal(ds_reader_acquire(ds, &rd2), 0);
	our_entry(file, &r, &wr);
	assert_int_equal(r, 1);
	ds_datastore_sync_operations(ds);
	our_entry(file, &r, &wr);
	assert_int_equal(r, 2);
	assert_int_equal(wr, 1);
	ds_reader_release(rd2);
	ds_reader_release(rd);
	our_entry(file, &r, &wr);
	assert_int_equal(r, 2);
	ds_datastore_sync_operations(ds);
	our_entry(file, &r, &wr);
	assert_int_equal(r, 0);
	assert_int_equal(wr, 1);
	ds_writer_release(w);
	/* Zero again, then busy again before any sync: at once. */
	assert_int_equal(ds_reader_acquire(ds, &rd), 0);
	ds_reader_release(rd);
	ds_datastore_sync_operations(ds);
	our_entry(file, &r, &wr);
	assert_int_equal(r, 0);
	assert_int_equal(wr, 0);
	assert_int_equal(ds_reader_acquire(ds, &rd), 0);
	our_entry(file, &r, &wr);
	assert_int_equal(r, 1);
	ds_reader_release(rd);
	/* A refused handle is not counted. */
	ds_datastore_sync_operations(ds);
	configure(ds, DS_MAINT_OFFLINE, NULL);
	assert_int_equal(ds_reader_acquire(ds, &rd), -ENXIO);
	our_entry(file, &r, &wr);
	assert_int_equal(r, 0);
	/* What is still unpublished goes out when the datastore is freed. */
	configure(ds, DS_MAINT_NONE, NULL);
	assert_int_equal(ds_reader_acquire(ds, &rd), 0);
	assert_int_equal(ds_reader_acquire(ds, &rd2), 0);
	ds_reader_release(rd2);
	ds_reader_release(rd);
	our_entry(file, &r, &wr);
	assert_int_equal(r, 1);
	ds_datastore_free(ds);
	our_entry(file, &r, &wr);
	assert_int_equal(r, 0);
	assert_int_equal(wr, 0);
	free(file);
	tu_rmtree(ops);
	free(ops);
	tu_rmtree(base);
	free(base);
}

/* Whether directory descriptor fd is the directory path. */
static bool same_dir(int fd, const char *path)
{
	struct stat a, b;

	return fd >= 0 && fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

/* A path change in the config moves the store: handles acquired from then
 * on use the new directory and its chunk store; handles held across it
 * keep the old ones (a writer its shared .lock there), which are closed
 * when the last of them goes. */
static void test_path_change(void **state)
{
	char *a = mini_store(), *b = mini_store();
	struct ds_datastore_cfg cfg;
	struct ds_datastore *ds;
	struct ds_lookup *lk_a, *lk_b;
	struct ds_reader *rd_a, *rd_b;
	struct ds_writer *w_a, *w_b;
	struct ds_digest d;
	uint8_t out[16];
	size_t len;
	int fd;

	(void)state;
	assert_int_equal(ds_datastore_new("store1", a, &ds), 0);
	assert_int_equal(ds_writer_acquire(ds, &w_a), 0);
	assert_int_equal(ds_writer_put_chunk(w_a, (const uint8_t *)"hello", 5, NULL, &d, NULL), 0);
	assert_int_equal(ds_reader_acquire(ds, &rd_a), 0);
	assert_int_equal(ds_lookup_acquire(ds, &lk_a), 0);

	set_cfg(&cfg, DS_MAINT_NONE, NULL);
	cfg.name = (char *)"store1";
	cfg.path = a;
	assert_int_equal(ds_datastore_configure(ds, &cfg), 0);
	cfg.path = b;
	assert_int_equal(ds_datastore_configure(ds, &cfg), DS_CONFIGURE_PATH);
	assert_string_equal(ds_datastore_base(ds), b);
	assert_int_equal(ds_datastore_configure(ds, &cfg), 0);
	/* No path (as the mount's stand-in for a removed section): no move. */
	cfg.path = NULL;
	assert_int_equal(ds_datastore_configure(ds, &cfg), 0);
	assert_string_equal(ds_datastore_base(ds), b);

	/* Old handles: a, its chunk. */
	assert_int_equal(ds_reader_load_chunk(rd_a, &d, NULL, 5, out, sizeof(out), &len), 0);
	assert_memory_equal(out, "hello", 5);
	fd = ds_lookup_open_dir(lk_a, "");
	assert_true(same_dir(fd, a));
	close(fd);
	/* New handles: b, without it; a writer there has b's .lock. */
	assert_int_equal(ds_reader_acquire(ds, &rd_b), 0);
	assert_int_equal(ds_reader_load_chunk(rd_b, &d, NULL, 5, out, sizeof(out), &len),
			 -ENOENT);
	assert_int_equal(ds_lookup_acquire(ds, &lk_b), 0);
	fd = ds_lookup_open_dir(lk_b, "");
	assert_true(same_dir(fd, b));
	close(fd);
	assert_int_equal(ds_writer_acquire(ds, &w_b), 0);
	assert_true(same_dir(ds_writer_basefd(w_b), b));
	assert_true(same_dir(ds_writer_basefd(w_a), a));
	{
		unsigned nr, nw;

		ds_datastore_counts(ds, &nr, &nw);
		assert_int_equal(nr, 2);
		assert_int_equal(nw, 2);
	}

	/* The old store stays open exactly as long as its handles. */
	ds_writer_release(w_a);
	assert_true(fds_under(a) > 0);
	ds_lookup_release(lk_a);
	ds_reader_release(rd_a);
	assert_int_equal(fds_under(a), 0);
	assert_true(fds_under(b) > 0);
	ds_writer_release(w_b);
	ds_reader_release(rd_b);
	ds_lookup_release(lk_b);
	ds_datastore_free(ds);
	assert_int_equal(fds_under(b), 0);
	tu_rmtree(a);
	tu_rmtree(b);
	free(a);
	free(b);
}

/* A path changed away and back (A, B, A) while a writer acquired at A
 * still runs: a writer acquired at A after the return must share the store
 * (and the one shared .lock descriptor) of the old one, since a POSIX
 * record lock dies with any close of the file by the process. With two
 * chunk stores on A, the first writer's release closed its .lock and let
 * garbage collection in under the second one. */
static void test_path_back(void **state)
{
	char *a = mini_store(), *b = mini_store();
	char lock[4096];
	struct ds_datastore_cfg cfg;
	struct ds_datastore *ds;
	struct ds_writer *w1, *w2;
	struct ds_reader *rd;
	struct ds_digest d;
	uint8_t out[16];
	size_t len;

	(void)state;
	snprintf(lock, sizeof(lock), "%s/.lock", a);
	assert_int_equal(ds_datastore_new("store1", a, &ds), 0);
	set_cfg(&cfg, DS_MAINT_NONE, NULL);
	cfg.name = (char *)"store1";
	cfg.path = a;
	assert_int_equal(ds_writer_acquire(ds, &w1), 0);
	assert_int_equal(try_gc_lock(lock), 1);
	cfg.path = b;
	assert_int_equal(ds_datastore_configure(ds, &cfg), DS_CONFIGURE_PATH);
	cfg.path = a;
	assert_int_equal(ds_datastore_configure(ds, &cfg), DS_CONFIGURE_PATH);
	assert_int_equal(ds_writer_acquire(ds, &w2), 0);
	assert_true(same_dir(ds_writer_basefd(w2), a));
	assert_int_equal(ds_writer_put_chunk(w2, (const uint8_t *)"again", 5, NULL, &d, NULL), 0);
	/* The first writer goes; the second still holds the lock. */
	ds_writer_release(w1);
	assert_int_equal(try_gc_lock(lock), 1);
	assert_int_equal(ds_reader_acquire(ds, &rd), 0);
	assert_int_equal(ds_reader_load_chunk(rd, &d, NULL, 5, out, sizeof(out), &len), 0);
	assert_memory_equal(out, "again", 5);
	ds_reader_release(rd);
	ds_writer_release(w2);
	assert_int_equal(try_gc_lock(lock), 0);
	ds_datastore_free(ds);
	assert_int_equal(fds_under(a), 0);
	assert_int_equal(fds_under(b), 0);
	tu_rmtree(a);
	tu_rmtree(b);
	free(a);
	free(b);
}

/* A path that turns relative while the store is in use: PBS refuses to
 * open such a store, so new readers and writers are refused with EINVAL
 * (after the maintenance mode's refusals) and lookups are granted from the
 * config only, rather than the old directory being served on. A handle held
 * across keeps working; the chunk store closes with it. The path made
 * absolute again, the store is served again. */
static void test_path_relative(void **state)
{
	char *a = mini_store();
	struct ds_datastore_cfg cfg;
	struct ds_datastore *ds;
	struct ds_lookup *lk;
	struct ds_reader *rd, *rd2;
	struct ds_writer *w;
	int fd;

	(void)state;
	assert_int_equal(ds_datastore_new("store1", a, &ds), 0);
	set_cfg(&cfg, DS_MAINT_NONE, NULL);
	cfg.name = (char *)"store1";
	cfg.path = a;
	assert_int_equal(ds_datastore_configure(ds, &cfg), 0);
	assert_int_equal(ds_reader_acquire(ds, &rd), 0);

	cfg.path = a + 1;
	assert_int_equal(ds_datastore_configure(ds, &cfg), DS_CONFIGURE_ACCESS);
	assert_int_equal(ds_datastore_configure(ds, &cfg), 0);
	assert_int_equal(ds_datastore_read_refusal(ds), -EINVAL);
	assert_int_equal(ds_reader_acquire(ds, &rd2), -EINVAL);
	assert_int_equal(ds_writer_acquire(ds, &w), -EINVAL);
	assert_int_equal(ds_lookup_acquire(ds, &lk), 0);
	assert_int_equal(ds_lookup_check_io(lk), -EINVAL);
	assert_int_equal(ds_lookup_open_dir(lk, ""), -EINVAL);
	ds_lookup_release(lk);
	/* The maintenance mode's refusal comes first, as in PBS. */
	cfg.maintenance = DS_MAINT_OFFLINE;
	assert_int_equal(ds_datastore_configure(ds, &cfg), DS_CONFIGURE_ACCESS);
	assert_int_equal(ds_datastore_read_refusal(ds), -ENXIO);
	cfg.maintenance = DS_MAINT_NONE;
	assert_int_equal(ds_datastore_configure(ds, &cfg), DS_CONFIGURE_ACCESS);
	assert_int_equal(ds_datastore_read_refusal(ds), -EINVAL);
	/* The handle held across still reads; its release closes a. */
	assert_true(fds_under(a) > 0);
	ds_reader_release(rd);
	assert_int_equal(fds_under(a), 0);

	cfg.path = a;
	assert_int_equal(ds_datastore_configure(ds, &cfg), DS_CONFIGURE_ACCESS);
	assert_int_equal(ds_datastore_read_refusal(ds), 0);
	assert_int_equal(ds_lookup_acquire(ds, &lk), 0);
	fd = ds_lookup_open_dir(lk, "");
	assert_true(same_dir(fd, a));
	close(fd);
	ds_lookup_release(lk);
	assert_int_equal(ds_writer_acquire(ds, &w), 0);
	ds_writer_release(w);
	ds_datastore_free(ds);
	tu_rmtree(a);
	free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refusal_table),
		cmocka_unit_test(test_configure_result),
		cmocka_unit_test(test_handles_outlive_offline),
		cmocka_unit_test(test_writer_lock),
		cmocka_unit_test(test_put_chunk),
		cmocka_unit_test(test_track_operations),
		cmocka_unit_test(test_path_change),
		cmocka_unit_test(test_path_back),
		cmocka_unit_test(test_path_relative),
	};

	tu_fixtures();
	return tu_run_group("datastore", tests, NULL, NULL);
}
