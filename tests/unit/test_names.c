/* Suite for store/names: the name rules of spec §1.6 and §1.3. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/hierarchy.h"
#include "store/names.h"
#include "testutil.h"

#define OK(expr) assert_int_equal((expr), 0)
#define BAD(expr) assert_int_equal((expr), -EINVAL)

/* A string of n copies of c (n < 1024). */
static const char *rep(char c, size_t n)
{
	static char buf[1024];

	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

static void test_safe_id(void **state)
{
	static const char *const good[] = {
		"a", "Z", "0", "_", "_a", "a.b", "a-b", "a_b", "a..b", "a.", "a-", "9.-_",
		"vm", "store-a", "A1.b-c_d",
	};
	static const char *const bad[] = {
		"", ".", "..", "-", ".a", "-a", "/", "a/b", "vm/100", "a b", " a", "a ",
		"a\tb", "a\nb", "a\x01", "\x7f", "a:b", "a@b", "a!b", "a+b", "a=b", "a,b",
		"caf\xc3\xa9", "\xc3\xa9t\xc3\xa9", "a\xe2\x80\x8b", "a*", "a?", "a\\b",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		OK(ds_name_safe_id(good[i]));
		OK(ds_name_backup_id(good[i]));
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		BAD(ds_name_safe_id(bad[i]));
		BAD(ds_name_backup_id(bad[i]));
	}
	BAD(ds_name_safe_id(NULL));
	/* No length limit on SAFE_ID or backup ids. */
	OK(ds_name_backup_id(rep('a', 1000)));
}

static void test_datastore(void **state)
{
	(void)state;
	BAD(ds_name_datastore(""));
	BAD(ds_name_datastore("a"));
	BAD(ds_name_datastore("ab")); /* length 2 */
	OK(ds_name_datastore("abc"));  /* length 3 */
	OK(ds_name_datastore("store1"));
	OK(ds_name_datastore("usb1"));
	OK(ds_name_datastore("_x."));
	OK(ds_name_datastore(rep('s', 32)));
	BAD(ds_name_datastore(rep('s', 33)));
	BAD(ds_name_datastore(".abc"));
	BAD(ds_name_datastore("-abc"));
	BAD(ds_name_datastore("a/bc"));
	BAD(ds_name_datastore("a bc"));
	BAD(ds_name_datastore("st\xc3\xb6re"));
	BAD(ds_name_datastore(NULL));
}

static void test_namespace(void **state)
{
	char buf[600];
	int depth = -1;

	(void)state;
	OK(ds_name_namespace("", &depth));
	assert_int_equal(depth, 0);
	OK(ds_name_namespace("prod", &depth));
	assert_int_equal(depth, 1);
	OK(ds_name_namespace("prod/db", &depth));
	assert_int_equal(depth, 2);
	OK(ds_name_namespace("a/b/c/d/e/f/g", &depth));
	assert_int_equal(depth, 7);
	depth = 42;
	BAD(ds_name_namespace("a/b/c/d/e/f/g/h", &depth)); /* depth 8 */
	assert_int_equal(depth, 42); /* untouched on failure */
	OK(ds_name_namespace("a/b", NULL));

	BAD(ds_name_namespace("/", NULL));
	BAD(ds_name_namespace("/a", NULL));
	BAD(ds_name_namespace("a/", NULL));
	BAD(ds_name_namespace("a//b", NULL));
	BAD(ds_name_namespace(".", NULL));
	BAD(ds_name_namespace("..", NULL));
	BAD(ds_name_namespace("a/../b", NULL));
	BAD(ds_name_namespace("a/./b", NULL));
	BAD(ds_name_namespace("ns/a b", NULL));
	BAD(ds_name_namespace("a/.hidden", NULL));
	BAD(ds_name_namespace("a/-x", NULL));
	BAD(ds_name_namespace("a\nb", NULL));
	BAD(ds_name_namespace("\xc3\xa9", NULL));
	BAD(ds_name_namespace(NULL, NULL));

	/* 256 characters (slashes count) is the limit: 7 components of 36
	 * bytes + 6 slashes = 258; make it exactly 256 and 257. */
	memset(buf, 0, sizeof(buf));
	for (int i = 0; i < 7; i++) {
		strcat(buf, rep('x', i < 5 ? 36 : 35));
		if (i < 6)
			strcat(buf, "/");
	}
	assert_int_equal(strlen(buf), 256);
	OK(ds_name_namespace(buf, &depth));
	assert_int_equal(depth, 7);
	/* one component of 256, then 257 */
	OK(ds_name_namespace(rep('n', 256), NULL));
	BAD(ds_name_namespace(rep('n', 257), NULL));
	strcpy(buf, rep('n', 200));
	strcat(buf, "/");
	strcat(buf, rep('m', 56));
	assert_int_equal(strlen(buf), 257);
	BAD(ds_name_namespace(buf, NULL));
}

static void test_backup_type(void **state)
{
	(void)state;
	assert_int_equal(ds_name_backup_type("vm"), DS_TYPE_VM);
	assert_int_equal(ds_name_backup_type("ct"), DS_TYPE_CT);
	assert_int_equal(ds_name_backup_type("host"), DS_TYPE_HOST);
	BAD(ds_name_backup_type("VM"));
	BAD(ds_name_backup_type("vm "));
	BAD(ds_name_backup_type(""));
	BAD(ds_name_backup_type("hosts"));
	BAD(ds_name_backup_type("ns"));
	BAD(ds_name_backup_type(NULL));
	assert_string_equal(ds_backup_type_name(DS_TYPE_VM), "vm");
	assert_string_equal(ds_backup_type_name(DS_TYPE_CT), "ct");
	assert_string_equal(ds_backup_type_name(DS_TYPE_HOST), "host");
	assert_null(ds_backup_type_name((enum ds_backup_type)7));
}

static void test_snapshot_time(void **state)
{
	(void)state;
	OK(ds_name_snapshot_time("2024-03-02T08:02:17Z"));
	OK(ds_name_snapshot_time("2025-01-01T00:00:00Z"));
	OK(ds_name_snapshot_time("2024-02-29T23:59:59Z")); /* leap day */
	OK(ds_name_snapshot_time("2000-02-29T00:00:00Z"));
	BAD(ds_name_snapshot_time("2023-02-29T00:00:00Z"));
	BAD(ds_name_snapshot_time("1900-02-29T00:00:00Z"));
	BAD(ds_name_snapshot_time("2024-02-30T00:00:00Z"));
	BAD(ds_name_snapshot_time("2024-04-31T00:00:00Z"));
	BAD(ds_name_snapshot_time("2024-13-01T00:00:00Z"));
	BAD(ds_name_snapshot_time("2024-00-01T00:00:00Z"));
	BAD(ds_name_snapshot_time("2024-01-00T00:00:00Z"));
	BAD(ds_name_snapshot_time("2024-01-01T24:00:00Z"));
	BAD(ds_name_snapshot_time("2024-01-01T00:60:00Z"));
	BAD(ds_name_snapshot_time("2024-01-01T00:00:60Z"));
	BAD(ds_name_snapshot_time("2024-01-01T00:00:00"));
	BAD(ds_name_snapshot_time("2024-01-01T00:00:00z"));
	BAD(ds_name_snapshot_time("2024-01-01t00:00:00Z"));
	BAD(ds_name_snapshot_time("2024-01-01 00:00:00Z"));
	BAD(ds_name_snapshot_time("2024-01-01T00:00:00+00:00"));
	BAD(ds_name_snapshot_time("2024-01-01T00:00:00Z "));
	BAD(ds_name_snapshot_time("2024-1-01T00:00:00Z"));
	BAD(ds_name_snapshot_time("+024-01-01T00:00:00Z"));
	BAD(ds_name_snapshot_time(""));
	BAD(ds_name_snapshot_time(NULL));
}

static void test_archive(void **state)
{
	(void)state;
	OK(ds_name_archive("index.json.blob"));
	OK(ds_name_archive("drive-scsi0.img.fidx"));
	OK(ds_name_archive("root.pxar.didx"));
	OK(ds_name_archive("catalog.pcat1.didx"));
	OK(ds_name_archive("x.blob"));
	OK(ds_name_archive("_.fidx"));
	BAD(ds_name_archive(".blob"));
	BAD(ds_name_archive("root.pxar"));
	BAD(ds_name_archive("root.pxar.DIDX"));
	BAD(ds_name_archive("root.pxar.didx.tmp"));
	BAD(ds_name_archive("root.fidxx"));
	BAD(ds_name_archive("a/b.fidx"));
	BAD(ds_name_archive("../x.blob"));
	BAD(ds_name_archive("x y.blob"));
	BAD(ds_name_archive("-x.blob"));
	BAD(ds_name_archive(".protected"));
	BAD(ds_name_archive(""));
	BAD(ds_name_archive(NULL));

	assert_int_equal(ds_archive_kind("index.json.blob"), DS_ARCHIVE_BLOB);
	assert_int_equal(ds_archive_kind("drive-scsi0.img.fidx"), DS_ARCHIVE_FIDX);
	assert_int_equal(ds_archive_kind("root.mpxar.didx"), DS_ARCHIVE_DIDX);
	BAD(ds_archive_kind("root.pxar"));
	BAD(ds_archive_kind(".didx")); /* hidden file, no extension */
	BAD(ds_archive_kind("didx"));
	BAD(ds_archive_kind("x.didx."));
	BAD(ds_archive_kind(NULL));
}

static void test_server_name(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "drive-scsi0.img", "drive-scsi0.img.fidx" },
		{ "root.pxar", "root.pxar.didx" },
		{ "root.mpxar", "root.mpxar.didx" },
		{ "root.ppxar", "root.ppxar.didx" },
		{ "catalog.pcat1", "catalog.pcat1.didx" },
		{ "qemu-server.conf", "qemu-server.conf.blob" },
		{ "index.json", "index.json.blob" },
		{ "rsa-encrypted.key", "rsa-encrypted.key.blob" },
		{ "client.log", "client.log.blob" },
		{ "root.pxar.didx", "root.pxar.didx" },
		{ "drive-scsi0.img.fidx", "drive-scsi0.img.fidx" },
		{ "fw.conf.blob", "fw.conf.blob" },
	};
	char out[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(out, 0, sizeof(out));
		OK(ds_archive_server_name(cases[i].in, out, sizeof(out)));
		assert_string_equal(out, cases[i].out);
	}
	BAD(ds_archive_server_name("root.tar", out, sizeof(out)));
	BAD(ds_archive_server_name("disk.IMG", out, sizeof(out)));
	BAD(ds_archive_server_name("noext", out, sizeof(out)));
	BAD(ds_archive_server_name("trailing.", out, sizeof(out)));
	BAD(ds_archive_server_name(".img", out, sizeof(out)));
	BAD(ds_archive_server_name("", out, sizeof(out)));
	/* exactly fitting vs one byte short */
	OK(ds_archive_server_name("a.img", out, sizeof("a.img.fidx")));
	assert_string_equal(out, "a.img.fidx");
	assert_int_equal(ds_archive_server_name("a.img", out, sizeof("a.img.fidx") - 1),
			 -ENAMETOOLONG);
	assert_int_equal(ds_archive_server_name("a.blob", out, 3), -ENAMETOOLONG);
}

