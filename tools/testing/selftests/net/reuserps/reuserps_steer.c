// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS steering: each connection goes to a listener registered for
 * the CPU that processed its SYN.  Over loopback the SYN is processed on
 * the CPU of the connecting thread, so pinning the client picks the CPU.
 * Checks where every connection went, the round-robin rotation, the
 * fill-first order and least connections, order kept when a listener
 * closes, the fallback for a CPU without listeners, the nearest fallback
 * on a NUMA machine (the CPU's node before the other's), the rules for
 * joining a group (mode, policy, uid), and changing a listening member's
 * CPUs and cap, and max_pending: a listener whose accept queue is that
 * long passed over while a sibling has room, under every policy and in
 * the fallback; on IPv4, IPv6 and IPv4 clients of dual-stack listeners.
 * Each test runs in a network namespace of its own.  Caps, counts and
 * migration are in reuserps_caps.c, CPU hotplug in reuserps_hotplug.c.
 */
#include "kselftest_harness.h"

#include "reuserps_lib.h"

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
	group_init(&self->g, variant->family);
	if (!reuserps_supported())
		SKIP(return, "no SO_REUSERPS in this kernel (ENOPROTOOPT)");
	ASSERT_EQ(0, rps_netns());
	self->ncpus = get_nprocs();
	if (self->ncpus < 2)
		SKIP(return, "needs 2 CPUs or more");
	if (self->ncpus > MAX_LISTENERS / 2)
		self->ncpus = MAX_LISTENERS / 2;
}

