// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS for servers that do not know it, through LD_PRELOAD.
 *
 * A server that runs one process or thread per CPU, each pinned with
 * sched_setaffinity() and each with its own SO_REUSEPORT listener, gains
 * SO_REUSERPS without a rebuild:
 *
 *   - bind() of a TCP socket that has SO_REUSEPORT first registers it for
 *     the CPUs the calling thread may run on (all of them, if it is not
 *     pinned yet);
 *   - epoll_ctl(EPOLL_CTL_ADD) of such a listener, and the first accept()
 *     or accept4() on it in a new process, register it again for the
 *     calling thread's CPUs when they changed: servers such as nginx bind
 *     in a master process and pin the workers that later poll the
 *     listeners;
 *   - close() forgets it, so that its number can name another socket.
 *
 * Environment:
 *   REUSERPS_POLICY     "rr" (round robin, the default), "ff" (fill first),
 *                       "lc" (least connections), or "off": register
 *                       nothing, only count (below)
 *   REUSERPS_MAX_CONNS  cap on each listener's active connections, 0: none
 *   REUSERPS_STATS      if set, a path prefix: each process writes
 *                       "<prefix>.<pid>" at exit with how many accepted
 *                       connections had their SYN processed on one of the
 *                       process's CPUs ("local") or not ("remote")
 *   REUSERPS_VERBOSE    if set, say on stderr what was registered
 *
 * Build: make -C tools/net/reuserps
 * Use:   LD_PRELOAD=tools/net/reuserps/libreuserps_preload.so nginx ...
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/reuserps.h>

#ifndef SO_REUSERPS
#define SO_REUSERPS 86
#endif

#define MASK_WORDS (CPU_SETSIZE / 64)
#define MAX_FDS 65536

struct req_buf {
	struct reuserps_req req;
	__u64 cpus[MASK_WORDS];
};

static int (*real_bind)(int, const struct sockaddr *, socklen_t);
static int (*real_epoll_ctl)(int, int, int, struct epoll_event *);
static int (*real_accept)(int, struct sockaddr *, socklen_t *);
static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
static int (*real_close)(int);

static __u32 policy = REUSERPS_ROUND_ROBIN;
static __u32 max_conns;
static int off;
static const char *stats_prefix;
static int verbose;

/* What each listener was last registered with, and by which process. */
struct reg {
	cpu_set_t set;
	pid_t pid;
};

/*
 * Changed and dereferenced only under @lock; read without it only as a
 * hint (atomically), so that close() and accept() of sockets this
 * library does not follow take no lock.
 */
