/* verified_set — chunk files verified whole, for reads in place and loads
 * by identity.
 *
 * Once a chunk's whole file has been read and its digest checked, the
 * file's bytes are known good for as long as it is still the same file (its
 * identity, struct ds_chunk_file, is checked at every use). A later small
 * read of a plain (uncompressed) chunk can then pread just the bytes it
 * needs, and a zstd chunk pushed out of the cache can be decoded again
 * without hashing it. This set remembers those identities by digest, a
 * fixed number of them, so a random reader pays one full load per chunk,
 * not one per cache miss.
 *
 * Bounded: capacity entries (88 bytes each), 4-way set associative;
 * a full set forgets its least recently found entry. Forgetting costs only
 * a full load.
 * Thread-safety: all functions are thread-safe.
 */
#ifndef DSFS_CACHE_VERIFIED_SET_H
#define DSFS_CACHE_VERIFIED_SET_H

#include <stdbool.h>
#include <stddef.h>

#include "store/util.h"

struct ds_verified_set;

/* A set of at most capacity entries (rounded up to a power of two, at
 * least 4). Its memory is allocated zeroed, so pages nobody used stay
 * unbacked. Returns 0, -EINVAL (capacity 0) or -ENOMEM. */
int ds_verified_set_new(size_t capacity, struct ds_verified_set **ret);
void ds_verified_set_free(struct ds_verified_set *s);

/* Remembers that d's file, with identity f, was verified whole (replacing
 * what was known of d). f->size 0 is ignored. */
void ds_verified_set_add(struct ds_verified_set *s, const struct ds_digest *d,
			 const struct ds_chunk_file *f);
/* true and *ret when d is known. */
bool ds_verified_set_find(struct ds_verified_set *s, const struct ds_digest *d,
			  struct ds_chunk_file *ret);
/* Forgets d, if its identity is still f (a newer one, added meanwhile by
 * another thread, stays). */
void ds_verified_set_forget(struct ds_verified_set *s, const struct ds_digest *d,
			    const struct ds_chunk_file *f);

#endif
