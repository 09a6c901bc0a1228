// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS against its peers, in one guest boot (make bench).
 *
 * Mechanisms, each over the same listeners and the same load:
 *   hash      plain SO_REUSEPORT
 *   incpu     SO_REUSEPORT + SO_INCOMING_CPU on each listener
 *   incpu_n   the same, listener i for CPU id i (selection counts only)
 *   cbpf      SO_ATTACH_REUSEPORT_CBPF returning the CPU (SKF_AD_CPU)
 *   ebpf      sk_reuseport program, REUSEPORT_SOCKARRAY indexed by CPU
 *   bpf_peer  harness/bench/bpf: SO_REUSERPS's policies and caps in BPF
 *   rps_rr    SO_REUSERPS round robin
 *   rps_ff    SO_REUSERPS fill first, capped
 *
 * Over loopback the SYN is processed on the CPU of the connecting thread,
 * and each accepted socket reports that CPU (SO_INCOMING_CPU), so locality
 * is measured, not assumed.  Every line of output that starts with "R "
 * is a result, "key=value" pairs, which harness/bench.py turns into
 * tables and plots.
 *
 *   rate: K listeners per CPU, each with an accept thread pinned to its
 *         CPU; one client thread per CPU connects, sends its start time,
 *         closes, for D seconds.  Reports connections/s, locality (SYN CPU
 *         == listener's CPU), connect-to-accept latency p50/p99, and per
 *         CPU balance among its K listeners (max/min, coefficient of
 *         variation).
 *   overload: fill first with a cap per listener; clients hold their
 *         connections and ask for twice the total cap.  Reports how many
 *         got in, the highest active count any listener reached against
 *         its cap, ListenDrops, and the connect rate before and when full.
 *   rps:  the SYN's CPU chosen by RPS on lo (below);
 *   stall: two worker processes per CPU, one of each CPU stopped: how
 *         many connections are stranded in the stopped workers' accept
 *         queues, by mechanism, SO_REUSERPS with and without max_pending
 *         (below);
 *   icount: under QEMU's -icount, instructions per selection for N
 *         listeners (1..1024) and per connection (below).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/reuserps.h>
#include "bpf_peer.h"
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_L		1024
#define MAX_CPUS	64
#define MAX_SAMPLES	(1 << 20)

enum mech {
	HASH, INCPU, INCPU_N, CBPF, EBPF, BPF_PEER, RPS_RR, RPS_FF, NMECH
};
static const char *const mech_name[NMECH] = {
	"hash", "incpu", "incpu_n", "cbpf", "ebpf", "bpf_peer", "rps_rr",
	"rps_ff",
};

/*
 * Whether the comma-separated @list (NULL: the default) asks for @m.
 * incpu_n (listener i sets SO_INCOMING_CPU i: one listener per CPU id,
 * as on an N-CPU machine, seen from CPU 0) only counts selections: it is
 * run only when named.
 */
static bool want(const char *list, enum mech m)
{
	if (!list)
		return m != INCPU_N;
	return strstr(list, mech_name[m]);
}

static int ncpus;
/*
 * Fill first's cap in the rate runs: above what a listener holds there,
 * so that it shows the policy; the overload run shows the cap.
 */
static int ff_cap = 256;
static int wanted[NMECH];

static void die(const char *what)
{
	fprintf(stderr, "bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("sched_setaffinity");
}

/* TcpExt ListenDrops. */
static long listen_drops(void)
{
	char names[4096], values[4096], *n, *v, *sn, *sv;
	long drops = -1;
	FILE *f = fopen("/proc/net/netstat", "r");

	if (!f)
		return -1;
	while (fgets(names, sizeof(names), f) &&
	       fgets(values, sizeof(values), f)) {
		if (strncmp(names, "TcpExt:", 7))
			continue;
		n = strtok_r(names, "\n ", &sn);
		v = strtok_r(values, "\n ", &sv);
		while (n && v) {
			if (!strcmp(n, "ListenDrops"))
				drops = atol(v);
			n = strtok_r(NULL, "\n ", &sn);
			v = strtok_r(NULL, "\n ", &sv);
		}
	}
	fclose(f);
	return drops;
}

/* ---- groups ---- */

struct group {
	enum mech m;
	int n, per_cpu;
	int fd[MAX_L];
	int cpu[MAX_L];		/* the CPU listener i serves */
	struct sockaddr_in addr;
	int map_fd, prog_fd;
	struct peer peer;	/* BPF_PEER */
};

static int bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

/* index = cpu * k + (hash & (k - 1)), as classic BPF. */
static void attach_cbpf(struct group *g)
{
	struct sock_filter code[] = {
		{ BPF_LD | BPF_W | BPF_ABS, 0, 0, SKF_AD_OFF + SKF_AD_RXHASH },
		{ BPF_ALU | BPF_AND | BPF_K, 0, 0, g->per_cpu - 1 },
		{ BPF_MISC | BPF_TAX, 0, 0, 0 },
		{ BPF_LD | BPF_W | BPF_ABS, 0, 0, SKF_AD_OFF + SKF_AD_CPU },
		{ BPF_ALU | BPF_MUL | BPF_K, 0, 0, g->per_cpu },
		{ BPF_ALU | BPF_ADD | BPF_X, 0, 0, 0 },
		{ BPF_RET | BPF_A, 0, 0, 0 },
	};
	struct sock_fprog prog = { .len = 7, .filter = code };

	if (setsockopt(g->fd[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog,
		       sizeof(prog)))
		die("SO_ATTACH_REUSEPORT_CBPF");
}

#define INSN(c, d, s, o, i) ((struct bpf_insn){ c, d, s, o, i })

/* The same choice as an sk_reuseport program over a sockarray. */
static void attach_ebpf(struct group *g)
{
	struct bpf_insn insns[] = {
		INSN(BPF_ALU64 | BPF_MOV | BPF_X, 6, 1, 0, 0),
		INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_get_smp_processor_id),
		INSN(BPF_ALU64 | BPF_MUL | BPF_K, 0, 0, 0, g->per_cpu),
		INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 6,
		     offsetof(struct sk_reuseport_md, hash), 0),
		INSN(BPF_ALU64 | BPF_AND | BPF_K, 2, 0, 0, g->per_cpu - 1),
		INSN(BPF_ALU64 | BPF_ADD | BPF_X, 0, 2, 0, 0),
		INSN(BPF_STX | BPF_MEM | BPF_W, 10, 0, -4, 0),
		INSN(BPF_ALU64 | BPF_MOV | BPF_X, 1, 6, 0, 0),
		INSN(BPF_LD | BPF_DW | BPF_IMM, 2, BPF_PSEUDO_MAP_FD, 0, 0),
		INSN(0, 0, 0, 0, 0),
		INSN(BPF_ALU64 | BPF_MOV | BPF_X, 3, 10, 0, 0),
		INSN(BPF_ALU64 | BPF_ADD | BPF_K, 3, 0, 0, -4),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, 4, 0, 0, 0),
		INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_sk_select_reuseport),
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, SK_PASS),
		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	static char log[65536];
	union bpf_attr a;
	int i;

	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_REUSEPORT_SOCKARRAY;
	a.key_size = 4;
	a.value_size = 8;
	a.max_entries = g->n;
	g->map_fd = bpf(BPF_MAP_CREATE, &a);
	if (g->map_fd < 0)
		die("BPF_MAP_CREATE");
	insns[8].imm = g->map_fd;	/* the map's ld_imm64 */
	for (i = 0; i < g->n; i++) {
		__u32 key = i;
		__u64 val = g->fd[i];

		memset(&a, 0, sizeof(a));
		a.map_fd = g->map_fd;
		a.key = (unsigned long)&key;
		a.value = (unsigned long)&val;
		if (bpf(BPF_MAP_UPDATE_ELEM, &a))
			die("BPF_MAP_UPDATE_ELEM");
	}
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SK_REUSEPORT;
	a.expected_attach_type = BPF_SK_REUSEPORT_SELECT;
	a.insns = (unsigned long)insns;
	a.insn_cnt = sizeof(insns) / sizeof(insns[0]);
	a.license = (unsigned long)"GPL";
	a.log_buf = (unsigned long)log;
	a.log_size = sizeof(log);
	a.log_level = 1;
	g->prog_fd = bpf(BPF_PROG_LOAD, &a);
	if (g->prog_fd < 0) {
		fprintf(stderr, "%s\n", log);
		die("BPF_PROG_LOAD");
	}
	if (setsockopt(g->fd[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF,
		       &g->prog_fd, sizeof(g->prog_fd)))
		die("SO_ATTACH_REUSEPORT_EBPF");
}

