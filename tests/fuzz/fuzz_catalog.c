/* Fuzz target for the catalog (catalog.pcat1, spec pxar-format.md §6).
 *
 * The writer (store/pxar_catalog.c) is checked by a round trip, as zstd's
 * fuzzers do it: the input is decoded by a strict reader written here from
 * the spec (bounded: depth, entries, name bytes; child blocks strictly
 * before their parent), the tree is written again through
 * ds_pxar_catalog_*, and the writer's output must decode to the same tree,
 * and writing that tree once more must give the same bytes. The mount's
 * reader, ds_pxar_catalog_walk (hardlink counts from the catalog), gets
 * every input: it must not read outside it, and where the strict reader
 * accepts the input, it must visit each archive's tree exactly as that
 * reader decoded it. Any writer error on a valid tree, a difference, or a
 * read outside a buffer aborts. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/log.h"
#include "store/pxar.h"
#include "store/pxar_encoder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_DEPTH 64
#define MAX_ENTRIES 20000
#define MAX_NAME_BYTES (4u << 20)

static const uint8_t magic[8] = { 0x91, 0xfd, 0x60, 0xf9, 0xc4, 0x67, 0x58, 0xd5 };

struct ent {
	char type;
	const uint8_t *name;
	size_t name_len;
	uint64_t size;
	int64_t mtime;
	struct dir *dir; /* 'd' */
};

struct dir {
	struct ent *ents;
	size_t n;
};

struct reader {
	const uint8_t *b;
	size_t len; /* without the trailing root offset */
	size_t entries, name_bytes;
};

/* LEB128, at most 10 bytes and 64 bits, inside [*off, end). */
static int varint(const uint8_t *b, size_t end, size_t *off, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 10; i++) {
		uint8_t x;

		if (*off >= end)
			return -1;
		x = b[(*off)++];
		if (i == 9 && x > 1)
			return -1;
		v |= (uint64_t)(x & 0x7f) << (7 * i);
		if (!(x & 0x80)) {
			*ret = v;
			return 0;
		}
	}
	return -1;
}

/* PBS's catalog_decode_i64: a 0x00 after at least one group with the high
 * bit set means negative; at most 11 bytes. */
static int svarint(const uint8_t *b, size_t end, size_t *off, int64_t *ret)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 11; i++) {
		uint8_t x;

		if (*off >= end)
			return -1;
		x = b[(*off)++];
		if (x == 0 && i > 0) {
			if (v > (uint64_t)1 << 63)
				return -1;
			*ret = v == (uint64_t)1 << 63 ? INT64_MIN : -(int64_t)v;
			return 0;
		}
		if (i == 10 || (i == 9 && (x & 0x7f) > 1))
			return -1;
		v |= (uint64_t)(x & 0x7f) << (7 * i);
		if (!(x & 0x80)) {
			if (v > INT64_MAX)
				return -1;
			*ret = (int64_t)v;
			return 0;
		}
	}
	return -1;
}

static void dir_free(struct dir *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		dir_free(d->ents[i].dir);
	free(d->ents);
	free(d);
}

