/* Writing through the mount (DESIGN.md "Writes"): mkdir of types, groups,
 * namespaces and snapshots; files created in a snapshot become archives;
 * rmdir forgets; notes and .protected.
 *
 * A snapshot with files open for writing has a session: a write handle, the
 * snapshot opened with ds_backup_open (group and snapshot locks held
 * exclusively, so PBS and other dsfs mounts keep out) and the list of its
 * open files. Each open file (struct vwopen) is shared by every handle the
 * kernel opens on its node; when the last one is released the archive is
 * committed (vw_finish, then the manifest is rewritten) and the node turns
 * into an ordinary archive node. Any failed write abandons the archive: it
 * is never committed, and its node disappears.
 *
 * Lock order: sess_mu, then vfs->lock, then a session's blk.
 */
#include "fs/mount/vfs_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/backup.h"
#include "store/datastore.h"
#include "store/hierarchy.h"
#include "store/log.h"
#include "store/manifest.h"

#define NOTES_MAX (1 * DS_MIB)

struct vsession {
	struct vstore *st;
	/* The store's directory it writes into (ds_writer_base_serial): after
	 * a path change, the snapshot at snaprel is another one. */
	uint64_t serial;
	char snaprel[1100];
	struct ds_writer *w;
	struct ds_backup *b;
	pthread_mutex_t blk; /* around calls on b */
	int snapfd;
	unsigned refs;          /* vwopens; vfs->lock */
	struct vwopen *files;   /* open archives; vfs->lock */
	struct vsession *next;
};

enum wokind {
	WO_ARCHIVE, /* a new archive */
	WO_NOTES,   /* the snapshot's notes */
	WO_NULL,    /* .protected: writes are accepted and dropped */
};

struct vwopen {
	enum wokind kind;
	uint64_t ino;
	struct vstore *st;
	char snaprel[1100];
	char name[256];          /* display name */
	struct vsession *ss;     /* archives; notes of a snapshot with a session */
	struct vwfile *vf;       /* archives */
	pthread_mutex_t mu;      /* notes buffer, err */
	char *buf;               /* notes */
	size_t len;
	int err;                 /* sticky: the archive is abandoned */
	_Atomic uint64_t size;   /* archives: as written so far */
	unsigned refs;           /* open handles; vfs->lock */
	bool finishing;          /* being committed, or notes being loaded; vfs->lock */
	struct vwopen *snext;    /* in ss->files */
};

/* Serialises session creation and teardown (lock order: first). */
static pthread_mutex_t sess_mu = PTHREAD_MUTEX_INITIALIZER;

/* The session of snapshot snaprel in the store's directory serial (0: in
 * any of its directories). Lock held. */
static struct vsession *session_find(struct vfs *v, const struct vstore *st, const char *snaprel,
				     uint64_t serial)
{
	for (struct vsession *s = v->sessions; s; s = s->next)
		if (s->st == st && strcmp(s->snaprel, snaprel) == 0 &&
		    (!serial || s->serial == serial))
			return s;
	return NULL;
}

/* Whether this mount has a session in the group of snaprel (another
 * snapshot's: it holds the group lock until its last file is committed;
 * in any of the store's directories, as the locks are by store name).
 * Lock held. */
static bool group_busy_locked(struct vfs *v, const struct vstore *st, const char *snaprel)
{
	const char *slash = strrchr(snaprel, '/');
	size_t glen = slash ? (size_t)(slash - snaprel) + 1 : 0;

	for (struct vsession *s = v->sessions; s; s = s->next)
		if (s->st == st && strncmp(s->snaprel, snaprel, glen) == 0 &&
		    !strchr(s->snaprel + glen, '/'))
			return true;
	return false;
}

/* --- snapshots this mount made --- */

/* The record of snapshot snaprel in the store's directory serial when this
 * mount made it, else NULL. Lock held. */
static struct vcreated *created_find(struct vfs *v, const struct vstore *st,
				     const char *snaprel, uint64_t serial)
{
	for (struct vcreated *c = v->created; c; c = c->next)
		if (c->st == st && c->serial == serial && strcmp(c->snaprel, snaprel) == 0)
			return c;
	return NULL;
}

/* Notes written into a snapshot this mount made before any of its
 * archives was committed wait in its record: a manifest holding them
 * alone would finish the snapshot with no archive, which PBS (and
 * `latest`) would take for a finished backup. The first commit writes
 * them; a snapshot that never gets one stays unfinished, and its notes
 * go with it. Sets them (NULL or empty: none); ret_old (may be NULL) gets
 * the ones they replace (malloc'ed, or NULL). 0, -ENOENT no record,
 * -ENOMEM. */
static int created_set_notes(struct vfs *v, const struct vstore *st, const char *snaprel,
			     uint64_t serial, const char *notes, char **ret_old)
{
	char *copy;
	struct vcreated *c;
	int r = 0;

	if (ret_old)
		*ret_old = NULL;

	if (notes && !*notes)
		notes = NULL; /* emptied: none, as in a manifest */
	copy = notes ? strdup(notes) : NULL;
	if (notes && !copy)
		return -ENOMEM;
	pthread_mutex_lock(&v->lock);
	c = created_find(v, st, snaprel, serial);
	if (c) {
		if (ret_old)
			*ret_old = c->notes;
		else
			free(c->notes);
		c->notes = copy;
		copy = NULL;
	} else {
		r = -ENOENT;
	}
	pthread_mutex_unlock(&v->lock);
	free(copy);
	return r;
}

static int created_notes(struct vfs *v, const struct vstore *st, const char *snaprel,
			 uint64_t serial, char **ret)
{
	struct vcreated *c;
	int r = 0;

	*ret = NULL;
	pthread_mutex_lock(&v->lock);
	c = created_find(v, st, snaprel, serial);
	if (c && c->notes && !(*ret = strdup(c->notes)))
		r = -ENOMEM;
	pthread_mutex_unlock(&v->lock);
	return r;
}

int vwrite_pending_notes(struct vfs *v, const struct vstore *st, const char *snaprel,
			 char **ret)
{
	return created_notes(v, st, snaprel, ds_datastore_base_serial(st->ds), ret);
}

/* The session of snapshot snaprel, with a reference for the caller
 * (session_put), or NULL. vfs->lock taken here. */
static struct vsession *session_find_ref(struct vfs *v, struct vstore *st, const char *snaprel,
					 uint64_t serial)
{
	struct vsession *s;

	pthread_mutex_lock(&v->lock);
	s = session_find(v, st, snaprel, serial);
	if (s)
		s->refs++;
	pthread_mutex_unlock(&v->lock);
	return s;
}

/* A reference to the session of snapshot snaprel in the store's current
 * directory, opened if needed. A session in a directory the store had
 * before a path change is left to its files: its snapshot is another one
 * (a new session waits for it, session_get, as it holds the snapshot's
 * lock, which is by store name). */
