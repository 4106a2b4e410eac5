/* Chunk loads for the chunk cache: verified whole the first time, then by
 * the file's identity, whole or a part at a time (vfs_internal.h has the
 * contracts). */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "cache/verified_set.h"
#include "fs/mount/vfs_internal.h"
#include "store/blob.h"
#include "store/datastore.h"

int vfs_load_chunk(struct vfs *v, const struct ds_reader *rd, const struct ds_crypt *c,
		   const struct ds_digest *d, size_t expect_len, uint8_t *buf, size_t cap,
		   size_t *ret_len)
{
	struct ds_chunk_file f;
	int r;

	atomic_fetch_add(&v->loads, 1);
	if (v->opt.verify_always)
		return ds_reader_load_chunk(rd, d, c, expect_len, buf, cap, ret_len);
	if (!c && ds_verified_set_find(v->verified, d, &f)) {
		r = ds_reader_load_known_chunk(rd, d, &f, expect_len, buf, cap, ret_len);
		if (r == 0) {
			atomic_fetch_add(&v->known_loads, 1);
			return 0;
		}
		ds_verified_set_forget(v->verified, d, &f);
	}
	r = ds_reader_load_chunk_file(rd, d, c, expect_len, buf, cap, ret_len, &f);
	if (r == 0 && f.size)
		ds_verified_set_add(v->verified, d, &f);
	return r;
}

/* A continuation of vfs_load_chunk_part: zstd's state and the identity
 * of the file it decodes. */
struct vpart {
	struct ds_blob_part *bp;
	struct ds_chunk_file f;
};

void vfs_part_free(void *state)
{
	struct vpart *vp = state;

	if (vp) {
		ds_blob_part_free(vp->bp);
		free(vp);
	}
}

size_t vfs_part_size(void)
{
	return sizeof(struct vpart) + ds_blob_part_size();
}

int vfs_load_chunk_part(struct vfs *v, const struct ds_reader *rd, const struct ds_crypt *c,
			const struct ds_digest *d, size_t expect_len, uint8_t *buf, size_t cap,
			struct ds_chunk_part *p)
{
	struct vpart *vp = p->state;
	size_t len, done;
	int r;

	if (!vp) {
		struct ds_chunk_file f;

		/* The first load of a chunk verifies it whole. */
		if (c || v->opt.verify_always || !expect_len || p->want >= expect_len ||
		    !ds_verified_set_find(v->verified, d, &f) || f.plain)
			goto whole;
		vp = calloc(1, sizeof(*vp));
		if (!vp)
			return -ENOMEM;
		vp->f = f;
	}
	r = ds_reader_decode_known_part(rd, d, &vp->f, expect_len, &vp->bp, buf, cap, p->want,
					&done);
	if (r == -ESTALE)
		ds_verified_set_forget(v->verified, d, &vp->f);
	if (r < 0 && !p->state) {
		/* A new part: the file changed since it was verified, which
		 * the whole load names (or verifies anew). */
		vfs_part_free(vp);
		if (r == -ESTALE)
			goto whole;
	}
	if (r < 0)
		return r;
	if (!p->state) {
		atomic_fetch_add(&v->loads, 1);
		atomic_fetch_add(&v->known_loads, 1);
		p->len = ds_blob_part_len(vp->bp);
		p->state = vp;
	}
	atomic_fetch_add(&v->part_bytes, done - p->valid);
	p->valid = done;
	if (done == p->len) {
		vfs_part_free(vp);
		p->state = NULL;
	}
	return 0;
whole:
	r = vfs_load_chunk(v, rd, c, d, expect_len, buf, cap, &len);
	if (r == 0)
		p->valid = p->len = len;
	return r;
}
