/* Suite for store/locks: the new scheme's file names (systemd path
 * escaping, the hashed form), where the lock files go, and the conflicts
 * between exclusive and shared snapshot locks, group and manifest locks, in
 * both the new and the old (directory flock) scheme (spec §1.7.2). */
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
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/locks.h"
#include "testutil.h"

static void test_escape(void **state)
{
	char out[600], longrel[400];
	(void)state;

	assert_int_equal(ds_lock_escape("vm/100", out, sizeof(out)), 0);
	assert_string_equal(out, "vm-100");
	/* the example of spec §1.7.2 */
	assert_int_equal(ds_lock_escape("vm/100/2022-05-02T08:11:33Z", out, sizeof(out)), 0);
	assert_string_equal(out, "vm-100-2022\\x2d05\\x2d02T08\\x3a11\\x3a33Z");
	assert_int_equal(ds_lock_escape("/host/a.b", out, sizeof(out)), 0);
	assert_string_equal(out, "host-a.b");
	/* a dot in the first position is escaped, later ones are not */
	assert_int_equal(ds_lock_escape(".x/.y", out, sizeof(out)), 0);
	assert_string_equal(out, "\\x2ex-.y");
	assert_int_equal(ds_lock_escape("ct/1/2022-05-02T08:11:33Z/.index.json.lck", out,
					 sizeof(out)), 0);
	assert_string_equal(out, "ct-1-2022\\x2d05\\x2d02T08\\x3a11\\x3a33Z-.index.json.lck");

	/* >= 255 escaped bytes: hashed/<80>...<80>-<sha256 of the raw path> */
	memset(longrel, 'a', 300);
	memcpy(longrel, "host/", 5);
	longrel[300] = '\0';
	assert_int_equal(ds_lock_escape(longrel, out, sizeof(out)), 0);
	assert_memory_equal(out, "hashed/host-aaaa", 16);
	assert_int_equal(strlen(out), strlen("hashed/") + 80 + 3 + 80 + 1 + 64);
	assert_memory_equal(out + 7 + 80, "...", 3);
	{
		char hex[65];

		tu_sha256_hex(longrel, strlen(longrel), hex);
		assert_string_equal(out + strlen(out) - 64, hex);
	}
}

struct env {
	char *base, *lockdir;
	int basefd;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	char *p;

	e->base = tu_tmpdir();
	e->lockdir = tu_pathf("%s/run/locks", e->base);
	p = tu_pathf("mkdir -p '%s/store/ns/a/vm/100/2022-05-02T08:11:33Z' "
		     "'%s/store/vm/100/2022-05-02T08:11:33Z' '%s/run'", e->base, e->base, e->base);
	assert_int_equal(system(p), 0);
	free(p);
	p = tu_pathf("%s/store", e->base);
	e->basefd = open(p, O_RDONLY | O_DIRECTORY);
	assert_true(e->basefd >= 0);
	free(p);
	setenv("DSFS_LOCK_DIR", e->lockdir, 1);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	close(e->basefd);
	tu_rmtree(e->base);
	free(e->base);
	free(e->lockdir);
	free(e);
	return 0;
}

static const char SNAP[] = "vm/100/2022-05-02T08:11:33Z";
static const char NSSNAP[] = "ns/a/vm/100/2022-05-02T08:11:33Z";

