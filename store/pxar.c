/* pxar random-access decoder (spec pxar-format.md §2–§5): opening the
 * archive, decoding entries, goodbye-table lookup and listing, file content
 * and symlink targets. Attributes, the hardlink index and SipHash live in
 * pxar_attrs.c.
 *
 * Every offset that comes from the archive is checked against a bound that
 * only ever shrinks: the stream, then the parent directory's goodbye header
 * G, then the child's own span. A child lies in [parent attrs end, parent G)
 * and a hardlink target lies before the hardlink, so no walk can revisit a
 * range, and no read leaves the stream.
 */
#include "store/pxar.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/log.h"
#include "store/pxar_internal.h"
#include "store/util.h"

#define ENTRY_LEN 40
#define ENTRY_V1_LEN 32
#define NSEC_PER_SEC UINT64_C(1000000000)
#define ADVISE_AHEAD 4 /* children whose place a listing announces ahead */

_Static_assert(DS_PXAR_NAME_MAX == PXAR_NAME_MAX, "pxar.h and pxar_internal.h disagree");

int pxar_bad(uint64_t off, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ds_err("pxar: offset %llu: %s", (unsigned long long)off, msg);
	return -EIO;
}

int pxar_read(struct ds_pxar *px, void *buf, size_t len, uint64_t off, uint64_t bound,
	      const char *what)
{
	int r;

	if (bound > px->meta.size || off > bound || len > bound - off)
		return pxar_bad(off, "%s of %zu bytes crosses %llu", what, len,
				(unsigned long long)bound);
	if (len == 0)
		return 0;
	r = px->meta.pread(px->meta.ctx, buf, len, off);
	return r < 0 ? r : 0;
}

int pxar_parse_hdr(const uint8_t *b, uint64_t off, uint64_t bound, struct pxar_hdr *ret)
{
	uint64_t type = ds_le64(b), full = ds_le64(b + 8), size, max = UINT64_MAX;
	bool exact = false;

	if (full < PXAR_HDR)
		return pxar_bad(off, "item size %llu below the header size",
				(unsigned long long)full);
	size = full - PXAR_HDR;
	switch (type) {
	case PXAR_FILENAME:
	case PXAR_SYMLINK:
		max = PXAR_NAME_MAX + 1;
		break;
	case PXAR_HARDLINK:
		max = 8 + PXAR_NAME_MAX + 1;
		break;
	case PXAR_XATTR:
	case PXAR_FCAPS:
		max = PXAR_XATTR_MAX;
		break;
	case PXAR_DEVICE:
	case PXAR_ACL_USER:
	case PXAR_ACL_GROUP:
	case PXAR_ACL_DEFAULT_USER:
	case PXAR_ACL_DEFAULT_GROUP:
	case PXAR_PAYLOAD_REF:
		max = 16;
		exact = true;
		break;
	case PXAR_ACL_DEFAULT:
		max = 32;
		exact = true;
		break;
	case PXAR_ACL_GROUP_OBJ:
	case PXAR_QUOTA_PROJID:
	case PXAR_FORMAT_VERSION:
		max = 8;
		exact = true;
		break;
	case PXAR_ENTRY:
		max = ENTRY_LEN;
		exact = true;
		break;
	case PXAR_ENTRY_V1:
		max = ENTRY_V1_LEN;
		exact = true;
		break;
	case PXAR_GOODBYE:
		if (size < PXAR_GB_REC || size % PXAR_GB_REC != 0)
			return pxar_bad(off, "goodbye table of %llu bytes",
					(unsigned long long)size);
		break;
	case PXAR_PRELUDE:
	case PXAR_PAYLOAD:
		break;
	default:
		return pxar_bad(off, "unknown item type %016llx", (unsigned long long)type);
	}
	if (size > max || (exact && size != max))
		return pxar_bad(off, "item type %016llx has %llu content bytes",
				(unsigned long long)type, (unsigned long long)size);
	if (off > bound || bound - off < PXAR_HDR || size > bound - off - PXAR_HDR)
		return pxar_bad(off, "item of %llu bytes crosses %llu", (unsigned long long)full,
				(unsigned long long)bound);
	ret->type = type;
	ret->size = size;
	return 0;
}

