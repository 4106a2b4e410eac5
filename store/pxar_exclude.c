/* Exclude patterns as proxmox-backup-client applies them to a tree backup.
 * Written from PBS's code (pbs-client/src/pxar/create.rs: read_pxar_excludes,
 * generate_directory_file_list, encode_pxarexclude_cli,
 * generate_pxar_excludes_cli, create_archive; proxmox-backup-client's
 * backup command for --exclude) and from the pathpatterns crate it uses
 * (src/match_list.rs: MatchEntry::parse_pattern, matches_path_suffix,
 * MatchList; src/pattern.rs: Pattern::new, parse_char_class, do_matches,
 * a port of git's wildmatch.c). Where PBS's documentation
 * (docs/backup-client.rst) and its code disagree, this follows the code.
 *
 * Reading a .pxarexclude (create.rs read_pxar_excludes):
 *  - lines are split at '\n'; ASCII whitespace (space, \t, \n, \f, \r; not
 *    \v) is trimmed at both ends; empty lines and lines starting with '#'
 *    are skipped;
 *  - "/p" becomes the exclude pattern DIR + "/p", "!/p" the include pattern
 *    DIR + "/p", both ANCHORED (matched against the whole path); DIR is the
 *    directory's path relative to the root without a leading '/' (the root:
 *    ""). The path matched always starts with '/' ("/sub/x"), so an anchored
 *    line works in the root's .pxarexclude ("/x") but in sub/.pxarexclude it
 *    becomes "sub/x", which never equals "/sub/x": PBS's client ignores
 *    anchored lines below the root, and so does this;
 *  - "!p" is the include pattern "p", anything else the exclude pattern;
 *  - a bad pattern is logged and skipped; the rest of the file applies.
 * Parsing a pattern (MatchEntry::parse_pattern): a leading '!' flips
 * include/exclude (so "!!p" excludes p); trailing '/'s are removed and make
 * the pattern match directories only (lstat type; a symlink to a directory
 * is not one); a pattern of only '/'s (or empty) becomes "/", directories
 * only, which matches nothing. --exclude patterns are parsed the same way,
 * never anchored, and a bad one refuses the backup.
 * Glob syntax (Pattern::new, PATH_NAME): '\' escapes the next byte (a
 * trailing '\' is an error); '?' one byte but not '/'; '*' any bytes but
 * '/'; '**' any bytes including '/', but only as a whole path component
 * (alone, after a '/' and/or before one), else it is '*'; '**' followed by
 * a '/' may also match nothing at the start of the text or after a '/' (so
 * "** /x" matches "x" and "a/ ** /b" matches "a/b", written here with
 * spaces); "[...]" one byte from a set of
 * bytes, ranges "a-z" (either order), named classes "[:alpha:]" etc. (an
 * unknown "[:" is an error), negated by a leading '^' ('!' is not special
 * there, whatever the docs say); a class may match '/'. An unclosed class
 * is an error here; PBS's parser panics on it. A NUL byte is an error.
 * Matching (MatchEntry::matches, MatchList::matches): the path is "/" +
 * the path relative to the root. A non-anchored pattern matches if it
 * matches the whole path or any suffix that starts after a '/' ("b",
 * "a/b" and "/a/b" of "/a/b"), so "name" matches at any depth and
 * "dir/name" wherever that pair occurs; an anchored one must match the
 * whole path. The patterns are tried from the last to the first; the
 * first that matches (type included) decides, none means keep.
 * Order and scope (create.rs archive_dir_contents): --exclude patterns
 * come first; a directory's .pxarexclude lines are appended when the
 * directory is entered (before its entries are matched, so they apply to
 * its entries and everything below) and dropped when it is left. Later
 * lines, and deeper files, win. An excluded directory is not read, so its
 * .pxarexclude has no effect. The .pxarexclude file is an ordinary entry:
 * stored unless a pattern excludes it.
 * --exclude text (generate_pxar_excludes_cli): per pattern '!' if include,
 * the pattern as parsed (after '!' and the trailing '/'s), '/' if it is
 * directories-only and does not end in '/', '\n'. v1 stores it as the root's
 * last entry ".pxarexclude-cli" (pxar_encoder.c); v2 as the PRELUDE
 * {"exclude-patterns":"<text>"} (serde_json; the text must be UTF-8).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/log.h"
#include "store/pxar_exclude.h"

enum { C_LIT, C_QM, C_STAR, C_STARSTAR, C_CLASS };

/* LIT: bytes lit[off, off+len); CLASS: set cls[off] (negation folded in);
 * STARSTAR: off is its number among the pattern's '**'s (its memo row). */
