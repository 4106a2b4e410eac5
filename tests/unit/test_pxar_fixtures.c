/* Suite for store/pxar against the PBS fixture store: every pxar archive
 * (v1, split v2, encrypted) is reassembled from its chunks, walked whole and
 * compared entry by entry with pbs-store-a.expect.json — nothing missing,
 * nothing extra — and every entry is found again by lookups from the root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "store/chunkstore.h"
#include "store/crypt.h"
#include "store/index.h"
#include "store/pxar.h"
#include "store/util.h"
#include "testutil.h"

struct mem {
	uint8_t *b;
	size_t len;
};

static int mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct mem *m = ctx;

	assert_true(off <= m->len && len <= m->len - off);
	memcpy(buf, m->b + off, len);
	return 0;
}

/* Reassembles the stream of a dynamic index from the chunk store. */
static void load_stream(struct ds_chunkstore *cs, const struct ds_crypt *c, const char *snap,
			const char *name, struct mem *ret)
{
	char path[4096];
	struct ds_index *idx;
	struct ds_index_chunk ch;
	size_t got;

	snprintf(path, sizeof(path), "%s/pbs-store-a/%s/%s", tu_fixtures(), snap, name);
	assert_int_equal(ds_index_open(AT_FDCWD, path, &idx), 0);
	ret->len = ds_index_size(idx);
	ret->b = malloc(ret->len ? ret->len : 1);
	assert_non_null(ret->b);
	for (size_t i = 0; i < ds_index_count(idx); i++) {
		assert_int_equal(ds_index_chunk(idx, i, &ch), 0);
		assert_int_equal(ds_chunkstore_load(cs, &ch.digest, c, ch.end - ch.start,
						    ret->b + ch.start, ch.end - ch.start, &got),
				 0);
		assert_int_equal(got, ch.end - ch.start);
	}
	ds_index_free(idx);
}

/* --- the decoded tree --- */

struct got {
	char *path; /* raw bytes, "/" for the root */
	size_t len;
	struct ds_pxar_entry e;
};

struct tree {
	struct got *v;
	size_t n, cap;
	struct ds_pxar *px;
};

static void tree_add(struct tree *t, const char *path, size_t len, const struct ds_pxar_entry *e)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 256;
		t->v = realloc(t->v, t->cap * sizeof(*t->v));
		assert_non_null(t->v);
	}
	t->v[t->n].path = malloc(len + 1);
	assert_non_null(t->v[t->n].path);
	memcpy(t->v[t->n].path, path, len);
	t->v[t->n].path[len] = 0;
	t->v[t->n].len = len;
	t->v[t->n].e = *e;
	t->n++;
}

struct walk_ctx {
	struct tree *t;
	const char *prefix; /* "" for the root's children */
	size_t plen;
	size_t first;       /* index in t of this directory's first child */
};

static int walk_fn(void *ud, const char *name, size_t len, const struct ds_pxar_entry *e)
{
	struct walk_ctx *w = ud;
	char path[16384];

	assert_true(w->plen + 1 + len < sizeof(path));
	memcpy(path, w->prefix, w->plen);
	path[w->plen] = '/';
	memcpy(path + w->plen + 1, name, len);
	tree_add(w->t, path, w->plen + 1 + len, e);
	return 0;
}

static int big_dirs;

static void walk(struct tree *t, const struct ds_pxar_entry *dir, const char *prefix,
		 size_t plen)
{
	struct walk_ctx w = { t, prefix, plen, t->n };
	size_t end, cnt;

	assert_int_equal(ds_pxar_readdir(t->px, dir, 0, walk_fn, &w), 0);
	end = t->n;
	/* In archive order, which PBS's encoder makes name order: entries
	 * grow in offset (a hardlink has its target's, earlier), names
	 * strictly in byte order. */
	for (size_t i = w.first + 1; i < end; i++) {
		const struct got *a = &t->v[i - 1], *b = &t->v[i];
		size_t n = a->len < b->len ? a->len : b->len;
		int c = memcmp(a->path, b->path, n);

		if (!a->e.hardlink && !b->e.hardlink)
			assert_true(a->e.entry_off < b->e.entry_off);
		assert_true(c < 0 || (c == 0 && a->len < b->len));
	}
	assert_int_equal(ds_pxar_child_count(t->px, dir, &cnt), 0);
	assert_int_equal(cnt, end - w.first);
	if (cnt > 300) {
		/* Listing from an offset (readdir paging) gives the same tail. */
		struct walk_ctx w2 = { t, prefix, plen, end };

		assert_int_equal(ds_pxar_readdir(t->px, dir, 299, walk_fn, &w2), 0);
		assert_int_equal(t->n - end, cnt - 299);
		for (size_t i = 0; i < cnt - 299; i++) {
			assert_string_equal(t->v[end + i].path, t->v[w.first + 299 + i].path);
			assert_int_equal(t->v[end + i].e.entry_off,
					 t->v[w.first + 299 + i].e.entry_off);
			free(t->v[end + i].path);
		}
		t->n = end;
		big_dirs++;
	}
	for (size_t i = w.first; i < end; i++) {
		if (S_ISDIR(t->v[i].e.mode) && !t->v[i].e.hardlink) {
			struct ds_pxar_entry sub = t->v[i].e;
			char *p = strdup(t->v[i].path);
			size_t len = t->v[i].len;

			walk(t, &sub, p, len); /* t->v may move */
			free(p);
		}
	}
}

