/* Open files of the view: images and streams read chunk by chunk through
 * the shared chunk cache, small files held in memory. */
#include "fs/mount/vfs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/chunk_cache.h"
#include "cache/verified_set.h"
#include "store/blob.h"
#include "store/datastore.h"
#include "store/hierarchy.h"
#include "store/index.h"
#include "store/locks.h"
#include "store/log.h"

/* Chunks read ahead of a sequential reader. With 2, the two decoding
 * workers sat idle between a reply and the next prefetch; 4 (16 MiB of
 * 4 MiB chunks) took a cat of the bench image from ~930 to ~1080 MiB/s
 * (medians of 5), 6 gave no more. */
#define PREFETCH_DEPTH 4

struct vfile {
	atomic_uint refs; /* the open file + queued prefetches */
	struct vfs *v;
	struct ds_reader *rd;
	const struct ds_crypt *crypt; /* for encrypted archives */
	struct ds_index *idx;         /* images, streams, pxar file contents */
	uint64_t base, size;          /* the file is [base, base + size) of idx */
	uint8_t *data;                /* small files, in memory */
	size_t len;
	bool image;
	struct ds_digest zero; /* image: digest of a full zero chunk */
	uint64_t zero_len;     /* image: its length (the chunk size); else 0 */
	struct ds_digest zero_tail; /* image: of a zero chunk as long as its */
	uint64_t zero_tail_len;     /* short last chunk; else 0 */
	char name[300];        /* for log lines */
	_Atomic uint64_t next_off; /* where a sequential reader goes next */
	_Atomic uint64_t seq_chunk; /* 1 + the chunk its last read began in; 0: none */
	struct vwopen *wo;     /* a file being written (vwrite.c), or NULL */
	bool append;           /* wo opened with O_APPEND */
	_Atomic bool closed;   /* wo: a FLUSH (close(2)) came after its last write */
	struct ds_lock *lock;  /* shared snapshot lock, as PBS readers hold */
	struct vfile *fprev, *fnext; /* v->files, under v->lock */
};

/* Every open file is on v->files until it is freed. */
static void vfile_track(struct vfs *v, struct vfile *f)
{
	pthread_mutex_lock(&v->lock);
	f->fprev = NULL;
	f->fnext = v->files;
	if (v->files)
		v->files->fprev = f;
	v->files = f;
	pthread_mutex_unlock(&v->lock);
}

/* v->lock held. */
static void vfile_untrack_locked(struct vfs *v, struct vfile *f)
{
	if (f->fprev)
		f->fprev->fnext = f->fnext;
	else if (v->files == f)
		v->files = f->fnext;
	if (f->fnext)
		f->fnext->fprev = f->fprev;
	f->fprev = f->fnext = NULL;
}

static void vfile_destroy(struct vfile *f)
{
	if (f->wo)
		vwo_release(f->v, f->wo); /* the last handle commits the archive */
	ds_index_free(f->idx);
	free(f->data);
	ds_lock_release(f->lock);
	ds_reader_release(f->rd);
	free(f);
}

static void vfile_unref(struct vfile *f)
{
	if (atomic_fetch_sub(&f->refs, 1) != 1)
		return;
	pthread_mutex_lock(&f->v->lock);
	vfile_untrack_locked(f->v, f);
	pthread_mutex_unlock(&f->v->lock);
	vfile_destroy(f);
}

/* Takes the first file left open off v->files (with closed_only, the
 * first one written through the mount and closed since its last write),
 * or NULL. */
static struct vfile *untrack_first(struct vfs *v, bool closed_only)
{
	struct vfile *f;

	pthread_mutex_lock(&v->lock);
	for (f = v->files; f && closed_only && !(f->wo && atomic_load(&f->closed)); f = f->fnext)
		;
	if (f)
		vfile_untrack_locked(v, f);
	pthread_mutex_unlock(&v->lock);
	return f;
}

void vfile_release_closed(struct vfs *v)
{
	struct vfile *f;
	size_t n = 0;

	/* Files being written are never prefetched: nothing else holds f. */
	for (; (f = untrack_first(v, true)); n++)
		vfile_destroy(f); /* the last handle commits the archive */
	if (n)
		ds_info("%zu file(s) closed but not released by the kernel before the unmount: "
			"released now",
			n);
}

