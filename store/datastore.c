#include "store/datastore.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/activeops.h"
#include "store/blob.h"
#include "store/chunkstore.h"
#include "store/crypt.h"
#include "store/log.h"

/* The directory a store is at. Handles hold the one they were granted at,
 * so that a path change (a new base) never frees a string a concurrent
 * lookup is using, and a handle keeps to one directory. */
struct base {
	unsigned long refs; /* atomic */
	uint64_t serial;    /* unique in the process (ds_*_base_serial) */
	char path[];
};

static uint64_t base_serials; /* atomic: the last serial given */

/* A chunk store opened at an earlier base, kept for the handles still
 * using it (their files stay right) and closed when the last one goes. */
struct retired {
	struct ds_chunkstore *cs;
	unsigned users;   /* readers and writers holding it */
	unsigned writers; /* of which writers; the shared .lock lives as long */
	bool locked;
	struct retired *next;
};

struct ds_datastore {
	char *name;
	pthread_mutex_t lock;
	/* All below protected by lock. */
	struct base *base; /* current; replaced by a path change (_configure) */
	enum ds_maintenance maintenance;
	char *maintenance_message; /* as shown: ds_maintenance_message_display */
	char *backing_device;
	bool device_mounted; /* cached ds_backing_device_mounted() result */
	/* The configured path when it cannot be used (ds_datastore_cfg_base
	 * failed: not absolute), and that errno: readers and writers are
	 * refused with it until the path is fixed. bad_path may be NULL
	 * (out of memory) while path_err is set. */
	int path_err;
	char *bad_path;
	bool sync_each;
	bool read_only;
	bool track_ops;
	char *ops_dir;
	unsigned readers; /* live reader handles (writers not included) */
	unsigned writers;
	unsigned pub_readers, pub_writers; /* what the active-operations file says */
	int ops_err; /* the last update's failure (logged once), or 0 */
	/* Opened with the first reader/writer; closed when the last one goes
	 * while the store refuses new handles. Shared by the handles
	 * acquired at the current base (older ones hold a retired one). */
	struct ds_chunkstore *cs;
	unsigned cs_users;   /* handles holding cs */
	unsigned cs_writers; /* of which writers */
	bool cs_locked;      /* shared .lock held for our writers */
	struct retired *retired;
	int base_err;   /* what the last lookup found at base (0: a datastore) */
};

struct ds_lookup {
	struct ds_datastore *ds;
	struct base *base; /* a reference: the directory this handle uses */
	int io_err; /* 0, or the read refusal this lookup was granted under */
};

struct ds_reader {
	struct ds_lookup lk;
	struct ds_chunkstore *cs; /* borrowed from ds, kept open while held */
};

struct ds_writer {
	struct ds_reader rd;
};

static struct base *base_new(const char *path)
{
	size_t n = strlen(path) + 1;
	struct base *b = malloc(sizeof(*b) + n);

	if (!b)
		return NULL;
	b->refs = 1;
	b->serial = __atomic_add_fetch(&base_serials, 1, __ATOMIC_RELAXED);
	memcpy(b->path, path, n);
	return b;
}

static struct base *base_ref(struct base *b)
{
	__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
	return b;
}

static void base_unref(struct base *b)
{
	if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(b);
}

int ds_datastore_new(const char *name, const char *base, struct ds_datastore **ret)
{
	struct ds_datastore *ds;

	if (!name || !base || base[0] != '/')
		return -EINVAL;
	ds = calloc(1, sizeof(*ds));
	if (!ds)
		return -ENOMEM;
	pthread_mutex_init(&ds->lock, NULL);
	ds->name = strdup(name);
	ds->base = base_new(base);
	ds->ops_dir = strdup(DS_ACTIVEOPS_DIR);
	if (!ds->name || !ds->base || !ds->ops_dir) {
		ds_datastore_free(ds);
		return -ENOMEM;
	}
	*ret = ds;
	return 0;
}

