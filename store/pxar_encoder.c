/* pxar encoder (spec pxar-format.md §9): walks a directory tree through
 * directory file descriptors (never following symlinks below the top) and
 * writes the entries in the order and with the metadata the PBS client
 * (pbs-client/src/pxar/create.rs) writes them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "store/log.h"
#include "store/pxar.h"
#include "store/pxar_encoder.h"
#include "store/pxar_encoder_internal.h"
#include "store/pxar_exclude.h"
#include "store/util.h"

#define OUT_BUF (256 * 1024)
#define COPY_BUF (1024 * 1024)
#define NAME_MAX_PXAR 4096
#define LINK_MAX_PXAR 4096
/* Deepest directory below the root (depth 1: its children). The walk
 * recurses once a level (about 600 bytes of stack, one descriptor), so a
 * deep enough tree crashed the backup; and the catalog reader refuses
 * blocks nested deeper than 2048, the root block and the archive's being
 * two of them (pxar_catalog.c CAT_DEPTH_MAX). */
#define DIR_DEPTH_MAX 2047
#define PXAREXCLUDE ".pxarexclude"
#define PXAREXCLUDE_CLI ".pxarexclude-cli"

/* Buffered output to a sink; pos counts every byte accepted so far. */
struct out {
	const struct ds_pxar_sink *sink;
	uint8_t *buf;
	size_t len;
	uint64_t pos;
};

struct hl_ent {
	uint64_t dev, ino, f; /* f: offset of the first occurrence's FILENAME */
	char *path;           /* NULL: free slot */
};

struct gb_rec {
	uint64_t hash, f, span;
};

struct gb {
	struct gb_rec *v;
	size_t n, cap;
};

struct enc {
	struct out meta, pay;
	bool v2;
	struct ds_pxar_catalog *cat;
	struct ds_pxar_encode_stats st;
	struct hl_ent *hl; /* open addressing, hl_cap a power of two */
	size_t hl_n, hl_cap;
	struct dbuf path; /* of the current entry relative to the root, no NUL */
	dev_t dev;        /* of the directory being written */
	/* file systems whose contents are stored (all: every one) */
	bool all_fs;
	uint64_t *devs;
	size_t n_devs;
	unsigned depth;   /* of the directory being written, the root 0 */
	uint8_t *copy;
	/* --exclude patterns (the first n_cli), then the .pxarexclude lines
	 * of the directories being written (pxar_exclude.c) */
	struct ds_pxar_excl *excl;
	size_t n_cli;
	struct dbuf mpath; /* '/' + path: what the patterns are matched against */
};

static int out_flush(struct out *o)
{
	int r;

	if (!o->len)
		return 0;
	r = o->sink->write(o->sink->ctx, o->buf, o->len);
	o->len = 0;
	return r < 0 ? r : 0;
}

static int out_write(struct out *o, const void *p, size_t n)
{
	int r;

	if (o->len + n > OUT_BUF) {
		r = out_flush(o);
		if (r < 0)
			return r;
		if (n >= OUT_BUF) {
			r = o->sink->write(o->sink->ctx, p, n);
			if (r < 0)
				return r;
			o->pos += n;
			return 0;
		}
	}
	if (n)
		memcpy(o->buf + o->len, p, n);
	o->len += n;
	o->pos += n;
	return 0;
}

/* A header whose content (content_len bytes) the caller writes next. */
static int out_header(struct out *o, uint64_t type, uint64_t content_len)
{
	uint8_t h[16];

	ds_put_le64(h, type);
	ds_put_le64(h + 8, 16 + content_len);
	return out_write(o, h, 16);
}

static int out_item(struct out *o, uint64_t type, const void *a, size_t alen, const void *b,
		    size_t blen)
{
	int r;

	r = out_header(o, type, alen + blen);
	if (r == 0 && alen)
		r = out_write(o, a, alen);
	if (r == 0 && blen)
		r = out_write(o, b, blen);
	return r;
}

static int out_u64_item(struct out *o, uint64_t type, uint64_t v)
{
	uint8_t b[8];

	ds_put_le64(b, v);
	return out_item(o, type, b, 8, NULL, 0);
}

static const char *cur_path(struct enc *e)
{
	static const char root[] = ".";

	if (!e->path.len)
		return root;
	e->path.p[e->path.len] = '\0'; /* dbuf keeps one spare byte */
	return (const char *)e->path.p;
}

