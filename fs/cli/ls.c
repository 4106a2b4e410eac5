/* dsfs ls: namespaces, groups, snapshots and archives. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/cli/cli.h"
#include "store/blob.h"
#include "store/datastore.h"
#include "store/hierarchy.h"
#include "store/index.h"
#include "store/manifest.h"
#include "store/names.h"

static void print_ns_prefix(const char *ns)
{
	char rel[1024];

	if (*ns && ds_ns_relpath(ns, rel, sizeof(rel)) == 0)
		printf("%s/", rel);
}

/* Namespaces (recursively) and groups below ns. */
static int list_namespace(const struct ds_lookup *lk, const char *ns, bool recursive)
{
	struct ds_group *groups = NULL;
	struct ds_strv children = { 0 };
	size_t n = 0;
	int depth, r;

	r = ds_list_groups(lk, ns, &groups, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		const char *type = ds_backup_type_name(groups[i].type);
		struct ds_snapshot *snaps = NULL;
		size_t ns_n = 0, finished = 0;
		char *owner = NULL;

		if (ds_list_snapshots(lk, ns, type, groups[i].id, &snaps, &ns_n) == 0)
			for (size_t j = 0; j < ns_n; j++)
				finished += snaps[j].finished;
		ds_read_owner(lk, ns, type, groups[i].id, &owner);
		print_ns_prefix(ns);
		printf("%s/%s\tgroup\t%zu snapshots\towner %s\n", type, groups[i].id, finished,
		       owner ? owner : "-");
		free(owner);
		free(snaps);
	}
	ds_groups_free(groups, n);
	/* As PBS, the mount and verify: no namespace deeper than 7 levels or
	 * longer than 256 characters is listed. Such a directory can only
	 * be made by hand; its name cannot even be given back to ls. */
	if (*ns && (ds_name_namespace(ns, &depth) < 0 || depth >= DS_MAX_NAMESPACE_DEPTH))
		return 0;
	r = ds_list_namespaces(lk, ns, &children);
	if (r < 0)
		return r;
	for (size_t i = 0; i < children.n && r == 0; i++) {
		char sub[DS_MAX_NAMESPACE_LEN + 1];

		if ((size_t)snprintf(sub, sizeof(sub), "%s%s%s", ns, *ns ? "/" : "",
				     children.v[i]) >= sizeof(sub))
			continue;
		print_ns_prefix(sub);
		printf("\tnamespace\n");
		if (recursive)
			r = list_namespace(lk, sub, true);
	}
	ds_strv_free(&children);
	return r;
}

static int list_group(const struct ds_lookup *lk, const char *ns, const char *type, const char *id)
{
	struct ds_snapshot *snaps = NULL;
	size_t n = 0;
	int r;

	r = ds_list_snapshots(lk, ns, type, id, &snaps, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		print_ns_prefix(ns);
		printf("%s/%s/%s\tsnapshot\t%s%s\n", type, id, snaps[i].time,
		       snaps[i].finished ? "finished" : "unfinished",
		       snaps[i].protected ? "\tprotected" : "");
	}
	free(snaps);
	return 0;
}

/* Logical size of an archive: the manifest's size for indexes, the decoded
 * size for a blob (when it can be decoded). An archive the manifest does not
 * list is marked "unlisted" (a mount with the key of a signed manifest does
 * not show it), but for the manifest itself and client.log.blob, which PBS
 * never lists. */
static void print_archive(int snapfd, const char *name, const struct ds_manifest_file *mf)
{
	int kind = ds_archive_kind(name);
	bool unlisted = !mf && strcmp(name, DS_MANIFEST_NAME) != 0 &&
			strcmp(name, DS_CLIENT_LOG_NAME) != 0;
	const char *mode = mf ? ds_crypt_mode_name(mf->crypt_mode) : unlisted ? "unlisted" : "-";

	if (kind == DS_ARCHIVE_BLOB) {
		uint8_t *raw = NULL, *data = NULL;
		size_t raw_len = 0, len = 0;
		int type = -1;

		if (ds_read_file_at(snapfd, name, DS_MAX_BLOB_SIZE + 64, &raw, &raw_len) == 0)
			type = ds_blob_type(raw, raw_len);
		if (type >= 0 && ds_blob_type_encrypted(type)) {
			printf("%s\tblob\t%zu\t%s\n", name, raw_len, unlisted ? mode : "encrypt");
		} else if (type >= 0 &&
			   ds_blob_decode(raw, raw_len, NULL, DS_MAX_BLOB_SIZE, &data, &len) == 0) {
			printf("%s\tblob\t%zu\t%s\n", name, len, mode);
		} else {
			printf("%s\tblob\t?\tdamaged\n", name);
		}
		free(raw);
		free(data);
		return;
	}
	if (mf) {
		printf("%s\t%s\t%llu\t%s\n", name, kind == DS_ARCHIVE_FIDX ? "fidx" : "didx",
		       (unsigned long long)mf->size, mode);
	} else {
		struct ds_index *idx;

		if (ds_index_open(snapfd, name, &idx) == 0) {
			printf("%s\t%s\t%llu\tunlisted\n", name, kind == DS_ARCHIVE_FIDX ? "fidx" : "didx",
			       (unsigned long long)ds_index_size(idx));
			ds_index_free(idx);
		} else {
			printf("%s\tindex\t?\tdamaged\n", name);
		}
	}
}