void ds_datastore_free(struct ds_datastore *ds)
{
	if (!ds)
		return;
	ds_datastore_sync_operations(ds);
	ds_chunkstore_free(ds->cs);
	/* Every handle was released: nothing is retired any more. */
	free(ds->name);
	base_unref(ds->base);
	free(ds->maintenance_message);
	free(ds->backing_device);
	free(ds->bad_path);
	free(ds->ops_dir);
	pthread_mutex_destroy(&ds->lock);
	free(ds);
}

uint64_t ds_datastore_base_serial(struct ds_datastore *ds)
{
	uint64_t serial;

	pthread_mutex_lock(&ds->lock);
	serial = ds->base->serial;
	pthread_mutex_unlock(&ds->lock);
	return serial;
}

uint64_t ds_writer_base_serial(const struct ds_writer *w)
{
	return w->rd.lk.base->serial;
}

const char *ds_datastore_name(const struct ds_datastore *ds)
{
	return ds->name;
}

const char *ds_datastore_base(const struct ds_datastore *ds)
{
	return ds->base->path;
}

enum ds_maintenance ds_datastore_maintenance(const struct ds_datastore *ds)
{
	return ds->maintenance;
}

void ds_datastore_maintenance_message(struct ds_datastore *ds, char *buf, size_t len)
{
	pthread_mutex_lock(&ds->lock);
	snprintf(buf, len, "%s", ds->maintenance_message ? ds->maintenance_message : "");
	pthread_mutex_unlock(&ds->lock);
}

bool ds_backing_device_mounted(const char *name, const char *uuid, const char *mountpoint)
{
	char devpath[256], mp[4096], line[8192];
	struct stat dev, src;
	bool mounted = false;
	FILE *f;

	if (ds_path_fmt(devpath, sizeof(devpath), "/dev/disk/by-uuid/%s", uuid) < 0 ||
	    stat(devpath, &dev) < 0 || !S_ISBLK(dev.st_mode))
		return false;
	if (mountpoint)
		snprintf(mp, sizeof(mp), "%s", mountpoint);
	else if (ds_path_fmt(mp, sizeof(mp), "/mnt/datastore/%s", name) < 0)
		return false;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	/* Fields: id parent maj:min root mountpoint opts [optional...] - fstype
	 * source superopts. A datastore name is a SAFE_ID, so its mount point
	 * needs no unescaping. */
	while (!mounted && fgets(line, sizeof(line), f)) {
		char point[4096], source[4096];
		char *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1 ||
		    sscanf(sep + 3, "%*s %4095s", source) != 1)
			continue;
		if (strcmp(point, mp) != 0 || source[0] != '/')
			continue;
		if (stat(source, &src) == 0 && S_ISBLK(src.st_mode) && src.st_rdev == dev.st_rdev)
			mounted = true;
	}
	fclose(f);
	return mounted;
}

/* The errno a reader gets in the current state. Lock held. */
static int read_refusal_locked(struct ds_datastore *ds)
{
	switch (ds->maintenance) {
	case DS_MAINT_DELETE:
		return -ENOENT;
	case DS_MAINT_OFFLINE:
	case DS_MAINT_S3_REFRESH:
		return -ENXIO;
	case DS_MAINT_UNMOUNT:
		return -EBUSY;
	case DS_MAINT_NONE:
	case DS_MAINT_READ_ONLY:
		break;
	}
	/* After the maintenance mode, as PBS checks it before opening the
	 * chunk store (whose open refuses a relative path). */
	if (ds->path_err < 0)
		return ds->path_err;
	if (ds->backing_device && !ds->device_mounted)
		return -ENOMEDIUM;
	return 0;
}

static int write_refusal_locked(struct ds_datastore *ds)
{
	int r = read_refusal_locked(ds);

	if (r < 0)
		return r;
	if (ds->maintenance == DS_MAINT_READ_ONLY || ds->read_only)
		return -EROFS;
	return 0;
}

static const char *refusal_reason(struct ds_datastore *ds, int err)
{
	if (err == -ENOMEDIUM)
		return "backing device not mounted";
	if (err == ds->path_err)
		return "path not usable";
	if (err == -EROFS && ds->maintenance != DS_MAINT_READ_ONLY)
		return "mounted read-only";
	return ds_maintenance_name(ds->maintenance);
}

