#include "store/blob.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <unistd.h>
/* ZSTD_d_stableOutBuffer (zstd >= 1.4.7, in the shared library; its name
 * is in the static-linking section of zstd.h). */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zstd_errors.h>

#include "store/crypt.h"
#include "store/log.h"
#include "store/util.h"

static const uint8_t blob_magic[4][DS_BLOB_MAGIC_LEN] = {
	[DS_BLOB_PLAIN] = { 0x42, 0xab, 0x38, 0x07, 0xbe, 0x83, 0x70, 0xa1 },
	[DS_BLOB_ZSTD] = { 0x31, 0xb9, 0x58, 0x42, 0x6f, 0xb6, 0xa3, 0x7f },
	[DS_BLOB_ENCRYPTED] = { 0x7b, 0x67, 0x85, 0xbe, 0x22, 0x2d, 0x4c, 0xf0 },
	[DS_BLOB_ENCRYPTED_ZSTD] = { 0xe6, 0x59, 0x1b, 0xbf, 0x0b, 0xbf, 0xd8, 0x0b },
};

#define IV_OFF DS_BLOB_HEADER_LEN
#define TAG_OFF (IV_OFF + DS_CRYPT_IV_LEN)

/* ---- per-thread zstd contexts ---- */

/* Decoding runs on many FUSE worker threads at once; a context per thread
 * avoids both a lock and allocating zstd's ~100 KiB state for every chunk.
 * The key's destructor frees them when a thread exits. */
struct zctx {
	ZSTD_DCtx *d;
	ZSTD_DCtx *stable; /* decodes into a fixed buffer (ds_blob_decode_fd) */
	ZSTD_CCtx *c;
	struct ds_sha256 *h; /* ds_blob_decode_fd */
	uint8_t *part_in;    /* ds_blob_part_decode's input, ZSTD_BLOCKSIZE_MAX */
};

static pthread_key_t zctx_key;
static pthread_once_t zctx_once = PTHREAD_ONCE_INIT;
static int zctx_key_err;

static void zctx_free(void *p)
{
	struct zctx *z = p;

	ZSTD_freeDCtx(z->d);
	ZSTD_freeDCtx(z->stable);
	ZSTD_freeCCtx(z->c);
	ds_sha256_free(z->h);
	free(z->part_in);
	free(z);
}

static void zctx_key_init(void)
{
	zctx_key_err = pthread_key_create(&zctx_key, zctx_free);
}

static struct zctx *zctx_get(void)
{
	struct zctx *z;

	if (pthread_once(&zctx_once, zctx_key_init) != 0 || zctx_key_err != 0)
		return NULL;
	z = pthread_getspecific(zctx_key);
	if (z)
		return z;
	z = calloc(1, sizeof(*z));
	if (!z)
		return NULL;
	if (pthread_setspecific(zctx_key, z) != 0) {
		free(z);
		return NULL;
	}
	return z;
}

static ZSTD_DCtx *dctx_get(void)
{
	struct zctx *z = zctx_get();

	if (z && !z->d)
		z->d = ZSTD_createDCtx();
	return z ? z->d : NULL;
}

/* A context that decodes straight into the caller's output buffer: with
 * ZSTD_d_stableOutBuffer zstd keeps no window buffer of its own and copies
 * nothing out of it. Without that parameter (an older libzstd) it still
 * decodes correctly, through its window buffer. */
static ZSTD_DCtx *stable_dctx_get(void)
{
	struct zctx *z = zctx_get();

	if (z && !z->stable) {
		z->stable = ZSTD_createDCtx();
		if (z->stable)
			(void)ZSTD_DCtx_setParameter(z->stable, ZSTD_d_stableOutBuffer, 1);
	}
	return z ? z->stable : NULL;
}

static struct ds_sha256 *sha256_get(void)
{
	struct zctx *z = zctx_get();

	if (z && !z->h)
		z->h = ds_sha256_new();
	return z ? z->h : NULL;
}

static ZSTD_CCtx *cctx_get(void)
{
	struct zctx *z = zctx_get();

	if (z && !z->c)
		z->c = ZSTD_createCCtx();
	return z ? z->c : NULL;
}