int pxar_read_hdr(struct ds_pxar *px, uint64_t off, uint64_t bound, struct pxar_hdr *ret)
{
	uint8_t b[PXAR_HDR];
	int r;

	r = pxar_read(px, b, sizeof(b), off, bound, "item header");
	if (r < 0)
		return r;
	return pxar_parse_hdr(b, off, bound, ret);
}

/* The stat fields PBS does not check either (spec §1.3): PBS's decoder takes
 * any mode and nanoseconds. Mode bits outside S_IFMT | 07777 mean nothing
 * to Linux (PBS passes them on; the kernel and PBS's restore drop them):
 * dropped. Nanoseconds are below 1e9 in every archive PBS writes; a larger
 * value is clamped to 999999999, as struct timespec must be below 1e9 and
 * a copy of the time (cp -p, rsync -t, PBS's own restore) would fail with
 * EINVAL. An unknown file type is settled by decode_entry. */
static void parse_stat(const uint8_t *b, uint64_t off, const struct pxar_hdr *h,
		       struct ds_pxar_entry *e)
{
	const uint8_t *s = b + PXAR_HDR;
	uint64_t mode = ds_le64(s), nsec;

	e->flags = ds_le64(s + 8);
	e->uid = ds_le32(s + 16);
	e->gid = ds_le32(s + 20);
	if (h->type == PXAR_ENTRY) {
		e->mtime_sec = (int64_t)ds_le64(s + 24);
		nsec = ds_le32(s + 32);
	} else {
		uint64_t ns = ds_le64(s + 24);

		e->mtime_sec = (int64_t)(ns / NSEC_PER_SEC);
		nsec = ns % NSEC_PER_SEC;
	}
	if (nsec >= NSEC_PER_SEC) {
		ds_debug("pxar: offset %llu: mtime nanoseconds %llu taken as 999999999",
			 (unsigned long long)off, (unsigned long long)nsec);
		nsec = NSEC_PER_SEC - 1;
	}
	e->mtime_nsec = (uint32_t)nsec;
	e->mode = (mode_t)(mode & (S_IFMT | 07777));
}

static bool known_type(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFLNK:
	case S_IFBLK:
	case S_IFCHR:
	case S_IFIFO:
	case S_IFSOCK:
		return true;
	default:
		return false;
	}
}

enum terminal { T_NONE, T_PAYLOAD, T_SYMLINK, T_DEVICE };

static int terminal_item(struct ds_pxar *px, uint64_t pos, uint64_t bound,
			 const struct pxar_hdr *h, struct ds_pxar_entry *e, enum terminal *t)
{
	uint8_t b[16];
	uint64_t poff, psize, ps = px->payload.size;
	int r;

	switch (h->type) {
	case PXAR_PAYLOAD:
		if (px->version != 1)
			return pxar_bad(pos, "PAYLOAD in a split metadata archive");
		e->data_off = pos + PXAR_HDR;
		e->size = h->size;
		*t = T_PAYLOAD;
		return 0;
	case PXAR_PAYLOAD_REF:
		if (px->version != 2)
			return pxar_bad(pos, "PAYLOAD_REF in a v1 archive");
		r = pxar_read(px, b, 16, pos + PXAR_HDR, bound, "PAYLOAD_REF");
		if (r < 0)
			return r;
		poff = ds_le64(b);
		psize = ds_le64(b + 8);
		/* Between the markers: _open checked ps >= 2 * PXAR_HDR. */
		if (poff < PXAR_HDR || poff > ps - 2 * PXAR_HDR ||
		    psize > ps - 2 * PXAR_HDR - poff)
			return pxar_bad(pos, "PAYLOAD_REF {%llu, %llu} beyond the payload stream",
					(unsigned long long)poff, (unsigned long long)psize);
		e->data_off = poff + PXAR_HDR;
		e->data_in_payload = true;
		e->size = psize;
		*t = T_PAYLOAD;
		return 0;
	case PXAR_SYMLINK:
		if (h->size < 2)
			return pxar_bad(pos, "empty symlink target");
		e->link_off = pos + PXAR_HDR;
		e->size = h->size - 1;
		*t = T_SYMLINK;
		return 0;
	case PXAR_DEVICE:
		r = pxar_read(px, b, 16, pos + PXAR_HDR, bound, "DEVICE");
		if (r < 0)
			return r;
		e->rdev_major = ds_le64(b);
		e->rdev_minor = ds_le64(b + 8);
		*t = T_DEVICE;
		return 0;
	default:
		return pxar_bad(pos, "unexpected item type %016llx in an entry",
				(unsigned long long)h->type);
	}
}

