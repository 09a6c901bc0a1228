/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Layout shared by reuserps_peer.bpf.c and its loader bpf_peer.c: the
 * maps' keys and values.  Part of what a user must keep in step.
 */
#ifndef PEER_SHARED_H
#define PEER_SHARED_H

#include <linux/types.h>

#define PEER_MAX_SLOTS		1024	/* listeners in one group */
#define PEER_MAX_CPUS		256	/* CPUs the config map covers */
#define PEER_MAX_PER_CPU	1024	/* listeners scanned on one CPU */
#define PEER_MAX_CONNS		65536	/* live connections tracked */
#define PEER_MAX_REQS		65536	/* reservations (hold mode) */

#define PEER_ROUND_ROBIN	0	/* same values as REUSERPS_* */
#define PEER_FILL_FIRST		1
#define PEER_LEAST_CONNS	2

/* cfg[0] */
struct peer_cfg {
	__u32 policy;
	__u32 nslots;
	__u64 hold_ns;		/* 0: caps checked against live conns only */
};

/* cpus[cpu]: the listeners of a CPU are slots first .. first + n - 1 */
struct peer_range {
	__u32 first;
	__u32 n;
};

/* slots[slot] */
struct peer_slot {
	__u32 cap;		/* 0: none */
	__u32 live;		/* counted by the sockops program */
	__u64 total;		/* ever counted on this slot */
	__u64 full_skips;	/* passed over at its cap */
	/* Hold mode: reservations of the two latest epochs of hold_ns,
	 * each word (epoch << 24 | count), changed by cmpxchg.
	 */
	__u64 win0;
	__u64 win1;
};

/* owner: BPF sk_storage set by the loader on each listener and cloned
 * (BPF_F_CLONE) into every child the kernel creates from it.
 */
struct peer_owner {
	__u32 slot;
	__u32 pad;
};

/* conns: socket cookie of a counted child -> where it counts */
struct peer_conn {
	__u32 slot;
	__u32 cpu;		/* CPU that completed its handshake */
};

/* reqs (hold mode): 4-tuple of a SYN -> its reservation */
struct peer_tuple {
	__u32 laddr[4];
	__u32 raddr[4];
	__u16 lport;		/* host order */
	__u16 rport;		/* host order */
	__u32 family;
};

struct peer_req {
	__u32 slot;
	__u32 pad;
	__u64 epoch;
};

/* stats[0] */
struct peer_stats {
	__u64 refused;		/* SK_DROP: every slot full (a RST, not a drop) */
	__u64 mig_refused;	/* migration refused: child/request reset */
	__u64 migrated_children;
	__u64 migrated_reqs;
	__u64 untracked;	/* conns map full: a child left uncounted */
};

#endif