/* ---- decoding ---- */

/* Where decoded bytes go: a caller's fixed buffer, or (grow) one that is
 * realloc'ed up to max. */
struct outbuf {
	uint8_t *p;
	size_t len, cap, max;
	bool grow;
};

/* Makes room for at least need bytes in total, or -EFBIG past max. */
static int outbuf_reserve(struct outbuf *ob, size_t need)
{
	uint8_t *np;
	size_t ncap;

	if (need <= ob->cap)
		return 0;
	if (!ob->grow || need > ob->max)
		return -EFBIG;
	ncap = ob->cap < 64 * 1024 ? 64 * 1024 : ob->cap;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? SIZE_MAX : ncap * 2;
	if (ncap > ob->max)
		ncap = ob->max;
	np = realloc(ob->p, ncap ? ncap : 1);
	if (!np)
		return -ENOMEM;
	ob->p = np;
	ob->cap = ncap;
	return 0;
}

static int zstd_err(size_t zr)
{
	if (ZSTD_getErrorCode(zr) == ZSTD_error_memory_allocation)
		return -ENOMEM;
	ds_debug("blob: zstd: %s", ZSTD_getErrorName(zr));
	return -EBADMSG;
}

/* Streaming decompression of one or more concatenated zstd frames (PBS's
 * decode_all), never writing past ob->max. Frames need not declare their
 * content size (PBS <= 3.2.8 streamed them). */
static int zstd_decode(const uint8_t *src, size_t n, struct outbuf *ob)
{
	ZSTD_DCtx *d = dctx_get();
	ZSTD_inBuffer in = { src, n, 0 };
	unsigned long long want;
	size_t zr;
	int r;

	if (!d)
		return -ENOMEM;
	if (n == 0) {
		ds_debug("blob: empty zstd payload");
		return -EBADMSG;
	}
	ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
	if (ob->grow) {
		/* Trust a declared size only as a first guess: zstd itself
		 * rejects frames whose content disagrees with it. */
		want = ZSTD_getFrameContentSize(src, n);
		if (want == ZSTD_CONTENTSIZE_UNKNOWN || want == ZSTD_CONTENTSIZE_ERROR)
			want = n * 4;
		r = outbuf_reserve(ob, want < ob->max ? (size_t)want : ob->max);
		if (r < 0)
			return r;
	}
	for (;;) {
		ZSTD_outBuffer out = { ob->p, ob->cap, ob->len };
		size_t in_before = in.pos, out_before = out.pos;

		if (out.pos == out.size) {
			uint8_t probe;
			ZSTD_outBuffer spill = { &probe, 1, 0 };

			/* Output full: more room only if allowed, otherwise a
			 * single further byte means the plaintext is too large. */
			if (ob->grow && ob->cap < ob->max) {
				r = outbuf_reserve(ob, ob->cap + 1);
				if (r < 0)
					return r;
				continue;
			}
			zr = ZSTD_decompressStream(d, &spill, &in);
			if (ZSTD_isError(zr))
				return zstd_err(zr);
			if (spill.pos) {
				ds_debug("blob: plaintext exceeds %zu bytes", ob->cap);
				return -EFBIG;
			}
		} else {
			zr = ZSTD_decompressStream(d, &out, &in);
			if (ZSTD_isError(zr))
				return zstd_err(zr);
			ob->len = out.pos;
		}
		if (zr == 0 && in.pos == in.size)
			return 0;
		if (in.pos == in_before && ob->len == out_before) {
			ds_debug("blob: truncated zstd stream");
			return -EBADMSG;
		}
	}
}

static int header_len(int type)
{
	return ds_blob_type_encrypted(type) ? DS_BLOB_ENC_HEADER_LEN : DS_BLOB_HEADER_LEN;
}

int ds_blob_type(const uint8_t *raw, size_t len)
{
	if (len < DS_BLOB_HEADER_LEN)
		return -EBADMSG;
	for (int t = 0; t < (int)DS_ARRAY_SIZE(blob_magic); t++) {
		if (memcmp(raw, blob_magic[t], DS_BLOB_MAGIC_LEN) != 0)
			continue;
		if (len < (size_t)header_len(t))
			return -EBADMSG;
		return t;
	}
	return -EBADMSG;
}