static int path_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	return c ? c : (al > bl) - (al < bl);
}

static int got_cmp(const void *a, const void *b)
{
	const struct got *x = a, *y = b;

	return path_cmp(x->path, x->len, y->path, y->len);
}

/* --- expected values --- */

struct want {
	char path[8192];
	size_t len;
	json_t *j;
};

static int want_cmp(const void *a, const void *b)
{
	const struct want *x = a, *y = b;

	return path_cmp(x->path, x->len, y->path, y->len);
}

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex) / 2;

	assert_true(n <= cap);
	assert_int_equal(ds_hex_decode(hex, out, n), 0);
	return n;
}

static const char *type_of(const struct ds_pxar_entry *e)
{
	if (e->hardlink)
		return "hardlink";
	switch (e->mode & S_IFMT) {
	case S_IFDIR: return "dir";
	case S_IFREG: return "file";
	case S_IFLNK: return "symlink";
	case S_IFCHR: return "chardev";
	case S_IFBLK: return "blockdev";
	case S_IFIFO: return "fifo";
	default: return "socket";
	}
}

static int64_t jint(json_t *o, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(o, key);

	return v ? json_integer_value(v) : dflt;
}

/* --- ACLs in the kernel's xattr encoding, built from the expect object --- */

struct aent {
	uint32_t id;
	uint16_t perm;
};

static int aent_cmp(const void *a, const void *b)
{
	const struct aent *x = a, *y = b;

	return x->id != y->id ? (x->id < y->id ? -1 : 1) : x->perm - y->perm;
}

static uint8_t *put(uint8_t *p, uint16_t tag, uint16_t perm, uint32_t id)
{
	p[0] = (uint8_t)tag;
	p[1] = 0;
	p[2] = (uint8_t)perm;
	p[3] = 0;
	ds_put_le32(p + 4, id);
	return p + 8;
}

static uint8_t *put_list(uint8_t *p, uint16_t tag, json_t *arr, const char *idkey, int *uni)
{
	struct aent v[64];
	size_t n = json_array_size(arr), i;
	json_t *x;

	assert_true(n <= 64);
	json_array_foreach(arr, i, x) {
		v[i].id = (uint32_t)jint(x, idkey, -1);
		v[i].perm = (uint16_t)jint(x, "perm", -1);
	}
	qsort(v, n, sizeof(*v), aent_cmp);
	for (i = 0; i < n; i++) {
		p = put(p, tag, v[i].perm, v[i].id);
		*uni |= v[i].perm;
	}
	return p;
}

/* Returns the length, 0 when the entry has no such ACL. */
static size_t want_acl(json_t *acl, mode_t mode, bool dflt, uint8_t *out)
{
	json_t *users = json_object_get(acl, dflt ? "default_users" : "users");
	json_t *groups = json_object_get(acl, dflt ? "default_groups" : "groups");
	json_t *go = json_object_get(acl, "group_obj"), *d = json_object_get(acl, "default");
	bool named = json_array_size(users) + json_array_size(groups) > 0;
	uint8_t *p = out + 4;
	int uni = 0;

	ds_put_le32(out, 2);
	if (!dflt) {
		if (!named && json_is_null(go))
			return 0;
		p = put(p, 1, (mode >> 6) & 7, UINT32_MAX);
		p = put_list(p, 2, users, "uid", &uni);
		p = put(p, 4, json_is_null(go) ? (mode >> 3) & 7 : json_integer_value(go),
			UINT32_MAX);
		p = put_list(p, 8, groups, "gid", &uni);
		if (named || !json_is_null(go))
			p = put(p, 0x10, (mode >> 3) & 7, UINT32_MAX);
		p = put(p, 0x20, mode & 7, UINT32_MAX);
		return (size_t)(p - out);
	}
	if (json_is_null(d))
		return 0;
	if (!json_is_null(json_object_get(d, "user_obj")))
		p = put(p, 1, (uint16_t)jint(d, "user_obj", 0), UINT32_MAX);
	p = put_list(p, 2, users, "uid", &uni);
	if (!json_is_null(json_object_get(d, "group_obj"))) {
		p = put(p, 4, (uint16_t)jint(d, "group_obj", 0), UINT32_MAX);
		uni |= (int)jint(d, "group_obj", 0);
	}
	p = put_list(p, 8, groups, "gid", &uni);
	if (!json_is_null(json_object_get(d, "mask")))
		p = put(p, 0x10, (uint16_t)jint(d, "mask", 0), UINT32_MAX);
	else if (named)
		p = put(p, 0x10, (uint16_t)uni, UINT32_MAX);
	if (!json_is_null(json_object_get(d, "other")))
		p = put(p, 0x20, (uint16_t)jint(d, "other", 0), UINT32_MAX);
	return (size_t)(p - out);
}

