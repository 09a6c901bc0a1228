// SPDX-License-Identifier: GPL-2.0
/*
 * Not loaded, only compiled: harness/struct-sizes.sh reads the size of
 * each object below with nm -S, against the series' headers and the
 * base's, with the same configuration.
 */
#include <linux/module.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <net/inet_hashtables.h>
#include <net/request_sock.h>
#include <net/sock.h>
#include <net/sock_reuseport.h>
#include <net/tcp.h>
#include <linux/ipv6.h>

struct sock size_sock;
struct tcp_sock size_tcp_sock;
struct tcp6_sock size_tcp6_sock;
struct udp_sock size_udp_sock;
struct request_sock size_request_sock;
struct tcp_request_sock size_tcp_request_sock;
struct inet_connection_sock size_inet_connection_sock;
struct sock_reuseport size_sock_reuseport;
struct inet_bind_bucket size_inet_bind_bucket;
MODULE_DESCRIPTION("struct sizes, for harness/struct-sizes.sh");
MODULE_LICENSE("GPL");
