#include "store/manifest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "store/blob.h"
#include "store/crypt.h"
#include "store/log.h"

struct mfile {
	char *filename;
	uint64_t size;
	struct ds_digest csum;
	enum ds_crypt_mode mode;
};

/* The signed fields are kept typed; "unprotected" is kept as the JSON tree
 * it was read as, so keys this code does not know survive a rewrite. Unknown
 * top-level keys are dropped, as PBS's struct BackupManifest drops them. */
struct ds_manifest {
	char *type;
	char *id;
	int64_t time;
	struct mfile *files;
	size_t nfiles;
	size_t cap;
	json_t *unprotected; /* always an object */
	char *signature;     /* NULL: "signature": null */
	/* The signed part as parsed (every key but "unprotected" and
	 * "signature", unknown ones included), which is what PBS checks a
	 * signature against; NULL for a new manifest and once a signed field
	 * changes. */
	json_t *signed_text;
};

static const char *const mode_names[] = {
	[DS_CRYPT_NONE] = "none",
	[DS_CRYPT_ENCRYPT] = "encrypt",
	[DS_CRYPT_SIGN_ONLY] = "sign-only",
};

const char *ds_crypt_mode_name(enum ds_crypt_mode m)
{
	if ((unsigned)m >= DS_ARRAY_SIZE(mode_names))
		return NULL;
	return mode_names[m];
}

static int crypt_mode_parse(const char *s)
{
	for (size_t i = 0; i < DS_ARRAY_SIZE(mode_names); i++)
		if (strcmp(s, mode_names[i]) == 0)
			return (int)i;
	return -EINVAL;
}

/* PBS deserialises backup-type into an enum, so other values are errors. */
static bool backup_type_valid(const char *s)
{
	return strcmp(s, "vm") == 0 || strcmp(s, "ct") == 0 || strcmp(s, "host") == 0;
}

/* JSON text must be UTF-8, so strings from the API are checked. jansson's
 * json_string() validates but fails alike on bad UTF-8 and on ENOMEM; the
 * unchecked variant fails only on ENOMEM, which tells the two apart. */
static int utf8_check(const char *s)
{
	json_t *v = json_string(s);

	if (v) {
		json_decref(v);
		return 0;
	}
	v = json_string_nocheck(s);
	if (!v)
		return -ENOMEM;
	json_decref(v);
	return -EINVAL;
}

/* ---- serializer: serde_json's output, pretty or compact ---- */

/* serde_json escapes only '"', '\\' and C0 controls, with lowercase \u00xx;
 * jansson's own dumper would write uppercase hex. */
static void put_string(FILE *f, const char *s, size_t n)
{
	static const char short_esc[] = { ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n',
					  ['\f'] = 'f', ['\r'] = 'r' };
	size_t start = 0;

	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)s[i];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		fwrite(s + start, 1, i - start, f);
		start = i + 1;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < sizeof(short_esc) && short_esc[c])
			fprintf(f, "\\%c", short_esc[c]);
		else
			fprintf(f, "\\u%04x", c);
	}
	fwrite(s + start, 1, n - start, f);
	fputc('"', f);
}

/* Reals never occur in PBS manifests; if one appears in "unprotected" it is
 * written as ryu (serde_json's f64 formatter) does: the shortest digits that
 * read back to the same double, laid out by ryu's rules ("1.0", "0.001",
 * "123.5", "1e30", "1.5e-7"). */