struct comp {
	uint8_t kind;
	size_t off, len;
};

struct pat {
	bool include, anchored, dir_only;
	char *text; /* as parsed: after '!' and trailing '/'s, NUL-terminated */
	size_t text_len;
	uint8_t *lit;
	uint8_t (*cls)[32];
	struct comp *c;
	size_t nc;
	size_t nss; /* number of C_STARSTAR components */
};

struct ds_pxar_excl {
	struct pat *v;
	size_t n, cap;
};

enum { M_MATCH, M_NOMATCH, M_ABORT_ALL, M_ABORT_TO_STARSTAR };

/* ---- parsing ---- */

struct build {
	struct pat *p;
	size_t nlit, ncls, ccap;
	const char *why;
};

static void pat_release(struct pat *p)
{
	free(p->text);
	free(p->lit);
	free(p->cls);
	free(p->c);
	memset(p, 0, sizeof(*p));
}

static int push_comp(struct build *b, uint8_t kind, size_t off, size_t len)
{
	if (b->p->nc == b->ccap) {
		size_t cap = b->ccap ? 2 * b->ccap : 8;
		struct comp *c = realloc(b->p->c, cap * sizeof(*c));

		if (!c)
			return -ENOMEM;
		b->p->c = c;
		b->ccap = cap;
	}
	b->p->c[b->p->nc++] = (struct comp){ kind, off, len };
	return 0;
}

/* The literal collected since lit_start becomes a component. */
static int flush_lit(struct build *b, size_t *lit_start)
{
	int r = 0;

	if (b->nlit > *lit_start)
		r = push_comp(b, C_LIT, *lit_start, b->nlit - *lit_start);
	*lit_start = b->nlit;
	return r;
}

static bool is_punct(unsigned c)
{
	return (c >= 0x21 && c <= 0x2f) || (c >= 0x3a && c <= 0x40) || (c >= 0x5b && c <= 0x60) ||
	       (c >= 0x7b && c <= 0x7e);
}

/* Rust's u8::is_ascii_* predicates, as pathpatterns' named classes. */
static const struct {
	const char *name; /* ":alpha:]" */
	int id;
} named_classes[] = {
	{ ":alnum:]", 0 }, { ":alpha:]", 1 }, { ":blank:]", 2 },  { ":cntrl:]", 3 },
	{ ":digit:]", 4 }, { ":graph:]", 5 }, { ":lower:]", 6 },  { ":print:]", 7 },
	{ ":punct:]", 8 }, { ":space:]", 9 }, { ":upper:]", 10 }, { ":xdigit:]", 11 },
};

static bool named_has(int id, unsigned c)
{
	bool lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z', digit = c >= '0' && c <= '9';

	switch (id) {
	case 0: return lower || upper || digit;
	case 1: return lower || upper;
	case 2: return c == ' ' || c == '\t';
	case 3: return c < 0x20 || c == 0x7f;
	case 4: return digit;
	case 5: return c >= 0x21 && c <= 0x7e;
	case 6: return lower;
	case 7: return c >= 0x20 && c <= 0x7f; /* sic: pathpatterns includes DEL */
	case 8: return is_punct(c);
	case 9: return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
	case 10: return upper;
	default: return digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
	}
}

