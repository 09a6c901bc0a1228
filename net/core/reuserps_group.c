// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS in a reuseport group: registration and selection.
 *
 * A listener registers in its group's match table when it enters the
 * group's listening section and leaves it when it leaves that section
 * (close, shutdown, migration), under reuseport_lock, which is why tables
 * are built with GFP_ATOMIC, as reuseport_alloc() allocates the group.
 * The table is published with RCU in reuse->reuserps; reuseport's lookup
 * reads it under rcu_read_lock() and asks the Rust core for the listener
 * of the current CPU.
 *
 * The first listener fixes the group's mode: with SO_REUSERPS and its
 * policy, or without.  bind() refuses a socket whose mode or policy
 * differs from a socket it would share the port with (-EADDRINUSE).
 * A member that sets SO_REUSERPS again gets a new table in which it
 * keeps its place: reuserps_group_update().
 */

#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/tcp.h>
#include <net/inet_sock.h>
#include <net/reuserps.h>
#include <net/sock.h>
#include <net/sock_reuseport.h>
#include <net/tcp_states.h>

#include "sock_reuserps.h"

/**
 * struct reuserps_group - a group's match table, as published with RCU
 * @rcu: frees the table once no reader can see it
 * @table: the table (Rust), never changed once published
 */
struct reuserps_group {
	struct rcu_head			rcu;
	const struct reuserps_table	*table;
};

static void reuserps_group_free_rcu(struct rcu_head *head)
{
	struct reuserps_group *g = container_of(head, struct reuserps_group,
						rcu);

	reuserps_table_free(g->table);
	kfree(g);
}

static struct reuserps_group *reuserps_group_get(struct sock_reuseport *reuse)
{
	return rcu_dereference_protected(reuse->reuserps,
					 lockdep_is_held(&reuseport_lock));
}

/* A member's request changes only under reuseport_lock (and its socket
 * lock): reuserps_group_update().  Groups of other protocols have none.
 */
static struct reuserps_sock *reuserps_member_req(const struct sock *sk)
{
	if (!sk_is_tcp(sk))
		return NULL;
	return rcu_dereference_protected(tcp_sk(sk)->reuserps,
					 lockdep_is_held(&reuseport_lock));
}

/* Publishes @table (NULL: none) in place of the group's current one. */
static void reuserps_group_set(struct sock_reuseport *reuse,
			       struct reuserps_group *g)
{
	struct reuserps_group *old = reuserps_group_get(reuse);

	rcu_assign_pointer(reuse->reuserps, g);
	if (old)
		call_rcu(&old->rcu, reuserps_group_free_rcu);
}

/**
 * reuserps_group_add - register @sk in the match table of @reuse
 * @reuse: the group @sk is about to join the listening section of
 * @sk: the socket
 *
 * Called under reuseport_lock before @sk is added, so that a failure
 * leaves the group as it was.  A socket without SO_REUSERPS may join only
 * a group without a table, and the other way round.
 *
 * Return: 0, -EADDRINUSE if @sk's mode or policy is not the group's, or
 * -ENOMEM.
 */
int reuserps_group_add(struct sock_reuseport *reuse, struct sock *sk)
{
	struct reuserps_group *old = reuserps_group_get(reuse);
	struct reuserps_sock *rs = reuserps_member_req(sk);
	const struct reuserps_table *table;
	struct reuserps_group *g;
	int err;

	if (!rs)
		return old ? -EADDRINUSE : 0;
	if (!old && reuse->num_socks)
		return -EADDRINUSE;

	g = kmalloc_obj(*g, GFP_ATOMIC);
	if (!g)
		return -ENOMEM;
	err = reuserps_table_add(old ? old->table : NULL, rs->policy, sk,
				 rs->listener, rs->cpus, rs->mask_words,
				 &table);
	if (err) {
		kfree(g);
		/* The only bad input left is a policy not the group's. */
		return err == -EINVAL ? -EADDRINUSE : err;
	}
	g->table = table;
	reuserps_listener_configure(rs->listener, rs->max_conns, false);
	reuserps_group_set(reuse, g);
	return 0;
}

/**
 * reuserps_group_del - unregister @sk from the match table of @reuse
 * @reuse: the group @sk leaves the listening section of
 * @sk: the socket
 *
 * Called under reuseport_lock; cannot fail.  Without memory for the new
 * table, the old one stays and selection skips @sk from now on.
 */
void reuserps_group_del(struct sock_reuseport *reuse, struct sock *sk)
{
	struct reuserps_group *old = reuserps_group_get(reuse);
	struct reuserps_sock *rs = reuserps_member_req(sk);
	const struct reuserps_table *table;
	struct reuserps_group *g = NULL;

	if (!old || !rs)
		return;

	/* Readers of the current table stop picking @sk at once. */
	reuserps_listener_configure(rs->listener, rs->max_conns, true);
	if (reuserps_table_remove(old->table, sk, &table))
		return;
	if (table) {
		g = kmalloc_obj(*g, GFP_ATOMIC);
		if (!g) {
			reuserps_table_free(table);
			return;
		}
		g->table = table;
	}
	reuserps_group_set(reuse, g);
}

