/* hierarchy — namespaces, groups, snapshots and archives of a datastore
 * (spec §1.3–§1.5), enumerated through a lookup handle.
 *
 * Every function validates the names it is given (names.h) before building a
 * path, so nothing outside the datastore can be reached, and refuses with
 * ds_lookup_check_io()'s errno before touching the disk when the lookup was
 * granted "from config only". Listings are sorted as PBS shows them.
 *
 * Not for: reading archive contents (datastore.h readers) or writing
 * (backup.h).
 * Thread-safety: all functions are thread-safe; results are owned by the
 * caller.
 */
#ifndef DSFS_STORE_HIERARCHY_H
#define DSFS_STORE_HIERARCHY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/names.h"

struct ds_lookup;

/* A list of malloc'ed strings. */
struct ds_strv {
	char **v;
	size_t n;
};
void ds_strv_free(struct ds_strv *sv); /* frees the strings and the array */
/* Whether s is in sv, a list the functions below returned sorted. */
bool ds_strv_has(const struct ds_strv *sv, const char *s);

/* On-disk directory of logical namespace ns ("" → "", "a/b" → "ns/a/ns/b").
 * -EINVAL for an invalid namespace, -ENAMETOOLONG if out is too small. */
int ds_ns_relpath(const char *ns, char *out, size_t outlen);
/* "<ns dir>/<type>/<id>" and "<ns dir>/<type>/<id>/<time>", validated. */
int ds_group_relpath(const char *ns, const char *type, const char *id, char *out, size_t outlen);
int ds_snapshot_relpath(const char *ns, const char *type, const char *id, const char *time,
			char *out, size_t outlen);

/* Parses a snapshot path relative to the datastore
 * ("ns/prod/vm/201/2024-03-02T11:02:17Z" or "vm/100/<time>") into its parts;
 * with want_time false, a group path ("[ns/X/]…type/id"). Output buffers:
 * ns 257 bytes, type 8, id 256, time 21. Returns 0 or -EINVAL. */
int ds_parse_snapshot_path(const char *path, bool want_time, char *ns, char *type, char *id,
			   char *time);

/* Child namespaces of ns (names only, sorted). Missing ns/ → empty list;
 * missing namespace → -ENOENT. */
int ds_list_namespaces(const struct ds_lookup *lk, const char *ns, struct ds_strv *ret);

struct ds_group {
	enum ds_backup_type type;
	char *id;
};
/* Groups of namespace ns in PBS's display order (ct < host < vm; numeric ids
 * first, compared numerically). *ret malloc'ed; free with ds_groups_free. */
int ds_list_groups(const struct ds_lookup *lk, const char *ns, struct ds_group **ret, size_t *ret_n);
void ds_groups_free(struct ds_group *g, size_t n);

struct ds_snapshot {
	char time[21];
	int64_t epoch;
	bool finished;  /* has index.json.blob */
	bool protected; /* has .protected */
};
/* Snapshots of a group, oldest first. *ret malloc'ed (free()). */
int ds_list_snapshots(const struct ds_lookup *lk, const char *ns, const char *type, const char *id,
		      struct ds_snapshot **ret, size_t *ret_n);

/* Files of a snapshot that count as content (regular files matching
 * ^.*\.(fidx|didx|blob)$), sorted; .protected is reported separately.
 * snaprel must parse with ds_parse_snapshot_path (-EINVAL otherwise). */
int ds_list_snapshot_files(const struct ds_lookup *lk, const char *snaprel, struct ds_strv *ret,
			   bool *ret_protected);

/* The group's owner (first line of `owner`, trailing whitespace stripped).
 * *ret malloc'ed. -ENOENT when there is no owner file. */
int ds_read_owner(const struct ds_lookup *lk, const char *ns, const char *type, const char *id,
		  char **ret);
/* The same from the group directory groupfd. */
int ds_read_owner_at(int groupfd, char **ret);
/* Whether authid may add snapshots to a group owned by owner, as PBS's
 * check_backup_owner decides: the same auth id, or owner is an API token
 * and authid its user. */
bool ds_owner_allows(const char *owner, const char *authid);

/* Opens a snapshot directory (relative path as from ds_snapshot_relpath;
 * -EINVAL for anything else) for a single call's use: the caller closes it
 * before returning. */
int ds_open_snapshot(const struct ds_lookup *lk, const char *snaprel);

#endif
