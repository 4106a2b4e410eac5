#include "store/crypt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "store/log.h"

struct ds_crypt {
	uint8_t enc_key[DS_CRYPT_KEY_LEN];
	uint8_t id_key[DS_CRYPT_KEY_LEN];
	struct ds_digest fingerprint;
};

/* SHA-256("Proxmox Backup Encryption Key Fingerprint"), spec §2.8. */
static const uint8_t fp_input[32] = {
	0x6e, 0xd0, 0xef, 0x77, 0x47, 0x1f, 0xff, 0x4d, 0x55, 0xc7, 0xa8,
	0xfe, 0x4a, 0x9d, 0xb6, 0x21, 0x61, 0x40, 0x7f, 0x13, 0x4c, 0x72,
	0x5d, 0xdf, 0x30, 0x99, 0x2d, 0x25, 0xec, 0x45, 0xed, 0x26,
};

/* PBS's KeyConfig constants (pbs-key-config). */
#define SCRYPT_N 65536
#define SCRYPT_R 8
#define SCRYPT_P 1
#define SCRYPT_MAXMEM (UINT64_C(1025) * 1024 * 1024)
#define PBKDF2_ITER 65535
#define KDF_SALT_LEN 32
#define WRAPPED_LEN (DS_CRYPT_IV_LEN + DS_CRYPT_TAG_LEN + DS_CRYPT_KEY_LEN)
#define MIN_PASSPHRASE 5
/* A key file is a few hundred bytes; anything much larger is not one. */
#define KEYFILE_MAX (64 * 1024)

/* EVP_*Update take int lengths; larger buffers go in pieces. */
#define EVP_PIECE (1u << 30)

static void keyed_sha256(const void *data, size_t len, const uint8_t key[32],
			 struct ds_digest *ret)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int outlen = DS_DIGEST_LEN;

	/* Nothing but ENOMEM can make SHA-256 fail, and the void contract
	 * leaves no way to report it: refuse to hand out a wrong digest. */
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(ctx, data, len) || !EVP_DigestUpdate(ctx, key, 32) ||
	    !EVP_DigestFinal_ex(ctx, ret->b, &outlen))
		abort();
	EVP_MD_CTX_free(ctx);
}

int ds_crypt_new(const uint8_t key[DS_CRYPT_KEY_LEN], struct ds_crypt **ret)
{
	static const char id_salt[] = "_id_key";
	struct ds_crypt *c;

	c = OPENSSL_secure_zalloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	memcpy(c->enc_key, key, DS_CRYPT_KEY_LEN);
	if (!PKCS5_PBKDF2_HMAC((const char *)key, DS_CRYPT_KEY_LEN,
			       (const unsigned char *)id_salt, sizeof(id_salt) - 1, 10,
			       EVP_sha256(), DS_CRYPT_KEY_LEN, c->id_key)) {
		ds_err("crypt: PBKDF2 for the id key failed");
		ds_crypt_free(c);
		return -EIO;
	}
	keyed_sha256(fp_input, sizeof(fp_input), c->id_key, &c->fingerprint);
	*ret = c;
	return 0;
}

void ds_crypt_free(struct ds_crypt *c)
{
	if (!c)
		return;
	OPENSSL_secure_clear_free(c, sizeof(*c));
}

const uint8_t *ds_crypt_enc_key(const struct ds_crypt *c)
{
	return c->enc_key;
}

const uint8_t *ds_crypt_id_key(const struct ds_crypt *c)
{
	return c->id_key;
}

int ds_crypt_random_key(uint8_t out[DS_CRYPT_KEY_LEN])
{
	if (RAND_priv_bytes(out, DS_CRYPT_KEY_LEN) != 1) {
		ds_err("crypt: no random bytes from OpenSSL");
		return -EIO;
	}
	return 0;
}

void ds_crypt_digest(const struct ds_crypt *c, const void *data, size_t len,
		     struct ds_digest *ret)
{
	if (!c) {
		ds_sha256(data, len, ret);
		return;
	}
	keyed_sha256(data, len, c->id_key, ret);
}

void ds_crypt_fingerprint(const struct ds_crypt *c, struct ds_digest *ret)
{
	*ret = c->fingerprint;
}