FIXTURE_TEARDOWN(steer)
{
	group_close(&self->g);
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

/*
 * Least connections: the listener with the fewest live connections gets
 * the next one; equal ones take turns; one at its cap is passed over.
 */
TEST_F(steer, least_conns_follows_live_counts)
{
	int cpu0 = 0, k, i, got, c[8], a[8], count[3] = {};

	for (k = 0; k < 3; k++)
		add_capped(_metadata, &self->g, variant->family,
			   REUSERPS_LEAST_CONNS, k == 2 ? 2 : 0, &cpu0, 1);
	pin(_metadata, 0);
	/* Equal (none live): each in turn, three rounds. */
	for (k = 0; k < 9; k++) {
		got = connect_one(_metadata, &self->g, variant->family);
		ASSERT_TRUE(got >= 0 && got < 3);
		count[got]++;
		for (i = 0; i < 3; i++)
			ASSERT_EQ(0, wait_active(_metadata, self->g.fd[i], 0));
	}
	EXPECT_EQ(3, count[0]);
	EXPECT_EQ(3, count[1]);
	EXPECT_EQ(3, count[2]);
	/* One each, kept open: 1, 1, 1. */
	for (k = 0; k < 3; k++) {
		got = connect_keep(_metadata, &self->g, variant->family,
				   &c[k], &a[k]);
		ASSERT_TRUE(got >= 0 && got < 3);
		count[got] = k;		/* which connection it holds */
	}
	/*
	 * Listener 1's ends: with none, it gets the next one.  Then all
	 * have one and the turn, past listener 1, gives listener 2 its
	 * second (its cap), then listener 0 its second; listener 1, the
	 * one left with the fewest, the next; with 2, 2, 2 and listener 2
	 * full, the turn passes it over to listener 0.
	 */
	close(c[count[1]]);
	close(a[count[1]]);
	ASSERT_EQ(0, wait_active(_metadata, self->g.fd[1], 0));
	EXPECT_EQ(1, connect_keep(_metadata, &self->g, variant->family,
				  &c[3], &a[3]));
	EXPECT_EQ(2, connect_keep(_metadata, &self->g, variant->family,
				  &c[4], &a[4]));
	EXPECT_EQ(0, connect_keep(_metadata, &self->g, variant->family,
				  &c[5], &a[5]));
	EXPECT_EQ(1, connect_keep(_metadata, &self->g, variant->family,
				  &c[6], &a[6]));
	EXPECT_EQ(0, connect_keep(_metadata, &self->g, variant->family,
				  &c[7], &a[7]));
	EXPECT_EQ(3, info_of(_metadata, self->g.fd[0]).active_conns);
	EXPECT_EQ(2, info_of(_metadata, self->g.fd[1]).active_conns);
	EXPECT_EQ(2, info_of(_metadata, self->g.fd[2]).active_conns);
	EXPECT_EQ(1, info_of(_metadata, self->g.fd[2]).full_skips);
	for (k = 0; k < 8; k++) {
		if (k == count[1])
			continue;
		close(c[k]);
		close(a[k]);
	}
	for (k = 0; k < 3; k++)
		EXPECT_EQ(0, wait_active(_metadata, self->g.fd[k], 0));
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

/* Open connections on the port are no members: a listener still joins. */
TEST_F(steer, join_beside_connections)
{
	int cpu0 = 0, c, a, got;

	add_listener(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		     &cpu0, 1);
	pin(_metadata, 0);
	ASSERT_EQ(0, connect_keep(_metadata, &self->g, variant->family, &c,
				  &a));
	add_listener(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		     &cpu0, 1);
	/* Both take turns now. */
	got = connect_one(_metadata, &self->g, variant->family);
	EXPECT_TRUE(got == 0 || got == 1);
	EXPECT_EQ(1 - got, connect_one(_metadata, &self->g, variant->family));
	close(c);
	close(a);
}

/*
 * A socket with SO_REUSEADDR and SO_REUSEPORT, with SO_REUSERPS unless
 * @policy is negative, bound to the group's address; 0 or the errno.
 */
static int bound_reuseaddr(struct group *g, int family, int policy,
			   int *fdp)
{
	int cpu0 = 0, one = 1, fd, err;

	fd = socket(family, SOCK_STREAM, 0);
	if (fd < 0)
		return errno;
	err = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ?
	      errno : 0;
	if (!err && policy >= 0)
		err = request(fd, policy, 0, &cpu0, 1);
	if (!err && bind(fd, (struct sockaddr *)&g->addr, g->alen))
		err = errno;
	if (err) {
		close(fd);
		return err;
	}
	if (!g->n)
		getsockname(fd, (struct sockaddr *)&g->addr, &g->alen);
	*fdp = fd;
	return 0;
}

/* SO_REUSEADDR's fast path does not skip the mode check either. */
TEST_F(steer, reuseaddr_fast_path_checks_mode)
{
	struct group g2 = self->g;
	int a = -1, b = -1;

	/* SO_REUSERPS first, then another policy or none. */
	ASSERT_EQ(0, bound_reuseaddr(&self->g, variant->family,
				     REUSERPS_ROUND_ROBIN, &a));
	EXPECT_EQ(EADDRINUSE, bound_reuseaddr(&self->g, variant->family,
					      REUSERPS_FILL_FIRST, &b));
	EXPECT_EQ(EADDRINUSE, bound_reuseaddr(&self->g, variant->family, -1,
					      &b));
	ASSERT_EQ(0, bound_reuseaddr(&self->g, variant->family,
				     REUSERPS_ROUND_ROBIN, &b));
	close(b);
	close(a);

	/* A plain socket first, then SO_REUSERPS. */
	ASSERT_EQ(0, bound_reuseaddr(&g2, variant->family, -1, &a));
	EXPECT_EQ(EADDRINUSE, bound_reuseaddr(&g2, variant->family,
					      REUSERPS_ROUND_ROBIN, &b));
	close(a);
}

/*
 * A socket bound to the port that connected elsewhere and was reset stays
 * bound in TCP_CLOSE, with a peer: it is no member, listeners still join.
 */
TEST_F(steer, join_beside_reset_client)
{
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	struct sockaddr_storage srv_addr = self->g.addr;
	socklen_t slen = self->g.alen, tlen;
	int cpu0 = 0, one = 1, srv, c, a, fd = -1, i;
	struct tcp_info ti;

	/* A free port for the client to bind explicitly. */
	fd = socket(variant->family, SOCK_STREAM, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, bind(fd, (struct sockaddr *)&self->g.addr, self->g.alen));
	ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)&self->g.addr,
				 &self->g.alen));
	close(fd);

	srv = socket(variant->family, SOCK_STREAM, 0);
	ASSERT_LE(0, srv);
	ASSERT_EQ(0, bind(srv, (struct sockaddr *)&srv_addr, slen));
	ASSERT_EQ(0, listen(srv, 8));
	ASSERT_EQ(0, getsockname(srv, (struct sockaddr *)&srv_addr, &slen));

	c = socket(variant->family, SOCK_STREAM, 0);
	ASSERT_LE(0, c);
	ASSERT_EQ(0, setsockopt(c, SOL_SOCKET, SO_REUSEPORT, &one,
				sizeof(one)));
	ASSERT_EQ(0, bind(c, (struct sockaddr *)&self->g.addr, self->g.alen));
	ASSERT_EQ(0, connect(c, (struct sockaddr *)&srv_addr, slen));
	a = accept(srv, NULL, NULL);
	ASSERT_LE(0, a);
	ASSERT_EQ(0, setsockopt(a, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst)));
	close(a);
	for (i = 0; i < 2000; i++) {
		tlen = sizeof(ti);
		ASSERT_EQ(0, getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &tlen));
		if (ti.tcpi_state == TCP_CLOSE)
			break;
		usleep(10000);
	}
	ASSERT_EQ(TCP_CLOSE, ti.tcpi_state);

	EXPECT_EQ(0, bound(&self->g, variant->family, true,
			   REUSERPS_ROUND_ROBIN, &cpu0, 1, &fd));
	if (fd >= 0) {
		EXPECT_EQ(0, listen(fd, 8));
		close(fd);
	}
	close(c);
	close(srv);
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

