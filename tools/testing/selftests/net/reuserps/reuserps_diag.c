// SPDX-License-Identifier: GPL-2.0
/*
 * What SO_REUSERPS lets others see: sock_diag's INET_DIAG_REUSERPS for
 * each listener (its request, mask and counts, as getsockopt() gives them
 * to the owner), and the reuserps:reuserps_full tracepoint when a full
 * listener refuses a SYN, read from a tracing instance of the test's own
 * so that the system's trace buffer and events are left alone; on IPv4
 * and IPv6, each test in a network namespace of its own.
 */
#include "kselftest_harness.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include "reuserps_lib.h"

#define MASK_WORDS	16
#define TRACING		"/sys/kernel/tracing"

/* What one INET_DIAG_REUSERPS nest said; @seen: a bit per attribute. */
struct diag {
	__u32 seen;
	__u32 policy, max_conns, flags, active;
	__u64 total, full_skips;
	__u64 cpus[MASK_WORDS];
	int cpu_words;
};

FIXTURE(diag)
{
	struct group g;
	char instance[128];	/* a tracing instance the test made, or "" */
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
	self->instance[0] = '\0';
	group_init(&self->g, variant->family);
	if (!reuserps_supported())
		SKIP(return, "no SO_REUSERPS in this kernel (ENOPROTOOPT)");
	ASSERT_EQ(0, rps_netns());
}

