// SPDX-License-Identifier: GPL-2.0
/*
 * bpf_peer_exact: the same scenarios on SO_REUSERPS and on the BPF peer
 * (bpf_peer.c), comparing the live connections each counts with those
 * the test knows of.  One line per scenario and mechanism:
 *
 *   R test=bpf_exact scenario=NAME mech=rps|bpf expected=N counted=N
 *     over_cap=N exact=0|1
 *
 * expected/counted are those of the scenario's main phase (see each);
 * exact=1 needs every phase of the scenario to match.  Lines starting
 * with '#' give the phases and per-listener details.
 *
 * Run as root, in a guest with veth and an `ip` command (busybox is
 * fine).  Each scenario and mechanism runs in a child process in its own
 * network namespace.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/reuserps.h>

#include "bpf_peer.h"

#ifndef SO_REUSERPS
#define SO_REUSERPS	86
#endif
#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN	0x20000000
#endif
#ifndef ETH_P_ALL
#define ETH_P_ALL	0x0003
#endif

#define MAXL		16
#define MECH_RPS	0
#define MECH_BPF	1

static int ncpus;

/* ---- small helpers ---- */

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static int sysctl_set(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	close(fd);
	return ok ? 0 : -1;
}

static long tcpext(const char *name)
{
	char n[4096], v[4096], *a, *b, *sa, *sb;
	long val = -1;
	FILE *f = fopen("/proc/net/netstat", "r");

	if (!f)
		return -1;
	while (fgets(n, sizeof(n), f) && fgets(v, sizeof(v), f)) {
		if (strncmp(n, "TcpExt:", 7))
			continue;
		a = strtok_r(n, " \n", &sa);
		b = strtok_r(v, " \n", &sb);
		while (a && b) {
			if (!strcmp(a, name))
				val = atol(b);
			a = strtok_r(NULL, " \n", &sa);
			b = strtok_r(NULL, " \n", &sb);
		}
	}
	fclose(f);
	return val;
}

static int netns_up(void)
{
	struct ifreq ifr = {};
	int fd;

	if (unshare(CLONE_NEWNET))
		return -1;
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return -1;
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
	return 0;
}

/*
 * 10.1.1.1 on v0, a veth whose peer carries nothing: what the kernel
 * sends to 10.1.1.2 or 10.1.1.3 leaves by v0 and is read there by a
 * packet socket; raw sockets speak for those addresses.
 */
static int veth_up(void)
{
	if (system("ip link add v0 type veth peer name v1"))
		return -1;
	if (system("ip link set v1 up 2>/dev/null"))
		system("ip link set veth0 up");	/* busybox names it so */
	if (system("ip link set v0 arp off up") ||
	    system("ip addr add 10.1.1.1/24 dev v0"))
		return -1;
	return 0;
}

static uint32_t sum16(const void *p, int len, uint32_t sum)
{
	const uint8_t *b = p;
	int i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (b[i] << 8) | b[i + 1];
	if (len & 1)
		sum += b[len - 1] << 8;
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons(~sum & 0xffff);
}

/* One bare TCP segment from @src:@sport to @dst:@dport (ports host order). */
static int raw_send(int raw, const char *src, int sport, const char *dst,
		    int dport, uint32_t seq, uint32_t ack, int syn)
{
	struct {
		struct iphdr ip;
		struct tcphdr th;
	} pk;
	struct {
		uint32_t s, d;
		uint8_t z, proto;
		uint16_t len;
	} ph;
	struct sockaddr_in to = { .sin_family = AF_INET };
	uint32_t sum;

	memset(&pk, 0, sizeof(pk));
	pk.ip.version = 4;
	pk.ip.ihl = 5;
	pk.ip.ttl = 64;
	pk.ip.protocol = IPPROTO_TCP;
	pk.ip.tot_len = htons(sizeof(pk));
	pk.ip.saddr = inet_addr(src);
	pk.ip.daddr = inet_addr(dst);
	pk.th.source = htons(sport);
	pk.th.dest = htons(dport);
	pk.th.seq = htonl(seq);
	pk.th.ack_seq = htonl(ack);
	pk.th.doff = 5;
	pk.th.syn = !!syn;
	pk.th.ack = !syn;
	pk.th.window = htons(65535);
	ph.s = pk.ip.saddr;
	ph.d = pk.ip.daddr;
	ph.z = 0;
	ph.proto = IPPROTO_TCP;
	ph.len = htons(sizeof(pk.th));
	sum = sum16(&ph, sizeof(ph), 0);
	sum = sum16(&pk.th, sizeof(pk.th), sum);
	pk.th.check = fold(sum);
	to.sin_addr.s_addr = pk.ip.daddr;
	return sendto(raw, &pk, sizeof(pk), 0, (struct sockaddr *)&to,
		      sizeof(to)) == sizeof(pk) ? 0 : -1;
}

