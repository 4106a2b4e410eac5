/* loop — mount.dsfs's request loop (loop.c): one reader thread at a time,
 * which polls for spin_us after each request before it sleeps. */
#ifndef DSFS_FS_MOUNT_LOOP_H
#define DSFS_FS_MOUNT_LOOP_H

#include "fs/mount/mount.h"

/* Serves se until it is unmounted (0), stopped by SIGHUP, SIGINT or SIGTERM
 * (the signal's number, > 0) or reading the device fails (-errno). Up to
 * max_threads threads; spin_us 0 never polls. */
int loop_run(struct fuse_session *se, unsigned max_threads, unsigned spin_us);

#endif
