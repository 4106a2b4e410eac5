/* loop — mount.dsfs's request loop with -o spin=USEC, in place of libfuse's
 * fuse_session_loop_mt.
 *
 * Why: on a VM, waking a thread that sleeps in read(2) on /dev/fuse is most
 * of a FUSE round trip. Measured here (2 vCPUs): lgetxattr in a loop takes
 * 26 µs with libfuse's loop and 17 µs when the daemon polls for the next
 * request; `ls -lR` asks twice per entry (security.selinux, the ACL). A
 * polling thread beside libfuse's threads does not help: the kernel still
 * wakes one of the threads blocked in read(2) for every request, and on two
 * cores that wakeup ate the gain (ls -lR unchanged).
 *
 * So one thread at a time reads the device (the reader); the others wait on
 * a condition variable. What the reader answers itself, reading on after
 * it without waking or sleeping:
 *   - requests dsfs answers from memory (getattr, xattrs, forget, ...);
 *   - reads of the snapshots (read, lookup, readdir, ...) while no other
 *     request waits: they may load a chunk, but wait on nothing else.
 * Before anything else (writes, opens, releases that finish a snapshot,
 * renames, statfs), or a read while others wait, it hands the reading to
 * an idle thread or starts one (up to max_threads), then answers it.
 * A watchdog gives a request the reader answers itself a reader behind it
 * once it has taken WATCH_NS (a chunk on a slow disk, a disk that hangs).
 *
 * After a request of the first kind the reader polls /dev/fuse for spin_us
 * before it sleeps in poll(2); not after reads, whose pipeline (readahead,
 * the cache's prefetch) keeps both cores busy without a poller taking one.
 * An idle mount neither polls nor ticks: the watchdog parks while the
 * reader sleeps.
 *
 * Stops on unmount (read gives ENODEV), on SIGHUP, SIGINT or SIGTERM
 * (handlers installed while loop_run runs; the number is returned) or on
 * an error reading the device. */
#include "fs/mount/loop.h"

#include <errno.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "store/log.h"
#include "store/util.h"

struct loop {
	struct fuse_session *se;
	unsigned max_threads;
	uint64_t spin_ns;
	int stopfd; /* eventfd: readable once the loop is to stop */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* Below under mu. */
	bool reading; /* a thread is the reader */
	bool stop;
	unsigned idle;      /* threads waiting on cv */
	unsigned nthreads;  /* started, thread 0 the caller's */
	pthread_t *threads; /* [1, nthreads) */
	int err;
	/* When a reader last got a memory-only request: it polls until
	 * spin_ns after that. */
	uint64_t last;
	/* The watchdog (see watch). */
	pthread_cond_t wd_cv;
	pthread_t wd;
	bool wd_started, wd_parked;
	bool dozing;           /* the reader sleeps in poll(2) */
	uint64_t inline_since; /* a request answered with no reader behind it */
	/* Counted for -d. */
	unsigned long long requests, inline_answered, found_polling, takeovers;
};

/* A request the reader answers itself that takes longer than this gets a
 * reader behind it (a chunk load on a slow disk, a disk that hangs). */
#define WATCH_NS (10 * 1000 * 1000ull)

static int stop_fd = -1;
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	int e = errno;

	stop_signal = sig;
	if (stop_fd >= 0)
		eventfd_write(stop_fd, 1);
	errno = e;
}

/* The request's opcode; 0 for a short buffer or a spliced one (dsfs has no
 * write_buf, so libfuse does not splice). */
static uint32_t opcode(const struct fuse_buf *b)
{
	const struct fuse_in_header *in = b->mem;

	if ((b->flags & FUSE_BUF_IS_FD) || b->size < sizeof(*in))
		return 0;
	return in->opcode;
}

/* Requests dsfs answers from memory (the node table, an entry's attributes
 * decoded with it). An xattr of an entry that has attribute items is read
 * from the archive and may load a chunk; the watchdog covers that. */
static bool quick(uint32_t op)
{
	switch (op) {
	case FUSE_GETATTR:
	case FUSE_GETXATTR:
	case FUSE_LISTXATTR:
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT:
	case FUSE_RELEASEDIR:
	case FUSE_ACCESS:
		return true;
	default:
		return false;
	}
}

/* Reads of the snapshots: they may load chunks (a few ms), but they wait on
 * nothing else. Answered by the reader when no other request waits. */
