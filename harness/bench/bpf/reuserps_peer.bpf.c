// SPDX-License-Identifier: GPL-2.0
/*
 * reuserps_peer: the closest a BPF user can get to SO_REUSERPS.
 *
 * Two programs share the maps of this object:
 *
 *  select_or_migrate  sk_reuseport, BPF_SK_REUSEPORT_SELECT_OR_MIGRATE,
 *                     attached to the reuseport group.  For a packet that
 *                     reaches the listeners (a SYN, a SYN cookie's ACK) it
 *                     picks a listener of the CPU running it, by policy,
 *                     under each slot's cap; on migration (a listener
 *                     closes, tcp_migrate_req or not: a MIGRATE program
 *                     always migrates) it picks the new one and moves the
 *                     child's count.
 *  count              cgroup sock_ops, on the root cgroup.  Counts a child
 *                     on BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB on the slot
 *                     of the listener it was cloned from, and uncounts it
 *                     once, on BPF_SOCK_OPS_STATE_CB to TCP_CLOSE.
 *
 * Attribution is exact: the loader puts {slot} in BPF sk_storage of each
 * listener, in a map with BPF_F_CLONE, so sk_clone_lock() copies it into
 * every child the kernel makes from that listener (whatever the path: ACK
 * of a request, SYN cookie, Fast Open SYN, a request migrated to another
 * listener before its ACK).  No 4-tuple guess is needed to know whose a
 * child is.
 *
 * Where BPF cannot be exact (see REPORT.md for the kernel references):
 *
 *  (1) Caps are checked only when select_or_migrate runs: on the SYN (and
 *      a SYN cookie's ACK), never on the ACK that creates a child from a
 *      request (tcp_check_req() finds the request in the ehash; no hook
 *      can refuse it, sock_ops cannot drop).  A burst of SYNs in flight
 *      all see the same live count and all get in: caps are soft.
 *      SO_REUSERPS re-checks at child creation and drops that ACK.
 *  (2) Hold mode (cfg.hold_ns != 0) closes (1) by reserving a slot at the
 *      SYN, atomically (cmpxchg) against the cap.  But BPF never learns
 *      when a request dies (SYN+ACK retries exhausted, RST on a request,
 *      reqsk_queue drop, SYN flood): no hook runs for a request's end.
 *      So a reservation can only expire by time, after hold_ns to
 *      2 * hold_ns.  A SYN flood therefore fills caps for that long
 *      (SO_REUSERPS: half-open requests hold nothing), and a handshake
 *      slower than hold_ns counts without a reservation (over the cap).
 *  (3) SK_DROP from sk_reuseport makes the lookup fail, and tcp_v4_rcv()
 *      answers with a RST (no_tcp_socket): a full group refuses the
 *      client, which does not retransmit.  SO_REUSERPS drops the SYN
 *      silently and the client gets in once a slot frees.
 *  (4) Counting starts at PASSIVE_ESTABLISHED_CB, run by
 *      tcp_rcv_state_process() under the child's lock right after
 *      tcp_check_req() made it (tcp_fastopen_create_child() for Fast
 *      Open), not at creation: a child that tcp_child_process() fails to
 *      establish sits in the accept queue uncounted.
 *  (5) The conns map is bounded (PEER_MAX_CONNS): a child that finds it
 *      full is not counted (stats.untracked).  Children that outlive
 *      peer_close() are not uncounted (the programs are gone).
 *  (6) The fallback when a CPU's listeners are full is "any slot with
 *      room", starting at the flow hash; the LLC and NUMA tiers of
 *      SO_REUSERPS would need topology pushed into a map by the loader.
 *  (7) Migration picks by the CPU that completed the child's handshake
 *      (recorded at PASSIVE_ESTABLISHED_CB); sk_incoming_cpu, which
 *      SO_REUSERPS uses, is not readable from migrating_sk (a
 *      sock_common).  A request migrates by the CPU running the program.
 *  (8) The sock_ops program runs for every TCP socket of the cgroup tree
 *      (the whole machine from the root cgroup) and the group's program
 *      for every packet that reaches the listeners.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "peer_shared.h"

#define AF_INET		2	/* <sys/socket.h> is libc's, not for BPF */
#define AF_INET6	10

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, PEER_MAX_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct peer_cfg);
} cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PEER_MAX_CPUS);
	__type(key, __u32);
	__type(value, struct peer_range);
} cpus SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PEER_MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct peer_slot);
} slots SEC(".maps");