static int session_try(struct vfs *v, struct vstore *st, const char *snaprel,
		       struct vsession **ret)
{
	uint64_t serial = ds_datastore_base_serial(st->ds);
	struct vsession *s;
	int r;

	pthread_mutex_lock(&sess_mu);
	s = session_find_ref(v, st, snaprel, serial);
	if (s) {
		pthread_mutex_unlock(&sess_mu);
		*ret = s;
		return 0;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		pthread_mutex_unlock(&sess_mu);
		return -ENOMEM;
	}
	s->st = st;
	s->snapfd = -1;
	pthread_mutex_init(&s->blk, NULL);
	r = ds_path_fmt(s->snaprel, sizeof(s->snaprel), "%s", snaprel);
	if (r == 0)
		r = ds_writer_acquire(st->ds, &s->w);
	if (r == 0) {
		s->serial = ds_writer_base_serial(s->w);
		r = ds_backup_open(s->w, snaprel, v->opt.crypt, &s->b);
	}
	if (r == 0) {
		s->snapfd = ds_open_dir_at(ds_writer_basefd(s->w), snaprel);
		if (s->snapfd < 0)
			r = s->snapfd;
	}
	if (r == 0 && !ds_backup_has_manifest(s->b)) {
		char *notes;

		/* Notes waiting for the first commit (created_set_notes). */
		r = created_notes(v, st, snaprel, s->serial, &notes);
		if (r == 0 && notes)
			r = ds_backup_set_notes(s->b, notes);
		free(notes);
	}
	if (r < 0) {
		ds_backup_free(s->b);
		ds_writer_release(s->w);
		pthread_mutex_destroy(&s->blk);
		free(s);
		pthread_mutex_unlock(&sess_mu);
		return r;
	}
	s->refs = 1;
	pthread_mutex_lock(&v->lock);
	s->next = v->sessions;
	v->sessions = s;
	pthread_mutex_unlock(&v->lock);
	pthread_mutex_unlock(&sess_mu);
	*ret = s;
	return 0;
}

/* session_try, waiting (up to 30 s) for this mount's own session in
 * another snapshot of the group to end: `cp a snap1/; cp a snap2/` must not
 * fail because the first file's commit (in the kernel's asynchronous
 * release) still holds the group lock. */
static int session_get(struct vfs *v, struct vstore *st, const char *snaprel,
		       struct vsession **ret)
{
	struct timespec until;
	bool retried = false;
	int r;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	for (;;) {
		bool waited = false, busy;

		r = session_try(v, st, snaprel, ret);
		if (r != -EBUSY)
			return r;
		pthread_mutex_lock(&v->lock);
		busy = group_busy_locked(v, st, snaprel);
		while (group_busy_locked(v, st, snaprel) &&
		       pthread_cond_timedwait(&v->wcond, &v->lock, &until) == 0)
			waited = true;
		pthread_mutex_unlock(&v->lock);
		/* Our own session may have ended (its locks released, the
		 * broadcast gone) between the try and this check: try once
		 * more before blaming someone else's lock. */
		if (!busy && !retried) {
			retried = true;
			continue;
		}
		if (!waited)
			return r;
	}
}

static void session_free(struct vsession *s)
{
	ds_backup_free(s->b); /* opened: never removes the snapshot */
	if (s->snapfd >= 0)
		close(s->snapfd);
	ds_writer_release(s->w);
	pthread_mutex_destroy(&s->blk);
	free(s);
}

static void session_put(struct vfs *v, struct vsession *s)
{
	bool last;

	pthread_mutex_lock(&sess_mu);
	pthread_mutex_lock(&v->lock);
	last = --s->refs == 0;
	pthread_mutex_unlock(&v->lock);
	if (last) {
		/* The locks go before the session leaves the list: a reader
		 * that finds the snapshot locked meanwhile still sees it as
		 * this mount's (vwrite_owned) instead of getting EBUSY. */
		ds_backup_free(s->b);
		s->b = NULL;
		pthread_mutex_lock(&v->lock);
		for (struct vsession **pp = &v->sessions; *pp; pp = &(*pp)->next)
			if (*pp == s) {
				*pp = s->next;
				break;
			}
		pthread_cond_broadcast(&v->wcond);
		pthread_mutex_unlock(&v->lock);
		session_free(s);
	}
	pthread_mutex_unlock(&sess_mu);
}

/* .protected of snapshot rel: under the snapshot lock of this mount's own
 * session in it, when it has one (a `touch .protected` right after `cp`,
 * whose commit is still under way), else under the lock taken for it
 * (ds_snapshot_set_protected). sess_mu: no session starts meanwhile. */
static int set_protected(struct vfs *v, struct vstore *st, const struct ds_writer *w,
			 const char *rel, bool protect)
{
	struct vsession *s;
	int r;

	pthread_mutex_lock(&sess_mu);
	s = session_find_ref(v, st, rel, ds_writer_base_serial(w));
	if (!s)
		r = ds_snapshot_set_protected(w, rel, protect);
	pthread_mutex_unlock(&sess_mu);
	if (s) {
		r = ds_snapshot_protect_at(s->snapfd, protect);
		session_put(v, s);
	}
	return r;
}

/* Rewrites the session's manifest with what it holds now. */
static int session_commit(struct vsession *s)
{
	int r;

	pthread_mutex_lock(&s->blk);
	r = ds_backup_finish(s->b);
	pthread_mutex_unlock(&s->blk);
	return r;
}

/* --- ownership --- */

static void created_add(struct vfs *v, struct vstore *st, uint64_t serial, const char *snaprel)
{
	struct vcreated *c = calloc(1, sizeof(*c));

	if (!c || !(c->snaprel = strdup(snaprel))) {
		free(c);
		return; /* only loses the right to add files after a remount */
	}
	c->st = st;
	c->serial = serial;
	pthread_mutex_lock(&v->lock);
	c->next = v->created;
	v->created = c;
	pthread_mutex_unlock(&v->lock);
}

static void created_remove(struct vfs *v, const struct vstore *st, uint64_t serial,
			   const char *snaprel)
{
	pthread_mutex_lock(&v->lock);
	for (struct vcreated **pp = &v->created; *pp; pp = &(*pp)->next)
		if ((*pp)->st == st && (*pp)->serial == serial &&
		    strcmp((*pp)->snaprel, snaprel) == 0) {
			struct vcreated *c = *pp;

			*pp = c->next;
			free(c->snaprel);
			free(c->notes);
			free(c);
			break;
		}
	pthread_mutex_unlock(&v->lock);
}

/* Whether snapshot snaprel, in the store's directory serial, was made by
 * this mount or has files open for writing here. Lock held. */
static bool owned_locked(struct vfs *v, const struct vstore *st, const char *snaprel,
			 uint64_t serial)
{
	return created_find(v, st, snaprel, serial) || session_find(v, st, snaprel, serial);
}

/* Whether node n is in a snapshot, whose path it puts in rel. */
static bool in_snapshot(const struct vnode *n, char *rel, size_t len)
{
	return n->st && n->time[0] && vfs_node_snaprel(n, rel, len) == 0;
}

