// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS in a reuseport group: registration, table builds, and the
 * lookup's slow path (reuserps_group.h has its fast path).
 *
 * A group with SO_REUSERPS has a struct reuserps_group, created when its
 * first listener joins.  Joining and leaving the group's listening section
 * (listen, close, shutdown, migration) happen under reuseport_lock with
 * BHs off and allocate nothing more there: they bump the group's
 * generation, and a listener that leaves ends its registration, which
 * every table built for it then skips, even once the listener registers
 * again in this or another group.
 *
 * The match table is built in process context, outside reuseport_lock,
 * by listen() and by SO_REUSERPS on a listener (reuserps_group_sync() and
 * _update()), from a snapshot of the members in registration order taken
 * under the lock; it is kvmalloc-backed and charged to the caller's
 * memory cgroup.  Builders of one group take turns on its build_lock and
 * publish with RCU under reuseport_lock.  A member that joined meanwhile
 * is in the next build, by its own listen(); one that left is skipped,
 * and left out of the next build.  Until its listen() publishes a table
 * naming it, a new member gets no connections from the table; if that
 * build fails, the group keeps the table it had until a build succeeds
 * (a group that never had one picks by flow hash).
 *
 * The first listener fixes the group's mode: with SO_REUSERPS and its
 * policy, or without.  bind(), listen() and SO_REUSERPS on a listener
 * refuse a socket whose mode or policy differs from a member of the group
 * it would join (-EADDRINUSE); groups on other addresses of the port
 * keep their own.
 * Listeners are kept in registration order, which fill first follows; a
 * member that sets SO_REUSERPS again keeps its place.
 *
 * When none of a CPU's listeners has room, the table's fallback asks
 * the kernel, as it runs, which CPUs share the CPU's last level cache and
 * its NUMA node: nothing here tracks the topology or CPU hotplug, and a
 * group's table depends only on its members.
 */

#define pr_fmt(fmt) "reuserps: " fmt

#include <linux/ipv6.h>
#include <linux/mutex.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/sort.h>
#include <net/addrconf.h>
#include <net/inet_sock.h>
#include <net/reuserps.h>
#include <net/sock.h>
#include <net/sock_reuseport.h>
#include <net/tcp_reuserps.h>
#include <net/tcp_states.h>

#include "reuserps_group.h"

static void reuserps_tab_free(struct reuserps_tab *t)
{
	if (t) {
		reuserps_table_free(t->table);
		kfree(t);
	}
}

static void reuserps_tab_free_rcu(struct rcu_head *head)
{
	reuserps_tab_free(container_of(head, struct reuserps_tab, rcu));
}

static struct reuserps_group *reuserps_group_get(struct sock_reuseport *reuse)
{
	return rcu_dereference_protected(reuse->reuserps,
					 lockdep_is_held(&reuseport_lock));
}

static struct reuserps_tab *reuserps_group_tab(struct reuserps_group *g)
{
	lockdep_assert_held(&reuseport_lock);
	return g->tab;
}

/* Publishes @t (NULL: none) under reuseport_lock. */
static void reuserps_group_publish(struct reuserps_group *g,
				   struct reuserps_tab *t)
{
	lockdep_assert_held(&reuseport_lock);
	g->tab = t;
	rcu_assign_pointer(g->table, t ? t->table : NULL);
}

/* A listening member's request changes only under reuseport_lock (and its
 * socket lock): reuserps_group_update().  A socket that is not listening
 * is in a group only alone, made by SO_ATTACH_REUSEPORT_*BPF before
 * bind(), and read here only by its own listen(), under its socket lock.
 * Groups of other protocols have none.
 */
static struct reuserps_sock *reuserps_member_req(const struct sock *sk)
{
	if (!sk_is_tcp(sk))
		return NULL;
	return rcu_dereference_protected(tcp_sk(sk)->reuserps,
					 lockdep_is_held(&reuseport_lock));
}

