/* config — datastore.cfg, PBS's section-config file (spec §6.3).
 *
 * Parses the file into a list of datastore sections with all DataStoreConfig
 * keys, the property strings of maintenance-mode, tuning and backend decoded
 * (double-quoted values with \" \\ \n escapes, default keys), and writes it
 * back as PBS does (sections in order, one blank line between, TAB-indented
 * properties in alphabetical order, message always quoted).
 *
 * Errors are reported with the line number through ds_log and as -EINVAL; a
 * bad file is never half-applied (the caller keeps its last good config).
 *
 * Not for: caching or change detection (cache/config_cache.h) or locking
 * (ds_config_lock below is the only lock primitive here).
 * Thread-safety: a parsed struct ds_config is immutable unless the caller
 * modifies it; concurrent readers are fine.
 */
#ifndef DSFS_STORE_CONFIG_H
#define DSFS_STORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DS_CONFIG_DEFAULT_PATH "/etc/proxmox-backup/datastore.cfg"
#define DS_CONFIG_LOCK_PATH "/etc/proxmox-backup/.datastore.lck"

enum ds_maintenance {
	DS_MAINT_NONE = 0,
	DS_MAINT_READ_ONLY,
	DS_MAINT_OFFLINE,
	DS_MAINT_DELETE,
	DS_MAINT_UNMOUNT,
	DS_MAINT_S3_REFRESH,
};

/* "read-only", "offline", … → enum (or -EINVAL); enum → name ("" for NONE). */
int ds_maintenance_parse(const char *s);
const char *ds_maintenance_name(enum ds_maintenance m);
/* A maintenance message as PBS shows it with a refusal (spec §6.2,
 * MaintenanceMode::check): percent-decoded, for the legacy percent-encoded
 * values older web UIs wrote ("%XX" with two hex digits; any other '%'
 * stays). A decoding that is not valid UTF-8 shows nothing, as in PBS; one
 * holding control characters (which a log line must not carry) shows the
 * message as written. *ret: malloc'ed, NULL for a NULL or empty result.
 * Returns 0 or -ENOMEM. Thread-safe. */
int ds_maintenance_message_display(const char *msg, char **ret);

/* A key=value pair of a section, as text, for keys this module does not
 * interpret (kept so a rewrite loses nothing). */
struct ds_config_prop {
	char *key;
	char *value;
};

/* One "datastore: NAME" section. All strings malloc'ed and owned by the
 * config; NULL when absent. */
struct ds_datastore_cfg {
	char *name;
	char *path;            /* required */
	char *comment;
	char *backing_device;  /* filesystem UUID; set ⇒ removable */
	enum ds_maintenance maintenance;
	char *maintenance_message; /* decoded (unquoted, unescaped), or NULL */
	/* tuning: */
	char *sync_level;      /* "none" | "file" | "filesystem" (NULL = default) */
	/* Every property line as read (key, raw value) in file order, including
	 * the ones above. The writer emits these, sorted by key, after applying
	 * the maintenance fields. */
	struct ds_config_prop *props;
	size_t n_props;
};

struct ds_config {
	struct ds_datastore_cfg *stores;
	size_t n_stores;
};

/* Parses text (len bytes). origin names the file in error messages. A
 * second section of a datastore replaces the first (keeping its place), as
 * in PBS, with a warning.
 * Errors: -EINVAL (syntax, unknown key, duplicate key, missing path, bad
 * property string, bad name; logged as "origin:LINE: reason"), -ENOMEM. */
int ds_config_parse(const char *text, size_t len, const char *origin, struct ds_config **ret);
/* Reads and parses a file (origin = path). A file that does not exist
 * (ENOENT, also for a missing directory) is an empty config with no
 * datastore, as PBS reads it (file_read_optional_string): a host without
 * any datastore has no datastore.cfg. Also -errno of open/read (not
 * logged), -EFBIG above 16 MiB. */
int ds_config_load(const char *path, struct ds_config **ret);
void ds_config_free(struct ds_config *cfg); /* accepts NULL */

/* Whether the file at path loads and has a datastore called name. Both
 * commands take a bare word on their command line as the datastore of
 * that name when there is one, before a directory of that name in the
 * working directory: the name obeys the store's maintenance mode and
 * backing disk, a directory nothing. */