/* Parses the class starting at p[begin] == '['; *ret_end is the index of
 * its closing ']'. Bytes listed are counted so that a range can take back
 * the byte before its '-' even when it was listed twice ("[aa-c]"). */
static int parse_class(struct build *b, const uint8_t *p, size_t len, size_t begin,
		       size_t *ret_end)
{
	uint32_t count[256] = { 0 };
	uint8_t set[32] = { 0 };
	bool negated = false, have_prev = false;
	unsigned prev = 0;
	size_t i = begin + 1;
	uint8_t (*cls)[32];

	if (i < len && p[i] == '^') {
		negated = true;
		i++;
	}
	for (;; i++) {
		bool new_prev = false;
		unsigned ch = 0;

		if (i >= len) {
			b->why = "unclosed character class in pattern";
			return -EINVAL;
		}
		if (p[i] == 0) {
			b->why = "null-byte in pattern";
			return -EINVAL;
		}
		if (p[i] == ']')
			break;
		if (p[i] == '[' && i + 1 < len && p[i + 1] == ':') {
			size_t k;

			for (k = 0; k < sizeof(named_classes) / sizeof(named_classes[0]); k++) {
				size_t nl = strlen(named_classes[k].name);

				if (len - (i + 1) >= nl && memcmp(p + i + 1, named_classes[k].name, nl) == 0)
					break;
			}
			if (k == sizeof(named_classes) / sizeof(named_classes[0])) {
				b->why = "malformed named character class in pattern";
				return -EINVAL;
			}
			for (unsigned c = 0; c < 256; c++)
				if (named_has(named_classes[k].id, c))
					set[c / 8] |= (uint8_t)(1u << (c % 8));
			i += strlen(named_classes[k].name); /* to its "]" */
		} else if (p[i] == '\\') {
			if (++i >= len) {
				b->why = "trailing backslash in pattern";
				return -EINVAL;
			}
			ch = p[i];
			count[ch]++;
			new_prev = true;
		} else if (p[i] == '-' && have_prev) {
			unsigned end, lo, hi;

			count[prev]--;
			if (++i >= len) {
				b->why = "unclosed character class in pattern";
				return -EINVAL;
			}
			end = p[i];
			if (end == '\\') {
				if (++i >= len) {
					b->why = "unclosed character class in pattern";
					return -EINVAL;
				}
				end = p[i];
			}
			lo = prev < end ? prev : end;
			hi = prev < end ? end : prev;
			for (unsigned c = lo; c <= hi; c++)
				set[c / 8] |= (uint8_t)(1u << (c % 8));
		} else {
			/* includes '[' not followed by ':' and a leading '-' */
			ch = p[i];
			count[ch]++;
			new_prev = true;
		}
		have_prev = new_prev;
		prev = ch;
	}
	for (unsigned c = 0; c < 256; c++)
		if (count[c])
			set[c / 8] |= (uint8_t)(1u << (c % 8));
	if (negated)
		for (size_t k = 0; k < sizeof(set); k++)
			set[k] = (uint8_t)~set[k];
	cls = realloc(b->p->cls, (b->ncls + 1) * sizeof(*cls));
	if (!cls)
		return -ENOMEM;
	b->p->cls = cls;
	memcpy(cls[b->ncls], set, sizeof(set));
	*ret_end = i;
	return push_comp(b, C_CLASS, b->ncls++, 0);
}

