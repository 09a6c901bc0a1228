// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS socket option: what setsockopt() accepts and refuses (each
 * with its errno, leaving the previous request in place), the size-
 * versioned structs of setsockopt() and getsockopt(), the CPU mask passed
 * by pointer and length as sched_setaffinity() takes it, reading the
 * request and its mask back, that it needs SO_REUSEPORT, that a policy or
 * mode other than its group's is EADDRINUSE at bind(), listen() and
 * setsockopt() on a listener, and that groups on other addresses of one
 * port keep their own mode and steer by it; on IPv4 and IPv6.
 */
#include "kselftest_harness.h"

#include <arpa/inet.h>
#include <limits.h>
#include <sys/mman.h>

#include "reuserps_lib.h"

/* Plain SO_REUSEPORT, where a policy is asked for. */
#define PLAIN	(-1)

FIXTURE(sockopt)
{
	int fd;
	int nr;		/* nr_cpu_ids */
	int ncpus;	/* online CPUs */
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

/* A second address on lo: 127.0.0.2 or fd00::2. */
static socklen_t other_address(int family, struct sockaddr_storage *ss)
{
	socklen_t len = loopback(family, ss);

	if (family == AF_INET)
		((struct sockaddr_in *)ss)->sin_addr.s_addr =
			inet_addr("127.0.0.2");
	else
		inet_pton(AF_INET6, "fd00::2",
			  &((struct sockaddr_in6 *)ss)->sin6_addr);
	return len;
}

FIXTURE_SETUP(sockopt)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;

	self->fd = -1;
	if (!reuserps_supported())
		SKIP(return, "no SO_REUSERPS in this kernel (ENOPROTOOPT)");
	ASSERT_EQ(0, rps_netns());
	if (variant->family == AF_INET6) {
		other_address(AF_INET6, &ss);
		ASSERT_EQ(0, rps_add_lo6(&a6->sin6_addr));
	}
	self->fd = socket(variant->family, SOCK_STREAM, 0);
	ASSERT_LE(0, self->fd);
	self->nr = rps_nr_cpu_ids();
	ASSERT_LT(0, self->nr);
	self->ncpus = get_nprocs();
}

FIXTURE_TEARDOWN(sockopt)
{
	if (self->fd >= 0)
		close(self->fd);
}

/* A request of @optlen bytes, the first sizeof(req) of which are @req. */
static int set_long(int fd, const struct reuserps_req *req, size_t optlen,
		    int tail_byte, size_t tail_at)
{
	static unsigned char buf[65536];

	memset(buf, 0, sizeof(buf));
	memcpy(buf, req, optlen < sizeof(*req) ? optlen : sizeof(*req));
	if (tail_byte)
		buf[tail_at] = tail_byte;
	return rps_setsockopt(fd, buf, optlen);
}

/*
 * The request read back, mask included: @policy, @cap, no flags, and
 * exactly the CPUs @cpus, reported as cpus_len bytes up to the highest in
 * whole unsigned longs.
 */
static void expect_req(struct __test_metadata *_metadata, int fd,
		       __u32 policy, __u32 cap, const int *cpus, int n)
{
	size_t word = sizeof(unsigned long), size, gsize;
	int nr = rps_nr_cpu_ids(), hi = 0, i;
	struct reuserps_info info;
	cpu_set_t *want, *got;

	want = rps_mask(cpus, n, nr, &size);
	ASSERT_NE(NULL, want);
	got = CPU_ALLOC(nr);
	ASSERT_NE(NULL, got);
	gsize = CPU_ALLOC_SIZE(nr);
	ASSERT_EQ(size, gsize);
	memset(got, 0xa5, gsize);
	ASSERT_EQ(0, rps_get(fd, &info, got, gsize));
	EXPECT_EQ(policy, info.policy);
	EXPECT_EQ(cap, info.max_conns);
	EXPECT_EQ(0, info.flags);
	for (i = 0; i < n; i++)
		if (cpus[i] > hi)
			hi = cpus[i];
	EXPECT_EQ((hi / (8 * word) + 1) * word, info.cpus_len);
	EXPECT_TRUE(CPU_EQUAL_S(size, want, got));
	CPU_FREE(want);
	CPU_FREE(got);
}

TEST_F(sockopt, set_then_get)
{
	int cpus[] = { 0, self->nr - 1 };
	struct reuserps_info info;

	ASSERT_EQ(0, request(self->fd, REUSERPS_FILL_FIRST, 5, cpus, 2));
	ASSERT_EQ(0, rps_get(self->fd, &info, NULL, 0));
	EXPECT_EQ(REUSERPS_FILL_FIRST, info.policy);
	EXPECT_EQ(5, info.max_conns);
	EXPECT_EQ(0, info.flags);
	EXPECT_EQ(0, info.active_conns);
	EXPECT_EQ(0, info.reserved);
	EXPECT_EQ(0, info.total_conns);
	EXPECT_EQ(0, info.full_skips);
	expect_req(_metadata, self->fd, REUSERPS_FILL_FIRST, 5, cpus, 2);

	ASSERT_EQ(0, request(self->fd, REUSERPS_LEAST_CONNS, 0, cpus, 1));
	expect_req(_metadata, self->fd, REUSERPS_LEAST_CONNS, 0, cpus, 1);
}

TEST_F(sockopt, get_without_request)
{
	struct reuserps_info info;

	EXPECT_EQ(ENOENT, rps_get(self->fd, &info, NULL, 0));
}

/* optlen below REUSERPS_REQ_SIZE_VER0 is EINVAL, whatever it holds. */
TEST_F(sockopt, set_optlen_short)
{
	static const size_t lens[] = { 0, 1, 4, 16, 20, 23 };
	struct reuserps_req req;
	__u64 cpu0 = 1;
	size_t i;

	rps_req_init(&req, REUSERPS_ROUND_ROBIN, 0, &cpu0, sizeof(cpu0));
	for (i = 0; i < ARRAY_SIZE(lens); i++)
		EXPECT_EQ(EINVAL, rps_setsockopt(self->fd, &req, lens[i]))
			TH_LOG("optlen %zu", lens[i]);
	EXPECT_EQ(ENOENT, rps_get_err(self->fd));
	EXPECT_EQ(0, rps_setsockopt(self->fd, &req, REUSERPS_REQ_SIZE_VER0));
}

/* Above 4096 bytes is E2BIG, even with a zero tail. */
TEST_F(sockopt, set_optlen_too_big)
{
	static const size_t lens[] = { REUSERPS_MAX_OPTLEN + 1, 8192, 65536 };
	struct reuserps_req req;
	__u64 cpu0 = 1;
	size_t i;

	rps_req_init(&req, REUSERPS_ROUND_ROBIN, 0, &cpu0, sizeof(cpu0));
	for (i = 0; i < ARRAY_SIZE(lens); i++)
		EXPECT_EQ(E2BIG, set_long(self->fd, &req, lens[i], 0, 0))
			TH_LOG("optlen %zu", lens[i]);
	EXPECT_EQ(ENOENT, rps_get_err(self->fd));
}

