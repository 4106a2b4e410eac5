/* Fuzz target for the manifest parser and writer (spec §4): any input is
 * either refused with -EBADMSG or yields a manifest whose pretty and
 * canonical forms are fixed points (format → parse → format gives the same
 * bytes). A violated invariant aborts. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/log.h"
#include "store/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(enum ds_log_level level, const char *msg, void *userdata)
{
	(void)level;
	(void)msg;
	(void)userdata;
}

static void same(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen || memcmp(a, b, alen) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ds_manifest *m, *m2;
	struct ds_manifest_file f;
	char *t1, *t2, *c1, *c2, *u;
	size_t l1, l2, cl1, cl2;
	int r;

	ds_log_set_sink(quiet, NULL);
	r = ds_manifest_parse((const char *)data, size, &m);
	if (r < 0) {
		if (r != -EBADMSG && r != -ENOMEM)
			abort();
		return 0;
	}
	for (size_t i = 0; i < ds_manifest_file_count(m); i++) {
		if (ds_manifest_file(m, i, &f) < 0 || !ds_crypt_mode_name(f.crypt_mode))
			abort();
		if (ds_manifest_find(m, f.filename, &f) < 0)
			abort();
	}
	if (ds_manifest_file(m, ds_manifest_file_count(m), &f) != -ERANGE)
		abort();
	u = ds_manifest_unprotected_json(m);
	if (!u)
		abort();
	free(u);

	if (ds_manifest_format(m, &t1, &l1) < 0 || strlen(t1) != l1)
		abort();
	if (ds_manifest_canonical(m, &c1, &cl1) < 0)
		abort();
	if (ds_manifest_parse(t1, l1, &m2) < 0)
		abort();
	if (ds_manifest_format(m2, &t2, &l2) < 0)
		abort();
	same(t1, l1, t2, l2);
	if (ds_manifest_canonical(m2, &c2, &cl2) < 0)
		abort();
	same(c1, cl1, c2, cl2);
	/* The canonical form is itself a manifest with the same signed part. */
	ds_manifest_free(m2);
	if (ds_manifest_parse(c1, cl1, &m2) < 0)
		abort();
	free(c2);
	if (ds_manifest_canonical(m2, &c2, &cl2) < 0)
		abort();
	same(c1, cl1, c2, cl2);

	free(c2);
	free(c1);
	free(t2);
	free(t1);
	ds_manifest_free(m2);
	ds_manifest_free(m);
	return 0;
}