/* A listening member changes its CPUs at once; its queue is kept. */
TEST_F(steer, reconfigure_moves_cpus)
{
	int cpu0 = 0, cpu1 = 1, c[3], a, k;

	add_listener(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		     &cpu0, 1);
	add_listener(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		     &cpu1, 1);
	pin(_metadata, 0);
	for (k = 0; k < 3; k++)
		c[k] = connect_queued(_metadata, &self->g, variant->family);
	EXPECT_EQ(3, wait_active(_metadata, self->g.fd[0], 3));

	/* Swap the two listeners' CPUs while three connections wait. */
	ASSERT_EQ(0, request(self->g.fd[0], REUSERPS_ROUND_ROBIN, 0, &cpu1, 1));
	ASSERT_EQ(0, request(self->g.fd[1], REUSERPS_ROUND_ROBIN, 0, &cpu0, 1));
	for (k = 0; k < 3; k++) {
		a = accept(self->g.fd[0], NULL, NULL);
		EXPECT_LE(0, a);
		close(a);
		close(c[k]);
	}
	for (k = 0; k < 4; k++)
		EXPECT_EQ(1, connect_one(_metadata, &self->g, variant->family));
	pin(_metadata, 1);
	for (k = 0; k < 4; k++)
		EXPECT_EQ(0, connect_one(_metadata, &self->g, variant->family));

	/* The group's policy is not a member's to change. */
	EXPECT_EQ(EADDRINUSE, request(self->g.fd[0], REUSERPS_FILL_FIRST, 0,
				      &cpu0, 1));
	EXPECT_EQ(0, connect_one(_metadata, &self->g, variant->family));
	EXPECT_EQ(0, wait_active(_metadata, self->g.fd[0], 0));
	EXPECT_EQ(0, wait_active(_metadata, self->g.fd[1], 0));
	EXPECT_EQ(8, info_of(_metadata, self->g.fd[0]).total_conns);
	EXPECT_EQ(4, info_of(_metadata, self->g.fd[1]).total_conns);
}

/* A cap changed on a listening member: raised, then lowered below use. */
TEST_F(steer, reconfigure_cap_keeps_place)
{
	int all[MAX_LISTENERS], c[6], a[6], want[6] = { 0, 1, 0, 0, 1, 1 };
	struct reuserps_info info;
	int i, k;

	for (i = 0; i < self->ncpus; i++)
		all[i] = i;
	add_capped(_metadata, &self->g, variant->family, REUSERPS_FILL_FIRST,
		   1, all, self->ncpus);
	add_capped(_metadata, &self->g, variant->family, REUSERPS_FILL_FIRST,
		   0, all, self->ncpus);
	pin(_metadata, 0);
	for (k = 0; k < 6; k++) {
		if (k == 2)	/* room for two more; still first in order */
			ASSERT_EQ(0, request(self->g.fd[0],
					     REUSERPS_FILL_FIRST, 3, all,
					     self->ncpus));
		if (k == 5)	/* below what it holds: it keeps them */
			ASSERT_EQ(0, request(self->g.fd[0],
					     REUSERPS_FILL_FIRST, 1, all,
					     self->ncpus));
		EXPECT_EQ(want[k], connect_keep(_metadata, &self->g,
						variant->family, &c[k],
						&a[k]));
	}
	info = info_of(_metadata, self->g.fd[0]);
	EXPECT_EQ(1, info.max_conns);
	EXPECT_EQ(3, info.active_conns);
	EXPECT_EQ(3, info_of(_metadata, self->g.fd[1]).active_conns);
	for (k = 0; k < 6; k++) {
		close(c[k]);
		close(a[k]);
	}
	EXPECT_EQ(0, wait_active(_metadata, self->g.fd[0], 0));
	EXPECT_EQ(0, wait_active(_metadata, self->g.fd[1], 0));
}

