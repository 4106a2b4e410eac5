#include "cache/config_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/config.h"
#include "store/log.h"
#include "store/util.h"

/* datastore.cfg larger than this is not one (store/config.c uses the same). */
#define CONFIG_MAX_SIZE (16 * DS_MIB)

#define GEN_FILE_SIZE 4096
#define GEN_OFFSET 24

/* sha256("Proxmox Backup ConfigVersionCache v1.0")[0..8], spec §6.6. */
static const uint8_t gen_magic[8] = { 0x19, 0xc6, 0xa8, 0xe6, 0x9a, 0x84, 0x8f, 0x83 };

/* One published config. refs counts the cache's own reference (while it is
 * current) plus one per snapshot handed out. */
struct holder {
	struct ds_config *cfg;
	uint64_t version;
	unsigned long refs; /* atomic */
};

/* What the file looked like when it was last read. ctime is left out on
 * purpose (the contract's fields only): a chmod/chown then costs nothing,
 * and an in-place edit that restores size and mtime is caught by the
 * ConfigVersionCache bump that PBS (and dsfs maintenance) do after a save. */
struct file_ident {
	bool valid;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim;
};

struct ds_config_cache {
	char *path;
	char *shm_path;
	int inotify_fd; /* -1 if unavailable */

	/* Held only to read `cur` and take a reference, or to swap `cur`. */
	pthread_mutex_t lock;
	struct holder *cur; /* protected by cc->lock; set from _new on */

	/* Serialises refresh; everything below is protected by it. */
	pthread_mutex_t refresh_lock;
	struct file_ident ident;    /* of the file behind `cur`, or of the last failure */
	bool have_gen;              /* a valid ConfigVersionCache was seen */
	uint64_t gen;
	struct ds_digest digest;    /* content of `cur` */
	int last_err;               /* 0, or the -errno of the last failed refresh */
	bool fail_digest_valid;     /* content fail_digest failed to parse ... */
	struct ds_digest fail_digest;
	int fail_err;               /* ... with this error (logged then) */

	uint64_t parses; /* atomic */
};

static void holder_put(struct holder *h)
{
	if (__atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		ds_config_free(h->cfg);
		free(h);
	}
}

static void ident_from_stat(struct file_ident *id, const struct stat *st)
{
	id->valid = true;
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = st->st_size;
	id->mtim = st->st_mtim;
}

static bool ident_eq(const struct file_ident *a, const struct file_ident *b)
{
	return a->valid && b->valid && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtim.tv_sec == b->mtim.tv_sec &&
	       a->mtim.tv_nsec == b->mtim.tv_nsec;
}

/* Reads an open regular file completely. *ret_buf malloc'ed, NUL-terminated. */
static int read_fd(int fd, off_t size_hint, uint8_t **ret_buf, size_t *ret_len)
{
	size_t cap = size_hint > 0 ? (size_t)size_hint + 1 : 4096, len = 0;
	uint8_t *buf, *nb;

	if (size_hint > (off_t)CONFIG_MAX_SIZE)
		return -EFBIG;
	buf = malloc(cap + 1);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (len == cap) {
			if (cap > CONFIG_MAX_SIZE) {
				free(buf);
				return -EFBIG;
			}
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int r = -errno;

			free(buf);
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > CONFIG_MAX_SIZE) {
		free(buf);
		return -EFBIG;
	}
	buf[len] = '\0';
	*ret_buf = buf;
	*ret_len = len;
	return 0;
}

/* Records a failed refresh; logs it (what: the failed step, NULL for no
 * log) unless it repeats the last failure. The file's identity is
 * forgotten so the next refresh looks at the file again. */
static int refresh_failed(struct ds_config_cache *cc, int err, const char *what)
{
	if (what && err != cc->last_err)
		ds_err("%s: %s: %s (keeping the last good config)", cc->path, what, strerror(-err));
	cc->last_err = err;
	cc->ident.valid = false;
	return err;
}

/* Installs cfg (consumed) as the current config. */
static void publish(struct ds_config_cache *cc, struct holder *h, struct ds_config *cfg)
{
	struct holder *old;

	h->cfg = cfg;
	h->refs = 1;
	pthread_mutex_lock(&cc->lock);
	old = cc->cur;
	h->version = old ? old->version + 1 : 1;
	cc->cur = h;
	pthread_mutex_unlock(&cc->lock);
	if (old)
		holder_put(old);
}

/* The work of _refresh and of the first load. first: there is no old
 * config to fall back to, and I/O errors are not logged (the caller
 * reports them, as with ds_config_load). Caller holds refresh_lock. */
