/* Suite for store/pxar_catalog (the PBS catalog writer): known-answer
 * encodings, a reader written here from spec §6 that must parse every
 * catalog PBS wrote in the fixture store and list exactly what expect.json
 * lists, the writer reproducing those catalogs byte for byte, the
 * catalog of an encoded tree matching the tree on disk, and the mount's
 * reader (ds_pxar_catalog_walk, hardlink counts from the catalog). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "store/chunkstore.h"
#include "store/index.h"
#include "store/pxar.h"
#include "store/pxar_encoder.h"
#include "store/util.h"
#include "pxar_check.h"
#include "testutil.h"

/* ---- the test's own catalog reader (spec §6, PBS catalog.rs) ---- */

struct cent {
	char *path; /* "/archive/dir/name", raw bytes, NUL-terminated */
	size_t plen;
	char type;
	uint64_t size;
	int64_t mtime;
};

struct clist {
	struct cent *v;
	size_t n, cap;
};

static void clist_free(struct clist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].path);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static bool rd_varint(const uint8_t *b, size_t end, size_t *off, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 10; i++) {
		uint8_t t;

		if (*off >= end)
			return false;
		t = b[(*off)++];
		v |= (uint64_t)(t & 0x7f) << (7 * i);
		if (!(t & 0x80)) {
			*ret = v;
			return true;
		}
	}
	return false;
}

static bool rd_svarint(const uint8_t *b, size_t end, size_t *off, int64_t *ret)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 11; i++) {
		uint8_t t;

		if (*off >= end)
			return false;
		t = b[(*off)++];
		if (t == 0) {
			*ret = v == 0 ? 0 : -(int64_t)(v - 1) - 1;
			return true;
		}
		if (7 * i < 64)
			v |= (uint64_t)(t & 0x7f) << (7 * i);
		if (t < 128) {
			*ret = (int64_t)v;
			return true;
		}
	}
	return false;
}

static int parse_block(const uint8_t *b, size_t len, uint64_t off, const char *prefix,
		       size_t plen, int depth, struct clist *out)
{
	uint64_t blen, count;
	size_t p = off, end;

	if (depth > 4096 || off >= len - 8 || !rd_varint(b, len - 8, &p, &blen) ||
	    blen > len - 8 - p)
		return -EBADMSG;
	end = p + blen;
	if (!rd_varint(b, end, &p, &count))
		return -EBADMSG;
	for (uint64_t i = 0; i < count; i++) {
		struct cent e = { 0 };
		uint64_t nlen, dist = 0;
		int r;

		if (p >= end)
			return -EBADMSG;
		e.type = (char)b[p++];
		if (!rd_varint(b, end, &p, &nlen) || nlen == 0 || nlen >= 4096 || nlen > end - p)
			return -EBADMSG;
		e.plen = plen + 1 + nlen;
		e.path = malloc(e.plen + 1);
		assert_non_null(e.path);
		memcpy(e.path, prefix, plen);
		e.path[plen] = '/';
		memcpy(e.path + plen + 1, b + p, nlen);
		e.path[e.plen] = '\0';
		p += nlen;
		if (e.type == 'd') {
			if (!rd_varint(b, end, &p, &dist) || dist == 0 || dist > off) {
				free(e.path);
				return -EBADMSG;
			}
		} else if (e.type == 'f') {
			if (!rd_varint(b, end, &p, &e.size) || !rd_svarint(b, end, &p, &e.mtime)) {
				free(e.path);
				return -EBADMSG;
			}
		} else if (!strchr("lhbcps", e.type) || !e.type) {
			free(e.path);
			return -EBADMSG;
		}
		if (out->n == out->cap) {
			out->cap = out->cap ? 2 * out->cap : 64;
			out->v = realloc(out->v, out->cap * sizeof(*out->v));
			assert_non_null(out->v);
		}
		out->v[out->n++] = e;
		if (e.type == 'd') {
			char *child = strdup(e.path);

			r = parse_block(b, len, off - dist, child, e.plen, depth + 1, out);
			free(child);
			if (r < 0)
				return r;
		}
	}
	return p == end ? 0 : -EBADMSG;
}

