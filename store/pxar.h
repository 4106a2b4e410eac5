/* pxar — random-access decoder for pxar archives v1 and v2 (split
 * .mpxar + .ppxar), spec pxar-format.md.
 *
 * The archive is read through caller-supplied sources (pread callbacks): for
 * PBS archives, the decoded stream of a dynamic index. Directories are
 * opened from their goodbye table (the root from the end of the stream);
 * names are looked up through the goodbye table's binary search tree
 * (SipHash-2-4 via OpenSSL); file data is read at any offset without reading
 * other files. In a split archive, the payload source is read by _open
 * (its start and tail markers, 16 bytes each) and then only for file
 * content (ds_pxar_read, ds_pxar_check_content).
 *
 * Every inconsistency (bad header, sizes beyond the stream or the parent,
 * goodbye offsets out of range, loops, hardlinks pointing forward or to a
 * non-file) gives -EIO with one log line naming the offset; nothing ever
 * reads outside the stream or loops forever.
 *
 * Not for: where the stream bytes come from (chunk cache, files), nor
 * encoding (pxar_encoder.h).
 * Thread-safety: a struct ds_pxar is immutable after _open except for its
 * lazily built hardlink index (internally locked); all functions may be
 * called concurrently. The sources must be thread-safe.
 */
#ifndef DSFS_STORE_PXAR_H
#define DSFS_STORE_PXAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A byte stream: pread fills buf with exactly len bytes at off (or fails
 * with -errno); size is the stream length. advise (may be NULL) is a hint
 * that a read at off will come soon, in increasing order within a listing;
 * off is not checked and may lie beyond size. */
struct ds_pxar_source {
	int (*pread)(void *ctx, void *buf, size_t len, uint64_t off);
	uint64_t size;
	void *ctx;
	void (*advise)(void *ctx, uint64_t off);
};

struct ds_pxar;

/* One entry (directory, file, symlink, device, fifo, socket). A hardlink is
 * returned resolved: the target's entry, with `hardlink` set. */
struct ds_pxar_entry {
	uint64_t entry_off;   /* offset of the ENTRY item: the identity of the entry */
	uint64_t end;         /* end of its span (a directory: end of its goodbye table) */
	uint64_t goodbye_off; /* directories: offset of the GOODBYE header */
	mode_t mode;          /* full st_mode */
	uint64_t flags;       /* pxar stat flags (chattr) */
	uint32_t uid, gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint64_t size;        /* regular files: content length; symlinks: target length */
	uint64_t rdev_major, rdev_minor; /* devices */
	/* Internal: where the content is (v1: in the metadata stream, v2: in
	 * the payload stream, after the PAYLOAD header); attribute range. */
	uint64_t data_off;
	bool data_in_payload;
	uint64_t attrs_off, attrs_end;
	uint64_t link_off; /* symlink target item content */
	bool hardlink;     /* reached through a HARDLINK item */
};

/* Opens an archive: v1 (payload == NULL) or v2 split (metadata + payload).
 * Reads the root's goodbye tail and ENTRY, and the payload stream's
 * PAYLOAD_START_MARKER at 0 and PAYLOAD_TAIL_MARKER at its end (a marker
 * the source cannot read passes). Errors: -EIO malformed (logged),
 * -EINVAL a v2 archive without payload source or vice versa, -ENOMEM, or
 * the source's -errno. */
int ds_pxar_open(const struct ds_pxar_source *meta, const struct ds_pxar_source *payload,
		 struct ds_pxar **ret);
void ds_pxar_free(struct ds_pxar *px); /* accepts NULL */

/* 1 or 2. */
int ds_pxar_format_version(const struct ds_pxar *px);
/* The root directory. */
void ds_pxar_root(const struct ds_pxar *px, struct ds_pxar_entry *ret);

/* Looks up name (len bytes, raw, not NUL-terminated) in directory dir.
 * -ENOENT if absent (also for "", ".", "..", names with '/' or NUL),
 * -ENAMETOOLONG beyond 4096 bytes, -ENOTDIR if dir is not a directory,
 * -EIO malformed. */
