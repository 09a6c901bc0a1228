// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS socket option plumbing.
 *
 * setsockopt() checks a struct reuserps_req and keeps it on the TCP socket
 * (tcp_sk(sk)->reuserps) with the listener's accounting state, which
 * the socket registers when it joins its reuseport group; set again on a
 * listening member, it changes that member's CPUs and cap in place.
 * getsockopt() reports the listener's state.
 * The policy core is Rust (net/core/reuserps.rs); see
 * Documentation/networking/reuserps.rst.
 */

#include <linux/cpumask.h>
#include <linux/jump_label.h>
#include <linux/overflow.h>
#include <linux/slab.h>
#include <linux/sockptr.h>
#include <linux/tcp.h>
#include <net/inet_sock.h>
#include <net/reuserps.h>
#include <net/sock.h>
#include <net/sock_reuseport.h>
#include <net/tcp_states.h>

#include "sock_reuserps.h"

DEFINE_STATIC_KEY_FALSE(reuserps_needed);

static void reuserps_sock_free(struct reuserps_sock *rs)
{
	if (!rs)
		return;
	if (rs->listener)
		reuserps_listener_put(rs->listener);
	kfree(rs);
}

static void reuserps_sock_free_rcu(struct rcu_head *head)
{
	reuserps_sock_free(container_of(head, struct reuserps_sock, rcu));
}

/* Copies and checks a request; every check happens before any state. */
static struct reuserps_sock *reuserps_sock_parse(sockptr_t optval,
						 unsigned int optlen)
{
	struct reuserps_req req;
	struct reuserps_sock *rs;
	int err;

	if (optlen < sizeof(req))
		return ERR_PTR(-EINVAL);
	if (copy_from_sockptr(&req, optval, sizeof(req)))
		return ERR_PTR(-EFAULT);
	if (!req.mask_words ||
	    req.mask_words > reuserps_max_mask_words(nr_cpu_ids) ||
	    optlen != struct_size(&req, cpus, req.mask_words))
		return ERR_PTR(-EINVAL);

	rs = kzalloc_flex(*rs, cpus, req.mask_words, GFP_KERNEL_ACCOUNT);
	if (!rs)
		return ERR_PTR(-ENOMEM);
	/* Set by kzalloc_flex() only where the compiler has counted_by. */
	rs->mask_words = req.mask_words;
	if (copy_from_sockptr_offset(rs->cpus, optval, sizeof(req),
				     array_size(req.mask_words,
						sizeof(rs->cpus[0])))) {
		err = -EFAULT;
		goto free;
	}
	err = reuserps_check_req(req.policy, req.flags, rs->cpus,
				 req.mask_words, nr_cpu_ids);
	if (err)
		goto free;
	rs->policy = req.policy;
	rs->max_conns = req.max_conns;
	return rs;
free:
	reuserps_sock_free(rs);
	return ERR_PTR(err);
}

int sk_setsockopt_reuserps(struct sock *sk, sockptr_t optval,
			   unsigned int optlen)
{
	struct reuserps_sock *rs, *old;
	int err = 0;

	if (!sk_is_tcp(sk))
		return -EOPNOTSUPP;

	rs = reuserps_sock_parse(optval, optlen);
	if (IS_ERR(rs))
		return PTR_ERR(rs);
	/* Before any listener can use the request; may sleep. */
	static_branch_enable(&reuserps_needed);

	sockopt_lock_sock(sk);
	old = rcu_dereference_protected(tcp_sk(sk)->reuserps,
					lockdep_sock_is_held(sk));
	/* A new request keeps the listener's counts. */
	if (old)
		rs->listener = reuserps_listener_get(old->listener);
	else
		rs->listener = reuserps_listener_new(rs->max_conns);
	if (!rs->listener)
		err = -ENOMEM;
	else if (sk->sk_state == TCP_LISTEN)
		/* A member changes its CPUs and cap in its group's table. */
		err = old ? reuserps_group_update(sk, rs) : -EINVAL;
	else if (inet_sk(sk)->inet_num)
		/* Bound: the port was checked against this request. */
		err = -EINVAL;
	else
		rcu_assign_pointer(tcp_sk(sk)->reuserps, rs);
	sockopt_release_sock(sk);

	if (err) {
		reuserps_sock_free(rs);
		return err;
	}
	/* Admission and bind() may still be reading the old request. */
	if (old)
		call_rcu(&old->rcu, reuserps_sock_free_rcu);
	return 0;
}

int sk_getsockopt_reuserps(struct sock *sk, sockptr_t optval,
			   sockptr_t optlen, int len)
{
	struct reuserps_info info = {};
	struct reuserps_sock *rs;

	if (!sk_is_tcp(sk))
		return -EOPNOTSUPP;

	sockopt_lock_sock(sk);
	rs = rcu_dereference_protected(tcp_sk(sk)->reuserps,
				       lockdep_sock_is_held(sk));
	if (rs)
		reuserps_sock_info(rs, &info);
	sockopt_release_sock(sk);
	if (!rs)
		return -ENOENT;

	/* The struct may grow at its end: copy what both sides know, as
	 * TCP_INFO does (sk_getsockopt() refused a negative length).
	 */
	len = min_t(unsigned int, len, sizeof(info));
	if (copy_to_sockptr(optval, &info, len) ||
	    copy_to_sockptr(optlen, &len, sizeof(len)))
		return -EFAULT;
	return 0;
}

/* The socket is being freed: nobody else can reach it any more. */
void __sk_reuserps_free(struct sock *sk)
{
	reuserps_sock_free(rcu_dereference_protected(tcp_sk(sk)->reuserps, 1));
	RCU_INIT_POINTER(tcp_sk(sk)->reuserps, NULL);
}
