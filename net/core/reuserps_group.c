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
 * build fails, the group falls back to the flow hash over all its members
 * until the next build succeeds.
 *
 * The first listener fixes the group's mode: with SO_REUSERPS and its
 * policy, or without.  bind() refuses a socket whose mode or policy
 * differs from a socket it would share the port with (-EADDRINUSE).
 * Listeners are kept in registration order, which fill first follows; a
 * member that sets SO_REUSERPS again keeps its place.
 *
 * Tables also list, for the fallback, the members near each CPU: those
 * of CPUs that share its last level cache, then of its NUMA node.  The
 * topology is read in process context at boot and after each CPU
 * hotplug operation, and every group's table is then rebuilt.  A
 * table built meanwhile with the old one is rebuilt after it, on its
 * group's build_lock; in the meantime only locality suffers.
 */

#define pr_fmt(fmt) "reuserps: " fmt

#include <linux/cpu.h>
#include <linux/cpuhotplug.h>
#include <linux/init.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/rcupdate.h>
#include <linux/refcount.h>
#include <linux/sched/mm.h>
#include <linux/sched/topology.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/sort.h>
#include <linux/tcp.h>
#include <linux/topology.h>
#include <linux/workqueue.h>
#include <net/inet_sock.h>
#include <net/reuserps.h>
#include <net/sock.h>
#include <net/sock_reuseport.h>
#include <net/tcp_states.h>

#include "reuserps_group.h"
#include "sock_reuserps.h"

/**
 * struct reuserps_topo_snap - the topology as tables are built from it
 * @rcu: frees it once no builder can find it
 * @ref: one for being current, one per build using it
 * @topo: what reuserps_table_build() reads: @ids, first the caches, then
 *	the nodes, nr_cpu_ids entries each
 * @ids: per CPU, the first online CPU sharing its last level cache, then
 *	the first possible CPU of its node; U32_MAX for none
 */
struct reuserps_topo_snap {
	struct rcu_head		rcu;
	refcount_t		ref;
	struct reuserps_topo	topo;
	u32			ids[];
};

static struct reuserps_topo_snap __rcu *reuserps_topo_cur;
/* Serializes updates of reuserps_topo_cur. */
static DEFINE_MUTEX(reuserps_topo_lock);
/* Every SO_REUSERPS group, under reuseport_lock. */
static LIST_HEAD(reuserps_groups);

static void reuserps_topo_put(struct reuserps_topo_snap *snap)
{
	if (snap && refcount_dec_and_test(&snap->ref))
		kvfree_rcu(snap, rcu);
}

/* The current topology, NULL before the first is read; process context. */
static struct reuserps_topo_snap *reuserps_topo_get(void)
{
	struct reuserps_topo_snap *snap;

	rcu_read_lock();
	do {
		/* A snapshot at zero is being replaced: the next is
		 * published already.
		 */
		snap = rcu_dereference(reuserps_topo_cur);
	} while (snap && !refcount_inc_not_zero(&snap->ref));
	rcu_read_unlock();
	return snap;
}

/* Reads the topology, under cpus_read_lock() so that the scheduler's
 * view of the caches is settled.  Cache sharing is known for online CPUs
 * only (cpus_share_cache()); the node of every possible CPU.
 */
static struct reuserps_topo_snap *reuserps_topo_read(void)
{
	u32 nr = nr_cpu_ids, nllc = 0, *llc, *node, *reps, *first;
	struct reuserps_topo_snap *snap;
	unsigned int cpu, i;
	int nid;

	lockdep_assert_cpus_held();
	snap = kvmalloc(struct_size(snap, ids, 2 * (size_t)nr), GFP_KERNEL);
	reps = kvmalloc_array(nr, sizeof(*reps), GFP_KERNEL);
	first = kvmalloc_array(nr_node_ids, sizeof(*first), GFP_KERNEL);
	if (!snap || !reps || !first) {
		kvfree(snap);
		snap = NULL;
		goto out;
	}
	refcount_set(&snap->ref, 1);
	llc = snap->ids;
	node = snap->ids + nr;
	snap->topo.llc = llc;
	snap->topo.node = node;
	snap->topo.nr = nr;
	memset(snap->ids, 0xff, array_size(2 * (size_t)nr, sizeof(u32)));
	memset(first, 0xff, array_size(nr_node_ids, sizeof(*first)));