/*
 * With two NUMA nodes: a's own listener full, its connections go to the
 * listener of s, on a's node, up to its cap, and only then to the other
 * node's.  reuserps_hotplug.c repeats it across a CPU going offline.
 */
TEST_F(steer, nearest_fallback_stays_on_node)
{
	int node_of[MAX_LISTENERS], a, s, cpu, near_cap = 8;
	const char *why;

	why = nearest_cpus(node_of, self->ncpus, &a, &s);
	if (why)
		SKIP(return, "%s", why);
	/* a and s share a node; every other node's CPU gets a listener. */
	add_capped(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		   1, &a, 1);
	add_capped(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		   near_cap, &s, 1);
	for (cpu = 0; cpu < self->ncpus; cpu++)
		if (node_of[cpu] >= 0 && node_of[cpu] != node_of[a])
			add_listener(_metadata, &self->g, variant->family,
				     REUSERPS_ROUND_ROBIN, &cpu, 1);
	nearest_round(_metadata, &self->g, variant->family, near_cap,
		      node_of, a);
}

/*
 * Connects from the current CPU and leaves the connection queued: the
 * index of the listener whose accept queue grew, waiting up to 20 s for
 * the handshake's last ACK to reach it (a bound, not a measure); -1 if
 * none did.  The client in *@cfd.
 */
static int connect_where(struct __test_metadata *_metadata, struct group *g,
			 int family, int *cfd)
{
	__u32 before[MAX_LISTENERS];
	int i, tries;

	for (i = 0; i < g->n; i++)
		before[i] = g->fd[i] >= 0 ?
			    info_of(_metadata, g->fd[i]).pending : 0;
	*cfd = connect_queued(_metadata, g, family);
	for (tries = 0; tries < 2000; tries++) {
		for (i = 0; i < g->n; i++)
			if (g->fd[i] >= 0 &&
			    info_of(_metadata, g->fd[i]).pending > before[i])
				return i;
		usleep(10000);
	}
	return -1;
}

/* Accepts and closes what waits on listener @i; how many. */
static int accept_queue(struct group *g, int i)
{
	int a, n = 0;

	while ((a = accept(g->fd[i], NULL, NULL)) >= 0) {
		close(a);
		n++;
	}
	return n;
}

static void close_all(int *fd, int n)
{
	while (n--)
		close(fd[n]);
}

/*
 * Fill first: A, first registered, stops accepting with max_pending 2.
 * It takes two, which wait in its queue; then B takes the new ones.  Once
 * A accepts its queue it is first with room again.
 */
TEST_F(steer, max_pending_fill_first_spills)
{
	int cpu0 = 0, c[9], n = 0, k;
	long drops = listen_drops();
	__u64 skips;

	ASSERT_LE(0, drops);
	add_pending(_metadata, &self->g, variant->family, REUSERPS_FILL_FIRST,
		    0, 2, &cpu0, 1);
	add_pending(_metadata, &self->g, variant->family, REUSERPS_FILL_FIRST,
		    0, 0, &cpu0, 1);
	pin(_metadata, 0);
	for (k = 0; k < 2; k++)
		EXPECT_EQ(0, connect_where(_metadata, &self->g,
					   variant->family, &c[n++]));
	for (k = 0; k < 4; k++)
		EXPECT_EQ(1, connect_where(_metadata, &self->g,
					   variant->family, &c[n++]));
	EXPECT_EQ(2, info_of(_metadata, self->g.fd[0]).pending);
	EXPECT_EQ(4, info_of(_metadata, self->g.fd[1]).pending);
	skips = info_of(_metadata, self->g.fd[0]).full_skips;
	TH_LOG("A, stalled, was passed over: full_skips %llu",
	       (unsigned long long)skips);

	/* A catches up: first with room again, until it holds two. */
	EXPECT_EQ(2, accept_queue(&self->g, 0));
	EXPECT_EQ(0, connect_where(_metadata, &self->g, variant->family,
				   &c[n++]));
	EXPECT_EQ(0, connect_where(_metadata, &self->g, variant->family,
				   &c[n++]));
	EXPECT_EQ(1, connect_where(_metadata, &self->g, variant->family,
				   &c[n++]));

	/* Counts as ever; nothing was refused. */
	EXPECT_EQ(4, info_of(_metadata, self->g.fd[0]).total_conns);
	EXPECT_EQ(5, info_of(_metadata, self->g.fd[1]).total_conns);
	EXPECT_EQ(drops, listen_drops());
	close_all(c, n);
}

