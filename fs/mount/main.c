/* mount.dsfs — mounts PBS datastores (see mount.dsfs(8)).
 *
 *   mount.dsfs SOURCE DIR [-o OPTIONS] [-f] [-d]
 *
 * Works as a mount(8) helper: mount -t dsfs SOURCE DIR -o … runs
 * /sbin/mount.dsfs SOURCE DIR -o … (plus -n/-s/-v, accepted and ignored). */
#include "fs/mount/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "fs/mount/loop.h"
#include "fs/mount/vfs.h"
#include "store/config.h"
#include "store/crypt.h"
#include "store/log.h"
#include "store/names.h"
#include "store/util.h"

#define DEFAULT_CACHE_SIZE (256 * DS_MIB)
#define MAX_SPIN_US 10000
#define MAX_THREADS 16

struct options {
	const char *source, *mountpoint;
	char *config, *keyfile, *owner;
	size_t cache_size;
	unsigned spin_us; /* -o spin=USEC */
	bool foreground, debug, read_only;
	bool verify_always; /* -o verify=always */
	char fuse_opts[4096]; /* passed to libfuse as one -o */
};

static void usage(FILE *f)
{
	fputs("Usage: mount.dsfs SOURCE DIR [-o OPTION[,OPTION...]] [-f] [-d]\n"
	      "\n"
	      "SOURCE is one of:\n"
	      "  a datastore.cfg file       the root shows one directory per datastore\n"
	      "  a datastore directory      (holding .chunks/) the root is that datastore\n"
	      "  a datastore name           looked up in /etc/proxmox-backup/datastore.cfg\n"
	      "                             (or -o config=FILE)\n"
	      "\n"
	      "dsfs options:\n"
	      "  config=FILE        datastore.cfg for a datastore given by name\n"
	      "  keyfile=FILE       PBS encryption key (password from $DSFS_KEY_PASSWORD);\n"
	      "                     without it encrypted archives are listed, open gives ENOKEY\n"
	      "  cache_size=SIZE    decoded-chunk cache (default 256M; suffixes K, M, G)\n"
	      "  verify=first       verify each chunk's digest the first time it is loaded,\n"
	      "                     then trust its file while unchanged (the default)\n"
	      "  verify=always      verify the whole chunk at every load\n"
	      "  owner=AUTHID       owner of groups made by mkdir (default root@pam)\n"
	      "  spin=USEC          after each request, poll for the next one this long\n"
	      "                     before sleeping (at most 10000; default 0: never)\n"
	      "  max_read=BYTES     largest read the kernel asks for (4096..1048576,\n"
	      "                     the default)\n"
	      "  ro                 refuse every write (EROFS)\n"
	      "  rw                 the default\n"
	      "FUSE and mount options passed through: allow_other, default_permissions,\n"
	      "  fsname=, subtype=, nosuid, nodev, noexec, noatime, …\n"
	      "fstab-only options ignored: defaults, auto, noauto, nofail, _netdev, user, users,\n"
	      "  nouser, x-*, comment=*\n"
	      "ignored, without effect on FUSE: relatime, strictatime, lazytime, diratime\n"
	      "  and their no- forms, silent, loud\n"
	      "\n"
	      "  -f                 stay in the foreground (log to stderr)\n"
	      "  -d                 foreground with FUSE debug output\n"
	      "  -h, --help         this text\n"
	      "  -V, --version      version\n",
	      f);
}