/* owned_locked in the store's current directory; takes the lock. */
static bool owned(struct vfs *v, const struct vstore *st, const char *snaprel)
{
	uint64_t serial = ds_datastore_base_serial(st->ds);
	bool r;

	pthread_mutex_lock(&v->lock);
	r = owned_locked(v, st, snaprel, serial);
	pthread_mutex_unlock(&v->lock);
	return r;
}

bool vwrite_owned(struct vfs *v, const struct vnode *n)
{
	char rel[1100];

	return in_snapshot(n, rel, sizeof(rel)) && owned(v, n->st, rel);
}

bool vwrite_holds_lock(struct vfs *v, const struct vnode *n)
{
	char rel[1100];
	bool r;

	if (!in_snapshot(n, rel, sizeof(rel)))
		return false;
	pthread_mutex_lock(&v->lock);
	r = session_find(v, n->st, rel, 0) != NULL;
	pthread_mutex_unlock(&v->lock);
	return r;
}

/* Whether new archives may go into snapshot snaprel: one made by this mount
 * or being written here, or an unfinished snapshot holding nothing yet (made
 * by mkdir before a remount). A finished snapshot of someone else is
 * immutable. */
static bool may_add(struct vfs *v, const struct vstore *st, const struct ds_writer *w,
		    const char *snaprel)
{
	bool r;
	int fd;

	pthread_mutex_lock(&v->lock);
	r = owned_locked(v, st, snaprel, ds_writer_base_serial(w));
	pthread_mutex_unlock(&v->lock);
	if (r)
		return true;
	fd = ds_open_dir_at(ds_writer_basefd(w), snaprel);
	if (fd < 0)
		return false;
	{
		DIR *d = fdopendir(fd);
		struct dirent *de;

		if (!d) {
			close(fd);
			return false;
		}
		r = true;
		while ((de = readdir(d)))
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
			    strcmp(de->d_name, ".protected") != 0)
				r = false;
		closedir(d);
	}
	return r;
}

/* --- kernel cache notifications --- */

static void notify(struct vfs *v, uint64_t ino, uint64_t parent, const char *name)
{
	if (v->notify)
		v->notify(v->notify_ctx, ino, parent, name);
}

void vfs_set_notify(struct vfs *v, vfs_inval_fn fn, void *ctx)
{
	v->notify = fn;
	v->notify_ctx = ctx;
}

/* --- open files --- */

static struct vwopen *wo_new(enum wokind kind, struct vstore *st, const char *snaprel,
			     const char *name, uint64_t ino)
{
	struct vwopen *wo = calloc(1, sizeof(*wo));

	if (!wo)
		return NULL;
	wo->kind = kind;
	wo->st = st;
	wo->ino = ino;
	wo->refs = 1;
	pthread_mutex_init(&wo->mu, NULL);
	snprintf(wo->snaprel, sizeof(wo->snaprel), "%s", snaprel);
	snprintf(wo->name, sizeof(wo->name), "%s", name);
	return wo;
}

static void wo_free(struct vwopen *wo)
{
	vw_free(wo->vf);
	free(wo->buf);
	pthread_mutex_destroy(&wo->mu);
	free(wo);
}

static int join_locked(struct vfs *v, struct vnode *n, struct vwopen **ret)
{
	vwo_wait(v, n);
	if (n->wo) {
		n->wo->refs++;
		*ret = n->wo;
		return 0;
	}
	/* Committed: an ordinary file now; or abandoned. */
	return n->kind == VK_WFILE ? -ENOENT : -EAGAIN;
}

int vwo_join(struct vfs *v, struct vnode *n, struct vwopen **ret)
{
	int r;

	pthread_mutex_lock(&v->lock);
	r = join_locked(v, n, ret);
	pthread_mutex_unlock(&v->lock);
	return r;
}

void vwo_wait(struct vfs *v, struct vnode *n)
{
	while (n->wo && n->wo->finishing)
		pthread_cond_wait(&v->wcond, &v->lock);
}

uint64_t vwo_size(const struct vwopen *wo)
{
	/* Called under vfs->lock: never waits for the file's own lock. */
	return atomic_load(&((struct vwopen *)wo)->size);
}

/* The error that abandoned the file (a refusal, a failed fsync), or 0.
 * Data of the snapshot lost through any of its files (a failed sync) fails
 * them all: their commits would fail. */
static int wo_err(struct vwopen *wo)
{
	int r;

	pthread_mutex_lock(&wo->mu);
	r = wo->err;
	pthread_mutex_unlock(&wo->mu);
	if (r == 0 && wo->kind == WO_ARCHIVE)
		r = ds_backup_failed(wo->ss->b);
	return r;
}

static int wo_fail(struct vwopen *wo, int r)
{
	pthread_mutex_lock(&wo->mu);
	if (!wo->err)
		wo->err = r;
	pthread_mutex_unlock(&wo->mu);
	return r;
}

ssize_t vwo_write(struct vfs *v, struct vwopen *wo, const void *buf, size_t len, uint64_t off,
		  bool append)
{
	int r;

	(void)v;
	/* Every write after a failure fails with it: the file is abandoned
	 * even when what failed (a refusal, an fsync) is over. */
	r = wo_err(wo);
	if (r < 0)
		return r;
	/* The datastore's refusals apply to every write: a store switched to
	 * read-only or offline mid-copy stops the copy. */
	r = ds_datastore_write_refusal(wo->st->ds);
	if (r < 0) {
		ds_err("%s/%s/%s: write refused: %s", wo->st->name, wo->snaprel, wo->name,
		       strerror(-r));
		return wo_fail(wo, r);
	}
	switch (wo->kind) {
	case WO_NULL:
		return (ssize_t)len;
	case WO_NOTES:
		pthread_mutex_lock(&wo->mu);
		/* The kernel appends at the size it last saw, which after a
		 * refused write (its close got EINVAL) is that write's until
		 * the release's invalidation reaches it: the notes' own end
		 * is the one that counts. */
		if (append)
			off = wo->len;
		if (off + len > NOTES_MAX) {
			r = -EFBIG;
		} else if (off + len > wo->len) {
			char *nb = realloc(wo->buf, (size_t)off + len + 1);

			if (!nb) {
				r = -ENOMEM;
			} else {
				if (off > wo->len)
					memset(nb + wo->len, 0, (size_t)off - wo->len);
				wo->buf = nb;
				wo->len = (size_t)off + len;
				wo->buf[wo->len] = '\0';
			}
		}
		if (r == 0) {
			memcpy(wo->buf + off, buf, len);
			atomic_store(&wo->size, wo->len);
		}
		pthread_mutex_unlock(&wo->mu);
		return r < 0 ? r : (ssize_t)len;
	case WO_ARCHIVE: {
		ssize_t n = vw_write(wo->vf, buf, len, off);

		if (n < 0) {
			ds_err("%s/%s/%s: write at %llu: %s", wo->st->name, wo->snaprel, wo->name,
			       (unsigned long long)off, strerror((int)-n));
			wo_fail(wo, (int)n);
		}
		atomic_store(&wo->size, vw_size(wo->vf));
		return n;
	}
	}
	return -EINVAL;
}

