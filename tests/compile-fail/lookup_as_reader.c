/* Must NOT compile: reading chunk data through a lookup handle.
 * With -DCONTROL the same code uses a reader handle and must compile, so the
 * failure is known to come from the handle type and nothing else. */
#include "store/datastore.h"

int probe(struct ds_datastore *ds, const struct ds_digest *d, uint8_t *buf, size_t cap);

int probe(struct ds_datastore *ds, const struct ds_digest *d, uint8_t *buf, size_t cap)
{
	size_t len;
#ifdef CONTROL
	struct ds_reader *h;
	int r = ds_reader_acquire(ds, &h);
#else
	struct ds_lookup *h;
	int r = ds_lookup_acquire(ds, &h);
#endif
	if (r < 0)
		return r;
	return ds_reader_load_chunk(h, d, NULL, 0, buf, cap, &len);
}