/* Compiles glob p (len bytes, trailing '/'s already removed) into b->p. */
static int compile(struct build *b, const uint8_t *p, size_t len)
{
	size_t lit_start = 0;
	int r = 0;

	b->p->lit = malloc(len ? len : 1);
	if (!b->p->lit)
		return -ENOMEM;
	for (size_t i = 0; i < len && r == 0; i++) {
		switch (p[i]) {
		case 0:
			b->why = "null-byte in pattern";
			return -EINVAL;
		case '\\':
			if (++i >= len) {
				b->why = "trailing backslash in pattern";
				return -EINVAL;
			}
			b->p->lit[b->nlit++] = p[i];
			break;
		case '?':
			r = flush_lit(b, &lit_start);
			if (r == 0)
				r = push_comp(b, C_QM, 0, 0);
			break;
		case '*': {
			uint8_t kind = C_STAR;

			r = flush_lit(b, &lit_start);
			if (r == 0 && i + 1 < len && p[i + 1] == '*') {
				size_t beg = i;

				while (i + 1 < len && p[i + 1] == '*')
					i++;
				/* As git: "**" only as a whole path component. */
				if ((beg == 0 || p[beg - 1] == '/') && (i + 1 == len || p[i + 1] == '/'))
					kind = C_STARSTAR;
			}
			if (r == 0)
				r = push_comp(b, kind, kind == C_STARSTAR ? b->p->nss++ : 0, 0);
			break;
		}
		case '[':
			r = flush_lit(b, &lit_start);
			if (r == 0)
				r = parse_class(b, p, len, i, &i);
			break;
		default:
			b->p->lit[b->nlit++] = p[i];
			break;
		}
	}
	if (r == 0)
		r = flush_lit(b, &lit_start);
	return r;
}

/* MatchEntry::parse_pattern + Pattern::new into *out. */
static int parse_pattern(const char *pat, size_t len, bool include, bool anchored, struct pat *out,
			 const char **ret_why)
{
	const uint8_t *p = (const uint8_t *)pat;
	struct build b = { .p = out };
	size_t end;
	int r;

	memset(out, 0, sizeof(*out));
	if (len && p[0] == '!') {
		include = !include;
		p++;
		len--;
	}
	end = len;
	while (end && p[end - 1] == '/')
		end--;
	if (end == 0) {
		p = (const uint8_t *)"/";
		end = 1;
		out->dir_only = true;
	} else if (end < len) {
		out->dir_only = true;
	}
	/* Pattern::new refuses a NUL anywhere (CString::new) */
	if (memchr(p, 0, end)) {
		if (ret_why)
			*ret_why = "null-byte in pattern";
		return -EINVAL;
	}
	out->include = include;
	out->anchored = anchored;
	out->text = malloc(end + 1);
	if (!out->text)
		return -ENOMEM;
	memcpy(out->text, p, end);
	out->text[end] = '\0';
	out->text_len = end;
	r = compile(&b, p, end);
	if (r < 0) {
		if (ret_why)
			*ret_why = r == -EINVAL ? b.why : "out of memory";
		pat_release(out);
	}
	return r;
}

int ds_pxar_excl_new(struct ds_pxar_excl **ret)
{
	struct ds_pxar_excl *x = calloc(1, sizeof(*x));

	if (!x)
		return -ENOMEM;
	*ret = x;
	return 0;
}

void ds_pxar_excl_free(struct ds_pxar_excl *x)
{
	if (!x)
		return;
	ds_pxar_excl_truncate(x, 0);
	free(x->v);
	free(x);
}

size_t ds_pxar_excl_count(const struct ds_pxar_excl *x)
{
	return x->n;
}

void ds_pxar_excl_truncate(struct ds_pxar_excl *x, size_t n)
{
	while (x->n > n)
		pat_release(&x->v[--x->n]);
}

static int add(struct ds_pxar_excl *x, const char *pat, size_t len, bool include, bool anchored,
	       const char **ret_why)
{
	struct pat p;
	int r;

	if (x->n == x->cap) {
		size_t cap = x->cap ? 2 * x->cap : 16;
		struct pat *v = realloc(x->v, cap * sizeof(*v));

		if (!v) {
			if (ret_why)
				*ret_why = "out of memory";
			return -ENOMEM;
		}
		x->v = v;
		x->cap = cap;
	}
	r = parse_pattern(pat, len, include, anchored, &p, ret_why);
	if (r == 0)
		x->v[x->n++] = p;
	return r;
}

