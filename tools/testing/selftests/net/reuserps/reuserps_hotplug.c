// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS across CPU hotplug: a mask may name an offline CPU, and
 * steering keeps working while a CPU goes offline and comes back; on a
 * machine of two NUMA nodes, the nearest fallback (the CPU's node before
 * the other's) holds before, during and after a CPU of the other node is
 * offline.  This changes system-wide state: each test SKIPs where CPUs
 * cannot be taken offline (no /sys/devices/system/cpu/cpuN/online, or no
 * permission), and the parent process brings the CPU back online should
 * the test die.  On IPv4 and IPv6, each test in a network namespace of
 * its own.
 */
#include "kselftest_harness.h"

#include "reuserps_lib.h"

FIXTURE(hotplug)
{
	int ncpus;
	int offline_cpu;	/* a CPU a test took offline, or -1 */
	struct group g;
};

FIXTURE_VARIANT(hotplug)
{
	int family;
};

FIXTURE_VARIANT_ADD(hotplug, ipv4)
{
	.family = AF_INET,
};

FIXTURE_VARIANT_ADD(hotplug, ipv6)
{
	.family = AF_INET6,
};

FIXTURE_SETUP(hotplug)
{
	self->offline_cpu = -1;
	group_init(&self->g, variant->family);
	if (!reuserps_supported())
		SKIP(return, "no SO_REUSERPS in this kernel (ENOPROTOOPT)");
	ASSERT_EQ(0, rps_netns());
	self->ncpus = get_nprocs();
	if (self->ncpus < 2)
		SKIP(return, "needs 2 CPUs or more");
	if (self->ncpus > MAX_LISTENERS / 2)
		self->ncpus = MAX_LISTENERS / 2;
	if (!can_offline(self->ncpus - 1))
		SKIP(return, "cannot take CPU %d offline", self->ncpus - 1);
}

/* In the parent (self is shared): the CPU is back even if the test died. */
FIXTURE_TEARDOWN_PARENT(hotplug)
{
	if (self->offline_cpu >= 0)
		set_online(self->offline_cpu, 1);
}

/* A mask may name an offline CPU; offline and back online keeps working. */
TEST_F(hotplug, cpu_offline_online)
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

/*
 * The nearest fallback (nearest_round()), again after a CPU of the other
 * node went offline and came back, which rebuilds the tables (with one
 * cache per node, as here, a table not rebuilt would choose the same:
 * the host and KUnit tests tell caches from nodes).
 */
TEST_F(hotplug, nearest_fallback_across_offline)
{
	int node_of[MAX_LISTENERS], a, s, cpu, off = -1, near_cap = 8;
	const char *why;

	why = nearest_cpus(node_of, self->ncpus, &a, &s);
	if (why)
		SKIP(return, "%s", why);
	/* a and s share a node; every other node's CPU gets a listener. */
	add_capped(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		   1, &a, 1);
	add_capped(_metadata, &self->g, variant->family, REUSERPS_ROUND_ROBIN,
		   near_cap, &s, 1);
	for (cpu = 0; cpu < self->ncpus; cpu++) {
		if (node_of[cpu] >= 0 && node_of[cpu] != node_of[a]) {
			add_listener(_metadata, &self->g, variant->family,
				     REUSERPS_ROUND_ROBIN, &cpu, 1);
			if (can_offline(cpu))
				off = cpu;
		}
	}
	if (off < 0)
		SKIP(return, "no CPU of another node can go offline");
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

int main(int argc, char **argv)
{
	return reuserps_harness_main(argc, argv);
}