/*
 * setsockopt(SO_REUSERPS) for CPU @cpu alone, with @max_pending (a VER1
 * request: 0 is also what a kernel without max_pending takes); 0 or errno.
 */
static int set_reuserps_pend(int fd, __u32 policy, __u32 cap, int cpu,
			     __u32 max_pending)
{
	struct reuserps_req b = {};
	__u64 cpus[16] = {};

	cpus[cpu / 64] = 1ULL << (cpu % 64);
	b.policy = policy;
	b.max_conns = cap;
	b.cpus = (__u64)(uintptr_t)cpus;
	b.cpus_len = sizeof(cpus);
	b.max_pending = max_pending;
	return setsockopt(fd, SOL_SOCKET, SO_REUSERPS, &b, sizeof(b)) ?
	       errno : 0;
}

static void set_reuserps(int fd, __u32 policy, __u32 cap, int cpu)
{
	errno = set_reuserps_pend(fd, policy, cap, cpu, 0);
	if (errno)
		die("SO_REUSERPS");
}

/*
 * n listeners on 127.0.0.1 (port 0: a new one), listener i serving CPU
 * i / (n / ncpus): a CPU's listeners are next to each other in the group,
 * as when each CPU's worker opens its own.
 */
static void group_open(struct group *g, enum mech m, int n, int cap)
{
	socklen_t alen = sizeof(g->addr);
	int i, one = 1;

	memset(g, 0, sizeof(*g));
	g->m = m;
	g->n = n;
	/* Fewer listeners than CPUs: listener i serves CPU i alone. */
	g->per_cpu = n >= ncpus ? n / ncpus : 1;
	g->addr.sin_family = AF_INET;
	g->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		if (fd < 0)
			die("socket");
		g->cpu[i] = i / g->per_cpu;
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one,
			       sizeof(one)))
			die("SO_REUSEPORT");
		if (m == RPS_RR)
			set_reuserps(fd, REUSERPS_ROUND_ROBIN, 0, g->cpu[i]);
		if (m == RPS_FF)
			set_reuserps(fd, REUSERPS_FILL_FIRST, cap, g->cpu[i]);
		if (m == INCPU &&
		    setsockopt(fd, SOL_SOCKET, SO_INCOMING_CPU, &g->cpu[i],
			       sizeof(int)))
			die("SO_INCOMING_CPU");
		if (m == INCPU_N &&
		    setsockopt(fd, SOL_SOCKET, SO_INCOMING_CPU, &i, sizeof(i)))
			die("SO_INCOMING_CPU");
		if (bind(fd, (struct sockaddr *)&g->addr, sizeof(g->addr)))
			die("bind");
		if (listen(fd, 4096))
			die("listen");
		if (!i && getsockname(fd, (struct sockaddr *)&g->addr, &alen))
			die("getsockname");
		g->fd[i] = fd;
	}
	if (m == CBPF)
		attach_cbpf(g);
	if (m == EBPF)
		attach_ebpf(g);
	if (m == BPF_PEER) {
		static const unsigned int nocaps[MAX_L];
		int err = peer_open(&g->peer, PEER_ROUND_ROBIN, g->fd, g->cpu,
				    nocaps, n);

		if (err) {
			errno = -err;
			die("peer_open");
		}
	}
}

static void group_close(struct group *g)
{
	int i;

	for (i = 0; i < g->n; i++)
		close(g->fd[i]);
	if (g->m == BPF_PEER)
		peer_close(&g->peer);
	if (g->m == EBPF) {
		close(g->prog_fd);
		close(g->map_fd);
	}
}

/* ---- rate, locality, latency, balance ---- */

struct server {
	pthread_t t;
	struct group *g;
	int i;
	volatile int stop;
	long conns, local;
	double *lat;
	long nlat;
};

struct client {
	pthread_t t;
	struct group *g;
	int cpu;
	double until;
	long done;
};

static void *server_main(void *arg)
{
	struct server *s = arg;
	struct pollfd pfd = { .fd = s->g->fd[s->i], .events = POLLIN };

	pin(s->g->cpu[s->i]);
	while (!s->stop) {
		socklen_t len = sizeof(int);
		double t0;
		int c, cpu;

		if (poll(&pfd, 1, 50) <= 0)
			continue;
		c = accept(s->g->fd[s->i], NULL, NULL);
		if (c < 0)
			continue;
		s->conns++;
		if (!getsockopt(c, SOL_SOCKET, SO_INCOMING_CPU, &cpu, &len) &&
		    cpu == s->g->cpu[s->i])
			s->local++;
		if (read(c, &t0, sizeof(t0)) == sizeof(t0) &&
		    s->nlat < MAX_SAMPLES)
			s->lat[s->nlat++] = now() - t0;
		close(c);
	}
	return NULL;
}

