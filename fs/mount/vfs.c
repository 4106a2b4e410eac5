#include "fs/mount/vfs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cache/chunk_cache.h"
#include "cache/config_cache.h"
#include "cache/verified_set.h"
#include "store/blob.h"
#include "store/config.h"
#include "store/crypt.h"
#include "store/datastore.h"
#include "store/hierarchy.h"
#include "store/index.h"
#include "store/log.h"

/* Inside a snapshot nothing changes, so the kernel may cache for long;
 * above it, snapshots come and go (and maintenance may refuse at any time,
 * which vfs_refresh invalidates explicitly). */
#define TIMEOUT_IMMUTABLE 3600.0
#define TIMEOUT_LIVE 1.0
/* Chunk files remembered as verified: 16,384 cover 64 GiB of 4 MiB chunks
 * in 1.4 MiB, its pages touched only as used. */
#define VERIFIED_CHUNKS 16384

/* --- node table --- */

uint64_t vfs_hash_ino(const void *key, size_t len)
{
	struct ds_digest d;
	uint64_t ino;

	ds_sha256(key, len, &d);
	memcpy(&ino, d.b, sizeof(ino));
	ino &= UINT64_C(0x7fffffffffffffff);
	return ino < 2 ? ino + 2 : ino; /* 0 is invalid, 1 is the root */
}

uint64_t vfs_node_id(uint64_t st_ino, uint32_t gen)
{
	/* splitmix64's finalizer: cheap (a lookup in an archive computes
	 * one), and a collision is probed away like a path hash's. */
	uint64_t x = st_ino ^ ((uint64_t)gen << 32 | gen);

	if (gen == 0)
		return st_ino;
	x = (x ^ x >> 30) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ x >> 27) * UINT64_C(0x94d049bb133111eb);
	x = (x ^ x >> 31) & UINT64_C(0x7fffffffffffffff);
	return x < 2 ? x + 2 : x; /* 0 is invalid, 1 is the root */
}

uint64_t vfs_path_ino(const char *store, const char *path)
{
	/* SHA-256 of "<store>\0<path>" (just "<path>" without a store). */
	char key[4096 + 64];
	int n = snprintf(key, sizeof(key), "%s%c%s", store ? store : "", 0, path);
	size_t skip = store ? 0 : 1;

	if (n < 0 || (size_t)n >= sizeof(key))
		abort(); /* paths are bounded by PATH_MAX-sized buffers upstream */
	return vfs_hash_ino(key + skip, (size_t)n - skip);
}

void vstore_key(const struct vstore *st, char out[VSTORE_KEY_LEN])
{
	unsigned gen = __atomic_load_n(&st->gen, __ATOMIC_ACQUIRE);

	/* gen 0 keeps the numbers stable across mounts. */
	if (gen == 0)
		snprintf(out, VSTORE_KEY_LEN, "%s", st->name);
	else
		snprintf(out, VSTORE_KEY_LEN, "%s/%u", st->name, gen);
}

void vfs_node_free(struct vnode *n)
{
	if (!n)
		return;
	if (n->ar)
		varchive_unref(n->ar);
	free(n->name);
	free(n->path);
	free(n->ns);
	free(n->id);
	free(n->file);
	free(n->target);
	free(n->other_key);
	free(n);
}

/* Lock held. */
static struct vnode *table_find(struct vfs *v, uint64_t ino)
{
	for (struct vnode *n = v->table[ino % v->table_size]; n; n = n->hnext)
		if (n->ino == ino)
			return n;
	return NULL;
}

/* Lock held. Grows the table when it gets full. */
static void table_insert(struct vfs *v, struct vnode *n)
{
	if (v->n_nodes + 1 > v->table_size) {
		size_t nsize = v->table_size * 2;
		struct vnode **nt = calloc(nsize, sizeof(*nt));

		if (nt) {
			for (size_t i = 0; i < v->table_size; i++)
				for (struct vnode *m = v->table[i], *next; m; m = next) {
					next = m->hnext;
					m->hnext = nt[m->ino % nsize];
					nt[m->ino % nsize] = m;
				}
			free(v->table);
			v->table = nt;
			v->table_size = nsize;
		}
	}
	n->hnext = v->table[n->ino % v->table_size];
	v->table[n->ino % v->table_size] = n;
	v->n_nodes++;
}

static void table_remove(struct vfs *v, struct vnode *n)
{
	struct vnode **pp = &v->table[n->ino % v->table_size];

	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == n) {
			*pp = n->hnext;
			v->n_nodes--;
			return;
		}
}

struct vnode *vfs_node_find_locked(struct vfs *v, uint64_t ino)
{
	return ino == VFS_ROOT_INO ? v->root : table_find(v, ino);
}

struct vnode *vfs_node_get(struct vfs *v, uint64_t ino)
{
	struct vnode *n;

	pthread_mutex_lock(&v->lock);
	n = ino == VFS_ROOT_INO ? v->root : table_find(v, ino);
	pthread_mutex_unlock(&v->lock);
	return n;
}

/* --- datastores --- */

/* The store called name, made on first use at dir or at dc's base.
 * Returns it, or NULL with *ret_err set: -ENOMEM, or for dc, -EINVAL (a
 * path that is not absolute, which PBS refuses to open) or -ENAMETOOLONG,
 * logged. */
static struct vstore *store_get(struct vfs *v, const char *name, const struct ds_datastore_cfg *dc,
				const char *dir, int *ret_err)
{
	struct vstore *s;
	char base[4096];
	int r;

	*ret_err = -ENOMEM;
	pthread_mutex_lock(&v->lock);
	for (s = v->stores; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			break;
	pthread_mutex_unlock(&v->lock);
	if (s)
		return s;
	if (dir) {
		snprintf(base, sizeof(base), "%s", dir);
	} else if ((r = ds_datastore_cfg_base(dc, base, sizeof(base))) < 0) {
		ds_err("datastore %s: path '%s' in %s %s", name, dc->path ? dc->path : "",
		       v->opt.config_path, ds_datastore_cfg_base_why(r));
		*ret_err = r;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->name = strdup(name)) || ds_datastore_new(name, base, &s->ds) < 0) {
		if (s)
			free(s->name);
		free(s);
		return NULL;
	}
	ds_datastore_configure(s->ds, dc);
	ds_datastore_set_read_only(s->ds, v->opt.read_only);
	if (v->opt.track_operations)
		ds_datastore_track_operations(s->ds, true, NULL);
	pthread_mutex_lock(&v->lock);
	/* Another thread may have raced us; keep the first. */
	for (struct vstore *o = v->stores; o; o = o->next)
		if (strcmp(o->name, name) == 0) {
			pthread_mutex_unlock(&v->lock);
			ds_datastore_free(s->ds);
			free(s->name);
			free(s);
			return o;
		}
	s->next = v->stores;
	v->stores = s;
	pthread_mutex_unlock(&v->lock);
	if (!v->opt.read_only)
		vwrite_cleanup_store(v, s);
	return s;
}

