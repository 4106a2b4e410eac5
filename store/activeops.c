#include "store/activeops.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "store/log.h"
#include "store/util.h"

int64_t ds_process_starttime(int pid)
{
	char path[64], buf[1024];
	const char *p;
	long long start;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	/* The command name (field 2) may contain spaces and ')': skip to the
	 * last ')'. Field 3 is the state; a zombie counts as dead. */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
		return -ESRCH;
	p += 2;
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -EIO;
		p++;
	}
	if (sscanf(p, "%lld", &start) != 1)
		return -EIO;
	return start;
}

static bool entry_alive(json_t *e, int64_t *ret_read, int64_t *ret_write)
{
	json_t *pid = json_object_get(e, "pid");
	json_t *st = json_object_get(e, "starttime");
	json_t *ops = json_object_get(e, "active_operations");

	if (!json_is_integer(pid) || !json_is_integer(st) || !json_is_object(ops))
		return false;
	if (json_integer_value(pid) <= 0 || json_integer_value(pid) > INT32_MAX)
		return false;
	if (ds_process_starttime((int)json_integer_value(pid)) != json_integer_value(st))
		return false;
	*ret_read = json_integer_value(json_object_get(ops, "read"));
	*ret_write = json_integer_value(json_object_get(ops, "write"));
	return true;
}

int ds_activeops_parse(const char *json, size_t len, int64_t *ret_read, int64_t *ret_write)
{
	json_t *arr;
	size_t i;
	json_t *e;
	int64_t rd = 0, wr = 0;

	arr = json_loadb(json, len, 0, NULL);
	if (!json_is_array(arr)) {
		json_decref(arr);
		return -EBADMSG;
	}
	json_array_foreach(arr, i, e) {
		int64_t r, w;

		/* Counts are whatever the file says: sum without overflowing. */
		if (entry_alive(e, &r, &w) &&
		    (__builtin_add_overflow(rd, r, &rd) || __builtin_add_overflow(wr, w, &wr))) {
			json_decref(arr);
			return -EBADMSG;
		}
	}
	json_decref(arr);
	*ret_read = rd;
	*ret_write = wr;
	return 0;
}

int ds_activeops_get(const char *dir, const char *store, int64_t *ret_read, int64_t *ret_write)
{
	char path[4096];
	uint8_t *buf;
	size_t len;
	int r;

	r = ds_path_fmt(path, sizeof(path), "%s/%s", dir, store);
	if (r < 0)
		return r;
	r = ds_read_file_at(AT_FDCWD, path, 16 * DS_MIB, &buf, &len);
	if (r == -ENOENT) {
		*ret_read = *ret_write = 0;
		return 0;
	}
	if (r < 0)
		return r;
	r = ds_activeops_parse((const char *)buf, len, ret_read, ret_write);
	free(buf);
	return r;
}

/* 0 if fd is a regular file, else -EINVAL (or fstat's -errno). */
static int regular_fd(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	return S_ISREG(st.st_mode) ? 0 : -EINVAL;
}

/* mkdir with PBS's owner and exact mode (umask notwithstanding). */
static int make_dir(const char *path, mode_t mode)
{
	int fd;

	if (mkdir(path, mode) < 0)
		return -errno;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		ds_give_to_backup(fd, mode, path);
		close(fd);
	}
	return 0;
}

/* flock with PBS's 10 s timeout. */
static int lock_with_timeout(int fd)
{
	for (int i = 0; i < 1000; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		poll(NULL, 0, 10);
	}
	return -ETIMEDOUT;
}

/* set NULL: adds delta to op's counter; else sets read and write to
 * set[0] and set[1]. */