static void *client_main(void *arg)
{
	struct client *c = arg;

	pin(c->cpu);
	while (now() < c->until) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		double t0 = now();

		if (fd < 0)
			die("socket");
		if (!connect(fd, (struct sockaddr *)&c->g->addr,
			     sizeof(c->g->addr)) &&
		    write(fd, &t0, sizeof(t0)) == sizeof(t0))
			c->done++;
		close(fd);
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void run_rate(enum mech m, int per_cpu, double secs, int rep)
{
	static struct server srv[MAX_L];
	static struct client cli[MAX_CPUS];
	double *all, t0, elapsed, worst = 1, cv_sum = 0;
	long conns = 0, local = 0, done = 0, nall = 0;
	struct group g;
	int i, cpu;

	group_open(&g, m, ncpus * per_cpu, ff_cap);
	for (i = 0; i < g.n; i++) {
		srv[i] = (struct server){ .g = &g, .i = i };
		srv[i].lat = malloc(sizeof(double) * MAX_SAMPLES);
		if (!srv[i].lat)
			die("malloc");
		pthread_create(&srv[i].t, NULL, server_main, &srv[i]);
	}
	t0 = now();
	for (cpu = 0; cpu < ncpus; cpu++) {
		cli[cpu] = (struct client){ .g = &g, .cpu = cpu,
					    .until = t0 + secs };
		pthread_create(&cli[cpu].t, NULL, client_main, &cli[cpu]);
	}
	for (cpu = 0; cpu < ncpus; cpu++) {
		pthread_join(cli[cpu].t, NULL);
		done += cli[cpu].done;
	}
	elapsed = now() - t0;
	usleep(200000);
	for (i = 0; i < g.n; i++) {
		srv[i].stop = 1;
		pthread_join(srv[i].t, NULL);
		conns += srv[i].conns;
		local += srv[i].local;
		nall += srv[i].nlat;
	}
	all = malloc(sizeof(double) * (nall + 1));
	if (!all)
		die("malloc");
	for (i = 0, nall = 0; i < g.n; i++) {
		memcpy(all + nall, srv[i].lat, sizeof(double) * srv[i].nlat);
		nall += srv[i].nlat;
		free(srv[i].lat);
	}
	qsort(all, nall, sizeof(double), cmp_double);

	/* Balance among the listeners of each CPU. */
	for (cpu = 0; cpu < ncpus; cpu++) {
		double sum = 0, sq = 0, mean, mx = 0, mn = 1e18;

		for (i = cpu * per_cpu; i < (cpu + 1) * per_cpu; i++) {
			double x = srv[i].conns;

			sum += x;
			sq += x * x;
			mx = x > mx ? x : mx;
			mn = x < mn ? x : mn;
		}
		mean = sum / per_cpu;
		if (mean > 0)
			cv_sum += sqrt(sq / per_cpu - mean * mean) / mean;
		if (mn > 0 && mx / mn > worst)
			worst = mx / mn;
		else if (mn == 0 && mx > 0)
			worst = INFINITY;
	}
	printf("R test=rate mech=%s per_cpu=%d rep=%d secs=%.2f conns=%ld "
	       "client_done=%ld rate=%.1f locality=%.4f p50_us=%.1f "
	       "p99_us=%.1f balance_maxmin=%.3f balance_cv=%.4f\n",
	       mech_name[m], per_cpu, rep, elapsed, conns, done,
	       conns / elapsed, conns ? (double)local / conns : 0,
	       nall ? all[nall / 2] * 1e6 : 0,
	       nall ? all[nall * 99 / 100] * 1e6 : 0, worst,
	       cv_sum / ncpus);
	fflush(stdout);
	free(all);
	group_close(&g);
}

/* ---- overload ---- */

static void run_overload(int cap)
{
	int held[MAX_L * 8], nheld = 0, acc[MAX_L * 8], nacc = 0;
	int i, k, cpu, want, got = 0, max_active = 0, tried = 0;
	double t0, fill_secs, full_secs;
	struct reuserps_info info = {};
	socklen_t len;
	struct group g;
	long drops;

	group_open(&g, RPS_FF, ncpus, cap);
	for (i = 0; i < g.n; i++)
		fcntl(g.fd[i], F_SETFL, O_NONBLOCK);
	want = 2 * cap * ncpus;
	drops = listen_drops();
	t0 = now();
	fill_secs = 0;
	full_secs = 0;
	for (k = 0; k < want; k++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		double t1 = now();
		int err = 0;

		cpu = k % ncpus;
		pin(cpu);
		tried++;
		if (connect(fd, (struct sockaddr *)&g.addr, sizeof(g.addr)) &&
		    errno != EINPROGRESS)
			die("connect");
		len = sizeof(err);
		if (poll(&p, 1, 300) == 1 &&
		    !getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) &&
		    !err) {
			held[nheld++] = fd;
			got++;
			fill_secs += now() - t1;
		} else {
			close(fd);
			full_secs += now() - t1;
		}
		/* Accept what came in, and keep it open. */
		for (i = 0; i < g.n; i++) {
			int a;

			while ((a = accept(g.fd[i], NULL, NULL)) >= 0)
				acc[nacc++] = a;
			len = sizeof(info);
			if (!getsockopt(g.fd[i], SOL_SOCKET, SO_REUSERPS,
					&info, &len) &&
			    (int)info.active_conns > max_active)
				max_active = info.active_conns;
		}
	}
	printf("R test=overload mech=rps_ff cap=%d listeners=%d asked=%d "
	       "got=%d max_active=%d over_cap=%d listen_drops=%ld "
	       "secs=%.2f connect_ms_room=%.2f connect_ms_full=%.2f\n",
	       cap, g.n, tried, got, max_active, max_active > cap,
	       listen_drops() - drops, now() - t0,
	       got ? fill_secs * 1e3 / got : 0,
	       tried > got ? full_secs * 1e3 / (tried - got) : 0);
	fflush(stdout);
	for (i = 0; i < nheld; i++)
		close(held[i]);
	for (i = 0; i < nacc; i++)
		close(acc[i]);
	group_close(&g);
}

/* ---- selection cost, timed in the kernel ---- */

static int select_ns_mode(int fd, long iters, int null, double *ns)
{
	char buf[128];
	int pf, n;

	pf = open("/proc/reuserps_select_bench", O_RDWR);
	if (pf < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%d %ld %d", fd, iters, null);
	if (write(pf, buf, n) != n) {
		close(pf);
		return -1;
	}
	n = pread(pf, buf, sizeof(buf) - 1, 0);
	close(pf);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	*ns = atof(buf);
	return 0;
}

static int select_ns(int fd, long iters, double *ns)
{
	return select_ns_mode(fd, iters, 0, ns);
}

/* ---- under RPS: the SYN's CPU is chosen by RPS, not by the client ---- */

/*
 * With rps_cpus set on lo's receive queue (RFS off), loopback_xmit()'s
 * __netif_rx() queues every packet to the backlog of the CPU its flow hash
 * picks from that mask (an IPI to it), so the SYN, the SYN+ACK and the
 * ACK of a connection are processed there, whichever CPU the client runs
 * on.  One listener per CPU with one accept thread pinned to it, blocked
 * in accept(); one client thread per CPU, each making a fixed number of
 * connections.  Counted per connection, around the run only:
 *   local     accepted on the SYN's CPU (SO_INCOMING_CPU of the accepted
 *             socket == the accepting thread's CPU);
 *   wakeups   of the accept threads, and how many came from another CPU
 *             (sched_waking in tracefs: the event's CPU is the waker's,
 *             target_cpu the wakee's);
 *   IPIs      rescheduling and function call interrupts, all CPUs
 *             (/proc/interrupts RES and CAL), and how many of them were
 *             RPS's own, one per backlog kicked on another CPU
 *             (received_rps, /proc/net/softnet_stat): the rest are the
 *             ones the mechanism can change, mostly remote wakeups;
 *   net_rx    NET_RX softirqs, per CPU (/proc/softirqs);
 *   cs        context switches of the accept threads (getrusage).
 */
#define TRACEFS "/sys/kernel/tracing/"

static int write_str(const char *path, const char *v)
{
	int fd = open(path, O_WRONLY | O_TRUNC), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, v, strlen(v)) == (ssize_t)strlen(v);
	close(fd);
	return ok ? 0 : -1;
}

/* Sum of the /proc/interrupts rows named (RES:, CAL:). */
static long irq_row(const char *name)
{
	char line[4096], *p, *end;
	long sum = 0;
	FILE *f = fopen("/proc/interrupts", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		p = line + strspn(line, " ");
		if (strncmp(p, name, strlen(name)))
			continue;
		p += strlen(name);
		for (;;) {
			long v = strtol(p, &end, 10);

			if (end == p)
				break;
			sum += v;
			p = end;
		}
	}
	fclose(f);
	return sum;
}

/* Times a CPU was kicked by RPS's IPI, summed over CPUs (the tenth
 * column of /proc/net/softnet_stat, in hex).
 */
static long rps_ipis(void)
{
	unsigned long v[10];
	char line[512];
	long sum = 0;
	FILE *f = fopen("/proc/net/softnet_stat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx %lx %lx %lx %lx %lx %lx %lx %lx %lx",
			   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
			   &v[7], &v[8], &v[9]) == 10)
			sum += v[9];
	fclose(f);
	return sum;
}

/* NET_RX softirqs per CPU. */
static void net_rx(long *v)
{
	char line[4096], *p, *end;
	FILE *f = fopen("/proc/softirqs", "r");
	int c;

	for (c = 0; c < ncpus; c++)
		v[c] = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		p = line + strspn(line, " ");
		if (strncmp(p, "NET_RX:", 7))
			continue;
		p += 7;
		for (c = 0; c < ncpus; c++) {
			v[c] = strtol(p, &end, 10);
			if (end == p)
				break;
			p = end;
		}
	}
	fclose(f);
}

struct rps_server {
	pthread_t t;
	int fd, cpu;
	long conns, local, cs;
};

struct rps_client {
	pthread_t t;
	struct sockaddr_in *addr;
	int cpu, conns;
};

