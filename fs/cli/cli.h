/* cli — the `dsfs` command: admin and scripting over store/.
 *
 * Each subcommand is a function taking argc/argv (argv[0] = subcommand name)
 * and returning the process exit status (see DS_EXIT_*). Errors are printed
 * to stderr naming the object and the reason; store/ logs its own reasons
 * through ds_log.
 */
#ifndef DSFS_CLI_H
#define DSFS_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "store/config.h"

struct ds_crypt;
struct ds_datastore;

enum {
	DS_EXIT_OK = 0,
	DS_EXIT_FAIL = 1,    /* an operation failed (I/O, refused, corrupt input) */
	DS_EXIT_USAGE = 2,   /* bad command line */
	DS_EXIT_DAMAGED = 3, /* verify found damaged or missing data */
};

/* A datastore named on the command line: a directory holding .chunks/
 * (name = its basename) or a datastore name looked up in config_path
 * (default /etc/proxmox-backup/datastore.cfg). The maintenance mode and
 * backing device of a configured store are applied. */
struct cli_store {
	struct ds_datastore *ds;
	struct ds_config *cfg; /* NULL for a store given by directory */
};

int cli_store_open(const char *arg, const char *config_path, struct cli_store *ret);
/* Prints that datastore name is not configured in config_path (a file
 * that does not exist configures none, as for PBS). */
void cli_print_not_found(const char *name, const char *config_path);
void cli_store_close(struct cli_store *s);

/* Parses a namespace path as on disk, "ns/a/ns/b", into the logical
 * namespace "a/b" (ns: DS_MAX_NAMESPACE_LEN + 1 bytes). Returns 0, or
 * -EINVAL for anything else, including a name breaking PBS's rules. */
int cli_parse_ns_path(const char *path, char *ns);

/* PATH of ls and verify: "" (the whole datastore), a namespace, a group or
 * a snapshot, leading slashes ignored. Parsed before the datastore is
 * opened: a wrong PATH is a usage error whatever the datastore. */
struct cli_path {
	enum { CLI_PATH_ROOT, CLI_PATH_NS, CLI_PATH_GROUP, CLI_PATH_SNAPSHOT } kind;
	const char *text; /* PATH without its leading slashes */
	char ns[257], type[8], id[256], time[21];
	char rel[2048]; /* the snapshot's directory (CLI_PATH_SNAPSHOT) */
	int depth;      /* the namespace's depth (CLI_PATH_NS) */
};
/* Prints what is wrong and returns -EINVAL for anything else. */
int cli_parse_path(const char *path, struct cli_path *ret);

/* Loads a key file (passphrase from $DSFS_KEY_PASSWORD when the key has a
 * kdf). Prints the reason on failure. */
int cli_load_key(const char *path, struct ds_crypt **ret);

/* getopt_long wrapper state is per command; these print usage to stderr. */
int cmd_init(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_maintenance(int argc, char **argv);
int cmd_status(int argc, char **argv);

#endif
