#include "store/names.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "store/util.h"

/* The regexes of spec §1.6 are ASCII character classes; we check them byte
 * by byte with our own predicates because <ctype.h> follows the locale. */
static bool is_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_safe_first(char c)
{
	return is_alnum(c) || c == '_';
}

static bool is_safe_rest(char c)
{
	return is_alnum(c) || c == '_' || c == '.' || c == '-';
}

/* [A-Za-z0-9_][A-Za-z0-9._-]* over exactly n bytes. */
static bool safe_id_n(const char *s, size_t n)
{
	if (n == 0 || !is_safe_first(s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_safe_rest(s[i]))
			return false;
	return true;
}

int ds_name_safe_id(const char *s)
{
	return s && safe_id_n(s, strlen(s)) ? 0 : -EINVAL;
}

int ds_name_datastore(const char *s)
{
	size_t n;

	if (!s)
		return -EINVAL;
	n = strlen(s);
	return n >= 3 && n <= 32 && safe_id_n(s, n) ? 0 : -EINVAL;
}

int ds_name_namespace(const char *s, int *ret_depth)
{
	const char *p, *slash;
	int depth = 0;

	if (!s || strlen(s) > DS_MAX_NAMESPACE_LEN)
		return -EINVAL;
	if (*s) {
		/* An empty component (leading, trailing or double '/') fails
		 * safe_id_n, so "a//b" and "/a" need no special case. */
		for (p = s;; p = slash + 1) {
			slash = strchr(p, '/');
			if (!safe_id_n(p, slash ? (size_t)(slash - p) : strlen(p)))
				return -EINVAL;
			if (++depth > DS_MAX_NAMESPACE_DEPTH)
				return -EINVAL;
			if (!slash)
				break;
		}
	}
	if (ret_depth)
		*ret_depth = depth;
	return 0;
}

int ds_name_backup_type(const char *s)
{
	if (!s)
		return -EINVAL;
	if (strcmp(s, "vm") == 0)
		return DS_TYPE_VM;
	if (strcmp(s, "ct") == 0)
		return DS_TYPE_CT;
	if (strcmp(s, "host") == 0)
		return DS_TYPE_HOST;
	return -EINVAL;
}

const char *ds_backup_type_name(enum ds_backup_type t)
{
	switch (t) {
	case DS_TYPE_VM:
		return "vm";
	case DS_TYPE_CT:
		return "ct";
	case DS_TYPE_HOST:
		return "host";
	}
	return NULL;
}

int ds_name_backup_id(const char *s)
{
	return ds_name_safe_id(s);
}

int ds_name_snapshot_time(const char *s)
{
	int64_t t;

	/* ds_time_parse enforces the exact 20-byte digit pattern and that the
	 * fields name a real date; the regex alone would admit 2023-02-30. */
	return s && ds_time_parse(s, &t) == 0 ? 0 : -EINVAL;
}

static bool has_suffix(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);

	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

int ds_name_archive(const char *s)
{
	size_t n;

	if (ds_name_safe_id(s) < 0)
		return -EINVAL;
	n = strlen(s);
	if (has_suffix(s, n, ".fidx") || has_suffix(s, n, ".didx") || has_suffix(s, n, ".blob"))
		return 0;
	return -EINVAL;
}

int ds_utf8_count(const char *s, size_t len, size_t *ret_count)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0, count = 0;

	while (i < len) {
		uint8_t c = p[i];
		uint32_t cp;
		size_t n;

		if (c < 0x80) {
			i++;
			count++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return -EINVAL; /* continuation byte, 0xc0/0xc1 or > 0xf4 */
		}
		if (len - i - 1 < n)
			return -EINVAL;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return -EINVAL;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		/* Overlong forms, UTF-16 surrogates and > U+10FFFF are what
		 * Rust's String refuses on top of the structural rules. */
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return -EINVAL;
		i += n + 1;
		count++;
	}
	if (ret_count)
		*ret_count = count;
	return 0;
}

