// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS connection accounting: every connection handed to a
 * SO_REUSERPS listener counts against that listener's cap from its
 * request socket on, and stops counting when it ends, whatever the path.
 *
 * The count is a reference to the listener's state (struct
 * reuserps_listener), held first by the request socket (rsk_reuserps),
 * then by the child socket (sk_reuserps_conn).  A connection may outlive
 * its listener: the reference keeps the state alive.  Admission,
 * transfer and release run in softirq without locks: the counters are
 * atomics in the Rust core, and each holder gives its reference back
 * exactly once (xchg).
 */

#include <linux/atomic.h>
#include <linux/bug.h>
#include <net/request_sock.h>
#include <net/reuserps.h>
#include <net/sock.h>
#include <net/sock_reuseport.h>

#include "sock_reuserps.h"

/**
 * reuserps_conn_admit - count a new connection on a listener
 * @sk: the listener a SYN (or a SYN cookie's ACK) was steered to
 * @lp: where to store the reference that carries the count
 *
 * Listeners without SO_REUSERPS count nothing (*@lp = NULL).  The listener
 * is not locked, but its request cannot change once it is bound, and it
 * is freed only with the listener.
 *
 * Return: 0, or -ENOBUFS if the listener is at its cap: the caller drops
 * the SYN as it would for a full accept queue.
 */
int reuserps_conn_admit(const struct sock *sk, struct reuserps_listener **lp)
{
	const struct reuserps_sock *rs = READ_ONCE(sk->sk_reuserps);

	*lp = NULL;
	if (!rs)
		return 0;
	if (!reuserps_listener_admit(rs->listener))
		return -ENOBUFS;
	*lp = reuserps_listener_get(rs->listener);
	return 0;
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