/* The attribute items an entry holds at most one of: upstream's decoder
 * refuses the entry at the second (read_current_item), so a second FCAPS
 * is not a second security.capability. A bit each, 0 for other types. */
static unsigned once_bit(uint64_t type)
{
	switch (type) {
	case PXAR_FCAPS:
		return 1u << 0;
	case PXAR_QUOTA_PROJID:
		return 1u << 1;
	case PXAR_ACL_GROUP_OBJ:
		return 1u << 2;
	case PXAR_ACL_DEFAULT:
		return 1u << 3;
	default:
		return 0;
	}
}

/* Decodes the entry whose ENTRY item is at off; its items must end by
 * bound. Returns 1 (and nothing else) when off holds a HARDLINK instead. A
 * directory's goodbye fields are filled by open_dir. */
static int decode_entry(struct ds_pxar *px, uint64_t off, uint64_t bound,
			struct ds_pxar_entry *e)
{
	uint8_t b[PXAR_HDR + ENTRY_LEN];
	enum terminal t = T_NONE;
	struct pxar_hdr h;
	unsigned seen = 0, once;
	uint64_t pos;
	size_t len;
	int r;

	if (off > bound || bound - off < PXAR_HDR)
		return pxar_bad(off, "entry beyond %llu", (unsigned long long)bound);
	len = bound - off < sizeof(b) ? (size_t)(bound - off) : sizeof(b);
	r = pxar_read(px, b, len, off, bound, "entry");
	if (r < 0)
		return r;
	r = pxar_parse_hdr(b, off, bound, &h);
	if (r < 0)
		return r;
	if (h.type == PXAR_HARDLINK)
		return 1;
	if (h.type != PXAR_ENTRY && h.type != PXAR_ENTRY_V1)
		return pxar_bad(off, "expected ENTRY, found type %016llx",
				(unsigned long long)h.type);
	memset(e, 0, sizeof(*e));
	e->entry_off = off;
	parse_stat(b, off, &h, e);
	pos = off + PXAR_HDR + h.size;
	e->attrs_off = pos;
	while (pos < bound) {
		r = pxar_read_hdr(px, pos, bound, &h);
		if (r < 0)
			return r;
		if (h.type == PXAR_FILENAME || h.type == PXAR_GOODBYE)
			break;
		once = once_bit(h.type);
		if (once & seen)
			return pxar_bad(pos, "second item of type %016llx in an entry",
					(unsigned long long)h.type);
		seen |= once;
		if (once || h.type == PXAR_XATTR || h.type == PXAR_ACL_USER ||
		    h.type == PXAR_ACL_GROUP || h.type == PXAR_ACL_DEFAULT_USER ||
		    h.type == PXAR_ACL_DEFAULT_GROUP) {
			pos += PXAR_HDR + h.size;
			continue;
		}
		r = terminal_item(px, pos, bound, &h, e, &t);
		if (r < 0)
			return r;
		break;
	}
	e->attrs_end = pos;
	e->end = t == T_NONE ? pos : pos + PXAR_HDR + h.size;

	/* An unknown file type (no PBS client writes one): like PBS's
	 * decoder, the item that ends the entry tells what it is, and an
	 * entry without one is a directory (open_dir then wants its goodbye
	 * table). A device cannot tell block from character: refused. */
	if (!known_type(e->mode)) {
		mode_t type = t == T_PAYLOAD ? S_IFREG : t == T_SYMLINK ? S_IFLNK
			    : t == T_NONE ? S_IFDIR : 0;

		if (!type)
			return pxar_bad(off, "device of mode %llo: unknown file type",
					(unsigned long long)e->mode);
		ds_warn("pxar: offset %llu: mode %llo: unknown file type, taken as %s",
			(unsigned long long)off, (unsigned long long)e->mode,
			type == S_IFREG ? "a file" : type == S_IFLNK ? "a symlink"
					: "a directory");
		e->mode = (e->mode & ~(mode_t)S_IFMT) | type;
	}
	switch (e->mode & S_IFMT) {
	case S_IFREG:
		r = t == T_PAYLOAD ? 0 : -EIO;
		break;
	case S_IFLNK:
		r = t == T_SYMLINK ? 0 : -EIO;
		break;
	case S_IFBLK:
	case S_IFCHR:
		r = t == T_DEVICE ? 0 : -EIO;
		break;
	default:
		r = t == T_NONE ? 0 : -EIO;
		break;
	}
	if (r < 0)
		return pxar_bad(off, "entry of mode %llo ends in the wrong item",
				(unsigned long long)e->mode);
	return 0;
}

