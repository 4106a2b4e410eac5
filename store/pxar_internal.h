/* pxar_internal — declarations shared by pxar.c and pxar_attrs.c only.
 *
 * Not a public header: the contract is store/pxar.h. Item type constants and
 * size limits are spec pxar-format.md §1.1/§1.2.
 */
#ifndef DSFS_STORE_PXAR_INTERNAL_H
#define DSFS_STORE_PXAR_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/pxar.h"
#include "store/util.h"

#include "store/pxar_format.h"

#define PXAR_HDR 16           /* item header: u64 type, u64 full_size */
#define PXAR_GB_REC 24        /* goodbye record: hash, offset, size */
#define PXAR_NAME_MAX 4096    /* FILENAME / SYMLINK / HARDLINK path, without NUL */
#define PXAR_XATTR_MAX 65791  /* XATTR, FCAPS content */
#define PXAR_NO_MASK UINT64_MAX

/* Hardlink index: ENTRY offset of a hardlink target -> number of links. */
struct pxar_link {
	uint64_t entry_off; /* 0 = empty slot (offset 0 is never a hardlink target) */
	uint32_t count;
};

struct ds_pxar {
	struct ds_pxar_source meta;
	struct ds_pxar_source payload; /* .pread NULL for v1 */
	int version;
	struct ds_pxar_entry root;

	pthread_mutex_t lock;
	int links_state;          /* protected by lock: 0 not built, 1 built, < 0 errno */
	struct pxar_link *links;  /* protected by lock: open addressing, power-of-two size */
	size_t links_cap, links_used; /* protected by lock */
};

/* One item header read from the metadata stream. */
struct pxar_hdr {
	uint64_t type;
	uint64_t size; /* content length (full_size - 16) */
};

/* Logs "pxar: offset OFF: <message>" once and returns -EIO. */
int pxar_bad(uint64_t off, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads len bytes at off of the metadata stream; off + len must lie within
 * [0, bound] (bound <= stream size), else -EIO logged with what. */
int pxar_read(struct ds_pxar *px, void *buf, size_t len, uint64_t off, uint64_t bound,
	      const char *what);

/* Parses and checks a header (full_size >= 16, per-type maximum and exact
 * sizes of §1.1, content within bound). -EIO logged. */
int pxar_parse_hdr(const uint8_t *b, uint64_t off, uint64_t bound, struct pxar_hdr *ret);

/* Reads and checks the header at off. */
int pxar_read_hdr(struct ds_pxar *px, uint64_t off, uint64_t bound, struct pxar_hdr *ret);

/* SipHash-2-4 with pxar's keys; 0 or -ENOMEM/-EIO (OpenSSL failure). */
int pxar_siphash(const void *data, size_t len, uint64_t *ret);

/* Releases the hardlink index (pxar_attrs.c). */
void pxar_links_free(struct ds_pxar *px);

#endif
