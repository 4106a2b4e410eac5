/* The value side of datastore.cfg: property strings and the PBS 4.x
 * DataStoreConfig schema (spec §6.3). config.c owns the file syntax. */
#include "store/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/names.h"
#include "store/util.h"

void ds_config_props_free(struct ds_config_prop *props, size_t n)
{
	for (size_t i = 0; props && i < n; i++) {
		free(props[i].key);
		free(props[i].value);
	}
	free(props);
}

/* Appends (key, value), taking ownership of both, also on failure. */
static int props_append(struct ds_config_prop **props, size_t *n, char *key, char *value)
{
	struct ds_config_prop *np;

	if (!key || !value)
		goto nomem;
	/* Growing by one keeps this simple; property strings have a few items. */
	np = realloc(*props, (*n + 1) * sizeof(*np));
	if (!np)
		goto nomem;
	np[*n].key = key;
	np[*n].value = value;
	*props = np;
	(*n)++;
	return 0;
nomem:
	free(key);
	free(value);
	return -ENOMEM;
}

static const char *props_get(const struct ds_config_prop *props, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(props[i].key, key) == 0)
			return props[i].value;
	return NULL;
}

/* Decodes the quoted string at *pp (which points at the opening quote) and
 * moves *pp past the closing quote. */
static int parse_quoted(const char **pp, char **ret, const char **why)
{
	const char *p = *pp + 1;
	char *out = malloc(strlen(p) + 1), *o = out;

	if (!out)
		return -ENOMEM;
	for (;;) {
		if (*p == '\0') {
			*why = "unterminated quoted string";
			goto bad;
		}
		if (*p == '"')
			break;
		if (*p == '\\') {
			p++;
			if (*p == '"' || *p == '\\')
				*o++ = *p;
			else if (*p == 'n')
				*o++ = '\n';
			else {
				*why = *p ? "unsupported escape sequence" : "unterminated quoted string";
				goto bad;
			}
			p++;
			continue;
		}
		*o++ = *p++;
	}
	*o = '\0';
	*pp = p + 1;
	*ret = out;
	return 0;
bad:
	free(out);
	return -EINVAL;
}

int ds_property_string_parse(const char *s, const char *default_key,
			     struct ds_config_prop **ret_props, size_t *ret_n,
			     const char **ret_errmsg)
{
	struct ds_config_prop *props = NULL;
	const char *p = s, *why = NULL;
	bool bare_seen = false;
	size_t n = 0;
	int r;

	if (!s || !ret_props || !ret_n)
		return -EINVAL;
	while (*p) {
		const char *key = NULL;
		size_t klen = 0;
		char *k, *v;

		if (*p == ',') {
			why = "empty item";
			goto bad;
		}
		/* A key ends at the first '=' unless a ',' comes first; a
		 * leading quote is always a bare (default-key) value. */
		if (*p != '"') {
			size_t span = strcspn(p, ",=");

			if (p[span] == '=') {
				if (span == 0) {
					why = "empty key";
					goto bad;
				}
				key = p;
				klen = span;
				p += span + 1;
			}
		}
		if (*p == '"') {
			r = parse_quoted(&p, &v, &why);
			if (r < 0)
				goto fail;
			if (*p && *p != ',') {
				free(v);
				why = "garbage after quoted string";
				goto bad;
			}
		} else {
			size_t vlen = strcspn(p, ",");

			v = strndup(p, vlen);
			p += vlen;
		}
		if (!key) {
			if (!default_key || bare_seen) {
				free(v);
				why = default_key ? "more than one value without a key"
						  : "value without a key";
				goto bad;
			}
			bare_seen = true;
			k = strdup(default_key);
		} else {
			k = strndup(key, klen);
		}
		if (k && props_get(props, n, k)) {
			free(k);
			free(v);
			why = "duplicate key";
			goto bad;
		}
		r = props_append(&props, &n, k, v);
		if (r < 0)
			goto fail;
		/* One comma after the last item is allowed: proxmox-schema's
		 * next_property consumes it with the item and then finds
		 * nothing left. Two are an empty item, refused above. */
		if (*p == ',')
			p++;
	}
	*ret_props = props;
	*ret_n = n;
	return 0;
bad:
	r = -EINVAL;
fail:
	if (r == -EINVAL && ret_errmsg)
		*ret_errmsg = why;
	ds_config_props_free(props, n);
	return r;
}

