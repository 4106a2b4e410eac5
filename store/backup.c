#include "store/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/blob.h"
#include "store/chunker.h"
#include "store/chunkstore.h"
#include "store/crypt.h"
#include "store/datastore.h"
#include "store/hierarchy.h"
#include "store/index.h"
#include "store/log.h"
#include "store/manifest.h"
#include "store/names.h"

struct ds_backup {
	const struct ds_writer *w;
	const struct ds_crypt *crypt;
	struct ds_manifest *manifest;
	char snaprel[2048];
	int snapfd; /* flock'ed exclusively while the backup runs */
	bool finished;
	struct ds_backup_stats stats;
};

struct ds_archive_writer {
	struct ds_backup *b;
	char name[256];
	bool fixed;
	struct ds_fidx_writer *fidx;
	struct ds_didx_writer *didx;
	struct ds_chunker chunker;
	uint64_t chunk_size; /* fixed */
	uint64_t offset;     /* stream bytes consumed */
	uint8_t *buf;        /* the chunk being assembled */
	size_t buf_len, buf_cap;
	size_t next_chunk;   /* fixed: index of the chunk in buf */
};

/* mkdirat that accepts an existing directory. */
static int ensure_dir(int dirfd, const char *rel)
{
	if (mkdirat(dirfd, rel, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Creates every directory of relpath below dirfd (like mkdir -p). */
static int ensure_path(int dirfd, const char *relpath)
{
	char buf[2048];
	int r;

	r = ds_path_fmt(buf, sizeof(buf), "%s", relpath);
	if (r < 0)
		return r;
	for (char *p = buf; (p = strchr(p, '/')); p++) {
		*p = '\0';
		r = ensure_dir(dirfd, buf);
		*p = '/';
		if (r < 0)
			return r;
	}
	return ensure_dir(dirfd, buf);
}

static int create_owner(int basefd, const char *grouprel, const char *owner)
{
	char path[2100], line[512];
	int fd, r;

	r = ds_path_fmt(path, sizeof(path), "%s/owner", grouprel);
	if (r < 0)
		return r;
	fd = openat(basefd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno == EEXIST ? 0 : -errno; /* owner set once, at creation */
	snprintf(line, sizeof(line), "%s\n", owner);
	r = ds_write_all(fd, line, strlen(line));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int ds_backup_begin(const struct ds_writer *w, const char *ns, const char *type, const char *id,
		    int64_t time, const char *owner, const struct ds_crypt *crypt,
		    struct ds_backup **ret)
{
	char timestr[DS_TIME_LEN + 1], grouprel[2048];
	int basefd = ds_writer_basefd(w);
	struct ds_backup *b;
	int r;

	if (!owner)
		owner = DS_DEFAULT_OWNER;
	if (ds_name_authid(owner) < 0 || ds_time_format(time, timestr) < 0 || time < 1)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->w = w;
	b->crypt = crypt;
	b->snapfd = -1;
	if ((r = ds_group_relpath(ns, type, id, grouprel, sizeof(grouprel))) < 0 ||
	    (r = ds_snapshot_relpath(ns, type, id, timestr, b->snaprel, sizeof(b->snaprel))) < 0)
		goto fail;
	r = ds_manifest_new(type, id, time, &b->manifest);
	if (r < 0)
		goto fail;
	r = ensure_path(basefd, grouprel);
	if (r < 0)
		goto fail;
	r = create_owner(basefd, grouprel, owner);
	if (r < 0)
		goto fail;
	if (mkdirat(basefd, b->snaprel, 0755) < 0) {
		r = -errno;
		if (r == -EEXIST)
			ds_err("snapshot %s already exists", b->snaprel);
		goto fail;
	}
	b->snapfd = openat(basefd, b->snaprel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->snapfd < 0) {
		r = -errno;
		unlinkat(basefd, b->snaprel, AT_REMOVEDIR);
		goto fail;
	}
	/* PBS's (pre-3.3.5) snapshot lock: flock on the directory itself. */
	if (flock(b->snapfd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		goto fail;
	}
	*ret = b;
	return 0;
fail:
	if (b->snapfd >= 0) {
		close(b->snapfd);
		unlinkat(basefd, b->snaprel, AT_REMOVEDIR);
	}
	ds_manifest_free(b->manifest);
	free(b);
	return r;
}

static enum ds_crypt_mode crypt_mode(const struct ds_backup *b)
{
	return b->crypt ? DS_CRYPT_ENCRYPT : DS_CRYPT_NONE;
}

static bool already_added(const struct ds_backup *b, const char *name)
{
	struct ds_manifest_file f;

	return ds_manifest_find(b->manifest, name, &f) == 0;
}

int ds_backup_add_blob(struct ds_backup *b, const char *name, const uint8_t *data, size_t len)
{
	struct ds_digest csum;
	uint8_t *raw;
	size_t raw_len;
	int r;

	if (ds_archive_kind(name) != DS_ARCHIVE_BLOB || ds_name_archive(name) < 0 ||
	    strcmp(name, DS_MANIFEST_NAME) == 0 || already_added(b, name))
		return -EINVAL;
	r = ds_blob_encode(data, len, b->crypt, true, &raw, &raw_len);
	if (r < 0)
		return r;
	ds_sha256(raw, raw_len, &csum);
	r = ds_replace_file_at(b->snapfd, name, raw, raw_len, 0644, true);
	free(raw);
	if (r < 0)
		return r;
	/* For a blob the manifest records the encoded file's size and SHA-256. */
	return ds_manifest_set_file(b->manifest, name, raw_len, &csum, crypt_mode(b));
}

static int writer_new(struct ds_backup *b, const char *name, enum ds_archive_kind kind,
		      struct ds_archive_writer **ret)
{
	struct ds_archive_writer *aw;

	if (ds_archive_kind(name) != (int)kind || ds_name_archive(name) < 0 ||
	    strlen(name) >= sizeof(aw->name) || already_added(b, name))
		return -EINVAL;
	aw = calloc(1, sizeof(*aw));
	if (!aw)
		return -ENOMEM;
	aw->b = b;
	strcpy(aw->name, name);
	*ret = aw;
	return 0;
}

int ds_backup_fixed_begin(struct ds_backup *b, const char *name, uint64_t size,
			  uint64_t chunk_size, struct ds_archive_writer **ret)
{
	struct ds_archive_writer *aw;
	int r;

	if (chunk_size == 0 || (chunk_size & (chunk_size - 1)) || chunk_size > DS_MAX_CHUNK_SIZE)
		return -EINVAL;
	r = writer_new(b, name, DS_ARCHIVE_FIDX, &aw);
	if (r < 0)
		return r;
	aw->fixed = true;
	aw->chunk_size = chunk_size;
	aw->buf_cap = chunk_size;
	aw->buf = malloc(aw->buf_cap);
	if (!aw->buf) {
		free(aw);
		return -ENOMEM;
	}
	r = ds_fidx_writer_new(b->snapfd, name, size, chunk_size, &aw->fidx);
	if (r < 0) {
		free(aw->buf);
		free(aw);
		return r;
	}
	*ret = aw;
	return 0;
}

int ds_backup_dynamic_begin(struct ds_backup *b, const char *name, size_t avg,
			    struct ds_archive_writer **ret)
{
	struct ds_archive_writer *aw;
	int r;

	if (avg < 64 * DS_KIB || avg > 4 * DS_MIB)
		return -EINVAL;
	r = writer_new(b, name, DS_ARCHIVE_DIDX, &aw);
	if (r < 0)
		return r;
	r = ds_chunker_init(&aw->chunker, avg);
	if (r < 0)
		goto fail;
	aw->buf_cap = 4 * avg; /* the chunker's maximum */
	aw->buf = malloc(aw->buf_cap);
	if (!aw->buf) {
		r = -ENOMEM;
		goto fail;
	}
	r = ds_didx_writer_new(b->snapfd, name, &aw->didx);
	if (r < 0)
		goto fail;
	*ret = aw;
	return 0;
fail:
	free(aw->buf);
	free(aw);
	return r;
}

/* Size of the chunk file of d: only the chunk store knows the encoded
 * length of what it just wrote. 0 if it cannot be stat'ed. */
static uint64_t chunk_file_size(const struct ds_backup *b, const struct ds_digest *d)
{
	char rel[8 + DS_CHUNK_RELPATH_LEN] = ".chunks/";
	struct stat st;

	ds_chunk_relpath(d, rel + 8);
	if (fstatat(ds_writer_basefd(b->w), rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return (uint64_t)st.st_size;
}

static int put_chunk(struct ds_archive_writer *aw, const uint8_t *data, size_t len,
		     struct ds_digest *ret)
{
	struct ds_backup *b = aw->b;
	bool existed = false;
	int r;

	r = ds_writer_put_chunk(b->w, data, len, b->crypt, ret, &existed);
	if (r < 0)
		return r;
	b->stats.chunks++;
	b->stats.bytes += len;
	if (!existed) {
		b->stats.new_chunks++;
		b->stats.new_bytes += chunk_file_size(b, ret);
	}
	return 0;
}

/* Emits the buffered chunk. */
static int flush_chunk(struct ds_archive_writer *aw)
{
	struct ds_digest d;
	int r;

	if (aw->buf_len == 0)
		return 0;
	r = put_chunk(aw, aw->buf, aw->buf_len, &d);
	if (r < 0)
		return r;
	if (aw->fixed)
		r = ds_fidx_writer_set(aw->fidx, aw->next_chunk++, &d);
	else
		r = ds_didx_writer_append(aw->didx, aw->offset, &d);
	aw->buf_len = 0;
	return r;
}

int ds_archive_write(struct ds_archive_writer *aw, const void *data, size_t len)
{
	const uint8_t *p = data;
	int r;

	while (len > 0) {
		bool boundary;
		size_t n;

		if (aw->fixed) {
			n = aw->chunk_size - aw->buf_len;
			if (n > len)
				n = len;
			boundary = aw->buf_len + n == aw->chunk_size;
		} else {
			size_t cut = ds_chunker_scan(&aw->chunker, p, len);

			n = cut ? cut : len;
			boundary = cut != 0;
		}
		/* The chunker forces a cut at its maximum, the buffer's size. */
		if (aw->buf_len + n > aw->buf_cap)
			return -EIO;
		memcpy(aw->buf + aw->buf_len, p, n);
		aw->buf_len += n;
		aw->offset += n;
		p += n;
		len -= n;
		if (boundary) {
			r = flush_chunk(aw);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int ds_archive_put_fixed_chunk(struct ds_archive_writer *aw, size_t i, const uint8_t *data,
			       size_t len)
{
	struct ds_digest d;
	int r;

	if (!aw->fixed || len == 0 || len > aw->chunk_size)
		return -EINVAL;
	r = put_chunk(aw, data, len, &d);
	if (r < 0)
		return r;
	return ds_fidx_writer_set(aw->fidx, i, &d);
}

int ds_archive_finish(struct ds_archive_writer *aw, uint64_t final_size)
{
	struct ds_backup *b = aw->b;
	struct ds_digest csum;
	uint64_t size;
	bool sync = ds_writer_sync_each(b->w);
	int r;

	r = flush_chunk(aw);
	if (r < 0)
		goto out;
	if (aw->fixed)
		r = ds_fidx_writer_commit(aw->fidx, final_size ? final_size : aw->offset, sync,
					  &csum, &size);
	else
		r = ds_didx_writer_commit(aw->didx, sync, &csum, &size);
	if (r < 0)
		goto out;
	r = ds_manifest_set_file(b->manifest, aw->name, size, &csum, crypt_mode(b));
out:
	ds_archive_abort(aw);
	return r;
}

void ds_archive_abort(struct ds_archive_writer *aw)
{
	if (!aw)
		return;
	ds_fidx_writer_free(aw->fidx);
	ds_didx_writer_free(aw->didx);
	free(aw->buf);
	free(aw);
}

int ds_backup_finish(struct ds_backup *b)
{
	int r;

	if (b->crypt) {
		r = ds_manifest_sign(b->manifest, b->crypt);
		if (r < 0)
			return r;
	}
	r = ds_manifest_store(b->snapfd, b->manifest);
	if (r < 0)
		return r;
	b->finished = true;
	/* sync-level=filesystem (PBS's default): one syncfs when a backup
	 * finishes makes every chunk and index durable. */
	if (!ds_writer_sync_each(b->w) && syncfs(b->snapfd) < 0)
		return -errno;
	return 0;
}

void ds_backup_stats(const struct ds_backup *b, struct ds_backup_stats *ret)
{
	*ret = b->stats;
}

/* Removes the files of an unfinished snapshot, then the directory. */
static void remove_snapshot(struct ds_backup *b)
{
	int fd = dup(b->snapfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			unlinkat(b->snapfd, de->d_name, 0);
	closedir(d);
	if (unlinkat(ds_writer_basefd(b->w), b->snaprel, AT_REMOVEDIR) < 0)
		ds_warn("cannot remove unfinished snapshot %s: %s", b->snaprel, strerror(errno));
}

void ds_backup_free(struct ds_backup *b)
{
	if (!b)
		return;
	if (!b->finished && b->snapfd >= 0)
		remove_snapshot(b);
	if (b->snapfd >= 0)
		close(b->snapfd);
	ds_manifest_free(b->manifest);
	free(b);
}

static int open_snapshot_for_write(const struct ds_writer *w, const char *snaprel)
{
	char ns[257], type[8], id[256], time[DS_TIME_LEN + 1];
	int fd;

	/* Only a snapshot path may be joined to the base (no ".."). */
	if (ds_parse_snapshot_path(snaprel, true, ns, type, id, time) < 0)
		return -EINVAL;
	fd = openat(ds_writer_basefd(w), snaprel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int ds_snapshot_set_notes(const struct ds_writer *w, const char *snaprel, const char *notes)
{
	struct ds_manifest *m = NULL;
	int fd, r;

	fd = open_snapshot_for_write(w, snaprel);
	if (fd < 0)
		return fd;
	/* PBS's manifest read-modify-write runs under an exclusive lock. */
	if (flock(fd, LOCK_EX) < 0) {
		r = -errno;
		goto out;
	}
	r = ds_manifest_load(fd, &m);
	if (r < 0)
		goto out;
	r = ds_manifest_set_notes(m, notes);
	if (r == 0)
		r = ds_manifest_store(fd, m);
out:
	ds_manifest_free(m);
	close(fd);
	return r;
}

int ds_snapshot_set_protected(const struct ds_writer *w, const char *snaprel, bool protect)
{
	int fd, r = 0;

	fd = open_snapshot_for_write(w, snaprel);
	if (fd < 0)
		return fd;
	if (protect) {
		int pfd = openat(fd, ".protected", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

		if (pfd < 0)
			r = -errno;
		else
			close(pfd);
	} else if (unlinkat(fd, ".protected", 0) < 0 && errno != ENOENT) {
		r = -errno;
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}
