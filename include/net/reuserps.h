/* SPDX-License-Identifier: GPL-2.0 */
/*
 * SO_REUSERPS policy core, implemented in Rust (net/core/reuserps.rs).
 *
 * struct reuserps_listener holds one listener's cap and connection counts.
 * The listening socket, every match table naming it and every connection
 * counted on it each hold a reference; the last reuserps_listener_put()
 * frees it, in any context.  Counting never sleeps, locks or allocates.
 *
 * struct reuserps_table, the match table of a reuseport group, never
 * changes once built.  reuserps_table_add() and reuserps_table_remove()
 * build a new one from the old, under the group's lock (reuseport_lock);
 * the caller publishes it with RCU and frees the old one with
 * reuserps_table_free() after a grace period.  reuserps_table_select()
 * runs under rcu_read_lock() in any context: no lock, no allocation.
 */
#ifndef _NET_REUSERPS_H
#define _NET_REUSERPS_H

#include <linux/types.h>

struct reuserps_info;
struct reuserps_listener;
struct reuserps_table;

/* What reuserps_table_select() found. */
enum reuserps_pick {
	REUSERPS_PICK_CPU,	/* a listener registered for the CPU */
	REUSERPS_PICK_OTHER,	/* none of those had room: another member */
	REUSERPS_PICK_FULL,	/* every member is at its cap */
};

u32 reuserps_max_mask_words(u32 nr_cpu_ids);
int reuserps_check_req(u32 policy, u32 flags, const u64 *cpus,
		       u32 mask_words, u32 nr_cpu_ids);

struct reuserps_listener *reuserps_listener_new(u32 max_conns);
struct reuserps_listener *reuserps_listener_get(struct reuserps_listener *l);
void reuserps_listener_put(struct reuserps_listener *l);
bool reuserps_listener_admit(struct reuserps_listener *l);
bool reuserps_listener_withdraw(struct reuserps_listener *l);
bool reuserps_listener_release(struct reuserps_listener *l);
void reuserps_listener_configure(struct reuserps_listener *l, u32 max_conns,
				 bool gone);
void reuserps_listener_info(struct reuserps_listener *l, u32 policy,
			    struct reuserps_info *info);

int reuserps_table_add(const struct reuserps_table *old, u32 policy,
		       const void *handle, struct reuserps_listener *l,
		       const u64 *cpus, u32 mask_words, bool may_sleep,
		       const struct reuserps_table **new);
int reuserps_table_remove(const struct reuserps_table *old,
			  const void *handle, bool may_sleep,
			  const struct reuserps_table **new);
void reuserps_table_free(const struct reuserps_table *t);
u32 reuserps_table_policy(const struct reuserps_table *t);
void *reuserps_table_select(const struct reuserps_table *t, u32 cpu,
			    u32 hash, u32 *pick);

#if IS_ENABLED(CONFIG_REUSERPS_KUNIT_TEST)
/* The Rust core's own tests: 0, or the line of the failed check. */
int reuserps_kunit_masks(void);
int reuserps_kunit_round_robin(void);
int reuserps_kunit_fill_first(void);
int reuserps_kunit_fallback(void);
int reuserps_kunit_many(void);
#endif

#endif /* _NET_REUSERPS_H */