/* --- value checks (the DataStoreConfig schema, spec §6.3) --- */

struct check {
	struct ds_datastore_cfg *ds;
	const char *value;
	char why[192];
};

static int bad(struct check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct check *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof(c->why), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

enum kind { K_ANY, K_BOOL, K_INT, K_ENUM, K_FN };

struct rule {
	const char *key;
	enum kind kind;
	const char *enums;   /* K_ENUM: "a|b|c" */
	long long min, max;  /* K_INT, inclusive */
	int (*fn)(struct check *c);
};

#define R_ANY(k) { .key = (k), .kind = K_ANY }
#define R_BOOL(k) { .key = (k), .kind = K_BOOL }
#define R_INT(k, lo, hi) { .key = (k), .kind = K_INT, .min = (lo), .max = (hi) }
#define R_ENUM(k, e) { .key = (k), .kind = K_ENUM, .enums = (e) }
#define R_FN(k, f) { .key = (k), .kind = K_FN, .fn = (f) }

static bool ascii_caseeq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
		char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;

		if (x != y)
			return false;
	}
	return *a == *b;
}

static int parse_bool(const char *s)
{
	static const char *const yes[] = { "1", "on", "yes", "true" };
	static const char *const no[] = { "0", "off", "no", "false" };

	for (size_t i = 0; i < DS_ARRAY_SIZE(yes); i++) {
		if (ascii_caseeq(s, yes[i]))
			return 1;
		if (ascii_caseeq(s, no[i]))
			return 0;
	}
	return -EINVAL;
}

/* Rust's i64::from_str: optional sign, at least one ASCII digit, no blanks. */
static bool parse_int(const char *s, long long *ret)
{
	bool neg = *s == '-';
	unsigned long long v = 0, lim;

	if (*s == '-' || *s == '+')
		s++;
	if (!*s)
		return false;
	lim = neg ? (unsigned long long)INT64_MAX + 1 : (unsigned long long)INT64_MAX;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		if (v > (lim - (unsigned)(*s - '0')) / 10)
			return false;
		v = v * 10 + (unsigned)(*s - '0');
	}
	*ret = neg ? (long long)(0 - v) : (long long)v;
	return true;
}

static bool enum_has(const char *list, const char *s)
{
	size_t n = strlen(s);

	for (const char *p = list;; p++) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);

		if (len == n && memcmp(p, s, n) == 0)
			return true;
		if (!bar)
			return false;
		p = bar;
	}
}

static int check_value(struct check *c, const struct rule *r)
{
	long long v;

	switch (r->kind) {
	case K_ANY:
		return 0;
	case K_BOOL:
		return parse_bool(c->value) >= 0 ? 0 : bad(c, "not a boolean");
	case K_INT:
		if (!parse_int(c->value, &v))
			return bad(c, "not an integer");
		if (v < r->min || v > r->max)
			return bad(c, "value must be between %lld and %lld", r->min, r->max);
		return 0;
	case K_ENUM:
		return enum_has(r->enums, c->value) ? 0 : bad(c, "must be one of %s", r->enums);
	case K_FN:
		return r->fn(c);
	}
	return bad(c, "internal error");
}

static const struct rule *find_rule(const struct rule *rules, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(rules[i].key, key) == 0)
			return &rules[i];
	return NULL;
}

/* Parses c->value as a property string and checks every item against
 * rules. *ret_props is the caller's to free. */
