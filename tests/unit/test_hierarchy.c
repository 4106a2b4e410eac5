/* Suite for store/hierarchy: namespaces, groups, snapshots and files of the
 * fixture store against pbs-store-a.expect.json, path builders and the
 * path parser, listing rules on a hand-made store (spec §1.3–§1.6). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "store/config.h"
#include "store/datastore.h"
#include "store/hierarchy.h"
#include "store/util.h"
#include "testutil.h"

struct fx {
	char *base;
	struct ds_datastore *ds;
	struct ds_lookup *lk;
};

static void fx_open(struct fx *f, const char *base)
{
	f->base = strdup(base);
	assert_int_equal(ds_datastore_new("store1", base, &f->ds), 0);
	assert_int_equal(ds_lookup_acquire(f->ds, &f->lk), 0);
}

static void fx_close(struct fx *f)
{
	ds_lookup_release(f->lk);
	ds_datastore_free(f->ds);
	free(f->base);
}

static void fx_fixture(struct fx *f)
{
	char *base = tu_pathf("%s/pbs-store-a", tu_fixtures());

	fx_open(f, base);
	free(base);
}

/* Joins sv with "," for compact comparisons. */
static char *joined(const struct ds_strv *sv)
{
	char *out = strdup("");

	for (size_t i = 0; i < sv->n; i++) {
		char *n = tu_pathf("%s%s%s", out, i ? "," : "", sv->v[i]);

		free(out);
		out = n;
	}
	return out;
}

static void check_namespaces(const struct ds_lookup *lk, const char *ns, const char *want)
{
	struct ds_strv sv = { 0 };
	char *got;

	assert_int_equal(ds_list_namespaces(lk, ns, &sv), 0);
	got = joined(&sv);
	assert_string_equal(got, want);
	free(got);
	ds_strv_free(&sv);
}

static void test_fixture_namespaces(void **state)
{
	struct ds_strv sv = { 0 };
	struct fx f;

	(void)state;
	fx_fixture(&f);
	check_namespaces(f.lk, "", "prod");
	check_namespaces(f.lk, "prod", "db");
	check_namespaces(f.lk, "prod/db", "");
	assert_int_equal(ds_list_namespaces(f.lk, "nope", &sv), -ENOENT);
	assert_int_equal(ds_list_namespaces(f.lk, "prod/nope", &sv), -ENOENT);
	assert_int_equal(ds_list_namespaces(f.lk, "prod//db", &sv), -EINVAL);
	assert_int_equal(ds_list_namespaces(f.lk, "..", &sv), -EINVAL);
	fx_close(&f);
}

static json_t *load_expect(void)
{
	char *p = tu_pathf("%s/pbs-store-a.expect.json", tu_fixtures());
	json_error_t err;
	json_t *j = json_load_file(p, 0, &err);

	if (!j)
		fail_msg("%s: %s", p, err.text);
	free(p);
	return j;
}

/* The expect.json snapshot object for ns/type/id/time. */
static json_t *find_snapshot(json_t *expect, const char *ns, const char *type, const char *id,
			     const char *time)
{
	json_t *s;
	size_t i;

	json_array_foreach(json_object_get(expect, "snapshots"), i, s) {
		if (strcmp(json_string_value(json_object_get(s, "ns")), ns) == 0 &&
		    strcmp(json_string_value(json_object_get(s, "type")), type) == 0 &&
		    strcmp(json_string_value(json_object_get(s, "id")), id) == 0 &&
		    strcmp(json_string_value(json_object_get(s, "time")), time) == 0)
			return s;
	}
	fail_msg("snapshot %s %s/%s/%s not in expect.json", ns, type, id, time);
	return NULL;
}

/* Files on disk: the manifest's archives, index.json.blob and the client
 * log when there is one, sorted. */
