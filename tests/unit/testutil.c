#include "testutil.h"

#include <ftw.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/util.h"

const char *tu_fixtures(void)
{
	const char *dir = getenv("DSFS_FIXTURES");
	char probe[4096];
	struct stat st;

	if (!dir || !*dir)
		dir = DSFS_FIXTURES;
	snprintf(probe, sizeof(probe), "%s/pbs-store-a.expect.json", dir);
	if (stat(probe, &st) < 0) {
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