static int read_block(struct reader *r, uint64_t start, int depth, struct dir **ret)
{
	struct dir *d;
	uint64_t tlen, count;
	size_t off = (size_t)start, end;

	if (depth > MAX_DEPTH || start < sizeof(magic) || start >= r->len)
		return -1;
	if (varint(r->b, r->len, &off, &tlen) < 0 || tlen > r->len - off)
		return -1;
	end = off + (size_t)tlen;
	if (varint(r->b, end, &off, &count) < 0 || count > end - off)
		return -1;
	d = calloc(1, sizeof(*d));
	if (!d || (count && !(d->ents = calloc((size_t)count, sizeof(*d->ents))))) {
		free(d);
		return -1;
	}
	for (uint64_t i = 0; i < count; i++) {
		struct ent *e = &d->ents[d->n++];
		uint64_t nl, dist;

		if (off >= end || ++r->entries > MAX_ENTRIES)
			goto bad;
		e->type = (char)r->b[off++];
		if (varint(r->b, end, &off, &nl) < 0 || nl == 0 || nl > 4095 || nl > end - off)
			goto bad;
		e->name = r->b + off;
		e->name_len = (size_t)nl;
		off += (size_t)nl;
		if ((r->name_bytes += (size_t)nl) > MAX_NAME_BYTES)
			goto bad;
		switch (e->type) {
		case 'd':
			/* the child block comes before its parent's */
			if (varint(r->b, end, &off, &dist) < 0 || dist == 0 || dist > start ||
			    read_block(r, start - dist, depth + 1, &e->dir) < 0)
				goto bad;
			break;
		case 'f':
			if (varint(r->b, end, &off, &e->size) < 0 || svarint(r->b, end, &off, &e->mtime) < 0)
				goto bad;
			break;
		case 'l': case 'h': case 'b': case 'c': case 'p': case 's':
			break;
		default:
			goto bad;
		}
	}
	if (off != end)
		goto bad;
	*ret = d;
	return 0;
bad:
	dir_free(d);
	return -1;
}

static int read_catalog(const uint8_t *b, size_t len, struct dir **ret)
{
	struct reader r = { .b = b, .len = len - 8 };
	uint64_t root = 0;

	if (len < sizeof(magic) + 8 || memcmp(b, magic, sizeof(magic)) != 0)
		return -1;
	for (int i = 0; i < 8; i++)
		root |= (uint64_t)b[len - 8 + i] << (8 * i);
	return read_block(&r, root, 0, ret);
}

struct buf {
	uint8_t *b;
	size_t len, cap;
};

static int buf_write(void *ctx, const void *p, size_t n)
{
	struct buf *o = ctx;

	if (o->len + n > o->cap) {
		size_t cap = o->cap ? o->cap : 4096;
		uint8_t *nb;

		while (cap < o->len + n)
			cap *= 2;
		nb = realloc(o->b, cap);
		if (!nb)
			abort();
		o->b = nb;
		o->cap = cap;
	}
	memcpy(o->b + o->len, p, n);
	o->len += n;
	return 0;
}

static void write_dir(struct ds_pxar_catalog *c, const struct dir *d)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct ent *e = &d->ents[i];

		if (e->type == 'd') {
			if (ds_pxar_catalog_begin_dir(c, (const char *)e->name, e->name_len) < 0)
				abort();
			write_dir(c, e->dir);
			if (ds_pxar_catalog_end_dir(c) < 0)
				abort();
		} else if (ds_pxar_catalog_add(c, e->type, (const char *)e->name, e->name_len, e->size,
					       e->mtime) < 0) {
			abort();
		}
	}
}

static void write_catalog(const struct dir *root, struct buf *out)
{
	struct ds_pxar_sink sink = { .write = buf_write, .ctx = out };
	struct ds_pxar_catalog *c;

	if (ds_pxar_catalog_new(&sink, &c) < 0)
		abort();
	write_dir(c, root);
	if (ds_pxar_catalog_finish(c) < 0)
		abort();
	/* finished: nothing more may be written */
	if (ds_pxar_catalog_add(c, 'f', "x", 1, 0, 0) != -EINVAL)
		abort();
	ds_pxar_catalog_free(c);
}

static int dir_eq(const struct dir *a, const struct dir *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++) {
		const struct ent *x = &a->ents[i], *y = &b->ents[i];

		if (x->type != y->type || x->name_len != y->name_len ||
		    memcmp(x->name, y->name, x->name_len) != 0)
			return 0;
		if (x->type == 'f' && (x->size != y->size || x->mtime != y->mtime))
			return 0;
		if (x->type == 'd' && !dir_eq(x->dir, y->dir))
			return 0;
	}
	return 1;
}

