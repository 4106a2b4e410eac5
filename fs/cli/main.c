/* dsfs — command-line tool for PBS datastores (see dsfs(1)). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/cli/cli.h"
#include "store/crypt.h"
#include "store/datastore.h"
#include "store/hierarchy.h"
#include "store/log.h"
#include "store/names.h"
#include "store/util.h"

static void usage(FILE *f)
{
	fputs("Usage: dsfs COMMAND [OPTIONS] ARGS...\n"
	      "\n"
	      "Commands:\n"
	      "  init DIR                       create an empty datastore as PBS does\n"
	      "  ls DATASTORE [PATH]            list namespaces, groups, snapshots, archives\n"
	      "  cat DATASTORE SNAPSHOT ARCHIVE write an archive's decoded content to stdout\n"
	      "  verify DATASTORE [PATH]        check every chunk, index and manifest\n"
	      "  backup DATASTORE TYPE/ID NAME=FILE...\n"
	      "                                 write a new snapshot\n"
	      "  key create FILE [--kdf none|scrypt|pbkdf2]\n"
	      "                                 create an encryption key file\n"
	      "  maintenance STORE MODE [--message TEXT]\n"
	      "                                 set read-only|offline|unmount|delete|s3-refresh\n"
	      "  maintenance STORE clear        clear the maintenance mode\n"
	      "  status DATASTORE               maintenance, mount state, active operations\n"
	      "\n"
	      "DATASTORE is a directory holding .chunks/, or a datastore name looked up in\n"
	      "/etc/proxmox-backup/datastore.cfg (--config FILE to use another file).\n"
	      "PATH and SNAPSHOT are relative to the datastore: [ns/NS/]TYPE/ID[/TIME].\n"
	      "Run 'dsfs COMMAND --help' for a command's options.\n"
	      "\n"
	      "Exit status: 0 success, 1 failure, 2 usage error, 3 verify found damage.\n",
	      f);
}

int cli_store_open(const char *arg, const char *config_path, struct cli_store *ret)
{
	struct cli_store s = { 0 };
	char base[4096], path[4096], name[300];
	const struct ds_datastore_cfg *dc;
	struct stat st;
	int r;

	if (!config_path)
		config_path = DS_CONFIG_DEFAULT_PATH;
	if (strchr(arg, '/') || (stat(arg, &st) == 0 && S_ISDIR(st.st_mode) &&
				 !ds_config_has_store(config_path, arg))) {
		if (!realpath(arg, base)) {
			r = -errno;
			fprintf(stderr, "dsfs: %s: %s\n", arg, strerror(errno));
			return r;
		}
		r = ds_path_fmt(path, sizeof(path), "%s/.chunks", base);
		if (r == 0 && stat(path, &st) < 0 && errno != ENOENT && errno != ENOTDIR) {
			/* A directory the caller cannot search is no proof
			 * that it holds no datastore ("not a datastore" sent
			 * a user without access looking for a wrong path). */
			r = -errno;
			fprintf(stderr, "dsfs: %s: %s\n", arg, strerror(errno));
			return r;
		}
		if (r < 0 || stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
			fprintf(stderr, "dsfs: %s: not a datastore (no .chunks directory)\n", arg);
			return -ENOENT;
		}
		r = ds_config_dir_name(config_path, base, name, sizeof(name));
		if (r < 0) {
			fprintf(stderr, "dsfs: %s: %s\n", arg, strerror(-r));
			return r;
		}
		if (r == 0) {
			r = ds_datastore_new(name, base, &s.ds);
			if (r < 0) {
				fprintf(stderr, "dsfs: %s: %s\n", arg, strerror(-r));
				return r;
			}
			*ret = s;
			return 0;
		}
		/* A configured datastore: used by name, maintenance mode
		 * and all, as PBS knows it. */
		arg = name;
	}
	r = ds_config_load(config_path, &s.cfg);
	if (r < 0) {
		/* A parse error and a file too large are logged with their
		 * reason (the former with its line): once is enough. */
		if (r != -EINVAL && r != -EFBIG)
			fprintf(stderr, "dsfs: %s: cannot load: %s\n", config_path, strerror(-r));
		return r;
	}
	dc = ds_config_find(s.cfg, arg);
	if (!dc) {
		cli_print_not_found(arg, config_path);
		ds_config_free(s.cfg);
		return -ENOENT;
	}
	r = ds_datastore_cfg_base(dc, base, sizeof(base));
	if (r < 0)
		fprintf(stderr, "dsfs: datastore '%s': path '%s' %s\n", dc->name,
			dc->path ? dc->path : "", ds_datastore_cfg_base_why(r));
	if (r == 0) {
		r = ds_datastore_new(dc->name, base, &s.ds);
		if (r < 0)
			fprintf(stderr, "dsfs: datastore '%s': %s\n", dc->name, strerror(-r));
	}
	if (r < 0) {
		ds_config_free(s.cfg);
		return r;
	}
	ds_datastore_configure(s.ds, dc);
	*ret = s;
	return 0;
}

