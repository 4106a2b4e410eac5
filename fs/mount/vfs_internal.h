/* Shared between vfs.c (tree) and vfile.c (open files). Not a public API. */
#ifndef DSFS_FS_VFS_INTERNAL_H
#define DSFS_FS_VFS_INTERNAL_H

#include <pthread.h>

#include "cache/chunk_cache.h"
#include "fs/mount/vfs.h"
#include "store/manifest.h"
#include "store/pxar.h"
#include "store/names.h"
#include "store/util.h"

struct ds_config_cache;
struct ds_verified_set;
struct ds_datastore;
struct ds_index;
struct ds_lookup;
struct ds_reader;
struct ds_strv;

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
	VK_WFILE,     /* a file being written into a snapshot (vwrite.c) */
};

struct varchive;
struct vwopen;
struct vsession;

struct vstore {
	char *name;
	struct ds_datastore *ds;
	/* Bumped (vfs_refresh) when the store's path changes: the store at
	 * the new path is another one, whose files must not share inode
	 * numbers, and so the kernel's page cache, with the old one's files
	 * still open. Atomic. */
	unsigned gen;
	struct vstore *next;
};

/* What the inode numbers of st's files are derived from: its name, and
 * "<name>/<gen>" once its path changed ('/' is in no datastore name). */
#define VSTORE_KEY_LEN 64
void vstore_key(const struct vstore *st, char out[VSTORE_KEY_LEN]);

struct vnode {
	/* The FUSE node id: st_ino with gen mixed in (vfs_node_id), so that
	 * a snapshot made again under the same time is other nodes, not the
	 * old nodes with another generation (see gen). */
	uint64_t ino;
	uint64_t st_ino;        /* what stat and listings show */
	uint64_t parent;        /* the parent's node id */
	uint64_t parent_st_ino; /* and its st_ino, listed as ".." */
	enum vkind kind;
	struct vstore *st; /* NULL only for VK_ROOT */
	char *name;        /* display name in the parent */
	char *path;        /* display path from the mount root (hashed into ino);
			    * in a pxar archive cut short past 4 KiB */
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
	/* Encrypted, and the manifest's key-fingerprint is not the mount
	 * key's: that fingerprint (open fails with EKEYREJECTED), else NULL. */
	char *other_key;
	/* VK_PXAR: the archive (a reference; NULL while it cannot be opened,
	 * e.g. encrypted without key: then ar_err says why) and the entry. */
	struct varchive *ar;
	int ar_err;
	struct ds_pxar_entry pe;
	uint32_t nlink;
	/* VK_WFILE: the open archive (NULL once finished or failed). */
	struct vwopen *wo;
	uint64_t nlookup; /* protected by vfs->lock */
	/* The snapshot's identity (vfs_snapshot_gen), for the snapshot and
	 * everything in it; 0 above snapshots. The kernel gets it as the
	 * inode's generation. A snapshot made again under the same time has
	 * the same paths and inode numbers (st_ino), but other node ids: the
	 * kernel drops the old names and pages at its next lookup, and the
	 * old nodes stay what they were, for whoever still holds them (a
	 * working directory, an open directory), whose opens then fail with
	 * ESTALE. With the same node id, a request on the old inode that
	 * the kernel sent before it saw the new generation was answered
	 * with the new snapshot's node (the old directory's names looked up
	 * in the new archive, the new file's bytes read). */
	uint32_t gen;
	struct vnode *hnext;
};

struct vfs {
	struct vfs_options opt;
	char *config_path;
	bool multi;               /* root lists the datastores of a config */
	struct ds_config_cache *cc; /* NULL in directory mode */
	struct ds_chunk_cache *cache;
	/* Chunk files verified whole (vfs_load_chunk): plain ones are read in
	 * place afterwards (vfile.c), any is loaded again by identity. */
	struct ds_verified_set *verified;
	_Atomic uint64_t loads;       /* chunks loaded (misses and prefetches) */
	_Atomic uint64_t in_place;    /* reads answered in place */
	_Atomic uint64_t known_loads; /* chunks loaded again by identity */
	_Atomic uint64_t part_bytes;  /* decoded by parts (vfs_load_chunk_part) */
	/* Random reads of images (vfile.c): the cache's part ops, whose
	 * load is vfile's; state_size is zstd's, known at run time. */
	struct ds_chunk_part_ops part_ops;
	pthread_mutex_t lock;
	/* protected by lock: */
	struct vnode **table;
	size_t table_size, n_nodes;
	struct vstore *stores;
	struct vnode *root;
	/* Digest of an all-zero 4 MiB chunk (plain), for holes. */
	struct ds_digest zero4m;
	/* DS_MAX_CHUNK_SIZE bytes of read-only anonymous memory: the reply
	 * to a read of a zero chunk. Never written, so it stays on the
	 * kernel's shared zero page and costs no resident memory. */
	const uint8_t *zeros;
	int64_t mount_time;
	uint64_t cfg_version; /* watcher thread only */
	struct varchive *archives; /* open pxar archives, protected by lock */
	struct vfile *files;       /* open files (vfile.c), protected by lock */
	/* Writing (vwrite.c), protected by lock: */
	struct vsession *sessions;  /* snapshots with files open for writing */
	struct vcreated *created;   /* snapshots made by mkdir in this mount */
	pthread_cond_t wcond;       /* an archive finished */
	vfs_inval_fn notify;        /* drops kernel caches (vfs_set_notify) */
	void *notify_ctx;
};

