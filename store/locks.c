#include "store/locks.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/hierarchy.h"
#include "store/log.h"
#include "store/util.h"

struct ds_lock {
	int filefd; /* new scheme lock file, or -1 */
	int dirfd;  /* old scheme: the locked directory, or -1 */
};

static const char *lock_root(void)
{
	const char *d = getenv("DSFS_LOCK_DIR");

	return d && *d ? d : "/run/proxmox-backup/locks";
}

/* PBS switches back to directory locks while this file exists. */
static bool old_locking(void)
{
	char path[4200];
	const char *root = lock_root();
	const char *slash = strrchr(root, '/');

	/* <lockdir>/../old-locking */
	if (!slash || ds_path_fmt(path, sizeof(path), "%.*s/old-locking", (int)(slash - root),
				  root) < 0)
		return false;
	return access(path, F_OK) == 0;
}

int ds_lock_escape(const char *rel, char *out, size_t outlen)
{
	char esc[4 * 1100];
	size_t o = 0;

	if (*rel == '/')
		rel++;
	for (const unsigned char *p = (const unsigned char *)rel; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || *p == '_' ||
			     (*p == '.' && p != (const unsigned char *)rel);

		if (o + 5 >= sizeof(esc))
			return -ENAMETOOLONG;
		if (*p == '/')
			esc[o++] = '-';
		else if (plain)
			esc[o++] = (char)*p;
		else
			o += (size_t)snprintf(esc + o, 5, "\\x%02x", *p);
	}
	esc[o] = '\0';
	if (o < 255)
		return ds_path_fmt(out, outlen, "%s", esc);
	{
		struct ds_digest d;
		char hex[DS_DIGEST_HEX_LEN + 1];

		ds_sha256(rel, strlen(rel), &d);
		ds_digest_to_hex(&d, hex);
		return ds_path_fmt(out, outlen, "hashed/%.80s...%s-%s", esc, esc + o - 80, hex);
	}
}

/* mkdir -p of path (absolute), owned by backup when created. */
static int mkdirs(char *path, uid_t uid, gid_t gid)
{
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(path, 0770) == 0) {
			/* By descriptor: the parent may be the backup user's,
			 * and chown by name follows a link put in its place. */
			int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (uid != (uid_t)-1 && (fd < 0 || fchown(fd, uid, gid) < 0))
				ds_warn("%s: cannot chown to backup: %s", path, strerror(errno));
			if (fd >= 0)
				close(fd);
		} else if (errno != EEXIST) {
			int r = -errno;

			*p = c;
			return r;
		}
		*p = c;
		if (c == '\0')
			return 0;
	}
}

/* Opens the lock root: its parent may be reached through links (the
 * admin's), the root itself is not (/run/proxmox-backup is the backup
 * user's, who could put a link for locks/ there). */
static int open_lock_root(void)
{
	const char *root = lock_root();
	const char *slash = strrchr(root, '/');
	char parent[4096];
	int pfd, fd, err;

	if (!slash || !slash[1])
		return open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ds_path_fmt(parent, sizeof(parent), "%.*s", slash == root ? 1 : (int)(slash - root),
			root) < 0)
		return -ENAMETOOLONG;
	pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return -errno;
	fd = openat(pfd, slash + 1, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	err = errno;
	close(pfd);
	return fd < 0 ? -err : fd;
}

/* Opens (creating) the lock file <lockdir>/<store>/<sub> and flocks it.
 * wait_ms 0: non-blocking. */
