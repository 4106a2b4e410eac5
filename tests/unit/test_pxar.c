/* Suite for store/pxar: SipHash and type constants, the spec's byte example,
 * the all-kinds archives (v1 and split v2) entry by entry, and ACL encodings
 * checked against bytes the kernel produced with setfacl. Damaged archives
 * are in test_pxar_damaged.c, the PBS fixture store in test_pxar_fixtures.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/pxar.h"
#include "store/util.h"
#include "pxar_build.h"
#include "testutil.h"

/* --- in-memory sources; a read outside the buffer is counted, never done --- */

static unsigned long oob_reads;

struct mem {
	const uint8_t *b;
	size_t len;
};

static int mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct mem *m = ctx;

	if (off > m->len || len > m->len - off) {
		oob_reads++;
		return -EIO;
	}
	memcpy(buf, m->b + off, len);
	return 0;
}

struct arch {
	struct mem m, p;
	struct ds_pxar_source ms, ps;
	struct ds_pxar *px;
};

static int arch_open(struct arch *a, const uint8_t *b, size_t len, const uint8_t *pb, size_t plen)
{
	memset(a, 0, sizeof(*a));
	a->m = (struct mem){ b, len };
	a->p = (struct mem){ pb, plen };
	a->ms = (struct ds_pxar_source){ mem_pread, len, &a->m, NULL };
	a->ps = (struct ds_pxar_source){ mem_pread, plen, &a->p, NULL };
	return ds_pxar_open(&a->ms, pb ? &a->ps : NULL, &a->px);
}

static uint8_t *fixture(const char *name, size_t *len)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/pxar/%s", tu_fixtures(), name);
	return tu_read(path, len);
}

/* --- a canonical dump of a whole tree (sorted by name) --- */

struct dump {
	char *s;
	size_t len, cap;
	unsigned entries, errors;
	bool strict; /* undamaged archive: lookups must agree with readdir */
};

static void dprintf_(struct dump *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dprintf_(struct dump *d, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(d->s ? d->s + d->len : NULL, d->cap - d->len, fmt, ap);
		va_end(ap);
		if ((size_t)n < d->cap - d->len)
			break;
		d->cap = 2 * d->cap + (size_t)n + 256;
		d->s = realloc(d->s, d->cap);
		assert_non_null(d->s);
	}
	d->len += (size_t)n;
}

static void dhex(struct dump *d, const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dprintf_(d, "%02x", ((const uint8_t *)p)[i]);
}

struct child {
	char name[4097];
	size_t len;
	struct ds_pxar_entry e;
};

struct kids {
	struct child *v;
	size_t n;
};

static int collect(void *ud, const char *name, size_t len, const struct ds_pxar_entry *e)
{
	struct kids *k = ud;

	k->v = realloc(k->v, (k->n + 1) * sizeof(*k->v));
	assert_non_null(k->v);
	assert_true(len <= 4096);
	memcpy(k->v[k->n].name, name, len);
	k->v[k->n].name[len] = 0;
	k->v[k->n].len = len;
	k->v[k->n].e = *e;
	k->n++;
	return 0;
}