static const uint8_t magic[8] = { 0x91, 0xfd, 0x60, 0xf9, 0xc4, 0x67, 0x58, 0xd5 };

/* Lists a catalog in pre-order, as expect.json does. */
static int parse_catalog(const uint8_t *b, size_t len, struct clist *out)
{
	uint64_t root;

	memset(out, 0, sizeof(*out));
	if (len < 16 || memcmp(b, magic, 8) != 0)
		return -EBADMSG;
	root = ds_le64(b + len - 8);
	if (root < 8 || root >= len - 8)
		return -EBADMSG;
	return parse_block(b, len, root, "", 0, 0, out);
}

/* ---- known answers ---- */

static void test_known_bytes(void **state)
{
	static const uint8_t want1[] = { 0x91, 0xfd, 0x60, 0xf9, 0xc4, 0x67, 0x58, 0xd5,
					 0x01, 0x00,                               /* x at 8 */
					 0x05, 0x01, 'd', 0x01, 'x', 0x02,         /* root at 10 */
					 10, 0, 0, 0, 0, 0, 0, 0 };
	static const uint8_t want2[] = { 0x91, 0xfd, 0x60, 0xf9, 0xc4, 0x67, 0x58, 0xd5, 0x09,
					 0x01, 'f',  0x01, 'a',  0xac, 0x02, 0xac, 0x82, 0x00,
					 8,    0,    0,    0,    0,    0,    0,    0 };
	struct mem m = { 0 };
	struct ds_pxar_sink s = { mem_write, &m };
	struct ds_pxar_catalog *c;
	struct clist l;

	(void)state;
	assert_int_equal(ds_pxar_catalog_new(&s, &c), 0);
	assert_int_equal(ds_pxar_catalog_begin_dir(c, "x", 1), 0);
	assert_int_equal(ds_pxar_catalog_end_dir(c), 0);
	assert_int_equal(ds_pxar_catalog_finish(c), 0);
	ds_pxar_catalog_free(c);
	assert_int_equal(m.len, sizeof(want1));
	assert_memory_equal(m.p, want1, sizeof(want1));

	m.len = 0;
	assert_int_equal(ds_pxar_catalog_new(&s, &c), 0);
	assert_int_equal(ds_pxar_catalog_add(c, 'f', "a", 1, 300, -300), 0);
	assert_int_equal(ds_pxar_catalog_finish(c), 0);
	ds_pxar_catalog_free(c);
	assert_int_equal(m.len, sizeof(want2));
	assert_memory_equal(m.p, want2, sizeof(want2));
	assert_int_equal(parse_catalog(m.p, m.len, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].path, "/a");
	assert_int_equal(l.v[0].size, 300);
	assert_true(l.v[0].mtime == -300);
	clist_free(&l);
	free(m.p);
}

/* Extreme varints survive the round trip through the test reader. */
static void test_varint_extremes(void **state)
{
	static const int64_t mt[] = { 0, 1, -1, 127, 128, -127, -128, -129, INT64_MAX, INT64_MIN,
				      -18489600, 4102444800LL };
	static const uint64_t sz[] = { 0, 1, 127, 128, 16383, 16384, UINT64_MAX };
	struct mem m = { 0 };
	struct ds_pxar_sink s = { mem_write, &m };
	struct ds_pxar_catalog *c;
	struct clist l;
	char name[8];

	(void)state;
	assert_int_equal(ds_pxar_catalog_new(&s, &c), 0);
	assert_int_equal(ds_pxar_catalog_begin_dir(c, "d", 1), 0);
	for (size_t i = 0; i < DS_ARRAY_SIZE(mt); i++) {
		PJ(name, "m%zu", i);
		assert_int_equal(ds_pxar_catalog_add(c, 'f', name, strlen(name),
						     sz[i % DS_ARRAY_SIZE(sz)], mt[i]), 0);
	}
	assert_int_equal(ds_pxar_catalog_end_dir(c), 0);
	assert_int_equal(ds_pxar_catalog_finish(c), 0);
	ds_pxar_catalog_free(c);
	assert_int_equal(parse_catalog(m.p, m.len, &l), 0);
	assert_int_equal(l.n, 1 + DS_ARRAY_SIZE(mt));
	for (size_t i = 0; i < DS_ARRAY_SIZE(mt); i++) {
		assert_true(l.v[1 + i].mtime == mt[i]);
		assert_true(l.v[1 + i].size == sz[i % DS_ARRAY_SIZE(sz)]);
	}
	clist_free(&l);
	free(m.p);
}

