/* Suite for store/activeops: PBS's active-operations file (spec §6.5) —
 * exact format, dead entries dropped, concurrent updaters, process start
 * times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/activeops.h"
#include "store/util.h"
#include "testutil.h"

#define NO_PID 999999

static char *slurp(const char *path)
{
	size_t len;

	return (char *)tu_read(path, &len);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0660);

	assert_true(fd >= 0);
	assert_int_equal(ds_write_all(fd, text, strlen(text)), 0);
	close(fd);
}

/* The file as PBS writes it with this process as the only entry. */
static char *expected(int64_t rd, int64_t wr)
{
	return tu_pathf("[{\"pid\":%d,\"starttime\":%" PRId64
		     ",\"active_operations\":{\"read\":%" PRId64 ",\"write\":%" PRId64 "}}]",
		     (int)getpid(), ds_process_starttime(getpid()), rd, wr);
}

static void check_file(const char *path, int64_t rd, int64_t wr)
{
	char *want = expected(rd, wr), *got = slurp(path);

	assert_string_equal(got, want);
	free(got);
	free(want);
}

static void check_get(const char *dir, const char *store, int64_t rd, int64_t wr)
{
	int64_t r = -1, w = -1;

	assert_int_equal(ds_activeops_get(dir, store, &r, &w), 0);
	assert_int_equal(r, rd);
	assert_int_equal(w, wr);
}

/* Reads one byte from a child's pipe, failing instead of hanging when the
 * child died before writing it. */
static void wait_byte(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char b;

	assert_int_equal(poll(&p, 1, 30000), 1);
	assert_int_equal(read(fd, &b, 1), 1);
}