static int check_propstring(struct check *c, const char *default_key, const struct rule *rules,
			    size_t nrules, struct ds_config_prop **ret_props, size_t *ret_n)
{
	struct ds_config_prop *props;
	const char *why = NULL;
	size_t n;
	int r;

	r = ds_property_string_parse(c->value, default_key, &props, &n, &why);
	if (r == -EINVAL)
		return bad(c, "%s", why);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		const struct rule *rule = find_rule(rules, nrules, props[i].key);
		struct check sub = { .ds = c->ds, .value = props[i].value };

		if (!rule) {
			r = bad(c, "unknown key '%s'", props[i].key);
			goto fail;
		}
		r = check_value(&sub, rule);
		if (r == -EINVAL)
			r = bad(c, "key '%s': %s", props[i].key, sub.why);
		if (r < 0)
			goto fail;
	}
	*ret_props = props;
	*ret_n = n;
	return 0;
fail:
	ds_config_props_free(props, n);
	return r;
}

static int set_str(char **dst, const char *s)
{
	char *copy = strdup(s);

	if (!copy)
		return -ENOMEM;
	free(*dst);
	*dst = copy;
	return 0;
}

static int check_message(struct check *c)
{
	return ds_name_maintenance_message(c->value) == 0
		       ? 0
		       : bad(c, "control characters or longer than 64 characters");
}

static int check_maintenance(struct check *c)
{
	static const struct rule rules[] = {
		R_FN("message", check_message),
		R_ENUM("type", "read-only|offline|delete|unmount|s3-refresh"),
	};
	struct ds_config_prop *props;
	const char *type, *msg;
	size_t n;
	int r;

	r = check_propstring(c, "type", rules, DS_ARRAY_SIZE(rules), &props, &n);
	if (r < 0)
		return r;
	type = props_get(props, n, "type");
	msg = props_get(props, n, "message");
	if (!type) {
		r = bad(c, "missing key 'type'");
		goto out;
	}
	c->ds->maintenance = (enum ds_maintenance)ds_maintenance_parse(type);
	/* An empty message is no message, so a rewrite need not carry it. */
	if (msg && *msg) {
		r = set_str(&c->ds->maintenance_message, msg);
	} else {
		free(c->ds->maintenance_message);
		c->ds->maintenance_message = NULL;
	}
out:
	ds_config_props_free(props, n);
	return r;
}

static int check_tuning(struct check *c)
{
	static const struct rule rules[] = {
		R_ENUM("chunk-order", "none|inode"),
		R_INT("default-verification-readers", 1, 32),
		R_INT("default-verification-workers", 1, 32),
		R_INT("gc-atime-cutoff", 1, 2880),
		R_BOOL("gc-atime-safety-check"),
		R_INT("gc-cache-capacity", 0, 8388608),
		R_ENUM("sync-level", "none|file|filesystem"),
	};
	struct ds_config_prop *props;
	const char *level;
	size_t n;
	int r;

	r = check_propstring(c, NULL, rules, DS_ARRAY_SIZE(rules), &props, &n);
	if (r < 0)
		return r;
	level = props_get(props, n, "sync-level");
	if (level)
		r = set_str(&c->ds->sync_level, level);
	ds_config_props_free(props, n);
	return r;
}

static int check_backend(struct check *c)
{
	static const struct rule rules[] = {
		R_ANY("bucket"),
		R_ANY("client"),
		R_ANY("max-cache-size"),
		R_ENUM("type", "filesystem|s3"),
	};
	static const char *const s3_only[] = { "client", "bucket", "max-cache-size" };
	struct ds_config_prop *props;
	const char *type;
	size_t n;
	int r;

	r = check_propstring(c, "type", rules, DS_ARRAY_SIZE(rules), &props, &n);
	if (r < 0)
		return r;
	type = props_get(props, n, "type");
	for (size_t i = 0; i < DS_ARRAY_SIZE(s3_only) && r == 0; i++) {
		bool has = props_get(props, n, s3_only[i]) != NULL;

		if (type && strcmp(type, "s3") == 0) {
			if (!has && i < 2)
				r = bad(c, "missing key '%s', required for type s3", s3_only[i]);
		} else if (has) {
			r = bad(c, "key '%s' not allowed for type filesystem", s3_only[i]);
		}
	}
	ds_config_props_free(props, n);
	return r;
}