	for_each_possible_cpu(cpu) {
		nid = cpu_to_node(cpu);
		if (nid < 0 || nid >= nr_node_ids)
			continue;
		if (first[nid] == U32_MAX)
			first[nid] = cpu;
		node[cpu] = first[nid];
	}
	/* One representative per cache: O(CPUs x caches), once per hotplug
	 * operation.
	 */
	for_each_online_cpu(cpu) {
		for (i = 0; i < nllc; i++) {
			if (cpus_share_cache(cpu, reps[i]))
				break;
		}
		if (i == nllc)
			reps[nllc++] = cpu;
		llc[cpu] = reps[i];
		cond_resched();
	}
out:
	kvfree(reps);
	kvfree(first);
	return snap;
}

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
	reuserps_listener_configure(rs->listener, rs->max_conns, false);
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
	if (g) {
		mutex_init(&g->build_lock);
		g->policy = rs->policy;
		g->reuse = reuse;
		list_add_tail(&g->all, &reuserps_groups);
		rcu_assign_pointer(reuse->reuserps, g);
	}
	return g;
}

/**
 * reuserps_group_add - @sk joins the listening section of @reuse
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
int reuserps_group_add(struct sock_reuseport *reuse, struct sock *sk)
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
 * reuserps_group_del - @sk leaves the listening section of @reuse
 * @reuse: the group
 * @sk: the socket
 *
 * Called under reuseport_lock; cannot fail.  Its registration ends:
 * selection skips @sk from now on, and the next table leaves it out.
 */
void reuserps_group_del(struct sock_reuseport *reuse, struct sock *sk)
{
	struct reuserps_group *g = reuserps_group_get(reuse);
	struct reuserps_sock *rs = reuserps_member_req(sk);

	if (!g || !rs)
		return;
	reuserps_listener_configure(rs->listener, rs->max_conns, true);
	g->gen++;
}

/* What a table is built from: the members, and their masks' words. */
struct reuserps_snap {
	struct reuserps_member	*m;
	u64			*words;
	u32			n;
	u32			nwords;
};

static void reuserps_snap_free(struct reuserps_snap *snap)
{
	kvfree(snap->m);
	kvfree(snap->words);
	snap->m = NULL;
	snap->words = NULL;
}

static void reuserps_snap_put(struct reuserps_snap *snap, u32 n)
{
	while (n--)
		reuserps_listener_put(snap->m[n].listener);
}