/* Finds the goodbye table of directory e that ends at end (§3.1). The tail
 * record must lead back to start: the directory's ENTRY, or 0 for the root. */
static int open_dir(struct ds_pxar *px, struct ds_pxar_entry *e, uint64_t end, uint64_t start)
{
	uint8_t t[PXAR_GB_REC];
	struct pxar_hdr h;
	uint64_t gsize, g;
	int r;

	if (end < e->attrs_end || end - e->attrs_end < PXAR_HDR + PXAR_GB_REC)
		return pxar_bad(e->entry_off, "directory too short for a goodbye table");
	r = pxar_read(px, t, sizeof(t), end - PXAR_GB_REC, end, "goodbye tail");
	if (r < 0)
		return r;
	gsize = ds_le64(t + 16);
	if (ds_le64(t) != PXAR_GOODBYE_TAIL_MARKER || gsize < PXAR_HDR + PXAR_GB_REC ||
	    gsize > end - e->attrs_end)
		return pxar_bad(end - PXAR_GB_REC, "bad goodbye tail record");
	g = end - gsize;
	r = pxar_read_hdr(px, g, end, &h);
	if (r < 0)
		return r;
	if (h.type != PXAR_GOODBYE || h.size != gsize - PXAR_HDR)
		return pxar_bad(g, "goodbye tail does not match the GOODBYE item");
	if (ds_le64(t + 8) != g - start)
		return pxar_bad(g, "goodbye tail does not lead back to the directory entry");
	e->goodbye_off = g;
	e->end = end;
	return 0;
}

/* Directory sanity (the struct may come from a caller) and child count.
 * Like PBS, no limit on the number of children: the table lies inside the
 * metadata stream, so a listing's copy of it (ds_pxar_dir_open) is never
 * larger than the stream. */
static int dir_records(struct ds_pxar *px, const struct ds_pxar_entry *dir, uint64_t *ret_n)
{
	uint64_t g = dir->goodbye_off, end = dir->end;

	if (!S_ISDIR(dir->mode))
		return -ENOTDIR;
	if (end > px->meta.size || g < dir->attrs_end || g > end ||
	    end - g < PXAR_HDR + PXAR_GB_REC || (end - g - PXAR_HDR) % PXAR_GB_REC != 0)
		return pxar_bad(g, "not a directory's goodbye table");
	*ret_n = (end - g - PXAR_HDR) / PXAR_GB_REC - 1;
	return 0;
}

static bool name_valid(const char *name, size_t len)
{
	if (len == 0 || memchr(name, '/', len) || memchr(name, 0, len))
		return false;
	return !(len == 1 && name[0] == '.') && !(len == 2 && name[0] == '.' && name[1] == '.');
}

/* The hardlink at F (HARDLINK item at e_off): resolves to the target file. */
static int resolve_hardlink(struct ds_pxar *px, uint64_t f, uint64_t e_off, uint64_t bound,
			    struct ds_pxar_entry *e)
{
	struct pxar_hdr h;
	uint8_t b[8];
	uint64_t delta, tf;
	int r;

	r = pxar_read_hdr(px, e_off, bound, &h);
	if (r < 0)
		return r;
	if (h.size < 8 + 2)
		return pxar_bad(e_off, "HARDLINK item too short");
	r = pxar_read(px, b, sizeof(b), e_off + PXAR_HDR, bound, "HARDLINK");
	if (r < 0)
		return r;
	delta = ds_le64(b);
	if (delta == 0 || delta > f)
		return pxar_bad(e_off, "hardlink delta %llu does not point backwards",
				(unsigned long long)delta);
	tf = f - delta;
	r = pxar_read_hdr(px, tf, f, &h);
	if (r < 0)
		return r;
	if (h.type != PXAR_FILENAME)
		return pxar_bad(e_off, "hardlink target %llu is not a FILENAME",
				(unsigned long long)tf);
	r = decode_entry(px, tf + PXAR_HDR + h.size, f, e);
	if (r < 0)
		return r;
	if (r > 0 || !S_ISREG(e->mode))
		return pxar_bad(e_off, "hardlink target %llu is not a regular file",
				(unsigned long long)tf);
	e->hardlink = true;
	return 0;
}