static bool reading_op(uint32_t op)
{
	switch (op) {
	case FUSE_READ:
	case FUSE_LOOKUP:
	case FUSE_OPENDIR:
	case FUSE_READDIR:
	case FUSE_READDIRPLUS:
	case FUSE_READLINK:
		return true;
	default:
		return false;
	}
}

static bool pending(struct loop *l)
{
	struct pollfd p = { .fd = fuse_session_fd(l->se), .events = POLLIN };

	return poll(&p, 1, 0) > 0;
}

/* The reader's wait for the next request: > 0 with one in b, 0 to stop
 * (unmounted, a signal, loop stopping), < 0 an error. It polls until spin
 * time after last, then sleeps (*slept). */
static int next_request(struct loop *l, struct fuse_buf *b, uint64_t last, bool *slept)
{
	int fd = fuse_session_fd(l->se);

	*slept = false;
	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
				       { .fd = l->stopfd, .events = POLLIN } };
		bool spin = l->spin_ns && ds_now_ns() - last < l->spin_ns;
		int n;

		if (!spin && !*slept) {
			pthread_mutex_lock(&l->mu);
			l->dozing = true;
			pthread_mutex_unlock(&l->mu);
			*slept = true;
		}
		n = poll(p, 2, spin ? 0 : -1);

		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		if (p[1].revents)
			return 0;
		/* Another reader of the device (none of ours) may take the
		 * request between poll and read: read then waits for the
		 * next one, which is harmless. */
		n = fuse_session_receive_buf(l->se, b);
		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n == 0 || fuse_session_exited(l->se))
			return 0; /* unmounted (ENODEV): libfuse exited the session */
		return n;
	}
}

static void *worker(void *arg);

/* An idle thread takes over reading, or a new one. Under mu. */
static void hand_over(struct loop *l)
{
	if (l->idle > 0) {
		pthread_cond_signal(&l->cv);
		return;
	}
	if (l->stop || l->nthreads >= l->max_threads)
		return;
	if (pthread_create(&l->threads[l->nthreads], NULL, worker, l) == 0)
		l->nthreads++;
	/* Else this thread reads again after this request. */
}

static void stop_locked(struct loop *l, int err)
{
	if (!l->stop) {
		l->stop = true;
		l->err = err;
		pthread_cond_broadcast(&l->cv);
		pthread_cond_signal(&l->wd_cv);
		eventfd_write(l->stopfd, 1);
	}
}

static void *worker(void *arg)
{
	struct loop *l = arg;
	struct fuse_buf b = { 0 };

	pthread_mutex_lock(&l->mu);
	for (;;) {
		uint64_t last, mine = 0;
		uint32_t op;
		bool slept, q;
		int r;

		while (l->reading && !l->stop) {
			l->idle++;
			pthread_cond_wait(&l->cv, &l->mu);
			l->idle--;
		}
		if (l->stop)
			break;
		l->reading = true;
		last = l->last;
		pthread_mutex_unlock(&l->mu);
		r = next_request(l, &b, last, &slept);
		pthread_mutex_lock(&l->mu);
		l->reading = false;
		l->dozing = false;
		if (r <= 0) {
			stop_locked(l, r);
			break;
		}
		l->requests++;
		if (!slept)
			l->found_polling++;
		if (slept && l->wd_parked)
			pthread_cond_signal(&l->wd_cv);
		/* Poll after what a metadata walk asks in a row (ls -lR:
		 * two getxattr per entry); not after reads, whose pipeline
		 * (readahead, the cache's prefetch) keeps both cores busy
		 * without a poller taking one of them. */
		op = opcode(&b);
		q = quick(op);
		if (q)
			l->last = ds_now_ns();
		if (!q && (!reading_op(op) || pending(l))) {
			hand_over(l);
		} else {
			l->inline_answered++;
			mine = l->inline_since = ds_now_ns();
		}
		pthread_mutex_unlock(&l->mu);
		fuse_session_process_buf(l->se, &b);
		pthread_mutex_lock(&l->mu);
		if (mine && l->inline_since == mine)
			l->inline_since = 0;
	}
	pthread_mutex_unlock(&l->mu);
	free(b.mem);
	return NULL;
}

/* Ticks every WATCH_NS while the reader is awake; parked while it sleeps in
 * poll(2), so an idle mount has no timer. */