int ds_blob_verify_crc(const uint8_t *raw, size_t len)
{
	int type = ds_blob_type(raw, len);
	size_t hl;
	uint32_t want, got;

	if (type < 0) {
		ds_debug("blob: bad magic or short header (%zu bytes)", len);
		return type;
	}
	hl = (size_t)header_len(type);
	want = ds_le32(raw + DS_BLOB_MAGIC_LEN);
	got = ds_crc32(raw + hl, len - hl);
	if (want != got) {
		ds_debug("blob: CRC mismatch (stored %08x, computed %08x)", want, got);
		return -EBADMSG;
	}
	return 0;
}

static int decode(const uint8_t *raw, size_t len, const struct ds_crypt *c,
		  struct outbuf *ob)
{
	const uint8_t *payload;
	uint8_t *plain = NULL;
	size_t n;
	int type, r;

	r = ds_blob_verify_crc(raw, len);
	if (r < 0)
		return r;
	type = ds_blob_type(raw, len);
	payload = raw + header_len(type);
	n = len - (size_t)header_len(type);

	switch (type) {
	case DS_BLOB_PLAIN:
		r = outbuf_reserve(ob, n);
		if (r < 0)
			return r;
		if (n)
			memcpy(ob->p, payload, n);
		ob->len = n;
		return 0;
	case DS_BLOB_ZSTD:
		return zstd_decode(payload, n, ob);
	}

	if (!c) {
		ds_debug("blob: encrypted, no key");
		return -ENOKEY;
	}
	if (type == DS_BLOB_ENCRYPTED) {
		r = outbuf_reserve(ob, n);
		if (r < 0)
			return r;
		r = ds_crypt_decrypt(c, raw + IV_OFF, raw + TAG_OFF, payload, n, ob->p);
		if (r < 0) {
			/* Do not leave unauthenticated plaintext behind. */
			if (n)
				memset(ob->p, 0, n);
			if (r == -EBADMSG)
				ds_debug("blob: GCM tag mismatch");
			return r;
		}
		ob->len = n;
		return 0;
	}
	plain = malloc(n ? n : 1);
	if (!plain)
		return -ENOMEM;
	r = ds_crypt_decrypt(c, raw + IV_OFF, raw + TAG_OFF, payload, n, plain);
	if (r == -EBADMSG)
		ds_debug("blob: GCM tag mismatch");
	if (r == 0)
		r = zstd_decode(plain, n, ob);
	free(plain);
	return r;
}