/*
 * max_pending 0 is no limit: fill first leaves every connection with A,
 * however many wait.  Set on the listening member, a limit moves the next
 * one to B; a VER0 request takes it away again.
 */
TEST_F(steer, max_pending_zero_no_spill)
{
	int cpu0 = 0, c[8], n = 0, k;
	struct reuserps_req req;
	__u64 mask = 1;

	add_pending(_metadata, &self->g, variant->family, REUSERPS_FILL_FIRST,
		    0, 0, &cpu0, 1);
	add_pending(_metadata, &self->g, variant->family, REUSERPS_FILL_FIRST,
		    0, 0, &cpu0, 1);
	pin(_metadata, 0);
	for (k = 0; k < 6; k++)
		EXPECT_EQ(0, connect_where(_metadata, &self->g,
					   variant->family, &c[n++]));
	EXPECT_EQ(6, info_of(_metadata, self->g.fd[0]).pending);
	EXPECT_EQ(0, info_of(_metadata, self->g.fd[1]).total_conns);

	ASSERT_EQ(0, request_pending(self->g.fd[0], REUSERPS_FILL_FIRST, 0, 6,
				     &cpu0, 1));
	EXPECT_EQ(1, connect_where(_metadata, &self->g, variant->family,
				   &c[n++]));
	rps_req_init(&req, REUSERPS_FILL_FIRST, 0, &mask, sizeof(mask));
	ASSERT_EQ(0, rps_setsockopt(self->g.fd[0], &req,
				    REUSERPS_REQ_SIZE_VER0));
	EXPECT_EQ(0, info_of(_metadata, self->g.fd[0]).max_pending);
	EXPECT_EQ(0, connect_where(_metadata, &self->g, variant->family,
				   &c[n++]));
	close_all(c, n);
}

/*
 * Round robin: while both accept, they alternate.  When A (max_pending 2)
 * stops, its turns still come until it holds two, then B takes every
 * one; once A accepts its queue, they alternate again.
 */
TEST_F(steer, max_pending_round_robin_skips)
{
	int cpu0 = 0, c[16], n = 0, k, got, last = -1, count[2] = {};
	long drops = listen_drops();

	ASSERT_LE(0, drops);
	add_pending(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		    0, 2, &cpu0, 1);
	add_pending(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		    0, 0, &cpu0, 1);
	pin(_metadata, 0);
	for (k = 0; k < 6; k++) {
		int cl;

		got = connect_where(_metadata, &self->g, variant->family, &cl);
		ASSERT_TRUE(got == 0 || got == 1);
		EXPECT_EQ(1, accept_queue(&self->g, got));
		close(cl);
		EXPECT_NE(last, got);
		last = got;
		count[got]++;
	}
	EXPECT_EQ(3, count[0]);
	EXPECT_EQ(3, count[1]);

	/* A stops accepting; B goes on. */
	count[0] = 0;
	count[1] = 0;
	for (k = 0; k < 10; k++) {
		bool stalled = info_of(_metadata, self->g.fd[0]).pending >= 2;

		got = connect_where(_metadata, &self->g, variant->family,
				    &c[n++]);
		ASSERT_TRUE(got == 0 || got == 1);
		if (stalled)
			EXPECT_EQ(1, got) TH_LOG("connection %d", k);
		if (got == 1)
			EXPECT_EQ(1, accept_queue(&self->g, 1));
		count[got]++;
	}
	EXPECT_EQ(2, count[0]);
	EXPECT_EQ(8, count[1]);
	EXPECT_EQ(2, info_of(_metadata, self->g.fd[0]).pending);

	/* A catches up: one each again. */
	EXPECT_EQ(2, accept_queue(&self->g, 0));
	count[0] = 0;
	count[1] = 0;
	for (k = 0; k < 2; k++) {
		got = connect_where(_metadata, &self->g, variant->family,
				    &c[n++]);
		ASSERT_TRUE(got == 0 || got == 1);
		count[got]++;
	}
	EXPECT_EQ(1, count[0]);
	EXPECT_EQ(1, count[1]);
	EXPECT_EQ(drops, listen_drops());
	close_all(c, n);
}

