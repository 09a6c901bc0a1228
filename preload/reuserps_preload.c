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
 * Build: make -C preload EXTRA_CFLAGS="-isystem usr/include" (the uapi
 *        headers of a kernel with SO_REUSERPS, from make headers)
 * Use:   LD_PRELOAD=preload/libreuserps_preload.so nginx ...
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/reuserps.h>

/* For C libraries whose headers predate the option; as in asm/socket.h. */
#ifndef SO_REUSERPS
#if defined(__alpha__) || defined(__mips__)
#define SO_REUSERPS 86
#elif defined(__hppa__)
#define SO_REUSERPS 0x4054
#elif defined(__sparc__)
#define SO_REUSERPS 0x005f
#else
#define SO_REUSERPS 86
#endif
#endif

#ifndef SO_INCOMING_CPU
#if defined(__hppa__)
#define SO_INCOMING_CPU 0x402A
#elif defined(__sparc__)
#define SO_INCOMING_CPU 0x0033
#else
#define SO_INCOMING_CPU 49
#endif
#endif

#define MAX_FDS 65536

/* Past any machine's CPUs: sched_getaffinity() failing for another reason. */
#define MAX_CPUS (1 << 22)

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
	cpu_set_t *set;		/* CPU_ALLOC()ed */
	size_t size;		/* its CPU_ALLOC_SIZE() */
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

/* CPUs the last sched_getaffinity() took, so as to try that size first. */
static int nr_cpus_hint = CPU_SETSIZE;

static void free_reg(struct reg *r)
{
	if (r)
		CPU_FREE(r->set);
	free(r);
}

/*
 * The calling thread's CPUs, in a CPU_ALLOC()ed set sized for this
 * machine, which may have more CPUs than a cpu_set_t holds: the set
 * grows until sched_getaffinity() takes it.  NULL on failure.
 */
static cpu_set_t *thread_cpus(size_t *size)
{
	int n = __atomic_load_n(&nr_cpus_hint, __ATOMIC_RELAXED);
	cpu_set_t *set;

	for (;;) {
		set = CPU_ALLOC(n);
		if (!set)
			return NULL;
		*size = CPU_ALLOC_SIZE(n);
		if (!sched_getaffinity(0, *size, set))
			break;
		CPU_FREE(set);
		/* EINVAL: smaller than the kernel's mask. */
		if (errno != EINVAL || n >= MAX_CPUS)
			return NULL;
		n *= 2;
	}
	__atomic_store_n(&nr_cpus_hint, n, __ATOMIC_RELAXED);
	return set;
}

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
	free_reg(r);
}

/*
 * Registers @fd for the calling thread's CPUs unless it already is.
 * With @follow, only a socket registered before, and once per process
 * unless @always: a concurrent close() may have forgotten it.
 */
static void register_here(int fd, int follow, int always)
{
	struct reuserps_req req = {
		.policy = policy,
		.max_conns = max_conns,
	};
	struct reg *r;
	cpu_set_t *set;
	size_t size;

	set = thread_cpus(&size);
	if (!set)
		return;
	pthread_mutex_lock(&lock);
	r = registered[fd];
	if (follow && (!r || (!always && r->pid == getpid())))
		goto out;
	if (r && r->size == size && CPU_EQUAL_S(size, r->set, set)) {
		r->pid = getpid();
		goto out;
	}
	/* The thread's mask as it is, as sched_setaffinity() takes it. */
	req.cpus = (uintptr_t)set;
	req.cpus_len = size;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSERPS, &req, sizeof(req))) {
		if (verbose)
			fprintf(stderr, "reuserps: fd %d: %s\n", fd,
				strerror(errno));
		/* Not a socket to follow (any more): stop trying. */
		free_reg(r);
		set_registered(fd, NULL);
		goto out;
	}
	if (!r) {
		r = calloc(1, sizeof(*r));
		set_registered(fd, r);
	}
	if (r) {
		/* The set is the registration's now. */
		CPU_FREE(r->set);
		r->set = set;
		r->size = size;
		r->pid = getpid();
		set = NULL;
	}
	if (verbose)
		fprintf(stderr, "reuserps: pid %d fd %d: %d CPUs\n",
			(int)getpid(), fd, CPU_COUNT_S(size, r ? r->set : set));
out:
	pthread_mutex_unlock(&lock);
	CPU_FREE(set);
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
	cpu_set_t *set;
	size_t size;

	if (!stats_prefix || cfd < 0)
		return;
	cpu = sockopt_int(cfd, SOL_SOCKET, SO_INCOMING_CPU);
	set = thread_cpus(&size);
	if (set && cpu >= 0 && CPU_ISSET_S(cpu, size, set))
		__atomic_fetch_add(&stat_local, 1, __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&stat_remote, 1, __ATOMIC_RELAXED);
	CPU_FREE(set);
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