static void *rps_server_main(void *arg)
{
	struct rps_server *s = arg;
	struct rusage r0, r1;

	pin(s->cpu);
	prctl(PR_SET_NAME, "rpsacc");
	getrusage(RUSAGE_THREAD, &r0);
	for (;;) {
		socklen_t len = sizeof(int);
		int c, cpu;

		c = accept(s->fd, NULL, NULL);
		if (c < 0)
			break;		/* shut down: the run is over */
		__atomic_fetch_add(&s->conns, 1, __ATOMIC_RELAXED);
		if (!getsockopt(c, SOL_SOCKET, SO_INCOMING_CPU, &cpu, &len) &&
		    cpu == s->cpu)
			s->local++;
		close(c);
	}
	getrusage(RUSAGE_THREAD, &r1);
	s->cs = r1.ru_nvcsw + r1.ru_nivcsw - r0.ru_nvcsw - r0.ru_nivcsw;
	return NULL;
}

/* One connection to @addr, closed at once; -1 if connect() failed. */
static int connect_close(const struct sockaddr_in *addr)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), err;

	if (fd < 0)
		die("socket");
	err = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	close(fd);
	return err ? -1 : 0;
}

static void *rps_client_main(void *arg)
{
	struct rps_client *c = arg;
	int k;

	pin(c->cpu);
	for (k = 0; k < c->conns; k++)
		if (connect_close(c->addr))
			die("connect under RPS");
	return NULL;
}

/* Wakeups of the accept threads in the trace: all, and from another CPU. */
static void count_wakeups(long *all, long *remote)
{
	char line[1024], *b, *t;
	FILE *f = fopen(TRACEFS "trace", "r");

	*all = *remote = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || !strstr(line, "sched_waking:") ||
		    !strstr(line, "comm=rpsacc"))
			continue;
		b = strchr(line, '[');
		t = strstr(line, "target_cpu=");
		if (!b || !t)
			continue;
		(*all)++;
		if (atoi(b + 1) != atoi(t + 11))
			(*remote)++;
	}
	fclose(f);
}

static int rps_setup(void)
{
	unsigned long all = ncpus >= 64 ? ~0UL : (1UL << ncpus) - 1;
	char mask[32];

	/* Groups of 32 bits, as bitmap_parse() reads them. */
	if (all >> 32)
		snprintf(mask, sizeof(mask), "%lx,%08lx", all >> 32,
			 all & 0xffffffffUL);
	else
		snprintf(mask, sizeof(mask), "%lx", all);
	if (write_str("/sys/class/net/lo/queues/rx-0/rps_cpus", mask) ||
	    write_str("/proc/sys/net/core/rps_sock_flow_entries", "0"))
		return -1;
	mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL);
	if (write_str(TRACEFS "buffer_size_kb", "8192") ||
	    write_str(TRACEFS "events/sched/sched_waking/filter",
		      "comm == \"rpsacc\""))
		return -1;
	return 0;
}

static void run_rps(enum mech m, int conns, int rep)
{
	static struct rps_server srv[MAX_CPUS];
	static struct rps_client cli[MAX_CPUS];
	long rx0[MAX_CPUS], rx1[MAX_CPUS], res0, cal0, rps0, res, cal, rps;
	long wk, remote, got = 0, local = 0, cs = 0, rxmin = -1;
	struct group g;
	int i;

	group_open(&g, m, ncpus, m == RPS_FF ? conns : 0);
	for (i = 0; i < ncpus; i++) {
		srv[i] = (struct rps_server){ .fd = g.fd[i], .cpu = g.cpu[i] };
		pthread_create(&srv[i].t, NULL, rps_server_main, &srv[i]);
	}
	usleep(100000);		/* the accept threads block */
	write_str(TRACEFS "trace", "");
	write_str(TRACEFS "events/sched/sched_waking/enable", "1");
	res0 = irq_row("RES:");
	cal0 = irq_row("CAL:");
	rps0 = rps_ipis();
	net_rx(rx0);
	for (i = 0; i < ncpus; i++) {
		cli[i] = (struct rps_client){ .addr = &g.addr, .cpu = i,
					      .conns = conns / ncpus };
		pthread_create(&cli[i].t, NULL, rps_client_main, &cli[i]);
	}
	for (i = 0; i < ncpus; i++)
		pthread_join(cli[i].t, NULL);
	/* Let the last connections reach accept(). */
	for (i = 0; i < 100; i++) {
		long n = 0;
		int j;

		for (j = 0; j < ncpus; j++)
			n += __atomic_load_n(&srv[j].conns, __ATOMIC_RELAXED);
		if (n >= conns / ncpus * ncpus)
			break;
		usleep(20000);
	}
	res = irq_row("RES:") - res0;
	cal = irq_row("CAL:") - cal0;
	rps = rps_ipis() - rps0;
	net_rx(rx1);
	write_str(TRACEFS "events/sched/sched_waking/enable", "0");
	count_wakeups(&wk, &remote);
	for (i = 0; i < ncpus; i++) {
		shutdown(g.fd[i], SHUT_RDWR);
		pthread_join(srv[i].t, NULL);
		got += srv[i].conns;
		local += srv[i].local;
		cs += srv[i].cs;
		if (rxmin < 0 || rx1[i] - rx0[i] < rxmin)
			rxmin = rx1[i] - rx0[i];
	}
	printf("R test=rps mech=%s rep=%d conns=%ld local=%.4f "
	       "wakeups=%.3f remote_wakeups=%.3f ipi_res=%.3f ipi_cal=%.3f "
	       "ipi=%.3f ipi_rps=%.3f ipi_other=%.3f cs=%.3f "
	       "net_rx_min_cpu=%ld",
	       mech_name[m], rep, got, got ? (double)local / got : 0,
	       (double)wk / got, (double)remote / got, (double)res / got,
	       (double)cal / got, (double)(res + cal) / got,
	       (double)rps / got, (double)(res + cal - rps) / got,
	       (double)cs / got, rxmin);
	for (i = 0; i < ncpus; i++)
		printf(" net_rx%d=%ld", i, rx1[i] - rx0[i]);
	printf("\n");
	fflush(stdout);
	group_close(&g);
}

/* ---- live counts: one CPU, four listeners, heavy-tailed lifetimes ---- */

#define LIVE_L		4
#define LIVE_MAX	4096

struct live_conn {
	int c, a, l;
	long end;
};

/* xorshift64*: the same lifetimes for every mechanism. */
static uint64_t live_rng;

static double live_unit(void)
{
	live_rng ^= live_rng >> 12;
	live_rng ^= live_rng << 25;
	live_rng ^= live_rng >> 27;
	return ((live_rng * 0x2545f4914f6cdd1dULL) >> 11) * (1.0 / (1ULL << 53));
}

/*
 * Four listeners registered for CPU 0 (plain SO_REUSEPORT for "hash"),
 * a client on CPU 0 opening one connection per tick, each held for a
 * Pareto lifetime (shape 1.5) of mean_live ticks, so that about
 * mean_live connections are live.  After each connection, max/min of
 * the four live counts; their mean and worst over the run (samples where
 * one listener has none left out), as the simulator reports them.
 * Counted, not timed.  With SO_REUSERPS the kernel's active counts must
 * equal what the server holds.
 */
