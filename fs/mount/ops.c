/* FUSE low-level operations: each unpacks its request, calls the FUSE-free
 * view (vfs.h) and replies exactly once. */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/mount/mount.h"
#include "fs/mount/vfs.h"
#include "store/log.h"

unsigned dsfs_max_read = DSFS_MAX_READ_DEFAULT;

static struct vfs *vfs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Attributes in listings, for the readers that use them. The kernel asks
 * for READDIRPLUS on the first batch of every directory, and an entry with
 * attributes costs a lookup here and an inode in the kernel (about 10 us).
 * `ls -l`, `du`, `rsync` and `cp -a` stat every entry, so for them that
 * saves a LOOKUP round trip each; `find` stats none, and would pay it for
 * nothing (1.3 s instead of 0.3 s for 100,000 entries).
 *
 * So each reader (by the thread id the kernel gives with a request) is
 * watched. A reader not seen yet gets attributes. A listing that gave them
 * and was followed by no use of an entry (a getattr, getxattr, listxattr,
 * open or readlink, or a lookup of anything but a directory, which a walk
 * needs to descend) turns them off for its next listings. A stat served
 * from the kernel's cache cannot be seen, though: `du` looks like `find`
 * here. So a use of an entry that came without attributes (the lookup of a
 * file the reader listed) turns them on for good for that reader: it costs
 * such a reader one directory's worth of lookups, and `find` nothing. An
 * entry without attributes (node 0) is a plain directory entry to the
 * kernel: a later stat looks it up. */
#define PLUS_READERS 64
#define FILL_BATCH 32 /* archive entries a listing decodes at a time */

struct plus_reader {
	pid_t pid;      /* 0: free */
	bool want;      /* give this reader attributes in listings */
	bool pending;   /* its last listing gave some, and none was used yet */
	bool stats;     /* it used entries listed without attributes: always */
	uint64_t stamp; /* last seen, for replacing the oldest */
};

static struct {
	pthread_mutex_t lock;
	uint64_t clock;
	struct plus_reader r[PLUS_READERS];
} readers = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* readers.lock held. The reader's slot, taking the oldest for a new one. */
static struct plus_reader *plus_reader_locked(pid_t pid)
{
	struct plus_reader *old = &readers.r[0];

	for (size_t i = 0; i < PLUS_READERS; i++) {
		if (readers.r[i].pid == pid) {
			readers.r[i].stamp = ++readers.clock;
			return &readers.r[i];
		}
		if (readers.r[i].stamp < old->stamp)
			old = &readers.r[i];
	}
	*old = (struct plus_reader){ .pid = pid, .want = true, .stamp = ++readers.clock };
	return old;
}

/* req used an entry's attributes. */
static void plus_used(fuse_req_t req)
{
	pid_t pid = fuse_req_ctx(req)->pid;
	struct plus_reader *r;

	pthread_mutex_lock(&readers.lock);
	r = plus_reader_locked(pid);
	r->pending = false;
	if (!r->want)
		r->stats = true;
	pthread_mutex_unlock(&readers.lock);
}

/* Whether the listing batch at off for req gets attributes. The decision
 * is taken at the first batch (off 0) and kept for the rest. A listing
 * that gave none (an empty directory) proves nothing either way. */
static bool plus_wanted(fuse_req_t req, off_t off)
{
	pid_t pid = fuse_req_ctx(req)->pid;
	struct plus_reader *r;
	bool want;

	pthread_mutex_lock(&readers.lock);
	r = plus_reader_locked(pid);
	if (off == 0) {
		if (r->stats)
			r->want = true;
		else if (r->pending)
			r->want = false;
		r->pending = false;
	}
	want = r->want;
	pthread_mutex_unlock(&readers.lock);
	return want;
}

