// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS against its peers, in one guest boot (make bench).
 *
 * Mechanisms, each over the same listeners and the same load:
 *   hash      plain SO_REUSEPORT
 *   incpu     SO_REUSEPORT + SO_INCOMING_CPU on each listener
 *   cbpf      SO_ATTACH_REUSEPORT_CBPF returning the CPU (SKF_AD_CPU)
 *   ebpf      sk_reuseport program, REUSEPORT_SOCKARRAY indexed by CPU
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
 *   select: N listeners (4..256) for every mechanism; the kernel module
 *         reuserps_select_bench times reuseport_select_sock() on them.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/reuserps.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#define MAX_L		256
#define MAX_CPUS	64
#define MAX_SAMPLES	(1 << 20)

enum mech { HASH, INCPU, CBPF, EBPF, RPS_RR, RPS_FF, NMECH };
static const char *const mech_name[NMECH] = {
	"hash", "incpu", "cbpf", "ebpf", "rps_rr", "rps_ff",
};

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

static void set_reuserps(int fd, __u32 policy, __u32 cap, int cpu)
{
	struct {
		struct reuserps_req req;
		__u64 cpus[16];
	} b = {};

	b.req.policy = policy;
	b.req.max_conns = cap;
	b.req.mask_words = 16;
	b.cpus[cpu / 64] = 1ULL << (cpu % 64);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSERPS, &b, sizeof(b)))
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
}

static void group_close(struct group *g)
{
	int i;

	for (i = 0; i < g->n; i++)
		close(g->fd[i]);
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
	struct reuserps_info info;
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

static int select_ns(int fd, long iters, double *ns)
{
	char buf[128];
	int pf, n;

	pf = open("/proc/reuserps_select_bench", O_RDWR);
	if (pf < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%d %ld", fd, iters);
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

static void run_select(long iters, int reps)
{
	static const int sizes[] = { 4, 16, 64, 256 };
	int s, m, r, cpu = ncpus > 1 ? 1 : 0;
	double v[16], ns;
	struct group g;

	pin(cpu);
	for (s = 0; s < 4; s++) {
		for (m = 0; m < NMECH; m++) {
			if (!wanted[m])
				continue;
			group_open(&g, m, sizes[s], 0);
			/* Warm up (emulation translates code on first use). */
			if (select_ns(g.fd[0], iters / 4, &ns)) {
				printf("R test=select skipped=1\n");
				group_close(&g);
				return;
			}
			for (r = 0; r < reps; r++) {
				if (select_ns(g.fd[0], iters, &v[r])) {
					printf("R test=select skipped=1\n");
					group_close(&g);
					return;
				}
			}
			qsort(v, reps, sizeof(double), cmp_double);
			ns = v[reps / 2];
			printf("R test=select mech=%s n=%d cpu=%d iters=%ld "
			       "ns=%.2f min_ns=%.2f max_ns=%.2f\n",
			       mech_name[m], sizes[s], cpu, iters, ns, v[0],
			       v[reps - 1]);
			fflush(stdout);
			group_close(&g);
		}
	}
}

/* Usage: reuserps_bench [SECS [REPS [MECH,MECH...]]] */
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
	printf("R test=setup cpus=%d secs=%.1f reps=%d ff_cap=%d\n", ncpus,
	       secs, reps, ff_cap);
	for (m = 0; m < NMECH; m++)
		wanted[m] = !only || strstr(only, mech_name[m]);
	run_select(200000, 7);
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