static void run_live(const char *name, int policy, int conns, int mean_live)
{
	static struct live_conn held[LIVE_MAX];
	double sum_mm = 0, worst = 0, sum_mean = 0, xm = mean_live / 3.0;
	int fd[LIVE_L], live[LIVE_L] = { 0 }, nheld = 0, i, k, one = 1;
	struct sockaddr_in addr = { .sin_family = AF_INET };
	long samples = 0, mean_samples = 0, exact = 1;
	socklen_t alen = sizeof(addr);

	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	live_rng = 0x9e3779b97f4a7c15ULL;
	pin(0);
	for (i = 0; i < LIVE_L; i++) {
		fd[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fd[i] < 0 || setsockopt(fd[i], SOL_SOCKET, SO_REUSEPORT,
					    &one, sizeof(one)))
			die("live socket");
		if (policy >= 0)
			set_reuserps(fd[i], policy, 0, 0);
		if (bind(fd[i], (struct sockaddr *)&addr, sizeof(addr)) ||
		    listen(fd[i], 64) ||
		    fcntl(fd[i], F_SETFL, O_NONBLOCK))
			die("live listen");
		if (!i && getsockname(fd[i], (struct sockaddr *)&addr, &alen))
			die("live getsockname");
	}
	for (k = 0; k < conns; k++) {
		double life = xm / pow(1.0 - live_unit(), 1.0 / 1.5);
		struct live_conn *h;
		int max = 0, min = INT32_MAX, sum = 0, tries;

		/* Connections whose lifetime is over end first. */
		for (i = 0; i < nheld; i++) {
			if (held[i].end > k)
				continue;
			close(held[i].c);
			close(held[i].a);
			live[held[i].l]--;
			held[i--] = held[--nheld];
		}
		if (nheld == LIVE_MAX)
			die("live: too many held");
		h = &held[nheld];
		h->c = socket(AF_INET, SOCK_STREAM, 0);
		if (h->c < 0 ||
		    connect(h->c, (struct sockaddr *)&addr, sizeof(addr)))
			die("live connect");
		for (tries = 0, h->a = -1; h->a < 0 && tries < 10000; tries++) {
			for (i = 0; i < LIVE_L && h->a < 0; i++) {
				h->a = accept(fd[i], NULL, NULL);
				h->l = i;
			}
			if (h->a < 0)
				usleep(100);
		}
		if (h->a < 0)
			die("live accept");
		h->end = k + 1 + (long)(life < conns ? life : conns);
		live[h->l]++;
		nheld++;
		if (k < conns / 10)
			continue;
		for (i = 0; i < LIVE_L; i++) {
			max = live[i] > max ? live[i] : max;
			min = live[i] < min ? live[i] : min;
			sum += live[i];
		}
		sum_mean += (double)max * LIVE_L / sum;
		mean_samples++;
		if (!min)
			continue;
		sum_mm += (double)max / min;
		worst = (double)max / min > worst ? (double)max / min : worst;
		samples++;
	}
	/* The last closes may still be in flight: up to a second. */
	for (k = 0; k < 100 && policy >= 0; k++) {
		exact = 1;
		for (i = 0; i < LIVE_L; i++) {
			struct reuserps_info info = {};
			socklen_t len = sizeof(info);

			if (getsockopt(fd[i], SOL_SOCKET, SO_REUSERPS, &info,
				       &len))
				die("live SO_REUSERPS");
			exact &= info.active_conns == (__u32)live[i];
		}
		if (exact)
			break;
		usleep(10000);
	}
	printf("R test=live mech=%s listeners=%d conns=%d mean_live=%d "
	       "samples=%ld mean_max_min=%.3f worst_max_min=%.3f "
	       "mean_max_mean=%.3f exact=%ld\n", name, LIVE_L, conns,
	       mean_live, samples, samples ? sum_mm / samples : 0, worst,
	       mean_samples ? sum_mean / mean_samples : 0, exact);
	while (nheld--) {
		close(held[nheld].c);
		close(held[nheld].a);
	}
	for (i = 0; i < LIVE_L; i++)
		close(fd[i]);
}

/* ---- stall: one worker per CPU stops accepting ---- */

/*
 * Two workers per CPU, each a process with its own listener of one
 * SO_REUSEPORT group on 127.0.0.1 (listeners 2c and 2c + 1 serve CPU c),
 * pinned to its CPU, accepting and closing.  One worker of each CPU, the
 * first of its two or the second (stopped_pos), is stopped (SIGSTOP, as a
 * worker stuck in a long request would be);
 * then a client thread per CPU, pinned, makes CONNS connections, each a
 * connect() and a close(): the handshake completes whether anybody
 * accepts or not.  Once the clients are done, after STALL_SETTLE_US and
 * until the running workers' accept queues are empty (bounded), it counts
 * what waits in the stopped workers' queues (TCP_INFO of a listener:
 * tcpi_unacked is its accept queue), from the parent's copies of the
 * listeners.  Counted, not timed:
 *   unaccepted   connections stranded with a stopped worker, all CPUs;
 *   stalled_max  the longest stopped worker's queue (min too);
 *   local        share of the accepted connections whose SYN CPU
 *                (SO_INCOMING_CPU of the accepted socket) is the
 *                accepting worker's CPU;
 *   listen_drops TcpExt ListenDrops during the run (the backlog is large
 *                enough that it should stay 0).
 * Mechanisms: hash (plain SO_REUSEPORT), incpu (SO_INCOMING_CPU = the
 * worker's CPU), rps (SO_REUSERPS round robin, each listener for its
 * CPU), rps_pend (the same with max_pending STALL_MAX_PENDING).  Which
 * of a CPU's two is stopped matters to incpu: the kernel takes the first
 * listener of the CPU at or after the flow hash's place in the group, so
 * the first of a pair gets most of its CPU's connections (7 in 8 with 4
 * CPUs).
 */
#define STALL_MAX_PENDING	8
#define STALL_BACKLOG		4096
#define STALL_SETTLE_US		200000

enum stall_mech { ST_HASH, ST_INCPU, ST_RPS, ST_RPS_PEND, NSTALL };
static const char *const stall_name[NSTALL] = {
	"hash", "incpu", "rps", "rps_pend",
};

/* Comma-separated mechanisms to run, exact names; NULL for all. */
static const char *stall_only;
/* Which worker of each CPU stops: bit 0 the first, bit 1 the second. */
static int stall_pos = 1;

/* What a worker reports, in memory shared with the parent. */
struct stall_worker {
	long accepted, local;
	int ready;
};

struct stall_client {
	pthread_t t;
	const struct sockaddr_in *addr;
	int cpu, conns;
	long failed;
};

static bool stall_wanted(int m)
{
	size_t len = strlen(stall_name[m]), n;
	const char *p = stall_only;

	if (!p)
		return true;
	while (*p) {
		n = strcspn(p, ",");
		if (n == len && !strncmp(p, stall_name[m], len))
			return true;
		p += n;
		if (*p)
			p++;
	}
	return false;
}

/*
 * A listener of mechanism @m for @cpu on @addr (port 0: a new one,
 * written back); -1 with errno if SO_REUSERPS (or its max_pending) is
 * refused, which skips the mechanism; dies on anything else.
 */
static int stall_listener(int m, int cpu, struct sockaddr_in *addr)
{
	socklen_t alen = sizeof(*addr);
	int fd, one = 1, err;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		die("SO_REUSEPORT");
	if (m == ST_INCPU &&
	    setsockopt(fd, SOL_SOCKET, SO_INCOMING_CPU, &cpu, sizeof(cpu)))
		die("SO_INCOMING_CPU");
	if (m == ST_RPS || m == ST_RPS_PEND) {
		err = set_reuserps_pend(fd, REUSERPS_ROUND_ROBIN, 0, cpu,
					m == ST_RPS_PEND ?
					STALL_MAX_PENDING : 0);
		if (err) {
			close(fd);
			errno = err;
			return -1;
		}
	}
	if (bind(fd, (struct sockaddr *)addr, sizeof(*addr)))
		die("stall bind");
	if (listen(fd, STALL_BACKLOG))
		die("stall listen");
	if (!addr->sin_port &&
	    getsockname(fd, (struct sockaddr *)addr, &alen))
		die("stall getsockname");
	return fd;
}

/* A worker process: accepts and closes until it is killed. */
static void stall_worker_main(int fd, int cpu, struct stall_worker *w)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	pin(cpu);
	__atomic_store_n(&w->ready, 1, __ATOMIC_RELEASE);
	for (;;) {
		socklen_t len = sizeof(int);
		int c, in;

		c = accept(fd, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			_exit(1);
		}
		if (!getsockopt(c, SOL_SOCKET, SO_INCOMING_CPU, &in, &len) &&
		    in == cpu)
			__atomic_fetch_add(&w->local, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&w->accepted, 1, __ATOMIC_RELEASE);
		close(c);
	}
}

