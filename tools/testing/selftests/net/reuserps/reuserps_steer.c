// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS steering: each connection goes to a listener registered for
 * the CPU that processed its SYN.  Over loopback the SYN is processed on
 * the CPU of the connecting thread, so pinning the client picks the CPU.
 * Checks where every connection went, the round-robin rotation and the
 * fill-first order, order kept when a listener closes, the fallback for a
 * CPU without listeners, the rules for joining a group (mode, policy,
 * uid), caps and the counts getsockopt() reports, back to zero after
 * every way a connection ends, and the drop and retry when all are full;
 * on IPv4 and IPv6.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/reuserps.h>

#include "../../kselftest_harness.h"

#define MAX_LISTENERS	64
#define MASK_WORDS	16	/* a glibc cpu_set_t */

struct req_buf {
	struct reuserps_req req;
	__u64 cpus[MASK_WORDS];
};

/* The listeners of one group and the address they share. */
struct group {
	int n;
	int fd[MAX_LISTENERS];
	struct sockaddr_storage addr;
	socklen_t alen;
};

FIXTURE(steer)
{
	int ncpus;
	int offline_cpu;	/* a CPU a test took offline, or -1 */
	struct group g;
};

FIXTURE_VARIANT(steer)
{
	int family;
};

FIXTURE_VARIANT_ADD(steer, ipv4)
{
	.family = AF_INET,
};

FIXTURE_VARIANT_ADD(steer, ipv6)
{
	.family = AF_INET6,
};

FIXTURE_SETUP(steer)
{
	self->offline_cpu = -1;
	self->ncpus = get_nprocs();
	if (self->ncpus < 2)
		SKIP(return, "needs 2 CPUs or more");
	if (self->ncpus > MAX_LISTENERS / 2)
		self->ncpus = MAX_LISTENERS / 2;
	ASSERT_EQ(0, unshare(CLONE_NEWNET));
	ASSERT_EQ(0, system("ip link set lo up"));

	memset(&self->g, 0, sizeof(self->g));
	if (variant->family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&self->g.addr;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		self->g.alen = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&self->g.addr;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		self->g.alen = sizeof(*a);
	}
}

static int set_online(int cpu, int online)
{
	char path[64];
	int fd, ok;

	snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/online",
		 cpu);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ok = write(fd, online ? "1" : "0", 1) == 1;
	close(fd);
	return ok ? 0 : -1;
}

FIXTURE_TEARDOWN(steer)
{
	int i;

	if (self->offline_cpu >= 0)
		set_online(self->offline_cpu, 1);

	for (i = 0; i < self->g.n; i++)
		if (self->g.fd[i] >= 0)
			close(self->g.fd[i]);
}

/* A bound socket of the group; 0 or the errno of setsockopt() or bind(). */
static int bound_capped(struct group *g, int family, bool reuserps,
			__u32 policy, __u32 cap, const int *cpus, int ncpus,
			int *fdp)
{
	struct req_buf b = {};
	int fd, one = 1, i;

	fd = socket(family, SOCK_STREAM, 0);
	if (fd < 0)
		return errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		goto err;
	if (reuserps) {
		b.req.policy = policy;
		b.req.max_conns = cap;
		b.req.mask_words = MASK_WORDS;
		for (i = 0; i < ncpus; i++)
			b.cpus[cpus[i] / 64] |= 1ULL << (cpus[i] % 64);
		if (setsockopt(fd, SOL_SOCKET, SO_REUSERPS, &b, sizeof(b)))
			goto err;
	}
	if (bind(fd, (struct sockaddr *)&g->addr, g->alen))
		goto err;
	*fdp = fd;
	return 0;
err:
	i = errno;
	close(fd);
	return i;
}

static int bound(struct group *g, int family, bool reuserps, __u32 policy,
		 const int *cpus, int ncpus, int *fdp)
{
	return bound_capped(g, family, reuserps, policy, 0, cpus, ncpus, fdp);
}

/* Adds a listening member with a cap; the first one picks the port. */
static int add_capped(struct __test_metadata *_metadata, struct group *g,
		      int family, __u32 policy, __u32 cap, const int *cpus,
		      int ncpus)
{
	int fd = -1;

	ASSERT_EQ(0, bound_capped(g, family, true, policy, cap, cpus, ncpus,
				  &fd));
	ASSERT_EQ(0, listen(fd, 256));
	ASSERT_EQ(0, fcntl(fd, F_SETFL, O_NONBLOCK));
	if (!g->n)
		ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)&g->addr,
					 &g->alen));
	g->fd[g->n] = fd;
	return g->n++;
}

