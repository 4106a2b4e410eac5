/* datastore.cfg as text: the section-config line grammar, the writer and
 * maintenance updates (spec §6.3). What values mean is config_schema.c. */
#include "store/config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/log.h"
#include "store/names.h"
#include "store/util.h"

/* datastore.cfg is a few hundred bytes per store; anything near this is not
 * a config file. */
#define CONFIG_MAX_SIZE (16 * DS_MIB)

static const char *const maintenance_names[] = {
	[DS_MAINT_NONE] = "",
	[DS_MAINT_READ_ONLY] = "read-only",
	[DS_MAINT_OFFLINE] = "offline",
	[DS_MAINT_DELETE] = "delete",
	[DS_MAINT_UNMOUNT] = "unmount",
	[DS_MAINT_S3_REFRESH] = "s3-refresh",
};

int ds_maintenance_parse(const char *s)
{
	if (!s)
		return -EINVAL;
	for (size_t i = 1; i < DS_ARRAY_SIZE(maintenance_names); i++)
		if (strcmp(s, maintenance_names[i]) == 0)
			return (int)i;
	return -EINVAL;
}

const char *ds_maintenance_name(enum ds_maintenance m)
{
	return (size_t)m < DS_ARRAY_SIZE(maintenance_names) ? maintenance_names[m] : "";
}

int ds_maintenance_message_display(const char *msg, char **ret)
{
	size_t n = 0, chars;
	bool control = false;
	char *out;

	*ret = NULL;
	if (!msg || !*msg)
		return 0;
	out = malloc(strlen(msg) + 1);
	if (!out)
		return -ENOMEM;
	for (const char *p = msg; *p;) {
		int hi = p[0] == '%' ? ds_hex_digit(p[1]) : -1;
		int lo = hi >= 0 ? ds_hex_digit(p[2]) : -1;

		if (lo >= 0) {
			out[n++] = (char)(hi << 4 | lo);
			p += 3;
		} else {
			out[n++] = *p++;
		}
	}
	out[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			control = true;
	if (control) {
		/* out holds strlen(msg) + 1 bytes */
		strcpy(out, msg);
	} else if (ds_utf8_count(out, n, &chars) < 0) {
		free(out);
		return 0;
	}
	*ret = out;
	return 0;
}

/* --- section-config parser (proxmox-section-config) --- */

struct parser {
	const char *origin;
	struct ds_config *cfg;
	size_t cap;
	struct ds_datastore_cfg *cur; /* section being read, or NULL */
	unsigned cur_line;            /* its header line */
};

static int perr(const struct parser *p, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int perr(const struct parser *p, unsigned line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ds_err("%s:%u: %s", p->origin, line, msg);
	return -EINVAL;
}

/* Length of the Unicode White_Space character at s (< end), or 0. Matching
 * the UTF-8 bytes directly: Rust's trim() and split on whitespace use the
 * Unicode set, so U+00A0 or U+3000 separate and trim there too. */
static size_t space_at(const char *s, const char *end)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t avail = (size_t)(end - s);

	if ((*p >= 0x09 && *p <= 0x0d) || *p == ' ')
		return 1;
	if (avail >= 2 && p[0] == 0xc2 && (p[1] == 0x85 || p[1] == 0xa0))
		return 2;
	if (avail < 3)
		return 0;
	if ((p[0] == 0xe1 && p[1] == 0x9a && p[2] == 0x80) ||
	    (p[0] == 0xe2 && p[1] == 0x80 &&
	     (p[2] <= 0x8a || p[2] == 0xa8 || p[2] == 0xa9 || p[2] == 0xaf)) ||
	    (p[0] == 0xe2 && p[1] == 0x81 && p[2] == 0x9f) ||
	    (p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80))
		return 3;
	return 0;
}

/* Byte length of the (valid UTF-8) character at s. */
static size_t char_len(const char *s)
{
	unsigned char c = (unsigned char)*s;

	return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

static void trim(const char **s, const char **e)
{
	const char *p, *last;
	size_t n;

	while (*s < *e && (n = space_at(*s, *e)))
		*s += n;
	for (p = last = *s; p < *e;) {
		n = space_at(p, *e);
		if (n) {
			p += n;
		} else {
			p += char_len(p);
			last = p;
		}
	}
	*e = last;
}

static void store_release(struct ds_datastore_cfg *ds)
{
	free(ds->name);
	free(ds->path);
	free(ds->comment);
	free(ds->backing_device);
	free(ds->maintenance_message);
	free(ds->sync_level);
	ds_config_props_free(ds->props, ds->n_props);
}

void ds_config_free(struct ds_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_stores; i++)
		store_release(&cfg->stores[i]);
	free(cfg->stores);
	free(cfg);
}

static struct ds_datastore_cfg *find_store(const struct ds_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_stores; i++)
		if (strcmp(cfg->stores[i].name, name) == 0)
			return &cfg->stores[i];
	return NULL;
}