static int packet_sock(void)
{
	struct sockaddr_ll ll = { .sll_family = AF_PACKET };
	int pk = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL));

	if (pk < 0)
		return -1;
	ll.sll_protocol = htons(ETH_P_ALL);
	ll.sll_ifindex = if_nametoindex("v0");
	if (bind(pk, (struct sockaddr *)&ll, sizeof(ll))) {
		close(pk);
		return -1;
	}
	return pk;
}

/*
 * Reads SYN+ACKs to ports [@base, @base + @n) off @pk into ack[] (the
 * ACK number to answer with); returns how many, waiting at most
 * @ms for each next one (a bound: refused SYNs get none).
 */
static int collect_synacks(int pk, int base, int n, uint32_t *ack, int ms)
{
	uint8_t buf[256];
	int got = 0;

	while (got < n) {
		struct pollfd pfd = { .fd = pk, .events = POLLIN };
		struct iphdr *ip = (struct iphdr *)buf;
		struct tcphdr *th;
		int i, len;

		if (poll(&pfd, 1, ms) != 1)
			break;
		len = recv(pk, buf, sizeof(buf), 0);
		if (len < (int)sizeof(*ip) + 20 || ip->version != 4 ||
		    ip->protocol != IPPROTO_TCP)
			continue;
		th = (struct tcphdr *)(buf + ip->ihl * 4);
		i = ntohs(th->dest) - base;
		if (!th->syn || !th->ack || i < 0 || i >= n || ack[i])
			continue;
		ack[i] = ntohl(th->seq) + 1;
		got++;
	}
	return got;
}

#define ISN(port)	(0x10000u * (port))

/* Whether @fd is an established TCP connection. */
static int tcp_state_ok(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return 0;
	return ti.tcpi_state == TCP_ESTABLISHED;
}

/* ---- a group on either mechanism ---- */

struct grp {
	int mech;
	int n;
	int fd[MAXL];
	unsigned cap[MAXL];
	struct sockaddr_in addr;
	struct peer peer;
	int peer_ok;
};

static int grp_open(struct grp *g, int mech, int policy, int n,
		    const int *cpu_of, const unsigned *caps, const char *ip,
		    int backlog, int fastopen, unsigned long long hold_ns)
{
	socklen_t alen = sizeof(g->addr);
	int i, one = 1;

	memset(g, 0, sizeof(*g));
	g->mech = mech;
	g->n = n;
	g->addr.sin_family = AF_INET;
	g->addr.sin_addr.s_addr = inet_addr(ip);
	for (i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		g->cap[i] = caps ? caps[i] : 0;
		g->fd[i] = fd;
		if (fd < 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
			return -1;
		if (mech == MECH_RPS) {
			cpu_set_t set;
			struct reuserps_req req = {
				.policy = policy,
				.max_conns = g->cap[i],
				.cpus_len = sizeof(set),
				.cpus = (uintptr_t)&set,
			};

			CPU_ZERO(&set);
			CPU_SET(cpu_of[i], &set);
			if (setsockopt(fd, SOL_SOCKET, SO_REUSERPS, &req,
				       sizeof(req))) {
				printf("# SO_REUSERPS: %s\n", strerror(errno));
				return -1;
			}
		}
		if (fastopen) {
			int q = 64;

			setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN, &q,
				   sizeof(q));
		}
		if (bind(fd, (struct sockaddr *)&g->addr, sizeof(g->addr)) ||
		    listen(fd, backlog))
			return -1;
		if (!i && getsockname(fd, (struct sockaddr *)&g->addr, &alen))
			return -1;
		fcntl(fd, F_SETFL, O_NONBLOCK);
	}
	if (mech == MECH_BPF) {
		struct peer_opts o = { .hold_ns = hold_ns };
		int err = peer_open_opts(&g->peer, policy, g->fd, cpu_of,
					 g->cap, n, &o);

		if (err) {
			printf("# peer_open: %s\n", strerror(-err));
			return -1;
		}
		g->peer_ok = 1;
	}
	return 0;
}

