// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS in TCP: the socket option, and connection accounting.
 *
 * setsockopt() checks a struct reuserps_req and keeps it on the TCP socket
 * (tcp_sk(sk)->reuserps) with the listener's accounting state, which the
 * socket registers when it joins its reuseport group; set again on a
 * listening member, it changes that member's CPUs and cap in place.
 * getsockopt() reports the listener's state.  The policy core is Rust
 * (net/core/reuserps.rs), the group's table is built by
 * net/core/reuserps_group.c; see Documentation/networking/reuserps.rst.
 *
 * A listener's cap bounds the connections that exist, counted from the
 * completed handshake to the end of the connection, whatever the path.
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
 *
 * Every request and every count holds a reference on the reuserps_needed
 * key, so that the hooks run while either exists and are patched out
 * again once neither does.
 */

#include <linux/atomic.h>
#include <linux/bitmap.h>
#include <linux/compat.h>
#include <linux/export.h>
#include <linux/inet_diag.h>
#include <linux/jump_label_ratelimit.h>
#include <linux/overflow.h>
#include <linux/rcupdate.h>
#include <linux/sched/signal.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/sockptr.h>
#include <linux/uaccess.h>
#include <net/inet_sock.h>
#include <net/netlink.h>
#include <net/reuserps.h>
#include <net/sock.h>
#include <net/sock_reuseport.h>
#include <net/tcp.h>
#include <net/tcp_reuserps.h>

#define CREATE_TRACE_POINTS
#include <trace/events/reuserps.h>

DEFINE_STATIC_KEY_DEFERRED_FALSE(reuserps_needed, HZ);

/* One more reference on the key, which is on: false if it saturated. */
static bool reuserps_key_get(void)
{
	return static_key_fast_inc_not_disabled(&reuserps_needed.key.key);
}

/**
 * reuserps_sock_put - drop a reference to a request
 * @rs: the request; the last reference frees it, with the references it
 *	holds on its listener and on the key
 *
 * Lockless readers find a request only through its socket: the socket's
 * reference is dropped an RCU grace period after they can no longer find
 * it, so the others (a table build's, getsockopt()'s) free it at once.
 */
void reuserps_sock_put(struct reuserps_sock *rs)
{
	if (!refcount_dec_and_test(&rs->ref))
		return;
	if (rs->listener)
		reuserps_listener_put(rs->listener);
	kfree(rs);
	static_branch_slow_dec_deferred(&reuserps_needed);
}

static void reuserps_sock_put_rcu(struct rcu_head *head)
{
	reuserps_sock_put(container_of(head, struct reuserps_sock, rcu));
}

/* Largest optlen of either direction, whatever the page size. */
#define REUSERPS_OPTLEN_MAX	SZ_4K

/* The caller's word for CPU masks, as sched_setaffinity() reads them;
 * compat as sock_copy_user_timeval() tells it.
 */
static unsigned int reuserps_mask_word(void)
{
	return in_compat_syscall() ? sizeof(compat_ulong_t) :
				     sizeof(unsigned long);
}

/* Whether @len bytes at @p are zero, a page at a time: any length is
 * accepted, and a long one must not hog the CPU.  1, 0, or -errno.
 */