static void test_misuse(void **state)
{
	struct mem m = { 0 }, bad = { .fail_after = 20 };
	struct ds_pxar_sink s = { mem_write, &m }, sb = { mem_write, &bad };
	struct ds_pxar_catalog *c;
	char big[4096];

	(void)state;
	memset(big, 'n', sizeof(big));
	assert_int_equal(ds_pxar_catalog_new(&s, &c), 0);
	assert_int_equal(ds_pxar_catalog_end_dir(c), -EINVAL);
	assert_int_equal(ds_pxar_catalog_begin_dir(c, "x", 0), -EINVAL);
	assert_int_equal(ds_pxar_catalog_begin_dir(c, big, 4096), -EINVAL);
	assert_int_equal(ds_pxar_catalog_add(c, 'd', "x", 1, 0, 0), -EINVAL);
	assert_int_equal(ds_pxar_catalog_add(c, 'x', "x", 1, 0, 0), -EINVAL);
	assert_int_equal(ds_pxar_catalog_add(c, '\0', "x", 1, 0, 0), -EINVAL);
	assert_int_equal(ds_pxar_catalog_begin_dir(c, big, 4095), 0);
	assert_int_equal(ds_pxar_catalog_finish(c), -EINVAL); /* a dir is open */
	assert_int_equal(ds_pxar_catalog_end_dir(c), 0);
	assert_int_equal(ds_pxar_catalog_finish(c), 0);
	assert_int_equal(ds_pxar_catalog_finish(c), -EINVAL);
	ds_pxar_catalog_free(c);
	ds_pxar_catalog_free(NULL);
	free(m.p);

	/* A sink error is returned and sticks. */
	assert_int_equal(ds_pxar_catalog_new(&sb, &c), 0);
	assert_int_equal(ds_pxar_catalog_begin_dir(c, "d", 1), 0);
	assert_int_equal(ds_pxar_catalog_add(c, 'p', big, 100, 0, 0), 0);
	assert_int_equal(ds_pxar_catalog_end_dir(c), -ENOSPC);
	assert_int_equal(ds_pxar_catalog_add(c, 'l', "x", 1, 0, 0), -ENOSPC);
	ds_pxar_catalog_free(c);
	free(bad.p);
}

/* ---- the fixture catalogs ---- */

static uint8_t *load_stream(struct ds_chunkstore *cs, const char *didx, size_t *ret_len)
{
	struct ds_index *idx;
	uint8_t *buf;
	size_t size;

	assert_int_equal(ds_index_open(AT_FDCWD, didx, &idx), 0);
	size = (size_t)ds_index_size(idx);
	buf = malloc(size + 1);
	assert_non_null(buf);
	for (size_t i = 0; i < ds_index_count(idx); i++) {
		struct ds_index_chunk ch;
		size_t got;

		assert_int_equal(ds_index_chunk(idx, i, &ch), 0);
		assert_int_equal(ds_chunkstore_load(cs, &ch.digest, NULL, ch.end - ch.start,
						    buf + ch.start, size - ch.start, &got), 0);
		assert_int_equal(got, ch.end - ch.start);
	}
	ds_index_free(idx);
	*ret_len = size;
	return buf;
}

/* Replays a parsed listing through the writer: PBS wrote it with the same
 * sequence of calls (pre-order, a directory closed after its children). */