/* Logs why an entry is left out and counts it; the walk goes on. Running
 * out of descriptors or memory says nothing about the entry, so it fails
 * the archive instead (PBS fails too): skipping would report a successful
 * backup without the rest of the tree (a deep tree hits RLIMIT_NOFILE,
 * one descriptor a level). */
static int skip_entry(struct enc *e, const char *what, int err)
{
	if (err == EMFILE || err == ENFILE || err == ENOMEM) {
		ds_err("pxar: %s: %s: %s", cur_path(e), what, strerror(err));
		return -err;
	}
	ds_warn("pxar: %s: %s: %s; skipped", cur_path(e), what, strerror(err));
	e->st.skipped++;
	return 0;
}

/* ---- hardlink table, keyed by (st_dev, st_ino) ---- */

static size_t hl_slot(const struct enc *e, uint64_t dev, uint64_t ino)
{
	uint64_t h = (ino ^ (dev << 32 | dev >> 32)) * UINT64_C(0x9e3779b97f4a7c15);

	return (size_t)(h >> 17) & (e->hl_cap - 1);
}

static struct hl_ent *hl_find(struct enc *e, uint64_t dev, uint64_t ino)
{
	if (!e->hl_cap)
		return NULL;
	for (size_t i = hl_slot(e, dev, ino);; i = (i + 1) & (e->hl_cap - 1)) {
		struct hl_ent *h = &e->hl[i];

		if (!h->path)
			return NULL;
		if (h->dev == dev && h->ino == ino)
			return h;
	}
}

static int hl_add(struct enc *e, uint64_t dev, uint64_t ino, uint64_t f, const char *path)
{
	struct hl_ent *h;

	if (2 * (e->hl_n + 1) > e->hl_cap) {
		size_t old_cap = e->hl_cap, cap = old_cap ? 2 * old_cap : 64;
		struct hl_ent *old = e->hl, *nv = calloc(cap, sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		e->hl = nv;
		e->hl_cap = cap;
		for (size_t i = 0; i < old_cap; i++) {
			if (!old[i].path)
				continue;
			for (size_t j = hl_slot(e, old[i].dev, old[i].ino);; j = (j + 1) & (cap - 1)) {
				if (!nv[j].path) {
					nv[j] = old[i];
					break;
				}
			}
		}
		free(old);
	}
	for (size_t i = hl_slot(e, dev, ino);; i = (i + 1) & (e->hl_cap - 1)) {
		h = &e->hl[i];
		if (!h->path)
			break;
	}
	h->path = strdup(path);
	if (!h->path)
		return -ENOMEM;
	h->dev = dev;
	h->ino = ino;
	h->f = f;
	e->hl_n++;
	return 0;
}

/* Whether the contents of a directory on file system dev are stored. */
static bool dev_included(const struct enc *e, dev_t dev)
{
	if (e->all_fs)
		return true;
	for (size_t i = 0; i < e->n_devs; i++)
		if (e->devs[i] == (uint64_t)dev)
			return true;
	return false;
}

/* ---- directory listing ---- */

struct listing {
	struct dbuf names; /* NUL-terminated names back to back */
	char **v;
	size_t n;
};

static int cmp_name(const void *a, const void *b)
{
	/* strcmp compares as unsigned char: the raw byte order PBS sorts by. */
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void listing_release(struct listing *l)
{
	dbuf_release(&l->names);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Reads the names of directory fd (without . and ..), sorted by bytes. */
static int list_dir(int fd, struct listing *l)
{
	struct dirent *de;
	size_t off = 0;
	DIR *d;
	int dfd, r = 0;

	memset(l, 0, sizeof(*l));
	dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dfd < 0)
		return -errno;
	d = fdopendir(dfd);
	if (!d) {
		r = -errno;
		close(dfd);
		return r;
	}
	rewinddir(d);
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			r = errno ? -errno : 0;
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		r = dbuf_put(&l->names, de->d_name, strlen(de->d_name) + 1);
		if (r < 0)
			break;
		l->n++;
	}
	closedir(d);
	if (r == 0 && l->n) {
		l->v = malloc(l->n * sizeof(*l->v));
		if (!l->v)
			r = -ENOMEM;
	}
	if (r < 0) {
		listing_release(l);
		return r;
	}
	for (size_t i = 0; i < l->n; i++) {
		l->v[i] = (char *)l->names.p + off;
		off += strlen(l->v[i]) + 1;
	}
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), cmp_name);
	return 0;
}

