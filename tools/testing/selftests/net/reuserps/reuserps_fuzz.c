// SPDX-License-Identifier: GPL-2.0
/*
 * A seeded, bounded fuzzer for SO_REUSERPS: one thread per CPU drives
 * random sequences of socket, SO_REUSERPS (valid and malformed), bind,
 * listen, connect, accept, shutdown, close, reset, reconfiguration,
 * reuseport program attach and detach, tcp_migrate_req flips and CPU
 * offline/online against a few shared ports, and checks as it goes that
 * every errno is the one documented for what was asked and that no
 * listener holds more active connections than its cap (unless its cap was
 * lowered).  At the end every connection is closed and every listener's
 * active count must return to zero.  The same seed replays the same
 * choices (not the same timing).  It runs in a network namespace of its
 * own; only CPU hotplug changes system-wide state, and is left out where
 * the CPUs cannot go offline (or with -C).
 *
 *   reuserps_fuzz [-s SEED] [-n OPS_PER_THREAD] [-C]
 *
 * Without -s the seed is 1, so that a kselftest run is repeatable; the
 * seed is printed either way.  The run is bounded by its count of
 * operations, not by time.
 */
#include <arpa/inet.h>
#include <pthread.h>

#include <linux/filter.h>

#include "kselftest.h"
#include "reuserps_lib.h"

#define NPORTS		3
#define NLISTEN		6	/* per thread */
#define NCONN		24	/* per thread */

struct lsn {
	int fd;
	__u32 cap;
	bool lowered;	/* its cap was lowered: it may hold more */
};

struct worker {
	pthread_t th;
	int id;
	unsigned int seed;
	long ops, errors, checks;
	struct lsn l[NLISTEN];
	int c[NCONN];
	char why[160];
};

static __u16 ports[NPORTS];
static int ncpus, nr_cpu_ids, iters = 300;
static unsigned int seed0;
static bool hotplug_on;		/* some CPU can go offline, and not -C */
static pthread_mutex_t hotplug = PTHREAD_MUTEX_INITIALIZER;
static bool flipped[64];	/* CPUs the run took offline at some point */

static void fail(struct worker *w, const char *what, int err)
{
	if (!w->errors++)
		snprintf(w->why, sizeof(w->why), "%s: errno %d (%s)", what,
			 err, strerror(err));
}

/* Whether @err is one a caller may see for @what. */
static void check_errno(struct worker *w, const char *what, int err,
			const int *ok, int nok)
{
	int i;

	w->checks++;
	if (!err)
		return;
	for (i = 0; i < nok; i++)
		if (err == ok[i])
			return;
	fail(w, what, err);
}

static struct sockaddr_in addr_of(int port)
{
	struct sockaddr_in a = {
		.sin_family = AF_INET,
		.sin_port = htons(ports[port]),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};

	return a;
}

/*
 * A request, malformed one time in eight.  A well-formed one may be
 * refused with EINVAL (a bound socket, or a listener without SO_REUSERPS),
 * EADDRINUSE (a listener asking another policy than its group's) or
 * ENOMEM.  A malformed one must be refused: on a @fresh socket with its
 * own errno, on another with its own or one of those.
 */
static int fuzz_request(struct worker *w, int fd, __u32 *capp, bool fresh)
{
	static const int ok[] = { EINVAL, EADDRINUSE, ENOMEM };
	static const int bad_errno[] = { EINVAL, EINVAL, EINVAL, EINVAL,
					 E2BIG, EINVAL, EFAULT, E2BIG };
	int bad = rand_r(&w->seed) % 8 == 0 ? rand_r(&w->seed) % 8 : -1;
	int cpu = rand_r(&w->seed) % ncpus, err;
	unsigned char buf[64] = {};
	struct reuserps_req *req = (void *)buf;
	socklen_t len = sizeof(*req);
	cpu_set_t *set;
	size_t size;

	set = rps_mask(&cpu, 1, nr_cpu_ids + 1, &size);
	if (!set)
		return errno;	/* CPU_ALLOC()'s: ENOMEM */
	if (rand_r(&w->seed) % 3 == 0)
		CPU_SET_S(rand_r(&w->seed) % ncpus, size, set);
	rps_req_init(req, rand_r(&w->seed) % 2, rand_r(&w->seed) % 4, set,
		     size);
	switch (bad) {
	case 0:
		req->policy = 7;
		break;
	case 1:
		CPU_ZERO_S(size, set);
		break;
	case 2:
		req->flags = 1;
		break;
	case 3:
		len = REUSERPS_REQ_SIZE_VER0 - 1 - rand_r(&w->seed) % 8;
		break;
	case 4:
		len = sizeof(buf);
		buf[sizeof(*req) + rand_r(&w->seed) % (sizeof(buf) -
						       sizeof(*req))] = 1;
		break;
	case 5:
		CPU_SET_S(nr_cpu_ids, size, set);
		break;
	case 6:
		req->cpus = 8;
		break;
	case 7:
		len = REUSERPS_MAX_OPTLEN + 1;
		break;
	}
	if (bad == 7) {
		unsigned char *big = calloc(1, len);

		if (!big) {
			CPU_FREE(set);
			return errno;	/* calloc()'s: ENOMEM */
		}
		memcpy(big, req, sizeof(*req));
		err = rps_setsockopt(fd, big, len);
		free(big);
	} else {
		err = rps_setsockopt(fd, buf, len);
	}
	CPU_FREE(set);
	w->checks++;
	if (bad >= 0 && !err)
		fail(w, "malformed SO_REUSERPS accepted", 0);
	else if (bad >= 0 && err != bad_errno[bad] && fresh)
		fail(w, "malformed SO_REUSERPS, not its errno", err);
	else if (bad >= 0 && err != bad_errno[bad])
		check_errno(w, "malformed SO_REUSERPS", err, ok, 3);
	else if (bad < 0)
		check_errno(w, "SO_REUSERPS", err, ok, 3);
	if (!err)
		*capp = req->max_conns;
	return err ? err : (bad >= 0 ? EINVAL : 0);
}

