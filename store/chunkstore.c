#include "store/chunkstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/blob.h"
#include "store/crypt.h"
#include "store/log.h"

struct ds_chunkstore {
	int basefd;
	int chunksfd;
	int lockfd; /* -1 unless locked; the only descriptor on .lock, closed
		     * only by _unlock and _free (POSIX record locks die with
		     * any close of the file) */
	char *base;
};

void ds_chunk_relpath(const struct ds_digest *d, char out[DS_CHUNK_RELPATH_LEN])
{
	char hex[DS_DIGEST_HEX_LEN + 1];

	ds_digest_to_hex(d, hex);
	memcpy(out, hex, 4);
	out[4] = '/';
	memcpy(out + 5, hex, DS_DIGEST_HEX_LEN + 1);
}

static bool dir_is_empty_for_store(int dfd)
{
	int fd = dup(dfd);
	DIR *d;
	struct dirent *de;
	bool ok = true;

	if (fd < 0)
		return false;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return false;
	}
	while ((de = readdir(d))) {
		/* PBS accepts dot-files and lost+found in a new store's directory. */
		if (de->d_name[0] == '.' || strcmp(de->d_name, "lost+found") == 0)
			continue;
		ok = false;
		break;
	}
	closedir(d);
	return ok;
}

/* A chunk prefix directory (.chunks/XXXX) as PBS makes it: mode 0750
 * whatever the umask (PBS's verify_chunkstore expects exactly that), owner
 * backup as root. One that exists is left as it is, unless fix: then it is
 * given that mode and owner too (an interrupted init may have made it and
 * stopped before). 0 or -errno. */
static int make_prefix_dir(int chunksfd, const char *name, bool fix)
{
	int fd, r;

	if (mkdirat(chunksfd, name, 0750) < 0) {
		if (errno != EEXIST)
			return -errno;
		if (!fix)
			return 0;
	}
	/* Through a descriptor that is no link: .chunks may be the backup
	 * user's, and chmod and chown by name follow a link put there. */
	fd = openat(chunksfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ELOOP ? -ENOTDIR : -errno;
	r = fchmod(fd, 0750) < 0 ? -errno : ds_own_fd(fd);
	close(fd);
	return r;
}

/* The directory ds_chunkstore_create fills before renaming it to .chunks:
 * a store appears complete or not at all, and an interrupted (or failed)
 * init is finished by the next one. A dot-name, so that PBS and the
 * emptiness check ignore it. */
#define CHUNKS_INIT ".chunks.init"

/* Creates (or, left by an interrupted init, truncates) the empty .lock,
 * 0644, owner backup as root. 0 or -errno. */
static int make_lock_file(int basefd)
{
	struct stat st;
	int fd, r;

	fd = openat(basefd, ".lock", O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode))
		r = -EEXIST;
	else if (ftruncate(fd, 0) < 0)
		r = -errno;
	else if ((r = ds_own_fd(fd)) == 0 && fchmod(fd, 0644) < 0)
		r = -errno; /* umask may have narrowed it */
	close(fd);
	return r;
}