/* @sk, with request @rs, enters the group's listening section. */
static void reuserps_group_enter(struct reuserps_group *g, struct sock *sk,
				 struct reuserps_sock *rs)
{
	rs->seq = ++g->seq;
	g->gen++;
	reuserps_listener_configure(rs->listener, rs->max_conns,
				    rs->max_pending, false);
	reuserps_listener_set_bell(rs->listener, g->bell);
}

/* A group of @reuse for @rs's policy, under reuseport_lock; small and
 * fixed, as reuseport_alloc()'s own.
 */
static struct reuserps_group *reuserps_group_new(struct sock_reuseport *reuse,
						 struct reuserps_sock *rs)
{
	struct reuserps_group *g;

	lockdep_assert_held(&reuseport_lock);
	g = kzalloc_obj(*g, GFP_ATOMIC);
	if (!g)
		return NULL;
	g->bell = reuserps_bell_new();
	if (!g->bell) {
		kfree(g);
		return NULL;
	}
	mutex_init(&g->build_lock);
	g->policy = rs->policy;
	rcu_assign_pointer(reuse->reuserps, g);
	return g;
}

/**
 * __reuserps_group_add - @sk joins the listening section of @reuse
 * @reuse: the group
 * @sk: the socket
 *
 * Called under reuseport_lock before @sk is added, so that a failure
 * leaves the group as it was.  A socket without SO_REUSERPS may join only
 * a group without SO_REUSERPS, and the other way round.  @sk is steered
 * from the next reuserps_group_sync() on.
 *
 * Return: 0, -EADDRINUSE if @sk's mode or policy is not the group's, or
 * -ENOMEM.
 */
int __reuserps_group_add(struct sock_reuseport *reuse, struct sock *sk)
{
	struct reuserps_group *g = reuserps_group_get(reuse);
	struct reuserps_sock *rs = reuserps_member_req(sk);

	if (!rs)
		return g ? -EADDRINUSE : 0;
	if (!g) {
		if (reuse->num_socks)
			return -EADDRINUSE;
		g = reuserps_group_new(reuse, rs);
		if (!g)
			return -ENOMEM;
	} else if (g->policy != rs->policy) {
		return -EADDRINUSE;
	}
	reuserps_group_enter(g, sk, rs);
	return 0;
}

/**
 * reuserps_group_rejoin - @sk, alone in @reuse, listens
 * @reuse: the group made for @sk before it was bound (by
 *	SO_ATTACH_REUSEPORT_CBPF or _EBPF, or a racing setsockopt())
 * @sk: the socket
 *
 * The group was made with @sk's request of that time, which may since
 * have been set or changed: give the group @sk's mode now.  Called under
 * reuseport_lock.
 *
 * Return: 0 or -ENOMEM, leaving the group as it was.
 */
int reuserps_group_rejoin(struct sock_reuseport *reuse, struct sock *sk)
{
	struct reuserps_group *g = reuserps_group_get(reuse);
	struct reuserps_sock *rs = reuserps_member_req(sk);

	/* A request cannot be withdrawn: without one, nothing to give. */
	if (reuse->num_socks != 1 || reuse->socks[0] != sk || !rs)
		return 0;
	if (!g) {
		g = reuserps_group_new(reuse, rs);
		if (!g)
			return -ENOMEM;
	}
	g->policy = rs->policy;
	reuserps_group_enter(g, sk, rs);
	return 0;
}

/**
 * __reuserps_group_del - @sk leaves the listening section of @reuse
 * @reuse: the group
 * @sk: the socket
 *
 * Called under reuseport_lock; cannot fail.  Its registration ends:
 * selection skips @sk from now on, and the next table leaves it out.
 */
