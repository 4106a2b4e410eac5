/* Directory listings and change handling of the view. */
#include "fs/mount/vfs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/config_cache.h"
#include "store/config.h"
#include "store/datastore.h"
#include "store/hierarchy.h"
#include "store/log.h"
#include "store/pxar.h"

static uint64_t child_ino(const struct vnode *p, const char *name)
{
	char path[4096], key[VSTORE_KEY_LEN];

	snprintf(path, sizeof(path), "%s%s%s", p->path, *p->path ? "/" : "", name);
	/* The same number vfs_lookup gives the child. */
	if (p->kind == VK_ROOT)
		return vfs_path_ino(name, path);
	vstore_key(p->st, key);
	return vfs_path_ino(key, path);
}

static int add(struct vfs_dir *d, const struct vnode *p, const char *name, mode_t type)
{
	struct vfs_dirent *ne = realloc(d->ents, (d->n + 1) * sizeof(*ne));

	if (!ne)
		return -ENOMEM;
	d->ents = ne;
	ne[d->n].name = strdup(name);
	if (!ne[d->n].name)
		return -ENOMEM;
	ne[d->n].ino = child_ino(p, name);
	ne[d->n].type = type;
	ne[d->n].hidden = false;
	d->n++;
	return 0;
}

static int list_root(struct vfs *v, const struct vnode *p, struct vfs_dir *d)
{
	struct ds_config_snap snap;
	int r = 0;

	ds_config_cache_get(v->cc, &snap);
	for (size_t i = 0; i < snap.cfg->n_stores && r == 0; i++)
		if (snap.cfg->stores[i].maintenance != DS_MAINT_DELETE)
			r = add(d, p, snap.cfg->stores[i].name, S_IFDIR);
	ds_config_cache_put(v->cc, &snap);
	return r;
}