static int do_refresh(struct ds_config_cache *cc, bool first)
{
	struct file_ident now = { 0 };
	struct ds_config *cfg = NULL;
	struct ds_digest digest;
	struct holder *h = NULL;
	struct stat st;
	uint8_t *buf = NULL;
	bool have_gen;
	uint64_t gen = 0;
	size_t len = 0;
	int fd = -1, r;

	/* The generation first: a bump that lands after this read is seen by
	 * the next refresh, never lost. */
	have_gen = ds_config_generation_read(cc->shm_path, &gen) == 0;
	if (stat(cc->path, &st) < 0)
		return refresh_failed(cc, -errno, first ? NULL : "cannot stat");
	ident_from_stat(&now, &st);
	if (!first && ident_eq(&now, &cc->ident) && have_gen == cc->have_gen && gen == cc->gen)
		return cc->last_err; /* 0, or the parse error this very file caused */

	fd = open(cc->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return refresh_failed(cc, -errno, first ? NULL : "cannot open");
	/* Record the identity of what we read, not of what stat saw. */
	if (fstat(fd, &st) < 0) {
		r = refresh_failed(cc, -errno, first ? NULL : "cannot stat");
		goto out;
	}
	ident_from_stat(&now, &st);
	r = read_fd(fd, st.st_size, &buf, &len);
	if (r < 0) {
		r = refresh_failed(cc, r,
				   r == -EFBIG ? "too large for a datastore.cfg"
				   : first     ? NULL
					       : "cannot read");
		goto out;
	}
	cc->ident = now;
	cc->have_gen = have_gen;
	cc->gen = gen;
	ds_sha256(buf, len, &digest);
	if (!first && ds_digest_eq(&digest, &cc->digest)) {
		/* Rewritten with identical content, or a bad edit undone. */
		cc->last_err = 0;
		cc->fail_digest_valid = false;
		r = 0;
		goto out;
	}
	if (cc->fail_digest_valid && ds_digest_eq(&digest, &cc->fail_digest)) {
		/* This content failed before and was logged then. */
		cc->last_err = cc->fail_err;
		r = cc->fail_err;
		goto out;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		r = refresh_failed(cc, -ENOMEM, "cannot parse");
		goto out;
	}
	__atomic_add_fetch(&cc->parses, 1, __ATOMIC_RELAXED);
	/* ds_config_parse logs "path:LINE: reason" itself. */
	r = ds_config_parse((const char *)buf, len, cc->path, &cfg);
	if (r < 0) {
		cc->fail_digest = digest;
		cc->fail_digest_valid = true;
		cc->fail_err = r;
		cc->last_err = r;
		goto out;
	}
	cc->digest = digest;
	cc->last_err = 0;
	cc->fail_digest_valid = false;
	publish(cc, h, cfg);
	h = NULL;
	r = 1;
out:
	free(h);
	free(buf);
	if (fd >= 0)
		close(fd);
	return r;
}

static void watch_dir(struct ds_config_cache *cc)
{
	char *copy = strdup(cc->path);
	const char *dir;

	cc->inotify_fd = -1;
	if (!copy)
		return;
	dir = dirname(copy);
	cc->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	/* Editors and PBS replace the file by rename: a watch on the inode
	 * would go stale, so watch the directory entry instead. */
	if (cc->inotify_fd >= 0 &&
	    inotify_add_watch(cc->inotify_fd, dir,
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB) < 0) {
		ds_warn("%s: cannot watch for changes: %s", dir, strerror(errno));
		close(cc->inotify_fd);
		cc->inotify_fd = -1;
	}
	free(copy);
}

int ds_config_cache_new(const char *path, const char *shm_path, struct ds_config_cache **ret)
{
	struct ds_config_cache *cc;
	int r;

	if (!path || !ret)
		return -EINVAL;
	cc = calloc(1, sizeof(*cc));
	if (!cc)
		return -ENOMEM;
	cc->inotify_fd = -1;
	pthread_mutex_init(&cc->lock, NULL);
	pthread_mutex_init(&cc->refresh_lock, NULL);
	cc->path = strdup(path);
	cc->shm_path = strdup(shm_path ? shm_path : DS_CONFIG_VERSIONS_PATH);
	if (!cc->path || !cc->shm_path) {
		r = -ENOMEM;
		goto fail;
	}
	/* Watch before the first read, so no change slips in between. */
	watch_dir(cc);
	r = do_refresh(cc, true);
	if (r < 0)
		goto fail;
	*ret = cc;
	return 0;
fail:
	ds_config_cache_free(cc);
	return r;
}

void ds_config_cache_free(struct ds_config_cache *cc)
{
	if (!cc)
		return;
	if (cc->cur)
		holder_put(cc->cur);
	if (cc->inotify_fd >= 0)
		close(cc->inotify_fd);
	pthread_mutex_destroy(&cc->lock);
	pthread_mutex_destroy(&cc->refresh_lock);
	free(cc->path);
	free(cc->shm_path);
	free(cc);
}

void ds_config_cache_get(struct ds_config_cache *cc, struct ds_config_snap *ret)
{
	struct holder *h;

	/* The mutex only orders this increment against the swap in publish:
	 * while we hold it, cur still owns its cache reference, so refs > 0. */
	pthread_mutex_lock(&cc->lock);
	h = cc->cur;
	__atomic_add_fetch(&h->refs, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&cc->lock);
	ret->cfg = h->cfg;
	ret->version = h->version;
	ret->priv = h;
}

void ds_config_cache_put(struct ds_config_cache *cc, struct ds_config_snap *snap)
{
	(void)cc;
	if (!snap || !snap->priv)
		return;
	holder_put(snap->priv);
	snap->priv = NULL;
	snap->cfg = NULL;
}

int ds_config_cache_refresh(struct ds_config_cache *cc)
{
	int r;

	pthread_mutex_lock(&cc->refresh_lock);
	r = do_refresh(cc, false);
	pthread_mutex_unlock(&cc->refresh_lock);
	return r;
}

int ds_config_cache_fd(struct ds_config_cache *cc)
{
	return cc->inotify_fd;
}

void ds_config_cache_drain_events(struct ds_config_cache *cc)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	if (cc->inotify_fd < 0)
		return;
	/* The events only say "look again"; refresh decides what changed. */
	for (;;) {
		ssize_t n = read(cc->inotify_fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
	}
}

uint64_t ds_config_cache_parses(struct ds_config_cache *cc)
{
	return __atomic_load_n(&cc->parses, __ATOMIC_RELAXED);
}

/* --- ConfigVersionCache --- */

/* Maps an open ConfigVersionCache after checking its size and magic. */
static int gen_map(int fd, bool writable, uint8_t **ret)
{
	struct stat st;
	uint8_t *p;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size != GEN_FILE_SIZE)
		return -EBADMSG;
	p = mmap(NULL, GEN_FILE_SIZE, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (memcmp(p, gen_magic, sizeof(gen_magic)) != 0) {
		munmap(p, GEN_FILE_SIZE);
		return -EBADMSG;
	}
	*ret = p;
	return 0;
}

int ds_config_generation_read(const char *shm_path, uint64_t *ret)
{
	uint8_t *p;
	int fd, r;

	if (!ret)
		return -EINVAL;
	fd = open(shm_path ? shm_path : DS_CONFIG_VERSIONS_PATH, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = gen_map(fd, false, &p);
	close(fd);
	if (r < 0)
		return r;
	/* PBS updates the counter with atomic fetch-add through its own map;
	 * an acquire load pairs with that. pread could tear the value. */
	*ret = __atomic_load_n((uint64_t *)(void *)(p + GEN_OFFSET), __ATOMIC_ACQUIRE);
	munmap(p, GEN_FILE_SIZE);
	return 0;
}

/* mkdir -p; directories it creates get exactly mode (umask notwithstanding),
 * existing ones are left alone. */
static int mkdir_p(const char *dir, mode_t mode)
{
	char buf[4096];
	size_t n = strlen(dir);
	char *p = buf + 1;

	if (n == 0 || n >= sizeof(buf))
		return n ? -ENAMETOOLONG : 0;
	memcpy(buf, dir, n + 1);
	for (;;) {
		char *slash = strchr(p, '/');

		if (slash)
			*slash = '\0';
		if (mkdir(buf, mode) == 0) {
			if (chmod(buf, mode) < 0)
				return -errno;
		} else if (errno != EEXIST) {
			return -errno;
		}
		if (!slash)
			return 0;
		*slash = '/';
		p = slash + 1;
	}
}

/* PBS's creation protocol (spec §6.6): an anonymous file gets its size and
 * magic before it gets a name, so no reader ever maps a half-made file.
 * Returns an O_RDWR descriptor of the file at path (ours or a concurrent
 * creator's). */
static int gen_create(const char *path)
{
	char *copy = strdup(path), proc[64];
	const char *dir;
	int fd = -1, r;

	if (!copy)
		return -ENOMEM;
	dir = dirname(copy);
	r = mkdir_p(dir, 0770);
	if (r < 0)
		goto out;
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0660);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (fchmod(fd, 0660) < 0 || ftruncate(fd, GEN_FILE_SIZE) < 0) {
		r = -errno;
		goto out;
	}
	r = ds_pwrite_all(fd, gen_magic, sizeof(gen_magic), 0);
	if (r < 0)
		goto out;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0) {
		r = fd;
		fd = -1;
		goto out;
	}
	if (errno != EEXIST) {
		r = -errno;
		goto out;
	}
	/* Someone else created it first: use theirs. */
	r = open(path, O_RDWR | O_CLOEXEC);
	if (r < 0)
		r = -errno;
out:
	if (fd >= 0)
		close(fd);
	free(copy);
	return r;
}

int ds_config_generation_bump(const char *shm_path, bool create)
{
	const char *path = shm_path ? shm_path : DS_CONFIG_VERSIONS_PATH;
	uint8_t *p;
	int fd, r;

	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create)
		fd = gen_create(path);
	else if (fd < 0)
		fd = -errno;
	if (fd < 0)
		return fd;
	r = gen_map(fd, true, &p);
	close(fd);
	if (r < 0)
		return r;
	__atomic_fetch_add((uint64_t *)(void *)(p + GEN_OFFSET), 1, __ATOMIC_ACQ_REL);
	munmap(p, GEN_FILE_SIZE);
	return 0;
}