static void fingerprint_fmt(const struct ds_digest *d, char out[DS_FINGERPRINT_STR_LEN])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < DS_DIGEST_LEN; i++) {
		out[3 * i] = digits[d->b[i] >> 4];
		out[3 * i + 1] = digits[d->b[i] & 15];
		out[3 * i + 2] = ':';
	}
	out[DS_FINGERPRINT_STR_LEN - 1] = '\0';
}

void ds_crypt_fingerprint_str(const struct ds_crypt *c, char out[DS_FINGERPRINT_STR_LEN])
{
	fingerprint_fmt(&c->fingerprint, out);
}

void ds_crypt_sign(const struct ds_crypt *c, const void *msg, size_t len,
		   struct ds_digest *ret)
{
	unsigned int outlen = DS_DIGEST_LEN;

	/* As for SHA-256: only ENOMEM could fail here. */
	if (!HMAC(EVP_sha256(), c->id_key, DS_CRYPT_KEY_LEN, msg, len, ret->b, &outlen))
		abort();
}

/* AES-256-GCM with PBS's 16-byte IV; enc selects the direction. On decrypt
 * tag is read, on encrypt written. */
static int gcm(const uint8_t key[32], const uint8_t iv[DS_CRYPT_IV_LEN], uint8_t *tag,
	       const void *in, size_t len, void *out, int enc)
{
	const uint8_t *src = in;
	uint8_t *dst = out;
	EVP_CIPHER_CTX *ctx;
	int n, r = -EIO;

	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	/* The IV length must be set before key and IV, or OpenSSL uses 12. */
	if (!EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, DS_CRYPT_IV_LEN, NULL) ||
	    !EVP_CipherInit_ex(ctx, NULL, NULL, key, iv, enc))
		goto out;
	while (len > 0) {
		int piece = len > EVP_PIECE ? (int)EVP_PIECE : (int)len;

		if (!EVP_CipherUpdate(ctx, dst, &n, src, piece) || n != piece)
			goto out;
		src += piece;
		dst += piece;
		len -= (size_t)piece;
	}
	if (!enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, DS_CRYPT_TAG_LEN, tag))
		goto out;
	if (!EVP_CipherFinal_ex(ctx, dst, &n)) {
		/* For GCM decryption the only way Final fails is the tag. */
		r = enc ? -EIO : -EBADMSG;
		goto out;
	}
	if (enc && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, DS_CRYPT_TAG_LEN, tag))
		goto out;
	r = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

int ds_crypt_encrypt(const struct ds_crypt *c, const uint8_t iv[DS_CRYPT_IV_LEN],
		     const void *in, size_t len, void *out, uint8_t tag[DS_CRYPT_TAG_LEN])
{
	int r = gcm(c->enc_key, iv, tag, in, len, out, 1);

	if (r == -EIO)
		ds_err("crypt: AES-GCM encryption failed");
	return r;
}

int ds_crypt_decrypt(const struct ds_crypt *c, const uint8_t iv[DS_CRYPT_IV_LEN],
		     const uint8_t tag[DS_CRYPT_TAG_LEN], const void *in, size_t len,
		     void *out)
{
	uint8_t t[DS_CRYPT_TAG_LEN];
	int r;

	memcpy(t, tag, sizeof(t));
	r = gcm(c->enc_key, iv, t, in, len, out, 0);
	if (r == -EIO)
		ds_err("crypt: AES-GCM decryption failed");
	return r;
}

/* ---- key files (spec §2.8) ---- */

/* Strict standard base64 with padding, as PBS writes it. EVP_DecodeBlock
 * skips whitespace and counts padding as zero bytes, so the input is checked
 * here and the padding subtracted. *ret is malloc'ed. */
static int b64_decode(const char *s, uint8_t **ret, size_t *ret_len)
{
	size_t n = strlen(s), pad = 0, out_len;
	uint8_t *buf;
	int got;

	if (n % 4 != 0 || n > INT_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool alnum = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
			     (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';

		if (ch == '=' && i >= n - 2) {
			pad++;
			continue;
		}
		if (!alnum || pad)
			return -EINVAL;
	}
	out_len = n / 4 * 3 - pad;
	buf = malloc(n / 4 * 3 + 1);
	if (!buf)
		return -ENOMEM;
	got = n ? EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n) : 0;
	if (got < 0 || (size_t)got != n / 4 * 3) {
		free(buf);
		return -EINVAL;
	}
	*ret = buf;
	*ret_len = out_len;
	return 0;
}

