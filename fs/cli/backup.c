/* dsfs init, dsfs backup, dsfs key create. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs/cli/cli.h"
#include "store/backup.h"
#include "store/chunkstore.h"
#include "store/crypt.h"
#include "store/datastore.h"
#include "store/hierarchy.h"
#include "store/index.h"
#include "store/names.h"
#include "store/pxar_encoder.h"
#include "store/pxar_exclude.h"
#include "store/util.h"

static void init_progress(int pct, void *ud)
{
	(void)ud;
	if (pct % 10 == 0)
		fprintf(stderr, "\rcreating chunk directories: %3d%%%s", pct, pct == 100 ? "\n" : "");
}

int cmd_init(int argc, char **argv)
{
	int r;

	if (argc != 2 || argv[1][0] == '-') {
		if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
			puts("Usage: dsfs init DIR\nCreates an empty datastore in DIR as PBS does.");
			return DS_EXIT_OK;
		}
		fputs("Usage: dsfs init DIR\n", stderr);
		return DS_EXIT_USAGE;
	}
	r = ds_chunkstore_create(argv[1], isatty(STDERR_FILENO) ? init_progress : NULL, NULL);
	if (r < 0) {
		fprintf(stderr, "dsfs: %s: cannot create datastore: %s\n", argv[1], strerror(-r));
		return DS_EXIT_FAIL;
	}
	return DS_EXIT_OK;
}

/* The signal that interrupted the backup (SIGINT, SIGTERM, SIGHUP), or 0:
 * the backup stops at its next step and its unfinished snapshot is removed,
 * as PBS removes a backup that fails. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

static const int stop_signals[] = { SIGINT, SIGTERM, SIGHUP };

/* Catches the stop signals not ignored (a nohup'd backup keeps ignoring
 * SIGHUP); a second one acts as it would have (SA_RESETHAND). No
 * SA_RESTART: a read from a stalled pipe returns. */
static void catch_stop_signals(struct sigaction old[3])
{
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESETHAND };

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < 3; i++) {
		sigaction(stop_signals[i], NULL, &old[i]);
		if (old[i].sa_handler != SIG_IGN)
			sigaction(stop_signals[i], &sa, NULL);
	}
}

static void restore_stop_signals(const struct sigaction old[3])
{
	for (size_t i = 0; i < 3; i++)
		sigaction(stop_signals[i], &old[i], NULL);
}

/* Streams fd (the file src, size bytes when opened; 0: a pipe or device)
 * into a new archive, reporting its errors. */
static int stream_archive(struct ds_backup *b, const char *name, const char *src, int fd,
			  uint64_t size, size_t avg)
{
	struct ds_archive_writer *aw;
	size_t bufsz = 4 * DS_MIB;
	uint64_t total = 0;
	uint8_t *buf;
	int r;

	if (ds_archive_kind(name) == DS_ARCHIVE_FIDX)
		r = ds_backup_fixed_begin(b, name, size, DS_FIDX_DEFAULT_CHUNK_SIZE, &aw);
	else
		r = ds_backup_dynamic_begin(b, name, avg, &aw);
	if (r < 0)
		return r;
	buf = malloc(bufsz);
	if (!buf) {
		ds_archive_abort(aw);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t n = read(fd, buf, bufsz);

		if (n < 0 && errno == EINTR && !interrupted)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
		/* An image's index is sized when the file is opened; a file
		 * that grows or shrinks meanwhile is not the image it was
		 * (PBS's client fails it too: "unexpected file size"). */
		if (size && ds_archive_kind(name) == DS_ARCHIVE_FIDX && total > size)
			break;
		r = ds_archive_write(aw, buf, (size_t)n);
		if (r < 0)
			break;
	}
	free(buf);
	if (r == 0 && total == 0 && ds_archive_kind(name) == DS_ARCHIVE_FIDX) {
		fprintf(stderr, "dsfs: %s: empty: an image (%s) needs at least one byte\n", src,
			name);
		ds_archive_abort(aw);
		return -EINVAL;
	}
	if (r == 0 && size && ds_archive_kind(name) == DS_ARCHIVE_FIDX && total != size) {
		fprintf(stderr, "dsfs: %s: changed size while read (%llu bytes when opened, "
				"%s%llu read): %s not written\n",
			src, (unsigned long long)size, total > size ? "more than " : "",
			(unsigned long long)(total > size ? size : total), name);
		ds_archive_abort(aw);
		return -EIO;
	}
	if (r == 0)
		r = ds_archive_finish(aw, 0);
	else
		ds_archive_abort(aw);
	if (r < 0)
		fprintf(stderr, "dsfs: %s: %s\n", name, strerror(-r));
	return r;
}

