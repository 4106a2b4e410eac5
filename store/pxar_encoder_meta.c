/* pxar encoder, metadata part: the ENTRY item and the attribute items of
 * one entry (spec pxar-format.md §5.7) as the PBS client collects them
 * (get_metadata in pbs-client/src/pxar/create.rs): chattr flags, xattrs
 * in list order, POSIX ACLs parsed from their xattrs (no libacl), file
 * capabilities and the quota project id. */
#include <errno.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/xattr.h>

#include "store/log.h"
#include "store/pxar_encoder_internal.h"
#include "store/util.h"

static const struct {
	unsigned int fs;
	uint64_t pxar;
} chattr_map[] = {
	{ FS_APPEND_FL, 0x10000 },     { FS_NOATIME_FL, 0x20000 },  { FS_COMPR_FL, 0x40000 },
	{ FS_NOCOW_FL, 0x80000 },      { FS_NODUMP_FL, 0x100000 },  { FS_DIRSYNC_FL, 0x200000 },
	{ FS_IMMUTABLE_FL, 0x400000 }, { FS_SYNC_FL, 0x800000 },    { FS_NOCOMP_FL, 0x1000000 },
	{ FS_PROJINHERIT_FL, 0x2000000 },
};

/* Where xattrs are read: the descriptor (files and directories, opened
 * for reading) or, for O_PATH descriptors, its /proc/self/fd path. */
struct xsrc {
	int fd;
	const char *path;
};

/* Reads the xattr list (name NULL) or a value into a malloc'ed buffer with
 * a NUL after it, retrying when it grows between the probe and the read. */
static int xs_read(const struct xsrc *x, const char *name, uint8_t **ret, size_t *ret_len)
{
	for (int tries = 0; tries < 16; tries++) {
		ssize_t n, m;
		uint8_t *b;

		if (name)
			n = x->fd >= 0 ? fgetxattr(x->fd, name, NULL, 0) : getxattr(x->path, name, NULL, 0);
		else
			n = x->fd >= 0 ? flistxattr(x->fd, NULL, 0) : listxattr(x->path, NULL, 0);
		if (n < 0)
			return -errno;
		b = malloc((size_t)n + 1);
		if (!b)
			return -ENOMEM;
		if (name)
			m = x->fd >= 0 ? fgetxattr(x->fd, name, b, (size_t)n)
				       : getxattr(x->path, name, b, (size_t)n);
		else
			m = x->fd >= 0 ? flistxattr(x->fd, (char *)b, (size_t)n)
				       : listxattr(x->path, (char *)b, (size_t)n);
		if (m >= 0) {
			b[m] = 0;
			*ret = b;
			*ret_len = (size_t)m;
			return 0;
		}
		free(b);
		if (errno != ERANGE)
			return -errno;
	}
	return -EAGAIN;
}

/* The xattrs PBS keeps as XATTR items (proxmox-sys is_valid_xattr_name);
 * security.capability and the ACLs are handled on their own. */
static bool keep_xattr(const char *name, size_t len)
{
	if (len == 0 || len > 255)
		return false;
	return strncmp(name, "user.", 5) == 0 || strncmp(name, "trusted.", 8) == 0 ||
	       strcmp(name, "security.NTACL") == 0;
}

struct acl_ent {
	uint32_t id;
	uint16_t perm;
};

static int cmp_acl(const void *a, const void *b)
{
	const struct acl_ent *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return (int)x->perm - (int)y->perm;
}

/* Turns a Linux POSIX ACL xattr value (u32 version 2, then {u16 tag, u16
 * perm, u32 id} entries) into pxar ACL items as the PBS client does
 * (process_acl in create.rs): users and groups sorted by id then
 * permissions; access ACLs carry GROUP_OBJ only when there is a mask
 * (then the mode's group bits are the mask); default ACLs carry their
 * object entries in ACL_DEFAULT, NO_MASK for missing ones. */