/* ---- goodbye table (spec §2.3-§2.5) ---- */

/* A directory whose goodbye table (24 bytes a child and the tail) would
 * exceed PXAR_GOODBYE_MAX fails the archive. Readers (PBS's and ours)
 * take wider ones; PBS's client stops at 1,048,576 entries by default
 * (--entries-max). */
static int check_width(const char *path, const struct listing *l)
{
	if ((uint64_t)l->n + 1 <= PXAR_GOODBYE_MAX / 24)
		return 0;
	ds_err("pxar: %s: %zu entries; a pxar directory holds at most %llu", path, l->n,
	       (unsigned long long)(PXAR_GOODBYE_MAX / 24 - 1));
	return -EFBIG;
}

static int cmp_rec(const void *a, const void *b)
{
	const struct gb_rec *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->f < y->f ? -1 : x->f > y->f;
}

/* In-order walk over the heap-shaped tree of slots 0..n-1: the k-th
 * visited slot gets the k-th smallest record. */
static void bst_place(const struct gb_rec *sorted, size_t n, size_t slot, size_t *k,
		      const struct gb_rec **dst)
{
	if (slot >= n)
		return;
	bst_place(sorted, n, 2 * slot + 1, k, dst);
	dst[slot] = &sorted[(*k)++];
	bst_place(sorted, n, 2 * slot + 2, k, dst);
}

static int gb_add(struct gb *gb, const char *name, size_t len, uint64_t f, uint64_t span)
{
	if (gb->n == gb->cap) {
		size_t cap = gb->cap ? 2 * gb->cap : 16;
		struct gb_rec *v = realloc(gb->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		gb->v = v;
		gb->cap = cap;
	}
	gb->v[gb->n++] = (struct gb_rec){ ds_pxar_hash(name, len), f, span };
	return 0;
}

/* Writes the GOODBYE item of a directory whose ENTRY is at tail_base (the
 * root: 0, the archive start). */
static int write_goodbye(struct enc *e, struct gb *gb, uint64_t tail_base)
{
	uint64_t g = e->meta.pos, size = 16 + 24 * ((uint64_t)gb->n + 1);
	const struct gb_rec **slots = NULL;
	uint8_t *buf, *p;
	size_t k = 0;
	int r;

	buf = malloc(size);
	if (gb->n)
		slots = malloc(gb->n * sizeof(*slots));
	if (!buf || (gb->n && !slots)) {
		r = -ENOMEM;
		goto out;
	}
	if (gb->n)
		qsort(gb->v, gb->n, sizeof(*gb->v), cmp_rec);
	bst_place(gb->v, gb->n, 0, &k, slots);
	ds_put_le64(buf, PXAR_GOODBYE);
	ds_put_le64(buf + 8, size);
	p = buf + 16;
	for (size_t i = 0; i < gb->n; i++, p += 24) {
		ds_put_le64(p, slots[i]->hash);
		ds_put_le64(p + 8, g - slots[i]->f);
		ds_put_le64(p + 16, slots[i]->span);
	}
	ds_put_le64(p, PXAR_GOODBYE_TAIL_MARKER);
	ds_put_le64(p + 8, g - tail_base);
	ds_put_le64(p + 16, size);
	r = out_write(&e->meta, buf, size);
out:
	free(slots);
	free(buf);
	return r;
}

/* ---- entries ---- */

/* Opens name below dfd without following a symlink. Regular files and
 * directories are opened for reading (O_NONBLOCK: should the name have
 * turned into a fifo since the stat, the open must not hang), everything
 * else as O_PATH. Retries without O_NOATIME where it is not allowed. */
static int open_entry(int dfd, const char *name, mode_t type)
{
	int flags = O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NOATIME, fd;

	if (type == S_IFDIR)
		flags |= O_RDONLY | O_DIRECTORY;
	else if (type == S_IFREG)
		flags |= O_RDONLY | O_NONBLOCK;
	else
		flags |= O_PATH;
	fd = openat(dfd, name, flags);
	if (fd < 0 && errno == EPERM) {
		flags &= ~O_NOATIME;
		fd = openat(dfd, name, flags);
	}
	if (fd < 0)
		return -errno;
	if (type == S_IFREG) {
		int fl = fcntl(fd, F_GETFL);

		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
			fl = -errno;
			close(fd);
			return fl;
		}
	}
	return fd;
}

