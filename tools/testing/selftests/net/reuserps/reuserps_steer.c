// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS steering: each connection goes to a listener registered for
 * the CPU that processed its SYN.  Over loopback the SYN is processed on
 * the CPU of the connecting thread, so pinning the client picks the CPU.
 * Checks where every connection went, the round-robin rotation and the
 * fill-first order, order kept when a listener closes, the fallback for a
 * CPU without listeners, the rules for joining a group (mode, policy,
 * uid), caps and the counts getsockopt() reports, back to zero after
 * every way a connection ends (close, reset, listener shutdown, request
 * expiry, SYN cookies, migration to another listener), the drop and retry
 * when all are full, changing a listening member's CPUs and cap, CPU
 * offline and online, the nearest fallback on a NUMA machine (the CPU's
 * node before the other's), and listeners joining and leaving under
 * load; on IPv4, IPv6 and IPv4 clients of dual-stack listeners.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
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

/* setsockopt(SO_REUSERPS) with these CPUs; 0 or errno. */
static int request(int fd, __u32 policy, __u32 cap, const int *cpus,
		   int ncpus)
{
	struct req_buf b = {};
	int i;

	b.req.policy = policy;
	b.req.max_conns = cap;
	b.req.mask_words = MASK_WORDS;
	for (i = 0; i < ncpus; i++)
		b.cpus[cpus[i] / 64] |= 1ULL << (cpus[i] % 64);
	return setsockopt(fd, SOL_SOCKET, SO_REUSERPS, &b, sizeof(b)) ?
	       errno : 0;
}

/* A bound socket of the group; 0 or the errno of setsockopt() or bind(). */
static int bound_capped(struct group *g, int family, bool reuserps,
			__u32 policy, __u32 cap, const int *cpus, int ncpus,
			int *fdp)
{
	int fd, one = 1, i;

	fd = socket(family, SOCK_STREAM, 0);
	if (fd < 0)
		return errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		goto err;
	if (reuserps) {
		errno = request(fd, policy, cap, cpus, ncpus);
		if (errno)
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

/* A connection from the current CPU, left in its listener's queue. */
static int connect_queued(struct __test_metadata *_metadata, struct group *g,
			  int family)
{
	int fd = socket(family, SOCK_STREAM, 0);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, connect(fd, (struct sockaddr *)&g->addr, g->alen));
	return fd;
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
	*cfd = connect_queued(_metadata, g, family);
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

/*
 * Waits up to 10 s for the listener's active count to reach @want: a
 * request that expires takes its first SYN+ACK timeout, 1 s.
 */
static __u32 wait_active(struct __test_metadata *_metadata, int fd,
			 __u32 want)
{
	__u32 now = ~0U;
	int i;

	for (i = 0; i < 1000; i++) {
		now = info_of(_metadata, fd).active_conns;
		if (now == want)
			break;
		usleep(10000);
	}
	return now;
}

/* The TcpExt counter @name of this network namespace, or -1. */
static long snmp(const char *file, const char *section, const char *name)
{
	char names[4096], values[4096], *n, *v, *sn, *sv;
	long val = -1;
	FILE *f;

	f = fopen(file, "r");
	if (!f)
		return -1;
	while (fgets(names, sizeof(names), f) &&
	       fgets(values, sizeof(values), f)) {
		if (strncmp(names, section, strlen(section)))
			continue;
		n = strtok_r(names, "\n ", &sn);
		v = strtok_r(values, "\n ", &sv);
		while (n && v) {
			if (!strcmp(n, name))
				val = atol(v);
			n = strtok_r(NULL, "\n ", &sn);
			v = strtok_r(NULL, "\n ", &sv);
		}
	}
	fclose(f);
	return val;
}

static long tcpext(const char *name)
{
	return snmp("/proc/net/netstat", "TcpExt:", name);
}

static long listen_drops(void)
{
	return tcpext("ListenDrops");
}

/* Writes @val to the sysctl file @path; 0 on success. */
static int set_sysctl(const char *path, const char *val)
{
	int fd, ok;

	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	close(fd);
	return ok ? 0 : -1;
}

/* Adds the big-endian 16-bit words at @data to a ones' complement sum. */
static __u32 csum_add(__u32 sum, const void *data, size_t len)
{
	const __u8 *b = data;

	for (; len > 1; len -= 2, b += 2)
		sum += b[0] << 8 | b[1];
	return sum;
}

static __u16 csum_fold(__u32 sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/*
 * Sends a bare TCP segment from @src:@sport to @dst:@dport (network
 * order): a SYN (seq 1000) if @ack is 0, else the ACK of a SYN+ACK whose
 * sequence number was @ack - 1.
 */
static int send_tcp(int raw, __u32 src, __u16 sport, __u32 dst, __u16 dport,
		    __u32 ack)
{
	struct sockaddr_in to = { .sin_family = AF_INET };
	struct {
		struct iphdr ip;
		struct tcphdr tcp;
	} pkt = {};
	struct {
		__u32 src, dst;
		__u8 zero, proto;
		__u16 len;
	} ph = { src, dst, 0, IPPROTO_TCP, htons(sizeof(pkt.tcp)) };

	pkt.ip.version = 4;
	pkt.ip.ihl = 5;
	pkt.ip.ttl = 64;
	pkt.ip.protocol = IPPROTO_TCP;
	pkt.ip.saddr = src;
	pkt.ip.daddr = dst;
	pkt.tcp.source = sport;
	pkt.tcp.dest = dport;
	pkt.tcp.seq = htonl(ack ? 1001 : 1000);
	pkt.tcp.ack_seq = htonl(ack);
	pkt.tcp.doff = 5;
	pkt.tcp.syn = !ack;
	pkt.tcp.ack = !!ack;
	pkt.tcp.window = htons(65535);
	pkt.tcp.check = htons(csum_fold(csum_add(csum_add(0, &ph, sizeof(ph)),
						 &pkt.tcp, sizeof(pkt.tcp))));
	to.sin_addr.s_addr = dst;
	if (sendto(raw, &pkt, sizeof(pkt), 0, (struct sockaddr *)&to,
		   sizeof(to)) != sizeof(pkt))
		return errno;
	return 0;
}

/* Sends a bare SYN from @src:@sport to @dst:@dport (network order). */
static int send_syn(int raw, __u32 src, __u16 sport, __u32 dst, __u16 dport)
{
	return send_tcp(raw, src, sport, dst, dport, 0);
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
	for (i = 0; i < 500; i++) {
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

/* The NUMA node of each CPU up to @n from sysfs; the number of nodes. */
static int cpu_nodes(int *node_of, int n)
{
	int node, nodes = 0, cpu, a, b, k;
	char path[64], list[256], *p;
	FILE *f;

	for (cpu = 0; cpu < n; cpu++)
		node_of[cpu] = -1;
	for (node = 0; node < 64; node++) {
		snprintf(path, sizeof(path),
			 "/sys/devices/system/node/node%d/cpulist", node);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(list, sizeof(list), f))
			list[0] = 0;
		fclose(f);
		nodes++;
		for (p = list; *p && *p != '\n'; p += k) {
			k = 0;
			if (sscanf(p, "%d-%d%n", &a, &b, &k) != 2) {
				k = 0;
				if (sscanf(p, "%d%n", &a, &k) != 1)
					break;
				b = a;
			}
			if (p[k] == ',')
				k++;
			for (cpu = a; cpu <= b && cpu < n; cpu++)
				node_of[cpu] = node;
		}
	}
	return nodes;
}

/*
 * Nearest fallback: with its own listener full, a connection from CPU a
 * goes to the listener of a CPU on a's node (sharing its cache, here:
 * one cache per socket, one socket per node) as long as that one has
 * room, never to the other node's; then anywhere.  Again after a CPU of
 * the other node went offline and came back, which rebuilds the tables
 * (with one cache per node, as here, a table not rebuilt would choose
 * the same: the host and KUnit tests tell caches from nodes).
 */
static void nearest_round(struct __test_metadata *_metadata,
			  struct group *g, int family, int near_cap,
			  const int *node_of, int a)
{
	int c[64], acc[64], k, got, n = 0, near = 0;

	pin(_metadata, a);
	/* Listener 0, on CPU a with a cap of 1, takes the first. */
	ASSERT_EQ(0, connect_keep(_metadata, g, family, &c[n], &acc[n]));
	n++;
	for (k = 0; k < near_cap; k++, n++) {
		got = connect_keep(_metadata, g, family, &c[n], &acc[n]);
		near += got == 1;
	}
	TH_LOG("%d of %d connections that left CPU %d stayed on node %d",
	       near, near_cap, a, node_of[a]);
	EXPECT_EQ(near_cap, near);
	/* The node is full: the other node's listeners. */
	got = connect_keep(_metadata, g, family, &c[n], &acc[n]);
	n++;
	EXPECT_LE(2, got);
	while (n--) {
		close(c[n]);
		close(acc[n]);
	}
	EXPECT_EQ(0, wait_active(_metadata, g->fd[0], 0));
	EXPECT_EQ(0, wait_active(_metadata, g->fd[1], 0));
}

TEST_F(steer, nearest_fallback_stays_on_node)
{
	int node_of[MAX_LISTENERS], a = -1, s = -1, cpu, off = -1, near_cap = 8;

	if (cpu_nodes(node_of, self->ncpus) < 2)
		SKIP(return, "needs two NUMA nodes");
	/* a and s share a node; every other node's CPU gets a listener. */
	for (cpu = 0; cpu < self->ncpus && s < 0; cpu++) {
		if (node_of[cpu] < 0)
			continue;
		if (a < 0)
			a = cpu;
		else if (node_of[cpu] == node_of[a])
			s = cpu;
	}
	if (s < 0)
		SKIP(return, "needs two CPUs on one node");
	add_capped(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		   1, &a, 1);
	add_capped(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		   near_cap, &s, 1);
	for (cpu = 0; cpu < self->ncpus; cpu++) {
		if (node_of[cpu] >= 0 && node_of[cpu] != node_of[a]) {
			add_listener(_metadata, &self->g, variant->family,
				     REUSERPS_ROUND_ROBIN, &cpu, 1);
			off = cpu;
		}
	}
	nearest_round(_metadata, &self->g, variant->family, near_cap,
		      node_of, a);

	/* Topology changes rebuild every table; nothing else does here. */
	if (set_online(off, 0))
		SKIP(return, "cannot take CPU %d offline", off);
	self->offline_cpu = off;
	nearest_round(_metadata, &self->g, variant->family, near_cap,
		      node_of, a);
	ASSERT_EQ(0, set_online(off, 1));
	self->offline_cpu = -1;
	nearest_round(_metadata, &self->g, variant->family, near_cap,
		      node_of, a);
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
	EXPECT_EQ(EINVAL, request(self->g.fd[0], REUSERPS_FILL_FIRST, 0, &cpu0,
				  1));
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

/* With SYN cookies, a connection counts once: at its ACK. */
TEST_F(steer, syn_cookies_count_once)
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
TEST_F(steer, cookie_acks_move_no_turn)
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

static long wait_tcpext_above(const char *name, long than);

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

TEST_F(steer, program_before_request)
{
	program_then_request(_metadata, &self->g, self->ncpus,
			     variant->family, -1, false);
}

TEST_F(steer, request_program_request)
{
	program_then_request(_metadata, &self->g, self->ncpus,
			     variant->family, 1, true);
}

TEST_F(steer, request_then_program)
{
	program_then_request(_metadata, &self->g, self->ncpus,
			     variant->family, 0, false);
}

/*
 * A group with a program and SO_REUSERPS: the program selects, and the
 * listener it selects still counts its connections and keeps its cap.
 */
TEST_F(steer, program_selects_caps_hold)
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
TEST_F(steer, migrated_count_follows)
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
 * Waits up to 5 s for the TcpExt counter @name to exceed @than; returns
 * its last value.
 */
static long wait_tcpext_above(const char *name, long than)
{
	long now = -1;
	int i;

	for (i = 0; i < 500; i++) {
		now = tcpext(name);
		if (now > than)
			break;
		usleep(10000);
	}
	return now;
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

	ASSERT_EQ(0, set_sysctl("/proc/sys/net/ipv4/tcp_migrate_req", "1"));
	add_listener(_metadata, g, family, REUSERPS_ROUND_ROBIN, &cpu0, 1);
	add_capped(_metadata, g, family, REUSERPS_ROUND_ROBIN, 1, &cpu1, 1);
	ASSERT_EQ(0, setsockopt(g->fd[0], IPPROTO_TCP, TCP_DEFER_ACCEPT,
				&secs, sizeof(secs)));
	pin(_metadata, 0);
	c = connect_queued(_metadata, g, family);
	/* A request counts nothing: only a connection does. */
	usleep(100000);
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
	int a = -1, c2, err;
	socklen_t len = sizeof(err);
	struct pollfd pfd;

	EXPECT_EQ(1, accept_any(_metadata, g, &a));
	EXPECT_EQ(1, info_of(_metadata, g->fd[1]).active_conns);
	EXPECT_EQ(1, info_of(_metadata, g->fd[1]).total_conns);

	/* B is full while the connection lives: a SYN on its CPU waits. */
	pin(_metadata, 1);
	c2 = socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ASSERT_LE(0, c2);
	ASSERT_EQ(-1, connect(c2, (struct sockaddr *)&g->addr, g->alen));
	ASSERT_EQ(EINPROGRESS, errno);
	pfd.fd = c2;
	pfd.events = POLLOUT;
	EXPECT_EQ(0, poll(&pfd, 1, 300));
	EXPECT_EQ(1, info_of(_metadata, g->fd[1]).active_conns);

	close(c);
	close(a);
	EXPECT_EQ(0, wait_active(_metadata, g->fd[1], 0));
	/* Room again: the waiting client's retransmitted SYN gets in. */
	EXPECT_EQ(1, poll(&pfd, 1, 5000));
	EXPECT_EQ(0, getsockopt(c2, SOL_SOCKET, SO_ERROR, &err, &len));
	EXPECT_EQ(0, err);
	EXPECT_EQ(1, accept_any(_metadata, g, &a));
	EXPECT_EQ(1, info_of(_metadata, g->fd[1]).active_conns);
	EXPECT_EQ(2, info_of(_metadata, g->fd[1]).total_conns);
	close(c2);
	close(a);
	EXPECT_EQ(0, wait_active(_metadata, g->fd[1], 0));
}

/* tcp_migrate_req at ACK time: the ACK carrying data moves the request. */
TEST_F(steer, migrate_request_by_ack)
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
TEST_F(steer, migrate_request_by_synack_timer)
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
TEST_F(steer, migrate_reset_child_counts_nothing)
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
TEST_F(steer, migrate_by_connection_cpu)
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
 * Listeners join, change and leave for two seconds while a client on
 * every CPU connects in a loop: no WARN, and every surviving listener
 * counted exactly the connections it was handed, all ended at the end.
 */
TEST_F(steer, stress_join_leave)
{
	int accepted[MAX_LISTENERS] = {}, cpu, i, round, live, status;
	int mask[2], base = self->ncpus, kids = 0, total = 0;
	struct timespec t0, t;
	pid_t pid;

	for (cpu = 0; cpu < base; cpu++)
		add_listener(_metadata, &self->g, variant->family,
			     REUSERPS_ROUND_ROBIN, &cpu, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (cpu = 0; cpu < self->ncpus; cpu++) {
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid) {
			kids++;
			continue;
		}
		pin(_metadata, cpu);
		do {
			int c = socket(variant->family, SOCK_STREAM, 0);

			/* Refused or reset by a listener that left: fine. */
			connect(c, (struct sockaddr *)&self->g.addr,
				self->g.alen);
			close(c);
			clock_gettime(CLOCK_MONOTONIC, &t);
		} while (t.tv_sec - t0.tv_sec < 2);
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

	/* The clients are done: what is queued is all there is. */
	usleep(100000);
	accept_all(&self->g, accepted);
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

/* An IPv4 client of dual-stack IPv6 listeners is steered the same way. */
TEST(dual_stack_v4_client)
{
	int ncpus = get_nprocs(), cpu, k;
	struct sockaddr_in *a4;
	struct group g = {}, g4;

	if (ncpus > MAX_LISTENERS)
		ncpus = MAX_LISTENERS;
	ASSERT_EQ(0, unshare(CLONE_NEWNET));
	ASSERT_EQ(0, system("ip link set lo up"));
	((struct sockaddr_in6 *)&g.addr)->sin6_family = AF_INET6;
	((struct sockaddr_in6 *)&g.addr)->sin6_addr = in6addr_any;
	g.alen = sizeof(struct sockaddr_in6);
	for (cpu = 0; cpu < ncpus; cpu++)
		add_listener(_metadata, &g, AF_INET6, REUSERPS_ROUND_ROBIN,
			     &cpu, 1);

	/* The same listeners, reached at 127.0.0.1 on their port. */
	g4 = g;
	memset(&g4.addr, 0, sizeof(g4.addr));
	a4 = (struct sockaddr_in *)&g4.addr;
	a4->sin_family = AF_INET;
	a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a4->sin_port = ((struct sockaddr_in6 *)&g.addr)->sin6_port;
	g4.alen = sizeof(*a4);
	for (cpu = 0; cpu < ncpus; cpu++) {
		pin(_metadata, cpu);
		for (k = 0; k < 4; k++)
			EXPECT_EQ(cpu, connect_one(_metadata, &g4, AF_INET));
	}
	for (k = 0; k < g.n; k++)
		close(g.fd[k]);
}

/*
 * A flood of spoofed SYNs, sixteen times the sum of the caps, with SYN
 * cookies on: requests hold no slot, so a real client gets in at once,
 * and handshakes that never complete count nothing.
 */
#define RACES 48

/* close() then resets the connection. */
static void set_linger0(int fd)
{
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
}

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
	ASSERT_EQ(0, unshare(CLONE_NEWNET));
	/* The SYN+ACKs to 10.1.1.2 leave by v0, where a packet socket
	 * reads them; v1, up to carry them, has no address.
	 */
	ASSERT_EQ(0, system("ip link set lo up"));
	ASSERT_EQ(0, system("ip link add v0 type veth peer name v1"));
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

		ASSERT_EQ(1, poll(&pfd, 1, 2000));
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

TEST(two_acks_race)
{
	acks_race(_metadata, false, false);
}

TEST(two_acks_race_listener_close)
{
	acks_race(_metadata, true, false);
}

TEST(two_acks_race_cap_abort_on_overflow)
{
	acks_race(_metadata, false, true);
}

TEST(syn_flood_leaves_caps_free)
{
	int all[MAX_LISTENERS], ncpus = get_nprocs(), i, raw, c, a = -1, err;
	struct group g = {};
	struct sockaddr_in *sa = (struct sockaddr_in *)&g.addr;
	socklen_t len = sizeof(err);
	struct reuserps_info info;
	struct pollfd pfd;
	long cookies;

	if (ncpus > MAX_LISTENERS)
		ncpus = MAX_LISTENERS;
	ASSERT_EQ(0, unshare(CLONE_NEWNET));
	/* SYN+ACKs to 10.1.1.2 leave by a veth whose peer is down. */
	ASSERT_EQ(0, system("ip link set lo up"));
	ASSERT_EQ(0, system("ip link add v0 type veth peer name v1"));
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

	/* A real client: its first SYN gets through (a retry takes 1 s). */
	c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ASSERT_LE(0, c);
	sa->sin_addr.s_addr = inet_addr("10.1.1.1");
	ASSERT_EQ(-1, connect(c, (struct sockaddr *)sa, g.alen));
	ASSERT_EQ(EINPROGRESS, errno);
	pfd.fd = c;
	pfd.events = POLLOUT;
	EXPECT_EQ(1, poll(&pfd, 1, 900));
	EXPECT_EQ(0, getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len));
	EXPECT_EQ(0, err);
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

TEST_HARNESS_MAIN