int ds_pxar_lookup(struct ds_pxar *px, const struct ds_pxar_entry *dir, const char *name,
		   size_t len, struct ds_pxar_entry *ret);

/* Calls fn for every child of dir, in the order the children lie in the
 * archive (for archives written by PBS and dsfs: sorted by name), with the
 * raw name (not NUL-terminated) and the decoded (hardlink-resolved) entry.
 * fn returns 0 to go on, > 0 to stop (then returned), < 0 to abort with that
 * errno. start skips the first `start` children (for readdir offsets). */
typedef int (*ds_pxar_dir_fn)(void *ud, const char *name, size_t len,
			      const struct ds_pxar_entry *e);
int ds_pxar_readdir(struct ds_pxar *px, const struct ds_pxar_entry *dir, size_t start,
		    ds_pxar_dir_fn fn, void *ud);
/* Number of children of dir. */
int ds_pxar_child_count(struct ds_pxar *px, const struct ds_pxar_entry *dir, size_t *ret);

/* A directory opened for listing child by child, in the order of
 * ds_pxar_readdir: its goodbye table, read and sorted once (24 bytes a
 * child). A reader that lists a page at a time decodes each page's
 * children when it needs them. It holds no reference to px: any ds_pxar of
 * the same archive (reopened) can decode its children. */
struct ds_pxar_dir;
/* -ENOTDIR, -EIO malformed, -ENOMEM, or the source's -errno. */
int ds_pxar_dir_open(struct ds_pxar *px, const struct ds_pxar_entry *dir,
		     struct ds_pxar_dir **ret);
size_t ds_pxar_dir_count(const struct ds_pxar_dir *d);
#define DS_PXAR_NAME_MAX 4096 /* a file name's bytes, at most */
/* Decodes child i (< count, else -EINVAL) into name (DS_PXAR_NAME_MAX + 1
 * bytes; *ret_len without the NUL it gets) and *ret, and advises the source
 * of the children after it: of the next few when i == from, the first of a
 * run of calls for from, from + 1, ..., else of one more. 0 or -errno as
 * ds_pxar_readdir. */
int ds_pxar_dir_child(struct ds_pxar *px, const struct ds_pxar_dir *d, size_t i, size_t from,
		      char *name, size_t *ret_len, struct ds_pxar_entry *ret);
void ds_pxar_dir_free(struct ds_pxar_dir *d); /* accepts NULL */

/* Reads up to len bytes of a regular file's content at off. Returns the
 * bytes read (0 at EOF) or -errno: -EISDIR directory, -EINVAL not a regular
 * file, -EIO malformed. In a split archive every call first checks the
 * PAYLOAD header in front of the data (type, full_size == size + 16). */
ssize_t ds_pxar_read(struct ds_pxar *px, const struct ds_pxar_entry *e, void *buf, size_t len,
		     uint64_t off);
/* Checks that a regular file's content lies where its entry says: within
 * the metadata stream (v1), or, in a split archive, behind a PAYLOAD
 * header of its size in the payload stream (spec §3.4: the offset of a
 * PAYLOAD_REF is only trusted through that header). For readers that fetch
 * the range [data_off, data_off + size) themselves. 0, -EISDIR directory,
 * -EINVAL not a regular file, -EIO (logged), or the source's -errno.
 * unreadable_ok: a header that cannot be read (its chunk damaged or
 * missing) passes, for readers whose reads of that chunk fail on their own
 * and whose other ranges must stay readable. */
int ds_pxar_check_content(struct ds_pxar *px, const struct ds_pxar_entry *e, bool unreadable_ok);
/* A symlink's target into buf (NUL-terminated). -ERANGE if too small,
 * -EINVAL not a symlink. Returns the target length. */
int ds_pxar_readlink(struct ds_pxar *px, const struct ds_pxar_entry *e, char *buf, size_t len);