/* A sink of the pxar encoder: an archive writer, and the first error
 * writing to it. The encoder logs the reasons of its own failures, not
 * those of its sinks: backup_pxar_dir tells them apart by it. */
struct pxar_out {
	struct ds_archive_writer *aw;
	int err;
};

static int pxar_out_write(void *ctx, const void *buf, size_t len)
{
	struct pxar_out *o = ctx;
	int r = ds_archive_write(o->aw, buf, len);

	if (r < 0 && !o->err)
		o->err = r;
	return r;
}

/* The snapshot's catalog.pcat1.didx: one for all v1 pxar archives of a
 * backup (its root block lists each archive), written at the end. */
struct pxar_catalog_out {
	struct pxar_out out;
	struct ds_pxar_catalog *cat;
	struct ds_pxar_sink sink;
};

#define PXAR_CATALOG_NAME "catalog.pcat1.didx"
#define PXAR_CATALOG_AVG (512 * DS_KIB) /* as the PBS client */

static int pxar_catalog_finish(struct pxar_catalog_out *co)
{
	int r;

	if (!co->cat)
		return 0;
	r = ds_pxar_catalog_finish(co->cat);
	ds_pxar_catalog_free(co->cat);
	co->cat = NULL;
	if (r < 0) {
		ds_archive_abort(co->out.aw);
		co->out.aw = NULL;
		return r;
	}
	r = ds_archive_finish(co->out.aw, 0);
	co->out.aw = NULL;
	return r;
}

static void pxar_catalog_abort(struct pxar_catalog_out *co)
{
	ds_pxar_catalog_free(co->cat);
	ds_archive_abort(co->out.aw);
	co->cat = NULL;
	co->out.aw = NULL;
}

/* NAME=FILE: NAME copied into name (size bytes), *file pointing at FILE in
 * arg, which is left as it is (ps and /proc/PID/cmdline show the command
 * as given: it used to be cut at the '='). -EINVAL without a NAME. */
static int split_arg(const char *arg, char *name, size_t size, const char **file)
{
	const char *eq = strchr(arg, '=');
	size_t nl = eq ? (size_t)(eq - arg) : 0;

	if (!eq || nl == 0 || nl >= size)
		return -EINVAL;
	memcpy(name, arg, nl);
	name[nl] = '\0';
	*file = eq + 1;
	return 0;
}

/* Whether NAME=FILE backs up FILE as a tree: NAME.pxar and a directory. */
static bool is_tree(const char *name, const char *file)
{
	size_t nl = strlen(name);
	struct stat sb;

	return nl > 5 && strcmp(name + nl - 5, ".pxar") == 0 && stat(file, &sb) == 0 &&
	       S_ISDIR(sb.st_mode);
}

/* The pxar archive names NAME.pxar=DIR writes: NAME.pxar.didx, or split
 * NAME.mpxar.didx and NAME.ppxar.didx (pname). -EINVAL when they are no
 * valid archive names. */
static int pxar_names(const char *name, bool split, char mname[300], char pname[300])
{
	int stem = (int)(strlen(name) - strlen(".pxar"));
	int r;

	if (split) {
		r = ds_path_fmt(mname, 300, "%.*s.mpxar.didx", stem, name);
		if (r == 0)
			r = ds_path_fmt(pname, 300, "%.*s.ppxar.didx", stem, name);
	} else {
		r = ds_path_fmt(mname, 300, "%s.didx", name);
	}
	if (r < 0 || ds_name_archive(mname) < 0 || (split && ds_name_archive(pname) < 0))
		return -EINVAL;
	return 0;
}

/* NAME.pxar=DIR: encodes DIR into NAME.pxar.didx (v1, listed in the
 * catalog) or, split, into NAME.mpxar.didx + NAME.ppxar.didx (v2, no
 * catalog), as the PBS client does. */
static int backup_pxar_dir(struct ds_backup *b, const char *name, const char *dir, bool split,
			   size_t avg, const struct ds_pxar_encode_opts *opts,
			   struct pxar_catalog_out *co)
{
	struct pxar_out meta = { 0 }, pay = { 0 };
	struct ds_pxar_sink msink, psink;
	struct ds_pxar_encode_stats st;
	char mname[300], pname[300];
	bool logged = false;
	int r;

