/* Deterministic data for scripts/bench (not part of dsfs).
 *
 *   bench_data image FILE BYTES         mixed image: 1/4 random, 1/2 text-like,
 *                                       1/4 zeros, in runs of 1..8 MiB units
 *   bench_data small DIR FILES          FILES small text files (0..1 KiB) in
 *                                       10 x 10 directories
 *   bench_data tree DIR BYTES           mixed tree: files of 512 B..16 MiB
 *                                       (log-uniform), each random, text-like
 *                                       or zeros (1/4, 1/2, 1/4 of the bytes),
 *                                       20 files per directory
 *
 * Same arguments, same bytes (own PRNG, fixed seeds, fixed mtimes). The
 * text never repeats, so deduplicating tools cannot shortcut it, and zstd
 * compresses it about 3x. Single-threaded, not thread-safe; exits 1 on any
 * error. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define MIB (1024 * 1024)
#define MTIME 1735689600 /* 2025-01-01T00:00:00Z */

static uint64_t rng_s[4];

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
static uint64_t rnd(void)
{
	uint64_t r = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;

	rng_s[2] ^= rng_s[0];
	rng_s[3] ^= rng_s[1];
	rng_s[1] ^= rng_s[2];
	rng_s[0] ^= rng_s[3];
	rng_s[2] ^= t;
	rng_s[3] = rotl(rng_s[3], 45);
	return r;
}

static void seed(uint64_t s)
{
	for (int i = 0; i < 4; i++) { /* splitmix64 */
		uint64_t z = (s += 0x9e3779b97f4a7c15ULL);

		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		rng_s[i] = z ^ (z >> 31);
	}
}

static void die(const char *what)
{
	fprintf(stderr, "bench_data: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* A vocabulary of pseudo-words, drawn with a skew so that common words
 * dominate as in prose. */
#define NWORDS 4096
static char words[NWORDS][12];
static uint8_t wlen[NWORDS];

static void vocab_init(void)
{
	static const char letters[] = "etaoinshrdlucmfwypvbgkjqxz";

	for (int i = 0; i < NWORDS; i++) {
		int n = 1 + (int)(rnd() % 10);

		for (int j = 0; j < n; j++) {
			uint64_t r = rnd();

			/* skewed toward the frequent letters */
			words[i][j] = letters[((r & 31) * ((r >> 5) & 31)) / 39 % 26];
		}
		wlen[i] = (uint8_t)n;
	}
}

static void fill_random(uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		uint64_t r = rnd();

		memcpy(p + i, &r, 8);
	}
	for (; i < n; i++)
		p[i] = (uint8_t)rnd();
}

static void fill_text(uint8_t *p, size_t n)
{
	size_t i = 0, col = 0;

	while (i < n) {
		uint64_t r = rnd();
		unsigned a = r & 4095, b = (r >> 12) & 4095;
		unsigned w = (unsigned)(((uint64_t)a * b) >> 12); /* skewed to 0 */
		size_t l = wlen[w];

		if (i + l > n)
			l = n - i;
		memcpy(p + i, words[w], l);
		i += l;
		col += l;
		if (i >= n)
			break;
		if (((r >> 24) & 15) == 0)
			p[i++] = ((r >> 28) & 1) ? ',' : '.';
		if (i >= n)
			break;
		if (col > 60 + ((r >> 32) & 15)) {
			p[i++] = '\n';
			col = 0;
		} else {
			p[i++] = ' ';
			col++;
		}
	}
}

enum kind { K_RANDOM, K_TEXT, K_ZERO };

static void fill(uint8_t *p, size_t n, enum kind k)
{
	if (k == K_RANDOM)
		fill_random(p, n);
	else if (k == K_TEXT)
		fill_text(p, n);
	else
		memset(p, 0, n);
}

/* Picks a kind with probability proportional to what is left of each. */
static enum kind pick(const uint64_t left[3])
{
	uint64_t total = left[0] + left[1] + left[2], r = rnd() % total;

	return r < left[0] ? K_RANDOM : r < left[0] + left[1] ? K_TEXT : K_ZERO;
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die("write");
		p += w;
		n -= (size_t)w;
	}
}

static void set_mtime(const char *path)
{
	struct timeval tv[2] = { { MTIME, 0 }, { MTIME, 0 } };

	if (lutimes(path, tv) < 0)
		die(path);
}

