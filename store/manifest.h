/* manifest — a snapshot's index.json.blob (spec §4).
 *
 * Parses the manifest JSON (any key order) and writes it exactly as PBS
 * does: serde_json pretty printing (2-space indent, ": ", keys sorted
 * bytewise, no trailing newline, non-ASCII raw, control characters escaped as
 * \b \f \n \r \t or \u00xx lowercase). The signature is
 * HMAC-SHA256(id_key, canonical JSON without "unprotected" and "signature").
 * The "unprotected" object is kept whole, so unknown keys survive a rewrite.
 *
 * Not for: reading the blob file (the caller decodes it with blob.h, or uses
 * ds_manifest_load/_store which do both).
 * Thread-safety: a manifest is owned by one thread at a time; const accessors
 * on an unchanging manifest may be used concurrently.
 */
#ifndef DSFS_STORE_MANIFEST_H
#define DSFS_STORE_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/util.h"

struct ds_crypt;
struct ds_manifest;

#define DS_MANIFEST_NAME "index.json.blob"
#define DS_CLIENT_LOG_NAME "client.log.blob"

enum ds_crypt_mode {
	DS_CRYPT_NONE = 0,
	DS_CRYPT_ENCRYPT = 1,
	DS_CRYPT_SIGN_ONLY = 2,
};

const char *ds_crypt_mode_name(enum ds_crypt_mode m); /* "none", "encrypt", "sign-only"; NULL else */

struct ds_manifest_file {
	const char *filename; /* borrowed from the manifest */
	uint64_t size;
	struct ds_digest csum;
	enum ds_crypt_mode crypt_mode;
};

/* A new, empty manifest for type ("vm"/"ct"/"host"), id and time.
 * Returns 0, -EINVAL (other type, empty id, id not UTF-8) or -ENOMEM. */
int ds_manifest_new(const char *type, const char *id, int64_t time, struct ds_manifest **ret);

/* Parses manifest JSON text. Missing "crypt-mode" means none; missing (or
 * null) "unprotected" means {}. Unknown top-level and FileInfo keys are
 * dropped, as PBS's structs drop them; csum may be either case and is written
 * lowercase. Limits of the JSON layer (jansson): integers beyond int64 are
 * refused, so a size > INT64_MAX cannot be read or set; reals (never in PBS
 * manifests) are rewritten in ryu's shortest form like serde_json.
 * Errors: -EBADMSG malformed JSON, field types or a backup-type other than
 * vm/ct/host (one ds_err line with the reason), -ENOMEM. */
int ds_manifest_parse(const char *json, size_t len, struct ds_manifest **ret);

void ds_manifest_free(struct ds_manifest *m); /* accepts NULL */

const char *ds_manifest_type(const struct ds_manifest *m);
const char *ds_manifest_id(const struct ds_manifest *m);
int64_t ds_manifest_time(const struct ds_manifest *m);
size_t ds_manifest_file_count(const struct ds_manifest *m);
/* File i, in manifest order. Returns 0 or -ERANGE. */
int ds_manifest_file(const struct ds_manifest *m, size_t i, struct ds_manifest_file *ret);
/* Looks a file up by its full name ("drive-scsi0.img.fidx"). 0 or -ENOENT. */
int ds_manifest_find(const struct ds_manifest *m, const char *filename,
		     struct ds_manifest_file *ret);
/* Adds or replaces (in place) the entry for filename. Leaves the signature
 * alone: re-sign after changing files. 0, -EINVAL (empty or non-UTF-8 name,
 * size > INT64_MAX, unknown mode) or -ENOMEM. */
int ds_manifest_set_file(struct ds_manifest *m, const char *filename, uint64_t size,
			 const struct ds_digest *csum, enum ds_crypt_mode mode);
/* Removes the entry for filename: 0 or -ENOENT. */
int ds_manifest_remove_file(struct ds_manifest *m, const char *filename);

/* Whether the snapshot's last verification failed (unprotected.verify_state
 * .state is "failed", as PBS's verify writes it). */
bool ds_manifest_verify_failed(const struct ds_manifest *m);
/* unprotected.notes, or NULL. Borrowed until the next change of m. */
const char *ds_manifest_notes(const struct ds_manifest *m);
/* Sets (or with NULL removes) unprotected.notes. 0, -EINVAL (not UTF-8) or
 * -ENOMEM. */
int ds_manifest_set_notes(struct ds_manifest *m, const char *notes);
/* unprotected."key-fingerprint" and the "signature" string, or NULL. */
const char *ds_manifest_fingerprint(const struct ds_manifest *m);
const char *ds_manifest_signature(const struct ds_manifest *m);

/* The whole "unprotected" object as compact JSON text (malloc'ed, caller
 * frees), for display. NULL on ENOMEM. */
char *ds_manifest_unprotected_json(const struct ds_manifest *m);

/* Canonical JSON of the signed part (spec §4.3). *ret_text malloc'ed.
 * Returns 0, -EINVAL (a null inside the signed part; cannot happen while the
 * signed fields are typed) or -ENOMEM. */
int ds_manifest_canonical(const struct ds_manifest *m, char **ret_text, size_t *ret_len);

/* Signs with c: sets "signature" and unprotected."key-fingerprint". */
int ds_manifest_sign(struct ds_manifest *m, const struct ds_crypt *c);
/* Checks with c: a stored fingerprint (read as ds_fingerprint_parse does;
 * -EBADMSG if it is none) must match c's (-EKEYREJECTED), the signature must
 * be present and match (-EBADMSG). 0 when valid. For a
 * parsed manifest whose signed fields were not changed since, the signature
 * is checked, as PBS does, over the signed part as read: keys this code
 * drops, a csum in upper case or a missing crypt-mode are text that was not
 * signed, and fail. */
int ds_manifest_verify(const struct ds_manifest *m, const struct ds_crypt *c);
/* ds_manifest_verify without its log lines, for callers that check often
 * and report what they refuse themselves. */
int ds_manifest_verify_quiet(const struct ds_manifest *m, const struct ds_crypt *c);
/* Whether filename is one of the snapshot's files by m: listed, or
 * index.json.blob (m itself) or client.log.blob (uploaded after the
 * manifest, never listed). A signed, verified manifest is what says which
 * archives are the snapshot's: PBS's client restores only those. */
bool ds_manifest_covers(const struct ds_manifest *m, const char *filename);

/* Serialises as PBS's pretty JSON. *ret_text malloc'ed, NUL-terminated. */
int ds_manifest_format(const struct ds_manifest *m, char **ret_text, size_t *ret_len);

/* Reads <snapshot dirfd>/index.json.blob: decode the (unencrypted) blob,
 * parse. Errors from ds_read_file_at, ds_blob_decode (-EBADMSG), parse. */
int ds_manifest_load(int snapdirfd, struct ds_manifest **ret);
/* Writes index.json.blob by atomic replace (compressed if that helps, never
 * encrypted, fsync'ed). Returns 0 or -errno. */
int ds_manifest_store(int snapdirfd, const struct ds_manifest *m);

#endif
