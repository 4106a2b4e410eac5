/* pxar archives in the view: `root.pxar/` as a directory tree.
 *
 * An archive is decoded through the shared chunk cache, so browsing it needs
 * chunk data: it holds a read handle for as long as it is open. When its
 * datastore starts refusing readers, vpxar_close_store releases that handle
 * at once (open files keep their own handles and keep working). */
#include "fs/mount/vfs_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/chunk_cache.h"
#include "store/datastore.h"
#include "store/hierarchy.h"
#include "store/index.h"
#include "store/log.h"

struct vstream {
	struct varchive *ar;
	struct ds_index *idx;
	atomic_size_t advised; /* the chunk last prefetched on advice, + 1 */
};

struct varchive {
	struct vfs *v;
	struct vstore *st;
	char *key;        /* "<snapshot relpath>/<name>": registry key and inode salt */
	uint32_t gen;     /* the snapshot's identity (vnode gen) when opened */
	char skey[VSTORE_KEY_LEN]; /* vstore_key of st when opened */
	unsigned refs;    /* nodes + registry; protected by v->lock */
	pthread_rwlock_t lock;
	/* protected by lock (write: close; read: every use) */
	bool dead;
	struct ds_reader *rd;
	const struct ds_crypt *crypt;
	struct vstream meta, payload;
	struct ds_pxar *px;
	struct varchive *next; /* registry, protected by v->lock */
	/* v1 archives: the snapshot and the archive's index file name, to
	 * find its hardlinks in the snapshot's catalog (archive_links). */
	char *snaprel, *meta_name;
	pthread_mutex_t links_lock;
	bool links_tried; /* protected by links_lock */
};

static int load_chunk(void *ctx, const struct ds_digest *d, size_t expect_len, uint8_t *buf,
		      size_t cap, size_t *ret_len)
{
	struct varchive *ar = ctx;

	return vfs_load_chunk(ar->v, ar->rd, ar->crypt, d, expect_len, buf, cap, ret_len);
}

