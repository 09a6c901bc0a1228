/* SPDX-License-Identifier: GPL-2.0 */
/*
 * SO_REUSERPS in TCP: a listener's request, and the count a connection
 * holds on its listener (net/ipv4/tcp_reuserps.c).
 *
 * Every hook tests the reuserps_needed key, then a field of the socket
 * the path reads anyway, before it calls out: a socket that does not use
 * SO_REUSERPS pays a patched-out branch while no socket in the system
 * uses it, and a plain test after.
 */
#ifndef _NET_TCP_REUSERPS_H
#define _NET_TCP_REUSERPS_H

#include <linux/rcupdate.h>
#include <linux/refcount.h>
#include <linux/sockptr.h>
#include <linux/tcp.h>
#include <linux/types.h>
#include <net/reuserps.h>
#include <net/sock_reuseport.h>

struct sk_buff;

/**
 * struct reuserps_sock - what SO_REUSERPS asked for, owned by the socket
 * @rcu: drops a replaced request once lockless readers are done with it
 * @ref: the socket's reference, and a table build's while it reads @cpus
 * @listener: the listener's cap and connection counts (one reference)
 * @policy: REUSERPS_ROUND_ROBIN, REUSERPS_FILL_FIRST or REUSERPS_LEAST_CONNS
 * @max_conns: cap on active connections, 0 for none
 * @max_pending: unaccepted connections at which selection passes the
 *	listener over while another has room, 0 for no limit
 * @seq: the listener's place in its group's registration order, set
 *	under reuseport_lock when it joins and kept by a new request
 * @mask_words: number of words in @cpus
 * @cpus: CPU mask, checked against nr_cpu_ids
 *
 * Replaced only under the socket lock, and for a listening socket also
 * under reuseport_lock; a new request keeps the listener of the one it
 * replaces.  Read without either lock by admission (softirq) and by
 * bind() conflict checks, which is why a replaced request is freed after
 * an RCU grace period.  Each holds a reference on reuserps_needed.  Put
 * by the socket's destructor.
 */
struct reuserps_sock {
	struct rcu_head			rcu;
	refcount_t			ref;
	struct reuserps_listener	*listener;
	u32				policy;
	u32				max_conns;
	u32				max_pending;
	u32				seq;
	u32				mask_words;
	u64				cpus[] __counted_by(mask_words);
};

#if IS_ENABLED(CONFIG_REUSERPS)
void reuserps_sock_put(struct reuserps_sock *rs);

/* Another reference to a request its holder keeps alive. */
static inline struct reuserps_sock *reuserps_sock_get(struct reuserps_sock *rs)
{
	refcount_inc(&rs->ref);
	return rs;
}

int tcp_setsockopt_reuserps(struct sock *sk, sockptr_t optval,
			    unsigned int optlen);
int tcp_getsockopt_reuserps(struct sock *sk, sockptr_t optval,
			    sockptr_t optlen, int len);
bool __tcp_reuserps_syn(const struct sock *sk);
int __tcp_reuserps_admit(const struct sock *sk,
			 struct reuserps_listener **lp, bool tfo);
void __tcp_reuserps_settle(struct sock *child, bool own_req,
			   struct reuserps_listener *l);
int __tcp_reuserps_migrate(const struct sock *nsk,
			   struct reuserps_listener **lp);
void __tcp_reuserps_move(struct sock *child, struct reuserps_listener *l);
void __tcp_reuserps_end(struct sock *sk);
void __tcp_reuserps_destruct(struct sock *sk);
size_t tcp_reuserps_diag_size(const struct sock *sk);
int tcp_reuserps_diag_put(struct sock *sk, struct sk_buff *skb);

/* Whether @sk asked for SO_REUSERPS; the caller knows it is TCP.  A bit
 * on a line that the SYN path reads anyway, set once under the socket
 * lock, after the request is published, and never cleared but in a
 * child; read locklessly, as save_syn is.
 */
static inline bool tcp_reuserps_requested(const struct sock *sk)
{
	/* Lockless: the bit only ever goes from 0 to 1 on a live socket. */
	return data_race(!!tcp_sk(sk)->reuserps_req);
}

/* Whether @sk asked for SO_REUSERPS: a check bind() inlines. */
static inline bool sk_reuserps_requested(const struct sock *sk)
{
	return reuserps_active() && sk_is_tcp(sk) &&
	       tcp_reuserps_requested(sk);
}

/* listen(): the group's match table, built in process context. */
static inline void tcp_reuserps_listen(struct sock *sk)
{
	if (sk_reuserps_requested(sk))
		reuserps_group_sync(sk);
}