/* Kernel-made values (setfacl + getfattr -e hex on ext4) for two entries. */
static const struct {
	const char *path, *name, *hex;
} kernel_acls[] = {
	{ "/xattrs/acl-file.txt", "system.posix_acl_access",
	  "0200000001000600ffffffff02000600e803000002000400e903000004000400ffffffff"
	  "080004006400000010000600ffffffff20000000ffffffff" },
	{ "/xattrs/acl-default-dir", "system.posix_acl_access",
	  "0200000001000700ffffffff02000500ea03000004000500ffffffff10000500ffffffff"
	  "20000000ffffffff" },
	{ "/xattrs/acl-default-dir", "system.posix_acl_default",
	  "0200000001000700ffffffff02000700ea03000004000500ffffffff08000500eb030000"
	  "10000700ffffffff20000000ffffffff" },
};

static int kernel_acl_hits;

/* --- per-entry comparison --- */

struct xl {
	char name[256][256];
	uint8_t *val[256];
	size_t len[256];
	int n;
};

static int xl_fn(void *ud, const char *name, const void *value, size_t len)
{
	struct xl *x = ud;

	assert_true(x->n < 256 && strlen(name) < 256);
	strcpy(x->name[x->n], name);
	x->val[x->n] = malloc(len + 1);
	memcpy(x->val[x->n], value, len);
	x->len[x->n++] = len;
	return 0;
}

static int xl_find(const struct xl *x, const char *name)
{
	for (int i = 0; i < x->n; i++)
		if (!strcmp(x->name[i], name))
			return i;
	return -1;
}

static void check_bytes(const struct xl *x, const char *name, const uint8_t *want, size_t len)
{
	int i = xl_find(x, name);

	if (!len) {
		assert_int_equal(i, -1);
		return;
	}
	assert_true(i >= 0);
	assert_int_equal(x->len[i], len);
	assert_memory_equal(x->val[i], want, len);
}

static void check_xattrs(struct ds_pxar *px, const struct got *g, json_t *j)
{
	static uint8_t buf[70000];
	struct xl *x = calloc(1, sizeof(*x));
	json_t *xa = json_object_get(j, "xattrs"), *acl = json_object_get(j, "acl"), *it;
	size_t i, n, plain = 0;

	assert_int_equal(ds_pxar_xattrs(px, &g->e, xl_fn, x), 0);
	json_array_foreach(xa, i, it) {
		assert_string_equal(x->name[i], json_string_value(json_object_get(it, "name")));
		n = unhex(json_string_value(json_object_get(it, "value_hex")), buf, sizeof(buf));
		assert_int_equal(x->len[i], n);
		assert_memory_equal(x->val[i], buf, n);
	}
	for (int k = 0; k < x->n; k++)
		plain += strcmp(x->name[k], "security.capability") &&
			 strncmp(x->name[k], "system.posix_acl_", 17);
	assert_int_equal(plain, json_array_size(xa));
	it = json_object_get(j, "fcaps_hex");
	n = it ? unhex(json_string_value(it), buf, sizeof(buf)) : 0;
	check_bytes(x, "security.capability", buf, n);
	n = acl ? want_acl(acl, g->e.mode, false, buf) : 0;
	check_bytes(x, "system.posix_acl_access", buf, n);
	n = acl ? want_acl(acl, g->e.mode, true, buf) : 0;
	check_bytes(x, "system.posix_acl_default", buf, n);
	for (i = 0; i < DS_ARRAY_SIZE(kernel_acls); i++) {
		if (strcmp(kernel_acls[i].path, g->path))
			continue;
		n = unhex(kernel_acls[i].hex, buf, sizeof(buf));
		check_bytes(x, kernel_acls[i].name, buf, n);
		kernel_acl_hits++;
	}
	for (int k = 0; k < x->n; k++)
		free(x->val[k]);
	free(x);
}

