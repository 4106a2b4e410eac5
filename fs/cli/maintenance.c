/* dsfs maintenance, dsfs status: a datastore's maintenance mode as PBS sets
 * it (spec §6.2, §6.3, §6.6) and what dsfs sees of the store. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cache/config_cache.h"
#include "fs/cli/cli.h"
#include "store/activeops.h"
#include "store/config.h"
#include "store/datastore.h"
#include "store/names.h"
#include "store/util.h"

/* PBS's config lock timeout (spec §1.7.2). */
#define CONFIG_LOCK_TIMEOUT_MS 10000

/* Splits path into its directory and base name (malloc'ed copies). */
static int split_path(const char *path, char **ret_dir, char **ret_base)
{
	char *a = strdup(path), *b = strdup(path), *dir = NULL, *base = NULL;

	if (a && b) {
		dir = strdup(dirname(a));
		base = strdup(basename(b));
	}
	free(a);
	free(b);
	if (!dir || !base) {
		free(dir);
		free(base);
		return -ENOMEM;
	}
	*ret_dir = dir;
	*ret_base = base;
	return 0;
}

/* Takes PBS's datastore.cfg lock: exclusive flock on .datastore.lck, waiting
 * up to 10 s. Returns the descriptor (closing it releases the lock). */
static int config_lock(const char *lock_path)
{
	/* PBS's /etc/proxmox-backup is the backup user's: a link there is
	 * not followed (root would give its target to that user). */
	int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK,
		      0660);
	struct stat st;

	if (fd < 0) {
		int r = -errno;

		/* No directory: no datastore.cfg either (the caller says so). */
		if (r != -ENOENT)
			fprintf(stderr, "dsfs: %s: cannot open lock file: %s\n", lock_path,
				strerror(errno));
		return r;
	}
	/* PBS's owner and mode. PBS creates it with open_backup_lockfile
	 * (backup:backup, 0660), and its proxy, running as backup, opens it
	 * read-write to lock the config: one made by root (0640 under a usual
	 * umask) fails every config change the proxy makes. One an older dsfs
	 * made is given back. Not as root, nothing is chowned. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		ds_give_to_backup(fd, 0660, lock_path);
	for (int waited = 0;; waited += 10) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			int r = -errno;

			fprintf(stderr, "dsfs: %s: cannot lock: %s\n", lock_path, strerror(errno));
			close(fd);
			return r;
		}
		if (waited >= CONFIG_LOCK_TIMEOUT_MS)
			break;
		poll(NULL, 0, 10);
	}
	fprintf(stderr, "dsfs: %s: still locked after 10 s (is a PBS task changing the config?)\n",
		lock_path);
	close(fd);
	return -ETIMEDOUT;
}

/* Atomically replaces config_path with text, keeping the old file's mode
 * and owner (PBS: root:backup 0640). The new file gets them before it is
 * renamed into place: PBS's proxy (group backup) must never find a
 * datastore.cfg it cannot read, not even for a moment, and one whose owner
 * cannot be given is not put in place at all. *ret_replaced tells whether
 * the file was replaced. Prints the reason of a failure. */
static int save_config(const char *config_path, const char *text, size_t len, bool *ret_replaced)
{
	char *dir = NULL, *base = NULL;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	struct stat old;
	int dirfd = -1, r;

	*ret_replaced = false;
	r = split_path(config_path, &dir, &base);
	if (r < 0)
		goto fail;
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0 || fstatat(dirfd, base, &old, 0) < 0) {
		r = -errno;
		goto fail;
	}
	/* Only a file that would not be ours as created is chowned: anyone
	 * but root can only chown to themselves. */
	if (old.st_uid != geteuid() || old.st_gid != getegid()) {
		uid = old.st_uid;
		gid = old.st_gid;
	}
	r = ds_replace_file_owned_at(dirfd, base, text, len, old.st_mode & 07777, uid, gid, true);
	if (r < 0)
		goto fail;
	*ret_replaced = true;
	goto out;
fail:
	fprintf(stderr, "dsfs: %s: cannot save: %s\n", config_path, strerror(-r));
out:
	if (dirfd >= 0)
		close(dirfd);
	free(dir);
	free(base);
	return r;
}

/* PBS's proxy: its pid file, and the control socket of that pid (an
 * abstract socket, always under this prefix: proxmox-daemon's
 * command_socket::path_from_pid). */
#define PROXY_PID_FILE "/run/proxmox-backup/proxy.pid"
#define CONTROL_SOCKET_FMT "/run/proxmox-backup/control-%ld.sock"

/* Tells a running PBS proxy to look at store's maintenance mode again, as
 * PBS's own API does after changing it: the proxy keeps a datastore it has
 * opened (its .lock, its chunk directory) cached, and only this command
 * makes it drop an idle one put offline, unmount or delete, so that the
 * disk can be unmounted (spec §6.7). The generation bump alone does not:
 * the proxy re-reads the config at its next use of the store, and until
 * then holds it open. Best effort, as PBS's: no proxy, nothing to tell;
 * a proxy that does not answer within 2 s is given up on. */