	r = pxar_names(name, split, mname, pname);
	if (r < 0) {
		fprintf(stderr, "dsfs: %s: not a valid archive name\n", name);
		return r;
	}
	if (!split && !co->cat) {
		co->sink = (struct ds_pxar_sink){ pxar_out_write, &co->out };
		r = ds_backup_dynamic_begin(b, PXAR_CATALOG_NAME, PXAR_CATALOG_AVG, &co->out.aw);
		if (r == 0)
			r = ds_pxar_catalog_new(&co->sink, &co->cat);
		if (r < 0)
			goto fail;
	}
	r = ds_backup_dynamic_begin(b, mname, avg, &meta.aw);
	if (r == 0 && split)
		r = ds_backup_dynamic_begin(b, pname, avg, &pay.aw);
	if (r < 0)
		goto fail;
	msink = (struct ds_pxar_sink){ pxar_out_write, &meta };
	psink = (struct ds_pxar_sink){ pxar_out_write, &pay };
	r = ds_pxar_encode_dir_cat(dir, &msink, split ? &psink : NULL, split ? NULL : co->cat,
				   mname, opts, &st);
	/* The encoder said why (the tree refused, a pattern, a file that
	 * cannot be read), except when a sink failed or memory ran out. */
	logged = r < 0 && r != -ENOMEM && !meta.err && !pay.err && !co->out.err;
	if (r < 0)
		goto fail;
	r = ds_archive_finish(meta.aw, 0);
	meta.aw = NULL;
	if (r == 0 && pay.aw)
		r = ds_archive_finish(pay.aw, 0);
	pay.aw = NULL;
	if (r < 0)
		goto fail;
	printf("%s: %llu files, %llu dirs, %llu symlinks, %llu hardlinks, %llu devices, "
	       "%llu fifos, %llu sockets, %.1f MiB of content, %llu skipped, %llu excluded\n",
	       mname, (unsigned long long)st.files, (unsigned long long)st.dirs,
	       (unsigned long long)st.symlinks, (unsigned long long)st.hardlinks,
	       (unsigned long long)st.devices, (unsigned long long)st.fifos,
	       (unsigned long long)st.sockets, (double)st.content_bytes / DS_MIB,
	       (unsigned long long)st.skipped, (unsigned long long)st.excluded);
	return 0;
fail:
	if (!logged)
		fprintf(stderr, "dsfs: %s: %s\n", dir, strerror(-r));
	ds_archive_abort(meta.aw);
	ds_archive_abort(pay.aw);
	return r;
}

/* NAME=FILE → server archive name and kind. Names without a known
 * extension become blobs (small files) — anything else must say .didx. */
static int archive_name(const char *name, uint64_t size, char *out, size_t outlen)
{
	int r;

	if (ds_archive_kind(name) > 0)
		r = ds_path_fmt(out, outlen, "%s", name);
	else if (ds_archive_server_name(name, out, outlen) < 0)
		r = ds_path_fmt(out, outlen, "%s.blob", name);
	else
		r = 0;
	if (r < 0 || ds_name_archive(out) < 0 || strcmp(out, "index.json.blob") == 0 ||
	    strcmp(out, "client.log.blob") == 0)
		return -EINVAL;
	if (ds_archive_kind(out) == DS_ARCHIVE_BLOB && size > DS_MAX_BLOB_SIZE)
		return -EFBIG;
	return 0;
}

/* The arguments argv[from..argc) as the command line has them: each one
 * NAME=FILE with NAME a valid archive name, a directory given as
 * NAME.pxar=DIR. These were found only while the snapshot was written
 * (after the archives before them), and all failures then were usage
 * errors, status 2: an empty pipe given as an image, a file that could not
 * be read. Now only these are (a FILE that is missing or unreadable is no
 * usage error: the loop that writes it reports it, status 1). Prints the
 * reason; -EINVAL. */
