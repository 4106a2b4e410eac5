/* The PBS catalog (spec pxar-format.md §6). The writer lays it out as the
 * PBS client's CatalogWriter does: magic, then one block per directory
 * written when the directory is closed (children before parents), the
 * root block last, then the root block's offset. The reader walks one
 * archive's tree of it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/log.h"
#include "store/pxar.h"
#include "store/pxar_encoder.h"
#include "store/util.h"

static const uint8_t catalog_magic[8] = { 0x91, 0xfd, 0x60, 0xf9, 0xc4, 0x67, 0x58, 0xd5 };

#define CAT_NAME_MAX 4095 /* the PBS reader rejects names of 4096 bytes and more */

/* An open directory. Its entries are kept in an intermediate encoding
 * (type, varint name length, name, then for 'd' the child block's absolute
 * offset as 8 raw bytes, for 'f' the final size/mtime varints): the
 * distance to a child block is only known once this block's own offset is. */
struct cat_dir {
	char *name;
	size_t name_len;
	uint8_t *buf;
	size_t len, cap;
	uint64_t count;
};

struct ds_pxar_catalog {
	struct ds_pxar_sink sink;
	uint64_t pos;
	struct cat_dir *stack; /* stack[0] is the root "/" */
	size_t depth, cap;
	bool finished;
	int err; /* sticky sink error */
};

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* PBS's catalog_encode_i64: a negative value is its magnitude in 7-bit
 * groups, every one with the high bit set, then a terminating 0x00. */
static size_t put_svarint(uint8_t *p, int64_t v)
{
	uint64_t m;
	size_t n = 0;

	if (v >= 0)
		return put_varint(p, (uint64_t)v);
	m = (uint64_t)0 - (uint64_t)v;
	while (m) {
		p[n++] = (uint8_t)(m | 0x80);
		m >>= 7;
	}
	p[n++] = 0;
	return n;
}

static int dir_reserve(struct cat_dir *d, size_t more)
{
	size_t cap = d->cap ? d->cap : 256;
	uint8_t *p;

	if (d->len + more <= d->cap)
		return 0;
	while (cap < d->len + more)
		cap *= 2;
	p = realloc(d->buf, cap);
	if (!p)
		return -ENOMEM;
	d->buf = p;
	d->cap = cap;
	return 0;
}

static int sink_write(struct ds_pxar_catalog *c, const void *p, size_t n)
{
	int r;

	if (c->err)
		return c->err;
	r = c->sink.write(c->sink.ctx, p, n);
	if (r < 0) {
		c->err = r;
		return r;
	}
	c->pos += n;
	return 0;
}

/* Appends one entry in the intermediate form; extra is 8 raw bytes ('d') or
 * the encoded size and mtime ('f'). */
static int dir_append(struct cat_dir *d, char type, const char *name, size_t len,
		      const uint8_t *extra, size_t extra_len)
{
	int r = dir_reserve(d, 1 + 10 + len + extra_len);

	if (r < 0)
		return r;
	d->buf[d->len++] = (uint8_t)type;
	d->len += put_varint(d->buf + d->len, len);
	memcpy(d->buf + d->len, name, len);
	d->len += len;
	memcpy(d->buf + d->len, extra, extra_len);
	d->len += extra_len;
	d->count++;
	return 0;
}

static uint64_t get_varint(const uint8_t *p, size_t *off)
{
	uint64_t v = 0;

	for (unsigned shift = 0;; shift += 7) {
		uint8_t b = p[(*off)++];

		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return v;
	}
}

/* Skips a signed varint written by put_svarint. */
static void skip_svarint(const uint8_t *p, size_t *off)
{
	uint8_t b;

	do
		b = p[(*off)++];
	while (b & 0x80);
}

/* Writes d as a block at the current position: varint(table length), then
 * the table with 'd' distances resolved. Returns the block's offset. */
static int write_block(struct ds_pxar_catalog *c, struct cat_dir *d, uint64_t *ret_start)
{
	uint64_t start = c->pos;
	uint8_t *table, hdr[10];
	size_t tlen = 0, off = 0;
	int r;

	/* Every 8-byte offset becomes a varint of at most 10 bytes. */
	table = malloc(10 + d->len + 2 * d->count);
	if (!table)
		return -ENOMEM;
	tlen = put_varint(table, d->count);
	while (off < d->len) {
		uint8_t type = d->buf[off++];
		size_t name_start = off;
		uint64_t name_len = get_varint(d->buf, &off);

		off += name_len;
		memcpy(table + tlen, d->buf + name_start - 1, off - name_start + 1);
		tlen += off - name_start + 1;
		if (type == 'd') {
			tlen += put_varint(table + tlen, start - ds_le64(d->buf + off));
			off += 8;
		} else if (type == 'f') {
			size_t v = off;

			get_varint(d->buf, &off);
			skip_svarint(d->buf, &off);
			memcpy(table + tlen, d->buf + v, off - v);
			tlen += off - v;
		}
	}
	r = sink_write(c, hdr, put_varint(hdr, tlen));
	if (r == 0)
		r = sink_write(c, table, tlen);
	free(table);
	if (r == 0)
		*ret_start = start;
	return r;
}