static void test_starttime(void **state)
{
	int64_t me = ds_process_starttime(getpid());
	pid_t pid;
	int st, ready[2], hold[2];
	char b;

	(void)state;
	assert_true(me > 0);
	assert_int_equal(ds_process_starttime(getpid()), me);
	assert_int_equal(kill(NO_PID, 0), -1);
	assert_true(ds_process_starttime(NO_PID) < 0);
	assert_true(ds_process_starttime(getppid()) >= 0);

	/* A zombie is dead. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	for (int i = 0; i < 500 && ds_process_starttime(pid) >= 0; i++)
		usleep(10000);
	assert_true(ds_process_starttime(pid) < 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);

	/* A command name with ") Z 1 2" must not confuse the field count. */
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(hold), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int64_t before = ds_process_starttime(getpid());

		prctl(PR_SET_NAME, "x) Z 1 2 (y", 0, 0, 0);
		if (before <= 0 || ds_process_starttime(getpid()) != before)
			_exit(1);
		if (write(ready[1], "r", 1) != 1 || read(hold[0], &b, 1) < 0)
			_exit(2);
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	wait_byte(ready[0]);
	assert_true(ds_process_starttime(pid) > 0);
	assert_int_equal(write(hold[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	close(ready[0]);
	close(hold[1]);
}

static void test_update_format(void **state)
{
	char *tmp = tu_tmpdir();
	char *dir = tu_pathf("%s/run/active-operations", tmp); /* parent missing too */
	char *file = tu_pathf("%s/store1", dir), *lock = tu_pathf("%s/store1.lock", dir), *got;
	struct stat st;

	(void)state;
	check_get(dir, "store1", 0, 0); /* no file, no directory */
	/* A decrement without an entry creates nothing. */
	assert_int_equal(ds_activeops_update(dir, "store1", DS_OP_READ, -1), 0);
	got = slurp(file);
	assert_string_equal(got, "[]");
	free(got);
	assert_int_equal(ds_activeops_update(dir, "store1", DS_OP_READ, 1), 0);
	check_file(file, 1, 0);
	assert_int_equal(stat(lock, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	check_get(dir, "store1", 1, 0);
	assert_int_equal(ds_activeops_update(dir, "store1", DS_OP_WRITE, 1), 0);
	check_file(file, 1, 1);
	assert_int_equal(ds_activeops_update(dir, "store1", DS_OP_READ, 1), 0);
	check_file(file, 2, 1);
	assert_int_equal(ds_activeops_update(dir, "store1", DS_OP_LOOKUP, 1), 0);
	check_file(file, 2, 1);
	assert_int_equal(ds_activeops_update(dir, "store1", DS_OP_READ, -2), 0);
	assert_int_equal(ds_activeops_update(dir, "store1", DS_OP_WRITE, -1), 0);
	check_file(file, 0, 0);
	check_get(dir, "store1", 0, 0);

	/* Absolute counts: set on the entry, or a new entry with them. */
	assert_int_equal(ds_activeops_set(dir, "store1", 5, 2), 0);
	check_file(file, 5, 2);
	assert_int_equal(ds_activeops_set(dir, "store1", 0, 0), 0);
	check_file(file, 0, 0);
	assert_int_equal(ds_activeops_set(dir, "store1", -1, 0), -EINVAL);
	assert_int_equal(ds_activeops_set(dir, "store3", 0, 0), 0);
	free(file);
	file = tu_pathf("%s/store3", dir);
	got = slurp(file);
	assert_string_equal(got, "[]"); /* zeros create no entry */
	free(got);
	assert_int_equal(ds_activeops_set(dir, "store3", 3, 0), 0);
	check_file(file, 3, 0);

	/* Lookup creates an all-zero entry; the first read starts at 1. */
	assert_int_equal(ds_activeops_update(dir, "store2", DS_OP_LOOKUP, 1), 0);
	free(file);
	file = tu_pathf("%s/store2", dir);
	check_file(file, 0, 0);
	/* No temp files are left beside the state and lock files. */
	assert_int_equal(count_entries(dir), 6);
	free(lock);
	free(file);
	free(dir);
	tu_rmtree(tmp);
	free(tmp);
}

static void test_dead_entries(void **state)
{
	char *dir = tu_tmpdir(), *file = tu_pathf("%s/store1", dir), *text;
	int64_t me = ds_process_starttime(getpid()), r, w;

	(void)state;
	assert_true(ds_process_starttime(NO_PID) < 0);
	text = tu_pathf("[{\"pid\":%d,\"starttime\":5,\"active_operations\":{\"read\":5,\"write\":5}},"
		     "{\"pid\":%d,\"starttime\":%" PRId64 ",\"active_operations\":{\"read\":7,\"write\":7}},"
		     "{\"pid\":%d,\"starttime\":%" PRId64 ",\"active_operations\":{\"read\":2,\"write\":0}},"
		     "\"junk\",{\"pid\":\"1\"},{\"pid\":1,\"starttime\":1.5},42]",
		     NO_PID, (int)getpid(), me + 1, (int)getpid(), me);
	put(file, text);
	assert_int_equal(ds_activeops_parse(text, strlen(text), &r, &w), 0);
	assert_int_equal(r, 2);
	assert_int_equal(w, 0);
	check_get(dir, "store1", 2, 0);
	/* An update drops the dead and the stale entries. */
	assert_int_equal(ds_activeops_update(dir, "store1", DS_OP_READ, 1), 0);
	check_file(file, 3, 0);
	free(text);

	/* A broken file: get refuses it, update starts over. */
	put(file, "[{\"pid\":");
	assert_int_equal(ds_activeops_get(dir, "store1", &r, &w), -EBADMSG);
	assert_int_equal(ds_activeops_update(dir, "store1", DS_OP_WRITE, 1), 0);
	check_file(file, 0, 1);
	assert_int_equal(ds_activeops_parse("{}", 2, &r, &w), -EBADMSG);
	assert_int_equal(ds_activeops_parse("", 0, &r, &w), -EBADMSG);
	assert_int_equal(ds_activeops_parse("[]", 2, &r, &w), 0);
	assert_int_equal(r + w, 0);

	/* Counters at the edge of i64 must not overflow (UB). */
	text = tu_pathf("[{\"pid\":%d,\"starttime\":%" PRId64
		     ",\"active_operations\":{\"read\":9223372036854775807,\"write\":0}}]",
		     (int)getpid(), me);
	put(file, text);
	check_get(dir, "store1", INT64_MAX, 0);
	assert_int_equal(ds_activeops_update(dir, "store1", DS_OP_READ, 1), -EBADMSG);
	free(text);
	text = tu_pathf("[{\"pid\":%d,\"starttime\":%" PRId64
		     ",\"active_operations\":{\"read\":9223372036854775807,\"write\":0}},"
		     "{\"pid\":%d,\"starttime\":%" PRId64
		     ",\"active_operations\":{\"read\":1,\"write\":0}}]",
		     (int)getpid(), me, (int)getpid(), me);
	assert_int_equal(ds_activeops_parse(text, strlen(text), &r, &w), -EBADMSG);
	free(text);
	free(file);
	tu_rmtree(dir);
	free(dir);
}

#define CHILDREN 8

/* Children that each end with one read registered and never decrement:
 * counted while alive, ignored once dead. */
static void test_concurrent_children(void **state)
{
	char *dir = tu_tmpdir(), *file = tu_pathf("%s/store1", dir);
	int ready[2], hold[2];
	pid_t pids[CHILDREN];
	char b;

	(void)state;
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(hold), 0);
	for (int i = 0; i < CHILDREN; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			close(hold[1]);
			/* Contend on the lock: 10 increments, 9 decrements. */
			for (int k = 0; k < 19; k++)
				if (ds_activeops_update(dir, "store1", DS_OP_READ,
							k < 10 ? 1 : -1) < 0)
					_exit(1);
			if (write(ready[1], "r", 1) != 1 || read(hold[0], &b, 1) < 0)
				_exit(2);
			_exit(0);
		}
	}
	close(hold[0]);
	for (int i = 0; i < CHILDREN; i++)
		wait_byte(ready[0]);
	check_get(dir, "store1", CHILDREN, 0);
	{
		char *text = slurp(file);
		int entries = 0;

		for (char *p = text; (p = strstr(p, "\"pid\"")); p++)
			entries++;
		assert_int_equal(entries, CHILDREN);
		free(text);
	}
	close(hold[1]); /* EOF: the children exit without decrementing */
	for (int i = 0; i < CHILDREN; i++) {
		int st;

		assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	check_get(dir, "store1", 0, 0);
	assert_int_equal(ds_activeops_update(dir, "store1", DS_OP_LOOKUP, 0), 0);
	check_file(file, 0, 0);
	close(ready[0]);
	close(ready[1]);
	free(file);
	tu_rmtree(dir);
	free(dir);
}

/* PBS's proxy runs as user backup and reads and replaces these files (and
 * flocks the lock file): what a root dsfs creates must be backup's, 0660
 * (directories 0770), or PBS's own tasks on the store fail with EACCES. */
static void test_owner(void **state)
{
	struct passwd *pw = getpwnam("backup");
	char *tmp = tu_tmpdir();
	char *dir = tu_pathf("%s/run/active-operations", tmp);
	char *paths[3] = { tu_pathf("%s/store1", dir), tu_pathf("%s/store1.lock", dir), dir };
	mode_t old_umask;
	struct stat st;

	(void)state;
	if (getuid() != 0 || !pw) {
		tu_rmtree(tmp);
		free(tmp);
		for (int i = 0; i < 3; i++)
			free(paths[i]);
		tu_skip("needs root and a user \"backup\", as on a PBS host");
	}
	old_umask = umask(022);
	assert_int_equal(ds_activeops_set(dir, "store1", 1, 0), 0);
	umask(old_umask);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(stat(paths[i], &st), 0);
		assert_int_equal(st.st_uid, pw->pw_uid);
		assert_int_equal(st.st_gid, pw->pw_gid);
		assert_int_equal(st.st_mode & 07777, i < 2 ? 0660 : 0770);
	}
	/* A file that root made before (an older dsfs) is given back. */
	assert_int_equal(chown(paths[0], 0, 0), 0);
	assert_int_equal(chown(paths[1], 0, 0), 0);
	assert_int_equal(ds_activeops_set(dir, "store1", 0, 0), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(stat(paths[i], &st), 0);
		assert_int_equal(st.st_uid, pw->pw_uid);
	}
	for (int i = 0; i < 3; i++)
		free(paths[i]);
	tu_rmtree(tmp);
	free(tmp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_starttime),
		cmocka_unit_test(test_update_format),
		cmocka_unit_test(test_dead_entries),
		cmocka_unit_test(test_concurrent_children),
		cmocka_unit_test(test_owner),
	};

	return tu_run_group("activeops", tests, NULL, NULL);
}