/* The round robin turn of each CPU (SO_REUSERPS: one per CPU entry). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} turn SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct peer_owner);
} owner SEC(".maps");

/* Not LRU: an evicted entry would never be uncounted. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PEER_MAX_CONNS);
	__type(key, __u64);
	__type(value, struct peer_conn);
} conns SEC(".maps");

/* LRU is fine here: a lost reservation expires with its epoch anyway. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PEER_MAX_REQS);
	__type(key, struct peer_tuple);
	__type(value, struct peer_req);
} reqs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct peer_stats);
} stats SEC(".maps");

#define RD(x)		(*(volatile __u32 *)&(x))
#define CNT_BITS	24
#define CNT_MASK	((1ULL << CNT_BITS) - 1)
#define CAS_TRIES	8

static __always_inline void stat_inc(__u32 field)
{
	__u32 k = 0;
	struct peer_stats *st = bpf_map_lookup_elem(&stats, &k);

	if (!st)
		return;
	switch (field) {
	case 0: __sync_fetch_and_add(&st->refused, 1); break;
	case 1: __sync_fetch_and_add(&st->mig_refused, 1); break;
	case 2: __sync_fetch_and_add(&st->migrated_children, 1); break;
	case 3: __sync_fetch_and_add(&st->migrated_reqs, 1); break;
	case 4: __sync_fetch_and_add(&st->untracked, 1); break;
	}
}

static __always_inline struct peer_slot *slot_of(__u32 k)
{
	return bpf_map_lookup_elem(&slots, &k);
}

/* Reservations of @s still held at epoch @e (this one and the last). */
static __always_inline __u32 held(struct peer_slot *s, __u64 e)
{
	__u64 a = *(volatile __u64 *)&s->win0;
	__u64 b = *(volatile __u64 *)&s->win1;
	__u32 n = 0;

	if (!e)
		return 0;
	if ((a >> CNT_BITS) == e || (a >> CNT_BITS) == e - 1)
		n += a & CNT_MASK;
	if ((b >> CNT_BITS) == e || (b >> CNT_BITS) == e - 1)
		n += b & CNT_MASK;
	return n;
}

static __always_inline __u32 occupancy(struct peer_slot *s, __u64 e)
{
	return *(volatile __u32 *)&s->live + held(s, e);
}

static __always_inline int has_room(struct peer_slot *s, __u64 e)
{
	__u32 cap = *(volatile __u32 *)&s->cap;

	return !cap || occupancy(s, e) < cap;
}

/*
 * The helpers with loops are global (non-static) BPF functions: the
 * verifier checks each once, with unknown scalar arguments, instead of
 * once per call site and path (inlined, select_or_migrate passed the
 * 1M-instruction limit).
 */

/* Takes a reservation on slot @k at epoch @e unless that would pass its
 * cap; 1 if taken.
 */
__noinline int reserve_slot(__u32 k, __u64 e)
{
	struct peer_slot *s = slot_of(k);
	__u64 *w, *o;
	int i;

	if (!s || !e)
		return 0;
	w = (e & 1) ? &s->win1 : &s->win0;
	o = (e & 1) ? &s->win0 : &s->win1;
	for (i = 0; i < CAS_TRIES; i++) {
		__u64 old = *(volatile __u64 *)w, ow = *(volatile __u64 *)o;
		__u64 cur = (old >> CNT_BITS) == e ? old & CNT_MASK : 0;
		__u64 prev = (ow >> CNT_BITS) == e - 1 ? ow & CNT_MASK : 0;
		__u32 cap = s->cap;

		if (cap && *(volatile __u32 *)&s->live + cur + prev >= cap)
			return 0;
		if (__sync_val_compare_and_swap(w, old,
						(e << CNT_BITS) | (cur + 1)) == old)
			return 1;
	}
	return 0;
}

/* Gives back a reservation taken at epoch @e, if its epoch still holds. */
__noinline int unreserve_slot(__u32 k, __u64 e)
{
	struct peer_slot *s = slot_of(k);
	__u64 *w;
	int i;

	if (!s || !e)
		return 0;
	w = (e & 1) ? &s->win1 : &s->win0;
	for (i = 0; i < CAS_TRIES; i++) {
		__u64 old = *(volatile __u64 *)w;

		if ((old >> CNT_BITS) != e || !(old & CNT_MASK))
			return 0;
		if (__sync_val_compare_and_swap(w, old, old - 1) == old)
			return 1;
	}
	return 0;
}