/* A newer, longer struct is accepted if what this kernel lacks is zero. */
TEST_F(sockopt, set_optlen_zero_tail_accepted)
{
	static const size_t lens[] = { 25, 28, 32, 64, REUSERPS_MAX_OPTLEN };
	struct reuserps_req req;
	int cpu0 = 0;
	__u64 mask = 1;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(lens); i++) {
		rps_req_init(&req, REUSERPS_FILL_FIRST, i + 1, &mask,
			     sizeof(mask));
		EXPECT_EQ(0, set_long(self->fd, &req, lens[i], 0, 0))
			TH_LOG("optlen %zu", lens[i]);
		expect_req(_metadata, self->fd, REUSERPS_FILL_FIRST, i + 1,
			   &cpu0, 1);
	}
}

/* A newer struct with a field this kernel does not know set: E2BIG. */
TEST_F(sockopt, set_optlen_nonzero_tail)
{
	static const struct {
		size_t len, at;
		int byte;
	} cases[] = {
		{ 33, 32, 0x01 },
		{ 40, 32, 0x80 },
		{ 40, 39, 0x01 },
		{ 64, 40, 0xff },
		{ REUSERPS_MAX_OPTLEN, REUSERPS_MAX_OPTLEN - 1, 0x01 },
	};
	struct reuserps_req req;
	int cpu0 = 0;
	__u64 mask = 1;
	size_t i;

	ASSERT_EQ(0, request(self->fd, REUSERPS_ROUND_ROBIN, 3, &cpu0, 1));
	rps_req_init(&req, REUSERPS_ROUND_ROBIN, 9, &mask, sizeof(mask));
	for (i = 0; i < ARRAY_SIZE(cases); i++)
		EXPECT_EQ(E2BIG, set_long(self->fd, &req, cases[i].len,
					  cases[i].byte, cases[i].at))
			TH_LOG("optlen %zu, byte %zu", cases[i].len,
			       cases[i].at);
	expect_req(_metadata, self->fd, REUSERPS_ROUND_ROBIN, 3, &cpu0, 1);
}

/* CPU_ALLOC() sets of any size, with CPU 0 and the last possible CPU. */
TEST_F(sockopt, mask_cpu_alloc_sizes)
{
	static const int sizes[] = { 1, 64, 65, 1024, 8192 };
	int cpus[2] = { 0, self->nr - 1 }, n, k;
	cpu_set_t *set;
	size_t size, i;

	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		for (n = 1; n <= 2; n++) {
			if (cpus[n - 1] >= sizes[i])
				continue;
			set = CPU_ALLOC(sizes[i]);
			ASSERT_NE(NULL, set);
			size = CPU_ALLOC_SIZE(sizes[i]);
			CPU_ZERO_S(size, set);
			for (k = 0; k < n; k++)
				CPU_SET_S(cpus[k], size, set);
			EXPECT_EQ(0, rps_set_mask(self->fd,
						  REUSERPS_ROUND_ROBIN, n, set,
						  size))
				TH_LOG("CPU_ALLOC(%d), %d CPUs", sizes[i], n);
			expect_req(_metadata, self->fd, REUSERPS_ROUND_ROBIN,
				   n, cpus, n);
			CPU_FREE(set);
		}
	}
}

/* A length in bytes, not words: 1 and 3 bytes (little-endian layout). */
TEST_F(sockopt, mask_byte_lengths)
{
	unsigned char bytes[3] = { 0x01, 0, 0 };
	int cpu0 = 0;

	if (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__)
		SKIP(return, "byte layout of a mask is little-endian here");
	EXPECT_EQ(0, rps_set_mask(self->fd, REUSERPS_FILL_FIRST, 1, bytes, 1));
	expect_req(_metadata, self->fd, REUSERPS_FILL_FIRST, 1, &cpu0, 1);
	EXPECT_EQ(0, rps_set_mask(self->fd, REUSERPS_FILL_FIRST, 3, bytes, 3));
	expect_req(_metadata, self->fd, REUSERPS_FILL_FIRST, 3, &cpu0, 1);

	/* CPU 23, in the third byte: valid only below nr_cpu_ids. */
	bytes[2] = 0x80;
	EXPECT_EQ(self->nr > 23 ? 0 : EINVAL,
		  rps_set_mask(self->fd, REUSERPS_FILL_FIRST, 4, bytes, 3));
	if (self->nr <= 23)
		expect_req(_metadata, self->fd, REUSERPS_FILL_FIRST, 3, &cpu0,
			   1);
	/* An empty 1-byte mask, the bit past its end not read. */
	bytes[0] = 0;
	bytes[1] = 0x01;
	EXPECT_EQ(EINVAL, rps_set_mask(self->fd, REUSERPS_FILL_FIRST, 5, bytes,
				       1));
}

/* Zero bytes past nr_cpu_ids are ignored, however many. */
TEST_F(sockopt, mask_long_zero_tail)
{
	static const size_t lens[] = { 4096, 8192, 65536 };
	int cpus[2] = { 0, self->nr - 1 };
	unsigned char *buf;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(lens); i++) {
		buf = calloc(1, lens[i]);
		ASSERT_NE(NULL, buf);
		CPU_SET_S(0, lens[i], (cpu_set_t *)buf);
		EXPECT_EQ(0, rps_set_mask(self->fd, REUSERPS_ROUND_ROBIN, 0,
					  buf, lens[i]))
			TH_LOG("%zu bytes", lens[i]);
		expect_req(_metadata, self->fd, REUSERPS_ROUND_ROBIN, 0, cpus,
			   1);
		CPU_SET_S(self->nr - 1, lens[i], (cpu_set_t *)buf);
		EXPECT_EQ(0, rps_set_mask(self->fd, REUSERPS_ROUND_ROBIN, 0,
					  buf, lens[i]));
		expect_req(_metadata, self->fd, REUSERPS_ROUND_ROBIN, 0, cpus,
			   2);
		free(buf);
	}
}

/*
 * A CPU at or beyond nr_cpu_ids is EINVAL: just past, and far past the
 * kernel's own mask (bit 8191, and the last bit of 64 KiB), alone or
 * beside valid ones.
 */
TEST_F(sockopt, mask_beyond_nr_cpu_ids)
{
	int cpu0 = 0, bits[3] = { self->nr, 8191, 65536 * 8 - 1 };
	size_t size = 65536;
	cpu_set_t *set;
	int i;

	ASSERT_EQ(0, request(self->fd, REUSERPS_FILL_FIRST, 2, &cpu0, 1));
	set = calloc(1, size);
	ASSERT_NE(NULL, set);
	for (i = 0; i < 3; i++) {
		if (bits[i] < self->nr)
			continue;
		CPU_ZERO_S(size, set);
		CPU_SET_S(bits[i], size, set);
		EXPECT_EQ(EINVAL, rps_set_mask(self->fd, REUSERPS_FILL_FIRST,
					       7, set, size))
			TH_LOG("CPU %d alone", bits[i]);
		CPU_SET_S(0, size, set);
		EXPECT_EQ(EINVAL, rps_set_mask(self->fd, REUSERPS_FILL_FIRST,
					       7, set, size))
			TH_LOG("CPU %d with CPU 0", bits[i]);
		/* The shortest buffer that holds the bit. */
		EXPECT_EQ(EINVAL, rps_set_mask(self->fd, REUSERPS_FILL_FIRST,
					       7, set, bits[i] / 8 + 1));
	}
	free(set);
	expect_req(_metadata, self->fd, REUSERPS_FILL_FIRST, 2, &cpu0, 1);
}

