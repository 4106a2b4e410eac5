#include "store/hierarchy.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/datastore.h"
#include "store/log.h"
#include "store/util.h"

void ds_strv_free(struct ds_strv *sv)
{
	if (!sv)
		return;
	for (size_t i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
}

static int strv_push(struct ds_strv *sv, const char *s)
{
	char **nv = realloc(sv->v, (sv->n + 1) * sizeof(*nv));

	if (!nv)
		return -ENOMEM;
	sv->v = nv;
	sv->v[sv->n] = strdup(s);
	if (!sv->v[sv->n])
		return -ENOMEM;
	sv->n++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

bool ds_strv_has(const struct ds_strv *sv, const char *s)
{
	return sv->n && bsearch(&s, sv->v, sv->n, sizeof(*sv->v), cmp_str) != NULL;
}

int ds_ns_relpath(const char *ns, char *out, size_t outlen)
{
	size_t o = 0;
	const char *p = ns;

	if (ds_name_namespace(ns, NULL) < 0)
		return -EINVAL;
	out[0] = '\0';
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		int w = snprintf(out + o, outlen - o, "%sns/%.*s", o ? "/" : "", (int)n, p);

		if (w < 0 || (size_t)w >= outlen - o)
			return -ENAMETOOLONG;
		o += (size_t)w;
		p += n;
		if (*p == '/')
			p++;
	}
	return 0;
}

int ds_group_relpath(const char *ns, const char *type, const char *id, char *out, size_t outlen)
{
	char nsdir[1024];
	int r;

	if (ds_name_backup_type(type) < 0 || ds_name_backup_id(id) < 0)
		return -EINVAL;
	r = ds_ns_relpath(ns, nsdir, sizeof(nsdir));
	if (r < 0)
		return r;
	return ds_path_fmt(out, outlen, "%s%s%s/%s", nsdir, *nsdir ? "/" : "", type, id);
}

int ds_snapshot_relpath(const char *ns, const char *type, const char *id, const char *time,
			char *out, size_t outlen)
{
	char group[2048];
	int r;

	if (ds_name_snapshot_time(time) < 0)
		return -EINVAL;
	r = ds_group_relpath(ns, type, id, group, sizeof(group));
	if (r < 0)
		return r;
	return ds_path_fmt(out, outlen, "%s/%s", group, time);
}

int ds_parse_snapshot_path(const char *path, bool want_time, char *ns, char *type, char *id,
			   char *time)
{
	char buf[2048];
	char *parts[64];
	size_t n = 0, i = 0, nsl = 0;
	char *save = NULL, *tok;

	if (ds_path_fmt(buf, sizeof(buf), "%s", path) < 0)
		return -EINVAL;
	for (tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (n == DS_ARRAY_SIZE(parts))
			return -EINVAL;
		parts[n++] = tok;
	}
	ns[0] = '\0';
	while (i + 1 < n && strcmp(parts[i], "ns") == 0) {
		size_t l = strlen(parts[i + 1]);

		if (ds_name_safe_id(parts[i + 1]) < 0 || nsl + l + 2 > 257)
			return -EINVAL;
		if (nsl)
			ns[nsl++] = '/';
		memcpy(ns + nsl, parts[i + 1], l + 1);
		nsl += l;
		i += 2;
	}
	if (ds_name_namespace(ns, NULL) < 0)
		return -EINVAL;
	if (n - i != (want_time ? 3u : 2u))
		return -EINVAL;
	if (ds_name_backup_type(parts[i]) < 0 || ds_name_backup_id(parts[i + 1]) < 0 ||
	    strlen(parts[i + 1]) > 255)
		return -EINVAL;
	strcpy(type, parts[i]);
	strcpy(id, parts[i + 1]);
	if (want_time) {
		if (ds_name_snapshot_time(parts[i + 2]) < 0)
			return -EINVAL;
		strcpy(time, parts[i + 2]);
	}
	return 0;
}

/* Opens relpath under the datastore and lists its entries of the wanted
 * kind (directories or regular files) through filter. */
static int list_dir(const struct ds_lookup *lk, const char *relpath, bool want_dirs,
		    int (*filter)(const char *name), struct ds_strv *ret)
{
	struct ds_strv sv = { 0 };
	DIR *d;
	struct dirent *de;
	int fd, r = 0;

	fd = ds_lookup_open_dir(lk, relpath);
	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		bool is_dir;

		if (filter(de->d_name) < 0)
			continue;
		if (de->d_type == DT_UNKNOWN) {
			struct stat st;

			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			is_dir = S_ISDIR(st.st_mode);
			if (!is_dir && !S_ISREG(st.st_mode))
				continue;
		} else if (de->d_type == DT_DIR) {
			is_dir = true;
		} else if (de->d_type == DT_REG) {
			is_dir = false;
		} else {
			continue;
		}
		if (is_dir != want_dirs)
			continue;
		r = strv_push(&sv, de->d_name);
		if (r < 0)
			break;
	}
	closedir(d);
	if (r < 0) {
		ds_strv_free(&sv);
		return r;
	}
	if (sv.n)
		qsort(sv.v, sv.n, sizeof(*sv.v), cmp_str);
	*ret = sv;
	return 0;
}