ssize_t vwo_read(struct vwopen *wo, void *buf, size_t len, uint64_t off)
{
	ssize_t n = 0;

	if (wo->kind == WO_ARCHIVE)
		return vw_read(wo->vf, buf, len, off);
	pthread_mutex_lock(&wo->mu);
	if (off < wo->len) {
		n = (ssize_t)(wo->len - off < len ? wo->len - off : len);
		memcpy(buf, wo->buf + off, (size_t)n);
	}
	pthread_mutex_unlock(&wo->mu);
	return n;
}

int vwo_truncate(struct vwopen *wo, uint64_t size)
{
	int r = wo_err(wo);

	if (r < 0)
		return r;
	switch (wo->kind) {
	case WO_NULL:
		return 0;
	case WO_ARCHIVE:
		r = vw_truncate(wo->vf, size);
		atomic_store(&wo->size, vw_size(wo->vf));
		return r < 0 ? wo_fail(wo, r) : 0;
	case WO_NOTES:
		pthread_mutex_lock(&wo->mu);
		if (size > NOTES_MAX) {
			r = -EFBIG;
		} else if (size > wo->len) {
			char *nb = realloc(wo->buf, (size_t)size + 1);

			if (!nb) {
				r = -ENOMEM;
			} else {
				memset(nb + wo->len, 0, (size_t)size - wo->len);
				wo->buf = nb;
			}
		}
		if (r == 0) {
			wo->len = (size_t)size;
			if (wo->buf)
				wo->buf[wo->len] = '\0';
			atomic_store(&wo->size, wo->len);
		}
		pthread_mutex_unlock(&wo->mu);
		return r;
	}
	return -EINVAL;
}

int vwo_fsync(struct vfs *v, struct vwopen *wo)
{
	int r = vwo_flush(v, wo);

	if (r < 0 || wo->kind != WO_ARCHIVE)
		return r;
	vw_wait(wo->vf); /* the chunks written so far are in the store */
	pthread_mutex_lock(&wo->ss->blk);
	r = ds_backup_sync(wo->ss->b);
	pthread_mutex_unlock(&wo->ss->blk);
	if (r < 0) {
		pthread_mutex_lock(&wo->mu);
		if (!wo->err)
			wo->err = r; /* abandoned: some of it is lost */
		pthread_mutex_unlock(&wo->mu);
	}
	return r;
}

/* Whether the notes written so far can go into the manifest: a JSON string
 * of UTF-8 (what PBS's String holds). A NUL byte would cut them short. */
static int notes_check(struct vwopen *wo)
{
	int r = 0;

	pthread_mutex_lock(&wo->mu);
	if (wo->len && (memchr(wo->buf, '\0', wo->len) || ds_utf8_count(wo->buf, wo->len, NULL) < 0))
		r = -EINVAL;
	pthread_mutex_unlock(&wo->mu);
	return r;
}

/* Whether the notes of snapshot snaprel can be written: into a manifest
 * this mount writes or will write (a snapshot it made or writes into), or
 * into the one on disk. An unfinished snapshot of someone else (a backup in
 * progress, or abandoned) has none, and this mount may not make one:
 * -EROFS, as for creating a file there. */