bool ds_config_has_store(const char *path, const char *name);

/* How a datastore given as a directory is named. dir is a real path
 * (realpath). If the file at path configures a datastore at dir, returns
 * 1 with its name in out: it is that datastore, and is used by name, so
 * that its maintenance mode applies and PBS sees the same lock files and
 * active operations. Otherwise returns 0 with dir's last component in
 * out, or, when a configured datastore has that name (a copy of it, say),
 * "<component>~<8 hex digits of dir's SHA-256>": the name keys PBS's lock
 * files and active-operations file, which must not be the other store's.
 * -ENAMETOOLONG when out is too small. */
int ds_config_dir_name(const char *path, const char *dir, char *out, size_t outlen);

/* The section for name, or NULL. Borrowed from cfg. */
const struct ds_datastore_cfg *ds_config_find(const struct ds_config *cfg, const char *name);

/* The effective base directory: path, or for a removable store
 * "/mnt/datastore/<name>" (spec §6.7). Writes into out. 0, -ENAMETOOLONG,
 * or -EINVAL for a path that is not absolute (of a store that is not
 * removable): PBS reads such a section but refuses to open the store. */
int ds_datastore_cfg_base(const struct ds_datastore_cfg *ds, char *out, size_t outlen);
/* What is wrong with the section's path, given the -errno of
 * ds_datastore_cfg_base, for a message "path 'P' <this>". */
const char *ds_datastore_cfg_base_why(int err);

/* Sets or clears (mode NONE) the maintenance mode of store name in cfg:
 * the maintenance fields and the "maintenance-mode" entry of props, so
 * ds_config_format writes the change. message may be NULL; "" is no
 * message. Refuses a change away from "delete" (-EPERM, spec §6.2), a bad
 * message or a message with mode NONE (-EINVAL), both logged; -ENOENT when
 * the store is not in cfg; -ENOMEM. On failure cfg is unchanged. */
int ds_config_set_maintenance(struct ds_config *cfg, const char *name, enum ds_maintenance mode,
			      const char *message);

/* Serialises cfg as PBS writes it: maintenance-mode is generated from the
 * maintenance fields, every other property is the raw value from props.
 * *ret_text malloc'ed and NUL-terminated (caller frees); *ret_len (may be
 * NULL) its length. -EINVAL (logged) for a control character in a value
 * (PBS's writer refuses those too) or an invalid store name; -ENOMEM. */
int ds_config_format(const struct ds_config *cfg, char **ret_text, size_t *ret_len);

/* Checks one property of a datastore section against the PBS 4.x
 * DataStoreConfig schema (booleans, keep-* >= 1, backing-device UUID, the
 * maintenance-mode/tuning/backend/notify property strings, …) and records
 * the fields this module interprets (path, comment, backing_device,
 * maintenance, maintenance_message, sync_level) in ds, replacing earlier
 * values. Does not touch ds->props. Returns 0, -ENOENT (unknown key),
 * -EINVAL (bad value; the reason is written to why, whylen bytes, if why is
 * not NULL) or -ENOMEM. Not thread-safe for the same ds. */
int ds_config_check_property(struct ds_datastore_cfg *ds, const char *key, const char *value,
			     char *why, size_t whylen);

/* Parses a property string ("type=offline,message=\"a, b\"" or "offline")
 * into pairs in order. default_key names the key of a bare value (may be
 * NULL: bare values are then an error); at most one bare value, anywhere.
 * Values are not trimmed; empty items ("a=1,,b=2", ",a=1", "a=1,,") and
 * duplicate keys are errors, one trailing comma ("a=1,") is not (as in
 * PBS). "" gives zero pairs. *ret_props is malloc'ed;
 * free with ds_config_props_free. Errors -EINVAL (with *ret_errmsg set to a
 * static string, if ret_errmsg is not NULL), -ENOMEM. */
int ds_property_string_parse(const char *s, const char *default_key,
			     struct ds_config_prop **ret_props, size_t *ret_n,
			     const char **ret_errmsg);
void ds_config_props_free(struct ds_config_prop *props, size_t n);

#endif
