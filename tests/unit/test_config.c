/* Suite for store/config: datastore.cfg parsing, property strings, the
 * writer and maintenance transitions (spec §6.2, §6.3, §6.7). */
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

#include "store/config.h"
#include "store/log.h"
#include "store/util.h"
#include "testutil.h"

/* The example of spec §6.3, verbatim. */
static const char spec_example[] =
	"datastore: store1\n"
	"\tcomment main store\n"
	"\tgc-schedule daily\n"
	"\tmaintenance-mode type=read-only,message=\"disk swap\"\n"
	"\tpath /srv/pbs/store1\n"
	"\ttuning gc-atime-cutoff=1445,sync-level=filesystem\n"
	"\n"
	"datastore: usb1\n"
	"\tbacking-device 5f1c4a5e-0c7e-4b7a-9a52-6d0b2f1f9c11\n"
	"\tpath pbs/usb1\n";

struct logcap {
	char text[16384];
	int count;
};

static struct logcap logs;

static void capture(enum ds_log_level level, const char *msg, void *userdata)
{
	struct logcap *c = userdata;
	size_t used = strlen(c->text);

	(void)level;
	c->count++;
	snprintf(c->text + used, sizeof(c->text) - used, "%s\n", msg);
}

static int setup(void **state)
{
	(void)state;
	memset(&logs, 0, sizeof(logs));
	ds_log_set_sink(capture, &logs);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ds_log_set_sink(NULL, NULL);
	return 0;
}

static struct ds_config *parse_ok(const char *text)
{
	struct ds_config *cfg = NULL;
	int r = ds_config_parse(text, strlen(text), "test.cfg", &cfg);

	if (r != 0)
		fprintf(stderr, "unexpected parse failure %d:\n%s", r, logs.text);
	assert_int_equal(r, 0);
	assert_non_null(cfg);
	return cfg;
}

static char *format_ok(const struct ds_config *cfg)
{
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(ds_config_format(cfg, &text, &len), 0);
	assert_non_null(text);
	assert_int_equal(len, strlen(text));
	return text;
}

static void test_spec_example(void **state)
{
	const struct ds_datastore_cfg *s1, *u1;
	struct ds_config *cfg;
	char base[256], *text;

	(void)state;
	memset(&logs, 0, sizeof(logs));
	cfg = parse_ok(spec_example);
	assert_int_equal(cfg->n_stores, 2);
	s1 = &cfg->stores[0];
	u1 = &cfg->stores[1];
	assert_ptr_equal(ds_config_find(cfg, "store1"), s1);
	assert_ptr_equal(ds_config_find(cfg, "usb1"), u1);
	assert_null(ds_config_find(cfg, "store2"));
	assert_null(ds_config_find(cfg, "usb"));

	assert_string_equal(s1->name, "store1");
	assert_string_equal(s1->path, "/srv/pbs/store1");
	assert_string_equal(s1->comment, "main store");
	assert_null(s1->backing_device);
	assert_int_equal(s1->maintenance, DS_MAINT_READ_ONLY);
	assert_string_equal(s1->maintenance_message, "disk swap");
	assert_string_equal(s1->sync_level, "filesystem");
	/* raw properties in file order */
	assert_int_equal(s1->n_props, 5);
	assert_string_equal(s1->props[0].key, "comment");
	assert_string_equal(s1->props[0].value, "main store");
	assert_string_equal(s1->props[1].key, "gc-schedule");
	assert_string_equal(s1->props[1].value, "daily");
	assert_string_equal(s1->props[2].key, "maintenance-mode");
	assert_string_equal(s1->props[2].value, "type=read-only,message=\"disk swap\"");
	assert_string_equal(s1->props[3].key, "path");
	assert_string_equal(s1->props[4].key, "tuning");
	assert_string_equal(s1->props[4].value, "gc-atime-cutoff=1445,sync-level=filesystem");
	assert_int_equal(ds_datastore_cfg_base(s1, base, sizeof(base)), 0);
	assert_string_equal(base, "/srv/pbs/store1");

	assert_string_equal(u1->name, "usb1");
	assert_string_equal(u1->path, "pbs/usb1");
	assert_string_equal(u1->backing_device, "5f1c4a5e-0c7e-4b7a-9a52-6d0b2f1f9c11");
	assert_int_equal(u1->maintenance, DS_MAINT_NONE);
	assert_null(u1->maintenance_message);
	assert_null(u1->comment);
	assert_null(u1->sync_level);
	assert_int_equal(ds_datastore_cfg_base(u1, base, sizeof(base)), 0);
	assert_string_equal(base, "/mnt/datastore/usb1");
	assert_int_equal(ds_datastore_cfg_base(u1, base, 10), -ENAMETOOLONG);

	/* The example is already in PBS's canonical form. */
	text = format_ok(cfg);
	assert_string_equal(text, spec_example);
	free(text);
	ds_config_free(cfg);
	assert_int_equal(logs.count, 0);
}

