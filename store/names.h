/* names — PBS's name rules (spec §1.6), checked before a name touches a path.
 *
 * Every function returns 0 when the name is valid and -EINVAL otherwise; none
 * of them allocates or logs (callers say what was refused). Thread-safe.
 *
 * Not for: building paths (hierarchy.h does that with validated names).
 */
#ifndef DSFS_STORE_NAMES_H
#define DSFS_STORE_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define DS_MAX_NAMESPACE_DEPTH 7
#define DS_MAX_NAMESPACE_LEN 256

enum ds_backup_type {
	DS_TYPE_VM = 0,
	DS_TYPE_CT = 1,
	DS_TYPE_HOST = 2,
};

/* SAFE_ID: [A-Za-z0-9_][A-Za-z0-9._-]*  (non-empty). */
int ds_name_safe_id(const char *s);
/* Datastore name: SAFE_ID of length 3..32. */
int ds_name_datastore(const char *s);
/* Logical namespace "a/b/c": "" (root) or 1..7 SAFE_ID components joined by
 * '/', total length <= 256. On success *ret_depth (may be NULL) = components. */
int ds_name_namespace(const char *s, int *ret_depth);
/* "vm", "ct", "host" → enum. Returns the type (>= 0) or -EINVAL. */
int ds_name_backup_type(const char *s);
/* enum → "vm"/"ct"/"host" (static); NULL for a value outside the enum. */
const char *ds_backup_type_name(enum ds_backup_type t);
/* Backup id: [A-Za-z0-9_][A-Za-z0-9._-]*. */
int ds_name_backup_id(const char *s);
/* Snapshot directory: YYYY-MM-DDTHH:MM:SSZ naming a real date/time. */
int ds_name_snapshot_time(const char *s);
/* Archive file name as stored: SAFE_ID ending in .fidx, .didx or .blob. */
int ds_name_archive(const char *s);
/* Authid: user@realm or user@realm!token (user: no whitespace, ':', '/',
 * control characters; realm and token SAFE_ID). */
int ds_name_authid(const char *s);
/* Filesystem UUID of a backing device: 8-4-4-4-12 lowercase hex. */
int ds_name_fs_uuid(const char *s);
/* Maintenance message: valid UTF-8 without ASCII control characters
 * ([[:^cntrl:]] is ASCII-only in Rust's regex), at most 64 characters
 * (code points, as proxmox-schema counts them). */
int ds_name_maintenance_message(const char *s);

/* Checks that s[0..len) is UTF-8 as Rust's String accepts it (no overlong
 * forms, surrogates or code points above U+10FFFF). On success stores the
 * number of code points in *ret_count (may be NULL). Returns 0 or -EINVAL. */
int ds_utf8_count(const char *s, size_t len, size_t *ret_count);

enum ds_archive_kind {
	DS_ARCHIVE_BLOB = 1,
	DS_ARCHIVE_FIDX = 2,
	DS_ARCHIVE_DIDX = 3,
};

/* Kind of a stored archive name by its last extension, or -EINVAL. */
int ds_archive_kind(const char *name);

/* The server name of a client archive name: "x.img" → "x.img.fidx",
 * ".pxar/.mpxar/.ppxar/.pcat1" → "+.didx", ".conf/.json/.key/.log" → "+.blob";
 * a name already ending in .fidx/.didx/.blob is copied. Returns 0,
 * -EINVAL (no rule applies) or -ENAMETOOLONG (out too small). */
int ds_archive_server_name(const char *name, char *out, size_t outlen);

#endif