int ds_datastore_read_refusal(struct ds_datastore *ds)
{
	int r;

	pthread_mutex_lock(&ds->lock);
	r = read_refusal_locked(ds);
	pthread_mutex_unlock(&ds->lock);
	return r;
}

int ds_datastore_write_refusal(struct ds_datastore *ds)
{
	int r;

	pthread_mutex_lock(&ds->lock);
	r = write_refusal_locked(ds);
	pthread_mutex_unlock(&ds->lock);
	return r;
}

void ds_datastore_counts(struct ds_datastore *ds, unsigned *ret_readers, unsigned *ret_writers)
{
	pthread_mutex_lock(&ds->lock);
	*ret_readers = ds->readers;
	*ret_writers = ds->writers;
	pthread_mutex_unlock(&ds->lock);
}

/* Closes the chunk store when no handle needs it and the store refuses new
 * ones (PBS's clear_from_cache after the last task), so that nothing of
 * ours keeps the backing disk busy. Lock held. */
static void maybe_close_locked(struct ds_datastore *ds)
{
	int refusal;

	if (ds->cs_users > 0 || !ds->cs)
		return;
	refusal = read_refusal_locked(ds);
	/* A removable store's disk may be unmounted at any time (spec §6.7),
	 * so an idle one is not kept open even when nothing refuses. */
	if (refusal == 0 && !ds->backing_device)
		return;
	ds_chunkstore_free(ds->cs);
	ds->cs = NULL;
	ds->cs_locked = false;
	if (refusal < 0)
		ds_info("datastore %s: closed (%s)", ds->name, refusal_reason(ds, refusal));
}

static int replace_str(const char *s, char **dst)
{
	char *copy = NULL;

	if (s && !(copy = strdup(s)))
		return -ENOMEM;
	free(*dst);
	*dst = copy;
	return 0;
}

/* Moves the chunk store out of the way of a new base: closed now if no
 * handle uses it, else kept for those until the last one goes, in rec
 * (allocated by the caller, who knows before changing anything whether
 * it needs one: NULL when no handle uses the store). Lock held. */
static void retire_store_locked(struct ds_datastore *ds, struct retired *rec)
{
	if (!ds->cs)
		return;
	if (ds->cs_users > 0) {
		*rec = (struct retired){ ds->cs, ds->cs_users, ds->cs_writers, ds->cs_locked,
					 ds->retired };
		ds->retired = rec;
	} else {
		ds_chunkstore_free(ds->cs);
	}
	ds->cs = NULL;
	ds->cs_users = ds->cs_writers = 0;
	ds->cs_locked = false;
}

/* A handle on chunk store cs goes. Lock held. */
static void put_store_locked(struct ds_datastore *ds, struct ds_chunkstore *cs, bool writer)
{
	struct retired **pp, *old;

	if (cs == ds->cs) {
		ds->cs_users--;
		if (writer && --ds->cs_writers == 0 && ds->cs_locked) {
			/* GC may run again once no writer of ours is active:
			 * the shared lock lives exactly as long as our
			 * writers. */
			ds_chunkstore_unlock(ds->cs);
			ds->cs_locked = false;
		}
		return;
	}
	for (pp = &ds->retired; *pp && (*pp)->cs != cs; pp = &(*pp)->next)
		;
	old = *pp;
	if (!old)
		return;
	if (writer && --old->writers == 0 && old->locked) {
		ds_chunkstore_unlock(old->cs);
		old->locked = false;
	}
	if (--old->users > 0)
		return;
	*pp = old->next;
	ds_chunkstore_free(old->cs);
	free(old);
}

/* A path that cannot be used (err from ds_datastore_cfg_base): readers
 * and writers are refused with err until it is fixed, as PBS refuses to
 * open the store; the old directory is not served on. Logged once per
 * path. Lock held. */