/* An empty mask, a zero length or no pointer: EINVAL. */
TEST_F(sockopt, mask_empty)
{
	__u64 zero[16] = {}, one = 1;

	EXPECT_EQ(EINVAL, rps_set_mask(self->fd, 0, 0, zero, 8));
	EXPECT_EQ(EINVAL, rps_set_mask(self->fd, 0, 0, zero, sizeof(zero)));
	EXPECT_EQ(EINVAL, rps_set_mask(self->fd, 0, 0, &one, 0));
	EXPECT_EQ(EINVAL, rps_set_mask(self->fd, 0, 0, NULL, 8));
	EXPECT_EQ(EINVAL, rps_set_mask(self->fd, 0, 0, NULL, 0));
	EXPECT_EQ(ENOENT, rps_get_err(self->fd));
}

/* A mask or a request the kernel cannot read: EFAULT. */
TEST_F(sockopt, bad_pointer)
{
	long page = sysconf(_SC_PAGESIZE);
	struct reuserps_req req;
	int cpu0 = 0;
	char *p;

	ASSERT_EQ(0, request(self->fd, REUSERPS_ROUND_ROBIN, 4, &cpu0, 1));
	p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, mprotect(p + page, page, PROT_NONE));
	memset(p, 0, page);
	p[page - 8] = 1;

	/* The mask in an inaccessible page, or running into one. */
	EXPECT_EQ(EFAULT, rps_set_mask(self->fd, 0, 0, p + page, 8));
	EXPECT_EQ(EFAULT, rps_set_mask(self->fd, 0, 0, p + page - 8, 16));
	EXPECT_EQ(EFAULT, rps_set_mask(self->fd, 0, 0, p + page - 8, 4096));
	/* The request itself. */
	EXPECT_EQ(EFAULT, rps_setsockopt(self->fd, NULL, sizeof(req)));
	EXPECT_EQ(EFAULT, rps_setsockopt(self->fd, p + page, sizeof(req)));
	/* What ends before the page is read, and fine. */
	EXPECT_EQ(0, rps_set_mask(self->fd, 0, 6, p + page - 8, 8));
	expect_req(_metadata, self->fd, 0, 6, &cpu0, 1);
	munmap(p, 2 * page);
}

TEST_F(sockopt, policy_and_flags)
{
	int cpu0 = 0;

	EXPECT_EQ(EINVAL, request(self->fd, REUSERPS_LEAST_CONNS + 1, 0,
				  &cpu0, 1));
	EXPECT_EQ(EINVAL, request(self->fd, ~0U, 0, &cpu0, 1));
	EXPECT_EQ(0, request(self->fd, REUSERPS_LEAST_CONNS, 0, &cpu0, 1));
	expect_req(_metadata, self->fd, REUSERPS_LEAST_CONNS, 0, &cpu0, 1);
}

TEST_F(sockopt, flags_must_be_zero)
{
	static const __u32 flags[] = { 1, 2, 1U << 31, ~0U };
	struct reuserps_req req;
	__u64 one = 1;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(flags); i++) {
		rps_req_init(&req, 0, 0, &one, sizeof(one));
		req.flags = flags[i];
		EXPECT_EQ(EINVAL, rps_setsockopt(self->fd, &req, sizeof(req)));
	}
	EXPECT_EQ(ENOENT, rps_get_err(self->fd));
}

/* Every refused request leaves the previous one, mask included. */
TEST_F(sockopt, refused_request_leaves_previous)
{
	int cpus[2] = { 0, self->nr - 1 }, far = self->nr;
	struct reuserps_req req;
	__u64 zero[2] = {}, one = 1;
	cpu_set_t *set;
	size_t size;

	ASSERT_EQ(0, request(self->fd, REUSERPS_ROUND_ROBIN, 3, cpus, 2));

	rps_req_init(&req, REUSERPS_FILL_FIRST, 9, &one, sizeof(one));
	req.flags = 1;
	EXPECT_EQ(EINVAL, rps_setsockopt(self->fd, &req, sizeof(req)));
	req.flags = 0;
	req.policy = 3;
	EXPECT_EQ(EINVAL, rps_setsockopt(self->fd, &req, sizeof(req)));
	req.policy = REUSERPS_FILL_FIRST;
	EXPECT_EQ(EINVAL, rps_setsockopt(self->fd, &req, 16));
	EXPECT_EQ(E2BIG, set_long(self->fd, &req, 40, 1, 38));
	req.max_pending = (__u32)INT_MAX + 1;
	EXPECT_EQ(EINVAL, rps_setsockopt(self->fd, &req, sizeof(req)));
	req.max_pending = 0;
	req.reserved = 1;
	EXPECT_EQ(EINVAL, rps_setsockopt(self->fd, &req, sizeof(req)));
	req.reserved = 0;
	EXPECT_EQ(E2BIG, set_long(self->fd, &req, 4097, 0, 0));
	EXPECT_EQ(EINVAL, rps_set_mask(self->fd, REUSERPS_FILL_FIRST, 9, zero,
				       sizeof(zero)));
	EXPECT_EQ(EINVAL, rps_set_mask(self->fd, REUSERPS_FILL_FIRST, 9, &one,
				       0));
	EXPECT_EQ(EINVAL, rps_set_mask(self->fd, REUSERPS_FILL_FIRST, 9, NULL,
				       8));
	EXPECT_EQ(EFAULT, rps_set_mask(self->fd, REUSERPS_FILL_FIRST, 9,
				       (void *)8, 8));
	set = rps_mask(&far, 1, far + 1, &size);
	ASSERT_NE(NULL, set);
	CPU_SET_S(0, size, set);
	EXPECT_EQ(EINVAL, rps_set_mask(self->fd, REUSERPS_FILL_FIRST, 9, set,
				       size));
	CPU_FREE(set);
	expect_req(_metadata, self->fd, REUSERPS_ROUND_ROBIN, 3, cpus, 2);
}

TEST_F(sockopt, replaced_before_bind)
{
	int cpus[2] = { 0, self->nr - 1 };

	ASSERT_EQ(0, request(self->fd, REUSERPS_ROUND_ROBIN, 3, cpus, 2));
	ASSERT_EQ(0, request(self->fd, REUSERPS_FILL_FIRST, 7, cpus, 1));
	expect_req(_metadata, self->fd, REUSERPS_FILL_FIRST, 7, cpus, 1);
}

