/* Fuzz target for the index parser (spec §3): any input either is refused
 * or yields an index whose chunks tile [0, size) and whose lookups agree
 * with the chunk list. A violated invariant aborts. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "store/index.h"
#include "store/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(enum ds_log_level level, const char *msg, void *userdata)
{
	(void)level;
	(void)msg;
	(void)userdata;
}

static void check_find(const struct ds_index *idx, uint64_t off)
{
	ssize_t pos = ds_index_find(idx, off);
	struct ds_index_chunk ch;

	if (off >= ds_index_size(idx)) {
		if (pos != -ERANGE)
			abort();
		return;
	}
	if (pos < 0 || ds_index_chunk(idx, (size_t)pos, &ch) < 0)
		abort();
	if (off < ch.start || off >= ch.end)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ds_index *idx;
	struct ds_index_chunk ch;
	struct ds_digest csum;
	uint64_t prev = 0, total;
	size_t n;

	ds_log_set_sink(quiet, NULL);
	if (ds_index_parse(data, size, &idx) < 0)
		return 0;
	n = ds_index_count(idx);
	total = ds_index_size(idx);
	for (size_t i = 0; i < n; i++) {
		if (ds_index_chunk(idx, i, &ch) < 0)
			abort();
		if (ch.start != prev || ch.end <= ch.start || ch.end > total)
			abort();
		check_find(idx, ch.start);
		check_find(idx, ch.end - 1);
		prev = ch.end;
	}
	if (prev != total || ds_index_chunk(idx, n, &ch) != -ERANGE)
		abort();
	check_find(idx, 0);
	check_find(idx, total / 2);
	check_find(idx, total);
	check_find(idx, UINT64_MAX);
	ds_index_compute_csum(idx, &csum);
	ds_index_header_csum(idx, &csum);
	ds_index_free(idx);
	return 0;
}
