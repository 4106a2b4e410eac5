/* Shared between vfs.c (tree) and vfile.c (open files). Not a public API. */
#ifndef DSFS_FS_VFS_INTERNAL_H
#define DSFS_FS_VFS_INTERNAL_H

#include <pthread.h>

#include "fs/mount/vfs.h"
#include "store/manifest.h"
#include "store/pxar.h"
#include "store/names.h"
#include "store/util.h"

struct ds_config_cache;
struct ds_datastore;
struct ds_index;
struct ds_lookup;

enum vkind {
	VK_ROOT,      /* multi-store root: one directory per datastore */
	VK_NSROOT,    /* a datastore's root or a namespace directory */
	VK_NSLIST,    /* the "ns" directory holding child namespaces */
	VK_TYPE,      /* vm/, ct/, host/ */
	VK_GROUP,
	VK_SNAPSHOT,
	VK_LATEST,    /* symlink in a group */
	VK_OWNER,     /* group owner file */
	VK_GNOTES,    /* group notes file */
	VK_IMAGE,     /* .fidx */
	VK_STREAM,    /* .didx */
	VK_BLOB,      /* .blob */
	VK_SNOTES,    /* snapshot notes (manifest) */
	VK_PROTECTED, /* .protected marker */
	VK_PXAR,      /* an entry of a pxar archive (the archive's root too) */
};

struct varchive;

struct vstore {
	char *name;
	struct ds_datastore *ds;
	struct vstore *next;
};

struct vnode {
	uint64_t ino;
	uint64_t parent;
	enum vkind kind;
	struct vstore *st; /* NULL only for VK_ROOT */
	char *name;        /* display name in the parent */
	char *path;        /* display path from the mount root (hashed into ino) */
	/* Logical position (as much as the kind needs). */
	char *ns;
	enum ds_backup_type type;
	char *id;
	char time[21];
	char *file;        /* server file name of archives */
	char *target;      /* symlink target */
	/* Attributes fixed at lookup. */
	uint64_t size;
	uint64_t blocks;
	int64_t mtime;
	enum ds_crypt_mode crypt_mode;
	/* VK_PXAR: the archive (a reference; NULL while it cannot be opened,
	 * e.g. encrypted without key: then ar_err says why) and the entry. */
	struct varchive *ar;
	int ar_err;
	struct ds_pxar_entry pe;
	uint32_t nlink;
	uint64_t nlookup; /* protected by vfs->lock */
	struct vnode *hnext;
};

struct vfs {
	struct vfs_options opt;
	char *config_path;
	bool multi;               /* root lists the datastores of a config */
	struct ds_config_cache *cc; /* NULL in directory mode */
	struct ds_chunk_cache *cache;
	pthread_mutex_t lock;
	/* protected by lock: */
	struct vnode **table;
	size_t table_size, n_nodes;
	struct vstore *stores;
	struct vnode *root;
	/* Digest of an all-zero 4 MiB chunk (plain), for holes. */
	struct ds_digest zero4m;
	int64_t mount_time;
	uint64_t cfg_version; /* watcher thread only */
	struct varchive *archives; /* open pxar archives, protected by lock */
};

/* Inode number of a node: a hash of its datastore and display path, so it
 * is the same on every mount. */
uint64_t vfs_path_ino(const char *store, const char *path);
/* The inode number derived from key: the first 63 bits of its SHA-256. */
uint64_t vfs_hash_ino(const void *key, size_t len);

/* Node helpers used by vfile.c. */
struct vnode *vfs_node_get(struct vfs *v, uint64_t ino); /* NULL if unknown */
/* "<ns dir>/<type>/<id>/<time>" of a snapshot-level node. */
int vfs_node_snaprel(const struct vnode *n, char *out, size_t outlen);
/* Digest of len zero bytes, keyed with c when not NULL. */
void vfs_zero_digest(const struct ds_crypt *c, size_t len, struct ds_digest *ret);

/* --- pxar archives (vpxar.c) --- */

/* For a snapshot's display name "X.pxar": the metadata and payload index
 * file names ("X.pxar.didx", or "X.mpxar.didx" + "X.ppxar.didx"). Returns
 * 0, or -ENOENT when the snapshot has no such archive (snapfd: the snapshot
 * directory). */
int vpxar_files(int snapfd, const char *name, char *meta, char *payload, size_t len);
/* Opens (or finds) the archive of snapshot node snap named name and fills
 * n (kind VK_PXAR) with its root. */
int vpxar_lookup_root(struct vfs *v, const struct vnode *snap, const char *name, struct vnode *n);
/* Looks name up in pxar directory p; fills n (kind VK_PXAR). */
int vpxar_lookup(struct vfs *v, const struct vnode *p, const char *name, struct vnode *n);
int vpxar_list(struct vfs *v, const struct vnode *p, struct vfs_dir *d);
int vpxar_readlink(struct vfs *v, const struct vnode *n, char *buf, size_t len);
/* Opens the stream range holding a file's content: an index (owned by the
 * caller) and the range [*ret_base, *ret_base + n->pe.size). */
int vpxar_open_content(struct vfs *v, const struct vnode *n, const struct ds_lookup *lk,
		       struct ds_index **ret_idx, uint64_t *ret_base);
int vpxar_xattrs(struct vfs *v, const struct vnode *n, ds_pxar_xattr_fn fn, void *ud);
void varchive_ref(struct varchive *ar);
void varchive_unref(struct varchive *ar);
/* Closes every archive of store s (refusal), or of all stores (s == NULL,
 * at unmount): its reader is released. */
void vpxar_close_store(struct vfs *v, struct vstore *s);
/* Inode number of a pxar entry (hardlinks share their target's). */
uint64_t vpxar_ino(const struct vnode *archive_node, uint64_t entry_off);

#endif