/* A SYN for @sk: false if @sk is at its cap (the SYN is dropped); else
 * the round-robin turn of this CPU moves past @sk.  A lookup alone does
 * not move it: the SYN is answered.
 */
static inline bool tcp_reuserps_syn(const struct sock *sk)
{
	if (reuserps_active() && tcp_reuserps_requested(sk))
		return __tcp_reuserps_syn(sk);
	return true;
}

/* Takes a slot before a child is created for @sk (*@lp: NULL for none);
 * @tfo: for a Fast Open SYN, which a refusal turns into a normal
 * handshake, not a drop.
 */
static inline int tcp_reuserps_admit(const struct sock *sk,
				     struct reuserps_listener **lp, bool tfo)
{
	*lp = NULL;
	if (reuserps_active() && tcp_reuserps_requested(sk))
		return __tcp_reuserps_admit(sk, lp, tfo);
	return 0;
}

/* Gives the slot to @child if it owns the connection, else gives it back. */
static inline void tcp_reuserps_settle(struct sock *child, bool own_req,
				       struct reuserps_listener *l)
{
	if (l)
		__tcp_reuserps_settle(child, own_req, l);
}

/* Takes a slot on @nsk for @child, migrated to it, if @child counts. */
static inline int tcp_reuserps_migrate(const struct sock *child,
				       const struct sock *nsk,
				       struct reuserps_listener **lp)
{
	*lp = NULL;
	if (reuserps_active() && sk_is_tcp(child) &&
	    READ_ONCE(tcp_sk(child)->reuserps_conn))
		return __tcp_reuserps_migrate(nsk, lp);
	return 0;
}

/* The migrated child's count moves to the slot taken on its new listener. */
static inline void tcp_reuserps_move(struct sock *child,
				     struct reuserps_listener *l)
{
	if (l)
		__tcp_reuserps_move(child, l);
}

/* The connection reached TCP_CLOSE: it stops counting. */
static inline void tcp_reuserps_end(struct sock *sk)
{
	if (reuserps_active() && READ_ONCE(tcp_sk(sk)->reuserps_conn))
		__tcp_reuserps_end(sk);
}

/* A child owns neither its listener's request nor a count yet. */
static inline void tcp_reuserps_clone(struct tcp_sock *newtp)
{
	newtp->reuserps_req = 0;
	RCU_INIT_POINTER(newtp->reuserps, NULL);
	newtp->reuserps_conn = NULL;
}

/* The socket is freed, after a grace period for a listener: its request
 * goes.  A count ended at TCP_CLOSE already.
 */
static inline void tcp_reuserps_destruct(struct sock *sk)
{
	if (reuserps_active() && (tcp_reuserps_requested(sk) ||
				  READ_ONCE(tcp_sk(sk)->reuserps_conn)))
		__tcp_reuserps_destruct(sk);
}
#else
static inline int tcp_setsockopt_reuserps(struct sock *sk, sockptr_t optval,
					  unsigned int optlen)
{
	return -ENOPROTOOPT;
}

static inline int tcp_getsockopt_reuserps(struct sock *sk, sockptr_t optval,
					  sockptr_t optlen, int len)
{
	return -ENOPROTOOPT;
}

static inline bool sk_reuserps_requested(const struct sock *sk)
{
	return false;
}

static inline void tcp_reuserps_listen(struct sock *sk) {}

static inline bool tcp_reuserps_syn(const struct sock *sk)
{
	return true;
}

static inline int tcp_reuserps_admit(const struct sock *sk,
				     struct reuserps_listener **lp, bool tfo)
{
	*lp = NULL;
	return 0;
}

static inline void tcp_reuserps_settle(struct sock *child, bool own_req,
				       struct reuserps_listener *l) {}

static inline int tcp_reuserps_migrate(const struct sock *child,
				       const struct sock *nsk,
				       struct reuserps_listener **lp)
{
	*lp = NULL;
	return 0;
}

static inline void tcp_reuserps_move(struct sock *child,
				     struct reuserps_listener *l) {}
static inline void tcp_reuserps_end(struct sock *sk) {}
static inline void tcp_reuserps_clone(struct tcp_sock *newtp) {}
static inline void tcp_reuserps_destruct(struct sock *sk) {}

static inline size_t tcp_reuserps_diag_size(const struct sock *sk)
{
	return 0;
}

static inline int tcp_reuserps_diag_put(struct sock *sk, struct sk_buff *skb)
{
	return 0;
}
#endif

#endif /* _NET_TCP_REUSERPS_H */