static void *stall_client_main(void *arg)
{
	struct stall_client *c = arg;
	int k;

	pin(c->cpu);
	for (k = 0; k < c->conns; k++)
		if (connect_close(c->addr))
			c->failed++;
	return NULL;
}

/* A listener's accept queue: TCP_INFO's tcpi_unacked when listening. */
static long accept_queue_len(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		die("TCP_INFO");
	return ti.tcpi_unacked;
}

/*
 * One run of mechanism @m, the worker at @pos (0 or 1) of each CPU
 * stopped, with the shared @w of the 2 * ncpus workers.
 */
static void stall_once(int m, int pos, int rep, int conns,
		       struct stall_worker *w)
{
	static struct stall_client cli[MAX_CPUS];
	static int fd[2 * MAX_CPUS];
	static pid_t pid[2 * MAX_CPUS];
	long accepted, local, queued, unaccepted, failed, drops, q;
	long smax, smin, total = (long)conns * ncpus;
	int n = 2 * ncpus, i, j, k, st, settled, running_empty;
	struct sockaddr_in addr;

	memset(w, 0, sizeof(*w) * n);
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < n; i++) {
		fd[i] = stall_listener(m, i / 2, &addr);
		if (fd[i] < 0)
			break;
	}
	if (i < n) {
		printf("R test=stall mech=%s rep=%d stopped_pos=%s skipped=1 "
		       "errno=%d\n", stall_name[m], rep,
		       pos ? "second" : "first", errno);
		while (i--)
			close(fd[i]);
		return;
	}
	fflush(stdout);
	for (i = 0; i < n; i++) {
		pid[i] = fork();
		if (pid[i] < 0)
			die("fork");
		if (pid[i])
			continue;
		for (j = 0; j < n; j++)
			if (j != i)
				close(fd[j]);
		stall_worker_main(fd[i], i / 2, &w[i]);
	}
	/* Each worker pinned before any is stopped (bounded). */
	for (k = 0; k < 1000; k++) {
		for (i = 0; i < n; i++)
			if (!__atomic_load_n(&w[i].ready, __ATOMIC_ACQUIRE))
				break;
		if (i == n)
			break;
		usleep(10000);
	}
	/* One worker of each CPU stops. */
	for (i = pos; i < n; i += 2) {
		if (kill(pid[i], SIGSTOP))
			die("SIGSTOP");
		if (waitpid(pid[i], &st, WUNTRACED) != pid[i] ||
		    !WIFSTOPPED(st))
			die("waitpid stopped");
	}

	drops = listen_drops();
	for (i = 0; i < ncpus; i++) {
		cli[i] = (struct stall_client){ .addr = &addr, .cpu = i,
						.conns = conns };
		pthread_create(&cli[i].t, NULL, stall_client_main, &cli[i]);
	}
	failed = 0;
	for (i = 0; i < ncpus; i++) {
		pthread_join(cli[i].t, NULL);
		failed += cli[i].failed;
	}

	/*
	 * Settle: a fixed interval, then until the running workers have
	 * emptied their queues and every connection is accepted or queued
	 * (a bound of 10 s, not a measure).
	 */
	usleep(STALL_SETTLE_US);
	for (k = 0, settled = 0; k < 1000 && !settled; k++) {
		running_empty = 1;
		accepted = 0;
		queued = 0;
		for (i = 0; i < n; i++) {
			q = accept_queue_len(fd[i]);
			queued += q;
			if (i % 2 != pos && q)
				running_empty = 0;
			accepted += __atomic_load_n(&w[i].accepted,
						    __ATOMIC_ACQUIRE);
		}
		settled = running_empty && accepted + queued == total - failed;
		if (!settled)
			usleep(10000);
	}

	unaccepted = 0;
	smax = 0;
	smin = -1;
	for (i = pos; i < n; i += 2) {
		q = accept_queue_len(fd[i]);
		unaccepted += q;
		smax = q > smax ? q : smax;
		smin = smin < 0 || q < smin ? q : smin;
	}
	accepted = 0;
	local = 0;
	for (i = 0; i < n; i++) {
		accepted += __atomic_load_n(&w[i].accepted, __ATOMIC_ACQUIRE);
		local += __atomic_load_n(&w[i].local, __ATOMIC_RELAXED);
	}
	drops = listen_drops() - drops;
	printf("R test=stall mech=%s rep=%d conns=%ld unaccepted=%ld "
	       "stalled_max=%ld local=%.4f stalled_min=%ld accepted=%ld "
	       "failed=%ld listen_drops=%ld settled=%d workers=%d stopped=%d "
	       "stopped_pos=%s max_pending=%d\n",
	       stall_name[m], rep, total, unaccepted, smax,
	       accepted ? (double)local / accepted : 0, smin, accepted,
	       failed, drops, settled, n, ncpus, pos ? "second" : "first",
	       m == ST_RPS_PEND ? STALL_MAX_PENDING : 0);
	fflush(stdout);

	/*
	 * SIGKILL ends stopped workers too; SIGCONT them all the same, then
	 * reap.  Closing the listeners resets what still waits in them.
	 */
	for (i = 0; i < n; i++) {
		kill(pid[i], SIGKILL);
		if (i % 2 == pos)
			kill(pid[i], SIGCONT);
	}
	for (i = 0; i < n; i++)
		waitpid(pid[i], &st, 0);
	for (i = 0; i < n; i++)
		close(fd[i]);
}

static void run_stall(int conns, int reps)
{
	struct stall_worker *w;
	size_t size = sizeof(*w) * 2 * ncpus;
	int m, r, pos;

	w = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (w == MAP_FAILED)
		die("mmap");
	for (r = 0; r < reps; r++)
		for (pos = 0; pos < 2; pos++)
			for (m = 0; m < NSTALL; m++)
				if (stall_wanted(m) && stall_pos & 1 << pos)
					stall_once(m, pos, r, conns, w);
	munmap(w, size);
}

/* ---- instructions, in a guest under QEMU's -icount ---- */

/*
 * Under -icount shift=0 one guest ns is one instruction, so the selection
 * timer counts instructions per reuseport_select_sock() (interrupts off,
 * on CPU 0), and CLOCK_MONOTONIC around a connection counts the
 * instructions of every CPU while it runs (the others idle in hlt, which
 * counts none).
 */
static void run_icount_select(long iters, int reps)
{
	static const int sizes[] = { 1, 4, 16, 64, 256, 1024 };
	double v[16], ns;
	struct group g;
	int s, m, r;

	pin(0);
	group_open(&g, HASH, 1, 0);
	for (r = 0; r < reps; r++)
		if (select_ns_mode(g.fd[0], iters, 1, &v[r])) {
			printf("R test=icount_select skipped=1\n");
			group_close(&g);
			return;
		}
	qsort(v, reps, sizeof(double), cmp_double);
	printf("R test=icount_loop insns=%.2f min=%.2f max=%.2f\n",
	       v[reps / 2], v[0], v[reps - 1]);
	group_close(&g);
	for (s = 0; s < 6; s++) {
		for (m = 0; m < NMECH; m++) {
			if (!wanted[m])
				continue;
			/* Fill first with a cap it never reaches: the capped
			 * path; round robin without a cap.
			 */
			group_open(&g, m, sizes[s], m == RPS_FF ? 1 << 20 : 0);
			select_ns(g.fd[0], iters / 4, &ns);
			for (r = 0; r < reps; r++)
				if (select_ns(g.fd[0], iters, &v[r]))
					die("select timer");
			qsort(v, reps, sizeof(double), cmp_double);
			printf("R test=icount_select mech=%s n=%d insns=%.2f "
			       "min=%.2f max=%.2f\n", mech_name[m], sizes[s],
			       v[reps / 2], v[0], v[reps - 1]);
			group_close(&g);
		}
	}
}