/* Slots a selection tried already (their listener closed, or their last
 * room went to another SYN): up to PICK_TRIES, in any order.
 */
#define PICK_TRIES	8

struct peer_excl {
	__u32 n;
	__u32 k[PICK_TRIES];
};

static __always_inline int excluded(const struct peer_excl *x, __u32 k)
{
	__u32 j, n;

	if (!x)
		return 0;
	n = x->n;
	for (j = 0; j < PICK_TRIES; j++) {
		if (j >= n)
			break;
		if (x->k[j] == k)
			return 1;
	}
	return 0;
}

/* What a scan of slots (bpf_loop() callbacks) reads and finds. */
struct scan {
	const struct peer_excl *x;
	__u64 e;
	__u32 policy;
	__u32 first;		/* per CPU: slots first .. first + n - 1, */
	__u32 n;		/* from position tv in turn */
	__u32 tv;
	__u32 nslots;		/* any: slots from start on, modulo nslots */
	__u32 start;
	__u32 best;		/* ~0U: none yet */
	__u32 besti;		/* its position in the CPU's range */
	__u32 bestocc;
};

/*
 * Position @i in turn of the CPU's range (0: the first choice).  Round
 * robin and fill first stop (1) at the first slot with room; least
 * connections keeps the fewest (strict <: ties go to the earliest in
 * turn) and goes on.  A slot at its cap is passed over (full_skips).
 */
static __always_inline long visit(struct scan *sc, __u32 i)
{
	__u32 idx = i, k, o;
	struct peer_slot *s;

	if (sc->policy != PEER_FILL_FIRST) {
		idx = sc->tv + i;		/* tv, i < n */
		if (idx >= sc->n)
			idx -= sc->n;
	}
	k = sc->first + idx;
	s = slot_of(k);
	if (!s || excluded(sc->x, k))
		return 0;
	if (!has_room(s, sc->e)) {
		__sync_fetch_and_add(&s->full_skips, 1);
		return 0;
	}
	if (sc->policy != PEER_LEAST_CONNS) {
		sc->best = k;
		sc->besti = idx;
		return 1;
	}
	o = occupancy(s, sc->e);
	if (o < sc->bestocc) {
		sc->bestocc = o;
		sc->best = k;
		sc->besti = idx;
	}
	return 0;
}

/* bpf_loop() callbacks: the verifier checks each once, whatever the
 * number of slots.
 */
static long scan_cpu(__u64 i, void *ctx)
{
	return visit(ctx, i + 1);	/* position 0 was visited inline */
}

static long scan_any(__u64 i, void *ctx)
{
	struct scan *sc = ctx;
	struct peer_slot *s;
	__u32 k = sc->start + i;	/* start, i < nslots */

	if (k >= sc->nslots)
		k -= sc->nslots;
	s = slot_of(k);
	if (!s || excluded(sc->x, k) || !has_room(s, sc->e))
		return 0;
	sc->best = k;
	return 1;
}

/*
 * The slot for a connection of CPU @cpu by the policy among its slots
 * with room; else any slot with room from @hash on; -1 if none.  Slots
 * in @x (may be NULL: none) were tried already.  Advances the CPU's turn.
 *
 * The common case, the CPU's first choice has room (round robin, fill
 * first, or least connections with one listener on the CPU), is decided
 * inline; only the rest of the CPU's range (always, for least
 * connections with several listeners) and the whole-group fallback run
 * bpf_loop().
 */