/* The pxar decoder's view of a stream: chunks through the shared cache. */
static int stream_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct vstream *s = ctx;
	uint8_t *out = buf;

	if (off + len < off || off + len > ds_index_size(s->idx))
		return -EIO;
	while (len > 0) {
		ssize_t i = ds_index_find(s->idx, off);
		struct ds_index_chunk ch;
		struct ds_chunk_ref ref;
		size_t n;
		int r;

		if (i < 0)
			return -EIO;
		ds_index_chunk(s->idx, (size_t)i, &ch);
		r = ds_chunk_cache_get(s->ar->v->cache, &ch.digest, ch.end - ch.start, load_chunk,
				       s->ar, &ref);
		/* -ENOKEY too: an encrypted archive without the key is refused
		 * at open, so here it is an encrypted chunk where the index
		 * promises a plain one. */
		if (r < 0)
			return -EIO;
		n = ch.end - off < len ? (size_t)(ch.end - off) : len;
		memcpy(out, ref.data + (off - ch.start), n);
		ds_chunk_cache_put(s->ar->v->cache, &ref);
		out += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* A prefetch's load: the archive may have been closed (a refusal) since the
 * advice; its read handle is then gone. */
static int prefetch_load(void *ctx, const struct ds_digest *d, size_t expect_len, uint8_t *buf,
			 size_t cap, size_t *ret_len)
{
	struct varchive *ar = ctx;
	int r = -ESTALE;

	pthread_rwlock_rdlock(&ar->lock);
	if (!ar->dead)
		r = vfs_load_chunk(ar->v, ar->rd, ar->crypt, d, expect_len, buf, cap, ret_len);
	pthread_rwlock_unlock(&ar->lock);
	return r;
}

static void prefetch_done(void *ctx)
{
	varchive_unref(ctx);
}

/* The decoder will read at off soon (a listing going through a directory in
 * archive order): load its chunk on a cache worker meanwhile, so listing a
 * directory whose entries lie between file contents (v1) keeps both cores
 * busy. Called under the archive's read lock. */
static void stream_advise(void *ctx, uint64_t off)
{
	struct vstream *s = ctx;
	struct ds_index_chunk ch;
	ssize_t i = off < ds_index_size(s->idx) ? ds_index_find(s->idx, off) : -1;

	if (i < 0 || atomic_exchange(&s->advised, (size_t)i + 1) == (size_t)i + 1)
		return;
	ds_index_chunk(s->idx, (size_t)i, &ch);
	varchive_ref(s->ar);
	if (ds_chunk_cache_prefetch(s->ar->v->cache, &ch.digest, ch.end - ch.start, prefetch_load,
				    s->ar, prefetch_done) != 0)
		varchive_unref(s->ar); /* cached, loading, or the queue is full */
}

int vpxar_files(int snapfd, const char *name, char *meta, char *payload, size_t len)
{
	size_t nl = strlen(name);
	struct stat st;

	if (nl <= 5 || strcmp(name + nl - 5, ".pxar") != 0)
		return -ENOENT;
	if (ds_path_fmt(meta, len, "%s.didx", name) == 0 && fstatat(snapfd, meta, &st, 0) == 0 &&
	    S_ISREG(st.st_mode)) {
		payload[0] = '\0';
		return 0;
	}
	if (ds_path_fmt(meta, len, "%.*s.mpxar.didx", (int)(nl - 5), name) < 0 ||
	    ds_path_fmt(payload, len, "%.*s.ppxar.didx", (int)(nl - 5), name) < 0)
		return -ENAMETOOLONG;
	if (fstatat(snapfd, meta, &st, 0) == 0 && S_ISREG(st.st_mode) &&
	    fstatat(snapfd, payload, &st, 0) == 0 && S_ISREG(st.st_mode))
		return 0;
	return -ENOENT;
}

void varchive_ref(struct varchive *ar)
{
	pthread_mutex_lock(&ar->v->lock);
	ar->refs++;
	pthread_mutex_unlock(&ar->v->lock);
}

/* Releases what reads the datastore. Write lock held. */
static void archive_close(struct varchive *ar)
{
	ds_pxar_free(ar->px);
	ds_index_free(ar->meta.idx);
	ds_index_free(ar->payload.idx);
	ds_reader_release(ar->rd);
	ar->px = NULL;
	ar->meta.idx = ar->payload.idx = NULL;
	ar->rd = NULL;
	ar->dead = true;
}

void varchive_unref(struct varchive *ar)
{
	struct vfs *v;
	bool last;

	if (!ar)
		return;
	v = ar->v;
	pthread_mutex_lock(&v->lock);
	last = --ar->refs == 0;
	pthread_mutex_unlock(&v->lock);
	if (!last)
		return;
	pthread_rwlock_wrlock(&ar->lock);
	if (!ar->dead)
		archive_close(ar);
	pthread_rwlock_unlock(&ar->lock);
	pthread_rwlock_destroy(&ar->lock);
	pthread_mutex_destroy(&ar->links_lock);
	free(ar->snaprel);
	free(ar->meta_name);
	free(ar->key);
	free(ar);
}

void vpxar_close_store(struct vfs *v, struct vstore *s)
{
	struct varchive *list = NULL;

	/* Take the store's archives out of the registry, then close them. */
	pthread_mutex_lock(&v->lock);
	for (struct varchive **pp = &v->archives; *pp;) {
		struct varchive *ar = *pp;

		if (!s || ar->st == s) {
			*pp = ar->next;
			ar->next = list;
			list = ar;
		} else {
			pp = &ar->next;
		}
	}
	pthread_mutex_unlock(&v->lock);
	while (list) {
		struct varchive *ar = list;

		list = ar->next;
		pthread_rwlock_wrlock(&ar->lock);
		archive_close(ar);
		pthread_rwlock_unlock(&ar->lock);
		varchive_unref(ar); /* the registry's reference */
	}
}

/* Opens an archive's indexes and decoder. */
static int archive_open(struct vfs *v, struct varchive *ar, const char *snaprel, const char *meta,
			const char *payload, enum ds_crypt_mode mode,
			const struct ds_manifest_file *mf_meta, const struct ds_manifest_file *mf_payload)
{
	struct ds_pxar_source ms, ps;
	int fd, r;

	r = ds_reader_acquire(ar->st->ds, &ar->rd);
	if (r < 0)
		return r;
	if (mode == DS_CRYPT_ENCRYPT) {
		if (!v->opt.crypt) {
			ds_err("%s: encrypted, mount with -o keyfile= to read it", ar->key);
			return -ENOKEY;
		}
		ar->crypt = v->opt.crypt;
	}
	fd = ds_open_snapshot(ds_reader_lookup(ar->rd), snaprel);
	if (fd < 0)
		return fd;
	r = ds_index_open(fd, meta, &ar->meta.idx);
	if (r == 0 && mf_meta)
		r = vfs_index_check(ar->meta.idx, mf_meta, ar->key);
	if (r == 0 && payload[0])
		r = ds_index_open(fd, payload, &ar->payload.idx);
	if (r == 0 && payload[0] && mf_payload)
		r = vfs_index_check(ar->payload.idx, mf_payload, ar->key);
	close(fd);
	if (r < 0)
		return r == -EBADMSG ? -EIO : r;
	ar->meta.ar = ar->payload.ar = ar;
	ms = (struct ds_pxar_source){ stream_pread, ds_index_size(ar->meta.idx), &ar->meta,
				      stream_advise };
	if (ar->payload.idx)
		ps = (struct ds_pxar_source){ stream_pread, ds_index_size(ar->payload.idx),
					      &ar->payload, NULL };
	r = ds_pxar_open(&ms, ar->payload.idx ? &ps : NULL, &ar->px);
	if (r < 0)
		ds_err("%s: cannot open pxar archive: %s", ar->key, strerror(-r));
	return r == -EINVAL || r == -EBADMSG ? -EIO : r;
}

/* Finds or opens the archive named name of snapshot snaprel in store st. */
static int archive_get_at(struct vfs *v, struct vstore *st, const char *snaprel,
			  const char *name, uint32_t gen, struct varchive **ret)
{
	struct varchive *stale = NULL, *other;
	struct ds_lookup *lk = NULL;
	struct ds_manifest *m = NULL;
	struct ds_manifest_file mf, mf_meta, mf_payload;
	bool have_meta = false, have_payload = false;
	char key[2400], meta[300], payload[300];
	enum ds_crypt_mode mode = DS_CRYPT_NONE;
	struct varchive *ar = NULL;
	int fd, r;

	if ((r = ds_path_fmt(key, sizeof(key), "%s/%s", snaprel, name)) < 0)
		return r;
	pthread_mutex_lock(&v->lock);
	for (ar = v->archives; ar; ar = ar->next)
		if (ar->st == st && ar->gen == gen && strcmp(ar->key, key) == 0) {
			ar->refs++;
			pthread_mutex_unlock(&v->lock);
			*ret = ar;
			return 0;
		}
	pthread_mutex_unlock(&v->lock);

	r = ds_lookup_acquire(st->ds, &lk);
	if (r < 0)
		return r;
	fd = ds_open_snapshot(lk, snaprel);
	if (fd < 0) {
		ds_lookup_release(lk);
		return fd;
	}
	/* Made again under the same time since the caller saw it (gen): its
	 * archive is another one. */
	if (vfs_snapshot_gen(fd) != gen) {
		close(fd);
		ds_lookup_release(lk);
		return -ESTALE;
	}
	/* The old snapshot's archive, if open, is closed (its nodes answer
	 * ESTALE) and leaves the registry, so that it holds nothing of the
	 * store. */
	pthread_mutex_lock(&v->lock);
	for (struct varchive **pp = &v->archives; *pp; pp = &(*pp)->next)
		if ((*pp)->st == st && (*pp)->gen != gen && strcmp((*pp)->key, key) == 0) {
			stale = *pp;
			*pp = stale->next;
			break;
		}
	pthread_mutex_unlock(&v->lock);
	if (stale) {
		pthread_rwlock_wrlock(&stale->lock);
		if (!stale->dead)
			archive_close(stale);
		pthread_rwlock_unlock(&stale->lock);
		varchive_unref(stale); /* the registry's reference */
	}
	r = vpxar_files(fd, name, meta, payload, sizeof(meta));
	if (r == 0 && ds_manifest_load(fd, &m) == 0 && ds_manifest_find(m, meta, &mf) == 0) {
		mode = mf.crypt_mode;
		mf_meta = mf;
		have_meta = true;
		have_payload = payload[0] && ds_manifest_find(m, payload, &mf_payload) == 0;
		r = vfs_manifest_check(v, m, key);
		if (r == 0 && mode == DS_CRYPT_ENCRYPT) {
			char *fp = vfs_other_key(v, m);

			if (fp)
				r = vfs_key_rejected(v, key, fp);
			free(fp);
		}
	}
	/* Only size and csum are used past here, not the borrowed names. */
	ds_manifest_free(m);
	close(fd);
	ds_lookup_release(lk);
	if (r < 0)
		return r;

	ar = calloc(1, sizeof(*ar));
	if (!ar || !(ar->key = strdup(key)) ||
	    (!payload[0] && (!(ar->snaprel = strdup(snaprel)) || !(ar->meta_name = strdup(meta))))) {
		if (ar) {
			free(ar->snaprel);
			free(ar->key);
		}
		free(ar);
		return -ENOMEM;
	}
	ar->v = v;
	ar->st = st;
	ar->gen = gen;
	vstore_key(st, ar->skey);
	ar->refs = 2; /* the caller's and the registry's */
	pthread_rwlock_init(&ar->lock, NULL);
	pthread_mutex_init(&ar->links_lock, NULL);
	r = archive_open(v, ar, snaprel, meta, payload, mode, have_meta ? &mf_meta : NULL,
			 have_payload ? &mf_payload : NULL);
	if (r < 0) {
		ar->refs = 1;
		varchive_unref(ar);
		return r;
	}
	/* Another thread may have opened it meanwhile (readers inside an
	 * archive a refusal closed come back at once): one copy only, so
	 * that a node's id stays one per entry. */
	pthread_mutex_lock(&v->lock);
	for (other = v->archives; other; other = other->next)
		if (other->st == st && other->gen == gen && strcmp(other->key, key) == 0) {
			other->refs++;
			break;
		}
	if (!other) {
		ar->next = v->archives;
		v->archives = ar;
	}
	pthread_mutex_unlock(&v->lock);
	if (other) {
		ar->refs = 1;
		varchive_unref(ar);
		*ret = other;
		return 0;
	}
	ds_debug("%s: archive opened", ar->key);
	*ret = ar;
	return 0;
}

/* Finds or opens the archive of snapshot node snap named name. */
static int archive_get(struct vfs *v, const struct vnode *snap, const char *name,
		       struct varchive **ret)
{
	char snaprel[2048];
	int r;

	r = vfs_node_snaprel(snap, snaprel, sizeof(snaprel));
	return r < 0 ? r : archive_get_at(v, snap->st, snaprel, name, snap->gen, ret);
}

/* Enter/leave an archive for one operation: a closed archive answers with
 * its datastore's refusal. */
static int ar_enter(struct varchive *ar)
{
	int r;

	if (!ar)
		return -EIO;
	pthread_rwlock_rdlock(&ar->lock);
	if (!ar->dead)
		return 0;
	pthread_rwlock_unlock(&ar->lock);
	r = ds_datastore_read_refusal(ar->st->ds);
	return r < 0 ? r : -ESTALE;
}

static void ar_leave(struct varchive *ar)
{
	pthread_rwlock_unlock(&ar->lock);
}

static uint64_t archive_ino(const char *store, const struct varchive *a, uint64_t entry_off)
{
	/* SHA-256 of "<store>\0<archive key>\0<entry offset, u64 LE>". */
	const char *ar = a->key;
	size_t sl = strlen(store) + 1, al = strlen(ar) + 1;
	uint8_t key[4096 + 64];

	if (sl + al + 8 > sizeof(key))
		abort(); /* both are bounded by the path buffers they come from */
	memcpy(key, store, sl);
	memcpy(key + sl, ar, al);
	ds_put_le64(key + sl + al, entry_off);
	return vfs_hash_ino(key, sl + al + 8);
}

uint64_t vpxar_ino(const struct vnode *archive_node, uint64_t entry_off)
{
	return archive_ino(archive_node->ar->skey, archive_node->ar, entry_off);
}

#define CATALOG_NAME "catalog.pcat1.didx"

/* A v1 archive's hardlinks from the snapshot's catalog, before the first
 * link count is needed: otherwise ds_pxar_nlink scans every item header
 * of the archive, which in a v1 archive means loading nearly every chunk
 * of it (a restore then reads the archive three times: the scan, the
 * walk, the copy). Once per archive; any failure leaves the scan to do it
 * (a catalog not in the manifest, or not matching it, or of the snapshot
 * made again under the same time, is not used). Archive entered. */
static void archive_links(struct varchive *ar)
{
	struct ds_manifest_file mf;
	struct ds_manifest *m = NULL;
	struct ds_pxar_source src;
	struct vstream cat = { .ar = ar };
	int fd, r;

	if (!ar->meta_name)
		return;
	pthread_mutex_lock(&ar->links_lock);
	if (ar->links_tried) {
		pthread_mutex_unlock(&ar->links_lock);
		return;
	}
	ar->links_tried = true;
	fd = ds_open_snapshot(ds_reader_lookup(ar->rd), ar->snaprel);
	r = fd;
	if (fd >= 0) {
		/* A snapshot made again since the archive was opened has
		 * another catalog, whose hardlinks may well resolve in this
		 * archive too, to wrong counts. */
		r = vfs_snapshot_gen(fd) == ar->gen ? 0 : -ESTALE;
		if (r == 0)
			r = ds_manifest_load(fd, &m);
		if (r == 0)
			r = ds_manifest_find(m, CATALOG_NAME, &mf);
		if (r == 0)
			r = ds_index_open(fd, CATALOG_NAME, &cat.idx);
		if (r == 0) {
			char what[2100];

			snprintf(what, sizeof(what), "%s/%s", ar->snaprel, CATALOG_NAME);
			r = vfs_index_check(cat.idx, &mf, what);
		}
		close(fd);
	}
	if (r == 0) {
		src = (struct ds_pxar_source){ stream_pread, ds_index_size(cat.idx), &cat, NULL };
		r = ds_pxar_links_from_catalog(ar->px, &src, ar->meta_name);
	}
	if (r == 0)
		ds_debug("%s: hardlinks from the catalog", ar->key);
	else
		ds_debug("%s: hardlinks by a scan of the archive (catalog: %s)", ar->key,
			 strerror(-r));
	ds_index_free(cat.idx);
	ds_manifest_free(m);
	pthread_mutex_unlock(&ar->links_lock);
}

/* Entry attributes into the node. Archive entered. */
static void set_entry(struct varchive *ar, struct vnode *n, const struct ds_pxar_entry *e)
{
	n->pe = *e;
	n->size = S_ISREG(e->mode) || S_ISLNK(e->mode) ? e->size : 0;
	n->mtime = e->mtime_sec;
	n->nlink = 1;
	if (S_ISDIR(e->mode)) {
		n->nlink = 2;
	} else if (S_ISREG(e->mode)) {
		int r;

		archive_links(ar);
		r = ds_pxar_nlink(ar->px, e);

		n->nlink = r > 0 ? (uint32_t)r : 1;
	}
}

int vpxar_lookup_root(struct vfs *v, const struct vnode *snap, const char *name, struct vnode *n)
{
	struct ds_pxar_entry root;
	struct varchive *ar = NULL;
	int r;

	r = archive_get(v, snap, name, &ar);
	if (r < 0 && r != -ENOENT && r != -ENOMEM) {
		/* Listed, but unreadable: a directory whose use fails with r. */
		n->ar = NULL;
		n->ar_err = r;
		n->pe.mode = S_IFDIR | 0555;
		n->pe.mtime_sec = snap->mtime; /* what getattr shows of a pxar node */
		n->nlink = 2;
		n->mtime = snap->mtime;
		return 0;
	}
	if (r < 0)
		return r;
	n->ar = ar;
	r = ar_enter(ar);
	if (r < 0)
		return r; /* the node (and with it ar) is freed by the caller */
	ds_pxar_root(ar->px, &root);
	set_entry(ar, n, &root);
	ar_leave(ar);
	return 0;
}

/* The node's archive (a reference: varchive_unref it) and entry, read
 * together under v->lock: a lookup moves a node whose archive was closed to
 * the reopened one (vfs_node_publish) while other threads use the node. */
static int node_archive(struct vfs *v, const struct vnode *p, struct varchive **ret_ar,
			struct ds_pxar_entry *ret_pe)
{
	struct varchive *ar, *nar;
	char snaprel[2400];
	const char *slash;
	bool dead;
	int r = 0;

	pthread_mutex_lock(&v->lock);
	ar = p->ar;
	if (ar) {
		ar->refs++;
		*ret_pe = p->pe;
	} else {
		r = p->ar_err ? p->ar_err : -EIO;
	}
	pthread_mutex_unlock(&v->lock);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&ar->lock);
	dead = ar->dead;
	pthread_rwlock_unlock(&ar->lock);
	/* Closed by a refusal that is over (or that did not refuse readers):
	 * the node moves to the archive opened again, as a lookup by path
	 * would do (vfs_node_publish). A process whose working directory or
	 * open directory is inside the archive looks up nothing above it. */
	slash = strrchr(ar->key, '/');
	if (dead && slash && ds_datastore_read_refusal(ar->st->ds) == 0 &&
	    ds_path_fmt(snaprel, sizeof(snaprel), "%.*s", (int)(slash - ar->key), ar->key) == 0 &&
	    archive_get_at(v, ar->st, snaprel, slash + 1, ar->gen, &nar) == 0) {
		bool moved = false;

		pthread_mutex_lock(&v->lock);
		if (p->ar == ar) {
			/* The node's reference moves from ar to nar. */
			((struct vnode *)p)->ar = nar;
			nar->refs++;
			moved = true;
		}
		pthread_mutex_unlock(&v->lock);
		if (moved)
			varchive_unref(ar);
		varchive_unref(ar); /* ours; nar's from archive_get_at is ours now */
		ar = nar;
	}
	*ret_ar = ar;
	return 0;
}