int ds_list_namespaces(const struct ds_lookup *lk, const char *ns, struct ds_strv *ret)
{
	char rel[1024], sub[1040];
	int r;

	r = ds_ns_relpath(ns, rel, sizeof(rel));
	if (r < 0)
		return r;
	r = ds_path_fmt(sub, sizeof(sub), "%s%sns", rel, *rel ? "/" : "");
	if (r < 0)
		return r;
	r = list_dir(lk, sub, true, ds_name_safe_id, ret);
	if (r == -ENOENT) {
		/* No ns/ directory: no children, if the namespace itself exists. */
		int fd = ds_lookup_open_dir(lk, rel);

		if (fd < 0)
			return fd;
		close(fd);
		ret->v = NULL;
		ret->n = 0;
		return 0;
	}
	return r;
}

void ds_groups_free(struct ds_group *g, size_t n)
{
	for (size_t i = 0; g && i < n; i++)
		free(g[i].id);
	free(g);
}

static bool is_numeric(const char *s, unsigned long long *ret)
{
	char *end;

	if (!isdigit((unsigned char)*s))
		return false;
	errno = 0;
	*ret = strtoull(s, &end, 10);
	return *end == '\0' && errno == 0;
}

static int type_rank(enum ds_backup_type t)
{
	/* PBS's display order: ct < host < vm. */
	return t == DS_TYPE_CT ? 0 : t == DS_TYPE_HOST ? 1 : 2;
}

static int cmp_group(const void *a, const void *b)
{
	const struct ds_group *x = a, *y = b;
	unsigned long long nx, ny;
	bool xn, yn;

	if (x->type != y->type)
		return type_rank(x->type) - type_rank(y->type);
	xn = is_numeric(x->id, &nx);
	yn = is_numeric(y->id, &ny);
	if (xn && yn)
		return nx < ny ? -1 : nx > ny;
	if (xn != yn)
		return xn ? -1 : 1;
	return strcmp(x->id, y->id);
}