/*
 * Least connections: A (max_pending 2) stops accepting with fewer
 * connections than B; B, which accepts and holds its own, takes the new
 * ones though it has more.  Without the limit, set on the listening
 * member, A has the fewest and gets the next.
 */
TEST_F(steer, max_pending_least_conns_passes_stalled)
{
	int cpu0 = 0, c[12], a[12], n = 0, na = 0, k, got, more = 0;
	struct reuserps_info ia, ib;

	add_pending(_metadata, &self->g, variant->family, REUSERPS_LEAST_CONNS,
		    0, 2, &cpu0, 1);
	add_pending(_metadata, &self->g, variant->family, REUSERPS_LEAST_CONNS,
		    0, 0, &cpu0, 1);
	pin(_metadata, 0);
	for (k = 0; k < 10; k++) {
		ia = info_of(_metadata, self->g.fd[0]);
		ib = info_of(_metadata, self->g.fd[1]);
		got = connect_where(_metadata, &self->g, variant->family,
				    &c[n++]);
		ASSERT_TRUE(got == 0 || got == 1);
		if (ia.pending >= 2) {
			EXPECT_EQ(1, got) TH_LOG("connection %d: %u against %u",
						 k, ia.active_conns,
						 ib.active_conns);
			more += ib.active_conns > ia.active_conns;
		}
		if (got == 1) {
			a[na] = accept(self->g.fd[1], NULL, NULL);
			ASSERT_LE(0, a[na]);
			na++;
		}
	}
	ia = info_of(_metadata, self->g.fd[0]);
	ib = info_of(_metadata, self->g.fd[1]);
	EXPECT_EQ(2, ia.pending);
	EXPECT_EQ(2, ia.active_conns);
	EXPECT_EQ(8, ib.active_conns);
	EXPECT_EQ(0, ib.pending);
	/* B took connections while it had more than A: at least three. */
	EXPECT_LE(3, more);

	/* No limit: A has the fewest. */
	ASSERT_EQ(0, request_pending(self->g.fd[0], REUSERPS_LEAST_CONNS, 0, 0,
				     &cpu0, 1));
	EXPECT_EQ(0, connect_where(_metadata, &self->g, variant->family,
				   &c[n++]));
	close_all(a, na);
	close_all(c, n);
}

/*
 * A stall moves connections only to a sibling with room.  A (fill first,
 * cap 3, max_pending 1) stalls at once; B (cap 2) takes two and is full;
 * then A takes the next ones as if it had no max_pending, up to its cap,
 * with no SYN dropped.  With both at their cap, the cap holds: the next
 * SYN is dropped.
 */
TEST_F(steer, max_pending_spills_only_to_room)
{
	int cpu0 = 0, c[8], n = 0, k, late;
	struct reuserps_info ia, ib;
	long drops = listen_drops();

	ASSERT_LE(0, drops);
	add_pending(_metadata, &self->g, variant->family, REUSERPS_FILL_FIRST,
		    3, 1, &cpu0, 1);
	add_pending(_metadata, &self->g, variant->family, REUSERPS_FILL_FIRST,
		    2, 0, &cpu0, 1);
	pin(_metadata, 0);
	EXPECT_EQ(0, connect_where(_metadata, &self->g, variant->family,
				   &c[n++]));
	for (k = 0; k < 2; k++)
		EXPECT_EQ(1, connect_where(_metadata, &self->g,
					   variant->family, &c[n++]));
	/* B is at its cap: A, stalled, is all there is. */
	for (k = 0; k < 2; k++)
		EXPECT_EQ(0, connect_where(_metadata, &self->g,
					   variant->family, &c[n++]));
	EXPECT_EQ(drops, listen_drops());
	ia = info_of(_metadata, self->g.fd[0]);
	ib = info_of(_metadata, self->g.fd[1]);
	EXPECT_EQ(3, ia.pending);
	EXPECT_EQ(3, ia.active_conns);
	EXPECT_EQ(3, ia.total_conns);
	EXPECT_EQ(2, ib.active_conns);
	EXPECT_EQ(2, ib.total_conns);

	/* Both at their cap: dropped, as without max_pending. */
	late = connect_dropped(_metadata, &self->g, variant->family, drops);
	EXPECT_EQ(3, info_of(_metadata, self->g.fd[0]).active_conns);
	EXPECT_EQ(2, info_of(_metadata, self->g.fd[1]).active_conns);
	close(late);
	close_all(c, n);
}

