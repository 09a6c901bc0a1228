// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS caps and counts: the cap a listener sets and the counts
 * getsockopt() reports, back to zero after every way a connection ends
 * (close, reset, listener shutdown, request expiry, SYN cookies,
 * migration to another listener), the fallback to a member with room, the
 * drop and retry when all are full, tcp_migrate_req moving connections
 * and requests with their counts, ACKs racing from two CPUs, a SYN flood
 * with cookies, a reuseport program's precedence over the table, and
 * listeners joining and leaving under load; on IPv4 and IPv6.  Each test
 * runs in a network namespace of its own, where it sets its sysctls; what
 * must not happen is checked once a counter says what did happen.
 */
#include "kselftest_harness.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <pthread.h>
#include <sys/mman.h>

#include "reuserps_lib.h"

FIXTURE(caps)
{
	int ncpus;
	struct group g;
};

FIXTURE_VARIANT(caps)
{
	int family;
};

FIXTURE_VARIANT_ADD(caps, ipv4)
{
	.family = AF_INET,
};

FIXTURE_VARIANT_ADD(caps, ipv6)
{
	.family = AF_INET6,
};

FIXTURE_SETUP(caps)
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

FIXTURE_TEARDOWN(caps)
{
	group_close(&self->g);
}

/* Fill first with caps: the first takes its cap, the next the rest. */
TEST_F(caps, caps_and_counts)
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
TEST_F(caps, active_back_to_zero)
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
	for (k = 0; k < 3; k++)
		cs[k] = connect_queued(_metadata, &self->g, variant->family);
	EXPECT_EQ(3, wait_active(_metadata, l, 3));
	ASSERT_EQ(0, shutdown(l, SHUT_RDWR));
	EXPECT_EQ(0, wait_active(_metadata, l, 0));
	EXPECT_EQ(6, info_of(_metadata, l).total_conns);
	for (k = 0; k < 3; k++)
		close(cs[k]);
}

/* Full on its CPU: the connection goes to another member with room. */
TEST_F(caps, full_falls_back_to_room)
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
TEST_F(caps, all_full_drops_then_retry_succeeds)
{
	int all[MAX_LISTENERS], c, a, c2, a2, i, l;
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

	/* Its SYN is dropped, counted; the client still waits for an answer. */
	c2 = connect_dropped(_metadata, &self->g, variant->family, drops);
	EXPECT_EQ(1, info_of(_metadata, l).active_conns);
	EXPECT_EQ(1, info_of(_metadata, l).total_conns);

	/* Room again: the client's SYN retransmission gets in. */
	close(c);
	close(a);
	EXPECT_EQ(0, wait_active(_metadata, l, 0));
	wait_connected(_metadata, c2);
	EXPECT_EQ(0, accept_any(_metadata, &self->g, &a2));
	EXPECT_EQ(1, info_of(_metadata, l).active_conns);
	close(c2);
	close(a2);
}

/* A connection that outlives its listener ends safely. */
TEST_F(caps, connection_outlives_listener)
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

/* With SYN cookies, a connection counts once: at its ACK. */
TEST_F(caps, syn_cookies_count_once)
{
	int all[MAX_LISTENERS], c[3], a[3], i, l;

	ASSERT_EQ(0, set_sysctl("/proc/sys/net/ipv4/tcp_syncookies", "2"));
	for (i = 0; i < self->ncpus; i++)
		all[i] = i;
	l = add_listener(_metadata, &self->g, variant->family,
			 REUSERPS_ROUND_ROBIN, all, self->ncpus);
	l = self->g.fd[l];
	for (i = 0; i < 3; i++)
		EXPECT_EQ(0, connect_keep(_metadata, &self->g, variant->family,
					  &c[i], &a[i]));
	EXPECT_EQ(3, info_of(_metadata, l).active_conns);
	EXPECT_EQ(3, info_of(_metadata, l).total_conns);
	for (i = 0; i < 3; i++) {
		close(c[i]);
		close(a[i]);
	}
	EXPECT_EQ(0, wait_active(_metadata, l, 0));
	EXPECT_EQ(3, info_of(_metadata, l).total_conns);
}

