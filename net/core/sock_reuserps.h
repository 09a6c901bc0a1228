/* SPDX-License-Identifier: GPL-2.0 */
/* SO_REUSERPS: what net/core's SO_REUSERPS files share. */
#ifndef _NET_CORE_SOCK_REUSERPS_H
#define _NET_CORE_SOCK_REUSERPS_H

#include <linux/rcupdate.h>
#include <linux/types.h>
#include <net/reuserps.h>

/**
 * struct reuserps_sock - what SO_REUSERPS asked for, owned by the socket
 * @rcu: frees a replaced request once lockless readers are done with it
 * @listener: the listener's cap and connection counts (one reference)
 * @policy: REUSERPS_ROUND_ROBIN, REUSERPS_FILL_FIRST or REUSERPS_LEAST_CONNS
 * @max_conns: cap on active connections, 0 for none
 * @seq: the listener's place in its group's registration order, set
 *	under reuseport_lock when it joins and kept by a new request
 * @mask_words: number of words in @cpus
 * @cpus: CPU mask, checked against nr_cpu_ids
 *
 * Replaced only under the socket lock, and for a listening socket also
 * under reuseport_lock; a new request keeps the listener of the one it
 * replaces.  Read without either lock by admission (softirq) and by
 * bind() conflict checks, which is why a replaced request is freed after
 * an RCU grace period.  Freed with the socket.
 */
struct reuserps_sock {
	struct rcu_head			rcu;
	struct reuserps_listener	*listener;
	u32				policy;
	u32				max_conns;
	u32				seq;
	u32				mask_words;
	u64				cpus[] __counted_by(mask_words);
};

/* What getsockopt(SO_REUSERPS) reports for @rs, and others see through
 * sock_diag: the listener's counts, with the cap asked for (in force from
 * listen() on).
 */
static inline void reuserps_sock_info(const struct reuserps_sock *rs,
				      struct reuserps_info *info)
{
	reuserps_listener_info(rs->listener, rs->policy, info);
	info->max_conns = rs->max_conns;
}

#endif /* _NET_CORE_SOCK_REUSERPS_H */