void vfile_shutdown(struct vfs *v)
{
	struct vfile *f;
	size_t n = 0;

	for (; (f = untrack_first(v, false)); n++) {
		/* vwrite_shutdown has abandoned and freed what it was
		 * writing: nothing to commit. */
		f->wo = NULL;
		vfile_destroy(f);
	}
	if (n)
		ds_warn("%zu file(s) still open at unmount: released", n);
}

static int load_chunk(void *ctx, const struct ds_digest *d, size_t expect_len, uint8_t *buf,
		      size_t cap, size_t *ret_len)
{
	struct vfile *f = ctx;

	return vfs_load_chunk(f->v, f->rd, f->crypt, d, expect_len, buf, cap, ret_len);
}

int vfile_load_part(void *ctx, const struct ds_digest *d, size_t expect_len, uint8_t *buf,
		    size_t cap, struct ds_chunk_part *p)
{
	struct vfile *f = ctx;

	return vfs_load_chunk_part(f->v, f->rd, f->crypt, d, expect_len, buf, cap, p);
}

/* What vfs_open goes by, read together under v->lock: a lookup can give
 * the node the kernel knows another identity meanwhile (vfs_node_publish:
 * a file written where an abandoned one was; node_settle: a written file
 * committed), and frees the file name it had. */
struct vopen_id {
	enum vkind kind;
	enum ds_crypt_mode crypt_mode;
	char *other_key; /* a copy of n->other_key, or NULL */
	bool pxar_dir;
	bool writing; /* n->wo was set */
	char *file;   /* a copy of n->file, or NULL */
	uint32_t gen; /* n->gen */
};

/* A snapshot's file open by a node of the same snapshot: not of one made
 * again under the same time since the kernel last looked the node up
 * (then the kernel's inode is the old one's, pages included). */
static int same_snapshot(int snapfd, const struct vopen_id *id)
{
	return vfs_snapshot_gen(snapfd) == id->gen ? 0 : -ESTALE;
}

/* Small files: owner, notes, decoded blobs. */
static int open_small(struct vfs *v, const struct vnode *n, const struct vopen_id *id,
		      const struct ds_lookup *lk, struct vfile *f)
{
	char rel[2048];
	uint8_t *raw;
	size_t raw_len;
	int fd, r;

	if (id->kind == VK_PROTECTED)
		return 0;
	if (id->kind == VK_OWNER || id->kind == VK_GNOTES)
		r = ds_group_relpath(n->ns, ds_backup_type_name(n->type), n->id, rel, sizeof(rel));
	else
		r = vfs_node_snaprel(n, rel, sizeof(rel));
	if (r < 0)
		return r;
	fd = ds_lookup_open_dir(lk, rel);
	if (fd < 0)
		return fd;
	if (id->kind == VK_OWNER || id->kind == VK_GNOTES) {
		r = ds_read_file_at(fd, n->name, 1 << 20, &f->data, &f->len);
	} else if (id->kind == VK_SNOTES) {
		struct ds_manifest *m;

		r = ds_manifest_load(fd, &m);
		if (r == 0) {
			const char *notes = ds_manifest_notes(m);

			f->data = (uint8_t *)strdup(notes ? notes : "");
			f->len = notes ? strlen(notes) : 0;
			r = f->data ? 0 : -ENOMEM;
			ds_manifest_free(m);
		} else if (r == -ENOENT) {
			/* Unfinished: notes waiting for the first commit. */
			char *pending;

			r = vwrite_pending_notes(v, n->st, rel, &pending);
			if (r == 0 && !pending)
				r = -ENOENT;
			if (r == 0) {
				f->data = (uint8_t *)pending;
				f->len = strlen(pending);
			}
		}
	} else {
		r = id->file ? same_snapshot(fd, id) : -ENOENT;
		if (r == 0)
			r = ds_read_file_at(fd, id->file, DS_MAX_BLOB_SIZE + DS_BLOB_ENC_HEADER_LEN,
					    &raw, &raw_len);
		if (r == 0) {
			int type = ds_blob_type(raw, raw_len);

			r = ds_blob_decode(raw, raw_len,
					   type >= 0 && ds_blob_type_encrypted(type) ? v->opt.crypt
										       : NULL,
					   DS_MAX_BLOB_SIZE, &f->data, &f->len);
			free(raw);
			if (r == -EBADMSG || r == -EFBIG) {
				ds_err("%s/%s: damaged blob", rel, id->file);
				r = -EIO;
			}
		}
	}
	close(fd);
	return r;
}