static int reuserps_member_cmp(const void *a, const void *b)
{
	const struct reuserps_member *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The listening members of @reuse, @sk with @rs if not NULL, under
 * reuseport_lock.  Return: the number taken, or -E2BIG (with the sizes
 * needed in @snap->n and @snap->nwords) if @snap is too small.
 */
static int reuserps_snap_take(struct reuserps_snap *snap,
			      struct sock_reuseport *reuse, struct sock *sk,
			      struct reuserps_sock *rs)
{
	u32 i, n = 0, words = 0;

	for (i = 0; i < reuse->num_socks; i++) {
		struct sock *s = reuse->socks[i];
		struct reuserps_sock *r = reuserps_member_req(s);

		if (!r)
			continue;
		words += (s == sk && rs ? rs : r)->mask_words;
		n++;
	}
	if (n > snap->n || words > snap->nwords) {
		snap->n = n;
		snap->nwords = words;
		return -E2BIG;
	}

	for (i = 0, n = 0, words = 0; i < reuse->num_socks; i++) {
		struct sock *s = reuse->socks[i];
		struct reuserps_sock *r = reuserps_member_req(s);
		struct reuserps_member *m = &snap->m[n];

		if (!r)
			continue;
		m->seq = r->seq;
		if (s == sk && rs)
			r = rs;
		m->sk = s;
		m->listener = reuserps_listener_get(r->listener);
		m->mask_words = r->mask_words;
		m->cpus = &snap->words[words];
		memcpy(&snap->words[words], r->cpus,
		       array_size(r->mask_words, sizeof(r->cpus[0])));
		words += r->mask_words;
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

/* Room for the members of @sk's group, as many as it has now. */
static int reuserps_snap_alloc(struct reuserps_snap *snap, u32 n, u32 words)
{
	reuserps_snap_free(snap);
	snap->n = n;
	snap->nwords = words;
	snap->m = kvmalloc_array(n ?: 1, sizeof(*snap->m), GFP_KERNEL_ACCOUNT);
	snap->words = kvmalloc_array(words ?: 1, sizeof(u64),
				     GFP_KERNEL_ACCOUNT);
	return snap->m && snap->words ? 0 : -ENOMEM;
}

/* Builds the table of @sk's group with GFP_KERNEL outside reuseport_lock
 * and publishes it under the lock.  With @rs, publishes it as @sk's
 * request with the table.  Builders take turns on the group's build_lock,
 * so that an older snapshot never replaces a newer one.
 */
static int reuserps_group_build(struct sock *sk, struct reuserps_sock *rs)
{
	struct reuserps_topo_snap *topo = NULL;
	struct reuserps_snap snap = {};
	const struct reuserps_table *table;
	struct reuserps_tab *t, *old = NULL;
	struct sock_reuseport *reuse;
	struct reuserps_group *g;
	u32 gen, policy, words;
	int n, err;

	might_sleep();
	sock_owned_by_me(sk);
	g = reuserps_group_of(sk);
	if (!g)
		return rs ? -EINVAL : 0;
	/* -EINVAL for a policy not the group's, as for a bad request. */
	if (rs && rs->policy != g->policy)
		return -EINVAL;

	mutex_lock(&g->build_lock);
	t = kmalloc_obj(*t, GFP_KERNEL_ACCOUNT);
	words = reuserps_max_mask_words(nr_cpu_ids);
	rcu_read_lock();
	reuse = rcu_dereference(sk->sk_reuseport_cb);
	n = reuse ? READ_ONCE(reuse->num_socks) : 0;
	rcu_read_unlock();
	err = reuserps_snap_alloc(&snap, n, n * words);
	if (err || !t) {
		err = -ENOMEM;
		goto fail;
	}
again:
	spin_lock_bh(&reuseport_lock);
	reuse = rcu_dereference_protected(sk->sk_reuseport_cb,
					  lockdep_is_held(&reuseport_lock));
	err = 0;
	if (!rs && g->built == g->gen)
		goto unlock;
	n = reuserps_snap_take(&snap, reuse, sk, rs);
	if (n == -E2BIG) {
		spin_unlock_bh(&reuseport_lock);
		err = reuserps_snap_alloc(&snap, snap.n, snap.nwords);
		if (err)
			goto fail;
		goto again;
	}
	gen = g->gen;
	policy = g->policy;
	spin_unlock_bh(&reuseport_lock);

	sort(snap.m, n, sizeof(*snap.m), reuserps_member_cmp, NULL);
	/* Read under build_lock: a topology update rebuilds after us. */
	topo = reuserps_topo_get();
	err = reuserps_table_build(policy, snap.m, n, topo ? &topo->topo : NULL,
				   &table);
	reuserps_topo_put(topo);
	reuserps_snap_put(&snap, n);
	if (err)
		goto fail;

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
					    false);
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
	mutex_unlock(&g->build_lock);
	if (old)
		call_rcu(&old->rcu, reuserps_tab_free_rcu);
out:
	reuserps_snap_free(&snap);
	kfree(t);
	return err;
fail:
	if (!rs) {
		/* The table no longer names every member: the flow hash does,
		 * until a build succeeds.
		 */
		spin_lock_bh(&reuseport_lock);
		old = reuserps_group_tab(g);
		reuserps_group_publish(g, NULL);
		goto unlock;
	}
	mutex_unlock(&g->build_lock);
	goto out;
}

/**
 * reuserps_group_sync - bring the match table of @sk's group up to date
 * @sk: a listening member, locked
 *
 * Called by listen(), in process context, once @sk has joined.  Without
 * memory for the table, the group falls back to the flow hash over all
 * its members until a later build succeeds: listen() still succeeds.
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
 * after a grace period), -EINVAL if @rs's policy is not the group's or
 * @sk is in no SO_REUSERPS group, or -ENOMEM; on error nothing changed.
 */
int reuserps_group_update(struct sock *sk, struct reuserps_sock *rs)
{
	return reuserps_group_build(sk, rs);
}

/* The group is going away: no reader can see it any more, and no builder
 * holds it (each holds a member, which keeps the group).  An RCU callback:
 * reuseport_lock is taken with BHs off everywhere else.
 */
void reuserps_group_free(struct sock_reuseport *reuse)
{
	struct reuserps_group *g;

	g = rcu_dereference_protected(reuse->reuserps, 1);
	if (g) {
		spin_lock_bh(&reuseport_lock);
		list_del(&g->all);
		spin_unlock_bh(&reuseport_lock);
		reuserps_tab_free(g->tab);
		mutex_destroy(&g->build_lock);
		kfree(g);
	}
}

/* A grown group takes over the SO_REUSERPS state of the one it replaces;
 * under reuseport_lock.
 */
void reuserps_group_move(struct sock_reuseport *to, struct sock_reuseport *from)
{
	struct reuserps_group *g;

	g = rcu_dereference_protected(from->reuserps,
				      lockdep_is_held(&reuseport_lock));
	if (g)
		g->reuse = to;
	RCU_INIT_POINTER(to->reuserps, g);
}

/* Rebuilds the table of every group, each through a listening member:
 * after a topology change.  Groups made meanwhile already use the new
 * topology; the list is in creation order, so they are the ones left
 * out if it grew.  Each table is charged to its member's memory cgroup,
 * as listen() would charge it.
 */
static void reuserps_rebuild_all(void)
{
	struct mem_cgroup *memcg;
	struct reuserps_group *g;
	struct sock **sks;
	u32 i, n = 0, max;

	spin_lock_bh(&reuseport_lock);
	list_for_each_entry(g, &reuserps_groups, all)
		n++;
	spin_unlock_bh(&reuseport_lock);
	max = n;
	sks = kvmalloc_array(max ?: 1, sizeof(*sks), GFP_KERNEL);
	if (!sks)
		return;

	n = 0;
	spin_lock_bh(&reuseport_lock);
	list_for_each_entry(g, &reuserps_groups, all) {
		struct sock_reuseport *reuse = g->reuse;

		if (n == max)
			break;
		for (i = 0; i < reuse->num_socks; i++) {
			struct sock *sk = reuse->socks[i];

			/* A socket leaves socks[] in its destructor, once its
			 * last reference is gone, or is one alone in a group
			 * being freed: only a listener still referenced.
			 */
			if (READ_ONCE(sk->sk_state) != TCP_LISTEN ||
			    !reuserps_member_req(sk) ||
			    !refcount_inc_not_zero(&sk->sk_refcnt))
				continue;
			sks[n++] = sk;
			/* Not up to date any more: the next build rebuilds. */
			g->gen++;
			break;
		}
	}
	spin_unlock_bh(&reuseport_lock);

	for (i = 0; i < n; i++) {
		memcg = set_active_memcg(mem_cgroup_from_sk(sks[i]));
		lock_sock(sks[i]);
		reuserps_group_sync(sks[i]);
		release_sock(sks[i]);
		set_active_memcg(memcg);
		sock_put(sks[i]);
		cond_resched();
	}
	kvfree(sks);
}

static void reuserps_topo_update(struct work_struct *work)
{
	struct reuserps_topo_snap *snap, *old;
	bool same;

	cpus_read_lock();
	snap = reuserps_topo_read();
	cpus_read_unlock();
	/* Without memory, the old topology stays: only locality suffers. */
	if (!snap)
		return;
	mutex_lock(&reuserps_topo_lock);
	old = rcu_dereference_protected(reuserps_topo_cur,
					lockdep_is_held(&reuserps_topo_lock));
	/* Suspend and resume take every CPU down and up: rebuild only for
	 * a change.
	 */
	same = old && !memcmp(old->ids, snap->ids,
			      array_size(2 * (size_t)nr_cpu_ids, sizeof(u32)));
	if (!same)
		rcu_assign_pointer(reuserps_topo_cur, snap);
	mutex_unlock(&reuserps_topo_lock);
	if (same) {
		reuserps_topo_put(snap);
		return;
	}
	reuserps_topo_put(old);
	reuserps_rebuild_all();
}

static DECLARE_WORK(reuserps_topo_work, reuserps_topo_update);

/* A CPU came or went: read the topology once the operation is done (the
 * work waits for it in cpus_read_lock()).
 */
static int reuserps_cpu_changed(unsigned int cpu)
{
	queue_work(system_unbound_wq, &reuserps_topo_work);
	return 0;
}

static int __init reuserps_topo_init(void)
{
	int ret;

	ret = cpuhp_setup_state_nocalls(CPUHP_AP_ONLINE_DYN,
					"net/reuserps:online",
					reuserps_cpu_changed,
					reuserps_cpu_changed);
	if (ret < 0)
		pr_warn("no hotplug state (%d): topology read once\n", ret);
	queue_work(system_unbound_wq, &reuserps_topo_work);
	return 0;
}
late_initcall(reuserps_topo_init);

/* The listener for a connection on @cpu; NULL if the group has no table. */
static struct sock *reuserps_select_cpu(struct sock_reuseport *reuse, int cpu,
					u32 hash)
{
	const struct reuserps_table *t = reuserps_table_of(reuse);

	return t ? reuserps_table_select(t, cpu, hash) : NULL;
}

/**
 * __reuserps_turn - the listener @sk takes a connection request
 * @sk: a listener with SO_REUSERPS, answering a SYN on this CPU
 *
 * Moves this CPU's round-robin turn past @sk and counts the full
 * listeners passed over, in the table the SYN's lookup used (or its
 * successor).  Not when a program selects for the group.  Softirq.
 */
void __reuserps_turn(const struct sock *sk)
{
	const struct reuserps_table *t = NULL;
	struct sock_reuseport *reuse;

	rcu_read_lock();
	reuse = rcu_dereference(sk->sk_reuseport_cb);
	if (reuse && !rcu_access_pointer(reuse->prog))
		t = reuserps_table_of(reuse);
	if (t)
		reuserps_table_turn(t, raw_smp_processor_id(), sk);
	rcu_read_unlock();
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