static char *expected_files(json_t *snap)
{
	struct ds_strv sv = { 0 };
	json_t *a, *log = json_object_get(snap, "client_log");
	size_t i;
	char *out;

	sv.v = calloc(64, sizeof(char *));
	json_array_foreach(json_object_get(snap, "archives"), i, a)
		sv.v[sv.n++] = strdup(json_string_value(json_object_get(a, "name")));
	sv.v[sv.n++] = strdup("index.json.blob");
	if (log && !json_is_null(log))
		sv.v[sv.n++] = strdup("client.log.blob");
	for (size_t x = 0; x < sv.n; x++)
		for (size_t y = x + 1; y < sv.n; y++)
			if (strcmp(sv.v[x], sv.v[y]) > 0) {
				char *t = sv.v[x];

				sv.v[x] = sv.v[y];
				sv.v[y] = t;
			}
	out = joined(&sv);
	ds_strv_free(&sv);
	return out;
}

static void check_group(const struct ds_lookup *lk, json_t *expect, json_t *g,
			const struct ds_group *got)
{
	const char *ns = json_string_value(json_object_get(g, "ns"));
	const char *type = json_string_value(json_object_get(g, "type"));
	const char *id = json_string_value(json_object_get(g, "id"));
	json_t *times = json_object_get(g, "snapshots");
	struct ds_snapshot *snaps;
	size_t n;
	char *owner;

	assert_string_equal(ds_backup_type_name(got->type), type);
	assert_string_equal(got->id, id);
	assert_int_equal(ds_read_owner(lk, ns, type, id, &owner), 0);
	assert_string_equal(owner, json_string_value(json_object_get(g, "owner")));
	free(owner);

	assert_int_equal(ds_list_snapshots(lk, ns, type, id, &snaps, &n), 0);
	assert_int_equal(n, json_array_size(times));
	for (size_t i = 0; i < n; i++) {
		json_t *s = find_snapshot(expect, ns, type, id, snaps[i].time);
		struct ds_strv files = { 0 };
		char rel[1024], *want, *have;
		bool prot = !snaps[i].protected;

		assert_string_equal(snaps[i].time, json_string_value(json_array_get(times, i)));
		assert_int_equal(snaps[i].epoch, json_integer_value(json_object_get(s, "epoch")));
		assert_true(snaps[i].finished);
		assert_int_equal(snaps[i].protected,
				 json_is_true(json_object_get(s, "protected")));
		assert_int_equal(ds_snapshot_relpath(ns, type, id, snaps[i].time, rel,
						     sizeof(rel)), 0);
		assert_string_equal(rel, json_string_value(json_object_get(s, "path")));
		assert_int_equal(ds_list_snapshot_files(lk, rel, &files, &prot), 0);
		assert_int_equal(prot, snaps[i].protected);
		want = expected_files(s);
		have = joined(&files);
		assert_string_equal(have, want);
		free(want);
		free(have);
		ds_strv_free(&files);
	}
	free(snaps);
}

static void test_fixture_groups(void **state)
{
	static const char *const nss[] = { "", "prod", "prod/db" };
	json_t *expect = load_expect(), *g;
	unsigned checked = 0;
	struct fx f;

	(void)state;
	fx_fixture(&f);
	for (size_t k = 0; k < DS_ARRAY_SIZE(nss); k++) {
		struct ds_group *groups;
		size_t n, at = 0, i;

		assert_int_equal(ds_list_groups(f.lk, nss[k], &groups, &n), 0);
		/* expect.json lists the groups of each namespace in PBS order. */
		json_array_foreach(json_object_get(expect, "groups"), i, g) {
			if (strcmp(json_string_value(json_object_get(g, "ns")), nss[k]) != 0)
				continue;
			assert_true(at < n);
			check_group(f.lk, expect, g, &groups[at++]);
			checked++;
		}
		assert_int_equal(at, n);
		ds_groups_free(groups, n);
	}
	assert_int_equal(checked, 6);
	json_decref(expect);
	fx_close(&f);
}

