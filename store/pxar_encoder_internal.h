/* pxar_encoder_internal — shared by pxar_encoder.c and pxar_encoder_meta.c
 * only. Not a public header: the contract is store/pxar_encoder.h. Item
 * types and limits are spec pxar-format.md §1.1/§1.2.
 */
#ifndef DSFS_STORE_PXAR_ENCODER_INTERNAL_H
#define DSFS_STORE_PXAR_ENCODER_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/util.h"

#define XATTR_CONTENT_MAX 65791 /* XATTR and FCAPS content (spec §1.1) */

/* Item types (spec §1.2). */
#include "store/pxar_format.h"

#define ACL_NO_MASK UINT64_MAX

/* A growable byte buffer; always keeps one spare byte past len. */
struct dbuf {
	uint8_t *p;
	size_t len, cap;
};

static inline int dbuf_put(struct dbuf *d, const void *p, size_t n)
{
	if (d->len + n + 1 > d->cap) {
		size_t cap = d->cap ? d->cap : 256;
		uint8_t *q;

		while (cap < d->len + n + 1)
			cap *= 2;
		q = realloc(d->p, cap);
		if (!q)
			return -ENOMEM;
		d->p = q;
		d->cap = cap;
	}
	if (n)
		memcpy(d->p + d->len, p, n);
	d->len += n;
	return 0;
}

static inline void dbuf_release(struct dbuf *d)
{
	free(d->p);
	memset(d, 0, sizeof(*d));
}

/* Appends one item: header, then a and b. */
static inline int dbuf_item(struct dbuf *d, uint64_t type, const void *a, size_t alen, const void *b,
		     size_t blen)
{
	uint8_t h[16];
	int r;

	ds_put_le64(h, type);
	ds_put_le64(h + 8, 16 + alen + blen);
	r = dbuf_put(d, h, 16);
	if (r == 0)
		r = dbuf_put(d, a, alen);
	if (r == 0)
		r = dbuf_put(d, b, blen);
	return r;
}

static inline int dbuf_u64s(struct dbuf *d, uint64_t type, const uint64_t *v, size_t n)
{
	uint8_t b[32];

	for (size_t i = 0; i < n; i++)
		ds_put_le64(b + 8 * i, v[i]);
	return dbuf_item(d, type, b, 8 * n, NULL, 0);
}

/* The ENTRY item and the attribute items of the entry open as fd (stat
 * st; path names it in log lines) in encoder order (spec §2.1) into out,
 * which is reset first. Attributes that cannot be read are logged and left
 * out. Returns 0 or -ENOMEM. */
int pxar_enc_get_meta(int fd, const struct stat *st, const char *path, struct dbuf *out);

/* Whether fd lies on a virtual file system (proc, sysfs, cgroup, devpts,
 * ...), whose contents PBS never backs up. */
bool pxar_enc_virtual_fs(int fd);

#endif