/* vpxar_lookup, and vpxar_lookup_child when d is not NULL. */
static int lookup_in(struct vfs *v, const struct vnode *p, const char *name,
		     const struct vfs_dir *d, size_t i, struct vnode *n)
{
	struct ds_pxar_entry pe = { 0 }, e;
	struct varchive *ar = NULL;
	int r;

	if ((r = node_archive(v, p, &ar, &pe)) < 0)
		return r;
	if (!S_ISDIR(pe.mode))
		r = -ENOTDIR;
	else if ((r = ar_enter(ar)) == 0) {
		if (d) {
			char got[DS_PXAR_NAME_MAX + 1];
			size_t len;

			/* from 0: the advice of one child ahead, as the
			 * listing's own decoding gives. */
			r = ds_pxar_dir_child(ar->px, d->pxd, i, 0, got, &len, &e);
			if (r == 0 && (len != strlen(name) || memcmp(got, name, len) != 0))
				r = -EIO; /* not the child the listing decoded */
		} else {
			r = ds_pxar_lookup(ar->px, &pe, name, strlen(name), &e);
		}
		if (r == 0) {
			n->ar = ar; /* takes our reference */
			set_entry(ar, n, &e);
			n->ino = vpxar_ino(n, e.entry_off);
		}
		ar_leave(ar);
	}
	if (r < 0)
		varchive_unref(ar);
	return r;
}