static void new_listener(struct worker *w, struct lsn *l)
{
	static const int ok[] = { EINVAL, EADDRINUSE, ENOMEM };
	struct sockaddr_in a = addr_of(rand_r(&w->seed) % NPORTS);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
	__u32 cap = 0;
	int err;

	if (fd < 0)
		return fail(w, "socket", errno);
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (fuzz_request(w, fd, &cap, true))
		cap = 0;
	err = bind(fd, (struct sockaddr *)&a, sizeof(a)) ? errno : 0;
	check_errno(w, "bind", err, ok, 3);
	if (!err) {
		err = listen(fd, 8) ? errno : 0;
		check_errno(w, "listen", err, ok, 3);
	}
	if (err) {
		close(fd);
		return;
	}
	l->fd = fd;
	l->cap = cap;
	l->lowered = false;
}

static void check_cap(struct worker *w, struct lsn *l)
{
	struct reuserps_info info;

	if (rps_get(l->fd, &info, NULL, 0))
		return;
	w->checks++;
	if (info.max_conns && !l->lowered && info.active_conns > info.max_conns)
		fail(w, "active above cap", 0);
}

static void reconfigure(struct worker *w, struct lsn *l)
{
	__u32 cap = 0;

	if (!fuzz_request(w, l->fd, &cap, false)) {
		if (cap && (!l->cap || cap < l->cap))
			l->lowered = true;
		l->cap = cap;
	}
}

static void connect_one(struct worker *w, int *c)
{
	struct sockaddr_in a = addr_of(rand_r(&w->seed) % NPORTS);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return fail(w, "socket", errno);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    errno != EINPROGRESS && errno != ECONNREFUSED &&
	    errno != EAGAIN && errno != EADDRNOTAVAIL) {
		fail(w, "connect", errno);
		close(fd);
		return;
	}
	*c = fd;
}

static void close_conn(struct worker *w, int *c)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (rand_r(&w->seed) % 2)
		setsockopt(*c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(*c);
	*c = -1;
}

static int *free_conn(struct worker *w)
{
	int i = rand_r(&w->seed) % NCONN;

	if (w->c[i] >= 0)
		close_conn(w, &w->c[i]);
	return &w->c[i];
}

/* Takes a CPU offline and back online, if hotplug is on. */
static void flip_cpu(struct worker *w)
{
	int cpu = 1 + rand_r(&w->seed) % (ncpus - 1);

	if (!hotplug_on || !can_offline(cpu))
		return;
	pthread_mutex_lock(&hotplug);
	if (!set_online(cpu, 0)) {
		flipped[cpu] = true;
		set_online(cpu, 1);
	}
	pthread_mutex_unlock(&hotplug);
}

static void *run(void *arg)
{
	struct sock_filter code[] = { BPF_STMT(BPF_RET | BPF_K, 0) };
	struct sock_fprog prog = { .len = 1, .filter = code };
	struct worker *w = arg;
	struct lsn *l;
	cpu_set_t set;
	int one = 1, a;
	long op;

	CPU_ZERO(&set);
	CPU_SET(w->id % ncpus, &set);
	sched_setaffinity(0, sizeof(set), &set);
	for (op = 0; op < iters; op++, w->ops++) {
		l = &w->l[rand_r(&w->seed) % NLISTEN];
		switch (rand_r(&w->seed) % 16) {
		case 0: case 1:
			if (l->fd < 0)
				new_listener(w, l);
			break;
		case 2:
			if (l->fd >= 0) {
				close(l->fd);
				l->fd = -1;
			}
			break;
		case 3:
			if (l->fd >= 0) {
				shutdown(l->fd, SHUT_RDWR);
				if (listen(l->fd, 8) && errno != EINVAL &&
				    errno != EADDRINUSE && errno != ENOMEM)
					fail(w, "listen again", errno);
			}
			break;
		case 4:
			if (l->fd >= 0)
				reconfigure(w, l);
			break;
		case 5: case 6: case 7: case 8:
			connect_one(w, free_conn(w));
			break;
		case 9: case 10: case 11:
			if (l->fd < 0)
				break;
			a = accept(l->fd, NULL, NULL);
			if (a >= 0)
				*free_conn(w) = a;
			check_cap(w, l);
			break;
		case 12:
			close_conn(w, free_conn(w));
			break;
		case 13:
			if (l->fd < 0)
				break;
			if (rand_r(&w->seed) % 2)
				setsockopt(l->fd, SOL_SOCKET,
					   SO_ATTACH_REUSEPORT_CBPF, &prog,
					   sizeof(prog));
			else
				setsockopt(l->fd, SOL_SOCKET,
					   SO_DETACH_REUSEPORT_BPF, &one,
					   sizeof(one));
			break;
		case 14:
			write_file("/proc/sys/net/ipv4/tcp_migrate_req",
				   rand_r(&w->seed) % 2 ? "1" : "0");
			break;
		case 15:
			if (ncpus > 1 && rand_r(&w->seed) % 8 == 0)
				flip_cpu(w);
			break;
		}
	}
	return NULL;
}

