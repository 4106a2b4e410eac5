/* Fuzz target for store/activeops (spec §6.5): ds_activeops_parse accepts
 * any JSON array (0) and refuses everything else (-EBADMSG). The same input
 * as the state file then goes through an update pair (+1 read, -1 read),
 * which must leave the live totals as they were: the update only drops dead
 * entries, which were never counted. A violated invariant aborts. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "store/activeops.h"
#include "store/log.h"
#include "store/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static unsigned skipped;

static void quiet(enum ds_log_level level, const char *msg, void *userdata)
{
	(void)level;
	(void)msg;
	(void)userdata;
}

static void cleanup(void)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/fuzz", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/fuzz.lock", dir);
	unlink(p);
	rmdir(dir);
}

static int setup(void)
{
	if (dir[0])
		return 0;
	/* tmpfs when there is one: the update writes and syncs a file per
	 * input, which on a disk bounds the rate at a few hundred per second. */
	snprintf(dir, sizeof(dir), "%s/dsfs-fuzz-activeops-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(dir)) {
		dir[0] = '\0';
		return -1;
	}
	atexit(cleanup);
	ds_log_set_sink(quiet, NULL);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t r0, w0, r1, w1;
	char path[128];
	json_t *j;
	int r, fd;

	if (setup() < 0)
		abort();
	r = ds_activeops_parse((const char *)data, size, &r0, &w0);
	j = json_loadb((const char *)data, size, 0, NULL);
	if (r < 0 && (r != -EBADMSG || (json_is_array(j) && json_array_size(j) < 2)))
		abort(); /* only a sum of two or more entries can overflow */
	if (r == 0 && !json_is_array(j))
		abort();
	/* The update pair costs a file write and a rename: run it for every
	 * array and for one in 64 other inputs (garbage in the file is
	 * dropped, one path, it need not be taken a million times). */
	if (!json_is_array(j) && (++skipped & 63) != 0) {
		json_decref(j);
		return 0;
	}
	json_decref(j);

	snprintf(path, sizeof(path), "%s/fuzz", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ds_write_all(fd, data, size) < 0)
		abort();
	close(fd);
	if (ds_activeops_update(dir, "fuzz", DS_OP_READ, 1) < 0 ||
	    ds_activeops_update(dir, "fuzz", DS_OP_READ, -1) < 0)
		return 0; /* our own counter at the edge of i64 */
	if (ds_activeops_get(dir, "fuzz", &r1, &w1) < 0)
		abort(); /* what update writes must read back */
	if (r == 0 && (r1 != r0 || w1 != w0))
		abort();
	return 0;
}