void __reuserps_group_del(struct sock_reuseport *reuse, struct sock *sk)
{
	struct reuserps_group *g = reuserps_group_get(reuse);
	struct reuserps_sock *rs = reuserps_member_req(sk);

	if (!g || !rs)
		return;
	/* The skips counted for it so far are its own; those to come are
	 * not, once it is gone.
	 */
	if (reuserps_group_tab(g))
		reuserps_table_fold(reuserps_group_tab(g)->table, rs->listener);
	reuserps_listener_configure(rs->listener, rs->max_conns,
				    rs->max_pending, true);
	reuserps_listener_set_bell(rs->listener, NULL);
	g->gen++;
}

static int reuserps_member_cmp(const void *a, const void *b)
{
	const struct reuserps_member *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Drops the requests that reuserps_members_take() took: each member's
 * mask is its request's.
 */
static void reuserps_members_put(struct reuserps_member *m, u32 n)
{
	while (n--)
		reuserps_sock_put(container_of((void *)m[n].cpus,
					       struct reuserps_sock, cpus));
}

/* The listening members of @reuse, @sk with @rs if not NULL, into @m,
 * under reuseport_lock: each with a reference to its request, whose mask
 * the build reads where it is, outside the lock (the socket may stop
 * listening and replace its request meanwhile), and with its listener's
 * registration as of now, which the table will name.
 *
 * Return: the number of members with SO_REUSERPS, filled in only if it is
 * at most @max.
 */
static u32 reuserps_members_take(struct reuserps_member *m, u32 max,
				 struct sock_reuseport *reuse, struct sock *sk,
				 struct reuserps_sock *rs)
{
	u32 i, n = 0;

	for (i = 0; i < reuse->num_socks; i++)
		n += !!reuserps_member_req(reuse->socks[i]);
	if (n > max)
		return n;

	for (i = 0, n = 0; i < reuse->num_socks; i++) {
		struct sock *s = reuse->socks[i];
		struct reuserps_sock *r = reuserps_member_req(s);

		if (!r)
			continue;
		m[n].seq = r->seq;
		if (s == sk && rs)
			r = rs;
		m[n].sk = s;
		m[n].listener = r->listener;
		m[n].reg = reuserps_listener_registration(r->listener);
		m[n].cpus = reuserps_sock_get(r)->cpus;
		m[n].mask_words = r->mask_words;
		n++;
	}
	return n;
}

/* The group of @sk, a member whose socket lock is held: it stays the
 * group's member, and the group stays, until the lock is released.
 */
static struct reuserps_group *reuserps_group_of(struct sock *sk)
{
	struct sock_reuseport *reuse;
	struct reuserps_group *g;

	spin_lock_bh(&reuseport_lock);
	reuse = rcu_dereference_protected(sk->sk_reuseport_cb,
					  lockdep_is_held(&reuseport_lock));
	g = reuse ? reuserps_group_get(reuse) : NULL;
	spin_unlock_bh(&reuseport_lock);
	return g;
}

/* Builds the table of @sk's group with GFP_KERNEL outside reuseport_lock
 * and publishes it under the lock.  With @rs, publishes it as @sk's
 * request with the table.  Builders take turns on the group's build_lock,
 * so that an older snapshot never replaces a newer one.  The work is
 * linear in the members and their CPUs.
 *
 * A build that fails leaves the current table, and @sk's request, as they
 * were: members that left since are skipped by it, and one that joined
 * is steered from the next build that succeeds (until then it takes
 * connections only through the fallback).
 */
static int reuserps_group_build(struct sock *sk, struct reuserps_sock *rs)
{
	struct reuserps_tab *t = NULL, *old = NULL;
	const struct reuserps_table *table;
	struct reuserps_member *m = NULL;
	struct sock_reuseport *reuse;
	struct reuserps_group *g;
	u32 gen, policy, n, max = 0;
	int err;

	might_sleep();
	sock_owned_by_me(sk);
	g = reuserps_group_of(sk);
	if (!g) {
		/* A listening member with SO_REUSERPS is in a SO_REUSERPS
		 * group.  Were it not, there would be no table to change.
		 */
		DEBUG_NET_WARN_ON_ONCE(1);
		if (rs)
			rcu_assign_pointer(tcp_sk(sk)->reuserps, rs);
		return 0;
	}
	/* As bind() and listen() answer a socket of another policy. */
	if (rs && rs->policy != g->policy)
		return -EADDRINUSE;

	mutex_lock(&g->build_lock);
again:
	spin_lock_bh(&reuseport_lock);
	/* @sk is locked and listening, so it is still this group's member;
	 * were it not, there would be nothing to build for it.
	 */
	reuse = rcu_dereference_protected(sk->sk_reuseport_cb,
					  lockdep_is_held(&reuseport_lock));
	err = 0;
	if (!reuse || reuserps_group_get(reuse) != g) {
		/* As above: a new request is kept, for no table. */
		DEBUG_NET_WARN_ON_ONCE(1);
		if (rs)
			rcu_assign_pointer(tcp_sk(sk)->reuserps, rs);
		goto unlock;
	}
	if (!rs && g->built == g->gen)
		goto unlock;
	n = reuserps_members_take(m, max, reuse, sk, rs);
	if (n > max) {
		spin_unlock_bh(&reuseport_lock);
		kvfree(m);
		max = n;
		m = kvmalloc_array(max, sizeof(*m), GFP_KERNEL_ACCOUNT);
		if (!m) {
			err = -ENOMEM;
			goto unlock_build;
		}
		goto again;
	}
	gen = g->gen;
	policy = g->policy;
	spin_unlock_bh(&reuseport_lock);

	sort(m, n, sizeof(*m), reuserps_member_cmp, NULL);
	t = kmalloc_obj(*t, GFP_KERNEL_ACCOUNT);
	err = t ? reuserps_table_build(policy, m, n, g->bell, &table) : -ENOMEM;
	reuserps_members_put(m, n);
	if (err)
		goto unlock_build;

	spin_lock_bh(&reuseport_lock);
	t->table = table;
	old = reuserps_group_tab(g);
	if (old)
		reuserps_table_carry(table, old->table);
	/* Members that joined since the snapshot are in the next build, by
	 * their own listen(); those that left are skipped until then.
	 */
	g->built = gen;
	if (rs) {
		rs->seq = reuserps_member_req(sk)->seq;
		reuserps_listener_configure(rs->listener, rs->max_conns,
					    rs->max_pending, false);
		/* Admission may read the request at any time: publish it
		 * whole.
		 */
		rcu_assign_pointer(tcp_sk(sk)->reuserps, rs);
		if (g->gen++ == gen)
			g->built = g->gen;
	}
	reuserps_group_publish(g, t);
	t = NULL;
unlock:
	spin_unlock_bh(&reuseport_lock);
unlock_build:
	mutex_unlock(&g->build_lock);
	if (old)
		call_rcu(&old->rcu, reuserps_tab_free_rcu);
	kvfree(m);
	kfree(t);
	return err;
}

/**
 * reuserps_group_sync - bring the match table of @sk's group up to date
 * @sk: a listening member, locked
 *
 * Called by listen(), in process context, once @sk has joined.  Without
 * memory for the table, the current one stays until a later build
 * succeeds: listen() still succeeds.
 */
void reuserps_group_sync(struct sock *sk)
{
	reuserps_group_build(sk, NULL);
}

/**
 * reuserps_group_update - change the request of a listening member
 * @sk: a listening socket with SO_REUSERPS, locked
 * @rs: its new request, holding a reference to the same listener
 *
 * The member keeps its place in registration order, its counts and its
 * accept queue; from the new table on, it is picked for the CPUs of
 * @rs, under @rs's cap.  Connections it holds above a lowered cap stay.
 * Process context.
 *
 * Return: 0 with @rs in tcp_sk(sk)->reuserps (the caller frees the old one
 * after a grace period), -EADDRINUSE if @rs's policy is not the group's, or
 * -ENOMEM; on error nothing changed.
 */
int reuserps_group_update(struct sock *sk, struct reuserps_sock *rs)
{
	return reuserps_group_build(sk, rs);
}

/* The group is going away: no reader can see it any more, and no builder
 * holds it (each holds a member, which keeps the group).  An RCU callback.
 */
void reuserps_group_free(struct sock_reuseport *reuse)
{
	struct reuserps_group *g;

	g = rcu_dereference_protected(reuse->reuserps, 1);
	if (g) {
		reuserps_tab_free(g->tab);
		reuserps_bell_put(g->bell);
		mutex_destroy(&g->build_lock);
		kfree(g);
	}
}

/* A grown group takes over the SO_REUSERPS state of the one it replaces;
 * under reuseport_lock.
 */
void reuserps_group_move(struct sock_reuseport *to, struct sock_reuseport *from)
{
	struct reuserps_group *g = reuserps_group_get(from);

	RCU_INIT_POINTER(to->reuserps, g);
}

/* The listener for a connection on @cpu; NULL if the group has no table. */
static struct sock *reuserps_select_cpu(struct sock_reuseport *reuse, int cpu,
					u32 hash)
{
	const struct reuserps_table *t = reuserps_table_of(reuse);

	return t ? reuserps_table_select(t, cpu, hash, false) : NULL;
}

/**
 * reuserps_group_syn - a SYN for the listener @sk, processed on this CPU
 * @sk: a listener with SO_REUSERPS, under rcu_read_lock()
 * @l: its state
 *
 * One call into the Rust core: whether @l has room and, if it has, @sk
 * takes the request: this CPU's round-robin turn moves past it, and the
 * full listeners passed over count, in the table the SYN's lookup used
 * (or its successor).  Not the table when a program selects for the
 * group.
 *
 * Return: false if @l is at its cap.
 */
bool reuserps_group_syn(const struct sock *sk, struct reuserps_listener *l)
{
	const struct reuserps_table *t = NULL;
	struct sock_reuseport *reuse;

	reuse = rcu_dereference(sk->sk_reuseport_cb);
	if (reuse && !rcu_access_pointer(reuse->prog))
		t = reuserps_table_of(reuse);
	return reuserps_table_syn(t, raw_smp_processor_id(), sk, l);
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

/**
 * reuserps_group_info - what getsockopt() and sock_diag report of a request
 * @sk: the socket that made @rs; the table of its group, if it is in one,
 *	counts the listener's latest full skips
 * @rs: its request
 * @info: filled in: the listener's counts, with the cap asked for (in
 *	force from listen() on)
 */
void reuserps_group_info(const struct sock *sk, const struct reuserps_sock *rs,
			 struct reuserps_info *info)
{
	const struct reuserps_table *t = NULL;
	struct sock_reuseport *reuse;

	rcu_read_lock();
	reuse = rcu_dereference(sk->sk_reuseport_cb);
	if (reuse)
		t = reuserps_table_of(reuse);
	reuserps_listener_info(rs->listener, t, rs->policy, info);
	rcu_read_unlock();
	info->max_conns = rs->max_conns;
	info->max_pending = rs->max_pending;
	/* Paired with WRITE_ONCE() in sk_acceptq_added() and _removed(). */
	info->pending = READ_ONCE(sk->sk_ack_backlog);
}

/* Whether @sk, binding, may share its port with @sk2 as far as SO_REUSERPS
 * goes: a reuseport group has one mode and one policy, and @sk2 is in the
 * group @sk would join (as inet_reuseport_add_sock() matches members)
 * only if it has the same family, v6only, device and exact address.
 * Groups on other addresses of the port keep their own modes.
 */
bool __sk_reuserps_compatible(const struct sock *sk, const struct sock *sk2)
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
	if (sk2->sk_family != sk->sk_family ||
	    ipv6_only_sock(sk2) != ipv6_only_sock(sk) ||
	    READ_ONCE(sk2->sk_bound_dev_if) != sk->sk_bound_dev_if ||
	    !inet_rcv_saddr_equal(sk, sk2, false))
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