/* The config section of a store in the current config (copied out under the
 * config snapshot by the caller's callback). */
static bool config_has_store(struct vfs *v, const char *name, bool *ret_deleted)
{
	struct ds_config_snap snap;
	const struct ds_datastore_cfg *dc;
	bool found;

	ds_config_cache_get(v->cc, &snap);
	dc = ds_config_find(snap.cfg, name);
	found = dc != NULL;
	if (ret_deleted)
		*ret_deleted = dc && dc->maintenance == DS_MAINT_DELETE;
	ds_config_cache_put(v->cc, &snap);
	return found;
}

/* store_get for the store's section in the current config (-ENOENT when
 * it has none). */
static struct vstore *store_from_config(struct vfs *v, const char *name, int *ret_err)
{
	struct ds_config_snap snap;
	const struct ds_datastore_cfg *dc;
	struct vstore *s = NULL;

	*ret_err = -ENOENT;
	ds_config_cache_get(v->cc, &snap);
	dc = ds_config_find(snap.cfg, name);
	if (dc)
		s = store_get(v, name, dc, NULL, ret_err);
	ds_config_cache_put(v->cc, &snap);
	return s;
}

/* --- creation and teardown --- */

/* Digest of len zero bytes, keyed with c when not NULL. */
static void zero_digest(const struct ds_crypt *c, size_t len, struct ds_digest *ret)
{
	static const uint8_t zeros[64 * 1024];
	struct ds_sha256 *h = ds_sha256_new();

	if (!h)
		abort();
	while (len > 0) {
		size_t n = len < sizeof(zeros) ? len : sizeof(zeros);

		ds_sha256_update(h, zeros, n);
		len -= n;
	}
	/* Keyed digests append the id key (spec §2.6). */
	if (c)
		ds_sha256_update(h, ds_crypt_id_key(c), DS_CRYPT_KEY_LEN);
	ds_sha256_final(h, ret);
	ds_sha256_free(h);
}

bool vfs_zero_chunk(const struct vfs *v, const struct ds_crypt *c, uint64_t cs,
		    struct ds_digest *ret)
{
	if (cs > DS_MAX_CHUNK_SIZE)
		return false;
	if (cs == DS_FIDX_DEFAULT_CHUNK_SIZE && !c)
		*ret = v->zero4m;
	else
		zero_digest(c, (size_t)cs, ret);
	return true;
}

uint64_t vfs_zero_tail(const struct vfs *v, const struct ds_crypt *c, const struct ds_index *idx,
		       struct ds_digest *ret)
{
	size_t count = ds_index_count(idx);
	struct ds_index_chunk last;

	if (count == 0)
		return 0;
	ds_index_chunk(idx, count - 1, &last);
	if (last.end - last.start >= ds_index_chunk_size(idx) ||
	    !vfs_zero_chunk(v, c, last.end - last.start, ret))
		return 0;
	return last.end - last.start;
}

static struct vnode *node_new(enum vkind kind, struct vstore *st, uint64_t parent,
			      const char *name, const char *path)
{
	struct vnode *n = calloc(1, sizeof(*n));
	char key[VSTORE_KEY_LEN];

	if (!n)
		return NULL;
	n->kind = kind;
	n->st = st;
	n->parent = parent;
	n->name = strdup(name);
	n->path = strdup(path);
	n->ns = strdup("");
	if (!n->name || !n->path || !n->ns) {
		vfs_node_free(n);
		return NULL;
	}
	if (st)
		vstore_key(st, key);
	n->ino = n->st_ino = vfs_path_ino(st ? key : NULL, path);
	n->parent_st_ino = parent;
	return n;
}

int vfs_new(const struct vfs_options *opt, struct vfs **ret)
{
	struct vfs *v;
	int r;

	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->opt = *opt;
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->wcond, NULL);
	v->table_size = 1024;
	v->table = calloc(v->table_size, sizeof(*v->table));
	v->mount_time = (int64_t)time(NULL);
	if (!v->table) {
		r = -ENOMEM;
		goto fail;
	}
	zero_digest(NULL, DS_FIDX_DEFAULT_CHUNK_SIZE, &v->zero4m);
	{
		void *z = mmap(NULL, DS_MAX_CHUNK_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (z == MAP_FAILED) {
			r = -errno;
			goto fail;
		}
		v->zeros = z;
	}
	r = ds_chunk_cache_new(opt->cache_size, &v->cache);
	if (r < 0)
		goto fail;
	/* Without a key every chunk the mount can load is unencrypted, and is
	 * read and decoded straight into its buffer (ds_chunkstore_load_file):
	 * a load then needs room for its chunk, not twice that. */
	ds_chunk_cache_set_raw_in_buffer(v->cache, opt->crypt != NULL);
	v->part_ops = (struct ds_chunk_part_ops){ vfile_load_part, vfs_part_free, vfs_part_size() };
	r = ds_verified_set_new(VERIFIED_CHUNKS, &v->verified);
	if (r < 0)
		goto fail;
	if (opt->config_path) {
		r = ds_config_cache_new(opt->config_path, NULL, &v->cc);
		if (r < 0) {
			ds_err("%s: cannot load datastore config: %s", opt->config_path,
			       strerror(-r));
			goto fail;
		}
	}
	if (opt->store_dir) {
		const char *slash = strrchr(opt->store_dir, '/');
		const char *name = opt->store_dir_name ? opt->store_dir_name
				   : slash && slash[1]  ? slash + 1
							: opt->store_dir;
		struct vstore *s = store_get(v, name, NULL, opt->store_dir, &r);

		if (!s)
			goto fail;
		v->root = node_new(VK_NSROOT, s, VFS_ROOT_INO, "", "");
	} else if (opt->store_name) {
		struct vstore *s;

		if (!config_has_store(v, opt->store_name, NULL)) {
			ds_err("datastore '%s' is not in %s", opt->store_name, opt->config_path);
			r = -ENOENT;
			goto fail;
		}
		s = store_from_config(v, opt->store_name, &r);
		if (!s)
			goto fail;
		v->root = node_new(VK_NSROOT, s, VFS_ROOT_INO, "", "");
	} else {
		v->multi = true;
		v->root = node_new(VK_ROOT, NULL, VFS_ROOT_INO, "", "");
	}
	if (!v->root) {
		r = -ENOMEM;
		goto fail;
	}
	v->root->ino = v->root->st_ino = VFS_ROOT_INO;
	v->root->mtime = v->mount_time;
	*ret = v;
	return 0;
fail:
	vfs_free(v);
	return r;
}