static int open_index(struct vfs *v, const struct vnode *n, const struct vopen_id *id,
		      const struct ds_lookup *lk, struct vfile *f)
{
	char rel[2048];
	int fd, r;

	r = vfs_node_snaprel(n, rel, sizeof(rel));
	if (r < 0)
		return r;
	fd = ds_lookup_open_dir(lk, rel);
	if (fd < 0)
		return fd;
	r = id->file ? same_snapshot(fd, id) : -ENOENT;
	if (r == 0)
		r = ds_index_open(fd, id->file, &f->idx);
	close(fd);
	if (r == -EBADMSG)
		return -EIO;
	if (r < 0)
		return r;
	f->size = ds_index_size(f->idx);
	f->image = id->kind == VK_IMAGE;
	if (f->image) {
		uint64_t cs = ds_index_chunk_size(f->idx);

		if (vfs_zero_chunk(v, f->crypt, cs, &f->zero))
			f->zero_len = cs;
		f->zero_tail_len = vfs_zero_tail(v, f->crypt, f->idx, &f->zero_tail);
	}
	return 0;
}

int vfile_new_writing(struct vfs *v, struct vwopen *wo, bool append, struct vfile **ret)
{
	struct vfile *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	atomic_init(&f->refs, 1);
	f->v = v;
	f->wo = wo;
	f->append = append;
	vfile_track(v, f);
	*ret = f;
	return 0;
}

struct vwopen *vfile_writing(const struct vfile *f)
{
	return f->wo;
}

/* Opens of files being written (any access), and of the files of a
 * snapshot that change: notes and .protected. -EAGAIN: open as usual. */
static int open_writing(struct vfs *v, struct vnode *n, const struct vopen_id *id, int flags,
			struct vfile **ret)
{
	bool wr = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
	struct vwopen *wo = NULL;
	int r;

	if (id->kind == VK_WFILE || id->writing) {
		/* Being written: every handle shares the writer's state. */
		r = vwo_join(v, n, &wo);
		if (r == -EAGAIN && wr && id->kind == VK_SNOTES)
			r = vwo_notes(v, n, flags & O_TRUNC, &wo);
		else if (r == -EAGAIN && wr)
			return -EROFS; /* committed: immutable from now on */
		else if (r == -EAGAIN)
			return -EAGAIN;
		else if (r == 0 && wr && (flags & O_TRUNC))
			r = vwo_truncate(wo, 0);
	} else if (!wr) {
		return -EAGAIN;
	} else if (id->kind == VK_SNOTES) {
		r = vwo_notes(v, n, flags & O_TRUNC, &wo);
	} else if (id->kind == VK_PROTECTED) {
		r = vwo_null(v, n, &wo);
	} else {
		return -EROFS;
	}
	if (r == 0)
		r = vfile_new_writing(v, wo, flags & O_APPEND, ret);
	if (r < 0 && wo)
		vwo_release(v, wo);
	return r;
}

/* A reader holds the snapshot's lock shared, as PBS readers do, so that
 * neither PBS nor dsfs forgets the snapshot under it. A snapshot locked
 * exclusively is being written or forgotten: -EBUSY, unless this mount is
 * the writer. Lock files that cannot be made (a read-only /run) do not
 * stop reading. */
static int lock_snapshot(struct vfs *v, const struct vnode *n, const struct ds_lookup *lk,
			 struct ds_lock **ret)
{
	char rel[2048];
	int fd, r;

	*ret = NULL;
	if (vfs_node_snaprel(n, rel, sizeof(rel)) < 0)
		return 0;
	fd = ds_lookup_open_dir(lk, "");
	if (fd < 0)
		return fd;
	r = ds_lock_snapshot(fd, ds_lookup_store(lk), rel, false, ret);
	close(fd);
	if (r == -EBUSY) {
		if (vwrite_holds_lock(v, n) || vwrite_owned(v, n))
			return 0;
		ds_err("%s: snapshot locked by a writer or being removed", n->path);
		return r;
	}
	if (r < 0) {
		static atomic_bool warned;

		if (!atomic_exchange(&warned, true))
			ds_warn("%s: cannot take the snapshot lock: %s", n->path, strerror(-r));
		*ret = NULL;
	}
	return 0;
}

