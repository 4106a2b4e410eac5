/* pxar_check — helpers shared by the pxar encoder suites (header-only,
 * include after <cmocka.h>): memory sinks and sources, encoding into them,
 * and a sequential structure validator written from the spec (item order,
 * goodbye tables per §2.3-§2.5, payload references per §4), plus helpers
 * that build trees on disk. */
#ifndef DSFS_TESTS_PXAR_CHECK_H
#define DSFS_TESTS_PXAR_CHECK_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "store/pxar.h"
#include "store/pxar_encoder.h"
#include "store/util.h"

#define PXC_FN static __attribute__((unused))

#define PJ(buf, ...) assert_int_equal(ds_path_fmt(buf, sizeof(buf), __VA_ARGS__), 0)

#define T_FORMAT_VERSION UINT64_C(0x730f6c75df16a40d)
#define T_ENTRY UINT64_C(0xd5956474e588acef)
#define T_FILENAME UINT64_C(0x16701121063917b3)
#define T_SYMLINK UINT64_C(0x27f971e7dbf5dc5f)
#define T_DEVICE UINT64_C(0x9fc9e906586d5ce9)
#define T_XATTR UINT64_C(0x0dab0229b57dcd03)
#define T_ACL_USER UINT64_C(0x2ce8540a457d55b8)
#define T_ACL_GROUP UINT64_C(0x136e3eceb04c03ab)
#define T_ACL_GROUP_OBJ UINT64_C(0x10868031e9582876)
#define T_ACL_DEFAULT UINT64_C(0xbbbb13415a6896f5)
#define T_ACL_DEFAULT_USER UINT64_C(0xc89357b40532cd1f)
#define T_ACL_DEFAULT_GROUP UINT64_C(0xf90a8a5816038ffe)
#define T_FCAPS UINT64_C(0x2da9dd9db5f7fb67)
#define T_QUOTA_PROJID UINT64_C(0xe07540e82f7d1cbb)
#define T_HARDLINK UINT64_C(0x51269c8422bd7275)
#define T_PAYLOAD UINT64_C(0x28147a1b0b7c1a25)
#define T_PAYLOAD_REF UINT64_C(0x419d3d6bc4ba977e)
#define T_GOODBYE UINT64_C(0x2fec4fa642d5731d)
#define T_TAIL UINT64_C(0xef5eed5b753e1555)
#define T_PAYLOAD_START UINT64_C(0x834c68c2194a4ed2)
#define T_PAYLOAD_TAIL UINT64_C(0x6c72b78b984c81b5)

/* ---- memory sinks and sources ---- */

struct mem {
	uint8_t *p;
	size_t len, cap;
	size_t fail_after; /* 0: never fail */
};

PXC_FN int mem_write(void *ctx, const void *buf, size_t len)
{
	struct mem *m = ctx;

	if (m->fail_after && m->len + len > m->fail_after)
		return -ENOSPC;
	if (m->len + len > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;

		while (cap < m->len + len)
			cap *= 2;
		m->p = realloc(m->p, cap);
		assert_non_null(m->p);
		m->cap = cap;
	}
	memcpy(m->p + m->len, buf, len);
	m->len += len;
	return 0;
}

PXC_FN int mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct mem *m = ctx;

	if (off > m->len || len > m->len - off)
		return -EIO;
	memcpy(buf, m->p + off, len);
	return 0;
}

struct enc_out {
	struct mem meta, pay;
	struct ds_pxar_encode_stats st;
};

PXC_FN int encode(const char *dir, bool split, struct enc_out *o)
{
	struct ds_pxar_sink ms = { mem_write, &o->meta }, ps = { mem_write, &o->pay };

	memset(o, 0, sizeof(*o));
	return ds_pxar_encode_dir(dir, &ms, split ? &ps : NULL, NULL, NULL, &o->st);
}

PXC_FN void enc_out_free(struct enc_out *o)
{
	free(o->meta.p);
	free(o->pay.p);
}

PXC_FN struct ds_pxar *open_px(struct enc_out *o, bool split)
{
	struct ds_pxar_source ms = { mem_pread, o->meta.len, &o->meta, NULL };
	struct ds_pxar_source ps = { mem_pread, o->pay.len, &o->pay, NULL };
	struct ds_pxar *px;

	assert_int_equal(ds_pxar_open(&ms, split ? &ps : NULL, &px), 0);
	assert_int_equal(ds_pxar_format_version(px), split ? 2 : 1);
	return px;
}