static void test_fixture_details(void **state)
{
	struct ds_snapshot *snaps;
	struct ds_group *groups;
	struct ds_strv sv = { 0 };
	size_t n;
	char *owner;
	bool prot;
	int fd;
	struct fx f;

	(void)state;
	fx_fixture(&f);
	assert_int_equal(ds_list_snapshots(f.lk, "", "vm", "101", &snaps, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(snaps[1].time, "2024-03-03T08:02:17Z");
	assert_int_equal(snaps[1].epoch, 1709452937);
	assert_true(snaps[1].protected);
	assert_false(snaps[0].protected);
	assert_false(snaps[2].protected);
	free(snaps);
	assert_int_equal(ds_list_snapshot_files(f.lk, "vm/101/2024-03-03T08:02:17Z", &sv, &prot), 0);
	assert_true(prot);
	assert_int_equal(sv.n, 5);
	assert_string_equal(sv.v[0], "client.log.blob");
	assert_string_equal(sv.v[4], "qemu-server.conf.blob");
	ds_strv_free(&sv);
	assert_int_equal(ds_read_owner(f.lk, "", "host", "tundra-87", &owner), 0);
	assert_string_equal(owner, "backup@pbs!host-token");
	free(owner);

	assert_int_equal(ds_read_owner(f.lk, "", "vm", "999", &owner), -ENOENT);
	assert_int_equal(ds_list_snapshots(f.lk, "", "vm", "999", &snaps, &n), -ENOENT);
	assert_int_equal(ds_list_groups(f.lk, "nope", &groups, &n), -ENOENT);
	assert_int_equal(ds_list_snapshots(f.lk, "", "xx", "101", &snaps, &n), -EINVAL);
	assert_int_equal(ds_read_owner(f.lk, "", "vm", "..", &owner), -EINVAL);
	/* Snapshot paths from callers are checked before they are used. */
	assert_int_equal(ds_list_snapshot_files(f.lk, "../pbs-store-a/vm/101/2024-03-03T08:02:17Z",
						&sv, &prot), -EINVAL);
	assert_int_equal(ds_list_snapshot_files(f.lk, "vm/101", &sv, &prot), -EINVAL);
	assert_int_equal(ds_open_snapshot(f.lk, "vm/101/2024-03-03T08:02:17Z/.."), -EINVAL);
	assert_int_equal(ds_open_snapshot(f.lk, "vm/101/2024-03-05T08:02:17Z"), -ENOENT);
	fd = ds_open_snapshot(f.lk, "ns/prod/vm/201/2024-03-02T11:02:17Z");
	assert_true(fd >= 0);
	assert_int_equal(faccessat(fd, "index.json.blob", F_OK, 0), 0);
	close(fd);

	/* A lookup granted "from config only" refuses before any I/O. */
	{
		struct ds_datastore_cfg cfg = { .maintenance = DS_MAINT_OFFLINE };
		struct ds_lookup *lk;

		ds_datastore_configure(f.ds, &cfg);
		assert_int_equal(ds_lookup_acquire(f.ds, &lk), 0);
		assert_int_equal(ds_list_namespaces(lk, "", &sv), -ENXIO);
		assert_int_equal(ds_list_groups(lk, "", &groups, &n), -ENXIO);
		assert_int_equal(ds_list_snapshots(lk, "", "vm", "101", &snaps, &n), -ENXIO);
		assert_int_equal(ds_list_snapshot_files(lk, "vm/101/2024-03-03T08:02:17Z", &sv,
							&prot), -ENXIO);
		assert_int_equal(ds_read_owner(lk, "", "vm", "101", &owner), -ENXIO);
		assert_int_equal(ds_open_snapshot(lk, "vm/101/2024-03-03T08:02:17Z"), -ENXIO);
		ds_lookup_release(lk);
	}
	fx_close(&f);
}

static void check_ns_relpath(const char *ns, int ret, const char *want)
{
	char out[1024];

	assert_int_equal(ds_ns_relpath(ns, out, sizeof(out)), ret);
	if (ret == 0)
		assert_string_equal(out, want);
}

static void test_relpaths(void **state)
{
	char out[1024], small[8];

	(void)state;
	check_ns_relpath("", 0, "");
	check_ns_relpath("a", 0, "ns/a");
	check_ns_relpath("a/b", 0, "ns/a/ns/b");
	check_ns_relpath("a/b/c/d/e/f/g", 0, "ns/a/ns/b/ns/c/ns/d/ns/e/ns/f/ns/g");
	check_ns_relpath("a/b/c/d/e/f/g/h", -EINVAL, NULL); /* depth 8 */
	check_ns_relpath("..", -EINVAL, NULL);
	check_ns_relpath("a//b", -EINVAL, NULL);
	check_ns_relpath("/a", -EINVAL, NULL);
	check_ns_relpath("a/", -EINVAL, NULL);
	check_ns_relpath("a/../b", -EINVAL, NULL);
	assert_int_equal(ds_ns_relpath("abcdef", small, sizeof(small)), -ENAMETOOLONG);

	assert_int_equal(ds_group_relpath("prod", "vm", "201", out, sizeof(out)), 0);
	assert_string_equal(out, "ns/prod/vm/201");
	assert_int_equal(ds_group_relpath("", "host", "web.01", out, sizeof(out)), 0);
	assert_string_equal(out, "host/web.01");
	assert_int_equal(ds_group_relpath("", "xx", "1", out, sizeof(out)), -EINVAL);
	assert_int_equal(ds_group_relpath("", "vm", "..", out, sizeof(out)), -EINVAL);
	assert_int_equal(ds_group_relpath("", "vm", "a/b", out, sizeof(out)), -EINVAL);
	assert_int_equal(ds_group_relpath("", "vm", "", out, sizeof(out)), -EINVAL);
	assert_int_equal(ds_group_relpath("..", "vm", "1", out, sizeof(out)), -EINVAL);
	assert_int_equal(ds_snapshot_relpath("prod/db", "ct", "401", "2024-03-02T14:02:17Z", out,
					     sizeof(out)), 0);
	assert_string_equal(out, "ns/prod/ns/db/ct/401/2024-03-02T14:02:17Z");
	assert_int_equal(ds_snapshot_relpath("", "vm", "1", "2024-13-02T14:02:17Z", out,
					     sizeof(out)), -EINVAL);
	assert_int_equal(ds_snapshot_relpath("", "vm", "1", "2024-03-02T14:02:17+00:00", out,
					     sizeof(out)), -EINVAL);
	assert_int_equal(ds_snapshot_relpath("", "vm", "1", "..", out, sizeof(out)), -EINVAL);
	assert_int_equal(ds_snapshot_relpath("", "vm", "1", "2024-03-02T14:02:17Z", small,
					     sizeof(small)), -ENAMETOOLONG);
}

static void check_parse(const char *path, bool want_time, int ret, const char *ns,
			const char *type, const char *id, const char *time)
{
	char gns[257], gtype[8], gid[256], gtime[21];

	print_message("parse %s\n", path);
	assert_int_equal(ds_parse_snapshot_path(path, want_time, gns, gtype, gid, gtime), ret);
	if (ret < 0)
		return;
	assert_string_equal(gns, ns);
	assert_string_equal(gtype, type);
	assert_string_equal(gid, id);
	if (want_time)
		assert_string_equal(gtime, time);
}

static void test_parse_path(void **state)
{
	static const char t[] = "2024-03-02T11:02:17Z";

	(void)state;
	check_parse("ns/prod/vm/201/2024-03-02T11:02:17Z", true, 0, "prod", "vm", "201", t);
	check_parse("vm/100/2024-03-02T11:02:17Z", true, 0, "", "vm", "100", t);
	check_parse("ns/prod/ns/db/host/delta-63/2024-03-02T11:02:17Z", true, 0, "prod/db",
		    "host", "delta-63", t);
	check_parse("ns/prod/ct/301", false, 0, "prod", "ct", "301", NULL);
	check_parse("host/tundra-87", false, 0, "", "host", "tundra-87", NULL);
	/* A namespace may be called "ns" and a group id too. */
	check_parse("ns/ns/vm/ns/2024-03-02T11:02:17Z", true, 0, "ns", "vm", "ns", t);

	check_parse("../vm/100/2024-03-02T11:02:17Z", true, -EINVAL, NULL, NULL, NULL, NULL);
	check_parse("vm/../2024-03-02T11:02:17Z", true, -EINVAL, NULL, NULL, NULL, NULL);
	check_parse("ns/../vm/100/2024-03-02T11:02:17Z", true, -EINVAL, NULL, NULL, NULL, NULL);
	check_parse("vm/100/2024-03-02T11:02:17Z/extra", true, -EINVAL, NULL, NULL, NULL, NULL);
	check_parse("vm/100/2024-03-02T11:02:17Z", false, -EINVAL, NULL, NULL, NULL, NULL);
	check_parse("vm/100", true, -EINVAL, NULL, NULL, NULL, NULL);
	check_parse("vm/100/2024-03-02T11:02:17", true, -EINVAL, NULL, NULL, NULL, NULL);
	check_parse("vm/100/2024-02-30T11:02:17Z", true, -EINVAL, NULL, NULL, NULL, NULL);
	check_parse("xx/100/2024-03-02T11:02:17Z", true, -EINVAL, NULL, NULL, NULL, NULL);
	check_parse("ns/vm/100/2024-03-02T11:02:17Z", true, -EINVAL, NULL, NULL, NULL, NULL);
	check_parse("ns/a/ns/b/ns/c/ns/d/ns/e/ns/f/ns/g/ns/h/vm/1/2024-03-02T11:02:17Z", true,
		    -EINVAL, NULL, NULL, NULL, NULL);
	check_parse("ns/a/ns/b/ns/c/ns/d/ns/e/ns/f/ns/g/vm/1/2024-03-02T11:02:17Z", true, 0,
		    "a/b/c/d/e/f/g", "vm", "1", t);
	check_parse("", false, -EINVAL, NULL, NULL, NULL, NULL);
}

static void mk(const char *base, const char *rel, bool dir)
{
	char *p = tu_pathf("%s/%s", base, rel);

	if (dir) {
		assert_int_equal(mkdir(p, 0755), 0);
	} else {
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);

		assert_true(fd >= 0);
		close(fd);
	}
	free(p);
}

/* A hand-made store: skipped names, non-directories, unfinished snapshots. */
static void test_listing_rules(void **state)
{
	static const struct {
		const char *rel;
		bool dir;
	} tree[] = {
		{ ".chunks", true }, { "ns", true }, { "ns/ok", true }, { "ns/bad!", true },
		{ "ns/plain", false }, { "ns/ok/ct", false }, { "ns/ok/vm", true },
		{ "ns/ok/vm/7", true }, { "vm", true }, { "ct", true }, { "host", true },
		{ "other", true }, { "vm/100", true }, { "vm/10", true }, { "vm/2", true },
		{ "vm/abc", true }, { "vm/_x", true }, { "vm/bad id", true }, { "vm/.hidden", true },
		{ "vm/plainfile", false }, { "ct/5", true }, { "host/h1", true },
		{ "vm/100/owner", false }, { "vm/100/2024-01-02T00:00:00Z", true },
		{ "vm/100/2024-01-01T00:00:00Z", true }, { "vm/100/2024-01-03T00:00:00Z", false },
		{ "vm/100/notatime", true }, { "vm/100/2024-02-30T00:00:00Z", true },
		{ "vm/100/2024-01-01T00:00:00Z/a.img.fidx", false },
		{ "vm/100/2024-01-01T00:00:00Z/a.img.tmp_fidx", false },
		{ "vm/100/2024-01-02T00:00:00Z/index.json.blob", false },
		{ "vm/100/2024-01-02T00:00:00Z/b.pxar.didx", false },
		{ "vm/100/2024-01-02T00:00:00Z/c.conf.blob", false },
		{ "vm/100/2024-01-02T00:00:00Z/.protected", false },
		{ "vm/100/2024-01-02T00:00:00Z/notes", false },
		{ "vm/100/2024-01-02T00:00:00Z/dir.blob", true },
	};
	static const char *const want_groups[] = { "ct/5", "host/h1", "vm/2", "vm/10", "vm/100",
						    "vm/_x", "vm/abc" };
	char *base = tu_tmpdir(), *s;
	struct ds_snapshot *snaps;
	struct ds_group *groups;
	struct ds_strv sv = { 0 };
	size_t n;
	bool prot;
	struct fx f;

	(void)state;
	for (size_t i = 0; i < DS_ARRAY_SIZE(tree); i++)
		mk(base, tree[i].rel, tree[i].dir);
	fx_open(&f, base);
	check_namespaces(f.lk, "", "ok");
	check_namespaces(f.lk, "ok", "");

	assert_int_equal(ds_list_groups(f.lk, "", &groups, &n), 0);
	assert_int_equal(n, DS_ARRAY_SIZE(want_groups));
	for (size_t i = 0; i < n; i++) {
		s = tu_pathf("%s/%s", ds_backup_type_name(groups[i].type), groups[i].id);
		assert_string_equal(s, want_groups[i]);
		free(s);
	}
	ds_groups_free(groups, n);
	/* "ct" that is a file is no type directory. */
	assert_int_equal(ds_list_groups(f.lk, "ok", &groups, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(groups[0].id, "7");
	ds_groups_free(groups, n);
	assert_int_equal(ds_list_groups(f.lk, "ok/nope", &groups, &n), -ENOENT);

	assert_int_equal(ds_list_snapshots(f.lk, "", "vm", "100", &snaps, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(snaps[0].time, "2024-01-01T00:00:00Z");
	assert_int_equal(snaps[0].epoch, 1704067200);
	assert_false(snaps[0].finished);
	assert_false(snaps[0].protected);
	assert_string_equal(snaps[1].time, "2024-01-02T00:00:00Z");
	assert_true(snaps[1].finished);
	assert_true(snaps[1].protected);
	free(snaps);
	assert_int_equal(ds_list_snapshots(f.lk, "", "vm", "2", &snaps, &n), 0);
	assert_int_equal(n, 0);
	free(snaps);

	assert_int_equal(ds_list_snapshot_files(f.lk, "vm/100/2024-01-02T00:00:00Z", &sv, &prot), 0);
	assert_true(prot);
	s = joined(&sv);
	assert_string_equal(s, "b.pxar.didx,c.conf.blob,index.json.blob");
	free(s);
	ds_strv_free(&sv);
	assert_int_equal(ds_list_snapshot_files(f.lk, "vm/100/2024-01-01T00:00:00Z", &sv, NULL), 0);
	s = joined(&sv);
	assert_string_equal(s, "a.img.fidx");
	free(s);
	ds_strv_free(&sv);
	fx_close(&f);
	tu_rmtree(base);
	free(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture_namespaces),
		cmocka_unit_test(test_fixture_groups),
		cmocka_unit_test(test_fixture_details),
		cmocka_unit_test(test_relpaths),
		cmocka_unit_test(test_parse_path),
		cmocka_unit_test(test_listing_rules),
	};

	tu_fixtures();
	return tu_run_group("hierarchy", tests, NULL, NULL);
}