__noinline int candidate(__u32 cpu, __u64 e, __u32 hash,
			 const struct peer_excl *x)
{
	struct peer_range *r = bpf_map_lookup_elem(&cpus, &cpu);
	__u32 zero = 0, *t = bpf_map_lookup_elem(&turn, &zero);
	struct peer_cfg *c = bpf_map_lookup_elem(&cfg, &zero);
	struct scan sc;
	__u32 nslots;

	if (!c)
		return -1;
	sc.x = x;
	sc.e = e;
	sc.policy = c->policy;
	sc.best = ~0U;
	nslots = c->nslots;

	if (r && t && r->n) {
		__u32 n = r->n, tv = *t;

		if (n > PEER_MAX_PER_CPU)
			n = PEER_MAX_PER_CPU;
		if (tv >= n)
			tv = 0;
		sc.first = r->first;
		sc.n = n;
		sc.tv = tv;
		sc.besti = 0;
		sc.bestocc = ~0U;
		if ((!visit(&sc, 0) || sc.policy == PEER_LEAST_CONNS) && n > 1)
			bpf_loop(n - 1, scan_cpu, &sc, 0);
		if (sc.best != ~0U) {
			if (sc.policy != PEER_FILL_FIRST)
				*t = sc.besti + 1 == n ? 0 : sc.besti + 1;
			return sc.best;
		}
	}

	/* The CPU has no listener with room: any slot with room. */
	if (!nslots || nslots > PEER_MAX_SLOTS)
		return -1;
	sc.nslots = nslots;
	sc.start = hash % nslots;
	bpf_loop(nslots, scan_any, &sc, 0);
	return sc.best == ~0U ? -1 : (int)sc.best;
}

/*
 * Hands the connection to the listener of candidate(), reserving a slot
 * first if @resv; a candidate whose listener closed (its sockarray entry
 * was emptied) or whose last room went meanwhile is excluded and the
 * next one tried.  The slot, or -1 (all full, or PICK_TRIES closed
 * listeners in a row: BPF cannot read the sockarray to skip those).
 */
static __always_inline int pick(struct sk_reuseport_md *md,
				struct peer_cfg *c, __u32 cpu, __u64 e,
				__u32 hash, int resv)
{
	struct peer_excl x, *xp = NULL;	/* NULL: nothing tried yet */
	int i, k;

	for (i = 0; i < PICK_TRIES; i++) {
		__u32 key;

		k = candidate(cpu, e, hash, xp);
		if (k < 0)
			return -1;
		if (resv && !reserve_slot(k, e))
			goto next;
		key = k;
		if (!bpf_sk_select_reuseport(md, &socks, &key, 0))
			return k;
		if (resv)
			unreserve_slot(k, e);
next:
		if (!xp) {
			__builtin_memset(&x, 0, sizeof(x));
			xp = &x;
		}
		x.k[i] = k;
		x.n = i + 1;
	}
	return -1;
}

static __always_inline __u64 epoch_now(struct peer_cfg *c)
{
	/* +1: epoch 0 is what an untouched window word holds */
	return c->hold_ns ? bpf_ktime_get_coarse_ns() / c->hold_ns + 1 : 0;
}

/* The 4-tuple of a packet reaching the listeners, from its headers. */
static __always_inline int tuple_of_skb(struct sk_reuseport_md *md,
					struct peer_tuple *t)
{
	__u16 ports[2];

	__builtin_memset(t, 0, sizeof(*t));
	if (bpf_skb_load_bytes(md, 0, ports, sizeof(ports)))	/* TCP hdr */
		return -1;
	t->rport = bpf_ntohs(ports[0]);
	t->lport = bpf_ntohs(ports[1]);
	if (md->eth_protocol == bpf_htons(ETH_P_IP)) {
		__u32 a[2];

		/* saddr, daddr at 12 in the IPv4 header */
		if (bpf_skb_load_bytes_relative(md, 12, a, sizeof(a),
						BPF_HDR_START_NET))
			return -1;
		t->family = AF_INET;
		t->raddr[0] = a[0];
		t->laddr[0] = a[1];
		return 0;
	}
	if (md->eth_protocol == bpf_htons(ETH_P_IPV6)) {
		__u32 a[8];

		/* saddr, daddr at 8 in the IPv6 header */
		if (bpf_skb_load_bytes_relative(md, 8, a, sizeof(a),
						BPF_HDR_START_NET))
			return -1;
		t->family = AF_INET6;
		__builtin_memcpy(t->raddr, &a[0], 16);
		__builtin_memcpy(t->laddr, &a[4], 16);
		return 0;
	}
	return -1;
}

