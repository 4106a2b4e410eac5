/* dsfs verify: every manifest, index and chunk, as PBS's verify does. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/cli/cli.h"
#include "store/blob.h"
#include "store/crypt.h"
#include "store/datastore.h"
#include "store/hierarchy.h"
#include "store/index.h"
#include "store/locks.h"
#include "store/log.h"
#include "store/manifest.h"
#include "store/names.h"
#include "store/util.h"

/* Digests already checked in this run, good or bad: each chunk is read once
 * however many snapshots share it (PBS verify keeps the same two sets). */
struct digest_set {
	struct ds_digest *slots;
	uint8_t *state; /* 0 empty, 1 good, 2 bad */
	size_t cap, n;
};

static size_t slot_of(const struct digest_set *s, const struct ds_digest *d)
{
	uint64_t h;

	memcpy(&h, d->b, sizeof(h)); /* digests are uniformly distributed */
	for (size_t i = h & (s->cap - 1);; i = (i + 1) & (s->cap - 1))
		if (!s->state[i] || ds_digest_eq(&s->slots[i], d))
			return i;
}

static int set_get(const struct digest_set *s, const struct ds_digest *d)
{
	return s->cap ? s->state[slot_of(s, d)] : 0;
}

static int set_put(struct digest_set *s, const struct ds_digest *d, uint8_t state)
{
	if ((s->n + 1) * 2 > s->cap) {
		struct digest_set g = { .cap = s->cap ? s->cap * 2 : 1024 };

		g.slots = malloc(g.cap * sizeof(*g.slots));
		g.state = calloc(g.cap, 1);
		if (!g.slots || !g.state) {
			free(g.slots);
			free(g.state);
			return -ENOMEM;
		}
		for (size_t i = 0; i < s->cap; i++)
			if (s->state[i]) {
				size_t j = slot_of(&g, &s->slots[i]);

				g.slots[j] = s->slots[i];
				g.state[j] = s->state[i];
				g.n++;
			}
		free(s->slots);
		free(s->state);
		*s = g;
	}
	size_t i = slot_of(s, d);

	if (!s->state[i])
		s->n++;
	s->slots[i] = *d;
	s->state[i] = state;
	return 0;
}

struct verify {
	const struct ds_reader *rd;
	const struct ds_crypt *key;   /* --keyfile */
	const struct ds_crypt *crypt; /* for the current snapshot: key, or NULL */
	struct digest_set chunks;
	uint8_t *buf;
	bool progress;
	bool lock_warned; /* the snapshot locks could not be taken */
	size_t snap_i, snap_n;
	uint64_t n_snapshots, n_archives, n_chunks, chunk_bytes, errors, skipped;
	int fatal; /* -ENOMEM: the run stops (status 1); no damage */
};