static void refuse_path_locked(struct ds_datastore *ds, const char *cfg_path, int err)
{
	if (ds->path_err == err && ds->bad_path && strcmp(ds->bad_path, cfg_path) == 0)
		return;
	ds->path_err = err;
	if (replace_str(cfg_path, &ds->bad_path) < 0)
		ds_err("datastore %s: out of memory applying config", ds->name);
	ds_err("datastore %s: path '%s' %s: reads and writes refused until it is fixed", ds->name,
	       cfg_path, ds_datastore_cfg_base_why(err));
}

/* Follows a change of the store's directory in cfg (its path, or a backing
 * device added or removed). Lock held. Returns whether it changed. */
static bool follow_path_locked(struct ds_datastore *ds, const struct ds_datastore_cfg *cfg)
{
	char path[4096];
	struct retired *rec = NULL;
	struct base *b;
	int r;

	/* Only a section that names a path can move the store (tests and
	 * the mount's "gone" stand-in have none). */
	if (!cfg || !cfg->path)
		return false;
	r = ds_datastore_cfg_base(cfg, path, sizeof(path));
	if (r < 0) {
		refuse_path_locked(ds, cfg->path, r);
		return false;
	}
	if (ds->path_err < 0) {
		ds_info("datastore %s: path %s usable again", ds->name, path);
		ds->path_err = 0;
		free(ds->bad_path);
		ds->bad_path = NULL;
	}
	if (strcmp(path, ds->base->path) == 0)
		return false;
	b = base_new(path);
	if (b && ds->cs && ds->cs_users > 0 && !(rec = calloc(1, sizeof(*rec)))) {
		base_unref(b);
		b = NULL;
	}
	if (!b) {
		/* Nothing changed: the next configure tries again. */
		ds_err("datastore %s: out of memory applying config", ds->name);
		return false;
	}
	ds_info("datastore %s: path changed from %s to %s", ds->name, ds->base->path, path);
	retire_store_locked(ds, rec);
	base_unref(ds->base);
	ds->base = b;
	__atomic_store_n(&ds->base_err, 0, __ATOMIC_RELAXED);
	return true;
}

unsigned ds_datastore_configure(struct ds_datastore *ds, const struct ds_datastore_cfg *cfg)
{
	int before_r, before_w, after_r, after_w;
	bool was_removable, mounted, moved;

	pthread_mutex_lock(&ds->lock);
	before_r = read_refusal_locked(ds);
	before_w = write_refusal_locked(ds);
	moved = follow_path_locked(ds, cfg);
	was_removable = ds->backing_device != NULL;
	ds->maintenance = cfg ? cfg->maintenance : DS_MAINT_NONE;
	free(ds->maintenance_message);
	if (ds_maintenance_message_display(cfg ? cfg->maintenance_message : NULL,
					   &ds->maintenance_message) < 0 ||
	    replace_str(cfg ? cfg->backing_device : NULL, &ds->backing_device) < 0)
		ds_err("datastore %s: out of memory applying config", ds->name);
	ds->sync_each = cfg && cfg->sync_level && strcmp(cfg->sync_level, "file") == 0;
	mounted = ds->backing_device &&
		  ds_backing_device_mounted(ds->name, ds->backing_device, NULL);
	/* Said here, not only in _refresh_mount: a refresh that runs both
	 * reaches this first, and ENOMEDIUM needs its reason in the log. */
	if (ds->backing_device && (was_removable ? mounted != ds->device_mounted : !mounted))
		ds_info("datastore %s: backing device %s %s", ds->name, ds->backing_device,
			mounted ? "mounted" : "not mounted");
	ds->device_mounted = mounted;
	after_r = read_refusal_locked(ds);
	after_w = write_refusal_locked(ds);
	maybe_close_locked(ds);
	pthread_mutex_unlock(&ds->lock);
	return (before_r != after_r || before_w != after_w ? DS_CONFIGURE_ACCESS : 0) |
	       (moved ? DS_CONFIGURE_PATH : 0);
}

