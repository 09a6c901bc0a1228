// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS connection accounting: every connection handed to a
 * SO_REUSERPS listener counts against that listener's cap from its
 * request socket on, and stops counting when it ends, whatever the path.
 *
 * The count is a reference to the listener's state (struct
 * reuserps_listener), held first by the request socket (rsk_reuserps),
 * then by the child socket (sk_reuserps_conn); tcp_migrate_req moves it
 * to the listener it moves the connection to.  A connection may outlive
 * its listener: the reference keeps the state alive.  Admission,
 * transfer and release run in softirq without locks: the counters are
 * atomics in the Rust core, and each holder gives its reference back
 * exactly once (xchg).
 */

#include <linux/atomic.h>
#include <linux/bug.h>
#include <linux/rcupdate.h>
#include <net/request_sock.h>
#include <net/reuserps.h>
#include <net/sock.h>
#include <net/sock_reuseport.h>

#include "sock_reuserps.h"

/**
 * reuserps_conn_admit - count a new connection on a listener
 * @sk: the listener a SYN (or a SYN cookie's ACK) was steered to, or the
 *	one a connection migrates to
 * @lp: where to store the reference that carries the count
 *
 * Listeners without SO_REUSERPS count nothing (*@lp = NULL).  The listener
 * is not locked: its request may be replaced at any time, and the old
 * one is freed after a grace period.
 *
 * Return: 0, or -ENOBUFS if the listener is at its cap: the caller drops
 * the SYN as it would for a full accept queue.
 */
int reuserps_conn_admit(const struct sock *sk, struct reuserps_listener **lp)
{
	const struct reuserps_sock *rs;
	int err = 0;

	*lp = NULL;
	rcu_read_lock();
	rs = rcu_dereference(sk->sk_reuserps);
	if (rs) {
		if (reuserps_listener_admit(rs->listener))
			*lp = reuserps_listener_get(rs->listener);
		else
			err = -ENOBUFS;
	}
	rcu_read_unlock();
	return err;
}

/* A new request socket holds the count admitted for it, if any. */
void reuserps_req_start(struct request_sock *req, struct reuserps_listener *l)
{
	req->rsk_reuserps = l;
}

/* Ends the connection counted by @l, if any, and drops the reference. */
void reuserps_conn_end(struct reuserps_listener *l)
{
	if (!l)
		return;
	/* Counted once, ended once: anything else is a bug here. */
	WARN_ON_ONCE(!reuserps_listener_release(l));
	reuserps_listener_put(l);
}

/* A request socket is freed: a connection that never became a child. */
void reuserps_req_end(struct request_sock *req)
{
	reuserps_conn_end(xchg(&req->rsk_reuserps, NULL));
}

/* A SYN answered with a SYN cookie: its ACK is admitted on its own. */
void reuserps_req_withdraw(struct request_sock *req)
{
	struct reuserps_listener *l = xchg(&req->rsk_reuserps, NULL);

	if (!l)
		return;
	WARN_ON_ONCE(!reuserps_listener_withdraw(l));
	reuserps_listener_put(l);
}

/**
 * reuserps_conn_migrate - move a migrated connection's count
 * @req: the request tcp_migrate_req moves away from a closed listener:
 *	 a request socket, or one whose child waits in the accept queue
 * @nreq: its copy for the new listener
 * @l: the count admitted on the new listener (NULL: none)
 *
 * The count leaves the old listener and @l takes its place, held by
 * the child if there is one, else by @nreq.
 */
void reuserps_conn_migrate(struct request_sock *req,
			   struct request_sock *nreq,
			   struct reuserps_listener *l)
{
	struct reuserps_listener **lp;

	lp = req->sk ? &req->sk->sk_reuserps_conn : &nreq->rsk_reuserps;
	/* @nreq is a copy of @req: neither keeps @req's count. */
	nreq->rsk_reuserps = NULL;
	reuserps_conn_end(xchg(&req->rsk_reuserps, NULL));
	reuserps_conn_end(xchg(lp, l));
}

/* The child takes over the count of the request it was created from. */
void reuserps_conn_start(struct sock *newsk, struct request_sock *req)
{
	newsk->sk_reuserps_conn = xchg(&req->rsk_reuserps, NULL);
}

/* The connection ended (TCP_CLOSE) or its socket is being freed. */
void sk_reuserps_conn_end(struct sock *sk)
{
	reuserps_conn_end(xchg(&sk->sk_reuserps_conn, NULL));
}