static int open_id(struct vfs *v, const struct vnode *n, struct vopen_id *id)
{
	int r = 0;

	pthread_mutex_lock(&v->lock);
	id->kind = n->kind;
	id->crypt_mode = n->crypt_mode;
	id->pxar_dir = n->kind == VK_PXAR && S_ISDIR(n->pe.mode);
	id->writing = n->wo != NULL;
	id->gen = n->gen;
	id->file = NULL;
	id->other_key = NULL;
	if ((n->file && !(id->file = strdup(n->file))) ||
	    (n->other_key && !(id->other_key = strdup(n->other_key))))
		r = -ENOMEM;
	pthread_mutex_unlock(&v->lock);
	return r;
}

static int open_as(struct vfs *v, struct vnode *n, struct vopen_id *id, int flags,
		   struct vfile **ret, bool *ret_keep_cache)
{
	struct vfile *f;
	int r;

	if (id->kind == VK_ROOT || id->kind == VK_NSROOT || id->kind == VK_NSLIST ||
	    id->kind == VK_TYPE || id->kind == VK_GROUP || id->kind == VK_SNAPSHOT || id->pxar_dir)
		return -EISDIR;
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) {
		/* Any open for writing takes a write handle: its refusals
		 * (maintenance, -o ro) come first; past them, what exists in a
		 * snapshot is immutable, except its notes and protection and
		 * the files this mount is writing. */
		struct ds_writer *w;

		if (!n->st)
			return -EROFS;
		r = ds_writer_acquire(n->st->ds, &w);
		if (r < 0)
			return r;
		ds_writer_release(w);
	}
	r = open_writing(v, n, id, flags, ret);
	if (r == -EAGAIN && (id->kind == VK_WFILE || id->writing)) {
		/* Committed since: open it as what it is now. */
		free(id->file);
		free(id->other_key);
		r = open_id(v, n, id);
		if (r == 0)
			r = open_as(v, n, id, flags, ret, ret_keep_cache);
		return r;
	}
	if (r != -EAGAIN) {
		*ret_keep_cache = false;
		return r;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	atomic_init(&f->refs, 1);
	f->v = v;
	vfile_track(v, f);
	snprintf(f->name, sizeof(f->name), "%s", n->path);
	r = ds_reader_acquire(n->st->ds, &f->rd);
	if (r < 0) {
		vfile_unref(f);
		return r;
	}
	if (id->crypt_mode == DS_CRYPT_ENCRYPT) {
		if (!v->opt.crypt) {
			ds_err("%s: encrypted, mount with -o keyfile= to read it", n->path);
			r = -ENOKEY;
			goto fail;
		}
		if (id->other_key) {
			r = vfs_key_rejected(v, n->path, id->other_key);
			goto fail;
		}
		f->crypt = v->opt.crypt;
	}
	if (id->kind == VK_IMAGE || id->kind == VK_STREAM || id->kind == VK_BLOB) {
		r = lock_snapshot(v, n, ds_reader_lookup(f->rd), &f->lock);
		if (r < 0)
			goto fail;
	}
	if (id->kind == VK_PXAR)
		r = vpxar_open_content(v, n, ds_reader_lookup(f->rd), &f->idx, &f->base, &f->size);
	else if (id->kind == VK_IMAGE || id->kind == VK_STREAM)
		r = open_index(v, n, id, ds_reader_lookup(f->rd), f);
	else
		r = open_small(v, n, id, ds_reader_lookup(f->rd), f);
	if (r < 0)
		goto fail;
	*ret = f;
	*ret_keep_cache = vfs_is_immutable(id->kind, id->file);
	return 0;
fail:
	vfile_unref(f);
	return r;
}

int vfs_open(struct vfs *v, uint64_t ino, int flags, struct vfile **ret, bool *ret_keep_cache)
{
	struct vnode *n = vfs_node_get(v, ino);
	struct vopen_id id;
	int r;

	if (!n)
		return -ESTALE;
	r = open_id(v, n, &id);
	if (r == 0)
		r = open_as(v, n, &id, flags, ret, ret_keep_cache);
	free(id.file);
	free(id.other_key);
	return r;
}

void vfs_release(struct vfile *f)
{
	if (f)
		vfile_unref(f);
}

struct read_pins {
	struct ds_chunk_ref *refs;
	size_t n;
	void *own;  /* a buffer of the read's own */
	void *flat; /* the reply in one piece (flatten), or NULL */
};

