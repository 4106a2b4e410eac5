/* Fuzz target for the pxar decoder (spec pxar-format.md): the input is a v1
 * archive in memory (a v2 one gets the input as its payload stream too,
 * with the payload markers written over its ends).
 * Opens it, walks the whole tree (at most 10000 entries), reads every file,
 * symlink and xattr list and asks for link counts. Any read outside the
 * input or a violated invariant aborts. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/log.h"
#include "store/pxar.h"
#include "store/pxar_format.h"
#include "store/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct mem {
	const uint8_t *b;
	size_t len;
};

static int mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct mem *m = ctx;

	if (off > m->len || len > m->len - off)
		abort();
	memcpy(buf, m->b + off, len);
	return 0;
}

static void quiet(enum ds_log_level level, const char *msg, void *userdata)
{
	(void)level;
	(void)msg;
	(void)userdata;
}

struct walk {
	struct ds_pxar *px;
	uint64_t size;
	const struct ds_pxar_entry *dir; /* being listed */
	unsigned entries;
	int depth;
};

static int xattr_fn(void *ud, const char *name, const void *value, size_t len)
{
	(void)ud;
	(void)value;
	if (!name[0] || (len && !value))
		abort();
	return 0;
}

static void visit(struct walk *w, const struct ds_pxar_entry *dir);

static int child_fn(void *ud, const char *name, size_t len, const struct ds_pxar_entry *e)
{
	struct walk *w = ud;
	struct ds_pxar_entry le;
	char buf[4097];
	uint64_t off = 0;
	ssize_t n;

	if (len == 0 || len > 4096 || memchr(name, '/', len) || memchr(name, 0, len))
		abort();
	if (e->entry_off >= w->size || e->end > w->size)
		abort();
	if (++w->entries > 10000)
		return 1;
	if (S_ISREG(e->mode)) {
		while ((n = ds_pxar_read(w->px, e, buf, sizeof(buf), off)) > 0) {
			if ((size_t)n > sizeof(buf))
				abort();
			off += (uint64_t)n;
		}
		if (n == 0 && off != e->size)
			abort();
		if (ds_pxar_nlink(w->px, e) == 0)
			abort();
	}
	if (S_ISLNK(e->mode)) {
		int r = ds_pxar_readlink(w->px, e, buf, sizeof(buf));

		if (r >= 0 && ((uint64_t)r != e->size || buf[r] != 0))
			abort();
	}
	ds_pxar_xattrs(w->px, e, xattr_fn, NULL);
	if (ds_pxar_lookup(w->px, w->dir, name, len, &le) == 0 &&
	    (le.entry_off >= w->size || le.end > w->size))
		abort();
	if (S_ISDIR(e->mode) && w->depth < 256) {
		w->depth++;
		visit(w, e);
		w->depth--;
	}
	return 0;
}

static void visit(struct walk *w, const struct ds_pxar_entry *dir)
{
	const struct ds_pxar_entry *up = w->dir;
	size_t n;

	w->dir = dir;
	if (ds_pxar_child_count(w->px, dir, &n) == 0 && n > 0)
		ds_pxar_readdir(w->px, dir, n - 1, child_fn, w);
	ds_pxar_readdir(w->px, dir, 0, child_fn, w);
	w->dir = up;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mem m = { data, size };
	struct ds_pxar_source src = { mem_pread, size, &m, NULL };
	struct ds_pxar_entry root, e;
	struct walk w = { .size = size };
	struct mem pm = { NULL, 0 };
	struct ds_pxar_source psrc = { mem_pread, size, &pm, NULL };
	uint8_t *pay = NULL;
	int r;

	ds_log_set_sink(quiet, NULL);
	r = ds_pxar_open(&src, NULL, &w.px);
	if (r == -EINVAL && size >= 32) {
		/* The input, with the payload stream's markers over its
		 * first and last 16 bytes (FORMAT_VERSION and the root's
		 * goodbye tail, where no PAYLOAD_REF points). */
		pay = malloc(size);
		if (!pay)
			return 0;
		memcpy(pay, data, size);
		ds_put_le64(pay, PXAR_PAYLOAD_START_MARKER);
		ds_put_le64(pay + 8, 16);
		ds_put_le64(pay + size - 16, PXAR_PAYLOAD_TAIL_MARKER);
		ds_put_le64(pay + size - 8, 16);
		pm = (struct mem){ pay, size };
		r = ds_pxar_open(&src, &psrc, &w.px);
	}
	if (r < 0) {
		free(pay);
		return 0;
	}
	ds_pxar_root(w.px, &root);
	if (!S_ISDIR(root.mode) || root.end != size)
		abort();
	(void)ds_pxar_lookup(w.px, &root, "a-file", 6, &e);
	visit(&w, &root);
	ds_pxar_free(w.px);
	free(pay);
	return 0;
}
