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

/* A writer that modified the file in place and still has it open is
 * waited for (its close ends the write) this long after its last write;
 * past that its content is taken as it is. */
#define WRITE_SETTLE_NS (2ULL * 1000 * 1000 * 1000)
/* Reads of a file that changed while being read, tried again at once. */
#define READ_TRIES 3
/* A config without some stores of the current one is installed only
 * once the file has said so this long: an in-place rewrite read before
 * its writer is done (an empty file just after the O_TRUNC, the first
 * sections alone) parses as such a config, and the writer's events may
 * reach us after its bytes do (an ext4 truncate frees the blocks first). */
#define DROP_CONFIRM_NS (1000ULL * 1000 * 1000)

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
	bool missing; /* no file: read as an empty config, as PBS does */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim;
};

struct ds_config_cache {
	char *path;
	char *shm_path;
	char *base;     /* path's last component, as inotify names it */
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
	/* The file is being rewritten in place: modified (IN_MODIFY, which
	 * an O_TRUNC open gives too) and not yet closed by its writer. Its
	 * content may be any prefix of what the writer means to write. */
	bool writing;
	bool missing_logged; /* the file's absence was logged (once per absence) */
	uint64_t modified_ns; /* ds_now_ns() of the last IN_MODIFY seen */
	/* Content without some stores of `cur`, read at drop_since from the
	 * file as drop_ident says, and not installed before the file has
	 * stayed so, unwritten, for DROP_CONFIRM_NS. */
	bool drop_valid;
	struct ds_digest drop_digest;
	struct file_ident drop_ident;
	uint64_t drop_since;

	uint64_t parses; /* atomic */
};

static void holder_put(struct holder *h)
{
	if (__atomic_sub_fetch(&h->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		ds_config_free(h->cfg);
		free(h);
	}
}

/* Reads the pending inotify events (the caller holds refresh_lock) and
 * follows the config file's in-place writers. Returns whether any event
 * said that the file's content or directory entry changed. */
static bool read_events(struct ds_config_cache *cc)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool changed = false;

	if (cc->inotify_fd < 0)
		return false;
	for (;;) {
		ssize_t n = read(cc->inotify_fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)(void *)p;

			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				/* Events were lost: whether a writer is still at
				 * it is unknown, so nobody is waited for. */
				cc->writing = false;
				changed = true;
				continue;
			}
			if (ev->len == 0 || strcmp(ev->name, cc->base) != 0)
				continue;
			if (ev->mask & IN_MODIFY) {
				cc->writing = true;
				cc->modified_ns = ds_now_ns();
			}
			/* A close after writing ends an in-place write; a new
			 * file renamed or created there, or its removal,
			 * leaves nothing half-written under the name. */
			if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE))
				cc->writing = false;
			changed = true;
		}
	}
	return changed;
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
	return a->valid && b->valid && a->missing == b->missing && a->dev == b->dev &&
	       a->ino == b->ino && a->size == b->size && a->mtim.tv_sec == b->mtim.tv_sec &&
	       a->mtim.tv_nsec == b->mtim.tv_nsec;
}

