// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS socket option: what setsockopt() accepts and refuses (each
 * with its errno, leaving the socket as it was), before bind() and on a
 * listening member, that it needs SO_REUSEPORT, and what getsockopt()
 * reports.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/reuserps.h>

#include "../../kselftest_harness.h"

#define MAX_WORDS	1024

/* A request: the header, then up to MAX_WORDS mask words. */
struct req_buf {
	__u64 raw[2 + MAX_WORDS];
};

static struct reuserps_req *req_of(struct req_buf *b)
{
	return (struct reuserps_req *)b->raw;
}

/* nr_cpu_ids: one past the last possible CPU. */
static int possible_cpus(void)
{
	int first, last = -1;
	char buf[256], *p;
	FILE *f;

	f = fopen("/sys/devices/system/cpu/possible", "r");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	for (p = strtok(buf, ",\n"); p; p = strtok(NULL, ",\n")) {
		if (sscanf(p, "%d-%d", &first, &last) < 2)
			last = first;
	}
	return last + 1;
}

/* setsockopt(SO_REUSERPS) with optlen off by @extra bytes; 0 or errno. */
static int set_req(int fd, __u32 policy, __u32 max_conns, __u32 flags,
		   __u32 words, const __u64 *mask, int extra)
{
	static struct req_buf b;
	struct reuserps_req *req = req_of(&b);
	socklen_t len;

	memset(&b, 0, sizeof(b));
	req->policy = policy;
	req->max_conns = max_conns;
	req->flags = flags;
	req->mask_words = words;
	if (mask)
		memcpy(req->cpus, mask, sizeof(__u64) * words);
	len = sizeof(*req) + sizeof(__u64) * words + extra;
	if (words > MAX_WORDS)
		len = sizeof(*req) + extra;
	return setsockopt(fd, SOL_SOCKET, SO_REUSERPS, req, len) ? errno : 0;
}

static int get_info(int fd, struct reuserps_info *info, socklen_t *len)
{
	return getsockopt(fd, SOL_SOCKET, SO_REUSERPS, info, len) ? errno : 0;
}

FIXTURE(sockopt)
{
	int fd;
	int ncpus;
	__u64 cpu0;
};

FIXTURE_VARIANT(sockopt)
{
	int family;
};

FIXTURE_VARIANT_ADD(sockopt, ipv4)
{
	.family = AF_INET,
};

FIXTURE_VARIANT_ADD(sockopt, ipv6)
{
	.family = AF_INET6,
};

FIXTURE_SETUP(sockopt)
{
	self->fd = socket(variant->family, SOCK_STREAM, 0);
	ASSERT_LE(0, self->fd);
	self->ncpus = possible_cpus();
	ASSERT_LT(0, self->ncpus);
	self->cpu0 = 1;
}

FIXTURE_TEARDOWN(sockopt)
{
	close(self->fd);
}

TEST_F(sockopt, set_then_get)
{
	struct reuserps_info info;
	socklen_t len = sizeof(info);

	ASSERT_EQ(0, set_req(self->fd, REUSERPS_FILL_FIRST, 5, 0, 1,
			     &self->cpu0, 0));
	memset(&info, 0xff, sizeof(info));
	ASSERT_EQ(0, get_info(self->fd, &info, &len));
	EXPECT_EQ(sizeof(info), len);
	EXPECT_EQ(REUSERPS_FILL_FIRST, info.policy);
	EXPECT_EQ(5, info.max_conns);
	EXPECT_EQ(0, info.active_conns);
	EXPECT_EQ(0, info.flags);
	EXPECT_EQ(0, info.total_conns);
	EXPECT_EQ(0, info.full_skips);
}

TEST_F(sockopt, get_without_request)
{
	struct reuserps_info info;
	socklen_t len = sizeof(info);

	EXPECT_EQ(ENOENT, get_info(self->fd, &info, &len));
}

TEST_F(sockopt, get_short_and_long_buffers)
{
	struct {
		struct reuserps_info info;
		char more[16];
	} big;
	socklen_t len = 4;
	size_t i;

	ASSERT_EQ(0, set_req(self->fd, REUSERPS_FILL_FIRST, 7, 0, 1,
			     &self->cpu0, 0));
	/* Shorter than the struct: its beginning, as for TCP_INFO. */
	memset(&big, 0xff, sizeof(big));
	EXPECT_EQ(0, get_info(self->fd, &big.info, &len));
	EXPECT_EQ(4, len);
	EXPECT_EQ(REUSERPS_FILL_FIRST, big.info.policy);
	for (i = 4; i < sizeof(big); i++)
		EXPECT_EQ(0xff, ((unsigned char *)&big)[i]);
	len = 0;
	EXPECT_EQ(0, get_info(self->fd, &big.info, &len));
	EXPECT_EQ(0, len);
	/* Longer: what this kernel has, the rest untouched. */
	len = sizeof(big);
	EXPECT_EQ(0, get_info(self->fd, &big.info, &len));
	EXPECT_EQ(sizeof(big.info), len);
	EXPECT_EQ(7, big.info.max_conns);
	for (i = 0; i < sizeof(big.more); i++)
		EXPECT_EQ((char)0xff, big.more[i]);
}

