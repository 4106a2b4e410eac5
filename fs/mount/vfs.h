/* vfs — what mount.dsfs shows, without FUSE (DESIGN.md "What a user sees").
 *
 * The tree: the root (one directory per datastore of a datastore.cfg, or one
 * datastore itself), then the datastore's on-disk hierarchy (ns/, vm/, ct/,
 * host/, groups, snapshots), each group with `latest`, `owner` and `notes`,
 * and in each snapshot its archives without the server extension (images,
 * decoded streams, decoded blobs), `notes` and `.protected`.
 *
 * Every operation returns 0 (or a count) or a negative errno and is meant to
 * be answered exactly once by the FUSE layer (ops.c). Lookups, getattr,
 * readdir and readlink acquire a lookup handle; open for reading acquires a
 * read handle (kept in the open file until release); open for writing
 * acquires a write handle. Refusals come from those acquisitions.
 *
 * Inode numbers are a hash of (datastore name, path in the mount), so they
 * are stable across mounts. Nodes live while the kernel holds a lookup
 * reference (vfs_forget) — the root lives forever.
 *
 * Thread-safety: all functions are thread-safe.
 */
#ifndef DSFS_FS_VFS_H
#define DSFS_FS_VFS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

struct ds_crypt;
struct ds_chunk_cache;
struct vfs;
struct vfile;

#define VFS_ROOT_INO 1

struct vfs_options {
	const char *source;      /* as given on the command line */
	const char *config_path; /* config file: multi-store or by-name mode */
	const char *store_name;  /* by-name mode: the datastore */
	const char *store_dir;   /* directory mode: the datastore's directory */
	const char *store_dir_name; /* and its name (ds_config_dir_name), or NULL */
	const struct ds_crypt *crypt; /* -o keyfile=, or NULL */
	const char *owner;       /* -o owner=: of new groups (NULL: root@pam) */
	bool read_only;
	bool track_operations;   /* PBS active-operations file */
	size_t cache_size;       /* bytes of decoded chunks */
	/* -o verify=always: every chunk load computes the digest; no chunk
	 * file is trusted by its identity (vfs_load_chunk). */
	bool verify_always;
};

/* Builds the view. Loads the config (when there is one) and checks that a
 * datastore given by name exists. Returns 0 or -errno (logged). */
int vfs_new(const struct vfs_options *opt, struct vfs **ret);
void vfs_free(struct vfs *v);

struct vfs_entry {
	uint64_t ino;
	uint64_t generation; /* fits in 32 bits: the kernel keeps only those */
	struct stat st;
	double entry_timeout, attr_timeout;
};

/* Looks name up in directory parent; on success the node's lookup count is
 * incremented (the kernel's reference) and *ret filled. */
int vfs_lookup(struct vfs *v, uint64_t parent, const char *name, struct vfs_entry *ret);
/* Drops n kernel references. */
void vfs_forget(struct vfs *v, uint64_t ino, uint64_t n);
int vfs_getattr(struct vfs *v, uint64_t ino, struct vfs_entry *ret);
/* The longest symlink target a node has, without its NUL: pxar's limit
 * (the latest links are shorter). */
#define VFS_LINK_MAX 4096
/* A symlink's target into buf, NUL-terminated. Returns 0, -EINVAL when ino
 * is no symlink, -ENAMETOOLONG (logged) when the target and its NUL do not
 * fit in len, or the errno of a refusal or a damaged archive. */
int vfs_readlink(struct vfs *v, uint64_t ino, char *buf, size_t len);

/* Directory listing: a snapshot of the entries, taken at opendir. A
 * directory of a pxar archive is decoded as it is read instead, a page at a
 * time (vfs_dir_fill): the kernel keeps such listings (they never change)
 * and answers a later readdir from its cache after sending only OPENDIR;
 * and READDIRPLUS then looks up the entries of a page right after they
 * were decoded, while their chunks are cached, so `ls -l` of a directory
 * larger than the chunk cache is one pass over it, not two. */
struct vfs_dirent {
	char *name;
	uint64_t ino;
	mode_t type; /* S_IFDIR, S_IFREG, S_IFLNK */
	bool hidden; /* not listed: a pxar name longer than NAME_MAX */
};
struct ds_pxar_dir;
struct vfs_dir {
	struct vfs_dirent *ents;
	size_t n;
	bool cacheable; /* immutable listing (inside a snapshot) */
	/* pxar: ents[0, filled) are decoded, of n once pxd is open. Changed
	 * under lock by vfs_dir_fill only. */
	bool lazy;
	size_t filled;
	struct ds_pxar_dir *pxd;
	struct vfs *v;
	uint64_t ino;
	uint64_t st_ino; /* listed as ".": the directory's inode number */
	uint64_t parent; /* listed as "..": the parent's inode (the root's own) */
	pthread_mutex_t lock;
};
int vfs_opendir(struct vfs *v, uint64_t ino, struct vfs_dir **ret);
/* Makes n known and ents[0, min(upto, n)) filled. 0 or -errno (-EIO, a
 * refusal); after a failure, what was filled stays and the next call tries
 * again. */
int vfs_dir_fill(struct vfs_dir *d, size_t upto);
/* vfs_lookup of listed entry i (< n) of d, for READDIRPLUS: a pxar entry
 * is decoded where the listing found it (ents[i] filled), not searched for
 * by name in the directory's goodbye table, which lies at the directory's
 * end: for a wide directory, in a chunk the listing is far from. */
int vfs_lookup_listed(struct vfs *v, struct vfs_dir *d, size_t i, struct vfs_entry *ret);
void vfs_releasedir(struct vfs_dir *d);