/* Child record rec of dir: checks the FILENAME and decodes the child. With
 * want != NULL, returns 1 without decoding when the name differs; otherwise
 * the name is copied to name (PXAR_NAME_MAX + 1 bytes) and its length to
 * *name_len. */
static int decode_child(struct ds_pxar *px, const struct ds_pxar_entry *dir,
			const uint8_t *rec, const char *want, size_t want_len, char *name,
			size_t *name_len, struct ds_pxar_entry *e)
{
	uint64_t g = dir->goodbye_off, o = ds_le64(rec + 8), s = ds_le64(rec + 16);
	uint64_t f, e_off, cend, bound;
	char buf[PXAR_NAME_MAX + 1], *dst;
	struct pxar_hdr h;
	int r;

	if (o > g || g - o < dir->attrs_end)
		return pxar_bad(g, "goodbye offset %llu outside the directory",
				(unsigned long long)o);
	f = g - o;
	r = pxar_read_hdr(px, f, g, &h);
	if (r < 0)
		return r;
	if (h.type != PXAR_FILENAME)
		return pxar_bad(f, "goodbye record does not point to a FILENAME");
	if (want && h.size != want_len + 1)
		return 1;
	dst = want ? buf : name;
	r = pxar_read(px, dst, h.size, f + PXAR_HDR, g, "FILENAME");
	if (r < 0)
		return r;
	if (h.size < 2 || dst[h.size - 1] != 0 || !name_valid(dst, h.size - 1))
		return pxar_bad(f, "invalid file name");
	if (want && memcmp(want, dst, want_len) != 0)
		return 1;
	if (name_len)
		*name_len = h.size - 1;

	e_off = f + PXAR_HDR + h.size;
	if (s > UINT64_MAX - f)
		return pxar_bad(f, "child span %llu", (unsigned long long)s);
	cend = f + s;
	/* File spans may be inflated in split archives (§2.3): clamp. */
	bound = cend < g ? cend : g;
	r = decode_entry(px, e_off, bound, e);
	if (r < 0)
		return r;
	if (r > 0)
		return resolve_hardlink(px, f, e_off, bound, e);
	if (S_ISDIR(e->mode)) {
		if (cend > g)
			return pxar_bad(f, "directory span crosses its parent's goodbye table");
		return open_dir(px, e, cend, e->entry_off);
	}
	return 0;
}

/* The payload stream's markers (§4): PAYLOAD_START_MARKER at 0 and the
 * 16-byte PAYLOAD_TAIL_MARKER at the end, which upstream checks when it
 * opens a split archive: a stream without them is not this archive's
 * payload, or is cut short. A marker whose bytes cannot be read (a damaged
 * or missing chunk) passes: the reads of that chunk fail on their own, the
 * files elsewhere stay readable. */
static int check_payload_markers(const struct ds_pxar_source *p)
{
	uint8_t b[PXAR_HDR];

	if (p->size < 2 * PXAR_HDR) {
		ds_err("pxar: payload stream of %llu bytes is too short for its markers",
		       (unsigned long long)p->size);
		return -EIO;
	}
	if (p->pread(p->ctx, b, sizeof(b), 0) == 0 && ds_le64(b) != PXAR_PAYLOAD_START_MARKER) {
		ds_err("pxar: payload offset 0: no PAYLOAD_START_MARKER (type %016llx)",
		       (unsigned long long)ds_le64(b));
		return -EIO;
	}
	if (p->pread(p->ctx, b, sizeof(b), p->size - PXAR_HDR) == 0 &&
	    (ds_le64(b) != PXAR_PAYLOAD_TAIL_MARKER || ds_le64(b + 8) != PXAR_HDR)) {
		ds_err("pxar: payload offset %llu: no PAYLOAD_TAIL_MARKER at the end",
		       (unsigned long long)(p->size - PXAR_HDR));
		return -EIO;
	}
	return 0;
}