const struct ds_datastore_cfg *ds_config_find(const struct ds_config *cfg, const char *name)
{
	return cfg && name ? find_store(cfg, name) : NULL;
}

static int parse_header(struct parser *p, unsigned line, const char *ls, const char *le)
{
	const char *colon = memchr(ls, ':', (size_t)(le - ls));
	const char *ts = ls, *te, *is, *ie = le;
	struct ds_datastore_cfg *old;
	char *name;

	if (!colon)
		return perr(p, line, "syntax error: expected '<type>: <id>'");
	te = colon;
	is = colon + 1;
	trim(&ts, &te);
	trim(&is, &ie);
	if ((size_t)(te - ts) != strlen("datastore") || memcmp(ts, "datastore", 9) != 0)
		return perr(p, line, "unknown section type '%.*s'", (int)(te - ts), ts);
	name = strndup(is, (size_t)(ie - is));
	if (!name)
		return -ENOMEM;
	if (ds_name_datastore(name) < 0) {
		perr(p, line, "invalid datastore name '%s'", name);
		goto bad;
	}
	old = find_store(p->cfg, name);
	if (old) {
		/* PBS keeps sections in a map by id (SectionConfigData::
		 * set_data): a later section of the same name replaces the
		 * earlier one, which is then only checked. Its slot, and so
		 * its place in the file as written back, is reused. */
		ds_warn("%s:%u: datastore '%s' again: this section replaces the earlier one, "
			"as in PBS",
			p->origin, line, name);
		store_release(old);
		memset(old, 0, sizeof(*old));
		old->name = name;
		p->cur = old;
		p->cur_line = line;
		return 0;
	}
	if (p->cfg->n_stores == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 8;
		struct ds_datastore_cfg *ns = realloc(p->cfg->stores, cap * sizeof(*ns));

		if (!ns) {
			free(name);
			return -ENOMEM;
		}
		p->cfg->stores = ns;
		p->cap = cap;
	}
	p->cur = &p->cfg->stores[p->cfg->n_stores++];
	memset(p->cur, 0, sizeof(*p->cur));
	p->cur->name = name;
	p->cur_line = line;
	return 0;
bad:
	free(name);
	return -EINVAL;
}

static bool has_prop(const struct ds_datastore_cfg *ds, const char *key)
{
	for (size_t i = 0; i < ds->n_props; i++)
		if (strcmp(ds->props[i].key, key) == 0)
			return true;
	return false;
}

static int parse_property(struct parser *p, unsigned line, const char *ls, const char *le)
{
	const char *ks = ls, *ke, *vs, *ve = le;
	struct ds_datastore_cfg *ds = p->cur;
	struct ds_config_prop *np;
	char *key = NULL, *value = NULL;
	char why[256];
	int r;

	while (ks < le && space_at(ks, le))
		ks += space_at(ks, le);
	for (ke = ks; ke < le && !space_at(ke, le);)
		ke += char_len(ke);
	key = strndup(ks, (size_t)(ke - ks));
	if (!key)
		return -ENOMEM;
	if (ke == le) {
		r = perr(p, line, "property '%s' has no value", key);
		goto out;
	}
	vs = ke;
	trim(&vs, &ve);
	value = strndup(vs, (size_t)(ve - vs));
	if (!value) {
		r = -ENOMEM;
		goto out;
	}
	/* Checked before the value: the check records fields in ds. */
	if (has_prop(ds, key)) {
		r = perr(p, line, "duplicate property '%s'", key);
		goto out;
	}
	r = ds_config_check_property(ds, key, value, why, sizeof(why));
	if (r == -ENOENT)
		r = perr(p, line, "unknown property '%s'", key);
	else if (r == -EINVAL)
		perr(p, line, "property '%s': %s", key, why);
	if (r < 0)
		goto out;
	/* Growing by one keeps this simple; sections have ~20 keys. */
	np = realloc(ds->props, (ds->n_props + 1) * sizeof(*np));
	if (!np) {
		r = -ENOMEM;
		goto out;
	}
	ds->props = np;
	ds->props[ds->n_props++] = (struct ds_config_prop){ key, value };
	return 0;
out:
	free(key);
	free(value);
	return r;
}