int ds_pxar_excl_add_cli(struct ds_pxar_excl *x, const char *pat, size_t len,
			 const char **ret_why)
{
	return add(x, pat, len, false, false, ret_why);
}

static bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

int ds_pxar_excl_add_file(struct ds_pxar_excl *x, const char *dir, size_t dir_len,
			  const char *buf, size_t len)
{
	size_t n0 = x->n, pos = 0;
	char *tmp = NULL;
	int r = 0;

	while (pos < len && r >= 0) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t s = pos, e = nl ? (size_t)(nl - buf) : len;
		const char *why = NULL;

		pos = e + 1;
		while (s < e && is_ws((unsigned char)buf[s]))
			s++;
		while (e > s && is_ws((unsigned char)buf[e - 1]))
			e--;
		if (s == e || buf[s] == '#')
			continue;
		if (buf[s] == '/' || (e - s >= 2 && buf[s] == '!' && buf[s + 1] == '/')) {
			bool inc = buf[s] == '!';
			size_t l = e - s - inc;
			char *t = realloc(tmp, dir_len + l + 1);

			if (!t) {
				r = -ENOMEM;
				break;
			}
			tmp = t;
			if (dir_len)
				memcpy(tmp, dir, dir_len);
			memcpy(tmp + dir_len, buf + s + inc, l);
			r = add(x, tmp, dir_len + l, inc, true, &why);
		} else if (buf[s] == '!') {
			r = add(x, buf + s + 1, e - s - 1, true, false, &why);
		} else {
			r = add(x, buf + s, e - s, false, false, &why);
		}
		if (r == -EINVAL) {
			ds_err("pxar: bad pattern in %.*s/.pxarexclude: %s: %.*s",
			       dir_len ? (int)dir_len : 1, dir_len ? dir : ".", why, (int)(e - s),
			       buf + s);
			r = 0;
		}
	}
	free(tmp);
	if (r < 0) {
		ds_pxar_excl_truncate(x, n0);
		return r;
	}
	return (int)(x->n - n0);
}

/* ---- matching ---- */

static bool lit_starts_with_slash(const struct pat *p, const struct comp *c)
{
	const uint8_t *l;

	if (c->kind != C_LIT)
		return false;
	l = p->lit + c->off;
	/* sic (pathpatterns): also a literal "\\" followed by "/" */
	return l[0] == '/' || (c->len > 1 && l[0] == '\\' && l[1] == '/');
}

static bool lit_ends_with_slash(const struct pat *p, const struct comp *c)
{
	return c->kind == C_LIT && p->lit[c->off + c->len - 1] == '/';
}

/* Results of the calls a '**' makes, as wildmatch's backtracking repeats
 * them: a '**' first lets the rest match right here (skip_slash), then at
 * every later byte, and each '**' behind it does the same, so "** /" k
 * times (written here with a space) took about 2.5^k steps: a 63-byte
 * .pxarexclude line (k = 20) took over a minute for one path of 40
 * components, k = 24 hours (PBS's pathpatterns does the same). A call's
 * result depends only on the '**', the bytes left (the text always ends
 * where the path ends, whichever suffix is matched) and skip_slash, so it
 * is kept in m[row * stride + n], low nibble without skip_slash, high
 * nibble with it, result + 1 (0: not yet known). */
struct memo {
	uint8_t *m; /* NULL: no memo (fewer than two '**', or too large) */
	size_t stride;
};

/* The memo is not needed below two '**' (one '**' only loops over the
 * text) and not allocated beyond this size (thousands of '**' against a
 * path of thousands of bytes); then the search is as PBS's. */
#define MEMO_MAX (64u << 20)

static int do_match(const struct pat *p, size_t ci, const uint8_t *t, size_t n, bool skip_slash,
		    struct memo *memo);