int ds_pxar_open(const struct ds_pxar_source *meta, const struct ds_pxar_source *payload,
		 struct ds_pxar **ret)
{
	struct ds_pxar *px;
	struct pxar_hdr h;
	uint8_t b[PXAR_GB_REC];
	uint64_t l, gsize, g, pos = 0;
	int r;

	if (!meta || !meta->pread || (payload && !payload->pread))
		return -EINVAL;
	px = calloc(1, sizeof(*px));
	if (!px)
		return -ENOMEM;
	px->meta = *meta;
	if (payload)
		px->payload = *payload;
	pthread_mutex_init(&px->lock, NULL);
	l = meta->size;

	r = -EIO;
	if (l < 2 * PXAR_HDR + ENTRY_V1_LEN + PXAR_GB_REC) {
		ds_err("pxar: archive of %llu bytes is too short", (unsigned long long)l);
		goto fail;
	}
	r = pxar_read(px, b, sizeof(b), l - PXAR_GB_REC, l, "root goodbye tail");
	if (r < 0)
		goto fail;
	gsize = ds_le64(b + 16);
	if (ds_le64(b) != PXAR_GOODBYE_TAIL_MARKER || gsize > l ||
	    ds_le64(b + 8) != l - gsize) {
		r = pxar_bad(l - PXAR_GB_REC, "bad root goodbye tail record");
		goto fail;
	}
	g = l - gsize;

	r = pxar_read_hdr(px, 0, g, &h);
	if (r < 0)
		goto fail;
	px->version = 1;
	if (h.type == PXAR_FORMAT_VERSION) {
		r = pxar_read(px, b, 8, PXAR_HDR, g, "FORMAT_VERSION");
		if (r < 0)
			goto fail;
		if (ds_le64(b) != 1 && ds_le64(b) != 2) {
			r = pxar_bad(0, "format version %llu", (unsigned long long)ds_le64(b));
			goto fail;
		}
		px->version = (int)ds_le64(b);
		pos = PXAR_HDR + 8;
		r = pxar_read_hdr(px, pos, g, &h);
		if (r < 0)
			goto fail;
		if (h.type == PXAR_PRELUDE)
			pos += PXAR_HDR + h.size;
	}
	if ((px->version == 2) != (payload != NULL)) {
		ds_err("pxar: a format v%d archive %s a payload stream", px->version,
		       payload ? "does not take" : "needs");
		r = -EINVAL;
		goto fail;
	}
	if (payload) {
		r = check_payload_markers(payload);
		if (r < 0)
			goto fail;
	}
	r = decode_entry(px, pos, g, &px->root);
	if (r > 0 || (r == 0 && !S_ISDIR(px->root.mode)))
		r = pxar_bad(pos, "the root is not a directory");
	if (r < 0)
		goto fail;
	r = open_dir(px, &px->root, l, 0);
	if (r < 0)
		goto fail;
	*ret = px;
	return 0;

fail:
	ds_pxar_free(px);
	return r;
}

void ds_pxar_free(struct ds_pxar *px)
{
	if (!px)
		return;
	pxar_links_free(px);
	pthread_mutex_destroy(&px->lock);
	free(px);
}

int ds_pxar_format_version(const struct ds_pxar *px)
{
	return px->version;
}

void ds_pxar_root(const struct ds_pxar *px, struct ds_pxar_entry *ret)
{
	*ret = px->root;
}

int ds_pxar_lookup(struct ds_pxar *px, const struct ds_pxar_entry *dir, const char *name,
		   size_t len, struct ds_pxar_entry *ret)
{
	/* Holds right subtrees still to search after an equal hash whose name
	 * differed; one per tree level at most, and a table of fewer than
	 * 2^64 / 24 < 2^60 records has at most 60 levels. */
	uint64_t stack[64], n = 0, i, hash = 0;
	uint8_t rec[PXAR_GB_REC];
	struct ds_pxar_entry e;
	size_t sp = 0;
	int r;

	r = dir_records(px, dir, &n);
	if (r < 0)
		return r;
	if (len > PXAR_NAME_MAX)
		return -ENAMETOOLONG;
	if (!name_valid(name, len))
		return -ENOENT;
	r = pxar_siphash(name, len, &hash);
	if (r < 0)
		return r;
	stack[sp++] = 0;
	while (sp > 0) {
		i = stack[--sp];
		while (i < n) {
			r = pxar_read(px, rec, sizeof(rec),
				      dir->goodbye_off + PXAR_HDR + i * PXAR_GB_REC, dir->end,
				      "goodbye record");
			if (r < 0)
				return r;
			if (hash < ds_le64(rec)) {
				i = 2 * i + 1;
				continue;
			}
			if (hash > ds_le64(rec)) {
				i = 2 * i + 2;
				continue;
			}
			r = decode_child(px, dir, rec, name, len, NULL, NULL, &e);
			if (r < 0)
				return r;
			if (r == 0) {
				*ret = e;
				return 0;
			}
			/* Equal hashes may sit in both subtrees (§2.5). */
			if (sp == DS_ARRAY_SIZE(stack))
				return pxar_bad(dir->goodbye_off, "goodbye tree too deep");
			stack[sp++] = 2 * i + 2;
			i = 2 * i + 1;
		}
	}
	return -ENOENT;
}

