/* chunker — PBS's content-defined chunker (buzhash, spec §5).
 *
 * Window 64 bytes, min = avg/4, max = 4*avg, mask = 2*avg-1, break when
 * (h & mask) >= mask-2 and count >= min, or count >= max. Feeding data in
 * pieces gives the same boundaries as feeding it at once.
 *
 * Not for: fixed-size chunking (just cut every chunk_size bytes).
 * Thread-safety: a chunker is owned by one thread at a time.
 */
#ifndef DSFS_STORE_CHUNKER_H
#define DSFS_STORE_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

struct ds_chunker {
	uint32_t h;
	size_t count;   /* bytes since the last boundary */
	size_t fill;    /* bytes in the window, up to 64 */
	size_t min, max;
	uint32_t mask, threshold;
	uint8_t window[64];
};

/* avg must be a power of two >= 64 and <= 2 GiB, so that the mask fits the
 * u32 hash (PBS offers 64 KiB .. 4 MiB). Returns 0 or -EINVAL. */
int ds_chunker_init(struct ds_chunker *c, size_t avg);

/* Scans data[0..len). Returns the number of bytes consumed up to and
 * including a boundary (the current chunk ends after data[ret-1]), or 0 when
 * no boundary lies in data (all of it was consumed into the current chunk).
 * Call again with the rest of the buffer after a boundary. */
size_t ds_chunker_scan(struct ds_chunker *c, const uint8_t *data, size_t len);

/* The 256-entry buzhash table (same as casync's). */
extern const uint32_t ds_buzhash_table[256];

#endif
