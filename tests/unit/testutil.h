/* Helpers shared by the cmocka suites: fixture lookup and temp dirs. */
#ifndef DSFS_TESTUTIL_H
#define DSFS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* The fixture directory (DSFS_FIXTURES env or the build-time default).
 * Exits the process with 77 and a message on stderr when it is missing, so
 * ctest reports the suite as skipped, never as passed. */
const char *tu_fixtures(void);

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