/* cache_size=SIZE[K|M|G] in bytes, at least 16M. */
static int parse_size(const char *s, size_t *ret)
{
	size_t v;

	if (ds_parse_size(s, &v) < 0 || v < (16ULL << 20)) {
		fprintf(stderr,
			"mount.dsfs: cache_size=%s: want a size of at least 16M (suffixes K, M, G)\n",
			s);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

static int add_fuse_opt(struct options *o, const char *opt)
{
	size_t len = strlen(o->fuse_opts);

	if (len + strlen(opt) + 2 > sizeof(o->fuse_opts))
		return -E2BIG;
	snprintf(o->fuse_opts + len, sizeof(o->fuse_opts) - len, "%s%s", len ? "," : "", opt);
	return 0;
}

static bool ignored_opt(const char *opt)
{
	static const char *const ignored[] = { "defaults", "auto", "noauto", "nofail",
					       "_netdev", "user", "users", "nouser" };

	for (size_t i = 0; i < DS_ARRAY_SIZE(ignored); i++)
		if (strcmp(opt, ignored[i]) == 0)
			return true;
	return strncmp(opt, "x-", 2) == 0 || strncmp(opt, "comment=", 8) == 0;
}

/* VFS options libfuse 3 refuses ("unknown option") but mount(8) passes on
 * from fstab: the kernel never updates a FUSE inode's atime (S_NOATIME), so
 * the atime ones change nothing. */
static bool no_effect_opt(const char *opt)
{
	static const char *const no_effect[] = { "relatime", "norelatime", "strictatime",
						  "nostrictatime", "lazytime", "nolazytime",
						  "diratime", "nodiratime", "silent", "loud" };

	for (size_t i = 0; i < DS_ARRAY_SIZE(no_effect); i++)
		if (strcmp(opt, no_effect[i]) == 0)
			return true;
	return false;
}

static int parse_opts(struct options *o, char *list)
{
	char *save = NULL;

	for (char *opt = strtok_r(list, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		int r = 0;

		if (strncmp(opt, "config=", 7) == 0) {
			free(o->config);
			o->config = strdup(opt + 7);
		} else if (strncmp(opt, "keyfile=", 8) == 0) {
			free(o->keyfile);
			o->keyfile = strdup(opt + 8);
		} else if (strncmp(opt, "owner=", 6) == 0) {
			if (ds_name_authid(opt + 6) < 0) {
				fprintf(stderr, "mount.dsfs: owner=%s: not a PBS auth id (user@realm or user@realm!token)\n",
					opt + 6);
				return -EINVAL;
			}
			free(o->owner);
			o->owner = strdup(opt + 6);
		} else if (strncmp(opt, "cache_size=", 11) == 0) {
			r = parse_size(opt + 11, &o->cache_size);
		} else if (strcmp(opt, "verify=first") == 0 || strcmp(opt, "verify=always") == 0) {
			o->verify_always = strcmp(opt, "verify=always") == 0;
		} else if (strncmp(opt, "verify=", 7) == 0) {
			fprintf(stderr, "mount.dsfs: %s: want verify=first or verify=always\n", opt);
			return -EINVAL;
		} else if (strncmp(opt, "spin=", 5) == 0) {
			char *end;
			unsigned long v = strtoul(opt + 5, &end, 10);

			if (!opt[5] || *end || v > MAX_SPIN_US) {
				fprintf(stderr, "mount.dsfs: %s: want spin=0..%d (microseconds)\n", opt,
					MAX_SPIN_US);
				return -EINVAL;
			}
			o->spin_us = (unsigned)v;
		} else if (strncmp(opt, "max_read=", 9) == 0) {
			/* Ours to give libfuse twice (see dsfs_max_read): passed
			 * on as it was, it failed INIT unless it was 1 MiB. The
			 * kernel reads at least a page and at most 1 MiB (the
			 * max_write that sets its max_pages) at a time. */
			char *end;
			unsigned long v = strtoul(opt + 9, &end, 10);

			if (opt[9] < '0' || opt[9] > '9' || *end || v < 4096 ||
			    v > DSFS_MAX_READ_DEFAULT) {
				fprintf(stderr, "mount.dsfs: %s: want max_read=4096..%u (bytes)\n", opt,
					DSFS_MAX_READ_DEFAULT);
				return -EINVAL;
			}
			dsfs_max_read = (unsigned)v;
		} else if (strcmp(opt, "ro") == 0 || strcmp(opt, "rw") == 0) {
			/* The last one wins, as for mount(8); main passes "ro" on. */
			o->read_only = opt[1] == 'o';
		} else if (ignored_opt(opt) || no_effect_opt(opt)) {
			continue;
		} else {
			r = add_fuse_opt(o, opt);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* Returns 0 to go on, 1 for "exit 0" (help/version), -1 for a usage error. */
static int parse_args(struct options *o, int argc, char **argv)
{
	int positional = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 1;
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			printf("mount.dsfs %s (libfuse %s)\n", DSFS_VERSION, fuse_pkgversion());
			return 1;
		} else if (strcmp(a, "-o") == 0 && i + 1 < argc) {
			if (parse_opts(o, argv[++i]) < 0)
				return -1;
		} else if (strncmp(a, "-o", 2) == 0 && a[2]) {
			char *copy = strdup(a + 2);
			int r = copy ? parse_opts(o, copy) : -1;

			free(copy);
			if (r < 0)
				return -1;
		} else if (strcmp(a, "-f") == 0) {
			o->foreground = true;
		} else if (strcmp(a, "-d") == 0) {
			o->foreground = o->debug = true;
		} else if (strcmp(a, "-n") == 0 || strcmp(a, "-s") == 0 || strcmp(a, "-v") == 0) {
			/* mount(8): no mtab, sloppy, verbose */
		} else if (a[0] == '-') {
			fprintf(stderr, "mount.dsfs: unknown option %s\n", a);
			return -1;
		} else if (positional == 0) {
			o->source = a;
			positional++;
		} else if (positional == 1) {
			o->mountpoint = a;
			positional++;
		} else {
			fprintf(stderr, "mount.dsfs: too many arguments\n");
			return -1;
		}
	}
	if (positional != 2) {
		usage(stderr);
		return -1;
	}
	return 0;
}

/* path made absolute (symlinks kept: the watcher follows the name): the
 * daemon chdirs to / and re-reads the config by this path. */
static int absolute_path(const char *path, char *buf, size_t len)
{
	char cwd[4096];

	if (path[0] != '/' && !getcwd(cwd, sizeof(cwd)))
		return -errno;
	if (ds_path_fmt(buf, len, "%s%s%s", path[0] == '/' ? "" : cwd, path[0] == '/' ? "" : "/",
			path) < 0) {
		fprintf(stderr, "mount.dsfs: %s: path too long\n", path);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Decides what SOURCE names (see usage). */
static int classify_source(const struct options *o, struct vfs_options *vo, char *dirbuf,
			   size_t dirlen)
{
	const char *config = o->config ? o->config : DS_CONFIG_DEFAULT_PATH;
	/* The datastore's name in directory mode (vo points to it). */
	static char dir_name[300];
	struct stat st;
	size_t n;
	int r;

	if (stat(o->source, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (strchr(o->source, '/') || !ds_config_has_store(config, o->source))) {
		char probe[4200];

		if (!realpath(o->source, dirbuf))
			return -errno;
		snprintf(probe, sizeof(probe), "%s/.chunks", dirbuf);
		if (stat(probe, &st) < 0 || !S_ISDIR(st.st_mode)) {
			fprintf(stderr, "mount.dsfs: %s: not a datastore (no .chunks)\n", o->source);
			return -ENOENT;
		}
		r = ds_config_dir_name(config, dirbuf, dir_name, sizeof(dir_name));
		if (r < 0)
			return r;
		if (r == 1) {
			/* A configured datastore: mounted by name, maintenance
			 * mode and all, as PBS knows it. */
			vo->store_name = dir_name;
			vo->config_path = dirbuf;
			return absolute_path(config, dirbuf, dirlen);
		}
		vo->store_dir = dirbuf;
		vo->store_dir_name = dir_name;
		return 0;
	}
	if (stat(o->source, &st) == 0 && S_ISREG(st.st_mode)) {
		vo->config_path = dirbuf;
		return absolute_path(o->source, dirbuf, dirlen);
	}
	/* A datastore.cfg that does not exist yet: PBS reads it as no
	 * datastores (a host before its first one), so the mount shows none
	 * and follows the file once it is made. Only a name ending in .cfg
	 * is taken for one: a missing directory is an error, and a bare word
	 * that is a configured datastore (a name may hold a dot) is that. */
	n = strlen(o->source);
	if (stat(o->source, &st) < 0 && errno == ENOENT && n > 4 &&
	    strcmp(o->source + n - 4, ".cfg") == 0 && o->source[n - 5] != '/' &&
	    (strchr(o->source, '/') || !ds_config_has_store(config, o->source))) {
		vo->config_path = dirbuf;
		return absolute_path(o->source, dirbuf, dirlen);
	}
	if (ds_name_datastore(o->source) == 0) {
		vo->store_name = o->source;
		vo->config_path = dirbuf;
		return absolute_path(config, dirbuf, dirlen);
	}
	fprintf(stderr, "mount.dsfs: %s: no such datastore, directory or config file\n",
		o->source);
	return -ENOENT;
}

struct watcher {
	struct vfs *v;
	struct fuse_session *se;
	int stopfd;
	pthread_t thread;
};

static void inval(void *ctx, uint64_t ino, uint64_t parent, const char *name)
{
	struct fuse_session *se = ctx;

	/* -ENOENT only means the kernel does not know the inode. */
	if (ino)
		fuse_lowlevel_notify_inval_inode(se, ino, 0, 0);
	if (parent && name)
		fuse_lowlevel_notify_inval_entry(se, parent, name, strlen(name));
}

/* Follows datastore.cfg (inotify, ConfigVersionCache generation) and the
 * mount table (backing disks), re-applying refusals and invalidating what
 * the kernel cached for a datastore whose access changed. */
static void *watch(void *arg)
{
	struct watcher *w = arg;
	int mfd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);

	for (;;) {
		struct pollfd p[3] = {
			{ .fd = w->stopfd, .events = POLLIN },
			{ .fd = vfs_config_fd(w->v), .events = POLLIN },
			{ .fd = mfd, .events = POLLPRI },
		};
		int n = poll(p, 3, 1000);

		if (n > 0 && (p[0].revents & POLLIN))
			break;
		if (n > 0 && (p[2].revents & (POLLPRI | POLLERR))) {
			/* mountinfo changed: re-arm by reading it through. */
			char buf[4096];

			lseek(mfd, 0, SEEK_SET);
			while (read(mfd, buf, sizeof(buf)) > 0)
				;
		}
		/* Every second too, for generation bumps in shared memory,
		 * which inotify cannot see. */
		vfs_refresh(w->v, inval, w->se);
	}
	if (mfd >= 0)
		close(mfd);
	return NULL;
}

/* The mount options libfuse always gets, fsname= being SOURCE as given.
 * libfuse splits an option list at commas and takes a backslash as an
 * escape (fuse_opt.c), so both are escaped: a datastore path with a comma
 * was cut there ("unknown option"). */
static int fsname_opt(const char *source, char *buf, size_t len)
{
	char rest[80];
	int rlen = snprintf(rest, sizeof(rest), ",subtype=dsfs,max_read=%u,default_permissions",
			    dsfs_max_read);
	size_t n = 0;

	for (const char *p = "fsname="; *p; p++)
		buf[n++] = *p;
	for (const char *s = source; *s; s++) {
		if (n + 2 + (size_t)rlen + 1 > len)
			return -ENAMETOOLONG;
		if (*s == ',' || *s == '\\')
			buf[n++] = '\\';
		buf[n++] = *s;
	}
	memcpy(buf + n, rest, (size_t)rlen + 1);
	return 0;
}

static void syslog_sink(enum ds_log_level level, const char *msg, void *ud)
{
	(void)ud;
	syslog((int)level, "%s", msg);
}

int main(int argc, char **argv)
{
	struct options o = { .cache_size = DEFAULT_CACHE_SIZE };
	struct vfs_options vo = { 0 };
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	struct ds_crypt *crypt = NULL;
	struct watcher w = { .stopfd = -1 };
	struct vfs *v = NULL;
	char dirbuf[4096], fsname[2 * 4096 + 128], mountpoint[PATH_MAX];
	struct stat st;
	int r, ret = 1;

	/* Two malloc arenas instead of one per thread (up to 8 per core): the
	 * chunk loads free multi-MiB blocks on many threads, and every arena
	 * keeps its own freed pages resident. Measured during an rsync restore
	 * (scripts/bench (5)): peak RSS 346 MiB with the default, 314 MiB
	 * with two, at the same speed. */
	mallopt(M_ARENA_MAX, 2);
	/* Every open file holds a descriptor in the daemon (its snapshot
	 * lock; a pxar file its archive's too), so the soft limit of open
	 * files, often 1024, was reached by a program holding a few hundred
	 * files open (EMFILE) while the hard limit allowed far more. The
	 * daemon polls, never selects, so a large limit costs nothing. */
	ds_raise_fd_limit(RLIM_INFINITY);
	ds_log_set_ident("mount.dsfs");
	r = parse_args(&o, argc, argv);
	if (r != 0)
		return r > 0 ? 0 : 2;
	r = o.keyfile ? ds_keyfile_load(o.keyfile, getenv("DSFS_KEY_PASSWORD"), &crypt) : 0;
	if (r < 0) {
		/* The loader logs every other reason; this one is ours to name. */
		if (r == -ENOKEY)
			fprintf(stderr, "mount.dsfs: %s: key is password-protected; set DSFS_KEY_PASSWORD\n",
				o.keyfile);
		else
			fprintf(stderr, "mount.dsfs: %s: cannot load key\n", o.keyfile);
		goto out;
	}
	if (o.read_only && add_fuse_opt(&o, "ro") < 0)
		goto out;
	if (classify_source(&o, &vo, dirbuf, sizeof(dirbuf)) < 0)
		goto out;
	/* Absolute, as libfuse's own command line parser makes it: libfuse
	 * unmounts by this name when a signal stops the daemon, after
	 * fuse_daemonize's chdir("/"), and a relative name then left a dead
	 * mount (ENOTCONN) behind. */
	if (!realpath(o.mountpoint, mountpoint)) {
		fprintf(stderr, "mount.dsfs: %s: %s\n", o.mountpoint, strerror(errno));
		goto out;
	}
	/* The root is a directory, and the kernel takes the root's type
	 * from the mount point's: on a file it mounted, and every access,
	 * the root's first getattr on, failed with EIO. */
	if (stat(mountpoint, &st) == 0 && !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "mount.dsfs: %s: %s\n", o.mountpoint, strerror(ENOTDIR));
		goto out;
	}
	o.mountpoint = mountpoint;
	vo.source = o.source;
	vo.crypt = crypt;
	vo.read_only = o.read_only;
	vo.track_operations = true;
	vo.cache_size = o.cache_size;
	vo.verify_always = o.verify_always;
	vo.owner = o.owner;
	if (vfs_new(&vo, &v) < 0)
		goto out;

	/* 1 MiB reads: a quarter chunk per request instead of 128 KiB. Always
	 * default_permissions: dsfs checks no modes itself, so with
	 * allow_other alone every user would read every file (a 0600
	 * /etc/shadow in a host backup). */
	if (fsname_opt(o.source, fsname, sizeof(fsname)) < 0) {
		fprintf(stderr, "mount.dsfs: %s: source too long\n", o.source);
		goto out;
	}
	if (fuse_opt_add_arg(&args, argv[0]) < 0 || fuse_opt_add_arg(&args, "-o") < 0 ||
	    fuse_opt_add_arg(&args, fsname) < 0 ||
	    (o.fuse_opts[0] && (fuse_opt_add_arg(&args, "-o") < 0 ||
				fuse_opt_add_arg(&args, o.fuse_opts) < 0)) ||
	    (o.debug && fuse_opt_add_arg(&args, "-d") < 0))
		goto out;
	if (o.debug)
		ds_log_set_level(DS_LOG_DEBUG);
	se = fuse_session_new(&args, &dsfs_ops, sizeof(dsfs_ops), v);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) < 0)
		goto out;
	if (fuse_session_mount(se, o.mountpoint) < 0)
		goto out_handlers;
	/* The parent exits only now, with the mount in place. */
	if (fuse_daemonize(o.foreground) < 0)
		goto out_unmount;
	if (!o.foreground) {
		openlog("mount.dsfs", LOG_PID, LOG_DAEMON);
		ds_log_set_sink(syslog_sink, NULL);
	}
	vfs_set_notify(v, inval, se);
	ds_info("mounted %s on %s", o.source, o.mountpoint);
	w.v = v;
	w.se = se;
	w.stopfd = eventfd(0, EFD_CLOEXEC);
	if (w.stopfd < 0 || pthread_create(&w.thread, NULL, watch, &w) != 0) {
		ds_err("cannot start the config watcher");
		goto out_unmount;
	}
	if (o.spin_us) {
		r = loop_run(se, MAX_THREADS, o.spin_us);
	} else {
		struct fuse_loop_config *lc = fuse_loop_cfg_create();

		fuse_loop_cfg_set_max_threads(lc, MAX_THREADS);
		r = fuse_session_loop_mt(se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	/* A signal (SIGTERM from systemd or kill, SIGINT, SIGHUP) is a
	 * requested stop: the loop returns its number. */
	if (r > 0)
		ds_info("stopping on signal %d", r);
	ret = r >= 0 ? 0 : 1;
	eventfd_write(w.stopfd, 1);
	pthread_join(w.thread, NULL);
	ds_info("unmounted %s", o.mountpoint);
out_unmount:
	fuse_session_unmount(se);
out_handlers:
	fuse_remove_signal_handlers(se);
out:
	if (w.stopfd >= 0)
		close(w.stopfd);
	if (se)
		fuse_session_destroy(se);
	vfs_free(v);
	ds_crypt_free(crypt);
	fuse_opt_free_args(&args);
	free(o.config);
	free(o.keyfile);
	free(o.owner);
	return ret;
}