/* Whole content against sha256 (and size unless it is -1). */
static void check_content(struct ds_pxar *px, const struct got *g, int64_t want_size,
			  const char *sha)
{
	uint64_t size = g->e.size, off = 0;
	uint8_t *buf = malloc(size + 1), part[4096];
	char hex[65];
	ssize_t n;

	if (want_size >= 0)
		assert_int_equal(size, want_size);
	/* Odd-sized reads cross every kind of boundary. */
	while ((n = ds_pxar_read(px, &g->e, buf + off, 65519, off)) > 0)
		off += (uint64_t)n;
	assert_int_equal(n, 0);
	assert_int_equal(off, size);
	tu_sha256_hex(buf, size, hex);
	assert_string_equal(hex, sha);
	if (size > 10) {
		uint64_t at = size / 3;
		size_t want = size - at < sizeof(part) ? size - at : sizeof(part);

		assert_int_equal(ds_pxar_read(px, &g->e, part, sizeof(part), at), want);
		assert_memory_equal(part, buf + at, want);
	}
	free(buf);
}

/* Finds the entry again with one lookup per path component. */
static void check_lookup(struct ds_pxar *px, const struct got *g)
{
	struct ds_pxar_entry cur;
	const char *p = g->path + 1, *end = g->path + g->len;

	ds_pxar_root(px, &cur);
	while (p < end) {
		const char *s = memchr(p, '/', (size_t)(end - p));
		size_t n = s ? (size_t)(s - p) : (size_t)(end - p);

		assert_int_equal(ds_pxar_lookup(px, &cur, p, n, &cur), 0);
		p += n + 1;
	}
	assert_int_equal(cur.entry_off, g->e.entry_off);
	assert_int_equal(cur.hardlink, g->e.hardlink);
}

static void check_entry(struct tree *t, const struct got *g, json_t *j, json_t *all)
{
	struct ds_pxar *px = t->px;
	const struct ds_pxar_entry *e = &g->e;
	json_t *tgt = json_object_get(j, "target"), *it;
	char link[4200];
	uint8_t raw[4200];
	size_t i, links = 0;

	assert_string_equal(type_of(e), json_string_value(json_object_get(j, "type")));
	check_lookup(px, g);
	if (e->hardlink) {
		/* The target is the first non-hardlink entry with that ENTRY. */
		for (i = 0; i < t->n; i++)
			if (t->v[i].e.entry_off == e->entry_off && !t->v[i].e.hardlink)
				break;
		assert_true(i < t->n);
		assert_string_equal(t->v[i].path + 1, json_string_value(tgt));
		check_content(px, g, -1, json_string_value(json_object_get(j, "sha256")));
		return;
	}
	assert_int_equal(e->mode, jint(j, "st_mode", -1));
	assert_int_equal(e->uid, jint(j, "uid", -1));
	assert_int_equal(e->gid, jint(j, "gid", -1));
	it = json_object_get(j, "mtime");
	assert_int_equal(e->mtime_sec, jint(it, "sec", -1));
	assert_int_equal(e->mtime_nsec, jint(it, "nsec", -1));
	assert_int_equal(e->flags, jint(j, "flags", 0));
	check_xattrs(px, g, j);
	if (S_ISREG(e->mode)) {
		check_content(px, g, jint(j, "size", -1),
			      json_string_value(json_object_get(j, "sha256")));
		if (json_object_get(j, "payload_offset"))
			assert_int_equal(e->data_off - 16, jint(j, "payload_offset", -1));
		json_array_foreach(all, i, it) {
			json_t *ht = json_object_get(it, "target");

			links += !strcmp(json_string_value(json_object_get(it, "type")), "hardlink") &&
				 !strcmp(json_string_value(ht), g->path + 1);
		}
		assert_int_equal(ds_pxar_nlink(px, e), 1 + links);
	}
	if (S_ISLNK(e->mode)) {
		int n = ds_pxar_readlink(px, e, link, sizeof(link));
		json_t *th = json_object_get(j, "target_hex");

		assert_true(n > 0);
		if (th) {
			assert_int_equal((size_t)n, unhex(json_string_value(th), raw, sizeof(raw)));
			assert_memory_equal(link, raw, (size_t)n);
		} else {
			assert_string_equal(link, json_string_value(tgt));
		}
	}
	if (S_ISCHR(e->mode) || S_ISBLK(e->mode)) {
		assert_int_equal(e->rdev_major, jint(j, "major", -1));
		assert_int_equal(e->rdev_minor, jint(j, "minor", -1));
	}
}