static int gen_image(const char *file, uint64_t size)
{
	uint64_t units = size / MIB, left[3], done = 0;
	uint8_t *buf = malloc(MIB);
	int fd;

	if (!buf || size % MIB || units < 4) {
		fprintf(stderr, "bench_data: image size must be a multiple of 1 MiB, at least 4 MiB\n");
		return 1;
	}
	left[K_RANDOM] = units / 4;
	left[K_ZERO] = units / 4;
	left[K_TEXT] = units - 2 * (units / 4);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die(file);
	seed(1);
	vocab_init();
	while (done < units) {
		enum kind k = pick(left);
		uint64_t run = 1 + rnd() % 8;

		if (run > left[k])
			run = left[k];
		left[k] -= run;
		done += run;
		while (run--) {
			fill(buf, MIB, k);
			write_all(fd, buf, MIB);
		}
	}
	if (close(fd) < 0)
		die(file);
	set_mtime(file);
	free(buf);
	return 0;
}

static int gen_small(const char *dir, unsigned long files)
{
	char path[4096], buf[1024];
	unsigned long per = (files + 99) / 100;

	seed(2);
	vocab_init();
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		die(dir);
	for (int a = 0; a < 10; a++) {
		snprintf(path, sizeof(path), "%s/d%d", dir, a);
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			die(path);
		for (int b = 0; b < 10; b++) {
			snprintf(path, sizeof(path), "%s/d%d/e%d", dir, a, b);
			if (mkdir(path, 0755) < 0 && errno != EEXIST)
				die(path);
		}
	}
	for (unsigned long i = 0; i < files; i++) {
		unsigned long d = i / per;
		size_t n = rnd() % sizeof(buf);
		int fd;

		snprintf(path, sizeof(path), "%s/d%lu/e%lu/f%06lu.txt", dir, d / 10, d % 10, i);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			die(path);
		fill_text((uint8_t *)buf, n);
		write_all(fd, (uint8_t *)buf, n);
		if (close(fd) < 0)
			die(path);
		set_mtime(path);
	}
	for (int a = 0; a < 10; a++) {
		for (int b = 0; b < 10; b++) {
			snprintf(path, sizeof(path), "%s/d%d/e%d", dir, a, b);
			set_mtime(path);
		}
		snprintf(path, sizeof(path), "%s/d%d", dir, a);
		set_mtime(path);
	}
	set_mtime(dir);
	return 0;
}

static int gen_tree(const char *dir, uint64_t size)
{
	uint64_t left[3] = { size / 4, size - 2 * (size / 4), size / 4 };
	uint8_t *buf = malloc(MIB);
	char path[4096];
	unsigned long i = 0, ndirs = 0;

	if (!buf)
		die("malloc");
	seed(3);
	vocab_init();
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		die(dir);
	while (left[0] + left[1] + left[2]) {
		enum kind k = pick(left);
		/* log-uniform 512 B .. 16 MiB: 2^(9 + 15 * u) */
		double u = (double)(rnd() >> 11) / (double)(1ULL << 53);
		uint64_t n = (uint64_t)(512.0 * __builtin_exp2(15.0 * u));
		int fd;

		if (n > left[k])
			n = left[k];
		if (n == 0)
			n = left[k];
		left[k] -= n;
		if (i % 20 == 0) {
			snprintf(path, sizeof(path), "%s/dir%03lu", dir, i / 20);
			if (mkdir(path, 0755) < 0 && errno != EEXIST)
				die(path);
			ndirs++;
		}
		snprintf(path, sizeof(path), "%s/dir%03lu/file%05lu.%s", dir, i / 20, i,
			 k == K_RANDOM ? "bin" : k == K_TEXT ? "txt" : "zero");
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			die(path);
		while (n) {
			size_t c = n > MIB ? MIB : (size_t)n;

			fill(buf, c, k);
			write_all(fd, buf, c);
			n -= c;
		}
		if (close(fd) < 0)
			die(path);
		set_mtime(path);
		i++;
	}
	for (unsigned long d = 0; d < ndirs; d++) {
		snprintf(path, sizeof(path), "%s/dir%03lu", dir, d);
		set_mtime(path);
	}
	set_mtime(dir);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "image") == 0)
		return gen_image(argv[2], strtoull(argv[3], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "small") == 0)
		return gen_small(argv[2], strtoul(argv[3], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "tree") == 0)
		return gen_tree(argv[2], strtoull(argv[3], NULL, 10));
	fputs("usage: bench_data image FILE BYTES | small DIR FILES | tree DIR BYTES\n", stderr);
	return 2;
}
