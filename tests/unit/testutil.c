#include "testutil.h"

#include <ftw.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/util.h"

/* Skips of this process, for tu_run_group()'s status and summary. */
#define TU_MAX_SKIPS 64
static char *skip_reasons[TU_MAX_SKIPS];
static size_t skips;
static bool in_group;
static pthread_t group_thread;

void tu_skip_at(const char *file, int line, const char *func, const char *fmt, ...)
{
	char *why;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&why, fmt, ap) < 0)
		why = NULL;
	va_end(ap);
	if (!in_group) {
		/* A plain cmocka group would count the skip as a pass. */
		fail_msg("%s:%d: %s: tu_skip outside tu_run_group: %s", file, line, func,
			 why ? why : fmt);
		abort();
	}
	if (!pthread_equal(pthread_self(), group_thread)) {
		/* cmocka cannot end a test from another thread. */
		fprintf(stderr, "%s:%d: %s: tu_skip outside the test's thread: %s\n", file,
			line, func, why ? why : fmt);
		abort();
	}
	fprintf(stderr, "SKIP: %s:%d: %s: %s\n", file, line, func, why ? why : fmt);
	if (skips < TU_MAX_SKIPS)
		skip_reasons[skips] = tu_pathf("%s: %s", func, why ? why : fmt);
	skips++;
	free(why);
	_skip(file, line);
	abort(); /* _skip longjmps out of the test */
}

int tu_run_group_(const char *name, const struct CMUnitTest *tests, size_t count,
		  CMFixtureFunction setup, CMFixtureFunction teardown)
{
	int failed;

	in_group = true;
	group_thread = pthread_self();
	failed = _cmocka_run_group_tests(name, tests, count, setup, teardown);
	in_group = false;
	if (failed)
		return 1; /* never 77 by chance */
	if (!skips)
		return 0;
	fprintf(stderr, "SKIP: %zu test(s) skipped, so the suite is reported as skipped:\n",
		skips);
	for (size_t i = 0; i < skips && i < TU_MAX_SKIPS; i++)
		fprintf(stderr, "SKIP:   %s\n", skip_reasons[i]);
	return 77;
}

const char *tu_fixtures_at(const char *file, int line, const char *func)
{
	const char *dir = getenv("DSFS_FIXTURES");
	char probe[4096];
	struct stat st;

	if (!dir || !*dir)
		dir = DSFS_FIXTURES;
	snprintf(probe, sizeof(probe), "%s/pbs-store-a.expect.json", dir);
	if (stat(probe, &st) < 0) {
		if (in_group)
			tu_skip_at(file, line, func,
				   "PBS fixtures not found at %s (set DSFS_FIXTURES or put "
				   "shared/ beside the checkout)", dir);
		fprintf(stderr, "SKIP: PBS fixtures not found at %s "
				"(set DSFS_FIXTURES or put shared/ beside the checkout)\n", dir);
		exit(77);
	}
	return dir;
}

char *tu_tmpdir(void)
{
	char tmpl[] = "/tmp/dsfs-test-XXXXXX";
	char *p = mkdtemp(tmpl);

	if (!p) {
		perror("mkdtemp");
		abort();
	}
	return strdup(p);
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void tu_rmtree(const char *path)
{
	nftw(path, rm_cb, 64, FTW_DEPTH | FTW_PHYS);
}

uint8_t *tu_read(const char *path, size_t *ret_len)
{
	uint8_t *buf;
	size_t len;

	if (ds_read_file_at(AT_FDCWD, path, SIZE_MAX / 2, &buf, &len) < 0) {
		fprintf(stderr, "cannot read %s\n", path);
		abort();
	}
	*ret_len = len;
	return buf;
}

void tu_sha256_hex(const void *buf, size_t len, char out[65])
{
	struct ds_digest d;

	ds_sha256(buf, len, &d);
	ds_digest_to_hex(&d, out);
}

char *tu_pathf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0) {
		fprintf(stderr, "out of memory\n");
		abort();
	}
	return p;
}