static int notes_refusal(struct vfs *v, struct vstore *st, const char *snaprel)
{
	struct ds_lookup *lk;
	int fd, r;

	if (owned(v, st, snaprel))
		return 0;
	r = ds_lookup_acquire(st->ds, &lk);
	if (r < 0)
		return r;
	fd = ds_open_snapshot(lk, snaprel);
	if (fd < 0) {
		r = fd;
	} else {
		if (faccessat(fd, DS_MANIFEST_NAME, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			r = errno == ENOENT ? -EROFS : -errno;
		close(fd);
	}
	ds_lookup_release(lk);
	if (r == -EROFS)
		ds_err("%s/%s: unfinished and not made by this mount: its notes cannot be written",
		       st->name, snaprel);
	return r;
}

int vwo_flush(struct vfs *v, struct vwopen *wo)
{
	int r = wo_err(wo);

	if (r == 0 && wo->kind == WO_ARCHIVE)
		r = vw_error(wo->vf);
	/* The notes are written in the release, after close(2) has returned:
	 * what the manifest would refuse there is reported here. */
	if (r == 0 && wo->kind == WO_NOTES)
		r = notes_check(wo);
	/* A snapshot that lost its manifest since the open (forgotten): the
	 * notes are refused for good, the release leaves them. */
	if (r == 0 && wo->kind == WO_NOTES) {
		r = notes_refusal(v, wo->st, wo->snaprel);
		if (r < 0)
			wo_fail(wo, r);
	}
	return r;
}

/* Writes notes: through the session when the snapshot has one (its manifest
 * is ours), else as PBS does (manifest lock, signature kept). */
static int apply_notes(struct vfs *v, struct vstore *st, const char *snaprel, const char *notes)
{
	uint64_t serial = ds_datastore_base_serial(st->ds);
	struct vsession *s = NULL;
	struct ds_writer *w;
	bool mine;
	int r;

	/* One serial for the check and the record below. */
	pthread_mutex_lock(&v->lock);
	mine = owned_locked(v, st, snaprel, serial);
	pthread_mutex_unlock(&v->lock);
	if (mine) {
		char *old = NULL;
		bool finished = false;
		int c;

		/* Before the first archive they wait for it in the record
		 * (created_set_notes), put there first: a commit meanwhile
		 * either finds them in the session or clears them after. */
		c = created_set_notes(v, st, snaprel, serial, notes, &old);
		if (c == -ENOMEM)
			return c;
		/* A session of the snapshot holds its manifest: they go there.
		 * Without one, none starts meanwhile (sess_mu: it would load
		 * the manifest) and they go into the manifest on disk under
		 * the manifest lock alone, as PBS writes notes, or wait in the
		 * record while there is none. Opening a session for them would
		 * wait for the group lock, which this mount's session in
		 * another snapshot of the group holds as long as its files are
		 * open: the notes were dropped after 30 s. */
		pthread_mutex_lock(&sess_mu);
		s = session_find_ref(v, st, snaprel, serial);
		if (!s) {
			r = ds_writer_acquire(st->ds, &w);
			if (r == 0) {
				r = ds_snapshot_set_notes(w, snaprel, notes);
				ds_writer_release(w);
			}
			if (r == 0 && c == 0) /* in the manifest now */
				created_set_notes(v, st, snaprel, serial, NULL, NULL);
			else if (r == -ENOENT)
				/* No manifest: waiting for the first commit,
				 * or another's snapshot this mount wrote
				 * nothing into after all. */
				r = c == 0 ? 0 : -EROFS;
		}
		pthread_mutex_unlock(&sess_mu);
		if (s) {
			pthread_mutex_lock(&s->blk);
			r = ds_backup_set_notes(s->b, notes);
			finished = ds_backup_has_manifest(s->b);
			pthread_mutex_unlock(&s->blk);
		}
		if (r < 0 && c == 0)
			created_set_notes(v, st, snaprel, serial, old, NULL); /* as they were */
		free(old);
		if (s && r == 0 && (finished || c == -ENOENT)) {
			if (c == 0)
				created_set_notes(v, st, snaprel, serial, NULL, NULL);
			r = session_commit(s);
		}
		if (s)
			session_put(v, s);
		return r;
	}
	r = ds_writer_acquire(st->ds, &w);
	if (r < 0)
		return r;
	r = ds_snapshot_set_notes(w, snaprel, notes);
	ds_writer_release(w);
	/* No manifest: an unfinished snapshot of someone else. */
	return r == -ENOENT ? -EROFS : r;
}

/* The snapshot's current notes into wo's buffer: the manifest's, or those
 * waiting in this mount's record for the first commit. */
static void notes_load(struct vfs *v, struct vwopen *wo)
{
	struct ds_lookup *lk;
	struct ds_manifest *m = NULL;
	int fd, r = ds_lookup_acquire(wo->st->ds, &lk);

	if (r < 0)
		return;
	fd = ds_open_snapshot(lk, wo->snaprel);
	if (fd >= 0) {
		r = ds_manifest_load(fd, &m);
		if (r == 0 && ds_manifest_notes(m))
			wo->buf = strdup(ds_manifest_notes(m));
		else if (r == -ENOENT) /* waiting for the first commit */
			created_notes(v, wo->st, wo->snaprel,
				      ds_datastore_base_serial(wo->st->ds), &wo->buf);
		wo->len = wo->buf ? strlen(wo->buf) : 0;
		atomic_store(&wo->size, wo->len);
		ds_manifest_free(m);
		close(fd);
	}
	ds_lookup_release(lk);
}

int vwo_notes(struct vfs *v, struct vnode *n, bool trunc, struct vwopen **ret)
{
	char rel[1100];
	struct vwopen *wo;
	int r;

	if (vfs_node_snaprel(n, rel, sizeof(rel)) < 0)
		return -EINVAL;
	r = notes_refusal(v, n->st, rel);
	if (r < 0)
		return r;
	wo = wo_new(WO_NOTES, n->st, rel, "notes", n->ino);
	if (!wo)
		return -ENOMEM;
	/* Every handle on the notes shares one buffer (readers see what was
	 * written before its release committed it). The current notes are
	 * read only once no release of them is running (join_locked waits),
	 * or they would be the ones from before it, which this buffer would
	 * then write back over its notes. */
	pthread_mutex_lock(&v->lock);
	if (join_locked(v, n, ret) == 0) {
		pthread_mutex_unlock(&v->lock);
		wo_free(wo);
		return trunc ? vwo_truncate(*ret, 0) : 0;
	}
	n->wo = wo;
	if (!trunc) {
		/* O_APPEND and in-place edits start from the current notes.
		 * Meanwhile other opens wait (vwo_wait) rather than share a
		 * buffer still empty; stat shows the size last known. */
		wo->finishing = true;
		atomic_store(&wo->size, n->size);
		pthread_mutex_unlock(&v->lock);
		notes_load(v, wo);
		pthread_mutex_lock(&v->lock);
		wo->finishing = false;
		pthread_cond_broadcast(&v->wcond);
	}
	pthread_mutex_unlock(&v->lock);
	*ret = wo;
	return 0;
}

int vwo_null(struct vfs *v, struct vnode *n, struct vwopen **ret)
{
	char rel[1100];

	(void)v;
	if (vfs_node_snaprel(n, rel, sizeof(rel)) < 0)
		return -EINVAL;
	*ret = wo_new(WO_NULL, n->st, rel, n->name, n->ino);
	return *ret ? 0 : -ENOMEM;
}

/* Turns the node of a committed archive into an ordinary archive node, or
 * marks an abandoned one dead. */
static void node_settle(struct vfs *v, struct vwopen *wo, int r, const char *server,
			uint64_t size)
{
	struct vnode *n;
	uint64_t parent = 0, snap = 0;
	char name[256] = "";

	pthread_mutex_lock(&v->lock);
	n = vfs_node_find_locked(v, wo->ino);
	if (n && n->wo == wo) {
		n->wo = NULL;
		if (r == 0) {
			char *f = strdup(server);
			const char *ext = strrchr(server, '.');

			snap = n->parent;
			if (f) {
				free(n->file);
				n->file = f;
				n->kind = strcmp(ext, ".fidx") == 0   ? VK_IMAGE
					  : strcmp(ext, ".didx") == 0 ? VK_STREAM
								      : VK_BLOB;
				n->size = size;
				n->blocks = (size + 511) / 512;
				n->crypt_mode = v->opt.crypt ? DS_CRYPT_ENCRYPT : DS_CRYPT_NONE;
				n->mtime = (int64_t)time(NULL);
			}
		} else {
			parent = n->parent;
			snprintf(name, sizeof(name), "%s", n->name);
		}
	}
	pthread_cond_broadcast(&v->wcond);
	pthread_mutex_unlock(&v->lock);
	/* Attributes changed (size, blocks); an abandoned file is gone. */
	notify(v, wo->ino, 0, NULL);
	if (parent)
		notify(v, 0, parent, name);
	/* The commit rewrote the manifest (or made the first one): the
	 * kernel would go on for a second with index.json's old size, so a
	 * read cut the new manifest there, or with "no such file" cached
	 * before the first commit. Sent after the waiters are woken: a
	 * lookup waiting for this commit holds the directory, which the
	 * kernel locks to drop the entry. */
	if (snap)
		notify(v, 0, snap, "index.json");
}

static void finish_archive(struct vfs *v, struct vwopen *wo)
{
	struct vsession *s = wo->ss;
	char server[300] = "";
	uint64_t size = vw_size(wo->vf);
	int r;

	pthread_mutex_lock(&wo->mu);
	r = wo->err;
	pthread_mutex_unlock(&wo->mu);
	if (r == 0)
		r = vw_finish(wo->vf, server, sizeof(server));
	if (r == 0) {
		r = session_commit(s);
		if (r == 0) /* notes waiting for it are in the manifest now */
			created_set_notes(v, s->st, s->snaprel, s->serial, NULL, NULL);
		if (r < 0) {
			bool dropped;

			/* vw_finish put the index in place and named it in the
			 * manifest; neither may stay, or the next commit of
			 * this snapshot would publish it. Unless another
			 * file's commit published it meanwhile. */
			pthread_mutex_lock(&s->blk);
			dropped = ds_backup_drop_file(s->b, server);
			pthread_mutex_unlock(&s->blk);
			if (!dropped) {
				ds_warn("%s/%s: %s: this commit failed (%s), but another "
					"file's commit had published it", wo->st->name,
					wo->snaprel, server, strerror(-r));
				r = 0;
			}
		}
	}
	if (r < 0)
		ds_err("%s/%s/%s: archive abandoned: %s", wo->st->name, wo->snaprel, wo->name,
		       strerror(-r));
	else
		ds_info("%s/%s: %s written (%llu bytes)", wo->st->name, wo->snaprel, server,
			(unsigned long long)size);
	pthread_mutex_lock(&v->lock);
	for (struct vwopen **pp = &s->files; *pp; pp = &(*pp)->snext)
		if (*pp == wo) {
			*pp = wo->snext;
			break;
		}
	pthread_mutex_unlock(&v->lock);
	node_settle(v, wo, r, server, size);
	vw_free(wo->vf); /* an unfinished archive's temp index goes with it */
	wo->vf = NULL;
	session_put(v, s);
}

void vwo_release(struct vfs *v, struct vwopen *wo)
{
	pthread_mutex_lock(&v->lock);
	if (--wo->refs > 0) {
		pthread_mutex_unlock(&v->lock);
		return;
	}
	wo->finishing = true;
	pthread_mutex_unlock(&v->lock);
	switch (wo->kind) {
	case WO_ARCHIVE:
		finish_archive(v, wo);
		break;
	case WO_NOTES: {
		int r = wo->err;

		/* Reported by close(2) already (vwo_flush); not cut short at a
		 * NUL byte here. */
		if (r == 0)
			r = notes_check(wo);
		if (r == 0)
			r = apply_notes(v, wo->st, wo->snaprel, wo->buf ? wo->buf : "");
		if (r < 0) {
			ds_err("%s/%s: notes not written: %s", wo->st->name, wo->snaprel,
			       strerror(-r));
		}
		{
			struct vnode *n;
			uint64_t snap = 0;

			pthread_mutex_lock(&v->lock);
			n = vfs_node_find_locked(v, wo->ino);
			if (n && n->wo == wo) {
				n->wo = NULL;
				if (r == 0)
					n->size = wo->len;
				snap = n->parent;
			}
			pthread_cond_broadcast(&v->wcond);
			pthread_mutex_unlock(&v->lock);
			notify(v, wo->ino, 0, NULL);
			/* The manifest holds the notes: index.json is looked
			 * up (and sized) anew. */
			if (r == 0 && snap)
				notify(v, 0, snap, "index.json");
		}
		break;
	}
	case WO_NULL:
		break;
	}
	wo_free(wo);
}

/* --- tree operations --- */

/* The parent node and a write handle for an operation in it. */
static int begin_op(struct vfs *v, uint64_t parent, struct vnode **ret_p, struct ds_writer **ret_w)
{
	struct vnode *p = vfs_node_get(v, parent);

	if (!p)
		return -ESTALE;
	if (!p->st)
		return -EPERM; /* the root of a multi-store mount */
	*ret_p = p;
	return ds_writer_acquire(p->st->ds, ret_w);
}

/* Looks the new child up as vfs_lookup would, for the reply. */
static int reply_child(struct vfs *v, struct vnode *p, const char *name, struct vfs_entry *ret)
{
	return vfs_lookup(v, p->ino, name, ret);
}

int vfs_mkdir(struct vfs *v, uint64_t parent, const char *name, struct vfs_entry *ret)
{
	struct ds_writer *w = NULL;
	struct vnode *p;
	char rel[2048], nsdir[1100], sub[1100];
	int r, depth;

	r = begin_op(v, parent, &p, &w);
	if (r < 0)
		return r;
	switch (p->kind) {
	case VK_NSROOT:
		r = ds_ns_relpath(p->ns, nsdir, sizeof(nsdir));
		if (r == 0 && strcmp(name, "ns") != 0 && ds_name_backup_type(name) < 0)
			r = -EINVAL;
		/* No child namespaces below the deepest level (spec: 7). */
		if (r == 0 && strcmp(name, "ns") == 0 && *p->ns &&
		    (ds_name_namespace(p->ns, &depth) < 0 || depth >= DS_MAX_NAMESPACE_DEPTH))
			r = -EINVAL;
		if (r == 0)
			r = ds_path_fmt(rel, sizeof(rel), "%s%s%s", nsdir, *nsdir ? "/" : "", name);
		if (r == 0)
			r = ds_mkdir_own_at(ds_writer_basefd(w), rel, 0755);
		break;
	case VK_NSLIST:
		/* A child namespace: one valid component, depth <= 7. */
		r = ds_path_fmt(sub, sizeof(sub), "%s%s%s", p->ns, *p->ns ? "/" : "", name);
		if (r == 0 && (strchr(name, '/') || ds_name_namespace(sub, &depth) < 0))
			r = -EINVAL;
		if (r == 0)
			r = ds_ns_relpath(sub, rel, sizeof(rel));
		if (r == 0)
			r = ds_mkdir_own_at(ds_writer_basefd(w), rel, 0755);
		break;
	case VK_TYPE:
		if (ds_name_backup_id(name) < 0) {
			r = -EINVAL;
			break;
		}
		r = ds_group_relpath(p->ns, ds_backup_type_name(p->type), name, rel, sizeof(rel));
		if (r == 0) {
			struct stat st;

			if (fstatat(ds_writer_basefd(w), rel, &st, AT_SYMLINK_NOFOLLOW) == 0)
				r = -EEXIST;
		}
		if (r == 0)
			r = ds_group_create(w, p->ns, ds_backup_type_name(p->type), name,
					    v->opt.owner);
		break;
	case VK_GROUP:
		if (ds_name_snapshot_time(name) < 0) {
			r = -EINVAL;
			break;
		}
		r = ds_snapshot_relpath(p->ns, ds_backup_type_name(p->type), p->id, name, rel,
					sizeof(rel));
		if (r == 0)
			r = ds_snapshot_create(w, p->ns, ds_backup_type_name(p->type), p->id, name,
					       v->opt.owner);
		if (r == 0)
			created_add(v, p->st, ds_writer_base_serial(w), rel);
		break;
	case VK_ROOT:
		r = -EPERM; /* datastores are made by PBS */
		break;
	default:
		r = -EROFS; /* inside a snapshot: what exists is immutable */
		break;
	}
	ds_writer_release(w);
	if (r < 0)
		return r;
	/* No cache notification here: the kernel holds the directory locked
	 * until we reply, and adds the entry itself. */
	return reply_child(v, p, name, ret);
}

int vfs_rmdir(struct vfs *v, uint64_t parent, const char *name)
{
	struct ds_writer *w = NULL;
	struct vnode *p;
	char rel[2048], nsdir[1100], sub[1100];
	int r, depth;

	r = begin_op(v, parent, &p, &w);
	if (r < 0)
		return r;
	switch (p->kind) {
	case VK_GROUP:
		if (ds_name_snapshot_time(name) < 0) {
			r = -ENOENT;
			break;
		}
		r = ds_snapshot_relpath(p->ns, ds_backup_type_name(p->type), p->id, name, rel,
					sizeof(rel));
		if (r < 0)
			break;
		pthread_mutex_lock(&v->lock);
		if (session_find(v, p->st, rel, ds_writer_base_serial(w)))
			r = -EBUSY; /* files open for writing in it */
		pthread_mutex_unlock(&v->lock);
		if (r == 0)
			r = ds_snapshot_forget(w, rel);
		if (r == 0) {
			created_remove(v, p->st, ds_writer_base_serial(w), rel);
			ds_info("%s/%s: snapshot forgotten", p->st->name, rel);
		} /* refusals were logged by the store */
		break;
	case VK_TYPE:
		r = ds_name_backup_id(name) < 0
			    ? -ENOENT
			    : ds_group_remove(w, p->ns, ds_backup_type_name(p->type), name);
		break;
	case VK_NSLIST:
		r = ds_path_fmt(sub, sizeof(sub), "%s%s%s", p->ns, *p->ns ? "/" : "", name);
		if (r == 0 && (strchr(name, '/') || ds_name_namespace(sub, &depth) < 0))
			r = -ENOENT;
		if (r == 0)
			r = ds_ns_remove(w, sub);
		break;
	case VK_NSROOT:
		r = ds_ns_relpath(p->ns, nsdir, sizeof(nsdir));
		if (r == 0 && strcmp(name, "ns") != 0 && ds_name_backup_type(name) < 0)
			r = -ENOENT;
		if (r == 0)
			r = ds_path_fmt(rel, sizeof(rel), "%s%s%s", nsdir, *nsdir ? "/" : "", name);
		if (r == 0)
			r = ds_unlink_at(ds_writer_basefd(w), rel, AT_REMOVEDIR);
		if (r == -EEXIST)
			r = -ENOTEMPTY;
		break;
	case VK_ROOT:
		r = -EPERM;
		break;
	default:
		r = -EROFS;
		break;
	}
	ds_writer_release(w);
	return r;
}

int vfs_unlink(struct vfs *v, uint64_t parent, const char *name)
{
	struct ds_writer *w = NULL;
	struct vnode *p;
	char rel[2048];
	int r;

	r = begin_op(v, parent, &p, &w);
	if (r < 0)
		return r;
	if (p->kind != VK_SNAPSHOT || vfs_node_snaprel(p, rel, sizeof(rel)) < 0) {
		r = p->kind == VK_ROOT ? -EPERM : -EROFS;
	} else if (strcmp(name, ".protected") == 0) {
		struct stat st;
		int fd = ds_open_dir_at(ds_writer_basefd(w), rel);

		r = fd < 0 ? fd : fstatat(fd, name, &st, 0) < 0 ? -errno : 0;
		if (fd >= 0)
			close(fd);
		if (r == 0)
			r = set_protected(v, p->st, w, rel, false);
	} else if (strcmp(name, "notes") == 0) {
		r = apply_notes(v, p->st, rel, "");
	} else {
		r = -EROFS; /* archives are never removed one by one */
	}
	ds_writer_release(w);
	return r;
}

/* The longest file names the commit of an archive writes: the temp file
 * of its index (NAME.img.tmp_fidx; NAME.tmp_didx) or of its blob
 * (NAME.tmp_XXXXXX, its last extension replaced as PBS does). */
#define IMAGE_NAME_MAX (255 - sizeof(".tmp_fidx") + 1)
#define STREAM_NAME_MAX (255 - sizeof(".tmp_XXXXXX") + 1)

/* The server name a display name gets, or -EINVAL, or -ENAMETOOLONG. */
static int server_name(const char *name, char *out, size_t len)
{
	size_t n = strlen(name);
	bool image = n > 4 && strcmp(name + n - 4, ".img") == 0;
	int r;

	if (strcmp(name, "index.json") == 0 || strcmp(name, "notes") == 0 ||
	    strcmp(name, "owner") == 0 || name[0] == '.')
		return -EINVAL;
	/* Refused here, not at the commit: that runs after close(2) has
	 * returned, and the file would be lost without an error. A stream
	 * becomes a blob or an index only at its commit, so its name must
	 * leave room for either. */
	if (n > (image ? IMAGE_NAME_MAX : STREAM_NAME_MAX))
		return -ENAMETOOLONG;
	if (image)
		r = ds_path_fmt(out, len, "%s.fidx", name);
	else
		r = ds_path_fmt(out, len, "%s.didx", name); /* or .blob, decided at the end */
	if (r < 0 || ds_name_archive(out) < 0)
		return -EINVAL;
	return 0;
}

/* Whether display name is taken in the snapshot (an archive of any kind, or
 * a file being written). */
static bool name_taken(struct vfs *v, struct vsession *s, const char *name)
{
	static const char *const exts[] = { ".fidx", ".didx", ".blob" };
	char f[300];
	bool taken = false;

	pthread_mutex_lock(&v->lock);
	for (struct vwopen *o = s->files; o; o = o->snext)
		if (strcmp(o->name, name) == 0)
			taken = true;
	pthread_mutex_unlock(&v->lock);
	pthread_mutex_lock(&s->blk);
	for (size_t i = 0; i < DS_ARRAY_SIZE(exts) && !taken; i++)
		if (ds_path_fmt(f, sizeof(f), "%s%s", name, exts[i]) == 0 &&
		    ds_backup_has_file(s->b, f))
			taken = true;
	pthread_mutex_unlock(&s->blk);
	if (!taken && ds_path_fmt(f, sizeof(f), "%s.didx", name) == 0) {
		/* X.pxar also shows the split pair X.mpxar/X.ppxar */
		char meta[300], payload[300];

		taken = vpxar_files(s->snapfd, name, meta, payload, sizeof(meta)) == 0;
	}
	return taken;
}

static int create_archive(struct vfs *v, struct vnode *p, struct ds_writer *w, const char *rel,
			  const char *name, struct vwopen **ret_wo)
{
	struct vsession *s;
	struct vwopen *wo;
	char server[300];
	int r;

	r = server_name(name, server, sizeof(server));
	if (r < 0)
		return r;
	if (!may_add(v, p->st, w, rel)) {
		ds_err("%s/%s: not made by this mount: no new archives go into it", p->st->name,
		       rel);
		return -EROFS;
	}
	r = session_get(v, p->st, rel, &s);
	if (r < 0)
		return r;
	if (name_taken(v, s, name)) {
		session_put(v, s);
		return -EEXIST;
	}
	wo = wo_new(WO_ARCHIVE, p->st, rel, name, 0);
	if (!wo) {
		session_put(v, s);
		return -ENOMEM;
	}
	wo->ss = s;
	r = vw_new(s->b, &s->blk, ds_writer_reader(s->w), v->opt.crypt, s->snapfd, server,
		   &wo->vf);
	if (r < 0) {
		wo_free(wo);
		session_put(v, s);
		return r;
	}
	pthread_mutex_lock(&v->lock);
	wo->snext = s->files;
	s->files = wo;
	pthread_mutex_unlock(&v->lock);
	*ret_wo = wo;
	return 0;
}

int vfs_create(struct vfs *v, uint64_t parent, const char *name, struct vfs_entry *ret,
	       struct vfile **ret_f)
{
	struct ds_writer *w = NULL;
	struct vnode *p, *n = NULL;
	struct vwopen *wo = NULL;
	char rel[2048];
	enum vkind kind;
	int r;

	r = begin_op(v, parent, &p, &w);
	if (r < 0)
		return r;
	if (p->kind != VK_SNAPSHOT || vfs_node_snaprel(p, rel, sizeof(rel)) < 0) {
		ds_writer_release(w);
		return p->kind == VK_ROOT ? -EPERM : -EROFS;
	}
	if (strlen(name) > 255) {
		ds_writer_release(w);
		return -ENAMETOOLONG;
	}
	if (strcmp(name, ".protected") == 0) {
		kind = VK_PROTECTED;
		r = set_protected(v, p->st, w, rel, true);
		if (r == 0)
			wo = wo_new(WO_NULL, p->st, rel, name, 0);
	} else if (strcmp(name, "notes") == 0) {
		kind = VK_SNOTES;
		r = notes_refusal(v, p->st, rel);
		if (r == 0)
			wo = wo_new(WO_NOTES, p->st, rel, name, 0);
	} else {
		kind = VK_WFILE;
		r = create_archive(v, p, w, rel, name, &wo);
	}
	ds_writer_release(w);
	if (r == 0 && !wo)
		r = -ENOMEM;
	if (r == 0) {
		n = vfs_child_new(p, kind, name);
		if (!n)
			r = -ENOMEM;
	}
	if (r < 0) {
		/* Failed, so nothing of it may be committed: not an empty
		 * archive, and not empty notes over the snapshot's notes. */
		if (wo) {
			wo_fail(wo, r);
			vwo_release(v, wo);
		}
		return r;
	}
	wo->ino = n->ino;
	n->mtime = (int64_t)time(NULL);
	if (kind != VK_PROTECTED)
		n->wo = wo;
	vfs_node_publish(v, n, ret);
	wo->ino = ret->ino;
	r = vfile_new_writing(v, wo, false, ret_f);
	if (r < 0) {
		wo_fail(wo, r);
		vwo_release(v, wo);
		return r;
	}
	return 0;
}

int vfs_setattr(struct vfs *v, uint64_t ino, struct vfile *f, int what, uint64_t size,
		struct vfs_entry *ret)
{
	struct vnode *n = vfs_node_get(v, ino);
	struct vwopen *wo = f ? vfile_writing(f) : NULL;
	int r;

	if (!n)
		return -ESTALE;
	if (!n->st)
		return -EPERM;
	r = ds_datastore_write_refusal(n->st->ds);
	if (r < 0)
		/* A refused truncate of a file being written fails it as a
		 * refused write would: its archive is abandoned. */
		return wo ? wo_fail(wo, r) : r;
	if (what & VFS_SET_SIZE) {
		bool joined = false;

		if (!wo && n->kind == VK_WFILE) {
			r = vwo_join(v, n, &wo);
			if (r < 0)
				return r == -EAGAIN ? -EROFS : r;
			joined = true;
		}
		if (!wo)
			return -EROFS;
		r = vwo_truncate(wo, size);
		if (joined)
			vwo_release(v, wo);
		if (r < 0)
			return r;
	}
	if ((what & VFS_SET_META) && !wo && n->kind != VK_WFILE && n->kind != VK_PROTECTED &&
	    !vwrite_owned(v, n))
		return -EROFS;
	return vfs_getattr(v, ino, ret);
}

int vwrite_names(struct vfs *v, const struct vstore *st, const char *snaprel,
		 struct ds_strv *ret)
{
	uint64_t serial = ds_datastore_base_serial(st->ds);
	struct vcreated *c;
	struct vsession *s;
	int r = 0;

	pthread_mutex_lock(&v->lock);
	c = created_find(v, st, snaprel, serial);
	s = session_find(v, st, snaprel, serial);
	if (c && c->notes) {
		ret->v = malloc(sizeof(*ret->v));
		if (!ret->v || !(ret->v[0] = strdup("notes")))
			r = -ENOMEM;
		else
			ret->n = 1;
	}
	for (struct vwopen *o = s ? s->files : NULL; o && r == 0; o = o->snext)
	{
		char **nv = realloc(ret->v, (ret->n + 1) * sizeof(*nv));

		if (!nv || !(nv[ret->n] = strdup(o->name))) {
			if (nv)
				ret->v = nv;
			r = -ENOMEM;
		} else {
			ret->v = nv;
			ret->n++;
		}
	}
	pthread_mutex_unlock(&v->lock);
	return r;
}

/* --- startup and teardown --- */

void vwrite_cleanup_store(struct vfs *v, struct vstore *s)
{
	struct ds_writer *w;
	int r;

	(void)v;
	if (ds_writer_acquire(s->ds, &w) < 0)
		return; /* refused now; the next writable mount cleans up */
	r = ds_datastore_cleanup(w);
	ds_writer_release(w);
	if (r > 0)
		ds_info("%s: removed %d temporary files of interrupted writers", s->name, r);
	else if (r < 0)
		ds_warn("%s: cleaning up after interrupted writers: %s", s->name, strerror(-r));
}

void vwrite_shutdown(struct vfs *v)
{
	/* Files the kernel never released (the mount was torn down): their
	 * archives are abandoned, never committed half-written. */
	for (;;) {
		struct vsession *s;
		struct vwopen *wo;

		pthread_mutex_lock(&v->lock);
		s = v->sessions;
		wo = s ? s->files : NULL;
		if (wo) {
			s->files = wo->snext;
			wo->refs = 0;
			wo->err = wo->err ? wo->err : -ECANCELED;
		}
		pthread_mutex_unlock(&v->lock);
		if (!s)
			break;
		if (!wo) {
			/* a session without files: only notes references */
			pthread_mutex_lock(&v->lock);
			v->sessions = s->next;
			pthread_mutex_unlock(&v->lock);
			session_free(s);
			continue;
		}
		ds_warn("%s/%s/%s: still open at unmount: abandoned", wo->st->name, wo->snaprel,
			wo->name);
		vw_free(wo->vf);
		wo->vf = NULL;
		session_put(v, s);
		/* the node keeps a dangling pointer no more */
		pthread_mutex_lock(&v->lock);
		{
			struct vnode *n = vfs_node_find_locked(v, wo->ino);

			if (n && n->wo == wo)
				n->wo = NULL;
		}
		pthread_mutex_unlock(&v->lock);
		pthread_mutex_destroy(&wo->mu);
		free(wo->buf);
		free(wo);
	}
	while (v->created) {
		struct vcreated *c = v->created;

		v->created = c->next;
		if (c->notes)
			ds_warn("%s/%s: notes not written: the snapshot stays unfinished, no archive "
				"was committed into it", c->st->name, c->snaprel);
		free(c->snaprel);
		free(c->notes);
		free(c);
	}
	vw_pool_stop();
}