static int end_section(struct parser *p)
{
	if (p->cur && !p->cur->path)
		return perr(p, p->cur_line, "datastore '%s': property 'path' is missing",
			    p->cur->name);
	p->cur = NULL;
	return 0;
}

static int parse_line(struct parser *p, unsigned line, const char *ls, const char *le)
{
	const char *ts = ls, *te = le;

	if (memchr(ls, '\0', (size_t)(le - ls)))
		return perr(p, line, "NUL byte");
	if (ds_utf8_count(ls, (size_t)(le - ls), NULL) < 0)
		return perr(p, line, "invalid UTF-8");
	trim(&ts, &te);
	if (ts == te)
		return end_section(p);
	if (*ts == '#')
		return perr(p, line, "comments are not supported in datastore.cfg");
	if (space_at(ls, le)) {
		if (!p->cur)
			return perr(p, line, "property line outside a section");
		return parse_property(p, line, ls, le);
	}
	if (p->cur)
		return perr(p, line, "expected a property line (a blank line must end the section)");
	if (!((*ls >= 'A' && *ls <= 'Z') || (*ls >= 'a' && *ls <= 'z')))
		return perr(p, line, "syntax error: expected a section header");
	return parse_header(p, line, ls, le);
}

int ds_config_parse(const char *text, size_t len, const char *origin, struct ds_config **ret)
{
	struct parser p = { .origin = origin ? origin : "datastore.cfg" };
	const char *pos = text, *end = text ? text + len : NULL;
	unsigned line = 0;
	int r = 0;

	if ((!text && len) || !ret)
		return -EINVAL;
	p.cfg = calloc(1, sizeof(*p.cfg));
	if (!p.cfg)
		return -ENOMEM;
	/* Lines as Rust's str::lines() yields them: a final '\n' does not
	 * start another line, and a '\r' before a '\n' is part of the line
	 * end, so "\tcomment\r\n" has no value, as for PBS. Any other '\r'
	 * is whitespace (trimmed at either end of a line or value). */
	while (pos < end && r == 0) {
		const char *nl = memchr(pos, '\n', (size_t)(end - pos));
		const char *le = nl ? nl : end;

		if (nl && le > pos && le[-1] == '\r')
			le--;
		r = parse_line(&p, ++line, pos, le);
		pos = nl ? nl + 1 : end;
	}
	if (r == 0)
		r = end_section(&p);
	if (r < 0) {
		if (r == -ENOMEM)
			ds_err("%s: out of memory", p.origin);
		ds_config_free(p.cfg);
		return r;
	}
	*ret = p.cfg;
	return 0;
}

int ds_config_load(const char *path, struct ds_config **ret)
{
	uint8_t *buf;
	size_t len;
	int r;

	if (!path || !ret)
		return -EINVAL;
	r = ds_read_file_at(AT_FDCWD, path, CONFIG_MAX_SIZE, &buf, &len);
	if (r == -ENOENT) /* PBS: no file is no datastore (pbs-config's config()) */
		return ds_config_parse("", 0, path, ret);
	if (r == -EFBIG)
		ds_err("%s: larger than %llu bytes, not a datastore.cfg", path,
		       (unsigned long long)CONFIG_MAX_SIZE);
	if (r < 0)
		return r;
	r = ds_config_parse((const char *)buf, len, path, ret);
	free(buf);
	return r;
}

bool ds_config_has_store(const char *path, const char *name)
{
	struct ds_config *cfg = NULL;
	bool r;

	if (ds_name_datastore(name) < 0 || ds_config_load(path, &cfg) < 0)
		return false;
	r = ds_config_find(cfg, name) != NULL;
	ds_config_free(cfg);
	return r;
}