bool ds_datastore_refresh_mount(struct ds_datastore *ds)
{
	bool mounted, changed;

	pthread_mutex_lock(&ds->lock);
	if (!ds->backing_device) {
		pthread_mutex_unlock(&ds->lock);
		return false;
	}
	/* Checked outside the hot path: only here and in _configure. */
	mounted = ds_backing_device_mounted(ds->name, ds->backing_device, NULL);
	changed = mounted != ds->device_mounted;
	ds->device_mounted = mounted;
	if (changed)
		ds_info("datastore %s: backing device %s %s", ds->name, ds->backing_device,
			mounted ? "mounted" : "not mounted");
	maybe_close_locked(ds);
	pthread_mutex_unlock(&ds->lock);
	return changed;
}

void ds_datastore_set_read_only(struct ds_datastore *ds, bool ro)
{
	pthread_mutex_lock(&ds->lock);
	ds->read_only = ro;
	pthread_mutex_unlock(&ds->lock);
}

void ds_datastore_track_operations(struct ds_datastore *ds, bool on, const char *dir)
{
	pthread_mutex_lock(&ds->lock);
	ds->track_ops = on;
	if (dir && replace_str(dir, &ds->ops_dir) < 0)
		ds->track_ops = false;
	pthread_mutex_unlock(&ds->lock);
}

/* The active-operations file is published lazily. PBS's unmount and
 * maintenance tasks only wait for its totals to reach zero, polling once a
 * second (spec §6.5), so the file must say "busy" before the first
 * operation starts, and does: that is published at once. The exact count,
 * and the drop to zero, follow within a second (ds_datastore_sync_operations,
 * from the mount's watcher) or when the datastore is freed. Rewriting the
 * file at every open and close (lock, parse, a /proc lookup per entry,
 * atomic replace) was most of the daemon's time when `cp -a` copied small
 * files. */
static void publish_locked(struct ds_datastore *ds)
{
	int r = ds_activeops_set(ds->ops_dir, ds->name, ds->readers, ds->writers);

	if (r < 0) {
		/* pub_* stay: tried again at the next change or sync. Logged
		 * once, not at every open and every second while it lasts. */
		if (r != ds->ops_err)
			ds_warn("datastore %s: cannot update active operations: %s "
				"(PBS's tasks do not see this mount's open files)",
				ds->name, strerror(-r));
		ds->ops_err = r;
		return;
	}
	if (ds->ops_err)
		ds_info("datastore %s: active operations recorded again", ds->name);
	ds->ops_err = 0;
	ds->pub_readers = ds->readers;
	ds->pub_writers = ds->writers;
}

static void track_locked(struct ds_datastore *ds)
{
	if (ds->track_ops &&
	    ((ds->readers > 0 && ds->pub_readers == 0) || (ds->writers > 0 && ds->pub_writers == 0)))
		publish_locked(ds);
}

void ds_datastore_sync_operations(struct ds_datastore *ds)
{
	pthread_mutex_lock(&ds->lock);
	if (ds->track_ops && (ds->readers != ds->pub_readers || ds->writers != ds->pub_writers))
		publish_locked(ds);
	pthread_mutex_unlock(&ds->lock);
}

int ds_lookup_acquire(struct ds_datastore *ds, struct ds_lookup **ret)
{
	struct ds_lookup *lk;
	int r;

	lk = calloc(1, sizeof(*lk));
	if (!lk)
		return -ENOMEM;
	pthread_mutex_lock(&ds->lock);
	r = read_refusal_locked(ds);
	if (r != -ENOENT) /* "delete" refuses lookups too */
		lk->base = base_ref(ds->base);
	pthread_mutex_unlock(&ds->lock);
	if (r == -ENOENT) {
		free(lk);
		return r;
	}
	lk->ds = ds;
	lk->io_err = r;
	*ret = lk;
	return 0;
}

void ds_lookup_release(struct ds_lookup *lk)
{
	if (!lk)
		return;
	base_unref(lk->base);
	free(lk);
}

/* Whether the open chunk store is still the directory at base: it may
 * have been removed and made anew, renamed away, or a disk mounted over or
 * unmounted from under it. Lock held. */