static void dir_release(struct cat_dir *d)
{
	free(d->name);
	free(d->buf);
	memset(d, 0, sizeof(*d));
}

static int check_name(const char *name, size_t len)
{
	if (!name || len == 0 || len > CAT_NAME_MAX)
		return -EINVAL;
	return 0;
}

int ds_pxar_catalog_new(const struct ds_pxar_sink *sink, struct ds_pxar_catalog **ret)
{
	struct ds_pxar_catalog *c;
	int r;

	if (!sink || !sink->write || !ret)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->sink = *sink;
	c->cap = 16;
	c->stack = calloc(c->cap, sizeof(*c->stack));
	if (!c->stack) {
		free(c);
		return -ENOMEM;
	}
	c->depth = 1;
	r = sink_write(c, catalog_magic, sizeof(catalog_magic));
	if (r < 0) {
		ds_pxar_catalog_free(c);
		return r;
	}
	*ret = c;
	return 0;
}

int ds_pxar_catalog_begin_dir(struct ds_pxar_catalog *c, const char *name, size_t len)
{
	struct cat_dir *d;

	if (!c || c->finished || check_name(name, len) < 0)
		return -EINVAL;
	if (c->err)
		return c->err;
	if (c->depth == c->cap) {
		struct cat_dir *s = realloc(c->stack, 2 * c->cap * sizeof(*s));

		if (!s)
			return -ENOMEM;
		c->stack = s;
		c->cap *= 2;
	}
	d = &c->stack[c->depth];
	memset(d, 0, sizeof(*d));
	d->name = malloc(len);
	if (!d->name)
		return -ENOMEM;
	memcpy(d->name, name, len);
	d->name_len = len;
	c->depth++;
	return 0;
}

int ds_pxar_catalog_end_dir(struct ds_pxar_catalog *c)
{
	struct cat_dir *d;
	uint64_t start;
	uint8_t raw[8];
	int r;

	if (!c || c->finished || c->depth < 2)
		return -EINVAL;
	if (c->err)
		return c->err;
	d = &c->stack[c->depth - 1];
	r = write_block(c, d, &start);
	if (r < 0)
		return r;
	ds_put_le64(raw, start);
	r = dir_append(&c->stack[c->depth - 2], 'd', d->name, d->name_len, raw, 8);
	dir_release(d);
	c->depth--;
	return r;
}

int ds_pxar_catalog_add(struct ds_pxar_catalog *c, char type, const char *name, size_t len,
			uint64_t size, int64_t mtime)
{
	uint8_t extra[21];
	size_t n = 0;

	if (!c || c->finished || check_name(name, len) < 0 || !type || !strchr("flhbcps", type))
		return -EINVAL;
	if (c->err)
		return c->err;
	if (type == 'f') {
		n = put_varint(extra, size);
		n += put_svarint(extra + n, mtime);
	}
	return dir_append(&c->stack[c->depth - 1], type, name, len, extra, n);
}

int ds_pxar_catalog_finish(struct ds_pxar_catalog *c)
{
	uint64_t start;
	uint8_t raw[8];
	int r;

	if (!c || c->finished || c->depth != 1)
		return -EINVAL;
	if (c->err)
		return c->err;
	c->finished = true;
	r = write_block(c, &c->stack[0], &start);
	if (r < 0)
		return r;
	ds_put_le64(raw, start);
	return sink_write(c, raw, 8);
}

void ds_pxar_catalog_free(struct ds_pxar_catalog *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->depth; i++)
		dir_release(&c->stack[i]);
	free(c->stack);
	free(c);
}

/* ---- reading (spec §6) ---- */

/* Larger directory blocks (about a million entries) are refused. */
#define CAT_BLOCK_MAX (64 * DS_MIB)
/* Deeper trees are refused (a path of PATH_MAX holds at most 2048). */
#define CAT_DEPTH_MAX 2048

struct walk {
	const struct ds_pxar_source *src;
	const struct ds_pxar_catalog_visitor *vis;
	void *ud;
};

static int cat_bad(uint64_t off, const char *what)
{
	ds_err("catalog: offset %llu: %s", (unsigned long long)off, what);
	return -EIO;
}

/* A varint from p[*pos..end): -EIO past end or beyond 10 bytes. */
static int read_varint(const uint8_t *p, size_t end, size_t *pos, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 10; i++) {
		uint8_t b;

		if (*pos >= end)
			return -EIO;
		b = p[(*pos)++];
		if (i == 9 && b > 1)
			return -EIO;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*ret = v;
			return 0;
		}
	}
	return -EIO;
}

