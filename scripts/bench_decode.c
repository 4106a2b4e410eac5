/* In-process decode rate for scripts/bench, item (8): dsfs's own ceiling.
 *
 *   bench_decode DATASTORE SNAPSHOT ARCHIVE THREADS
 *
 * Reads every chunk of ARCHIVE (an index file name as on disk, e.g.
 * disk.img.fidx) through a struct ds_reader exactly as the mount's loader
 * does: read the chunk file, check its CRC, decompress, check the digest and
 * length. THREADS workers take chunks in index order from a shared counter
 * (what sequential reading with prefetch on THREADS cores can reach). Each
 * chunk is then copied once (the copy-out a read reply does). No FUSE, no
 * chunk cache. A full-size zero chunk of an image is not loaded but copied
 * out of zeroed memory, as the mount answers it (its digest names its
 * bytes). Prints "BYTES SECONDS MIB_PER_S" on stdout; exits 1 on any
 * error (a damaged chunk included).
 *
 * Not part of dsfs: built by scripts/bench with cc against a build dir's
 * libdsfs_store.a. Unencrypted archives only. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/crypt.h"
#include "store/datastore.h"
#include "store/hierarchy.h"
#include "store/index.h"
#include "store/util.h"

struct job {
	const struct ds_reader *rd;
	const struct ds_index *idx;
	uint64_t zero_len; /* fixed index: its chunk size; else 0 */
	struct ds_digest zero;
	const uint8_t *zeros;
	atomic_size_t next;
	atomic_int err;
	atomic_ullong bytes;
};

static void *worker(void *arg)
{
	struct job *j = arg;
	uint8_t *buf = malloc(DS_MAX_CHUNK_SIZE), *out = malloc(DS_MAX_CHUNK_SIZE);
	size_t n = ds_index_count(j->idx), i;

	if (!buf || !out) {
		atomic_store(&j->err, -ENOMEM);
		goto out;
	}
	while ((i = atomic_fetch_add(&j->next, 1)) < n && !atomic_load(&j->err)) {
		struct ds_index_chunk ch;
		size_t len;
		int r;

		ds_index_chunk(j->idx, i, &ch);
		if (j->zero_len && ch.end - ch.start == j->zero_len &&
		    ds_digest_eq(&ch.digest, &j->zero)) {
			memcpy(out, j->zeros, j->zero_len);
			atomic_fetch_add(&j->bytes, j->zero_len);
			continue;
		}
		r = ds_reader_load_chunk(j->rd, &ch.digest, NULL, ch.end - ch.start, buf,
					 DS_MAX_CHUNK_SIZE, &len);
		if (r < 0) {
			fprintf(stderr, "bench_decode: chunk %zu: %s\n", i, strerror(-r));
			atomic_store(&j->err, r);
			break;
		}
		memcpy(out, buf, len);
		atomic_fetch_add(&j->bytes, len);
	}
out:
	free(buf);
	free(out);
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct ds_datastore *ds = NULL;
	struct ds_reader *rd = NULL;
	struct ds_index *idx = NULL;
	struct job j = { 0 };
	pthread_t th[64];
	int nth, fd = -1, r, started = 0;
	double t0, t1;

	if (argc != 5 || (nth = atoi(argv[4])) < 1 || nth > 64) {
		fputs("usage: bench_decode DATASTORE SNAPSHOT ARCHIVE THREADS(1..64)\n", stderr);
		return 2;
	}
	r = ds_datastore_new("bench", argv[1], &ds);
	if (r == 0)
		r = ds_reader_acquire(ds, &rd);
	if (r == 0) {
		fd = ds_open_snapshot(ds_reader_lookup(rd), argv[2]);
		r = fd < 0 ? fd : 0;
	}
	if (r == 0)
		r = ds_index_open(fd, argv[3], &idx);
	if (r < 0) {
		fprintf(stderr, "bench_decode: %s %s %s: %s\n", argv[1], argv[2], argv[3], strerror(-r));
		goto out;
	}
	j.rd = rd;
	j.idx = idx;
	if (ds_index_kind(idx) == DS_INDEX_FIXED) {
		uint8_t *z = calloc(1, ds_index_chunk_size(idx));

		if (!z) {
			r = -ENOMEM;
			goto out;
		}
		j.zero_len = ds_index_chunk_size(idx);
		ds_crypt_digest(NULL, z, j.zero_len, &j.zero);
		j.zeros = z;
	}
	t0 = now();
	for (; started < nth; started++) {
		if (pthread_create(&th[started], NULL, worker, &j) != 0) {
			atomic_store(&j.err, -EAGAIN);
			break;
		}
	}
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	t1 = now();
	r = atomic_load(&j.err);
	if (r == 0 && atomic_load(&j.bytes) != ds_index_size(idx)) {
		fprintf(stderr, "bench_decode: decoded %llu bytes, index says %llu\n",
			(unsigned long long)atomic_load(&j.bytes),
			(unsigned long long)ds_index_size(idx));
		r = -EBADMSG;
	}
	if (r == 0)
		printf("%llu %.4f %.1f\n", (unsigned long long)atomic_load(&j.bytes), t1 - t0,
		       (double)atomic_load(&j.bytes) / 1048576.0 / (t1 - t0));
out:
	free((void *)j.zeros);
	ds_index_free(idx);
	if (fd >= 0)
		close(fd);
	ds_reader_release(rd);
	ds_datastore_free(ds);
	return r < 0 ? 1 : 0;
}
