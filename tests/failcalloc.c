/* failcalloc — an LD_PRELOAD shim for tests: calloc(N, 1), with N from the
 * environment variable DSFS_FAIL_CALLOC, fails with ENOMEM; every other
 * call is glibc's. Out-of-memory paths cannot be reached otherwise without
 * exhausting the machine. Not for sanitizer builds (their allocator must
 * come first). */
#include <errno.h>
#include <stdlib.h>

void *__libc_calloc(size_t nmemb, size_t size);
void *calloc(size_t nmemb, size_t size);

void *calloc(size_t nmemb, size_t size)
{
	static long want = -2;

	if (want == -2) {
		const char *e = getenv("DSFS_FAIL_CALLOC");

		want = e ? atol(e) : -1;
	}
	if (want >= 0 && size == 1 && nmemb == (size_t)want) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_calloc(nmemb, size);
}