/* Archives the manifest lists that the snapshot does not hold (removed
 * by hand, lost with a disk): "missing", with the manifest's size. Names
 * that are no archive names are left to verify, which reports them. */
static void print_missing(const struct ds_manifest *m, const struct ds_strv *files)
{
	static const char *const kinds[] = { [DS_ARCHIVE_BLOB] = "blob",
					     [DS_ARCHIVE_FIDX] = "fidx",
					     [DS_ARCHIVE_DIDX] = "didx" };
	size_t n = m ? ds_manifest_file_count(m) : 0;

	for (size_t i = 0; i < n; i++) {
		struct ds_manifest_file mf;
		bool present = false;

		if (ds_manifest_file(m, i, &mf) < 0 || ds_name_archive(mf.filename) < 0)
			continue;
		for (size_t j = 0; j < files->n && !present; j++)
			present = strcmp(files->v[j], mf.filename) == 0;
		if (!present)
			printf("%s\t%s\t%llu\tmissing\n", mf.filename,
			       kinds[ds_archive_kind(mf.filename)], (unsigned long long)mf.size);
	}
}

static int list_snapshot(const struct ds_lookup *lk, const char *snaprel)
{
	struct ds_manifest *m = NULL;
	struct ds_strv files = { 0 };
	bool prot = false, missing;
	int fd, r;

	r = ds_list_snapshot_files(lk, snaprel, &files, &prot);
	if (r < 0)
		return r;
	fd = ds_open_snapshot(lk, snaprel);
	if (fd < 0) {
		ds_strv_free(&files);
		return fd;
	}
	r = ds_manifest_load(fd, &m);
	missing = r == -ENOENT;
	if (r < 0 && !missing)
		fprintf(stderr, "dsfs: %s: manifest unreadable: %s\n", snaprel, strerror(-r));
	for (size_t i = 0; i < files.n; i++) {
		struct ds_manifest_file mf;
		bool listed = m && ds_manifest_find(m, files.v[i], &mf) == 0;

		print_archive(fd, files.v[i], listed ? &mf : NULL);
	}
	print_missing(m, &files);
	if (prot)
		printf(".protected\tmarker\n");
	if (m && ds_manifest_notes(m)) {
		const char *notes = ds_manifest_notes(m);
		const char *nl = strchr(notes, '\n');

		printf("notes\t%.*s\n", nl ? (int)(nl - notes) : (int)strlen(notes), notes);
	}
	/* A damaged manifest is listed as a damaged index.json.blob above:
	 * the snapshot is finished (its group says so too, as PBS does). */
	if (missing)
		printf("(unfinished: no manifest)\n");
	ds_manifest_free(m);
	ds_strv_free(&files);
	close(fd);
	return 0;
}

int cmd_ls(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *config = NULL, *path;
	struct cli_store s;
	struct ds_lookup *lk = NULL;
	struct cli_path cp;
	int c, r;

	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'h':
			puts("Usage: dsfs ls [--config FILE] DATASTORE [PATH]\n"
			     "PATH: ns/NS[/ns/NS...] | [ns/NS/]TYPE/ID | [ns/NS/]TYPE/ID/TIME");
			return DS_EXIT_OK;
		default:
			return DS_EXIT_USAGE;
		}
	}
	if (optind >= argc || argc - optind > 2) {
		fputs("Usage: dsfs ls [--config FILE] DATASTORE [PATH]\n", stderr);
		return DS_EXIT_USAGE;
	}
	path = argc - optind == 2 ? argv[optind + 1] : "";
	/* Only a path that is wrong is a usage error: any -EINVAL of the
	 * listing was status 2 too, and a wrong path of a missing datastore
	 * was 1. */
	if (cli_parse_path(path, &cp) < 0)
		return DS_EXIT_USAGE;
	path = cp.text;
	if (cli_store_open(argv[optind], config, &s) < 0)
		return DS_EXIT_FAIL;
	r = ds_lookup_acquire(s.ds, &lk);
	if (r < 0)
		goto out;
	switch (cp.kind) {
	case CLI_PATH_ROOT:
		r = list_namespace(lk, "", true);
		break;
	case CLI_PATH_SNAPSHOT:
		r = list_snapshot(lk, cp.rel);
		break;
	case CLI_PATH_GROUP:
		r = list_group(lk, cp.ns, cp.type, cp.id);
		break;
	case CLI_PATH_NS:
		r = list_namespace(lk, cp.ns, false);
		break;
	}
out:
	/* A lookup handle's refusal is not logged: the errno alone ("No such
	 * device or address") does not say why. */
	ds_datastore_log_read_refusal(s.ds, r);
	if (r < 0)
		fprintf(stderr, "dsfs: %s%s%s: %s\n", argv[optind], *path ? "/" : "", path,
			strerror(-r));
	ds_lookup_release(lk);
	cli_store_close(&s);
	return r < 0 ? DS_EXIT_FAIL : DS_EXIT_OK;
}