static int copy_content(struct enc *e, int fd, uint64_t size, struct out *o)
{
	uint64_t left = size;
	ssize_t n;
	int r;

	while (left) {
		n = read(fd, e->copy, left < COPY_BUF ? (size_t)left : COPY_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			ds_err("pxar: %s: read failed: %s", cur_path(e), strerror(-r));
			return r;
		}
		if (n == 0)
			break;
		r = out_write(o, e->copy, (size_t)n);
		if (r < 0)
			return r;
		left -= (uint64_t)n;
	}
	if (left) {
		ds_warn("pxar: %s: file shrank while reading; padded with zeros", cur_path(e));
		memset(e->copy, 0, left < COPY_BUF ? (size_t)left : COPY_BUF);
		while (left) {
			size_t k = left < COPY_BUF ? (size_t)left : COPY_BUF;

			r = out_write(o, e->copy, k);
			if (r < 0)
				return r;
			left -= k;
		}
	} else {
		uint8_t probe;

		do
			n = read(fd, &probe, 1);
		while (n < 0 && errno == EINTR);
		if (n > 0)
			ds_warn("pxar: %s: file grew while reading; truncated", cur_path(e));
	}
	return 0;
}

static int write_file(struct enc *e, int fd, const struct stat *st, const struct dbuf *attrs)
{
	uint64_t size = (uint64_t)st->st_size;
	uint8_t ref[16];
	int r;

	r = out_write(&e->meta, attrs->p, attrs->len);
	if (r < 0)
		return r;
	e->st.files++;
	e->st.content_bytes += size;
	if (!e->v2) {
		r = out_header(&e->meta, PXAR_PAYLOAD, size);
		if (r < 0)
			return r;
		return copy_content(e, fd, size, &e->meta);
	}
	ds_put_le64(ref, e->pay.pos);
	ds_put_le64(ref + 8, size);
	r = out_header(&e->pay, PXAR_PAYLOAD, size);
	if (r == 0)
		r = copy_content(e, fd, size, &e->pay);
	if (r == 0)
		r = out_item(&e->meta, PXAR_PAYLOAD_REF, ref, 16, NULL, 0);
	return r;
}

/* ---- the walk ---- */

static int write_dir(struct enc *e, int fd, dev_t dev, const struct dbuf *attrs,
		     const struct listing *l, uint64_t tail_base);

static int cat_add(struct enc *e, char type, const char *name, size_t len, uint64_t size,
		   int64_t mtime)
{
	return e->cat ? ds_pxar_catalog_add(e->cat, type, name, len, size, mtime) : 0;
}

static int write_hardlink(struct enc *e, const struct hl_ent *h, uint64_t f)
{
	uint8_t delta[8];

	ds_put_le64(delta, f - h->f);
	e->st.hardlinks++;
	return out_item(&e->meta, PXAR_HARDLINK, delta, 8, h->path, strlen(h->path) + 1);
}

/* Whether the entry at e->path (lstat mode) is excluded by the patterns:
 * 1 (counted, logged at debug level), 0, or -ENOMEM. */
static int excluded(struct enc *e, mode_t mode)
{
	int r;

	if (!ds_pxar_excl_count(e->excl))
		return 0;
	e->mpath.len = 0;
	r = dbuf_put(&e->mpath, "/", 1);
	if (r == 0)
		r = dbuf_put(&e->mpath, e->path.p, e->path.len);
	if (r < 0)
		return r;
	if (ds_pxar_excl_match(e->excl, (const char *)e->mpath.p, e->mpath.len, mode) !=
	    DS_PXAR_EXCL_EXCLUDE)
		return 0;
	ds_debug("pxar: %s: excluded by a pattern", cur_path(e));
	e->st.excluded++;
	return 1;
}

/* Appends the patterns of the .pxarexclude in directory dfd (e->path), as
 * PBS's client reads it: following a symlink; missing or unreadable
 * (EACCES) is no file, a read error drops the whole file, both with a
 * warning; other errors fail the archive, as there. Unlike there, a
 * .pxarexclude that is not a regular file or a directory (a fifo would
 * block, a device never end) is ignored with a warning. */
