/* SPDX-License-Identifier: GPL-2.0 */
/*
 * SO_REUSERPS policy core, implemented in Rust (net/core/reuserps.rs).
 *
 * Every function here is defined in Rust with #[export], which checks at
 * compile time that its signature is the one declared below (this header
 * is included by rust/bindings/bindings_helper.h).
 *
 * struct reuserps_listener holds one listener's cap and connection counts,
 * in a reference-counted allocation (the Rust kernel crate's Arc, whose
 * refcount_t saturates).  The listening socket, every match table naming
 * it and every connection counted on it each hold a reference; the last
 * reuserps_listener_put() frees it, in any context.  Counting never
 * sleeps, locks or allocates.
 *
 * struct reuserps_table, the match table of a reuseport group, never
 * changes once built.  reuserps_table_build() builds one from the group's
 * members in process context (it may sleep: kvmalloc-backed, charged to
 * the memory cgroup), outside the group's lock; the caller publishes it
 * with RCU under the lock, after reuserps_table_carry(), and frees the old
 * one with reuserps_table_free() after a grace period.
 * reuserps_table_pick(), the lookup's fast path, and reuserps_table_select()
 * run under rcu_read_lock() in any context: no lock, no allocation;
 * reuserps_table_syn() tells whether a listener has room for a SYN and,
 * if it has, records that it took the request (its CPU's round-robin turn
 * and the full listeners passed over), in the same context.  Each CPU
 * writes only its own part of a table.
 *
 * struct reuserps_bell, one per group, tells the CPUs when a listener of
 * the group gets room again, so that they can skip those they found full
 * until then: reuserps_listener_release() rings the bell its listener was
 * given with reuserps_listener_set_bell(), and must run under
 * rcu_read_lock(); the group puts its bell in the RCU callback that frees
 * it.  reuserps_listener_new() may sleep.
 */
#ifndef _NET_REUSERPS_H
#define _NET_REUSERPS_H

#include <linux/types.h>
#include <uapi/linux/reuserps.h>

struct reuserps_bell;
struct reuserps_listener;
struct reuserps_table;
struct sock;

u32 reuserps_max_mask_words(u32 nr_cpu_ids);
int reuserps_check_req(u32 policy, u32 flags, const u64 *cpus,
		       u32 mask_words, u32 nr_cpu_ids);

struct reuserps_listener *reuserps_listener_new(u32 max_conns,
						const u32 *backlog);
struct reuserps_listener *reuserps_listener_get(struct reuserps_listener *l);
void reuserps_listener_put(struct reuserps_listener *l);
bool reuserps_listener_admit(struct reuserps_listener *l);
void reuserps_listener_hand(struct reuserps_listener *l);
bool reuserps_listener_release(struct reuserps_listener *l);
u32 reuserps_listener_registration(struct reuserps_listener *l);
void reuserps_listener_configure(struct reuserps_listener *l, u32 max_conns,
				 u32 max_pending, bool gone);
void reuserps_listener_set_bell(struct reuserps_listener *l,
				struct reuserps_bell *bell);
void reuserps_listener_info(struct reuserps_listener *l,
			    const struct reuserps_table *t, u32 policy,
			    struct reuserps_info *info);
struct reuserps_bell *reuserps_bell_new(void);
void reuserps_bell_put(struct reuserps_bell *b);

/**
 * struct reuserps_member - a listener as input to reuserps_table_build()
 * @sk: the listening socket, which selection returns; the caller holds a
 *	reference during the build
 * @listener: its state, which @sk's request holds
 * @cpus: the CPUs it is registered for
 * @mask_words: the number of 64-bit words at @cpus
 * @seq: its place in registration order; members are passed in that order
 * @reg: its registration when the caller found it a member, from
 *	reuserps_listener_registration(): the table names it for that one
 */
struct reuserps_member {
	struct sock			*sk;
	struct reuserps_listener	*listener;
	const u64			*cpus;
	u32				mask_words;
	u32				seq;
	u32				reg;
};

int reuserps_table_build(u32 policy, const struct reuserps_member *members,
			 u32 n, struct reuserps_bell *bell,
			 const struct reuserps_table **new);
void reuserps_table_carry(const struct reuserps_table *new,
			  const struct reuserps_table *old);
void reuserps_table_free(const struct reuserps_table *t);
struct sock *reuserps_table_pick(const struct reuserps_table *t, u32 cpu);
struct sock *reuserps_table_select(const struct reuserps_table *t, u32 cpu,
				   u32 hash, bool own);
bool reuserps_table_syn(const struct reuserps_table *t, u32 cpu,
			const struct sock *sk, struct reuserps_listener *l);
void reuserps_table_fold(const struct reuserps_table *t,
			 struct reuserps_listener *l);

#endif /* _NET_REUSERPS_H */