static void test_maintenance_forms(void **state)
{
	struct ds_config *cfg;
	char *text;

	(void)state;
	/* bare value for the default key "type" */
	cfg = parse_ok("datastore: abc\n\tpath /x\n\tmaintenance-mode offline\n");
	assert_int_equal(cfg->stores[0].maintenance, DS_MAINT_OFFLINE);
	assert_null(cfg->stores[0].maintenance_message);
	assert_string_equal(cfg->stores[0].props[1].value, "offline");
	text = format_ok(cfg);
	assert_string_equal(text, "datastore: abc\n"
				  "\tmaintenance-mode type=offline\n"
				  "\tpath /x\n");
	free(text);
	ds_config_free(cfg);

	/* quoted message with a comma, an escaped quote and a backslash */
	cfg = parse_ok("datastore: abc\n\tpath /x\n"
		       "\tmaintenance-mode message=\"a, \\\"b\\\" \\\\ c\",type=unmount\n");
	assert_int_equal(cfg->stores[0].maintenance, DS_MAINT_UNMOUNT);
	assert_string_equal(cfg->stores[0].maintenance_message, "a, \"b\" \\ c");
	text = format_ok(cfg);
	assert_string_equal(text, "datastore: abc\n"
				  "\tmaintenance-mode type=unmount,message=\"a, \\\"b\\\" \\\\ c\"\n"
				  "\tpath /x\n");
	free(text);
	ds_config_free(cfg);

	/* quoted bare type, every known type */
	cfg = parse_ok("datastore: abc\n\tpath /x\n\tmaintenance-mode \"delete\"\n\n"
		       "datastore: def\n\tpath /y\n\tmaintenance-mode s3-refresh,message=m\n\n"
		       "datastore: ghi\n\tpath /z\n\tmaintenance-mode type=read-only,message=\"\"\n");
	assert_int_equal(cfg->stores[0].maintenance, DS_MAINT_DELETE);
	assert_int_equal(cfg->stores[1].maintenance, DS_MAINT_S3_REFRESH);
	assert_string_equal(cfg->stores[1].maintenance_message, "m");
	assert_int_equal(cfg->stores[2].maintenance, DS_MAINT_READ_ONLY);
	assert_null(cfg->stores[2].maintenance_message); /* empty = none */
	ds_config_free(cfg);

	/* a trailing comma, which PBS's parser takes (proxmox-schema
	 * next_property), after a quoted and after a plain value */
	cfg = parse_ok("datastore: abc\n\tpath /x\n\tmaintenance-mode type=offline,message=\"m\",\n"
		       "\ttuning sync-level=file,\n\n"
		       "datastore: def\n\tpath /y\n\tmaintenance-mode read-only,\n");
	assert_int_equal(cfg->stores[0].maintenance, DS_MAINT_OFFLINE);
	assert_string_equal(cfg->stores[0].maintenance_message, "m");
	assert_string_equal(cfg->stores[0].sync_level, "file");
	assert_int_equal(cfg->stores[1].maintenance, DS_MAINT_READ_ONLY);
	text = format_ok(cfg);
	assert_string_equal(text, "datastore: abc\n"
				  "\tmaintenance-mode type=offline,message=\"m\"\n"
				  "\tpath /x\n"
				  "\ttuning sync-level=file,\n"
				  "\n"
				  "datastore: def\n"
				  "\tmaintenance-mode type=read-only\n"
				  "\tpath /y\n");
	free(text);
	ds_config_free(cfg);
}

