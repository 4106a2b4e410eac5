/* pxar_exclude — the include/exclude patterns of PBS's client for tree
 * backups: --exclude patterns and the lines of .pxarexclude files, parsed
 * and matched as proxmox-backup-client does (the rules and their sources
 * are listed at the top of pxar_exclude.c), and the text PBS stores for
 * the --exclude patterns (.pxarexclude-cli, the v2 PRELUDE).
 *
 * A list is a stack: the encoder pushes a directory's .pxarexclude lines
 * when it enters the directory and truncates them when it leaves; the
 * last pattern that matches decides.
 *
 * Not for: reading files or walking trees (pxar_encoder.c does that).
 * Thread-safety: a list is not thread-safe; distinct lists are independent.
 */
#ifndef DSFS_STORE_PXAR_EXCLUDE_H
#define DSFS_STORE_PXAR_EXCLUDE_H

#include <stddef.h>
#include <sys/types.h>

struct ds_pxar_excl;

enum ds_pxar_excl_result {
	DS_PXAR_EXCL_NONE = 0,   /* no pattern matched: the entry is kept */
	DS_PXAR_EXCL_INCLUDE = 1, /* the deciding pattern is an include ('!') */
	DS_PXAR_EXCL_EXCLUDE = 2, /* the deciding pattern excludes the entry */
};

/* An empty list in *ret; 0 or -ENOMEM. Caller frees with _free (accepts
 * NULL). */
int ds_pxar_excl_new(struct ds_pxar_excl **ret);
void ds_pxar_excl_free(struct ds_pxar_excl *x);

/* Appends one --exclude pattern as proxmox-backup-client parses it: an
 * exclude (a leading '!' makes it an include), never anchored, a trailing
 * '/' restricts it to directories. Returns 0, -ENOMEM, or -EINVAL for a
 * pattern PBS refuses; then *ret_why (may be NULL) names the reason
 * (static string). */
int ds_pxar_excl_add_cli(struct ds_pxar_excl *x, const char *pat, size_t len,
			 const char **ret_why);

/* Appends the patterns of a .pxarexclude file's content buf (len bytes)
 * found in the directory dir (dir_len bytes: its path relative to the
 * archive root, no leading '/', empty for the root). Blank lines and '#'
 * comments are skipped; a bad line is logged (naming dir) and skipped, as
 * PBS does. Returns the number of patterns added, or -ENOMEM (the list is
 * then as before the call). */
int ds_pxar_excl_add_file(struct ds_pxar_excl *x, const char *dir, size_t dir_len,
			  const char *buf, size_t len);

/* Number of patterns; _truncate drops all after the first n. */
size_t ds_pxar_excl_count(const struct ds_pxar_excl *x);
void ds_pxar_excl_truncate(struct ds_pxar_excl *x, size_t n);

/* Which pattern decides for an entry: path is '/' followed by the entry's
 * path relative to the archive root ("/dir/file", len bytes), mode its
 * lstat st_mode (only its type is used). Pure. */
enum ds_pxar_excl_result ds_pxar_excl_match(const struct ds_pxar_excl *x, const char *path,
					    size_t len, mode_t mode);

/* The content PBS stores for the first n patterns (the --exclude ones):
 * one line each, '!' before an include, the pattern, '/' after a
 * directory-only one. *ret (NUL-terminated, *ret_len bytes without the
 * NUL) is the caller's to free. 0 or -ENOMEM. */
int ds_pxar_excl_cli_text(const struct ds_pxar_excl *x, size_t n, char **ret, size_t *ret_len);

/* The v2 PRELUDE PBS writes for the first n patterns: the JSON object
 * {"exclude-patterns":"<_cli_text>"} as serde_json writes it. Returns 0,
 * -ENOMEM, or -EILSEQ when the text is not UTF-8 (PBS refuses the backup
 * then). *ret as for _cli_text. */
int ds_pxar_excl_prelude(const struct ds_pxar_excl *x, size_t n, char **ret, size_t *ret_len);

#endif