int vpxar_lookup(struct vfs *v, const struct vnode *p, const char *name, struct vnode *n)
{
	return lookup_in(v, p, name, NULL, 0, n);
}

int vpxar_lookup_child(struct vfs *v, const struct vnode *p, const struct vfs_dir *d, size_t i,
		       struct vnode *n)
{
	return lookup_in(v, p, d->ents[i].name, d, i, n);
}

int vpxar_dir_fill(struct vfs *v, const struct vnode *p, struct vfs_dir *d, size_t upto)
{
	char name[DS_PXAR_NAME_MAX + 1];
	struct ds_pxar_entry pe = { 0 }, e;
	struct varchive *ar = NULL;
	size_t len;
	int r;

	if ((r = node_archive(v, p, &ar, &pe)) < 0)
		return r;
	if ((r = ar_enter(ar)) < 0) {
		varchive_unref(ar);
		return r;
	}
	if (!d->pxd) {
		r = ds_pxar_dir_open(ar->px, &pe, &d->pxd);
		if (r == 0 && ds_pxar_dir_count(d->pxd) > 0) {
			d->ents = calloc(ds_pxar_dir_count(d->pxd), sizeof(*d->ents));
			if (!d->ents) {
				ds_pxar_dir_free(d->pxd);
				d->pxd = NULL;
				r = -ENOMEM;
			}
		}
		if (r == 0)
			d->n = ds_pxar_dir_count(d->pxd);
	}
	/* Entries in order from the first: one run of advice (from 0). */
	while (r == 0 && d->filled < upto && d->filled < d->n) {
		struct vfs_dirent *ne = &d->ents[d->filled];

		r = ds_pxar_dir_child(ar->px, d->pxd, d->filled, 0, name, &len, &e);
		if (r == 0 && !(ne->name = strndup(name, len)))
			r = -ENOMEM;
		if (r == 0) {
			ne->ino = archive_ino(ar->skey, ar, e.entry_off);
			ne->type = e.mode & S_IFMT;
			/* pxar takes names up to 4 KiB, Linux 255 bytes: such
			 * an entry (only a crafted archive has one) cannot be
			 * looked up, and past 1 KiB the kernel fails the whole
			 * listing (EIO). It is left out. */
			ne->hidden = len > NAME_MAX;
			if (ne->hidden)
				ds_warn("%s: an entry with a name of %zu bytes (Linux takes %d) is "
					"not listed", p->path, len, NAME_MAX);
			d->filled++;
		}
	}
	ar_leave(ar);
	varchive_unref(ar);
	return r;
}