/* getsockopt() optlen: at least VER0, at most 4096, a zero unknown tail. */
TEST_F(sockopt, get_optlen)
{
	static const socklen_t shorts[] = {
		0, 4, 40, REUSERPS_INFO_SIZE_VER0 - 1
	};
	static unsigned char buf[2 * REUSERPS_MAX_OPTLEN];
	struct reuserps_info *info = (void *)buf;
	int cpu0 = 0;
	socklen_t len;
	size_t i;

	ASSERT_EQ(0, request(self->fd, REUSERPS_FILL_FIRST, 7, &cpu0, 1));
	for (i = 0; i < ARRAY_SIZE(shorts); i++) {
		memset(buf, 0, sizeof(buf));
		len = shorts[i];
		EXPECT_EQ(-1, getsockopt(self->fd, SOL_SOCKET, SO_REUSERPS,
					 buf, &len));
		EXPECT_EQ(EINVAL, errno) TH_LOG("optlen %u", shorts[i]);
	}

	/* Too long, even all zero. */
	memset(buf, 0, sizeof(buf));
	len = REUSERPS_MAX_OPTLEN + 1;
	EXPECT_EQ(-1, getsockopt(self->fd, SOL_SOCKET, SO_REUSERPS, buf,
				 &len));
	EXPECT_EQ(E2BIG, errno);

	/* Exactly VER0. */
	memset(buf, 0, sizeof(buf));
	len = REUSERPS_INFO_SIZE_VER0;
	EXPECT_EQ(0, getsockopt(self->fd, SOL_SOCKET, SO_REUSERPS, buf,
				&len));
	EXPECT_EQ(REUSERPS_INFO_SIZE_VER0, len);
	EXPECT_EQ(REUSERPS_FILL_FIRST, info->policy);
	EXPECT_EQ(7, info->max_conns);
	EXPECT_EQ(sizeof(unsigned long), info->cpus_len);

	/* Longer, its tail zero: what this kernel has, the tail zeroed,
	 * nothing written past the caller's length.
	 */
	memset(buf, 0, sizeof(buf));
	memset(buf + 64, 0xee, sizeof(buf) - 64);
	len = 64;
	EXPECT_EQ(0, getsockopt(self->fd, SOL_SOCKET, SO_REUSERPS, buf,
				&len));
	EXPECT_EQ(sizeof(struct reuserps_info), len);
	EXPECT_EQ(7, info->max_conns);
	for (i = sizeof(struct reuserps_info); i < 64; i++)
		EXPECT_EQ(0, buf[i]) TH_LOG("byte %zu", i);
	for (i = 64; i < 128; i++)
		EXPECT_EQ(0xee, buf[i]) TH_LOG("byte %zu", i);

	memset(buf, 0, sizeof(buf));
	len = REUSERPS_MAX_OPTLEN;
	EXPECT_EQ(0, getsockopt(self->fd, SOL_SOCKET, SO_REUSERPS, buf,
				&len));
	EXPECT_EQ(sizeof(struct reuserps_info), len);

	/* Longer, with a field this kernel does not know set. */
	for (i = 0; i < 3; i++) {
		static const socklen_t lens[] = { 57, 64, REUSERPS_MAX_OPTLEN };

		memset(buf, 0, sizeof(buf));
		buf[lens[i] - 1] = 1;
		len = lens[i];
		EXPECT_EQ(-1, getsockopt(self->fd, SOL_SOCKET, SO_REUSERPS,
					 buf, &len));
		EXPECT_EQ(E2BIG, errno) TH_LOG("optlen %u", lens[i]);
	}
}

/*
 * The mask read back: its size alone with cpus 0, into a buffer of the
 * right size, into a larger one whose rest is zeroed (up to the length
 * given, no further), and ERANGE into a smaller one, with nothing written
 * but the size it needs (as SO_PEERGROUPS tells its length).
 */
TEST_F(sockopt, get_mask)
{
	size_t word = sizeof(unsigned long), need, i, len;
	int cpus[3] = { 0, self->nr - 1, self->nr / 2 };
	struct reuserps_info info, before;
	unsigned char buf[2048 + 64];
	socklen_t optlen;

	ASSERT_EQ(0, request(self->fd, REUSERPS_LEAST_CONNS, 11, cpus, 3));
	need = ((self->nr - 1) / (8 * word) + 1) * word;
	ASSERT_GE(sizeof(buf) - 64, need);

	/* cpus 0: the size, and the rest of the info. */
	ASSERT_EQ(0, rps_get(self->fd, &info, NULL, 0));
	EXPECT_EQ(need, info.cpus_len);
	EXPECT_EQ(REUSERPS_LEAST_CONNS, info.policy);
	EXPECT_EQ(11, info.max_conns);
	ASSERT_EQ(0, rps_get(self->fd, &info, NULL, 4096));
	EXPECT_EQ(need, info.cpus_len);

	/* Exactly the size, then larger, odd sizes included: the mask, the
	 * rest up to the length given zeroed, nothing written past it.
	 */
	for (len = need; len <= need + 2 * word + 3; len++) {
		memset(buf, 0xee, sizeof(buf));
		ASSERT_EQ(0, rps_get(self->fd, &info, buf, len));
		EXPECT_EQ(need, info.cpus_len);
		for (i = 0; i < need * 8; i++)
			EXPECT_EQ(i == 0 || i == (size_t)self->nr - 1 ||
				  i == (size_t)self->nr / 2,
				  !!CPU_ISSET_S(i, need, (cpu_set_t *)buf))
				TH_LOG("CPU %zu, buffer of %zu", i, len);
		for (i = need; i < len; i++)
			EXPECT_EQ(0, buf[i]) TH_LOG("byte %zu of %zu", i, len);
		for (i = len; i < len + 64; i++)
			EXPECT_EQ(0xee, buf[i]) TH_LOG("byte %zu of %zu", i,
						       len);
	}

	/* Too small: ERANGE; the buffer untouched, the info too but for
	 * cpus_len, now the size needed.
	 */
	for (len = 1; len < need; len += len < 8 ? 1 : word) {
		memset(buf, 0xee, sizeof(buf));
		memset(&info, 0x5a, sizeof(info));
		info.cpus = (__u64)(uintptr_t)buf;
		info.cpus_len = len;
		before = info;
		optlen = sizeof(info);
		EXPECT_EQ(-1, getsockopt(self->fd, SOL_SOCKET, SO_REUSERPS,
					 &info, &optlen));
		EXPECT_EQ(ERANGE, errno) TH_LOG("buffer of %zu", len);
		EXPECT_EQ(need, info.cpus_len);
		before.cpus_len = info.cpus_len;
		EXPECT_EQ(0, memcmp(&before, &info, sizeof(info)));
		for (i = 0; i < sizeof(buf); i++)
			if (buf[i] != 0xee)
				break;
		EXPECT_EQ(sizeof(buf), i) TH_LOG("buffer of %zu", len);
	}
}