struct vcreated {
	struct vstore *st;
	uint64_t serial; /* the store's directory (ds_writer_base_serial) */
	char *snaprel;
	char *notes;     /* written before any archive was committed, or NULL */
	struct vcreated *next;
};

/* Inode number of a node: a hash of its datastore and display path, so it
 * is the same on every mount. */
uint64_t vfs_path_ino(const char *store, const char *path);
/* The inode number derived from key: the first 63 bits of its SHA-256. */
uint64_t vfs_hash_ino(const void *key, size_t len);
/* The node id of a node with inode number st_ino in a snapshot of identity
 * gen (vnode gen): st_ino itself when gen is 0 (above snapshots). */
uint64_t vfs_node_id(uint64_t st_ino, uint32_t gen);

/* Node helpers used by vfile.c. */
struct vnode *vfs_node_get(struct vfs *v, uint64_t ino); /* NULL if unknown */
/* The same with v->lock held. */
struct vnode *vfs_node_find_locked(struct vfs *v, uint64_t ino);
/* "<ns dir>/<type>/<id>/<time>" of a snapshot-level node. */
int vfs_node_snaprel(const struct vnode *n, char *out, size_t outlen);
/* The logical name of namespace ns's child name ("a/b" of "a" and "b") into
 * out (DS_MAX_NAMESPACE_LEN + 1 bytes), or -EINVAL when it is not one PBS
 * accepts (name not a SAFE_ID, more than 7 levels, longer than 256
 * characters). Lookup and listing both ask this, so that a listing shows
 * only names a lookup finds. */
int vfs_ns_child(const char *ns, const char *name, char out[DS_MAX_NAMESPACE_LEN + 1]);
/* Whether a node of kind and server file name file never changes (an
 * archive of a snapshot), so that the kernel may keep its pages across
 * opens and cache its entry for long. Not the snapshot's decoded manifest
 * (index.json): it changes with notes, a verify's state and the archives a
 * writer commits. */
bool vfs_is_immutable(enum vkind kind, const char *file);
/* The digest of a full zero chunk of an image of chunk size cs, keyed with
 * c when not NULL (encrypted archives): for holes, and for reads that need
 * not load it. false when cs is past the 16 MiB chunk limit: no such chunk
 * can be loaded, and hashing that many zeros would stall the caller (a
 * damaged or hostile index may claim any power of two up to 2^63). */
bool vfs_zero_chunk(const struct vfs *v, const struct ds_crypt *c, uint64_t cs,
		    struct ds_digest *ret);
/* An image index's short last chunk (shorter than its chunk size): its
 * length, with the digest of that many zeros in *ret; 0 when there is none. */
uint64_t vfs_zero_tail(const struct vfs *v, const struct ds_crypt *c, const struct ds_index *idx,
		       struct ds_digest *ret);
/* Loads chunk d through reader rd for the chunk cache (its load function's
 * contract, ds_chunkstore_load). An unencrypted chunk is verified whole the
 * first time, and its file remembered (v->verified); while that file stays
 * the same, a later load decodes it without hashing it again (a chunk the
 * cache let go, read again). With -o verify=always, every load verifies
 * and nothing is remembered. */
int vfs_load_chunk(struct vfs *v, const struct ds_reader *rd, const struct ds_crypt *c,
		   const struct ds_digest *d, size_t expect_len, uint8_t *buf, size_t cap,
		   size_t *ret_len);
/* The chunk cache's part load (struct ds_chunk_part_ops) for random
 * readers: a zstd chunk verified whole earlier in this mount (as
 * vfs_load_chunk remembers) whose file is still the same is decoded only
 * up to what the reader wants, by identity, and later on from there
 * (ds_reader_decode_known_part); anything else is loaded whole by
 * vfs_load_chunk. A continuation that finds the file changed forgets it:
 * the cache's retry then verifies it whole. */
int vfs_load_chunk_part(struct vfs *v, const struct ds_reader *rd, const struct ds_crypt *c,
			const struct ds_digest *d, size_t expect_len, uint8_t *buf, size_t cap,
			struct ds_chunk_part *p);
