#include "store/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
#include "store/locks.h"
#include "store/log.h"
#include "store/manifest.h"
#include "store/names.h"

struct ds_backup {
	const struct ds_writer *w;
	const struct ds_crypt *crypt;
	struct ds_manifest *manifest;
	char snaprel[2048];
	int snapfd;
	struct ds_lock *group_lock, *snap_lock; /* exclusive while the backup runs */
	bool finished;
	bool keep; /* opened with ds_backup_open: never removed by _free */
	bool notes_set; /* ds_backup_set_notes since the manifest was last stored */
	int failed; /* sticky: a sync lost data of this backup */
	const volatile sig_atomic_t *stop; /* ds_backup_set_stop */
	/* The files named by the manifest on disk, as last stored (or found at
	 * _open): _drop_file leaves those alone. stored_all: the list could
	 * not be kept (ENOMEM), so every file counts as named. */
	char **stored;
	size_t nstored;
	bool stored_all;
	struct ds_backup_stats stats; /* updated atomically (archive writers) */
	/* The chunks this backup wrote anew that no sync has found durable
	 * yet, by digest only: after a failed sync their files may have
	 * their size right and their bytes lost (recheck_created). */
	pthread_mutex_t created_lock; /* archive writers add concurrently */
	struct ds_digest *created;    /* protected by created_lock */
	size_t ncreated, created_cap; /* protected by created_lock */
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
	ds_archive_chunk_fn chunk_fn; /* dynamic: told of every chunk cut */
	void *chunk_ctx;
};

static bool already_added(const struct ds_backup *b, const char *name);

/* -EINTR once the caller asked the backup to stop, else 0. */
static int stopped(const struct ds_backup *b)
{
	return b->stop && *b->stop ? -EINTR : 0;
}

void ds_backup_set_stop(struct ds_backup *b, const volatile sig_atomic_t *stop)
{
	b->stop = stop;
}

/* A new directory in the datastore (backup's, as root); an existing one is
 * accepted. */