static int add_listener(struct __test_metadata *_metadata, struct group *g,
			int family, __u32 policy, const int *cpus, int ncpus)
{
	return add_capped(_metadata, g, family, policy, 0, cpus, ncpus);
}

static void pin(struct __test_metadata *_metadata, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(set), &set));
}

/* The index of the listener that has a connection to accept, or -1. */
static int accept_any(struct __test_metadata *_metadata, struct group *g,
		      int *afd)
{
	int i, a, tries;

	for (tries = 0; tries < 1000; tries++) {
		for (i = 0; i < g->n; i++) {
			if (g->fd[i] < 0)
				continue;
			a = accept(g->fd[i], NULL, NULL);
			if (a >= 0) {
				*afd = a;
				return i;
			}
			ASSERT_EQ(EAGAIN, errno);
		}
		usleep(1000);
	}
	return -1;
}

/*
 * Connects from the current CPU and returns the index of the listener
 * that got the connection, both ends left open.  Over loopback the
 * handshake is done when connect() returns; accept_any() retries only
 * to guard against a slow guest.
 */
static int connect_keep(struct __test_metadata *_metadata, struct group *g,
			int family, int *cfd, int *afd)
{
	*cfd = socket(family, SOCK_STREAM, 0);
	ASSERT_LE(0, *cfd);
	ASSERT_EQ(0, connect(*cfd, (struct sockaddr *)&g->addr, g->alen));
	return accept_any(_metadata, g, afd);
}

/* As connect_keep(), closing both ends. */
static int connect_one(struct __test_metadata *_metadata, struct group *g,
		       int family)
{
	int c = -1, a = -1, got;

	got = connect_keep(_metadata, g, family, &c, &a);
	close(c);
	if (a >= 0)
		close(a);
	return got;
}

static struct reuserps_info info_of(struct __test_metadata *_metadata,
				    int fd)
{
	struct reuserps_info info;
	socklen_t len = sizeof(info);

	EXPECT_EQ(0, getsockopt(fd, SOL_SOCKET, SO_REUSERPS, &info, &len));
	return info;
}

/* Waits up to 3 s for the listener's active count to reach @want. */
static __u32 wait_active(struct __test_metadata *_metadata, int fd,
			 __u32 want)
{
	__u32 now = ~0U;
	int i;

	for (i = 0; i < 300; i++) {
		now = info_of(_metadata, fd).active_conns;
		if (now == want)
			break;
		usleep(10000);
	}
	return now;
}

/* TcpExt ListenDrops of this network namespace. */
static long listen_drops(void)
{
	char names[4096], values[4096], *n, *v, *sn, *sv;
	long drops = -1;
	FILE *f;

	f = fopen("/proc/net/netstat", "r");
	if (!f)
		return -1;
	while (fgets(names, sizeof(names), f) &&
	       fgets(values, sizeof(values), f)) {
		if (strncmp(names, "TcpExt:", 7))
			continue;
		n = strtok_r(names, "\n ", &sn);
		v = strtok_r(values, "\n ", &sv);
		while (n && v) {
			if (!strcmp(n, "ListenDrops"))
				drops = atol(v);
			n = strtok_r(NULL, "\n ", &sn);
			v = strtok_r(NULL, "\n ", &sv);
		}
	}
	fclose(f);
	return drops;
}

/* One listener per CPU: every connection goes to its CPU's listener. */
TEST_F(steer, one_listener_per_cpu)
{
	int cpu, k, got;

	for (cpu = 0; cpu < self->ncpus; cpu++)
		ASSERT_EQ(cpu, add_listener(_metadata, &self->g,
					    variant->family,
					    REUSERPS_ROUND_ROBIN, &cpu, 1));
	for (cpu = 0; cpu < self->ncpus; cpu++) {
		pin(_metadata, cpu);
		for (k = 0; k < 8; k++) {
			got = connect_one(_metadata, &self->g, variant->family);
			EXPECT_EQ(cpu, got);
		}
	}
}