/* ---- structure validator ---- */

struct vs {
	const uint8_t *b, *pay;
	size_t len, plen;
	bool v2;
	uint64_t next_payload; /* where the next PAYLOAD must start (ours has no gaps) */
	uint64_t *file_f;      /* FILENAME offsets of regular files (hardlink targets) */
	size_t nfiles, capf;
	struct ds_pxar_encode_stats cnt;
};

struct child {
	uint64_t hash, f, span;
	const uint8_t *name;
	size_t nlen;
};

PXC_FN uint64_t h_type(const struct vs *v, size_t off)
{
	assert_true(off + 16 <= v->len);
	return ds_le64(v->b + off);
}

PXC_FN uint64_t h_size(const struct vs *v, size_t off)
{
	uint64_t s = ds_le64(v->b + off + 8);

	assert_true(s >= 16 && s <= v->len - off);
	return s;
}

/* Rank in the encoder order of §2.1; -1 for a non-attribute. */
PXC_FN int attr_rank(uint64_t t)
{
	static const uint64_t order[] = { T_XATTR,	     T_ACL_USER,	 T_ACL_GROUP,
					  T_ACL_GROUP_OBJ,   T_ACL_DEFAULT,	 T_ACL_DEFAULT_USER,
					  T_ACL_DEFAULT_GROUP, T_FCAPS,		 T_QUOTA_PROJID };

	for (int i = 0; i < (int)DS_ARRAY_SIZE(order); i++)
		if (order[i] == t)
			return i;
	return -1;
}

PXC_FN void check_attrs(const struct vs *v, size_t *off)
{
	static const uint64_t exact[] = { 0, 32, 32, 24, 48, 32, 32, 0, 24 };
	size_t prev = 0;
	int last = -1;

	for (int r; *off < v->len && (r = attr_rank(h_type(v, *off))) >= 0;) {
		uint64_t s = h_size(v, *off);

		assert_true(r > last || (r == last && (r <= 2 || r == 5 || r == 6)));
		if (exact[r])
			assert_int_equal(s, exact[r]);
		if (r == 0) /* XATTR: name, NUL, value */
			assert_non_null(memchr(v->b + *off + 16, 0, s - 16));
		/* ACL users and groups: sorted by id, then permissions */
		if (r == last && r != 0) {
			uint64_t pid = ds_le64(v->b + prev + 16), pp = ds_le64(v->b + prev + 24);
			uint64_t id = ds_le64(v->b + *off + 16), pm = ds_le64(v->b + *off + 24);

			assert_true(pid < id || (pid == id && pp < pm));
		}
		prev = *off;
		last = r;
		*off += s;
	}
}

PXC_FN size_t check_entry_item(const struct vs *v, size_t off, uint64_t *ret_mode)
{
	assert_int_equal(h_type(v, off), T_ENTRY);
	assert_int_equal(h_size(v, off), 56);
	assert_true(ds_le32(v->b + off + 16 + 32) < 1000000000u);
	assert_int_equal(ds_le32(v->b + off + 16 + 36), 0); /* padding */
	*ret_mode = ds_le64(v->b + off + 16);
	return off + 56;
}

PXC_FN int cmp_raw(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	return c ? c : (al > bl) - (al < bl);
}

PXC_FN void inorder(const uint8_t *tab, size_t n, size_t i, uint64_t *prev, bool *first)
{
	uint64_t h;

	if (i >= n)
		return;
	inorder(tab, n, 2 * i + 1, prev, first);
	h = ds_le64(tab + 24 * i);
	assert_true(*first || h >= *prev);
	*prev = h;
	*first = false;
	inorder(tab, n, 2 * i + 2, prev, first);
}