static struct reg *registered[MAX_FDS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether @fd may be followed: a hint, checked again under the lock. */
static int maybe_registered(int fd)
{
	return fd >= 0 && fd < MAX_FDS &&
	       __atomic_load_n(&registered[fd], __ATOMIC_RELAXED);
}

static void set_registered(int fd, struct reg *r)
{
	__atomic_store_n(&registered[fd], r, __ATOMIC_RELAXED);
}

static unsigned long stat_local, stat_remote;

static void __attribute__((constructor)) reuserps_init(void)
{
	const char *s;

	real_bind = dlsym(RTLD_NEXT, "bind");
	real_epoll_ctl = dlsym(RTLD_NEXT, "epoll_ctl");
	real_accept = dlsym(RTLD_NEXT, "accept");
	real_accept4 = dlsym(RTLD_NEXT, "accept4");
	real_close = dlsym(RTLD_NEXT, "close");

	s = getenv("REUSERPS_POLICY");
	if (s && !strcmp(s, "ff"))
		policy = REUSERPS_FILL_FIRST;
	if (s && !strcmp(s, "lc"))
		policy = REUSERPS_LEAST_CONNS;
	off = s && !strcmp(s, "off");
	s = getenv("REUSERPS_MAX_CONNS");
	if (s)
		max_conns = strtoul(s, NULL, 0);
	/* A copy: servers may reuse the environment's memory (nginx puts
	 * its process titles there).
	 */
	s = getenv("REUSERPS_STATS");
	if (s)
		stats_prefix = strdup(s);
	verbose = !!getenv("REUSERPS_VERBOSE");
}

static void __attribute__((destructor)) reuserps_fini(void)
{
	char path[4096];
	FILE *f;

	if (!stats_prefix || !(stat_local + stat_remote))
		return;
	snprintf(path, sizeof(path), "%s.%d", stats_prefix, (int)getpid());
	f = fopen(path, "w");
	if (!f)
		return;
	fprintf(f, "local %lu remote %lu\n", stat_local, stat_remote);
	fclose(f);
}

static int sockopt_int(int fd, int level, int name)
{
	socklen_t len = sizeof(int);
	int val;

	if (getsockopt(fd, level, name, &val, &len))
		return -1;
	return val;
}

/* A TCP socket with SO_REUSEPORT, which SO_REUSERPS applies to. */
static int is_candidate(int fd)
{
	return fd >= 0 && fd < MAX_FDS &&
	       sockopt_int(fd, SOL_SOCKET, SO_TYPE) == SOCK_STREAM &&
	       sockopt_int(fd, SOL_SOCKET, SO_PROTOCOL) == IPPROTO_TCP &&
	       sockopt_int(fd, SOL_SOCKET, SO_REUSEPORT) == 1;
}

/* Forgets @fd: it was closed, or another socket took its number. */
static void forget(int fd)
{
	struct reg *r;

	pthread_mutex_lock(&lock);
	r = registered[fd];
	set_registered(fd, NULL);
	pthread_mutex_unlock(&lock);
	free(r);
}

/*
 * Registers @fd for the calling thread's CPUs unless it already is.
 * With @follow, only a socket registered before, and once per process
 * unless @always: a concurrent close() may have forgotten it.
 */
static void register_here(int fd, int follow, int always)
{
	struct req_buf b = {};
	cpu_set_t set;
	int cpu;

	if (sched_getaffinity(0, sizeof(set), &set))
		return;
	pthread_mutex_lock(&lock);
	if (follow && (!registered[fd] ||
		       (!always && registered[fd]->pid == getpid())))
		goto out;
	if (registered[fd] && CPU_EQUAL(&registered[fd]->set, &set)) {
		registered[fd]->pid = getpid();
		goto out;
	}
	b.req.policy = policy;
	b.req.max_conns = max_conns;
	b.req.mask_words = MASK_WORDS;
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &set))
			b.cpus[cpu / 64] |= 1ULL << (cpu % 64);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSERPS, &b, sizeof(b))) {
		if (verbose)
			fprintf(stderr, "reuserps: fd %d: %s\n", fd,
				strerror(errno));
		/* Not a socket to follow (any more): stop trying. */
		free(registered[fd]);
		set_registered(fd, NULL);
		goto out;
	}
	if (!registered[fd])
		set_registered(fd, malloc(sizeof(*registered[fd])));
	if (registered[fd]) {
		registered[fd]->set = set;
		registered[fd]->pid = getpid();
	}
	if (verbose)
		fprintf(stderr, "reuserps: pid %d fd %d: %d CPUs\n",
			(int)getpid(), fd, CPU_COUNT(&set));
out:
	pthread_mutex_unlock(&lock);
}

/*
 * A listener this library registered: follow its thread's CPUs, always
 * on epoll_ctl(), on accept() only once per process.
 */
static void follow(int fd, int always)
{
	int saved = errno;

	if (maybe_registered(fd))
		register_here(fd, 1, always);
	errno = saved;
}

/* Was the SYN of this accepted connection processed on one of our CPUs? */
static void count(int cfd)
{
	int saved = errno, cpu;
	cpu_set_t set;

	if (!stats_prefix || cfd < 0)
		return;
	cpu = sockopt_int(cfd, SOL_SOCKET, SO_INCOMING_CPU);
	if (!sched_getaffinity(0, sizeof(set), &set) && cpu >= 0 &&
	    cpu < CPU_SETSIZE && CPU_ISSET(cpu, &set))
		__atomic_fetch_add(&stat_local, 1, __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&stat_remote, 1, __ATOMIC_RELAXED);
	errno = saved;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	int saved = errno;

	if (!off && is_candidate(fd)) {
		/* A new socket that reuses an fd number starts afresh. */
		forget(fd);
		register_here(fd, 0, 1);
	}
	errno = saved;
	return real_bind(fd, addr, len);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	if (op == EPOLL_CTL_ADD)
		follow(fd, 1);
	return real_epoll_ctl(epfd, op, fd, ev);
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	int cfd;

	follow(fd, 0);
	cfd = real_accept(fd, addr, len);
	count(cfd);
	return cfd;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	int cfd;

	follow(fd, 0);
	cfd = real_accept4(fd, addr, len, flags);
	count(cfd);
	return cfd;
}

int close(int fd)
{
	/* The number will name another socket: stop following it. */
	if (maybe_registered(fd))
		forget(fd);
	return real_close(fd);
}
