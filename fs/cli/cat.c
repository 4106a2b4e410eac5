/* dsfs cat: an archive's decoded content to stdout. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/cli/cli.h"
#include "store/blob.h"
#include "store/crypt.h"
#include "store/datastore.h"
#include "store/hierarchy.h"
#include "store/index.h"
#include "store/manifest.h"
#include "store/names.h"
#include "store/util.h"

/* Server file name for a name given with or without its extension. */
static int server_name(const char *archive, char *out, size_t outlen)
{
	if (ds_archive_kind(archive) > 0)
		return ds_path_fmt(out, outlen, "%s", archive);
	return ds_archive_server_name(archive, out, outlen);
}

static int cat_blob(int snapfd, const char *name, const struct ds_manifest_file *mf,
		    const struct ds_crypt *c)
{
	uint8_t *raw, *data = NULL;
	size_t raw_len, len;
	int r;

	r = ds_read_file_at(snapfd, name, DS_MAX_BLOB_SIZE + DS_BLOB_ENC_HEADER_LEN, &raw, &raw_len);
	if (r < 0)
		return r;
	if (mf) {
		struct ds_digest csum;

		ds_sha256(raw, raw_len, &csum);
		if (raw_len != mf->size || !ds_digest_eq(&csum, &mf->csum)) {
			fprintf(stderr, "dsfs: %s: blob does not match the manifest\n", name);
			r = -EBADMSG;
			goto out;
		}
	}
	r = ds_blob_decode(raw, raw_len, c, DS_MAX_BLOB_SIZE, &data, &len);
	if (r == -EBADMSG || r == -EFBIG) {
		/* The decoder leaves naming the blob to its caller; a blob
		 * the manifest does not list (client.log.blob) gets here
		 * unchecked. */
		int type = ds_blob_type(raw, raw_len);

		if (r == -EFBIG)
			fprintf(stderr, "dsfs: %s: damaged blob: decodes to more than %zu bytes\n",
				name, (size_t)DS_MAX_BLOB_SIZE);
		else if (ds_blob_verify_crc(raw, raw_len) < 0)
			fprintf(stderr, "dsfs: %s: damaged blob: %s\n", name,
				type < 0 ? "not a blob (unknown magic, or too short)" : "CRC mismatch");
		else if (c && ds_blob_type_encrypted(type))
			fprintf(stderr, "dsfs: %s: cannot be decrypted: damaged, or another key's\n",
				name);
		else
			fprintf(stderr, "dsfs: %s: damaged blob: cannot decode\n", name);
		r = -EBADMSG;
	}
	if (r == 0)
		r = ds_write_all(STDOUT_FILENO, data, len);
out:
	free(raw);
	free(data);
	return r;
}

/* Whether stdout is a regular file that this output may leave holes in: no
 * O_APPEND (a write would go to the end, not after the hole), and written at
 * its end, so that what is skipped is past the end and reads as zeros. */