static void rewrite(const struct clist *l, struct mem *out)
{
	struct ds_pxar_sink s = { mem_write, out };
	struct ds_pxar_catalog *c;
	size_t stack[4200], depth = 0;

	assert_int_equal(ds_pxar_catalog_new(&s, &c), 0);
	for (size_t i = 0; i < l->n; i++) {
		const struct cent *e = &l->v[i];
		const char *name = strrchr(e->path, '/') + 1;
		size_t parent_len = (size_t)(name - 1 - e->path);

		while (depth && l->v[stack[depth - 1]].plen != parent_len) {
			assert_int_equal(ds_pxar_catalog_end_dir(c), 0);
			depth--;
		}
		if (e->type == 'd') {
			assert_int_equal(ds_pxar_catalog_begin_dir(c, name, strlen(name)), 0);
			stack[depth++] = i;
		} else {
			assert_int_equal(ds_pxar_catalog_add(c, e->type, name, strlen(name), e->size,
							     e->mtime), 0);
		}
	}
	while (depth--)
		assert_int_equal(ds_pxar_catalog_end_dir(c), 0);
	assert_int_equal(ds_pxar_catalog_finish(c), 0);
	ds_pxar_catalog_free(c);
}

static void test_fixture_catalogs(void **state)
{
	const char *fix = tu_fixtures();
	char path[4096];
	json_error_t jerr;
	json_t *root, *snaps, *snap;
	struct ds_chunkstore *cs;
	size_t si, checked = 0;

	(void)state;
	PJ(path, "%s/pbs-store-a.expect.json", fix);
	root = json_load_file(path, 0, &jerr);
	assert_non_null(root);
	PJ(path, "%s/pbs-store-a", fix);
	assert_int_equal(ds_chunkstore_open(path, &cs), 0);
	snaps = json_object_get(root, "snapshots");
	json_array_foreach(snaps, si, snap) {
		json_t *archives = json_object_get(snap, "archives"), *a;
		size_t ai;

		json_array_foreach(archives, ai, a) {
			json_t *want = json_object_get(a, "catalog"), *w;
			struct mem again = { 0 };
			struct clist l;
			uint8_t *buf;
			size_t len, wi;

			if (strcmp(json_string_value(json_object_get(a, "name")),
				   "catalog.pcat1.didx") != 0 ||
			    strcmp(json_string_value(json_object_get(a, "crypt_mode")), "none") != 0)
				continue;
			PJ(path, "%s/pbs-store-a/%s/catalog.pcat1.didx", fix,
				 json_string_value(json_object_get(snap, "path")));
			buf = load_stream(cs, path, &len);
			assert_int_equal(parse_catalog(buf, len, &l), 0);
			assert_int_equal(l.n, json_array_size(want));
			assert_int_equal(l.n, json_integer_value(json_object_get(a, "catalog_entry_count")));
			json_array_foreach(want, wi, w) {
				const char *hex = json_string_value(json_object_get(w, "path_hex"));
				const char *type = json_string_value(json_object_get(w, "type"));

				if (hex) {
					size_t hl = strlen(hex) / 2;
					uint8_t raw[8192];

					assert_int_equal(ds_hex_decode(hex, raw, hl), 0);
					assert_int_equal(l.v[wi].plen, hl);
					assert_memory_equal(l.v[wi].path, raw, hl);
				} else {
					assert_string_equal(l.v[wi].path,
							    json_string_value(json_object_get(w, "path")));
				}
				assert_int_equal(l.v[wi].type, type[0]);
				if (type[0] == 'f') {
					assert_true(l.v[wi].size ==
						    (uint64_t)json_integer_value(json_object_get(w, "size")));
					assert_true(l.v[wi].mtime ==
						    json_integer_value(json_object_get(w, "mtime")));
				}
			}
			/* Our writer, fed the same entries, writes the same bytes. */
			rewrite(&l, &again);
			assert_int_equal(again.len, len);
			assert_memory_equal(again.p, buf, len);
			free(again.p);
			clist_free(&l);
			free(buf);
			checked++;
		}
	}
	assert_true(checked >= 6);
	ds_chunkstore_free(cs);
	json_decref(root);
}

/* ---- the catalog of an encoded tree ---- */