/* Two per CPU, round robin: they alternate, k/2 each. */
TEST_F(steer, round_robin_alternates)
{
	int cpu, k, got, last, count[MAX_LISTENERS] = {};

	for (cpu = 0; cpu < self->ncpus; cpu++) {
		add_listener(_metadata, &self->g, variant->family,
			     REUSERPS_ROUND_ROBIN, &cpu, 1);
		add_listener(_metadata, &self->g, variant->family,
			     REUSERPS_ROUND_ROBIN, &cpu, 1);
	}
	for (cpu = 0; cpu < self->ncpus; cpu++) {
		pin(_metadata, cpu);
		last = -1;
		for (k = 0; k < 10; k++) {
			got = connect_one(_metadata, &self->g, variant->family);
			ASSERT_TRUE(got == 2 * cpu || got == 2 * cpu + 1);
			EXPECT_NE(last, got);
			last = got;
			count[got]++;
		}
		EXPECT_EQ(5, count[2 * cpu]);
		EXPECT_EQ(5, count[2 * cpu + 1]);
	}
}

/* Fill first: the first registered takes them; order survives a close. */
TEST_F(steer, fill_first_order)
{
	int all[MAX_LISTENERS], cpu, k, i;

	for (i = 0; i < self->ncpus; i++)
		all[i] = i;
	for (i = 0; i < 3; i++)
		add_listener(_metadata, &self->g, variant->family,
			     REUSERPS_FILL_FIRST, all, self->ncpus);
	for (cpu = 0; cpu < self->ncpus; cpu++) {
		pin(_metadata, cpu);
		for (k = 0; k < 4; k++)
			EXPECT_EQ(0, connect_one(_metadata, &self->g,
						 variant->family));
	}
	close(self->g.fd[0]);
	self->g.fd[0] = -1;
	for (cpu = 0; cpu < self->ncpus; cpu++) {
		pin(_metadata, cpu);
		for (k = 0; k < 4; k++)
			EXPECT_EQ(1, connect_one(_metadata, &self->g,
						 variant->family));
	}
}

/* Round robin over three; closing the middle one keeps the other two. */
TEST_F(steer, close_keeps_the_rest)
{
	int cpu0 = 0, k, got, last = -1, count[3] = {};

	for (k = 0; k < 3; k++)
		add_listener(_metadata, &self->g, variant->family,
			     REUSERPS_ROUND_ROBIN, &cpu0, 1);
	close(self->g.fd[1]);
	self->g.fd[1] = -1;
	pin(_metadata, 0);
	for (k = 0; k < 8; k++) {
		got = connect_one(_metadata, &self->g, variant->family);
		ASSERT_TRUE(got == 0 || got == 2);
		EXPECT_NE(last, got);
		last = got;
		count[got]++;
	}
	EXPECT_EQ(4, count[0]);
	EXPECT_EQ(4, count[2]);
}

/* A CPU nobody registered for still gets its connections served. */
TEST_F(steer, unregistered_cpu_falls_back)
{
	int cpu0 = 0, k;

	add_listener(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		     &cpu0, 1);
	add_listener(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		     &cpu0, 1);
	pin(_metadata, 1);
	for (k = 0; k < 6; k++) {
		int got = connect_one(_metadata, &self->g, variant->family);

		EXPECT_TRUE(got == 0 || got == 1);
	}
}

/* A group has one mode and one policy: bind() refuses the others. */
TEST_F(steer, mode_and_policy_fixed_by_first)
{
	int cpu0 = 0, fd = -1;

	add_listener(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		     &cpu0, 1);
	EXPECT_EQ(EADDRINUSE, bound(&self->g, variant->family, false, 0,
				    NULL, 0, &fd));
	EXPECT_EQ(EADDRINUSE, bound(&self->g, variant->family, true,
				    REUSERPS_FILL_FIRST, &cpu0, 1, &fd));
	ASSERT_EQ(0, bound(&self->g, variant->family, true,
			   REUSERPS_ROUND_ROBIN, &cpu0, 1, &fd));
	close(fd);
}

/* A plain reuseport group takes no SO_REUSERPS socket. */
TEST_F(steer, plain_group_refuses_reuserps)
{
	int cpu0 = 0, fd = -1, fd2 = -1;

	ASSERT_EQ(0, bound(&self->g, variant->family, false, 0, NULL, 0, &fd));
	ASSERT_EQ(0, listen(fd, 8));
	ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)&self->g.addr,
				 &self->g.alen));
	EXPECT_EQ(EADDRINUSE, bound(&self->g, variant->family, true,
				    REUSERPS_ROUND_ROBIN, &cpu0, 1, &fd2));
	close(fd);
}