static bool sparse_output(void)
{
	struct stat st;
	off_t at;
	int fl = fcntl(STDOUT_FILENO, F_GETFL);

	if (fl < 0 || (fl & O_APPEND) || fstat(STDOUT_FILENO, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	at = lseek(STDOUT_FILENO, 0, SEEK_CUR);
	return at >= 0 && at == st.st_size;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

/* *said: the error returned was reported already. Into a regular file, a
 * chunk of zeros is a hole (as cp --sparse=auto leaves it), the file's size
 * set at the end. */
static int cat_index(const struct ds_reader *rd, int snapfd, const char *name,
		     const struct ds_manifest_file *mf, const struct ds_crypt *c, bool *said)
{
	struct ds_index *idx;
	uint8_t *buf = NULL;
	bool sparse, hole = false;
	int r;

	r = ds_index_open(snapfd, name, &idx);
	if (r < 0)
		return r;
	if (mf) {
		struct ds_digest csum;

		ds_index_compute_csum(idx, &csum);
		if (ds_index_size(idx) != mf->size || !ds_digest_eq(&csum, &mf->csum)) {
			fprintf(stderr, "dsfs: %s: index does not match the manifest\n", name);
			r = -EBADMSG;
			goto out;
		}
	}
	buf = malloc(DS_MAX_CHUNK_SIZE);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	sparse = sparse_output();
	for (size_t i = 0; i < ds_index_count(idx); i++) {
		struct ds_index_chunk ch;
		size_t len;

		ds_index_chunk(idx, i, &ch);
		r = ds_reader_load_chunk(rd, &ch.digest, c, ch.end - ch.start, buf, DS_MAX_CHUNK_SIZE,
					 &len);
		if (r < 0) {
			fprintf(stderr, "dsfs: %s: bytes %llu..%llu unreadable: %s\n", name,
				(unsigned long long)ch.start, (unsigned long long)ch.end,
				strerror(-r));
			*said = true;
			goto out;
		}
		if (sparse && all_zero(buf, len)) {
			if (lseek(STDOUT_FILENO, (off_t)len, SEEK_CUR) < 0) {
				r = -errno;
				goto out;
			}
			hole = true;
			continue;
		}
		hole = false;
		r = ds_write_all(STDOUT_FILENO, buf, len);
		if (r < 0)
			goto out;
	}
	if (hole) {
		off_t end = lseek(STDOUT_FILENO, 0, SEEK_CUR);

		if (end < 0 || ftruncate(STDOUT_FILENO, end) < 0)
			r = -errno;
	}
out:
	free(buf);
	ds_index_free(idx);
	return r;
}

int cmd_cat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "keyfile", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *config = NULL, *keyfile = NULL;
	char ns[257], type[8], id[256], time[21], rel[2048], name[300];
	struct ds_crypt *crypt = NULL;
	struct ds_manifest *m = NULL;
	struct ds_manifest_file mf;
	struct ds_reader *rd = NULL;
	struct cli_store s = { 0 };
	bool listed = false, said = false;
	int c, fd = -1, r;

	while ((c = getopt_long(argc, argv, "c:k:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'k':
			keyfile = optarg;
			break;
		case 'h':
			puts("Usage: dsfs cat [--config FILE] [--keyfile KEY] DATASTORE SNAPSHOT ARCHIVE\n"
			     "SNAPSHOT: [ns/NS/]TYPE/ID/TIME; ARCHIVE with or without .fidx/.didx/.blob");
			return DS_EXIT_OK;
		default:
			return DS_EXIT_USAGE;
		}
	}
	if (argc - optind != 3) {
		fputs("Usage: dsfs cat [--keyfile KEY] DATASTORE SNAPSHOT ARCHIVE\n", stderr);
		return DS_EXIT_USAGE;
	}
	if (ds_parse_snapshot_path(argv[optind + 1], true, ns, type, id, time) < 0 ||
	    ds_snapshot_relpath(ns, type, id, time, rel, sizeof(rel)) < 0) {
		fprintf(stderr, "dsfs: %s: not a snapshot path\n", argv[optind + 1]);
		return DS_EXIT_USAGE;
	}
	if (server_name(argv[optind + 2], name, sizeof(name)) < 0 || ds_name_archive(name) < 0) {
		fprintf(stderr, "dsfs: %s: not an archive name\n", argv[optind + 2]);
		return DS_EXIT_USAGE;
	}
	if (keyfile && cli_load_key(keyfile, &crypt) < 0)
		return DS_EXIT_FAIL;
	r = cli_store_open(argv[optind], config, &s);
	if (r < 0) {
		said = true; /* it says why, and the archive was never looked at */
		goto out;
	}
	r = ds_reader_acquire(s.ds, &rd);
	if (r < 0)
		goto out;
	fd = ds_open_snapshot(ds_reader_lookup(rd), rel);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	r = ds_manifest_load(fd, &m);
	if (r < 0 && r != -ENOENT)
		goto out;
	if (m && crypt && ds_manifest_signature(m) && (r = ds_manifest_verify(m, crypt)) < 0) {
		fprintf(stderr, "dsfs: %s: manifest signature does not match the key\n", rel);
		goto out;
	}
	/* Verified above: such a manifest says which archives are the
	 * snapshot's, as PBS's client restores only those (the mount hides
	 * the others). */
	if (m && crypt && ds_manifest_signature(m) && !ds_manifest_covers(m, name)) {
		fprintf(stderr,
			"dsfs: %s/%s: not in the snapshot's signed manifest: not part of the "
			"snapshot\n",
			rel, name);
		r = -ENOENT;
		said = true;
		goto out;
	}
	listed = m && ds_manifest_find(m, name, &mf) == 0;
	if (ds_archive_kind(name) == DS_ARCHIVE_BLOB)
		r = cat_blob(fd, name, listed ? &mf : NULL, crypt);
	else
		r = cat_index(rd, fd, name, listed ? &mf : NULL, crypt, &said);
	if (r == -ENOKEY)
		fprintf(stderr, "dsfs: %s/%s is encrypted: give --keyfile\n", rel, name);
out:
	if (r < 0 && r != -ENOKEY && r != -EBADMSG && !said)
		fprintf(stderr, "dsfs: %s/%s: %s\n", rel, name, strerror(-r));
	if (fd >= 0)
		close(fd);
	ds_manifest_free(m);
	ds_reader_release(rd);
	cli_store_close(&s);
	ds_crypt_free(crypt);
	return r < 0 ? DS_EXIT_FAIL : DS_EXIT_OK;
}