/* A child's goodbye record (hash, offset, size), copied to be sorted. */
struct child_rec {
	uint8_t rec[PXAR_GB_REC];
};

/* Archive order: the FILENAME at G - offset, so a larger offset comes first. */
static int child_cmp(const void *a, const void *b)
{
	uint64_t x = ds_le64(((const struct child_rec *)a)->rec + 8);
	uint64_t y = ds_le64(((const struct child_rec *)b)->rec + 8);

	return x < y ? 1 : x > y ? -1 : 0;
}

/* Tells the source where the child of record rec starts (if it is inside
 * the directory; decode_child checks it for real). */
static void advise_child(struct ds_pxar *px, const struct ds_pxar_entry *dir, const uint8_t *rec)
{
	uint64_t o = ds_le64(rec + 8);

	if (o <= dir->goodbye_off)
		px->meta.advise(px->meta.ctx, dir->goodbye_off - o);
}

/* The children are listed in the order they lie in the archive, not in the
 * goodbye table's (hash) order: a listing then reads the directory's span
 * front to back, each chunk once, and tells the source what comes next
 * (advise) so it can load it meanwhile. In hash order every child is a jump
 * to a random place in the span, and a directory larger than the chunk
 * cache loads a chunk per child (twice with READDIRPLUS). The records are
 * copied whole (24 bytes a child, no more than the table's own size). */
struct ds_pxar_dir {
	struct ds_pxar_entry dir;
	size_t n;
	struct child_rec kids[];
};

int ds_pxar_dir_open(struct ds_pxar *px, const struct ds_pxar_entry *dir,
		     struct ds_pxar_dir **ret)
{
	struct ds_pxar_dir *d;
	uint64_t n = 0;
	int r;

	r = dir_records(px, dir, &n);
	if (r < 0)
		return r;
	if (n > (SIZE_MAX - sizeof(*d)) / sizeof(d->kids[0]))
		return -ENOMEM;
	d = malloc(sizeof(*d) + (size_t)n * sizeof(d->kids[0]));
	if (!d)
		return -ENOMEM;
	d->dir = *dir;
	d->n = (size_t)n;
	r = pxar_read(px, d->kids, (size_t)n * PXAR_GB_REC, dir->goodbye_off + PXAR_HDR, dir->end,
		      "goodbye table");
	if (r < 0) {
		free(d);
		return r;
	}
	qsort(d->kids, (size_t)n, sizeof(d->kids[0]), child_cmp);
	*ret = d;
	return 0;
}

size_t ds_pxar_dir_count(const struct ds_pxar_dir *d)
{
	return d->n;
}

int ds_pxar_dir_child(struct ds_pxar *px, const struct ds_pxar_dir *d, size_t i, size_t from,
		      char *name, size_t *ret_len, struct ds_pxar_entry *ret)
{
	if (i >= d->n)
		return -EINVAL;
	/* A sliding window: the first child of a run announces the next
	 * ADVISE_AHEAD, each later one the one ADVISE_AHEAD after it. */
	if (px->meta.advise)
		for (size_t j = i + 1; j < d->n && j <= i + ADVISE_AHEAD; j++)
			if (i == from || j == i + ADVISE_AHEAD)
				advise_child(px, &d->dir, d->kids[j].rec);
	return decode_child(px, &d->dir, d->kids[i].rec, NULL, 0, name, ret_len, ret);
}

void ds_pxar_dir_free(struct ds_pxar_dir *d)
{
	free(d);
}