/* v->part_ops.load: vfs_load_chunk_part for the open file ctx (vfile.c). */
int vfile_load_part(void *ctx, const struct ds_digest *d, size_t expect_len, uint8_t *buf,
		    size_t cap, struct ds_chunk_part *p);
/* Frees a continuation of vfs_load_chunk_part (ds_chunk_part_ops's). */
void vfs_part_free(void *state);
/* Memory one continuation holds. */
size_t vfs_part_size(void);
/* Checks an opened index against its manifest entry (size and index
 * checksum, as PBS's reader does): 0, or -EBADMSG with a log line naming
 * what. */
/* The identity of the snapshot directory open at fd (vnode gen). */
uint32_t vfs_snapshot_gen(int fd);
int vfs_index_check(const struct ds_index *idx, const struct ds_manifest_file *mf,
		    const char *what);

/* The key-fingerprint of manifest m (malloc'ed) when the mount has a key
 * and m names another one, else NULL (no key, no fingerprint, or the
 * mount's: the chunks then decide). */
char *vfs_other_key(const struct vfs *v, const struct ds_manifest *m);
/* With the mount's key, a signed manifest m that does not name another
 * key must carry a matching signature, as PBS's client requires before it
 * reads any archive of the snapshot (BackupManifest::from_data): the
 * signature binds the indexes (their checksums) to the key, so without it
 * whoever writes the datastore could put another snapshot's index under
 * this name. 0 (no key, m NULL, unsigned, another key's, or valid),
 * -EIO with a log line naming what, or -ENOMEM. */
int vfs_manifest_check(const struct vfs *v, const struct ds_manifest *m, const char *what);
/* Whether manifest m of snapshot node snap says which files are the
 * snapshot's: the mount has a key, m is signed with it and the signature
 * verifies (PBS's client restores only archives such a manifest lists),
 * and the snapshot is not one this mount makes (its files are on disk a
 * moment before a manifest names them). 1 when so; 2 when m's signature
 * does not match it (tampered with: nothing it lists is read, see
 * vfs_manifest_check, and what it does not list is left out too, as
 * `dsfs cat` refuses all of it); 0 (no log line), or -ENOMEM. */
int vfs_manifest_binds(struct vfs *v, const struct vnode *snap, const struct ds_manifest *m);
/* Whether file of snapshot snaprel is left out as one manifest m (that
 * binds, vfs_manifest_binds) does not list; logs it. */
bool vfs_unlisted(const struct ds_manifest *m, const char *snaprel, const char *file);
/* Whether file name of snapshot p is being written here: an archive, or
 * notes (also those a create made, which no manifest holds yet). */
bool vfs_writing_child(struct vfs *v, const struct vnode *p, const char *name);
/* Logs that archive what is encrypted with key fingerprint fp, not the
 * mount's, and returns -EKEYREJECTED. */
int vfs_key_rejected(const struct vfs *v, const char *what, const char *fp);

/* A child node of p (not yet in the table). */
struct vnode *vfs_child_new(const struct vnode *p, enum vkind kind, const char *name);
void vfs_node_free(struct vnode *n);
/* Puts n in the table (or refreshes the node of the same path already
 * there, freeing n), counts a kernel reference and fills *ret. */
void vfs_node_publish(struct vfs *v, struct vnode *n, struct vfs_entry *ret);

/* --- writing (vwrite.c, vwfile.c) --- */

/* Content of a file being written (vwfile.c); see there. Thread-safe; blk
 * is taken around calls on b. */
struct vwfile;
struct ds_backup;
int vw_new(struct ds_backup *b, pthread_mutex_t *blk, const struct ds_reader *rd,
	   const struct ds_crypt *crypt, int snapfd, const char *server, struct vwfile **ret);
ssize_t vw_write(struct vwfile *w, const void *buf, size_t len, uint64_t off);
ssize_t vw_read(struct vwfile *w, void *buf, size_t len, uint64_t off);
int vw_truncate(struct vwfile *w, uint64_t size);
uint64_t vw_size(struct vwfile *w);
int vw_error(struct vwfile *w);
/* Commits the archive (index or blob) into the backup's manifest; the
 * server file name it got goes to ret_server. */
int vw_finish(struct vwfile *w, char *ret_server, size_t len);
void vw_free(struct vwfile *w);
/* Waits until every chunk written so far is in the chunk store. */
void vw_wait(struct vwfile *w);
/* Joins the encoding workers (after the last vw_free). */
void vw_pool_stop(void);

/* Open writable handles (vfile.c keeps one per open file). */
int vwo_join(struct vfs *v, struct vnode *n, struct vwopen **ret); /* -EAGAIN: finished */
/* append: the handle was opened with O_APPEND (notes go to their end,
 * whatever offset the kernel's idea of their size gave). */
ssize_t vwo_write(struct vfs *v, struct vwopen *wo, const void *buf, size_t len, uint64_t off,
		  bool append);