/* Reuseport's own rule holds: only the group's user may join. */
TEST_F(steer, other_user_refused)
{
	int cpu0 = 0, status, fd = -1;
	pid_t pid;

	add_listener(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		     &cpu0, 1);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		if (setresuid(65534, 65534, 65534))
			_exit(2);
		_exit(bound(&self->g, variant->family, true,
			    REUSERPS_ROUND_ROBIN, &cpu0, 1,
			    &fd) == EADDRINUSE ? 0 : 1);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

/* Fill first with caps: the first takes its cap, the next the rest. */
TEST_F(steer, caps_and_counts)
{
	int all[MAX_LISTENERS], c[5], a[5], k, i;
	struct reuserps_info ia, ib;

	for (i = 0; i < self->ncpus; i++)
		all[i] = i;
	add_capped(_metadata, &self->g, variant->family, REUSERPS_FILL_FIRST,
		   2, all, self->ncpus);
	add_capped(_metadata, &self->g, variant->family, REUSERPS_FILL_FIRST,
		   0, all, self->ncpus);
	pin(_metadata, 0);
	for (k = 0; k < 5; k++)
		EXPECT_EQ(k < 2 ? 0 : 1,
			  connect_keep(_metadata, &self->g, variant->family,
				       &c[k], &a[k]));
	ia = info_of(_metadata, self->g.fd[0]);
	ib = info_of(_metadata, self->g.fd[1]);
	EXPECT_EQ(2, ia.max_conns);
	EXPECT_EQ(2, ia.active_conns);
	EXPECT_EQ(2, ia.total_conns);
	EXPECT_EQ(3, ia.full_skips);
	EXPECT_EQ(3, ib.active_conns);
	EXPECT_EQ(3, ib.total_conns);
	EXPECT_EQ(0, ib.full_skips);
	for (k = 0; k < 5; k++) {
		close(c[k]);
		close(a[k]);
	}
	EXPECT_EQ(0, wait_active(_metadata, self->g.fd[0], 0));
	EXPECT_EQ(0, wait_active(_metadata, self->g.fd[1], 0));
	/* Room again: the first registered takes the next one. */
	EXPECT_EQ(0, connect_one(_metadata, &self->g, variant->family));
}

/* Every way a connection ends brings the count back down. */
TEST_F(steer, active_back_to_zero)
{
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	int all[MAX_LISTENERS], c, a, i, l, k, cs[3];

	for (i = 0; i < self->ncpus; i++)
		all[i] = i;
	l = add_listener(_metadata, &self->g, variant->family,
			 REUSERPS_ROUND_ROBIN, all, self->ncpus);
	l = self->g.fd[l];

	/* The client closes first, then the server. */
	ASSERT_EQ(0, connect_keep(_metadata, &self->g, variant->family, &c,
				  &a));
	EXPECT_EQ(1, info_of(_metadata, l).active_conns);
	close(c);
	close(a);
	EXPECT_EQ(0, wait_active(_metadata, l, 0));

	/* The server closes first. */
	ASSERT_EQ(0, connect_keep(_metadata, &self->g, variant->family, &c,
				  &a));
	close(a);
	close(c);
	EXPECT_EQ(0, wait_active(_metadata, l, 0));

	/* A reset ends it though the server still holds the socket. */
	ASSERT_EQ(0, connect_keep(_metadata, &self->g, variant->family, &c,
				  &a));
	ASSERT_EQ(0, setsockopt(c, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst)));
	close(c);
	EXPECT_EQ(0, wait_active(_metadata, l, 0));
	close(a);

	/* Never accepted, then the listener stops listening. */
	for (k = 0; k < 3; k++) {
		cs[k] = socket(variant->family, SOCK_STREAM, 0);
		ASSERT_LE(0, cs[k]);
		ASSERT_EQ(0, connect(cs[k], (struct sockaddr *)&self->g.addr,
				     self->g.alen));
	}
	EXPECT_EQ(3, wait_active(_metadata, l, 3));
	ASSERT_EQ(0, shutdown(l, SHUT_RDWR));
	EXPECT_EQ(0, wait_active(_metadata, l, 0));
	EXPECT_EQ(6, info_of(_metadata, l).total_conns);
	for (k = 0; k < 3; k++)
		close(cs[k]);
}

