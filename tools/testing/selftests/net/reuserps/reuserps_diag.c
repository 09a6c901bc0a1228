// SPDX-License-Identifier: GPL-2.0
/*
 * What SO_REUSERPS lets others see: sock_diag's INET_DIAG_REUSERPS for
 * each listener (its request and counts, as getsockopt() gives them to
 * the owner), the reuserps:reuserps_full tracepoint when a full
 * listener refuses a SYN, and the reuserps-stat tool built on the
 * former (tools/net/reuserps), on IPv4 and IPv6.
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
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/reuserps.h>
#include <linux/sock_diag.h>

#include "../../kselftest_harness.h"

#define MASK_WORDS	16
#define TRACING		"/sys/kernel/tracing"

struct req_buf {
	struct reuserps_req req;
	__u64 cpus[MASK_WORDS];
};

/* What one INET_DIAG_REUSERPS nest said; @seen: a bit per attribute. */
struct diag {
	__u32 seen;
	__u32 policy, max_conns, flags, active;
	__u64 total, full_skips;
	__u64 cpus[MASK_WORDS];
	int cpu_words;
};

/* Up to three listeners of one port, and its address. */
struct ends {
	int fd[3];
	struct sockaddr_storage addr;
	socklen_t alen;
};

FIXTURE(diag)
{
	struct ends e;
};

FIXTURE_VARIANT(diag)
{
	int family;
};

FIXTURE_VARIANT_ADD(diag, ipv4)
{
	.family = AF_INET,
};

FIXTURE_VARIANT_ADD(diag, ipv6)
{
	.family = AF_INET6,
};

FIXTURE_SETUP(diag)
{
	int i;

	for (i = 0; i < 3; i++)
		self->e.fd[i] = -1;
	ASSERT_EQ(0, unshare(CLONE_NEWNET));
	ASSERT_EQ(0, system("ip link set lo up"));
	memset(&self->e.addr, 0, sizeof(self->e.addr));
	if (variant->family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&self->e.addr;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		self->e.alen = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&self->e.addr;

		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		self->e.alen = sizeof(*a);
	}
}

static int trace_on(bool on);

FIXTURE_TEARDOWN(diag)
{
	int i;

	/* A test that failed midway must not leave the event on. */
	trace_on(false);

	for (i = 0; i < 3; i++)
		if (self->e.fd[i] >= 0)
			close(self->e.fd[i]);
}

static int port_of(struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)ss)->sin6_port);
}

/* A listener on @self->addr (port 0: picks it), with SO_REUSERPS unless
 * @policy is -1.
 */
static int listener(struct __test_metadata *_metadata,
		    struct ends *self, int family, int policy,
		    __u32 cap, const int *cpus, int ncpus)
{
	struct req_buf b = {};
	int fd, one = 1, i;

	/* Not inherited by reuserps-stat, which would own it too. */
	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one,
				sizeof(one)));
	if (policy >= 0) {
		b.req.policy = policy;
		b.req.max_conns = cap;
		b.req.mask_words = MASK_WORDS;
		for (i = 0; i < ncpus; i++)
			b.cpus[cpus[i] / 64] |= 1ULL << (cpus[i] % 64);
		ASSERT_EQ(0, setsockopt(fd, SOL_SOCKET, SO_REUSERPS, &b,
					sizeof(b)));
	}
	ASSERT_EQ(0, bind(fd, (struct sockaddr *)&self->addr, self->alen));
	ASSERT_EQ(0, listen(fd, 64));
	ASSERT_EQ(0, fcntl(fd, F_SETFL, O_NONBLOCK));
	ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)&self->addr,
				 &self->alen));
	return fd;
}

static void pin(struct __test_metadata *_metadata, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(set), &set));
}

static ino_t inode_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : st.st_ino;
}

/* Whether a whole attribute starts at @a, with @rem bytes left. */
static bool attr_ok(const struct nlattr *a, int rem)
{
	return rem >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN &&
	       a->nla_len <= rem;
}

static struct nlattr *attr_next(struct nlattr *a, int *rem)
{
	*rem -= NLA_ALIGN(a->nla_len);
	return (void *)a + NLA_ALIGN(a->nla_len);
}

