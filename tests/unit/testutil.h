/* Helpers shared by the cmocka suites: fixture lookup, skips that ctest
 * sees, and temp dirs. */
#ifndef DSFS_TESTUTIL_H
#define DSFS_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* cmocka counts a skip() as a pass in the process's exit status, so ctest
 * would report a suite that skipped as passed. Use tu_skip(), which the
 * status of tu_run_group() accounts for. */
#undef skip
#pragma GCC poison skip

/* Runs a cmocka group like cmocka_run_group_tests_name() and returns the
 * process's exit status for ctest: 1 if a test of this group failed, else
 * 77 (skipped, after a summary of the reasons on stderr) if any test of the
 * process so far was skipped with tu_skip(), else 0. Every test still runs
 * after a skip, so a skip never hides a failure. Not thread-safe. */
int tu_run_group_(const char *name, const struct CMUnitTest *tests, size_t count,
		  CMFixtureFunction setup, CMFixtureFunction teardown);
#define tu_run_group(name, tests, setup, teardown) \
	tu_run_group_(name, tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown)

/* Ends the running test as skipped, for the reason given (printed at once
 * and again in the summary). Only in a test run by tu_run_group(), in the
 * thread running it; anywhere else the test fails. */
#define tu_skip(...) tu_skip_at(__FILE__, __LINE__, __func__, __VA_ARGS__)
void tu_skip_at(const char *file, int line, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 4, 5), noreturn));

/* The fixture directory (DSFS_FIXTURES env or the build-time default).
 * When it is missing: in a test run by tu_run_group(), the test is skipped
 * (tu_skip); elsewhere (main, before any test) the process exits with 77
 * and a message on stderr. Either way ctest reports skipped, never passed. */
#define tu_fixtures() tu_fixtures_at(__FILE__, __LINE__, __func__)
const char *tu_fixtures_at(const char *file, int line, const char *func);

/* Creates a fresh temporary directory; returns a malloc'ed path. Removed by
 * tu_rmtree. Aborts the test on failure. */
char *tu_tmpdir(void);
void tu_rmtree(const char *path);

/* asprintf that aborts the test on failure; caller frees. */
char *tu_pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads a whole file into a malloc'ed buffer (NUL-terminated). Aborts on
 * failure. */
uint8_t *tu_read(const char *path, size_t *ret_len);

/* Lowercase hex of SHA-256 of buf (out: 65 bytes). */
void tu_sha256_hex(const void *buf, size_t len, char out[65]);

#endif
