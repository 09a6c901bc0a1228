// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS connection accounting: a listener's cap bounds the
 * connections that exist, counted from the completed handshake to the
 * end of the connection, whatever the path.
 *
 * A SYN only asks whether its listener has room; a request socket holds
 * nothing, so SYNs that never complete (a flood of spoofed ones, SYN
 * cookies) cannot fill a cap.  The slot is taken right before the child
 * socket is created (tcp_check_req(), tcp_get_cookie_sock(),
 * tcp_fastopen_create_child()) and handed to the child only once it owns
 * the connection (own_req); otherwise it is given back at once.
 *
 * The count is a reference to the listener's state (struct
 * reuserps_listener) held in the child's tcp_sock, reuserps_conn.  It
 * ends when the connection reaches TCP_CLOSE, and moves with a child that
 * inet_csk_listen_stop() migrates to another listener.  A connection may
 * outlive its listener: the reference keeps the state alive.  Taking,
 * moving and ending run without locks: the counters are atomics in the
 * Rust core, and each count is given back exactly once (xchg).
 */

#include <linux/atomic.h>
#include <linux/export.h>
#include <linux/inet_diag.h>
#include <linux/rcupdate.h>
#include <net/inet_sock.h>
#include <net/netlink.h>
#include <net/reuserps.h>
#include <net/sock.h>
#include <net/sock_reuseport.h>
#include <net/tcp.h>

#include "sock_reuserps.h"

#define CREATE_TRACE_POINTS
#include <trace/events/reuserps.h>

/* Fires reuserps_full if it is enabled; under rcu_read_lock(). */
static void reuserps_trace_full(const struct sock *sk,
				const struct reuserps_sock *rs, bool ack)
{
	struct reuserps_info info;

	if (!trace_reuserps_full_enabled())
		return;
	reuserps_sock_info(rs, &info);
	trace_reuserps_full(sk, info.max_conns, info.active_conns, ack);
}

/* Whether a SYN (or a SYN cookie's ACK) for @sk finds it full. */
bool __reuserps_conn_full(const struct sock *sk)
{
	const struct reuserps_sock *rs;
	bool full = false;

	rcu_read_lock();
	rs = rcu_dereference(tcp_sk(sk)->reuserps);
	if (rs)
		full = !reuserps_listener_room(rs->listener);
	if (full)
		reuserps_trace_full(sk, rs, false);
	rcu_read_unlock();
	return full;
}

/* Takes a slot on @sk's listener state, if it has one (*@lp: NULL if not);
 * @ack: for a connection being created, which a refusal drops.
 */
static int reuserps_conn_take(const struct sock *sk,
			      struct reuserps_listener **lp, bool ack)
{
	const struct reuserps_sock *rs;
	int err = 0;

	*lp = NULL;
	rcu_read_lock();
	rs = rcu_dereference(tcp_sk(sk)->reuserps);
	if (rs) {
		if (reuserps_listener_admit(rs->listener)) {
			*lp = reuserps_listener_get(rs->listener);
		} else {
			err = -ENOBUFS;
			if (ack)
				reuserps_trace_full(sk, rs, true);
		}
	}
	rcu_read_unlock();
	return err;
}

/**
 * __reuserps_conn_admit - take a slot for a connection about to be created
 * @sk: the listener the connection's child is created for
 * @lp: where to store the reference that carries the slot
 *
 * The listener is not locked: its request may be replaced at any time,
 * and the old one is freed after a grace period.
 *
 * Return: 0 (*@lp is NULL for a listener without SO_REUSERPS), or
 * -ENOBUFS if the listener is at its cap, counted as a listen overflow:
 * the caller drops the ACK as it would for a full accept queue.
 */
int __reuserps_conn_admit(const struct sock *sk,
			  struct reuserps_listener **lp)
{
	int err = reuserps_conn_take(sk, lp, true);

	if (err) {
		__NET_INC_STATS(sock_net(sk), LINUX_MIB_LISTENOVERFLOWS);
		tcp_listendrop(sk);
	}
	return err;
}

/* Ends the connection counted by @l and drops the reference. */
static void reuserps_conn_end(struct reuserps_listener *l)
{
	bool ok;

	if (!l)
		return;
	ok = reuserps_listener_release(l);
	/* Counted once, ended once: anything else is a bug here. */
	DEBUG_NET_WARN_ON_ONCE(!ok);
	reuserps_listener_put(l);
}

/**
 * __reuserps_conn_settle - hand a slot to the child that owns its connection
 * @child: what syn_recv_sock() returned (NULL: no child)
 * @own_req: whether @child won the request (it is in the ehash)
 * @l: the slot taken by __reuserps_conn_admit()
 *
 * A child that lost the request to another ACK, or that MPTCP already
 * closed, dies without a count; so does a missing child.
 */
void __reuserps_conn_settle(struct sock *child, bool own_req,
			    struct reuserps_listener *l)
{
	if (child && own_req && child->sk_state != TCP_CLOSE) {
		/* The child is new, locked and not yet visible to its
		 * owner; clone left its pointer NULL.
		 */
		reuserps_listener_hand(l);
		WRITE_ONCE(tcp_sk(child)->reuserps_conn, l);
		return;
	}
	reuserps_conn_end(l);
}