static int child_cmp(const void *a, const void *b)
{
	const struct child *x = a, *y = b;
	int c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int dump_xattr(void *ud, const char *name, const void *value, size_t len)
{
	struct dump *d = ud;

	dprintf_(d, " %s=", name);
	dhex(d, value, len);
	return 0;
}

static void dump_entry(struct ds_pxar *px, struct dump *d, const char *path,
		       const struct ds_pxar_entry *e)
{
	char buf[4097];
	ssize_t n;
	uint64_t off = 0;
	struct ds_digest dg;
	struct ds_sha256 *h = ds_sha256_new();

	dprintf_(d, "%s mode=%o uid=%u gid=%u mtime=%lld.%09u flags=%llu size=%llu", path,
		 (unsigned)e->mode, e->uid, e->gid, (long long)e->mtime_sec, e->mtime_nsec,
		 (unsigned long long)e->flags, (unsigned long long)e->size);
	if (S_ISREG(e->mode)) {
		while ((n = ds_pxar_read(px, e, buf, 1000, off)) > 0) {
			ds_sha256_update(h, buf, (size_t)n);
			off += (uint64_t)n;
		}
		ds_sha256_final(h, &dg);
		dprintf_(d, " read=%zd/%llu data=", n, (unsigned long long)off);
		dhex(d, dg.b, 8);
		dprintf_(d, " hl=%d nlink=%d", e->hardlink, ds_pxar_nlink(px, e));
	}
	if (S_ISLNK(e->mode)) {
		n = ds_pxar_readlink(px, e, buf, sizeof(buf));
		dprintf_(d, " link=%zd:%s", n, n >= 0 ? buf : "");
	}
	if (S_ISBLK(e->mode) || S_ISCHR(e->mode))
		dprintf_(d, " rdev=%llu:%llu", (unsigned long long)e->rdev_major,
			 (unsigned long long)e->rdev_minor);
	dprintf_(d, " xattrs=%d\n", ds_pxar_xattrs(px, e, dump_xattr, d));
	ds_sha256_free(h);
}

/* Walks the tree under dir, at most 10000 entries; errors are recorded in
 * the dump, so damaged archives can be walked too. */
static void walk(struct ds_pxar *px, const struct ds_pxar_entry *dir, const char *path,
		 struct dump *d)
{
	struct kids k = { 0 };
	char sub[8192];
	size_t cnt = 0;
	int r;

	r = ds_pxar_readdir(px, dir, 0, collect, &k);
	if (ds_pxar_child_count(px, dir, &cnt) == 0 && r == 0)
		assert_int_equal(cnt, k.n);
	dprintf_(d, "%s: readdir=%d n=%zu\n", path, r, k.n);
	if (r < 0)
		d->errors++;
	if (k.n > 1)
		qsort(k.v, k.n, sizeof(*k.v), child_cmp);
	for (size_t i = 0; i < k.n && d->entries < 10000; i++) {
		struct ds_pxar_entry le;

		d->entries++;
		snprintf(sub, sizeof(sub), "%s/%s", path, k.v[i].name);
		dump_entry(px, d, sub, &k.v[i].e);
		r = ds_pxar_lookup(px, dir, k.v[i].name, k.v[i].len, &le);
		if (d->strict)
			assert_true(r == 0 && le.entry_off == k.v[i].e.entry_off);
		if (S_ISDIR(k.v[i].e.mode))
			walk(px, &k.v[i].e, sub, d);
	}
	free(k.v);
}

static char *dump_archive(struct ds_pxar *px, bool strict)
{
	struct dump d = { .strict = strict };
	struct ds_pxar_entry root;

	ds_pxar_root(px, &root);
	dump_entry(px, &d, "", &root);
	walk(px, &root, "", &d);
	return d.s;
}

/* --- SipHash and constants (spec §1.2, §2.4) --- */

static void test_siphash(void **state)
{
	static const struct {
		const char *s;
		uint64_t h;
	} v[] = {
		{ "", 0x76614015f8d1bb6c },
		{ "a", 0x0c26e9067c2c7bcf },
		{ "file_0", 0xa72d4eec8843fa66 },
		{ "file_1", 0x7da00938fee11923 },
		{ "folder_0", 0xe093b923517a4b01 },
		{ "folder_9", 0xa366b271c73f1223 },
		{ ".pxarexclude-cli", 0x046975ce672e09eb },
		{ "0123456789abcdefg", 0x1af044155301f259 },
		/* The 23 type constants are hashes of __PROXMOX_FORMAT_<X>__. */
		{ "__PROXMOX_FORMAT_VERSION__", 0x730f6c75df16a40d },
		{ "__PROXMOX_FORMAT_ENTRY_V2__", 0xd5956474e588acef },
		{ "__PROXMOX_FORMAT_ENTRY__", 0x11da850a1c1cceff },
		{ "__PROXMOX_FORMAT_PRELUDE__", 0xe309d79d9f7b771b },
		{ "__PROXMOX_FORMAT_FILENAME__", 0x16701121063917b3 },
		{ "__PROXMOX_FORMAT_SYMLINK__", 0x27f971e7dbf5dc5f },
		{ "__PROXMOX_FORMAT_DEVICE__", 0x9fc9e906586d5ce9 },
		{ "__PROXMOX_FORMAT_XATTR__", 0x0dab0229b57dcd03 },
		{ "__PROXMOX_FORMAT_ACL_USER__", 0x2ce8540a457d55b8 },
		{ "__PROXMOX_FORMAT_ACL_GROUP__", 0x136e3eceb04c03ab },
		{ "__PROXMOX_FORMAT_ACL_GROUP_OBJ__", 0x10868031e9582876 },
		{ "__PROXMOX_FORMAT_ACL_DEFAULT__", 0xbbbb13415a6896f5 },
		{ "__PROXMOX_FORMAT_ACL_DEFAULT_USER__", 0xc89357b40532cd1f },
		{ "__PROXMOX_FORMAT_ACL_DEFAULT_GROUP__", 0xf90a8a5816038ffe },
		{ "__PROXMOX_FORMAT_FCAPS__", 0x2da9dd9db5f7fb67 },
		{ "__PROXMOX_FORMAT_QUOTA_PROJID__", 0xe07540e82f7d1cbb },
		{ "__PROXMOX_FORMAT_HARDLINK__", 0x51269c8422bd7275 },
		{ "__PROXMOX_FORMAT_PXAR_PAYLOAD__", 0x28147a1b0b7c1a25 },
		{ "__PROXMOX_FORMAT_PXAR_PAYLOAD_REF__", 0x419d3d6bc4ba977e },
		{ "__PROXMOX_FORMAT_GOODBYE__", 0x2fec4fa642d5731d },
		{ "__PROXMOX_FORMAT_PXAR_GOODBYE_TAIL_MARKER__", 0xef5eed5b753e1555 },
		{ "__PROXMOX_FORMAT_PXAR_PAYLOAD_START_MARKER__", 0x834c68c2194a4ed2 },
		{ "__PROXMOX_FORMAT_PXAR_PAYLOAD_TAIL_MARKER__", 0x6c72b78b984c81b5 },
	};
	uint64_t t0 = ds_now_ns();

	(void)state;
	assert_int_equal(DS_ARRAY_SIZE(v), 8 + 23);
	for (size_t i = 0; i < DS_ARRAY_SIZE(v); i++)
		assert_true(ds_pxar_hash(v[i].s, strlen(v[i].s)) == v[i].h);
	/* Lookups hash on every call: keep it well under a microsecond. */
	for (int i = 0; i < 100000; i++)
		assert_true(ds_pxar_hash("file_0", 6) == 0xa72d4eec8843fa66);
	assert_true(ds_now_ns() - t0 < UINT64_C(2000000000));
}

/* --- the byte example of spec §2.6 --- */

static const uint8_t empty_root[96] = {
	0xef, 0xac, 0x88, 0xe5, 0x74, 0x64, 0x95, 0xd5, 0x38, 0, 0, 0, 0, 0, 0, 0,
	0xed, 0x41, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0xf1, 0x53, 0x65, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0x1d, 0x73, 0xd5, 0x42, 0xa6, 0x4f, 0xec, 0x2f,
	0x28, 0, 0, 0, 0, 0, 0, 0, 0x55, 0x15, 0x3e, 0x75, 0x5b, 0xed, 0x5e, 0xef,
	0x38, 0, 0, 0, 0, 0, 0, 0, 0x28, 0, 0, 0, 0, 0, 0, 0,
};

static int count_fn(void *ud, const char *name, size_t len, const struct ds_pxar_entry *e)
{
	(void)name;
	(void)len;
	(void)e;
	++*(int *)ud;
	return 0;
}

static void test_empty_root(void **state)
{
	struct ds_pxar_entry root, e;
	struct arch a;
	size_t len, n = 99;
	uint8_t *b = fixture("empty-root.v1.pxar", &len);
	int cnt = 0;

	(void)state;
	assert_int_equal(len, sizeof(empty_root));
	assert_memory_equal(b, empty_root, len);
	assert_int_equal(arch_open(&a, empty_root, sizeof(empty_root), NULL, 0), 0);
	assert_int_equal(ds_pxar_format_version(a.px), 1);
	ds_pxar_root(a.px, &root);
	assert_int_equal(root.mode, S_IFDIR | 0755);
	assert_int_equal(root.uid, 0);
	assert_int_equal(root.mtime_sec, 1700000000);
	assert_int_equal(root.mtime_nsec, 0);
	assert_int_equal(root.entry_off, 0);
	assert_int_equal(root.goodbye_off, 56);
	assert_int_equal(root.end, 96);
	assert_int_equal(ds_pxar_child_count(a.px, &root, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ds_pxar_readdir(a.px, &root, 0, count_fn, &cnt), 0);
	assert_int_equal(cnt, 0);
	assert_int_equal(ds_pxar_lookup(a.px, &root, "x", 1, &e), -ENOENT);
	assert_int_equal(ds_pxar_nlink(a.px, &root), 1);
	ds_pxar_free(a.px);
	/* The legacy ENTRY_V1 stat (32 bytes, mtime in ns) as the root. */
	uint8_t v1s[88];
	memset(v1s, 0, sizeof(v1s));
	ds_put_le64(v1s, 0x11da850a1c1cceff);
	ds_put_le64(v1s + 8, 48);
	ds_put_le64(v1s + 16, S_IFDIR | 0750);
	ds_put_le64(v1s + 24, 0x2000);
	ds_put_le32(v1s + 32, 1000);
	ds_put_le32(v1s + 36, 100);
	ds_put_le64(v1s + 40, UINT64_C(1700000000123456789));
	ds_put_le64(v1s + 48, 0x2fec4fa642d5731d);
	ds_put_le64(v1s + 56, 40);
	ds_put_le64(v1s + 64, 0xef5eed5b753e1555);
	ds_put_le64(v1s + 72, 48);
	ds_put_le64(v1s + 80, 40);
	assert_int_equal(arch_open(&a, v1s, sizeof(v1s), NULL, 0), 0);
	ds_pxar_root(a.px, &root);
	assert_int_equal(root.mode, S_IFDIR | 0750);
	assert_int_equal(root.flags, 0x2000);
	assert_true(root.uid == 1000 && root.gid == 100);
	assert_int_equal(root.mtime_sec, 1700000000);
	assert_int_equal(root.mtime_nsec, 123456789);
	assert_int_equal(root.goodbye_off, 48);
	ds_pxar_free(a.px);

	/* A v1 archive with a payload stream is refused. */
	assert_int_equal(arch_open(&a, empty_root, sizeof(empty_root), b, len), -EINVAL);
	free(b);
}

/* --- all-kinds (spec §8) --- */

static void get(struct ds_pxar *px, const char *path, struct ds_pxar_entry *ret)
{
	struct ds_pxar_entry cur;
	const char *p = path, *slash;

	ds_pxar_root(px, &cur);
	while (*p) {
		slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		int r = ds_pxar_lookup(px, &cur, p, n, &cur);

		if (r != 0)
			fail_msg("lookup %s: %d", path, r);
		p += n + (slash != NULL);
	}
	*ret = cur;
}

static void check_content(struct ds_pxar *px, const char *path, const char *want)
{
	struct ds_pxar_entry e;
	char buf[64];

	get(px, path, &e);
	assert_true(S_ISREG(e.mode));
	assert_int_equal(e.size, strlen(want));
	assert_int_equal(ds_pxar_read(px, &e, buf, sizeof(buf), 0), strlen(want));
	assert_memory_equal(buf, want, strlen(want));
	assert_int_equal(ds_pxar_read(px, &e, buf, sizeof(buf), e.size), 0);
	assert_int_equal(ds_pxar_read(px, &e, buf, sizeof(buf), e.size + 100), 0);
	if (e.size > 3) {
		assert_int_equal(ds_pxar_read(px, &e, buf, 2, 1), 2);
		assert_memory_equal(buf, want + 1, 2);
	}
}

static void check_xattr(const struct pb_xattrs *x, int i, const char *name, const char *hex)
{
	uint8_t want[128];
	size_t n = strlen(hex) / 2;

	assert_string_equal(x->names[i], name);
	assert_int_equal(ds_hex_decode(hex, want, n), 0);
	assert_int_equal(x->lens[i], n);
	assert_memory_equal(x->values[i], want, n);
}

/* getfattr -e hex of files made with setfacl on ext4 (same ACLs as rich and
 * shared): `setfacl -m u:1001:rw-,g:2000:r--,g::r-x,m::r-x` on mode 0750, and
 * `setfacl -d -m u::rwx,g::r-x,o::---,u:1002:r-x,g:3000:r--`. */
#define RICH_ACL "0200000001000700ffffffff02000600e903000004000500ffffffff" \
		 "08000400d007000010000500ffffffff20000000ffffffff"
#define SHARED_ACL "0200000001000700ffffffff02000500ea03000004000500ffffffff" \
		   "08000400b80b000010000500ffffffff20000000ffffffff"

static void check_all_kinds(struct ds_pxar *px, int version)
{
	static const char *const names[] = { "a-file", "blk",  "chr",  "dir",    "empty", "fifo",
					     "hardlink", "many", "rich", "shared", "sock", "symlink" };
	struct ds_pxar_entry root, e, f;
	struct kids k = { 0 };
	struct pb_xattrs x = { 0 };
	char buf[32];
	size_t n;

	assert_int_equal(ds_pxar_format_version(px), version);
	ds_pxar_root(px, &root);
	assert_int_equal(root.mode, S_IFDIR | 0755);
	assert_int_equal(ds_pxar_child_count(px, &root, &n), 0);
	assert_int_equal(n, 12);
	assert_int_equal(ds_pxar_readdir(px, &root, 0, collect, &k), 0);
	assert_int_equal(k.n, 12);
	qsort(k.v, k.n, sizeof(*k.v), child_cmp);
	for (size_t i = 0; i < 12; i++)
		assert_string_equal(k.v[i].name, names[i]);
	free(k.v);

	get(px, "a-file", &f);
	assert_int_equal(f.mode, S_IFREG | 0644);
	assert_int_equal(f.uid, 1000);
	assert_int_equal(f.gid, 1000);
	assert_int_equal(f.mtime_sec, 1700000000);
	assert_int_equal(f.mtime_nsec, 123456789);
	assert_false(f.hardlink);
	assert_int_equal(f.data_in_payload, version == 2);
	check_content(px, "a-file", "hello pxar\n");
	get(px, "blk", &e);
	assert_int_equal(e.mode, S_IFBLK | 0660);
	assert_int_equal(e.gid, 6);
	assert_true(e.rdev_major == 8 && e.rdev_minor == 16);
	get(px, "chr", &e);
	assert_int_equal(e.mode, S_IFCHR | 0666);
	assert_true(e.rdev_major == 1 && e.rdev_minor == 3);
	get(px, "dir", &e);
	assert_int_equal(e.mode, S_IFDIR | 0755);
	assert_int_equal(e.mtime_nsec, 5);
	assert_int_equal(ds_pxar_child_count(px, &e, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ds_pxar_read(px, &e, buf, 1, 0), -EISDIR);
	check_content(px, "dir/nested", "nested file contents");
	get(px, "dir/nested", &e);
	assert_int_equal(e.mode, S_IFREG | 0600);
	get(px, "dir/empty-sub", &e);
	assert_int_equal(e.mode, S_IFDIR | 0700);
	assert_int_equal(ds_pxar_child_count(px, &e, &n), 0);
	assert_int_equal(n, 0);
	get(px, "empty", &e);
	assert_int_equal(e.size, 0);
	assert_int_equal(ds_pxar_read(px, &e, buf, sizeof(buf), 0), 0);
	get(px, "fifo", &e);
	assert_int_equal(e.mode, S_IFIFO | 0644);
	assert_int_equal(ds_pxar_nlink(px, &e), 1);
	get(px, "sock", &e);
	assert_int_equal(e.mode, S_IFSOCK | 0777);

	get(px, "hardlink", &e);
	assert_true(e.hardlink);
	assert_int_equal(e.entry_off, f.entry_off);
	assert_int_equal(e.mode, f.mode);
	check_content(px, "hardlink", "hello pxar\n");
	assert_int_equal(ds_pxar_nlink(px, &e), 2);
	assert_int_equal(ds_pxar_nlink(px, &f), 2);
	get(px, "dir/nested", &e);
	assert_int_equal(ds_pxar_nlink(px, &e), 1);

	get(px, "many", &e);
	assert_int_equal(ds_pxar_child_count(px, &e, &n), 0);
	assert_int_equal(n, 40);
	for (int i = 0; i < 40; i++) {
		char path[32], want[32];

		snprintf(path, sizeof(path), "many/f%02d", i);
		snprintf(want, sizeof(want), "content of f%02d\n", i);
		check_content(px, path, want);
	}
	k = (struct kids){ 0 };
	assert_int_equal(ds_pxar_readdir(px, &e, 0, collect, &k), 0);
	assert_int_equal(k.n, 40);
	qsort(k.v, k.n, sizeof(*k.v), child_cmp);
	for (int i = 0; i < 40; i++) {
		snprintf(buf, sizeof(buf), "f%02d", i);
		assert_string_equal(k.v[i].name, buf);
	}
	free(k.v);
	k = (struct kids){ 0 };
	assert_int_equal(ds_pxar_readdir(px, &e, 37, collect, &k), 0);
	assert_int_equal(k.n, 3);
	free(k.v);
	k = (struct kids){ 0 };
	assert_int_equal(ds_pxar_readdir(px, &e, 40, collect, &k), 0);
	assert_int_equal(k.n, 0);
	assert_int_equal(ds_pxar_lookup(px, &e, "f40", 3, &f), -ENOENT);

	get(px, "rich", &e);
	assert_int_equal(e.mode, S_IFREG | 0750);
	assert_int_equal(e.uid, 1000);
	assert_int_equal(e.gid, 100);
	assert_int_equal(e.mtime_sec, -1);
	assert_int_equal(e.mtime_nsec, 500000000);
	check_content(px, "rich", "rich");
	assert_int_equal(ds_pxar_xattrs(px, &e, pb_xattr_fn, &x), 0);
	assert_int_equal(x.n, 4);
	check_xattr(&x, 0, "user.comment", "707861722074657374"); /* "pxar test" */
	check_xattr(&x, 1, "user.empty", "");
	check_xattr(&x, 2, "security.capability", "0100000200200000000000000000000000000000");
	check_xattr(&x, 3, "system.posix_acl_access", RICH_ACL);

	get(px, "shared", &e);
	assert_int_equal(e.mode, S_IFDIR | 0775);
	x = (struct pb_xattrs){ 0 };
	assert_int_equal(ds_pxar_xattrs(px, &e, pb_xattr_fn, &x), 0);
	assert_int_equal(x.n, 1);
	check_xattr(&x, 0, "system.posix_acl_default", SHARED_ACL);
	x = (struct pb_xattrs){ 0 };
	get(px, "a-file", &e);
	assert_int_equal(ds_pxar_xattrs(px, &e, pb_xattr_fn, &x), 0);
	assert_int_equal(x.n, 0);

	get(px, "symlink", &e);
	assert_int_equal(e.mode, S_IFLNK | 0777);
	assert_int_equal(e.size, 10);
	assert_int_equal(ds_pxar_readlink(px, &e, buf, sizeof(buf)), 10);
	assert_string_equal(buf, "dir/nested");
	assert_int_equal(ds_pxar_readlink(px, &e, buf, 10), -ERANGE);
	get(px, "a-file", &f);
	assert_int_equal(ds_pxar_readlink(px, &f, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(ds_pxar_read(px, &e, buf, 1, 0), -EINVAL);

	assert_int_equal(ds_pxar_lookup(px, &root, "nope", 4, &e), -ENOENT);
	assert_int_equal(ds_pxar_lookup(px, &root, ".", 1, &e), -ENOENT);
	assert_int_equal(ds_pxar_lookup(px, &root, "..", 2, &e), -ENOENT);
	assert_int_equal(ds_pxar_lookup(px, &root, "dir/nested", 10, &e), -ENOENT);
	assert_int_equal(ds_pxar_lookup(px, &root, "a-file\0x", 8, &e), -ENOENT);
	assert_int_equal(ds_pxar_lookup(px, &root, "a-fil", 5, &e), -ENOENT);
	assert_int_equal(ds_pxar_lookup(px, &f, "x", 1, &e), -ENOTDIR);
	assert_int_equal(ds_pxar_readdir(px, &f, 0, collect, &k), -ENOTDIR);
	assert_int_equal(ds_pxar_child_count(px, &f, &n), -ENOTDIR);
}

static int stop_fn(void *ud, const char *name, size_t len, const struct ds_pxar_entry *e)
{
	(void)name;
	(void)len;
	(void)e;
	return ++*(int *)ud == 3 ? 7 : 0;
}

static void test_all_kinds(void **state)
{
	size_t l1, lm, lp;
	uint8_t *v1 = fixture("all-kinds.v1.pxar", &l1);
	uint8_t *m = fixture("all-kinds.v2.mpxar", &lm);
	uint8_t *p = fixture("all-kinds.v2.ppxar", &lp);
	struct ds_pxar_entry root, e;
	struct arch a1, a2;
	char *d1, *d2;
	int cnt = 0;

	(void)state;
	oob_reads = 0;
	assert_int_equal(arch_open(&a1, v1, l1, NULL, 0), 0);
	check_all_kinds(a1.px, 1);
	assert_int_equal(arch_open(&a2, m, lm, NULL, 0), -EINVAL);
	assert_int_equal(arch_open(&a2, m, lm, p, lp), 0);
	check_all_kinds(a2.px, 2);

	/* Same tree, same contents, same attributes. */
	d1 = dump_archive(a1.px, true);
	d2 = dump_archive(a2.px, true);
	assert_string_equal(d1, d2);
	assert_null(strstr(d1, "readdir=-"));
	assert_null(strstr(d1, "read=-"));
	assert_null(strstr(d1, "nlink=-"));
	assert_null(strstr(d1, "link=-"));
	assert_null(strstr(d1, "xattrs=-"));
	free(d1);
	free(d2);

	ds_pxar_root(a1.px, &root);
	assert_int_equal(ds_pxar_readdir(a1.px, &root, 0, stop_fn, &cnt), 7);
	assert_int_equal(cnt, 3);

	/* The split archive checks the PAYLOAD header on every read. */
	get(a2.px, "a-file", &e);
	assert_int_equal(e.data_off, 32);
	p[16] ^= 1;
	assert_int_equal(ds_pxar_read(a2.px, &e, d1 = malloc(16), 16, 0), -EIO);
	p[16] ^= 1;
	p[24] ^= 1;
	assert_int_equal(ds_pxar_read(a2.px, &e, d1, 16, 0), -EIO);
	p[24] ^= 1;
	assert_int_equal(ds_pxar_read(a2.px, &e, d1, 16, 0), 11);
	free(d1);
	assert_int_equal(oob_reads, 0);
	ds_pxar_free(a1.px);
	ds_pxar_free(a2.px);
	free(v1);
	free(m);
	free(p);
}

/* --- readdir: archive order, and advice ahead of each child --- */

struct advice {
	struct mem m;
	uint64_t off[64];
	size_t when[64]; /* children listed when the advice came */
	size_t n;
	struct kids *k;
};

static void record_advice(void *ctx, uint64_t off)
{
	struct advice *a = ctx;

	assert_true(a->n < 64);
	a->off[a->n] = off;
	a->when[a->n++] = a->k->n;
}

static int advised_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	return mem_pread(&((struct advice *)ctx)->m, buf, len, off);
}

static void test_readdir_order(void **state)
{
	size_t l1;
	uint8_t *v1 = fixture("all-kinds.v1.pxar", &l1);
	struct kids k = { 0 };
	struct advice adv = { .k = &k };
	struct ds_pxar_source src;
	struct ds_pxar_entry root, many;
	struct ds_pxar *px;

	(void)state;
	adv.m = (struct mem){ v1, l1 };
	src = (struct ds_pxar_source){ advised_pread, l1, &adv, record_advice };
	assert_int_equal(ds_pxar_open(&src, NULL, &px), 0);
	ds_pxar_root(px, &root);
	assert_int_equal(ds_pxar_lookup(px, &root, "many", 4, &many), 0);
	adv.n = 0;
	assert_int_equal(ds_pxar_readdir(px, &many, 0, collect, &k), 0);
	assert_int_equal(k.n, 40);
	/* Name order (the encoder's), which is archive order; each child
	 * after the first announced once, before it was read: the offset of
	 * its FILENAME item, right in front of its ENTRY. */
	assert_int_equal(adv.n, 39);
	for (size_t j = 1; j < 40; j++) {
		assert_true(child_cmp(&k.v[j - 1], &k.v[j]) < 0);
		assert_true(k.v[j - 1].e.entry_off < k.v[j].e.entry_off);
		assert_int_equal(adv.off[j - 1], k.v[j].e.entry_off - 16 - (k.v[j].len + 1));
		assert_true(adv.when[j - 1] < j);
	}
	/* From an offset: the same order's tail. */
	free(k.v);
	k = (struct kids){ 0 };
	adv.n = 0;
	assert_int_equal(ds_pxar_readdir(px, &many, 37, collect, &k), 0);
	assert_int_equal(k.n, 3);
	assert_string_equal(k.v[0].name, "f37");
	assert_string_equal(k.v[2].name, "f39");
	assert_int_equal(adv.n, 2);

	/* A directory handle decodes with any ds_pxar of the archive (the
	 * mount reopens archives); past the end is -EINVAL. */
	{
		struct ds_pxar_dir *pd;
		struct ds_pxar *px2;
		struct ds_pxar_entry e;
		char name[DS_PXAR_NAME_MAX + 1];
		size_t len;

		assert_int_equal(ds_pxar_dir_open(px, &many, &pd), 0);
		assert_int_equal(ds_pxar_dir_count(pd), 40);
		ds_pxar_free(px);
		px = NULL;
		assert_int_equal(ds_pxar_open(&src, NULL, &px2), 0);
		assert_int_equal(ds_pxar_dir_child(px2, pd, 38, 38, name, &len, &e), 0);
		assert_int_equal(len, 3);
		assert_memory_equal(name, "f38", 3);
		assert_int_equal(e.entry_off, k.v[1].e.entry_off);
		assert_int_equal(ds_pxar_dir_child(px2, pd, 40, 40, name, &len, &e), -EINVAL);
		ds_pxar_dir_free(pd);
		pd = NULL;
		assert_int_equal(ds_pxar_dir_open(px2, &e, &pd), -ENOTDIR); /* f38 */
		assert_null(pd);
		ds_pxar_free(px2);
	}
	free(k.v);
	free(v1);
}

/* --- concurrent use: lookups, reads and the lazily built link index --- */

static void *hammer(void *arg)
{
	struct ds_pxar *px = arg;
	struct ds_pxar_entry root, many, e;
	char name[8], buf[32];
	intptr_t bad = 0;

	ds_pxar_root(px, &root);
	bad += ds_pxar_lookup(px, &root, "many", 4, &many) != 0;
	for (int i = 0; i < 400 && !bad; i++) {
		snprintf(name, sizeof(name), "f%02d", i % 40);
		bad += ds_pxar_lookup(px, &many, name, 3, &e) != 0;
		bad += ds_pxar_read(px, &e, buf, sizeof(buf), 0) != 15;
		bad += ds_pxar_nlink(px, &e) != 1;
		bad += ds_pxar_lookup(px, &root, "hardlink", 8, &e) != 0;
		bad += ds_pxar_nlink(px, &e) != 2;
	}
	return (void *)bad;
}

static void test_threads(void **state)
{
	size_t lm, lp;
	uint8_t *m = fixture("all-kinds.v2.mpxar", &lm);
	uint8_t *p = fixture("all-kinds.v2.ppxar", &lp);
	pthread_t th[4];
	struct arch a;
	void *ret;

	(void)state;
	assert_int_equal(arch_open(&a, m, lm, p, lp), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hammer, a.px), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_null(ret);
	}
	ds_pxar_free(a.px);
	free(m);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_siphash),
		cmocka_unit_test(test_empty_root),
		cmocka_unit_test(test_all_kinds),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_readdir_order),
	};

	alarm(30);
	return tu_run_group("pxar", tests, NULL, NULL);
}