/* Extended attributes as Linux shows them: every XATTR item, FCAPS as
 * "security.capability", the access ACL as "system.posix_acl_access" and
 * the default ACL as "system.posix_acl_default" (Linux's xattr encoding:
 * version 2 header, then {u16 tag, u16 perm, u32 id} entries in canonical
 * order incl. USER_OBJ/GROUP_OBJ/MASK/OTHER derived from the mode as the
 * kernel does). fn returns 0 to go on, non-zero to stop (returned).
 * ACL rules, as the PBS client restores them: the access ACL exists when
 * any ACL_USER/ACL_GROUP/ACL_GROUP_OBJ item does; with ACL_GROUP_OBJ the
 * mode's group bits are the mask, without it they are GROUP_OBJ and (when
 * named entries exist) the mask. The default ACL exists only with an
 * ACL_DEFAULT item; its NO_MASK fields are left out, except that a missing
 * mask next to named entries is computed as setfacl does (union of the
 * group class). Name and value are borrowed for the call. */
typedef int (*ds_pxar_xattr_fn)(void *ud, const char *name, const void *value, size_t len);
int ds_pxar_xattrs(struct ds_pxar *px, const struct ds_pxar_entry *e, ds_pxar_xattr_fn fn,
		   void *ud);

/* The true link count of a regular file (1 + hardlinks pointing at it); 1
 * for anything else. The first call scans the metadata stream once (headers
 * only; v1 payloads are skipped) and keeps an index; a malformed stream
 * gives -EIO from then on. Returns >= 1 or -errno. */
int ds_pxar_nlink(struct ds_pxar *px, const struct ds_pxar_entry *e);

/* The hardlink index from a list instead of the scan: targets holds the
 * target ENTRY offset (ds_pxar_entry.entry_off) of every hardlink of the
 * archive, one per hardlink. Later _nlink calls use it and never scan.
 * Does nothing when the index exists already. Returns 0 or -ENOMEM. */
int ds_pxar_set_links(struct ds_pxar *px, const uint64_t *targets, size_t n);

/* The hardlink index from the snapshot's catalog (catalog.pcat1): every 'h'
 * entry under the catalog directory named catalog_name ("root.pxar.didx")
 * is looked up in the archive, which must give a hardlink, and counted for
 * its target; then _set_links. Costs the catalog and one lookup per
 * directory holding a hardlink, where the scan reads the whole metadata
 * stream. The catalog is trusted to list every hardlink (PBS's client and
 * dsfs write one 'h' per HARDLINK item). Returns 0; -ENOENT no such
 * directory in the catalog; -EIO malformed catalog, or it does not match
 * the archive (logged); -ENOMEM; or a source error. On failure nothing is
 * set: _nlink scans as before. */
int ds_pxar_links_from_catalog(struct ds_pxar *px, const struct ds_pxar_source *catalog,
			       const char *catalog_name);

/* Walks the tree of the directory named archive ("root.pxar.didx") in the
 * root of a catalog read through src, depth first in catalog order: enter
 * for a directory before its entries, leave after them, entry for anything
 * else (type 'f', 'l', 'h', 'b', 'c', 'p' or 's'). Names are raw bytes,
 * borrowed for the call. Callbacks return 0 to go on or -errno to stop
 * with it. Returns 0, -ENOENT no such directory, -EIO malformed (logged),
 * or -errno of the source or a callback. */
struct ds_pxar_catalog_visitor {
	int (*enter)(void *ud, const char *name, size_t len);
	int (*leave)(void *ud);
	int (*entry)(void *ud, char type, const char *name, size_t len);
};
int ds_pxar_catalog_walk(const struct ds_pxar_source *src, const char *archive,
			 const struct ds_pxar_catalog_visitor *vis, void *ud);

/* SipHash-2-4 of a name with pxar's keys (spec §2.4). Returns 0 (logged)
 * only if OpenSSL cannot compute it. */
uint64_t ds_pxar_hash(const void *name, size_t len);

#endif