static int acl_items(const char *path, const uint8_t *v, size_t len, bool dflt, struct dbuf *out)
{
	uint64_t obj[4] = { ACL_NO_MASK, ACL_NO_MASK, ACL_NO_MASK, ACL_NO_MASK };
	struct acl_ent *u = NULL, *g = NULL;
	size_t n, nu = 0, ng = 0;
	int r = 0;

	if (len < 4 || (len - 4) % 8 || ds_le32(v) != 2) {
		ds_warn("pxar: %s: malformed POSIX ACL xattr; ACL not stored", path);
		return 0;
	}
	n = (len - 4) / 8;
	u = malloc((n + 1) * sizeof(*u));
	g = malloc((n + 1) * sizeof(*g));
	if (!u || !g) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = v + 4 + 8 * i;
		unsigned int tag = p[0] | (unsigned int)p[1] << 8;
		uint16_t perm = (p[2] | (uint16_t)(p[3] << 8)) & 7;
		uint32_t id = ds_le32(p + 4);

		switch (tag) {
		case 0x01: obj[0] = perm; break; /* ACL_USER_OBJ */
		case 0x04: obj[1] = perm; break; /* ACL_GROUP_OBJ */
		case 0x20: obj[2] = perm; break; /* ACL_OTHER */
		case 0x10: obj[3] = perm; break; /* ACL_MASK */
		case 0x02: u[nu++] = (struct acl_ent){ id, perm }; break;
		case 0x08: g[ng++] = (struct acl_ent){ id, perm }; break;
		default:
			ds_warn("pxar: %s: unknown ACL tag %#x; ACL not stored", path, tag);
			goto out;
		}
	}
	qsort(u, nu, sizeof(*u), cmp_acl);
	qsort(g, ng, sizeof(*g), cmp_acl);
	if (dflt && (obj[0] != ACL_NO_MASK || obj[1] != ACL_NO_MASK || obj[2] != ACL_NO_MASK ||
		     obj[3] != ACL_NO_MASK))
		r = dbuf_u64s(out, PXAR_ACL_DEFAULT, obj, 4);
	for (size_t i = 0; i < nu && r == 0; i++)
		r = dbuf_u64s(out, dflt ? PXAR_ACL_DEFAULT_USER : PXAR_ACL_USER,
			      (uint64_t[]){ u[i].id, u[i].perm }, 2);
	for (size_t i = 0; i < ng && r == 0; i++)
		r = dbuf_u64s(out, dflt ? PXAR_ACL_DEFAULT_GROUP : PXAR_ACL_GROUP,
			      (uint64_t[]){ g[i].id, g[i].perm }, 2);
	if (r == 0 && !dflt && obj[3] != ACL_NO_MASK && obj[1] != ACL_NO_MASK)
		r = dbuf_u64s(out, PXAR_ACL_GROUP_OBJ, &obj[1], 1);
out:
	free(u);
	free(g);
	return r;
}

/* XATTR items in list order into xa, the access ACL into acc, the default
 * ACL (directories) into def, FCAPS into fcaps. Only -ENOMEM is fatal;
 * unreadable attributes are logged and left out. */
static int get_xattrs(const char *path, const struct xsrc *x, bool dir, struct dbuf *xa,
		      struct dbuf *acc, struct dbuf *def, struct dbuf *fcaps)
{
	uint8_t *list, *val;
	size_t len, vlen;
	int r;

	r = xs_read(x, NULL, &list, &len);
	/* No xattr support here (like PBS), or no /proc for an O_PATH fd. */
	if (r == -ENOTSUP || r == -EBADF || r == -ENODATA || r == -ENOENT)
		return 0;
	if (r < 0) {
		if (r != -ENOMEM)
			ds_warn("pxar: %s: cannot list xattrs: %s", path, strerror(-r));
		return r == -ENOMEM ? r : 0;
	}
	for (size_t off = 0; off < len && r == 0;) {
		const char *name = (const char *)list + off;
		size_t nl = strnlen(name, len - off);
		bool is_fcaps = strcmp(name, "security.capability") == 0;
		bool is_acc = strcmp(name, "system.posix_acl_access") == 0;
		bool is_def = strcmp(name, "system.posix_acl_default") == 0;

		off += nl + 1;
		if (!(is_fcaps || is_acc || (is_def && dir) || keep_xattr(name, nl)))
			continue;
		r = xs_read(x, name, &val, &vlen);
		if (r == -ENODATA || r == -ENOTSUP || r == -EBADF) {
			r = 0; /* removed meanwhile, as PBS ignores it */
			continue;
		}
		if (r < 0) {
			if (r != -ENOMEM) {
				ds_warn("pxar: %s: cannot read xattr %s: %s", path, name,
					strerror(-r));
				r = 0;
			}
			continue;
		}
		if (is_acc || is_def) {
			r = acl_items(path, val, vlen, is_def, is_def ? def : acc);
		} else if ((is_fcaps ? 0 : nl + 1) + vlen > XATTR_CONTENT_MAX) {
			ds_warn("pxar: %s: xattr %s too large for pxar; left out", path, name);
		} else if (is_fcaps) {
			fcaps->len = 0;
			r = dbuf_item(fcaps, PXAR_FCAPS, val, vlen, NULL, 0);
		} else {
			r = dbuf_item(xa, PXAR_XATTR, name, nl + 1, val, vlen);
		}
		free(val);
	}
	free(list);
	return r;
}