static void put_file(const char *dir, const char *name, const char *data, int64_t mtime)
{
	char p[4096];
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 500000000 } };
	int fd;

	PJ(p, "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ds_write_all(fd, data, strlen(data)), 0);
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Expected listing: walks dir in byte order, as the encoder does. */
static void walk(const char *dir, const char *prefix, struct clist *out, struct clist *seen_inodes)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char *names[64];
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			names[n++] = strdup(de->d_name);
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		char p[4096], pp[4096];
		struct cent e = { 0 };
		struct stat st;

		PJ(p, "%s/%s", dir, names[i]);
		PJ(pp, "%s/%s", prefix, names[i]);
		assert_int_equal(lstat(p, &st), 0);
		e.path = strdup(pp);
		e.plen = strlen(pp);
		switch (st.st_mode & S_IFMT) {
		case S_IFDIR: e.type = 'd'; break;
		case S_IFLNK: e.type = 'l'; break;
		case S_IFBLK: e.type = 'b'; break;
		case S_IFCHR: e.type = 'c'; break;
		case S_IFIFO: e.type = 'p'; break;
		case S_IFSOCK: e.type = 's'; break;
		default:
			e.type = 'f';
			e.size = (uint64_t)st.st_size;
			e.mtime = st.st_mtim.tv_sec;
			if (st.st_nlink > 1) {
				char key[64];
				bool dup = false;

				PJ(key, "%llu:%llu", (unsigned long long)st.st_dev,
					 (unsigned long long)st.st_ino);
				for (size_t k = 0; k < seen_inodes->n; k++)
					dup |= strcmp(seen_inodes->v[k].path, key) == 0;
				if (dup) {
					e.type = 'h';
					e.size = 0;
					e.mtime = 0;
				} else {
					struct cent s = { strdup(key), 0, 0, 0, 0 };

					if (seen_inodes->n == seen_inodes->cap) {
						seen_inodes->cap = seen_inodes->cap ? 2 * seen_inodes->cap : 8;
						seen_inodes->v = realloc(seen_inodes->v, seen_inodes->cap *
										 sizeof(s));
					}
					seen_inodes->v[seen_inodes->n++] = s;
				}
			}
		}
		if (out->n == out->cap) {
			out->cap = out->cap ? 2 * out->cap : 64;
			out->v = realloc(out->v, out->cap * sizeof(*out->v));
		}
		out->v[out->n++] = e;
		if (e.type == 'd')
			walk(p, pp, out, seen_inodes);
		free(names[i]);
	}
}