static char *b64_encode(const uint8_t *in, size_t len)
{
	char *out = malloc((len + 2) / 3 * 4 + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}

int ds_fingerprint_parse(const char *s, struct ds_digest *ret)
{
	char hex[DS_DIGEST_HEX_LEN + 1];
	struct ds_digest d;
	size_t n = 0;

	for (; *s; s++) {
		if (*s == ':')
			continue;
		if (n == DS_DIGEST_HEX_LEN)
			return -EINVAL;
		hex[n++] = *s;
	}
	hex[n] = '\0';
	if (n != DS_DIGEST_HEX_LEN || ds_hex_decode(hex, d.b, DS_DIGEST_LEN) < 0)
		return -EINVAL;
	*ret = d;
	return 0;
}

struct kdf_params {
	enum ds_kdf kdf;
	uint64_t n, r, p, iter;
	uint8_t *salt;
	size_t salt_len;
};

static int json_u64(json_t *obj, const char *key, uint64_t *ret)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -EINVAL;
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

/* Parses the externally tagged kdf object. */
static int kdf_parse(json_t *kdf, struct kdf_params *kp)
{
	json_t *body, *salt;
	const char *tag;

	memset(kp, 0, sizeof(*kp));
	if (json_is_null(kdf))
		return 0;
	if (!json_is_object(kdf) || json_object_size(kdf) != 1)
		return -EINVAL;
	tag = json_object_iter_key(json_object_iter(kdf));
	body = json_object_get(kdf, tag);
	if (!json_is_object(body))
		return -EINVAL;
	if (strcmp(tag, "Scrypt") == 0) {
		kp->kdf = DS_KDF_SCRYPT;
		if (json_u64(body, "n", &kp->n) < 0 || json_u64(body, "r", &kp->r) < 0 ||
		    json_u64(body, "p", &kp->p) < 0)
			return -EINVAL;
	} else if (strcmp(tag, "PBKDF2") == 0) {
		kp->kdf = DS_KDF_PBKDF2;
		if (json_u64(body, "iter", &kp->iter) < 0)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	salt = json_object_get(body, "salt");
	if (!json_is_string(salt))
		return -EINVAL;
	return b64_decode(json_string_value(salt), &kp->salt, &kp->salt_len);
}

static int kdf_derive(const struct kdf_params *kp, const char *pass, uint8_t out[32])
{
	static const uint8_t empty[1];
	const uint8_t *salt = kp->salt_len ? kp->salt : empty;
	size_t plen = strlen(pass);

	if (kp->kdf == DS_KDF_SCRYPT) {
		/* OpenSSL checks N (power of two) and the memory bound. */
		if (!EVP_PBE_scrypt(pass, plen, salt, kp->salt_len, kp->n, kp->r, kp->p,
				    SCRYPT_MAXMEM, out, 32)) {
			ds_err("key file: scrypt(N=%llu, r=%llu, p=%llu) failed",
			       (unsigned long long)kp->n, (unsigned long long)kp->r,
			       (unsigned long long)kp->p);
			return -EINVAL;
		}
		return 0;
	}
	if (kp->iter < 1 || kp->iter > INT_MAX || plen > INT_MAX || kp->salt_len > INT_MAX ||
	    !PKCS5_PBKDF2_HMAC(pass, (int)plen, salt, (int)kp->salt_len, (int)kp->iter,
			       EVP_sha256(), 32, out)) {
		ds_err("key file: PBKDF2 with %llu iterations failed",
		       (unsigned long long)kp->iter);
		return -EINVAL;
	}
	return 0;
}

/* Recovers the raw key from "data": as is without a kdf, else
 * IV ‖ TAG ‖ GCM(derived, key). */
static int unwrap_key(const struct kdf_params *kp, const uint8_t *data, size_t len,
		      const char *pass, uint8_t key[DS_CRYPT_KEY_LEN])
{
	uint8_t derived[32], tag[DS_CRYPT_TAG_LEN];
	int r;

	if (kp->kdf == DS_KDF_NONE) {
		if (len != DS_CRYPT_KEY_LEN) {
			ds_err("key file: key is %zu bytes, not 32", len);
			return -EINVAL;
		}
		memcpy(key, data, DS_CRYPT_KEY_LEN);
		return 0;
	}
	if (!pass)
		return -ENOKEY;
	if (strlen(pass) < MIN_PASSPHRASE) {
		ds_err("key file: passphrase is too short");
		return -EKEYREJECTED;
	}
	if (len != WRAPPED_LEN) {
		ds_err("key file: wrapped key is %zu bytes, not %d", len, WRAPPED_LEN);
		return -EINVAL;
	}
	r = kdf_derive(kp, pass, derived);
	if (r < 0)
		return r;
	memcpy(tag, data + DS_CRYPT_IV_LEN, sizeof(tag));
	r = gcm(derived, data, tag, data + DS_CRYPT_IV_LEN + DS_CRYPT_TAG_LEN,
		DS_CRYPT_KEY_LEN, key, 0);
	OPENSSL_cleanse(derived, sizeof(derived));
	if (r == -EBADMSG) {
		ds_err("key file: unable to decrypt key (wrong passphrase?)");
		return -EKEYREJECTED;
	}
	return r;
}

int ds_keyfile_parse(const char *json, size_t len, const char *passphrase,
		     struct ds_crypt **ret)
{
	struct kdf_params kp = { 0 };
	struct ds_crypt *c = NULL;
	struct ds_digest stored;
	uint8_t key[DS_CRYPT_KEY_LEN];
	uint8_t *data = NULL;
	size_t data_len = 0;
	json_error_t jerr;
	json_t *root, *v, *fp;
	const char *what;
	int r = -EINVAL;

	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		ds_err("key file: invalid JSON: %s (line %d)", jerr.text, jerr.line);
		return -EINVAL;
	}
	what = "top-level object";
	if (!json_is_object(root))
		goto bad;
	/* created and modified are mandatory for PBS's serde; their value is
	 * informational only. */
	what = "created/modified";
	if (!json_is_string(json_object_get(root, "created")) ||
	    !json_is_string(json_object_get(root, "modified")))
		goto bad;
	what = "kdf";
	if (!json_object_get(root, "kdf") || kdf_parse(json_object_get(root, "kdf"), &kp) < 0)
		goto bad;
	what = "data";
	v = json_object_get(root, "data");
	if (!json_is_string(v) || b64_decode(json_string_value(v), &data, &data_len) < 0)
		goto bad;
	what = "fingerprint";
	fp = json_object_get(root, "fingerprint");
	if (fp && !json_is_null(fp) &&
	    (!json_is_string(fp) || ds_fingerprint_parse(json_string_value(fp), &stored) < 0))
		goto bad;

	r = unwrap_key(&kp, data, data_len, passphrase, key);
	if (r < 0)
		goto out;
	r = ds_crypt_new(key, &c);
	OPENSSL_cleanse(key, sizeof(key));
	if (r < 0)
		goto out;
	if (fp && !json_is_null(fp) && !ds_digest_eq(&stored, &c->fingerprint)) {
		char want[DS_FINGERPRINT_STR_LEN];

		ds_crypt_fingerprint_str(c, want);
		ds_err("key file: stored fingerprint %s does not match the key's %s",
		       json_string_value(fp), want);
		ds_crypt_free(c);
		r = -EBADMSG;
		goto out;
	}
	*ret = c;
	r = 0;
	goto out;
bad:
	ds_err("key file: missing or malformed \"%s\"", what);
	r = -EINVAL;
out:
	if (data) {
		OPENSSL_cleanse(data, data_len);
		free(data);
	}
	free(kp.salt);
	json_decref(root);
	return r;
}

int ds_keyfile_load(const char *path, const char *passphrase, struct ds_crypt **ret)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		ds_err("key file %s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > KEYFILE_MAX) {
		ds_err("key file %s: not a regular file of at most %d bytes", path, KEYFILE_MAX);
		r = -EINVAL;
		goto out;
	}
	/* The key is as good as the data it protects: like ssh with its
	 * private keys, refuse one that others can read. */
	if (st.st_mode & 077) {
		ds_err("key file %s has mode %04o; refusing a key that group or others "
		       "can access (chmod 600)", path, (unsigned)(st.st_mode & 07777));
		r = -EPERM;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	r = ds_keyfile_parse(buf, len, passphrase, ret);
out:
	if (buf) {
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
	close(fd);
	return r;
}

/* proxmox-time's epoch_to_rfc3339: local time, offset as "+HH:MM". */
static int rfc3339_local(time_t t, char out[32])
{
	struct tm tm;
	long off;
	char sign = '+';

	if (!localtime_r(&t, &tm))
		return -EINVAL;
	off = tm.tm_gmtoff;
	if (off < 0) {
		sign = '-';
		off = -off;
	}
	if (!strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm))
		return -EINVAL;
	snprintf(out + strlen(out), 32 - strlen(out), "%c%02ld:%02ld", sign, off / 3600,
		 off / 60 % 60);
	return 0;
}

int ds_keyfile_format(const struct ds_crypt *c, enum ds_kdf kdf, const char *passphrase,
		      char **ret_json)
{
	struct kdf_params kp = { .kdf = kdf };
	uint8_t salt[KDF_SALT_LEN], derived[32], wrapped[WRAPPED_LEN];
	char kdf_json[160], now[32], fp[DS_FINGERPRINT_STR_LEN];
	char *salt_b64 = NULL, *data_b64 = NULL, *json = NULL;
	int r;

	if (kdf != DS_KDF_NONE && kdf != DS_KDF_SCRYPT && kdf != DS_KDF_PBKDF2)
		return -EINVAL;
	if (kdf != DS_KDF_NONE && (!passphrase || strlen(passphrase) < MIN_PASSPHRASE)) {
		ds_err("key file: a passphrase of at least %d bytes is required",
		       MIN_PASSPHRASE);
		return -EINVAL;
	}
	r = rfc3339_local(time(NULL), now);
	if (r < 0)
		return r;

	if (kdf == DS_KDF_NONE) {
		strcpy(kdf_json, "null");
		data_b64 = b64_encode(c->enc_key, DS_CRYPT_KEY_LEN);
	} else {
		if (RAND_bytes(salt, sizeof(salt)) != 1 ||
		    RAND_bytes(wrapped, DS_CRYPT_IV_LEN) != 1) {
			r = -EIO;
			goto out;
		}
		kp.n = SCRYPT_N;
		kp.r = SCRYPT_R;
		kp.p = SCRYPT_P;
		kp.iter = PBKDF2_ITER;
		kp.salt = salt;
		kp.salt_len = sizeof(salt);
		r = kdf_derive(&kp, passphrase, derived);
		if (r < 0)
			goto out;
		r = gcm(derived, wrapped, wrapped + DS_CRYPT_IV_LEN, c->enc_key,
			DS_CRYPT_KEY_LEN, wrapped + DS_CRYPT_IV_LEN + DS_CRYPT_TAG_LEN, 1);
		if (r < 0)
			goto out;
		salt_b64 = b64_encode(salt, sizeof(salt));
		if (!salt_b64) {
			r = -ENOMEM;
			goto out;
		}
		if (kdf == DS_KDF_SCRYPT)
			snprintf(kdf_json, sizeof(kdf_json),
				 "{\"Scrypt\":{\"n\":%d,\"r\":%d,\"p\":%d,\"salt\":\"%s\"}}",
				 SCRYPT_N, SCRYPT_R, SCRYPT_P, salt_b64);
		else
			snprintf(kdf_json, sizeof(kdf_json),
				 "{\"PBKDF2\":{\"iter\":%d,\"salt\":\"%s\"}}", PBKDF2_ITER,
				 salt_b64);
		data_b64 = b64_encode(wrapped, sizeof(wrapped));
	}
	if (!data_b64) {
		r = -ENOMEM;
		goto out;
	}
	ds_crypt_fingerprint_str(c, fp);
	if (asprintf(&json,
		     "{\"kdf\":%s,\"created\":\"%s\",\"modified\":\"%s\",\"data\":\"%s\","
		     "\"fingerprint\":\"%s\"}",
		     kdf_json, now, now, data_b64, fp) < 0) {
		json = NULL;
		r = -ENOMEM;
		goto out;
	}
	*ret_json = json;
	r = 0;
out:
	OPENSSL_cleanse(derived, sizeof(derived));
	if (data_b64) {
		OPENSSL_cleanse(data_b64, strlen(data_b64));
		free(data_b64);
	}
	free(salt_b64);
	return r;
}