TEST_F(sockopt, optlen_must_match_mask_words)
{
	EXPECT_EQ(EINVAL, set_req(self->fd, 0, 0, 0, 1, &self->cpu0, -8));
	EXPECT_EQ(EINVAL, set_req(self->fd, 0, 0, 0, 1, &self->cpu0, 8));
	EXPECT_EQ(EINVAL, set_req(self->fd, 0, 0, 0, 1, &self->cpu0, -20));
	EXPECT_EQ(EINVAL, set_req(self->fd, 0, 0, 0, 2, &self->cpu0, -8));
}

TEST_F(sockopt, mask_words_zero_or_too_many)
{
	int max = (self->ncpus + 63) / 64 > 16 ? (self->ncpus + 63) / 64 : 16;
	static __u64 mask[MAX_WORDS];

	mask[0] = 1;
	EXPECT_EQ(EINVAL, set_req(self->fd, 0, 0, 0, 0, NULL, 0));
	/* A glibc cpu_set_t (16 words) is always accepted. */
	EXPECT_EQ(0, set_req(self->fd, 0, 0, 0, 16, mask, 0));
	EXPECT_EQ(0, set_req(self->fd, 0, 0, 0, max, mask, 0));
	EXPECT_EQ(EINVAL, set_req(self->fd, 0, 0, 0, max + 1, mask, 0));
	/* Absurd: the count alone is refused, whatever optlen says. */
	EXPECT_EQ(EINVAL, set_req(self->fd, 0, 0, 0, 1U << 30, NULL, 8));
	EXPECT_EQ(EINVAL, set_req(self->fd, 0, 0, 0, ~0U, NULL, 8));
}

TEST_F(sockopt, mask_empty_or_out_of_range)
{
	static __u64 mask[MAX_WORDS];
	int n = self->ncpus;

	EXPECT_EQ(EINVAL, set_req(self->fd, 0, 0, 0, 1, mask, 0));
	mask[(n - 1) / 64] = 1ULL << ((n - 1) % 64);
	EXPECT_EQ(0, set_req(self->fd, 0, 0, 0, (n - 1) / 64 + 1, mask, 0));
	memset(mask, 0, sizeof(mask));
	mask[n / 64] = 1ULL << (n % 64);
	EXPECT_EQ(EINVAL, set_req(self->fd, 0, 0, 0, n / 64 + 1, mask, 0));
	mask[0] |= 1;
	EXPECT_EQ(EINVAL, set_req(self->fd, 0, 0, 0, n / 64 + 1, mask, 0));
}

TEST_F(sockopt, policy_and_flags)
{
	EXPECT_EQ(EINVAL, set_req(self->fd, REUSERPS_LEAST_CONNS + 1, 0, 0, 1,
				  &self->cpu0, 0));
	EXPECT_EQ(EINVAL, set_req(self->fd, ~0U, 0, 0, 1, &self->cpu0, 0));
	EXPECT_EQ(EINVAL, set_req(self->fd, 0, 0, 1, 1, &self->cpu0, 0));
	EXPECT_EQ(EINVAL, set_req(self->fd, 0, 0, 1U << 31, 1, &self->cpu0,
				  0));
}

TEST_F(sockopt, refused_request_leaves_previous)
{
	struct reuserps_info info;
	socklen_t len = sizeof(info);

	ASSERT_EQ(0, set_req(self->fd, REUSERPS_ROUND_ROBIN, 3, 0, 1,
			     &self->cpu0, 0));
	EXPECT_EQ(EINVAL, set_req(self->fd, REUSERPS_FILL_FIRST, 9, 1, 1,
				  &self->cpu0, 0));
	EXPECT_EQ(EINVAL, set_req(self->fd, REUSERPS_FILL_FIRST, 9, 0, 1,
				  &self->cpu0, 8));
	ASSERT_EQ(0, get_info(self->fd, &info, &len));
	EXPECT_EQ(REUSERPS_ROUND_ROBIN, info.policy);
	EXPECT_EQ(3, info.max_conns);
}