static void test_tree_catalog(void **state)
{
	char *t = tu_tmpdir(), p[4096], q[4096];
	struct mem meta = { 0 }, cat = { 0 }, cat2 = { 0 }, m2 = { 0 };
	struct ds_pxar_sink ms = { mem_write, &meta }, cs = { mem_write, &cat };
	struct ds_pxar_sink cs2 = { mem_write, &cat2 }, ms2 = { mem_write, &m2 };
	struct ds_pxar_encode_stats st;
	struct clist got, want = { 0 }, inodes = { 0 };
	struct ds_pxar_catalog *c;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int sfd;

	(void)state;
	PJ(p, "%s/src", t);
	assert_int_equal(mkdir(p, 0755), 0);
	put_file(p, "a.txt", "hello", 1700000000);
	put_file(p, "old", "x", -18489601);
	put_file(p, "Zeta", "", 0);
	PJ(q, "%s/sub", p);
	assert_int_equal(mkdir(q, 0700), 0);
	put_file(q, "inner", "inner data", 1600000000);
	PJ(q, "%s/sub/empty-dir", p);
	assert_int_equal(mkdir(q, 0755), 0);
	PJ(q, "%s/a.txt", p);
	PJ(p, "%s/src/sub/link-to-a", t);
	assert_int_equal(link(q, p), 0);
	PJ(p, "%s/src/sym", t);
	assert_int_equal(symlink("a.txt", p), 0);
	PJ(p, "%s/src/fifo", t);
	assert_int_equal(mkfifo(p, 0644), 0);
	PJ(p, "%s/src/null", t);
	if (mknod(p, S_IFCHR | 0666, makedev(1, 3)) < 0)
		assert_int_equal(errno, EPERM); /* not root: no devices */
	PJ(p, "%s/src/loop", t);
	if (mknod(p, S_IFBLK | 0660, makedev(7, 0)) < 0)
		assert_int_equal(errno, EPERM);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/src/sock", t);
	sfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(sfd >= 0);
	assert_int_equal(bind(sfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(sfd);

	PJ(p, "%s/src", t);
	assert_int_equal(ds_pxar_encode_dir(p, &ms, NULL, &cs, "root.pxar.didx", &st), 0);
	assert_int_equal(parse_catalog(cat.p, cat.len, &got), 0);
	want.v = calloc(1, sizeof(*want.v));
	want.cap = 1;
	want.v[0] = (struct cent){ strdup("/root.pxar.didx"), 15, 'd', 0, 0 };
	want.n = 1;
	walk(p, "/root.pxar.didx", &want, &inodes);
	assert_int_equal(got.n, want.n);
	for (size_t i = 0; i < want.n; i++) {
		assert_string_equal(got.v[i].path, want.v[i].path);
		assert_int_equal(got.v[i].type, want.v[i].type);
		assert_true(got.v[i].size == want.v[i].size);
		assert_true(got.v[i].mtime == want.v[i].mtime);
	}
	assert_int_equal(st.hardlinks, 1);
	assert_int_equal(st.files, 4);

	/* Two archives in one catalog: one 'd' per archive in the root. */
	assert_int_equal(ds_pxar_catalog_new(&cs2, &c), 0);
	assert_int_equal(ds_pxar_encode_dir_cat(p, &ms2, NULL, c, "a.pxar.didx", NULL, NULL), 0);
	PJ(q, "%s/src/sub", t);
	assert_int_equal(ds_pxar_encode_dir_cat(q, &ms2, NULL, c, "b.pxar.didx", NULL, NULL), 0);
	assert_int_equal(ds_pxar_catalog_finish(c), 0);
	ds_pxar_catalog_free(c);
	clist_free(&got);
	assert_int_equal(parse_catalog(cat2.p, cat2.len, &got), 0);
	assert_int_equal(got.n, want.n + 1 + 3);
	assert_string_equal(got.v[0].path, "/a.pxar.didx");
	assert_string_equal(got.v[want.n].path, "/b.pxar.didx");
	assert_string_equal(got.v[want.n + 1].path, "/b.pxar.didx/empty-dir");
	assert_string_equal(got.v[want.n + 3].path, "/b.pxar.didx/link-to-a");
	/* Within b, link-to-a is the first occurrence of its inode again. */
	assert_int_equal(got.v[want.n + 3].type, 'f');

	clist_free(&got);
	clist_free(&want);
	clist_free(&inodes);
	free(meta.p);
	free(cat.p);
	free(cat2.p);
	free(m2.p);
	tu_rmtree(t);
	free(t);
}

/* ---- reading: ds_pxar_catalog_walk, hardlinks from the catalog ---- */

static struct ds_pxar_source src_of(struct mem *m)
{
	return (struct ds_pxar_source){ mem_pread, m->len, m, NULL };
}

/* A source that counts its reads. */
struct counted {
	struct mem *m;
	unsigned reads;
};

static int counted_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct counted *c = ctx;

	c->reads++;
	return mem_pread(c->m, buf, len, off);
}

/* The walk as "/root.pxar.didx/..." paths, as parse_catalog lists them. */
struct wlist {
	struct clist l;
	char path[8192];
	size_t plen, stack[256];
	unsigned depth;
};

static void wadd(struct wlist *w, char type, const char *name, size_t len)
{
	struct cent e = { 0 };

	e.plen = w->plen + 1 + len;
	e.path = malloc(e.plen + 1);
	assert_non_null(e.path);
	memcpy(e.path, w->path, w->plen);
	e.path[w->plen] = '/';
	memcpy(e.path + w->plen + 1, name, len);
	e.path[e.plen] = '\0';
	e.type = type;
	if (w->l.n == w->l.cap) {
		w->l.cap = w->l.cap ? 2 * w->l.cap : 64;
		w->l.v = realloc(w->l.v, w->l.cap * sizeof(*w->l.v));
		assert_non_null(w->l.v);
	}
	w->l.v[w->l.n++] = e;
}

static int w_enter(void *ud, const char *name, size_t len)
{
	struct wlist *w = ud;

	wadd(w, 'd', name, len);
	w->stack[w->depth++] = w->plen;
	w->path[w->plen] = '/';
	memcpy(w->path + w->plen + 1, name, len);
	w->plen += 1 + len;
	return 0;
}

static int w_leave(void *ud)
{
	struct wlist *w = ud;

	w->plen = w->stack[--w->depth];
	return 0;
}

static int w_entry(void *ud, char type, const char *name, size_t len)
{
	wadd(ud, type, name, len);
	return 0;
}

/* The entry at a relative path ("sub/deep/l2") of an archive. */
static void lookup_path(struct ds_pxar *px, const char *path, struct ds_pxar_entry *ret)
{
	struct ds_pxar_entry e;

	ds_pxar_root(px, &e);
	while (*path) {
		size_t n = strcspn(path, "/");

		assert_int_equal(ds_pxar_lookup(px, &e, path, n, &e), 0);
		path += n + (path[n] == '/');
	}
	*ret = e;
}

static void test_catalog_links(void **state)
{
	static const char *const files[] = { "a", "b", "c", "d", "sub/l1", "sub/deep/l2",
					     "sub/deep/e", "other/x", "other/l3" };
	static const int want_links[] = { 3, 2, 2, 1, 3, 3, 2, 1, 2 };
	char *t = tu_tmpdir(), p[4096], q[4096];
	struct mem meta = { 0 }, cat = { 0 }, bad = { 0 };
	struct ds_pxar_sink ms = { mem_write, &meta }, cs = { mem_write, &cat };
	struct ds_pxar_sink bs = { mem_write, &bad };
	static const struct ds_pxar_catalog_visitor vis = { w_enter, w_leave, w_entry };
	struct ds_pxar_source msrc, csrc, bsrc, csrc2;
	struct counted cnt = { 0 };
	unsigned reads;
	struct ds_pxar *scan, *fromcat, *px;
	struct ds_pxar_catalog *c;
	struct wlist *w = calloc(1, sizeof(*w));
	struct clist got;
	struct ds_pxar_entry e;

	(void)state;
	assert_non_null(w);
	PJ(p, "%s/src", t);
	assert_int_equal(mkdir(p, 0755), 0);
	PJ(q, "%s/sub", p);
	assert_int_equal(mkdir(q, 0755), 0);
	PJ(q, "%s/sub/deep", p);
	assert_int_equal(mkdir(q, 0755), 0);
	PJ(q, "%s/other", p);
	assert_int_equal(mkdir(q, 0755), 0);
	PJ(q, "%s/empty", p);
	assert_int_equal(mkdir(q, 0755), 0);
	put_file(p, "a", "aaa", 1700000000);
	put_file(p, "b", "bb", 1700000000);
	put_file(p, "d", "d", 1700000000);
	PJ(q, "%s/sub/deep", p);
	put_file(q, "e", "e", 1700000000);
	PJ(q, "%s/other", p);
	put_file(q, "x", "x", 1700000000);
	{
		static const char *const ln[][2] = { { "a", "sub/l1" }, { "a", "sub/deep/l2" },
						     { "b", "c" }, { "sub/deep/e", "other/l3" } };

		for (size_t i = 0; i < DS_ARRAY_SIZE(ln); i++) {
			char from[4096], to[4096];

			PJ(from, "%s/%s", p, ln[i][0]);
			PJ(to, "%s/%s", p, ln[i][1]);
			assert_int_equal(link(from, to), 0);
		}
	}
	assert_int_equal(ds_pxar_encode_dir(p, &ms, NULL, &cs, "root.pxar.didx", NULL), 0);
	msrc = src_of(&meta);
	csrc = src_of(&cat);

	/* The walk lists what the test's own reader lists. */
	assert_int_equal(parse_catalog(cat.p, cat.len, &got), 0);
	memcpy(w->path, "/root.pxar.didx", 15);
	w->plen = 15;
	assert_int_equal(ds_pxar_catalog_walk(&csrc, "root.pxar.didx", &vis, w), 0);
	assert_int_equal(w->l.n, got.n - 1);
	for (size_t i = 0; i < w->l.n; i++) {
		assert_string_equal(w->l.v[i].path, got.v[i + 1].path);
		assert_int_equal(w->l.v[i].type, got.v[i + 1].type);
	}
	assert_int_equal(ds_pxar_catalog_walk(&csrc, "other.pxar.didx", &vis, w), -ENOENT);

	/* Link counts from the catalog equal the scan's and the source's. */
	assert_int_equal(ds_pxar_open(&msrc, NULL, &scan), 0);
	cnt.m = &meta;
	csrc2 = (struct ds_pxar_source){ counted_pread, meta.len, &cnt, NULL };
	assert_int_equal(ds_pxar_open(&csrc2, NULL, &fromcat), 0);
	assert_int_equal(ds_pxar_links_from_catalog(fromcat, &csrc, "root.pxar.didx"), 0);
	for (size_t i = 0; i < DS_ARRAY_SIZE(files); i++) {
		struct stat st;
		int want;

		PJ(q, "%s/%s", p, files[i]);
		assert_int_equal(lstat(q, &st), 0);
		want = want_links[i];
		assert_int_equal(st.st_nlink, want);
		lookup_path(scan, files[i], &e);
		assert_int_equal(ds_pxar_nlink(scan, &e), want);
		lookup_path(fromcat, files[i], &e);
		reads = cnt.reads;
		assert_int_equal(ds_pxar_nlink(fromcat, &e), want);
		assert_int_equal(cnt.reads, reads); /* no scan */
	}
	ds_pxar_free(scan);
	ds_pxar_free(fromcat);

	/* A damaged catalog (root offset past the end; bad magic) or one that
	 * names as a hardlink what is not one: -EIO, and nlink scans. */
	bad.len = 0;
	mem_write(&bad, cat.p, cat.len);
	ds_put_le64(bad.p + bad.len - 8, bad.len);
	bsrc = src_of(&bad);
	assert_int_equal(ds_pxar_open(&msrc, NULL, &px), 0);
	assert_int_equal(ds_pxar_links_from_catalog(px, &bsrc, "root.pxar.didx"), -EIO);
	bad.p[0] ^= 1;
	ds_put_le64(bad.p + bad.len - 8, ds_le64(cat.p + cat.len - 8));
	assert_int_equal(ds_pxar_links_from_catalog(px, &bsrc, "root.pxar.didx"), -EIO);
	bad.len = 0;
	assert_int_equal(ds_pxar_catalog_new(&bs, &c), 0);
	assert_int_equal(ds_pxar_catalog_begin_dir(c, "root.pxar.didx", 14), 0);
	assert_int_equal(ds_pxar_catalog_add(c, 'h', "d", 1, 0, 0), 0);
	assert_int_equal(ds_pxar_catalog_end_dir(c), 0);
	assert_int_equal(ds_pxar_catalog_finish(c), 0);
	ds_pxar_catalog_free(c);
	bsrc = src_of(&bad);
	assert_int_equal(ds_pxar_links_from_catalog(px, &bsrc, "root.pxar.didx"), -EIO);
	lookup_path(px, "a", &e);
	assert_int_equal(ds_pxar_nlink(px, &e), 3);
	ds_pxar_free(px);

	clist_free(&got);
	clist_free(&w->l);
	free(w);
	free(meta.p);
	free(cat.p);
	free(bad.p);
	tu_rmtree(t);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_bytes),
		cmocka_unit_test(test_varint_extremes),
		cmocka_unit_test(test_misuse),
		cmocka_unit_test(test_fixture_catalogs),
		cmocka_unit_test(test_tree_catalog),
		cmocka_unit_test(test_catalog_links),
	};

	return tu_run_group("pxar_catalog", tests, NULL, NULL);
}
