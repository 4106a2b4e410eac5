/* Fuzz target for store/pxar_exclude: .pxarexclude parsing, --exclude
 * patterns, matching and the PRELUDE text.
 *
 * The input up to its first NUL is a .pxarexclude file; each of its lines
 * is also given as an --exclude pattern. The bytes after the NUL are paths
 * (NUL-separated, a '/' put in front when missing) matched as a directory
 * and as a file; with no paths, each line is matched as "/" + the line.
 * The file is added for the root and for a subdirectory. Checked: the
 * return values stay in their contracts (_add_file's count is the number
 * of patterns added; _add_cli names a reason for every refusal), the
 * PRELUDE is the JSON-escaped _cli_text or -EILSEQ, truncating restores
 * the earlier answers, and nothing reads outside a buffer, leaks or hangs
 * (libFuzzer's -timeout). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/log.h"
#include "store/pxar_exclude.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PATHS 64

static void quiet(enum ds_log_level level, const char *msg, void *userdata)
{
	(void)level;
	(void)msg;
	(void)userdata;
}

static void check_result(enum ds_pxar_excl_result r)
{
	if (r != DS_PXAR_EXCL_NONE && r != DS_PXAR_EXCL_INCLUDE && r != DS_PXAR_EXCL_EXCLUDE)
		abort();
}

static void check_texts(const struct ds_pxar_excl *x, size_t n)
{
	char *text = NULL, *json = NULL;
	size_t tlen = 0, jlen = 0;
	int r;

	if (ds_pxar_excl_cli_text(x, n, &text, &tlen) < 0)
		return;
	/* patterns never hold a NUL */
	if (strlen(text) != tlen)
		abort();
	r = ds_pxar_excl_prelude(x, n, &json, &jlen);
	if (r == 0) {
		/* at least the text, its head and its tail */
		if (jlen < tlen + 23 || memcmp(json, "{\"exclude-patterns\":\"", 21) != 0 ||
		    memcmp(json + jlen - 2, "\"}", 2) != 0 || json[jlen] != '\0')
			abort();
		free(json);
	} else if (r != -EILSEQ && r != -ENOMEM) {
		abort();
	}
	free(text);
}

/* Matches p (len bytes; a '/' put in front when it has none) as a
 * directory and as a file; returns the two answers. */
static unsigned match_both(const struct ds_pxar_excl *x, const uint8_t *p, size_t len)
{
	char *path = malloc(len + 2);
	enum ds_pxar_excl_result d, f;
	size_t o = 0;

	if (!path)
		return 0;
	if (!len || p[0] != '/')
		path[o++] = '/';
	memcpy(path + o, p, len);
	o += len;
	d = ds_pxar_excl_match(x, path, o, S_IFDIR);
	f = ds_pxar_excl_match(x, path, o, S_IFREG);
	check_result(d);
	check_result(f);
	free(path);
	return (unsigned)d << 2 | (unsigned)f;
}

/* Splits the bytes after the first NUL at each NUL, at most MAX_PATHS. */
static size_t split_paths(const uint8_t *p, const uint8_t *end, const uint8_t **ret_p,
			  size_t *ret_len)
{
	size_t n = 0;

	while (n < MAX_PATHS) {
		const uint8_t *z = memchr(p, 0, (size_t)(end - p));

		ret_p[n] = p;
		ret_len[n++] = z ? (size_t)(z - p) : (size_t)(end - p);
		if (!z)
			break;
		p = z + 1;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t flen = nul ? (size_t)(nul - data) : size;
	const uint8_t *path[MAX_PATHS];
	size_t plen[MAX_PATHS], np = 0, ncli, nfile;
	unsigned before[MAX_PATHS];
	struct ds_pxar_excl *x = NULL;
	int r;

	ds_log_set_sink(quiet, NULL);
	if (ds_pxar_excl_new(&x) < 0)
		return 0;
	if (nul)
		np = split_paths(nul + 1, data + size, path, plen);

	/* every line as an --exclude pattern */
	for (size_t s = 0; s < flen;) {
		const uint8_t *nl = memchr(data + s, '\n', flen - s);
		size_t e = nl ? (size_t)(nl - data) : flen;
		const char *why = NULL;
		size_t n0 = ds_pxar_excl_count(x);

		r = ds_pxar_excl_add_cli(x, (const char *)data + s, e - s, &why);
		if (r == 0 ? ds_pxar_excl_count(x) != n0 + 1
			   : (r != -EINVAL && r != -ENOMEM) || !why || ds_pxar_excl_count(x) != n0)
			abort();
		s = e + 1;
	}
	ncli = ds_pxar_excl_count(x);
	check_texts(x, ncli);
	for (size_t i = 0; i < np; i++)
		before[i] = match_both(x, path[i], plen[i]);

	r = ds_pxar_excl_add_file(x, "", 0, (const char *)data, flen);
	if (r >= 0 && (size_t)r != ds_pxar_excl_count(x) - ncli)
		abort();
	nfile = ds_pxar_excl_count(x);
	r = ds_pxar_excl_add_file(x, "sub", 3, (const char *)data, flen);
	if (r >= 0 && (size_t)r != ds_pxar_excl_count(x) - nfile)
		abort();
	check_texts(x, ds_pxar_excl_count(x));

	for (size_t i = 0; i < np; i++)
		match_both(x, path[i], plen[i]);
	if (!nul)
		for (size_t s = 0; s < flen;) {
			const uint8_t *nl = memchr(data + s, '\n', flen - s);
			size_t e = nl ? (size_t)(nl - data) : flen;

			match_both(x, data + s, e - s);
			s = e + 1;
		}

	/* dropping the file's patterns gives the --exclude answers again */
	ds_pxar_excl_truncate(x, ncli);
	for (size_t i = 0; i < np; i++)
		if (match_both(x, path[i], plen[i]) != before[i])
			abort();
	ds_pxar_excl_free(x);
	return 0;
}