/* A buffer that cannot be written: EFAULT, the request unchanged. */
TEST_F(sockopt, get_mask_bad_pointer)
{
	struct reuserps_info info;
	int cpu0 = 0;
	socklen_t len = sizeof(info);

	ASSERT_EQ(0, request(self->fd, REUSERPS_ROUND_ROBIN, 1, &cpu0, 1));
	EXPECT_EQ(EFAULT, rps_get(self->fd, &info, (void *)8, 8));
	EXPECT_EQ(-1, getsockopt(self->fd, SOL_SOCKET, SO_REUSERPS, NULL,
				 &len));
	EXPECT_EQ(EFAULT, errno);
	expect_req(_metadata, self->fd, REUSERPS_ROUND_ROBIN, 1, &cpu0, 1);
}

TEST_F(sockopt, refused_once_bound)
{
	struct sockaddr_storage ss;
	socklen_t alen = loopback(variant->family, &ss);
	int cpu0 = 0;

	ASSERT_EQ(0, bind(self->fd, (struct sockaddr *)&ss, alen));
	EXPECT_EQ(EINVAL, request(self->fd, 0, 0, &cpu0, 1));
	EXPECT_EQ(ENOENT, rps_get_err(self->fd));
}

/* SO_REUSEPORT, bind() to @ss, listen(): 0 or the first errno. */
static int reuseport_listen(int fd, struct sockaddr_storage *ss,
			    socklen_t alen)
{
	int one = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)ss, alen) || listen(fd, 8))
		return errno;
	return 0;
}

/* SO_REUSERPS steers within a reuseport group: alone it is refused. */
TEST_F(sockopt, needs_reuseport)
{
	struct sockaddr_storage ss;
	socklen_t alen = loopback(variant->family, &ss);
	int cpu0 = 0;

	ASSERT_EQ(0, request(self->fd, 0, 0, &cpu0, 1));
	EXPECT_EQ(-1, bind(self->fd, (struct sockaddr *)&ss, alen));
	EXPECT_EQ(EINVAL, errno);
	/* listen() binds a port itself, and fails the same way. */
	EXPECT_EQ(-1, listen(self->fd, 8));
	EXPECT_EQ(EINVAL, errno);
	/* Nothing was left half-done: with SO_REUSEPORT it binds. */
	EXPECT_EQ(0, reuseport_listen(self->fd, &ss, alen));
}

/* A listener that joined its group without SO_REUSERPS cannot ask later. */
TEST_F(sockopt, listening_without_request)
{
	struct sockaddr_storage ss;
	socklen_t alen = loopback(variant->family, &ss);
	int cpu0 = 0;

	ASSERT_EQ(0, reuseport_listen(self->fd, &ss, alen));
	EXPECT_EQ(EINVAL, request(self->fd, 0, 0, &cpu0, 1));
	EXPECT_EQ(ENOENT, rps_get_err(self->fd));
}

/*
 * A listening member may change its CPUs and cap; another policy is its
 * group's to refuse, EADDRINUSE, alone or beside another member.
 */
TEST_F(sockopt, listening_member_changes)
{
	struct sockaddr_storage ss;
	socklen_t alen = loopback(variant->family, &ss);
	int cpus[2] = { 0, self->nr - 1 }, fd2, one = 1;

	ASSERT_EQ(0, request(self->fd, REUSERPS_FILL_FIRST, 2, cpus, 1));
	ASSERT_EQ(0, reuseport_listen(self->fd, &ss, alen));
	EXPECT_EQ(0, request(self->fd, REUSERPS_FILL_FIRST, 5, cpus, 2));
	expect_req(_metadata, self->fd, REUSERPS_FILL_FIRST, 5, cpus, 2);
	EXPECT_EQ(EADDRINUSE, request(self->fd, REUSERPS_ROUND_ROBIN, 9, cpus,
				      1));
	EXPECT_EQ(EADDRINUSE, request(self->fd, REUSERPS_LEAST_CONNS, 9, cpus,
				      1));
	EXPECT_EQ(EINVAL, rps_set_mask(self->fd, REUSERPS_FILL_FIRST, 9, NULL,
				       0));
	expect_req(_metadata, self->fd, REUSERPS_FILL_FIRST, 5, cpus, 2);

	/* A second member: the same for either. */
	ASSERT_EQ(0, getsockname(self->fd, (struct sockaddr *)&ss, &alen));
	fd2 = socket(variant->family, SOCK_STREAM, 0);
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, setsockopt(fd2, SOL_SOCKET, SO_REUSEPORT, &one,
				sizeof(one)));
	ASSERT_EQ(0, request(fd2, REUSERPS_FILL_FIRST, 0, cpus, 1));
	ASSERT_EQ(0, bind(fd2, (struct sockaddr *)&ss, alen));
	ASSERT_EQ(0, listen(fd2, 8));
	EXPECT_EQ(EADDRINUSE, request(fd2, REUSERPS_ROUND_ROBIN, 0, cpus, 1));
	EXPECT_EQ(EADDRINUSE, request(self->fd, REUSERPS_LEAST_CONNS, 0, cpus,
				      1));
	EXPECT_EQ(0, request(fd2, REUSERPS_FILL_FIRST, 1, cpus, 2));
	expect_req(_metadata, fd2, REUSERPS_FILL_FIRST, 1, cpus, 2);
	expect_req(_metadata, self->fd, REUSERPS_FILL_FIRST, 5, cpus, 2);
	close(fd2);
}

/* A VER1 request, max_pending and all, round trips through getsockopt(). */
TEST_F(sockopt, max_pending_round_trip)
{
	int cpus[] = { 0, self->nr - 1 };
	struct reuserps_info info;
	struct reuserps_req req;
	__u64 cpu0 = 1;

	EXPECT_EQ(REUSERPS_REQ_SIZE_VER1, sizeof(struct reuserps_req));
	EXPECT_EQ(REUSERPS_INFO_SIZE_VER1, sizeof(struct reuserps_info));
	ASSERT_EQ(0, request_pending(self->fd, REUSERPS_FILL_FIRST, 5, 7, cpus,
				     2));
	ASSERT_EQ(0, rps_get(self->fd, &info, NULL, 0));
	EXPECT_EQ(7, info.max_pending);
	EXPECT_EQ(0, info.pending);
	EXPECT_EQ(0, info.reserved);
	expect_req(_metadata, self->fd, REUSERPS_FILL_FIRST, 5, cpus, 2);

	/* Replaced before bind(), as the other fields are. */
	ASSERT_EQ(0, request_pending(self->fd, REUSERPS_LEAST_CONNS, 0, 1,
				     cpus, 1));
	EXPECT_EQ(1, info_of(_metadata, self->fd).max_pending);
	expect_req(_metadata, self->fd, REUSERPS_LEAST_CONNS, 0, cpus, 1);

	/* A longer struct, its tail zero, carries it too. */
	rps_req_init(&req, REUSERPS_ROUND_ROBIN, 2, &cpu0, sizeof(cpu0));
	req.max_pending = 9;
	EXPECT_EQ(0, set_long(self->fd, &req, 64, 0, 0));
	EXPECT_EQ(9, info_of(_metadata, self->fd).max_pending);
	expect_req(_metadata, self->fd, REUSERPS_ROUND_ROBIN, 2, cpus, 1);
}