/* Active connections of @fd's listener, its queue drained, once they
 * settle at zero.
 */
static __u32 settle(int fd)
{
	struct reuserps_info info = {};
	int i, a;

	/* A bound (20 s) for what must happen, not a measure. */
	for (i = 0; i < 2000; i++) {
		while ((a = accept(fd, NULL, NULL)) >= 0)
			close(a);
		if (rps_get(fd, &info, NULL, 0))
			return 0;
		if (!info.active_conns)
			return 0;
		usleep(10000);
	}
	return info.active_conns;
}

int main(int argc, char **argv)
{
	long ops = 0, checks = 0, errors = 0;
	struct worker *w;
	int opt, i, j, left = 0;

	bool no_hotplug = false;

	seed0 = 1;
	while ((opt = getopt(argc, argv, "s:n:C")) != -1) {
		if (opt == 's')
			seed0 = strtoul(optarg, NULL, 0);
		else if (opt == 'n')
			iters = atoi(optarg);
		else if (opt == 'C')
			no_hotplug = true;
		else
			ksft_exit_fail_msg("usage: %s %s\n", argv[0],
					   "[-s SEED] [-n OPS] [-C]");
	}
	ksft_print_header();
	if (!reuserps_supported())
		ksft_exit_skip("no SO_REUSERPS in this kernel (ENOPROTOOPT)\n");
	ksft_set_plan(2);
	ksft_print_msg("seed %u, %d ops per thread\n", seed0, iters);
	if (rps_netns())
		ksft_exit_skip("needs root for a network namespace\n");
	ncpus = get_nprocs();
	if (ncpus > 64)
		ncpus = 64;
	nr_cpu_ids = rps_nr_cpu_ids();
	if (nr_cpu_ids < ncpus)
		ksft_exit_fail_msg("cannot read the possible CPUs\n");
	for (i = 1; i < ncpus && !no_hotplug && !hotplug_on; i++)
		hotplug_on = can_offline(i);
	ksft_print_msg("CPU offline/online: %s\n",
		       hotplug_on ? "on" : no_hotplug ? "off (-C)" :
		       "unavailable, left out");
	for (i = 0; i < NPORTS; i++)
		ports[i] = 20000 + (seed0 + i * 7) % 20000;

	w = calloc(ncpus, sizeof(*w));
	for (i = 0; i < ncpus; i++) {
		w[i].id = i;
		w[i].seed = seed0 * 2654435761u + i;
		for (j = 0; j < NLISTEN; j++)
			w[i].l[j].fd = -1;
		for (j = 0; j < NCONN; j++)
			w[i].c[j] = -1;
		pthread_create(&w[i].th, NULL, run, &w[i]);
	}
	for (i = 0; i < ncpus; i++) {
		pthread_join(w[i].th, NULL);
		ops += w[i].ops;
		checks += w[i].checks;
		errors += w[i].errors;
		if (w[i].errors)
			ksft_print_msg("thread %d: %s\n", i, w[i].why);
	}
	ksft_print_msg("%ld ops, %ld checks, %ld errors\n", ops, checks,
		       errors);
	ksft_test_result(!errors, "errnos and caps hold under fuzzing\n");

	/* Everything closed: every count returns to zero. */
	for (i = 0; i < ncpus; i++)
		for (j = 0; j < NCONN; j++)
			if (w[i].c[j] >= 0)
				close(w[i].c[j]);
	for (i = 0; i < ncpus; i++)
		for (j = 0; j < NLISTEN; j++) {
			if (w[i].l[j].fd < 0)
				continue;
			if (settle(w[i].l[j].fd)) {
				left++;
				ksft_print_msg("thread %d listener %d: %s\n",
					       i, j, "connections left");
			}
			close(w[i].l[j].fd);
		}
	ksft_test_result(!left, "active counts return to zero\n");
	/* Every CPU the run took offline is back, whatever happened. */
	for (i = 1; i < ncpus; i++)
		if (flipped[i])
			set_online(i, 1);
	free(w);
	ksft_finished();
}