/*
 * With SYN cookies, a connection is looked up twice: for its SYN and for
 * the ACK that carries the cookie.  Only the SYN is a connection request:
 * two round-robin listeners still alternate strictly.
 */
TEST_F(caps, cookie_acks_move_no_turn)
{
	int cpu0 = 0, k, got, last = -1, count[2] = {};

	ASSERT_EQ(0, set_sysctl("/proc/sys/net/ipv4/tcp_syncookies", "2"));
	add_listener(_metadata, &self->g, variant->family,
		     REUSERPS_ROUND_ROBIN, &cpu0, 1);
	add_listener(_metadata, &self->g, variant->family,
		     REUSERPS_ROUND_ROBIN, &cpu0, 1);
	pin(_metadata, 0);
	for (k = 0; k < 10; k++) {
		got = connect_one(_metadata, &self->g, variant->family);
		ASSERT_TRUE(got == 0 || got == 1);
		EXPECT_NE(last, got);
		last = got;
		count[got]++;
	}
	EXPECT_EQ(5, count[0]);
	EXPECT_EQ(5, count[1]);
}

/* Attaches a classic BPF program that returns @idx to @fd's group. */
static int attach_cbpf(int fd, __u32 idx)
{
	struct sock_filter code[] = { BPF_STMT(BPF_RET | BPF_K, idx) };
	struct sock_fprog prog = { .len = 1, .filter = code };

	return setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog,
			  sizeof(prog)) ? errno : 0;
}

/*
 * A reuseport program attached before bind() makes the socket's group
 * then; the socket's SO_REUSERPS request, set before or after, changed
 * or not, is the one its group steers by once it listens.  @first: the
 * CPU listener 0 first asks for; it then asks for CPU 0 if @change.
 */
static void program_then_request(struct __test_metadata *_metadata,
				 struct group *g, int ncpus, int family,
				 int first, bool change)
{
	int fd, one = 1, cpu, k;

	fd = socket(family, SOCK_STREAM, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one,
				sizeof(one)));
	if (first >= 0)
		ASSERT_EQ(0, request(fd, REUSERPS_ROUND_ROBIN, 0, &first, 1));
	ASSERT_EQ(0, attach_cbpf(fd, 0));
	if (change || first < 0) {
		cpu = 0;
		ASSERT_EQ(0, request(fd, REUSERPS_ROUND_ROBIN, 0, &cpu, 1));
	}
	ASSERT_EQ(0, bind(fd, (struct sockaddr *)&g->addr,
			  g->alen));
	ASSERT_EQ(0, listen(fd, 256));
	ASSERT_EQ(0, fcntl(fd, F_SETFL, O_NONBLOCK));
	ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)&g->addr,
				 &g->alen));
	g->fd[g->n++] = fd;
	for (cpu = 1; cpu < ncpus; cpu++)
		add_listener(_metadata, g, family, REUSERPS_ROUND_ROBIN,
			     &cpu, 1);

	/* While the program is attached, it selects: listener 0. */
	pin(_metadata, ncpus - 1);
	EXPECT_EQ(0, connect_one(_metadata, g, family));

	ASSERT_EQ(0, setsockopt(fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF,
				&one, sizeof(one)));
	for (cpu = 0; cpu < ncpus; cpu++) {
		pin(_metadata, cpu);
		for (k = 0; k < 4; k++)
			EXPECT_EQ(cpu, connect_one(_metadata, g,
						   family));
	}
}

TEST_F(caps, program_before_request)
{
	program_then_request(_metadata, &self->g, self->ncpus,
			     variant->family, -1, false);
}

TEST_F(caps, request_program_request)
{
	program_then_request(_metadata, &self->g, self->ncpus,
			     variant->family, 1, true);
}

TEST_F(caps, request_then_program)
{
	program_then_request(_metadata, &self->g, self->ncpus,
			     variant->family, 0, false);
}

/*
 * A group with a program and SO_REUSERPS: the program selects, and the
 * listener it selects still counts its connections and keeps its cap.
 */