static void put_real(FILE *f, double d)
{
	static const char zeros[] = "0000000000000000";
	char tmp[40], dg[24];
	const char *p = tmp;
	int prec, nd = 0, kk;

	for (prec = 0; prec < 16; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	snprintf(tmp, sizeof(tmp), "%.*e", prec, d);
	if (*p == '-')
		fputc(*p++, f);
	for (; *p != 'e'; p++)
		if (*p != '.')
			dg[nd++] = *p;
	kk = atoi(p + 1) + 1; /* digits before the decimal point */
	if (nd <= kk && kk <= 16)
		fprintf(f, "%.*s%.*s.0", nd, dg, kk - nd, zeros);
	else if (0 < kk && kk <= 16)
		fprintf(f, "%.*s.%.*s", kk, dg, nd - kk, dg + kk);
	else if (-5 < kk && kk <= 0)
		fprintf(f, "0.%.*s%.*s", -kk, zeros, nd, dg);
	else
		fprintf(f, "%c%s%.*se%d", dg[0], nd > 1 ? "." : "", nd - 1, dg + 1, kk - 1);
}

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Before element i of a container at level (< 0: compact). */
static void put_sep(FILE *f, size_t i, int level)
{
	if (i)
		fputc(',', f);
	if (level >= 0)
		fprintf(f, "\n%*s", 2 * (level + 1), "");
}

/* Returns 0, -EINVAL (null with refuse_null) or -ENOMEM. */
static int put_value(FILE *f, json_t *v, int level, bool refuse_null)
{
	int sub = level >= 0 ? level + 1 : -1, r = 0;
	const char **keys = NULL;
	bool obj = json_is_object(v);
	size_t n, i;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
	case JSON_ARRAY:
		n = obj ? json_object_size(v) : json_array_size(v);
		if (n == 0) {
			fputs(obj ? "{}" : "[]", f);
			break;
		}
		if (obj) {
			const char *k;
			json_t *child;

			keys = malloc(n * sizeof(*keys));
			if (!keys)
				return -ENOMEM;
			i = 0;
			json_object_foreach(v, k, child)
				keys[i++] = k;
			/* BTreeMap order: bytewise, as strcmp compares. */
			qsort(keys, n, sizeof(*keys), key_cmp);
		}
		fputc(obj ? '{' : '[', f);
		for (i = 0; i < n && r == 0; i++) {
			put_sep(f, i, level);
			if (obj) {
				put_string(f, keys[i], strlen(keys[i]));
				fputs(level >= 0 ? ": " : ":", f);
			}
			r = put_value(f, obj ? json_object_get(v, keys[i]) : json_array_get(v, i),
				      sub, refuse_null);
		}
		free(keys);
		if (level >= 0)
			fprintf(f, "\n%*s", 2 * level, "");
		fputc(obj ? '}' : ']', f);
		break;
	case JSON_STRING:
		put_string(f, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		put_real(f, json_real_value(v));
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		fputs(json_is_true(v) ? "true" : "false", f);
		break;
	case JSON_NULL:
		if (refuse_null)
			return -EINVAL;
		fputs("null", f);
		break;
	}
	return r;
}

static int serialize(json_t *v, bool pretty, bool refuse_null, char **ret_text,
		     size_t *ret_len)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	r = put_value(f, v, pretty ? 0 : -1, refuse_null);
	if (ferror(f) && r == 0)
		r = -ENOMEM;
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	if (r < 0) {
		free(text);
		return r;
	}
	*ret_text = text;
	if (ret_len)
		*ret_len = len;
	return 0;
}

/* ---- building and tearing down ---- */

void ds_manifest_free(struct ds_manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nfiles; i++)
		free(m->files[i].filename);
	free(m->files);
	json_decref(m->unprotected);
	json_decref(m->signed_text);
	free(m->signature);
	free(m->type);
	free(m->id);
	free(m);
}

static int manifest_alloc(const char *type, const char *id, int64_t time,
			  struct ds_manifest **ret)
{
	struct ds_manifest *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->type = strdup(type);
	m->id = strdup(id);
	m->unprotected = json_object();
	m->time = time;
	if (!m->type || !m->id || !m->unprotected) {
		ds_manifest_free(m);
		return -ENOMEM;
	}
	*ret = m;
	return 0;
}

int ds_manifest_new(const char *type, const char *id, int64_t time, struct ds_manifest **ret)
{
	int r;

	if (!type || !id || !ret || !backup_type_valid(type) || !*id)
		return -EINVAL;
	r = utf8_check(id);
	return r < 0 ? r : manifest_alloc(type, id, time, ret);
}

static int files_append(struct ds_manifest *m, const char *filename, uint64_t size,
			const struct ds_digest *csum, enum ds_crypt_mode mode)
{
	struct mfile *f;

	if (m->nfiles == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 8;

		f = realloc(m->files, cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		m->files = f;
		m->cap = cap;
	}
	f = &m->files[m->nfiles];
	f->filename = strdup(filename);
	if (!f->filename)
		return -ENOMEM;
	f->size = size;
	f->csum = *csum;
	f->mode = mode;
	m->nfiles++;
	return 0;
}

/* ---- parsing ---- */

/* A string member without embedded NULs (jansson is told to allow them in
 * "unprotected", not in the fields this code hands out as C strings). */
static int get_str(json_t *obj, const char *key, const char *what, bool required,
		   const char **ret)
{
	json_t *v = json_object_get(obj, key);

	if (!v) {
		if (required) {
			ds_err("manifest: %s: \"%s\" is missing", what, key);
			return -EBADMSG;
		}
		*ret = NULL;
		return 0;
	}
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
		ds_err("manifest: %s: \"%s\" is not a string", what, key);
		return -EBADMSG;
	}
	*ret = json_string_value(v);
	return 0;
}