PXC_FN void check_dir(struct vs *v, size_t *off, uint64_t tail_base)
{
	struct child *c = NULL;
	size_t n = 0, cap = 0;
	uint64_t mode, g, size, prev = 0;
	bool first = true;
	const uint8_t *tab;

	*off = check_entry_item(v, *off, &mode);
	assert_true(S_ISDIR(mode));
	check_attrs(v, off);
	while (h_type(v, *off) != T_GOODBYE) {
		struct child ch = { 0 };
		uint64_t s;

		assert_int_equal(h_type(v, *off), T_FILENAME);
		ch.f = *off;
		s = h_size(v, *off);
		assert_true(s >= 18);
		ch.name = v->b + *off + 16;
		ch.nlen = s - 17;
		assert_int_equal(ch.name[ch.nlen], 0);
		assert_null(memchr(ch.name, 0, ch.nlen));
		assert_null(memchr(ch.name, '/', ch.nlen));
		/* PBS order: children sorted by raw bytes */
		if (n)
			assert_true(cmp_raw(c[n - 1].name, c[n - 1].nlen, ch.name, ch.nlen) < 0);
		*off += s;
		if (h_type(v, *off) == T_HARDLINK) {
			uint64_t hs = h_size(v, *off), delta = ds_le64(v->b + *off + 16);
			bool found = false;

			assert_true(delta > 0 && delta <= ch.f);
			for (size_t i = 0; i < v->nfiles; i++)
				found |= v->file_f[i] == ch.f - delta;
			assert_true(found);
			assert_true(hs > 16 + 8 + 1);
			assert_int_equal(v->b[*off + hs - 1], 0);
			assert_true(v->b[*off + 24] != '/');
			*off += hs;
			v->cnt.hardlinks++;
		} else if (S_ISDIR(ds_le64(v->b + *off + 16))) {
			check_dir(v, off, *off);
		} else {
			*off = check_entry_item(v, *off, &mode);
			check_attrs(v, off);
			switch (mode & S_IFMT) {
			case S_IFREG:
				if (v->v2) {
					uint64_t q, sz;

					assert_int_equal(h_type(v, *off), T_PAYLOAD_REF);
					assert_int_equal(h_size(v, *off), 32);
					q = ds_le64(v->b + *off + 16);
					sz = ds_le64(v->b + *off + 24);
					assert_int_equal(q, v->next_payload);
					assert_true(q + 16 + sz + 16 <= v->plen);
					assert_true(ds_le64(v->pay + q) == T_PAYLOAD);
					assert_true(ds_le64(v->pay + q + 8) == 16 + sz);
					v->next_payload = q + 16 + sz;
					*off += 32;
				} else {
					assert_int_equal(h_type(v, *off), T_PAYLOAD);
					*off += h_size(v, *off);
				}
				if (v->nfiles == v->capf) {
					v->capf = v->capf ? 2 * v->capf : 64;
					v->file_f = realloc(v->file_f, v->capf * sizeof(uint64_t));
				}
				v->file_f[v->nfiles++] = ch.f;
				v->cnt.files++;
				break;
			case S_IFLNK:
				assert_int_equal(h_type(v, *off), T_SYMLINK);
				assert_true(h_size(v, *off) >= 18);
				assert_int_equal(v->b[*off + h_size(v, *off) - 1], 0);
				*off += h_size(v, *off);
				v->cnt.symlinks++;
				break;
			case S_IFCHR:
			case S_IFBLK:
				assert_int_equal(h_type(v, *off), T_DEVICE);
				assert_int_equal(h_size(v, *off), 32);
				*off += 32;
				v->cnt.devices++;
				break;
			case S_IFIFO:
				v->cnt.fifos++;
				break;
			case S_IFSOCK:
				v->cnt.sockets++;
				break;
			default:
				fail_msg("bad mode %llo", (unsigned long long)mode);
			}
		}
		ch.span = *off - ch.f;
		ch.hash = ds_pxar_hash(ch.name, ch.nlen);
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			c = realloc(c, cap * sizeof(*c));
		}
		c[n++] = ch;
	}
	/* §2.3: n child records in BST order, then the tail record. */
	g = *off;
	size = h_size(v, g);
	assert_int_equal(size, 16 + 24 * (n + 1));
	tab = v->b + g + 16;
	for (size_t i = 0; i < n; i++) {
		uint64_t f = g - ds_le64(tab + 24 * i + 8);
		size_t lo = 0, hi = n;

		while (lo < hi) { /* children are in offset order */
			size_t mid = (lo + hi) / 2;

			if (c[mid].f < f)
				lo = mid + 1;
			else
				hi = mid;
		}
		assert_true(lo < n && c[lo].f == f);
		assert_true(c[lo].hash == ds_le64(tab + 24 * i));
		assert_true(c[lo].span == ds_le64(tab + 24 * i + 16));
		c[lo].span = UINT64_MAX; /* used: a second record for it fails above */
	}
	inorder(tab, n, 0, &prev, &first);
	assert_true(ds_le64(tab + 24 * n) == T_TAIL);
	assert_true(ds_le64(tab + 24 * n + 8) == g - tail_base);
	assert_true(ds_le64(tab + 24 * n + 16) == size);
	*off = g + size;
	v->cnt.dirs++;
	free(c);
}

