/* Must NOT compile: inserting chunks through a reader handle (the reader a
 * writer hands out is const and of another type). -DCONTROL uses the writer. */
#include "store/datastore.h"

int probe(const struct ds_writer *w, const uint8_t *data, size_t len, struct ds_digest *d);

int probe(const struct ds_writer *w, const uint8_t *data, size_t len, struct ds_digest *d)
{
#ifdef CONTROL
	return ds_writer_put_chunk(w, data, len, NULL, d, NULL);
#else
	const struct ds_reader *r = ds_writer_reader(w);

	return ds_writer_put_chunk(r, data, len, NULL, d, NULL);
#endif
}