static int parse_file(struct ds_manifest *m, json_t *f, size_t i)
{
	const char *name, *csum, *mode;
	struct ds_digest d;
	json_t *size;
	char what[48];
	int r, cm = DS_CRYPT_NONE;

	snprintf(what, sizeof(what), "files[%zu]", i);
	if (!json_is_object(f)) {
		ds_err("manifest: %s is not an object", what);
		return -EBADMSG;
	}
	r = get_str(f, "filename", what, true, &name);
	if (r == 0)
		r = get_str(f, "csum", what, true, &csum);
	if (r == 0)
		r = get_str(f, "crypt-mode", what, false, &mode);
	if (r < 0)
		return r;
	if (!*name) {
		ds_err("manifest: %s: empty filename", what);
		return -EBADMSG;
	}
	size = json_object_get(f, "size");
	if (!size || !json_is_integer(size) || json_integer_value(size) < 0) {
		ds_err("manifest: %s (%s): \"size\" is %s", what, name,
		       size ? "not a non-negative integer" : "missing");
		return -EBADMSG;
	}
	if (strlen(csum) != DS_DIGEST_HEX_LEN || ds_digest_from_hex(csum, &d) < 0) {
		ds_err("manifest: %s (%s): \"csum\" is not 64 hex digits", what, name);
		return -EBADMSG;
	}
	if (mode) {
		cm = crypt_mode_parse(mode);
		if (cm < 0) {
			ds_err("manifest: %s (%s): unknown crypt-mode \"%s\"", what, name, mode);
			return -EBADMSG;
		}
	}
	return files_append(m, name, (uint64_t)json_integer_value(size), &d, cm);
}

static int parse_tree(json_t *root, struct ds_manifest **ret)
{
	struct ds_manifest *m = NULL;
	const char *type, *id, *sig = NULL;
	json_t *time, *files, *unprot, *v;
	int r;

	if (!json_is_object(root)) {
		ds_err("manifest: top level is not an object");
		return -EBADMSG;
	}
	r = get_str(root, "backup-type", "manifest", true, &type);
	if (r == 0)
		r = get_str(root, "backup-id", "manifest", true, &id);
	if (r < 0)
		return r;
	if (!backup_type_valid(type)) {
		ds_err("manifest: unknown backup-type \"%s\"", type);
		return -EBADMSG;
	}
	time = json_object_get(root, "backup-time");
	if (!json_is_integer(time)) {
		ds_err("manifest: \"backup-time\" is %s", time ? "not an integer" : "missing");
		return -EBADMSG;
	}
	files = json_object_get(root, "files");
	if (!json_is_array(files)) {
		ds_err("manifest: \"files\" is %s", files ? "not an array" : "missing");
		return -EBADMSG;
	}
	/* PBS: missing means {} (manifests before 0.8). A null would be kept by
	 * PBS as null; it is read as {} here so notes can be set on it. */
	unprot = json_object_get(root, "unprotected");
	if (unprot && !json_is_object(unprot) && !json_is_null(unprot)) {
		ds_err("manifest: \"unprotected\" is not an object");
		return -EBADMSG;
	}
	v = json_object_get(root, "signature");
	if (v && !json_is_null(v)) {
		r = get_str(root, "signature", "manifest", true, &sig);
		if (r < 0)
			return r;
	}

	r = manifest_alloc(type, id, json_integer_value(time), &m);
	if (r < 0)
		return r;
	for (size_t i = 0; i < json_array_size(files); i++) {
		r = parse_file(m, json_array_get(files, i), i);
		if (r < 0)
			goto fail;
	}
	if (json_is_object(unprot)) {
		json_decref(m->unprotected);
		m->unprotected = json_incref(unprot);
	}
	if (sig) {
		m->signature = strdup(sig);
		if (!m->signature) {
			r = -ENOMEM;
			goto fail;
		}
	}
	m->signed_text = json_copy(root);
	if (!m->signed_text) {
		r = -ENOMEM;
		goto fail;
	}
	json_object_del(m->signed_text, "unprotected");
	json_object_del(m->signed_text, "signature");
	*ret = m;
	return 0;
fail:
	ds_manifest_free(m);
	return r;
}