/* Full on its CPU: the connection goes to another member with room. */
TEST_F(steer, full_falls_back_to_room)
{
	int cpu0 = 0, cpu1 = 1, c[2], a[2];

	add_capped(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		   1, &cpu0, 1);
	add_capped(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		   0, &cpu1, 1);
	pin(_metadata, 0);
	EXPECT_EQ(0, connect_keep(_metadata, &self->g, variant->family, &c[0],
				  &a[0]));
	EXPECT_EQ(1, connect_keep(_metadata, &self->g, variant->family, &c[1],
				  &a[1]));
	EXPECT_EQ(1, info_of(_metadata, self->g.fd[0]).full_skips);
	EXPECT_EQ(1, info_of(_metadata, self->g.fd[0]).active_conns);
	close(c[0]);
	close(a[0]);
	close(c[1]);
	close(a[1]);
}

/* All full: the SYN is dropped and counted; the retry gets in later. */
TEST_F(steer, all_full_drops_then_retry_succeeds)
{
	int all[MAX_LISTENERS], c, a, c2, a2, i, l;
	struct pollfd pfd;
	long drops;

	for (i = 0; i < self->ncpus; i++)
		all[i] = i;
	l = add_capped(_metadata, &self->g, variant->family,
		       REUSERPS_FILL_FIRST, 1, all, self->ncpus);
	l = self->g.fd[l];
	ASSERT_EQ(0, connect_keep(_metadata, &self->g, variant->family, &c,
				  &a));
	drops = listen_drops();
	ASSERT_LE(0, drops);

	c2 = socket(variant->family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ASSERT_LE(0, c2);
	ASSERT_EQ(-1, connect(c2, (struct sockaddr *)&self->g.addr,
			      self->g.alen));
	ASSERT_EQ(EINPROGRESS, errno);
	pfd.fd = c2;
	pfd.events = POLLOUT;
	EXPECT_EQ(0, poll(&pfd, 1, 300));
	EXPECT_LT(drops, listen_drops());
	EXPECT_EQ(1, info_of(_metadata, l).active_conns);

	/* Room again: the client's SYN retransmission gets in. */
	close(c);
	close(a);
	EXPECT_EQ(0, wait_active(_metadata, l, 0));
	EXPECT_EQ(1, poll(&pfd, 1, 5000));
	EXPECT_EQ(0, accept_any(_metadata, &self->g, &a2));
	EXPECT_EQ(1, info_of(_metadata, l).active_conns);
	close(c2);
	close(a2);
}

/* A connection that outlives its listener ends safely. */
TEST_F(steer, connection_outlives_listener)
{
	int cpu0 = 0, c, a;

	add_listener(_metadata, &self->g, variant->family,
		     REUSERPS_ROUND_ROBIN, &cpu0, 1);
	pin(_metadata, 0);
	ASSERT_EQ(0, connect_keep(_metadata, &self->g, variant->family, &c,
				  &a));
	close(self->g.fd[0]);
	self->g.fd[0] = -1;
	EXPECT_EQ(5, write(c, "hello", 5));
	close(c);
	close(a);
}

/* A mask may name an offline CPU; offline and back online keeps working. */
TEST_F(steer, cpu_offline_online)
{
	int cpu, k, got, off = self->ncpus - 1, extra;

	for (cpu = 0; cpu < self->ncpus; cpu++)
		add_listener(_metadata, &self->g, variant->family,
			     REUSERPS_ROUND_ROBIN, &cpu, 1);
	pin(_metadata, 0);
	if (set_online(off, 0))
		SKIP(return, "cannot take CPU %d offline", off);
	self->offline_cpu = off;

	for (cpu = 0; cpu < off; cpu++) {
		pin(_metadata, cpu);
		for (k = 0; k < 4; k++)
			EXPECT_EQ(cpu, connect_one(_metadata, &self->g,
						   variant->family));
	}
	/* Registering for a CPU that is offline is fine. */
	extra = add_listener(_metadata, &self->g, variant->family,
			     REUSERPS_ROUND_ROBIN, &off, 1);

	ASSERT_EQ(0, set_online(off, 1));
	self->offline_cpu = -1;
	pin(_metadata, off);
	for (k = 0; k < 6; k++) {
		got = connect_one(_metadata, &self->g, variant->family);
		EXPECT_TRUE(got == off || got == extra);
	}
}

TEST_HARNESS_MAIN