int ds_pxar_readdir(struct ds_pxar *px, const struct ds_pxar_entry *dir, size_t start,
		    ds_pxar_dir_fn fn, void *ud)
{
	char name[PXAR_NAME_MAX + 1];
	struct ds_pxar_entry e;
	struct ds_pxar_dir *d;
	size_t len;
	int r;

	r = ds_pxar_dir_open(px, dir, &d);
	if (r < 0)
		return r;
	for (size_t i = start; r == 0 && i < d->n; i++) {
		r = ds_pxar_dir_child(px, d, i, start, name, &len, &e);
		if (r == 0)
			r = fn(ud, name, len, &e);
	}
	ds_pxar_dir_free(d);
	return r;
}

int ds_pxar_child_count(struct ds_pxar *px, const struct ds_pxar_entry *dir, size_t *ret)
{
	uint64_t n = 0;
	int r;

	r = dir_records(px, dir, &n);
	if (r < 0)
		return r;
	*ret = (size_t)n;
	return 0;
}

/* The PAYLOAD header in front of a split archive's file data (§3.4). */
static int check_payload(struct ds_pxar *px, const struct ds_pxar_entry *e, bool unreadable_ok)
{
	uint64_t ps = px->payload.size, hoff = e->data_off - PXAR_HDR;
	uint8_t b[PXAR_HDR];
	int r;

	if (!px->payload.pread || e->data_off < PXAR_HDR || e->data_off > ps ||
	    e->size > ps - e->data_off)
		return pxar_bad(e->entry_off, "file data outside the payload stream");
	r = px->payload.pread(px->payload.ctx, b, sizeof(b), hoff);
	if (r < 0)
		return unreadable_ok ? 0 : r;
	if (ds_le64(b) != PXAR_PAYLOAD || ds_le64(b + 8) != e->size + PXAR_HDR) {
		ds_err("pxar: payload offset %llu: no PAYLOAD header for the %llu-byte file "
		       "at %llu", (unsigned long long)hoff, (unsigned long long)e->size,
		       (unsigned long long)e->entry_off);
		return -EIO;
	}
	return 0;
}

int ds_pxar_check_content(struct ds_pxar *px, const struct ds_pxar_entry *e, bool unreadable_ok)
{
	uint64_t ms = px->meta.size;

	if (S_ISDIR(e->mode))
		return -EISDIR;
	if (!S_ISREG(e->mode))
		return -EINVAL;
	if (e->data_in_payload)
		return check_payload(px, e, unreadable_ok);
	if (e->data_off > ms || e->size > ms - e->data_off)
		return pxar_bad(e->entry_off, "file data outside the archive");
	return 0;
}

ssize_t ds_pxar_read(struct ds_pxar *px, const struct ds_pxar_entry *e, void *buf, size_t len,
		     uint64_t off)
{
	uint64_t ms = px->meta.size;
	size_t n;
	int r;

	if (S_ISDIR(e->mode))
		return -EISDIR;
	if (!S_ISREG(e->mode))
		return -EINVAL;
	if (off >= e->size || len == 0)
		return 0;
	n = e->size - off < len ? (size_t)(e->size - off) : len;
	if (n > SSIZE_MAX)
		n = SSIZE_MAX;
	r = ds_pxar_check_content(px, e, false);
	if (r < 0)
		return r;
	if (e->data_in_payload)
		r = px->payload.pread(px->payload.ctx, buf, n, e->data_off + off);
	else
		r = pxar_read(px, buf, n, e->data_off + off, ms, "file data");
	return r < 0 ? r : (ssize_t)n;
}

int ds_pxar_readlink(struct ds_pxar *px, const struct ds_pxar_entry *e, char *buf, size_t len)
{
	int r;

	if (!S_ISLNK(e->mode))
		return -EINVAL;
	if (e->size == 0 || e->size > PXAR_NAME_MAX)
		return pxar_bad(e->entry_off, "symlink target of %llu bytes",
				(unsigned long long)e->size);
	if (len < e->size + 1)
		return -ERANGE;
	r = pxar_read(px, buf, e->size + 1, e->link_off, px->meta.size, "symlink target");
	if (r < 0)
		return r;
	if (buf[e->size] != 0 || memchr(buf, 0, e->size))
		return pxar_bad(e->link_off, "symlink target with a NUL byte or none at its end");
	return (int)e->size;
}