static bool cs_current_locked(struct ds_datastore *ds)
{
	struct stat a, b;

	return stat(ds->base->path, &a) == 0 && fstat(ds_chunkstore_basefd(ds->cs), &b) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Takes back, as the current chunk store, a retired one opened at the
 * directory now at base (the path changed away and back, or to another
 * name of the same directory), with its handles' counts and lock. Two chunk
 * stores on one directory would each open its .lock, and the POSIX record
 * lock of the writers of both dies with the first close: garbage
 * collection could then run under the other's writers. Lock held, no
 * current store. */
static void unretire_store_locked(struct ds_datastore *ds)
{
	struct retired **pp, *old;
	struct stat a, b;

	if (!ds->retired || stat(ds->base->path, &a) < 0)
		return;
	for (pp = &ds->retired; (old = *pp); pp = &old->next) {
		if (fstat(ds_chunkstore_basefd(old->cs), &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino)
			break;
	}
	if (!old)
		return;
	*pp = old->next;
	ds->cs = old->cs;
	ds->cs_users = old->users;
	ds->cs_writers = old->writers;
	ds->cs_locked = old->locked;
	free(old);
}

/* Logs a refusal with its reason and the maintenance message. Lock held. */
static void log_refusal_locked(struct ds_datastore *ds, int refusal, const char *what)
{
	if (refusal == ds->path_err) {
		ds_err("datastore %s: %s refused: path '%s' %s", ds->name, what,
		       ds->bad_path ? ds->bad_path : "?", ds_datastore_cfg_base_why(refusal));
		return;
	}
	ds_err("datastore %s: %s refused: %s%s%s", ds->name, what, refusal_reason(ds, refusal),
	       ds->maintenance_message ? ": " : "",
	       ds->maintenance_message ? ds->maintenance_message : "");
}

void ds_datastore_log_read_refusal(struct ds_datastore *ds, int err)
{
	pthread_mutex_lock(&ds->lock);
	if (err < 0 && read_refusal_locked(ds) == err)
		log_refusal_locked(ds, err, "read");
	pthread_mutex_unlock(&ds->lock);
}

/* Shared part of reader and writer acquisition. Lock held. */
static int open_store_locked(struct ds_datastore *ds, int refusal, const char *what)
{
	if (refusal < 0) {
		log_refusal_locked(ds, refusal, what);
		return refusal;
	}
	/* Handles still open keep the old one (their files stay right). */
	if (ds->cs && ds->cs_users == 0 && !cs_current_locked(ds)) {
		ds_info("datastore %s: %s is no longer the directory opened, reopening", ds->name,
			ds->base->path);
		ds_chunkstore_free(ds->cs);
		ds->cs = NULL;
		ds->cs_locked = false;
	}
	if (!ds->cs)
		unretire_store_locked(ds);
	if (!ds->cs)
		return ds_chunkstore_open(ds->base->path, &ds->cs);
	return 0;
}

int ds_reader_acquire(struct ds_datastore *ds, struct ds_reader **ret)
{
	struct ds_reader *rd;
	int r;

	rd = calloc(1, sizeof(*rd));
	if (!rd)
		return -ENOMEM;
	pthread_mutex_lock(&ds->lock);
	r = open_store_locked(ds, read_refusal_locked(ds), "read");
	if (r < 0) {
		pthread_mutex_unlock(&ds->lock);
		free(rd);
		return r;
	}
	ds->readers++;
	ds->cs_users++;
	track_locked(ds);
	rd->lk.ds = ds;
	rd->lk.base = base_ref(ds->base);
	rd->cs = ds->cs;
	pthread_mutex_unlock(&ds->lock);
	*ret = rd;
	return 0;
}

void ds_reader_release(struct ds_reader *rd)
{
	struct ds_datastore *ds;

	if (!rd)
		return;
	ds = rd->lk.ds;
	pthread_mutex_lock(&ds->lock);
	ds->readers--;
	put_store_locked(ds, rd->cs, false);
	track_locked(ds);
	maybe_close_locked(ds);
	pthread_mutex_unlock(&ds->lock);
	base_unref(rd->lk.base);
	free(rd);
}

int ds_writer_acquire(struct ds_datastore *ds, struct ds_writer **ret)
{
	struct ds_writer *w;
	int r;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	pthread_mutex_lock(&ds->lock);
	r = open_store_locked(ds, write_refusal_locked(ds), "write");
	if (r < 0)
		goto fail;
	if (!ds->cs_locked) {
		r = ds_chunkstore_lock_shared(ds->cs);
		if (r < 0)
			goto fail;
		ds->cs_locked = true;
	}
	ds->writers++;
	ds->cs_users++;
	ds->cs_writers++;
	track_locked(ds);
	w->rd.lk.ds = ds;
	w->rd.lk.base = base_ref(ds->base);
	w->rd.cs = ds->cs;
	pthread_mutex_unlock(&ds->lock);
	*ret = w;
	return 0;
fail:
	maybe_close_locked(ds);
	pthread_mutex_unlock(&ds->lock);
	free(w);
	return r;
}

void ds_writer_release(struct ds_writer *w)
{
	struct ds_datastore *ds;

	if (!w)
		return;
	ds = w->rd.lk.ds;
	pthread_mutex_lock(&ds->lock);
	ds->writers--;
	put_store_locked(ds, w->rd.cs, true);
	track_locked(ds);
	maybe_close_locked(ds);
	pthread_mutex_unlock(&ds->lock);
	base_unref(w->rd.lk.base);
	free(w);
}

const struct ds_reader *ds_writer_reader(const struct ds_writer *w)
{
	return &w->rd;
}

const struct ds_lookup *ds_reader_lookup(const struct ds_reader *r)
{
	return &r->lk;
}

const struct ds_lookup *ds_writer_lookup(const struct ds_writer *w)
{
	return &w->rd.lk;
}

struct ds_datastore *ds_lookup_datastore(const struct ds_lookup *lk)
{
	return lk->ds;
}

int ds_lookup_check_io(const struct ds_lookup *lk)
{
	return lk->io_err;
}

/* Logs when the datastore's directory goes away or comes back: once per
 * change, not per lookup; not for a lookup at a base the store has left. */
static int note_base(struct ds_datastore *ds, const struct base *b, int err)
{
	if (__atomic_load_n(&ds->base_err, __ATOMIC_RELAXED) == err)
		return err;
	pthread_mutex_lock(&ds->lock);
	if (ds->base == b && ds->base_err != err) {
		if (err == -ENOMEDIUM)
			ds_err("datastore %s: %s holds no datastore (no .chunks): its disk not mounted?",
			       ds->name, b->path);
		else if (err < 0)
			ds_err("datastore %s: %s: %s", ds->name, b->path, strerror(-err));
		else
			ds_info("datastore %s: %s is a datastore again", ds->name, b->path);
		__atomic_store_n(&ds->base_err, err, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&ds->lock);
	return err;
}

int ds_lookup_open_dir(const struct ds_lookup *lk, const char *relpath)
{
	int fd, r;

	if (lk->io_err < 0)
		return lk->io_err;
	/* The base may be reached through symlinks (configured paths often
	 * are); below it nothing is followed, one component at a time: the
	 * datastore is writable by PBS's backup user and dsfs runs as root,
	 * so a link inside it must not lead outside. */
	fd = open(lk->base->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return note_base(lk->ds, lk->base, -errno);
	/* An empty mount point (the disk is gone) is not an empty datastore. */
	if (faccessat(fd, ".chunks", F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
		close(fd);
		return note_base(lk->ds, lk->base, -ENOMEDIUM);
	}
	note_base(lk->ds, lk->base, 0);
	if (!*relpath)
		return fd;
	r = ds_open_dir_at(fd, relpath);
	close(fd);
	return r;
}

int ds_reader_load_chunk(const struct ds_reader *r, const struct ds_digest *d,
			 const struct ds_crypt *c, size_t expect_len, uint8_t *out, size_t cap,
			 size_t *ret_len)
{
	return ds_chunkstore_load(r->cs, d, c, expect_len, out, cap, ret_len);
}

int ds_reader_load_chunk_file(const struct ds_reader *r, const struct ds_digest *d,
			      const struct ds_crypt *c, size_t expect_len, uint8_t *out,
			      size_t cap, size_t *ret_len, struct ds_chunk_file *ret_file)
{
	return ds_chunkstore_load_file(r->cs, d, c, expect_len, out, cap, ret_len, ret_file);
}

int ds_reader_load_known_chunk(const struct ds_reader *r, const struct ds_digest *d,
			       const struct ds_chunk_file *f, size_t expect_len, uint8_t *out,
			       size_t cap, size_t *ret_len)
{
	return ds_chunkstore_load_known(r->cs, d, f, expect_len, out, cap, ret_len);
}

int ds_reader_decode_known_part(const struct ds_reader *r, const struct ds_digest *d,
				const struct ds_chunk_file *f, size_t expect_len,
				struct ds_blob_part **pp, uint8_t *out, size_t cap, size_t want,
				size_t *ret_done)
{
	return ds_chunkstore_decode_known_part(r->cs, d, f, expect_len, pp, out, cap, want,
					       ret_done);
}

int ds_reader_read_plain_chunk(const struct ds_reader *r, const struct ds_digest *d,
			       const struct ds_chunk_file *f, uint64_t off, void *buf, size_t len)
{
	return ds_chunkstore_read_plain(r->cs, d, f, off, buf, len);
}

int ds_reader_read_raw_chunk(const struct ds_reader *r, const struct ds_digest *d,
			     uint8_t **ret_raw, size_t *ret_len)
{
	return ds_chunkstore_read_raw(r->cs, d, ret_raw, ret_len);
}

int ds_reader_count_chunks(const struct ds_reader *r, uint64_t *ret_files, uint64_t *ret_bytes)
{
	return ds_chunkstore_count(r->cs, ret_files, ret_bytes);
}

int ds_writer_put_chunk(const struct ds_writer *w, const uint8_t *data, size_t len,
			const struct ds_crypt *c, struct ds_digest *ret_digest, bool *ret_existed)
{
	struct ds_digest d;
	uint8_t *raw;
	size_t raw_len;
	int r;

	if (len == 0 || len > DS_MAX_CHUNK_SIZE)
		return -EINVAL;
	ds_crypt_digest(c, data, len, &d);
	/* Known chunk: touched, not compressed (or encrypted) again. */
	r = ds_chunkstore_touch_existing(w->rd.cs, &d, c != NULL);
	if (r < 0)
		return r;
	if (r == 1) {
		if (ret_existed)
			*ret_existed = true;
		*ret_digest = d;
		return 0;
	}
	r = ds_blob_encode(data, len, c, true, &raw, &raw_len);
	if (r < 0)
		return r;
	r = ds_chunkstore_insert(w->rd.cs, &d, raw, raw_len, ds_writer_sync_each(w), ret_existed);
	free(raw);
	if (r < 0)
		return r;
	*ret_digest = d;
	return 0;
}

int ds_writer_check_chunk_disk(const struct ds_writer *w, const struct ds_digest *d,
			       const struct ds_crypt *c)
{
	return ds_chunkstore_check_disk(w->rd.cs, d, c);
}

bool ds_writer_sync_each(const struct ds_writer *w)
{
	struct ds_datastore *ds = w->rd.lk.ds;
	bool sync_each;

	/* _configure may change it from another thread. */
	pthread_mutex_lock(&ds->lock);
	sync_each = ds->sync_each;
	pthread_mutex_unlock(&ds->lock);
	return sync_each;
}

int ds_writer_basefd(const struct ds_writer *w)
{
	return ds_chunkstore_basefd(w->rd.cs);
}

const char *ds_lookup_store(const struct ds_lookup *lk)
{
	return ds_datastore_name(lk->ds);
}