static __always_inline void tuple_of_sk(struct bpf_sock *sk,
					struct peer_tuple *t)
{
	__builtin_memset(t, 0, sizeof(*t));
	t->family = sk->family;
	t->lport = sk->src_port;
	t->rport = bpf_ntohs(sk->dst_port);
	if (t->family == AF_INET) {
		t->laddr[0] = sk->src_ip4;
		t->raddr[0] = sk->dst_ip4;
	} else {
		t->laddr[0] = sk->src_ip6[0];
		t->laddr[1] = sk->src_ip6[1];
		t->laddr[2] = sk->src_ip6[2];
		t->laddr[3] = sk->src_ip6[3];
		t->raddr[0] = sk->dst_ip6[0];
		t->raddr[1] = sk->dst_ip6[1];
		t->raddr[2] = sk->dst_ip6[2];
		t->raddr[3] = sk->dst_ip6[3];
	}
}

/* Gives back what an earlier selection of this 4-tuple reserved. */
static __always_inline void drop_reservation(struct peer_tuple *t)
{
	struct peer_req *rq = bpf_map_lookup_elem(&reqs, t);

	if (!rq)
		return;
	unreserve_slot(rq->slot, rq->epoch);
	bpf_map_delete_elem(&reqs, t);
}

static __always_inline void note_reservation(struct peer_tuple *t, int k,
					     __u64 e)
{
	struct peer_req rq = { .slot = k, .epoch = e };

	bpf_map_update_elem(&reqs, t, &rq, BPF_ANY);
}

/*
 * A child in the accept queue of a closing listener (ESTABLISHED, or
 * SYN_RECV for Fast Open): already counted, on the slot its conns entry
 * names.  The kernel holds the child's lock (inet_csk_listen_stop()), as
 * it does when it runs the STATE_CB that uncounts it: the two cannot
 * interleave.
 */
static __always_inline int migrate_child(struct sk_reuseport_md *md,
					 struct peer_cfg *c,
					 struct bpf_sock *msk, __u64 e)
{
	__u64 cookie = bpf_get_socket_cookie(msk);
	struct peer_conn *pc = bpf_map_lookup_elem(&conns, &cookie);
	__u32 cpu = pc ? pc->cpu : bpf_get_smp_processor_id();
	int k = pick(md, c, cpu, e, md->hash, 0);
	struct peer_slot *from, *to;

	if (k < 0) {
		/* reset by the kernel; STATE_CB uncounts it where it was */
		stat_inc(1);
		return SK_DROP;
	}
	stat_inc(2);
	if (!pc || pc->slot == (__u32)k)
		return SK_PASS;
	from = slot_of(pc->slot);
	to = slot_of(k);
	if (!from || !to)
		return SK_PASS;
	/* If the kernel fails to queue it on the new listener after all,
	 * it closes it, and STATE_CB uncounts it there: still exact.
	 */
	pc->slot = k;
	__sync_fetch_and_add(&to->live, 1);
	__sync_fetch_and_add(&to->total, 1);
	__sync_fetch_and_sub(&from->live, 1);
	return SK_PASS;
}

SEC("sk_reuseport/migrate")
int select_or_migrate(struct sk_reuseport_md *md)
{
	__u32 zero = 0, cpu = bpf_get_smp_processor_id();
	struct peer_cfg *c = bpf_map_lookup_elem(&cfg, &zero);
	struct bpf_sock *msk;
	struct peer_tuple t;
	int k, resv = 0;
	__u64 e;

	if (!c)
		return SK_DROP;
	e = epoch_now(c);
	msk = md->migrating_sk;
	if (msk) {
		if (msk->state != BPF_TCP_NEW_SYN_RECV)
			return migrate_child(md, c, msk, e);
		/* A request: nothing counted yet; its child will be cloned
		 * from the new listener and counted there.  In hold mode,
		 * move its reservation.
		 */
		if (c->hold_ns) {
			tuple_of_sk(msk, &t);
			drop_reservation(&t);
		}
		k = pick(md, c, cpu, e, md->hash, c->hold_ns != 0);
		if (k < 0) {
			stat_inc(1);
			return SK_DROP;
		}
		if (c->hold_ns)
			note_reservation(&t, k, e);
		stat_inc(3);
		return SK_PASS;
	}

	if (c->hold_ns) {
		__u8 fl[2];	/* data offset byte, flags byte */

		if (bpf_skb_load_bytes(md, 12, fl, sizeof(fl)))
			return SK_DROP;
		/* a SYN, or a bare ACK that may be a SYN cookie's */
		resv = (fl[1] & 0x16) == 0x02 || (fl[1] & 0x16) == 0x10;
		if (resv) {
			if (tuple_of_skb(md, &t))
				resv = 0;
			else
				drop_reservation(&t);
		}
	}
	k = pick(md, c, cpu, e, md->hash, resv);
	if (k < 0) {
		stat_inc(0);
		return SK_DROP;		/* answered with a RST: see (3) */
	}
	if (resv)
		note_reservation(&t, k, e);
	return SK_PASS;
}

