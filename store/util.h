/* util — small shared helpers of store/: digests as values, hex, little-endian
 * access, SHA-256 and CRC-32 wrappers, whole-file reads, the PBS atomic-replace
 * protocol, and RFC 3339 snapshot times.
 *
 * Not for: anything that knows a PBS format (blobs, indexes, manifests live in
 * their own modules). Every function here is thread-safe unless it says not.
 */
#ifndef DSFS_STORE_UTIL_H
#define DSFS_STORE_UTIL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>

#define DS_DIGEST_LEN 32
#define DS_DIGEST_HEX_LEN 64

/* A chunk digest or any other SHA-256 value. Plain value type. */
struct ds_digest {
	uint8_t b[DS_DIGEST_LEN];
};

/* A chunk file as it was when it was verified whole: while the file under
 * the chunk's name still has this identity, it holds the bytes that were
 * verified (writing, truncating, replacing or renaming it, even touching its
 * times, moves its ctime). size 0: no identity. */
struct ds_chunk_file {
	uint64_t dev, ino, size;
	int64_t mtime_ns, ctime_ns;
	bool plain; /* a plain blob: its bytes at DS_BLOB_HEADER_LEN; else zstd */
};

/* The same file: identity only (plain is what was read from it). */
static inline bool ds_chunk_file_same(const struct ds_chunk_file *a, const struct ds_chunk_file *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

#define DS_KIB (UINT64_C(1) << 10)
#define DS_MIB (UINT64_C(1) << 20)
/* Limits from spec §2.7: decoded chunk and blob payload sizes. */
#define DS_MAX_CHUNK_SIZE (16 * DS_MIB)
#define DS_MAX_BLOB_SIZE (128 * DS_MIB)

#define DS_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline uint64_t ds_le64(const void *p)
{
	const uint8_t *b = p;
	return (uint64_t)b[0] | (uint64_t)b[1] << 8 | (uint64_t)b[2] << 16 |
	       (uint64_t)b[3] << 24 | (uint64_t)b[4] << 32 | (uint64_t)b[5] << 40 |
	       (uint64_t)b[6] << 48 | (uint64_t)b[7] << 56;
}

static inline uint32_t ds_le32(const void *p)
{
	const uint8_t *b = p;
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static inline void ds_put_le64(void *p, uint64_t v)
{
	uint8_t *b = p;
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static inline void ds_put_le32(void *p, uint32_t v)
{
	uint8_t *b = p;
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static inline bool ds_digest_eq(const struct ds_digest *a, const struct ds_digest *b)
{
	return memcmp(a->b, b->b, DS_DIGEST_LEN) == 0;
}

/* Writes 2*n lowercase hex characters and a NUL to out (2*n+1 bytes). */
void ds_hex_encode(const void *in, size_t n, char *out);

/* Parses exactly 2*n hex characters (either case) from hex into out; hex must
 * be NUL-terminated right after them. Returns 0 or -EINVAL. */
int ds_hex_decode(const char *hex, void *out, size_t n);
/* The value of one hex digit (either case), or -1. */
int ds_hex_digit(char c);

/* Digest <-> 64-character lowercase hex. out must hold 65 bytes. */
void ds_digest_to_hex(const struct ds_digest *d, char out[DS_DIGEST_HEX_LEN + 1]);
int ds_digest_from_hex(const char *hex, struct ds_digest *ret);

/* SHA-256 of one buffer (OpenSSL). Never fails for valid arguments. */
void ds_sha256(const void *data, size_t len, struct ds_digest *ret);

/* Incremental SHA-256 for streams. _new returns NULL on ENOMEM. */
struct ds_sha256;
struct ds_sha256 *ds_sha256_new(void);
void ds_sha256_update(struct ds_sha256 *h, const void *data, size_t len);
void ds_sha256_final(struct ds_sha256 *h, struct ds_digest *ret); /* then reusable */
void ds_sha256_free(struct ds_sha256 *h);                         /* accepts NULL */

/* The uid and gid of user "backup", PBS's service user, looked up once;
 * (uid_t)-1 and (gid_t)-1 when there is none. */
void ds_backup_user(uid_t *ret_uid, gid_t *ret_gid);
/* Gives fd, a file or directory of PBS's that dsfs made (or found root's),
 * to the backup user (when there is one; only root may chown, EPERM is no
 * error) and exactly mode, through the descriptor: by name a link put in
 * its place would be followed. what names it in the warning a failed
 * chown logs. */
void ds_give_to_backup(int fd, mode_t mode, const char *what);

/* zlib CRC-32 (reflected 0xEDB88320, init/xorout 0xFFFFFFFF). */
uint32_t ds_crc32(const void *data, size_t len);
/* Continues a CRC-32: ds_crc32_update(ds_crc32(a), b) == ds_crc32(a b);
 * start from 0. */
uint32_t ds_crc32_update(uint32_t crc, const void *data, size_t len);

/* Opens path (relative to dirfd, or AT_FDCWD) read-only and checks that it
 * is a regular file; *ret_st gets its stat. Relative to a directory
 * descriptor (a file inside a datastore) a symlink as the last component is
 * refused with -ELOOP: datastores are writable by PBS's backup user and
 * dsfs runs as root, so a link must not make it read a host file. With
 * AT_FDCWD (a path a user gave) links are followed. The open never waits:
 * a FIFO (or a device that would) is refused like any other non-regular
 * file. Returns the descriptor (caller closes; O_NONBLOCK is set on it,
 * which reads of a regular file ignore) or -errno: -EISDIR for a
 * directory, -EINVAL for anything else that is not a regular file. */
struct stat;
int ds_open_regular_at(int dirfd, const char *path, struct stat *ret_st);

/* Opens directory rel below dirfd (a datastore's base or .chunks), one
 * component at a time, following no symlink, not even in the middle of
 * rel: the datastore is writable by PBS's backup user and dsfs runs as
 * root, so a link put in place of a type, group or chunk prefix directory
 * must not lead root to make, give away or remove files elsewhere. "" is
 * dirfd itself (a new descriptor); an absolute rel and empty, "." and ".."
 * components ("a//b", "./a") are refused (-EINVAL).
 * Returns the descriptor (caller closes) or -errno: -ELOOP (or -ENOTDIR)
 * where a component is a link or no directory. */
int ds_open_dir_at(int dirfd, const char *rel);
/* ds_open_dir_at that, with mkdir_mode not 0, makes the directories that
 * are missing with that mode and gives them to uid:gid (not when uid is
 * (uid_t)-1). */
int ds_walk_dir_at(int dirfd, const char *rel, mode_t mkdir_mode, uid_t uid, gid_t gid);
/* Opens the directory holding rel's last component as ds_open_dir_at does
 * and points *ret_leaf at that component inside rel, for an *at() call
 * (with AT_SYMLINK_NOFOLLOW or O_NOFOLLOW where it applies) on the leaf.
 * Returns the descriptor or -errno; -EINVAL when the leaf is empty, "."
 * or "..". */
int ds_open_parent_at(int dirfd, const char *rel, const char **ret_leaf);
/* unlinkat(dirfd, rel, flags) with rel's directories walked as
 * ds_open_parent_at does. 0 or -errno. */
int ds_unlink_at(int dirfd, const char *rel, int flags);

/* Reads a whole file, refusing files larger than max bytes (-EFBIG).
 * dirfd may be AT_FDCWD. On success *ret_buf is malloc'ed (caller frees) and
 * NUL-terminated one byte past *ret_len. Returns 0 or -errno. */
int ds_read_file_at(int dirfd, const char *path, size_t max, uint8_t **ret_buf,
		    size_t *ret_len);

/* Reads fd from where it is to its end (a file, pipe or device), refusing
 * more than max bytes (-EFBIG); hint is the expected size (0: unknown).
 * A read interrupted by a signal is retried unless stop (may be NULL)
 * is set: then -EINTR, so that a stalled pipe does not outlast the
 * signal meant to stop the caller. *ret_buf as for ds_read_file_at.
 * Returns 0 or -errno. */
int ds_read_fd(int fd, size_t hint, size_t max, const volatile sig_atomic_t *stop,
	       uint8_t **ret_buf, size_t *ret_len);

/* write(2) / pwrite(2) until done, retrying EINTR. Returns 0 or -errno. */
int ds_write_all(int fd, const void *buf, size_t len);
int ds_pwrite_all(int fd, const void *buf, size_t len, off_t off);

/* Who files and directories dsfs creates inside a datastore belong to:
 * run as root, user backup (PBS's daemons run as backup and must touch,
 * rewrite and remove them: GC's utimensat of a chunk's atime alone, with
 * the mtime omitted, is refused to anyone but the file's owner); otherwise
 * (uid_t)-1 and (gid_t)-1, the files stay the caller's. */
void ds_datastore_owner(uid_t *ret_uid, gid_t *ret_gid);
/* Gives the file or directory fd, just created in a datastore, to
 * ds_datastore_owner. 0 or -errno. */
int ds_own_fd(int fd);
/* Raises the soft limit of open files to want, or to the hard limit when
 * that is lower (RLIM_INFINITY: to the hard limit); never lowers it. For
 * programs that hold a descriptor per open file or per directory level
 * and poll, never select. Best effort: a failure changes nothing. */
void ds_raise_fd_limit(rlim_t want);
/* The same for name relative to dirfd (a symlink is not followed). */
int ds_own_at(int dirfd, const char *name);
/* mkdirat(dirfd, name, mode) of a directory in a datastore, with exactly
 * that mode whatever the umask, given to ds_datastore_owner (removed again
 * if that fails). 0 or -errno (-EEXIST
 * when it exists: an existing directory is left as it is). */
int ds_mkdir_own_at(int dirfd, const char *name, mode_t mode);

/* PBS's replace_file (spec §1.8): writes buf to "<name with last extension
 * replaced by tmp_XXXXXX>" in dirfd (O_EXCL via mkostemp), fchmod mode, fsync
 * if do_fsync, rename over name, then fsync dirfd if do_fsync. The new file is
 * a datastore's: it belongs to ds_datastore_owner. On failure the temp file
 * is unlinked and the target is untouched. Returns 0 or -errno. */
int ds_replace_file_at(int dirfd, const char *name, const void *buf, size_t len,
		       mode_t mode, bool do_fsync);
/* The same, the new file owned by uid:gid (fchown before the rename; (uid_t)-1
 * leaves it the caller's). */
int ds_replace_file_owned_at(int dirfd, const char *name, const void *buf, size_t len,
			     mode_t mode, uid_t uid, gid_t gid, bool do_fsync);

/* Creates name (relative to dirfd, which must not exist) with content buf,
 * owned by ds_datastore_owner,
 * never visible half-written and never leaving a temp file behind after a
 * crash: the data goes to an unnamed O_TMPFILE that is linked as name
 * (a named temp file renamed with RENAME_NOREPLACE where the filesystem has
 * no O_TMPFILE). Returns 0, -EEXIST when name exists, or -errno. */
int ds_create_file_at(int dirfd, const char *name, const void *buf, size_t len, mode_t mode,
		      bool do_fsync);

/* fsync the directory that holds name (relative to dirfd). 0 or -errno. */
int ds_fsync_parent_at(int dirfd, const char *name);

/* The temp name PBS uses for name: last extension replaced by suffix
 * ("index.json.blob" + "tmp_fidx" → "index.json.tmp_fidx"; no extension →
 * "name.suffix"). Writes at most outlen bytes. Returns 0 or -ENAMETOOLONG. */
int ds_tmp_name(const char *name, const char *suffix, char *out, size_t outlen);

/* Snapshot times: "YYYY-MM-DDTHH:MM:SSZ" (exactly 20 chars) <-> epoch seconds.
 * format returns -EINVAL for epochs outside years 0..9999; parse accepts only
 * the strict 20-character Z form and returns -EINVAL otherwise. */
#define DS_TIME_LEN 20
int ds_time_format(int64_t epoch, char out[DS_TIME_LEN + 1]);
int ds_time_parse(const char *s, int64_t *ret_epoch);

/* A size as options take it: decimal digits with an optional suffix K, M
 * or G (either case; powers of 1024) and nothing after it. Returns 0 and
 * the size in bytes, or -EINVAL (no digits, a sign, junk after them, or a
 * value that does not fit in a size_t). */
int ds_parse_size(const char *s, size_t *ret);

/* snprintf into a fixed buffer; -ENAMETOOLONG when truncated. */
int ds_path_fmt(char *out, size_t outlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Monotonic clock in nanoseconds. */
uint64_t ds_now_ns(void);

#endif