static int read_pxarexclude(struct enc *e, int dfd)
{
	int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOATIME, fd, r = 0;
	struct dbuf buf = { 0 };
	struct stat st;

	fd = openat(dfd, PXAREXCLUDE, flags);
	if (fd < 0 && errno == EPERM)
		fd = openat(dfd, PXAREXCLUDE, flags & ~O_NOATIME);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		r = -errno;
		if (r == -EACCES) {
			ds_warn("pxar: %s/" PXAREXCLUDE ": %s; ignored", cur_path(e), strerror(-r));
			return 0;
		}
		ds_err("pxar: %s/" PXAREXCLUDE ": %s", cur_path(e), strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto ignore;
	}
	if (!S_ISREG(st.st_mode)) {
		r = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto ignore;
	}
	for (;;) {
		ssize_t n;

		if (buf.cap - buf.len < 4096 + 1) { /* dbuf keeps one spare byte */
			size_t cap = buf.cap ? 2 * buf.cap : 65536;
			uint8_t *p = realloc(buf.p, cap);

			if (!p) {
				r = -ENOMEM;
				goto out;
			}
			buf.p = p;
			buf.cap = cap;
		}
		n = read(fd, buf.p + buf.len, buf.cap - buf.len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto ignore;
		}
		if (n == 0)
			break;
		buf.len += (size_t)n;
	}
	r = ds_pxar_excl_add_file(e->excl, e->path.len ? (const char *)e->path.p : "",
				  e->path.len, buf.len ? (const char *)buf.p : "", buf.len);
	if (r > 0)
		r = 0;
	goto out;
ignore:
	ds_warn("pxar: %s/" PXAREXCLUDE ": %s; ignored",
		cur_path(e), r == -EINVAL ? "not a regular file" : strerror(-r));
	r = r == -ENOMEM ? r : 0;
out:
	close(fd);
	dbuf_release(&buf);
	return r;
}

/* The root's last entry in a v1 archive made with --exclude, as PBS's
 * client writes it (create.rs encode_pxarexclude_cli): a regular file
 * .pxarexclude-cli, mode 0600, the client's uid and gid, mtime 0, holding
 * the patterns, one a line. */
static int write_cli_file(struct enc *e, struct gb *gb)
{
	size_t nlen = strlen(PXAREXCLUDE_CLI), len;
	uint8_t stat[40] = { 0 };
	uint64_t f = e->meta.pos;
	char *text;
	int r;

	r = ds_pxar_excl_cli_text(e->excl, e->n_cli, &text, &len);
	if (r < 0)
		return r;
	ds_put_le64(stat, S_IFREG | 0600);
	ds_put_le32(stat + 16, (uint32_t)getuid());
	ds_put_le32(stat + 20, (uint32_t)getgid());
	r = out_item(&e->meta, PXAR_FILENAME, PXAREXCLUDE_CLI, nlen, "", 1);
	if (r == 0)
		r = cat_add(e, 'f', PXAREXCLUDE_CLI, nlen, len, 0);
	if (r == 0)
		r = out_item(&e->meta, PXAR_ENTRY, stat, sizeof(stat), NULL, 0);
	if (r == 0)
		r = out_item(&e->meta, PXAR_PAYLOAD, text, len, NULL, 0);
	if (r == 0)
		r = gb_add(gb, PXAREXCLUDE_CLI, nlen, f, e->meta.pos - f);
	if (r == 0) {
		e->st.files++;
		e->st.content_bytes += len;
	}
	free(text);
	return r;
}

/* Encodes child name of directory dfd (FILENAME and its body) and records
 * its goodbye entry. Entries that cannot be read are skipped before
 * anything of them is written. */
