/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * SO_REUSERPS: steer each new connection of a SO_REUSEPORT group to a
 * listener registered for the CPU that processed its SYN (the RSS or RPS
 * CPU).  See Documentation/networking/reuserps.rst.
 */
#ifndef _UAPI_LINUX_REUSERPS_H
#define _UAPI_LINUX_REUSERPS_H

#include <linux/types.h>

/* How a connection picks among the listeners registered for its CPU. */
#define REUSERPS_ROUND_ROBIN	0	/* rotate over those with room */
#define REUSERPS_FILL_FIRST	1	/* first registered that has room */
#define REUSERPS_LEAST_CONNS	2	/* fewest active connections among
					 * those with room, ties in turn
					 */

/**
 * struct reuserps_req - argument of setsockopt(SOL_SOCKET, SO_REUSERPS)
 * @policy: REUSERPS_ROUND_ROBIN, REUSERPS_FILL_FIRST or
 *	REUSERPS_LEAST_CONNS; the same for every listener of a reuseport
 *	group
 * @max_conns: most connections handed to this listener that may be active
 *	at once; 0 for no cap
 * @flags: must be 0
 * @mask_words: number of 64-bit words in @cpus, at least 1
 * @cpus: CPU mask; bit (n % 64) of cpus[n / 64] set registers the
 *	listener for connections whose SYN is processed on CPU n
 *
 * optlen is sizeof(struct reuserps_req) + 8 * @mask_words.
 */
struct reuserps_req {
	__u32	policy;
	__u32	max_conns;
	__u32	flags;
	__u32	mask_words;
	__u64	cpus[];
};

/**
 * struct reuserps_info - result of getsockopt(SOL_SOCKET, SO_REUSERPS)
 * @policy: as set
 * @max_conns: as set
 * @active_conns: connections handed to this listener that have not ended
 * @flags: as set
 * @total_conns: connections ever handed to this listener
 * @full_skips: times the listener was passed over for being at its cap
 *
 * The kernel copies min(optlen, sizeof(struct reuserps_info)) bytes and
 * sets optlen to that, so the structure may grow at its end.
 */
struct reuserps_info {
	__u32	policy;
	__u32	max_conns;
	__u32	active_conns;
	__u32	flags;
	__u64	total_conns;
	__u64	full_skips;
};

/*
 * Attributes nested in INET_DIAG_REUSERPS, which sock_diag reports for a
 * TCP listener with SO_REUSERPS when INET_DIAG_INFO is asked for: its
 * request and its counts, as struct reuserps_info has them.
 */
enum {
	REUSERPS_DIAG_UNSPEC,
	REUSERPS_DIAG_PAD,
	REUSERPS_DIAG_POLICY,		/* u32 */
	REUSERPS_DIAG_MAX_CONNS,	/* u32, 0 for no cap */
	REUSERPS_DIAG_FLAGS,		/* u32 */
	REUSERPS_DIAG_ACTIVE,		/* u32 */
	REUSERPS_DIAG_TOTAL,		/* u64 */
	REUSERPS_DIAG_FULL_SKIPS,	/* u64 */
	REUSERPS_DIAG_CPUS,		/* u64[], the CPU mask's words */
	__REUSERPS_DIAG_MAX,
};

#define REUSERPS_DIAG_MAX	(__REUSERPS_DIAG_MAX - 1)

#endif /* _UAPI_LINUX_REUSERPS_H */