static void test_property_string(void **state)
{
	struct ds_config_prop *p = NULL;
	const char *why = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(ds_property_string_parse("type=offline,message=\"a, b\"", "type", &p, &n,
						  &why), 0);
	assert_int_equal(n, 2);
	assert_string_equal(p[0].key, "type");
	assert_string_equal(p[0].value, "offline");
	assert_string_equal(p[1].key, "message");
	assert_string_equal(p[1].value, "a, b");
	ds_config_props_free(p, n);

	assert_int_equal(ds_property_string_parse("offline", "type", &p, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_string_equal(p[0].key, "type");
	assert_string_equal(p[0].value, "offline");
	ds_config_props_free(p, n);

	/* bare value anywhere in the list, quoted or not */
	assert_int_equal(ds_property_string_parse("message=m,\"read-only\"", "type", &p, &n, NULL),
			 0);
	assert_int_equal(n, 2);
	assert_string_equal(p[1].key, "type");
	assert_string_equal(p[1].value, "read-only");
	ds_config_props_free(p, n);

	/* escapes: \" \\ \n */
	assert_int_equal(ds_property_string_parse("m=\"q\\\"b\\\\s\\nn\"", NULL, &p, &n, NULL), 0);
	assert_string_equal(p[0].value, "q\"b\\s\nn");
	ds_config_props_free(p, n);

	/* no trimming, '=' and '"' inside unquoted values, empty value */
	assert_int_equal(ds_property_string_parse(" k = v ,a=b=c,q=x\"y,e=", NULL, &p, &n, NULL), 0);
	assert_int_equal(n, 4);
	assert_string_equal(p[0].key, " k ");
	assert_string_equal(p[0].value, " v ");
	assert_string_equal(p[1].value, "b=c");
	assert_string_equal(p[2].value, "x\"y");
	assert_string_equal(p[3].key, "e");
	assert_string_equal(p[3].value, "");
	ds_config_props_free(p, n);

	/* One trailing comma, as PBS's property-string parser takes it
	 * (next_property swallows the comma with its item). */
	assert_int_equal(ds_property_string_parse("a=1,", NULL, &p, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_string_equal(p[0].key, "a");
	assert_string_equal(p[0].value, "1");
	ds_config_props_free(p, n);
	assert_int_equal(ds_property_string_parse("message=\"a,\",offline,", "type", &p, &n,
						  NULL),
			 0);
	assert_int_equal(n, 2);
	assert_string_equal(p[0].value, "a,");
	assert_string_equal(p[1].key, "type");
	assert_string_equal(p[1].value, "offline");
	ds_config_props_free(p, n);

	p = (void *)1;
	assert_int_equal(ds_property_string_parse("", "type", &p, &n, NULL), 0);
	assert_int_equal(n, 0);
	ds_config_props_free(p, n);

	static const struct {
		const char *s, *dk, *why;
	} bad[] = {
		{ "offline", NULL, "value without a key" },
		{ "offline,delete", "type", "more than one value without a key" },
		{ "offline,type=delete", "type", "duplicate key" },
		{ "a=1,a=2", NULL, "duplicate key" },
		{ "a=1,,b=2", NULL, "empty item" },
		{ ",a=1", NULL, "empty item" },
		{ "a=1,,", NULL, "empty item" },
		{ ",", "type", "empty item" },
		{ "=1", NULL, "empty key" },
		{ "a=\"open", NULL, "unterminated quoted string" },
		{ "a=\"open\\", NULL, "unterminated quoted string" },
		{ "a=\"x\\ty\"", NULL, "unsupported escape sequence" },
		{ "a=\"x\"y", NULL, "garbage after quoted string" },
		{ "\"x\" ,b=1", "type", "garbage after quoted string" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = (void *)1;
		why = NULL;
		assert_int_equal(ds_property_string_parse(bad[i].s, bad[i].dk, &p, &n, &why),
				 -EINVAL);
		assert_ptr_equal(p, (void *)1);
		assert_non_null(why);
		assert_string_equal(why, bad[i].why);
	}
}

/* Parses text expecting -EINVAL and exactly one logged error naming
 * test.cfg:line and containing needle. */
static void expect_error(const char *text, size_t len, unsigned line, const char *needle)
{
	struct ds_config *cfg = (void *)1;
	char prefix[64];

	memset(&logs, 0, sizeof(logs));
	assert_int_equal(ds_config_parse(text, len, "test.cfg", &cfg), -EINVAL);
	assert_ptr_equal(cfg, (void *)1);
	snprintf(prefix, sizeof(prefix), "test.cfg:%u: ", line);
	if (logs.count != 1 || strncmp(logs.text, prefix, strlen(prefix)) != 0 ||
	    !strstr(logs.text, needle))
		fail_msg("for input:\n%s\nexpected one error '%s…%s', got %d: %s", text, prefix,
			 needle, logs.count, logs.text);
}

#define HDR "datastore: store1\n\tpath /x\n"

static void test_errors(void **state)
{
	static const struct {
		const char *text;
		unsigned line;
		const char *needle;
	} cases[] = {
		/* syntax */
		{ "# a comment\n" HDR, 1, "comments are not supported" },
		{ HDR "\n# trailing comment\n", 4, "comments are not supported" },
		{ "datastore: store1\n#x\n\tpath /x\n", 2, "comments are not supported" },
		{ "datastore: store1\n\t# indented\n\tpath /x\n", 2, "comments are not supported" },
		{ "\tpath /x\n" HDR, 1, "property line outside a section" },
		{ HDR "\n\tcomment late\n", 4, "property line outside a section" },
		{ HDR "datastore: store2\n\tpath /y\n", 3, "blank line must end the section" },
		{ "datastore store1\n\tpath /x\n", 1, "expected '<type>: <id>'" },
		{ "1datastore: store1\n\tpath /x\n", 1, "expected a section header" },
		{ ":store1\n\tpath /x\n", 1, "expected a section header" },
		{ "sync: job1\n\tstore store1\n", 1, "unknown section type 'sync'" },
		{ "Datastore: store1\n\tpath /x\n", 1, "unknown section type" },
		{ "datastore: ab\n\tpath /x\n", 1, "invalid datastore name 'ab'" },
		{ "datastore: \n\tpath /x\n", 1, "invalid datastore name" },
		{ "datastore: a/b/c\n\tpath /x\n", 1, "invalid datastore name" },
		{ "datastore: store1:x\n\tpath /x\n", 1, "invalid datastore name" },
		/* a replaced section is still checked, as PBS checks it */
		{ "datastore: store1\n\tcomment c\n\n" HDR, 1, "property 'path' is missing" },
		{ "datastore: store1\n\tpath /x\n\tfoo 1\n\n" HDR, 3, "unknown property 'foo'" },
		{ "datastore: store1\n\tpath\n", 2, "property 'path' has no value" },
		/* "\r\n" ends the line (Rust's str::lines), it is no separator */
		{ "datastore: store1\r\n\tpath /x\r\n\tcomment\r\n", 3,
		  "property 'comment' has no value" },
		/* keys */
		{ HDR "\tfoo bar\n", 3, "unknown property 'foo'" },
		{ HDR "\tPath /y\n", 3, "unknown property 'Path'" },
		{ HDR "\tpath /y\n", 3, "duplicate property 'path'" },
		{ "datastore: store1\n\tcomment c\n", 1, "property 'path' is missing" },
		{ HDR "\ndatastore: store2\n\tcomment c\n\ndatastore: store3\n\tpath /z\n", 4,
		  "datastore 'store2': property 'path' is missing" },
		{ "datastore: store1\n", 1, "property 'path' is missing" },
		{ "datastore: store1\n\tpath \n", 2, "property 'path': must be 1 to 4096" },
		/* values */
		{ HDR "\tverify-new maybe\n", 3, "property 'verify-new': not a boolean" },
		{ HDR "\tgc-on-unmount 2\n", 3, "property 'gc-on-unmount': not a boolean" },
		{ HDR "\tkeep-last 0\n", 3, "property 'keep-last': value must be between 1" },
		{ HDR "\tkeep-daily -1\n", 3, "property 'keep-daily'" },
		{ HDR "\tkeep-weekly 3x\n", 3, "property 'keep-weekly': not an integer" },
		{ HDR "\tkeep-yearly 99999999999999999999\n", 3, "not an integer" },
		{ HDR "\tbacking-device 5F1C4A5E-0C7E-4B7A-9A52-6D0B2F1F9C11\n", 3,
		  "property 'backing-device'" },
		{ HDR "\tcomment a\x01" "b\n", 3, "control character in comment" },
		{ HDR "\tnotify gc=sometimes\n", 3, "property 'notify': key 'gc'" },
		{ HDR "\tnotify tape=always\n", 3, "unknown key 'tape'" },
		{ HDR "\tnotify-user root@pam!tok\n", 3, "property 'notify-user'" },
		{ HDR "\tnotify-user root\n", 3, "property 'notify-user'" },
		{ HDR "\tnotification-mode email\n", 3, "property 'notification-mode'" },
		/* maintenance-mode */
		{ HDR "\tmaintenance-mode broken\n", 3, "key 'type': must be one of" },
		{ HDR "\tmaintenance-mode message=x\n", 3, "missing key 'type'" },
		{ HDR "\tmaintenance-mode offline,reason=x\n", 3, "unknown key 'reason'" },
		{ HDR "\tmaintenance-mode offline,message=\"a\\nb\"\n", 3, "key 'message'" },
		{ HDR "\tmaintenance-mode offline,message="
		      "\"12345678901234567890123456789012345678901234567890123456789012345\"\n",
		  3, "key 'message'" },
		{ HDR "\tmaintenance-mode offline,message=\"open\n", 3, "unterminated quoted" },
		{ HDR "\tmaintenance-mode offline,message=\"a\\tb\"\n", 3, "unsupported escape" },
		{ HDR "\tmaintenance-mode offline,,\n", 3, "empty item" },
		{ HDR "\tmaintenance-mode offline,,message=x\n", 3, "empty item" },
		{ HDR "\tmaintenance-mode offline,read-only\n", 3, "more than one value" },
		{ HDR "\tmaintenance-mode offline,type=offline\n", 3, "duplicate key" },
		/* tuning */
		{ HDR "\ttuning sync-level=sometimes\n", 3, "key 'sync-level'" },
		{ HDR "\ttuning chunk-order=random\n", 3, "key 'chunk-order'" },
		{ HDR "\ttuning gc-atime-cutoff=0\n", 3, "key 'gc-atime-cutoff'" },
		{ HDR "\ttuning gc-atime-cutoff=2881\n", 3, "key 'gc-atime-cutoff'" },
		{ HDR "\ttuning gc-cache-capacity=8388609\n", 3, "key 'gc-cache-capacity'" },
		{ HDR "\ttuning gc-atime-safety-check=perhaps\n", 3, "not a boolean" },
		{ HDR "\ttuning default-verification-workers=x\n", 3, "not an integer" },
		{ HDR "\ttuning default-verification-readers=33\n", 3, "between 1 and 32" },
		{ HDR "\ttuning filesystem\n", 3, "value without a key" },
		{ HDR "\ttuning foo=bar\n", 3, "unknown key 'foo'" },
		/* backend */
		{ HDR "\tbackend s3,client=c1\n", 3, "missing key 'bucket'" },
		{ HDR "\tbackend type=s3,bucket=b\n", 3, "missing key 'client'" },
		{ HDR "\tbackend filesystem,client=c1\n", 3, "key 'client' not allowed" },
		{ HDR "\tbackend bucket=b\n", 3, "key 'bucket' not allowed" },
		{ HDR "\tbackend type=filesystem,max-cache-size=1G\n", 3, "'max-cache-size' not" },
		{ HDR "\tbackend type=nfs\n", 3, "key 'type': must be one of filesystem|s3" },
		/* encoding */
		{ HDR "\tcomment caf\xc3\n", 3, "invalid UTF-8" },
		{ "datastore: st\xff" "ore\n\tpath /x\n", 1, "invalid UTF-8" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error(cases[i].text, strlen(cases[i].text), cases[i].line, cases[i].needle);
	/* a NUL byte inside the text */
	expect_error(HDR "\tcomment a\0b\n", sizeof(HDR "\tcomment a\0b\n") - 1, 3, "NUL byte");
}

static void test_lenient_syntax(void **state)
{
	struct ds_config *cfg;

	(void)state;
	memset(&logs, 0, sizeof(logs));
	/* Blank and whitespace-only lines anywhere between sections, spaces
	 * instead of TABs, CRLF line ends, no final newline, booleans in any
	 * case, values keeping inner whitespace, Unicode whitespace trimmed. */
	cfg = parse_ok("\n  \n\t\ndatastore:   abc  \r\n"
		       "    path    /srv/a b\t \r\n"
		       "\tverify-new TRUE\r\n"
		       "\tgc-on-unmount Off\n"
		       "\tcomment\xc2\xa0x  y\xe3\x80\x80\n"
		       "\n\n\n"
		       "datastore:def\n"
		       "\tpath /d\n"
		       "\tkeep-last +3\n"
		       "\tbackend type=s3,client=c1,bucket=b1,max-cache-size=10G\n"
		       "\tnotify gc=always,verify=error,sync=never,prune=always\n"
		       "\tnotify-user a!b@pbs\n"
		       "\tnotification-mode legacy-sendmail\n"
		       "\ttuning chunk-order=none,sync-level=file,gc-atime-safety-check=0,"
		       "gc-cache-capacity=0,default-verification-workers=4\n"
		       "\tcomment ");
	assert_int_equal(cfg->n_stores, 2);
	assert_string_equal(cfg->stores[0].name, "abc");
	assert_string_equal(cfg->stores[0].path, "/srv/a b");
	assert_string_equal(cfg->stores[0].comment, "x  y");
	assert_string_equal(cfg->stores[0].props[1].value, "TRUE");
	assert_string_equal(cfg->stores[1].name, "def");
	assert_string_equal(cfg->stores[1].sync_level, "file");
	assert_string_equal(cfg->stores[1].comment, "");
	ds_config_free(cfg);

	/* an empty file and a file of blank lines have no stores */
	cfg = parse_ok("");
	assert_int_equal(cfg->n_stores, 0);
	ds_config_free(cfg);
	cfg = parse_ok("\n\n  \n");
	assert_int_equal(cfg->n_stores, 0);
	ds_config_free(cfg);
	assert_int_equal(logs.count, 0);
}

/* PBS keeps sections in a map by id: a datastore's second section
 * replaces its first. Read and written back once, in the first one's
 * place. */
static void test_duplicate_store(void **state)
{
	struct ds_config *cfg;
	char *text;

	(void)state;
	memset(&logs, 0, sizeof(logs));
	cfg = parse_ok("datastore: store1\n\tpath /old\n\tcomment first\n"
		       "\tmaintenance-mode offline\n\n"
		       "datastore: store2\n\tpath /two\n\n"
		       "datastore: store1\n\tpath /new\n\tverify-new true\n");
	assert_int_equal(logs.count, 1);
	assert_non_null(strstr(logs.text, "test.cfg:9: datastore 'store1' again"));
	assert_int_equal(cfg->n_stores, 2);
	assert_string_equal(ds_config_find(cfg, "store1")->path, "/new");
	assert_null(ds_config_find(cfg, "store1")->comment);
	assert_int_equal(ds_config_find(cfg, "store1")->maintenance, DS_MAINT_NONE);
	text = format_ok(cfg);
	assert_string_equal(text, "datastore: store1\n\tpath /new\n\tverify-new true\n\n"
				  "datastore: store2\n\tpath /two\n");
	free(text);
	ds_config_free(cfg);
}

static void test_format_exact(void **state)
{
	/* Out of order, oddly spaced, bare and unquoted property strings. */
	static const char in[] =
		"datastore: beta\n"
		"    path   /b   \n"
		"\tverify-new true\n"
		"\tcomment  spaced  value \n"
		"\tmaintenance-mode offline\n"
		"\n"
		"  \n"
		"datastore: alpha\n"
		"\tpath /a\n"
		"\tgc-schedule daily\n"
		"\tmaintenance-mode message=disk,type=read-only\n"
		"\tkeep-last 3\n"
		"\tbacking-device 5f1c4a5e-0c7e-4b7a-9a52-6d0b2f1f9c11\n";
	/* Written by hand from spec §6.3: recorded section order, one blank
	 * line between sections, TAB + key + space + value, keys in byte
	 * order, maintenance-mode as type=…[,message="…"] with the message
	 * always quoted, a newline after every line and none extra. */
	static const char want[] =
		"datastore: beta\n"
		"\tcomment spaced  value\n"
		"\tmaintenance-mode type=offline\n"
		"\tpath /b\n"
		"\tverify-new true\n"
		"\n"
		"datastore: alpha\n"
		"\tbacking-device 5f1c4a5e-0c7e-4b7a-9a52-6d0b2f1f9c11\n"
		"\tgc-schedule daily\n"
		"\tkeep-last 3\n"
		"\tmaintenance-mode type=read-only,message=\"disk\"\n"
		"\tpath /a\n";
	struct ds_config *cfg = parse_ok(in), *again;
	char *text, *text2;

	(void)state;
	text = format_ok(cfg);
	assert_string_equal(text, want);
	/* format → parse → format is a fixed point */
	again = parse_ok(text);
	text2 = format_ok(again);
	assert_string_equal(text2, text);
	assert_int_equal(again->stores[1].maintenance, DS_MAINT_READ_ONLY);
	assert_string_equal(again->stores[1].maintenance_message, "disk");
	free(text);
	free(text2);
	ds_config_free(again);
	ds_config_free(cfg);

	/* no stores: empty output */
	cfg = parse_ok("\n");
	text = format_ok(cfg);
	assert_string_equal(text, "");
	free(text);
	ds_config_free(cfg);

	/* PBS's writer refuses control characters; we do too */
	cfg = parse_ok("datastore: abc\n\tpath /a\tb\n");
	assert_string_equal(cfg->stores[0].path, "/a\tb");
	memset(&logs, 0, sizeof(logs));
	text = NULL;
	assert_int_equal(ds_config_format(cfg, &text, NULL), -EINVAL);
	assert_null(text);
	assert_int_equal(logs.count, 1);
	ds_config_free(cfg);
}

static void test_set_maintenance(void **state)
{
	struct ds_config *cfg = parse_ok(spec_example), *again;
	struct ds_datastore_cfg *u1;
	char *text;

	(void)state;
	u1 = &cfg->stores[1];
	assert_int_equal(ds_config_set_maintenance(cfg, "nosuch", DS_MAINT_OFFLINE, NULL), -ENOENT);

	assert_int_equal(ds_config_set_maintenance(cfg, "usb1", DS_MAINT_READ_ONLY, "swap, \"now\""),
			 0);
	assert_int_equal(u1->maintenance, DS_MAINT_READ_ONLY);
	assert_string_equal(u1->maintenance_message, "swap, \"now\"");
	text = format_ok(cfg);
	assert_non_null(strstr(text, "datastore: usb1\n"
				     "\tbacking-device 5f1c4a5e-0c7e-4b7a-9a52-6d0b2f1f9c11\n"
				     "\tmaintenance-mode type=read-only,message=\"swap, \\\"now\\\"\"\n"
				     "\tpath pbs/usb1\n"));
	again = parse_ok(text);
	assert_int_equal(again->stores[1].maintenance, DS_MAINT_READ_ONLY);
	assert_string_equal(again->stores[1].maintenance_message, "swap, \"now\"");
	ds_config_free(again);
	free(text);

	/* bad messages change nothing */
	memset(&logs, 0, sizeof(logs));
	assert_int_equal(ds_config_set_maintenance(cfg, "usb1", DS_MAINT_OFFLINE, "a\nb"), -EINVAL);
	assert_int_equal(ds_config_set_maintenance(
				 cfg, "usb1", DS_MAINT_OFFLINE,
				 "12345678901234567890123456789012345678901234567890123456789012345"),
			 -EINVAL);
	assert_int_equal(ds_config_set_maintenance(cfg, "usb1", DS_MAINT_NONE, "msg"), -EINVAL);
	assert_int_equal(ds_config_set_maintenance(cfg, "usb1", (enum ds_maintenance)42, NULL),
			 -EINVAL);
	assert_int_equal(logs.count, 3);
	assert_int_equal(u1->maintenance, DS_MAINT_READ_ONLY);
	assert_string_equal(u1->maintenance_message, "swap, \"now\"");

	/* every other transition is free while not "delete" */
	assert_int_equal(ds_config_set_maintenance(cfg, "usb1", DS_MAINT_UNMOUNT, NULL), 0);
	assert_null(u1->maintenance_message);
	assert_int_equal(ds_config_set_maintenance(cfg, "usb1", DS_MAINT_OFFLINE, "x"), 0);
	assert_int_equal(ds_config_set_maintenance(cfg, "usb1", DS_MAINT_S3_REFRESH, NULL), 0);
	assert_int_equal(ds_config_set_maintenance(cfg, "usb1", DS_MAINT_NONE, NULL), 0);
	assert_int_equal(u1->maintenance, DS_MAINT_NONE);
	text = format_ok(cfg);
	assert_null(strstr(text, "usb1\n\tbacking-device 5f1c4a5e-0c7e-4b7a-9a52-6d0b2f1f9c11\n"
				 "\tmaintenance-mode"));
	free(text);

	/* store1 starts in read-only (from the file): clear it, the raw prop goes */
	assert_int_equal(ds_config_set_maintenance(cfg, "store1", DS_MAINT_NONE, NULL), 0);
	assert_int_equal(cfg->stores[0].n_props, 4);
	text = format_ok(cfg);
	assert_null(strstr(text, "maintenance-mode"));
	free(text);

	/* once "delete", only "delete" */
	assert_int_equal(ds_config_set_maintenance(cfg, "usb1", DS_MAINT_DELETE, NULL), 0);
	memset(&logs, 0, sizeof(logs));
	assert_int_equal(ds_config_set_maintenance(cfg, "usb1", DS_MAINT_READ_ONLY, NULL), -EPERM);
	assert_int_equal(ds_config_set_maintenance(cfg, "usb1", DS_MAINT_OFFLINE, "x"), -EPERM);
	assert_int_equal(ds_config_set_maintenance(cfg, "usb1", DS_MAINT_NONE, NULL), -EPERM);
	assert_int_equal(logs.count, 3);
	assert_int_equal(u1->maintenance, DS_MAINT_DELETE);
	assert_int_equal(ds_config_set_maintenance(cfg, "usb1", DS_MAINT_DELETE, "going"), 0);
	assert_string_equal(u1->maintenance_message, "going");
	text = format_ok(cfg);
	assert_non_null(strstr(text, "\tmaintenance-mode type=delete,message=\"going\"\n"));
	free(text);
	ds_config_free(cfg);

	/* a store parsed in "delete" is held to it too */
	cfg = parse_ok("datastore: abc\n\tpath /x\n\tmaintenance-mode delete\n");
	assert_int_equal(ds_config_set_maintenance(cfg, "abc", DS_MAINT_NONE, NULL), -EPERM);
	ds_config_free(cfg);
}

static void test_maintenance_names(void **state)
{
	(void)state;
	assert_int_equal(ds_maintenance_parse("read-only"), DS_MAINT_READ_ONLY);
	assert_int_equal(ds_maintenance_parse("offline"), DS_MAINT_OFFLINE);
	assert_int_equal(ds_maintenance_parse("delete"), DS_MAINT_DELETE);
	assert_int_equal(ds_maintenance_parse("unmount"), DS_MAINT_UNMOUNT);
	assert_int_equal(ds_maintenance_parse("s3-refresh"), DS_MAINT_S3_REFRESH);
	assert_int_equal(ds_maintenance_parse(""), -EINVAL);
	assert_int_equal(ds_maintenance_parse("readonly"), -EINVAL);
	assert_int_equal(ds_maintenance_parse("Offline"), -EINVAL);
	assert_string_equal(ds_maintenance_name(DS_MAINT_NONE), "");
	assert_string_equal(ds_maintenance_name(DS_MAINT_READ_ONLY), "read-only");
	assert_string_equal(ds_maintenance_name(DS_MAINT_S3_REFRESH), "s3-refresh");
}

/* The message as PBS's MaintenanceMode::check shows it (spec §6.2). */
static void test_maintenance_message_display(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "disk%20swap", "disk swap" },
		{ "a%2cb%2C", "a,b," },        /* either case of hex digit */
		{ "100%", "100%" },            /* no escape: kept */
		{ "50% done %4", "50% done %4" },
		{ "%zz%2", "%zz%2" },
		{ "%25%32%30", "%20" },        /* decoded once */
		{ "caf%C3%A9", "caf\xc3\xa9" },
		{ "bad %FF", NULL },           /* not UTF-8: nothing, as PBS */
		{ "line%0Abreak", "line%0Abreak" }, /* control: as written */
		{ "nul%00", "nul%00" },
		{ "", NULL },
		{ NULL, NULL },
	};
	char *out;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		out = (char *)1;
		assert_int_equal(ds_maintenance_message_display(cases[i].in, &out), 0);
		if (cases[i].want)
			assert_string_equal(out, cases[i].want);
		else
			assert_null(out);
		free(out);
	}
}

/* DataStoreConfig has a "name" property (the section id): PBS's parser
 * takes a line giving it, checked as a datastore name, then sets it to the
 * id, and its writer leaves it out. dsfs refused such a file ("unknown
 * property 'name'"), every store of it, where PBS reads it. */
static void test_name_property(void **state)
{
	struct ds_config *cfg;
	const char *bad;
	char *text;

	(void)state;
	memset(&logs, 0, sizeof(logs));
	cfg = parse_ok("datastore: store1\n\tname other-name\n\tpath /x\n\n"
		       "datastore: store2\n\tpath /y\n\tname store2\n");
	assert_int_equal(cfg->n_stores, 2);
	assert_string_equal(cfg->stores[0].name, "store1");
	assert_null(ds_config_find(cfg, "other-name"));
	text = format_ok(cfg);
	assert_string_equal(text, "datastore: store1\n\tpath /x\n\n"
				  "datastore: store2\n\tpath /y\n");
	free(text);
	ds_config_free(cfg);
	assert_int_equal(logs.count, 0);

	/* checked as a name, and given once */
	cfg = (void *)1;
	bad = "datastore: store1\n\tname ab\n\tpath /x\n";
	assert_int_equal(ds_config_parse(bad, strlen(bad), "test.cfg", &cfg), -EINVAL);
	assert_non_null(strstr(logs.text, "test.cfg:2: property 'name': not a datastore name"));
	bad = "datastore: store1\n\tname abc\n\tname abc\n\tpath /x\n";
	assert_int_equal(ds_config_parse(bad, strlen(bad), "test.cfg", &cfg), -EINVAL);
	assert_non_null(strstr(logs.text, "test.cfg:3: duplicate property 'name'"));
	assert_ptr_equal(cfg, (void *)1);
}

static void test_check_property(void **state)
{
	struct ds_datastore_cfg ds = { 0 };
	char why[128];

	(void)state;
	assert_int_equal(ds_config_check_property(&ds, "tuning", "sync-level=none", why, sizeof(why)),
			 0);
	assert_string_equal(ds.sync_level, "none");
	assert_int_equal(ds_config_check_property(&ds, "nope", "x", why, sizeof(why)), -ENOENT);
	assert_int_equal(ds_config_check_property(&ds, "keep-last", "0", why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "between 1"));
	free(ds.sync_level);
}

/* 1,000 stores: also the input of later benchmarks. */
static void test_many_stores(void **state)
{
	size_t cap = 1000 * 160, len = 0;
	char *in = malloc(cap), *out;
	struct ds_config *cfg;
	const struct ds_datastore_cfg *d;

	(void)state;
	assert_non_null(in);
	for (int i = 0; i < 1000; i++)
		len += (size_t)snprintf(in + len, cap - len,
					"%sdatastore: store-%04d\n"
					"\tcomment store number %d\n"
					"\tgc-schedule daily\n"
					"\tpath /srv/pbs/store-%04d\n",
					i ? "\n" : "", i, i, i);
	cfg = parse_ok(in);
	assert_int_equal(cfg->n_stores, 1000);
	d = ds_config_find(cfg, "store-0999");
	assert_non_null(d);
	assert_string_equal(d->path, "/srv/pbs/store-0999");
	assert_ptr_equal(ds_config_find(cfg, "store-0000"), &cfg->stores[0]);
	out = format_ok(cfg);
	assert_string_equal(out, in);
	free(out);
	ds_config_free(cfg);
	free(in);
}

static void test_load(void **state)
{
	char *dir = tu_tmpdir(), path[4096], other[4200];
	struct ds_config *cfg = (void *)1;
	FILE *f;

	(void)state;
	/* No file, even no directory: no datastores, as PBS reads it
	 * (pbs-config's config(), file_read_optional_string). */
	snprintf(path, sizeof(path), "%s/nodir/datastore.cfg", dir);
	assert_int_equal(ds_config_load(path, &cfg), 0);
	assert_int_equal(cfg->n_stores, 0);
	assert_false(ds_config_has_store(path, "abc"));
	ds_config_free(cfg);
	cfg = (void *)1;
	snprintf(path, sizeof(path), "%s/datastore.cfg", dir);
	assert_int_equal(ds_config_load(path, &cfg), 0);
	assert_int_equal(cfg->n_stores, 0);
	ds_config_free(cfg);
	cfg = (void *)1;
	/* Any other failure stays one. */
	assert_int_equal(ds_config_load(dir, &cfg), -EISDIR);
	snprintf(other, sizeof(other), "%s/datastore.cfg/x", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(ds_config_load(other, &cfg), -ENOTDIR);
	assert_ptr_equal(cfg, (void *)1);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("datastore: abc\n\tpath /x\n\tkeep-last 0\n", f);
	fclose(f);
	memset(&logs, 0, sizeof(logs));
	assert_int_equal(ds_config_load(path, &cfg), -EINVAL);
	assert_non_null(strstr(logs.text, "datastore.cfg:3: "));
	assert_int_equal(strncmp(logs.text, path, strlen(path)), 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(spec_example, f);
	fclose(f);
	assert_int_equal(ds_config_load(path, &cfg), 0);
	assert_int_equal(cfg->n_stores, 2);
	ds_config_free(cfg);
	ds_config_free(NULL);
	tu_rmtree(dir);
	free(dir);
}

/* The fixture's datastore.cfg was written by PBS's code: we must read it
 * and write it back byte for byte. */
static void test_fixture(void **state)
{
	char path[4096], *text;
	struct ds_config *cfg;
	uint8_t *raw;
	size_t len;

	(void)state;
	snprintf(path, sizeof(path), "%s/pbs-store-a.datastore.cfg", tu_fixtures());
	assert_int_equal(ds_config_load(path, &cfg), 0);
	assert_int_equal(cfg->n_stores, 1);
	assert_string_equal(cfg->stores[0].name, "store-a");
	assert_string_equal(cfg->stores[0].path, "/srv/pbs/store-a");
	assert_string_equal(cfg->stores[0].comment, "pbs-oracle fixture (seed 1)");
	assert_int_equal(cfg->stores[0].maintenance, DS_MAINT_NONE);
	raw = tu_read(path, &len);
	text = format_ok(cfg);
	assert_int_equal(strlen(text), len);
	assert_memory_equal(text, raw, len);
	free(text);
	free(raw);
	ds_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_example),
		cmocka_unit_test(test_maintenance_forms),
		cmocka_unit_test(test_property_string),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_lenient_syntax),
		cmocka_unit_test(test_duplicate_store),
		cmocka_unit_test(test_format_exact),
		cmocka_unit_test(test_set_maintenance),
		cmocka_unit_test(test_maintenance_names),
		cmocka_unit_test(test_maintenance_message_display),
		cmocka_unit_test(test_check_property),
		cmocka_unit_test(test_name_property),
		cmocka_unit_test(test_many_stores),
		cmocka_unit_test(test_load),
		cmocka_unit_test(test_fixture),
	};

	return tu_run_group("config", tests, setup, teardown);
}
