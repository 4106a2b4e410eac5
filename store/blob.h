/* blob — the PBS DataBlob container (spec §2): chunks and *.blob files.
 *
 * Four magics (plain, zstd, encrypted, encrypted+zstd), a CRC-32 over the
 * payload, zstd level 1 kept only when it helps, AES-256-GCM via crypt.h.
 * Decoding is bounded: the caller says how large the plaintext may get, and
 * zstd output is never allowed past it.
 *
 * Not for: where blobs live (chunkstore.h) or digests of chunks (the caller
 * checks those; see ds_crypt_digest).
 * Thread-safety: all functions are thread-safe (zstd contexts are per thread).
 */
#ifndef DSFS_STORE_BLOB_H
#define DSFS_STORE_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ds_digest;

struct ds_crypt;

#define DS_BLOB_MAGIC_LEN 8
#define DS_BLOB_HEADER_LEN 12
#define DS_BLOB_ENC_HEADER_LEN 44

enum ds_blob_type {
	DS_BLOB_PLAIN = 0,         /* 42ab3807be8370a1 */
	DS_BLOB_ZSTD = 1,          /* 31b958426fb6a37f */
	DS_BLOB_ENCRYPTED = 2,     /* 7b6785be222d4cf0 */
	DS_BLOB_ENCRYPTED_ZSTD = 3 /* e6591bbf0bbfd80b */
};

/* The blob type of raw (len bytes), checking magic and minimum header size.
 * Returns the type (>= 0) or -EBADMSG (unknown magic, too short). */
int ds_blob_type(const uint8_t *raw, size_t len);

static inline bool ds_blob_type_encrypted(int type)
{
	return type == DS_BLOB_ENCRYPTED || type == DS_BLOB_ENCRYPTED_ZSTD;
}

/* Checks magic and CRC only (what a server can check of an encrypted chunk).
 * Returns 0 or -EBADMSG. */
int ds_blob_verify_crc(const uint8_t *raw, size_t len);

/* Decodes raw into out (capacity out_cap bytes): CRC, then GCM decrypt with c
 * for encrypted types, then bounded zstd decompression. The plaintext may not
 * exceed out_cap. On success *ret_len is the plaintext length.
 * Errors: -EBADMSG bad magic/CRC/zstd stream/GCM tag (logged at debug level;
 * the caller names the object); -ENOKEY encrypted and c == NULL (checked
 * after the CRC); -EFBIG plaintext larger than out_cap; -ENOMEM; -EIO
 * (OpenSSL failure). On error out's contents are unspecified. A zstd payload
 * may hold several frames (decoded as their concatenation), with or without
 * a content-size field. */
int ds_blob_decode_into(const uint8_t *raw, size_t len, const struct ds_crypt *c,
			uint8_t *out, size_t out_cap, size_t *ret_len);

/* Decodes an unencrypted blob from fd (file_len bytes, read with pread)
 * into out (capacity out_cap) without holding its encoded bytes in memory:
 * a plain blob is read straight into out, a zstd one decompressed from a
 * small window on the stack into out. The CRC is checked as by _into, and
 * the plaintext's SHA-256 is computed piece by piece as it is produced
 * (while in the CPU's cache), into *ret_digest. ret_digest NULL: no
 * digest is computed (a blob verified before, ds_chunkstore_load_known).
 * Returns 0, *ret_len, *ret_digest and, if ret_type is not NULL, the blob's
 * type (DS_BLOB_PLAIN or DS_BLOB_ZSTD), or -EAGAIN when this path does not
 * apply or the blob is not a valid one that fits (encrypted, damaged, too
 * large, short read): the caller then reads the file whole and decodes it
 * with _into, which names the fault. Other errors: -ENOMEM, or a read
 * error (-errno). */
int ds_blob_decode_fd(int fd, uint64_t file_len, uint8_t *out, size_t out_cap,
		      struct ds_digest *ret_digest, size_t *ret_len, int *ret_type);

/* A zstd blob decoded a part at a time: the first bytes of a chunk
 * without decoding all of it, and more of it later, from where the last
 * call stopped. For random reads of a chunk verified whole before (the
 * caller trusts the file's identity, see ds_chunkstore_decode_known_part):
 * no digest is computed, and the CRC is checked only once the whole frame
 * has been decoded. A part holds ds_blob_part_size() bytes.
 * Thread-safety: a part is used by one thread at a time. */
struct ds_blob_part;

size_t ds_blob_part_size(void);
/* Starts on the blob in fd (file_len bytes), of expect_len decoded bytes
 * (0: as its frame header says; frames written by PBS <= 3.2.8 may not
 * say). Returns 0 and *ret (free with _free); -EAGAIN when it is not an
 * unencrypted zstd blob, its header gives another size than expect_len,
 * its size is unknown or larger than cap; -ENOMEM; read errors (-errno). */
int ds_blob_part_new(int fd, uint64_t file_len, size_t expect_len, size_t cap,
		     struct ds_blob_part **ret);
/* Its decoded size. */
size_t ds_blob_part_len(const struct ds_blob_part *p);
/* Decodes on into out until at least want bytes of it are decoded (whole
 * blocks, so usually more) or all of it, and sets *ret_done to the bytes
 * decoded from its start. out is the same buffer at every call, of at least
 * _len bytes, and its first *ret_done bytes stay as they are in between:
 * zstd refers back to them. Bytes past *ret_done may be written. fd is the
 * same file (the caller checks that, e.g. by its identity). Returns 0;
 * -EAGAIN when it does not decode (damaged, or not the file it was: more or
 * fewer bytes than the frame, another CRC once whole); -EINVAL for another
 * out or after a failure; -ENOMEM; read errors (-errno). After a failure
 * the part only can be freed. */
int ds_blob_part_decode(struct ds_blob_part *p, int fd, uint64_t file_len, uint8_t *out,
			size_t want, size_t *ret_done);
/* Accepts NULL. */
void ds_blob_part_free(struct ds_blob_part *p);

/* Like _into, but allocates: *ret_data is malloc'ed (caller frees), at most
 * max_len bytes (use DS_MAX_BLOB_SIZE or DS_MAX_CHUNK_SIZE). */
int ds_blob_decode(const uint8_t *raw, size_t len, const struct ds_crypt *c,
		   size_t max_len, uint8_t **ret_data, size_t *ret_len);

/* Encodes data as PBS's DataBlob::encode does: if compress, zstd level 1 into
 * a buffer of len bytes and keep it when the result is <= len; if c, encrypt
 * with a random IV. *ret_raw is malloc'ed (caller frees).
 * Errors: -EFBIG len > DS_MAX_BLOB_SIZE; -ENOMEM; -EIO (OpenSSL failure). */
int ds_blob_encode(const uint8_t *data, size_t len, const struct ds_crypt *c,
		   bool compress, uint8_t **ret_raw, size_t *ret_len);

/* Test hook: encode with a caller-chosen IV (spec §2.9's all-zero IV vector). */
int ds_blob_encode_iv(const uint8_t *data, size_t len, const struct ds_crypt *c,
		      bool compress, const uint8_t iv[16], uint8_t **ret_raw,
		      size_t *ret_len);

#endif
