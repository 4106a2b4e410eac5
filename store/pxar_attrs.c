/* pxar: extended attributes and POSIX ACLs as Linux shows them, the lazily
 * built hardlink index behind ds_pxar_nlink, and the filename hash. */
#include "store/pxar.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "store/log.h"
#include "store/pxar_internal.h"
#include "store/util.h"

/* ---- SipHash-2-4 (spec §2.4) ---- */

/* k0 = 0x83ac3f1cfbb450db, k1 = 0xaa4f1b6879369fbd, each little endian. */
static const uint8_t sip_key[16] = { 0xdb, 0x50, 0xb4, 0xfb, 0x1c, 0x3f, 0xac, 0x83,
				     0xbd, 0x9f, 0x36, 0x79, 0x68, 0x1b, 0x4f, 0xaa };

/* Keyed once; every hash works on a duplicate, which only reads the
 * template, so concurrent callers need no lock. Lives until exit. */
static EVP_MAC_CTX *sip_tmpl;
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static void sip_init(void)
{
	size_t outlen = 8;
	OSSL_PARAM params[] = {
		OSSL_PARAM_size_t(OSSL_MAC_PARAM_SIZE, &outlen),
		OSSL_PARAM_END,
	};
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;

	EVP_MAC_free(mac);
	if (!ctx || !EVP_MAC_init(ctx, sip_key, sizeof(sip_key), params)) {
		ds_err("pxar: OpenSSL has no usable SIPHASH");
		EVP_MAC_CTX_free(ctx);
		return;
	}
	sip_tmpl = ctx;
}

int pxar_siphash(const void *data, size_t len, uint64_t *ret)
{
	static const uint8_t empty;
	uint8_t out[8];
	size_t outlen = 0;
	EVP_MAC_CTX *ctx;
	int ok;

	if (pthread_once(&sip_once, sip_init) != 0 || !sip_tmpl)
		return -EIO;
	ctx = EVP_MAC_CTX_dup(sip_tmpl);
	if (!ctx)
		return -ENOMEM;
	ok = EVP_MAC_update(ctx, len ? data : &empty, len) &&
	     EVP_MAC_final(ctx, out, &outlen, sizeof(out)) && outlen == sizeof(out);
	EVP_MAC_CTX_free(ctx);
	if (!ok) {
		ds_err("pxar: SipHash failed");
		return -EIO;
	}
	*ret = ds_le64(out);
	return 0;
}

uint64_t ds_pxar_hash(const void *name, size_t len)
{
	uint64_t h = 0;

	return pxar_siphash(name, len, &h) < 0 ? 0 : h;
}

/* ---- POSIX ACLs (Linux xattr encoding, <linux/posix_acl_xattr.h>) ---- */

#define ACL_XATTR_VERSION 2
#define TAG_USER_OBJ 0x01
#define TAG_USER 0x02
#define TAG_GROUP_OBJ 0x04
#define TAG_GROUP 0x08
#define TAG_MASK 0x10
#define TAG_OTHER 0x20
#define ACL_UNDEFINED_ID UINT32_MAX
/* The kernel refuses xattr values above 64 KiB: 4-byte header + 8 per entry. */
#define ACL_MAX_ENTRIES ((65536 - 4) / 8)

struct acl_ent {
	uint32_t id;
	uint16_t perm;
};

struct acl_list {
	struct acl_ent *v;
	size_t n, cap;
};

struct acl_state {
	struct acl_list users, groups, dusers, dgroups;
	uint64_t group_obj; /* PXAR_NO_MASK when absent */
	uint64_t def[4];    /* user_obj, group_obj, other, mask */
	bool has_default;
};

/* Permission words: PBS's decoder takes any value and its restore sets
 * only the read, write and execute bits of it (libacl permset); so here. */
static uint16_t acl_perm(uint64_t p)
{
	return (uint16_t)(p & 7);
}

/* A named entry whose id is no Linux id (above 32 bits) is left out, with
 * a log line: the others are shown. */