int ds_manifest_parse(const char *json, size_t len, struct ds_manifest **ret)
{
	json_error_t jerr;
	json_t *root;
	int r;

	if (!json || !ret)
		return -EINVAL;
	/* jansson keeps the last of duplicate keys, as serde_json's Value does,
	 * which is what PBS parses the text into first. */
	root = json_loadb(json, len, JSON_ALLOW_NUL, &jerr);
	if (!root) {
		if (json_error_code(&jerr) == json_error_out_of_memory)
			return -ENOMEM;
		ds_err("manifest: not valid JSON: %s (line %d, column %d)", jerr.text,
		       jerr.line, jerr.column);
		return -EBADMSG;
	}
	r = parse_tree(root, ret);
	json_decref(root);
	return r;
}

/* ---- accessors ---- */

const char *ds_manifest_type(const struct ds_manifest *m)
{
	return m->type;
}

const char *ds_manifest_id(const struct ds_manifest *m)
{
	return m->id;
}

int64_t ds_manifest_time(const struct ds_manifest *m)
{
	return m->time;
}

size_t ds_manifest_file_count(const struct ds_manifest *m)
{
	return m->nfiles;
}

static void file_out(const struct mfile *f, struct ds_manifest_file *ret)
{
	ret->filename = f->filename;
	ret->size = f->size;
	ret->csum = f->csum;
	ret->crypt_mode = f->mode;
}

int ds_manifest_file(const struct ds_manifest *m, size_t i, struct ds_manifest_file *ret)
{
	if (i >= m->nfiles)
		return -ERANGE;
	file_out(&m->files[i], ret);
	return 0;
}

static struct mfile *find(const struct ds_manifest *m, const char *filename)
{
	for (size_t i = 0; i < m->nfiles; i++)
		if (strcmp(m->files[i].filename, filename) == 0)
			return &m->files[i];
	return NULL;
}

int ds_manifest_find(const struct ds_manifest *m, const char *filename,
		     struct ds_manifest_file *ret)
{
	const struct mfile *f = find(m, filename);

	if (!f)
		return -ENOENT;
	file_out(f, ret);
	return 0;
}

/* A signed field changed: from now on the signature is checked against the
 * fields as they are, as PBS signs them. */
static void forget_signed_text(struct ds_manifest *m)
{
	json_decref(m->signed_text);
	m->signed_text = NULL;
}

int ds_manifest_remove_file(struct ds_manifest *m, const char *filename)
{
	for (size_t i = 0; i < m->nfiles; i++)
		if (strcmp(m->files[i].filename, filename) == 0) {
			free(m->files[i].filename);
			memmove(&m->files[i], &m->files[i + 1],
				(m->nfiles - i - 1) * sizeof(*m->files));
			m->nfiles--;
			forget_signed_text(m);
			return 0;
		}
	return -ENOENT;
}

int ds_manifest_set_file(struct ds_manifest *m, const char *filename, uint64_t size,
			 const struct ds_digest *csum, enum ds_crypt_mode mode)
{
	struct mfile *f;
	int r;

	/* jansson integers are int64_t; PBS never writes sizes that large. */
	if (!filename || !*filename || !csum || !ds_crypt_mode_name(mode) ||
	    size > (uint64_t)INT64_MAX)
		return -EINVAL;
	r = utf8_check(filename);
	if (r < 0)
		return r;
	forget_signed_text(m);
	f = find(m, filename);
	if (!f)
		return files_append(m, filename, size, csum, mode);
	f->size = size;
	f->csum = *csum;
	f->mode = mode;
	return 0;
}

static const char *unprotected_str(const struct ds_manifest *m, const char *key)
{
	return json_string_value(json_object_get(m->unprotected, key));
}

bool ds_manifest_verify_failed(const struct ds_manifest *m)
{
	const char *state = json_string_value(
		json_object_get(json_object_get(m->unprotected, "verify_state"), "state"));

	return state && strcmp(state, "failed") == 0;
}

const char *ds_manifest_notes(const struct ds_manifest *m)
{
	return unprotected_str(m, "notes");
}