static unsigned grp_live(struct grp *g, int i)
{
	struct reuserps_info info;
	socklen_t len = sizeof(info);

	if (g->mech == MECH_BPF)
		return peer_live(&g->peer, i);
	if (g->fd[i] < 0)
		return 0;	/* closed: SO_REUSERPS cannot be asked */
	memset(&info, 0, sizeof(info));
	if (getsockopt(g->fd[i], SOL_SOCKET, SO_REUSERPS, &info, &len))
		return (unsigned)-1;
	return info.active_conns;
}

static long grp_sum(struct grp *g)
{
	long s = 0;
	int i;

	for (i = 0; i < g->n; i++)
		s += grp_live(g, i);
	return s;
}

/* The sum once it equals @want, or its last value after ~3 s. */
static long wait_sum(struct grp *g, long want)
{
	long s = -1;
	int k;

	for (k = 0; k < 300; k++) {
		s = grp_sum(g);
		if (s == want)
			break;
		usleep(10000);
	}
	return s;
}

static void grp_details(struct grp *g, const char *what)
{
	int i;

	printf("# %s live:", what);
	for (i = 0; i < g->n; i++)
		printf(" %u", grp_live(g, i));
	printf("\n");
	if (g->mech == MECH_BPF && g->peer_ok) {
		struct peer_stats st;

		if (!peer_stats(&g->peer, &st))
			printf("# bpf stats refused=%llu mig_refused=%llu "
			       "migrated_children=%llu migrated_reqs=%llu "
			       "untracked=%llu\n",
			       (unsigned long long)st.refused,
			       (unsigned long long)st.mig_refused,
			       (unsigned long long)st.migrated_children,
			       (unsigned long long)st.migrated_reqs,
			       (unsigned long long)st.untracked);
	}
}