static int check_args(int argc, char **argv, int from, bool split)
{
	for (int i = from; i < argc; i++) {
		char name[300], out[300], pname[300];
		const char *file;
		struct stat sb;

		if (split_arg(argv[i], name, sizeof(name), &file) < 0) {
			fprintf(stderr, "dsfs: %s: want NAME=FILE\n", argv[i]);
			return -EINVAL;
		}
		if (is_tree(name, file)) {
			if (pxar_names(name, split, out, pname) < 0) {
				fprintf(stderr, "dsfs: %s: not a valid archive name\n", name);
				return -EINVAL;
			}
			continue;
		}
		if (stat(file, &sb) == 0 && S_ISDIR(sb.st_mode)) {
			fprintf(stderr, "dsfs: %s: a directory is backed up as NAME.pxar=DIR\n", file);
			return -EINVAL;
		}
		if (archive_name(name, 0, out, sizeof(out)) < 0) {
			fprintf(stderr, "dsfs: %s: not a valid archive name\n", name);
			return -EINVAL;
		}
	}
	return 0;
}

/* The server names the arguments argv[from..argc) write are checked
 * before the snapshot starts: two that write one name (root.pxar=a
 * root.pxar=b, x.conf=a x.conf.blob=b, or an explicit catalog.pcat1 beside
 * the v1 NAME.pxar=DIR archives whose catalog has that name; PBS's client
 * uploads no file of that name) used to fail with a bare "Invalid
 * argument" after the first archives were written, or made two writers
 * share one file. Arguments that are wrong otherwise are left to the loop
 * that writes them, which explains them. Prints the clash; -EINVAL. */
static int check_archive_names(int argc, char **argv, int from, bool split)
{
	const char *catalog_by = NULL;
	char(*names)[300] = calloc((size_t)(argc - from) * 2 + 1, sizeof(*names));
	const char **by = calloc((size_t)(argc - from) * 2 + 1, sizeof(*by));
	size_t n = 0;
	int r = 0;

	if (!names || !by) {
		free(names);
		free(by);
		return -ENOMEM;
	}
	for (int i = from; i < argc && r == 0; i++) {
		size_t first = n;
		const char *file;
		char name[300];

		if (split_arg(argv[i], name, sizeof(name), &file) < 0)
			continue;
		if (is_tree(name, file)) {
			if (pxar_names(name, split, names[n], names[n + 1]) == 0)
				n += split ? 2 : 1;
			if (!split)
				catalog_by = catalog_by ? catalog_by : argv[i];
		} else if (archive_name(name, 0, names[n], sizeof(*names)) == 0) {
			n++;
		}
		for (size_t k = first; k < n; k++)
			by[k] = argv[i];
		for (size_t k = first; k < n && r == 0; k++)
			for (size_t j = 0; j < first && r == 0; j++)
				if (strcmp(names[j], names[k]) == 0) {
					fprintf(stderr, "dsfs: %s and %s both write %s\n", by[j], by[k],
						names[k]);
					r = -EINVAL;
				}
	}
	for (size_t k = 0; k < n && r == 0 && catalog_by; k++)
		if (strcmp(names[k], PXAR_CATALOG_NAME) == 0) {
			fprintf(stderr,
				"dsfs: %s: " PXAR_CATALOG_NAME " is written for the NAME.pxar=DIR "
				"archives of this backup (%s): give the file another name, or back "
				"up the trees with --split (no catalog)\n",
				by[k], catalog_by);
			r = -EINVAL;
		}
	free(names);
	free(by);
	return r;
}

/* An empty image cannot be stored: a fixed index needs at least one chunk
 * (PBS's reader and writer refuse a zero-chunk fidx), so PBS's client
 * refuses a zero-sized image file before it starts the backup ("got
 * zero-sized file"). dsfs did so only after the snapshot was started,
 * with a bare "Invalid argument". A FILE that is not a regular file (a
 * pipe, a device) has no size to check here: stream_archive finds it
 * empty. Prints the reason; -EINVAL. */