/* Opens a file. flags are open(2)'s. Inside snapshots files are immutable:
 * any write access is refused (-EROFS, after the write handle's own
 * refusals). *ret_keep_cache tells whether kernel page cache may be kept. */
int vfs_open(struct vfs *v, uint64_t ino, int flags, struct vfile **ret, bool *ret_keep_cache);
void vfs_release(struct vfile *f);

/* Reads up to size bytes at off. The data is returned as iovecs pointing
 * into pinned cache entries (zero copy), at most 256 of them (a read
 * spanning more chunks is copied into one buffer); call vfs_read_done after the reply
 * has been sent — after every call, also a failed one (the read holds a
 * reference on f until then). Returns the number of bytes (0 at EOF) or -errno; bytes
 * before a damaged chunk are returned, the damaged range itself gives -EIO. */
struct vfs_read {
	struct iovec *iov;
	size_t n_iov;
	void *priv;
};
ssize_t vfs_read(struct vfile *f, uint64_t off, size_t size, struct vfs_read *ret);
void vfs_read_done(struct vfile *f, struct vfs_read *r);

/* SEEK_DATA / SEEK_HOLE over an image's zero chunks; other whence values
 * and other files: -EINVAL (the kernel handles SEEK_SET/CUR/END). */
int64_t vfs_lseek(struct vfile *f, int64_t off, int whence);

/* getxattr (name != NULL) or listxattr (name == NULL) with the usual size
 * protocol: size 0 asks for the length. Returns the length or -errno
 * (-ENODATA, -ERANGE). */
ssize_t vfs_xattr(struct vfs *v, uint64_t ino, const char *name, char *buf, size_t size);

/* The errno an operation that changes the tree gets: the write handle's
 * refusal, else -EROFS (what exists is immutable). */
int vfs_write_refusal(struct vfs *v, uint64_t ino);

/* The errno of a change that is refused everywhere, also where the tree
 * can be written (a snapshot this mount writes, its files, .protected):
 * there `unsupported` (-EPERM for link, symlink and device nodes, -ENOTSUP
 * for extended attributes, which archives do not keep), elsewhere as
 * vfs_write_refusal. */
int vfs_meta_refusal(struct vfs *v, uint64_t ino, int unsupported);

/* statfs: the filesystem holding the datastore of ino. -ENOENT for a node
 * of no datastore (the root of a multi-store mount), else the refusal of
 * lookups (-ENXIO, -ENOMEDIUM, …) or statvfs's errno. Thread-safe. */
int vfs_statfs(struct vfs *v, uint64_t ino, struct statvfs *ret);

/* --- writing (DESIGN.md "Writes"); each takes a write handle first --- */

/* mkdir: a type directory, "ns", a namespace, a group (TYPE/ID) or a
 * snapshot (RFC 3339 UTC time in a group). -EINVAL for names the spec
 * refuses there, -EEXIST, -EPERM elsewhere. */
int vfs_mkdir(struct vfs *v, uint64_t parent, const char *name, struct vfs_entry *ret);
/* rmdir: forgets a snapshot (-EPERM protected, -EBUSY in use), removes an
 * empty group, namespace or type directory (-ENOTEMPTY). */
int vfs_rmdir(struct vfs *v, uint64_t parent, const char *name);
/* unlink: only a snapshot's .protected (unprotects); -EROFS else. */
int vfs_unlink(struct vfs *v, uint64_t parent, const char *name);
/* Creates a file in a snapshot: an archive being written (NAME.img: fixed
 * index; else blob or dynamic index), "notes", or ".protected". The file is
 * open for writing in *ret_f; its archive is committed when the last handle
 * is released. */
int vfs_create(struct vfs *v, uint64_t parent, const char *name, struct vfs_entry *ret,
	       struct vfile **ret_f);
/* Writes to a file opened for writing. Returns len or -errno. */
ssize_t vfs_write(struct vfile *f, const void *buf, size_t len, uint64_t off);
/* close(2): the first error a write hit, if any (0 else). */
int vfs_flush(struct vfile *f);
/* Whether vfs_flush can return anything but 0: only for files this mount
 * is writing. */
bool vfs_flush_reports(const struct vfile *f);
/* fsync(2): as vfs_flush, then waits until the chunks written so far are
 * in the chunk store and syncs the datastore's filesystem; when written
 * data was lost (a writeback error) -EIO, and the archive is abandoned. */
int vfs_fsync(struct vfile *f);
/* setattr: size (open archives and notes being written), and mode, owner
 * and times (accepted and ignored on files of a snapshot this mount
 * writes); -EROFS for everything else. f may be NULL. */
#define VFS_SET_SIZE 1
#define VFS_SET_META 2
int vfs_setattr(struct vfs *v, uint64_t ino, struct vfile *f, int what, uint64_t size,
		struct vfs_entry *ret);
/* --- change handling, called from the watcher thread --- */

/* Re-reads what changed (config, mount status). For every node whose
 * kernel caches must be dropped, calls inval(ctx, ino, parent, name). */
typedef void (*vfs_inval_fn)(void *ctx, uint64_t ino, uint64_t parent, const char *name);
void vfs_refresh(struct vfs *v, vfs_inval_fn inval, void *ctx);
/* Where the view tells the kernel to drop cached entries and attributes
 * after it changed something itself. */
void vfs_set_notify(struct vfs *v, vfs_inval_fn fn, void *ctx);
/* Descriptors the watcher polls: the config's inotify fd (or -1). */
int vfs_config_fd(struct vfs *v);

#endif