FIXTURE_TEARDOWN(diag)
{
	char path[256];

	group_close(&self->g);
	if (self->instance[0]) {
		snprintf(path, sizeof(path),
			 "%s/events/reuserps/reuserps_full/enable",
			 self->instance);
		write_file(path, "0");
		rmdir(self->instance);
	}
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

/*
 * The attribute says what getsockopt() says, for every field, the mask
 * included, and the mask is @cpus.
 */
static void expect_same(struct __test_metadata *_metadata, int fd,
			const struct diag *d, const int *cpus, int ncpus)
{
	__u64 want[MASK_WORDS] = {}, got[MASK_WORDS];
	struct reuserps_info info;
	int i;

	memset(got, 0xa5, sizeof(got));
	ASSERT_EQ(0, rps_get(fd, &info, got, sizeof(got)));
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
	EXPECT_EQ(info.cpus_len, d->cpu_words * 8);
	for (i = 0; i < MASK_WORDS; i++) {
		EXPECT_EQ(want[i], i < d->cpu_words ? d->cpus[i] : 0);
		EXPECT_EQ(want[i], got[i]);
	}
}

TEST_F(diag, listeners_report_request_and_counts)
{
	int cpus0[] = { 0 }, cpus1[] = { 0, 1 }, c[3], a[3], i, port;
	struct group *g = &self->g;
	struct diag d;
	bool found;

	if (get_nprocs() < 2)
		SKIP(return, "needs 2 CPUs");
	/* Listener 0: CPU 0, cap 1; listener 1: CPUs 0-1, no cap. */
	add_capped(_metadata, g, variant->family, REUSERPS_LEAST_CONNS, 1,
		   cpus0, 1);
	add_capped(_metadata, g, variant->family, REUSERPS_LEAST_CONNS, 0,
		   cpus1, 2);
	port = port_of(&g->addr);
	pin(_metadata, 0);
	for (i = 0; i < 3; i++)
		ASSERT_LE(0, connect_keep(_metadata, g, variant->family, &c[i],
					  &a[i]));

	/* Both listeners report; the attribute matches getsockopt(). */
	EXPECT_EQ(2, dump(_metadata, variant->family, port, true,
			  inode_of(g->fd[0]), &d, &found));
	EXPECT_TRUE(found);
	expect_same(_metadata, g->fd[0], &d, cpus0, 1);
	EXPECT_EQ(REUSERPS_LEAST_CONNS, d.policy);
	EXPECT_EQ(1, d.max_conns);
	EXPECT_EQ(1, d.active);
	EXPECT_EQ(2, dump(_metadata, variant->family, port, true,
			  inode_of(g->fd[1]), &d, &found));
	expect_same(_metadata, g->fd[1], &d, cpus1, 2);
	EXPECT_EQ(2, d.active);
	EXPECT_EQ(2, d.total);

	/* Counts move: two connections end (a bounded wait for it). */
	for (i = 0; i < 2; i++) {
		close(c[i]);
		close(a[i]);
	}
	for (i = 0; i < 2000; i++) {
		dump(_metadata, variant->family, port, true,
		     inode_of(g->fd[1]), &d, &found);
		if (d.active == 1)
			break;
		usleep(10000);
	}
	expect_same(_metadata, g->fd[1], &d, cpus1, 2);

	/* Only with INET_DIAG_INFO asked for, as tcp_info. */
	EXPECT_EQ(0, dump(_metadata, variant->family, port, false,
			  inode_of(g->fd[1]), &d, &found));
	EXPECT_TRUE(found);
	close(c[2]);
	close(a[2]);
}

TEST_F(diag, plain_listener_has_none)
{
	struct diag d;
	bool found;

	add_plain(_metadata, &self->g, variant->family);
	EXPECT_EQ(0, dump(_metadata, variant->family, port_of(&self->g.addr),
			  true, inode_of(self->g.fd[0]), &d, &found));
	EXPECT_TRUE(found);
}

/*
 * A tracing instance of this test's own, its path in @instance (the
 * fixture's), with reuserps:reuserps_full enabled there; a reason to
 * skip, or NULL.  tracefs is mounted, if it is not, in a mount
 * namespace of the test's.
 */
static const char *trace_instance(struct __test_metadata *_metadata,
				  char *instance)
{
	char path[256];

	if (access(TRACING "/instances", F_OK)) {
		if (unshare(CLONE_NEWNS) ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		    mount("tracefs", TRACING, "tracefs", 0, NULL))
			return "no tracefs";
	}
	if (access(TRACING "/events/reuserps/reuserps_full", F_OK))
		return "no tracepoint reuserps:reuserps_full";
	snprintf(path, sizeof(path), TRACING "/instances/reuserps_diag_%d",
		 getpid());
	if (mkdir(path, 0700))
		return "cannot make a tracing instance";
	/* A short path: it fits. */
	memcpy(instance, path, strlen(path) + 1);
	snprintf(path, sizeof(path), "%s/events/reuserps/reuserps_full/enable",
		 instance);
	ASSERT_EQ(0, write_file(path, "1"));
	return NULL;
}

/* Whether the instance's trace has a reuserps_full line with @want. */
static bool traced(const char *instance, const char *want)
{
	char path[256], line[512];
	bool seen = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/trace", instance);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "reuserps_full:") && strstr(line, want))
			seen = true;
	fclose(f);
	return seen;
}

/* The tracepoint: a refused SYN names its listener. */
TEST_F(diag, full_listener_traces_refused_syn)
{
	int all[64], n, i, c, a, c2, port;
	char want[128];
	const char *why;
	__u64 cookie;
	socklen_t len = sizeof(cookie);
	bool seen = false;
	long drops;

	why = trace_instance(_metadata, self->instance);
	if (why)
		SKIP(return, "%s", why);

	n = get_nprocs();
	if (n > 64)
		n = 64;
	for (i = 0; i < n; i++)
		all[i] = i;
	add_capped(_metadata, &self->g, variant->family, REUSERPS_FILL_FIRST,
		   1, all, n);
	port = port_of(&self->g.addr);
	ASSERT_EQ(0, getsockopt(self->g.fd[0], SOL_SOCKET, SO_COOKIE, &cookie,
				&len));
	pin(_metadata, n - 1);
	ASSERT_EQ(0, connect_keep(_metadata, &self->g, variant->family, &c,
				  &a));

	/* Full: the next SYN is dropped (ListenDrops), and said so. */
	drops = listen_drops();
	ASSERT_LE(0, drops);
	c2 = connect_dropped(_metadata, &self->g, variant->family, drops);

	snprintf(want, sizeof(want),
		 "sport=%d cpu=%d cookie=%llx cap=1 active=1 on=syn", port,
		 n - 1, (unsigned long long)cookie);
	/* A bounded wait for the event that must be there by now. */
	for (i = 0; i < 200 && !seen; i++) {
		seen = traced(self->instance, want);
		if (!seen)
			usleep(10000);
	}
	if (!seen)
		TH_LOG("no trace line with \"%s\"", want);
	EXPECT_TRUE(seen);
	close(c2);
	close(c);
	close(a);
}

int main(int argc, char **argv)
{
	return reuserps_harness_main(argc, argv);
}
