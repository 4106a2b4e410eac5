/* Fuzz target for the catalog (catalog.pcat1, spec pxar-format.md §6).
 *
 * dsfs writes catalogs (store/pxar_catalog.c) but never parses one: the
 * mount serves catalog.pcat1 as bytes. So this is a round trip, as zstd's
 * fuzzers do it: the input is decoded by a strict reader written here from
 * the spec (bounded: depth, entries, name bytes; child blocks strictly
 * before their parent), the tree is written again through
 * ds_pxar_catalog_*, and the writer's output must decode to the same tree,
 * and writing that tree once more must give the same bytes. Inputs the
 * reader refuses are dropped. Any writer error on a valid tree, a
 * difference, or a read outside a buffer aborts. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/log.h"
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
	if (read_catalog(data, size, &in) < 0)
		return 0;
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