static int encode_child(struct enc *e, int dfd, const char *name, struct gb *gb)
{
	size_t nlen = strlen(name), plen = e->path.len;
	struct dbuf attrs = { 0 };
	struct listing l = { 0 };
	struct hl_ent *h = NULL;
	char *link = (char *)e->copy; /* free until the content is copied */
	ssize_t link_len = 0;
	struct stat st, st2;
	uint8_t dev[16];
	int fd = -1, r;
	mode_t type;
	uint64_t f;

	/* PBS's client never backs up a .pxarexclude-cli at the top: that
	 * name is its record of the --exclude patterns. */
	if (e->depth == 0 && strcmp(name, PXAREXCLUDE_CLI) == 0)
		return 0;
	r = e->path.len ? dbuf_put(&e->path, "/", 1) : 0;
	if (r == 0)
		r = dbuf_put(&e->path, name, nlen);
	if (r < 0)
		goto out;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		r = skip_entry(e, errno == ENOENT ? "vanished" : "stat", errno);
		goto out;
	}
	r = excluded(e, st.st_mode);
	if (r != 0) {
		r = r < 0 ? r : 0;
		goto out;
	}
	type = st.st_mode & S_IFMT;
	fd = open_entry(dfd, name, type);
	if (fd < 0) {
		r = skip_entry(e, fd == -ENOENT ? "vanished" : "open", -fd);
		goto out;
	}
	if (fstat(fd, &st2) < 0) {
		r = skip_entry(e, "stat", errno);
		goto out;
	}
	if ((st2.st_mode & S_IFMT) != type) {
		r = skip_entry(e, "replaced while reading", EAGAIN);
		goto out;
	}
	st = st2;
	if (type == S_IFREG && st.st_nlink > 1)
		h = hl_find(e, (uint64_t)st.st_dev, (uint64_t)st.st_ino);
	if (!h) {
		r = pxar_enc_get_meta(fd, &st, cur_path(e), &attrs);
		if (r < 0)
			goto out;
	}
	if (type == S_IFLNK) {
		link_len = readlinkat(fd, "", link, LINK_MAX_PXAR + 1);
		if (link_len < 0 || link_len > LINK_MAX_PXAR) {
			r = skip_entry(e, "readlink", link_len < 0 ? errno : ENAMETOOLONG);
			goto out;
		}
	} else if (type == S_IFDIR) {
		if (e->depth >= DIR_DEPTH_MAX) {
			ds_err("pxar: %s: directories nested deeper than %d levels", cur_path(e),
			       DIR_DEPTH_MAX);
			r = -ENAMETOOLONG;
			goto out;
		}
		/* A mount point of proc, sysfs & co., or of a file system not
		 * taken in: the directory, not its contents (PBS: "skipping
		 * mount point"). As there, only a change of st_dev from the
		 * parent makes a mount point. */
		if (st.st_dev != e->dev && pxar_enc_virtual_fs(fd)) {
			ds_info("pxar: %s: skipping mount point of a virtual file system",
				cur_path(e));
			r = 0;
		} else if (st.st_dev != e->dev && !dev_included(e, st.st_dev)) {
			ds_info("pxar: %s: skipping mount point of another file system "
				"(--include-dev or --all-file-systems takes it in)",
				cur_path(e));
			r = 0;
		} else {
			r = list_dir(fd, &l);
		}
		if (r < 0) {
			r = skip_entry(e, "read directory", -r);
			goto out;
		}
		r = check_width(cur_path(e), &l);
		if (r < 0)
			goto out;
	}

	f = e->meta.pos;
	r = out_item(&e->meta, PXAR_FILENAME, name, nlen, "", 1);
	if (r < 0)
		goto out;
	switch (type) {
	case S_IFREG:
		if (h) {
			r = cat_add(e, 'h', name, nlen, 0, 0);
			if (r == 0)
				r = write_hardlink(e, h, f);
			break;
		}
		r = cat_add(e, 'f', name, nlen, (uint64_t)st.st_size, st.st_mtim.tv_sec);
		if (r == 0)
			r = write_file(e, fd, &st, &attrs);
		/* A target path must fit a HARDLINK item; else later links
		 * become plain copies. */
		if (r == 0 && st.st_nlink > 1 && e->path.len <= NAME_MAX_PXAR)
			r = hl_add(e, (uint64_t)st.st_dev, (uint64_t)st.st_ino, f, cur_path(e));
		break;
	case S_IFDIR:
		r = e->cat ? ds_pxar_catalog_begin_dir(e->cat, name, nlen) : 0;
		e->depth++;
		if (r == 0)
			r = write_dir(e, fd, st.st_dev, &attrs, &l, f + 16 + nlen + 1);
		e->depth--;
		if (r == 0 && e->cat)
			r = ds_pxar_catalog_end_dir(e->cat);
		break;
	case S_IFLNK:
		e->st.symlinks++;
		r = cat_add(e, 'l', name, nlen, 0, 0);
		if (r == 0)
			r = out_write(&e->meta, attrs.p, attrs.len);
		if (r == 0)
			r = out_item(&e->meta, PXAR_SYMLINK, link, (size_t)link_len, "", 1);
		break;
	case S_IFBLK:
	case S_IFCHR:
		e->st.devices++;
		ds_put_le64(dev, major(st.st_rdev));
		ds_put_le64(dev + 8, minor(st.st_rdev));
		r = cat_add(e, type == S_IFBLK ? 'b' : 'c', name, nlen, 0, 0);
		if (r == 0)
			r = out_write(&e->meta, attrs.p, attrs.len);
		if (r == 0)
			r = out_item(&e->meta, PXAR_DEVICE, dev, 16, NULL, 0);
		break;
	default: /* fifos and sockets: metadata only */
		if (type == S_IFIFO)
			e->st.fifos++;
		else
			e->st.sockets++;
		r = cat_add(e, type == S_IFIFO ? 'p' : 's', name, nlen, 0, 0);
		if (r == 0)
			r = out_write(&e->meta, attrs.p, attrs.len);
		break;
	}
	if (r == 0)
		r = gb_add(gb, name, nlen, f, e->meta.pos - f);