/**
 * __reuserps_conn_migrate - take a slot for a child that changes listener
 * @child: a child in a closed listener's accept queue, bh-locked
 * @nsk: the listener inet_csk_listen_stop() moves it to
 * @lp: where to store the new slot (NULL: none)
 *
 * Only a child that still counts moves its count: one already reset
 * (TCP_CLOSE) gave it back and gets none.
 *
 * Return: 0, or -ENOBUFS if @nsk is at its cap.
 */
int __reuserps_conn_migrate(const struct sock *child, const struct sock *nsk,
			    struct reuserps_listener **lp)
{
	*lp = NULL;
	if (!READ_ONCE(tcp_sk(child)->reuserps_conn))
		return 0;
	/* A refusal is counted in TcpMigrateReqFailure by the caller. */
	return reuserps_conn_take(nsk, lp, false);
}

/**
 * __reuserps_conn_move - the migrated child counts on its new listener
 * @child: the child, bh-locked
 * @l: the slot __reuserps_conn_migrate() took
 *
 * The child's socket lock may still be owned (a BPF iterator), in which
 * case its backlog can close it meanwhile without the bh lock: whoever
 * of us and tcp_set_state(TCP_CLOSE) comes second sees the other's
 * write (both xchg, fully ordered) and ends the new count.
 */
void __reuserps_conn_move(struct sock *child, struct reuserps_listener *l)
{
	reuserps_listener_hand(l);
	reuserps_conn_end(xchg(&tcp_sk(child)->reuserps_conn, l));
	if (inet_sk_state_load(child) == TCP_CLOSE)
		reuserps_conn_end(xchg(&tcp_sk(child)->reuserps_conn, NULL));
}

/* The connection reached TCP_CLOSE, after its state was stored. */
void __sk_reuserps_conn_end(struct sock *sk)
{
	reuserps_conn_end(xchg(&tcp_sk(sk)->reuserps_conn, NULL));
}

/* The socket is freed: every count ended at TCP_CLOSE already. */
void __sk_reuserps_conn_destruct(struct sock *sk)
{
	struct reuserps_listener *l = xchg(&tcp_sk(sk)->reuserps_conn, NULL);

	DEBUG_NET_WARN_ON_ONCE(l);
	reuserps_conn_end(l);
}

/* What __reuserps_diag_put() may add, sized for the largest CPU mask:
 * the request may change between sizing and filling.
 */
size_t __reuserps_diag_size(void)
{
	size_t mask = array_size(reuserps_max_mask_words(nr_cpu_ids),
				 sizeof(u64));

	return nla_total_size(0) +			/* the nest */
	       4 * nla_total_size(sizeof(u32)) +	/* policy ... active */
	       2 * nla_total_size_64bit(sizeof(u64)) +	/* total, skips */
	       nla_total_size(mask);
}
EXPORT_SYMBOL_GPL(__reuserps_diag_size);

/**
 * __reuserps_diag_put - sock_diag's INET_DIAG_REUSERPS for a socket
 * @sk: a TCP socket, full; a listener is not locked (dumps hold its
 *	hash bucket's lock), so its request is read under RCU
 * @skb: the reply
 *
 * The request (policy, cap, flags, CPUs) and the counts, as
 * getsockopt(SO_REUSERPS) gives them; nothing for a socket without one.
 *
 * Return: 0, or -EMSGSIZE with @skb as it was.
 */
int __reuserps_diag_put(struct sock *sk, struct sk_buff *skb)
{
	const struct reuserps_sock *rs;
	struct reuserps_info info;
	struct nlattr *nest;
	int err = 0;

	rcu_read_lock();
	rs = rcu_dereference(tcp_sk(sk)->reuserps);
	if (!rs)
		goto out;
	reuserps_sock_info(rs, &info);
	nest = nla_nest_start(skb, INET_DIAG_REUSERPS);
	if (!nest) {
		err = -EMSGSIZE;
		goto out;
	}
	if (nla_put_u32(skb, REUSERPS_DIAG_POLICY, info.policy) ||
	    nla_put_u32(skb, REUSERPS_DIAG_MAX_CONNS, info.max_conns) ||
	    nla_put_u32(skb, REUSERPS_DIAG_FLAGS, info.flags) ||
	    nla_put_u32(skb, REUSERPS_DIAG_ACTIVE, info.active_conns) ||
	    nla_put_u64_64bit(skb, REUSERPS_DIAG_TOTAL, info.total_conns,
			      REUSERPS_DIAG_PAD) ||
	    nla_put_u64_64bit(skb, REUSERPS_DIAG_FULL_SKIPS, info.full_skips,
			      REUSERPS_DIAG_PAD) ||
	    nla_put(skb, REUSERPS_DIAG_CPUS,
		    array_size(rs->mask_words, sizeof(u64)), rs->cpus)) {
		nla_nest_cancel(skb, nest);
		err = -EMSGSIZE;
		goto out;
	}
	nla_nest_end(skb, nest);
out:
	rcu_read_unlock();
	return err;
}
EXPORT_SYMBOL_GPL(__reuserps_diag_put);