static void test_conflicts(void **state)
{
	struct env *e = *state;
	struct ds_lock *x = NULL, *s1 = NULL, *s2 = NULL, *g = NULL, *m = NULL, *m2 = NULL;
	struct stat st;
	char *p;

	assert_int_equal(ds_lock_snapshot(e->basefd, "st", SNAP, true, &x), 0);
	/* the new scheme's file exists where PBS looks for it */
	p = tu_pathf("%s/st/vm-100-2022\\x2d05\\x2d02T08\\x3a11\\x3a33Z", e->lockdir);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	free(p);
	assert_int_equal(ds_lock_snapshot(e->basefd, "st", SNAP, true, &s1), -EBUSY);
	assert_int_equal(ds_lock_snapshot(e->basefd, "st", SNAP, false, &s1), -EBUSY);
	/* another snapshot path (namespace a) is independent */
	assert_int_equal(ds_lock_snapshot(e->basefd, "st", NSSNAP, true, &s2), 0);
	p = tu_pathf("%s/st/a/vm-100-2022\\x2d05\\x2d02T08\\x3a11\\x3a33Z", e->lockdir);
	assert_int_equal(stat(p, &st), 0);
	free(p);
	ds_lock_release(s2);
	s2 = NULL;
	ds_lock_release(x);

	/* shared locks coexist, and keep an exclusive one out */
	assert_int_equal(ds_lock_snapshot(e->basefd, "st", SNAP, false, &s1), 0);
	assert_int_equal(ds_lock_snapshot(e->basefd, "st", SNAP, false, &s2), 0);
	assert_int_equal(ds_lock_snapshot(e->basefd, "st", SNAP, true, &x), -EBUSY);
	ds_lock_release(s1);
	ds_lock_release(s2);

	/* a PBS holding the lock file (not the directory) is seen too */
	{
		int fd;

		p = tu_pathf("%s/st/vm-100-2022\\x2d05\\x2d02T08\\x3a11\\x3a33Z", e->lockdir);
		fd = open(p, O_RDWR);
		assert_true(fd >= 0);
		assert_int_equal(flock(fd, LOCK_SH | LOCK_NB), 0);
		assert_int_equal(ds_lock_snapshot(e->basefd, "st", SNAP, true, &x), -EBUSY);
		close(fd);
		free(p);
	}

	assert_int_equal(ds_lock_group(e->basefd, "st", "vm/100", &g), 0);
	p = tu_pathf("%s/st/vm-100", e->lockdir);
	assert_int_equal(stat(p, &st), 0);
	free(p);
	{
		struct ds_lock *g2 = NULL;

		assert_int_equal(ds_lock_group(e->basefd, "st", "vm/100", &g2), -EBUSY);
	}
	ds_lock_release(g);

	assert_int_equal(ds_lock_manifest("st", SNAP, &m), 0);
	p = tu_pathf("%s/st/vm-100-2022\\x2d05\\x2d02T08\\x3a11\\x3a33Z-.index.json.lck",
		     e->lockdir);
	assert_int_equal(stat(p, &st), 0);
	free(p);
	/* waits 5 s, then gives up */
	assert_int_equal(ds_lock_manifest("st", SNAP, &m2), -EBUSY);
	ds_lock_release(m);

	assert_int_equal(ds_lock_snapshot(e->basefd, "st", "vm/100/nonsense", true, &x), -EINVAL);
	assert_int_equal(ds_lock_snapshot(e->basefd, "st", "vm/101/2022-05-02T08:11:33Z", true, &x),
			 -ENOENT);
}

static void test_old_scheme(void **state)
{
	struct env *e = *state;
	struct ds_lock *x = NULL, *m = NULL;
	struct stat st;
	char *p, *old = tu_pathf("%s/run/old-locking", e->base);
	int fd, dirfd;

	fd = open(old, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	close(fd);
	/* the directory itself is locked: a PBS 3.x flock on it conflicts */
	p = tu_pathf("%s/store/%s", e->base, SNAP);
	dirfd = open(p, O_RDONLY | O_DIRECTORY);
	assert_true(dirfd >= 0);
	assert_int_equal(flock(dirfd, LOCK_SH | LOCK_NB), 0);
	assert_int_equal(ds_lock_snapshot(e->basefd, "old", SNAP, true, &x), -EBUSY);
	close(dirfd);
	assert_int_equal(ds_lock_snapshot(e->basefd, "old", SNAP, true, &x), 0);
	ds_lock_release(x);
	free(p);
	/* no new-scheme file was made */
	p = tu_pathf("%s/old", e->lockdir);
	assert_int_equal(stat(p, &st), -1);
	free(p);
	/* the old manifest lock path */
	assert_int_equal(ds_lock_manifest("old", NSSNAP, &m), 0);
	p = tu_pathf("%s/old/ns/a/vm/100/2022-05-02T08:11:33Z/2022-05-02T08:11:33Z.index.json.lck",
		     e->lockdir);
	assert_int_equal(stat(p, &st), 0);
	free(p);
	ds_lock_release(m);
	unlink(old);
	free(old);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_conflicts),
		cmocka_unit_test(test_old_scheme),
	};

	return tu_run_group("locks", tests, setup, teardown);
}