static void check_archive(struct ds_chunkstore *cs, const struct ds_crypt *c, json_t *snap,
			  json_t *arch)
{
	const char *sp = json_string_value(json_object_get(snap, "path"));
	json_t *px_j = json_object_get(arch, "pxar"), *entries, *it;
	json_t *pay = json_object_get(arch, "payload_archive");
	struct ds_pxar_source ms, ps;
	struct mem m = { 0 }, p = { 0 };
	struct tree t = { 0 };
	struct ds_pxar_entry root;
	struct want *w;
	size_t i, n;

	load_stream(cs, c, sp, json_string_value(json_object_get(arch, "name")), &m);
	ms = (struct ds_pxar_source){ mem_pread, m.len, &m, NULL };
	if (pay) {
		load_stream(cs, c, sp, json_string_value(pay), &p);
		ps = (struct ds_pxar_source){ mem_pread, p.len, &p, NULL };
	}
	assert_int_equal(ds_pxar_open(&ms, pay ? &ps : NULL, &t.px), 0);
	assert_int_equal(ds_pxar_format_version(t.px), jint(px_j, "format_version", 0));
	ds_pxar_root(t.px, &root);
	tree_add(&t, "/", 1, &root);
	walk(&t, &root, "", 0);
	qsort(t.v, t.n, sizeof(*t.v), got_cmp);

	entries = json_object_get(px_j, "entries");
	n = json_array_size(entries);
	w = calloc(n, sizeof(*w));
	json_array_foreach(entries, i, it) {
		json_t *h = json_object_get(it, "path_hex");
		const char *path = json_string_value(json_object_get(it, "path"));

		w[i].j = it;
		if (h) {
			w[i].len = unhex(json_string_value(h), (uint8_t *)w[i].path, sizeof(w[i].path));
		} else {
			w[i].len = strlen(path);
			memcpy(w[i].path, path, w[i].len);
		}
	}
	qsort(w, n, sizeof(*w), want_cmp);
	assert_int_equal(t.n, n);
	assert_int_equal(n, jint(px_j, "entry_count", -1));
	for (i = 0; i < n; i++) {
		if (t.v[i].len != w[i].len || memcmp(t.v[i].path, w[i].path, w[i].len))
			fail_msg("%s: entry %zu is %s, expected %s", sp, i, t.v[i].path, w[i].path);
		check_entry(&t, &t.v[i], w[i].j, entries);
	}
	print_message("%s %s: %zu entries match\n", sp,
		      json_string_value(json_object_get(arch, "name")), n);
	for (i = 0; i < t.n; i++)
		free(t.v[i].path);
	free(t.v);
	free(w);
	ds_pxar_free(t.px);
	free(m.b);
	free(p.b);
}

static void test_fixture_archives(void **state)
{
	char path[4096];
	json_error_t err;
	json_t *root, *snaps, *snap, *arch;
	struct ds_chunkstore *cs;
	struct ds_crypt *c;
	size_t i, k, klen, archives = 0;
	uint8_t *key;

	(void)state;
	snprintf(path, sizeof(path), "%s/pbs-store-a.expect.json", tu_fixtures());
	root = json_load_file(path, 0, &err);
	assert_non_null(root);
	snprintf(path, sizeof(path), "%s/pbs-store-a.enc-key.json", tu_fixtures());
	key = tu_read(path, &klen);
	assert_int_equal(ds_keyfile_parse((const char *)key, klen, NULL, &c), 0);
	free(key);
	snprintf(path, sizeof(path), "%s/pbs-store-a", tu_fixtures());
	assert_int_equal(ds_chunkstore_open(path, &cs), 0);
	snaps = json_object_get(root, "snapshots");
	json_array_foreach(snaps, i, snap) {
		json_array_foreach(json_object_get(snap, "archives"), k, arch) {
			if (!json_object_get(arch, "pxar"))
				continue;
			check_archive(cs, c, snap, arch);
			archives++;
		}
	}
	/* tundra-87 x3, ct/301 x2, ct/401 x2, delta-63 x2 (encrypted). */
	assert_int_equal(archives, 9);
	assert_int_equal(kernel_acl_hits, 3 * 3); /* in each tundra-87 archive */
	assert_true(big_dirs >= 3);
	ds_chunkstore_free(cs);
	ds_crypt_free(c);
	json_decref(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture_archives),
	};

	alarm(120);
	return tu_run_group("pxar_fixtures", tests, NULL, NULL);
}