static int reuserps_user_zeroed(const u8 __user *p, u64 len)
{
	while (len) {
		size_t n = min_t(u64, len, PAGE_SIZE);
		int ret = check_zeroed_user(p, n);

		if (ret <= 0)
			return ret;
		p += n;
		len -= n;
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	return 1;
}

/* Zeroes @len bytes at @p, a page at a time. */
static int reuserps_user_clear(u8 __user *p, u64 len)
{
	while (len) {
		size_t n = min_t(u64, len, PAGE_SIZE);

		if (clear_user(p, n))
			return -EFAULT;
		p += n;
		len -= n;
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	return 0;
}

/**
 * reuserps_mask_get - read a CPU mask the way sched_setaffinity() does
 * @bits: a zeroed bitmap of at least nr_cpu_ids bits, in whole longs
 * @umask: the caller's mask, of its own unsigned long (compat included)
 * @len: its size in bytes, any
 *
 * Bits the bitmap cannot hold must be zero, so that no CPU the caller
 * names is ignored; bits at or beyond nr_cpu_ids are refused by the
 * caller.
 *
 * Return: 0, -EINVAL for a bit set beyond the bitmap, -EFAULT or -EINTR.
 */
static int reuserps_mask_get(unsigned long *bits, const u8 __user *umask,
			     u32 len)
{
	const compat_ulong_t __user *cmask = (const void __user *)umask;
	u32 n = BITS_TO_LONGS(nr_cpu_ids) * sizeof(long);
	unsigned int w = reuserps_mask_word();
	int ret;

	/* A compat mask is read in whole words: a partial one is tail. */
	if (w != sizeof(long))
		n = min(round_down(len, w),
			BITS_TO_COMPAT_LONGS(nr_cpu_ids) * w);
	n = min(n, len);
	ret = reuserps_user_zeroed(umask + n, len - n);
	if (ret <= 0)
		return ret ?: -EINVAL;
	if (w != sizeof(long))
		return compat_get_bitmap(bits, cmask, n * BITS_PER_BYTE) ?
		       -EFAULT : 0;
	return copy_from_user(bits, umask, n) ? -EFAULT : 0;
}

/* Copies and checks a request; every check happens before any state. */
static struct reuserps_sock *reuserps_sock_parse(sockptr_t optval,
						 unsigned int optlen)
{
	unsigned long *bits __free(bitmap) = NULL;
	unsigned int nbits = BITS_TO_LONGS(nr_cpu_ids) * BITS_PER_LONG;
	struct reuserps_req req;
	struct reuserps_sock *rs;
	unsigned int last;
	u32 words;
	int err;

	if (optlen < REUSERPS_REQ_SIZE_VER0)
		return ERR_PTR(-EINVAL);
	if (optlen > REUSERPS_OPTLEN_MAX)
		return ERR_PTR(-E2BIG);
	err = copy_struct_from_sockptr(&req, sizeof(req), optval, optlen);
	if (err)
		return ERR_PTR(err);
	/* What needs no user memory first; reuserps_check_req() rules. */
	if (req.flags || req.policy > REUSERPS_LEAST_CONNS || !req.cpus ||
	    !req.cpus_len || req.max_pending > INT_MAX || req.reserved)
		return ERR_PTR(-EINVAL);

	/* In whole u64 words, which the request keeps. */
	bits = bitmap_zalloc(round_up(nr_cpu_ids, 64), GFP_KERNEL);
	if (!bits)
		return ERR_PTR(-ENOMEM);
	err = reuserps_mask_get(bits, u64_to_user_ptr(req.cpus), req.cpus_len);
	if (err)
		return ERR_PTR(err);
	/* Not empty (nbits then), nothing at or beyond nr_cpu_ids. */
	last = find_last_bit(bits, nbits);
	if (last >= nr_cpu_ids)
		return ERR_PTR(-EINVAL);
	words = last / 64 + 1;

	rs = kzalloc_flex(*rs, cpus, words, GFP_KERNEL_ACCOUNT);
	if (!rs)
		return ERR_PTR(-ENOMEM);
	/* Set by kzalloc_flex() only where the compiler has counted_by. */
	rs->mask_words = words;
	bitmap_to_arr64(rs->cpus, bits, words * 64);
	err = reuserps_check_req(req.policy, req.flags, rs->cpus, words,
				 nr_cpu_ids);
	if (err) {
		kfree(rs);
		return ERR_PTR(err);
	}
	rs->policy = req.policy;
	rs->max_conns = req.max_conns;
	rs->max_pending = req.max_pending;
	refcount_set(&rs->ref, 1);
	return rs;
}

/**
 * reuserps_mask_put - write a request's CPU mask for getsockopt()
 * @rs: the request, held
 * @info: the caller's cpus and cpus_len; cpus_len is set to the size of
 *	the mask, up to its highest CPU, in the caller's words
 *
 * Writes the mask at info->cpus, unless that is 0, and zeroes the rest of
 * the caller's buffer.
 *
 * Return: 0, -ERANGE if the buffer is too small, -ENOMEM, -EFAULT or
 * -EINTR.
 */
static int reuserps_mask_put(const struct reuserps_sock *rs,
			     struct reuserps_info *info)
{
	unsigned long *bits __free(bitmap) = NULL;
	unsigned int nbits = rs->mask_words * 64;
	u8 __user *umask = u64_to_user_ptr(info->cpus);
	unsigned int w = reuserps_mask_word();
	u32 room = info->cpus_len, len;
	int err;

	bits = bitmap_zalloc(nbits, GFP_KERNEL);
	if (!bits)
		return -ENOMEM;
	bitmap_from_arr64(bits, rs->cpus, nbits);
	/* The request's last word has a CPU set: it was trimmed to it. */
	len = DIV_ROUND_UP(find_last_bit(bits, nbits) + 1,
			   w * BITS_PER_BYTE) * w;
	info->cpus_len = len;
	if (!info->cpus)
		return 0;
	if (room < len)
		return -ERANGE;
	if (w != sizeof(long))
		err = compat_put_bitmap((compat_ulong_t __user *)umask, bits,
					len * BITS_PER_BYTE) ? -EFAULT : 0;
	else
		err = copy_to_user(umask, bits, len) ? -EFAULT : 0;
	return err ?: reuserps_user_clear(umask + len, room - len);
}

int tcp_setsockopt_reuserps(struct sock *sk, sockptr_t optval,
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
	if (!static_branch_inc(&reuserps_needed.key)) {
		kfree(rs);
		return -EUSERS;
	}

	sockopt_lock_sock(sk);
	old = rcu_dereference_protected(tcp_sk(sk)->reuserps,
					lockdep_sock_is_held(sk));
	/* A new request keeps the listener's counts. */
	if (old)
		rs->listener = reuserps_listener_get(old->listener);
	else
		rs->listener = reuserps_listener_new(rs->max_conns,
						     &sk->sk_ack_backlog);
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
	if (!err)
		tcp_sk(sk)->reuserps_req = 1;
	sockopt_release_sock(sk);

	if (err) {
		reuserps_sock_put(rs);
		return err;
	}
	/* Admission and bind() may still be reading the old request. */
	if (old)
		call_rcu(&old->rcu, reuserps_sock_put_rcu);
	return 0;
}

int tcp_getsockopt_reuserps(struct sock *sk, sockptr_t optval,
			    sockptr_t optlen, int len)
{
	struct reuserps_info info;
	struct reuserps_sock *rs;
	int err;

	if (!sk_is_tcp(sk))
		return -EOPNOTSUPP;
	/* sk_getsockopt() refused a negative length. */
	if (len < REUSERPS_INFO_SIZE_VER0)
		return -EINVAL;
	if (len > REUSERPS_OPTLEN_MAX)
		return -E2BIG;
	/* In: where the mask goes (cpus, cpus_len); the rest is out. */
	err = copy_struct_from_sockptr(&info, sizeof(info), optval, len);
	if (err)
		return err;

	sockopt_lock_sock(sk);
	rs = rcu_dereference_protected(tcp_sk(sk)->reuserps,
				       lockdep_sock_is_held(sk));
	if (rs) {
		u64 cpus = info.cpus;
		u32 cpus_len = info.cpus_len;

		reuserps_group_info(sk, rs, &info);
		info.cpus = cpus;
		info.cpus_len = cpus_len;
		reuserps_sock_get(rs);
	}
	sockopt_release_sock(sk);
	if (!rs)
		return -ENOENT;

	/* The request is held: the mask is copied without the lock. */
	err = reuserps_mask_put(rs, &info);
	reuserps_sock_put(rs);
	/* As SO_PEERGROUPS does: tell a short buffer what it needs. */
	if (err == -ERANGE &&
	    copy_to_sockptr_offset(optval,
				   offsetof(struct reuserps_info, cpus_len),
				   &info.cpus_len, sizeof(info.cpus_len)))
		return -EFAULT;
	if (err)
		return err;
	/* The struct may grow at its end: a shorter one gets what it has
	 * room for, a longer one zeroes.
	 */
	if (copy_struct_to_sockptr(optval, len, &info, sizeof(info), NULL))
		return -EFAULT;
	len = min_t(unsigned int, len, sizeof(info));
	if (copy_to_sockptr(optlen, &len, sizeof(len)))
		return -EFAULT;
	return 0;
}

/* Fires reuserps_full if it is enabled; under rcu_read_lock(). */
static void reuserps_trace_full(const struct sock *sk,
				const struct reuserps_sock *rs, bool ack)
{
	struct reuserps_info info;

	if (!trace_reuserps_full_enabled())
		return;
	reuserps_group_info(sk, rs, &info);
	trace_reuserps_full(sk, info.max_conns, info.active_conns, ack);
}

/**
 * __tcp_reuserps_syn - a SYN for a listener with SO_REUSERPS
 * @sk: the listener, which the lookup picked; not locked, so its request
 *	is read under RCU
 *
 * Return: false, firing reuserps_full, if @sk is at its cap: the SYN is
 * dropped (ListenDrops) and the client retries.  Else true, with this
 * CPU's round-robin turn moved past @sk.
 */
bool __tcp_reuserps_syn(const struct sock *sk)
{
	const struct reuserps_sock *rs;
	bool room = true;

	rcu_read_lock();
	rs = rcu_dereference(tcp_sk(sk)->reuserps);
	if (rs && !reuserps_group_syn(sk, rs->listener)) {
		room = false;
		reuserps_trace_full(sk, rs, false);
	}
	rcu_read_unlock();
	return room;
}

/**
 * __tcp_reuserps_admit - take a slot for a connection about to be created
 * @sk: the listener the connection's child is created for
 * @lp: where to store the reference that carries the slot
 * @tfo: for a Fast Open SYN: a refusal falls back to a normal handshake,
 *	so it is neither counted nor traced as a drop
 *
 * The listener is not locked: its request may be replaced at any time,
 * and the old one is freed after a grace period.
 *
 * Return: 0 (*@lp is NULL for a listener without SO_REUSERPS), or
 * -ENOBUFS if the listener is at its cap, counted as a listen overflow:
 * the caller drops the ACK as it would for a full accept queue.
 */
int __tcp_reuserps_admit(const struct sock *sk,
			 struct reuserps_listener **lp, bool tfo)
{
	const struct reuserps_sock *rs;
	int err = 0;

	*lp = NULL;
	rcu_read_lock();
	rs = rcu_dereference(tcp_sk(sk)->reuserps);
	if (rs && !reuserps_listener_admit(rs->listener)) {
		err = -ENOBUFS;
		if (!tfo)
			reuserps_trace_full(sk, rs, true);
	} else if (rs) {
		/* The request holds the key, so it is on: the slot holds it
		 * too, unless it is saturated.
		 */
		if (reuserps_key_get()) {
			*lp = reuserps_listener_get(rs->listener);
		} else {
			net_warn_ratelimited("SO_REUSERPS: too many\n");
			reuserps_listener_release(rs->listener);
			err = -ENOBUFS;
		}
	}
	rcu_read_unlock();
	if (err && !tfo) {
		__NET_INC_STATS(sock_net(sk), LINUX_MIB_LISTENOVERFLOWS);
		tcp_listendrop(sk);
	}
	return err;
}

/* Ends the connection counted by @l and drops its references. */
static void reuserps_conn_end(struct reuserps_listener *l)
{
	bool ok;

	if (!l)
		return;
	/* The release may ring the group's bell, which RCU keeps. */
	rcu_read_lock();
	ok = reuserps_listener_release(l);
	rcu_read_unlock();
	/* Counted once, ended once: anything else is a bug here. */
	DEBUG_NET_WARN_ON_ONCE(!ok);
	reuserps_listener_put(l);
	static_branch_slow_dec_deferred(&reuserps_needed);
}

/**
 * __tcp_reuserps_settle - hand a slot to the child that owns its connection
 * @child: what syn_recv_sock() returned (NULL: no child)
 * @own_req: whether @child won the request (it is in the ehash)
 * @l: the slot taken by __tcp_reuserps_admit()
 *
 * A child that lost the request to another ACK, or that MPTCP already
 * closed, dies without a count; so does a missing child.
 */
void __tcp_reuserps_settle(struct sock *child, bool own_req,
			   struct reuserps_listener *l)
{
	if (child && own_req && child->sk_state != TCP_CLOSE) {
		/* The child is new, locked and not yet visible to its
		 * owner; tcp_create_openreq_child() left its pointer NULL.
		 */
		reuserps_listener_hand(l);
		WRITE_ONCE(tcp_sk(child)->reuserps_conn, l);
		return;
	}
	reuserps_conn_end(l);
}

/**
 * __tcp_reuserps_migrate - take a slot for a child that changes listener
 * @nsk: the listener inet_csk_listen_stop() moves a counted child to
 * @lp: where to store the new slot (NULL: none)
 *
 * Return: 0, or -ENOBUFS if @nsk is at its cap: the caller counts it in
 * TcpMigrateReqFailure.
 */
int __tcp_reuserps_migrate(const struct sock *nsk,
			   struct reuserps_listener **lp)
{
	const struct reuserps_sock *rs;
	int err = 0;

	*lp = NULL;
	if (!sk_is_tcp(nsk))
		return 0;
	rcu_read_lock();
	rs = rcu_dereference(tcp_sk(nsk)->reuserps);
	if (rs && !reuserps_listener_admit(rs->listener)) {
		err = -ENOBUFS;
	} else if (rs) {
		/* The child's count holds the key: it is on. */
		if (reuserps_key_get()) {
			*lp = reuserps_listener_get(rs->listener);
		} else {
			reuserps_listener_release(rs->listener);
			err = -ENOBUFS;
		}
	}
	rcu_read_unlock();
	return err;
}

/**
 * __tcp_reuserps_move - the migrated child counts on its new listener
 * @child: the child, bh-locked
 * @l: the slot __tcp_reuserps_migrate() took
 *
 * The child's socket lock may still be owned (a BPF iterator), in which
 * case its backlog can close it meanwhile without the bh lock: whoever
 * of us and tcp_set_state(TCP_CLOSE) comes second sees the other's
 * write (both xchg, fully ordered) and ends the new count.
 */
void __tcp_reuserps_move(struct sock *child, struct reuserps_listener *l)
{
	reuserps_listener_hand(l);
	reuserps_conn_end(xchg(&tcp_sk(child)->reuserps_conn, l));
	if (inet_sk_state_load(child) == TCP_CLOSE)
		reuserps_conn_end(xchg(&tcp_sk(child)->reuserps_conn, NULL));
}

/* The connection reached TCP_CLOSE, after its state was stored. */
void __tcp_reuserps_end(struct sock *sk)
{
	reuserps_conn_end(xchg(&tcp_sk(sk)->reuserps_conn, NULL));
}

/* The socket is freed (a listener after a grace period: lockless readers
 * of its request are gone).  Every count ended at TCP_CLOSE already.
 */
void __tcp_reuserps_destruct(struct sock *sk)
{
	struct reuserps_listener *l = xchg(&tcp_sk(sk)->reuserps_conn, NULL);
	struct reuserps_sock *rs;

	DEBUG_NET_WARN_ON_ONCE(l);
	reuserps_conn_end(l);
	rs = rcu_replace_pointer(tcp_sk(sk)->reuserps, NULL, 1);
	if (rs)
		reuserps_sock_put(rs);
}

/* What tcp_reuserps_diag_put() may add for @sk (tcp_diag, with
 * INET_DIAG_INFO), sized for the largest CPU mask: the request may change
 * between sizing and filling.
 */
size_t tcp_reuserps_diag_size(const struct sock *sk)
{
	size_t mask = array_size(reuserps_max_mask_words(nr_cpu_ids),
				 sizeof(u64));

	if (!sk_reuserps_requested(sk))
		return 0;
	return nla_total_size(0) +			/* the nest */
	       5 * nla_total_size(sizeof(u32)) +	/* the u32s */
	       2 * nla_total_size_64bit(sizeof(u64)) +	/* total, skips */
	       nla_total_size(mask);
}
EXPORT_SYMBOL_GPL(tcp_reuserps_diag_size);

/**
 * tcp_reuserps_diag_put - sock_diag's INET_DIAG_REUSERPS for a socket
 * @sk: a TCP socket, full; a listener is not locked (dumps hold its
 *	hash bucket's lock), so its request is read under RCU
 * @skb: the reply
 *
 * The request (policy, cap, flags, max_pending, CPUs) and the counts, as
 * getsockopt(SO_REUSERPS) gives them; nothing for a socket without one.
 *
 * Return: 0, or -EMSGSIZE with @skb as it was.
 */
int tcp_reuserps_diag_put(struct sock *sk, struct sk_buff *skb)
{
	const struct reuserps_sock *rs;
	struct reuserps_info info;
	struct nlattr *nest;
	int err = 0;

	if (!sk_reuserps_requested(sk))
		return 0;
	rcu_read_lock();
	rs = rcu_dereference(tcp_sk(sk)->reuserps);
	if (!rs)
		goto out;
	reuserps_group_info(sk, rs, &info);
	nest = nla_nest_start(skb, INET_DIAG_REUSERPS);
	if (!nest) {
		err = -EMSGSIZE;
		goto out;
	}
	if (nla_put_u32(skb, REUSERPS_DIAG_POLICY, info.policy) ||
	    nla_put_u32(skb, REUSERPS_DIAG_MAX_CONNS, info.max_conns) ||
	    nla_put_u32(skb, REUSERPS_DIAG_FLAGS, info.flags) ||
	    nla_put_u32(skb, REUSERPS_DIAG_ACTIVE, info.active_conns) ||
	    nla_put_u32(skb, REUSERPS_DIAG_MAX_PENDING, info.max_pending) ||
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
EXPORT_SYMBOL_GPL(tcp_reuserps_diag_put);