int ds_config_dir_name(const char *path, const char *dir, char *out, size_t outlen)
{
	const char *slash = strrchr(dir, '/');
	const char *last = slash && slash[1] ? slash + 1 : dir;
	struct ds_config *cfg = NULL;
	bool clash = false;
	int r;

	if (ds_config_load(path, &cfg) == 0) {
		for (size_t i = 0; i < cfg->n_stores; i++) {
			char base[4096], real[PATH_MAX];

			if (ds_datastore_cfg_base(&cfg->stores[i], base, sizeof(base)) < 0)
				continue;
			if (strcmp(base, dir) == 0 ||
			    (realpath(base, real) && strcmp(real, dir) == 0)) {
				r = ds_path_fmt(out, outlen, "%s", cfg->stores[i].name);
				ds_config_free(cfg);
				return r < 0 ? r : 1;
			}
			clash = clash || strcmp(cfg->stores[i].name, last) == 0;
		}
		ds_config_free(cfg);
	}
	if (clash) {
		struct ds_digest d;
		char hex[DS_DIGEST_HEX_LEN + 1];

		ds_sha256(dir, strlen(dir), &d);
		ds_digest_to_hex(&d, hex);
		return ds_path_fmt(out, outlen, "%s~%.8s", last, hex);
	}
	return ds_path_fmt(out, outlen, "%s", last);
}

int ds_datastore_cfg_base(const struct ds_datastore_cfg *ds, char *out, size_t outlen)
{
	if (!ds || !out)
		return -EINVAL;
	if (ds->backing_device)
		return ds_path_fmt(out, outlen, "/mnt/datastore/%s", ds->name);
	/* PBS parses a relative path but refuses to open the store
	 * (ChunkStore::open: "expected absolute path"). */
	if (!ds->path || ds->path[0] != '/')
		return -EINVAL;
	return ds_path_fmt(out, outlen, "%s", ds->path);
}

const char *ds_datastore_cfg_base_why(int err)
{
	return err == -EINVAL ? "is not absolute (PBS refuses it too)" : strerror(-err);
}

/* --- writer --- */

struct sbuf {
	char *b;
	size_t len, cap;
};

static int sb_add(struct sbuf *sb, const char *s, size_t n)
{
	if (sb->len + n + 1 > sb->cap) {
		size_t cap = sb->cap ? sb->cap : 256;
		char *nb;

		while (sb->len + n + 1 > cap)
			cap *= 2;
		nb = realloc(sb->b, cap);
		if (!nb)
			return -ENOMEM;
		sb->b = nb;
		sb->cap = cap;
	}
	memcpy(sb->b + sb->len, s, n);
	sb->len += n;
	sb->b[sb->len] = '\0';
	return 0;
}

static int sb_str(struct sbuf *sb, const char *s)
{
	return sb_add(sb, s, strlen(s));
}

/* "type=<t>" or "type=<t>,message=\"<escaped>\"". The message is always
 * quoted: PBS's serializer quotes only for '"', '\\' and newline, so its
 * own output does not survive a comma (spec §6.3). */
static char *maintenance_value(enum ds_maintenance m, const char *msg)
{
	struct sbuf sb = { 0 };
	int r;

	r = sb_str(&sb, "type=");
	if (r == 0)
		r = sb_str(&sb, ds_maintenance_name(m));
	if (r == 0 && msg) {
		r = sb_str(&sb, ",message=\"");
		for (const char *p = msg; *p && r == 0; p++) {
			if (*p == '"' || *p == '\\')
				r = sb_add(&sb, "\\", 1) ?: sb_add(&sb, p, 1);
			else if (*p == '\n')
				r = sb_str(&sb, "\\n");
			else
				r = sb_add(&sb, p, 1);
		}
		if (r == 0)
			r = sb_str(&sb, "\"");
	}
	if (r < 0) {
		free(sb.b);
		return NULL;
	}
	return sb.b;
}

/* What Rust's char::is_control refuses in the writer: C0, DEL and C1. */
static bool has_control(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p; p++)
		if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
			return true;
	return false;
}

struct kv {
	const char *key, *value;
};

static int kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct kv *)a)->key, ((const struct kv *)b)->key);
}

