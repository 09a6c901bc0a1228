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
 * @cpus_len: size in bytes of the CPU mask at @cpus
 * @cpus: pointer to the CPU mask, laid out as sched_setaffinity() takes
 *	it (a cpu_set_t, of any size: CPU_ALLOC() and CPU_ALLOC_SIZE()
 *	work); the listener takes connections whose SYN is processed on a
 *	CPU of the mask.  CPUs at or beyond the kernel's number of possible
 *	CPUs must not be set; zero bytes beyond them are ignored.
 * @max_pending: unaccepted connections in the listener's accept queue at
 *	which selection passes it over, as if it were full, while another
 *	listener has room; 0 for no limit, at most INT_MAX.  It moves
 *	connections away from a worker that stopped accepting, never
 *	refuses one.
 * @reserved: must be 0
 *
 * optlen is the size of the caller's struct, at least
 * REUSERPS_REQ_SIZE_VER0: a larger struct from a newer header is accepted
 * if the fields this kernel does not know are zero (else -E2BIG).  A
 * VER0 request has no max_pending limit.
 */
struct reuserps_req {
	__u32		policy;
	__u32		max_conns;
	__u32		flags;
	__u32		cpus_len;
	__aligned_u64	cpus;
	__u32		max_pending;
	__u32		reserved;
};

#define REUSERPS_REQ_SIZE_VER0	24
#define REUSERPS_REQ_SIZE_VER1	32	/* max_pending */

/**
 * struct reuserps_info - getsockopt(SOL_SOCKET, SO_REUSERPS)
 * @policy: as set
 * @max_conns: as set
 * @flags: as set
 * @cpus_len: in: size in bytes of the buffer at @cpus; out: size of the
 *	CPU mask, up to its highest CPU, in whole words of the caller's
 *	unsigned long
 * @cpus: in: where to write the CPU mask, or 0 to only learn @cpus_len;
 *	the bytes after the mask, up to the @cpus_len given, are zeroed.
 *	-ERANGE if the buffer is too small, with only @cpus_len written.
 * @active_conns: connections handed to this listener that have not ended
 * @reserved: 0
 * @total_conns: connections ever handed to this listener
 * @full_skips: times the listener was passed over for being at its cap
 *	or at max_pending
 * @max_pending: as set
 * @pending: connections in its accept queue now
 *
 * optlen is the size of the caller's struct, at least
 * REUSERPS_INFO_SIZE_VER0; fields it does not have are left out, fields
 * this kernel does not know are zeroed, and optlen is set to what the
 * kernel filled.
 */
struct reuserps_info {
	__u32		policy;
	__u32		max_conns;
	__u32		flags;
	__u32		cpus_len;
	__aligned_u64	cpus;
	__u32		active_conns;
	__u32		reserved;
	__u64		total_conns;
	__u64		full_skips;
	__u32		max_pending;
	__u32		pending;
};

#define REUSERPS_INFO_SIZE_VER0	48
#define REUSERPS_INFO_SIZE_VER1	56	/* max_pending, pending */

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
	REUSERPS_DIAG_CPUS,		/* u64[]: bit n % 64 of word n / 64
					 * is CPU n, up to the highest CPU
					 */
	REUSERPS_DIAG_MAX_PENDING,	/* u32, 0 for no limit */
	__REUSERPS_DIAG_MAX,
};

#define REUSERPS_DIAG_MAX	(__REUSERPS_DIAG_MAX - 1)

#endif /* _UAPI_LINUX_REUSERPS_H */