static int acl_add(struct acl_list *l, uint64_t off, const uint8_t *b)
{
	uint64_t id = ds_le64(b);
	struct acl_ent *v;

	if (id > UINT32_MAX) {
		ds_warn("pxar: offset %llu: ACL entry for id %llu left out", (unsigned long long)off,
			(unsigned long long)id);
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 8;

		if (l->n >= ACL_MAX_ENTRIES)
			return pxar_bad(off, "too many ACL entries");
		v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].id = (uint32_t)id;
	l->v[l->n].perm = acl_perm(ds_le64(b + 8));
	l->n++;
	return 0;
}

static int acl_ent_cmp(const void *a, const void *b)
{
	const struct acl_ent *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return (int)x->perm - (int)y->perm;
}

static uint8_t *acl_put(uint8_t *p, uint16_t tag, uint16_t perm, uint32_t id)
{
	p[0] = (uint8_t)tag;
	p[1] = (uint8_t)(tag >> 8);
	p[2] = (uint8_t)perm;
	p[3] = (uint8_t)(perm >> 8);
	ds_put_le32(p + 4, id);
	return p + 8;
}

static uint8_t *acl_put_list(uint8_t *p, uint16_t tag, struct acl_list *l, uint16_t *union_perm)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), acl_ent_cmp);
	for (size_t i = 0; i < l->n; i++) {
		p = acl_put(p, tag, l->v[i].perm, l->v[i].id);
		*union_perm |= l->v[i].perm;
	}
	return p;
}

/* Builds the xattr value in canonical order (tag, then id), as the kernel
 * stores it. NO_MASK obj entries are left out. A mask is required once
 * named entries exist: mask_or_none gives it, else it is computed as
 * setfacl does (union of the group class). */
static int acl_build(uint64_t user_obj, uint64_t group_obj, uint64_t other, uint64_t mask,
		     struct acl_list *users, struct acl_list *groups, uint8_t **ret,
		     size_t *ret_len)
{
	size_t n = 4 + users->n + groups->n;
	uint16_t uperm = 0;
	uint8_t *buf, *p;

	if (users->n + groups->n > ACL_MAX_ENTRIES - 4) {
		ds_err("pxar: ACL with %zu entries", users->n + groups->n);
		return -EIO;
	}
	buf = malloc(4 + 8 * n);
	if (!buf)
		return -ENOMEM;
	ds_put_le32(buf, ACL_XATTR_VERSION);
	p = buf + 4;
	if (user_obj != PXAR_NO_MASK)
		p = acl_put(p, TAG_USER_OBJ, (uint16_t)user_obj, ACL_UNDEFINED_ID);
	p = acl_put_list(p, TAG_USER, users, &uperm);
	if (group_obj != PXAR_NO_MASK) {
		p = acl_put(p, TAG_GROUP_OBJ, (uint16_t)group_obj, ACL_UNDEFINED_ID);
		uperm |= (uint16_t)group_obj;
	}
	p = acl_put_list(p, TAG_GROUP, groups, &uperm);
	if (mask != PXAR_NO_MASK)
		p = acl_put(p, TAG_MASK, (uint16_t)mask, ACL_UNDEFINED_ID);
	else if (users->n + groups->n > 0)
		p = acl_put(p, TAG_MASK, uperm, ACL_UNDEFINED_ID);
	if (other != PXAR_NO_MASK)
		p = acl_put(p, TAG_OTHER, (uint16_t)other, ACL_UNDEFINED_ID);
	*ret = buf;
	*ret_len = (size_t)(p - buf);
	return 0;
}