out:
	e->path.len = plen;
	if (fd >= 0)
		close(fd);
	listing_release(&l);
	dbuf_release(&attrs);
	return r;
}

static int write_dir(struct enc *e, int fd, dev_t dev, const struct dbuf *attrs,
		     const struct listing *l, uint64_t tail_base)
{
	static const char *const key = PXAREXCLUDE;
	size_t n_pat = ds_pxar_excl_count(e->excl);
	dev_t parent_dev = e->dev;
	struct gb gb = { 0 };
	int r;

	e->st.dirs++;
	e->dev = dev;
	r = out_write(&e->meta, attrs->p, attrs->len);
	/* Its patterns apply to this directory's entries and below. Looked
	 * up in the listing first: one open less per directory without. */
	if (r == 0 && l->n && bsearch(&key, l->v, l->n, sizeof(*l->v), cmp_name))
		r = read_pxarexclude(e, fd);
	for (size_t i = 0; i < l->n && r == 0; i++)
		r = encode_child(e, fd, l->v[i], &gb);
	if (r == 0 && e->depth == 0 && e->n_cli && !e->v2)
		r = write_cli_file(e, &gb);
	if (r == 0)
		r = write_goodbye(e, &gb, tail_base);
	ds_pxar_excl_truncate(e->excl, n_pat);
	e->dev = parent_dev;
	free(gb.v);
	return r;
}

int ds_pxar_encode_dir_cat(const char *dir, const struct ds_pxar_sink *meta,
			   const struct ds_pxar_sink *payload, struct ds_pxar_catalog *cat,
			   const char *catalog_name, const struct ds_pxar_encode_opts *opts,
			   struct ds_pxar_encode_stats *ret_stats)
{
	struct enc e = { 0 };
	struct listing l = { 0 };
	struct dbuf attrs = { 0 };
	char *prelude = NULL;
	size_t prelude_len = 0;
	struct stat st;
	int fd = -1, r;

