// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS steering: each connection goes to a listener registered for
 * the CPU that processed its SYN.  Over loopback the SYN is processed on
 * the CPU of the connecting thread, so pinning the client picks the CPU.
 * Checks where every connection went, the round-robin rotation and the
 * fill-first order, order kept when a listener closes, the fallback for a
 * CPU without listeners, and the rules for joining a group (mode, policy,
 * uid), on IPv4 and IPv6.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
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

FIXTURE_TEARDOWN(steer)
{
	int i;

	for (i = 0; i < self->g.n; i++)
		if (self->g.fd[i] >= 0)
			close(self->g.fd[i]);
}

/* A bound socket of the group; 0 or the errno of setsockopt() or bind(). */
static int bound(struct group *g, int family, bool reuserps, __u32 policy,
		 const int *cpus, int ncpus, int *fdp)
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

/* Adds a listening member; the first one picks the port. */
static int add_listener(struct __test_metadata *_metadata, struct group *g,
			int family, __u32 policy, const int *cpus, int ncpus)
{
	int fd = -1;

	ASSERT_EQ(0, bound(g, family, true, policy, cpus, ncpus, &fd));
	ASSERT_EQ(0, listen(fd, 256));
	ASSERT_EQ(0, fcntl(fd, F_SETFL, O_NONBLOCK));
	if (!g->n)
		ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)&g->addr,
					 &g->alen));
	g->fd[g->n] = fd;
	return g->n++;
}

static void pin(struct __test_metadata *_metadata, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(set), &set));
}

/*
 * Connects from the current CPU and returns the index of the listener
 * that got the connection.  Over loopback the handshake is done when
 * connect() returns; the retry loop only guards against a slow guest.
 */
static int connect_one(struct __test_metadata *_metadata, struct group *g,
		       int family)
{
	int c, i, a, tries;

	c = socket(family, SOCK_STREAM, 0);
	ASSERT_LE(0, c);
	ASSERT_EQ(0, connect(c, (struct sockaddr *)&g->addr, g->alen));
	for (tries = 0; tries < 1000; tries++) {
		for (i = 0; i < g->n; i++) {
			if (g->fd[i] < 0)
				continue;
			a = accept(g->fd[i], NULL, NULL);
			if (a >= 0) {
				close(a);
				close(c);
				return i;
			}
			ASSERT_EQ(EAGAIN, errno);
		}
		usleep(1000);
	}
	close(c);
	return -1;
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

TEST_HARNESS_MAIN