/* Visits as a flat byte string: type ('D' enter, 'U' leave, or the entry's
 * type), name length (2 bytes), name. */
static void ev(struct buf *b, char type, const void *name, size_t len)
{
	uint8_t h[3] = { (uint8_t)type, (uint8_t)len, (uint8_t)(len >> 8) };

	buf_write(b, h, sizeof(h));
	buf_write(b, name, len);
}

static void ev_tree(struct buf *b, const struct dir *d)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct ent *e = &d->ents[i];

		if (e->type == 'd') {
			ev(b, 'D', e->name, e->name_len);
			ev_tree(b, e->dir);
			ev(b, 'U', "", 0);
		} else {
			ev(b, e->type, e->name, e->name_len);
		}
	}
}

static int w_enter(void *ud, const char *name, size_t len)
{
	ev(ud, 'D', name, len);
	return 0;
}

static int w_leave(void *ud)
{
	ev(ud, 'U', "", 0);
	return 0;
}

static int w_entry(void *ud, char type, const char *name, size_t len)
{
	ev(ud, type, name, len);
	return 0;
}

struct mem {
	const uint8_t *b;
	size_t len;
};

static int mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	const struct mem *m = ctx;

	if (off > m->len || len > m->len - off)
		abort(); /* the walk reads only inside the catalog */
	memcpy(buf, m->b + off, len);
	return 0;
}

/* Walks archive name in data; when the strict reader decoded it (root not
 * NULL), the visits must be its tree under the first root entry of that
 * name. */
static void check_walk(const uint8_t *data, size_t size, const struct dir *root,
		       const uint8_t *name, size_t name_len)
{
	static const struct ds_pxar_catalog_visitor vis = { w_enter, w_leave, w_entry };
	struct mem m = { data, size };
	struct ds_pxar_source src = { mem_pread, size, &m, NULL };
	struct buf got = { 0 }, want = { 0 };
	char cname[4096];
	int r;

	if (name_len >= sizeof(cname) || memchr(name, 0, name_len))
		return;
	memcpy(cname, name, name_len);
	cname[name_len] = '\0';
	r = ds_pxar_catalog_walk(&src, cname, &vis, &got);
	if (root) {
		const struct ent *e = NULL;

		for (size_t i = 0; i < root->n && !e; i++)
			if (root->ents[i].type == 'd' && root->ents[i].name_len == name_len &&
			    memcmp(root->ents[i].name, name, name_len) == 0)
				e = &root->ents[i];
		if (!e ? r != -ENOENT : r != 0)
			abort();
		if (e) {
			ev_tree(&want, e->dir);
			if (got.len != want.len || (got.len && memcmp(got.b, want.b, got.len) != 0))
				abort();
		}
	}
	free(got.b);
	free(want.b);
}

static void quiet(enum ds_log_level level, const char *msg, void *userdata)
{
	(void)level;
	(void)msg;
	(void)userdata;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dir *in = NULL, *back = NULL;
	struct buf out = { 0 }, again = { 0 };

	ds_log_set_sink(quiet, NULL);
	if (read_catalog(data, size, &in) < 0) {
		check_walk(data, size, NULL, (const uint8_t *)"root.pxar.didx", 14);
		return 0;
	}
	for (size_t i = 0; i < in->n; i++)
		if (in->ents[i].type == 'd')
			check_walk(data, size, in, in->ents[i].name, in->ents[i].name_len);
	check_walk(data, size, in, (const uint8_t *)"not-there.pxar.didx", 19);
	write_catalog(in, &out);
	if (read_catalog(out.b, out.len, &back) < 0 || !dir_eq(in, back))
		abort();
	write_catalog(back, &again);
	if (again.len != out.len || memcmp(again.b, out.b, out.len) != 0)
		abort();
	dir_free(in);
	dir_free(back);
	free(out.b);
	free(again.b);
	return 0;
}