void cli_print_not_found(const char *name, const char *config_path)
{
	struct stat st;

	/* No file is no datastore, as PBS reads it; saying so spares a
	 * search for a typo in the name. */
	if (stat(config_path, &st) < 0 && errno == ENOENT)
		fprintf(stderr, "dsfs: datastore '%s' not found: %s does not exist\n", name,
			config_path);
	else
		fprintf(stderr, "dsfs: datastore '%s' not found in %s\n", name, config_path);
}

void cli_store_close(struct cli_store *s)
{
	ds_datastore_free(s->ds);
	ds_config_free(s->cfg);
	s->ds = NULL;
	s->cfg = NULL;
}

int cli_parse_path(const char *path, struct cli_path *ret)
{
	struct cli_path *p = ret;

	memset(p, 0, sizeof(*p));
	while (*path == '/')
		path++;
	p->text = path;
	if (!*path) {
		p->kind = CLI_PATH_ROOT;
	} else if (ds_parse_snapshot_path(path, true, p->ns, p->type, p->id, p->time) == 0 &&
		   ds_snapshot_relpath(p->ns, p->type, p->id, p->time, p->rel, sizeof(p->rel)) ==
			   0) {
		p->kind = CLI_PATH_SNAPSHOT;
	} else if (ds_parse_snapshot_path(path, false, p->ns, p->type, p->id, NULL) == 0) {
		p->kind = CLI_PATH_GROUP;
	} else if (cli_parse_ns_path(path, p->ns) == 0) {
		p->kind = CLI_PATH_NS;
		ds_name_namespace(p->ns, &p->depth);
	} else {
		fprintf(stderr, "dsfs: %s: not a namespace, group or snapshot path\n", path);
		return -EINVAL;
	}
	return 0;
}

int cli_parse_ns_path(const char *path, char *ns)
{
	char buf[1024], *save = NULL, *tok;
	bool expect_ns = true;
	size_t len = 0;

	if (ds_path_fmt(buf, sizeof(buf), "%s", path) < 0)
		return -EINVAL;
	*ns = '\0';
	for (tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (expect_ns) {
			if (strcmp(tok, "ns") != 0)
				return -EINVAL;
		} else {
			size_t tl = strlen(tok);

			/* longer than PBS allows a namespace to be */
			if (len + tl + 2 > DS_MAX_NAMESPACE_LEN + 1)
				return -EINVAL;
			if (len)
				ns[len++] = '/';
			memcpy(ns + len, tok, tl + 1);
			len += tl;
		}
		expect_ns = !expect_ns;
	}
	if (!expect_ns || !len || ds_name_namespace(ns, NULL) < 0)
		return -EINVAL;
	return 0;
}

int cli_load_key(const char *path, struct ds_crypt **ret)
{
	int r = ds_keyfile_load(path, getenv("DSFS_KEY_PASSWORD"), ret);

	if (r == -ENOKEY)
		fprintf(stderr, "dsfs: %s: key is password-protected; set DSFS_KEY_PASSWORD\n", path);
	else if (r == -EKEYREJECTED)
		fprintf(stderr, "dsfs: %s: wrong password\n", path);
	else if (r < 0 && r != -EPERM)
		fprintf(stderr, "dsfs: %s: cannot load key: %s\n", path, strerror(-r));
	return r;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} commands[] = {
	{ "init", cmd_init },     { "ls", cmd_ls },         { "cat", cmd_cat },
	{ "verify", cmd_verify }, { "backup", cmd_backup }, { "key", cmd_key },
	{ "maintenance", cmd_maintenance }, { "status", cmd_status },
};

int main(int argc, char **argv)
{
	ds_log_set_ident("dsfs");
	if (argc < 2) {
		usage(stderr);
		return DS_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return DS_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("dsfs %s\n", DSFS_VERSION);
		return DS_EXIT_OK;
	}
	for (size_t i = 0; i < DS_ARRAY_SIZE(commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "dsfs: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return DS_EXIT_USAGE;
}
