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
#define PXAR_FORMAT_VERSION UINT64_C(0x730f6c75df16a40d)
#define PXAR_ENTRY UINT64_C(0xd5956474e588acef)
#define PXAR_FILENAME UINT64_C(0x16701121063917b3)
#define PXAR_SYMLINK UINT64_C(0x27f971e7dbf5dc5f)
#define PXAR_DEVICE UINT64_C(0x9fc9e906586d5ce9)
#define PXAR_XATTR UINT64_C(0x0dab0229b57dcd03)
#define PXAR_ACL_USER UINT64_C(0x2ce8540a457d55b8)
#define PXAR_ACL_GROUP UINT64_C(0x136e3eceb04c03ab)
#define PXAR_ACL_GROUP_OBJ UINT64_C(0x10868031e9582876)
#define PXAR_ACL_DEFAULT UINT64_C(0xbbbb13415a6896f5)
#define PXAR_ACL_DEFAULT_USER UINT64_C(0xc89357b40532cd1f)
#define PXAR_ACL_DEFAULT_GROUP UINT64_C(0xf90a8a5816038ffe)
#define PXAR_FCAPS UINT64_C(0x2da9dd9db5f7fb67)
#define PXAR_QUOTA_PROJID UINT64_C(0xe07540e82f7d1cbb)
#define PXAR_HARDLINK UINT64_C(0x51269c8422bd7275)
#define PXAR_PAYLOAD UINT64_C(0x28147a1b0b7c1a25)
#define PXAR_PAYLOAD_REF UINT64_C(0x419d3d6bc4ba977e)
#define PXAR_GOODBYE UINT64_C(0x2fec4fa642d5731d)
#define PXAR_GOODBYE_TAIL_MARKER UINT64_C(0xef5eed5b753e1555)
#define PXAR_PAYLOAD_START_MARKER UINT64_C(0x834c68c2194a4ed2)
#define PXAR_PAYLOAD_TAIL_MARKER UINT64_C(0x6c72b78b984c81b5)

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