static int acl_item(struct acl_state *a, struct ds_pxar *px, uint64_t pos, uint64_t bound,
		    const struct pxar_hdr *h)
{
	uint8_t b[32];
	int r;

	r = pxar_read(px, b, (size_t)h->size, pos + PXAR_HDR, bound, "ACL item");
	if (r < 0)
		return r;
	switch (h->type) {
	case PXAR_ACL_USER:
		return acl_add(&a->users, pos, b);
	case PXAR_ACL_GROUP:
		return acl_add(&a->groups, pos, b);
	case PXAR_ACL_DEFAULT_USER:
		return acl_add(&a->dusers, pos, b);
	case PXAR_ACL_DEFAULT_GROUP:
		return acl_add(&a->dgroups, pos, b);
	case PXAR_ACL_GROUP_OBJ:
		if (a->group_obj != PXAR_NO_MASK)
			return pxar_bad(pos, "second ACL_GROUP_OBJ");
		a->group_obj = acl_perm(ds_le64(b));
		return 0;
	default: /* PXAR_ACL_DEFAULT */
		if (a->has_default)
			return pxar_bad(pos, "second ACL_DEFAULT");
		a->has_default = true;
		for (int i = 0; i < 4; i++) {
			a->def[i] = ds_le64(b + 8 * i);
			if (a->def[i] != PXAR_NO_MASK)
				a->def[i] = acl_perm(a->def[i]);
		}
		return 0;
	}
}

/* Access ACL: USER_OBJ/OTHER from the mode; with ACL_GROUP_OBJ the mode's
 * group bits are the mask, without it they are GROUP_OBJ (and the mask, if
 * named entries need one) — as the PBS client restores it (apply_acls). */
static int acl_emit(struct acl_state *a, mode_t mode, ds_pxar_xattr_fn fn, void *ud)
{
	uint64_t gbits = (mode >> 3) & 7;
	uint8_t *buf = NULL;
	size_t len;
	int r = 0;

	if (a->users.n || a->groups.n || a->group_obj != PXAR_NO_MASK) {
		bool has_go = a->group_obj != PXAR_NO_MASK;

		r = acl_build((mode >> 6) & 7, has_go ? a->group_obj : gbits, mode & 7,
			      has_go || a->users.n || a->groups.n ? gbits : PXAR_NO_MASK,
			      &a->users, &a->groups, &buf, &len);
		if (r < 0)
			return r;
		r = fn(ud, "system.posix_acl_access", buf, len);
		free(buf);
		buf = NULL;
		if (r != 0)
			return r;
	}
	/* Like the PBS client, default entries only count with ACL_DEFAULT. */
	if (a->has_default) {
		r = acl_build(a->def[0], a->def[1], a->def[2], a->def[3], &a->dusers,
			      &a->dgroups, &buf, &len);
		if (r < 0)
			return r;
		r = fn(ud, "system.posix_acl_default", buf, len);
		free(buf);
	}
	return r;
}

int ds_pxar_xattrs(struct ds_pxar *px, const struct ds_pxar_entry *e, ds_pxar_xattr_fn fn,
		   void *ud)
{
	struct acl_state a = { .group_obj = PXAR_NO_MASK };
	uint64_t pos = e->attrs_off, end = e->attrs_end;
	uint8_t *buf = NULL;
	struct pxar_hdr h;
	bool fcaps = false;
	int r = 0;

	if (pos > end || end > px->meta.size)
		return pxar_bad(pos, "bad attribute range");
	while (pos < end) {
		r = pxar_read_hdr(px, pos, end, &h);
		if (r < 0)
			goto out;
		if (h.type == PXAR_XATTR || h.type == PXAR_FCAPS) {
			const char *name = "security.capability";
			size_t skip = 0;

			/* decode_entry refuses it already; the entry may
			 * come from a caller. */
			if (h.type == PXAR_FCAPS && fcaps) {
				r = pxar_bad(pos, "second FCAPS");
				goto out;
			}
			fcaps = fcaps || h.type == PXAR_FCAPS;
			if (!buf && !(buf = malloc(PXAR_XATTR_MAX + 1))) {
				r = -ENOMEM;
				goto out;
			}
			r = pxar_read(px, buf, (size_t)h.size, pos + PXAR_HDR, end, "xattr");
			if (r < 0)
				goto out;
			if (h.type == PXAR_XATTR) {
				uint8_t *nul = memchr(buf, 0, (size_t)h.size);

				if (!nul) {
					r = pxar_bad(pos, "XATTR without a name");
					goto out;
				}
				/* PBS's decoder takes it, its restore skips
				 * it ("invalid xattr"): so here, the others
				 * are shown. */
				if (nul == buf) {
					ds_warn("pxar: offset %llu: XATTR with an empty name "
						"left out", (unsigned long long)pos);
					pos += PXAR_HDR + h.size;
					continue;
				}
				name = (const char *)buf;
				skip = (size_t)(nul - buf) + 1;
			}
			r = fn(ud, name, buf + skip, (size_t)h.size - skip);
			if (r != 0)
				goto out;
		} else if (h.type == PXAR_QUOTA_PROJID) {
			/* not an xattr */
		} else if (h.type == PXAR_ACL_USER || h.type == PXAR_ACL_GROUP ||
			   h.type == PXAR_ACL_GROUP_OBJ || h.type == PXAR_ACL_DEFAULT ||
			   h.type == PXAR_ACL_DEFAULT_USER || h.type == PXAR_ACL_DEFAULT_GROUP) {
			r = acl_item(&a, px, pos, end, &h);
			if (r < 0)
				goto out;
		} else {
			r = pxar_bad(pos, "unexpected item type %016llx among attributes",
				     (unsigned long long)h.type);
			goto out;
		}
		pos += PXAR_HDR + h.size;
	}
	r = acl_emit(&a, e->mode, fn, ud);

out:
	free(buf);
	free(a.users.v);
	free(a.groups.v);
	free(a.dusers.v);
	free(a.dgroups.v);
	return r;
}