static int ensure_dir(int dirfd, const char *rel)
{
	int r = ds_mkdir_own_at(dirfd, rel, 0755);

	return r == -EEXIST ? 0 : r;
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
	char line[512];
	int gfd, fd, r;

	gfd = ds_open_dir_at(basefd, grouprel);
	if (gfd < 0)
		return gfd;
	fd = openat(gfd, "owner", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	close(gfd);
	if (fd < 0)
		return errno == EEXIST ? 0 : -errno; /* owner set once, at creation */
	snprintf(line, sizeof(line), "%s\n", owner);
	r = fchmod(fd, 0644) < 0 ? -errno : ds_own_fd(fd); /* whatever the umask */
	if (r == 0)
		r = ds_write_all(fd, line, strlen(line));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* An owner given (dsfs backup --owner, the mount's owner=) must be allowed
 * into an existing group, as PBS's backup API checks the session's auth id
 * against the group's owner ("backup owner check failed"); a group without
 * a readable owner is refused too, as PBS's get_owner fails there. */
static int check_owner(int basefd, const char *grouprel, const char *authid)
{
	char *owner = NULL;
	int fd, r;

	fd = ds_open_dir_at(basefd, grouprel);
	if (fd < 0)
		return fd;
	r = ds_read_owner_at(fd, &owner);
	close(fd);
	if (r < 0) {
		ds_err("group %s: cannot read its owner: %s", grouprel, strerror(-r));
		return r;
	}
	if (!ds_owner_allows(owner, authid)) {
		ds_err("backup owner check failed (%s != %s): group %s is not %s's", authid,
		       owner, grouprel, authid);
		r = -EPERM;
	}
	free(owner);
	return r;
}

/* PBS's group lock, then the snapshot's, both exclusive (spec §1.7.2). */
static int lock_backup(struct ds_backup *b, const char *grouprel)
{
	const char *store = ds_lookup_store(ds_writer_lookup(b->w));
	int basefd = ds_writer_basefd(b->w);
	int r;

	r = ds_lock_group(basefd, store, grouprel, &b->group_lock);
	if (r < 0) {
		if (r == -EBUSY)
			ds_err("group %s is locked (a backup into it is running)", grouprel);
		return r;
	}
	r = ds_lock_snapshot(basefd, store, b->snaprel, true, &b->snap_lock);
	if (r == -EBUSY)
		ds_err("snapshot %s is in use", b->snaprel);
	return r;
}

/* As PBS's backup API: a backup time must be after the group's newest
 * finished snapshot ("backup timestamp is older than last backup"),
 * unless that one's last verification failed (then any time goes). The
 * caller holds the group lock, so no other backup finishes meanwhile.
 * 0, -EEXIST (logged) or -errno. */
static int check_after_last(int basefd, const char *grouprel, int64_t time)
{
	char newest[DS_TIME_LEN + 1] = "", path[64];
	struct ds_manifest *m = NULL;
	int64_t newest_epoch = 0, epoch;
	struct dirent *de;
	bool failed;
	DIR *d;
	int fd;

	fd = ds_open_dir_at(basefd, grouprel);
	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -ENOMEM;
	}
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);

		if (n >= sizeof(newest) || ds_time_parse(de->d_name, &epoch) < 0 ||
		    epoch <= newest_epoch ||
		    ds_path_fmt(path, sizeof(path), "%s/%s", de->d_name, DS_MANIFEST_NAME) < 0 ||
		    faccessat(dirfd(d), path, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		newest_epoch = epoch;
		memcpy(newest, de->d_name, n + 1);
	}
	if (!*newest || time > newest_epoch) {
		closedir(d);
		return 0;
	}
	fd = openat(dirfd(d), newest, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	failed = fd >= 0 && ds_manifest_load(fd, &m) == 0 && ds_manifest_verify_failed(m);
	ds_manifest_free(m);
	if (fd >= 0)
		close(fd);
	closedir(d);
	if (failed)
		return 0;
	ds_err("backup time is not after the group's last backup %s/%s (PBS refuses it too)",
	       grouprel, newest);
	return -EEXIST;
}

int ds_backup_begin(const struct ds_writer *w, const char *ns, const char *type, const char *id,
		    int64_t time, const char *owner, const struct ds_crypt *crypt,
		    struct ds_backup **ret)
{
	char timestr[DS_TIME_LEN + 1], grouprel[2048];
	int basefd = ds_writer_basefd(w);
	struct ds_backup *b;
	bool check = owner != NULL;
	int r;

	if (!owner)
		owner = DS_DEFAULT_OWNER;
	if (ds_name_authid(owner) < 0 || ds_time_format(time, timestr) < 0 || time < 1)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	pthread_mutex_init(&b->created_lock, NULL);
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
	if (r == 0 && check)
		r = check_owner(basefd, grouprel, owner);
	if (r < 0)
		goto fail;
	r = ds_mkdir_own_at(basefd, b->snaprel, 0755);
	if (r < 0) {
		if (r == -EEXIST)
			ds_err("snapshot %s already exists", b->snaprel);
		goto fail;
	}
	b->snapfd = ds_open_dir_at(basefd, b->snaprel);
	if (b->snapfd < 0) {
		r = b->snapfd;
		ds_unlink_at(basefd, b->snaprel, AT_REMOVEDIR);
		goto fail;
	}
	r = lock_backup(b, grouprel);
	if (r == 0)
		r = check_after_last(basefd, grouprel, time);
	if (r < 0)
		goto fail;
	*ret = b;
	return 0;
fail:
	if (b->snapfd >= 0) {
		close(b->snapfd);
		ds_unlink_at(basefd, b->snaprel, AT_REMOVEDIR);
	}
	ds_lock_release(b->snap_lock);
	ds_lock_release(b->group_lock);
	ds_manifest_free(b->manifest);
	pthread_mutex_destroy(&b->created_lock);
	free(b);
	return r;
}

int ds_snapshot_create(const struct ds_writer *w, const char *ns, const char *type,
		       const char *id, const char *time, const char *owner)
{
	char grouprel[2048], snaprel[2048];
	int basefd = ds_writer_basefd(w);
	int64_t epoch;
	int r;

	/* PBS's API names a snapshot by its backup-time, at least 1: it could
	 * not name an earlier one (and parsing 1969-12-31T23:59:59Z, epoch -1,
	 * fails PBS's listing of the whole group). */
	if (!time || ds_name_authid(owner ? owner : DS_DEFAULT_OWNER) < 0 ||
	    ds_time_parse(time, &epoch) < 0 || epoch < 1)
		return -EINVAL;
	if ((r = ds_group_relpath(ns, type, id, grouprel, sizeof(grouprel))) < 0 ||
	    (r = ds_snapshot_relpath(ns, type, id, time, snaprel, sizeof(snaprel))) < 0 ||
	    (r = ds_group_create(w, ns, type, id, owner)) < 0 ||
	    (owner && (r = check_owner(basefd, grouprel, owner)) < 0))
		return r;
	return ds_mkdir_own_at(basefd, snaprel, 0755);
}

int ds_group_create(const struct ds_writer *w, const char *ns, const char *type, const char *id,
		    const char *owner)
{
	char grouprel[2048];
	int basefd = ds_writer_basefd(w);
	int r;

	if (!owner)
		owner = DS_DEFAULT_OWNER;
	if (ds_name_authid(owner) < 0)
		return -EINVAL;
	r = ds_group_relpath(ns, type, id, grouprel, sizeof(grouprel));
	if (r < 0)
		return r;
	r = ensure_path(basefd, grouprel);
	if (r < 0)
		return r;
	return create_owner(basefd, grouprel, owner);
}

static void forget_stored(struct ds_backup *b)
{
	for (size_t i = 0; i < b->nstored; i++)
		free(b->stored[i]);
	free(b->stored);
	b->stored = NULL;
	b->nstored = 0;
}

/* The manifest in memory was just stored (or loaded): its file names are
 * the ones on disk. */
static void remember_stored(struct ds_backup *b)
{
	size_t n = ds_manifest_file_count(b->manifest);
	char **v = calloc(n ? n : 1, sizeof(*v));
	struct ds_manifest_file mf;

	for (size_t i = 0; v && i < n; i++)
		if (ds_manifest_file(b->manifest, i, &mf) < 0 || !(v[i] = strdup(mf.filename))) {
			while (i > 0)
				free(v[--i]);
			free(v);
			v = NULL;
		}
	forget_stored(b);
	if (!v) {
		b->stored_all = true;
		return;
	}
	b->stored = v;
	b->nstored = n;
	b->stored_all = false;
}

static bool is_stored(const struct ds_backup *b, const char *name)
{
	if (b->stored_all)
		return true;
	for (size_t i = 0; i < b->nstored; i++)
		if (strcmp(b->stored[i], name) == 0)
			return true;
	return false;
}

int ds_backup_open(const struct ds_writer *w, const char *snaprel, const struct ds_crypt *crypt,
		   struct ds_backup **ret)
{
	char ns[257], type[8], id[256], time[DS_TIME_LEN + 1], grouprel[2048];
	struct ds_backup *b;
	int64_t epoch;
	int r;

	if (ds_parse_snapshot_path(snaprel, true, ns, type, id, time) < 0 ||
	    ds_time_parse(time, &epoch) < 0 ||
	    ds_group_relpath(ns, type, id, grouprel, sizeof(grouprel)) < 0)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	pthread_mutex_init(&b->created_lock, NULL);
	b->w = w;
	b->crypt = crypt;
	b->keep = true;
	snprintf(b->snaprel, sizeof(b->snaprel), "%s", snaprel);
	b->snapfd = ds_open_dir_at(ds_writer_basefd(w), snaprel);
	if (b->snapfd < 0) {
		r = b->snapfd == -ENOTDIR ? -ENOENT : b->snapfd;
		goto fail;
	}
	r = lock_backup(b, grouprel);
	if (r < 0)
		goto fail;
	r = ds_manifest_load(b->snapfd, &b->manifest);
	if (r == 0)
		remember_stored(b);
	if (r == -ENOENT)
		r = ds_manifest_new(type, id, epoch, &b->manifest);
	if (r < 0)
		goto fail;
	b->finished = ds_backup_has_manifest(b);
	*ret = b;
	return 0;
fail:
	ds_backup_free(b);
	return r;
}

bool ds_backup_has_manifest(const struct ds_backup *b)
{
	struct stat st;

	return fstatat(b->snapfd, DS_MANIFEST_NAME, &st, 0) == 0;
}

bool ds_backup_has_file(const struct ds_backup *b, const char *name)
{
	struct stat st;

	return already_added(b, name) || fstatat(b->snapfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

int ds_backup_set_notes(struct ds_backup *b, const char *notes)
{
	int r = ds_manifest_set_notes(b->manifest, notes);

	if (r == 0)
		b->notes_set = true;
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
	r = stopped(b);
	if (r < 0)
		return r;
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

/* Records chunk d as written anew by b. */
static int created_add(struct ds_backup *b, const struct ds_digest *d)
{
	int r = 0;

	pthread_mutex_lock(&b->created_lock);
	if (b->ncreated == b->created_cap) {
		size_t cap = b->created_cap ? 2 * b->created_cap : 256;
		struct ds_digest *v = reallocarray(b->created, cap, sizeof(*v));

		if (v) {
			b->created = v;
			b->created_cap = cap;
		} else {
			r = -ENOMEM;
		}
	}
	if (r == 0)
		b->created[b->ncreated++] = *d;
	pthread_mutex_unlock(&b->created_lock);
	return r;
}

static size_t created_count(struct ds_backup *b)
{
	size_t n;

	pthread_mutex_lock(&b->created_lock);
	n = b->ncreated;
	pthread_mutex_unlock(&b->created_lock);
	return n;
}

/* Forgets the first n chunks recorded: a sync that began after they were
 * recorded wrote them back. Those recorded since stay. */
static void created_forget(struct ds_backup *b, size_t n)
{
	if (n == 0)
		return; /* b->created may be NULL: no memmove from it */
	pthread_mutex_lock(&b->created_lock);
	b->ncreated -= n;
	memmove(b->created, b->created + n, b->ncreated * sizeof(*b->created));
	if (b->ncreated == 0) {
		free(b->created);
		b->created = NULL;
		b->created_cap = 0;
	}
	pthread_mutex_unlock(&b->created_lock);
}

/* After a failed sync: the chunks b wrote anew may be files of the right
 * size whose bytes never reached the disk, and a later backup would take
 * them as present (an existing chunk is only touched). Each one is read
 * from the disk and removed when it is not intact, so that the next insert
 * writes it again; intact ones stay (another backup may use them already).
 * Those recorded while this runs wait for the next call. */
static void recheck_created(struct ds_backup *b)
{
	size_t n, removed = 0, unchecked = 0;
	struct ds_digest *v;

	pthread_mutex_lock(&b->created_lock);
	v = b->created;
	n = b->ncreated;
	b->created = NULL;
	b->ncreated = b->created_cap = 0;
	pthread_mutex_unlock(&b->created_lock);
	for (size_t i = 0; i < n; i++) {
		int r = ds_writer_check_chunk_disk(b->w, &v[i], b->crypt);

		if (r == 1)
			removed++;
		else if (r < 0 && r != -ENOENT)
			unchecked++;
	}
	free(v);
	if (n == 0)
		return;
	if (removed)
		ds_err("%s: %zu of the %zu chunks this backup wrote were not intact on the disk, "
		       "removed", b->snaprel, removed, n);
	if (unchecked)
		ds_err("%s: %zu of the %zu chunks this backup wrote could not be checked or "
		       "removed", b->snaprel, unchecked, n);
	if (!removed && !unchecked)
		ds_info("%s: the %zu chunks this backup wrote are intact on the disk", b->snaprel,
			n);
}

static int put_chunk(struct ds_archive_writer *aw, const uint8_t *data, size_t len,
		     struct ds_digest *ret)
{
	struct ds_backup *b = aw->b;
	bool existed = false;
	int r;

	r = stopped(b);
	if (r < 0)
		return r;
	r = ds_writer_put_chunk(b->w, data, len, b->crypt, ret, &existed);
	if (r < 0)
		return r;
	/* One not recorded could not be checked after a failed sync: the
	 * write fails instead. */
	if (!existed) {
		r = created_add(b, ret);
		if (r < 0)
			return r;
	}
	__atomic_add_fetch(&b->stats.chunks, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&b->stats.bytes, len, __ATOMIC_RELAXED);
	if (!existed) {
		__atomic_add_fetch(&b->stats.new_chunks, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&b->stats.new_bytes, chunk_file_size(b, ret), __ATOMIC_RELAXED);
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
	if (aw->fixed) {
		r = ds_fidx_writer_set(aw->fidx, aw->next_chunk++, &d);
	} else {
		r = ds_didx_writer_append(aw->didx, aw->offset, &d);
		if (r == 0 && aw->chunk_fn)
			aw->chunk_fn(aw->chunk_ctx, aw->offset, &d);
	}
	aw->buf_len = 0;
	return r;
}

int ds_archive_write(struct ds_archive_writer *aw, const void *data, size_t len)
{
	const uint8_t *p = data;
	int r;

	r = stopped(aw->b);
	if (r < 0)
		return r;
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

int ds_archive_encode_chunk(struct ds_archive_writer *aw, const uint8_t *data, size_t len,
			    struct ds_digest *ret_digest)
{
	/* aw->fixed and aw->chunk_size are set at begin and never change. */
	if (!aw->fixed || len == 0 || len > aw->chunk_size)
		return -EINVAL;
	return put_chunk(aw, data, len, ret_digest);
}

int ds_archive_set_fixed_digest(struct ds_archive_writer *aw, size_t i,
				const struct ds_digest *d)
{
	if (!aw->fixed)
		return -EINVAL;
	return ds_fidx_writer_set(aw->fidx, i, d);
}

int ds_archive_repeat_fixed_chunk(struct ds_archive_writer *aw, size_t i,
				  const struct ds_digest *d, size_t len)
{
	int r = ds_archive_set_fixed_digest(aw, i, d);

	if (r == 0) {
		__atomic_add_fetch(&aw->b->stats.chunks, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&aw->b->stats.bytes, len, __ATOMIC_RELAXED);
	}
	return r;
}

int ds_archive_put_fixed_chunk(struct ds_archive_writer *aw, size_t i, const uint8_t *data,
			       size_t len, struct ds_digest *ret_digest)
{
	struct ds_digest d;
	int r;

	r = ds_archive_encode_chunk(aw, data, len, &d);
	if (r == 0)
		r = ds_archive_set_fixed_digest(aw, i, &d);
	if (r == 0 && ret_digest)
		*ret_digest = d;
	return r;
}

int ds_archive_truncate_fixed(struct ds_archive_writer *aw, uint64_t size)
{
	uint64_t n;

	if (!aw->fixed || aw->buf_len)
		return -EINVAL; /* a sequential writer has no use for it */
	n = size / aw->chunk_size + (size % aw->chunk_size != 0);
	if (n > SIZE_MAX)
		return -EINVAL;
	return ds_fidx_writer_truncate(aw->fidx, (size_t)n);
}

void ds_archive_set_chunk_fn(struct ds_archive_writer *aw, ds_archive_chunk_fn fn, void *ctx)
{
	aw->chunk_fn = fn;
	aw->chunk_ctx = ctx;
}

void ds_archive_pending(const struct ds_archive_writer *aw, const uint8_t **ret_data,
			size_t *ret_len)
{
	*ret_data = aw->buf;
	*ret_len = aw->buf_len;
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

/* Writes b's manifest under PBS's manifest lock. Notes changed on the disk
 * since it was stored (PBS's notes update, another mount's: they take the
 * manifest lock alone, not the snapshot lock this backup holds) are kept,
 * unless this backup set its own since; they used to be written over. */
static int store_manifest(struct ds_backup *b)
{
	struct ds_manifest *disk = NULL;
	struct ds_lock *l;
	int r;

	r = ds_lock_manifest(ds_lookup_store(ds_writer_lookup(b->w)), b->snaprel, &l);
	if (r < 0)
		return r;
	if (!b->notes_set) {
		r = ds_manifest_load(b->snapfd, &disk);
		if (r == 0)
			r = ds_manifest_set_notes(b->manifest, ds_manifest_notes(disk));
		/* None on the disk yet, a damaged one (replaced), or notes
		 * a manifest cannot hold: this backup's stay. */
		if (r != -ENOMEM)
			r = 0;
		ds_manifest_free(disk);
	}
	if (r == 0)
		r = ds_manifest_store(b->snapfd, b->manifest);
	if (r == 0)
		b->notes_set = false;
	ds_lock_release(l);
	return r;
}

int ds_backup_sync(struct ds_backup *b)
{
	if (!b->failed) {
		size_t n = created_count(b);

		if (syncfs(b->snapfd) == 0) {
			created_forget(b, n);
			return 0;
		}
		/* A writeback error is reported once per descriptor: kept, so
		 * that no later commit of this backup publishes what was
		 * lost. */
		__atomic_store_n(&b->failed, -errno, __ATOMIC_RELAXED); /* ds_backup_failed */
		ds_err("%s: data written to the datastore was lost: %s", b->snaprel,
		       strerror(-b->failed));
	}
	/* Also what was written after an earlier failure: a direct read
	 * writes it back first, and it too may fail. */
	recheck_created(b);
	return b->failed;
}

int ds_backup_failed(const struct ds_backup *b)
{
	return __atomic_load_n(&b->failed, __ATOMIC_RELAXED);
}

int ds_backup_finish(struct ds_backup *b)
{
	int r;

	/* sync-level=filesystem (PBS's default): every chunk and index is
	 * durable before a manifest names it. */
	if (b->failed)
		return ds_backup_sync(b);
	r = stopped(b);
	if (r < 0)
		return r;
	if (!ds_writer_sync_each(b->w)) {
		r = ds_backup_sync(b);
		if (r < 0)
			return r;
	}
	if (b->crypt) {
		r = ds_manifest_sign(b->manifest, b->crypt);
		if (r < 0)
			return r;
	}
	/* The sync may take long: a stop meanwhile still leaves no manifest. */
	r = stopped(b);
	if (r == 0)
		r = store_manifest(b);
	if (r < 0)
		return r;
	remember_stored(b);
	b->finished = true;
	return 0;
}

bool ds_backup_drop_file(struct ds_backup *b, const char *name)
{
	/* Another commit of this backup may have stored a manifest naming it
	 * since it was put in place (after a sync that made it durable): it
	 * is published, and removing it would leave that manifest naming a
	 * missing file. */
	if (is_stored(b, name))
		return false;
	ds_manifest_remove_file(b->manifest, name);
	if (unlinkat(b->snapfd, name, 0) < 0 && errno != ENOENT)
		ds_warn("%s/%s: cannot remove: %s", b->snaprel, name, strerror(errno));
	return true;
}

void ds_backup_stats(const struct ds_backup *b, struct ds_backup_stats *ret)
{
	ret->chunks = __atomic_load_n(&b->stats.chunks, __ATOMIC_RELAXED);
	ret->bytes = __atomic_load_n(&b->stats.bytes, __ATOMIC_RELAXED);
	ret->new_chunks = __atomic_load_n(&b->stats.new_chunks, __ATOMIC_RELAXED);
	ret->new_bytes = __atomic_load_n(&b->stats.new_bytes, __ATOMIC_RELAXED);
}

/* Removes the files of an unfinished snapshot, then the directory. */
static void remove_snapshot(struct ds_backup *b)
{
	int fd = dup(b->snapfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	int r;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			unlinkat(b->snapfd, de->d_name, 0);
	closedir(d);
	r = ds_unlink_at(ds_writer_basefd(b->w), b->snaprel, AT_REMOVEDIR);
	if (r < 0)
		ds_warn("cannot remove unfinished snapshot %s: %s", b->snaprel, strerror(-r));
}

void ds_backup_free(struct ds_backup *b)
{
	if (!b)
		return;
	if (b->failed)
		recheck_created(b); /* written since the last failed sync */
	if (!b->finished && !b->keep && b->snapfd >= 0)
		remove_snapshot(b);
	if (b->snapfd >= 0)
		close(b->snapfd);
	ds_lock_release(b->snap_lock);
	ds_lock_release(b->group_lock);
	ds_manifest_free(b->manifest);
	forget_stored(b);
	free(b->created);
	pthread_mutex_destroy(&b->created_lock);
	free(b);
}

static int open_snapshot_for_write(const struct ds_writer *w, const char *snaprel)
{
	char ns[257], type[8], id[256], time[DS_TIME_LEN + 1];

	/* Only a snapshot path may be joined to the base (no ".."), and no
	 * link in it is followed: forgetting a snapshot reached through one
	 * removed the files of a directory outside the datastore. */
	if (ds_parse_snapshot_path(snaprel, true, ns, type, id, time) < 0)
		return -EINVAL;
	return ds_open_dir_at(ds_writer_basefd(w), snaprel);
}

/* open_snapshot_for_write, with the snapshot's lock taken exclusively:
 * -EBUSY while a backup writes it, a reader holds it or it is removed. */
static int open_snapshot_exclusive(const struct ds_writer *w, const char *snaprel, int *ret_fd,
				   struct ds_lock **ret_lock)
{
	int fd, r;

	fd = open_snapshot_for_write(w, snaprel);
	if (fd < 0)
		return fd;
	r = ds_lock_snapshot(ds_writer_basefd(w), ds_lookup_store(ds_writer_lookup(w)), snaprel,
			     true, ret_lock);
	if (r < 0) {
		close(fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

int ds_snapshot_set_notes(const struct ds_writer *w, const char *snaprel, const char *notes)
{
	struct ds_manifest *m = NULL;
	struct ds_lock *l;
	int fd, r;

	fd = open_snapshot_for_write(w, snaprel);
	if (fd < 0)
		return fd;
	/* PBS's manifest read-modify-write runs under the manifest lock. */
	r = ds_lock_manifest(ds_lookup_store(ds_writer_lookup(w)), snaprel, &l);
	if (r < 0)
		goto out;
	r = ds_manifest_load(fd, &m);
	if (r == 0)
		r = ds_manifest_set_notes(m, notes);
	if (r == 0)
		r = ds_manifest_store(fd, m);
	ds_lock_release(l);
out:
	ds_manifest_free(m);
	close(fd);
	return r;
}

int ds_snapshot_protect_at(int fd, bool protect)
{
	int r = 0;

	if (protect) {
		/* The snapshot directory is the backup user's: a link
		 * there is not followed (root would give its target to
		 * that user), nor is anything but a regular file kept. */
		int pfd = openat(fd, ".protected",
				 O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
		struct stat st;

		if (pfd < 0)
			return -errno;
		if (fstat(pfd, &st) < 0)
			r = -errno;
		else if (!S_ISREG(st.st_mode))
			r = -EINVAL;
		else
			r = ds_own_fd(pfd);
		close(pfd);
	} else if (unlinkat(fd, ".protected", 0) < 0 && errno != ENOENT) {
		r = -errno;
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	return r;
}

int ds_snapshot_set_protected(const struct ds_writer *w, const char *snaprel, bool protect)
{
	struct ds_lock *l;
	int fd, r;

	/* Never while a backup writes it, a reader holds it, or a removal
	 * has it (which looks at .protected under that lock). */
	r = open_snapshot_exclusive(w, snaprel, &fd, &l);
	if (r == -EBUSY)
		ds_err("snapshot %s is in use: protection not changed", snaprel);
	if (r < 0)
		return r;
	r = ds_snapshot_protect_at(fd, protect);
	ds_lock_release(l);
	close(fd);
	return r;
}

/* Temporary files a writer leaves when it dies: index temp names and
 * atomic-replace temp names (spec §1.8). */
static bool is_tmp_name(const char *name)
{
	const char *dot = strrchr(name, '.');

	if (!dot)
		return false;
	if (strcmp(dot, ".tmp_fidx") == 0 || strcmp(dot, ".tmp_didx") == 0)
		return true;
	return strncmp(dot, ".tmp_", 5) == 0 && strlen(dot) == 11;
}

/* A walk over directory fd from its start, fd left open (closedir the
 * result). NULL with errno set on failure. */
static DIR *dir_walk(int fd)
{
	int dfd = dup(fd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;

	if (!d) {
		int e = errno;

		if (dfd >= 0)
			close(dfd);
		errno = e;
		return NULL;
	}
	rewinddir(d); /* the dup shares fd's offset: an earlier walk left it at the end */
	return d;
}

/* Unlinks the regular files of directory fd that match keep == false. */
static int unlink_files(int fd, bool (*match)(const char *name), unsigned *ret_n)
{
	DIR *d = dir_walk(fd);
	struct dirent *de;
	int r = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (match && !match(de->d_name))
			continue;
		if (unlinkat(fd, de->d_name, 0) < 0) {
			if (errno == EISDIR || errno == EPERM) /* not ours to remove */
				continue;
			r = -errno;
			break;
		}
		if (ret_n)
			(*ret_n)++;
	}
	closedir(d);
	return r;
}

int ds_snapshot_forget(const struct ds_writer *w, const char *snaprel)
{
	const char *store = ds_lookup_store(ds_writer_lookup(w));
	struct ds_lock *l, *ml = NULL;
	struct stat st;
	int fd, r;

	/* As PBS's BackupDir::destroy: the snapshot's lock, then the
	 * manifest's (a notes update under way finishes first, instead of
	 * writing the manifest back into a directory being emptied), and
	 * only then the protection, which PBS changes under the snapshot's
	 * lock: checked before it, a snapshot protected in between went. */
	r = open_snapshot_exclusive(w, snaprel, &fd, &l);
	if (r == -EBUSY)
		ds_err("snapshot %s is in use, not removed", snaprel);
	if (r < 0)
		return r;
	r = ds_lock_manifest(store, snaprel, &ml);
	if (r < 0) {
		ds_err("snapshot %s: its manifest is locked: not removed", snaprel);
		goto out;
	}
	if (fstatat(fd, ".protected", &st, 0) == 0) {
		ds_err("snapshot %s is protected, not removed", snaprel);
		r = -EPERM;
		goto out;
	}
	/* The manifest first: from then on a crash leaves an unfinished
	 * snapshot, never a finished one with files missing. */
	if (unlinkat(fd, DS_MANIFEST_NAME, 0) < 0 && errno != ENOENT) {
		r = -errno;
		goto out;
	}
	if (fsync(fd) < 0) {
		r = -errno;
		goto out;
	}
	r = unlink_files(fd, NULL, NULL);
	if (r == 0)
		r = ds_unlink_at(ds_writer_basefd(w), snaprel, AT_REMOVEDIR);
	if (r == 0)
		ds_info("snapshot %s/%s forgotten", store, snaprel);
out:
	ds_lock_release(ml);
	ds_lock_release(l);
	close(fd);
	return r;
}

/* Whether directory fd holds a subdirectory (a snapshot, namespace, …). */
static int has_subdir(int fd)
{
	DIR *d = dir_walk(fd);
	struct dirent *de;
	int r = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d)) && r == 0) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
			r = 1;
	}
	closedir(d);
	return r;
}

static bool is_group_file(const char *name)
{
	return strcmp(name, "owner") == 0 || strcmp(name, "notes") == 0;
}

int ds_group_remove(const struct ds_writer *w, const char *ns, const char *type, const char *id)
{
	char grouprel[2048];
	struct ds_lock *l = NULL;
	int basefd = ds_writer_basefd(w), fd, r;

	r = ds_group_relpath(ns, type, id, grouprel, sizeof(grouprel));
	if (r < 0)
		return r;
	fd = ds_open_dir_at(basefd, grouprel);
	if (fd < 0)
		return fd == -ENOTDIR ? -ENOENT : fd;
	r = ds_lock_group(basefd, ds_lookup_store(ds_writer_lookup(w)), grouprel, &l);
	if (r == 0)
		r = has_subdir(fd);
	if (r == 1)
		r = -ENOTEMPTY;
	if (r == 0)
		r = unlink_files(fd, is_group_file, NULL);
	if (r == 0)
		r = ds_unlink_at(basefd, grouprel, AT_REMOVEDIR);
	ds_lock_release(l);
	close(fd);
	return r;
}

/* rmdir of dir below fd if it is an empty directory; missing is fine. */
static int remove_empty(int fd, const char *dir)
{
	if (unlinkat(fd, dir, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int ds_ns_remove(const struct ds_writer *w, const char *ns)
{
	char rel[1100];
	int basefd = ds_writer_basefd(w), fd, r;

	if (!*ns)
		return -EINVAL; /* the root namespace is the datastore */
	r = ds_ns_relpath(ns, rel, sizeof(rel));
	if (r < 0)
		return r;
	fd = ds_open_dir_at(basefd, rel);
	if (fd < 0)
		return fd == -ENOTDIR ? -ENOENT : fd;
	/* Empty type directories and an empty ns/ go with it (PBS creates
	 * them on demand); anything with content keeps it (ENOTEMPTY). */
	r = 0;
	for (int t = 0; t < 3 && r == 0; t++)
		r = remove_empty(fd, ds_backup_type_name((enum ds_backup_type)t));
	if (r == 0)
		r = remove_empty(fd, "ns");
	close(fd);
	if (r == 0)
		r = ds_unlink_at(basefd, rel, AT_REMOVEDIR);
	return r;
}

int ds_snapshot_cleanup(const struct ds_writer *w, const char *snaprel)
{
	struct ds_lock *l;
	unsigned n = 0;
	int fd, r;

	/* A locked snapshot has a live writer: its temp files are in use. */
	r = open_snapshot_exclusive(w, snaprel, &fd, &l);
	if (r < 0)
		return r;
	r = unlink_files(fd, is_tmp_name, &n);
	ds_lock_release(l);
	close(fd);
	if (r == 0 && n > 0)
		ds_warn("%s: removed %u temporary file%s of an interrupted writer", snaprel, n,
			n == 1 ? "" : "s");
	return r < 0 ? r : (int)n;
}

/* Whether snapshot directory fd holds a temp file (no lock needed to look). */
static bool has_tmp_file(int fd)
{
	DIR *d = dir_walk(fd);
	struct dirent *de;
	bool found = false;

	if (!d)
		return false;
	while (!found && (de = readdir(d)))
		found = is_tmp_name(de->d_name);
	closedir(d);
	return found;
}

static int cleanup_ns(const struct ds_writer *w, const char *ns, unsigned depth)
{
	const struct ds_lookup *lk = ds_writer_lookup(w);
	struct ds_group *groups = NULL;
	struct ds_strv children = { 0 };
	size_t ngroups = 0;
	int total = 0, r;

	r = ds_list_groups(lk, ns, &groups, &ngroups);
	if (r < 0)
		return r;
	for (size_t g = 0; g < ngroups; g++) {
		const char *type = ds_backup_type_name(groups[g].type);
		struct ds_snapshot *snaps = NULL;
		size_t nsnaps = 0;

		if (ds_list_snapshots(lk, ns, type, groups[g].id, &snaps, &nsnaps) < 0)
			continue;
		for (size_t i = 0; i < nsnaps; i++) {
			char rel[2048];
			int fd;

			if (ds_snapshot_relpath(ns, type, groups[g].id, snaps[i].time, rel,
						sizeof(rel)) < 0 ||
			    (fd = open_snapshot_for_write(w, rel)) < 0)
				continue;
			if (has_tmp_file(fd) && (r = ds_snapshot_cleanup(w, rel)) > 0)
				total += r;
			close(fd);
		}
		free(snaps);
	}
	ds_groups_free(groups, ngroups);
	if (depth >= DS_MAX_NAMESPACE_DEPTH || ds_list_namespaces(lk, ns, &children) < 0)
		return total;
	for (size_t i = 0; i < children.n; i++) {
		char sub[300];

		if (ds_path_fmt(sub, sizeof(sub), "%s%s%s", ns, *ns ? "/" : "", children.v[i]) < 0)
			continue;
		r = cleanup_ns(w, sub, depth + 1);
		if (r > 0)
			total += r;
	}
	ds_strv_free(&children);
	return total;
}

int ds_datastore_cleanup(const struct ds_writer *w)
{
	return cleanup_ns(w, "", 0);
}