/* A signed varint's bytes (groups with the high bit, then a last byte). */
static int skip_svarint_checked(const uint8_t *p, size_t end, size_t *pos)
{
	for (unsigned i = 0; i < 11; i++) {
		if (*pos >= end)
			return -EIO;
		if (!(p[(*pos)++] & 0x80))
			return 0;
	}
	return -EIO;
}

/* Reads the block at off: *ret (malloc'ed) holds its table, *ret_len bytes. */
static int read_block(const struct ds_pxar_source *src, uint64_t off, uint8_t **ret,
		      size_t *ret_len)
{
	uint8_t head[10], *b;
	uint64_t len, end = src->size - 8;
	size_t n = end - off < sizeof(head) ? (size_t)(end - off) : sizeof(head), pos = 0;
	int r;

	if (off < sizeof(catalog_magic) || off >= end)
		return cat_bad(off, "block offset outside the catalog");
	r = src->pread(src->ctx, head, n, off);
	if (r < 0)
		return r;
	if (read_varint(head, n, &pos, &len) < 0 || len > CAT_BLOCK_MAX || len > end - off - pos)
		return cat_bad(off, "bad block length");
	b = malloc(len ? (size_t)len : 1);
	if (!b)
		return -ENOMEM;
	r = src->pread(src->ctx, b, (size_t)len, off + pos);
	if (r < 0) {
		free(b);
		return r;
	}
	*ret = b;
	*ret_len = (size_t)len;
	return 0;
}

/* The entries of the block at off. In the root block (archive not NULL)
 * only the 'd' entry named archive is followed: 1 when it was found and
 * walked, 0 when it is not there. Else 0, a visitor's non-zero value, or
 * -errno. */
static int walk_block(struct walk *w, uint64_t off, unsigned depth, const char *archive)
{
	uint64_t count, v;
	size_t len, pos = 0;
	uint8_t *b;
	int r;

	if (depth > CAT_DEPTH_MAX)
		return cat_bad(off, "directories nested too deep");
	r = read_block(w->src, off, &b, &len);
	if (r < 0)
		return r;
	if (read_varint(b, len, &pos, &count) < 0) {
		r = cat_bad(off, "bad entry count");
		goto out;
	}
	for (uint64_t i = 0; i < count; i++) {
		const char *name;
		uint8_t type;
		uint64_t nlen;

		if (pos >= len)
			goto bad;
		type = b[pos++];
		if (read_varint(b, len, &pos, &nlen) < 0 || nlen == 0 || nlen > CAT_NAME_MAX ||
		    nlen > len - pos)
			goto bad;
		name = (const char *)b + pos;
		pos += (size_t)nlen;
		switch (type) {
		case 'd':
			/* The child block lies before this one: no cycles. */
			if (read_varint(b, len, &pos, &v) < 0 || v == 0 || v > off)
				goto bad;
			if (archive) {
				if (nlen != strlen(archive) || memcmp(name, archive, nlen) != 0)
					break;
				r = walk_block(w, off - v, depth + 1, NULL);
				r = r == 0 ? 1 : r;
				goto out;
			}
			r = w->vis->enter(w->ud, name, (size_t)nlen);
			if (r == 0)
				r = walk_block(w, off - v, depth + 1, NULL);
			if (r == 0)
				r = w->vis->leave(w->ud);
			if (r != 0)
				goto out;
			break;
		default:
			/* 'f' has its size and mtime; the others, nothing. */
			if (type == 'f' && (read_varint(b, len, &pos, &v) < 0 ||
					    skip_svarint_checked(b, len, &pos) < 0))
				goto bad;
			if (!type || !strchr("flhbcps", type))
				goto bad;
			if (!archive && (r = w->vis->entry(w->ud, (char)type, name, (size_t)nlen)) != 0)
				goto out;
			break;
		}
	}
	r = pos == len ? 0 : cat_bad(off, "bytes after the last entry");
	goto out;
bad:
	r = cat_bad(off, "malformed entry");
out:
	free(b);
	return r;
}

int ds_pxar_catalog_walk(const struct ds_pxar_source *src, const char *archive,
			 const struct ds_pxar_catalog_visitor *vis, void *ud)
{
	struct walk w = { src, vis, ud };
	uint8_t tail[8];
	int r;

	if (src->size < 2 * sizeof(catalog_magic))
		return cat_bad(0, "too short");
	r = src->pread(src->ctx, tail, sizeof(tail), 0);
	if (r < 0)
		return r;
	if (memcmp(tail, catalog_magic, sizeof(tail)) != 0)
		return cat_bad(0, "not a catalog (magic)");
	r = src->pread(src->ctx, tail, sizeof(tail), src->size - 8);
	if (r < 0)
		return r;
	r = walk_block(&w, ds_le64(tail), 0, archive);
	return r == 1 ? 0 : r == 0 ? -ENOENT : r;
}