TEST_F(caps, program_selects_caps_hold)
{
	long drops;
	int cpu, c, a, c2;

	for (cpu = 0; cpu < 2; cpu++)
		add_capped(_metadata, &self->g, variant->family,
			   REUSERPS_ROUND_ROBIN, 1, &cpu, 1);
	ASSERT_EQ(0, attach_cbpf(self->g.fd[0], 1));
	pin(_metadata, 0);
	ASSERT_EQ(1, connect_keep(_metadata, &self->g, variant->family, &c,
				  &a));
	EXPECT_EQ(1, info_of(_metadata, self->g.fd[1]).active_conns);

	/* Listener 1 is at its cap: the SYN is dropped, not redirected. */
	drops = listen_drops();
	c2 = socket(variant->family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ASSERT_LE(0, c2);
	connect(c2, (struct sockaddr *)&self->g.addr, self->g.alen);
	EXPECT_LT(drops, wait_tcpext_above("ListenDrops", drops));
	EXPECT_EQ(0, info_of(_metadata, self->g.fd[0]).total_conns);
	close(c2);
	close(c);
	close(a);
	EXPECT_EQ(0, wait_active(_metadata, self->g.fd[1], 0));
}

/*
 * tcp_migrate_req: a closed listener's queued connections move to another
 * member, their counts with them, as far as that member's cap allows.
 */
TEST_F(caps, migrated_count_follows)
{
	int cpu0 = 0, cpu1 = 1, c[4], a, k, n = 0;

	ASSERT_EQ(0, set_sysctl("/proc/sys/net/ipv4/tcp_migrate_req", "1"));
	add_listener(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		     &cpu0, 1);
	add_capped(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		   2, &cpu1, 1);
	pin(_metadata, 0);
	for (k = 0; k < 4; k++)
		c[k] = connect_queued(_metadata, &self->g, variant->family);
	EXPECT_EQ(4, wait_active(_metadata, self->g.fd[0], 4));
	close(self->g.fd[0]);
	self->g.fd[0] = -1;

	/* Two fit under the cap; the other two are reset. */
	EXPECT_EQ(2, wait_active(_metadata, self->g.fd[1], 2));
	EXPECT_EQ(2, info_of(_metadata, self->g.fd[1]).total_conns);
	while ((a = accept(self->g.fd[1], NULL, NULL)) >= 0) {
		n++;
		close(a);
	}
	EXPECT_EQ(EAGAIN, errno);
	EXPECT_EQ(2, n);
	for (k = 0; k < 4; k++)
		close(c[k]);
	EXPECT_EQ(0, wait_active(_metadata, self->g.fd[1], 0));
}

/*
 * Sets up a closed listener with one request waiting in the SYN queue:
 * A (CPU 0) defers accept, so the client's bare ACK leaves its request
 * pending; then A is closed.  B (CPU 1, cap 1) is the only member left.
 * Returns the client socket, connected from CPU 0.
 */
static int pending_request_of_closed(struct __test_metadata *_metadata,
				     struct group *g, int family)
{
	int cpu0 = 0, cpu1 = 1, secs = 30, c;
	long deferred;

	ASSERT_EQ(0, set_sysctl("/proc/sys/net/ipv4/tcp_migrate_req", "1"));
	add_listener(_metadata, g, family, REUSERPS_ROUND_ROBIN, &cpu0, 1);
	add_capped(_metadata, g, family, REUSERPS_ROUND_ROBIN, 1, &cpu1, 1);
	ASSERT_EQ(0, setsockopt(g->fd[0], IPPROTO_TCP, TCP_DEFER_ACCEPT,
				&secs, sizeof(secs)));
	deferred = tcpext("TCPDeferAcceptDrop");
	ASSERT_LE(0, deferred);
	pin(_metadata, 0);
	c = connect_queued(_metadata, g, family);
	/* The bare ACK is dropped, the request left waiting; a request
	 * counts nothing: only a connection does.
	 */
	EXPECT_LT(deferred, wait_tcpext_above("TCPDeferAcceptDrop", deferred));
	EXPECT_EQ(0, info_of(_metadata, g->fd[0]).active_conns);
	EXPECT_EQ(0, info_of(_metadata, g->fd[0]).total_conns);
	close(g->fd[0]);
	g->fd[0] = -1;
	return c;
}

/*
 * The connection of a migrated request counts once, on the listener it
 * lands on, for as long as it lives: that listener's cap holds.
 */
static void migrated_request_counts_once(struct __test_metadata *_metadata,
					 struct group *g, int family, int c)
{
	int a = -1, c2;
	long drops;

	EXPECT_EQ(1, accept_any(_metadata, g, &a));
	EXPECT_EQ(1, info_of(_metadata, g->fd[1]).active_conns);
	EXPECT_EQ(1, info_of(_metadata, g->fd[1]).total_conns);

	/* B is full while the connection lives: a SYN on its CPU is
	 * dropped, and its client waits.
	 */
	pin(_metadata, 1);
	drops = listen_drops();
	ASSERT_LE(0, drops);
	c2 = connect_dropped(_metadata, g, family, drops);
	EXPECT_EQ(1, info_of(_metadata, g->fd[1]).active_conns);

	close(c);
	close(a);
	EXPECT_EQ(0, wait_active(_metadata, g->fd[1], 0));
	/* Room again: the waiting client's retransmitted SYN gets in. */
	wait_connected(_metadata, c2);
	EXPECT_EQ(1, accept_any(_metadata, g, &a));
	EXPECT_EQ(1, info_of(_metadata, g->fd[1]).active_conns);
	EXPECT_EQ(2, info_of(_metadata, g->fd[1]).total_conns);
	close(c2);
	close(a);
	EXPECT_EQ(0, wait_active(_metadata, g->fd[1], 0));
}

/* tcp_migrate_req at ACK time: the ACK carrying data moves the request. */
TEST_F(caps, migrate_request_by_ack)
{
	long moved;
	int c;

	c = pending_request_of_closed(_metadata, &self->g, variant->family);
	moved = tcpext("TCPMigrateReqSuccess");
	ASSERT_LE(0, moved);
	ASSERT_EQ(1, write(c, "x", 1));
	EXPECT_LT(moved, wait_tcpext_above("TCPMigrateReqSuccess", moved));
	migrated_request_counts_once(_metadata, &self->g, variant->family, c);
}

/* tcp_migrate_req by the SYN+ACK timer: the request moves first. */
TEST_F(caps, migrate_request_by_synack_timer)
{
	long moved;
	int c;

	moved = tcpext("TCPMigrateReqSuccess");
	ASSERT_LE(0, moved);
	c = pending_request_of_closed(_metadata, &self->g, variant->family);
	/* The timer fires 1 s after the SYN; nothing was sent since.  It
	 * resends the SYN+ACK, and the client's ACK completes the handshake
	 * on B, which defers nothing: one connection, counted once.
	 */
	EXPECT_LT(moved, wait_tcpext_above("TCPMigrateReqSuccess", moved));
	EXPECT_EQ(1, wait_active(_metadata, self->g.fd[1], 1));
	EXPECT_EQ(1, info_of(_metadata, self->g.fd[1]).total_conns);
	ASSERT_EQ(1, write(c, "x", 1));
	migrated_request_counts_once(_metadata, &self->g, variant->family, c);
}

/*
 * A queued child its client reset gave its count back; migrated when its
 * listener closes, it gets no new one.
 */
TEST_F(caps, migrate_reset_child_counts_nothing)
{
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	int cpu0 = 0, cpu1 = 1, c, a = -1;
	long moved;

	ASSERT_EQ(0, set_sysctl("/proc/sys/net/ipv4/tcp_migrate_req", "1"));
	add_listener(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		     &cpu0, 1);
	add_listener(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		     &cpu1, 1);
	pin(_metadata, 0);
	c = connect_queued(_metadata, &self->g, variant->family);
	EXPECT_EQ(1, wait_active(_metadata, self->g.fd[0], 1));
	ASSERT_EQ(0, setsockopt(c, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst)));
	close(c);
	EXPECT_EQ(0, wait_active(_metadata, self->g.fd[0], 0));

	moved = tcpext("TCPMigrateReqSuccess");
	close(self->g.fd[0]);
	self->g.fd[0] = -1;
	EXPECT_EQ(moved + 1, tcpext("TCPMigrateReqSuccess"));
	EXPECT_EQ(0, info_of(_metadata, self->g.fd[1]).active_conns);
	EXPECT_EQ(0, info_of(_metadata, self->g.fd[1]).total_conns);
	EXPECT_EQ(1, accept_any(_metadata, &self->g, &a));
	close(a);
	EXPECT_EQ(0, info_of(_metadata, self->g.fd[1]).active_conns);
}