/**
 * reuserps_group_update - change the request of a listening member
 * @sk: a listening socket with SO_REUSERPS, locked
 * @rs: its new request, holding a reference to the same listener
 *
 * The member keeps its place in registration order, its counts and its
 * accept queue; from the new table on, it is picked for the CPUs of
 * @rs, under @rs's cap.  Connections it holds above a lowered cap stay.
 *
 * Return: 0 with @rs in tcp_sk(sk)->reuserps (the caller frees the old one
 * after a grace period), -EINVAL if @rs's policy is not the group's or
 * @sk is in no group, or -ENOMEM; on error nothing changed.
 */
int reuserps_group_update(struct sock *sk, struct reuserps_sock *rs)
{
	const struct reuserps_table *table;
	struct reuserps_group *g, *old;
	struct sock_reuseport *reuse;
	int err = -EINVAL;

	g = kmalloc_obj(*g);
	if (!g)
		return -ENOMEM;

	spin_lock_bh(&reuseport_lock);
	reuse = rcu_dereference_protected(sk->sk_reuseport_cb,
					  lockdep_is_held(&reuseport_lock));
	old = reuse ? reuserps_group_get(reuse) : NULL;
	if (!old)
		goto unlock;
	/* -EINVAL for a policy not the group's, as for a bad request. */
	err = reuserps_table_add(old->table, rs->policy, sk, rs->listener,
				 rs->cpus, rs->mask_words, &table);
	if (err)
		goto unlock;
	g->table = table;
	reuserps_listener_configure(rs->listener, rs->max_conns, false);
	/* Admission may read the request at any time: publish it whole. */
	rcu_assign_pointer(tcp_sk(sk)->reuserps, rs);
	reuserps_group_set(reuse, g);
	g = NULL;
unlock:
	spin_unlock_bh(&reuseport_lock);
	kfree(g);
	return err;
}

/* The group is going away: no reader can see it any more. */
void reuserps_group_free(struct sock_reuseport *reuse)
{
	struct reuserps_group *g;

	g = rcu_dereference_protected(reuse->reuserps, 1);
	if (g) {
		reuserps_table_free(g->table);
		kfree(g);
	}
}

/* The listener for a connection on @cpu; NULL if the group has no table. */
static struct sock *reuserps_select_cpu(struct sock_reuseport *reuse, int cpu,
					u32 hash)
{
	struct reuserps_group *g = rcu_dereference(reuse->reuserps);

	if (!g)
		return NULL;
	return reuserps_table_select(g->table, cpu, hash);
}

/**
 * reuserps_select - the listener for a SYN processed on this CPU
 * @reuse: the group, under rcu_read_lock()
 * @hash: the flow hash reuseport would use
 *
 * Return: a listener of the group, or NULL if the group has no table.
 */
struct sock *reuserps_select(struct sock_reuseport *reuse, u32 hash)
{
	return reuserps_select_cpu(reuse, raw_smp_processor_id(), hash);
}

/**
 * reuserps_migrate - the listener a connection migrates to
 * @reuse: the group of the listener it leaves, under rcu_read_lock()
 * @msk: the connection: a child in an accept queue, or a request
 * @hash: its flow hash
 *
 * Chosen as for a SYN, by the connection's CPU rather than by the CPU
 * of whoever closes the listener: a child's sk_incoming_cpu.  A request
 * has none, but it moves on its SYN+ACK timer, pinned to the SYN's CPU,
 * or on its ACK, processed where the flow's packets are.
 *
 * Return: a listener of the group, or NULL if the group has no table.
 */
struct sock *reuserps_migrate(struct sock_reuseport *reuse,
			      const struct sock *msk, u32 hash)
{
	int cpu = -1;

	if (sk_fullsock(msk))
		cpu = READ_ONCE(msk->sk_incoming_cpu);
	if (cpu < 0)
		cpu = raw_smp_processor_id();
	return reuserps_select_cpu(reuse, cpu, hash);
}

/* Whether @sk may share a port with @sk2 as far as SO_REUSERPS goes. */
bool sk_reuserps_compatible(const struct sock *sk, const struct sock *sk2)
{
	const struct reuserps_sock *a, *b;
	bool ok;

	/* Only listeners and sockets bound to become one have a mode: not
	 * connections, which share the port too: time-wait, and any socket
	 * with a peer, even one reset or failed (TCP_CLOSE) that stays
	 * bound; listen() needs a disconnect, which forgets the peer.
	 */
	if (!((1 << sk2->sk_state) & (TCPF_LISTEN | TCPF_CLOSE)) ||
	    READ_ONCE(inet_sk(sk2)->inet_dport))
		return true;
	/* @sk2's request may be replaced meanwhile: RCU keeps it. */
	rcu_read_lock();
	a = rcu_dereference(tcp_sk(sk)->reuserps);
	b = rcu_dereference(tcp_sk(sk2)->reuserps);
	if (!a || !b)
		ok = !a && !b;
	else
		ok = a->policy == b->policy;
	rcu_read_unlock();
	return ok;
}