/* The median of @reps values in @v, with their range, as "insns= min= max=". */
static void print_median(const char *head, double *v, int reps, int prec)
{
	qsort(v, reps, sizeof(double), cmp_double);
	printf("%s insns=%.*f min=%.*f max=%.*f\n", head, prec, v[reps / 2],
	       prec, v[0], prec, v[reps - 1]);
}

/* A listener without SO_REUSEPORT on 127.0.0.1, a new port. */
static void plain_open(struct group *g)
{
	socklen_t alen = sizeof(g->addr);
	int one = 1;

	memset(g, 0, sizeof(*g));
	g->m = HASH;
	g->n = 1;
	g->addr.sin_family = AF_INET;
	g->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g->fd[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (g->fd[0] < 0 ||
	    setsockopt(g->fd[0], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(g->fd[0], (struct sockaddr *)&g->addr, sizeof(g->addr)) ||
	    listen(g->fd[0], 4096) ||
	    getsockname(g->fd[0], (struct sockaddr *)&g->addr, &alen))
		die("plain listener");
}

/*
 * One connection, whole: socket(), connect() over loopback (the SYN, the
 * SYN+ACK and the ACK run in its softirq, on CPU 0), accept() on the
 * listener that got it, the server's close() then the client's.  With
 * @handshake, only the connect() is counted.
 */
static double conn_insns(struct group *g, int conns, bool handshake)
{
	struct pollfd pfd[MAX_L];
	double t = 0, t0 = now();
	int k, i;

	for (i = 0; i < g->n; i++)
		pfd[i] = (struct pollfd){ .fd = g->fd[i], .events = POLLIN };
	for (k = 0; k < conns; k++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0), c = -1;

		if (fd < 0)
			die("socket");
		if (handshake)
			t0 = now();
		if (connect(fd, (struct sockaddr *)&g->addr, sizeof(g->addr)))
			die("connect");
		if (handshake)
			t += now() - t0;
		if (poll(pfd, g->n, 1000) <= 0)
			die("poll");
		for (i = 0; i < g->n && c < 0; i++)
			if (pfd[i].revents & POLLIN)
				c = accept(g->fd[i], NULL, NULL);
		if (c < 0)
			die("accept");
		close(c);
		close(fd);
	}
	if (!handshake)
		t = now() - t0;
	return t * 1e9 / conns;
}

static void run_icount_conn(int conns, int reps)
{
	double v[16];
	struct group g;
	char head[96];
	int m, r;

	pin(0);
	for (m = 0; m <= NMECH; m++) {
		if (m < NMECH && !wanted[m])
			continue;
		if (m < NMECH)
			group_open(&g, m, ncpus, 0);
		else	/* "none": one listener without SO_REUSEPORT */
			plain_open(&g);
		conn_insns(&g, conns / 4, false);
		for (r = 0; r < reps; r++)
			v[r] = conn_insns(&g, conns, false);
		snprintf(head, sizeof(head),
			 "R test=icount_conn mech=%s listeners=%d",
			 m < NMECH ? mech_name[m] : "none", g.n);
		print_median(head, v, reps, 0);
		group_close(&g);
	}
}

/*
 * What a socket that does not use SO_REUSERPS pays, in each state of the
 * option's static key: "off" (no socket has used it since boot: this
 * runs first), "on" (a SO_REUSERPS listener exists, on another port) and
 * "after" (it is gone, and so, a second later, is the key).  On a kernel
 * without the option there is one state, "base".  Measured: a plain
 * SO_REUSEPORT selection (4 listeners), the handshake to one of them, and
 * a whole connection to a listener without SO_REUSEPORT.
 */
static void run_icount_states(long iters, int conns, int reps)
{
	static const char *const states[] = { "off", "on", "after" };
	struct reuserps_info info = {};
	socklen_t len = sizeof(info);
	int s, r, probe, keep = -1, base;
	struct group g;
	double v[16];
	char head[96];

	pin(0);
	/* getsockopt() tells a kernel with the option (ENOENT: no request
	 * yet) from one without (ENOPROTOOPT), and turns nothing on.
	 */
	probe = socket(AF_INET, SOCK_STREAM, 0);
	base = getsockopt(probe, SOL_SOCKET, SO_REUSERPS, &info, &len) &&
	       errno == ENOPROTOOPT;
	close(probe);
	for (s = 0; s < (base ? 1 : 3); s++) {
		const char *st = base ? "base" : states[s];

		if (s == 1) {
			struct group k;

			group_open(&k, RPS_RR, 1, 0);
			keep = k.fd[0];
		}
		if (s == 2) {
			close(keep);
			sleep(2);
		}
		group_open(&g, HASH, 4, 0);
		for (r = 0; r < reps; r++)
			if (select_ns(g.fd[0], iters, &v[r]))
				die("select timer");
		snprintf(head, sizeof(head), "R test=icount_state state=%s "
			 "what=select", st);
		print_median(head, v, reps, 2);
		conn_insns(&g, conns / 4, true);
		for (r = 0; r < reps; r++)
			v[r] = conn_insns(&g, conns, true);
		snprintf(head, sizeof(head), "R test=icount_state state=%s "
			 "what=handshake", st);
		print_median(head, v, reps, 0);
		group_close(&g);
		plain_open(&g);
		conn_insns(&g, conns / 4, false);
		for (r = 0; r < reps; r++)
			v[r] = conn_insns(&g, conns, false);
		snprintf(head, sizeof(head), "R test=icount_state state=%s "
			 "what=conn", st);
		print_median(head, v, reps, 0);
		group_close(&g);
	}
}

/*
 * The handshake (SYN, SYN+ACK, ACK in connect()'s softirq on CPU 0) to a
 * group of one listener per CPU, by mechanism: what the SYN path of a
 * SO_REUSERPS listener costs against a plain one.
 */
static void run_icount_syn(int conns, int reps)
{
	static const enum mech ms[] = { HASH, RPS_RR, RPS_FF };
	struct group g;
	double v[16];
	char head[96];
	int i, r;

	pin(0);
	for (i = 0; i < 3; i++) {
		if (!wanted[ms[i]])
			continue;
		group_open(&g, ms[i], ncpus, ms[i] == RPS_FF ? 1 << 20 : 0);
		conn_insns(&g, conns / 4, true);
		for (r = 0; r < reps; r++)
			v[r] = conn_insns(&g, conns, true);
		snprintf(head, sizeof(head), "R test=icount_syn mech=%s",
			 mech_name[ms[i]]);
		print_median(head, v, reps, 0);
		group_close(&g);
	}
}

/* Closes @c with a reset: its connection ends at once on the server. */
static void reset_close(int c)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(c);
}

/*
 * Selection with n listeners of CPU 0 capped at one connection each, all
 * but the last full, and the CPU's turn on the first: n connections from
 * CPU 0 fill them in order (the last one by every policy), then the
 * last one's is reset.  The cost of passing over n - 1 full listeners.
 */