int ds_chunkstore_create(const char *base, void (*progress)(int percent, void *ud), void *ud)
{
	int basefd = -1, chunksfd = -1, r;
	int last = -1;
	struct stat st;

	if (mkdir(base, 0755) < 0 && errno != EEXIST)
		return -errno;
	basefd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (basefd < 0)
		return -errno;
	if (fstatat(basefd, ".chunks", &st, AT_SYMLINK_NOFOLLOW) == 0) {
		ds_err("%s: already a datastore (.chunks exists)", base);
		r = -EEXIST;
		goto out;
	}
	if (!dir_is_empty_for_store(basefd)) {
		ds_err("%s: directory is not empty, refusing to create a datastore in it", base);
		r = -ENOTEMPTY;
		goto out;
	}
	/* Owner backup:backup (as root), as PBS's ChunkStore::create makes
	 * them and verify_chunkstore expects them. */
	if (fchmod(basefd, 0755) < 0 ||
	    (mkdirat(basefd, CHUNKS_INIT, 0750) < 0 && errno != EEXIST)) {
		r = -errno;
		goto out;
	}
	chunksfd = openat(basefd, CHUNKS_INIT, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (chunksfd < 0 || fchmod(chunksfd, 0750) < 0) {
		r = -errno;
		goto out;
	}
	if ((r = ds_own_fd(basefd)) < 0 || (r = ds_own_fd(chunksfd)) < 0)
		goto out;
	for (unsigned i = 0; i < 65536; i++) {
		char name[5];
		int pct = (int)(i * 100 / 65536);

		snprintf(name, sizeof(name), "%04x", i);
		r = make_prefix_dir(chunksfd, name, true);
		if (r < 0)
			goto out;
		if (progress && pct != last)
			progress(pct, ud);
		last = pct;
	}
	if ((r = make_lock_file(basefd)) < 0)
		goto out;
	if (fsync(chunksfd) < 0) {
		r = -errno;
		goto out;
	}
	/* The store appears whole. Nothing replaces a .chunks made since the
	 * check above (a filesystem without RENAME_NOREPLACE: checked again). */
	r = renameat2(basefd, CHUNKS_INIT, basefd, ".chunks", RENAME_NOREPLACE);
	if (r < 0 && (errno == EINVAL || errno == ENOSYS)) {
		if (fstatat(basefd, ".chunks", &st, AT_SYMLINK_NOFOLLOW) == 0)
			errno = EEXIST;
		else
			r = renameat(basefd, CHUNKS_INIT, basefd, ".chunks");
	}
	if (r < 0) {
		r = -errno;
		goto out;
	}
	if (progress)
		progress(100, ud);
	r = fsync(basefd) < 0 ? -errno : 0;
out:
	if (chunksfd >= 0)
		close(chunksfd);
	close(basefd);
	return r;
}

/* The .chunks directory of the datastore at basefd. It may be a link (an
 * admin's, to another disk), followed only if root made it: the datastore
 * directory is the backup user's, and dsfs, run as root, makes prefix
 * directories and chunk files in .chunks and gives them to that user, so a
 * link of the backup user's had root make them wherever it pointed. The
 * link is read through a descriptor of its own, whose owner was checked:
 * one swapped in after the check is never followed. Its target's last
 * component is not followed either. A descriptor or -errno. */
static int open_chunks(int basefd, const char *base)
{
	char target[PATH_MAX];
	struct stat st;
	ssize_t n;
	int fd, lfd;

	fd = openat(basefd, ".chunks", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 || (errno != ENOTDIR && errno != ELOOP))
		return fd >= 0 ? fd : -errno;
	lfd = openat(basefd, ".chunks", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (lfd < 0)
		return -errno;
	if (fstat(lfd, &st) < 0 || !S_ISLNK(st.st_mode)) {
		close(lfd);
		return -ENOTDIR;
	}
	if (st.st_uid != 0) {
		close(lfd);
		ds_err("%s/.chunks: a link that root did not make (its owner is uid %u): not "
		       "followed",
		       base, (unsigned)st.st_uid);
		return -ELOOP;
	}
	n = readlinkat(lfd, "", target, sizeof(target));
	close(lfd);
	if (n < 0)
		return -errno;
	if ((size_t)n >= sizeof(target))
		return -ENAMETOOLONG;
	target[n] = '\0';
	fd = openat(basefd, target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

int ds_chunkstore_open(const char *base, struct ds_chunkstore **ret)
{
	struct ds_chunkstore *cs;
	int r;

	cs = calloc(1, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	cs->basefd = cs->chunksfd = cs->lockfd = -1;
	cs->base = strdup(base);
	if (!cs->base) {
		r = -ENOMEM;
		goto fail;
	}
	cs->basefd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cs->basefd < 0) {
		r = -errno;
		goto fail;
	}
	cs->chunksfd = open_chunks(cs->basefd, base);
	if (cs->chunksfd < 0) {
		r = cs->chunksfd;
		if (r == -ENOENT)
			ds_err("%s: no .chunks directory, not a datastore", base);
		goto fail;
	}
	*ret = cs;
	return 0;
fail:
	ds_chunkstore_free(cs);
	return r;
}

void ds_chunkstore_free(struct ds_chunkstore *cs)
{
	if (!cs)
		return;
	if (cs->lockfd >= 0)
		close(cs->lockfd);
	if (cs->chunksfd >= 0)
		close(cs->chunksfd);
	if (cs->basefd >= 0)
		close(cs->basefd);
	free(cs->base);
	free(cs);
}

int ds_chunkstore_lock_shared(struct ds_chunkstore *cs)
{
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };

	if (cs->lockfd >= 0)
		return 0;
	/* O_RDONLY suffices for F_RDLCK; the store may be read-only mounted. */
	cs->lockfd = openat(cs->basefd, ".lock", O_RDONLY | O_CLOEXEC);
	if (cs->lockfd < 0) {
		int r = -errno;

		ds_err("%s/.lock: cannot open: %s", cs->base, strerror(-r));
		return r;
	}
	if (fcntl(cs->lockfd, F_SETLK, &fl) < 0) {
		int r = -errno;

		close(cs->lockfd);
		cs->lockfd = -1;
		if (r == -EAGAIN || r == -EACCES) {
			ds_err("%s: garbage collection holds the chunk store lock", cs->base);
			return -EBUSY;
		}
		return r;
	}
	return 0;
}

void ds_chunkstore_unlock(struct ds_chunkstore *cs)
{
	/* Closing the only descriptor on .lock releases our record lock. */
	if (cs->lockfd >= 0)
		close(cs->lockfd);
	cs->lockfd = -1;
}

int ds_chunkstore_basefd(const struct ds_chunkstore *cs)
{
	return cs->basefd;
}

/* Logs why the chunk file rel could not be opened or read; returns r. */
static int raw_error(const char *rel, int r)
{
	if (r == -ENOENT)
		ds_err("chunk %s: missing", rel + 5);
	else
		ds_err("chunk %s: %s", rel + 5, strerror(-r));
	return r;
}

int ds_chunkstore_read_raw(struct ds_chunkstore *cs, const struct ds_digest *d,
			   uint8_t **ret_raw, size_t *ret_len)
{
	char rel[DS_CHUNK_RELPATH_LEN];
	uint8_t *raw;
	size_t len;
	int r;

	ds_chunk_relpath(d, rel);
	r = ds_read_file_at(cs->chunksfd, rel, DS_MAX_CHUNK_SIZE + DS_BLOB_ENC_HEADER_LEN, &raw,
			    &len);
	if (r == -EFBIG) {
		ds_err("chunk %s: file larger than the 16 MiB chunk limit", rel + 5);
		return -EBADMSG;
	}
	if (r < 0)
		return raw_error(rel, r);
	if (len == 0) {
		free(raw);
		ds_err("chunk %s: empty file", rel + 5);
		return -EBADMSG;
	}
	*ret_raw = raw;
	*ret_len = len;
	return 0;
}

/* Reads the chunk file into dst when it fits in cap bytes: 1 and its
 * length, 0 when it does not fit (nothing logged), or -errno (logged as
 * ds_chunkstore_read_raw does). */
static int read_raw_into(struct ds_chunkstore *cs, const char *rel, uint8_t *dst, size_t cap,
			 size_t *ret_len)
{
	struct stat st;
	size_t got = 0;
	int fd, r = 1;

	fd = ds_open_regular_at(cs->chunksfd, rel, &st);
	if (fd < 0)
		return raw_error(rel, fd);
	if ((uint64_t)st.st_size > cap) {
		close(fd);
		return 0;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = pread(fd, dst + got, (size_t)st.st_size - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = raw_error(rel, n < 0 ? -errno : -EIO); /* 0: truncated while read */
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	if (r == 1 && got == 0) {
		ds_err("chunk %s: empty file", rel + 5);
		r = -EBADMSG;
	}
	*ret_len = got;
	return r;
}

static void chunk_file_of(const struct stat *st, struct ds_chunk_file *ret)
{
	ret->dev = (uint64_t)st->st_dev;
	ret->ino = (uint64_t)st->st_ino;
	ret->size = (uint64_t)st->st_size;
	ret->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
	ret->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
}

int ds_chunkstore_load(struct ds_chunkstore *cs, const struct ds_digest *d,
		       const struct ds_crypt *c, size_t expect_len, uint8_t *out, size_t cap,
		       size_t *ret_len)
{
	return ds_chunkstore_load_file(cs, d, c, expect_len, out, cap, ret_len, NULL);
}

int ds_chunkstore_load_file(struct ds_chunkstore *cs, const struct ds_digest *d,
			    const struct ds_crypt *c, size_t expect_len, uint8_t *out, size_t cap,
			    size_t *ret_len, struct ds_chunk_file *ret_file)
{
	char hex[DS_DIGEST_HEX_LEN + 1];
	struct ds_digest got;
	uint8_t *raw = NULL, *alloc = NULL;
	size_t raw_len, len;
	int type, r = 0;

	/* An unencrypted chunk is read and decoded straight into out: a plain
	 * one by pread, a zstd one through a small window (ds_blob_decode_fd).
	 * No copy of the encoded chunk is held anywhere, so a load touches
	 * no memory but out's. A chunk this path cannot take (encrypted,
	 * damaged, too large) is read again below, where the fault is named. */
	if (ret_file)
		memset(ret_file, 0, sizeof(*ret_file));
	if (!c) {
		char rel[DS_CHUNK_RELPATH_LEN];
		struct stat st;
		int fd;

		ds_chunk_relpath(d, rel);
		fd = ds_open_regular_at(cs->chunksfd, rel, &st);
		if (fd < 0)
			return raw_error(rel, fd);
		r = ds_blob_decode_fd(fd, (uint64_t)st.st_size, out, cap, &got, &len, &type);
		close(fd);
		if (r == 0) {
			if (ds_digest_eq(&got, d) && (!expect_len || len == expect_len)) {
				/* The identity is the one fstat gave before the
				 * bytes were read: a change made since moves
				 * ctime past it. */
				if (ret_file) {
					chunk_file_of(&st, ret_file);
					ret_file->plain = type == DS_BLOB_PLAIN;
				}
				*ret_len = len;
				return 0;
			}
		} else if (r != -EAGAIN) {
			return raw_error(rel, r);
		}
		r = 0;
	}
	/* When the caller's buffer has room past the promised length, the
	 * chunk file is read there and decoded below it: no second buffer of
	 * a chunk's size to allocate and free per load (on a busy mount such
	 * freed blocks stay resident in malloc's arenas, outside the cache
	 * budget). */
	if (expect_len && expect_len < cap) {
		size_t roff = (expect_len + 4095) & ~(size_t)4095;
		char rel[DS_CHUNK_RELPATH_LEN];

		ds_chunk_relpath(d, rel);
		if (roff < cap)
			r = read_raw_into(cs, rel, out + roff, cap - roff, &raw_len);
		if (r < 0)
			return r;
		if (r == 1) {
			raw = out + roff;
			cap = roff;
		}
	}
	if (!raw) {
		r = ds_chunkstore_read_raw(cs, d, &alloc, &raw_len);
		if (r < 0)
			return r;
		raw = alloc;
	}
	ds_digest_to_hex(d, hex);
	type = ds_blob_type(raw, raw_len);
	r = ds_blob_decode_into(raw, raw_len, c, out, cap, &len);
	if (r < 0) {
		if (r == -ENOKEY)
			ds_err("chunk %s: encrypted, no key given", hex);
		else if (r == -EFBIG)
			ds_err("chunk %s: decodes to more than %zu bytes", hex, cap);
		else
			ds_err("chunk %s: corrupt (%s)", hex,
			       ds_blob_verify_crc(raw, raw_len) < 0 ? "CRC mismatch"
								    : "cannot decode");
		/* Past a buffer that holds the promised length or the 16 MiB
		 * limit, the chunk itself is wrong; otherwise the caller's
		 * buffer is too small. */
		if (r == -EFBIG && ((expect_len && expect_len <= cap) || cap >= DS_MAX_CHUNK_SIZE))
			r = -EBADMSG;
		goto out;
	}
	/* Unencrypted chunks are named by the plain SHA-256 even when a key is
	 * in use for the rest of the snapshot. */
	ds_crypt_digest(ds_blob_type_encrypted(type) ? c : NULL, out, len, &got);
	if (!ds_digest_eq(&got, d)) {
		ds_err("chunk %s: digest mismatch", hex);
		r = -EBADMSG;
		goto out;
	}
	if (expect_len && len != expect_len) {
		ds_err("chunk %s: length %zu, index says %zu", hex, len, expect_len);
		r = -EBADMSG;
		goto out;
	}
	*ret_len = len;
	r = 0;
out:
	free(alloc);
	return r;
}

/* The chunk file under d's name, opened, if it is still the one f names;
 * -ESTALE when not (or gone). */
static int open_known(struct ds_chunkstore *cs, const struct ds_digest *d,
		      const struct ds_chunk_file *f, struct stat *st)
{
	char rel[DS_CHUNK_RELPATH_LEN];
	struct ds_chunk_file now;
	int fd;

	ds_chunk_relpath(d, rel);
	fd = ds_open_regular_at(cs->chunksfd, rel, st);
	if (fd < 0)
		return fd == -ENOENT ? -ESTALE : fd;
	chunk_file_of(st, &now);
	if (!ds_chunk_file_same(&now, f)) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

/* After reading from fd: a write that raced the read moved its ctime (the
 * kernel updates the times before it copies the data in), so bytes read
 * while the file changed are never taken for the verified ones. */
static int still_known(int fd, const struct ds_chunk_file *f)
{
	struct ds_chunk_file now;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	chunk_file_of(&st, &now);
	return ds_chunk_file_same(&now, f) ? 0 : -ESTALE;
}

int ds_chunkstore_read_plain(struct ds_chunkstore *cs, const struct ds_digest *d,
			     const struct ds_chunk_file *f, uint64_t off, void *buf, size_t len)
{
	struct stat st;
	ssize_t n;
	int fd, r = 0;

	if (!f->plain || f->size < DS_BLOB_HEADER_LEN || off > f->size - DS_BLOB_HEADER_LEN ||
	    len > f->size - DS_BLOB_HEADER_LEN - off)
		return -EINVAL;
	fd = open_known(cs, d, f, &st);
	if (fd < 0)
		return fd;
	for (size_t pos = 0; pos < len; pos += (size_t)n) {
		n = pread(fd, (uint8_t *)buf + pos, len - pos,
			  (off_t)(DS_BLOB_HEADER_LEN + off + pos));
		if (n < 0 && errno == EINTR) {
			n = 0;
			continue;
		}
		if (n <= 0) {
			/* Shorter than when verified: changed after all. */
			r = n < 0 ? -errno : -ESTALE;
			goto out;
		}
	}
	r = still_known(fd, f);
out:
	close(fd);
	return r;
}

int ds_chunkstore_load_known(struct ds_chunkstore *cs, const struct ds_digest *d,
			     const struct ds_chunk_file *f, size_t expect_len, uint8_t *out,
			     size_t cap, size_t *ret_len)
{
	struct stat st;
	size_t len;
	int fd, type, r;

	fd = open_known(cs, d, f, &st);
	if (fd < 0)
		return fd;
	r = ds_blob_decode_fd(fd, (uint64_t)st.st_size, out, cap, NULL, &len, &type);
	if (r == 0)
		r = still_known(fd, f);
	close(fd);
	/* Not what was verified after all (-EAGAIN: it no longer decodes, or
	 * not into cap): the full load names the fault. */
	if (r == -EAGAIN || (r == 0 && ((type == DS_BLOB_PLAIN) != f->plain ||
					(expect_len && len != expect_len))))
		return -ESTALE;
	if (r == 0)
		*ret_len = len;
	return r;
}

int ds_chunkstore_decode_known_part(struct ds_chunkstore *cs, const struct ds_digest *d,
				    const struct ds_chunk_file *f, size_t expect_len,
				    struct ds_blob_part **pp, uint8_t *out, size_t cap, size_t want,
				    size_t *ret_done)
{
	struct ds_blob_part *p = *pp;
	struct stat st;
	size_t done;
	int fd, r;

	if (f->plain)
		return -EINVAL;
	fd = open_known(cs, d, f, &st);
	if (fd < 0)
		return fd;
	if (!p) {
		r = ds_blob_part_new(fd, (uint64_t)st.st_size, expect_len, cap, &p);
		if (r < 0)
			goto out;
		*pp = p;
	}
	r = ds_blob_part_decode(p, fd, (uint64_t)st.st_size, out, want, &done);
	if (r == 0)
		r = still_known(fd, f);
	if (r == 0)
		*ret_done = done;
out:
	close(fd);
	/* Not what was verified after all: the full load names the fault. */
	return r == -EAGAIN ? -ESTALE : r;
}

static int touch_atime(int dirfd, const char *rel)
{
	const struct timespec ts[2] = {
		{ .tv_nsec = UTIME_NOW },
		{ .tv_nsec = UTIME_OMIT },
	};

	const char *leaf;
	int pfd, r;

	/* Through the prefix directory's descriptor: a link in its place
	 * would have root touch a file elsewhere. */
	pfd = ds_open_parent_at(dirfd, rel, &leaf);
	if (pfd < 0)
		return pfd;
	r = utimensat(pfd, leaf, ts, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	close(pfd);
	return r;
}

/* PBS's size rules for an existing chunk file (spec §1.2). Returns 1 to keep
 * the existing file (and touch it), 0 to write the new one, -EEXIST when the
 * two cannot be the same chunk. */
static int existing_policy(struct ds_chunkstore *cs, const char *rel, const struct stat *st,
			   const uint8_t *raw, size_t len)
{
	int new_type = ds_blob_type(raw, len);
	/* A whole encrypted header: ds_blob_type refuses shorter ones. */
	uint8_t magic[DS_BLOB_ENC_HEADER_LEN];
	struct stat now;
	int fd, old_type;
	ssize_t n;

	if ((uint64_t)st->st_size == len)
		return 1;
	if (st->st_size == 0) {
		ds_warn("chunk %s: replacing empty chunk file", rel + 5);
		return 0;
	}
	if (!ds_blob_type_encrypted(new_type))
		return (uint64_t)st->st_size < len ? 1 : 0;
	/* Never waiting: a FIFO may have replaced the file since the stat. */
	fd = ds_open_regular_at(cs->chunksfd, rel, &now);
	if (fd < 0)
		return fd;
	n = read(fd, magic, sizeof(magic));
	close(fd);
	old_type = n > 0 ? ds_blob_type(magic, (size_t)n) : -EBADMSG;
	if (old_type < 0 || !ds_blob_type_encrypted(old_type) ||
	    (old_type == DS_BLOB_ENCRYPTED && new_type == DS_BLOB_ENCRYPTED)) {
		ds_err("chunk %s: an existing chunk of another kind has this digest", rel + 5);
		return -EEXIST;
	}
	return 1;
}

int ds_chunkstore_insert(struct ds_chunkstore *cs, const struct ds_digest *d,
			 const uint8_t *raw, size_t len, bool do_fsync, bool *ret_existed)
{
	char rel[DS_CHUNK_RELPATH_LEN];
	struct stat st;
	bool replace = false;
	int r;

	ds_chunk_relpath(d, rel);
	if (fstatat(cs->chunksfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
		replace = true;
		r = existing_policy(cs, rel, &st, raw, len);
		if (r < 0)
			return r;
		if (r == 1) {
			/* Garbage collection relies on the atime of every chunk a
			 * new index references being fresh. */
			r = touch_atime(cs->chunksfd, rel);
			if (r == 0 && ret_existed)
				*ret_existed = true;
			return r;
		}
	}
	/* A new chunk is created without a named temp file (none is left
	 * behind by a crash); an empty or short one is replaced. */
	r = replace ? ds_replace_file_at(cs->chunksfd, rel, raw, len, 0644, do_fsync)
		    : ds_create_file_at(cs->chunksfd, rel, raw, len, 0644, do_fsync);
	if (r == -EEXIST && !replace) {
		/* Another writer inserted it meanwhile: the same chunk. */
		r = touch_atime(cs->chunksfd, rel);
		if (r == 0 && ret_existed)
			*ret_existed = true;
		return r;
	}
	if (r == -ENOENT) {
		/* Prefix directory missing (stores copied without empty dirs). */
		char prefix[5];

		memcpy(prefix, rel, 4);
		prefix[4] = '\0';
		r = make_prefix_dir(cs->chunksfd, prefix, false);
		if (r < 0)
			return r;
		r = replace ? ds_replace_file_at(cs->chunksfd, rel, raw, len, 0644, do_fsync)
			    : ds_create_file_at(cs->chunksfd, rel, raw, len, 0644, do_fsync);
	}
	if (r < 0) {
		ds_err("chunk %s: cannot write: %s", rel + 5, strerror(-r));
		return r;
	}
	if (ret_existed)
		*ret_existed = false;
	return 0;
}

int ds_chunkstore_touch_existing(struct ds_chunkstore *cs, const struct ds_digest *d,
				 bool encrypted)
{
	char rel[DS_CHUNK_RELPATH_LEN];
	uint8_t magic[DS_BLOB_ENC_HEADER_LEN];
	struct stat st;
	ssize_t n;
	int fd, type, r;

	ds_chunk_relpath(d, rel);
	/* O_NONBLOCK: a FIFO under a chunk's name must not make us wait. */
	fd = openat(cs->chunksfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		close(fd);
		return 0; /* the insert decides (an empty file is replaced) */
	}
	n = read(fd, magic, sizeof(magic));
	close(fd);
	type = n > 0 ? ds_blob_type(magic, (size_t)n) : -EBADMSG;
	if (type < 0 || ds_blob_type_encrypted(type) != encrypted)
		return 0; /* another kind: the insert's policy applies */
	r = touch_atime(cs->chunksfd, rel);
	return r < 0 ? r : 1;
}

/* The alignment O_DIRECT wants of buffer, offset and length: the logical
 * block size of nearly every device, and a multiple of the others'. */
#define DIRECT_ALIGN 4096

/* Reads the len bytes of fd from its start into raw (room bytes, aligned
 * for O_DIRECT), whole blocks at a time: only the read that meets the end
 * of the file comes back short. -EIO when the file ends before len. */
static int read_aligned(int fd, uint8_t *raw, size_t len, size_t room)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, raw + got, room - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		got += (size_t)n;
	}
	return 0;
}

/* Opens chunk file rel and fstats it into *st; with O_DIRECT when direct,
 * to read what the disk holds past the page cache, which may still hold
 * bytes whose writeback failed. */
static int open_disk(struct ds_chunkstore *cs, const char *rel, bool direct, struct stat *st)
{
	int fd = openat(cs->chunksfd, rel,
			O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | (direct ? O_DIRECT : 0));
	int r;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* Whether raw (len bytes) is chunk d: decoded (keyed with c) and its
 * digest checked as _load does; an encrypted chunk without c gets what a
 * server can check of it, its CRC. 0, -EBADMSG (*ret_why says what is
 * wrong) or -ENOMEM. */
static int verify_raw(const struct ds_digest *d, const uint8_t *raw, size_t len,
		      const struct ds_crypt *c, const char **ret_why)
{
	int type = ds_blob_type(raw, len);
	struct ds_digest got;
	uint8_t *data;
	size_t dlen;
	int r;

	r = ds_blob_decode(raw, len, c, DS_MAX_CHUNK_SIZE, &data, &dlen);
	if (r == -ENOMEM)
		return r;
	if (r == -ENOKEY && ds_blob_verify_crc(raw, len) == 0)
		return 0;
	if (r < 0) {
		*ret_why = ds_blob_verify_crc(raw, len) < 0 ? "bad magic or CRC" : "cannot decode";
		return -EBADMSG;
	}
	ds_crypt_digest(ds_blob_type_encrypted(type) ? c : NULL, data, dlen, &got);
	free(data);
	if (!ds_digest_eq(&got, d)) {
		*ret_why = "digest mismatch";
		return -EBADMSG;
	}
	return 0;
}

/* Reads and verifies the open chunk file fd (stat st) as check_disk
 * says. 0 intact; -EBADMSG or a read error (*ret_why set) when not;
 * -EINVAL when the direct read is refused; -ENOMEM. */
static int check_fd(int fd, const struct stat *st, const struct ds_digest *d,
		    const struct ds_crypt *c, char *why, size_t why_len)
{
	const char *what = NULL;
	uint8_t *raw = NULL;
	size_t len = (size_t)st->st_size, room;
	int r;

	if (!S_ISREG(st->st_mode) || st->st_size == 0 ||
	    (uint64_t)st->st_size > DS_MAX_CHUNK_SIZE + DS_BLOB_ENC_HEADER_LEN) {
		snprintf(why, why_len, "%s", st->st_size == 0 ? "empty file" : "not a chunk file");
		return -EBADMSG;
	}
	room = (len + DIRECT_ALIGN - 1) & ~(size_t)(DIRECT_ALIGN - 1);
	if (posix_memalign((void **)&raw, DIRECT_ALIGN, room) != 0)
		return -ENOMEM;
	r = read_aligned(fd, raw, len, room);
	/* The first direct read of a file whose writeback failed may get
	 * that failure (the kernel tells the next one to wait on the file's
	 * writeback) instead of the disk's bytes. */
	if (r == -EIO)
		r = read_aligned(fd, raw, len, room);
	if (r == 0)
		r = verify_raw(d, raw, len, c, &what);
	else
		snprintf(why, why_len, "cannot read it: %s", strerror(-r));
	if (what)
		snprintf(why, why_len, "%s", what);
	free(raw);
	return r;
}

int ds_chunkstore_check_disk(struct ds_chunkstore *cs, const struct ds_digest *d,
			     const struct ds_crypt *c)
{
	char rel[DS_CHUNK_RELPATH_LEN], why[96] = "";
	struct stat st, now;
	int fd, r = 0;

	ds_chunk_relpath(d, rel);
	fd = open_disk(cs, rel, true, &st);
	if (fd >= 0) {
		r = check_fd(fd, &st, d, c, why, sizeof(why));
		if (r == -EINVAL) {
			close(fd);
			fd = -EINVAL;
		}
	}
	/* O_DIRECT refused, at open (EINVAL: tmpfs and the like, where no
	 * disk lies under the page cache) or at read (alignment): the page
	 * cache is what there is to read. */
	if (fd == -EINVAL) {
		fd = open_disk(cs, rel, false, &st);
		if (fd >= 0)
			r = check_fd(fd, &st, d, c, why, sizeof(why));
	}
	if (fd < 0) {
		if (fd != -ENOENT)
			ds_err("chunk %s: cannot check it on the disk: %s", rel + 5, strerror(-fd));
		return fd;
	}
	if (r == -ENOMEM)
		ds_err("chunk %s: cannot check it on the disk: %s", rel + 5, strerror(-r));
	if (r == 0 || r == -ENOMEM)
		goto out;
	/* Only the file that was read: another writer may have put a new one
	 * (another inode) under the name since. */
	if (fstatat(cs->chunksfd, rel, &now, AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		goto out;
	}
	if (now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
		ds_warn("chunk %s: not intact on the disk (%s), but replaced since", rel + 5, why);
		r = 0;
		goto out;
	}
	r = ds_unlink_at(cs->chunksfd, rel, 0);
	if (r < 0) {
		ds_err("chunk %s: not intact on the disk (%s), cannot remove it: %s", rel + 5, why,
		       strerror(-r));
		goto out;
	}
	ds_err("chunk %s: not intact on the disk (%s), removed", rel + 5, why);
	/* For good: a crash must not bring the name back for a later insert
	 * to take as present. */
	r = ds_fsync_parent_at(cs->chunksfd, rel);
	if (r < 0)
		ds_err("chunk %s: its removal may not be durable: %s", rel + 5, strerror(-r));
	r = 1;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

int ds_chunkstore_stat(struct ds_chunkstore *cs, const struct ds_digest *d, struct stat *ret)
{
	char rel[DS_CHUNK_RELPATH_LEN];

	ds_chunk_relpath(d, rel);
	return fstatat(cs->chunksfd, rel, ret, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static bool is_hex64(const char *s)
{
	for (int i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* Calls fn for every entry of every prefix directory. */
static int foreach_entry(struct ds_chunkstore *cs,
			 int (*fn)(int prefixfd, const char *name, void *ud), void *ud)
{
	for (unsigned i = 0; i < 65536; i++) {
		char name[5];
		int fd, r = 0;
		DIR *d;
		struct dirent *de;

		snprintf(name, sizeof(name), "%04x", i);
		/* A link in a prefix directory's place is not followed
		 * (the cleanup would remove files where it leads). */
		fd = openat(cs->chunksfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				continue; /* PBS tolerates missing prefix dirs too */
			if (errno == ELOOP || errno == ENOTDIR) {
				ds_warn("%s/.chunks/%s: not a directory, skipped", cs->base, name);
				continue;
			}
			return -errno;
		}
		d = fdopendir(fd);
		if (!d) {
			close(fd);
			return -errno;
		}
		while (r == 0 && (de = readdir(d)))
			if (de->d_name[0] != '.')
				r = fn(dirfd(d), de->d_name, ud);
		closedir(d);
		if (r < 0)
			return r;
	}
	return 0;
}

struct count_state {
	uint64_t files, bytes;
};

static int count_fn(int prefixfd, const char *name, void *ud)
{
	struct count_state *s = ud;
	struct stat st;

	if (strlen(name) != 64 || !is_hex64(name))
		return 0;
	if (fstatat(prefixfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return 0;
	s->files++;
	s->bytes += (uint64_t)st.st_size;
	return 0;
}

int ds_chunkstore_count(struct ds_chunkstore *cs, uint64_t *ret_files, uint64_t *ret_bytes)
{
	struct count_state s = { 0 };
	int r = foreach_entry(cs, count_fn, &s);

	if (r < 0)
		return r;
	if (ret_files)
		*ret_files = s.files;
	if (ret_bytes)
		*ret_bytes = s.bytes;
	return 0;
}

static int cleanup_fn(int prefixfd, const char *name, void *ud)
{
	unsigned *n = ud;

	if (strlen(name) > 64 + 5 && is_hex64(name) && strncmp(name + 64, ".tmp_", 5) == 0) {
		if (unlinkat(prefixfd, name, 0) < 0)
			return -errno;
		(*n)++;
	}
	return 0;
}

int ds_chunkstore_cleanup_tmp(struct ds_chunkstore *cs)
{
	unsigned n = 0;
	int r = foreach_entry(cs, cleanup_fn, &n);

	return r < 0 ? r : (int)n;
}