int ds_manifest_set_notes(struct ds_manifest *m, const char *notes)
{
	json_t *s;
	int r;

	if (!notes) {
		json_object_del(m->unprotected, "notes");
		return 0;
	}
	r = utf8_check(notes);
	if (r < 0)
		return r;
	s = json_string_nocheck(notes);
	if (!s || json_object_set_new_nocheck(m->unprotected, "notes", s) < 0)
		return -ENOMEM;
	return 0;
}

const char *ds_manifest_fingerprint(const struct ds_manifest *m)
{
	return unprotected_str(m, "key-fingerprint");
}

const char *ds_manifest_signature(const struct ds_manifest *m)
{
	return m->signature;
}

char *ds_manifest_unprotected_json(const struct ds_manifest *m)
{
	char *text;

	if (serialize(m->unprotected, false, false, &text, NULL) < 0)
		return NULL;
	return text;
}

/* ---- output, signature ---- */

/* Sets key to v, taking v's reference even on failure. */
static int set_new(json_t *obj, const char *key, json_t *v)
{
	if (!v || json_object_set_new_nocheck(obj, key, v) < 0)
		return -ENOMEM;
	return 0;
}

/* The signed part as a tree: every field except unprotected and signature. */
static json_t *signed_tree(const struct ds_manifest *m)
{
	json_t *root = json_object(), *files = json_array();
	int r;

	if (!root || !files)
		goto fail;
	r = set_new(root, "backup-type", json_string_nocheck(m->type));
	r = r ?: set_new(root, "backup-id", json_string_nocheck(m->id));
	r = r ?: set_new(root, "backup-time", json_integer(m->time));
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < m->nfiles; i++) {
		const struct mfile *f = &m->files[i];
		char hex[DS_DIGEST_HEX_LEN + 1];
		json_t *o = json_object();

		if (!o || json_array_append_new(files, o) < 0)
			goto fail;
		ds_digest_to_hex(&f->csum, hex);
		r = set_new(o, "crypt-mode", json_string_nocheck(mode_names[f->mode]));
		r = r ?: set_new(o, "csum", json_string_nocheck(hex));
		r = r ?: set_new(o, "filename", json_string_nocheck(f->filename));
		r = r ?: set_new(o, "size", json_integer((json_int_t)f->size));
		if (r < 0)
			goto fail;
	}
	if (set_new(root, "files", files) < 0) {
		files = NULL;
		goto fail;
	}
	return root;
fail:
	json_decref(files);
	json_decref(root);
	return NULL;
}

int ds_manifest_canonical(const struct ds_manifest *m, char **ret_text, size_t *ret_len)
{
	json_t *t = signed_tree(m);
	int r;

	if (!t)
		return -ENOMEM;
	r = serialize(t, false, true, ret_text, ret_len);
	json_decref(t);
	return r;
}

/* as_read: over the signed part as parsed (checking, as PBS's from_data),
 * else over the fields (signing, as PBS's signature()). */
static int signature_hex(const struct ds_manifest *m, const struct ds_crypt *c, bool as_read,
			 char out[DS_DIGEST_HEX_LEN + 1])
{
	struct ds_digest mac;
	char *text;
	size_t len;
	int r;

	if (as_read && m->signed_text)
		r = serialize(m->signed_text, false, true, &text, &len);
	else
		r = ds_manifest_canonical(m, &text, &len);
	if (r < 0)
		return r;
	ds_crypt_sign(c, text, len, &mac);
	free(text);
	ds_digest_to_hex(&mac, out);
	return 0;
}

int ds_manifest_sign(struct ds_manifest *m, const struct ds_crypt *c)
{
	char fp[DS_FINGERPRINT_STR_LEN], hex[DS_DIGEST_HEX_LEN + 1];
	char *sig;
	int r;

	if (!m || !c)
		return -EINVAL;
	r = signature_hex(m, c, false, hex);
	if (r < 0)
		return r;
	sig = strdup(hex);
	if (!sig)
		return -ENOMEM;
	ds_crypt_fingerprint_str(c, fp);
	r = set_new(m->unprotected, "key-fingerprint", json_string_nocheck(fp));
	if (r < 0) {
		free(sig);
		return r;
	}
	free(m->signature);
	m->signature = sig;
	forget_signed_text(m);
	return 0;
}