/* Whether two fstats of one open file show a write between them. */
static bool stat_changed(const struct stat *a, const struct stat *b)
{
	return a->st_size != b->st_size || a->st_mtim.tv_sec != b->st_mtim.tv_sec ||
	       a->st_mtim.tv_nsec != b->st_mtim.tv_nsec || a->st_ctim.tv_sec != b->st_ctim.tv_sec ||
	       a->st_ctim.tv_nsec != b->st_ctim.tv_nsec;
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

/* Whether new lacks a store that old has. Caller holds refresh_lock (old
 * is the current config, which only a refresh replaces). */
static bool drops_store(const struct ds_config *old, const struct ds_config *new)
{
	for (size_t i = 0; i < old->n_stores; i++)
		if (!ds_config_find(new, old->stores[i].name))
			return true;
	return false;
}

/* A config dropping stores is not confirmed yet: the current one stays,
 * and the next refresh reads the file again even if it looks the same.
 * What was read is a valid config, a change not taken yet: 0, not the
 * error of an earlier refresh (a bad edit before it). */
static int drop_wait(struct ds_config_cache *cc)
{
	ds_debug("%s: stores missing from it: keeping the current config for %llu ms, "
		 "in case it is being rewritten",
		 cc->path, (unsigned long long)(DROP_CONFIRM_NS / 1000000));
	cc->ident.valid = false;
	cc->last_err = 0;
	return 0;
}

/* Whether content (digest, read from the file as id says) that drops
 * stores is still to be confirmed; starts its wait if it is new. The
 * same content is not enough: written again since (the same empty file
 * after each O_TRUNC of a writer rewriting it over and over), the file
 * has not said so for the whole time, and the wait starts anew. */
static bool drop_pending(struct ds_config_cache *cc, const struct ds_digest *digest,
			 const struct file_ident *id)
{
	if (!cc->drop_valid || !ds_digest_eq(digest, &cc->drop_digest) ||
	    !ident_eq(id, &cc->drop_ident)) {
		cc->drop_valid = true;
		cc->drop_digest = *digest;
		cc->drop_ident = *id;
		cc->drop_since = ds_now_ns();
	}
	return ds_now_ns() - cc->drop_since < DROP_CONFIRM_NS;
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
	/* Rewritten in place right now: the file may hold any prefix of the
	 * new text (nothing at all just after the O_TRUNC), which can parse
	 * as a config without some or all stores. The writer's close is an
	 * event, and the refresh it wakes reads the file whole. */
	read_events(cc);
	if (!first && cc->writing && ds_now_ns() - cc->modified_ns < WRITE_SETTLE_NS)
		return cc->last_err;
	/* No file is an empty config, as PBS reads it (pbs-config's
	 * config(): file_read_optional_string): a fresh PBS host has no
	 * datastore.cfg until its first datastore, which then appears. */
	if (stat(cc->path, &st) == 0)
		ident_from_stat(&now, &st);
	else if (errno == ENOENT)
		now = (struct file_ident){ .valid = true, .missing = true };
	else
		return refresh_failed(cc, -errno, first ? NULL : "cannot stat");
	if (!first && ident_eq(&now, &cc->ident) && have_gen == cc->have_gen && gen == cc->gen)
		return cc->last_err; /* 0, or the parse error this very file caused */

	/* O_NONBLOCK: /etc/proxmox-backup is the backup user's, and the open
	 * of a FIFO put there in the file's place would wait for a writer
	 * forever (with refresh_lock held: every later lookup with it). */
	if (!now.missing) {
		fd = open(cc->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0 && errno == ENOENT)
			now = (struct file_ident){ .valid = true, .missing = true };
		else if (fd < 0)
			return refresh_failed(cc, -errno, first ? NULL : "cannot open");
	}
	if (now.missing) {
		buf = calloc(1, 1);
		if (!buf)
			return refresh_failed(cc, -ENOMEM, "cannot read");
		if (!cc->missing_logged)
			ds_info("%s does not exist: no datastores until it does (as for PBS)",
				cc->path);
		cc->missing_logged = true;
	} else {
		cc->missing_logged = false;
	}
	for (int tries = 1; fd >= 0; tries++) {
		struct stat after;
		bool raced;

		/* Record the identity of what we read, not of what stat saw. */
		if (fstat(fd, &st) < 0) {
			r = refresh_failed(cc, -errno, first ? NULL : "cannot stat");
			goto out;
		}
		if (!S_ISREG(st.st_mode)) {
			r = refresh_failed(cc, -EINVAL, first ? NULL : "not a regular file");
			goto out;
		}
		ident_from_stat(&now, &st);
		free(buf);
		buf = NULL;
		r = lseek(fd, 0, SEEK_SET) < 0 ? -errno : read_fd(fd, st.st_size, &buf, &len);
		if (r < 0) {
			r = refresh_failed(cc, r,
					   r == -EFBIG ? "too large for a datastore.cfg"
					   : first     ? NULL
						       : "cannot read");
			goto out;
		}
		/* Written to while we read (or truncated just before): what
		 * we have may be half of it. */
		raced = fstat(fd, &after) < 0 || stat_changed(&st, &after);
		raced |= read_events(cc);
		if (!raced || (first && tries == READ_TRIES))
			break;
		if (!first && (cc->writing || tries == READ_TRIES)) {
			/* Kept; read again once the writer is done. */
			ds_debug("%s: changed while being read, keeping the current config "
				 "until the write ends", cc->path);
			cc->ident.valid = false;
			r = cc->last_err;
			goto out;
		}
	}
	cc->ident = now;
	cc->have_gen = have_gen;
	cc->gen = gen;
	ds_sha256(buf, len, &digest);
	if (!first && ds_digest_eq(&digest, &cc->digest)) {
		/* Rewritten with identical content, or a bad edit undone. */
		cc->last_err = 0;
		cc->fail_digest_valid = false;
		cc->drop_valid = false;
		r = 0;
		goto out;
	}
	if (cc->fail_digest_valid && ds_digest_eq(&digest, &cc->fail_digest)) {
		/* This content failed before and was logged then. */
		cc->last_err = cc->fail_err;
		r = cc->fail_err;
		goto out;
	}
	if (cc->drop_valid && ds_digest_eq(&digest, &cc->drop_digest) &&
	    drop_pending(cc, &digest, &now)) {
		r = drop_wait(cc);
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
	if (!first && drops_store(cc->cur->cfg, cfg) && drop_pending(cc, &digest, &now)) {
		r = drop_wait(cc);
		goto out;
	}
	cc->drop_valid = false;
	cc->digest = digest;
	cc->last_err = 0;
	cc->fail_digest_valid = false;
	publish(cc, h, cfg);
	h = NULL;
	cfg = NULL;
	r = 1;
out:
	ds_config_free(cfg);
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
	 * would go stale, so watch the directory entry instead. IN_MODIFY
	 * tells when it is being rewritten in place. */
	if (cc->inotify_fd >= 0 &&
	    inotify_add_watch(cc->inotify_fd, dir,
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB |
				      IN_MODIFY) < 0) {
		ds_warn("%s: cannot watch for changes: %s", dir, strerror(errno));
		close(cc->inotify_fd);
		cc->inotify_fd = -1;
	}
	free(copy);
}

int ds_config_cache_new(const char *path, const char *shm_path, struct ds_config_cache **ret)
{
	struct ds_config_cache *cc;
	const char *slash;
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
	slash = strrchr(path, '/');
	cc->base = strdup(slash ? slash + 1 : path);
	if (!cc->path || !cc->shm_path || !cc->base) {
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
	free(cc->base);
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
	/* The events say "look again" (refresh decides what changed), and
	 * whether the file is being written in place. */
	pthread_mutex_lock(&cc->refresh_lock);
	read_events(cc);
	pthread_mutex_unlock(&cc->refresh_lock);
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
	/* O_NONBLOCK: the directory is the backup user's, and a FIFO put
	 * there would make the open wait for a writer forever. */
	fd = open(shm_path ? shm_path : DS_CONFIG_VERSIONS_PATH,
		  O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
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
			/* By descriptor: /run/proxmox-backup is the backup
			 * user's, who could put a link in the new directory's
			 * place before a chmod by name (which follows it). */
			int fd = open(buf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			int r = fd < 0 || fchmod(fd, mode) < 0 ? -errno : 0;

			if (fd >= 0)
				close(fd);
			if (r < 0)
				return r;
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