static void notify_proxy(const char *store)
{
	const char *pid_file = getenv("DSFS_PROXY_PID_FILE");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 2 };
	char cmd[256], reply[256];
	uint8_t *buf = NULL;
	size_t len, got = 0;
	socklen_t salen;
	long pid;
	char *end;
	int fd, n;

	if (ds_read_file_at(AT_FDCWD, pid_file && *pid_file ? pid_file : PROXY_PID_FILE, 64,
			    &buf, &len) < 0)
		return; /* PBS is not running here */
	pid = strtol((const char *)buf, &end, 10);
	n = end != (char *)buf && pid > 0 && pid <= INT32_MAX && (*end == '\0' || *end == '\n');
	free(buf);
	if (!n)
		return;
	/* sun_path[0] = '\0': abstract; the name is not NUL-terminated. */
	n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, CONTROL_SOCKET_FMT, pid);
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
	/* A datastore name is a SAFE_ID: nothing in it needs JSON escaping. */
	n = snprintf(cmd, sizeof(cmd), "{\"command\":\"update-datastore-cache\",\"args\":\"%s\"}\n",
		     store);
	if (n < 0 || (size_t)n >= sizeof(cmd))
		return;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, salen) < 0 ||
	    send(fd, cmd, (size_t)n, MSG_NOSIGNAL) != n || shutdown(fd, SHUT_WR) < 0)
		goto out;
	/* One line: "OK: <json>" or "ERROR: <message>". */
	while (got < sizeof(reply) - 1 && !memchr(reply, '\n', got)) {
		ssize_t k = read(fd, reply + got, sizeof(reply) - 1 - got);

		if (k <= 0)
			break;
		got += (size_t)k;
	}
	reply[got] = '\0';
	reply[strcspn(reply, "\n")] = '\0';
	if (strncmp(reply, "ERROR: ", 7) == 0)
		fprintf(stderr, "dsfs: warning: PBS proxy: %s\n", reply + 7);
out:
	close(fd);
}

/* Whether the datastore is at its path: a store whose directory is gone,
 * or whose disk is not mounted there (no .chunks), looked as fine as any
 * other (only removable stores had a "mounted:" line). */
static void print_present(const char *base)
{
	char chunks[4096];
	struct stat st;

	if (stat(base, &st) < 0)
		printf("present: no (%s)\n", strerror(errno));
	else if (!S_ISDIR(st.st_mode))
		printf("present: no (%s)\n", strerror(ENOTDIR));
	else if (ds_path_fmt(chunks, sizeof(chunks), "%s/.chunks", base) < 0 ||
		 stat(chunks, &st) < 0 || !S_ISDIR(st.st_mode))
		printf("present: no (no .chunks: not a datastore, or its disk is not mounted)\n");
	else
		printf("present: yes\n");
}

static void usage_maintenance(FILE *f)
{
	fputs("Usage: dsfs maintenance [--config FILE] STORE MODE [--message TEXT]\n"
	      "       dsfs maintenance [--config FILE] STORE clear\n"
	      "MODE: read-only, offline, unmount, delete or s3-refresh. Changes\n"
	      "datastore.cfg under PBS's config lock and tells a running PBS to reload.\n"
	      "Once the mode is 'delete', it cannot be changed.\n",
	      f);
}