int vpxar_check_dir(struct vfs *v, const struct vnode *p)
{
	struct ds_pxar_entry pe = { 0 };
	struct varchive *ar = NULL;
	size_t n;
	int r;

	if ((r = node_archive(v, p, &ar, &pe)) < 0)
		return r;
	if ((r = ar_enter(ar)) == 0) {
		r = ds_pxar_child_count(ar->px, &pe, &n);
		ar_leave(ar);
	}
	varchive_unref(ar);
	return r < 0 ? r : 0;
}

int vpxar_readlink(struct vfs *v, const struct vnode *n, char *buf, size_t len)
{
	struct ds_pxar_entry pe = { 0 };
	struct varchive *ar = NULL;
	int r;

	if ((r = node_archive(v, n, &ar, &pe)) < 0)
		return r;
	if ((r = ar_enter(ar)) == 0) {
		r = ds_pxar_readlink(ar->px, &pe, buf, len);
		ar_leave(ar);
	}
	if (r == -ERANGE) {
		/* pxar takes 4096 bytes, the kernel a page less one; only a
		 * crafted archive has a target longer than Linux's symlink(2)
		 * makes. */
		ds_warn("%s: symlink target of %llu bytes is longer than the kernel takes "
			"(%zu): readlink fails with ENAMETOOLONG",
			n->path, (unsigned long long)pe.size, len - 1);
		r = -ENAMETOOLONG;
	}
	varchive_unref(ar);
	return r < 0 ? r : 0;
}