/* A listing batch gave req attributes for at least one entry. */
static void plus_given(fuse_req_t req)
{
	pid_t pid = fuse_req_ctx(req)->pid;

	pthread_mutex_lock(&readers.lock);
	plus_reader_locked(pid)->pending = true;
	pthread_mutex_unlock(&readers.lock);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* Directory operations run in parallel: the view has no per-directory
	 * state to protect. Symlinks are not cached (no FUSE_CAP_CACHE_SYMLINKS):
	 * `latest` keeps its inode when its target moves, and a cached target
	 * would never be dropped (attribute changes invalidate regular files
	 * only). */
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	/* The kernel enforces the POSIX ACLs of pxar entries (it asks for
	 * system.posix_acl_access and caches the answer per inode); with
	 * default_permissions alone it checks the mode bits only, and the
	 * group bits of a file with an ACL are its mask: a user the ACL
	 * denies would read a group-readable file, one it grants would not.
	 * ACLs are never set through the mount (setxattr is refused), and
	 * the modes of new files are not kept, so the umask the kernel then
	 * leaves to us has nothing to apply to. */
	if (conn->capable & FUSE_CAP_POSIX_ACL)
		conn->want |= FUSE_CAP_POSIX_ACL;
	/* A chunk is 4 MiB: let the kernel read ahead in large steps. */
	conn->max_readahead = 4 << 20;
	conn->max_read = dsfs_max_read; /* must equal -o max_read (main.c) */
	/* Writes through the mount: 1 MiB per request, a quarter chunk. */
	conn->max_write = 1 << 20;
}

static void entry_param(const struct vfs_entry *e, struct fuse_entry_param *p)
{
	memset(p, 0, sizeof(*p));
	p->ino = e->ino;
	p->generation = e->generation;
	p->attr = e->st;
	p->attr_timeout = e->attr_timeout;
	p->entry_timeout = e->entry_timeout;
}