/* Pieces a reply may have. libfuse writes it with one writev, its header
 * first, and writev takes at most IOV_MAX (1024) vectors: past that the
 * reply is never written and the reader waits for it forever. A read has
 * a piece per chunk it spans; PBS's chunks are 16 KiB and more (a 1 MiB
 * read spans at most 65), but a damaged or crafted index may have chunks
 * of a few bytes. */
#define READ_MAX_PIECES 256

static void prefetch_done(void *ctx)
{
	vfile_unref(ctx);
}

/* A full-size zero chunk of an image: its bytes are known without
 * loading it (the digest names them), so a read answers it from v->zeros.
 * This skips decompressing and hashing the unwritten parts of a VM image. */
static bool zero_chunk(const struct vfile *f, const struct ds_index_chunk *ch)
{
	uint64_t len = ch->end - ch->start;

	return (f->zero_len && len == f->zero_len && ds_digest_eq(&ch->digest, &f->zero)) ||
	       (f->zero_tail_len && len == f->zero_tail_len &&
		ds_digest_eq(&ch->digest, &f->zero_tail));
}

static void prefetch_after(struct vfile *f, size_t i)
{
	for (size_t k = i + 1; k <= i + PREFETCH_DEPTH && k < ds_index_count(f->idx); k++) {
		struct ds_index_chunk ch;

		ds_index_chunk(f->idx, k, &ch);
		if (zero_chunk(f, &ch))
			continue;
		atomic_fetch_add(&f->refs, 1);
		if (ds_chunk_cache_prefetch(f->v->cache, &ch.digest, ch.end - ch.start, load_chunk, f,
					    prefetch_done) != 0)
			atomic_fetch_sub(&f->refs, 1); /* cached, loading, or queue full */
	}
}

/* Chunk ch is a plain one verified whole earlier in this mount (vfs_load_chunk
 * remembered its file): true and its file in *pf. */
static bool plain_known(struct vfile *f, const struct ds_index_chunk *ch, struct ds_chunk_file *pf)
{
	/* Another length than the index says: the load names the fault. */
	return !f->crypt && !f->v->opt.verify_always &&
	       ds_verified_set_find(f->v->verified, &ch->digest, pf) && pf->plain &&
	       pf->size - DS_BLOB_HEADER_LEN == ch->end - ch->start;
}

/* A random reader's part [in, in + n) of chunk ch, into the read's own
 * buffer (pins->own, size bytes, at count): true when read in place. A
 * plain chunk verified whole earlier is read there, as long as its file is
 * still the one verified, whether cached or not: a 4 KiB read of
 * incompressible data is a pread, not a 4 MiB load, and such chunks leave
 * the cache to the ones that must be decoded. Otherwise a cached chunk is
 * served from the cache: false with *ref pinned; false with nothing pinned:
 * load it. */
static bool in_place(struct vfile *f, const struct ds_index_chunk *ch, uint64_t in, size_t n,
		     struct read_pins *pins, size_t size, size_t count, struct ds_chunk_ref *ref)
{
	struct ds_chunk_file pf;

	if (plain_known(f, ch, &pf)) {
		int r = -ENOMEM;

		if (!pins->own)
			pins->own = malloc(size);
		if (pins->own)
			r = ds_reader_read_plain_chunk(f->rd, &ch->digest, &pf, in,
						       (uint8_t *)pins->own + count, n);
		if (r == 0) {
			atomic_fetch_add(&f->v->in_place, 1);
			return true;
		}
		if (r != -ENOMEM)
			ds_verified_set_forget(f->v->verified, &ch->digest, &pf);
	}
	ds_chunk_cache_peek(f->v->cache, &ch->digest, ch->end - ch->start, ref);
	return false;
}

/* A sequential read that begins in chunk first: the chunks from the one
 * its previous read began in up to first are behind it. The chunk it is
 * in stays, and a reader that jumped back passes nothing. */
static void drop_behind(struct vfile *f, size_t first)
{
	uint64_t prev = atomic_exchange(&f->seq_chunk, (uint64_t)first + 1);

	/* Its first read passed nothing (the chunks before a pxar file's
	 * start belong to others). */
	if (prev-- == 0)
		return;
	for (size_t k = (size_t)prev; k < first && first - k <= PREFETCH_DEPTH; k++) {
		struct ds_index_chunk ch;

		ds_index_chunk(f->idx, k, &ch);
		if (!zero_chunk(f, &ch))
			ds_chunk_cache_drop_behind(f->v->cache, &ch.digest);
	}
}

