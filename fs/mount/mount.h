/* mount — the FUSE side of mount.dsfs: the operation table (ops.c). */
#ifndef DSFS_FS_MOUNT_H
#define DSFS_FS_MOUNT_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

extern const struct fuse_lowlevel_ops dsfs_ops;

/* The largest read the kernel sends, in bytes (-o max_read=, main.c).
 * libfuse refuses INIT (EPROTO: the mount comes up and dies) unless the
 * init op gives it the value of the mount option, so both take it from
 * here. Set before fuse_session_new; read by ops.c's init. */
#define DSFS_MAX_READ_DEFAULT (1u << 20)
extern unsigned dsfs_max_read;

#endif