	if (!dir || !meta || !meta->write || (payload && !payload->write) ||
	    (cat && !catalog_name) || (opts && opts->n_exclude && !opts->exclude) ||
	    (opts && opts->n_include_dev && !opts->include_dev))
		return -EINVAL;
	r = ds_pxar_excl_new(&e.excl);
	for (size_t i = 0; r == 0 && opts && i < opts->n_exclude; i++) {
		const char *why = NULL;

		r = ds_pxar_excl_add_cli(e.excl, opts->exclude[i], strlen(opts->exclude[i]), &why);
		if (r == -EINVAL)
			ds_err("pxar: invalid exclude pattern %s: %s", opts->exclude[i], why);
	}
	e.n_cli = e.excl ? ds_pxar_excl_count(e.excl) : 0;
	/* v2 keeps the patterns in the PRELUDE, which PBS makes only of
	 * UTF-8 (it refuses the backup otherwise). */
	if (r == 0 && payload && e.n_cli) {
		r = ds_pxar_excl_prelude(e.excl, e.n_cli, &prelude, &prelude_len);
		if (r == -EILSEQ) {
			ds_err("pxar: exclude patterns that are not UTF-8 cannot be stored in a "
			       "split archive");
			r = -EINVAL;
		}
	}
	if (r < 0)
		goto out;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		ds_err("pxar: %s: %s", dir, strerror(-r));
		goto out;
	}
	if (pxar_enc_virtual_fs(fd)) {
		ds_err("pxar: %s: refusing to back up a virtual file system", dir);
		r = -EINVAL;
		goto out;
	}
	e.all_fs = opts && opts->all_file_systems;
	e.devs = malloc(((opts ? opts->n_include_dev : 0) + 1) * sizeof(*e.devs));
	if (!e.devs) {
		r = -ENOMEM;
		goto out;
	}
	e.devs[e.n_devs++] = (uint64_t)st.st_dev;
	for (size_t i = 0; opts && i < opts->n_include_dev; i++)
		e.devs[e.n_devs++] = opts->include_dev[i];
	e.v2 = payload != NULL;
	e.cat = cat;
	e.meta.sink = meta;
	e.pay.sink = payload;
	e.meta.buf = malloc(OUT_BUF);
	e.pay.buf = e.v2 ? malloc(OUT_BUF) : NULL;
	e.copy = malloc(COPY_BUF);
	if (!e.meta.buf || (e.v2 && !e.pay.buf) || !e.copy) {
		r = -ENOMEM;
		goto out;
	}
	r = list_dir(fd, &l);
	if (r < 0) {
		ds_err("pxar: %s: cannot read directory: %s", dir, strerror(-r));
		goto out;
	}
	r = check_width(dir, &l);
	if (r < 0)
		goto out;
	r = pxar_enc_get_meta(fd, &st, dir, &attrs);
	if (r == 0 && e.v2)
		r = out_u64_item(&e.meta, PXAR_FORMAT_VERSION, 2);
	if (r == 0 && prelude)
		r = out_item(&e.meta, PXAR_PRELUDE, prelude, prelude_len, NULL, 0);
	if (r == 0 && e.v2)
		r = out_header(&e.pay, PXAR_PAYLOAD_START_MARKER, 0);
	if (r == 0 && cat)
		r = ds_pxar_catalog_begin_dir(cat, catalog_name, strlen(catalog_name));
	if (r == 0)
		r = write_dir(&e, fd, st.st_dev, &attrs, &l, 0);
	if (r == 0 && cat)
		r = ds_pxar_catalog_end_dir(cat);
	if (r == 0 && e.v2)
		r = out_header(&e.pay, PXAR_PAYLOAD_TAIL_MARKER, 0);
	if (r == 0)
		r = out_flush(&e.meta);
	if (r == 0 && e.v2)
		r = out_flush(&e.pay);
	if (r == 0 && ret_stats)
		*ret_stats = e.st;
out:
	if (fd >= 0)
		close(fd);
	listing_release(&l);
	dbuf_release(&attrs);
	dbuf_release(&e.path);
	dbuf_release(&e.mpath);
	ds_pxar_excl_free(e.excl);
	free(prelude);
	for (size_t i = 0; i < e.hl_cap; i++)
		free(e.hl[i].path);
	free(e.hl);
	free(e.devs);
	free(e.meta.buf);
	free(e.pay.buf);
	free(e.copy);
	return r;
}

int ds_pxar_encode_dir(const char *dir, const struct ds_pxar_sink *meta,
		       const struct ds_pxar_sink *payload, const struct ds_pxar_sink *catalog,
		       const char *catalog_name, struct ds_pxar_encode_stats *ret_stats)
{
	struct ds_pxar_catalog *c = NULL;
	int r;

	if (catalog) {
		if (!catalog_name)
			return -EINVAL;
		r = ds_pxar_catalog_new(catalog, &c);
		if (r < 0)
			return r;
	}
	r = ds_pxar_encode_dir_cat(dir, meta, payload, c, catalog_name, NULL, ret_stats);
	if (r == 0 && c)
		r = ds_pxar_catalog_finish(c);
	ds_pxar_catalog_free(c);
	return r;
}