static void *watch(void *arg)
{
	struct loop *l = arg;

	pthread_mutex_lock(&l->mu);
	while (!l->stop) {
		struct timespec ts;
		uint64_t t;

		if (l->dozing) {
			l->wd_parked = true;
			pthread_cond_wait(&l->wd_cv, &l->mu);
			l->wd_parked = false;
			continue;
		}
		t = ds_now_ns() + WATCH_NS;
		ts.tv_sec = (time_t)(t / 1000000000u);
		ts.tv_nsec = (long)(t % 1000000000u);
		pthread_cond_timedwait(&l->wd_cv, &l->mu, &ts);
		if (!l->stop && !l->reading && l->inline_since &&
		    ds_now_ns() - l->inline_since >= WATCH_NS) {
			l->inline_since = 0;
			l->takeovers++;
			hand_over(l);
		}
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

static const int stop_sigs[] = { SIGHUP, SIGINT, SIGTERM };
#define NSIGS (sizeof(stop_sigs) / sizeof(stop_sigs[0]))

/* Any thread may run the handler: it only notes the number and makes
 * stopfd readable, which wakes the reader. A signal ignored since the
 * daemon started stays ignored, as libfuse's fuse_set_signal_handlers
 * leaves it: `nohup mount.dsfs -f …` is not stopped by a hangup. */
static int set_handlers(struct sigaction old[NSIGS])
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < NSIGS; i++) {
		if (sigaction(stop_sigs[i], NULL, &old[i]) < 0)
			return -errno;
		if (old[i].sa_handler == SIG_IGN)
			continue;
		if (sigaction(stop_sigs[i], &sa, NULL) < 0)
			return -errno;
	}
	return 0;
}

static void restore_handlers(const struct sigaction old[NSIGS])
{
	for (size_t i = 0; i < NSIGS; i++)
		sigaction(stop_sigs[i], &old[i], NULL);
}

int loop_run(struct fuse_session *se, unsigned max_threads, unsigned spin_us)
{
	struct loop l = {
		.se = se,
		.max_threads = max_threads ? max_threads : 1,
		.spin_ns = (uint64_t)spin_us * 1000,
		.mu = PTHREAD_MUTEX_INITIALIZER,
		.cv = PTHREAD_COND_INITIALIZER,
		.nthreads = 1,
	};
	pthread_condattr_t ca;
	struct sigaction old[NSIGS];
	unsigned n;
	int r;

	l.threads = calloc(l.max_threads, sizeof(*l.threads));
	l.stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!l.threads || l.stopfd < 0) {
		r = -ENOMEM;
		goto out;
	}
	/* The watchdog's timed waits run on the monotonic clock. */
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&l.wd_cv, &ca) != 0) {
		r = -ENOMEM;
		goto out;
	}
	pthread_condattr_destroy(&ca);
	l.wd_started = pthread_create(&l.wd, NULL, watch, &l) == 0;
	if (!l.wd_started) {
		r = -EAGAIN;
		goto out;
	}
	stop_fd = l.stopfd;
	stop_signal = 0;
	r = set_handlers(old);
	if (r < 0)
		goto out;
	/* Before the handlers: libfuse's exited the session. */
	if (!fuse_session_exited(se))
		worker(&l);
	pthread_mutex_lock(&l.mu);
	stop_locked(&l, 0);
	n = l.nthreads; /* final: no thread starts once stopping */
	pthread_mutex_unlock(&l.mu);
	for (unsigned i = 1; i < n; i++)
		pthread_join(l.threads[i], NULL);
	ds_debug("request loop: %llu requests, %llu answered by the reader, %llu found while "
		 "polling, %llu taken over after %llu ms, %u threads",
		 l.requests, l.inline_answered, l.found_polling, l.takeovers,
		 WATCH_NS / 1000000, n);
	restore_handlers(old);
	fuse_session_exit(se);
	if (stop_signal)
		r = stop_signal;
	else
		r = l.err < 0 ? l.err : 0;
out:
	stop_fd = -1;
	if (l.wd_started) {
		pthread_mutex_lock(&l.mu);
		stop_locked(&l, 0);
		pthread_mutex_unlock(&l.mu);
		pthread_join(l.wd, NULL);
		pthread_cond_destroy(&l.wd_cv);
	}
	if (l.stopfd >= 0)
		close(l.stopfd);
	free(l.threads);
	return r;
}
