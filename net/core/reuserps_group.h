/* SPDX-License-Identifier: GPL-2.0 */
/*
 * SO_REUSERPS: a reuseport group's state, and the lookup's fast path,
 * which reuseport_select_sock() inlines (net/core/reuserps_group.c has the
 * rest).
 */
#ifndef _NET_CORE_REUSERPS_GROUP_H
#define _NET_CORE_REUSERPS_GROUP_H

#include <linux/types.h>
#include <net/sock_reuseport.h>

#if IS_ENABLED(CONFIG_REUSERPS)
#include <linux/mutex.h>
#include <linux/rcupdate.h>
#include <linux/smp.h>
#include <net/reuserps.h>

/**
 * struct reuserps_tab - a match table as published with RCU
 * @rcu: frees the table once no reader can see it
 * @table: the table (Rust), never changed once published
 */
struct reuserps_tab {
	struct rcu_head			rcu;
	const struct reuserps_table	*table;
};

/**
 * struct reuserps_group - the SO_REUSERPS state of a reuseport group
 * @table: the current match table, which the lookup reads; NULL until the
 *	first one is built
 * @tab: @table with what frees it, under reuseport_lock; both change
 *	together, in reuserps_group_publish()
 * @build_lock: builders of the group's tables take turns
 * @policy: the group's policy, fixed by its first listener
 * @gen: bumped by every change of the members, under reuseport_lock
 * @built: the @gen that @tab reflects, under reuseport_lock
 * @seq: the last place handed out in registration order
 * @bell: rung by members that get room again, read by the CPUs that
 *	remember which members are full; put with the group
 */
struct reuserps_group {
	const struct reuserps_table __rcu *table;
	struct reuserps_tab		*tab;
	struct mutex			build_lock;	/* see above */
	u32				policy;
	u32				gen;
	u32				built;
	u32				seq;
	struct reuserps_bell		*bell;
};

/* The table of @reuse, under rcu_read_lock(); NULL if it has none yet. */
static inline const struct reuserps_table *
reuserps_table_of(struct sock_reuseport *reuse)
{
	struct reuserps_group *g = rcu_dereference(reuse->reuserps);

	return g ? rcu_dereference(g->table) : NULL;
}

/**
 * reuserps_select - the listener for a SYN processed on this CPU
 * @reuse: the group, under rcu_read_lock()
 * @hash: the flow hash reuseport would use
 *
 * Inline in reuseport_select_sock(), so that the common case (the first
 * listener to try on this CPU has room) is one call into the Rust core,
 * reuserps_table_pick(); reuserps_table_select() decides otherwise,
 * trying that listener again first.  Until a socket asks for SO_REUSERPS,
 * a patched-out branch (reuserps_active()); then a test of the group's
 * SO_REUSERPS pointer.  For groups without a program.
 *
 * Return: a listener of the group; NULL if no socket asked for
 * SO_REUSERPS yet, if the group has no table, or if no member is live.
 */
static inline struct sock *reuserps_select(struct sock_reuseport *reuse,
					   u32 hash)
{
	const struct reuserps_table *t;
	struct sock *sk;
	u32 cpu;

	if (!reuserps_active())
		return NULL;
	t = reuserps_table_of(reuse);
	if (!t)
		return NULL;
	cpu = raw_smp_processor_id();
	sk = reuserps_table_pick(t, cpu);
	if (likely(sk))
		return sk;
	/* The CPU may note what it found if nothing else runs its part of
	 * the table meanwhile: with BHs off.
	 */
	return reuserps_table_select(t, cpu, hash, in_softirq());
}
#else
static inline struct sock *reuserps_select(struct sock_reuseport *reuse,
					   u32 hash)
{
	return NULL;
}
#endif

#endif /* _NET_CORE_REUSERPS_GROUP_H */
