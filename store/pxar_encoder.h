/* pxar_encoder — writes pxar archives from a directory tree (spec
 * pxar-format.md §9): format v1 (one stream) or v2 (metadata + payload
 * streams), with every entry kind and its metadata (mode, uid, gid,
 * nanosecond mtime, chattr flags, xattrs, POSIX ACLs, file capabilities,
 * project id), hardlinks (st_nlink > 1, keyed by device and inode) and
 * children in byte-sorted order, as the PBS client writes them; and the
 * PBS catalog (catalog.pcat1) of the tree.
 *
 * Output goes to sinks (write callbacks), so archives stream straight into
 * a dynamic-index writer (backup.h) without touching disk.
 *
 * Not for: chunking or storing (the sinks do that).
 * Thread-safety: one encoder per thread.
 */
#ifndef DSFS_STORE_PXAR_ENCODER_H
#define DSFS_STORE_PXAR_ENCODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Appends len bytes; returns 0 or -errno. */
struct ds_pxar_sink {
	int (*write)(void *ctx, const void *buf, size_t len);
	void *ctx;
};

struct ds_pxar_encode_stats {
	uint64_t files, dirs, symlinks, hardlinks, devices, fifos, sockets;
	uint64_t content_bytes;
	uint64_t skipped;  /* unreadable entries (logged) */
	uint64_t excluded; /* entries an exclude pattern left out (not descended) */
};

/* Options of a tree backup. exclude: n_exclude patterns as
 * proxmox-backup-client's --exclude takes them (pxar_exclude.h), borrowed
 * for the call. The file systems whose contents are stored, as that
 * client's --all-file-systems and --include-dev choose them: every one
 * with all_file_systems; else the tree's own and those whose st_dev is
 * one of the n_include_dev of include_dev (borrowed for the call). */
struct ds_pxar_encode_opts {
	const char *const *exclude;
	size_t n_exclude;
	bool all_file_systems;
	const uint64_t *include_dev;
	size_t n_include_dev;
};

/* Encodes the tree at dir. meta receives the archive (v1) or the metadata
 * stream (v2, when payload != NULL: then payload receives the .ppxar
 * stream). catalog (may be NULL) receives a catalog.pcat1 describing the
 * tree under the archive name catalog_name (e.g. "root.pxar.didx").
 * .pxarexclude files are honoured as PBS's client honours them (rules in
 * pxar_exclude.c): entries they exclude are left out and excluded
 * directories not read; the .pxarexclude files themselves are stored
 * unless excluded; a top-level .pxarexclude-cli is never stored.
 * The tree stays on dir's file system, as PBS's client does by default:
 * a directory where another file system is mounted is stored as an empty
 * directory with the mounted root's metadata (logged, "skipping mount
 * point"), unless opts take that file system in (ds_pxar_encode_dir_cat);
 * a mount point of a virtual file system (proc, sysfs, cgroup, devpts,
 * ...) always is, and dir itself on one is refused with -EINVAL. Sockets
 * are stored as sockets.
 * Errors: -errno of reading the tree (the top directory) or of a sink;
 * unreadable entries below are skipped and counted. A read error in the
 * middle of a file's content fails the whole archive with that -errno (its
 * header is already written; zeros would make a silently wrong backup). A
 * file that shrinks or grows while being read is stored with exactly the
 * size stat gave (zero-padded or cut), with a warning, as PBS does.
 * ret_stats (may be NULL) is written on success only. */
int ds_pxar_encode_dir(const char *dir, const struct ds_pxar_sink *meta,
		       const struct ds_pxar_sink *payload, const struct ds_pxar_sink *catalog,
		       const char *catalog_name, struct ds_pxar_encode_stats *ret_stats);

/* The catalog writer (pxar_catalog.c), for snapshots with several pxar
 * archives: PBS keeps one catalog per snapshot whose root block has one
 * 'd' entry per archive. _new writes the magic; _begin_dir/_end_dir open
 * and close a directory (post-order blocks, written at _end_dir); _add
 * adds a non-directory entry of type 'f' (size, mtime seconds), 'l', 'h',
 * 'b', 'c', 'p' or 's' to the open directory; _finish writes the root
 * block and the trailing root offset and may be called once, with no
 * directory open. Names are raw bytes, 1..4095 long (-EINVAL otherwise,
 * also for an unknown type or unbalanced dirs). The first sink error is
 * sticky and returned by every later call. Caller frees with _free
 * (accepts NULL; the sink is borrowed until then). Not thread-safe. */
struct ds_pxar_catalog;
int ds_pxar_catalog_new(const struct ds_pxar_sink *sink, struct ds_pxar_catalog **ret);
int ds_pxar_catalog_begin_dir(struct ds_pxar_catalog *c, const char *name, size_t len);
int ds_pxar_catalog_end_dir(struct ds_pxar_catalog *c);
int ds_pxar_catalog_add(struct ds_pxar_catalog *c, char type, const char *name, size_t len,
			uint64_t size, int64_t mtime);
int ds_pxar_catalog_finish(struct ds_pxar_catalog *c);
void ds_pxar_catalog_free(struct ds_pxar_catalog *c);

/* ds_pxar_encode_dir with an open catalog writer (may be NULL): adds the
 * tree as directory catalog_name to the catalog's root, leaving the
 * catalog open for further archives; and with options (may be NULL).
 * With --exclude patterns, the archive records them as PBS's client does:
 * v1 as the root's last entry .pxarexclude-cli (also in the catalog), v2
 * as the PRELUDE (-EINVAL, logged, when they are not UTF-8). A bad pattern
 * fails with -EINVAL (logged) before anything is written. */
int ds_pxar_encode_dir_cat(const char *dir, const struct ds_pxar_sink *meta,
			   const struct ds_pxar_sink *payload, struct ds_pxar_catalog *cat,
			   const char *catalog_name, const struct ds_pxar_encode_opts *opts,
			   struct ds_pxar_encode_stats *ret_stats);

#endif