static void release_pins(struct vfile *f, struct vfs_read *r)
{
	struct read_pins *pins = r->priv;

	if (pins) {
		for (size_t i = 0; i < pins->n; i++)
			ds_chunk_cache_put(f->v->cache, &pins->refs[i]);
		free(pins->refs);
		free(pins->own);
		free(pins->flat);
		free(pins);
	}
	free(r->iov);
	memset(r, 0, sizeof(*r));
}

/* A reply of more than READ_MAX_PIECES pieces, copied into one. */
static int flatten(struct vfs_read *r, size_t count)
{
	struct read_pins *pins = r->priv;
	uint8_t *flat = malloc(count ? count : 1);
	size_t at = 0;

	if (!flat)
		return -ENOMEM;
	for (size_t k = 0; k < r->n_iov; k++) {
		memcpy(flat + at, r->iov[k].iov_base, r->iov[k].iov_len);
		at += r->iov[k].iov_len;
	}
	pins->flat = flat;
	r->iov[0].iov_base = flat;
	r->iov[0].iov_len = at;
	r->n_iov = 1;
	return 0;
}

ssize_t vfs_read(struct vfile *f, uint64_t off, size_t size, struct vfs_read *ret)
{
	struct read_pins *pins;
	uint64_t fsize, end, pos;
	size_t count = 0, first_chunk, last_chunk = 0;
	bool seq;
	ssize_t i;
	int r = 0;

	memset(ret, 0, sizeof(*ret));
	/* The reply is written after we return, and the kernel may release the
	 * file meanwhile: the read keeps the file alive until vfs_read_done. */
	atomic_fetch_add(&f->refs, 1);
	if (f->wo) {
		/* A file being written: copied out of its buffers. */
		ssize_t n;

		pins = calloc(1, sizeof(*pins));
		ret->iov = calloc(1, sizeof(*ret->iov));
		if (pins)
			pins->own = malloc(size ? size : 1);
		ret->priv = pins;
		if (!pins || !ret->iov || !pins->own)
			return -ENOMEM;
		n = vwo_read(f->wo, pins->own, size, off);
		if (n < 0)
			return n;
		ret->iov[0].iov_base = pins->own;
		ret->iov[0].iov_len = (size_t)n;
		ret->n_iov = 1;
		return n;
	}
	if (!f->idx) {
		if (off >= f->len)
			return 0;
		ret->iov = malloc(sizeof(*ret->iov));
		if (!ret->iov)
			return -ENOMEM;
		ret->iov[0].iov_base = f->data + off;
		ret->iov[0].iov_len = size < f->len - off ? size : f->len - off;
		ret->n_iov = 1;
		return (ssize_t)ret->iov[0].iov_len;
	}
	/* Work in stream offsets: the file is [base, base + size). */
	fsize = f->size;
	if (off >= fsize)
		return 0;
	end = f->base + (size < fsize - off ? off + size : fsize);
	off += f->base;
	pins = calloc(1, sizeof(*pins));
	i = ds_index_find(f->idx, off);
	if (!pins || i < 0) {
		free(pins);
		return i < 0 ? -EIO : -ENOMEM;
	}
	ret->priv = pins;
	seq = off == atomic_load(&f->next_off) || off == f->base;
	first_chunk = (size_t)i;
	for (pos = off; pos < end; i++) {
		struct ds_index_chunk ch;
		struct ds_chunk_ref ref;
		const uint8_t *src;
		uint64_t in;
		size_t n;
		void *grow;

		ds_index_chunk(f->idx, (size_t)i, &ch);
		in = pos - ch.start;
		n = (size_t)((end < ch.end ? end : ch.end) - pos);
		grow = realloc(ret->iov, (ret->n_iov + 1) * sizeof(*ret->iov));
		if (!grow) {
			r = -ENOMEM;
			break;
		}
		ret->iov = grow;
		ref = (struct ds_chunk_ref){ 0 };
		if (zero_chunk(f, &ch)) {
			src = f->v->zeros + in;
		} else if (!seq && in_place(f, &ch, in, n, pins, size, count, &ref)) {
			src = (uint8_t *)pins->own + count;
		} else {
			if (!ref.priv) {
				struct ds_chunk_file pf;

				/* A random reader needs the chunk decoded up to
				 * its part only (vfs_load_chunk_part); a
				 * sequential one all of it. */
				r = ds_chunk_cache_get_part(f->v->cache, &ch.digest, ch.end - ch.start,
							    seq ? 0 : in + n, &f->v->part_ops, f,
							    &ref);
				/* A random reader reads it in place from now
				 * on: it goes first. */
				if (r == 0 && !seq && plain_known(f, &ch, &pf))
					ds_chunk_cache_drop_behind(f->v->cache, &ch.digest);
			}
			if (r < 0)
				break;
			grow = realloc(pins->refs, (pins->n + 1) * sizeof(*pins->refs));
			if (!grow) {
				ds_chunk_cache_put(f->v->cache, &ref);
				r = -ENOMEM;
				break;
			}
			pins->refs = grow;
			pins->refs[pins->n++] = ref;
			src = ref.data + in;
		}
		ret->iov[ret->n_iov].iov_base = (void *)src;
		ret->iov[ret->n_iov].iov_len = n;
		ret->n_iov++;
		pos += n;
		count += n;
		last_chunk = (size_t)i;
	}
	if (r < 0) {
		/* The whole request fails, not just its tail: FUSE takes a
		 * short reply as the end of the file (and shrinks the cached
		 * size). The kernel then reads page by page, so the good
		 * pages before the damaged chunk still read; only its own
		 * range fails. The reason (digest and cause) was logged by
		 * the chunk store. -ENOKEY is damage too: an encrypted
		 * archive without the key was refused at open, so this is an
		 * encrypted chunk where the index promises a plain one. */
		release_pins(f, ret);
		ds_err("%s: read at %llu: %s", f->name, (unsigned long long)(off - f->base),
		       strerror(-r));
		return -EIO;
	}
	if (ret->n_iov > READ_MAX_PIECES && flatten(ret, count) < 0)
		return -ENOMEM; /* vfs_read_done releases the pins */
	/* Sequential reader: decode the next chunks on the cache's workers
	 * while the kernel copies this one out, and let the chunks it has
	 * passed go first. */
	if (seq) {
		prefetch_after(f, last_chunk);
		drop_behind(f, first_chunk);
	}
	atomic_store(&f->next_off, off + count);
	return (ssize_t)count;
}