void vfs_free(struct vfs *v)
{
	if (!v)
		return;
	/* The kernel's connection is gone (and its session freed): what is
	 * committed below tells it nothing. */
	v->notify = NULL;
	vfile_release_closed(v);
	vwrite_shutdown(v);
	/* No prefetch may still hold a file when the files left open are
	 * freed. */
	if (v->cache)
		ds_chunk_cache_drain(v->cache);
	vfile_shutdown(v);
	for (size_t i = 0; v->table && i < v->table_size; i++)
		for (struct vnode *n = v->table[i], *next; n; n = next) {
			next = n->hnext;
			vfs_node_free(n);
		}
	free(v->table);
	if (v->zeros)
		munmap((void *)v->zeros, DS_MAX_CHUNK_SIZE);
	vfs_node_free(v->root);
	vpxar_close_store(v, NULL); /* before the datastores their readers hold */
	if (v->cache)
		ds_chunk_cache_drain(v->cache);
	for (struct vstore *s = v->stores, *next; s; s = next) {
		next = s->next;
		ds_datastore_free(s->ds);
		free(s->name);
		free(s);
	}
	if (v->cache) {
		struct ds_chunk_cache_stats cs;

		ds_chunk_cache_stats(v->cache, &cs);
		ds_debug("chunk cache: %llu hits, %llu misses, %llu waits, %llu evictions, "
			 "%llu load errors, peak %zu KiB; %llu chunk loads, %llu reads in place, "
			 "%llu loads by identity",
			 (unsigned long long)cs.hits, (unsigned long long)cs.misses,
			 (unsigned long long)cs.waits, (unsigned long long)cs.evictions,
			 (unsigned long long)cs.load_errors, cs.peak >> 10, (unsigned long long)v->loads,
			 (unsigned long long)v->in_place, (unsigned long long)v->known_loads);
		ds_debug("chunk cache buffers: %llu mapped by loads, %llu prefilled by workers",
			 (unsigned long long)cs.fresh_maps, (unsigned long long)cs.prefilled);
		ds_debug("chunk cache parts: %llu loads of a part, %llu extended, %llu MiB decoded "
			 "by parts",
			 (unsigned long long)cs.partial, (unsigned long long)cs.extends,
			 (unsigned long long)(v->part_bytes >> 20));
	}
	ds_chunk_cache_free(v->cache);
	ds_verified_set_free(v->verified);
	ds_config_cache_free(v->cc);
	pthread_cond_destroy(&v->wcond);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

/* --- attributes --- */

static bool is_dir_kind(enum vkind k)
{
	return k == VK_ROOT || k == VK_NSROOT || k == VK_NSLIST || k == VK_TYPE || k == VK_GROUP ||
	       k == VK_SNAPSHOT;
}

bool vfs_is_immutable(enum vkind kind, const char *file)
{
	if (kind == VK_BLOB && file && strcmp(file, DS_MANIFEST_NAME) == 0)
		return false; /* the manifest */
	return kind == VK_IMAGE || kind == VK_STREAM || kind == VK_BLOB || kind == VK_PXAR;
}

static void fill_entry(const struct vnode *n, struct vfs_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = n->ino;
	e->generation = n->gen;
	e->st.st_ino = n->st_ino;
	if (n->kind == VK_PXAR) {
		/* An archive entry: its own metadata, nanoseconds included. */
		e->st.st_mode = n->pe.mode;
		e->st.st_nlink = n->nlink;
		e->st.st_uid = n->pe.uid;
		e->st.st_gid = n->pe.gid;
		e->st.st_size = (off_t)n->size;
		e->st.st_rdev = makedev((unsigned)n->pe.rdev_major, (unsigned)n->pe.rdev_minor);
		e->st.st_blocks = (blkcnt_t)((n->size + 511) / 512);
		e->st.st_blksize = 1 << 20;
		e->st.st_mtim.tv_sec = n->pe.mtime_sec;
		e->st.st_mtim.tv_nsec = n->pe.mtime_nsec;
		e->st.st_atim = e->st.st_ctim = e->st.st_mtim;
		/* An archive that could not be opened (a missing or damaged
		 * chunk, no descriptor left) is looked up again soon, which
		 * opens it again: a repaired store is readable at once, not
		 * after an hour. Without the key, or with another, it never
		 * opens. */
		e->entry_timeout = e->attr_timeout = TIMEOUT_IMMUTABLE;
		if (!n->ar && n->ar_err != -ENOKEY && n->ar_err != -EKEYREJECTED)
			e->entry_timeout = e->attr_timeout = TIMEOUT_LIVE;
		return;
	}
	if (is_dir_kind(n->kind)) {
		e->st.st_mode = S_IFDIR | 0555;
		e->st.st_nlink = 2;
	} else if (n->kind == VK_WFILE) {
		e->st.st_mode = S_IFREG | 0644;
		e->st.st_nlink = 1;
		e->st.st_size = (off_t)(n->wo ? vwo_size(n->wo) : 0);
		e->st.st_blocks = (e->st.st_size + 511) / 512;
		e->st.st_blksize = 1 << 20;
		e->st.st_mtim.tv_sec = n->mtime;
		e->st.st_atim = e->st.st_ctim = e->st.st_mtim;
		e->entry_timeout = e->attr_timeout = 0;
		return;
	} else if (n->kind == VK_LATEST) {
		e->st.st_mode = S_IFLNK | 0777;
		e->st.st_nlink = 1;
		e->st.st_size = (off_t)strlen(n->target);
	} else {
		e->st.st_mode = S_IFREG | 0444;
		e->st.st_nlink = 1;
		/* notes being written: what the writers wrote so far */
		e->st.st_size = (off_t)(n->wo ? vwo_size(n->wo) : n->size);
	}
	/* Images count their data chunks only (holes are free); everything
	 * else its size. */
	e->st.st_blocks = (blkcnt_t)(n->kind == VK_IMAGE ? n->blocks : (n->size + 511) / 512);
	e->st.st_blksize = 1 << 20; /* cp and cat size their buffers by it */
	e->st.st_mtim.tv_sec = n->mtime;
	e->st.st_atim = e->st.st_ctim = e->st.st_mtim;
	e->entry_timeout = e->attr_timeout =
		vfs_is_immutable(n->kind, n->file) ? TIMEOUT_IMMUTABLE : TIMEOUT_LIVE;
}

/* mtime of a directory relative to the datastore, or 0. */
static int64_t dir_mtime(const struct ds_lookup *lk, const char *rel)
{
	struct stat st;
	int fd = ds_lookup_open_dir(lk, rel);
	int64_t t = 0;

	if (fd >= 0) {
		if (fstat(fd, &st) == 0)
			t = st.st_mtim.tv_sec;
		close(fd);
	}
	return t;
}

int vfs_node_snaprel(const struct vnode *n, char *out, size_t outlen)
{
	return ds_snapshot_relpath(n->ns, ds_backup_type_name(n->type), n->id, n->time, out, outlen);
}

static int node_rel(const struct vnode *n, char *out, size_t outlen)
{
	char nsdir[1024];
	int r;

	switch (n->kind) {
	case VK_NSROOT:
		return ds_ns_relpath(n->ns, out, outlen);
	case VK_NSLIST:
		r = ds_ns_relpath(n->ns, nsdir, sizeof(nsdir));
		return r < 0 ? r : ds_path_fmt(out, outlen, "%s%sns", nsdir, *nsdir ? "/" : "");
	case VK_TYPE:
		r = ds_ns_relpath(n->ns, nsdir, sizeof(nsdir));
		return r < 0 ? r
			     : ds_path_fmt(out, outlen, "%s%s%s", nsdir, *nsdir ? "/" : "",
					   ds_backup_type_name(n->type));
	case VK_GROUP:
		return ds_group_relpath(n->ns, ds_backup_type_name(n->type), n->id, out, outlen);
	default:
		return vfs_node_snaprel(n, out, outlen);
	}
}

/* --- lookup --- */

/* A child node template from parent p; fills kind-specific fields. */
struct vnode *vfs_child_new(const struct vnode *p, enum vkind kind, const char *name)
{
	char path[4096];
	size_t nl = strlen(name);

	if (ds_path_fmt(path, sizeof(path), "%s%s%s", p->path, *p->path ? "/" : "", name) < 0) {
		/* Inside a pxar archive a path may pass PATH_MAX: Linux limits
		 * names, not depth. A pxar entry's path is only shown (its
		 * inode comes from its place in the archive), so the parent's
		 * is cut short there. */
		if (kind != VK_PXAR || nl + 6 >= sizeof(path))
			return NULL;
		snprintf(path, sizeof(path), "%.*s/.../%s", (int)(sizeof(path) - nl - 6), p->path,
			 name);
	}
	struct vnode *n = node_new(kind, p->st, p->ino, name, path);

	if (!n)
		return NULL;
	free(n->ns);
	n->ns = strdup(p->ns);
	n->type = p->type;
	n->id = p->id ? strdup(p->id) : NULL;
	memcpy(n->time, p->time, sizeof(n->time));
	n->gen = p->gen;
	n->parent_st_ino = p->st_ino;
	if (!n->ns || (p->id && !n->id)) {
		vfs_node_free(n);
		return NULL;
	}
	return n;
}

/* A snapshot directory's identity, from its inode number and birth time:
 * a directory made again under the same name differs in either (ext4 gives
 * the inode number of a removed directory to the next one at once). A
 * file system without birth times leaves the inode number; 0 only when
 * statx fails. Never 0 otherwise, and 32 bits, which the kernel keeps. */
uint32_t vfs_snapshot_gen(int fd)
{
	struct statx stx;
	uint8_t key[20] = { 0 };
	uint64_t h;

	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, STATX_INO | STATX_BTIME, &stx) < 0)
		return 0;
	ds_put_le64(key, stx.stx_ino);
	if (stx.stx_mask & STATX_BTIME) {
		ds_put_le64(key + 8, (uint64_t)stx.stx_btime.tv_sec);
		ds_put_le32(key + 16, stx.stx_btime.tv_nsec);
	}
	h = vfs_hash_ino(key, sizeof(key));
	return (uint32_t)(h ^ h >> 32) ? (uint32_t)(h ^ h >> 32) : 1;
}

