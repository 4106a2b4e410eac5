/* pxar_format — the item type constants of the pxar format (spec
 * pxar-format.md §1.2: SipHash-2-4 of "__PROXMOX_FORMAT_<X>__"), shared by
 * the decoder and the encoder. */
#ifndef DSFS_STORE_PXAR_FORMAT_H
#define DSFS_STORE_PXAR_FORMAT_H

#include <stdint.h>

#define PXAR_FORMAT_VERSION UINT64_C(0x730f6c75df16a40d)
#define PXAR_ENTRY UINT64_C(0xd5956474e588acef)
#define PXAR_ENTRY_V1 UINT64_C(0x11da850a1c1cceff)
#define PXAR_PRELUDE UINT64_C(0xe309d79d9f7b771b)
#define PXAR_FILENAME UINT64_C(0x16701121063917b3)
#define PXAR_SYMLINK UINT64_C(0x27f971e7dbf5dc5f)
#define PXAR_DEVICE UINT64_C(0x9fc9e906586d5ce9)
#define PXAR_XATTR UINT64_C(0x0dab0229b57dcd03)
#define PXAR_ACL_USER UINT64_C(0x2ce8540a457d55b8)
#define PXAR_ACL_GROUP UINT64_C(0x136e3eceb04c03ab)
#define PXAR_ACL_GROUP_OBJ UINT64_C(0x10868031e9582876)
#define PXAR_ACL_DEFAULT UINT64_C(0xbbbb13415a6896f5)
#define PXAR_ACL_DEFAULT_USER UINT64_C(0xc89357b40532cd1f)
#define PXAR_ACL_DEFAULT_GROUP UINT64_C(0xf90a8a5816038ffe)
#define PXAR_FCAPS UINT64_C(0x2da9dd9db5f7fb67)
#define PXAR_QUOTA_PROJID UINT64_C(0xe07540e82f7d1cbb)
#define PXAR_HARDLINK UINT64_C(0x51269c8422bd7275)
#define PXAR_PAYLOAD UINT64_C(0x28147a1b0b7c1a25)
#define PXAR_PAYLOAD_REF UINT64_C(0x419d3d6bc4ba977e)
#define PXAR_GOODBYE UINT64_C(0x2fec4fa642d5731d)
#define PXAR_GOODBYE_TAIL_MARKER UINT64_C(0xef5eed5b753e1555)
#define PXAR_PAYLOAD_START_MARKER UINT64_C(0x834c68c2194a4ed2)
#define PXAR_PAYLOAD_TAIL_MARKER UINT64_C(0x6c72b78b984c81b5)

/* The encoder refuses directories whose GOODBYE contents would be larger
 * (about 2.8 million children). The decoder, like PBS's, has no such
 * limit: a table only has to lie inside the metadata stream. */
#define PXAR_GOODBYE_MAX (UINT64_C(64) << 20)

#endif
