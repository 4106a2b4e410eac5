#include "store/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <zlib.h>

#include "store/log.h"

void ds_hex_encode(const void *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *b = in;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

int ds_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int ds_hex_decode(const char *hex, void *out, size_t n)
{
	uint8_t *b = out;

	for (size_t i = 0; i < n; i++) {
		int hi, lo;

		if (!hex[2 * i] || !hex[2 * i + 1])
			return -EINVAL;
		hi = ds_hex_digit(hex[2 * i]);
		lo = ds_hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	return hex[2 * n] == '\0' ? 0 : -EINVAL;
}

void ds_digest_to_hex(const struct ds_digest *d, char out[DS_DIGEST_HEX_LEN + 1])
{
	ds_hex_encode(d->b, DS_DIGEST_LEN, out);
}

int ds_digest_from_hex(const char *hex, struct ds_digest *ret)
{
	struct ds_digest d;
	int r = ds_hex_decode(hex, d.b, DS_DIGEST_LEN);

	if (r < 0)
		return r;
	*ret = d;
	return 0;
}

/* SHA-256 fetched from OpenSSL's provider once. EVP_sha256() makes every
 * EVP_DigestInit look the algorithm up again: about 0.7 µs, four times the
 * hash of a 70-byte key. Inode numbers are such hashes, one per directory
 * entry listed (OpenSSL 3.0, this machine: 874 → 177 ns per call). */
static EVP_MD *sha256_md;
static pthread_once_t sha256_md_once = PTHREAD_ONCE_INIT;

static void sha256_md_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void)
{
	if (pthread_once(&sha256_md_once, sha256_md_fetch) != 0)
		abort();
	return sha256_md ? sha256_md : EVP_sha256();
}

static void sha256_evp(const void *data, size_t len, struct ds_digest *ret)
{
	unsigned int outlen = DS_DIGEST_LEN;

	/* EVP_Digest with the built-in SHA-256 cannot fail short of ENOMEM in
	 * OpenSSL's internals; abort rather than hand out an unset digest. */
	if (!EVP_Digest(data, len, ret->b, &outlen, sha256(), NULL))
		abort();
}

/* A full 4 MiB chunk of zeros (the unwritten parts of a VM image) is
 * common enough to know its digest: checking that a buffer is all zeros
 * runs at memory speed, hashing it at a tenth of that. */
#define ZERO_CHUNK_LEN (4 * DS_MIB)
static struct ds_digest zero_chunk_digest;
static pthread_once_t zero_chunk_once = PTHREAD_ONCE_INIT;

static void zero_chunk_init(void)
{
	uint8_t *z = calloc(1, ZERO_CHUNK_LEN);

	if (!z)
		abort();
	sha256_evp(z, ZERO_CHUNK_LEN, &zero_chunk_digest);
	free(z);
}

static bool all_zero(const uint8_t *p, size_t len)
{
	/* Data that is not zero almost always shows it in its first bytes. */
	for (size_t i = 0; i < 64 && i < len; i++)
		if (p[i])
			return false;
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

void ds_sha256(const void *data, size_t len, struct ds_digest *ret)
{
	if (len == ZERO_CHUNK_LEN && all_zero(data, len)) {
		if (pthread_once(&zero_chunk_once, zero_chunk_init) != 0)
			abort();
		*ret = zero_chunk_digest;
		return;
	}
	sha256_evp(data, len, ret);
}

static pthread_once_t backup_once = PTHREAD_ONCE_INIT;
static uid_t backup_uid = (uid_t)-1;
static gid_t backup_gid = (gid_t)-1;

static void backup_lookup(void)
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	/* getpwnam is not thread-safe. */
	if (getpwnam_r("backup", &pw, buf, sizeof(buf), &res) == 0 && res) {
		backup_uid = pw.pw_uid;
		backup_gid = pw.pw_gid;
	}
}

void ds_backup_user(uid_t *ret_uid, gid_t *ret_gid)
{
	if (pthread_once(&backup_once, backup_lookup) != 0)
		abort();
	*ret_uid = backup_uid;
	*ret_gid = backup_gid;
}

void ds_give_to_backup(int fd, mode_t mode, const char *what)
{
	struct stat st;
	uid_t uid;
	gid_t gid;

	ds_backup_user(&uid, &gid);
	if (fstat(fd, &st) < 0)
		return;
	/* chown before chmod: chown may clear set-id bits. */
	if (uid != (uid_t)-1 && (st.st_uid != uid || st.st_gid != gid) &&
	    fchown(fd, uid, gid) < 0 && errno != EPERM)
		ds_warn("%s: cannot chown to backup: %s", what, strerror(errno));
	if ((st.st_mode & 07777) != mode)
		(void)fchmod(fd, mode);
}

struct ds_sha256 {
	EVP_MD_CTX *ctx;
};

struct ds_sha256 *ds_sha256_new(void)
{
	struct ds_sha256 *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || !EVP_DigestInit_ex(h->ctx, sha256(), NULL)) {
		ds_sha256_free(h);
		return NULL;
	}
	return h;
}