static void run_icount_full(long iters, int reps)
{
	static const int sizes[] = { 1, 4, 16, 64, 256, 1024 };
	static const struct {
		const char *name;
		__u32 policy;
	} pol[] = {
		{ "rr", REUSERPS_ROUND_ROBIN },
		{ "ff", REUSERPS_FILL_FIRST },
		{ "lc", REUSERPS_LEAST_CONNS },
	};
	static int fd[MAX_L], cl[MAX_L];
	struct sockaddr_in addr = { .sin_family = AF_INET };
	struct reuserps_info info = {};
	int p, s, n, i, r, one = 1;
	socklen_t len;
	double v[16];
	char head[96];

	pin(0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (p = 0; p < 3; p++) {
		for (s = 0; s < 6; s++) {
			n = sizes[s];
			addr.sin_port = 0;
			for (i = 0; i < n; i++) {
				fd[i] = socket(AF_INET, SOCK_STREAM, 0);
				len = sizeof(addr);
				if (fd[i] < 0 ||
				    setsockopt(fd[i], SOL_SOCKET, SO_REUSEPORT,
					       &one, sizeof(one)))
					die("full socket");
				set_reuserps(fd[i], pol[p].policy, 1, 0);
				if (bind(fd[i], (struct sockaddr *)&addr,
					 sizeof(addr)) || listen(fd[i], 16) ||
				    getsockname(fd[i], (struct sockaddr *)&addr,
						&len))
					die("full listener");
			}
			for (i = 0; i < n; i++) {
				cl[i] = socket(AF_INET, SOCK_STREAM, 0);
				if (cl[i] < 0 ||
				    connect(cl[i], (struct sockaddr *)&addr,
					    sizeof(addr)))
					die("full connect");
			}
			reset_close(cl[n - 1]);
			for (i = 0; i < 1000; i++) {
				len = sizeof(info);
				if (getsockopt(fd[n - 1], SOL_SOCKET, SO_REUSERPS,
					       &info, &len))
					die("full SO_REUSERPS");
				if (!info.active_conns)
					break;
				usleep(1000);
			}
			if (info.active_conns)
				die("full: the last listener stays full");
			select_ns(fd[0], iters / 4, &v[0]);
			for (r = 0; r < reps; r++)
				if (select_ns(fd[0], iters, &v[r]))
					die("select timer");
			snprintf(head, sizeof(head),
				 "R test=icount_full policy=%s n=%d",
				 pol[p].name, n);
			print_median(head, v, reps, 2);
			for (i = 0; i < n - 1; i++)
				reset_close(cl[i]);
			for (i = 0; i < n; i++)
				close(fd[i]);
		}
	}
}

/*
 * What a listen() costs as listeners join one group, one after another, up
 * to 1024 (instructions of every CPU while it runs): plain SO_REUSEPORT,
 * then SO_REUSERPS round robin, listener k serving CPU k % CPUs.  The
 * k-th join of each size is reported.
 */
static void run_icount_build(void)
{
	static const int sizes[] = { 1, 4, 16, 64, 256, 1024 };
	static int fd[MAX_L];
	struct sockaddr_in addr = { .sin_family = AF_INET };
	int m, i, s, one = 1;
	socklen_t len;
	double t0, t;

	pin(0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (m = 0; m < 2; m++) {
		addr.sin_port = 0;
		for (i = 0, s = 0; i < MAX_L; i++) {
			fd[i] = socket(AF_INET, SOCK_STREAM, 0);
			len = sizeof(addr);
			if (fd[i] < 0 ||
			    setsockopt(fd[i], SOL_SOCKET, SO_REUSEPORT, &one,
				       sizeof(one)))
				die("build socket");
			if (m)
				set_reuserps(fd[i], REUSERPS_ROUND_ROBIN, 0,
					     i % ncpus);
			if (bind(fd[i], (struct sockaddr *)&addr, sizeof(addr)))
				die("build bind");
			t0 = now();
			if (listen(fd[i], 16))
				die("build listen");
			t = (now() - t0) * 1e9;
			if (!i && getsockname(fd[i], (struct sockaddr *)&addr,
					      &len))
				die("build getsockname");
			if (i + 1 == sizes[s]) {
				printf("R test=icount_build mech=%s k=%d "
				       "insns=%.0f\n", m ? "rps_rr" : "hash",
				       i + 1, t);
				s++;
			}
		}
		for (i = 0; i < MAX_L; i++)
			close(fd[i]);
	}
}

/*
 * Usage: reuserps_bench [SECS [REPS [MECH,MECH...]]]
 *        reuserps_bench icount ITERS CONNS REPS [MECH,MECH...]
 *        reuserps_bench rps CONNS REPS [MECH,MECH...]
 *        reuserps_bench live CONNS MEAN_LIVE
 *        reuserps_bench stall CONNS REPS [MECH,MECH...|all [first|second|both]]
 */
int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 3;
	int reps = argc > 2 ? atoi(argv[2]) : 3;
	const char *only = argc > 3 ? argv[3] : NULL;
	int m, r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	ncpus = get_nprocs();
	if (ncpus > MAX_CPUS)
		ncpus = MAX_CPUS;
	if (argc > 3 && !strcmp(argv[1], "rps")) {
		int conns = atoi(argv[2]);

		reps = atoi(argv[3]);
		for (m = 0; m < NMECH; m++)
			wanted[m] = want(argc < 5 ? NULL : argv[4], m);
		if (rps_setup())
			die("RPS and tracefs setup");
		printf("R test=setup mode=rps cpus=%d conns=%d reps=%d\n",
		       ncpus, conns, reps);
		for (r = 0; r < reps; r++)
			for (m = 0; m < NMECH; m++)
				if (wanted[m])
					run_rps(m, conns, r);
		/* Loopback again processes packets on the sender's CPU. */
		if (write_str("/sys/class/net/lo/queues/rx-0/rps_cpus", "0"))
			die("rps_cpus");
		return 0;
	}
	if (argc > 3 && !strcmp(argv[1], "stall")) {
		int conns = atoi(argv[2]);

		reps = atoi(argv[3]);
		stall_only = argc > 4 && strcmp(argv[4], "all") ? argv[4] :
			     NULL;
		if (argc > 5)
			stall_pos = !strcmp(argv[5], "second") ? 2 :
				    !strcmp(argv[5], "both") ? 3 : 1;
		printf("R test=setup mode=stall cpus=%d conns=%d reps=%d "
		       "max_pending=%d\n", ncpus, conns, reps,
		       STALL_MAX_PENDING);
		run_stall(conns, reps);
		return 0;
	}
	if (argc > 3 && !strcmp(argv[1], "live")) {
		struct rlimit rl = { 4 * LIVE_MAX, 4 * LIVE_MAX };

		if (setrlimit(RLIMIT_NOFILE, &rl))
			die("setrlimit");
		run_live("hash", -1, atoi(argv[2]), atoi(argv[3]));
		run_live("rps_rr", REUSERPS_ROUND_ROBIN, atoi(argv[2]),
			 atoi(argv[3]));
		run_live("rps_lc", REUSERPS_LEAST_CONNS, atoi(argv[2]),
			 atoi(argv[3]));
		return 0;
	}
	if (argc > 4 && !strcmp(argv[1], "icount")) {
		struct rlimit rl = { 4 * MAX_L, 4 * MAX_L };

		if (setrlimit(RLIMIT_NOFILE, &rl))
			die("setrlimit");
		reps = atoi(argv[4]);
		if (reps < 1 || reps > 16)
			reps = 3;
		for (m = 0; m < NMECH; m++)
			wanted[m] = want(argc < 6 ? NULL : argv[5], m);
		printf("R test=setup mode=icount cpus=%d reps=%d\n", ncpus,
		       reps);
		/* First, while no socket has used SO_REUSERPS. */
		run_icount_states(atol(argv[2]), atoi(argv[3]), reps);
		run_icount_select(atol(argv[2]), reps);
		run_icount_conn(atoi(argv[3]), reps);
		run_icount_syn(atoi(argv[3]), reps);
		if (wanted[RPS_RR]) {
			run_icount_full(atol(argv[2]), reps);
			run_icount_build();
		}
		return 0;
	}
	printf("R test=setup cpus=%d secs=%.1f reps=%d ff_cap=%d\n", ncpus,
	       secs, reps, ff_cap);
	for (m = 0; m < NMECH; m++)
		wanted[m] = want(only, m);
	for (r = 0; r < reps; r++)
		for (m = 0; m < NMECH; m++)
			if (wanted[m])
				run_rate(m, 1, secs, r);
	for (r = 0; r < reps; r++)
		for (m = 0; m < NMECH; m++)
			if (wanted[m])
				run_rate(m, 2, secs, r);
	if (wanted[RPS_FF])
		run_overload(4);
	return 0;
}