/*
 * 0 (no limit) to INT_MAX; above is EINVAL, and so is a reserved field
 * not zero, leaving the previous request whole, or none.
 */
TEST_F(sockopt, max_pending_bounds)
{
	static const __u32 good[] = { 0, 1, INT_MAX };
	static const __u32 bad[] = { (__u32)INT_MAX + 1, UINT_MAX };
	static const __u32 reserved[] = { 1, 1U << 31, ~0U };
	int cpus[2] = { 0, self->nr - 1 }, fd;
	struct reuserps_req req;
	__u64 cpu0 = 1;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(good); i++) {
		EXPECT_EQ(0, request_pending(self->fd, REUSERPS_ROUND_ROBIN, 3,
					     good[i], cpus, 2))
			TH_LOG("max_pending %u", good[i]);
		EXPECT_EQ(good[i], info_of(_metadata, self->fd).max_pending);
		expect_req(_metadata, self->fd, REUSERPS_ROUND_ROBIN, 3, cpus,
			   2);
	}

	ASSERT_EQ(0, request_pending(self->fd, REUSERPS_ROUND_ROBIN, 3, 5,
				     cpus, 2));
	for (i = 0; i < ARRAY_SIZE(bad); i++)
		EXPECT_EQ(EINVAL, request_pending(self->fd, REUSERPS_FILL_FIRST,
						  9, bad[i], cpus, 1))
			TH_LOG("max_pending %u", bad[i]);
	for (i = 0; i < ARRAY_SIZE(reserved); i++) {
		rps_req_init(&req, REUSERPS_FILL_FIRST, 9, &cpu0,
			     sizeof(cpu0));
		req.max_pending = 6;
		req.reserved = reserved[i];
		EXPECT_EQ(EINVAL, rps_setsockopt(self->fd, &req,
						 REUSERPS_REQ_SIZE_VER1))
			TH_LOG("reserved %#x", reserved[i]);
		/* Longer, its unknown tail zero: the same. */
		EXPECT_EQ(EINVAL, set_long(self->fd, &req, 64, 0, 0));
	}
	EXPECT_EQ(5, info_of(_metadata, self->fd).max_pending);
	expect_req(_metadata, self->fd, REUSERPS_ROUND_ROBIN, 3, cpus, 2);

	/* A socket without a request is left without one. */
	fd = socket(variant->family, SOCK_STREAM, 0);
	ASSERT_LE(0, fd);
	EXPECT_EQ(EINVAL, request_pending(fd, REUSERPS_ROUND_ROBIN, 0,
					  UINT_MAX, cpus, 1));
	rps_req_init(&req, REUSERPS_ROUND_ROBIN, 0, &cpu0, sizeof(cpu0));
	req.reserved = 1;
	EXPECT_EQ(EINVAL, rps_setsockopt(fd, &req, REUSERPS_REQ_SIZE_VER1));
	EXPECT_EQ(ENOENT, rps_get_err(fd));
	close(fd);
}

/*
 * A VER0-sized request has no max_pending: it resets the limit, before
 * bind() and on a listening member, without reading what lies past its
 * 24 bytes.  A listening member changes max_pending like its other
 * fields, and a refused change leaves it.
 */
TEST_F(sockopt, max_pending_ver0_resets)
{
	struct sockaddr_storage ss;
	socklen_t alen = loopback(variant->family, &ss);
	struct reuserps_req req;
	int cpu0 = 0;
	__u64 mask = 1;

	ASSERT_EQ(0, request_pending(self->fd, REUSERPS_FILL_FIRST, 2, 5,
				     &cpu0, 1));
	EXPECT_EQ(5, info_of(_metadata, self->fd).max_pending);
	rps_req_init(&req, REUSERPS_FILL_FIRST, 2, &mask, sizeof(mask));
	req.max_pending = 8;	/* past optlen: not read */
	req.reserved = 1;
	EXPECT_EQ(0, rps_setsockopt(self->fd, &req, REUSERPS_REQ_SIZE_VER0));
	EXPECT_EQ(0, info_of(_metadata, self->fd).max_pending);
	expect_req(_metadata, self->fd, REUSERPS_FILL_FIRST, 2, &cpu0, 1);

	/* The same on a listening member. */
	ASSERT_EQ(0, request_pending(self->fd, REUSERPS_FILL_FIRST, 2, 3,
				     &cpu0, 1));
	ASSERT_EQ(0, reuseport_listen(self->fd, &ss, alen));
	EXPECT_EQ(3, info_of(_metadata, self->fd).max_pending);
	EXPECT_EQ(0, request_pending(self->fd, REUSERPS_FILL_FIRST, 4, 6,
				     &cpu0, 1));
	EXPECT_EQ(6, info_of(_metadata, self->fd).max_pending);
	expect_req(_metadata, self->fd, REUSERPS_FILL_FIRST, 4, &cpu0, 1);
	EXPECT_EQ(EINVAL, request_pending(self->fd, REUSERPS_FILL_FIRST, 4,
					  (__u32)INT_MAX + 1, &cpu0, 1));
	rps_req_init(&req, REUSERPS_FILL_FIRST, 1, &mask, sizeof(mask));
	req.max_pending = 1;
	req.reserved = 1;
	EXPECT_EQ(EINVAL, rps_setsockopt(self->fd, &req,
					 REUSERPS_REQ_SIZE_VER1));
	EXPECT_EQ(6, info_of(_metadata, self->fd).max_pending);
	expect_req(_metadata, self->fd, REUSERPS_FILL_FIRST, 4, &cpu0, 1);
	req.reserved = 0;
	EXPECT_EQ(0, rps_setsockopt(self->fd, &req, REUSERPS_REQ_SIZE_VER0));
	EXPECT_EQ(0, info_of(_metadata, self->fd).max_pending);
	expect_req(_metadata, self->fd, REUSERPS_FILL_FIRST, 1, &cpu0, 1);
}

/*
 * getsockopt() of the VER0 size still answers, 48 bytes and no more; the
 * VER1 size adds max_pending and pending, the listener's accept queue: a
 * lone listener stalled at max_pending 1 still takes all three
 * connections (nobody else has room), which wait until accepted.
 */