/* ---- hardlink index ---- */

#define SCAN_WINDOW (64 * 1024)

static size_t link_slot(uint64_t key, size_t cap)
{
	/* splitmix64 finaliser: offsets are not uniformly distributed. */
	key ^= key >> 30;
	key *= UINT64_C(0xbf58476d1ce4e5b9);
	key ^= key >> 27;
	key *= UINT64_C(0x94d049bb133111eb);
	key ^= key >> 31;
	return (size_t)key & (cap - 1);
}

static int links_inc(struct ds_pxar *px, uint64_t key)
{
	size_t i;

	if (2 * (px->links_used + 1) > px->links_cap) {
		size_t cap = px->links_cap ? 2 * px->links_cap : 64;
		struct pxar_link *v = calloc(cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		for (size_t j = 0; j < px->links_cap; j++) {
			if (!px->links[j].entry_off)
				continue;
			for (i = link_slot(px->links[j].entry_off, cap); v[i].entry_off;)
				i = (i + 1) & (cap - 1);
			v[i] = px->links[j];
		}
		free(px->links);
		px->links = v;
		px->links_cap = cap;
	}
	for (i = link_slot(key, px->links_cap); px->links[i].entry_off;
	     i = (i + 1) & (px->links_cap - 1)) {
		if (px->links[i].entry_off == key) {
			if (px->links[i].count < UINT32_MAX)
				px->links[i].count++;
			return 0;
		}
	}
	px->links[i].entry_off = key;
	px->links[i].count = 1;
	px->links_used++;
	return 0;
}

static uint32_t links_get(const struct ds_pxar *px, uint64_t key)
{
	if (!px->links_cap)
		return 0;
	for (size_t i = link_slot(key, px->links_cap); px->links[i].entry_off;
	     i = (i + 1) & (px->links_cap - 1))
		if (px->links[i].entry_off == key)
			return px->links[i].count;
	return 0;
}

void pxar_links_free(struct ds_pxar *px)
{
	free(px->links);
	px->links = NULL;
	px->links_cap = px->links_used = 0;
}

/* A read window over the stream, so that the header-by-header scan costs
 * one source read per 64 KiB of metadata rather than one per item. */
struct scan {
	uint8_t *buf;
	uint64_t off;
	size_t len;
};

static int scan_get(struct ds_pxar *px, struct scan *sc, uint64_t off, size_t need,
		    const uint8_t **ret)
{
	uint64_t l = px->meta.size;
	int r;

	if (off < sc->off || off - sc->off > sc->len || need > sc->len - (off - sc->off)) {
		if (off > l || need > l - off)
			return pxar_bad(off, "item header beyond the archive");
		sc->len = l - off < SCAN_WINDOW ? (size_t)(l - off) : SCAN_WINDOW;
		sc->off = off;
		r = pxar_read(px, sc->buf, sc->len, off, l, "metadata scan");
		if (r < 0) {
			sc->len = 0;
			return r;
		}
	}
	*ret = sc->buf + (off - sc->off);
	return 0;
}

/* Every item of the metadata stream in order, headers only; each HARDLINK
 * must directly follow its FILENAME and point back to another FILENAME
 * whose ENTRY is a regular file; that ENTRY's offset is the key. */
static int links_build(struct ds_pxar *px)
{
	struct scan sc = { .buf = malloc(SCAN_WINDOW) };
	uint64_t l = px->meta.size, off = 0, last_fn = UINT64_MAX, delta, tf, te;
	const uint8_t *p;
	struct pxar_hdr h, th;
	int r = 0;

	if (!sc.buf)
		return -ENOMEM;
	while (off < l) {
		r = scan_get(px, &sc, off, PXAR_HDR, &p);
		if (r < 0 || (r = pxar_parse_hdr(p, off, l, &h)) < 0)
			break;
		if (h.type == PXAR_HARDLINK) {
			if (last_fn == UINT64_MAX || h.size < 8) {
				r = pxar_bad(off, "HARDLINK without a FILENAME");
				break;
			}
			r = scan_get(px, &sc, off + PXAR_HDR, 8, &p);
			if (r < 0)
				break;
			delta = ds_le64(p);
			if (delta == 0 || delta > last_fn) {
				r = pxar_bad(off, "hardlink delta %llu does not point backwards",
					     (unsigned long long)delta);
				break;
			}
			tf = last_fn - delta;
			r = scan_get(px, &sc, tf, PXAR_HDR, &p);
			if (r < 0 || (r = pxar_parse_hdr(p, tf, last_fn, &th)) < 0)
				break;
			if (th.type != PXAR_FILENAME) {
				r = pxar_bad(off, "hardlink target %llu is not a FILENAME",
					     (unsigned long long)tf);
				break;
			}
			te = tf + PXAR_HDR + th.size;
			r = scan_get(px, &sc, te, PXAR_HDR + 8, &p);
			if (r < 0 || (r = pxar_parse_hdr(p, te, last_fn, &th)) < 0)
				break;
			if ((th.type != PXAR_ENTRY && th.type != PXAR_ENTRY_V1) ||
			    !S_ISREG(ds_le64(p + PXAR_HDR))) {
				r = pxar_bad(off, "hardlink target %llu is not a regular file",
					     (unsigned long long)tf);
				break;
			}
			r = links_inc(px, te);
			if (r < 0)
				break;
		}
		last_fn = h.type == PXAR_FILENAME ? off : UINT64_MAX;
		off += PXAR_HDR + h.size;
	}
	free(sc.buf);
	return r;
}

int ds_pxar_nlink(struct ds_pxar *px, const struct ds_pxar_entry *e)
{
	uint32_t n;
	int r;

	if (!S_ISREG(e->mode))
		return 1;
	pthread_mutex_lock(&px->lock);
	if (px->links_state == 0) {
		r = links_build(px);
		/* A malformed archive stays malformed; other errors (memory,
		 * the source) may pass, so the next call scans again. */
		px->links_state = r == -EIO ? -EIO : r < 0 ? 0 : 1;
		if (r < 0)
			pxar_links_free(px);
	} else {
		r = px->links_state;
	}
	n = links_get(px, e->entry_off);
	pthread_mutex_unlock(&px->lock);
	if (r < 0)
		return r;
	return n >= INT_MAX - 1 ? INT_MAX : (int)n + 1;
}

int ds_pxar_set_links(struct ds_pxar *px, const uint64_t *targets, size_t n)
{
	int r = 0;

	pthread_mutex_lock(&px->lock);
	if (px->links_state == 0) {
		for (size_t i = 0; i < n && r == 0; i++)
			r = links_inc(px, targets[i]);
		if (r < 0)
			pxar_links_free(px);
		else
			px->links_state = 1;
	}
	pthread_mutex_unlock(&px->lock);
	return r;
}

/* ---- hardlinks from the catalog ---- */

/* The catalog directories the walk is in, looked up in the archive only
 * when a hardlink below one needs it. */
struct cat_dir_ref {
	size_t name_off, name_len; /* in names */
	struct ds_pxar_entry e;
	bool resolved;
};

struct cat_links {
	struct ds_pxar *px;
	struct cat_dir_ref *dirs;
	size_t depth, dirs_cap;
	char *names;
	size_t names_len, names_cap;
	uint64_t *targets;
	size_t n, cap;
};

/* p (capacity *cap elements of size bytes) with room for n: p itself, or
 * p grown by doubling from 64 (*cap updated), or NULL (p unchanged). */
static void *reserve(void *p, size_t *cap, size_t n, size_t size)
{
	size_t c = *cap ? *cap : 64;

	if (n <= *cap)
		return p;
	while (c < n)
		c *= 2;
	p = realloc(p, c * size);
	if (p)
		*cap = c;
	return p;
}

static int cat_enter(void *ud, const char *name, size_t len)
{
	struct cat_links *cl = ud;
	void *p;

	if (!(p = reserve(cl->dirs, &cl->dirs_cap, cl->depth + 1, sizeof(*cl->dirs))))
		return -ENOMEM;
	cl->dirs = p;
	if (!(p = reserve(cl->names, &cl->names_cap, cl->names_len + len, 1)))
		return -ENOMEM;
	cl->names = p;
	memcpy(cl->names + cl->names_len, name, len);
	cl->dirs[cl->depth++] = (struct cat_dir_ref){ .name_off = cl->names_len, .name_len = len };
	cl->names_len += len;
	return 0;
}

static int cat_leave(void *ud)
{
	struct cat_links *cl = ud;

	cl->names_len = cl->dirs[--cl->depth].name_off;
	return 0;
}

static int cat_entry(void *ud, char type, const char *name, size_t len)
{
	struct cat_links *cl = ud;
	struct ds_pxar_entry dir, e;
	void *p;
	int r;

	if (type != 'h')
		return 0;
	/* The directories down to this one, those not looked up yet. */
	ds_pxar_root(cl->px, &dir);
	for (size_t i = 0; i < cl->depth; i++) {
		struct cat_dir_ref *d = &cl->dirs[i];

		if (!d->resolved) {
			r = ds_pxar_lookup(cl->px, &dir, cl->names + d->name_off, d->name_len, &d->e);
			if (r < 0 || !S_ISDIR(d->e.mode))
				return pxar_bad(dir.entry_off, "catalog directory %zu of a hardlink is %s",
						i, r < 0 ? "not in the archive" : "not a directory");
			d->resolved = true;
		}
		dir = d->e;
	}
	r = ds_pxar_lookup(cl->px, &dir, name, len, &e);
	if (r < 0 || !e.hardlink)
		return pxar_bad(dir.entry_off, "catalog hardlink is %s",
				r < 0 ? "not in the archive" : "no hardlink there");
	if (!(p = reserve(cl->targets, &cl->cap, cl->n + 1, sizeof(*cl->targets))))
		return -ENOMEM;
	cl->targets = p;
	cl->targets[cl->n++] = e.entry_off;
	return 0;
}

int ds_pxar_links_from_catalog(struct ds_pxar *px, const struct ds_pxar_source *catalog,
			       const char *catalog_name)
{
	static const struct ds_pxar_catalog_visitor vis = { cat_enter, cat_leave, cat_entry };
	struct cat_links cl = { .px = px };
	int r;

	r = ds_pxar_catalog_walk(catalog, catalog_name, &vis, &cl);
	if (r == 0)
		r = ds_pxar_set_links(px, cl.targets, cl.n);
	free(cl.targets);
	free(cl.names);
	free(cl.dirs);
	return r;
}