ssize_t vwo_read(struct vwopen *wo, void *buf, size_t len, uint64_t off);
int vwo_truncate(struct vwopen *wo, uint64_t size);
int vwo_flush(struct vfs *v, struct vwopen *wo);
int vwo_fsync(struct vfs *v, struct vwopen *wo);
void vwo_release(struct vfs *v, struct vwopen *wo);
/* Notes handle for a snapshot's "notes" (trunc: start empty). */
int vwo_notes(struct vfs *v, struct vnode *n, bool trunc, struct vwopen **ret);
/* Handle for writes into .protected: accepted and dropped. */
int vwo_null(struct vfs *v, struct vnode *n, struct vwopen **ret);
/* Size a VK_WFILE node reports. Lock held. */
uint64_t vwo_size(const struct vwopen *wo);
/* Waits (lock held) until node n is no longer being finished. */
void vwo_wait(struct vfs *v, struct vnode *n);
/* Whether the snapshot of node n was made or is being written by this
 * mount in its store's current directory (metadata changes on its files
 * are accepted and ignored). */
bool vwrite_owned(struct vfs *v, const struct vnode *n);
/* Whether this mount holds the lock of node n's snapshot for writing it:
 * in any of its store's directories, as the locks are by store name. */
bool vwrite_holds_lock(struct vfs *v, const struct vnode *n);
/* Removes temp files of interrupted writers of store s (writable mounts). */
void vwrite_cleanup_store(struct vfs *v, struct vstore *s);
/* Notes written into snapshot snaprel of st, made by this mount, before
 * any of its archives was committed (no manifest holds them yet): a
 * malloc'ed copy in *ret, or NULL when there are none. 0 or -ENOMEM. */
int vwrite_pending_notes(struct vfs *v, const struct vstore *st, const char *snaprel,
			 char **ret);
/* Names of the files being written into snapshot snaprel of st, and
 * "notes" while notes wait for its first archive. */
int vwrite_names(struct vfs *v, const struct vstore *st, const char *snaprel,
		 struct ds_strv *ret);
/* At unmount, first: releases the files written through the mount whose
 * processes closed them (a FLUSH after their last write) but whose RELEASE
 * the kernel dropped: an unmount right after close(2) ends the connection
 * with the release still queued. The last handle of an archive commits it,
 * as that request would have. */
void vfile_release_closed(struct vfs *v);
/* At unmount: abandons archives the kernel never released, the rest. */
void vwrite_shutdown(struct vfs *v);
/* Frees the files the kernel never released (the mount was torn down
 * before their RELEASE arrived), after vwrite_shutdown and with no
 * prefetch left in flight. Logs how many there were. */
void vfile_shutdown(struct vfs *v);
/* An open file for writing wo (vfile.c); the file owns one reference. */
int vfile_new_writing(struct vfs *v, struct vwopen *wo, bool append, struct vfile **ret);
/* The file's writable handle, or NULL. */
struct vwopen *vfile_writing(const struct vfile *f);

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
/* The same for child i of d, an open listing of p with ents[i] filled:
 * decoded where the listing found it, without a search of p's goodbye
 * table. */
int vpxar_lookup_child(struct vfs *v, const struct vnode *p, const struct vfs_dir *d, size_t i,
		       struct vnode *n);
/* vfs_dir_fill of pxar directory p (d->lock held): opens d->pxd (setting
 * d->n and d->ents) if not yet, then decodes entries up to upto. */
int vpxar_dir_fill(struct vfs *v, const struct vnode *p, struct vfs_dir *d, size_t upto);
/* What opendir of an archive's directory checks without listing it: the
 * archive is open (or the refusal's errno) and the node a directory whose
 * goodbye table is in place (-ENOTDIR, -EIO). */
int vpxar_check_dir(struct vfs *v, const struct vnode *p);
int vpxar_readlink(struct vfs *v, const struct vnode *n, char *buf, size_t len);
/* Opens the stream range holding a file's content: an index (owned by the
 * caller) and the range [*ret_base, *ret_base + n->pe.size). */
int vpxar_open_content(struct vfs *v, const struct vnode *n, const struct ds_lookup *lk,
		       struct ds_index **ret_idx, uint64_t *ret_base,
		       uint64_t *ret_size);
int vpxar_xattrs(struct vfs *v, const struct vnode *n, ds_pxar_xattr_fn fn, void *ud);
void varchive_ref(struct varchive *ar);
void varchive_unref(struct varchive *ar);
/* Closes every archive of store s (refusal), or of all stores (s == NULL,
 * at unmount): its reader is released. */
void vpxar_close_store(struct vfs *v, struct vstore *s);
/* Inode number of a pxar entry (hardlinks share their target's). */
uint64_t vpxar_ino(const struct vnode *archive_node, uint64_t entry_off);

#endif