/* Whether rel is a directory; *ret_gen (if not NULL) gets its identity. */
static bool dir_exists(const struct ds_lookup *lk, const char *rel, int *ret_err,
		       uint32_t *ret_gen)
{
	int fd = ds_lookup_open_dir(lk, rel);

	if (fd < 0) {
		*ret_err = fd == -ENOTDIR ? -ENOENT : fd;
		return false;
	}
	if (ret_gen)
		*ret_gen = vfs_snapshot_gen(fd);
	close(fd);
	return true;
}

static int lookup_nsroot(const struct ds_lookup *lk, const struct vnode *p, const char *name,
			 struct vnode **ret)
{
	char rel[1100], sub[1200];
	enum vkind kind;
	struct vnode *n;
	int type = -1, r = 0;

	if (strcmp(name, "ns") == 0) {
		kind = VK_NSLIST;
	} else if ((type = ds_name_backup_type(name)) >= 0) {
		kind = VK_TYPE;
	} else {
		/* Not a name that can exist here; still refuse like the disk would. */
		r = ds_lookup_check_io(lk);
		return r < 0 ? r : -ENOENT;
	}
	if ((r = node_rel(p, rel, sizeof(rel))) < 0 ||
	    (r = ds_path_fmt(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", name)) < 0)
		return r;
	if (!dir_exists(lk, sub, &r, NULL))
		return r;
	n = vfs_child_new(p, kind, name);
	if (!n)
		return -ENOMEM;
	if (type >= 0)
		n->type = (enum ds_backup_type)type;
	n->mtime = dir_mtime(lk, sub);
	*ret = n;
	return 0;
}

int vfs_ns_child(const char *ns, const char *name, char out[DS_MAX_NAMESPACE_LEN + 1])
{
	if (ds_name_safe_id(name) < 0 ||
	    ds_path_fmt(out, DS_MAX_NAMESPACE_LEN + 1, "%s%s%s", ns, *ns ? "/" : "", name) < 0 ||
	    ds_name_namespace(out, NULL) < 0)
		return -EINVAL;
	return 0;
}

static int lookup_nslist(const struct ds_lookup *lk, const struct vnode *p, const char *name,
			 struct vnode **ret)
{
	char ns[DS_MAX_NAMESPACE_LEN + 1], rel[1100];
	struct vnode *n;
	int r;

	if (vfs_ns_child(p->ns, name, ns) < 0) {
		r = ds_lookup_check_io(lk);
		return r < 0 ? r : -ENOENT;
	}
	if ((r = ds_ns_relpath(ns, rel, sizeof(rel))) < 0)
		return r;
	if (!dir_exists(lk, rel, &r, NULL))
		return r;
	n = vfs_child_new(p, VK_NSROOT, name);
	if (!n)
		return -ENOMEM;
	free(n->ns);
	n->ns = strdup(ns);
	if (!n->ns) {
		vfs_node_free(n);
		return -ENOMEM;
	}
	n->mtime = dir_mtime(lk, rel);
	*ret = n;
	return 0;
}

static int lookup_type(const struct ds_lookup *lk, const struct vnode *p, const char *name,
		       struct vnode **ret)
{
	char rel[2048];
	struct vnode *n;
	int r;

	if (ds_group_relpath(p->ns, ds_backup_type_name(p->type), name, rel, sizeof(rel)) < 0) {
		r = ds_lookup_check_io(lk);
		return r < 0 ? r : -ENOENT;
	}
	if (!dir_exists(lk, rel, &r, NULL))
		return r;
	n = vfs_child_new(p, VK_GROUP, name);
	if (!n)
		return -ENOMEM;
	free(n->id);
	n->id = strdup(name);
	if (!n->id) {
		vfs_node_free(n);
		return -ENOMEM;
	}
	n->mtime = dir_mtime(lk, rel);
	*ret = n;
	return 0;
}

/* Reads a small file of a group (owner, notes). */
static int read_group_file(const struct ds_lookup *lk, const struct vnode *g, const char *file,
			   uint8_t **ret, size_t *ret_len, int64_t *ret_mtime)
{
	char rel[2048];
	struct stat st;
	int fd, r;

	r = ds_group_relpath(g->ns, ds_backup_type_name(g->type), g->id, rel, sizeof(rel));
	if (r < 0)
		return r;
	fd = ds_lookup_open_dir(lk, rel);
	if (fd < 0)
		return fd;
	r = ds_read_file_at(fd, file, 1 << 20, ret, ret_len);
	if (r == 0 && ret_mtime && fstatat(fd, file, &st, 0) == 0)
		*ret_mtime = st.st_mtim.tv_sec;
	close(fd);
	return r;
}

static int lookup_group(const struct ds_lookup *lk, const struct vnode *p, const char *name,
			struct vnode **ret)
{
	const char *type = ds_backup_type_name(p->type);
	struct vnode *n;
	int r;

	if (strcmp(name, "latest") == 0) {
		struct ds_snapshot *snaps = NULL;
		size_t count = 0;
		ssize_t newest = -1;

		r = ds_list_snapshots(lk, p->ns, type, p->id, &snaps, &count);
		if (r < 0)
			return r;
		for (size_t i = 0; i < count; i++)
			if (snaps[i].finished)
				newest = (ssize_t)i;
		if (newest < 0) {
			free(snaps);
			return -ENOENT;
		}
		n = vfs_child_new(p, VK_LATEST, name);
		if (n && !(n->target = strdup(snaps[newest].time))) {
			vfs_node_free(n);
			n = NULL;
		}
		if (n)
			n->mtime = snaps[newest].epoch;
		free(snaps);
	} else if (strcmp(name, "owner") == 0 || strcmp(name, "notes") == 0) {
		uint8_t *buf;
		size_t len;
		int64_t mtime = 0;

		r = read_group_file(lk, p, name, &buf, &len, &mtime);
		/* Not listed either: a symlink (never followed), a directory
		 * or anything else that is not a regular file (a FIFO). */
		if (r < 0)
			return r == -ENOTDIR || r == -ELOOP || r == -EISDIR || r == -EINVAL ? -ENOENT
											    : r;
		free(buf);
		n = vfs_child_new(p, name[0] == 'o' ? VK_OWNER : VK_GNOTES, name);
		if (n) {
			n->size = len;
			n->mtime = mtime;
		}
	} else {
		char rel[2048];
		int64_t epoch;
		uint32_t gen;

		if (ds_snapshot_relpath(p->ns, type, p->id, name, rel, sizeof(rel)) < 0) {
			r = ds_lookup_check_io(lk);
			return r < 0 ? r : -ENOENT;
		}
		if (!dir_exists(lk, rel, &r, &gen))
			return r;
		n = vfs_child_new(p, VK_SNAPSHOT, name);
		if (n) {
			n->gen = gen;
			snprintf(n->time, sizeof(n->time), "%s", name);
			ds_time_parse(name, &epoch);
			n->mtime = epoch;
		}
	}
	if (!n)
		return -ENOMEM;
	*ret = n;
	return 0;
}

int vfs_index_check(const struct ds_index *idx, const struct ds_manifest_file *mf,
		    const char *what)
{
	struct ds_digest csum;

	ds_index_compute_csum(idx, &csum);
	if (ds_index_size(idx) == mf->size && ds_digest_eq(&csum, &mf->csum))
		return 0;
	ds_err("%s: index does not match the manifest (size %llu, manifest says %llu%s)", what,
	       (unsigned long long)ds_index_size(idx), (unsigned long long)mf->size,
	       ds_digest_eq(&csum, &mf->csum) ? "" : "; checksum differs");
	return -EBADMSG;
}

/* Attributes of an archive file: logical size, blocks, crypt mode. */
char *vfs_other_key(const struct vfs *v, const struct ds_manifest *m)
{
	const char *fp = m ? ds_manifest_fingerprint(m) : NULL;
	struct ds_digest stored, ours;

	if (!v->opt.crypt || !fp || ds_fingerprint_parse(fp, &stored) < 0)
		return NULL;
	ds_crypt_fingerprint(v->opt.crypt, &ours);
	return memcmp(stored.b, ours.b, sizeof(ours.b)) == 0 ? NULL : strdup(fp);
}

int vfs_key_rejected(const struct vfs *v, const char *what, const char *fp)
{
	char ours[DS_FINGERPRINT_STR_LEN];

	ds_crypt_fingerprint_str(v->opt.crypt, ours);
	ds_err("%s: encrypted with another key (fingerprint %s), not the mount's (%s)", what, fp,
	       ours);
	return -EKEYREJECTED;
}

int vfs_manifest_check(const struct vfs *v, const struct ds_manifest *m, const char *what)
{
	int r;

	if (!v->opt.crypt || !m || !ds_manifest_signature(m))
		return 0;
	r = ds_manifest_verify(m, v->opt.crypt);
	/* Another key's manifest: its encrypted archives are refused by
	 * vfs_other_key (EKEYREJECTED), its others read as before. */
	if (r == 0 || r == -EKEYREJECTED)
		return 0;
	if (r == -ENOMEM)
		return r;
	ds_err("%s: the manifest's signature does not match it: not read (tampered with, "
	       "or signed with another key)", what);
	return -EIO;
}

int vfs_manifest_binds(struct vfs *v, const struct vnode *snap, const struct ds_manifest *m)
{
	int r;

	if (!v->opt.crypt || !m || !ds_manifest_signature(m) || vwrite_owned(v, snap))
		return 0;
	/* Quiet: its listed archives say why when they are looked up.
	 * Another key's manifest binds nothing here; a tampered one leaves
	 * out what it does not list too: breaking the signature must not
	 * show the files a valid one would hide. */
	r = ds_manifest_verify_quiet(m, v->opt.crypt);
	if (r == 0)
		return 1;
	if (r == -ENOMEM)
		return r;
	return r == -EKEYREJECTED ? 0 : 2;
}

bool vfs_unlisted(const struct ds_manifest *m, const char *snaprel, const char *file)
{
	if (ds_manifest_covers(m, file))
		return false;
	ds_err("%s/%s: not in the snapshot's signed manifest: not part of the snapshot", snaprel,
	       file);
	return true;
}

/* verified: m's signature was found to match the mount's key already. */
static int archive_attrs(struct vfs *v, int snapfd, struct vnode *n, const struct ds_manifest *m,
			 bool verified)
{
	struct ds_manifest_file mf;
	bool listed;
	int r;

	listed = m && ds_manifest_find(m, n->file, &mf) == 0;
	if (listed && !verified) {
		r = vfs_manifest_check(v, m, n->path);
		if (r < 0)
			return r;
	}
	n->crypt_mode = listed ? mf.crypt_mode : DS_CRYPT_NONE;
	if (n->crypt_mode == DS_CRYPT_ENCRYPT)
		n->other_key = vfs_other_key(v, m);
	if (n->kind == VK_BLOB) {
		uint8_t *raw, *data;
		size_t raw_len, len;
		int type;

		r = ds_read_file_at(snapfd, n->file, DS_MAX_BLOB_SIZE + DS_BLOB_ENC_HEADER_LEN, &raw,
				    &raw_len);
		if (r < 0)
			return r;
		type = ds_blob_type(raw, raw_len);
		if (type >= 0 && ds_blob_type_encrypted(type)) {
			n->crypt_mode = DS_CRYPT_ENCRYPT;
			if (!n->other_key) /* not listed as encrypted above */
				n->other_key = vfs_other_key(v, m);
			/* Without the key the plaintext size is unknown; the
			 * payload size is exact for uncompressed ones. */
			n->size = raw_len - DS_BLOB_ENC_HEADER_LEN;
		}
		if (type >= 0 && (!ds_blob_type_encrypted(type) || v->opt.crypt) &&
		    ds_blob_decode(raw, raw_len, v->opt.crypt, DS_MAX_BLOB_SIZE, &data, &len) == 0) {
			n->size = len;
			free(data);
		} else if (type < 0 || !ds_blob_type_encrypted(type)) {
			n->size = 0; /* damaged: open will say EIO */
		}
		free(raw);
		return 0;
	}
	{
		struct ds_index *idx;

		r = ds_index_open(snapfd, n->file, &idx);
		if (r < 0)
			return r == -EBADMSG ? -EIO : r; /* damaged index */
		if (listed && vfs_index_check(idx, &mf, n->path) < 0) {
			ds_index_free(idx);
			return -EIO;
		}
		n->size = ds_index_size(idx);
		if (n->kind == VK_IMAGE) {
			/* Holes: blocks count only chunks that are not all zero. */
			struct ds_digest zero, tail;
			uint64_t cs = ds_index_chunk_size(idx), used = 0;
			const struct ds_crypt *c =
				n->crypt_mode == DS_CRYPT_ENCRYPT ? v->opt.crypt : NULL;
			bool holes = vfs_zero_chunk(v, c, cs, &zero);
			uint64_t tail_len = vfs_zero_tail(v, c, idx, &tail);

			for (size_t i = 0; i < ds_index_count(idx); i++) {
				struct ds_index_chunk ch;
				uint64_t len;

				ds_index_chunk(idx, i, &ch);
				len = ch.end - ch.start;
				if (!(holes && len == cs && ds_digest_eq(&ch.digest, &zero)) &&
				    !(tail_len && len == tail_len && ds_digest_eq(&ch.digest, &tail)))
					used += len;
			}
			n->blocks = (used + 511) / 512;
		}
		ds_index_free(idx);
	}
	return 0;
}

static void drop_if_gone(int r, struct vnode **n)
{
	if (r == -ENOENT) {
		vfs_node_free(*n);
		*n = NULL;
	}
}

static int lookup_snapshot(struct vfs *v, const struct ds_lookup *lk, const struct vnode *p,
			   const char *name, struct vnode **ret)
{
	static const struct {
		const char *ext;
		enum vkind kind;
	} exts[] = { { ".fidx", VK_IMAGE }, { ".didx", VK_STREAM }, { ".blob", VK_BLOB } };
	struct ds_manifest *m = NULL;
	char rel[2048], file[300], payload[300];
	struct vnode *n = NULL;
	bool pxar_unlisted = false;
	struct stat st;
	int fd, r, binds;

	r = vfs_node_snaprel(p, rel, sizeof(rel));
	if (r < 0)
		return r;
	fd = ds_open_snapshot(lk, rel);
	if (fd < 0)
		return fd;
	r = ds_manifest_load(fd, &m);
	if (r < 0)
		m = NULL; /* unfinished: archives may still be there */
	binds = vfs_manifest_binds(v, p, m);
	r = binds < 0 ? binds : -ENOENT;
	if (r == -ENOENT && vpxar_files(fd, name, file, payload, sizeof(file)) == 0) {
		/* X.pxar.didx, or the split pair X.mpxar.didx + X.ppxar.didx,
		 * appear as the directory X.pxar: the snapshot's if the
		 * manifest lists what it is made of. */
		pxar_unlisted = binds && (vfs_unlisted(m, rel, file) ||
					  (payload[0] && vfs_unlisted(m, rel, payload)));
		if (!pxar_unlisted) {
			n = vfs_child_new(p, VK_PXAR, name);
			r = n ? vpxar_lookup_root(v, p, name, n) : -ENOMEM;
			if (n)
				n->file = strdup(name);
		}
	}
	/* Each step below makes a node; one that found nothing after all
	 * (its file gone since the look at the directory) leaves none. */
	drop_if_gone(r, &n);
	for (size_t i = 0; i < DS_ARRAY_SIZE(exts) && r == -ENOENT; i++) {
		if (ds_path_fmt(file, sizeof(file), "%s%s", name, exts[i].ext) < 0 ||
		    ds_name_archive(file) < 0 || strcmp(file, DS_MANIFEST_NAME) == 0)
			continue;
		/* X.pxar.didx, refused (and logged) just above. */
		if (pxar_unlisted && exts[i].kind == VK_STREAM)
			continue;
		/* As listed: a symlink is not an archive (and never opened). */
		if (fstatat(fd, file, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (binds && vfs_unlisted(m, rel, file))
			continue;
		n = vfs_child_new(p, exts[i].kind, name);
		if (!n || !(n->file = strdup(file))) {
			r = -ENOMEM;
			break;
		}
		n->mtime = p->mtime;
		r = archive_attrs(v, fd, n, m, binds == 1);
		drop_if_gone(r, &n);
	}
	if (r == -ENOENT && strcmp(name, "index.json") == 0) {
		/* The manifest itself, decoded. */
		n = vfs_child_new(p, VK_BLOB, name);
		if (!n || !(n->file = strdup(DS_MANIFEST_NAME)))
			r = -ENOMEM;
		else {
			n->mtime = p->mtime;
			r = archive_attrs(v, fd, n, NULL, false);
		}
		drop_if_gone(r, &n);
	}
	if (r == -ENOENT && strcmp(name, "notes") == 0) {
		char *pending = NULL;

		/* Unfinished: notes waiting for the first archive's commit. */
		if (!m && vwrite_pending_notes(v, p->st, rel, &pending) < 0)
			r = -ENOMEM;
		else if (m ? ds_manifest_notes(m) != NULL : pending != NULL) {
			n = vfs_child_new(p, VK_SNOTES, name);
			r = n ? 0 : -ENOMEM;
			if (n) {
				n->size = strlen(m ? ds_manifest_notes(m) : pending);
				n->mtime = p->mtime;
			}
		}
		free(pending);
	}
	/* As listed (a regular file; a link is not followed). */
	if (r == -ENOENT && strcmp(name, ".protected") == 0 &&
	    fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
		n = vfs_child_new(p, VK_PROTECTED, name);
		r = n ? 0 : -ENOMEM;
		if (n)
			n->mtime = st.st_mtim.tv_sec;
	}
	ds_manifest_free(m);
	close(fd);
	if (r < 0) {
		vfs_node_free(n);
		return r;
	}
	*ret = n;
	return 0;
}

/* Finds or builds the child named name of p (in a pxar directory, when d
 * is not NULL, its listed child i: vpxar_lookup_child); lookup handle
 * acquired for the call. */
static int resolve(struct vfs *v, struct vnode *p, const char *name, const struct vfs_dir *d,
		   size_t i, struct vnode **ret)
{
	struct ds_lookup *lk = NULL;
	struct vnode *n = NULL;
	int r;

	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	if (p->kind == VK_ROOT) {
		struct vstore *s;
		bool deleted;

		if (!config_has_store(v, name, &deleted) || deleted)
			return -ENOENT;
		s = store_from_config(v, name, &r);
		if (!s)
			return r;
		/* From the config only: no datastore I/O to show the store. */
		n = node_new(VK_NSROOT, s, VFS_ROOT_INO, name, name);
		if (!n)
			return -ENOMEM;
		n->mtime = v->mount_time;
		*ret = n;
		return 0;
	}
	r = ds_lookup_acquire(p->st->ds, &lk);
	if (r < 0)
		return r;
	switch (p->kind) {
	case VK_NSROOT:
		r = lookup_nsroot(lk, p, name, &n);
		break;
	case VK_NSLIST:
		r = lookup_nslist(lk, p, name, &n);
		break;
	case VK_TYPE:
		r = lookup_type(lk, p, name, &n);
		break;
	case VK_GROUP:
		r = lookup_group(lk, p, name, &n);
		break;
	case VK_SNAPSHOT:
		r = lookup_snapshot(v, lk, p, name, &n);
		break;
	case VK_PXAR:
		n = vfs_child_new(p, VK_PXAR, name);
		if (!n)
			r = -ENOMEM;
		else if (d)
			r = vpxar_lookup_child(v, p, d, i, n);
		else
			r = vpxar_lookup(v, p, name, n);
		if (n)
			n->file = p->file ? strdup(p->file) : NULL;
		break;
	default:
		r = -ENOTDIR;
	}
	ds_lookup_release(lk);
	if (r == 0)
		*ret = n;
	else
		vfs_node_free(n);
	return r;
}

void vfs_node_publish(struct vfs *v, struct vnode *n, struct vfs_entry *ret)
{
	struct vnode *old, *dup = NULL;

	/* A new node's ino is its inode number (a path's, an entry's): its
	 * node id is that and its snapshot's identity. */
	n->st_ino = n->ino;
	n->ino = vfs_node_id(n->st_ino, n->gen);
	pthread_mutex_lock(&v->lock);
	old = table_find(v, n->ino);
	if (old && strcmp(old->path, n->path) == 0 &&
	    (old->kind == VK_WFILE || n->kind == VK_WFILE || old->kind != n->kind || n->wo)) {
		/* The same path as another kind of file now (a new file being
		 * written where an abandoned one was, an archive finished):
		 * the node takes the new identity. */
		enum vkind k = old->kind;
		char *f = old->file;
		struct vwopen *wo = old->wo;

		old->kind = n->kind;
		old->file = n->file;
		old->wo = n->wo;
		old->crypt_mode = n->crypt_mode;
		n->kind = k;
		n->file = f;
		n->wo = wo;
	}
	if (old && (strcmp(old->path, n->path) == 0 ||
		    (old->kind == VK_PXAR && n->kind == VK_PXAR && old->ar == n->ar &&
		     old->pe.entry_off == n->pe.entry_off))) {
		/* Refresh the attributes of the node the kernel knows. */
		if (old->kind == VK_PXAR && n->kind == VK_PXAR && old->ar != n->ar) {
			/* The archive was closed (a refusal) and opened again:
			 * the node the kernel knows moves to the open one (the
			 * closed one would answer ESTALE), the copy takes the
			 * closed one away. */
			struct varchive *ar = old->ar;

			old->ar = n->ar;
			old->pe = n->pe;
			old->ar_err = n->ar_err;
			n->ar = ar;
		}
		old->size = n->size;
		old->blocks = n->blocks;
		/* A snapshot's mtime is its time and never changes, and
		 * lookups in the snapshot read it without the lock
		 * (lookup_snapshot, vpxar_lookup_root): written only when
		 * it changed. Nor gen: it is part of the node id, so the
		 * same node has the same one for its life, and lookups below
		 * the node read it without the lock too (vfs_child_new). */
		if (old->mtime != n->mtime)
			old->mtime = n->mtime;
		{
			char *k = old->other_key;

			old->other_key = n->other_key;
			n->other_key = k;
		}
		if (n->target) {
			free(old->target);
			old->target = n->target;
			n->target = NULL;
		}
		dup = n; /* freed unlocked: dropping its archive takes the lock */
		n = old;
	} else {
		if (old) {
			/* A 63-bit hash collision: probe for a free number. */
			while (table_find(v, n->ino) || n->ino < 2)
				n->ino++;
			if (n->gen == 0)
				n->st_ino = n->ino;
		}
		table_insert(v, n);
	}
	n->nlookup++;
	fill_entry(n, ret);
	pthread_mutex_unlock(&v->lock);
	vfs_node_free(dup);
}

/* The node of file name in snapshot p while it is being written (an
 * archive not on disk under its name yet, or notes not in the manifest
 * yet), else NULL; once wait, after a commit in progress. Lock held. */
static struct vnode *writing_child_locked(struct vfs *v, const struct vnode *p, const char *name,
					  bool wait)
{
	char path[4096], key[VSTORE_KEY_LEN];
	struct vnode *n;

	if (ds_path_fmt(path, sizeof(path), "%s%s%s", p->path, *p->path ? "/" : "", name) < 0)
		return NULL;
	vstore_key(p->st, key);
	n = table_find(v, vfs_node_id(vfs_path_ino(key, path), p->gen));
	if (!n || (n->kind != VK_WFILE && n->kind != VK_SNOTES) || strcmp(n->path, path) != 0)
		return NULL;
	if (wait)
		vwo_wait(v, n);
	return n->wo ? n : NULL;
}

bool vfs_writing_child(struct vfs *v, const struct vnode *p, const char *name)
{
	bool r;

	pthread_mutex_lock(&v->lock);
	r = writing_child_locked(v, p, name, false) != NULL;
	pthread_mutex_unlock(&v->lock);
	return r;
}

/* A file being written into snapshot p. */
static bool lookup_writing(struct vfs *v, const struct vnode *p, const char *name,
			   struct vfs_entry *ret)
{
	struct vnode *n;

	pthread_mutex_lock(&v->lock);
	/* Being committed: wait, then look it up as what it is now. */
	n = writing_child_locked(v, p, name, true);
	if (n) {
		n->nlookup++;
		fill_entry(n, ret);
	}
	pthread_mutex_unlock(&v->lock);
	return n != NULL;
}

/* vfs_lookup of name in p; in a pxar directory, when d is not NULL, of its
 * listed child i (resolve). */
static int lookup_in(struct vfs *v, struct vnode *p, const char *name, const struct vfs_dir *d,
		     size_t i, struct vfs_entry *ret)
{
	struct vnode *n = NULL;
	int r;

	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -ENOENT; /* the kernel resolves these itself */
	if (p->kind == VK_SNAPSHOT && lookup_writing(v, p, name, ret))
		return 0;
	r = resolve(v, p, name, d, i, &n);
	if (r < 0)
		return r;
	vfs_node_publish(v, n, ret);
	return 0;
}

int vfs_lookup(struct vfs *v, uint64_t parent, const char *name, struct vfs_entry *ret)
{
	struct vnode *p = vfs_node_get(v, parent);

	return p ? lookup_in(v, p, name, NULL, 0, ret) : -ESTALE;
}

int vfs_lookup_listed(struct vfs *v, struct vfs_dir *d, size_t i, struct vfs_entry *ret)
{
	struct vnode *p = vfs_node_get(v, d->ino);
	bool listed;

	if (!p)
		return -ESTALE;
	/* The decoded part of a listing does not change: past this check
	 * no lock is needed to read it. */
	pthread_mutex_lock(&d->lock);
	listed = d->lazy && d->pxd && i < d->filled && p->kind == VK_PXAR;
	pthread_mutex_unlock(&d->lock);
	return lookup_in(v, p, d->ents[i].name, listed ? d : NULL, i, ret);
}

void vfs_forget(struct vfs *v, uint64_t ino, uint64_t count)
{
	struct vnode *n, *gone = NULL;

	if (ino == VFS_ROOT_INO)
		return;
	pthread_mutex_lock(&v->lock);
	n = table_find(v, ino);
	if (n) {
		n->nlookup = n->nlookup > count ? n->nlookup - count : 0;
		if (n->nlookup == 0) {
			table_remove(v, n);
			gone = n;
		}
	}
	pthread_mutex_unlock(&v->lock);
	vfs_node_free(gone); /* unlocked, as in vfs_lookup */
}

int vfs_getattr(struct vfs *v, uint64_t ino, struct vfs_entry *ret)
{
	struct vnode *n = vfs_node_get(v, ino);

	if (!n)
		return -ESTALE;
	if (n->st && n->kind != VK_ROOT) {
		/* A datastore under "delete" is gone for lookups too. */
		struct ds_lookup *lk;
		int r = ds_lookup_acquire(n->st->ds, &lk);

		if (r < 0)
			return r;
		ds_lookup_release(lk);
	}
	pthread_mutex_lock(&v->lock);
	vwo_wait(v, n);
	if (n->kind == VK_WFILE && !n->wo) {
		pthread_mutex_unlock(&v->lock);
		return -ENOENT; /* abandoned */
	}
	fill_entry(n, ret);
	pthread_mutex_unlock(&v->lock);
	return 0;
}

int vfs_readlink(struct vfs *v, uint64_t ino, char *buf, size_t len)
{
	struct vnode *n = vfs_node_get(v, ino);
	int r = 0;

	if (!n)
		return -ESTALE;
	if (n->kind == VK_PXAR)
		return vpxar_readlink(v, n, buf, len);
	if (n->kind != VK_LATEST)
		return -EINVAL;
	pthread_mutex_lock(&v->lock);
	if (ds_path_fmt(buf, len, "%s", n->target) < 0)
		r = -ENAMETOOLONG;
	pthread_mutex_unlock(&v->lock);
	return r;
}

int vfs_config_fd(struct vfs *v)
{
	return v->cc ? ds_config_cache_fd(v->cc) : -1;
}

int vfs_write_refusal(struct vfs *v, uint64_t ino)
{
	struct vnode *n = vfs_node_get(v, ino);
	struct ds_writer *w;
	int r;

	if (!n)
		return -ESTALE;
	if (!n->st)
		return -EROFS;
	r = ds_writer_acquire(n->st->ds, &w);
	if (r < 0)
		return r;
	ds_writer_release(w);
	return -EROFS;
}

int vfs_meta_refusal(struct vfs *v, uint64_t ino, int unsupported)
{
	int r = vfs_write_refusal(v, ino);
	struct vnode *n;

	if (r != -EROFS || !(n = vfs_node_get(v, ino)))
		return r;
	/* Where setattr accepts metadata (vfs_setattr), the place is
	 * writable: what is refused is the kind of change. */
	if (n->st && (n->kind == VK_WFILE || n->kind == VK_PROTECTED || vwrite_owned(v, n)))
		return unsupported;
	return -EROFS;
}

int vfs_statfs(struct vfs *v, uint64_t ino, struct statvfs *ret)
{
	struct vnode *n = vfs_node_get(v, ino);
	struct ds_lookup *lk;
	struct statvfs st;
	int fd, r;

	if (!n)
		return -ESTALE;
	if (!n->st)
		return -ENOENT;
	r = ds_lookup_acquire(n->st->ds, &lk);
	if (r < 0)
		return r;
	fd = ds_lookup_open_dir(lk, "");
	ds_lookup_release(lk);
	if (fd < 0)
		return fd;
	r = fstatvfs(fd, &st) < 0 ? -errno : 0;
	close(fd);
	if (r == 0)
		*ret = st;
	return r;
}

struct xattr_ctx {
	const char *want; /* NULL: list */
	char *buf;
	size_t size, len;
	int r;
};

static int xattr_cb(void *ud, const char *name, const void *value, size_t len)
{
	struct xattr_ctx *c = ud;

	if (c->want) {
		if (strcmp(name, c->want) != 0)
			return 0;
		c->len = len;
		if (c->size && len > c->size)
			c->r = -ERANGE;
		else if (c->size)
			memcpy(c->buf, value, len);
		return 1;
	}
	if (c->size && c->len + strlen(name) + 1 > c->size) {
		c->r = -ERANGE;
		return 1;
	}
	if (c->size)
		memcpy(c->buf + c->len, name, strlen(name) + 1);
	c->len += strlen(name) + 1;
	return 0;
}

ssize_t vfs_xattr(struct vfs *v, uint64_t ino, const char *name, char *buf, size_t size)
{
	struct vnode *n = vfs_node_get(v, ino);
	struct xattr_ctx c = { .want = name, .buf = buf, .size = size };
	bool plain;
	int r;

	if (!n)
		return -ESTALE;
	if (n->kind != VK_PXAR)
		return name ? -ENODATA : 0;
	pthread_mutex_lock(&v->lock); /* ar, pe: see vfs_node_publish */
	plain = n->ar && n->pe.attrs_off == n->pe.attrs_end;
	pthread_mutex_unlock(&v->lock);
	if (plain) {
		/* No attribute items (most entries): answered from the node,
		 * as getattr is, after the same refusal check. `ls -l` asks
		 * twice per entry. */
		struct ds_lookup *lk;

		r = ds_lookup_acquire(n->st->ds, &lk);
		if (r < 0)
			return r;
		ds_lookup_release(lk);
		return name ? -ENODATA : 0;
	}
	r = vpxar_xattrs(v, n, xattr_cb, &c);
	if (r < 0)
		return r;
	if (c.r < 0)
		return c.r;
	if (name && r == 0)
		return -ENODATA; /* not found: the callback never stopped */
	return (ssize_t)c.len;
}
