/* crypt — PBS's CryptConfig and key files (spec §2.5, §2.6, §2.8, §2.9).
 *
 * A struct ds_crypt holds the 32-byte encryption key and what PBS derives from
 * it: the id key (PBKDF2-HMAC-SHA256(key, "_id_key", 10)), the keyed chunk
 * digest SHA-256(data || id_key), the key fingerprint, AES-256-GCM with a
 * 16-byte IV, and the manifest HMAC. Key files are the JSON files that
 * `proxmox-backup-client key create` writes (kdf null, Scrypt or PBKDF2).
 *
 * Not for: blob framing (blob.h) or manifests (manifest.h).
 * Thread-safety: a struct ds_crypt is immutable after _new and may be shared
 * by any number of threads; every function here is thread-safe.
 */
#ifndef DSFS_STORE_CRYPT_H
#define DSFS_STORE_CRYPT_H

#include <stddef.h>
#include <stdint.h>

#include "store/util.h"

#define DS_CRYPT_KEY_LEN 32
#define DS_CRYPT_IV_LEN 16
#define DS_CRYPT_TAG_LEN 16
/* "57:67:…:e0": 32 bytes as colon-separated hex pairs, plus NUL. */
#define DS_FINGERPRINT_STR_LEN (32 * 3)

struct ds_crypt;

/* Builds a CryptConfig from a raw 32-byte key. Returns 0 or -ENOMEM/-EIO. */
int ds_crypt_new(const uint8_t key[DS_CRYPT_KEY_LEN], struct ds_crypt **ret);
void ds_crypt_free(struct ds_crypt *c); /* accepts NULL; wipes the keys */

/* Parses a PBS key file (JSON text of len bytes) and unwraps the key.
 * passphrase is required when kdf is not null (may be NULL otherwise).
 * "kdf", "created", "modified" and "data" must be present (as for PBS's
 * serde); unknown fields such as "hint" are ignored, duplicates refused.
 * Checks a stored fingerprint against the key. Errors:
 *  -EINVAL malformed JSON / fields / base64, unknown kdf;
 *  -ENOKEY kdf set but passphrase NULL;
 *  -EKEYREJECTED wrong passphrase (GCM tag mismatch) or passphrase < 5 bytes;
 *  -EBADMSG stored fingerprint does not match the key. */
int ds_keyfile_parse(const char *json, size_t len, const char *passphrase,
		     struct ds_crypt **ret);

/* Reads and parses a key file. Refuses (-EPERM, with a log line) a file whose
 * mode gives any access to group or others, and (-EINVAL) anything but a
 * regular file of at most 64 KiB. Other errors as above and -errno of
 * open/read. */
int ds_keyfile_load(const char *path, const char *passphrase, struct ds_crypt **ret);

enum ds_kdf {
	DS_KDF_NONE,   /* "kdf": null, key stored in plain */
	DS_KDF_SCRYPT, /* N=65536 r=8 p=1, random 32-byte salt */
	DS_KDF_PBKDF2, /* PBKDF2-HMAC-SHA256, 65535 iterations */
};

/* Serialises a key file for c's key as PBS does (compact JSON, fields in
 * order kdf, created, modified, data, fingerprint), wrapping the key with a
 * passphrase-derived key for SCRYPT/PBKDF2. created/modified are now in local
 * time with offset. *ret_json is malloc'ed, NUL-terminated; caller frees.
 * Returns 0, -EINVAL (for a kdf: no passphrase, or one shorter than the 5
 * bytes _parse requires) or -ENOMEM/-EIO. */
int ds_keyfile_format(const struct ds_crypt *c, enum ds_kdf kdf, const char *passphrase,
		      char **ret_json);

/* Fills out with 32 fresh random key bytes. 0 or -EIO. */
int ds_crypt_random_key(uint8_t out[DS_CRYPT_KEY_LEN]);

/* The keyed chunk digest SHA-256(data || id_key). With c == NULL the plain
 * SHA-256(data) of unencrypted chunks. */
void ds_crypt_digest(const struct ds_crypt *c, const void *data, size_t len,
		     struct ds_digest *ret);

/* The key fingerprint SHA-256(FP_INPUT || id_key), raw and as "aa:bb:…". */
void ds_crypt_fingerprint(const struct ds_crypt *c, struct ds_digest *ret);
void ds_crypt_fingerprint_str(const struct ds_crypt *c, char out[DS_FINGERPRINT_STR_LEN]);

/* Parses a fingerprint as PBS's serde does (bytes_as_fingerprint): every ':'
 * is dropped, and the rest must be 64 hex digits of either case, so
 * "12:b9:…" and "12b9…" are the same fingerprint. 0 or -EINVAL. */
int ds_fingerprint_parse(const char *s, struct ds_digest *ret);

/* HMAC-SHA256(id_key, msg): the manifest signature. */
void ds_crypt_sign(const struct ds_crypt *c, const void *msg, size_t len,
		   struct ds_digest *ret);

/* AES-256-GCM, 16-byte IV, empty AAD. out must hold len bytes (GCM does not
 * change the length). encrypt writes the tag; decrypt checks it and returns
 * -EBADMSG on mismatch. Other errors -ENOMEM/-EIO. */
int ds_crypt_encrypt(const struct ds_crypt *c, const uint8_t iv[DS_CRYPT_IV_LEN],
		     const void *in, size_t len, void *out, uint8_t tag[DS_CRYPT_TAG_LEN]);
int ds_crypt_decrypt(const struct ds_crypt *c, const uint8_t iv[DS_CRYPT_IV_LEN],
		     const uint8_t tag[DS_CRYPT_TAG_LEN], const void *in, size_t len,
		     void *out);

/* Test hook for spec §2.9's vectors: the raw keys. */
const uint8_t *ds_crypt_enc_key(const struct ds_crypt *c);
const uint8_t *ds_crypt_id_key(const struct ds_crypt *c);

#endif