int cmd_maintenance(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "message", required_argument, NULL, 'm' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *config = NULL, *message = NULL, *store, *shm;
	char lock_path[4096], *dir = NULL, *base = NULL, *text = NULL;
	struct ds_config *cfg = NULL;
	int c, mode, lockfd = -1, bump, r;
	bool replaced, usage = false, notify = false;
	size_t len;

	while ((c = getopt_long(argc, argv, "m:c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			message = optarg;
			break;
		case 'c':
			config = optarg;
			break;
		case 'h':
			usage_maintenance(stdout);
			return DS_EXIT_OK;
		default:
			usage_maintenance(stderr);
			return DS_EXIT_USAGE;
		}
	}
	if (argc - optind != 2) {
		usage_maintenance(stderr);
		return DS_EXIT_USAGE;
	}
	store = argv[optind];
	if (strcmp(argv[optind + 1], "clear") == 0) {
		mode = DS_MAINT_NONE;
		if (message) {
			fputs("dsfs: --message needs a maintenance mode, not 'clear'\n", stderr);
			return DS_EXIT_USAGE;
		}
	} else {
		mode = ds_maintenance_parse(argv[optind + 1]);
		if (mode <= 0) {
			fprintf(stderr, "dsfs: invalid maintenance mode '%s' (want read-only, offline, "
					"unmount, delete, s3-refresh or clear)\n",
				argv[optind + 1]);
			return DS_EXIT_USAGE;
		}
	}
	/* Checked before the config is locked and read: a bad message is a
	 * usage error whatever the config (a missing or locked one made it
	 * status 1, after up to 10 s). */
	if (message && ds_name_maintenance_message(message) < 0) {
		fprintf(stderr, "dsfs: --message: invalid maintenance message (at most 64 "
				"characters of UTF-8, no control characters)\n");
		return DS_EXIT_USAGE;
	}
	if (!config) {
		config = DS_CONFIG_DEFAULT_PATH;
		snprintf(lock_path, sizeof(lock_path), "%s", DS_CONFIG_LOCK_PATH);
	} else {
		r = split_path(config, &dir, &base);
		if (r == 0)
			r = ds_path_fmt(lock_path, sizeof(lock_path), "%s/.datastore.lck", dir);
		free(dir);
		free(base);
		if (r < 0) {
			fprintf(stderr, "dsfs: %s: %s\n", config, strerror(-r));
			return DS_EXIT_FAIL;
		}
	}

	lockfd = config_lock(lock_path);
	if (lockfd == -ENOENT)
		cli_print_not_found(store, config);
	if (lockfd < 0)
		return DS_EXIT_FAIL;
	r = ds_config_load(config, &cfg);
	if (r < 0) {
		/* A parse error (with its line) and a file too large are
		 * logged with their reason. */
		if (r != -EINVAL && r != -EFBIG)
			fprintf(stderr, "dsfs: %s: cannot load: %s\n", config, strerror(-r));
		goto out;
	}
	r = ds_config_set_maintenance(cfg, store, (enum ds_maintenance)mode, message);
	if (r == -ENOENT) {
		cli_print_not_found(store, config);
		goto out;
	}
	if (r < 0) {
		/* -EPERM (mode stays delete), -EINVAL (bad message): logged */
		usage = r == -EINVAL;
		goto out;
	}
	r = ds_config_format(cfg, &text, &len);
	if (r < 0)
		goto out;
	r = save_config(config, text, len, &replaced);
	if (!replaced)
		goto out;
	/* Still under the lock, as PBS's save_config does: a PBS lookup that
	 * takes the lock next sees the new generation with the new file. */
	shm = getenv("DSFS_CONFIG_VERSIONS");
	bump = ds_config_generation_bump(shm && *shm ? shm : DS_CONFIG_VERSIONS_PATH, false);
	if (bump < 0 && bump != -ENOENT) /* ENOENT: PBS is not running here */
		fprintf(stderr, "dsfs: warning: cannot notify PBS of the change (%s); "
				"it will notice within 60 s\n",
			strerror(-bump));
	notify = true;
out:
	close(lockfd);
	/* Not under the config lock, which the proxy may take to look. */
	if (notify)
		notify_proxy(store);
	free(text);
	ds_config_free(cfg);
	if (usage)
		return DS_EXIT_USAGE;
	return r < 0 ? DS_EXIT_FAIL : DS_EXIT_OK;
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const struct ds_datastore_cfg *dc = NULL;
	const char *config = NULL, *ops_dir;
	struct cli_store s = { 0 };
	int64_t nread = 0, nwrite = 0;
	enum ds_maintenance m;
	char msg[512]; /* 64 characters of up to 4 bytes */
	int c, r;

	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			puts("Usage: dsfs status [--config FILE] DATASTORE\n"
			     "Prints name, path, whether the datastore is there, maintenance mode,\n"
			     "removable device and mount state,\n"
			     "and PBS's active-operation counts, one 'key: value' per line.");
			return DS_EXIT_OK;
		default:
			return DS_EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		fputs("Usage: dsfs status [--config FILE] DATASTORE\n", stderr);
		return DS_EXIT_USAGE;
	}
	if (cli_store_open(argv[optind], config, &s) < 0)
		return DS_EXIT_FAIL;
	if (s.cfg)
		dc = ds_config_find(s.cfg, ds_datastore_name(s.ds));
	m = ds_datastore_maintenance(s.ds);
	printf("name: %s\n", ds_datastore_name(s.ds));
	printf("path: %s\n", ds_datastore_base(s.ds));
	print_present(ds_datastore_base(s.ds));
	printf("maintenance-mode: %s\n", m == DS_MAINT_NONE ? "none" : ds_maintenance_name(m));
	/* As PBS shows it, and as refusals say it: percent-decoded. */
	ds_datastore_maintenance_message(s.ds, msg, sizeof(msg));
	if (*msg)
		printf("maintenance-message: %s\n", msg);
	if (dc && dc->backing_device) {
		printf("removable: yes\n");
		printf("backing-device: %s\n", dc->backing_device);
		printf("mounted: %s\n",
		       ds_backing_device_mounted(dc->name, dc->backing_device, NULL) ? "yes" : "no");
	} else {
		printf("removable: no\n");
	}
	ops_dir = getenv("DSFS_ACTIVEOPS_DIR");
	r = ds_activeops_get(ops_dir && *ops_dir ? ops_dir : DS_ACTIVEOPS_DIR,
			     ds_datastore_name(s.ds), &nread, &nwrite);
	if (r < 0) {
		fprintf(stderr, "dsfs: %s: cannot read active operations: %s\n",
			ds_datastore_name(s.ds), strerror(-r));
	} else {
		printf("active-read: %" PRId64 "\n", nread);
		printf("active-write: %" PRId64 "\n", nwrite);
	}
	cli_store_close(&s);
	return r < 0 ? DS_EXIT_FAIL : DS_EXIT_OK;
}