SEC("sockops")
int count(struct bpf_sock_ops *ops)
{
	struct peer_conn pc, *p;
	struct peer_owner *ow;
	struct bpf_sock *sk;
	struct peer_slot *s;
	__u64 cookie;

	switch (ops->op) {
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		sk = ops->sk;
		if (!sk)
			return 1;
		/* Only children of our listeners carry the cloned storage. */
		ow = bpf_sk_storage_get(&owner, sk, 0, 0);
		if (!ow)
			return 1;
		pc.slot = ow->slot;
		pc.cpu = bpf_get_smp_processor_id();
		bpf_sk_storage_delete(&owner, sk);
		s = slot_of(pc.slot);
		if (!s)
			return 1;
		cookie = bpf_get_socket_cookie(ops);
		/* NOEXIST: fires once per child, but count once whatever */
		if (bpf_map_update_elem(&conns, &cookie, &pc, BPF_NOEXIST)) {
			stat_inc(4);
			return 1;
		}
		__sync_fetch_and_add(&s->live, 1);
		__sync_fetch_and_add(&s->total, 1);
		bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags |
					  BPF_SOCK_OPS_STATE_CB_FLAG);
		{
			/* Hold mode: the reservation became a live count
			 * (counted first, given back after: never under).
			 */
			struct peer_tuple t = {};
			struct peer_req *rq;
			__u32 zero = 0;
			struct peer_cfg *c = bpf_map_lookup_elem(&cfg, &zero);

			if (!c || !c->hold_ns)
				return 1;
			/* every field read once, unconditionally: clang
			 * would otherwise select between ctx offsets, which
			 * the verifier refuses
			 */
			__u32 l6[4], r6[4], l4, r4, fam;

			fam = RD(ops->family);
			l4 = RD(ops->local_ip4);
			r4 = RD(ops->remote_ip4);
			l6[0] = RD(ops->local_ip6[0]);
			l6[1] = RD(ops->local_ip6[1]);
			l6[2] = RD(ops->local_ip6[2]);
			l6[3] = RD(ops->local_ip6[3]);
			r6[0] = RD(ops->remote_ip6[0]);
			r6[1] = RD(ops->remote_ip6[1]);
			r6[2] = RD(ops->remote_ip6[2]);
			r6[3] = RD(ops->remote_ip6[3]);
			t.family = fam;
			t.lport = RD(ops->local_port);
			t.rport = bpf_ntohl(RD(ops->remote_port));
			if (fam == AF_INET) {
				t.laddr[0] = l4;
				t.raddr[0] = r4;
			} else if (!l6[0] && !l6[1] &&
				   l6[2] == bpf_htonl(0xffff)) {
				/* IPv4 on a dual-stack listener: the SYN's
				 * tuple was IPv4
				 */
				t.family = AF_INET;
				t.laddr[0] = l6[3];
				t.raddr[0] = r6[3];
			} else {
				__builtin_memcpy(t.laddr, l6, 16);
				__builtin_memcpy(t.raddr, r6, 16);
			}
			rq = bpf_map_lookup_elem(&reqs, &t);
			if (rq) {
				unreserve_slot(rq->slot, rq->epoch);
				bpf_map_delete_elem(&reqs, &t);
			}
		}
		return 1;

	case BPF_SOCK_OPS_STATE_CB:
		if (ops->args[1] != BPF_TCP_CLOSE)
			return 1;
		cookie = bpf_get_socket_cookie(ops);
		p = bpf_map_lookup_elem(&conns, &cookie);
		if (!p)
			return 1;
		s = slot_of(p->slot);
		/* the delete that succeeds is the one that uncounts */
		if (!bpf_map_delete_elem(&conns, &cookie) && s)
			__sync_fetch_and_sub(&s->live, 1);
		return 1;
	}
	return 1;
}