static void reply_entry(fuse_req_t req, const struct vfs_entry *e)
{
	struct fuse_entry_param p;

	entry_param(e, &p);
	fuse_reply_entry(req, &p);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vfs_entry e;
	int r = vfs_lookup(vfs_of(req), parent, name, &e);

	if (r == -ENOENT) {
		/* Negative entry, cached briefly: snapshots may appear. */
		struct fuse_entry_param p = { .entry_timeout = 1.0 };

		fuse_reply_entry(req, &p);
	} else if (r < 0) {
		fuse_reply_err(req, -r);
	} else {
		if (!S_ISDIR(e.st.st_mode))
			plus_used(req);
		reply_entry(req, &e);
	}
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	vfs_forget(vfs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		vfs_forget(vfs_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfs_entry e;
	int r = vfs_getattr(vfs_of(req), ino, &e);

	(void)fi;
	plus_used(req);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &e.st, e.attr_timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	/* A pxar symlink's target may be 4096 bytes, not just a file name;
	 * the kernel takes at most PAGE_SIZE - 1 bytes of a readlink reply
	 * (fuse_readlink_page) and answers a longer one with EIO, so what
	 * does not fit there is refused here, with a reason. */
	char buf[VFS_LINK_MAX + 1];
	long page = sysconf(_SC_PAGESIZE);
	size_t len = page > 0 && (size_t)page < sizeof(buf) ? (size_t)page : sizeof(buf);
	int r = vfs_readlink(vfs_of(req), ino, buf, len);

	plus_used(req);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_readlink(req, buf);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfs_dir *d;
	int r = vfs_opendir(vfs_of(req), ino, &d);

	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uintptr_t)d;
	fi->cache_readdir = d->cacheable;
	fi->keep_cache = d->cacheable;
	if (fuse_reply_open(req, fi) == -ENOENT)
		vfs_releasedir(d); /* the opener was interrupted */
}

/* READDIR and READDIRPLUS. Offsets: 0 ".", 1 "..", then entry i at i + 2.
 * READDIRPLUS gives each entry what a lookup of it returns, so `ls -l`,
 * `rsync` and `find -type` need no LOOKUP round trip per entry. An entry
 * counts as a kernel reference only once it is in the reply: its size is
 * checked before it is looked up. An entry that cannot be looked up now
 * (removed since opendir, a refusal) is listed without attributes (node 0:
 * the kernel takes it as a plain directory entry), and so is every entry
 * for a reader that does not use them (plus_wanted). */
static void list_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi, bool plus)
{
	struct vfs_dir *d = (struct vfs_dir *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	size_t used = 0;
	bool attrs;
	size_t n = 0, given = 0;
	int r;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if ((r = vfs_dir_fill(d, 0)) < 0) {
		free(buf);
		fuse_reply_err(req, -r);
		return;
	}
	attrs = plus && plus_wanted(req, off);
	for (size_t i = (size_t)off; i < d->n + 2; i++) {
		/* An entry that cannot be decoded ends the page before it; the
		 * next readdir starts there and fails with its errno. */
		if (i >= 2 && i - 2 >= d->filled && (r = vfs_dir_fill(d, i - 2 + FILL_BATCH)) < 0) {
			if (used == 0) {
				free(buf);
				fuse_reply_err(req, -r);
				return;
			}
			break;
		}
		if (i >= 2 && d->ents[i - 2].hidden)
			continue;
		const char *name = i == 0 ? "." : i == 1 ? ".." : d->ents[i - 2].name;
		struct fuse_entry_param p;
		struct vfs_entry e;
		size_t need;

		memset(&p, 0, sizeof(p));
		p.attr.st_ino = i == 0 ? d->st_ino : i == 1 ? d->parent : d->ents[i - 2].ino;
		p.attr.st_mode = i < 2 ? S_IFDIR : d->ents[i - 2].type;
		if (!plus) {
			need = fuse_add_direntry(req, buf + used, size - used, name, &p.attr,
						 (off_t)i + 1);
			if (need > size - used)
				break;
			used += need;
			continue;
		}
		if (fuse_add_direntry_plus(req, NULL, 0, name, NULL, 0) > size - used)
			break;
		if (i >= 2 && attrs && vfs_lookup_listed(vfs_of(req), d, i - 2, &e) == 0) {
			given++;
			entry_param(&e, &p);
		}
		used += fuse_add_direntry_plus(req, buf + used, size - used, name, &p,
					       (off_t)i + 1);
		n++;
	}
	if (given)
		plus_given(req);
	if (plus)
		ds_debug("readdirplus %llu from %lld: %zu entries, %zu with attributes",
			 (unsigned long long)ino, (long long)off, n, given);
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	list_dir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	list_dir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	vfs_releasedir((struct vfs_dir *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* A file opened write-only (cp's, dd's, a shell's `>`) is going into a
 * snapshot: its bytes go straight from the writer's buffer to the daemon
 * (direct I/O) instead of through page cache pages of the mount's file, which
 * the kernel would have to allocate, fill and later reclaim, and which
 * nobody reads (the file is read back, if ever, from the chunk store). A
 * 1 GiB `cp` of known chunks took 0.86-0.90 s through the page cache and
 * 0.61-0.67 s direct. Read-write opens keep the page cache: a shared
 * writable mmap needs it (the kernel refuses MAP_SHARED on direct-I/O files
 * unless the daemon negotiates FUSE_DIRECT_IO_ALLOW_MMAP, which libfuse
 * 3.14 cannot), and a write-only file cannot be mapped at all. */
static bool write_only(const struct fuse_file_info *fi)
{
	return (fi->flags & O_ACCMODE) == O_WRONLY;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vfile *f;
	bool keep;
	int r = vfs_open(vfs_of(req), ino, fi->flags, &f, &keep);

	plus_used(req);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uintptr_t)f;
	fi->keep_cache = keep;
	fi->direct_io = write_only(fi);
	/* Closing a file with nothing to report (everything but the files
	 * this mount writes) costs no FLUSH round trip: restoring 100,000
	 * small files is 100,000 closes. */
	fi->noflush = !vfs_flush_reports(f);
	if (fuse_reply_open(req, fi) == -ENOENT)
		vfs_release(f);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct vfile *f = (struct vfile *)(uintptr_t)fi->fh;
	struct vfs_read rd;
	ssize_t n;

	(void)ino;
	n = vfs_read(f, (uint64_t)off, size, &rd);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		/* Zero copy: the iovecs point into pinned cache entries,
		 * released once the reply has been written to the kernel. */
		fuse_reply_iov(req, rd.iov, (int)rd.n_iov);
	vfs_read_done(f, &rd);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	vfs_release((struct vfile *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	int64_t r;

	(void)ino;
	r = vfs_lseek((struct vfile *)(uintptr_t)fi->fh, off, whence);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_lseek(req, r);
}

/* df and free-space checks before a copy see the datastore's filesystem,
 * which is where written snapshots go. Where there is none to ask (the
 * root of a multi-store mount, a store that refuses lookups) the answer is
 * an empty filesystem rather than an error: df lists every mount. */
static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;

	if (vfs_statfs(vfs_of(req), ino, &st) < 0)
		st = (struct statvfs){ .f_bsize = 4096, .f_frsize = 4096, .f_namemax = 255 };
	fuse_reply_statfs(req, &st);
}

/* getxattr and listxattr share the size protocol: size 0 asks for the
 * length, else the value (or list) is returned if it fits. */
static void reply_xattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	ssize_t n;

	plus_used(req);
	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = vfs_xattr(vfs_of(req), ino, name, buf, size);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	reply_xattr(req, ino, name, size);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	reply_xattr(req, ino, NULL, size);
}

/* Operations that would change the tree take a write handle first, so the
 * refusal a user sees is the datastore's (EROFS, ENXIO, …). */
static void refuse_write(fuse_req_t req, fuse_ino_t ino)
{
	fuse_reply_err(req, -vfs_write_refusal(vfs_of(req), ino));
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct vfs_entry e;
	int r = vfs_mkdir(vfs_of(req), parent, name, &e);

	(void)mode; /* directories of a datastore have PBS's modes */
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_entry(req, &e);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -vfs_rmdir(vfs_of(req), parent, name));
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, -vfs_unlink(vfs_of(req), parent, name));
}

/* Symlinks, hard links and special files exist nowhere in a datastore:
 * refused with the place's errno (EROFS, or the datastore's refusal), and
 * EPERM ("not supported by the filesystem") in a snapshot being written.
 * Not ENOSYS: ln -s, mkfifo and cp -a would print "Function not
 * implemented". */
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	(void)name;
	(void)mode;
	(void)rdev;
	fuse_reply_err(req, -vfs_meta_refusal(vfs_of(req), parent, -EPERM));
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link;
	(void)name;
	fuse_reply_err(req, -vfs_meta_refusal(vfs_of(req), parent, -EPERM));
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newname;
	fuse_reply_err(req, -vfs_meta_refusal(vfs_of(req), newparent, -EPERM));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	(void)name;
	(void)newparent;
	(void)newname;
	(void)flags;
	refuse_write(req, parent);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fuse_entry_param p;
	struct vfs_entry e;
	struct vfile *f;
	int r;

	(void)mode;
	r = vfs_create(vfs_of(req), parent, name, &e, &f);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	entry_param(&e, &p);
	fi->fh = (uintptr_t)f;
	fi->keep_cache = 0;
	fi->direct_io = write_only(fi);
	if (fuse_reply_create(req, &p, fi) == -ENOENT)
		vfs_release(f); /* the creator was interrupted */
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	ssize_t n;

	(void)ino;
	n = vfs_write((struct vfile *)(uintptr_t)fi->fh, buf, size, (uint64_t)off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

/* close(2) and fsync(2) report what went wrong with earlier writes. */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fuse_reply_err(req, -vfs_flush((struct vfile *)(uintptr_t)fi->fh));
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	fuse_reply_err(req, -vfs_fsync((struct vfile *)(uintptr_t)fi->fh));
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct vfs_entry e;
	int what = 0, r;

	if (to_set & FUSE_SET_ATTR_SIZE)
		what |= VFS_SET_SIZE;
	if (to_set & ~FUSE_SET_ATTR_SIZE)
		what |= VFS_SET_META; /* mode, owner, times: accepted, not kept */
	r = vfs_setattr(vfs_of(req), ino, fi ? (struct vfile *)(uintptr_t)fi->fh : NULL, what,
			(uint64_t)attr->st_size, &e);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &e.st, e.attr_timeout);
}

/* Extended attributes (ACLs among them) are refused with EROFS where the
 * tree is read-only, and are "not supported" (ENOTSUP) on the files of a
 * snapshot being written, whose archives keep none: cp -a then leaves
 * out a file's extended attributes and sets its mode instead of its ACL
 * (accepted, as chmod is), where EROFS failed the copy. */
static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)name;
	fuse_reply_err(req, -vfs_meta_refusal(vfs_of(req), ino, -ENOTSUP));
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	fuse_reply_err(req, -vfs_meta_refusal(vfs_of(req), ino, -ENOTSUP));
}

const struct fuse_lowlevel_ops dsfs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.lseek = op_lseek,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.unlink = op_unlink,
	.mknod = op_mknod,
	.symlink = op_symlink,
	.link = op_link,
	.rename = op_rename,
	.create = op_create,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.setattr = op_setattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
};