/* do_match(p, ci + 1, ...) for the '**' at ci, through the memo. */
static int after_starstar(const struct pat *p, size_t ci, const uint8_t *t, size_t n,
			  bool skip_slash, struct memo *memo)
{
	unsigned shift = skip_slash ? 4 : 0;
	uint8_t *cell;
	int r;

	if (!memo->m)
		return do_match(p, ci + 1, t, n, skip_slash, memo);
	cell = &memo->m[p->c[ci].off * memo->stride + n];
	if ((*cell >> shift) & 15)
		return ((*cell >> shift) & 15) - 1;
	r = do_match(p, ci + 1, t, n, skip_slash, memo);
	*cell |= (uint8_t)((r + 1) << shift);
	return r;
}

/* Pattern::do_matches (wildmatch with PATH_NAME): components ci.. against
 * text t (n bytes); skip_slash drops the first byte of the first literal,
 * letting a '**' between '/'s (or at the start, before one) match
 * nothing. */
static int do_match(const struct pat *p, size_t ci, const uint8_t *t, size_t n, bool skip_slash,
		    struct memo *memo)
{
	for (; ci < p->nc; ci++) {
		const struct comp *c = &p->c[ci];
		bool skip = skip_slash;

		skip_slash = false;
		switch (c->kind) {
		case C_LIT: {
			const uint8_t *l = p->lit + c->off + skip;
			size_t ll = c->len - skip;

			/* '*' is not greedy: with no text left, every shorter
			 * match was already tried. */
			if (!n)
				return M_ABORT_ALL;
			if (n < ll || memcmp(t, l, ll) != 0)
				return M_NOMATCH;
			t += ll;
			n -= ll;
			break;
		}
		case C_QM:
			if (!n)
				return M_ABORT_ALL;
			if (t[0] == '/')
				return M_NOMATCH;
			t++;
			n--;
			break;
		case C_CLASS:
			if (!n)
				return M_ABORT_ALL;
			if (!(p->cls[c->off][t[0] / 8] & (1u << (t[0] % 8))))
				return M_NOMATCH;
			t++;
			n--;
			break;
		case C_STAR:
			if (ci + 1 == p->nc && !memchr(t, '/', n))
				return M_MATCH;
			for (;; t++, n--) {
				int r;

				if (!n)
					return M_ABORT_ALL;
				r = do_match(p, ci + 1, t, n, false, memo);
				if (r != M_NOMATCH)
					return r;
				if (t[0] == '/')
					return M_ABORT_TO_STARSTAR;
			}
		default: /* C_STARSTAR */
			if (ci + 1 == p->nc)
				return M_MATCH;
			if ((ci == 0 || lit_ends_with_slash(p, &p->c[ci - 1])) &&
			    lit_starts_with_slash(p, &p->c[ci + 1]) &&
			    after_starstar(p, ci, t, n, true, memo) == M_MATCH)
				return M_MATCH;
			for (;; t++, n--) {
				int r;

				if (!n)
					return M_ABORT_ALL;
				r = after_starstar(p, ci, t, n, false, memo);
				if (r != M_NOMATCH && r != M_ABORT_TO_STARSTAR)
					return r;
			}
		}
	}
	return n ? M_NOMATCH : M_MATCH;
}

static bool match_exact(const struct pat *p, const uint8_t *t, size_t n, struct memo *memo)
{
	return do_match(p, 0, t, n, false, memo) == M_MATCH;
}

/* MatchEntry::matches: type first, then the whole path (anchored) or any
 * suffix after a '/' and the whole path. One memo serves every suffix. */