/*
 * tcp_migrate_req picks the new listener by the connection's CPU, not
 * by the CPU of the thread that closes the old one.
 */
TEST_F(caps, migrate_by_connection_cpu)
{
	int cpu0 = 0, cpu1 = 1, c[3], a = -1, k;

	ASSERT_EQ(0, set_sysctl("/proc/sys/net/ipv4/tcp_migrate_req", "1"));
	add_listener(_metadata, &self->g, variant->family, REUSERPS_FILL_FIRST,
		     &cpu0, 1);
	add_listener(_metadata, &self->g, variant->family, REUSERPS_FILL_FIRST,
		     &cpu0, 1);
	add_listener(_metadata, &self->g, variant->family, REUSERPS_FILL_FIRST,
		     &cpu1, 1);
	pin(_metadata, 0);
	for (k = 0; k < 3; k++)
		c[k] = connect_queued(_metadata, &self->g, variant->family);
	EXPECT_EQ(3, wait_active(_metadata, self->g.fd[0], 3));

	pin(_metadata, 1);
	close(self->g.fd[0]);
	self->g.fd[0] = -1;
	EXPECT_EQ(3, info_of(_metadata, self->g.fd[1]).active_conns);
	EXPECT_EQ(0, info_of(_metadata, self->g.fd[2]).active_conns);
	for (k = 0; k < 3; k++) {
		EXPECT_EQ(1, accept_any(_metadata, &self->g, &a));
		close(a);
		close(c[k]);
	}
}