/* Reads exactly len bytes at off; -EAGAIN when the file is shorter. */
static int pread_full(int fd, uint8_t *p, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EAGAIN; /* truncated meanwhile */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* The window a zstd payload is read through: small enough for any thread's
 * stack and to stay in the CPU's cache between read and decode. A plain
 * payload is read, checked and hashed in steps of PLAIN_STEP, each while
 * it is still in the cache. */
#define DECODE_WINDOW (64 * 1024)
#define PLAIN_STEP (256 * 1024)

static int zstd_decode_fd(int fd, uint64_t off, uint64_t end, uint32_t *crc,
			  struct ds_sha256 *h, uint8_t *out, size_t out_cap, size_t *ret_len)
{
	uint8_t win[DECODE_WINDOW];
	ZSTD_DCtx *d = stable_dctx_get();
	ZSTD_outBuffer ob = { out, out_cap, 0 };
	size_t zr = 1;
	int r;

	if (!d)
		return -ENOMEM;
	ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
	while (off < end) {
		size_t n = end - off < sizeof(win) ? (size_t)(end - off) : sizeof(win);
		ZSTD_inBuffer in = { win, n, 0 };

		r = pread_full(fd, win, n, off);
		if (r < 0)
			return r;
		*crc = ds_crc32_update(*crc, win, n);
		off += n;
		while (in.pos < in.size) {
			size_t before = ob.pos, in_before = in.pos;

			zr = ZSTD_decompressStream(d, &ob, &in);
			if (ZSTD_isError(zr))
				return -EAGAIN;
			if (h)
				ds_sha256_update(h, out + before, ob.pos - before);
			/* Output full with input left: too large for out. */
			if (ob.pos == before && in.pos == in_before)
				return -EAGAIN;
		}
	}
	/* zr == 0: the last frame ended with the input. Otherwise the stream
	 * was cut short, or output is still held back (never, with a stable
	 * buffer, unless out is full). */
	if (zr != 0)
		return -EAGAIN;
	*ret_len = ob.pos;
	return 0;
}

int ds_blob_decode_fd(int fd, uint64_t file_len, uint8_t *out, size_t out_cap,
		      struct ds_digest *ret_digest, size_t *ret_len, int *ret_type)
{
	uint8_t hdr[DS_BLOB_HEADER_LEN];
	struct ds_sha256 *h = ret_digest ? sha256_get() : NULL;
	uint32_t crc = 0;
	size_t len = 0;
	int type, r;

	if (ret_digest && !h)
		return -ENOMEM;
	if (file_len <= DS_BLOB_HEADER_LEN)
		return -EAGAIN;
	r = pread_full(fd, hdr, sizeof(hdr), 0);
	if (r < 0)
		return r;
	type = ds_blob_type(hdr, sizeof(hdr));
	if (type == DS_BLOB_PLAIN) {
		if (file_len - DS_BLOB_HEADER_LEN > out_cap)
			return -EAGAIN;
		len = (size_t)(file_len - DS_BLOB_HEADER_LEN);
		for (size_t pos = 0; pos < len;) {
			size_t n = len - pos < PLAIN_STEP ? len - pos : PLAIN_STEP;

			r = pread_full(fd, out + pos, n, DS_BLOB_HEADER_LEN + pos);
			if (r < 0)
				goto fail;
			crc = ds_crc32_update(crc, out + pos, n);
			if (h)
				ds_sha256_update(h, out + pos, n);
			pos += n;
		}
	} else if (type == DS_BLOB_ZSTD) {
		r = zstd_decode_fd(fd, DS_BLOB_HEADER_LEN, file_len, &crc, h, out, out_cap, &len);
		if (r < 0)
			goto fail;
	} else {
		return -EAGAIN;
	}
	if (crc != ds_le32(hdr + DS_BLOB_MAGIC_LEN)) {
		r = -EAGAIN;
		goto fail;
	}
	if (h)
		ds_sha256_final(h, ret_digest);
	*ret_len = len;
	if (ret_type)
		*ret_type = type;
	return 0;
fail:
	if (h)
		ds_sha256_final(h, ret_digest); /* resets it for the next blob */
	return r;
}

/* ---- a zstd blob decoded a part at a time ---- */

/* zstd's buffer-less API: the caller hands it exactly the pieces it asks
 * for (frame header, block headers, blocks), and it decodes each block
 * straight after the earlier output, which must stay where it is. Its
 * context (about 94 KiB) is all the state a paused decode needs: no input
 * or window buffer of its own, unlike ZSTD_decompressStream's. */
struct ds_blob_part {
	ZSTD_DCtx *d;
	uint64_t in_off; /* the next encoded byte in the file */
	size_t done;     /* bytes decoded so far */
	size_t len;      /* the frame's content size */
	uint32_t crc;    /* over the encoded bytes read so far */
	uint32_t want_crc;
	uint8_t *out;    /* the buffer of the first decode; zstd keeps pointers into it */
	bool spent;      /* failed: no further call decodes */
};

/* The largest piece the buffer-less API asks for is a whole block. */
static uint8_t *part_scratch_get(void)
{
	struct zctx *z = zctx_get();

	if (z && !z->part_in)
		z->part_in = malloc(ZSTD_BLOCKSIZE_MAX);
	return z ? z->part_in : NULL;
}

size_t ds_blob_part_size(void)
{
	return sizeof(struct ds_blob_part) + ZSTD_estimateDCtxSize();
}

int ds_blob_part_new(int fd, uint64_t file_len, size_t expect_len, size_t cap,
		     struct ds_blob_part **ret)
{
	uint8_t hdr[DS_BLOB_HEADER_LEN + ZSTD_FRAMEHEADERSIZE_MAX];
	size_t n = sizeof(hdr);
	unsigned long long fcs;
	struct ds_blob_part *p;
	int r;

	if (file_len <= DS_BLOB_HEADER_LEN)
		return -EAGAIN;
	if (file_len < n)
		n = (size_t)file_len;
	r = pread_full(fd, hdr, n, 0);
	if (r < 0)
		return r;
	if (ds_blob_type(hdr, n) != DS_BLOB_ZSTD)
		return -EAGAIN;
	/* The decoded size bounds every step and is checked at the end. PBS
	 * <= 3.2.8 wrote frames without it (spec §2.4): the caller's then. */
	fcs = ZSTD_getFrameContentSize(hdr + DS_BLOB_HEADER_LEN, n - DS_BLOB_HEADER_LEN);
	if (fcs == ZSTD_CONTENTSIZE_UNKNOWN)
		fcs = expect_len;
	if (fcs == ZSTD_CONTENTSIZE_ERROR || fcs == 0 || fcs > cap ||
	    (expect_len && fcs != expect_len))
		return -EAGAIN;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->d = ZSTD_createDCtx();
	if (!p->d || ZSTD_isError(ZSTD_decompressBegin(p->d))) {
		ds_blob_part_free(p);
		return -ENOMEM;
	}
	p->in_off = DS_BLOB_HEADER_LEN;
	p->len = (size_t)fcs;
	p->want_crc = ds_le32(hdr + DS_BLOB_MAGIC_LEN);
	*ret = p;
	return 0;
}

size_t ds_blob_part_len(const struct ds_blob_part *p)
{
	return p->len;
}

int ds_blob_part_decode(struct ds_blob_part *p, int fd, uint64_t file_len, uint8_t *out,
			size_t want, size_t *ret_done)
{
	uint8_t *in = part_scratch_get();
	int r = -EAGAIN;

	if (!in)
		return -ENOMEM;
	if (p->spent || (p->out && out != p->out))
		return -EINVAL;
	p->out = out;
	for (;;) {
		size_t n = ZSTD_nextSrcSizeToDecompress(p->d), zr;

		/* Stop when the frame has ended, or with enough decoded and
		 * more to come; all decoded, its checksum (if any) is read. */
		if (n == 0 || (p->done >= want && p->done < p->len))
			break;
		if (n > ZSTD_BLOCKSIZE_MAX || p->in_off + n > file_len)
			goto fail;
		r = pread_full(fd, in, n, p->in_off);
		if (r < 0)
			goto fail;
		r = -EAGAIN;
		p->crc = ds_crc32_update(p->crc, in, n);
		p->in_off += n;
		zr = ZSTD_decompressContinue(p->d, out + p->done, p->len - p->done, in, n);
		if (ZSTD_isError(zr) || zr > p->len - p->done)
			goto fail;
		p->done += zr;
	}
	/* The whole frame decoded: it must be the whole blob, its CRC the one
	 * in the header, its size the one its header gave. */
	if (ZSTD_nextSrcSizeToDecompress(p->d) == 0 &&
	    (p->in_off != file_len || p->crc != p->want_crc || p->done != p->len))
		goto fail;
	*ret_done = p->done;
	return 0;
fail:
	p->spent = true;
	return r;
}

void ds_blob_part_free(struct ds_blob_part *p)
{
	if (!p)
		return;
	ZSTD_freeDCtx(p->d);
	free(p);
}

int ds_blob_decode_into(const uint8_t *raw, size_t len, const struct ds_crypt *c,
			uint8_t *out, size_t out_cap, size_t *ret_len)
{
	struct outbuf ob = { .p = out, .cap = out_cap, .max = out_cap };
	int r = decode(raw, len, c, &ob);

	if (r < 0)
		return r;
	*ret_len = ob.len;
	return 0;
}

int ds_blob_decode(const uint8_t *raw, size_t len, const struct ds_crypt *c,
		   size_t max_len, uint8_t **ret_data, size_t *ret_len)
{
	struct outbuf ob = { .max = max_len, .grow = true };
	uint8_t *p;
	int r;

	r = decode(raw, len, c, &ob);
	if (r < 0) {
		free(ob.p);
		return r;
	}
	/* Never hand out NULL for an empty plaintext; trim a generous guess. */
	if (!ob.p || ob.cap - ob.len > 64 * 1024) {
		p = realloc(ob.p, ob.len ? ob.len : 1);
		if (!p && !ob.p)
			return -ENOMEM;
		if (p)
			ob.p = p;
	}
	*ret_data = ob.p;
	*ret_len = ob.len;
	return 0;
}

/* ---- encoding ---- */

/* PBS >= 3.2.9: one-shot level 1 into a buffer of exactly len bytes; the
 * result is kept when it fits, "destination too small" means incompressible.
 * Returns 1 and *ret_buf (malloc'ed) when compressed, 0 when not. */
static int try_compress(const uint8_t *data, size_t len, uint8_t **ret_buf, size_t *ret_len)
{
	ZSTD_CCtx *cc;
	uint8_t *buf;
	size_t zr;

	if (len == 0)
		return 0;
	cc = cctx_get();
	if (!cc)
		return -ENOMEM;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	zr = ZSTD_compressCCtx(cc, buf, len, data, len, 1);
	if (ZSTD_isError(zr)) {
		free(buf);
		if (ZSTD_getErrorCode(zr) == ZSTD_error_dstSize_tooSmall)
			return 0;
		if (ZSTD_getErrorCode(zr) == ZSTD_error_memory_allocation)
			return -ENOMEM;
		ds_err("blob: zstd compression failed: %s", ZSTD_getErrorName(zr));
		return -EIO;
	}
	*ret_buf = buf;
	*ret_len = zr;
	return 1;
}

int ds_blob_encode_iv(const uint8_t *data, size_t len, const struct ds_crypt *c,
		      bool compress, const uint8_t iv[16], uint8_t **ret_raw,
		      size_t *ret_len)
{
	const uint8_t *payload = data;
	uint8_t *zbuf = NULL, *raw = NULL;
	size_t n = len, hl;
	int type, r;

	if (len > DS_MAX_BLOB_SIZE)
		return -EFBIG;
	if (compress) {
		r = try_compress(data, len, &zbuf, &n);
		if (r < 0)
			return r;
		if (r > 0)
			payload = zbuf;
	}
	if (c)
		type = zbuf ? DS_BLOB_ENCRYPTED_ZSTD : DS_BLOB_ENCRYPTED;
	else
		type = zbuf ? DS_BLOB_ZSTD : DS_BLOB_PLAIN;
	hl = (size_t)header_len(type);

	raw = malloc(hl + n);
	if (!raw) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(raw, blob_magic[type], DS_BLOB_MAGIC_LEN);
	if (c) {
		memcpy(raw + IV_OFF, iv, DS_CRYPT_IV_LEN);
		r = ds_crypt_encrypt(c, iv, payload, n, raw + hl, raw + TAG_OFF);
		if (r < 0)
			goto out;
	} else if (n) {
		memcpy(raw + hl, payload, n);
	}
	ds_put_le32(raw + DS_BLOB_MAGIC_LEN, ds_crc32(raw + hl, n));
	*ret_raw = raw;
	*ret_len = hl + n;
	raw = NULL;
	r = 0;
out:
	free(raw);
	free(zbuf);
	return r;
}

int ds_blob_encode(const uint8_t *data, size_t len, const struct ds_crypt *c,
		   bool compress, uint8_t **ret_raw, size_t *ret_len)
{
	uint8_t iv[DS_CRYPT_IV_LEN] = { 0 };

	if (c && RAND_bytes(iv, sizeof(iv)) != 1) {
		ds_err("blob: no random bytes for the IV");
		return -EIO;
	}
	return ds_blob_encode_iv(data, len, c, compress, iv, ret_raw, ret_len);
}