/* ENTRY and attribute items of an entry, in encoder order (spec §2.1). */
int pxar_enc_get_meta(int fd, const struct stat *st, const char *path, struct dbuf *out)
{
	mode_t type = st->st_mode & S_IFMT;
	struct dbuf xa = { 0 }, acc = { 0 }, def = { 0 }, fcaps = { 0 };
	struct xsrc x = { fd, NULL };
	uint64_t flags = 0, projid = 0;
	uint8_t stat[40] = { 0 };
	char proc[48];
	int r = 0;

	if (type == S_IFREG || type == S_IFDIR) {
		struct fsxattr fx;
		int attr;

		/* Errors mean "not supported here" (PBS: errno_is_unsupported). */
		if (ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0) {
			for (size_t i = 0; i < DS_ARRAY_SIZE(chattr_map); i++)
				if ((unsigned int)attr & chattr_map[i].fs)
					flags |= chattr_map[i].pxar;
		}
		if (ioctl(fd, FS_IOC_FSGETXATTR, &fx) == 0)
			projid = fx.fsx_projid;
	} else {
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		x.fd = -1;
		x.path = proc;
	}
	/* PBS reads no xattrs, ACLs or fcaps of symlinks. */
	if (type != S_IFLNK)
		r = get_xattrs(path, &x, type == S_IFDIR, &xa, &acc, &def, &fcaps);
	ds_put_le64(stat, st->st_mode);
	ds_put_le64(stat + 8, flags);
	ds_put_le32(stat + 16, st->st_uid);
	ds_put_le32(stat + 20, st->st_gid);
	/* Linux timespecs are already floored: tv_nsec is never negative. */
	ds_put_le64(stat + 24, (uint64_t)st->st_mtim.tv_sec);
	ds_put_le32(stat + 32, (uint32_t)st->st_mtim.tv_nsec);
	out->len = 0;
	if (r == 0)
		r = dbuf_item(out, PXAR_ENTRY, stat, sizeof(stat), NULL, 0);
	if (r == 0)
		r = dbuf_put(out, xa.p, xa.len);
	if (r == 0)
		r = dbuf_put(out, acc.p, acc.len);
	if (r == 0)
		r = dbuf_put(out, def.p, def.len);
	if (r == 0)
		r = dbuf_put(out, fcaps.p, fcaps.len);
	if (r == 0 && projid)
		r = dbuf_u64s(out, PXAR_QUOTA_PROJID, &projid, 1);
	dbuf_release(&xa);
	dbuf_release(&acc);
	dbuf_release(&def);
	dbuf_release(&fcaps);
	return r;
}

bool pxar_enc_virtual_fs(int fd)
{
	/* is_virtual_file_system in create.rs */
	static const unsigned long magic[] = {
		0x42494e4d, /* binfmt_misc */ 0x63677270, /* cgroup2 */
		0x27e0eb,   /* cgroup */      0x62656570, /* configfs */
		0x64626720, /* debugfs */     0x1cd1,     /* devpts */
		0xde5e81e4, /* efivarfs */    0x65735543, /* fusectl */
		0x958458f6, /* hugetlbfs */   0x19800202, /* mqueue */
		0x6e667364, /* nfsd */        0x9fa0,     /* proc */
		0x6165676c, /* pstore */      0x67596969, /* rpc_pipefs */
		0x73636673, /* securityfs */  0xf97cff8c, /* selinuxfs */
		0x43415d53, /* smackfs */     0x62656572, /* sysfs */
	};
	struct statfs sf;

	if (fstatfs(fd, &sf) < 0)
		return false;
	for (size_t i = 0; i < DS_ARRAY_SIZE(magic); i++)
		if ((unsigned long)sf.f_type == magic[i])
			return true;
	return false;
}