/* Accepts and closes what waits on every open listener, counting it. */
static void accept_all(struct group *g, int *accepted)
{
	int i, a;

	for (i = 0; i < g->n; i++) {
		if (g->fd[i] < 0)
			continue;
		while ((a = accept(g->fd[i], NULL, NULL)) >= 0) {
			accepted[i]++;
			close(a);
		}
	}
}

/*
 * Listeners join, change and leave, round after round, while a client on
 * every CPU makes STRESS_CONNECTS connections: no WARN, and every
 * surviving listener counted exactly the connections it was handed, all
 * ended at the end.  Bounded by connections, not time.
 */
#define STRESS_CONNECTS	300

/* An emulated debug kernel takes a while for the connections. */
TEST_F_TIMEOUT(caps, stress_join_leave, 90)
{
	int accepted[MAX_LISTENERS] = {}, cpu, i, k, round, live, status;
	int mask[2], base = self->ncpus, kids = 0, total = 0;
	bool settled;
	pid_t pid;

	for (cpu = 0; cpu < base; cpu++)
		add_listener(_metadata, &self->g, variant->family,
			     REUSERPS_ROUND_ROBIN, &cpu, 1);
	for (cpu = 0; cpu < self->ncpus; cpu++) {
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid) {
			kids++;
			continue;
		}
		pin(_metadata, cpu);
		for (k = 0; k < STRESS_CONNECTS; k++) {
			struct timeval tv = { .tv_usec = 100000 };
			int c = socket(variant->family, SOCK_STREAM, 0);

			/* A SYN dropped by a full queue is retried after a
			 * second, then more: give up at once instead.
			 */
			setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv,
				   sizeof(tv));
			/* Refused or reset by a listener that left: fine. */
			connect(c, (struct sockaddr *)&self->g.addr,
				self->g.alen);
			close(c);
		}
		_exit(0);
	}

	for (round = 0; kids; round++) {
		accept_all(&self->g, accepted);
		mask[0] = round % self->ncpus;
		mask[1] = (round + 1) % self->ncpus;
		live = base + round % (MAX_LISTENERS - base);
		if (round % 30 == 10 && self->g.n < MAX_LISTENERS)
			add_capped(_metadata, &self->g, variant->family,
				   REUSERPS_ROUND_ROBIN, 1000, mask, 2);
		else if (round % 30 == 20 && live < self->g.n &&
			 self->g.fd[live] >= 0) {
			close(self->g.fd[live]);
			self->g.fd[live] = -1;
		} else if (round % 30 == 0 && self->g.fd[round % base] >= 0) {
			EXPECT_EQ(0, request(self->g.fd[round % base],
					     REUSERPS_ROUND_ROBIN, 0, mask, 2));
		}
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
			EXPECT_TRUE(WIFEXITED(status));
			kids--;
		}
		usleep(1000);
	}

	/*
	 * The clients are done: accept what is queued until each surviving
	 * listener has handed out what it counted (a bounded wait, for the
	 * last handshakes to complete); then compare.
	 */
	for (k = 0; k < 2000; k++) {
		accept_all(&self->g, accepted);
		settled = true;
		for (i = 0; i < self->g.n; i++)
			if (self->g.fd[i] >= 0 &&
			    info_of(_metadata, self->g.fd[i]).total_conns !=
			    (__u64)accepted[i])
				settled = false;
		if (settled)
			break;
		usleep(10000);
	}
	for (i = 0; i < self->g.n; i++) {
		if (self->g.fd[i] < 0)
			continue;
		total += accepted[i];
		EXPECT_EQ(accepted[i],
			  info_of(_metadata, self->g.fd[i]).total_conns);
		EXPECT_EQ(0, wait_active(_metadata, self->g.fd[i], 0));
	}
	EXPECT_LT(0, total);
}