PXC_FN void validate(const struct enc_out *o, bool split, struct ds_pxar_encode_stats *ret)
{
	struct vs v = { .b = o->meta.p, .len = o->meta.len, .pay = o->pay.p,
			.plen = o->pay.len, .v2 = split, .next_payload = 16 };
	size_t off = 0;

	if (split) {
		assert_int_equal(h_type(&v, 0), T_FORMAT_VERSION);
		assert_int_equal(h_size(&v, 0), 24);
		assert_int_equal(ds_le64(v.b + 16), 2);
		off = 24;
		assert_true(v.plen >= 32);
		assert_true(ds_le64(v.pay) == T_PAYLOAD_START && ds_le64(v.pay + 8) == 16);
	}
	check_dir(&v, &off, 0);
	assert_int_equal(off, v.len);
	if (split) {
		assert_int_equal(v.next_payload, v.plen - 16);
		assert_true(ds_le64(v.pay + v.plen - 16) == T_PAYLOAD_TAIL);
		assert_true(ds_le64(v.pay + v.plen - 8) == 16);
	}
	free(v.file_f);
	if (ret)
		*ret = v.cnt;
}

PXC_FN void set_time(const char *path, int64_t sec, long nsec)
{
	struct timespec ts[2] = { { sec, nsec }, { sec, nsec } };

	assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* ---- building trees ---- */

#define NOID 0xffffffffu /* the id of ACL object entries */

PXC_FN void mkf(const char *root, const char *rel, const void *data, size_t len, mode_t mode)
{
	char p[4096];
	int fd;

	PJ(p, "%s/%s", root, rel);
	fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	if (len)
		assert_int_equal(ds_write_all(fd, data, len), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

PXC_FN void mkd(const char *root, const char *rel, mode_t mode)
{
	char p[4096];

	PJ(p, "%s/%s", root, rel);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(chmod(p, mode), 0);
}

PXC_FN void xset(const char *root, const char *rel, const char *name, const void *v, size_t len)
{
	char p[4096];

	PJ(p, "%s/%s", root, rel);
	assert_int_equal(lsetxattr(p, name, v, len, 0), 0);
}

struct acl_e {
	uint16_t tag, perm;
	uint32_t id;
};

/* Linux's system.posix_acl_* encoding, written raw (no libacl). */
PXC_FN void acl_set(const char *root, const char *rel, const char *name, const struct acl_e *e,
		    size_t n)
{
	uint8_t buf[4 + 8 * 16];

	assert_true(n <= 16);
	ds_put_le32(buf, 2);
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = buf + 4 + 8 * i;

		p[0] = (uint8_t)e[i].tag;
		p[1] = (uint8_t)(e[i].tag >> 8);
		p[2] = (uint8_t)e[i].perm;
		p[3] = 0;
		ds_put_le32(p + 4, e[i].id);
	}
	xset(root, rel, name, buf, 4 + 8 * n);
}

PXC_FN void tset(const char *root, const char *rel, int64_t sec, long nsec)
{
	char p[4096];

	PJ(p, "%s/%s", root, rel);
	set_time(p, sec, nsec);
}

PXC_FN void owner(const char *root, const char *rel, uid_t u, gid_t g)
{
	char p[4096];

	PJ(p, "%s/%s", root, rel);
	assert_int_equal(fchownat(AT_FDCWD, p, u, g, AT_SYMLINK_NOFOLLOW), 0);
}

#endif
