// SPDX-License-Identifier: GPL-2.0
/*
 * KUnit tests of SO_REUSERPS: the Rust core's own tests, which 6.12 can
 * only register from C, and the core's C-facing API used as the socket
 * code uses it.
 */
#include <kunit/test.h>
#include <linux/cpumask.h>
#include <net/reuserps.h>
#include <uapi/linux/reuserps.h>

#define REUSERPS_RUST_CASE(name)					\
static void name(struct kunit *test)					\
{									\
	int line = reuserps_kunit_##name();				\
									\
	KUNIT_EXPECT_EQ_MSG(test, line, 0,				\
			    "check failed at net/core/reuserps/kunit.rs:%d", \
			    line);					\
}

REUSERPS_RUST_CASE(masks)
REUSERPS_RUST_CASE(round_robin)
REUSERPS_RUST_CASE(fill_first)
REUSERPS_RUST_CASE(fallback)
REUSERPS_RUST_CASE(many)

/* Bad requests are refused with -EINVAL, whatever the machine's CPUs. */
static void api_check_req(struct kunit *test)
{
	u32 words = reuserps_max_mask_words(nr_cpu_ids);
	u64 *mask;

	KUNIT_ASSERT_GE(test, words, 16);
	mask = kunit_kcalloc(test, words + 1, sizeof(*mask), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, mask);

	mask[0] = 1;
	KUNIT_EXPECT_EQ(test, reuserps_check_req(REUSERPS_ROUND_ROBIN, 0,
						 mask, 1, nr_cpu_ids), 0);
	KUNIT_EXPECT_EQ(test, reuserps_check_req(REUSERPS_FILL_FIRST, 0,
						 mask, words, nr_cpu_ids), 0);
	KUNIT_EXPECT_EQ(test, reuserps_check_req(2, 0, mask, 1, nr_cpu_ids),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, reuserps_check_req(0, 1, mask, 1, nr_cpu_ids),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, reuserps_check_req(0, 0, mask, 0, nr_cpu_ids),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, reuserps_check_req(0, 0, mask, words + 1,
						 nr_cpu_ids), -EINVAL);
	mask[0] = 0;
	KUNIT_EXPECT_EQ(test, reuserps_check_req(0, 0, mask, 1, nr_cpu_ids),
			-EINVAL);
	/* The first CPU id past the last possible one. */
	mask[nr_cpu_ids / 64] = 1ULL << (nr_cpu_ids % 64);
	KUNIT_EXPECT_EQ(test, reuserps_check_req(0, 0, mask, words,
						 nr_cpu_ids), -EINVAL);
}

/* Build, select, count and tear down through the C API. */
static void api_lifecycle(struct kunit *test)
{
	const struct reuserps_table *t1 = NULL, *t2 = NULL, *t3 = NULL;
	struct reuserps_listener *a, *b;
	struct reuserps_info info;
	u64 mask = BIT_ULL(0);
	int x = 0, y = 0;
	void *got;
	u32 pick;

	a = reuserps_listener_new(1);
	KUNIT_ASSERT_NOT_NULL(test, a);
	b = reuserps_listener_new(0);
	KUNIT_ASSERT_NOT_NULL(test, b);

	KUNIT_ASSERT_EQ(test, reuserps_table_add(NULL, REUSERPS_FILL_FIRST, &x,
						 a, &mask, 1, true, &t1), 0);
	KUNIT_ASSERT_EQ(test, reuserps_table_add(t1, REUSERPS_FILL_FIRST, &y,
						 b, &mask, 1, true, &t2), 0);
	KUNIT_EXPECT_EQ(test, reuserps_table_add(t2, REUSERPS_ROUND_ROBIN, &y,
						 b, &mask, 1, true, &t3),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, reuserps_table_policy(t2), REUSERPS_FILL_FIRST);

	got = reuserps_table_select(t2, 0, 0, &pick);
	KUNIT_EXPECT_PTR_EQ(test, got, (void *)&x);
	KUNIT_EXPECT_EQ(test, pick, REUSERPS_PICK_CPU);
	KUNIT_EXPECT_TRUE(test, reuserps_listener_admit(a));
	got = reuserps_table_select(t2, 0, 0, &pick);
	KUNIT_EXPECT_PTR_EQ(test, got, (void *)&y);
	KUNIT_EXPECT_EQ(test, pick, REUSERPS_PICK_CPU);

	reuserps_listener_info(a, REUSERPS_FILL_FIRST, &info);
	KUNIT_EXPECT_EQ(test, info.policy, REUSERPS_FILL_FIRST);
	KUNIT_EXPECT_EQ(test, info.max_conns, 1);
	KUNIT_EXPECT_EQ(test, info.active_conns, 1);
	KUNIT_EXPECT_EQ(test, info.total_conns, 1);
	KUNIT_EXPECT_EQ(test, info.full_skips, 1);

	/* A connection outlives its listener's place in the table. */
	KUNIT_ASSERT_EQ(test, reuserps_table_remove(t2, &x, false, &t3), 0);
	KUNIT_ASSERT_NOT_NULL(test, t3);
	reuserps_table_free(t1);
	reuserps_table_free(t2);
	KUNIT_EXPECT_TRUE(test, reuserps_listener_release(a));
	KUNIT_EXPECT_FALSE(test, reuserps_listener_release(a));

	KUNIT_ASSERT_EQ(test, reuserps_table_remove(t3, &y, true, &t1), 0);
	KUNIT_EXPECT_NULL(test, t1);
	reuserps_table_free(t3);
	reuserps_listener_put(a);
	reuserps_listener_put(b);
}

static struct kunit_case reuserps_cases[] = {
	KUNIT_CASE(masks),
	KUNIT_CASE(round_robin),
	KUNIT_CASE(fill_first),
	KUNIT_CASE(fallback),
	KUNIT_CASE(many),
	KUNIT_CASE(api_check_req),
	KUNIT_CASE(api_lifecycle),
	{}
};

static struct kunit_suite reuserps_suite = {
	.name = "reuserps",
	.test_cases = reuserps_cases,
};

kunit_test_suite(reuserps_suite);

MODULE_DESCRIPTION("KUnit tests for SO_REUSERPS");
MODULE_LICENSE("GPL");