/* Accepts what waits on every open listener; closes it with a RST. */
static int accept_rst_all(struct grp *g)
{
	struct linger l = { 1, 0 };
	int i, a, total = 0;

	for (i = 0; i < g->n; i++) {
		if (g->fd[i] < 0)
			continue;
		while ((a = accept(g->fd[i], NULL, NULL)) >= 0) {
			setsockopt(a, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
			close(a);
			total++;
		}
	}
	return total;
}

static void linger0_close(int fd)
{
	struct linger l = { 1, 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

static void grp_close(struct grp *g)
{
	int i;

	if (g->peer_ok)
		peer_close(&g->peer);
	for (i = 0; i < g->n; i++)
		if (g->fd[i] >= 0)
			close(g->fd[i]);
}

/*
 * The scenario's verdict, which its child process exits with: SO_REUSERPS
 * must be exact and hold its caps; the BPF peer must run (its results are
 * for make bench to report, not to pass or fail).
 */
static int verdict;

static void report(const char *scen, int mech, long expected, long counted,
		   long over_cap, int exact)
{
	if (mech == MECH_RPS)
		verdict = expected >= 0 && exact && over_cap == 0;
	else
		verdict = expected >= 0;
	printf("R test=bpf_exact scenario=%s mech=%s expected=%ld counted=%ld "
	       "over_cap=%ld exact=%d\n", scen, mech == MECH_RPS ? "rps" : "bpf",
	       expected, counted, over_cap, exact);
	fflush(stdout);
}

/* ---- scenarios ---- */

/*
 * Clients on every CPU connect, then reset (SO_LINGER 0) before the
 * server accepts.  Main phase: after the resets, 0 live.
 */
static void rst_before_accept(int mech)
{
	int cpu_of[MAXL], c[MAXL * 8], i, k, nc = 0;
	long e1, n1, n2;
	struct grp g;

	for (i = 0; i < ncpus; i++)
		cpu_of[i] = i;
	if (grp_open(&g, mech, PEER_ROUND_ROBIN, ncpus, cpu_of, NULL,
		     "127.0.0.1", 256, 0, 0))
		goto fail;
	for (i = 0; i < ncpus; i++) {
		pin(i);
		for (k = 0; k < 8; k++) {
			int fd = socket(AF_INET, SOCK_STREAM, 0);

			if (!connect(fd, (struct sockaddr *)&g.addr,
				     sizeof(g.addr)))
				c[nc++] = fd;
			else
				close(fd);
		}
	}
	e1 = nc;
	n1 = wait_sum(&g, e1);
	printf("# rst_before_accept connected: expected=%ld counted=%ld\n",
	       e1, n1);
	grp_details(&g, "connected");
	for (i = 0; i < nc; i++)
		linger0_close(c[i]);
	n2 = wait_sum(&g, 0);
	grp_details(&g, "after RSTs");
	report("rst_before_accept", mech, 0, n2, 0, n1 == e1 && n2 == 0);
	accept_rst_all(&g);
	grp_close(&g);
	return;
fail:
	report("rst_before_accept", mech, -1, -1, 0, 0);
}

/*
 * Two listeners of CPU 0, fill first: children and half-open requests
 * wait on the first, which closes (tcp_migrate_req=1): all must count on
 * the second.  Main phase: after the close and the requests' ACKs.
 */
static void migrate(int mech)
{
	int cpu_of[2] = { 0, 0 }, c[8], nc = 0, raw, pk, i, got, ok;
	uint32_t ack[8] = {};
	const int R = 4, K = 4, base = 42000;
	long n1, n2, n3, e2;
	struct grp g;

	sysctl_set("/proc/sys/net/ipv4/tcp_migrate_req", "1");
	if (veth_up() ||
	    grp_open(&g, mech, PEER_FILL_FIRST, 2, cpu_of, NULL, "10.1.1.1",
		     64, 0, 0))
		goto fail;
	raw = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	pk = packet_sock();
	if (raw < 0 || pk < 0)
		goto fail;
	pin(0);
	for (i = 0; i < K; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (!connect(fd, (struct sockaddr *)&g.addr, sizeof(g.addr)))
			c[nc++] = fd;
		else
			close(fd);
	}
	for (i = 0; i < R; i++)
		raw_send(raw, "10.1.1.2", base + i, "10.1.1.1",
			 ntohs(g.addr.sin_port), ISN(base + i), 0, 1);
	got = collect_synacks(pk, base, R, ack, 2000);
	n1 = wait_sum(&g, nc);
	printf("# migrate before close: children=%d requests=%d "
	       "counted=%ld\n", nc, got, n1);
	grp_details(&g, "before close");

	close(g.fd[0]);		/* children migrate now, requests on ACK */
	g.fd[0] = -1;
	for (i = 0; i < R; i++)
		if (ack[i])
			raw_send(raw, "10.1.1.2", base + i, "10.1.1.1",
				 ntohs(g.addr.sin_port), ISN(base + i) + 1,
				 ack[i], 0);
	e2 = nc + got;
	/* SO_REUSERPS cannot be asked on the closed one: count the open
	 * one only, for both mechanisms
	 */
	for (i = 0; i < 300; i++) {
		n2 = grp_live(&g, 1);
		if (n2 == e2)
			break;
		usleep(10000);
	}
	grp_details(&g, "after close");
	printf("# migrate: tcp_migrate_req failures=%ld successes=%ld\n",
	       tcpext("TCPMigrateReqFailure"), tcpext("TCPMigrateReqSuccess"));
	i = accept_rst_all(&g);
	for (ok = 0; ok < nc; ok++)
		close(c[ok]);
	n3 = wait_sum(&g, 0);
	printf("# migrate: accepted=%d then counted=%ld\n", i, n3);
	report("migrate", mech, e2, n2, 0, n1 == nc && n2 == e2 &&
	       i == e2 && n3 == 0);
	grp_close(&g);
	return;
fail:
	report("migrate", mech, -1, -1, 0, 0);
}

/*
 * One listener per CPU, cap 2.  Spoofed SYNs from 10.1.1.3 (never
 * ACKed), then from each CPU a burst of 3 * cap handshakes from
 * 10.1.1.2 (all SYNs, then all ACKs: in flight together), then one real
 * client per CPU.  What each listener got is accepted and compared to
 * its cap; counted vs the accepted connections, still open.
 */
static void syn_flood_caps(int mech, const char *name,
			   unsigned long long hold_ns)
{
	int cpu_of[MAXL], per[MAXL] = {}, cl[MAXL], i, j, raw, pk, got = 0;
	const unsigned CAP = 2;
	const int B = 3 * CAP, FLOOD = 16;
	unsigned caps[MAXL];
	uint32_t ack[MAXL * 8] = {};
	long expected = 0, counted, over = 0, real_ok = 0;
	int port, stable, k;
	struct grp g;

	for (i = 0; i < ncpus; i++) {
		cpu_of[i] = i;
		caps[i] = CAP;
	}
	sysctl_set("/proc/sys/net/ipv4/tcp_syncookies", "1");
	if (veth_up() ||
	    grp_open(&g, mech, PEER_ROUND_ROBIN, ncpus, cpu_of, caps,
		     "10.1.1.1", 256, 0, hold_ns))
		goto fail;
	port = ntohs(g.addr.sin_port);
	raw = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	pk = packet_sock();
	if (raw < 0 || pk < 0)
		goto fail;
	for (i = 0; i < ncpus; i++) {
		pin(i);
		for (j = 0; j < FLOOD; j++)
			raw_send(raw, "10.1.1.3", 30000 + i * 100 + j,
				 "10.1.1.1", port, ISN(j), 0, 1);
	}
	for (i = 0; i < ncpus; i++) {
		pin(i);
		for (j = 0; j < B; j++)
			raw_send(raw, "10.1.1.2", 43000 + i * B + j,
				 "10.1.1.1", port, ISN(43000 + i * B + j), 0,
				 1);
	}
	got = collect_synacks(pk, 43000, ncpus * B, ack, 300);
	for (i = 0; i < ncpus; i++) {
		pin(i);
		for (j = 0; j < B; j++)
			if (ack[i * B + j])
				raw_send(raw, "10.1.1.2", 43000 + i * B + j,
					 "10.1.1.1", port,
					 ISN(43000 + i * B + j) + 1,
					 ack[i * B + j], 0);
	}
	for (i = 0; i < ncpus; i++) {
		pin(i);
		cl[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(cl[i], (struct sockaddr *)&g.addr, sizeof(g.addr));
	}
	usleep(200000);		/* let them land; a refused SYN waits 1 s */
	for (i = 0; i < ncpus; i++) {
		int err = 0;
		socklen_t l = sizeof(err);

		getsockopt(cl[i], SOL_SOCKET, SO_ERROR, &err, &l);
		if (!err && tcp_state_ok(cl[i]))
			real_ok++;
	}
	/* Accept until the counts stand still (bounded). */
	for (k = 0, stable = 0; k < 300 && stable < 5; k++) {
		int before = 0, after = 0;

		for (i = 0; i < ncpus; i++)
			before += per[i];
		for (i = 0; i < ncpus; i++) {
			int a;

			while ((a = accept(g.fd[i], NULL, NULL)) >= 0) {
				per[i]++;
				/* kept open: it must stay counted */
				(void)a;
			}
		}
		for (i = 0; i < ncpus; i++)
			after += per[i];
		stable = after == before && grp_sum(&g) == after ?
			 stable + 1 : 0;
		usleep(10000);
	}
	for (i = 0; i < ncpus; i++) {
		expected += per[i];
		if (per[i] > (int)caps[i])
			over += per[i] - caps[i];
	}
	counted = grp_sum(&g);
	printf("# %s: synacks=%d/%d real clients connected=%ld/%d "
	       "ListenDrops=%ld ListenOverflows=%ld\n", name, got, ncpus * B,
	       real_ok, ncpus, tcpext("ListenDrops"),
	       tcpext("ListenOverflows"));
	printf("# %s accepted:", name);
	for (i = 0; i < ncpus; i++)
		printf(" %d", per[i]);
	printf("\n");
	grp_details(&g, name);
	report(name, mech, expected, counted, over,
	       counted == expected && !over);
	grp_close(&g);
	return;
fail:
	report(name, mech, -1, -1, -1, 0);
}

#define RACES 48

struct race {
	pthread_barrier_t go;
	int raw[2];
	int port;
	uint32_t ack[RACES];
};

struct racer {
	struct race *r;
	int i;
};

static void *race_run(void *arg)
{
	struct racer *me = arg;
	struct race *r = me->r;
	int i;

	pin(me->i);
	pthread_barrier_wait(&r->go);
	for (i = 0; i < RACES; i++)
		if (r->ack[i])
			raw_send(r->raw[me->i], "10.1.1.2", 41000 + i,
				 "10.1.1.1", r->port, ISN(41000 + i) + 1,
				 r->ack[i], 0);
	return NULL;
}

/*
 * RACES requests on CPU 0 (two listeners of CPU 0, fill first); each ACK
 * sent twice at once from CPUs 0 and 1.  Main phase: after the ACKs,
 * RACES live; then all reset, 0.
 */
static void acks_race(int mech)
{
	int cpu_of[2] = { 0, 0 }, pk, i, got, acc;
	struct racer rc[2];
	pthread_t th[2];
	struct race r;
	long n1, n2;
	struct grp g;

	memset(&r, 0, sizeof(r));
	if (ncpus < 2 || veth_up() ||
	    grp_open(&g, mech, PEER_FILL_FIRST, 2, cpu_of, NULL, "10.1.1.1",
		     256, 0, 0))
		goto fail;
	r.port = ntohs(g.addr.sin_port);
	pk = packet_sock();
	r.raw[0] = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	r.raw[1] = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
	if (pk < 0 || r.raw[0] < 0 || r.raw[1] < 0)
		goto fail;
	pin(0);
	for (i = 0; i < RACES; i++)
		raw_send(r.raw[0], "10.1.1.2", 41000 + i, "10.1.1.1", r.port,
			 ISN(41000 + i), 0, 1);
	got = collect_synacks(pk, 41000, RACES, r.ack, 2000);
	pthread_barrier_init(&r.go, NULL, 2);
	for (i = 0; i < 2; i++) {
		rc[i].r = &r;
		rc[i].i = i;
		pthread_create(&th[i], NULL, race_run, &rc[i]);
	}
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	n1 = wait_sum(&g, got);
	grp_details(&g, "after racing ACKs");
	acc = accept_rst_all(&g);
	n2 = wait_sum(&g, 0);
	printf("# acks_race: requests=%d accepted=%d after RST counted=%ld\n",
	       got, acc, n2);
	report("acks_race", mech, got, n1, 0,
	       got == RACES && n1 == got && acc == got && n2 == 0);
	grp_close(&g);
	return;
fail:
	report("acks_race", mech, -1, -1, 0, 0);
}

/*
 * Fast Open clients (tcp_fastopen=3: the first gets a cookie, the rest
 * send data in the SYN and their child is made at the SYN).  Main phase:
 * all connected; then reset by the clients, 0.
 */
static void fastopen(int mech)
{
	int cpu_of[MAXL], c[MAXL * 4], i, k, nc = 0;
	long tfo0, n1, n2;
	struct grp g;

	sysctl_set("/proc/sys/net/ipv4/tcp_fastopen", "3");
	for (i = 0; i < ncpus; i++)
		cpu_of[i] = i;
	if (grp_open(&g, mech, PEER_ROUND_ROBIN, ncpus, cpu_of, NULL,
		     "127.0.0.1", 256, 1, 0))
		goto fail;
	tfo0 = tcpext("TCPFastOpenPassive");
	for (i = 0; i < ncpus; i++) {
		pin(i);
		for (k = 0; k < 4; k++) {
			int fd = socket(AF_INET, SOCK_STREAM, 0);

			if (sendto(fd, "x", 1, MSG_FASTOPEN,
				   (struct sockaddr *)&g.addr,
				   sizeof(g.addr)) == 1)
				c[nc++] = fd;
			else
				close(fd);
		}
	}
	n1 = wait_sum(&g, nc);
	printf("# fastopen: clients=%d TCPFastOpenPassive=+%ld counted=%ld\n",
	       nc, tcpext("TCPFastOpenPassive") - tfo0, n1);
	grp_details(&g, "fastopen connected");
	for (i = 0; i < nc; i++)
		linger0_close(c[i]);
	n2 = wait_sum(&g, 0);
	printf("# fastopen: after RSTs counted=%ld\n", n2);
	report("fastopen", mech, nc, n1, 0, n1 == nc && n2 == 0);
	accept_rst_all(&g);
	grp_close(&g);
	return;
fail:
	report("fastopen", mech, -1, -1, 0, 0);
}

/* ---- driver ---- */

static void run(const char *name, int mech, int nr)
{
	const char *m = mech == MECH_RPS ? "rps" : "bpf";
	pid_t pid;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return;
	if (!pid) {
		alarm(120);	/* a hang is a failure, not a wait */
		if (netns_up()) {
			report(name, mech, -1, -1, 0, 0);
			_exit(1);
		}
		if (!strcmp(name, "rst_before_accept"))
			rst_before_accept(mech);
		else if (!strcmp(name, "migrate"))
			migrate(mech);
		else if (!strcmp(name, "syn_flood_caps"))
			syn_flood_caps(mech, name, 0);
		else if (!strcmp(name, "syn_flood_caps_hold"))
			syn_flood_caps(mech, name, 2000000000ULL);
		else if (!strcmp(name, "acks_race"))
			acks_race(mech);
		else if (!strcmp(name, "fastopen"))
			fastopen(mech);
		fflush(stdout);
		_exit(verdict ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st))
		printf("# %s mech=%s: child died (status %d)\n", name, m, st);
	printf("%sok %d - %s %s\n",
	       WIFEXITED(st) && !WEXITSTATUS(st) ? "" : "not ", nr, name,
	       mech == MECH_RPS ? "SO_REUSERPS exact" : "BPF peer ran");
}

int main(int argc, char **argv)
{
	static const char *const all[] = {
		"rst_before_accept", "migrate", "syn_flood_caps",
		"syn_flood_caps_hold", "acks_race", "fastopen",
	};
	int want[sizeof(all) / sizeof(all[0])] = {};
	int m, a, nr = 0, n = 0;
	unsigned i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	ncpus = get_nprocs();
	if (ncpus > MAXL)
		ncpus = MAXL;
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		for (want[i] = argc == 1, a = 1; a < argc; a++)
			if (!strcmp(argv[a], all[i]))
				want[i] = 1;
		n += want[i] * 2;
	}
	printf("TAP version 13\n1..%d\n", n);
	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (!want[i])
			continue;
		for (m = MECH_RPS; m <= MECH_BPF; m++)
			run(all[i], m, ++nr);
	}
	return 0;
}
