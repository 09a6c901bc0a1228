/* SPDX-License-Identifier: GPL-2.0 */
/*
 * SO_REUSERPS: a connection refused because its listener, and with it
 * every member that selection could pick, is at its cap.  ListenDrops
 * counts these drops; this says which listener was full and where.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM reuserps

#if !defined(_TRACE_REUSERPS_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TRACE_REUSERPS_H

#include <linux/sock_diag.h>
#include <linux/tracepoint.h>
#include <net/inet_sock.h>
#include <net/sock.h>

/*
 * reuserps_full - a listener at its cap refused a connection
 * @sk: the listener
 * @max_conns: its cap
 * @active: its active connections when it refused
 * @ack: false for a SYN, dropped before it is answered; true when the
 *	connection was to be created (the handshake's ACK, a SYN cookie's
 *	included), dropped as for a full accept queue.  A Fast Open SYN
 *	refused then goes on as a normal handshake and fires nothing.
 *
 * Fired on the CPU that processes the packet, which for a SYN is the CPU
 * whose listeners selection tried first.
 */
TRACE_EVENT(reuserps_full,
	    TP_PROTO(const struct sock *sk, u32 max_conns, u32 active,
		     bool ack),
	    TP_ARGS(sk, max_conns, active, ack),
	    TP_STRUCT__entry(__field(const void *, skaddr)
			     __field(u64, sock_cookie)
			     __field(int, cpu)
			     __field(u16, family)
			     __field(u16, sport)
			     __field(u32, max_conns)
			     __field(u32, active)
			     __field(bool, ack)),
	    /* sock_gen_cookie() sets the cookie once, atomically, as for
	     * tcp's events.
	     */
	    TP_fast_assign(__entry->skaddr = sk;
			   __entry->sock_cookie =
				sock_gen_cookie((struct sock *)sk);
			   __entry->cpu = raw_smp_processor_id();
			   __entry->family = sk->sk_family;
			   __entry->sport = inet_sk(sk)->inet_num;
			   __entry->max_conns = max_conns;
			   __entry->active = active;
			   __entry->ack = ack;),
	    TP_printk("sport=%u cpu=%d cookie=%llx cap=%u active=%u on=%s",
		      __entry->sport, __entry->cpu, __entry->sock_cookie,
		      __entry->max_conns, __entry->active,
		      __entry->ack ? "ack" : "syn")
);

#endif /* _TRACE_REUSERPS_H */

/* This part must be outside protection */
#include <trace/define_trace.h>