/*
 * Tests on 10.1.1.1, the address of a veth, with a client of raw sockets:
 * one namespace each, IPv4.
 */
FIXTURE(raw)
{
	int ncpus;
};

FIXTURE_SETUP(raw)
{
	if (!reuserps_supported())
		SKIP(return, "no SO_REUSERPS in this kernel (ENOPROTOOPT)");
	ASSERT_EQ(0, rps_netns());
	self->ncpus = get_nprocs();
	if (self->ncpus > MAX_LISTENERS)
		self->ncpus = MAX_LISTENERS;
}

FIXTURE_TEARDOWN(raw)
{
}

#define RACES 48

/* Threads that send the same ACKs at once, from two CPUs, or close. */
struct race {
	pthread_barrier_t go;
	int raw[2];
	int fd;			/* the listener a third thread closes, or -1 */
	__u16 dport;
	__u32 ack[RACES];
};

struct racer {
	struct race *r;
	int cpu;
	int raw;		/* -1: close r->fd */
};

static void *race_run(void *arg)
{
	struct racer *me = arg;
	struct race *r = me->r;
	cpu_set_t set;
	int i;

	CPU_ZERO(&set);
	CPU_SET(me->cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
	pthread_barrier_wait(&r->go);
	if (me->raw < 0) {
		close(r->fd);
		return NULL;
	}
	for (i = 0; i < RACES; i++)
		send_tcp(me->raw, inet_addr("10.1.1.2"), htons(41000 + i),
			 inet_addr("10.1.1.1"), r->dport, r->ack[i]);
	return NULL;
}

/*
 * RACES handshakes whose ACK is sent twice at once, from two CPUs, by a
 * client of raw sockets (its SYN+ACKs are read off the veth they leave
 * by): whichever ACK creates the child, each connection counts exactly
 * once.  With @close, a third CPU closes the listener the requests wait
 * on meanwhile, so that the racing ACKs also migrate them
 * (tcp_migrate_req) to the other listener.  With @abort, the listeners
 * have a cap of one and tcp_abort_on_overflow is set: the first
 * connection fills the cap, every other ACK is refused, and none, not
 * even the one that loses the first request's race, is answered with a
 * reset.
 */
static void acks_race(struct __test_metadata *_metadata, bool close_a,
		      bool abort)
{
	struct sockaddr_ll ll = { .sll_family = AF_PACKET };
	int all[MAX_LISTENERS], ncpus = get_nprocs(), i, n, pk, a, b;
	struct racer rc[3];
	struct group g = {};
	struct sockaddr_in *sa = (struct sockaddr_in *)&g.addr;
	struct race r = { .fd = -1 };
	long rsts, overflows;
	pthread_t th[3];
	__u8 buf[256];

	if (ncpus < 3)
		SKIP(return, "needs 3 CPUs or more");
	if (ncpus > MAX_LISTENERS)
		ncpus = MAX_LISTENERS;
	/* The SYN+ACKs to 10.1.1.2 leave by v0, where a packet socket
	 * reads them; v1, up to carry them, has no address.
	 */
	if (system("ip link add v0 type veth peer name v1"))
		SKIP(return, "no veth (or no ip command)");
	/* busybox's ip names the peer veth0 whatever it is told. */
	if (system("ip link set v1 up 2>/dev/null"))
		ASSERT_EQ(0, system("ip link set veth0 up"));
	ASSERT_EQ(0, system("ip link set v0 arp off up"));
	ASSERT_EQ(0, system("ip addr add 10.1.1.1/24 dev v0"));
	ASSERT_EQ(0, set_sysctl("/proc/sys/net/ipv4/tcp_migrate_req", "1"));
	ASSERT_EQ(0, set_sysctl("/proc/sys/net/ipv4/tcp_abort_on_overflow",
				abort ? "1" : "0"));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = inet_addr("10.1.1.1");
	g.alen = sizeof(*sa);
	for (i = 0; i < ncpus; i++)
		all[i] = i;
	for (i = 0; i < 2; i++)
		add_capped(_metadata, &g, AF_INET, REUSERPS_FILL_FIRST,
			   abort ? 1 : 0, all, ncpus);
	r.dport = sa->sin_port;

	/* ETH_P_ALL: only taps of every protocol see what a device sends. */
	pk = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL));
	ASSERT_LE(0, pk);
	ll.sll_protocol = htons(ETH_P_ALL);
	ll.sll_ifindex = if_nametoindex("v0");
	ASSERT_EQ(0, bind(pk, (struct sockaddr *)&ll, sizeof(ll)));
	for (i = 0; i < 2; i++) {
		r.raw[i] = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
		ASSERT_LE(0, r.raw[i]);
	}

	/* The SYNs, from CPU 0: fill first puts every request on g.fd[0]. */
	pin(_metadata, 0);
	for (i = 0; i < RACES; i++)
		ASSERT_EQ(0, send_syn(r.raw[0], inet_addr("10.1.1.2"),
				      htons(41000 + i), inet_addr("10.1.1.1"),
				      r.dport));
	for (n = 0; n < RACES; ) {
		struct pollfd pfd = { .fd = pk, .events = POLLIN };
		struct iphdr *ip = (struct iphdr *)buf;
		struct tcphdr *th4;

		/* A bound for what must come, not a measure. */
		ASSERT_EQ(1, poll(&pfd, 1, 20000));
		if (recv(pk, buf, sizeof(buf), 0) < (int)(sizeof(*ip) + 20))
			continue;
		th4 = (struct tcphdr *)(buf + ip->ihl * 4);
		i = ntohs(th4->dest) - 41000;
		if (ip->version != 4 || ip->protocol != IPPROTO_TCP ||
		    !th4->syn || !th4->ack ||
		    i < 0 || i >= RACES || r.ack[i])
			continue;
		r.ack[i] = ntohl(th4->seq) + 1;
		n++;
	}

	/* The ACKs, twice each at once; maybe a close beside them. */
	rsts = snmp("/proc/net/snmp", "Tcp:", "OutRsts");
	overflows = tcpext("ListenOverflows");
	if (close_a) {
		r.fd = g.fd[0];
		g.fd[0] = -1;
	}
	n = close_a ? 3 : 2;
	ASSERT_EQ(0, pthread_barrier_init(&r.go, NULL, n));
	for (i = 0; i < n; i++) {
		rc[i].r = &r;
		rc[i].cpu = i;
		rc[i].raw = i < 2 ? r.raw[i] : -1;
		ASSERT_EQ(0, pthread_create(&th[i], NULL, race_run, &rc[i]));
	}
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);

	if (abort) {
		/* Both ACKs of every request but the first were refused (each
		 * counted before a reset would be sent): none was reset, and
		 * one connection exists.
		 */
		EXPECT_LT(overflows + 2 * (RACES - 1) - 1,
			  wait_tcpext_above("ListenOverflows",
					    overflows + 2 * (RACES - 1) - 1));
		EXPECT_EQ(rsts, snmp("/proc/net/snmp", "Tcp:", "OutRsts"));
		ASSERT_EQ(0, accept_any(_metadata, &g, &a));
		set_linger0(a);
		close(a);
		EXPECT_EQ(1, info_of(_metadata, g.fd[0]).total_conns);
		EXPECT_EQ(0, wait_active(_metadata, g.fd[0], 0));
		goto out;
	}

	/* Each connection once: accepted, counted, and no more. */
	b = close_a ? 1 : 0;
	for (n = 0; n < RACES; n++) {
		if (accept_any(_metadata, &g, &a) != b)
			break;
		set_linger0(a);
		close(a);
	}
	EXPECT_EQ(RACES, n);
	EXPECT_EQ(-1, accept(g.fd[b], NULL, NULL));
	EXPECT_EQ(0, wait_active(_metadata, g.fd[b], 0));
	EXPECT_EQ(RACES, info_of(_metadata, g.fd[b]).total_conns);