static void parse_nest(struct diag *d, struct nlattr *nest)
{
	int rem = nest->nla_len - NLA_HDRLEN;
	struct nlattr *a = (void *)nest + NLA_HDRLEN;

	for (; attr_ok(a, rem); a = attr_next(a, &rem)) {
		int type = a->nla_type & NLA_TYPE_MASK;
		void *v = (void *)a + NLA_HDRLEN;
		int len = a->nla_len - NLA_HDRLEN;

		if (type >= 32)
			continue;
		d->seen |= 1U << type;
		switch (type) {
		case REUSERPS_DIAG_POLICY:
			memcpy(&d->policy, v, 4);
			break;
		case REUSERPS_DIAG_MAX_CONNS:
			memcpy(&d->max_conns, v, 4);
			break;
		case REUSERPS_DIAG_FLAGS:
			memcpy(&d->flags, v, 4);
			break;
		case REUSERPS_DIAG_ACTIVE:
			memcpy(&d->active, v, 4);
			break;
		case REUSERPS_DIAG_TOTAL:
			memcpy(&d->total, v, 8);
			break;
		case REUSERPS_DIAG_FULL_SKIPS:
			memcpy(&d->full_skips, v, 8);
			break;
		case REUSERPS_DIAG_CPUS:
			d->cpu_words = len / 8;
			if (d->cpu_words > MASK_WORDS)
				d->cpu_words = MASK_WORDS;
			memcpy(d->cpus, v, d->cpu_words * 8);
			break;
		}
	}
}

/*
 * Dumps the TCP listeners of @family on @port; fills @d for the one
 * whose inode is @ino.  Returns how many listeners on the port had the
 * attribute, and in *@found whether @ino was seen at all.
 */
static int dump(struct __test_metadata *_metadata, int family, int port,
		bool info, ino_t ino, struct diag *d, bool *found)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req = {
		.nlh.nlmsg_len = sizeof(req),
		.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY,
		.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		.r.sdiag_family = family,
		.r.sdiag_protocol = IPPROTO_TCP,
		.r.idiag_states = 1 << 10,	/* TCP_LISTEN */
	};
	static char buf[65536];
	int fd, n, with = 0;
	bool done = false;

	*found = false;
	memset(d, 0, sizeof(*d));
	if (info)
		req.r.idiag_ext = 1 << (INET_DIAG_INFO - 1);
	fd = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_SOCK_DIAG);
	ASSERT_LE(0, fd);
	ASSERT_EQ(sizeof(req), send(fd, &req, sizeof(req), 0));
	while (!done) {
		struct nlmsghdr *h = (void *)buf;

		n = recv(fd, buf, sizeof(buf), 0);
		ASSERT_LT(0, n);
		for (; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
			struct inet_diag_msg *m = NLMSG_DATA(h);
			struct nlattr *a;
			int rem;

			if (h->nlmsg_type == NLMSG_DONE) {
				done = true;
				break;
			}
			ASSERT_NE(NLMSG_ERROR, h->nlmsg_type);
			if (ntohs(m->id.idiag_sport) != port)
				continue;
			if (m->idiag_inode == ino)
				*found = true;
			a = (void *)(m + 1);
			rem = h->nlmsg_len - NLMSG_LENGTH(sizeof(*m));
			for (; attr_ok(a, rem); a = attr_next(a, &rem)) {
				if ((a->nla_type & NLA_TYPE_MASK) !=
				    INET_DIAG_REUSERPS)
					continue;
				/* A new attribute is nested the modern way. */
				EXPECT_TRUE(a->nla_type & NLA_F_NESTED);
				with++;
				if (m->idiag_inode == ino)
					parse_nest(d, a);
			}
		}
	}
	close(fd);
	return with;
}

/* The attribute says what getsockopt() says, for every field. */
static void expect_same(struct __test_metadata *_metadata, int fd,
			const struct diag *d, const int *cpus, int ncpus)
{
	struct reuserps_info info;
	socklen_t len = sizeof(info);
	__u64 want[MASK_WORDS] = {};
	int i;

	ASSERT_EQ(0, getsockopt(fd, SOL_SOCKET, SO_REUSERPS, &info, &len));
	EXPECT_EQ(0x1fc, d->seen & 0x1fc);	/* POLICY .. CPUS */
	EXPECT_EQ(info.policy, d->policy);
	EXPECT_EQ(info.max_conns, d->max_conns);
	EXPECT_EQ(info.flags, d->flags);
	EXPECT_EQ(info.active_conns, d->active);
	EXPECT_EQ(info.total_conns, d->total);
	EXPECT_EQ(info.full_skips, d->full_skips);
	for (i = 0; i < ncpus; i++)
		want[cpus[i] / 64] |= 1ULL << (cpus[i] % 64);
	ASSERT_LE(1, d->cpu_words);
	for (i = 0; i < MASK_WORDS; i++)
		EXPECT_EQ(want[i], i < d->cpu_words ? d->cpus[i] : 0);
}

/* Connects from CPU 0 and returns the client; the server end is
 * accepted from whichever listener got it, into *@afd.
 */