/* ds_manifest_verify; quiet: without its log lines. */
static int verify(const struct ds_manifest *m, const struct ds_crypt *c, bool quiet)
{
	char mine[DS_FINGERPRINT_STR_LEN], hex[DS_DIGEST_HEX_LEN + 1];
	struct ds_digest stored, key_fp;
	json_t *fp;
	int r;

	if (!m || !c)
		return -EINVAL;
	fp = json_object_get(m->unprotected, "key-fingerprint");
	if (fp && !json_is_null(fp)) {
		/* Read as PBS reads it: with or without colons, either case. */
		if (!json_is_string(fp) || ds_fingerprint_parse(json_string_value(fp), &stored) < 0) {
			if (!quiet)
				ds_err("manifest: unprotected.key-fingerprint is not a fingerprint");
			return -EBADMSG;
		}
		ds_crypt_fingerprint(c, &key_fp);
		ds_crypt_fingerprint_str(c, mine);
		if (!ds_digest_eq(&stored, &key_fp)) {
			if (!quiet)
				ds_err("manifest: signed with key %s, not with the given key %s",
				       json_string_value(fp), mine);
			return -EKEYREJECTED;
		}
	}
	if (!m->signature) {
		if (!quiet)
			ds_err("manifest: not signed");
		return -EBADMSG;
	}
	r = signature_hex(m, c, true, hex);
	if (r == -EINVAL) {
		if (!quiet)
			ds_err("manifest: null inside the signed part");
		return -EBADMSG;
	}
	if (r < 0)
		return r;
	/* PBS compares the hex strings; a stored signature is lowercase. */
	if (strlen(m->signature) != DS_DIGEST_HEX_LEN ||
	    CRYPTO_memcmp(m->signature, hex, DS_DIGEST_HEX_LEN) != 0) {
		if (!quiet)
			ds_err("manifest: wrong signature");
		return -EBADMSG;
	}
	return 0;
}

int ds_manifest_verify(const struct ds_manifest *m, const struct ds_crypt *c)
{
	return verify(m, c, false);
}

int ds_manifest_verify_quiet(const struct ds_manifest *m, const struct ds_crypt *c)
{
	return verify(m, c, true);
}

bool ds_manifest_covers(const struct ds_manifest *m, const char *filename)
{
	return strcmp(filename, DS_MANIFEST_NAME) == 0 || strcmp(filename, DS_CLIENT_LOG_NAME) == 0 ||
	       find(m, filename) != NULL;
}

int ds_manifest_format(const struct ds_manifest *m, char **ret_text, size_t *ret_len)
{
	json_t *t = signed_tree(m);
	int r;

	if (!t)
		return -ENOMEM;
	r = set_new(t, "signature", m->signature ? json_string_nocheck(m->signature)
						 : json_null());
	if (r == 0 && json_object_set_nocheck(t, "unprotected", m->unprotected) < 0)
		r = -ENOMEM;
	if (r == 0)
		r = serialize(t, true, false, ret_text, ret_len);
	json_decref(t);
	return r;
}

/* ---- the file ---- */

int ds_manifest_load(int snapdirfd, struct ds_manifest **ret)
{
	uint8_t *raw = NULL, *text = NULL;
	size_t rawlen, len;
	int r;

	r = ds_read_file_at(snapdirfd, DS_MANIFEST_NAME, DS_MAX_BLOB_SIZE + DS_BLOB_ENC_HEADER_LEN,
			    &raw, &rawlen);
	if (r < 0)
		return r;
	r = ds_blob_decode(raw, rawlen, NULL, DS_MAX_BLOB_SIZE, &text, &len);
	if (r == -ENOKEY || r == -EFBIG || r == -EBADMSG) {
		ds_err("%s: %s", DS_MANIFEST_NAME,
		       r == -ENOKEY ? "encrypted, which PBS never writes" : "corrupt blob");
		r = -EBADMSG;
	}
	if (r < 0)
		goto out;
	r = ds_manifest_parse((const char *)text, len, ret);
out:
	free(text);
	free(raw);
	return r;
}

int ds_manifest_store(int snapdirfd, const struct ds_manifest *m)
{
	uint8_t *raw = NULL;
	char *text = NULL;
	size_t len, rawlen;
	int r;

	r = ds_manifest_format(m, &text, &len);
	if (r < 0)
		return r;
	r = ds_blob_encode((const uint8_t *)text, len, NULL, true, &raw, &rawlen);
	if (r == 0)
		r = ds_replace_file_at(snapdirfd, DS_MANIFEST_NAME, raw, rawlen, 0644, true);
	free(raw);
	free(text);
	return r;
}