TEST_F(sockopt, replaced_before_bind)
{
	struct reuserps_info info;
	socklen_t len = sizeof(info);

	ASSERT_EQ(0, set_req(self->fd, REUSERPS_ROUND_ROBIN, 3, 0, 1,
			     &self->cpu0, 0));
	ASSERT_EQ(0, set_req(self->fd, REUSERPS_FILL_FIRST, 7, 0, 1,
			     &self->cpu0, 0));
	ASSERT_EQ(0, get_info(self->fd, &info, &len));
	EXPECT_EQ(REUSERPS_FILL_FIRST, info.policy);
	EXPECT_EQ(7, info.max_conns);
}

/* The loopback address of @family, port 0, in @ss; returns its length. */
static socklen_t loopback(int family, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*a);
	}
	((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
	((struct sockaddr_in6 *)ss)->sin6_addr = in6addr_loopback;
	return sizeof(struct sockaddr_in6);
}

/* SO_REUSEPORT, bind() to loopback, listen(): 0 or the first errno. */
static int reuseport_listen(int fd, int family)
{
	struct sockaddr_storage ss;
	socklen_t alen = loopback(family, &ss);
	int one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&ss, alen) || listen(fd, 8))
		return errno;
	return 0;
}

TEST_F(sockopt, refused_once_bound)
{
	struct sockaddr_storage ss;
	socklen_t alen = loopback(variant->family, &ss);

	ASSERT_EQ(0, bind(self->fd, (struct sockaddr *)&ss, alen));
	EXPECT_EQ(EINVAL, set_req(self->fd, 0, 0, 0, 1, &self->cpu0, 0));
}

/* SO_REUSERPS steers within a reuseport group: alone it is refused. */
TEST_F(sockopt, needs_reuseport)
{
	struct sockaddr_storage ss;
	socklen_t alen = loopback(variant->family, &ss);

	ASSERT_EQ(0, set_req(self->fd, 0, 0, 0, 1, &self->cpu0, 0));
	EXPECT_EQ(-1, bind(self->fd, (struct sockaddr *)&ss, alen));
	EXPECT_EQ(EINVAL, errno);
	/* listen() binds a port itself, and fails the same way. */
	EXPECT_EQ(-1, listen(self->fd, 8));
	EXPECT_EQ(EINVAL, errno);
	/* Nothing was left half-done: with SO_REUSEPORT it binds. */
	EXPECT_EQ(0, reuseport_listen(self->fd, variant->family));
}

/* A listener that joined its group without SO_REUSERPS cannot ask later. */
TEST_F(sockopt, listening_without_request)
{
	struct reuserps_info info;
	socklen_t len = sizeof(info);

	ASSERT_EQ(0, reuseport_listen(self->fd, variant->family));
	EXPECT_EQ(EINVAL, set_req(self->fd, 0, 0, 0, 1, &self->cpu0, 0));
	EXPECT_EQ(ENOENT, get_info(self->fd, &info, &len));
}

/* A listening member may change its request, within its group's policy. */
TEST_F(sockopt, listening_member_changes)
{
	struct reuserps_info info;
	socklen_t len = sizeof(info);

	ASSERT_EQ(0, set_req(self->fd, REUSERPS_FILL_FIRST, 2, 0, 1,
			     &self->cpu0, 0));
	ASSERT_EQ(0, reuseport_listen(self->fd, variant->family));
	EXPECT_EQ(0, set_req(self->fd, REUSERPS_FILL_FIRST, 5, 0, 1,
			     &self->cpu0, 0));
	EXPECT_EQ(EINVAL, set_req(self->fd, REUSERPS_ROUND_ROBIN, 9, 0, 1,
				  &self->cpu0, 0));
	EXPECT_EQ(EINVAL, set_req(self->fd, REUSERPS_FILL_FIRST, 9, 0, 1,
				  NULL, 0));
	ASSERT_EQ(0, get_info(self->fd, &info, &len));
	EXPECT_EQ(REUSERPS_FILL_FIRST, info.policy);
	EXPECT_EQ(5, info.max_conns);
}

TEST(not_tcp)
{
	__u64 cpu0 = 1;
	int fd;

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	ASSERT_LE(0, fd);
	EXPECT_EQ(EOPNOTSUPP, set_req(fd, 0, 0, 0, 1, &cpu0, 0));
	close(fd);

	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ASSERT_LE(0, fd);
	EXPECT_EQ(EOPNOTSUPP, set_req(fd, 0, 0, 0, 1, &cpu0, 0));
	close(fd);
}

TEST(bad_pointer)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, setsockopt(fd, SOL_SOCKET, SO_REUSERPS, NULL,
				 sizeof(struct reuserps_req) + 8));
	EXPECT_EQ(EFAULT, errno);
	close(fd);
}

TEST_HARNESS_MAIN