int vpxar_open_content(struct vfs *v, const struct vnode *n, const struct ds_lookup *lk,
		       struct ds_index **ret_idx, uint64_t *ret_base, uint64_t *ret_size)
{
	char snaprel[2048], meta[300], payload[300];
	struct ds_pxar_entry pe = { 0 };
	struct varchive *ar = NULL;
	const char *slash;
	int fd, r;

	if ((r = node_archive(v, n, &ar, &pe)) < 0)
		return r;
	/* The open file gets its own index mapping (and the caller's read
	 * handle), so it keeps working when the archive is closed. */
	slash = strrchr(ar->key, '/');
	if (!S_ISREG(pe.mode)) {
		r = S_ISDIR(pe.mode) ? -EISDIR : -EINVAL;
	} else if ((r = ar_enter(ar)) == 0) {
		/* Reads go to the index directly, past the decoder: in a split
		 * archive, the PAYLOAD header is what vouches for the offset
		 * of a PAYLOAD_REF, so it is checked here, once per open. A
		 * damaged chunk under the header does not fail the open: the
		 * reads of that chunk fail, and only those (corruption.sh). */
		r = ds_pxar_check_content(ar->px, &pe, true);
		ar_leave(ar);
	}
	if (r == 0)
		r = vfs_node_snaprel(n, snaprel, sizeof(snaprel));
	fd = r < 0 ? r : ds_open_snapshot(lk, snaprel);
	if (fd >= 0) {
		/* The entry is the archive's, the index is opened by name: a
		 * snapshot made again since has another one, in which the
		 * entry's offset means nothing. */
		r = vfs_snapshot_gen(fd) == ar->gen ? 0 : -ESTALE;
		if (r == 0)
			r = vpxar_files(fd, slash + 1, meta, payload, sizeof(meta));
		if (r == 0)
			r = ds_index_open(fd, pe.data_in_payload ? payload : meta, ret_idx);
		close(fd);
	} else {
		r = fd;
	}
	varchive_unref(ar);
	if (r < 0)
		return r == -EBADMSG ? -EIO : r;
	if (pe.data_off + pe.size > ds_index_size(*ret_idx)) {
		ds_index_free(*ret_idx);
		return -EIO;
	}
	*ret_base = pe.data_off;
	*ret_size = pe.size;
	return 0;
}

int vpxar_xattrs(struct vfs *v, const struct vnode *n, ds_pxar_xattr_fn fn, void *ud)
{
	struct ds_pxar_entry pe = { 0 };
	struct varchive *ar = NULL;
	int r;

	if ((r = node_archive(v, n, &ar, &pe)) < 0)
		return r;
	if ((r = ar_enter(ar)) == 0) {
		r = ds_pxar_xattrs(ar->px, &pe, fn, ud);
		ar_leave(ar);
	}
	varchive_unref(ar);
	return r;
}