void vfs_read_done(struct vfile *f, struct vfs_read *r)
{
	release_pins(f, r);
	vfile_unref(f);
}

int64_t vfs_lseek(struct vfile *f, int64_t off, int whence)
{
	uint64_t size;
	ssize_t i;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	size = f->wo ? vwo_size(f->wo) : f->idx ? f->size : f->len;
	if (f->wo && off >= 0 && (uint64_t)off < size)
		return whence == SEEK_DATA ? off : (int64_t)size;
	if (off < 0 || (uint64_t)off >= size)
		return -ENXIO;
	if (!f->image)
		return whence == SEEK_DATA ? off : (int64_t)size;
	for (i = ds_index_find(f->idx, (uint64_t)off); i >= 0 && (size_t)i < ds_index_count(f->idx);
	     i++) {
		struct ds_index_chunk ch;
		bool zero;

		ds_index_chunk(f->idx, (size_t)i, &ch);
		/* Zero chunks are holes, a short last one too. */
		zero = zero_chunk(f, &ch);
		if (zero == (whence == SEEK_HOLE))
			return (uint64_t)off > ch.start ? off : (int64_t)ch.start;
	}
	/* No more data: ENXIO; no more holes: the implicit hole at EOF. */
	return whence == SEEK_DATA ? -ENXIO : (int64_t)size;
}

ssize_t vfs_write(struct vfile *f, const void *buf, size_t len, uint64_t off)
{
	if (!f->wo)
		return -EBADF;
	atomic_store(&f->closed, false);
	return vwo_write(f->v, f->wo, buf, len, off, f->append);
}

int vfs_fsync(struct vfile *f)
{
	return f->wo ? vwo_fsync(f->v, f->wo) : 0;
}

int vfs_flush(struct vfile *f)
{
	if (!f->wo)
		return 0;
	atomic_store(&f->closed, true);
	return vwo_flush(f->v, f->wo);
}

bool vfs_flush_reports(const struct vfile *f)
{
	return f->wo != NULL;
}