static void test_authid(void **state)
{
	static const char *const good[] = {
		"root@pam", "backup@pbs", "admin@pbs", "backup@pbs!host-token", "a@b",
		"user.name-1@ldap_realm", "a@b!c", "j\xc3\xbcrgen@pve", "a!b@pam", "a@b@pam",
		"x@pbs!_tok.1",
	};
	static const char *const bad[] = {
		"", "root", "@pam", "root@", "root@pam!", "root@pam!!x", "root@pam!a!b",
		"ro ot@pam", "root@pa m", "ro:ot@pam", "ro/ot@pam", "ro\tot@pam", "ro\x01ot@pam",
		"ro\x7fot@pam", "root@.pam", "root@pam!.tok", "root@pam!-tok", "root@p/am",
		"a\xc2\xa0" "b@pam",  /* U+00A0 is whitespace */
		"a\xe3\x80\x80" "b@pam", /* U+3000 too */
		"\xff@pam",           /* invalid UTF-8 */
		"root@pam\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		OK(ds_name_authid(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		BAD(ds_name_authid(bad[i]));
	BAD(ds_name_authid(NULL));
}

static void test_fs_uuid(void **state)
{
	(void)state;
	OK(ds_name_fs_uuid("5f1c4a5e-0c7e-4b7a-9a52-6d0b2f1f9c11"));
	OK(ds_name_fs_uuid("00000000-0000-0000-0000-000000000000"));
	BAD(ds_name_fs_uuid("5F1C4A5E-0C7E-4B7A-9A52-6D0B2F1F9C11")); /* uppercase */
	BAD(ds_name_fs_uuid("5f1c4a5e0c7e4b7a9a526d0b2f1f9c11"));
	BAD(ds_name_fs_uuid("5f1c4a5e-0c7e-4b7a-9a52-6d0b2f1f9c1"));
	BAD(ds_name_fs_uuid("5f1c4a5e-0c7e-4b7a-9a52-6d0b2f1f9c111"));
	BAD(ds_name_fs_uuid("5f1c4a5e-0c7e4-b7a-9a52-6d0b2f1f9c11"));
	BAD(ds_name_fs_uuid("5f1c4a5g-0c7e-4b7a-9a52-6d0b2f1f9c11"));
	BAD(ds_name_fs_uuid("ABCD-1234")); /* FAT: not supported (spec §10) */
	BAD(ds_name_fs_uuid(""));
	BAD(ds_name_fs_uuid(NULL));
}

static void test_maintenance_message(void **state)
{
	char buf[300];

	(void)state;
	OK(ds_name_maintenance_message(""));
	OK(ds_name_maintenance_message("disk swap"));
	OK(ds_name_maintenance_message("a, \"quoted\" \\ b"));
	OK(ds_name_maintenance_message(rep('m', 64)));
	BAD(ds_name_maintenance_message(rep('m', 65)));
	/* 64 characters of two bytes each = 128 bytes: still fine */
	buf[0] = '\0';
	for (int i = 0; i < 64; i++)
		strcat(buf, "\xc3\xa9");
	OK(ds_name_maintenance_message(buf));
	strcat(buf, "\xc3\xa9");
	BAD(ds_name_maintenance_message(buf));
	BAD(ds_name_maintenance_message("line\nbreak"));
	BAD(ds_name_maintenance_message("tab\there"));
	BAD(ds_name_maintenance_message("\r"));
	BAD(ds_name_maintenance_message("del\x7f"));
	BAD(ds_name_maintenance_message("bad \xc3"));
	BAD(ds_name_maintenance_message("\xed\xa0\x80")); /* surrogate */
	BAD(ds_name_maintenance_message(NULL));
	/* [[:cntrl:]] is ASCII-only in Rust's regex: U+0085 is allowed. */
	OK(ds_name_maintenance_message("next\xc2\x85line"));
}

static void test_utf8(void **state)
{
	size_t n = 99;

	(void)state;
	OK(ds_utf8_count("", 0, &n));
	assert_int_equal(n, 0);
	OK(ds_utf8_count("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10, &n));
	assert_int_equal(n, 4);
	BAD(ds_utf8_count("\xc0\xaf", 2, NULL));         /* overlong '/' */
	BAD(ds_utf8_count("\xe0\x80\xaf", 3, NULL));     /* overlong */
	BAD(ds_utf8_count("\xf0\x80\x80\xaf", 4, NULL)); /* overlong */
	BAD(ds_utf8_count("\xf4\x90\x80\x80", 4, NULL)); /* > U+10FFFF */
	BAD(ds_utf8_count("\xed\xbf\xbf", 3, NULL));     /* surrogate */
	BAD(ds_utf8_count("\x80", 1, NULL));
	BAD(ds_utf8_count("\xc3", 1, NULL));
	BAD(ds_utf8_count("\xe2\x82", 2, NULL));
	/* the length bounds the scan, not a NUL */
	BAD(ds_utf8_count("\xc3\xa9", 1, NULL));
}

/* Names an attacker controls (a crafted datastore, an archive, a FUSE
 * lookup) that must never become a path component: every validator refuses
 * each of them. (A NUL cannot be inside a C string: what follows it is
 * never seen, so "vm\0/../x" is just "vm".) */
static const char *const hostile[] = {
	"", ".", "..", "...", "../x", "x/..", "./x", "/", "/x", "x/", "a/b", "a//b", "../../etc",
	"\x01", "a\x01", "a\x1f" "b", "\x7f", "a\x7f", "a\nb", "a\rb", "a\tb", "\x1b[2J", " ", "a b",
	"a\\b", "\\", "*", "a?", "%s%n%n", "a:b", "a@b",
	"\xc0\xae", "\xc0\xaf", "\xc0\xae\xc0\xae",   /* overlong '.', '/', ".." */
	"\xe2\x80\xae" "abc", "\xef\xbc\x8f",         /* RTL override, fullwidth '/' */
	"\xff", "\xc3", "caf\xc3\xa9",
	"-a", ".a", "..a", ".hidden",
};

static void test_hostile(void **state)
{
	char out[64], ns[300], type[8], id[300], tm[32];

	(void)state;
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		const char *h = hostile[i];
		int depth = 42;

		BAD(ds_name_safe_id(h));
		BAD(ds_name_backup_id(h));
		BAD(ds_name_datastore(h));
		BAD(ds_name_archive(h));
		BAD(ds_name_snapshot_time(h));
		BAD(ds_name_fs_uuid(h));
		assert_true(ds_name_backup_type(h) < 0);
		if (*h && strcmp(h, "a/b") != 0) {
			BAD(ds_name_namespace(h, &depth));
			assert_int_equal(depth, 42);
			assert_int_equal(ds_ns_relpath(h, out, sizeof(out)), -EINVAL);
		}
		/* as a component of a longer path */
		snprintf(ns, sizeof(ns), "prod/%s", h);
		if (strcmp(h, "a/b") != 0)
			BAD(ds_name_namespace(ns, NULL));
		assert_int_equal(ds_group_relpath("", "vm", h, out, sizeof(out)), -EINVAL);
		assert_int_equal(ds_snapshot_relpath("", "vm", "100", h, out, sizeof(out)), -EINVAL);
		/* in a snapshot path given on the command line */
		snprintf(ns, sizeof(ns), "vm/%s/2024-03-02T08:02:17Z", h);
		if (!strchr(h, '/'))
			assert_int_equal(ds_parse_snapshot_path(ns, true, id, type, id, tm), -EINVAL);
		snprintf(ns, sizeof(ns), "ns/%s/vm/100", h);
		if (!strchr(h, '/') && *h)
			assert_int_equal(ds_parse_snapshot_path(ns, false, id, type, id, tm), -EINVAL);
	}
	/* ".." hidden between valid components of a parsed path */
	assert_int_equal(ds_parse_snapshot_path("ns/a/../vm/100", false, ns, type, id, tm), -EINVAL);
	assert_int_equal(ds_parse_snapshot_path("vm/100/../../etc", false, ns, type, id, tm), -EINVAL);
	assert_int_equal(ds_parse_snapshot_path("vm/../vm/100", false, ns, type, id, tm), -EINVAL);
	assert_int_equal(ds_parse_snapshot_path("vm/100/2024-03-02T08:02:17Z/..", true, ns, type, id,
						tm), -EINVAL);
}

static void test_namespace_depth(void **state)
{
	char buf[600], path[1200], out[1200], ns[300], type[8], id[64], tm[32];
	int depth;

	(void)state;
	/* Depth 1..7 valid, 8..40 refused, with one-letter and long
	 * components, in every function that takes a namespace. */
	for (int n = 1; n <= 40; n++) {
		buf[0] = path[0] = '\0';
		for (int i = 0; i < n; i++) {
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%c", i ? "/" : "",
				 'a' + i % 26);
			snprintf(path + strlen(path), sizeof(path) - strlen(path), "ns/%c/", 'a' + i % 26);
		}
		strcat(path, "vm/100");
		depth = -1;
		if (n <= DS_MAX_NAMESPACE_DEPTH) {
			OK(ds_name_namespace(buf, &depth));
			assert_int_equal(depth, n);
			OK(ds_ns_relpath(buf, out, sizeof(out)));
			OK(ds_parse_snapshot_path(path, false, ns, type, id, tm));
			assert_string_equal(ns, buf);
		} else {
			BAD(ds_name_namespace(buf, &depth));
			assert_int_equal(depth, -1);
			assert_int_equal(ds_ns_relpath(buf, out, sizeof(out)), -EINVAL);
			assert_int_equal(ds_group_relpath(buf, "vm", "100", out, sizeof(out)), -EINVAL);
			assert_int_equal(ds_parse_snapshot_path(path, false, ns, type, id, tm), -EINVAL);
		}
	}
	/* 8 components of 30 bytes: too deep and too long at once */
	buf[0] = '\0';
	for (int i = 0; i < 8; i++) {
		if (i)
			strcat(buf, "/");
		strcat(buf, rep((char)('a' + i), 30));
	}
	BAD(ds_name_namespace(buf, NULL));
	/* 7 components but 7 * 40 + 6 > 256 bytes */
	buf[0] = '\0';
	for (int i = 0; i < 7; i++) {
		if (i)
			strcat(buf, "/");
		strcat(buf, rep((char)('a' + i), 40));
	}
	BAD(ds_name_namespace(buf, NULL));
}

static void test_overlong(void **state)
{
	char out[600];

	(void)state;
	/* Over-long names: the limits PBS has (datastore 32, namespace 256,
	 * maintenance message 64 characters) hold at 4 KiB and beyond, and
	 * path builders report ENAMETOOLONG instead of cutting. */
	{
		static char big[8200];

		memset(big, 'a', sizeof(big) - 1);
		BAD(ds_name_datastore(big));
		BAD(ds_name_namespace(big, NULL));
		BAD(ds_name_maintenance_message(big));
		BAD(ds_name_snapshot_time(big));
		BAD(ds_name_fs_uuid(big));
		assert_int_equal(ds_archive_server_name(big, out, sizeof(out)), -EINVAL);
		big[sizeof(big) - 6] = '.';
		memcpy(big + sizeof(big) - 5, "blob", 4);
		OK(ds_name_archive(big)); /* SAFE_ID has no length limit ... */
		assert_int_equal(ds_archive_server_name(big, out, sizeof(out)), -ENAMETOOLONG);
		assert_int_equal(ds_group_relpath("", "vm", big, out, sizeof(out)), -ENAMETOOLONG);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_safe_id),
		cmocka_unit_test(test_datastore),
		cmocka_unit_test(test_namespace),
		cmocka_unit_test(test_backup_type),
		cmocka_unit_test(test_snapshot_time),
		cmocka_unit_test(test_archive),
		cmocka_unit_test(test_server_name),
		cmocka_unit_test(test_authid),
		cmocka_unit_test(test_fs_uuid),
		cmocka_unit_test(test_maintenance_message),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_namespace_depth),
		cmocka_unit_test(test_overlong),
	};

	return tu_run_group("names", tests, NULL, NULL);
}