void ds_sha256_update(struct ds_sha256 *h, const void *data, size_t len)
{
	if (!EVP_DigestUpdate(h->ctx, data, len))
		abort();
}

void ds_sha256_final(struct ds_sha256 *h, struct ds_digest *ret)
{
	unsigned int outlen = DS_DIGEST_LEN;

	if (!EVP_DigestFinal_ex(h->ctx, ret->b, &outlen) ||
	    !EVP_DigestInit_ex(h->ctx, sha256(), NULL))
		abort();
}

void ds_sha256_free(struct ds_sha256 *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

uint32_t ds_crc32_update(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	uLong c = crc;

	/* zlib takes uInt lengths; feed large buffers in pieces. */
	while (len > 0) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;

		c = crc32(c, p, n);
		p += n;
		len -= n;
	}
	return (uint32_t)c;
}

uint32_t ds_crc32(const void *data, size_t len)
{
	return ds_crc32_update(0, data, len);
}

int ds_open_regular_at(int dirfd, const char *path, struct stat *ret_st)
{
	/* O_NONBLOCK: open(2) of a FIFO waits for a writer, which a FIFO
	 * left in a datastore (where an owner, manifest or chunk file should
	 * be) never gets: a mount's request would hang unkillably. */
	int fd = openat(dirfd, path,
			O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
				(dirfd == AT_FDCWD ? 0 : O_NOFOLLOW));
	int r;

	if (fd < 0)
		return -errno;
	if (fstat(fd, ret_st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (!S_ISREG(ret_st->st_mode)) {
		close(fd);
		return S_ISDIR(ret_st->st_mode) ? -EISDIR : -EINVAL;
	}
	return fd;
}

int ds_walk_dir_at(int dirfd, const char *rel, mode_t mkdir_mode, uid_t uid, gid_t gid)
{
	char comp[NAME_MAX + 1];
	const char *p = rel;
	int fd = -1; /* -1: still at dirfd, which is not ours to close */

	if (*rel == '/')
		return -EINVAL;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		int at = fd < 0 ? dirfd : fd, next, err;
		bool made = false;

		if (n == 0 || n >= sizeof(comp) || strncmp(p, ".", n) == 0 ||
		    strncmp(p, "..", n) == 0) {
			if (fd >= 0)
				close(fd);
			return n >= sizeof(comp) ? -ENAMETOOLONG : -EINVAL;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		p += n + (slash ? 1 : 0);
		if (mkdir_mode) {
			made = mkdirat(at, comp, mkdir_mode) == 0;
			if (!made && errno != EEXIST) {
				err = errno;
				if (fd >= 0)
					close(fd);
				return -err;
			}
		}
		next = openat(at, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		err = errno;
		if (fd >= 0)
			close(fd);
		if (next < 0)
			return -err;
		fd = next;
		/* What was made is uid's, through the descriptor: by name
		 * a link put in its place would be followed. */
		if (made && uid != (uid_t)-1 && fchown(fd, uid, gid) < 0)
			ds_warn("%s: cannot chown: %s", comp, strerror(errno));
	}
	if (fd < 0) {
		fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
	}
	return fd;
}

int ds_open_dir_at(int dirfd, const char *rel)
{
	return ds_walk_dir_at(dirfd, rel, 0, (uid_t)-1, (gid_t)-1);
}

int ds_open_parent_at(int dirfd, const char *rel, const char **ret_leaf)
{
	const char *slash = strrchr(rel, '/');
	const char *leaf = slash ? slash + 1 : rel;
	char dir[4096];
	int r;

	if (!*leaf || strcmp(leaf, ".") == 0 || strcmp(leaf, "..") == 0)
		return -EINVAL;
	r = ds_path_fmt(dir, sizeof(dir), "%.*s", slash ? (int)(slash - rel) : 0, rel);
	if (r < 0)
		return r;
	r = ds_open_dir_at(dirfd, dir);
	if (r >= 0)
		*ret_leaf = leaf;
	return r;
}

int ds_unlink_at(int dirfd, const char *rel, int flags)
{
	const char *leaf;
	int pfd = ds_open_parent_at(dirfd, rel, &leaf), r;

	if (pfd < 0)
		return pfd;
	r = unlinkat(pfd, leaf, flags) < 0 ? -errno : 0;
	close(pfd);
	return r;
}

int ds_read_fd(int fd, size_t hint, size_t max, const volatile sig_atomic_t *stop,
	       uint8_t **ret_buf, size_t *ret_len)
{
	uint8_t *buf;
	size_t len = 0, cap;
	int r;

	if (hint > max)
		return -EFBIG;
	/* A file's size exactly (its bytes and the NUL are one allocation,
	 * held as long as the caller keeps them); 64 KiB to start with when
	 * the size is unknown. */
	cap = (hint ? hint : 65536) + 1;
	if (cap > max + 1)
		cap = max + 1;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		/* Also between reads: a signal then would not interrupt one. */
		if (stop && *stop) {
			r = -EINTR;
			goto fail;
		}
		if (len + 1 == cap) {
			/* Full: one byte more decides whether there is more (a
			 * file that grew, a pipe), so a file of its size (or of
			 * exactly max bytes) is read without growing. */
			uint8_t c, *nb;

			do
				n = read(fd, &c, 1);
			while (n < 0 && errno == EINTR && !(stop && *stop));
			if (n == 0)
				break;
			if (n < 0 || len >= max) {
				r = n < 0 ? -errno : -EFBIG;
				goto fail;
			}
			cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			nb = realloc(buf, cap);
			if (!nb) {
				r = -ENOMEM;
				goto fail;
			}
			buf = nb;
			buf[len++] = c;
			continue;
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n < 0) {
			if (errno == EINTR && !(stop && *stop))
				continue;
			r = -errno;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	*ret_buf = buf;
	*ret_len = len;
	return 0;
fail:
	free(buf);
	return r;
}

int ds_read_file_at(int dirfd, const char *path, size_t max, uint8_t **ret_buf,
		    size_t *ret_len)
{
	struct stat st;
	int fd, r;

	fd = ds_open_regular_at(dirfd, path, &st);
	if (fd < 0)
		return fd;
	r = (uint64_t)st.st_size > max ? -EFBIG
				       : ds_read_fd(fd, (size_t)st.st_size, max, NULL, ret_buf, ret_len);
	close(fd);
	return r;
}

int ds_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int ds_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

int ds_tmp_name(const char *name, const char *suffix, char *out, size_t outlen)
{
	const char *leaf = strrchr(name, '/');
	const char *dot;
	int n;

	/* Only the last path component's extension is replaced. */
	leaf = leaf ? leaf + 1 : name;
	dot = strrchr(leaf, '.');
	if (dot && dot != leaf)
		n = snprintf(out, outlen, "%.*s.%s", (int)(dot - name), name, suffix);
	else
		n = snprintf(out, outlen, "%s.%s", name, suffix);
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

/* Opens a fresh temp file for name: last extension replaced by
 * "tmp_XXXXXX" with 6 random characters, created O_EXCL (mkostemp semantics,
 * but relative to dirfd). Writes the chosen name to tmp. */
static int open_tmp_at(int dirfd, const char *name, char *tmp, size_t tmplen)
{
	static const char chars[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	int r;

	r = ds_tmp_name(name, "tmp_XXXXXX", tmp, tmplen);
	if (r < 0)
		return r;
	for (int attempt = 0; attempt < 100; attempt++) {
		uint8_t rnd[6];
		char *x = tmp + strlen(tmp) - 6;
		int fd;

		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return -EIO;
		for (int i = 0; i < 6; i++)
			x[i] = chars[rnd[i] % (sizeof(chars) - 1)];
		fd = openat(dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int ds_fsync_parent_at(int dirfd, const char *name)
{
	const char *leaf;
	int dfd, r;

	dfd = ds_open_parent_at(dirfd, name, &leaf);
	if (dfd < 0)
		return dfd;
	r = fsync(dfd) < 0 ? -errno : 0;
	close(dfd);
	return r;
}

void ds_datastore_owner(uid_t *ret_uid, gid_t *ret_gid)
{
	/* Anyone but root could only give files to themselves. */
	if (geteuid() != 0) {
		*ret_uid = (uid_t)-1;
		*ret_gid = (gid_t)-1;
		return;
	}
	ds_backup_user(ret_uid, ret_gid);
}

int ds_own_fd(int fd)
{
	uid_t uid;
	gid_t gid;

	ds_datastore_owner(&uid, &gid);
	if (uid == (uid_t)-1)
		return 0;
	return fchown(fd, uid, gid) < 0 ? -errno : 0;
}

int ds_own_at(int dirfd, const char *name)
{
	uid_t uid;
	gid_t gid;

	ds_datastore_owner(&uid, &gid);
	if (uid == (uid_t)-1)
		return 0;
	return fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

int ds_mkdir_own_at(int dirfd, const char *name, mode_t mode)
{
	const char *leaf;
	int pfd, fd, r;

	/* Every directory of name by descriptor (ds_open_parent_at): a link
	 * in place of one would have the new directory made elsewhere. */
	pfd = ds_open_parent_at(dirfd, name, &leaf);
	if (pfd < 0)
		return pfd;
	if (mkdirat(pfd, leaf, mode) < 0) {
		r = -errno;
		goto out;
	}
	/* The mode exactly, as PBS's daemons (umask 022) make them: under
	 * the caller's umask 077 they were 0700. Through a descriptor: the
	 * parent may be the backup user's, who could put a link in the new
	 * directory's place before the chmod (which follows links). */
	fd = openat(pfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = fchmod(fd, mode) < 0 ? -errno : ds_own_fd(fd);
	close(fd);
	if (r < 0)
		unlinkat(pfd, leaf, AT_REMOVEDIR);
out:
	close(pfd);
	return r;
}

int ds_replace_file_at(int dirfd, const char *name, const void *buf, size_t len,
		       mode_t mode, bool do_fsync)
{
	uid_t uid;
	gid_t gid;

	ds_datastore_owner(&uid, &gid);
	return ds_replace_file_owned_at(dirfd, name, buf, len, mode, uid, gid, do_fsync);
}

int ds_replace_file_owned_at(int dirfd, const char *name, const void *buf, size_t len,
			     mode_t mode, uid_t uid, gid_t gid, bool do_fsync)
{
	char tmp[4096];
	const char *leaf;
	int fd, r;

	if (dirfd != AT_FDCWD && strchr(name, '/')) {
		/* A chunk's "XXXX/digest": the prefix directory by
		 * descriptor, no link followed (ds_open_dir_at). */
		int pfd = ds_open_parent_at(dirfd, name, &leaf);

		if (pfd < 0)
			return pfd;
		r = ds_replace_file_owned_at(pfd, leaf, buf, len, mode, uid, gid, do_fsync);
		close(pfd);
		return r;
	}
	fd = open_tmp_at(dirfd, name, tmp, sizeof(tmp));
	if (fd < 0)
		return fd;
	/* chown before chmod: chown may clear set-id bits. */
	if ((uid != (uid_t)-1 && fchown(fd, uid, gid) < 0) || fchmod(fd, mode) < 0) {
		r = -errno;
		goto fail;
	}
	r = ds_write_all(fd, buf, len);
	if (r < 0)
		goto fail;
	if (do_fsync && fsync(fd) < 0) {
		r = -errno;
		goto fail;
	}
	r = close(fd);
	fd = -1;
	if (r < 0) {
		r = -errno;
		goto fail;
	}
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		r = -errno;
		goto fail;
	}
	return do_fsync ? ds_fsync_parent_at(dirfd, name) : 0;

fail:
	if (fd >= 0)
		close(fd);
	unlinkat(dirfd, tmp, 0);
	return r;
}

/* Links the unnamed file fd (O_TMPFILE) as name, never replacing. */
static int link_tmpfile(int fd, int dirfd, const char *name)
{
	char proc[64];

	if (linkat(fd, "", dirfd, name, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != ENOENT && errno != EPERM)
		return -errno;
	/* Without CAP_DAC_READ_SEARCH: through /proc. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	return linkat(AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
}

int ds_create_file_at(int dirfd, const char *name, const void *buf, size_t len, mode_t mode,
		      bool do_fsync)
{
	const char *leaf;
	int fd, r;

	if (strchr(name, '/')) {
		/* A chunk's "XXXX/digest": the prefix directory by
		 * descriptor, no link followed (ds_open_dir_at). */
		int pfd = ds_open_parent_at(dirfd, name, &leaf);

		if (pfd < 0)
			return pfd;
		r = ds_create_file_at(pfd, leaf, buf, len, mode, do_fsync);
		close(pfd);
		return r;
	}
	fd = openat(dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
	if (fd < 0) {
		char tmp[4096];

		if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
			return -errno;
		/* No O_TMPFILE here: a named temp file, renamed without
		 * replacing. */
		fd = open_tmp_at(dirfd, name, tmp, sizeof(tmp));
		if (fd < 0)
			return fd;
		/* chown before chmod: chown may clear set-id bits. */
		r = ds_own_fd(fd);
		if (r == 0)
			r = fchmod(fd, mode) < 0 ? -errno : ds_write_all(fd, buf, len);
		if (r == 0 && do_fsync && fsync(fd) < 0)
			r = -errno;
		if (close(fd) < 0 && r == 0)
			r = -errno;
		if (r == 0 && renameat2(dirfd, tmp, dirfd, name, RENAME_NOREPLACE) < 0)
			r = -errno;
		if (r < 0)
			unlinkat(dirfd, tmp, 0);
		return r < 0 ? r : (do_fsync ? ds_fsync_parent_at(dirfd, name) : 0);
	}
	r = ds_own_fd(fd);
	if (r == 0)
		r = fchmod(fd, mode) < 0 ? -errno : ds_write_all(fd, buf, len);
	if (r == 0 && do_fsync && fsync(fd) < 0)
		r = -errno;
	if (r == 0)
		r = link_tmpfile(fd, dirfd, name);
	close(fd);
	return r < 0 ? r : (do_fsync ? ds_fsync_parent_at(dirfd, name) : 0);
}

int ds_time_format(int64_t epoch, char out[DS_TIME_LEN + 1])
{
	struct tm tm;
	time_t t = (time_t)epoch;

	/* Years 0..9999 only (proxmox-time's limit). */
	if (epoch < INT64_C(-62167219200) || epoch > INT64_C(253402300799))
		return -EINVAL;
	if (!gmtime_r(&t, &tm))
		return -EINVAL;
	if (strftime(out, DS_TIME_LEN + 1, "%Y-%m-%dT%H:%M:%SZ", &tm) != DS_TIME_LEN)
		return -EINVAL;
	return 0;
}

static int digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int ds_time_parse(const char *s, int64_t *ret_epoch)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h, mi, sec, dim;
	int64_t days, yy;

	if (strlen(s) != DS_TIME_LEN || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
	    s[13] != ':' || s[16] != ':' || s[19] != 'Z')
		return -EINVAL;
	y = digits(s, 4);
	mo = digits(s + 5, 2);
	d = digits(s + 8, 2);
	h = digits(s + 11, 2);
	mi = digits(s + 14, 2);
	sec = digits(s + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
	    sec < 0 || sec > 59)
		return -EINVAL;
	dim = mdays[mo - 1];
	if (mo == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		dim = 29;
	if (d > dim)
		return -EINVAL;
	/* Days from civil (Howard Hinnant's algorithm), proleptic Gregorian. */
	yy = y - (mo <= 2);
	{
		int64_t era = (yy >= 0 ? yy : yy - 399) / 400;
		int64_t yoe = yy - era * 400;
		int64_t mp = (mo + 9) % 12;
		int64_t doy = (153 * mp + 2) / 5 + d - 1;
		int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

		days = era * 146097 + doe - 719468;
	}
	*ret_epoch = days * 86400 + h * 3600 + mi * 60 + sec;
	return 0;
}

/* strtoull alone would take "-1" for 2^64-1, skip leading blanks and
 * stop at junk; a suffix could shift a large number round. */
int ds_parse_size(const char *s, size_t *ret)
{
	unsigned long long v;
	unsigned shift = 0;
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	default:
		break;
	}
	if (shift)
		end++;
	if (*end || v > (unsigned long long)SIZE_MAX >> shift)
		return -EINVAL;
	*ret = (size_t)(v << shift);
	return 0;
}

int ds_path_fmt(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

uint64_t ds_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ds_raise_fd_limit(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_max != RLIM_INFINITY && (want == RLIM_INFINITY || want > rl.rlim_max))
		want = rl.rlim_max;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		rl.rlim_cur = want;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}