static int connect_keep(struct __test_metadata *_metadata,
			struct ends *self, int family, int *afd)
{
	int c, i, tries;

	c = socket(family, SOCK_STREAM, 0);
	ASSERT_LE(0, c);
	ASSERT_EQ(0, connect(c, (struct sockaddr *)&self->addr, self->alen));
	for (tries = 0; tries < 1000; tries++) {
		for (i = 0; i < 3; i++) {
			if (self->fd[i] < 0)
				continue;
			*afd = accept(self->fd[i], NULL, NULL);
			if (*afd >= 0)
				return c;
		}
		usleep(1000);
	}
	*afd = -1;
	return c;
}

TEST_F(diag, listeners_report_request_and_counts)
{
	int cpus0[] = { 0 }, cpus1[] = { 0, 1 }, c[3], a[3], i, port;
	struct diag d;
	bool found;

	if (get_nprocs() < 2)
		SKIP(return, "needs 2 CPUs");
	/* Listener 0: CPU 0, cap 1; listener 1: CPUs 0-1, no cap. */
	self->e.fd[0] = listener(_metadata, &self->e, variant->family,
				 REUSERPS_LEAST_CONNS, 1, cpus0, 1);
	self->e.fd[1] = listener(_metadata, &self->e, variant->family,
				 REUSERPS_LEAST_CONNS, 0, cpus1, 2);
	port = port_of(&self->e.addr);
	pin(_metadata, 0);
	for (i = 0; i < 3; i++)
		c[i] = connect_keep(_metadata, &self->e, variant->family,
				    &a[i]);

	/* Both listeners report; the attribute matches getsockopt(). */
	EXPECT_EQ(2, dump(_metadata, variant->family, port, true,
			  inode_of(self->e.fd[0]), &d, &found));
	EXPECT_TRUE(found);
	expect_same(_metadata, self->e.fd[0], &d, cpus0, 1);
	EXPECT_EQ(REUSERPS_LEAST_CONNS, d.policy);
	EXPECT_EQ(1, d.max_conns);
	EXPECT_EQ(1, d.active);
	EXPECT_EQ(2, dump(_metadata, variant->family, port, true,
			  inode_of(self->e.fd[1]), &d, &found));
	expect_same(_metadata, self->e.fd[1], &d, cpus1, 2);
	EXPECT_EQ(2, d.active);
	EXPECT_EQ(2, d.total);

	/* Counts move: two connections end. */
	for (i = 0; i < 2; i++) {
		close(c[i]);
		close(a[i]);
	}
	for (i = 0; i < 500; i++) {
		dump(_metadata, variant->family, port, true,
		     inode_of(self->e.fd[1]), &d, &found);
		if (d.active == 1)
			break;
		usleep(10000);
	}
	expect_same(_metadata, self->e.fd[1], &d, cpus1, 2);

	/* Only with INET_DIAG_INFO asked for, as tcp_info. */
	EXPECT_EQ(0, dump(_metadata, variant->family, port, false,
			  inode_of(self->e.fd[1]), &d, &found));
	EXPECT_TRUE(found);
	close(c[2]);
	close(a[2]);
}

TEST_F(diag, plain_listener_has_none)
{
	struct diag d;
	bool found;

	self->e.fd[0] = listener(_metadata, &self->e, variant->family, -1, 0,
				 NULL, 0);
	EXPECT_EQ(0, dump(_metadata, variant->family,
			  port_of(&self->e.addr), true, inode_of(self->e.fd[0]),
			  &d, &found));
	EXPECT_TRUE(found);
}

/* The tracepoint, enabled: a refused SYN names its listener. */
static int trace_on(bool on)
{
	int fd = open(TRACING "/events/reuserps/reuserps_full/enable",
		      O_WRONLY);
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, on ? "1" : "0", 1) == 1;
	close(fd);
	return ok ? 0 : -1;
}

