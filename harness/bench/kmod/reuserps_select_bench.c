// SPDX-License-Identifier: GPL-2.0
/*
 * Times reuseport_select_sock() on a listener's group, for make bench.
 *
 * Write "FD ITERS [NULL]" to /proc/reuserps_select_bench, FD a listening
 * TCP socket of the writer; read back the mean cost of one selection in
 * ns.  NULL=1 runs the same loop without the call: its cost is the
 * loop's.  Each selection gets a different flow hash and a minimal skb
 * (an IPv4 TCP SYN's headers), so BPF programs run as they would for a
 * SYN.  The loop runs under rcu_read_lock() with BHs and interrupts
 * disabled on the writer's CPU, so that under QEMU's -icount (one guest
 * ns per instruction) it counts the selection's instructions and nothing
 * else.  Not part of the series: project tooling only.
 */
#include <linux/file.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/net.h>
#include <linux/proc_fs.h>
#include <linux/skbuff.h>
#include <linux/tcp.h>
#include <linux/uaccess.h>
#include <net/sock.h>
#include <net/sock_reuseport.h>

static DEFINE_MUTEX(bench_lock);
static u64 last_ps;	/* picoseconds per selection */

static u64 time_select(struct sock *sk, u64 iters, struct sk_buff *skb,
		       bool null)
{
	unsigned long flags;
	struct sock *res;
	u64 i, t0, t1;
	u32 hash;

	local_bh_disable();
	rcu_read_lock();
	local_irq_save(flags);
	t0 = ktime_get_ns();
	for (i = 0; i < iters; i++) {
		hash = (u32)i * 2654435761u;
		skb->hash = hash;
		/* The compiler must keep the loop the same without the call. */
		res = null ? sk : reuseport_select_sock(sk, hash, skb,
							 sizeof(struct tcphdr));
		OPTIMIZER_HIDE_VAR(res);
		if (unlikely(!res))
			hash++;
	}
	t1 = ktime_get_ns();
	local_irq_restore(flags);
	rcu_read_unlock();
	local_bh_enable();
	return t1 - t0;
}

static ssize_t bench_write(struct file *file, const char __user *ubuf,
			   size_t len, loff_t *off)
{
	struct sk_buff *skb;
	struct socket *sock;
	char buf[64];
	int fd, err, null = 0;
	u64 iters, ns;

	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = 0;
	if (sscanf(buf, "%d %llu %d", &fd, &iters, &null) < 2 || !iters)
		return -EINVAL;
	sock = sockfd_lookup(fd, &err);
	if (!sock)
		return err;
	err = -EINVAL;
	if (sock->sk->sk_state != TCP_LISTEN ||
	    !rcu_access_pointer(sock->sk->sk_reuseport_cb))
		goto put;

	err = -ENOMEM;
	skb = alloc_skb(256, GFP_KERNEL);
	if (!skb)
		goto put;
	skb_reserve(skb, 64);
	skb_reset_network_header(skb);
	skb_put_zero(skb, sizeof(struct iphdr) + sizeof(struct tcphdr));
	ip_hdr(skb)->version = 4;
	ip_hdr(skb)->ihl = 5;
	ip_hdr(skb)->protocol = IPPROTO_TCP;
	skb_pull(skb, sizeof(struct iphdr));
	skb_reset_transport_header(skb);
	tcp_hdr(skb)->syn = 1;
	tcp_hdr(skb)->doff = 5;
	skb->protocol = htons(ETH_P_IP);

	mutex_lock(&bench_lock);
	ns = time_select(sock->sk, iters, skb, null);
	last_ps = div64_u64(ns * 1000, iters);
	mutex_unlock(&bench_lock);
	kfree_skb(skb);
	err = len;
put:
	sockfd_put(sock);
	return err;
}

static ssize_t bench_read(struct file *file, char __user *ubuf, size_t len,
			  loff_t *off)
{
	char buf[32];
	int n;

	mutex_lock(&bench_lock);
	n = scnprintf(buf, sizeof(buf), "%llu.%03llu\n", last_ps / 1000,
		      last_ps % 1000);
	mutex_unlock(&bench_lock);
	return simple_read_from_buffer(ubuf, len, off, buf, n);
}

static const struct proc_ops bench_ops = {
	.proc_write	= bench_write,
	.proc_read	= bench_read,
	.proc_lseek	= default_llseek,
};

static int __init bench_init(void)
{
	if (!proc_create("reuserps_select_bench", 0600, NULL, &bench_ops))
		return -ENOMEM;
	return 0;
}

static void __exit bench_exit(void)
{
	remove_proc_entry("reuserps_select_bench", NULL);
}

module_init(bench_init);
module_exit(bench_exit);
MODULE_DESCRIPTION("time reuseport_select_sock() for the SO_REUSERPS bench");
MODULE_LICENSE("GPL");
