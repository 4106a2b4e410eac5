/* mount — the FUSE side of mount.dsfs: the operation table (ops.c). */
#ifndef DSFS_FS_MOUNT_H
#define DSFS_FS_MOUNT_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

extern const struct fuse_lowlevel_ops dsfs_ops;

#endif