static int list_nsroot(const struct ds_lookup *lk, const struct vnode *p, struct vfs_dir *d)
{
	static const char *const subs[] = { "ct", "host", "ns", "vm" };
	char rel[1100], sub[1200];
	int r;

	r = ds_ns_relpath(p->ns, rel, sizeof(rel));
	if (r < 0)
		return r;
	r = ds_lookup_open_dir(lk, rel); /* refusals and a vanished namespace */
	if (r < 0)
		return r;
	close(r);
	for (size_t i = 0; i < DS_ARRAY_SIZE(subs); i++) {
		int fd;

		if (ds_path_fmt(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", subs[i]) < 0)
			continue;
		fd = ds_lookup_open_dir(lk, sub);
		if (fd < 0)
			continue;
		close(fd);
		r = add(d, p, subs[i], S_IFDIR);
		if (r < 0)
			return r;
	}
	return 0;
}

static int list_nslist(const struct ds_lookup *lk, const struct vnode *p, struct vfs_dir *d)
{
	char ns[DS_MAX_NAMESPACE_LEN + 1];
	struct ds_strv sv = { 0 };
	int r;

	/* Only children PBS accepts, as lookup_nslist finds them: not below
	 * 7 levels, none whose full name is longer than 256 characters. */
	r = ds_list_namespaces(lk, p->ns, &sv);
	for (size_t i = 0; r == 0 && i < sv.n; i++)
		if (vfs_ns_child(p->ns, sv.v[i], ns) == 0)
			r = add(d, p, sv.v[i], S_IFDIR);
	ds_strv_free(&sv);
	return r;
}

static int list_type(const struct ds_lookup *lk, const struct vnode *p, struct vfs_dir *d)
{
	struct ds_group *g = NULL;
	size_t n = 0;
	int r;

	r = ds_list_groups(lk, p->ns, &g, &n);
	for (size_t i = 0; r == 0 && i < n; i++)
		if (g[i].type == p->type)
			r = add(d, p, g[i].id, S_IFDIR);
	ds_groups_free(g, n);
	return r;
}

static int list_group(const struct ds_lookup *lk, const struct vnode *p, struct vfs_dir *d)
{
	struct ds_snapshot *s = NULL;
	size_t n = 0;
	bool finished = false;
	char *owner = NULL;
	int r;

	r = ds_list_snapshots(lk, p->ns, ds_backup_type_name(p->type), p->id, &s, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		finished |= s[i].finished;
		r = add(d, p, s[i].time, S_IFDIR);
	}
	free(s);
	if (r == 0 && finished)
		r = add(d, p, "latest", S_IFLNK);
	if (r == 0 && ds_read_owner(lk, p->ns, ds_backup_type_name(p->type), p->id, &owner) == 0)
		r = add(d, p, "owner", S_IFREG);
	free(owner);
	if (r == 0) {
		char rel[2048];
		struct stat st;
		int fd;

		if (ds_group_relpath(p->ns, ds_backup_type_name(p->type), p->id, rel, sizeof(rel)) == 0 &&
		    (fd = ds_lookup_open_dir(lk, rel)) >= 0) {
			/* As lookup_group finds it: a link is not followed. */
			if (fstatat(fd, "notes", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISREG(st.st_mode))
				r = add(d, p, "notes", S_IFREG);
			close(fd);
		}
	}
	return r;
}

/* How the snapshot's file f shows (a name lookup_snapshot resolves to that
 * file): into shown, with its type and rank, the order in which lookup
 * tries the kinds of a name (pxar archive, then .fidx, .didx, .blob).
 * -ENOENT for a file lookup does not reach under any name: one whose name
 * is not a PBS archive name, and a pxar half (X.mpxar.didx or X.ppxar.didx)
 * that is part of the directory X.pxar. */
static int shown_name(const struct ds_strv *files, const char *f, char *shown, size_t len,
		      mode_t *ret_type, int *ret_rank)
{
	static const char *const exts[] = { "fidx", "didx", "blob" };
	const char *dot = strrchr(f, '.');
	size_t l = (size_t)(dot - f);
	char other[300];
	bool half;

	if (ds_name_archive(f) < 0 || ds_path_fmt(shown, len, "%.*s", (int)l, f) < 0)
		return -ENOENT;
	*ret_type = S_IFREG;
	for (size_t i = 0; i < DS_ARRAY_SIZE(exts); i++)
		if (strcmp(dot + 1, exts[i]) == 0)
			*ret_rank = (int)i + 1;
	if (strcmp(dot + 1, "didx") != 0)
		return 0;
	if (l > 5 && strcmp(shown + l - 5, ".pxar") == 0) {
		*ret_type = S_IFDIR;
		*ret_rank = 0;
		return 0;
	}
	/* X.mpxar.didx + X.ppxar.didx are the directory X.pxar; one without
	 * the other (a backup still writing the second) is the stream file it
	 * is, which is what lookup finds under its name. */
	half = l > 6 && (strcmp(shown + l - 6, ".mpxar") == 0 || strcmp(shown + l - 6, ".ppxar") == 0);
	if (!half ||
	    ds_path_fmt(other, sizeof(other), "%.*s.%cpxar.didx", (int)(l - 6), shown,
			shown[l - 5] == 'm' ? 'p' : 'm') < 0 ||
	    !ds_strv_has(files, other))
		return 0;
	if (shown[l - 5] == 'p')
		return -ENOENT;
	memmove(shown + l - 5, shown + l - 4, 5); /* .mpxar → .pxar */
	*ret_type = S_IFDIR;
	*ret_rank = 0;
	return 0;
}

/* Leaves out of files those manifest m does not list, when it binds the
 * snapshot's files (vfs_manifest_binds): as lookup_snapshot does. */
static int drop_unlisted(struct vfs *v, const struct vnode *p, const char *rel,
			 const struct ds_manifest *m, struct ds_strv *files)
{
	size_t o = 0;
	int r;

	r = vfs_manifest_binds(v, p, m);
	if (r <= 0)
		return r;
	for (size_t i = 0; i < files->n; i++) {
		/* Names that are no archive's are not shown anyway. */
		if (ds_name_archive(files->v[i]) == 0 && vfs_unlisted(m, rel, files->v[i])) {
			free(files->v[i]);
			continue;
		}
		files->v[o++] = files->v[i];
	}
	files->n = o;
	return 0;
}

static int list_snapshot(struct vfs *v, const struct ds_lookup *lk, const struct vnode *p,
			 struct vfs_dir *d)
{
	struct ds_manifest *m = NULL;
	struct ds_strv files = { 0 };
	bool prot = false;
	char rel[2048];
	int *ranks = NULL;
	size_t first = d->n;
	int fd, r;

	r = vfs_node_snaprel(p, rel, sizeof(rel));
	if (r < 0)
		return r;
	r = ds_list_snapshot_files(lk, rel, &files, &prot);
	if (r < 0)
		return r;
	fd = ds_open_snapshot(lk, rel);
	if (fd >= 0) {
		if (ds_manifest_load(fd, &m) < 0)
			m = NULL;
		close(fd);
	}
	r = drop_unlisted(v, p, rel, m, &files);
	if (r == 0) {
		ranks = calloc(files.n ? files.n : 1, sizeof(*ranks));
		if (!ranks)
			r = -ENOMEM;
	}
	/* Server extension dropped: drive-scsi0.img.fidx → drive-scsi0.img,
	 * index.json.blob → index.json, client.log.blob → client.log; pxar
	 * archives (X.pxar.didx or X.mpxar.didx + X.ppxar.didx) are the
	 * directory X.pxar. A name two files would show as is listed once,
	 * with the type of the one lookup finds. */
	for (size_t i = 0; r == 0 && i < files.n; i++) {
		char shown[300];
		mode_t type;
		int rank = 0;
		size_t k;

		if (shown_name(&files, files.v[i], shown, sizeof(shown), &type, &rank) < 0)
			continue;
		for (k = first; k < d->n && strcmp(d->ents[k].name, shown) != 0; k++)
			;
		if (k == d->n) {
			r = add(d, p, shown, type);
			ranks[k - first] = rank;
		} else if (rank < ranks[k - first]) {
			d->ents[k].type = type;
			ranks[k - first] = rank;
		}
	}
	free(ranks);
	if (r == 0 && m && ds_manifest_notes(m))
		r = add(d, p, "notes", S_IFREG);
	ds_manifest_free(m);
	if (r == 0 && prot)
		r = add(d, p, ".protected", S_IFREG);
	ds_strv_free(&files);
	d->cacheable = false; /* notes and .protected may change */
	return r;
}

/* Files being written into snapshot p (not on disk under their names). */
static int list_writing(struct vfs *v, const struct vnode *p, struct vfs_dir *d)
{
	struct ds_strv names = { 0 };
	char rel[2048];
	int r;

	if (vfs_node_snaprel(p, rel, sizeof(rel)) < 0)
		return 0;
	r = vwrite_names(v, p->st, rel, &names);
	for (size_t i = 0; r == 0 && i < names.n; i++) {
		bool listed = false;

		/* Committed a moment ago: on disk already. */
		for (size_t k = 0; k < d->n && !listed; k++)
			listed = strcmp(d->ents[k].name, names.v[i]) == 0;
		if (!listed)
			r = add(d, p, names.v[i], S_IFREG);
	}
	ds_strv_free(&names);
	/* Notes open for writing: found by name (vfs_lookup), so listed. */
	if (r == 0 && vfs_writing_child(v, p, "notes")) {
		bool listed = false;

		for (size_t k = 0; k < d->n && !listed; k++)
			listed = strcmp(d->ents[k].name, "notes") == 0;
		if (!listed)
			r = add(d, p, "notes", S_IFREG);
	}
	return r;
}

int vfs_opendir(struct vfs *v, uint64_t ino, struct vfs_dir **ret)
{
	struct vnode *p = vfs_node_get(v, ino);
	struct ds_lookup *lk = NULL;
	struct vfs_dir *d;
	int r;

	if (!p)
		return -ESTALE;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	d->st_ino = p->st_ino;
	d->parent = p->kind == VK_ROOT || !p->parent ? p->st_ino : p->parent_st_ino;
	if (p->kind == VK_ROOT) {
		r = list_root(v, p, d);
		goto out;
	}
	r = ds_lookup_acquire(p->st->ds, &lk);
	if (r < 0)
		goto out;
	switch (p->kind) {
	case VK_NSROOT:
		r = list_nsroot(lk, p, d);
		break;
	case VK_NSLIST:
		r = list_nslist(lk, p, d);
		break;
	case VK_TYPE:
		r = list_type(lk, p, d);
		break;
	case VK_GROUP:
		r = list_group(lk, p, d);
		break;
	case VK_SNAPSHOT:
		r = list_snapshot(v, lk, p, d);
		if (r == 0)
			r = list_writing(v, p, d);
		break;
	case VK_PXAR:
		r = vpxar_check_dir(v, p);
		d->cacheable = true; /* an archive never changes */
		d->lazy = true;
		d->v = v;
		d->ino = ino;
		break;
	default:
		r = -ENOTDIR;
	}
	ds_lookup_release(lk);
out:
	if (r < 0) {
		vfs_releasedir(d);
		return r;
	}
	if (!d->lazy)
		d->filled = d->n;
	*ret = d;
	return 0;
}

int vfs_dir_fill(struct vfs_dir *d, size_t upto)
{
	struct vnode *p;
	int r = 0;

	pthread_mutex_lock(&d->lock);
	if (d->lazy && (!d->pxd || d->filled < upto)) {
		/* The kernel holds the node while the directory is open. */
		p = vfs_node_get(d->v, d->ino);
		r = p ? vpxar_dir_fill(d->v, p, d, upto) : -ESTALE;
	}
	pthread_mutex_unlock(&d->lock);
	return r;
}

void vfs_releasedir(struct vfs_dir *d)
{
	if (!d)
		return;
	/* Up to n: a listing that failed part-way has names past filled,
	 * and a pxar listing's entries past filled are NULL (calloc). */
	for (size_t i = 0; i < d->n; i++)
		free(d->ents[i].name);
	free(d->ents);
	ds_pxar_dir_free(d->pxd);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

struct inval_item {
	uint64_t ino, parent;
	char *name;
};

/* Collects every node of store s (under the lock) so that the kernel's
 * caches can be dropped afterwards without holding it: a notification may
 * wait for the kernel, which may call back into lookup. */
static void invalidate_store(struct vfs *v, struct vstore *s, vfs_inval_fn inval, void *ctx)
{
	struct inval_item *items = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; i < v->table_size; i++)
		for (struct vnode *m = v->table[i]; m; m = m->hnext) {
			if (m->st != s)
				continue;
			if (n == cap) {
				struct inval_item *ni = realloc(items, (cap = cap ? 2 * cap : 64) *
									       sizeof(*ni));
				if (!ni)
					goto unlock;
				items = ni;
			}
			items[n].ino = m->ino;
			items[n].parent = m->parent;
			items[n].name = strdup(m->name);
			n++;
		}
	if (v->root->st == s) {
		struct inval_item *ni = realloc(items, (n + 1) * sizeof(*ni));

		if (ni) {
			items = ni;
			items[n].ino = VFS_ROOT_INO;
			items[n].parent = 0;
			items[n].name = NULL;
			n++;
		}
	}
unlock:
	pthread_mutex_unlock(&v->lock);
	for (size_t i = 0; i < n; i++) {
		inval(ctx, items[i].ino, items[i].parent, items[i].name);
		free(items[i].name);
	}
	free(items);
}

void vfs_refresh(struct vfs *v, vfs_inval_fn inval, void *ctx)
{
	struct ds_config_snap snap = { 0 };
	struct vstore *stores;
	bool have_cfg = false;

	if (v->cc) {
		ds_config_cache_drain_events(v->cc);
		ds_config_cache_refresh(v->cc);
		ds_config_cache_get(v->cc, &snap);
		have_cfg = true;
	}
	pthread_mutex_lock(&v->lock);
	stores = v->stores;
	pthread_mutex_unlock(&v->lock);
	/* Stores are only ever prepended, so this walk sees a stable list. */
	for (struct vstore *s = stores; s; s = s->next) {
		unsigned changed = 0;
		bool removed = false;

		if (have_cfg) {
			const struct ds_datastore_cfg *dc = ds_config_find(snap.cfg, s->name);
			struct ds_datastore_cfg gone = { .name = s->name,
							 .maintenance = DS_MAINT_DELETE };

			/* A store removed from the config is gone like "delete";
			 * one whose path changed is another store under the
			 * same name (the datastore logs it), with other inode
			 * numbers. A lookup racing this may still number a
			 * node of the new store the old way: the invalidation
			 * below drops it. */
			changed = ds_datastore_configure(s->ds, dc ? dc : &gone);
			removed = !dc;
			if (changed & DS_CONFIGURE_PATH)
				__atomic_add_fetch(&s->gen, 1, __ATOMIC_RELEASE);
		}
		if (ds_datastore_refresh_mount(s->ds))
			changed |= DS_CONFIGURE_ACCESS;
		ds_datastore_sync_operations(s->ds);
		if (changed) {
			enum ds_maintenance mode = ds_datastore_maintenance(s->ds);
			int read_refusal = ds_datastore_read_refusal(s->ds);
			char msg[512]; /* 64 characters of up to 4 bytes */

			/* With the message: under offline or unmount nothing
			 * gets as far as an open, which would log it. */
			ds_datastore_maintenance_message(s->ds, msg, sizeof(msg));
			if ((changed & DS_CONFIGURE_ACCESS) && removed)
				ds_info("datastore %s: access changed (removed from %s, read refused)",
					s->name, v->opt.config_path);
			else if (changed & DS_CONFIGURE_ACCESS)
				ds_info("datastore %s: access changed (maintenance %s%s%s, read %s)",
					s->name,
					mode == DS_MAINT_NONE ? "none" : ds_maintenance_name(mode),
					*msg ? ": " : "", msg, read_refusal ? "refused" : "allowed");
			/* Open archives hold read handles: they go when readers
			 * are refused, not when only writers are (read-only),
			 * and when the store moved (they are the old one's;
			 * browsing them again opens the new one's). Open files
			 * keep the old store's. */
			if (read_refusal < 0 || (changed & DS_CONFIGURE_PATH))
				vpxar_close_store(v, s);
			invalidate_store(v, s, inval, ctx);
			if (v->multi)
				inval(ctx, 0, VFS_ROOT_INO, s->name);
		}
	}
	if (have_cfg) {
		/* The root listing of a multi-store mount follows the config. */
		if (v->multi && snap.version != v->cfg_version)
			inval(ctx, VFS_ROOT_INO, 0, NULL);
		v->cfg_version = snap.version;
		ds_config_cache_put(v->cc, &snap);
	}
}