static int check_images(int argc, char **argv, int from)
{
	for (int i = from; i < argc; i++) {
		char name[300], out[300];
		const char *file;
		struct stat sb;

		if (split_arg(argv[i], name, sizeof(name), &file) < 0 ||
		    archive_name(name, 0, out, sizeof(out)) < 0 ||
		    ds_archive_kind(out) != DS_ARCHIVE_FIDX)
			continue;
		if (stat(file, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 0) {
			fprintf(stderr,
				"dsfs: %s: zero-sized file: an image (%s) needs at least one byte\n",
				file, name);
			return -EINVAL;
		}
	}
	return 0;
}

/* --exclude patterns are checked before the snapshot is started, as PBS's
 * client parses them first; a bad one is a usage error. */
static int check_excludes(const struct ds_pxar_encode_opts *o, bool split)
{
	struct ds_pxar_excl *x;
	char *text = NULL;
	size_t len;
	int r;

	r = ds_pxar_excl_new(&x);
	for (size_t i = 0; r == 0 && i < o->n_exclude; i++) {
		const char *why = NULL;

		r = ds_pxar_excl_add_cli(x, o->exclude[i], strlen(o->exclude[i]), &why);
		if (r == -EINVAL)
			fprintf(stderr, "dsfs: --exclude %s: invalid exclude pattern: %s\n",
				o->exclude[i], why);
	}
	if (r == 0 && split && o->n_exclude) {
		r = ds_pxar_excl_prelude(x, o->n_exclude, &text, &len);
		if (r == -EILSEQ)
			fputs("dsfs: --exclude: a split archive can only record UTF-8 patterns\n",
			      stderr);
	}
	free(text);
	ds_pxar_excl_free(x);
	return r;
}

static void usage_backup(FILE *f)
{
	fputs("Usage: dsfs backup [OPTIONS] DATASTORE TYPE/ID NAME=FILE|NAME.pxar=DIR...\n"
	      "  --ns NS               namespace (a/b/c)\n"
	      "  --time RFC3339        backup time, YYYY-MM-DDTHH:MM:SSZ (default: now)\n"
	      "  --owner AUTHID        owner of a new group (default root@pam)\n"
	      "  --keyfile KEY         encrypt archives and sign the manifest\n"
	      "  --chunk-size SIZE     average chunk size of dynamic indexes, a power of\n"
	      "                        two from 64K to 4M (default 4M; suffixes K, M, G)\n"
	      "  --config FILE         datastore.cfg to look DATASTORE up in\n"
	      "  --split               NAME.pxar=DIR as a split archive (format v2:\n"
	      "                        NAME.mpxar.didx + NAME.ppxar.didx, no catalog)\n"
	      "  --exclude PATTERN     leave out of NAME.pxar=DIR trees what PATTERN\n"
	      "                        matches (repeatable; .pxarexclude syntax; '!'\n"
	      "                        re-includes), recorded in the archive as\n"
	      "                        proxmox-backup-client does\n"
	      "  --include-dev PATH    also store the contents of the file system PATH\n"
	      "                        is on (repeatable); by default a NAME.pxar=DIR\n"
	      "                        tree stays on DIR's file system, other mount\n"
	      "                        points are stored as empty directories\n"
	      "  --all-file-systems    store the contents of every file system\n"
	      "NAME: *.img → fixed index (4 MiB chunks); *.pxar, *.pcat1, *.didx → dynamic\n"
	      "index (PBS chunker); *.conf, *.json, *.log, *.blob and other names → blob.\n"
	      "NAME.pxar=DIR encodes the directory tree DIR as a pxar archive (v1) and\n"
	      "lists it in the snapshot's catalog.pcat1.didx, as proxmox-backup-client does;\n"
	      ".pxarexclude files in the tree are honoured as that client honours them.\n",
	      f);
}

/* --include-dev PATH: the st_dev of PATH's file system (as PBS's client,
 * following a symlink) into *ret. A PATH that is missing or cannot be
 * reached is a failure (status 1), as a missing --keyfile or source is,
 * not a mistake of the command line: -errno, said. */
static int include_dev(const char *path, uint64_t *ret)
{
	struct stat sb;

	if (stat(path, &sb) < 0) {
		int r = -errno;

		fprintf(stderr, "dsfs: --include-dev %s: %s\n", path, strerror(errno));
		return r;
	}
	*ret = (uint64_t)sb.st_dev;
	return 0;
}

/* cmd_backup with room for the --exclude values in excl, the
 * --include-dev paths in incl and their devices in devs (argc slots
 * each). */
static int backup_run(int argc, char **argv, const char **excl, const char **incl,
		      uint64_t *devs)
{
	static const struct option opts[] = {
		{ "ns", required_argument, NULL, 'n' },
		{ "time", required_argument, NULL, 't' },
		{ "owner", required_argument, NULL, 'o' },
		{ "keyfile", required_argument, NULL, 'k' },
		{ "chunk-size", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "split", no_argument, NULL, 'S' },
		{ "exclude", required_argument, NULL, 'x' },
		{ "include-dev", required_argument, NULL, 'I' },
		{ "all-file-systems", no_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *ns = "", *owner = NULL, *keyfile = NULL, *config = NULL;
	char type[8], id[256], pathns[257], timestr[DS_TIME_LEN + 1];
	int64_t when = (int64_t)time(NULL);
	size_t avg = DS_DYNAMIC_DEFAULT_AVG;
	struct ds_crypt *crypt = NULL;
	struct ds_writer *w = NULL;
	struct ds_backup *b = NULL;
	struct ds_backup_stats st;
	struct cli_store s = { 0 };
	struct pxar_catalog_out co = { 0 };
	struct ds_pxar_encode_opts popts = { .exclude = excl, .include_dev = devs };
	struct sigaction oldsig[3];
	bool split = false, caught = false;
	int c, r;

	while ((c = getopt_long(argc, argv, "n:t:o:k:s:c:Sh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			ns = optarg;
			break;
		case 't':
			/* PBS's backup-time is 1 at least */
			if (ds_time_parse(optarg, &when) < 0 || when < 1 ||
			    ds_time_format(when, timestr) < 0) {
				fprintf(stderr, "dsfs: --time %s: want YYYY-MM-DDTHH:MM:SSZ\n", optarg);
				return DS_EXIT_USAGE;
			}
			break;
		case 'o':
			owner = optarg;
			break;
		case 'k':
			keyfile = optarg;
			break;
		case 's':
			if (ds_parse_size(optarg, &avg) < 0) {
				fprintf(stderr, "dsfs: --chunk-size %s: want a size in bytes (suffixes K, M, G)\n",
					optarg);
				return DS_EXIT_USAGE;
			}
			break;
		case 'c':
			config = optarg;
			break;
		case 'S':
			split = true;
			break;
		case 'x':
			excl[popts.n_exclude++] = optarg;
			break;
		case 'I':
			incl[popts.n_include_dev++] = optarg; /* resolved below */
			break;
		case 'A':
			popts.all_file_systems = true;
			break;
		case 'h':
			usage_backup(stdout);
			return DS_EXIT_OK;
		default:
			usage_backup(stderr);
			return DS_EXIT_USAGE;
		}
	}
	r = check_excludes(&popts, split);
	if (r == -ENOMEM)
		fputs("dsfs: out of memory\n", stderr);
	if (r < 0)
		return r == -ENOMEM ? DS_EXIT_FAIL : DS_EXIT_USAGE;
	if (popts.all_file_systems && popts.n_include_dev) {
		fputs("dsfs: --all-file-systems conflicts with --include-dev\n", stderr);
		return DS_EXIT_USAGE;
	}
	if (argc - optind < 3) {
		usage_backup(stderr);
		return DS_EXIT_USAGE;
	}
	if (ds_parse_snapshot_path(argv[optind + 1], false, pathns, type, id, NULL) < 0 ||
	    *pathns) {
		fprintf(stderr, "dsfs: %s: want TYPE/ID (vm|ct|host)/ID; use --ns for namespaces\n",
			argv[optind + 1]);
		return DS_EXIT_USAGE;
	}
	if (ds_name_namespace(ns, NULL) < 0 || (owner && ds_name_authid(owner) < 0)) {
		fprintf(stderr, "dsfs: invalid %s\n", ds_name_namespace(ns, NULL) < 0 ? "namespace" : "owner");
		return DS_EXIT_USAGE;
	}
	if (avg < 64 * DS_KIB || avg > 4 * DS_MIB || (avg & (avg - 1))) {
		fputs("dsfs: --chunk-size must be a power of two from 64 KiB to 4 MiB\n", stderr);
		return DS_EXIT_USAGE;
	}
	r = check_args(argc, argv, optind + 2, split);
	if (r == 0)
		r = check_archive_names(argc, argv, optind + 2, split);
	if (r == 0)
		r = check_images(argc, argv, optind + 2);
	if (r < 0)
		return r == -EINVAL ? DS_EXIT_USAGE : DS_EXIT_FAIL;
	/* The command line is right: from here on, any failure is status 1,
	 * -EINVAL too (an empty pipe given as an image, a datastore.cfg that
	 * does not parse, a tree the encoder refuses). */
	for (size_t i = 0; i < popts.n_include_dev; i++)
		if (include_dev(incl[i], &devs[i]) < 0)
			return DS_EXIT_FAIL;
	if (keyfile && cli_load_key(keyfile, &crypt) < 0)
		return DS_EXIT_FAIL;
	r = cli_store_open(argv[optind], config, &s);
	if (r < 0) {
		ds_crypt_free(crypt);
		return DS_EXIT_FAIL;
	}
	r = ds_writer_acquire(s.ds, &w);
	if (r < 0) {
		fprintf(stderr, "dsfs: %s: cannot write: %s\n", argv[optind], strerror(-r));
		goto out;
	}
	/* A tree keeps one descriptor open a level (pxar_encoder.c): with
	 * the usual soft limit of 1024 open files a tree nested some 1,020
	 * levels deep failed with "Too many open files", short of the 2,047
	 * levels the encoder takes. Where the limit cannot be raised, the
	 * walk still fails cleanly on EMFILE. */
	ds_raise_fd_limit(4096);
	catch_stop_signals(oldsig);
	caught = true;
	r = ds_backup_begin(w, ns, type, id, when, owner, crypt, &b);
	if (r < 0) {
		ds_time_format(when, timestr);
		fprintf(stderr, "dsfs: cannot start snapshot %s/%s/%s: %s\n", type, id, timestr,
			strerror(-r));
		goto out;
	}
	ds_backup_set_stop(b, &interrupted);
	for (int i = optind + 2; i < argc; i++) {
		char arg[300], name[300];
		const char *file;
		struct stat sb;
		int fd;

		split_arg(argv[i], arg, sizeof(arg), &file); /* check_args */
		fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &sb) < 0) {
			r = -errno;
			fprintf(stderr, "dsfs: %s: %s\n", file, strerror(errno));
			if (fd >= 0)
				close(fd);
			goto out;
		}
		if (S_ISDIR(sb.st_mode)) {
			size_t nl = strlen(arg);

			close(fd);
			/* a file replaced by a directory since check_args */
			if (nl <= 5 || strcmp(arg + nl - 5, ".pxar") != 0) {
				fprintf(stderr, "dsfs: %s: a directory is backed up as NAME.pxar=DIR\n",
					file);
				r = -EISDIR;
				goto out;
			}
			r = backup_pxar_dir(b, arg, file, split, avg, &popts, &co);
			if (r < 0)
				goto out;
			continue;
		}
		r = archive_name(arg, (uint64_t)sb.st_size, name, sizeof(name));
		if (r < 0) {
			fprintf(stderr, "dsfs: %s: %s\n", arg,
				r == -EFBIG ? "too large for a blob; name it NAME.didx or NAME.img"
					    : "not a valid archive name");
			close(fd);
			goto out;
		}
		if (ds_archive_kind(name) == DS_ARCHIVE_BLOB) {
			uint8_t *data;
			size_t len;

			/* A file, or a pipe or device read to its end
			 * (qemu-server.conf=/dev/stdin, a process
			 * substitution), as streams are. */
			r = ds_read_fd(fd, S_ISREG(sb.st_mode) ? (size_t)sb.st_size : 0,
				       DS_MAX_BLOB_SIZE, &interrupted, &data, &len);
			if (r == -EFBIG) {
				fprintf(stderr, "dsfs: %s: more than %llu MiB: too large for a "
						"blob; name it NAME.didx or NAME.img\n",
					file, (unsigned long long)DS_MAX_BLOB_SIZE / DS_MIB);
				close(fd);
				goto out;
			}
			if (r == 0) {
				r = ds_backup_add_blob(b, name, data, len);
				free(data);
			}
		} else {
			r = stream_archive(b, name, file, fd,
					   S_ISREG(sb.st_mode) ? (uint64_t)sb.st_size : 0, avg);
			if (r < 0) {
				close(fd);
				goto out; /* reported */
			}
		}
		close(fd);
		if (r < 0) {
			fprintf(stderr, "dsfs: %s: %s\n", name, strerror(-r));
			goto out;
		}
	}
	r = pxar_catalog_finish(&co);
	if (r < 0) {
		fprintf(stderr, "dsfs: %s: %s\n", PXAR_CATALOG_NAME, strerror(-r));
		goto out;
	}
	r = ds_backup_finish(b);
	if (r < 0) {
		fprintf(stderr, "dsfs: cannot write manifest: %s\n", strerror(-r));
		goto out;
	}
	ds_backup_stats(b, &st);
	{
		char rel[2048];

		ds_time_format(when, timestr);
		ds_snapshot_relpath(ns, type, id, timestr, rel, sizeof(rel));
		printf("%s: %llu chunks, %llu new, %.1f MiB\n", rel, (unsigned long long)st.chunks,
		       (unsigned long long)st.new_chunks, (double)st.bytes / DS_MIB);
	}
out:
	pxar_catalog_abort(&co);
	ds_backup_free(b); /* removes an unfinished snapshot */
	ds_writer_release(w);
	cli_store_close(&s);
	ds_crypt_free(crypt);
	if (caught) {
		int sig = interrupted;

		restore_stop_signals(oldsig);
		if (sig && r < 0) {
			fprintf(stderr, "dsfs: interrupted by %s: no snapshot left\n",
				strsignal(sig));
			/* The exit status of a command the signal stopped. */
			raise(sig);
		}
	}
	return r < 0 ? DS_EXIT_FAIL : DS_EXIT_OK;
}

int cmd_backup(int argc, char **argv)
{
	/* --exclude values point into argv: at most one per argument, as
	 * --include-dev values */
	const char **excl = calloc((size_t)argc, sizeof(*excl));
	const char **incl = calloc((size_t)argc, sizeof(*incl));
	uint64_t *devs = calloc((size_t)argc, sizeof(*devs));
	int r = DS_EXIT_FAIL;

	if (!excl || !incl || !devs)
		fputs("dsfs: out of memory\n", stderr);
	else
		r = backup_run(argc, argv, excl, incl, devs);
	free(excl);
	free(incl);
	free(devs);
	return r;
}

static void usage_key(FILE *f)
{
	fputs("Usage: dsfs key create FILE [--kdf none|scrypt|pbkdf2]\n"
	      "The passphrase is read from $DSFS_KEY_PASSWORD (kdf scrypt/pbkdf2).\n",
	      f);
}

int cmd_key(int argc, char **argv)
{
	/* Parsed as the other commands' options are, so that --help and -h
	 * anywhere give the usage: "key create --help" used to write a key
	 * file named "--help" (a file of that name: "key create -- --help"). */
	static const struct option opts[] = {
		{ "kdf", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	enum ds_kdf kdf = DS_KDF_SCRYPT;
	uint8_t key[DS_CRYPT_KEY_LEN];
	struct ds_crypt *c = NULL;
	char *json = NULL;
	const char *pw = getenv("DSFS_KEY_PASSWORD"), *file;
	int fd, r;

	while ((r = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (r) {
		case 'K':
			if (strcmp(optarg, "none") == 0) {
				kdf = DS_KDF_NONE;
			} else if (strcmp(optarg, "pbkdf2") == 0) {
				kdf = DS_KDF_PBKDF2;
			} else if (strcmp(optarg, "scrypt") == 0) {
				kdf = DS_KDF_SCRYPT;
			} else {
				fprintf(stderr, "dsfs: --kdf %s: want none, scrypt or pbkdf2\n",
					optarg);
				return DS_EXIT_USAGE;
			}
			break;
		case 'h':
			usage_key(stdout);
			return DS_EXIT_OK;
		default:
			return DS_EXIT_USAGE;
		}
	}
	if (argc - optind != 2 || strcmp(argv[optind], "create") != 0) {
		usage_key(stderr);
		return DS_EXIT_USAGE;
	}
	file = argv[optind + 1];
	/* The environment is not the command line: a failure, as a
	 * password-protected --keyfile without the password is. */
	if (kdf != DS_KDF_NONE && (!pw || strlen(pw) < 5)) {
		fputs("dsfs: set DSFS_KEY_PASSWORD (at least 5 characters), or use --kdf none\n",
		      stderr);
		return DS_EXIT_FAIL;
	}
	r = ds_crypt_random_key(key);
	if (r == 0)
		r = ds_crypt_new(key, &c);
	if (r == 0)
		r = ds_keyfile_format(c, kdf, pw, &json);
	if (r < 0)
		goto out;
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = ds_write_all(fd, json, strlen(json));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	/* The file is ours (O_EXCL): a partial key would block a retry and
	 * pass for a damaged key. */
	if (r < 0)
		unlink(file);
out:
	if (r < 0)
		fprintf(stderr, "dsfs: %s: %s\n", file, strerror(-r));
	memset(key, 0, sizeof(key));
	free(json);
	ds_crypt_free(c);
	return r < 0 ? DS_EXIT_FAIL : DS_EXIT_OK;
}
