/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bpf_peer: SO_REUSERPS-like steering of a SO_REUSEPORT TCP group done
 * with BPF (reuserps_peer.bpf.c, embedded).  Needs root: CAP_BPF and
 * CAP_NET_ADMIN (CAP_SYS_ADMIN to mount cgroup2 if it is not mounted).
 */
#ifndef BPF_PEER_H
#define BPF_PEER_H

#include "peer_shared.h"

struct bpf_object;
struct bpf_link;

struct peer {
	struct bpf_object *obj;
	struct bpf_link *sockops;	/* on the root cgroup */
	int cg_fd;
	int fds[PEER_MAX_SLOTS];	/* not owned: the caller's listeners */
	unsigned long long cookies[PEER_MAX_SLOTS];	/* SO_COOKIE of each */
	int n;
	int slots_fd;
	int stats_fd;
	int attached;			/* the reuseport program is attached */
};

struct peer_opts {
	/* 0: caps checked at SYN against live connections (soft).
	 * > 0: a SYN reserves a slot under the cap for hold_ns to
	 * 2 * hold_ns, or until its child is counted.
	 */
	unsigned long long hold_ns;
};

/*
 * Steers the listening group @fds[0 .. @n) (all bound to one address and
 * port with SO_REUSEPORT, listening) by @policy (PEER_ROUND_ROBIN,
 * PEER_FILL_FIRST, PEER_LEAST_CONNS).  Listener i is slot i; it serves
 * CPU @cpu_of[i] under cap @caps[i] (0: none); a CPU's listeners are
 * consecutive slots.  Returns 0 or a negative errno; on failure nothing
 * stays attached.
 */
int peer_open(struct peer *p, int policy, const int *fds, const int *cpu_of,
	      const unsigned *caps, int n);
int peer_open_opts(struct peer *p, int policy, const int *fds,
		   const int *cpu_of, const unsigned *caps, int n,
		   const struct peer_opts *opts);

/* Live connections counted on @slot; (unsigned)-1 on error. */
unsigned peer_live(struct peer *p, int slot);

/* The whole slot (live, total, full_skips, ...); 0 or -errno. */
int peer_slot_info(struct peer *p, int slot, struct peer_slot *out);
int peer_stats(struct peer *p, struct peer_stats *out);

/* Detaches both programs and frees the maps. */
void peer_close(struct peer *p);

#endif