static int lock_file(const char *store, const char *sub, bool exclusive, int wait_ms,
		     int *ret_fd)
{
	char rel[4200], what[4300];
	const char *slash, *leaf;
	uid_t uid;
	gid_t gid;
	int rootfd, dfd, fd, r;

	ds_backup_user(&uid, &gid);

	r = ds_path_fmt(rel, sizeof(rel), "%s/%s", store, sub);
	if (r < 0)
		return r;
	slash = strrchr(rel, '/');
	leaf = slash + 1;
	rel[slash - rel] = '\0';
	rootfd = open_lock_root();
	if (rootfd == -ENOENT) {
		/* /run/proxmox-backup/locks on a machine without PBS. */
		char root[4096];

		r = ds_path_fmt(root, sizeof(root), "%s", lock_root());
		if (r < 0 || (r = mkdirs(root, uid, gid)) < 0)
			return r;
		rootfd = open_lock_root();
	}
	if (rootfd < 0)
		return rootfd;
	/* Made as backup's, as PBS makes them; no link followed. */
	dfd = ds_walk_dir_at(rootfd, rel, 0770, uid, gid);
	close(rootfd);
	if (dfd < 0)
		return dfd;
	for (int attempt = 0;; attempt++) {
		struct stat a, b;

		fd = openat(dfd, leaf, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0660);
		if (fd < 0) {
			r = -errno;
			break;
		}
		if (fstat(fd, &a) < 0 || !S_ISREG(a.st_mode)) {
			r = -EINVAL;
			close(fd);
			break;
		}
		/* PBS's mode and owner, whatever our umask. */
		snprintf(what, sizeof(what), "%s/%s", rel, leaf);
		ds_give_to_backup(fd, 0660, what);
		for (int waited = 0;; waited += 10) {
			if (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0)
				break;
			if (errno != EWOULDBLOCK || waited >= wait_ms) {
				r = errno == EWOULDBLOCK ? -EBUSY : -errno;
				close(fd);
				close(dfd);
				return r;
			}
			nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
		}
		/* PBS's lock_helper: the file may have been removed and
		 * recreated between open and flock. */
		if (fstatat(dfd, leaf, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev) {
			*ret_fd = fd;
			close(dfd);
			return 0;
		}
		close(fd);
		if (attempt > 8) {
			r = -EBUSY;
			break;
		}
	}
	close(dfd);
	return r;
}

/* The namespace directory part of the new scheme: "a:b" for "a/b". */
static void ns_part(const char *ns, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s", ns);
	for (char *p = out; *p; p++)
		if (*p == '/')
			*p = ':';
}

static int lock_object(int basefd, const char *store, const char *rel, bool want_time,
		       bool exclusive, bool file_lock, struct ds_lock **ret)
{
	char ns[257], type[8], id[256], time[DS_TIME_LEN + 1];
	char obj[600], esc[1200], nsdir[300], sub[1600];
	struct ds_lock *l;
	int r;

	if (ds_parse_snapshot_path(rel, want_time, ns, type, id, time) < 0)
		return -EINVAL;
	l = malloc(sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->filefd = l->dirfd = -1;
	if (file_lock && !old_locking()) {
		ns_part(ns, nsdir, sizeof(nsdir));
		if (want_time)
			r = ds_path_fmt(obj, sizeof(obj), "%s/%s/%s", type, id, time);
		else
			r = ds_path_fmt(obj, sizeof(obj), "%s/%s", type, id);
		if (r == 0)
			r = ds_lock_escape(obj, esc, sizeof(esc));
		if (r == 0)
			r = ds_path_fmt(sub, sizeof(sub), "%s%s%s", nsdir, *nsdir ? "/" : "", esc);
		if (r == 0)
			r = lock_file(store, sub, exclusive, 0, &l->filefd);
		if (r < 0)
			goto fail;
	}
	/* No link followed in rel either (ds_open_dir_at): a directory
	 * locked elsewhere would let a forget go on there. */
	l->dirfd = ds_open_dir_at(basefd, rel);
	if (l->dirfd < 0) {
		r = l->dirfd == -ENOTDIR ? -ENOENT : l->dirfd;
		l->dirfd = -1;
		goto fail;
	}
	if (flock(l->dirfd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto fail;
	}
	*ret = l;
	return 0;
fail:
	ds_lock_release(l);
	return r;
}

int ds_lock_snapshot(int basefd, const char *store, const char *snaprel, bool exclusive,
		     struct ds_lock **ret)
{
	return lock_object(basefd, store, snaprel, true, exclusive, true, ret);
}

int ds_lock_snapshot_dir(int basefd, const char *snaprel, bool exclusive, struct ds_lock **ret)
{
	return lock_object(basefd, "", snaprel, true, exclusive, false, ret);
}

int ds_lock_group(int basefd, const char *store, const char *grouprel, struct ds_lock **ret)
{
	return lock_object(basefd, store, grouprel, false, true, true, ret);
}

int ds_lock_manifest(const char *store, const char *snaprel, struct ds_lock **ret)
{
	char ns[257], type[8], id[256], time[DS_TIME_LEN + 1];
	char obj[600], esc[1200], nsdir[1100], sub[1800];
	struct ds_lock *l;
	int r;

	if (ds_parse_snapshot_path(snaprel, true, ns, type, id, time) < 0)
		return -EINVAL;
	if (old_locking()) {
		r = ds_ns_relpath(ns, nsdir, sizeof(nsdir));
		if (r == 0)
			r = ds_path_fmt(sub, sizeof(sub), "%s%s%s/%s/%s/%s.index.json.lck", nsdir,
					*nsdir ? "/" : "", type, id, time, time);
	} else {
		ns_part(ns, nsdir, sizeof(nsdir));
		r = ds_path_fmt(obj, sizeof(obj), "%s/%s/%s/.index.json.lck", type, id, time);
		if (r == 0)
			r = ds_lock_escape(obj, esc, sizeof(esc));
		if (r == 0)
			r = ds_path_fmt(sub, sizeof(sub), "%s%s%s", nsdir, *nsdir ? "/" : "", esc);
	}
	if (r < 0)
		return r;
	l = malloc(sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->dirfd = -1;
	r = lock_file(store, sub, true, 5000, &l->filefd);
	if (r < 0) {
		free(l);
		return r;
	}
	*ret = l;
	return 0;
}

void ds_lock_release(struct ds_lock *l)
{
	if (!l)
		return;
	if (l->dirfd >= 0)
		close(l->dirfd);
	if (l->filefd >= 0)
		close(l->filefd);
	free(l);
}