TEST_F(diag, full_listener_traces_refused_syn)
{
	char want[128], line[512];
	int all[64], n, i, c, a, c2, port, fd;
	__u64 cookie;
	socklen_t len = sizeof(cookie);
	bool seen = false;
	struct pollfd pfd;
	FILE *f;

	if (access(TRACING "/events", F_OK))
		mount("tracefs", TRACING, "tracefs", 0, NULL);
	if (access(TRACING "/events/reuserps/reuserps_full", F_OK))
		SKIP(return, "no tracepoint reuserps:reuserps_full");
	fd = open(TRACING "/trace", O_WRONLY | O_TRUNC);
	ASSERT_LE(0, fd);
	close(fd);
	ASSERT_EQ(0, trace_on(true));

	n = get_nprocs();
	if (n > 64)
		n = 64;
	for (i = 0; i < n; i++)
		all[i] = i;
	self->e.fd[0] = listener(_metadata, &self->e, variant->family,
				 REUSERPS_FILL_FIRST, 1, all, n);
	port = port_of(&self->e.addr);
	ASSERT_EQ(0, getsockopt(self->e.fd[0], SOL_SOCKET, SO_COOKIE, &cookie,
				&len));
	pin(_metadata, n - 1);
	c = connect_keep(_metadata, &self->e, variant->family, &a);
	ASSERT_LE(0, a);

	/* Full: the next SYN is dropped, and said so. */
	c2 = socket(variant->family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ASSERT_LE(0, c2);
	ASSERT_EQ(-1, connect(c2, (struct sockaddr *)&self->e.addr,
			      self->e.alen));
	ASSERT_EQ(EINPROGRESS, errno);
	pfd.fd = c2;
	pfd.events = POLLOUT;
	EXPECT_EQ(0, poll(&pfd, 1, 200));
	trace_on(false);

	snprintf(want, sizeof(want),
		 "sport=%d cpu=%d cookie=%llx cap=1 active=1 on=syn", port,
		 n - 1, (unsigned long long)cookie);
	f = fopen(TRACING "/trace", "r");
	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "reuserps_full:") && strstr(line, want))
			seen = true;
	}
	fclose(f);
	if (!seen)
		TH_LOG("no trace line with \"%s\"", want);
	EXPECT_TRUE(seen);
	close(c2);
	close(c);
	close(a);
}

/* reuserps-stat, built beside this test, shows both listeners as
 * getsockopt() sees them, with this process as their owner.
 */
TEST_F(diag, stat_tool_lists_listeners)
{
	int cpus0[] = { 0 }, cpus1[] = { 0, 1 }, c[3], a[3], i, rows = 0;
	char cmd[64], line[512], addr[80], who[128], cpus[64], pol[8];
	char cap[16], me[32];
	unsigned long long total, skips;
	bool header = false;
	unsigned int active;
	int port, fd;
	FILE *p;

	if (get_nprocs() < 2)
		SKIP(return, "needs 2 CPUs");
	ASSERT_EQ(0, access("./reuserps-stat", X_OK));
	self->e.fd[0] = listener(_metadata, &self->e, variant->family,
				 REUSERPS_LEAST_CONNS, 1, cpus0, 1);
	self->e.fd[1] = listener(_metadata, &self->e, variant->family,
				 REUSERPS_LEAST_CONNS, 0, cpus1, 2);
	port = port_of(&self->e.addr);
	pin(_metadata, 0);
	for (i = 0; i < 3; i++)
		c[i] = connect_keep(_metadata, &self->e, variant->family,
				    &a[i]);

	snprintf(me, sizeof(me), "%d/reuserps_diag", getpid());
	snprintf(cmd, sizeof(cmd), "./reuserps-stat -p %d", port);
	p = popen(cmd, "r");
	ASSERT_NE(NULL, p);
	while (fgets(line, sizeof(line), p)) {
		struct reuserps_info info;
		socklen_t len = sizeof(info);
		int got_port;

		line[strcspn(line, "\n")] = '\0';
		TH_LOG("%s", line);
		if (!strncmp(line + strspn(line, " "), "PORT", 4)) {
			header = strstr(line, "CPUS") && strstr(line, "ACTIVE");
			continue;
		}
		ASSERT_EQ(9, sscanf(line,
				    "%d %79s %127s %63s %7s %15s %u %llu %llu",
				    &got_port, addr, who, cpus, pol, cap,
				    &active, &total, &skips));
		EXPECT_EQ(port, got_port);
		EXPECT_STREQ("lc", pol);
		EXPECT_NE(NULL, strstr(who, me));
		EXPECT_STREQ(variant->family == AF_INET ? "127.0.0.1" : "[::1]",
			     addr);
		if (!strcmp(cpus, "0")) {
			fd = self->e.fd[0];
			EXPECT_STREQ("1", cap);
		} else {
			EXPECT_STREQ("0-1", cpus);
			fd = self->e.fd[1];
			EXPECT_STREQ("-", cap);
		}
		ASSERT_EQ(0, getsockopt(fd, SOL_SOCKET, SO_REUSERPS, &info,
					&len));
		EXPECT_EQ(info.active_conns, active);
		EXPECT_EQ(info.total_conns, total);
		EXPECT_EQ(info.full_skips, skips);
		rows++;
	}
	EXPECT_EQ(0, pclose(p));
	EXPECT_TRUE(header);
	EXPECT_EQ(2, rows);
	for (i = 0; i < 3; i++) {
		close(c[i]);
		close(a[i]);
	}
}

TEST_HARNESS_MAIN