static bool pat_matches(const struct pat *p, const uint8_t *path, size_t len, mode_t mode)
{
	struct memo memo = { NULL, len + 1 };
	bool r = false;

	if (p->dir_only && !S_ISDIR(mode))
		return false;
	/* without memory the search is only slower (as PBS's), not wrong */
	if (p->nss >= 2 && p->nss <= MEMO_MAX / memo.stride)
		memo.m = calloc(p->nss, memo.stride);
	if (p->anchored) {
		r = match_exact(p, path, len, &memo);
	} else if (len) {
		for (size_t s = len; s-- > 0 && !r;)
			r = path[s] == '/' && match_exact(p, path + s + 1, len - s - 1, &memo);
		r = r || match_exact(p, path, len, &memo);
	}
	free(memo.m);
	return r;
}

enum ds_pxar_excl_result ds_pxar_excl_match(const struct ds_pxar_excl *x, const char *path,
					    size_t len, mode_t mode)
{
	for (size_t i = x->n; i-- > 0;)
		if (pat_matches(&x->v[i], (const uint8_t *)path, len, mode))
			return x->v[i].include ? DS_PXAR_EXCL_INCLUDE : DS_PXAR_EXCL_EXCLUDE;
	return DS_PXAR_EXCL_NONE;
}

/* ---- what PBS stores for --exclude ---- */

int ds_pxar_excl_cli_text(const struct ds_pxar_excl *x, size_t n, char **ret, size_t *ret_len)
{
	size_t len = 0, o = 0;
	char *s;

	if (n > x->n)
		n = x->n;
	for (size_t i = 0; i < n; i++)
		len += x->v[i].text_len + 3;
	s = malloc(len + 1);
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct pat *p = &x->v[i];

		if (p->include)
			s[o++] = '!';
		memcpy(s + o, p->text, p->text_len);
		o += p->text_len;
		/* PBS tests flags == MATCH_DIRECTORIES: never anchored here */
		if (p->dir_only && !p->anchored && p->text[p->text_len - 1] != '/')
			s[o++] = '/';
		s[o++] = '\n';
	}
	s[o] = '\0';
	*ret = s;
	*ret_len = o;
	return 0;
}

/* Rust's String::from_utf8: no overlong forms, surrogates or > U+10FFFF. */
static bool valid_utf8(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = s[i];
		size_t k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3, cp = c & 0x07;
		else
			return false;
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += k + 1;
	}
	return true;
}

int ds_pxar_excl_prelude(const struct ds_pxar_excl *x, size_t n, char **ret, size_t *ret_len)
{
	static const char head[] = "{\"exclude-patterns\":\"", tail[] = "\"}";
	static const char hex[] = "0123456789abcdef";
	size_t tlen, o = 0;
	char *text, *s;
	int r;

	r = ds_pxar_excl_cli_text(x, n, &text, &tlen);
	if (r < 0)
		return r;
	if (!valid_utf8((const uint8_t *)text, tlen)) {
		free(text);
		return -EILSEQ;
	}
	s = malloc(sizeof(head) + 6 * tlen + sizeof(tail));
	if (!s) {
		free(text);
		return -ENOMEM;
	}
	memcpy(s, head, sizeof(head) - 1);
	o = sizeof(head) - 1;
	/* serde_json's escapes: \" \\ \b \t \n \f \r, other controls \u00xx */
	for (size_t i = 0; i < tlen; i++) {
		unsigned char c = (unsigned char)text[i];
		const char *esc = NULL;

		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\b': esc = "\\b"; break;
		case '\t': esc = "\\t"; break;
		case '\n': esc = "\\n"; break;
		case '\f': esc = "\\f"; break;
		case '\r': esc = "\\r"; break;
		default: break;
		}
		if (esc) {
			s[o++] = esc[0];
			s[o++] = esc[1];
		} else if (c < 0x20) {
			memcpy(s + o, "\\u00", 4);
			s[o + 4] = hex[c >> 4];
			s[o + 5] = hex[c & 15];
			o += 6;
		} else {
			s[o++] = (char)c;
		}
	}
	memcpy(s + o, tail, sizeof(tail));
	o += sizeof(tail) - 1;
	free(text);
	*ret = s;
	*ret_len = o;
	return 0;
}