/*
 * The fallback passes a stalled listener over too: CPU 0's only listener
 * A stalled (max_pending 1), CPU 0's connection goes to B, CPU 1's.  With
 * both stalled, each CPU's connection goes to its own listener (nothing
 * has room: as if there were no max_pending).  Once A accepts, CPU 1's
 * connection, B stalled, falls back to A.
 */
TEST_F(steer, max_pending_fallback_passes_stalled)
{
	int cpu0 = 0, cpu1 = 1, c[6], n = 0;
	long drops = listen_drops();

	ASSERT_LE(0, drops);
	add_pending(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		    0, 1, &cpu0, 1);
	add_pending(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		    0, 1, &cpu1, 1);
	pin(_metadata, 0);
	EXPECT_EQ(0, connect_where(_metadata, &self->g, variant->family,
				   &c[n++]));
	EXPECT_EQ(1, connect_where(_metadata, &self->g, variant->family,
				   &c[n++]));
	EXPECT_EQ(0, connect_where(_metadata, &self->g, variant->family,
				   &c[n++]));
	pin(_metadata, 1);
	EXPECT_EQ(1, connect_where(_metadata, &self->g, variant->family,
				   &c[n++]));
	EXPECT_EQ(2, accept_queue(&self->g, 0));
	EXPECT_EQ(0, connect_where(_metadata, &self->g, variant->family,
				   &c[n++]));
	EXPECT_EQ(2, info_of(_metadata, self->g.fd[1]).pending);
	EXPECT_EQ(drops, listen_drops());
	close_all(c, n);
}

/* An IPv4 client of dual-stack IPv6 listeners is steered the same way. */
FIXTURE(dual)
{
	int ncpus;
	struct group g;
};

FIXTURE_SETUP(dual)
{
	group_init(&self->g, AF_INET6);
	if (!reuserps_supported())
		SKIP(return, "no SO_REUSERPS in this kernel (ENOPROTOOPT)");
	ASSERT_EQ(0, rps_netns());
	self->ncpus = get_nprocs();
	if (self->ncpus > MAX_LISTENERS)
		self->ncpus = MAX_LISTENERS;
}

FIXTURE_TEARDOWN(dual)
{
	group_close(&self->g);
}

TEST_F(dual, dual_stack_v4_client)
{
	struct group *g = &self->g, g4;
	struct sockaddr_in *a4;
	int cpu, k;

	((struct sockaddr_in6 *)&g->addr)->sin6_addr = in6addr_any;
	for (cpu = 0; cpu < self->ncpus; cpu++)
		add_listener(_metadata, g, AF_INET6, REUSERPS_ROUND_ROBIN,
			     &cpu, 1);

	/* The same listeners, reached at 127.0.0.1 on their port. */
	g4 = *g;
	memset(&g4.addr, 0, sizeof(g4.addr));
	a4 = (struct sockaddr_in *)&g4.addr;
	a4->sin_family = AF_INET;
	a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a4->sin_port = ((struct sockaddr_in6 *)&g->addr)->sin6_port;
	g4.alen = sizeof(*a4);
	for (cpu = 0; cpu < self->ncpus; cpu++) {
		pin(_metadata, cpu);
		for (k = 0; k < 4; k++)
			EXPECT_EQ(cpu, connect_one(_metadata, &g4, AF_INET));
	}
}

int main(int argc, char **argv)
{
	return reuserps_harness_main(argc, argv);
}