TEST_F(sockopt, get_ver1_pending)
{
	struct sockaddr_storage ss;
	socklen_t alen = loopback(variant->family, &ss), len;
	unsigned char buf[REUSERPS_INFO_SIZE_VER1 + 64];
	struct reuserps_info *info = (void *)buf;
	int cpu0 = 0, c[3], a, k;
	size_t i;

	ASSERT_EQ(0, request_pending(self->fd, REUSERPS_FILL_FIRST, 7, 1,
				     &cpu0, 1));
	ASSERT_EQ(0, reuseport_listen(self->fd, &ss, alen));
	ASSERT_EQ(0, getsockname(self->fd, (struct sockaddr *)&ss, &alen));

	/* VER0: the fields it has, nothing written past them. */
	memset(buf, 0xee, sizeof(buf));
	memset(buf, 0, REUSERPS_INFO_SIZE_VER0);
	len = REUSERPS_INFO_SIZE_VER0;
	EXPECT_EQ(0, getsockopt(self->fd, SOL_SOCKET, SO_REUSERPS, buf, &len));
	EXPECT_EQ(REUSERPS_INFO_SIZE_VER0, len);
	EXPECT_EQ(REUSERPS_FILL_FIRST, info->policy);
	EXPECT_EQ(7, info->max_conns);
	EXPECT_EQ(sizeof(unsigned long), info->cpus_len);
	for (i = REUSERPS_INFO_SIZE_VER0; i < sizeof(buf); i++)
		EXPECT_EQ(0xee, buf[i]) TH_LOG("byte %zu", i);

	/* Between the two: max_pending, not pending. */
	memset(buf, 0xee, sizeof(buf));
	memset(buf, 0, 52);
	len = 52;
	EXPECT_EQ(0, getsockopt(self->fd, SOL_SOCKET, SO_REUSERPS, buf, &len));
	EXPECT_EQ(52, len);
	EXPECT_EQ(1, info->max_pending);
	for (i = 52; i < sizeof(buf); i++)
		EXPECT_EQ(0xee, buf[i]) TH_LOG("byte %zu", i);

	for (k = 0; k < 3; k++) {
		c[k] = socket(variant->family, SOCK_STREAM, 0);
		ASSERT_LE(0, c[k]);
		ASSERT_EQ(0, connect(c[k], (struct sockaddr *)&ss, alen));
	}
	EXPECT_EQ(3, wait_pending(_metadata, self->fd, 3));

	/* VER1: max_pending and the queue. */
	memset(buf, 0xee, sizeof(buf));
	memset(buf, 0, REUSERPS_INFO_SIZE_VER1);
	len = REUSERPS_INFO_SIZE_VER1;
	EXPECT_EQ(0, getsockopt(self->fd, SOL_SOCKET, SO_REUSERPS, buf, &len));
	EXPECT_EQ(REUSERPS_INFO_SIZE_VER1, len);
	EXPECT_EQ(1, info->max_pending);
	EXPECT_EQ(3, info->pending);
	EXPECT_EQ(3, info->active_conns);
	EXPECT_EQ(7, info->max_conns);
	for (i = REUSERPS_INFO_SIZE_VER1; i < sizeof(buf); i++)
		EXPECT_EQ(0xee, buf[i]) TH_LOG("byte %zu", i);

	/* accept() takes one off the queue; the connection still counts. */
	a = accept(self->fd, NULL, NULL);
	ASSERT_LE(0, a);
	EXPECT_EQ(2, info_of(_metadata, self->fd).pending);
	EXPECT_EQ(3, info_of(_metadata, self->fd).active_conns);
	close(a);
	for (k = 0; k < 2; k++) {
		a = accept(self->fd, NULL, NULL);
		ASSERT_LE(0, a);
		close(a);
	}
	EXPECT_EQ(0, info_of(_metadata, self->fd).pending);
	EXPECT_EQ(3, info_of(_metadata, self->fd).total_conns);
	for (k = 0; k < 3; k++)
		close(c[k]);
}

/*
 * A socket of @family with SO_REUSEPORT and, unless @policy is PLAIN,
 * SO_REUSERPS for CPU @cpu; bound to @ss (port 0: picks it, written back)
 * if @ss; IPV6_V6ONLY if @v6only; on device @dev if not NULL.  0 or the
 * errno of the step that failed; the socket in *@fdp.
 */
static int member(int family, int policy, int cpu, bool v6only,
		  const char *dev, struct sockaddr_storage *ss,
		  socklen_t *alen, int *fdp)
{
	int fd, one = 1, err = 0;

	*fdp = -1;
	fd = socket(family, SOCK_STREAM, 0);
	if (fd < 0)
		return errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    (v6only && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				  sizeof(one))) ||
	    (dev && setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev,
			       strlen(dev))))
		err = errno;
	if (!err && policy != PLAIN)
		err = request(fd, policy, 0, &cpu, 1);
	if (!err && ss && bind(fd, (struct sockaddr *)ss, *alen))
		err = errno;
	if (!err && ss && !port_of(ss) &&
	    getsockname(fd, (struct sockaddr *)ss, alen))
		err = errno;
	if (err) {
		close(fd);
		return err;
	}
	*fdp = fd;
	return 0;
}

static bool listening(int fd)
{
	int on = 0;
	socklen_t len = sizeof(on);

	getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len);
	return on;
}

static const int modes[] = { PLAIN, REUSERPS_ROUND_ROBIN, REUSERPS_FILL_FIRST,
			     REUSERPS_LEAST_CONNS };
#define NMODES	((int)ARRAY_SIZE(modes))

/*
 * bind() beside a bound or listening socket of the same group (same
 * address, port, device) whose mode or policy differs: EADDRINUSE, in
 * either order; the same mode binds.
 */
TEST_F(sockopt, mismatch_at_bind)
{
	int a, b, state, fa, fb, fc;
	struct sockaddr_storage ss;
	socklen_t alen;

	for (state = 0; state < 2; state++) {
		for (a = 0; a < NMODES; a++) {
			for (b = 0; b < NMODES; b++) {
				alen = loopback(variant->family, &ss);
				ASSERT_EQ(0, member(variant->family, modes[a],
						    0, false, NULL, &ss, &alen,
						    &fa));
				if (state)
					ASSERT_EQ(0, listen(fa, 8));
				EXPECT_EQ(a == b ? 0 : EADDRINUSE,
					  member(variant->family, modes[b], 0,
						 false, NULL, &ss, &alen,
						 &fb))
					TH_LOG("%s mode %d beside mode %d",
					       state ? "listening" : "bound",
					       modes[b], modes[a]);
				/* The group's own mode still joins. */
				EXPECT_EQ(0, member(variant->family, modes[a],
						    0, false, NULL, &ss, &alen,
						    &fc));
				if (fc >= 0)
					EXPECT_EQ(0, listen(fc, 8));
				close(fc);
				if (fb >= 0)
					close(fb);
				close(fa);
			}
		}
	}
}

/*
 * listen() joining a group whose mode or policy differs: EADDRINUSE.  A
 * socket bound on another device (lo, or none) than the listener is in
 * another group and binds; moved to the listener's device before
 * listen(), it would join the listener's group, and is refused then.
 */