out:
	close(pk);
	close(r.raw[0]);
	close(r.raw[1]);
	pthread_barrier_destroy(&r.go);
	for (i = 0; i < g.n; i++)
		if (g.fd[i] >= 0)
			close(g.fd[i]);
}

TEST_F(raw, two_acks_race)
{
	acks_race(_metadata, false, false);
}

TEST_F(raw, two_acks_race_listener_close)
{
	acks_race(_metadata, true, false);
}

TEST_F(raw, two_acks_race_cap_abort_on_overflow)
{
	acks_race(_metadata, false, true);
}

/*
 * A flood of spoofed SYNs, sixteen times the sum of the caps, with SYN
 * cookies on: requests hold no slot, so a real client gets in, counted
 * alone, and handshakes that never complete count nothing.
 */
TEST_F(raw, syn_flood_leaves_caps_free)
{
	int all[MAX_LISTENERS], ncpus = self->ncpus, i, raw, c, a = -1;
	struct group g = {};
	struct sockaddr_in *sa = (struct sockaddr_in *)&g.addr;
	struct reuserps_info info;
	long cookies;

	/* SYN+ACKs to 10.1.1.2 leave by a veth whose peer is down. */
	if (system("ip link add v0 type veth peer name v1"))
		SKIP(return, "no veth (or no ip command)");
	ASSERT_EQ(0, system("ip link set v0 arp off up"));
	ASSERT_EQ(0, system("ip addr add 10.1.1.1/24 dev v0"));
	ASSERT_EQ(0, set_sysctl("/proc/sys/net/ipv4/tcp_syncookies", "1"));
	sa->sin_family = AF_INET;
	g.alen = sizeof(*sa);
	for (i = 0; i < ncpus; i++)
		all[i] = i;
	for (i = 0; i < 2; i++) {
		add_capped(_metadata, &g, AF_INET, REUSERPS_FILL_FIRST, 2, all,
			   ncpus);
		/* A short SYN queue: the flood overflows it into cookies. */
		ASSERT_EQ(0, listen(g.fd[i], 8));
	}
	raw = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	ASSERT_LE(0, raw);
	cookies = tcpext("TCPReqQFullDoCookies");
	ASSERT_LE(0, cookies);
	for (i = 0; i < 64; i++)
		ASSERT_EQ(0, send_syn(raw, inet_addr("10.1.1.2"),
				      htons(40000 + i), inet_addr("10.1.1.1"),
				      sa->sin_port));
	EXPECT_LT(cookies, wait_tcpext_above("TCPReqQFullDoCookies", cookies));

	/* A real client gets in: every cap was free. */
	c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ASSERT_LE(0, c);
	sa->sin_addr.s_addr = inet_addr("10.1.1.1");
	ASSERT_EQ(-1, connect(c, (struct sockaddr *)sa, g.alen));
	ASSERT_EQ(EINPROGRESS, errno);
	wait_connected(_metadata, c);
	EXPECT_EQ(0, accept_any(_metadata, &g, &a));
	info = info_of(_metadata, g.fd[0]);
	EXPECT_EQ(1, info.active_conns);
	EXPECT_EQ(1, info.total_conns);
	EXPECT_EQ(0, info.full_skips);
	EXPECT_EQ(0, info_of(_metadata, g.fd[1]).total_conns);
	close(a);
	close(c);
	EXPECT_EQ(0, wait_active(_metadata, g.fd[0], 0));
	close(raw);
	for (i = 0; i < g.n; i++)
		close(g.fd[i]);
}

int main(int argc, char **argv)
{
	return reuserps_harness_main(argc, argv);
}