static int check_notify(struct check *c)
{
	static const struct rule rules[] = {
		R_ENUM("gc", "never|always|error"),
		R_ENUM("prune", "never|always|error"),
		R_ENUM("sync", "never|always|error"),
		R_ENUM("verify", "never|always|error"),
	};
	struct ds_config_prop *props;
	size_t n;
	int r;

	r = check_propstring(c, NULL, rules, DS_ARRAY_SIZE(rules), &props, &n);
	if (r == 0)
		ds_config_props_free(props, n);
	return r;
}

static int check_path(struct check *c)
{
	size_t chars;

	if (ds_utf8_count(c->value, strlen(c->value), &chars) < 0 || chars < 1 || chars > 4096)
		return bad(c, "must be 1 to 4096 characters");
	return set_str(&c->ds->path, c->value);
}

static int check_comment(struct check *c)
{
	for (const char *p = c->value; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return bad(c, "control character in comment");
	return set_str(&c->ds->comment, c->value);
}

/* DataStoreConfig's own "name" (DATASTORE_SCHEMA): proxmox-section-config
 * checks a line giving it like any property, then sets it to the section's
 * id, and its writer leaves it out (the header holds it). */
static int check_name(struct check *c)
{
	return ds_name_datastore(c->value) == 0 ? 0 : bad(c, "not a datastore name");
}

static int check_backing_device(struct check *c)
{
	if (ds_name_fs_uuid(c->value) < 0)
		return bad(c, "not a filesystem UUID (8-4-4-4-12 lowercase hex)");
	return set_str(&c->ds->backing_device, c->value);
}

static int check_userid(struct check *c)
{
	const char *at = strrchr(c->value, '@');

	/* A Userid is an Authid without the "!token" part. */
	if (ds_name_authid(c->value) < 0 || strchr(at, '!'))
		return bad(c, "not a user id (user@realm)");
	return 0;
}

#define KEEP(name) R_INT(name, 1, INT64_MAX)

/* Every DataStoreConfig key of PBS 4.x; calendar events and the notification
 * thresholds are kept verbatim without a check. */
static const struct rule store_rules[] = {
	R_FN("backend", check_backend),
	R_FN("backing-device", check_backing_device),
	R_FN("comment", check_comment),
	R_ANY("counter-reset-schedule"),
	R_BOOL("gc-on-unmount"),
	R_ANY("gc-schedule"),
	KEEP("keep-daily"),
	KEEP("keep-hourly"),
	KEEP("keep-last"),
	KEEP("keep-monthly"),
	KEEP("keep-weekly"),
	KEEP("keep-yearly"),
	R_FN("maintenance-mode", check_maintenance),
	R_FN("name", check_name),
	R_ENUM("notification-mode", "legacy-sendmail|notification-system"),
	R_ANY("notification-thresholds"),
	R_FN("notify", check_notify),
	R_FN("notify-user", check_userid),
	R_FN("path", check_path),
	R_ANY("prune-schedule"),
	R_FN("tuning", check_tuning),
	R_BOOL("verify-new"),
};

int ds_config_check_property(struct ds_datastore_cfg *ds, const char *key, const char *value,
			     char *why, size_t whylen)
{
	const struct rule *rule;
	struct check c = { .ds = ds, .value = value };
	int r;

	if (!ds || !key || !value)
		return -EINVAL;
	rule = find_rule(store_rules, DS_ARRAY_SIZE(store_rules), key);
	if (!rule)
		return -ENOENT;
	r = check_value(&c, rule);
	if (r == -EINVAL && why && whylen)
		snprintf(why, whylen, "%s", c.why);
	return r;
}