static int modify(const char *dir, const char *store, enum ds_operation op, int delta,
		  const int64_t *set)
{
	char path[4096], lockpath[4096], lockname[4096];
	int me = (int)getpid();
	int64_t mystart = ds_process_starttime(me);
	uid_t uid; /* (uid_t)-1: no user backup (no PBS here) */
	gid_t gid;
	json_t *arr = NULL, *out = NULL, *e;
	uint8_t *buf = NULL;
	size_t len, i;
	char *text = NULL;
	bool found = false;
	int dirfd, lockfd, r;

	if (mystart < 0)
		return (int)mystart;
	if ((r = ds_path_fmt(path, sizeof(path), "%s/%s", dir, store)) < 0 ||
	    (r = ds_path_fmt(lockpath, sizeof(lockpath), "%s/%s.lock", dir, store)) < 0 ||
	    (r = ds_path_fmt(lockname, sizeof(lockname), "%s.lock", store)) < 0)
		return r;
	/* PBS's proxy runs as backup and reads, replaces and flocks these
	 * files, so what we create is backup's, as PBS makes it (spec §6.5). */
	ds_backup_user(&uid, &gid);
	if ((r = make_dir(dir, 0770)) < 0 && r != -EEXIST) {
		/* /run/proxmox-backup may not exist on a machine without PBS. */
		char parent[4096];
		char *slash;

		snprintf(parent, sizeof(parent), "%s", dir);
		slash = strrchr(parent, '/');
		if (slash && slash != parent) {
			*slash = '\0';
			if ((r = make_dir(parent, 0755)) < 0 && r != -EEXIST)
				return r;
		}
		if ((r = make_dir(dir, 0770)) < 0 && r != -EEXIST)
			return r;
	}
	/* The directory is the backup user's, and so is the one above it
	 * (/run/proxmox-backup): a link there is not followed (root would
	 * give its target, or files made in it, to that user), not even in
	 * place of the directory itself, nor is anything but a regular file
	 * used. */
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return errno == ELOOP ? -ENOTDIR : -errno;
	lockfd = openat(dirfd, lockname, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
			0660);
	if (lockfd < 0) {
		r = -errno;
		close(dirfd);
		return r;
	}
	r = regular_fd(lockfd);
	if (r < 0) {
		close(lockfd);
		close(dirfd);
		return r;
	}
	ds_give_to_backup(lockfd, 0660, lockpath);
	r = lock_with_timeout(lockfd);
	if (r < 0) {
		ds_err("%s: cannot lock: %s", lockpath, strerror(-r));
		goto out;
	}
	r = ds_read_file_at(dirfd, store, 16 * DS_MIB, &buf, &len);
	if (r == 0)
		arr = json_loadb((const char *)buf, len, 0, NULL);
	else if (r != -ENOENT)
		goto out;
	out = json_array();
	if (!out) {
		r = -ENOMEM;
		goto out;
	}
	json_array_foreach(arr, i, e) {
		int64_t rd, wr;

		if (!entry_alive(e, &rd, &wr))
			continue; /* dead process, or our pid reused: drop */
		if (json_integer_value(json_object_get(e, "pid")) == me) {
			json_t *ops = json_object_get(e, "active_operations");

			found = true;
			if (set) {
				rd = set[0];
				wr = set[1];
			} else if ((op == DS_OP_READ && __builtin_add_overflow(rd, delta, &rd)) ||
				   (op == DS_OP_WRITE && __builtin_add_overflow(wr, delta, &wr))) {
				ds_err("%s: counter out of range", path);
				r = -EBADMSG;
				goto out;
			}
			json_object_set_new(ops, "read", json_integer(rd));
			json_object_set_new(ops, "write", json_integer(wr));
		}
		json_array_append(out, e);
	}
	if (!found && set && (set[0] || set[1])) {
		e = json_pack("{s:i, s:I, s:{s:I, s:I}}", "pid", me, "starttime",
			      (json_int_t)mystart, "active_operations", "read", (json_int_t)set[0],
			      "write", (json_int_t)set[1]);
		if (!e || json_array_append_new(out, e) < 0) {
			r = -ENOMEM;
			goto out;
		}
	} else if (!found && !set && delta >= 0) {
		/* As PBS: a new entry starts at 1 for the operation, whatever
		 * delta says (spec §6.5 step 4). */
		e = json_pack("{s:i, s:I, s:{s:i, s:i}}", "pid", me, "starttime",
			      (json_int_t)mystart, "active_operations", "read",
			      op == DS_OP_READ ? 1 : 0, "write", op == DS_OP_WRITE ? 1 : 0);
		if (!e || json_array_append_new(out, e) < 0) {
			r = -ENOMEM;
			goto out;
		}
	}
	text = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text) {
		r = -ENOMEM;
		goto out;
	}
	/* Only root may give a file away. */
	r = ds_replace_file_owned_at(dirfd, store, text, strlen(text), 0660,
				     geteuid() == 0 ? uid : (uid_t)-1, gid, false);
out:
	free(text);
	json_decref(out);
	json_decref(arr);
	free(buf);
	close(lockfd); /* drops the flock */
	close(dirfd);
	return r;
}

int ds_activeops_update(const char *dir, const char *store, enum ds_operation op, int delta)
{
	return modify(dir, store, op, delta, NULL);
}

int ds_activeops_set(const char *dir, const char *store, int64_t read, int64_t write)
{
	const int64_t set[2] = { read, write };

	if (read < 0 || write < 0)
		return -EINVAL;
	return modify(dir, store, DS_OP_LOOKUP, 0, set);
}