TEST_F(sockopt, mismatch_at_listen)
{
	struct sockaddr_storage ss;
	int a, b, order, fa, fb;
	socklen_t alen;

	for (order = 0; order < 2; order++) {
		for (a = 0; a < NMODES; a++) {
			for (b = 0; b < NMODES; b++) {
				if (a == b)
					continue;
				alen = loopback(variant->family, &ss);
				ASSERT_EQ(0, member(variant->family, modes[a],
						    0, false,
						    order ? "lo" : NULL, &ss,
						    &alen, &fa));
				ASSERT_EQ(0, listen(fa, 8));
				ASSERT_EQ(0, member(variant->family, modes[b],
						    0, false,
						    order ? NULL : "lo", &ss,
						    &alen, &fb));
				ASSERT_EQ(0, setsockopt(fb, SOL_SOCKET,
							SO_BINDTODEVICE,
							order ? "lo" : "",
							order ? 2 : 0));
				EXPECT_EQ(-1, listen(fb, 8));
				EXPECT_EQ(EADDRINUSE, errno)
					TH_LOG("mode %d joining mode %d",
					       modes[b], modes[a]);
				EXPECT_FALSE(listening(fb));
				EXPECT_TRUE(listening(fa));
				close(fb);
				close(fa);
			}
		}
	}
}

/*
 * Two groups on one port: @r with SO_REUSERPS (@policy) on @r->addr, @p
 * with @pmode (PLAIN or a policy) on @p->addr, each of two listeners, the
 * first for CPU 0, the second for CPU 1.  @r_first: which group binds,
 * and picks the port, first.  All bind and listen.  Each group behaves as
 * its mode says: from CPU 0 and CPU 1, a SO_REUSERPS group's connections
 * reach the listener of that CPU and are counted there; a plain group's
 * reach one of its listeners.  @p's connections go to @p_to (NULL: its
 * own address), with @p's port.
 */
static void two_groups(struct __test_metadata *_metadata, struct group *r,
		       int rfamily, bool rv6only, __u32 policy,
		       struct group *p, int pfamily, bool pv6only, int pmode,
		       const struct sockaddr_storage *p_to, bool r_first)
{
	int i, k, cpu, got, fd;

	for (k = 0; k < 2; k++) {
		bool is_r = (k == 0) == r_first;
		struct group *g = is_r ? r : p;

		if (k == 1)
			set_port(&g->addr, port_of(is_r ? &p->addr : &r->addr));
		for (i = 0; i < 2; i++) {
			ASSERT_EQ(0, member(is_r ? rfamily : pfamily,
					    is_r ? (int)policy : pmode, i,
					    is_r ? rv6only : pv6only, NULL,
					    &g->addr, &g->alen, &fd))
				TH_LOG("%s group, member %d",
				       is_r ? "first" : "second", i);
			add_fd(_metadata, g, fd);
		}
	}
	ASSERT_EQ(port_of(&r->addr), port_of(&p->addr));
	if (p_to) {
		k = port_of(&p->addr);
		p->addr = *p_to;
		set_port(&p->addr, k);
	}

	for (cpu = 0; cpu < 2; cpu++) {
		pin(_metadata, cpu);
		for (k = 0; k < 4; k++) {
			EXPECT_EQ(cpu, connect_one(_metadata, r, rfamily));
			got = connect_one(_metadata, p, pfamily);
			if (pmode == PLAIN) {
				EXPECT_TRUE(got == 0 || got == 1)
					TH_LOG("got %d", got);
			} else {
				EXPECT_EQ(cpu, got);
			}
		}
	}
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(4, info_of(_metadata, r->fd[i]).total_conns);
		/* A plain group's listener has no SO_REUSERPS to read. */
		if (pmode == PLAIN)
			EXPECT_EQ(ENOENT, rps_get_err(p->fd[i]));
		if (pmode != PLAIN)
			EXPECT_EQ(4, info_of(_metadata, p->fd[i]).total_conns);
	}
	group_close(r);
	group_close(p);
}

/*
 * A plain group on the loopback address and a SO_REUSERPS group on a
 * second address (127.0.0.2, fd00::2), of one port, coexist, whichever
 * binds first.
 */
TEST_F(sockopt, groups_on_other_addresses)
{
	struct group r, p;
	int order;

	if (self->ncpus < 2)
		SKIP(return, "needs 2 CPUs");
	for (order = 0; order < 2; order++) {
		group_init(&p, variant->family);
		group_init(&r, variant->family);
		r.alen = other_address(variant->family, &r.addr);
		two_groups(_metadata, &r, variant->family, false,
			   REUSERPS_ROUND_ROBIN, &p, variant->family, false,
			   PLAIN, NULL, order);
	}
}

/*
 * A SO_REUSERPS group on the loopback address beside a plain wildcard
 * group (0.0.0.0, or [::] v6only) of the same port, whichever binds
 * first: connections to the loopback address are steered, those to the
 * second address reach the wildcard's listeners.
 */
TEST_F(sockopt, group_beside_wildcard)
{
	struct sockaddr_storage to;
	struct group r, p;
	int order;

	if (self->ncpus < 2)
		SKIP(return, "needs 2 CPUs");
	other_address(variant->family, &to);
	for (order = 0; order < 2; order++) {
		group_init(&r, variant->family);
		group_init(&p, variant->family);
		if (variant->family == AF_INET)
			((struct sockaddr_in *)&p.addr)->sin_addr.s_addr =
				htonl(INADDR_ANY);
		else
			((struct sockaddr_in6 *)&p.addr)->sin6_addr =
				in6addr_any;
		two_groups(_metadata, &r, variant->family, false,
			   REUSERPS_FILL_FIRST, &p, variant->family,
			   variant->family == AF_INET6,
			   PLAIN, &to, order);
	}
}

TEST_F(sockopt, not_tcp)
{
	int cpu0 = 0, fd;

	fd = socket(variant->family, SOCK_DGRAM, 0);
	ASSERT_LE(0, fd);
	EXPECT_EQ(EOPNOTSUPP, request(fd, 0, 0, &cpu0, 1));
	close(fd);

	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ASSERT_LE(0, fd);
	EXPECT_EQ(EOPNOTSUPP, request(fd, 0, 0, &cpu0, 1));
	close(fd);
}

/* Groups of both families on one port, without a variant. */
FIXTURE(groups)
{
};

FIXTURE_SETUP(groups)
{
	if (!reuserps_supported())
		SKIP(return, "no SO_REUSERPS in this kernel (ENOPROTOOPT)");
	ASSERT_EQ(0, rps_netns());
	if (get_nprocs() < 2)
		SKIP(return, "needs 2 CPUs");
}

FIXTURE_TEARDOWN(groups)
{
}

/*
 * A v6only [::1] group beside a 127.0.0.1 group of the same port with
 * another policy, or none, whichever binds first: each keeps its own.
 */
TEST_F(groups, v6only_beside_ipv4)
{
	static const int pmodes[] = { PLAIN, REUSERPS_FILL_FIRST,
				      REUSERPS_LEAST_CONNS };
	struct group r, p;
	int order, m;

	for (m = 0; m < 3; m++) {
		for (order = 0; order < 2; order++) {
			group_init(&r, AF_INET6);
			group_init(&p, AF_INET);
			two_groups(_metadata, &r, AF_INET6, true,
				   REUSERPS_ROUND_ROBIN, &p, AF_INET, false,
				   pmodes[m], NULL, order);
		}
	}
}

int main(int argc, char **argv)
{
	return reuserps_harness_main(argc, argv);
}