/* Decodes the code point at s (already validated UTF-8); returns its length. */
static size_t utf8_decode(const uint8_t *s, uint32_t *ret_cp)
{
	if (s[0] < 0x80) {
		*ret_cp = s[0];
		return 1;
	}
	if (s[0] < 0xe0) {
		*ret_cp = (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
		return 2;
	}
	if (s[0] < 0xf0) {
		*ret_cp = (uint32_t)(s[0] & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 |
			  (s[2] & 0x3f);
		return 3;
	}
	*ret_cp = (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
		  (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
	return 4;
}

/* Unicode White_Space, what Rust's char::is_whitespace tests. */
static bool is_unicode_space(uint32_t cp)
{
	return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 ||
	       cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
	       cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* USER_NAME_REGEX [^\s:/[:cntrl:]]+ : \s is Unicode whitespace in Rust's
 * regex crate, [:cntrl:] is ASCII-only. */
static bool user_name_n(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;

	if (n == 0 || ds_utf8_count(s, n, NULL) < 0)
		return false;
	while (i < n) {
		uint32_t cp;

		i += utf8_decode(p + i, &cp);
		if (cp < 0x20 || cp == 0x7f || cp == ':' || cp == '/' || is_unicode_space(cp))
			return false;
	}
	return true;
}

int ds_name_authid(const char *s)
{
	const char *at, *bang;

	if (!s)
		return -EINVAL;
	/* Realm and token are SAFE_IDs and cannot contain '@' or '!', so the
	 * last '@' ends the user name and a '!' after it starts the token. */
	at = strrchr(s, '@');
	if (!at || !user_name_n(s, (size_t)(at - s)))
		return -EINVAL;
	bang = strchr(at + 1, '!');
	if (!bang)
		return safe_id_n(at + 1, strlen(at + 1)) ? 0 : -EINVAL;
	if (!safe_id_n(at + 1, (size_t)(bang - at - 1)) || !safe_id_n(bang + 1, strlen(bang + 1)))
		return -EINVAL;
	return 0;
}

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

int ds_name_fs_uuid(const char *s)
{
	if (!s || strlen(s) != 36)
		return -EINVAL;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !is_lower_hex(s[i]))
			return -EINVAL;
	}
	return 0;
}

int ds_name_maintenance_message(const char *s)
{
	size_t n, chars;

	if (!s)
		return -EINVAL;
	n = strlen(s);
	/* max_length counts characters (proxmox-schema uses chars().count()). */
	if (ds_utf8_count(s, n, &chars) < 0 || chars > 64)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if ((uint8_t)s[i] < 0x20 || s[i] == 0x7f)
			return -EINVAL;
	return 0;
}

/* Rust's Path::extension on the last path component: the text after the
 * last '.', unless that '.' is the first character ("…/.didx" has none). */
static const char *extension(const char *name)
{
	const char *leaf = strrchr(name, '/');
	const char *dot;

	leaf = leaf ? leaf + 1 : name;
	dot = strrchr(leaf, '.');
	return dot && dot != leaf ? dot + 1 : NULL;
}

int ds_archive_kind(const char *name)
{
	const char *ext = name ? extension(name) : NULL;

	if (!ext)
		return -EINVAL;
	if (strcmp(ext, "blob") == 0)
		return DS_ARCHIVE_BLOB;
	if (strcmp(ext, "fidx") == 0)
		return DS_ARCHIVE_FIDX;
	if (strcmp(ext, "didx") == 0)
		return DS_ARCHIVE_DIDX;
	return -EINVAL;
}

int ds_archive_server_name(const char *name, char *out, size_t outlen)
{
	static const struct {
		const char *ext;
		const char *add;
	} rules[] = {
		{ "pxar", "didx" }, { "mpxar", "didx" }, { "ppxar", "didx" },
		{ "pcat1", "didx" }, { "img", "fidx" },	 { "conf", "blob" },
		{ "json", "blob" },  { "key", "blob" },	 { "log", "blob" },
	};
	const char *ext, *add = NULL;
	int n;

	if (!name || !out)
		return -EINVAL;
	if (ds_archive_kind(name) > 0) {
		n = snprintf(out, outlen, "%s", name);
		goto out;
	}
	ext = extension(name);
	if (!ext)
		return -EINVAL;
	for (size_t i = 0; i < DS_ARRAY_SIZE(rules) && !add; i++)
		if (strcmp(ext, rules[i].ext) == 0)
			add = rules[i].add;
	if (!add)
		return -EINVAL;
	n = snprintf(out, outlen, "%s.%s", name, add);
out:
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}