int ds_list_groups(const struct ds_lookup *lk, const char *ns, struct ds_group **ret, size_t *ret_n)
{
	static const char *const types[] = { "vm", "ct", "host" };
	struct ds_group *g = NULL;
	size_t n = 0;
	char rel[1024];
	int r;

	r = ds_ns_relpath(ns, rel, sizeof(rel));
	if (r < 0)
		return r;
	/* The namespace itself must exist. */
	r = ds_lookup_open_dir(lk, rel);
	if (r < 0)
		return r;
	close(r);
	for (size_t t = 0; t < DS_ARRAY_SIZE(types); t++) {
		struct ds_strv ids = { 0 };
		char sub[1040];
		struct ds_group *ng;

		r = ds_path_fmt(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", types[t]);
		if (r < 0)
			goto fail;
		r = list_dir(lk, sub, true, ds_name_backup_id, &ids);
		/* PBS lists only type entries that are directories. */
		if (r == -ENOENT || r == -ENOTDIR)
			continue;
		if (r < 0)
			goto fail;
		ng = realloc(g, (n + ids.n + 1) * sizeof(*g));
		if (!ng) {
			ds_strv_free(&ids);
			r = -ENOMEM;
			goto fail;
		}
		g = ng;
		for (size_t i = 0; i < ids.n; i++) {
			g[n].type = (enum ds_backup_type)ds_name_backup_type(types[t]);
			g[n].id = ids.v[i]; /* ownership moves */
			n++;
		}
		free(ids.v);
	}
	if (n)
		qsort(g, n, sizeof(*g), cmp_group);
	*ret = g;
	*ret_n = n;
	return 0;
fail:
	ds_groups_free(g, n);
	return r;
}

static int cmp_snapshot(const void *a, const void *b)
{
	const struct ds_snapshot *x = a, *y = b;

	return x->epoch < y->epoch ? -1 : x->epoch > y->epoch;
}

int ds_list_snapshots(const struct ds_lookup *lk, const char *ns, const char *type, const char *id,
		      struct ds_snapshot **ret, size_t *ret_n)
{
	struct ds_strv times = { 0 };
	struct ds_snapshot *s = NULL;
	char rel[2048];
	int gfd, r;

	r = ds_group_relpath(ns, type, id, rel, sizeof(rel));
	if (r < 0)
		return r;
	r = list_dir(lk, rel, true, ds_name_snapshot_time, &times);
	if (r < 0)
		return r;
	gfd = ds_lookup_open_dir(lk, rel);
	if (gfd < 0) {
		r = gfd;
		goto out;
	}
	s = calloc(times.n ? times.n : 1, sizeof(*s));
	if (!s) {
		r = -ENOMEM;
		goto out_close;
	}
	for (size_t i = 0; i < times.n; i++) {
		char p[64];
		struct stat st;

		memcpy(s[i].time, times.v[i], DS_TIME_LEN + 1);
		ds_time_parse(times.v[i], &s[i].epoch);
		snprintf(p, sizeof(p), "%s/index.json.blob", times.v[i]);
		s[i].finished = fstatat(gfd, p, &st, 0) == 0 && S_ISREG(st.st_mode);
		snprintf(p, sizeof(p), "%s/.protected", times.v[i]);
		s[i].protected = fstatat(gfd, p, &st, 0) == 0;
	}
	qsort(s, times.n, sizeof(*s), cmp_snapshot);
	*ret = s;
	*ret_n = times.n;
	s = NULL;
	r = 0;
out_close:
	close(gfd);
out:
	free(s);
	ds_strv_free(&times);
	return r;
}

static int content_filter(const char *name)
{
	size_t l = strlen(name);

	if (strcmp(name, ".protected") == 0)
		return 0;
	if (l > 5 && (strcmp(name + l - 5, ".fidx") == 0 || strcmp(name + l - 5, ".didx") == 0 ||
		      strcmp(name + l - 5, ".blob") == 0))
		return 0;
	return -EINVAL;
}

/* A snapshot path from a caller must name a snapshot (valid names, no "..")
 * before it is joined to the base. */
static int check_snaprel(const char *snaprel)
{
	char ns[257], type[8], id[256], time[DS_TIME_LEN + 1];

	return ds_parse_snapshot_path(snaprel, true, ns, type, id, time);
}

int ds_list_snapshot_files(const struct ds_lookup *lk, const char *snaprel, struct ds_strv *ret,
			   bool *ret_protected)
{
	struct ds_strv sv = { 0 };
	bool prot = false;
	size_t o = 0;
	int r;

	r = check_snaprel(snaprel);
	if (r < 0)
		return r;
	r = list_dir(lk, snaprel, false, content_filter, &sv);
	if (r < 0)
		return r;
	for (size_t i = 0; i < sv.n; i++) {
		if (strcmp(sv.v[i], ".protected") == 0) {
			prot = true;
			free(sv.v[i]);
			continue;
		}
		sv.v[o++] = sv.v[i];
	}
	sv.n = o;
	*ret = sv;
	if (ret_protected)
		*ret_protected = prot;
	return 0;
}

int ds_read_owner_at(int groupfd, char **ret)
{
	uint8_t *buf;
	size_t len;
	char *nl;
	int r;

	r = ds_read_file_at(groupfd, "owner", 4096, &buf, &len);
	if (r < 0)
		return r;
	nl = strchr((char *)buf, '\n');
	if (nl)
		*nl = '\0';
	len = strlen((char *)buf);
	while (len > 0 && isspace((unsigned char)buf[len - 1]))
		buf[--len] = '\0';
	*ret = (char *)buf;
	return 0;
}

int ds_read_owner(const struct ds_lookup *lk, const char *ns, const char *type, const char *id,
		  char **ret)
{
	char rel[2048];
	int fd, r;

	r = ds_group_relpath(ns, type, id, rel, sizeof(rel));
	if (r < 0)
		return r;
	fd = ds_lookup_open_dir(lk, rel);
	if (fd < 0)
		return fd;
	r = ds_read_owner_at(fd, ret);
	close(fd);
	return r;
}

bool ds_owner_allows(const char *owner, const char *authid)
{
	const char *bang = strchr(owner, '!');

	if (strcmp(owner, authid) == 0)
		return true;
	/* PBS's check_backup_owner: a token's user may back up into the
	 * token's group (not the other way round). */
	return bang && strncmp(owner, authid, (size_t)(bang - owner)) == 0 &&
	       authid[bang - owner] == '\0';
}

int ds_open_snapshot(const struct ds_lookup *lk, const char *snaprel)
{
	int r = check_snaprel(snaprel);

	return r < 0 ? r : ds_lookup_open_dir(lk, snaprel);
}