static void problem(struct verify *v, const char *snap, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void problem(struct verify *v, const char *snap, const char *what, const char *fmt, ...)
{
	va_list ap;

	if (v->progress)
		fputs("\r\033[K", stderr);
	fprintf(stderr, "dsfs: verify: %s/%s: ", snap, what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	v->errors++;
}

/* A snapshot PBS's verify skips without counting an error. */
static void skipped(struct verify *v, const char *snap, const char *why)
{
	if (v->progress)
		fputs("\r\033[K", stderr);
	fprintf(stderr, "dsfs: verify: %s: skipped: %s\n", snap, why);
	v->skipped++;
}

/* On a terminal, the store's own messages (a chunk file missing or
 * unreadable, a lock file that cannot be chowned) clear the progress line
 * first, as problem() does, instead of being appended to it. */
static void progress_log_sink(enum ds_log_level level, const char *msg, void *userdata)
{
	(void)userdata;
	fprintf(stderr, "\r\033[Kdsfs: %s: %s\n", ds_log_level_name(level), msg);
}

static void show_progress(struct verify *v)
{
	if (v->progress)
		fprintf(stderr, "\r\033[Ksnapshot %zu/%zu, %llu chunks checked", v->snap_i, v->snap_n,
			(unsigned long long)v->n_chunks);
}

/* Checks one chunk against the index's crypt mode. 0 good, <0 bad. */
static int check_chunk(struct verify *v, const struct ds_index_chunk *ch, bool encrypted,
		       const char **ret_why)
{
	struct ds_digest got;
	uint8_t *raw;
	size_t raw_len, len;
	int type, r;

	r = ds_reader_read_raw_chunk(v->rd, &ch->digest, &raw, &raw_len);
	if (r < 0) {
		*ret_why = r == -ENOENT ? "missing" : "unreadable";
		return r;
	}
	type = ds_blob_type(raw, raw_len);
	if (type < 0 || ds_blob_verify_crc(raw, raw_len) < 0) {
		*ret_why = "corrupt (bad magic or CRC)";
		r = -EBADMSG;
	} else if (ds_blob_type_encrypted(type) != encrypted) {
		*ret_why = "crypt mode does not match the index";
		r = -EBADMSG;
	} else if (encrypted && !v->crypt) {
		r = 0; /* without the key, the CRC is all that can be checked */
	} else if (ds_blob_decode_into(raw, raw_len, v->crypt, v->buf, DS_MAX_CHUNK_SIZE, &len) < 0) {
		*ret_why = "cannot be decoded";
		r = -EBADMSG;
	} else {
		ds_crypt_digest(encrypted ? v->crypt : NULL, v->buf, len, &got);
		if (!ds_digest_eq(&got, &ch->digest)) {
			*ret_why = "digest mismatch";
			r = -EBADMSG;
		} else if (len != ch->end - ch->start) {
			*ret_why = "length does not match the index";
			r = -EBADMSG;
		}
	}
	free(raw);
	v->chunk_bytes += raw_len;
	return r;
}

static void verify_index(struct verify *v, int snapfd, const char *snap,
			 const struct ds_manifest_file *mf)
{
	char hex[65];
	struct ds_index *idx;
	struct ds_digest csum;
	bool encrypted = mf->crypt_mode == DS_CRYPT_ENCRYPT;
	bool fixed;
	int r;

	r = ds_index_open(snapfd, mf->filename, &idx);
	if (r < 0) {
		problem(v, snap, mf->filename, "cannot open index: %s", strerror(-r));
		return;
	}
	/* PBS opens a .fidx with its fixed reader and a .didx with its
	 * dynamic one, each refusing the other's magic: an index of the other
	 * kind cannot be restored, whatever its checksum. */
	fixed = ds_index_kind(idx) == DS_INDEX_FIXED;
	if (fixed != (ds_archive_kind(mf->filename) == DS_ARCHIVE_FIDX))
		problem(v, snap, mf->filename, "a %s index, not the %s index its name says",
			fixed ? "fixed" : "dynamic", fixed ? "dynamic" : "fixed");
	ds_index_compute_csum(idx, &csum);
	if (!ds_digest_eq(&csum, &mf->csum))
		problem(v, snap, mf->filename, "index checksum does not match the manifest");
	if (ds_index_size(idx) != mf->size)
		problem(v, snap, mf->filename, "size %llu, manifest says %llu",
			(unsigned long long)ds_index_size(idx), (unsigned long long)mf->size);
	for (size_t i = 0; i < ds_index_count(idx); i++) {
		struct ds_index_chunk ch;
		const char *why = "marked bad earlier in this run";
		int state;

		ds_index_chunk(idx, i, &ch);
		state = set_get(&v->chunks, &ch.digest);
		if (state == 0) {
			r = check_chunk(v, &ch, encrypted, &why);
			state = r < 0 ? 2 : 1;
			/* Running out of memory says nothing of the chunk (it
			 * was marked bad: status 3 for a good store); the run
			 * stops instead, status 1. */
			if (r == -ENOMEM || set_put(&v->chunks, &ch.digest, (uint8_t)state) < 0) {
				v->fatal = -ENOMEM;
				break;
			}
			v->n_chunks++;
			if ((v->n_chunks & 63) == 0)
				show_progress(v);
		}
		if (state == 2) {
			ds_digest_to_hex(&ch.digest, hex);
			problem(v, snap, mf->filename, "chunk %zu (%s, bytes %llu..%llu): %s", i, hex,
				(unsigned long long)ch.start, (unsigned long long)ch.end, why);
		}
	}
	ds_index_free(idx);
}

static void verify_blob(struct verify *v, int snapfd, const char *snap,
			const struct ds_manifest_file *mf)
{
	struct ds_digest csum;
	uint8_t *raw, *plain = NULL;
	size_t len, plain_len;
	int r;

	r = ds_read_file_at(snapfd, mf->filename, DS_MAX_BLOB_SIZE + DS_BLOB_ENC_HEADER_LEN, &raw,
			    &len);
	if (r == -ENOMEM) {
		v->fatal = r;
		return;
	}
	if (r < 0) {
		problem(v, snap, mf->filename, "cannot read: %s", strerror(-r));
		return;
	}
	ds_sha256(raw, len, &csum);
	if (len != mf->size || !ds_digest_eq(&csum, &mf->csum))
		problem(v, snap, mf->filename, "size or checksum does not match the manifest");
	else if (ds_blob_verify_crc(raw, len) < 0)
		problem(v, snap, mf->filename, "corrupt blob (bad magic or CRC)");
	/* PBS's verify_blob decodes an unencrypted blob too: a payload that
	 * matches the manifest yet does not decompress is damaged. */
	else if (!ds_blob_type_encrypted(ds_blob_type(raw, len)) &&
		 (r = ds_blob_decode(raw, len, NULL, DS_MAX_BLOB_SIZE, &plain, &plain_len)) < 0)
		problem(v, snap, mf->filename, "blob cannot be decoded: %s", strerror(-r));
	free(plain);
	free(raw);
}

/* Takes snaprel's snapshot lock shared, as PBS's verify does, so that
 * neither PBS's prune nor a dsfs rmdir removes it while it is checked.
 * 0 locked, or go on with the directory lock alone (lock files that cannot
 * be made, warned once), *ret set either way for ds_lock_release; -ENOENT
 * the snapshot is gone, -EBUSY someone holds it exclusively: a backup
 * writing it, or its removal. */
static int lock_snapshot(struct verify *v, const char *snaprel, struct ds_lock **ret)
{
	const struct ds_lookup *lk = ds_reader_lookup(v->rd);
	int basefd, r;

	*ret = NULL;
	basefd = ds_lookup_open_dir(lk, "");
	if (basefd < 0)
		return basefd;
	r = ds_lock_snapshot(basefd, ds_lookup_store(lk), snaprel, false, ret);
	/* -ENOENT may also come from the lock file's directory: only a
	 * snapshot directory that is gone means the snapshot is. */
	if (r == -ENOENT && faccessat(basefd, snaprel, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		r = -EIO;
	if (r == 0 || r == -ENOENT || r == -EBUSY)
		goto out;
	/* Lock files that cannot be made (no write access to /run as another
	 * user, a read-only /run) do not stop a check, as for the mount. The
	 * directory is still locked: dsfs's writers and an old-locking PBS
	 * lock it too, and without it their backups in progress looked
	 * abandoned. */
	if (!v->lock_warned) {
		if (v->progress)
			fputs("\r\033[K", stderr);
		fprintf(stderr, "dsfs: verify: cannot take snapshot locks (%s): verifying with "
				"the directory locks only\n",
			strerror(-r));
		v->lock_warned = true;
	}
	r = ds_lock_snapshot_dir(basefd, snaprel, false, ret);
	if (r < 0 && r != -ENOENT && r != -EBUSY)
		r = 0; /* not even that: go on unlocked */
out:
	close(basefd);
	return r;
}

static void verify_snapshot(struct verify *v, const char *snaprel)
{
	const struct ds_lookup *lk = ds_reader_lookup(v->rd);
	bool other = false;
	struct ds_manifest *m = NULL;
	struct ds_lock *lock = NULL;
	const char *fp;
	int fd, r;

	v->snap_i++;
	show_progress(v);
	/* As PBS's verify_backup_dir: a snapshot removed since it was listed,
	 * or locked by a backup still writing it or by its removal, is
	 * skipped, not an error. */
	r = lock_snapshot(v, snaprel, &lock);
	if (r == -ENOENT || r == -EBUSY) {
		skipped(v, snaprel, r == -ENOENT ? "snapshot does not exist (anymore)"
						 : "locked by another operation (a backup "
						   "writing it or its removal)");
		return;
	}
	fd = ds_open_snapshot(lk, snaprel);
	if (fd == -ENOENT) {
		/* Only without the lock: someone who does not take it. */
		skipped(v, snaprel, "snapshot does not exist (anymore)");
		goto out;
	}
	if (fd < 0) {
		problem(v, snaprel, "", "cannot open: %s", strerror(-fd));
		goto out;
	}
	r = ds_manifest_load(fd, &m);
	if (r == -ENOENT) {
		/* A backup in progress holds the lock (skipped above); an
		 * unfinished snapshot whose lock is free is an abandoned or
		 * failed backup, which PBS's verify fails ("manifest load
		 * error"). */
		problem(v, snaprel, DS_MANIFEST_NAME,
			"missing: unfinished snapshot that no backup is writing");
		close(fd);
		goto out;
	}
	if (r < 0) {
		problem(v, snaprel, DS_MANIFEST_NAME, "cannot load manifest: %s", strerror(-r));
		close(fd);
		goto out;
	}
	v->n_snapshots++;
	v->crypt = v->key;
	fp = ds_manifest_fingerprint(m);
	if (v->key && fp) {
		struct ds_digest stored, ours;

		/* Read as PBS reads it, colons dropped and either case. One
		 * that is no fingerprint at all fails the signature below. */
		ds_crypt_fingerprint(v->key, &ours);
		other = ds_fingerprint_parse(fp, &stored) == 0 &&
			memcmp(stored.b, ours.b, sizeof(ours.b)) != 0;
	}
	if (other) {
		/* Another client's key: its chunks cannot be decrypted with
		 * this one, which does not make them damaged. They are checked
		 * as without a key; the mismatch itself is reported, since the
		 * fingerprint is unprotected and could hide an altered
		 * manifest. */
		problem(v, snaprel, DS_MANIFEST_NAME,
			"signed with key %s, not the given one: not checked against it "
			"(encrypted chunks: CRC only)", fp);
		v->crypt = NULL;
	} else if (v->key && ds_manifest_signature(m) && ds_manifest_verify(m, v->key) < 0) {
		/* Named no key (older clients wrote no fingerprint), the
		 * signature is what tells: another key's chunks do not
		 * decrypt with this one, which makes none of them damaged. */
		problem(v, snaprel, DS_MANIFEST_NAME, "signature mismatch%s",
			fp ? "" : ": signed with another key, or altered (encrypted chunks: CRC only)");
		if (!fp)
			v->crypt = NULL;
	}
	for (size_t i = 0; i < ds_manifest_file_count(m) && !v->fatal; i++) {
		struct ds_manifest_file mf;

		ds_manifest_file(m, i, &mf);
		v->n_archives++;
		/* Only names PBS's upload API takes (SAFE_ID): "../x.blob" or
		 * "/x.blob" would have verify read, and pass, a file outside
		 * the snapshot on the manifest's word. */
		if (ds_name_archive(mf.filename) < 0)
			problem(v, snaprel, mf.filename, "not an archive name");
		else if (ds_archive_kind(mf.filename) == DS_ARCHIVE_BLOB)
			verify_blob(v, fd, snaprel, &mf);
		else
			verify_index(v, fd, snaprel, &mf);
	}
	ds_manifest_free(m);
	close(fd);
out:
	ds_lock_release(lock);
}

static int collect(struct verify *v, const char *ns, int depth, const char *type,
		   const char *id, struct ds_strv *out);

/* A namespace or group below the one asked for: a listing error there is
 * reported and the rest goes on, as PBS's verify logs a group it cannot
 * list and goes on. Only running out of memory stops. */
static int collect_below(struct verify *v, const char *ns, int depth, const char *type,
			 const char *id, struct ds_strv *out)
{
	int r = collect(v, ns, depth, type, id, out);

	if (r < 0 && r != -ENOMEM) {
		if (type)
			problem(v, *ns ? ns : ".", "", "%s/%s: cannot list: %s", type, id,
				strerror(-r));
		else
			problem(v, *ns ? ns : ".", "", "cannot list: %s", strerror(-r));
		r = 0;
	}
	return r;
}

/* Collects the snapshots under a namespace (depth components) or group
 * path, unfinished ones too: PBS's verify goes through every snapshot
 * directory and decides under the snapshot's lock (verify_snapshot). */
static int collect(struct verify *v, const char *ns, int depth, const char *type,
		   const char *id, struct ds_strv *out)
{
	const struct ds_lookup *lk = ds_reader_lookup(v->rd);
	struct ds_snapshot *snaps = NULL;
	size_t n = 0;
	int r;

	if (!type) {
		struct ds_group *groups = NULL;
		struct ds_strv children = { 0 };
		size_t gn = 0;

		r = ds_list_groups(lk, ns, &groups, &gn);
		for (size_t i = 0; r == 0 && i < gn; i++) {
			/* As PBS's verify_all_backups: the group of
			 * proxmox-backup-client benchmark's uploads is left
			 * out of a datastore or namespace run. */
			if (groups[i].type == DS_TYPE_HOST && strcmp(groups[i].id, "benchmark") == 0) {
				char rel[2048];

				if (ds_group_relpath(ns, "host", "benchmark", rel, sizeof(rel)) < 0)
					snprintf(rel, sizeof(rel), "host/benchmark");
				fprintf(stderr, "dsfs: verify: %s: skipped (benchmark uploads; name "
						"the group to verify it)\n", rel);
				continue;
			}
			r = collect_below(v, ns, depth, ds_backup_type_name(groups[i].type),
					  groups[i].id, out);
		}
		ds_groups_free(groups, gn);
		/* PBS lists namespaces no deeper than 7 levels. */
		if (r == 0 && depth < DS_MAX_NAMESPACE_DEPTH)
			r = ds_list_namespaces(lk, ns, &children);
		for (size_t i = 0; r == 0 && i < children.n; i++) {
			char sub[DS_MAX_NAMESPACE_LEN + 1];

			if ((size_t)snprintf(sub, sizeof(sub), "%s%s%s", ns, *ns ? "/" : "",
					     children.v[i]) >= sizeof(sub)) {
				problem(v, *ns ? ns : ".", "", "ns/%.64s...: cannot list: %s",
					children.v[i], "namespace longer than 256 characters");
				continue;
			}
			r = collect_below(v, sub, depth + 1, NULL, NULL, out);
		}
		ds_strv_free(&children);
		return r;
	}
	r = ds_list_snapshots(lk, ns, type, id, &snaps, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		char rel[2048];
		char **nv;

		r = ds_snapshot_relpath(ns, type, id, snaps[i].time, rel, sizeof(rel));
		if (r < 0)
			break;
		nv = realloc(out->v, (out->n + 1) * sizeof(*nv));
		if (!nv || !(nv[out->n] = strdup(rel))) {
			if (nv)
				out->v = nv;
			r = -ENOMEM;
			break;
		}
		out->v = nv;
		out->n++;
	}
	free(snaps);
	return r;
}

/* A snapshot named on the command line must exist when the run starts;
 * only one that goes away later is skipped, as one listed from its group.
 * One that is not there fails the run (status 1), as a missing group or
 * namespace does: that is no damaged data. */
static int add_named(const struct ds_reader *rd, const char *rel, struct ds_strv *out)
{
	int fd = ds_open_snapshot(ds_reader_lookup(rd), rel);

	if (fd < 0)
		return fd;
	close(fd);
	out->v = malloc(sizeof(*out->v));
	if (!out->v || !(out->v[0] = strdup(rel)))
		return -ENOMEM;
	out->n = 1;
	return 0;
}

int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "keyfile", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *config = NULL, *keyfile = NULL, *path = "";
	struct cli_path cp;
	struct verify v = { 0 };
	struct ds_crypt *crypt = NULL;
	struct ds_reader *rd = NULL;
	struct cli_store s = { 0 };
	struct ds_strv snaps = { 0 };
	char skip[80] = "";
	int c, r;

	while ((c = getopt_long(argc, argv, "c:k:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'k':
			keyfile = optarg;
			break;
		case 'h':
			puts("Usage: dsfs verify [--config FILE] [--keyfile KEY] DATASTORE [PATH]\n"
			     "Exit status 3 when any chunk, index, blob or manifest is damaged.");
			return DS_EXIT_OK;
		default:
			return DS_EXIT_USAGE;
		}
	}
	if (optind >= argc || argc - optind > 2) {
		fputs("Usage: dsfs verify [--keyfile KEY] DATASTORE [PATH]\n", stderr);
		return DS_EXIT_USAGE;
	}
	if (argc - optind == 2)
		path = argv[optind + 1];
	if (cli_parse_path(path, &cp) < 0)
		return DS_EXIT_USAGE;
	path = cp.text;
	if (keyfile && cli_load_key(keyfile, &crypt) < 0)
		return DS_EXIT_FAIL;
	r = cli_store_open(argv[optind], config, &s);
	if (r < 0)
		goto out;
	r = ds_reader_acquire(s.ds, &rd);
	if (r < 0) {
		fprintf(stderr, "dsfs: %s: %s\n", argv[optind], strerror(-r));
		goto out;
	}
	v.rd = rd;
	v.key = crypt;
	v.progress = isatty(STDERR_FILENO);
	if (v.progress)
		ds_log_set_sink(progress_log_sink, NULL);
	v.buf = malloc(DS_MAX_CHUNK_SIZE);
	if (!v.buf) {
		r = -ENOMEM;
		goto out;
	}
	switch (cp.kind) {
	case CLI_PATH_ROOT:
		r = collect(&v, "", 0, NULL, NULL, &snaps);
		break;
	case CLI_PATH_SNAPSHOT:
		r = add_named(rd, cp.rel, &snaps);
		break;
	case CLI_PATH_GROUP:
		r = collect(&v, cp.ns, 0, cp.type, cp.id, &snaps);
		break;
	case CLI_PATH_NS:
		/* A namespace run, as PBS verifies a namespace: everything
		 * below it (no deeper than 7 levels in all), host/benchmark
		 * left out. A missing namespace fails here, as a missing
		 * group does (only what is below it is reported and
		 * skipped). */
		r = collect(&v, cp.ns, cp.depth, NULL, NULL, &snaps);
		break;
	}
	if (r < 0) {
		/* (the datastore itself when no path is given: the message
		 * began with an empty name, "dsfs: : Permission denied") */
		fprintf(stderr, "dsfs: %s: %s\n", *path ? path : argv[optind], strerror(-r));
		goto out;
	}
	v.snap_n = snaps.n;
	for (size_t i = 0; i < snaps.n && !v.fatal; i++)
		verify_snapshot(&v, snaps.v[i]);
	if (v.progress)
		fputs("\r\033[K", stderr);
	if (v.fatal) {
		r = v.fatal;
		fprintf(stderr, "dsfs: verify: %s: stopped after %llu chunks, the rest not checked\n",
			strerror(-r), (unsigned long long)v.n_chunks);
		goto out;
	}
	if (v.skipped)
		snprintf(skip, sizeof(skip), " (%llu skipped: removed, or locked by a backup or removal)",
			 (unsigned long long)v.skipped);
	printf("verified %llu snapshots, %llu archives, %llu chunks (%.1f MiB)%s: %llu errors\n",
	       (unsigned long long)v.n_snapshots, (unsigned long long)v.n_archives,
	       (unsigned long long)v.n_chunks, (double)v.chunk_bytes / DS_MIB, skip,
	       (unsigned long long)v.errors);
out:
	ds_log_set_sink(NULL, NULL);
	free(v.buf);
	free(v.chunks.slots);
	free(v.chunks.state);
	ds_strv_free(&snaps);
	ds_reader_release(rd);
	cli_store_close(&s);
	ds_crypt_free(crypt);
	if (r < 0)
		return DS_EXIT_FAIL;
	return v.errors ? DS_EXIT_DAMAGED : DS_EXIT_OK;
}