static int format_store(struct sbuf *sb, const struct ds_datastore_cfg *ds)
{
	struct kv *v;
	char *maint = NULL;
	size_t n = 0;
	int r = 0;

	if (!ds->name || ds_name_datastore(ds->name) < 0 ||
	    (size_t)ds->maintenance >= DS_ARRAY_SIZE(maintenance_names)) {
		ds_err("datastore.cfg: cannot write datastore '%s': invalid name or maintenance mode",
		       ds->name ? ds->name : "(null)");
		return -EINVAL;
	}
	v = calloc(ds->n_props + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	/* maintenance-mode comes from the parsed fields, not the raw text, so
	 * a caller's change to them is what gets written. A "name" line is
	 * dropped, as PBS's writer drops the id property (the header has it). */
	for (size_t i = 0; i < ds->n_props; i++)
		if (strcmp(ds->props[i].key, "maintenance-mode") != 0 &&
		    strcmp(ds->props[i].key, "name") != 0)
			v[n++] = (struct kv){ ds->props[i].key, ds->props[i].value };
	if (ds->maintenance != DS_MAINT_NONE) {
		maint = maintenance_value(ds->maintenance, ds->maintenance_message);
		if (!maint) {
			r = -ENOMEM;
			goto out;
		}
		v[n++] = (struct kv){ "maintenance-mode", maint };
	}
	qsort(v, n, sizeof(*v), kv_cmp);
	r = sb_str(sb, "datastore: ") ?: sb_str(sb, ds->name) ?: sb_str(sb, "\n");
	for (size_t i = 0; i < n && r == 0; i++) {
		if (has_control(v[i].key) || has_control(v[i].value)) {
			ds_err("datastore.cfg: datastore '%s': control character in property '%s'",
			       ds->name, v[i].key);
			r = -EINVAL;
			break;
		}
		r = sb_str(sb, "\t") ?: sb_str(sb, v[i].key) ?: sb_str(sb, " ")
			?: sb_str(sb, v[i].value) ?: sb_str(sb, "\n");
	}
out:
	free(maint);
	free(v);
	return r;
}

int ds_config_format(const struct ds_config *cfg, char **ret_text, size_t *ret_len)
{
	struct sbuf sb = { 0 };
	int r;

	if (!cfg || !ret_text)
		return -EINVAL;
	r = sb_add(&sb, "", 0);
	for (size_t i = 0; i < cfg->n_stores && r == 0; i++) {
		if (i > 0)
			r = sb_str(&sb, "\n");
		if (r == 0)
			r = format_store(&sb, &cfg->stores[i]);
	}
	if (r < 0) {
		free(sb.b);
		return r;
	}
	*ret_text = sb.b;
	if (ret_len)
		*ret_len = sb.len;
	return 0;
}

int ds_config_set_maintenance(struct ds_config *cfg, const char *name, enum ds_maintenance mode,
			      const char *message)
{
	struct ds_datastore_cfg *ds;
	struct ds_config_prop *np;
	char *msg = NULL, *value = NULL, *key = NULL;
	size_t i;

	if (!cfg || !name || (size_t)mode >= DS_ARRAY_SIZE(maintenance_names))
		return -EINVAL;
	ds = find_store(cfg, name);
	if (!ds)
		return -ENOENT;
	if (ds->maintenance == DS_MAINT_DELETE && mode != DS_MAINT_DELETE) {
		ds_err("datastore '%s' is being deleted: maintenance mode stays 'delete'", name);
		return -EPERM;
	}
	if (message && (mode == DS_MAINT_NONE || ds_name_maintenance_message(message) < 0)) {
		ds_err("datastore '%s': invalid maintenance message", name);
		return -EINVAL;
	}
	/* Allocate everything first so that failure leaves ds untouched. */
	if ((message && *message && !(msg = strdup(message))) ||
	    (mode != DS_MAINT_NONE && !(value = maintenance_value(mode, msg))))
		goto nomem;
	for (i = 0; i < ds->n_props; i++)
		if (strcmp(ds->props[i].key, "maintenance-mode") == 0)
			break;
	if (i == ds->n_props && value) {
		key = strdup("maintenance-mode");
		np = key ? realloc(ds->props, (ds->n_props + 1) * sizeof(*np)) : NULL;
		if (!np)
			goto nomem;
		ds->props = np;
		ds->props[ds->n_props++] = (struct ds_config_prop){ key, value };
	} else if (i < ds->n_props && value) {
		free(ds->props[i].value);
		ds->props[i].value = value;
	} else if (i < ds->n_props) {
		free(ds->props[i].key);
		free(ds->props[i].value);
		memmove(&ds->props[i], &ds->props[i + 1], (ds->n_props - i - 1) * sizeof(*np));
		ds->n_props--;
	}
	free(ds->maintenance_message);
	ds->maintenance_message = msg;
	ds->maintenance = mode;
	return 0;
nomem:
	free(key);
	free(value);
	free(msg);
	return -ENOMEM;
}
