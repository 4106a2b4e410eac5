/* Crafted pxar archives for the unit suites: an output buffer, items, a
 * directory's goodbye table from its children, and an archive opened from
 * memory. The suites build item by item what no encoder writes (a second
 * FCAPS, an unknown file type, ...), so that the one flaw under test is the
 * only one. Aborts the running test on allocation failure. */
#ifndef DSFS_TESTS_PXAR_BUILD_H
#define DSFS_TESTS_PXAR_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "store/pxar.h"

struct pb_out {
	uint8_t *b;
	size_t len, cap;
};

void pb_put(struct pb_out *o, const void *p, size_t n);
void pb_put64(struct pb_out *o, uint64_t v);
/* A header of type and 16 + n bytes, then p[0..n). */
void pb_item(struct pb_out *o, uint64_t type, const void *p, size_t n);
/* An ENTRY item: mode, uid 1000, gid 100, mtime sec.nsec. */
void pb_entry(struct pb_out *o, uint64_t mode, int64_t sec, uint32_t nsec);

/* A child of a directory being written: where its FILENAME item starts and
 * where its last item ends, and its name's hash. */
struct pb_child {
	uint64_t hash, f, end;
};
/* Records a child at o->len, before its FILENAME item is put. */
void pb_child_begin(struct pb_out *o, struct pb_child *c, const char *name);
/* The directory's GOODBYE item: the n children's records in the goodbye
 * table's tree order (sorted here; kids is reordered), then the tail
 * pointing back to the directory's ENTRY at entry_off. */
void pb_goodbye(struct pb_out *o, struct pb_child *kids, size_t n, uint64_t entry_off);
/* The GOODBYE item of n prepared records (24 bytes each, already in tree
 * order) and the tail; takes recs (realloc'ed and freed). */
void pb_goodbye_raw(struct pb_out *o, uint8_t *recs, size_t n, uint64_t entry_off);

/* An archive read from memory: the metadata stream and, for a split one,
 * the payload stream. Reads of [0, fail_below) or [fail_from, len) of a
 * stream fail with -EIO (none by default). */
struct pb_mem {
	const uint8_t *b;
	size_t len;
	uint64_t fail_below, fail_from;
};
struct pb_arch {
	struct pb_mem m, p;
	struct ds_pxar_source ms, ps;
	struct ds_pxar *px;
};
/* ds_pxar_open of b (and payload pb when not NULL); its result. */
int pb_open(struct pb_arch *a, const uint8_t *b, size_t len, const uint8_t *pb, size_t plen);
/* The same with the streams given whole (p NULL: v1), failing reads too. */
int pb_open_mem(struct pb_arch *a, struct pb_mem m, const struct pb_mem *p);
/* ds_pxar_lookup of name in the root. */
int pb_lookup(struct ds_pxar *px, const char *name, struct ds_pxar_entry *ret);

/* The xattrs ds_pxar_xattrs hands out, collected (at most 8, names under
 * 64 bytes, values up to 128 bytes, else the test fails). */
struct pb_xattrs {
	char names[8][64];
	uint8_t values[8][128];
	size_t lens[8];
	int n;
};
/* The ds_pxar_xattrs callback; ud is a struct pb_xattrs. */
int pb_xattr_fn(void *ud, const char *name, const void *value, size_t len);
/* The index of name in x, or -1. */
int pb_xattr_find(const struct pb_xattrs *x, const char *name);

#endif
