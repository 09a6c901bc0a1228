/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the SO_REUSERPS selftests: the request and its CPU
 * mask (CPU_ALLOC()ed, sized like sched_setaffinity()'s), reading a
 * listener's request and counts back, the probe for the option, a network
 * namespace per test, the SNMP counters of that namespace, and, for the
 * kselftest_harness programs (include it first), a reuseport group of
 * listeners on a loopback address with the connections made to it.
 */
#ifndef REUSERPS_LIB_H
#define REUSERPS_LIB_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
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

/* Not in the libc headers yet (include/uapi/asm-generic/socket.h). */
#ifndef SO_REUSERPS
#if defined(__sparc__)
#define SO_REUSERPS		0x005f
#elif defined(__hppa__)
#define SO_REUSERPS		0x4054
#else
#define SO_REUSERPS		86
#endif
#endif

/* setsockopt() and getsockopt() refuse a struct larger than this. */
#define REUSERPS_MAX_OPTLEN	4096

/* 0 if the write of @val to @path succeeded, else -1. */
static inline int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	close(fd);
	return ok ? 0 : -1;
}

/* Reads the first line of @path into @buf; 0 or -1. */
static inline int read_file(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	bool ok;

	if (!f)
		return -1;
	ok = !!fgets(buf, size, f);
	fclose(f);
	if (ok)
		buf[strcspn(buf, "\n")] = '\0';
	return ok ? 0 : -1;
}

/* A sysctl of this network namespace; 0 on success. */
static inline int set_sysctl(const char *path, const char *val)
{
	return write_file(path, val);
}

/*
 * The kernel's nr_cpu_ids, one past the highest possible CPU
 * (/sys/devices/system/cpu/possible, e.g. "0-3" or "0,2-5"); -1 if it
 * cannot be read.
 */
static inline int rps_nr_cpu_ids(void)
{
	static int nr;
	int first, last = -1;
	char buf[256], *p, *save;

	if (nr > 0)
		return nr;
	if (read_file("/sys/devices/system/cpu/possible", buf, sizeof(buf)))
		return -1;
	for (p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		if (sscanf(p, "%d-%d", &first, &last) < 2)
			last = first;
	}
	if (last >= 0)
		nr = last + 1;
	return last + 1;
}

/*
 * A CPU_ALLOC()ed set of @nbits CPUs (at least one past the highest of
 * @cpus) with @cpus[0 .. @n) set; its size in bytes in *@size.  NULL on
 * failure.  Free it with CPU_FREE().
 */
static inline cpu_set_t *rps_mask(const int *cpus, int n, int nbits,
				  size_t *size)
{
	cpu_set_t *set;
	int i;

	for (i = 0; i < n; i++)
		if (cpus[i] >= nbits)
			nbits = cpus[i] + 1;
	if (nbits < 1)
		nbits = 1;
	set = CPU_ALLOC(nbits);
	if (!set)
		return NULL;
	*size = CPU_ALLOC_SIZE(nbits);
	CPU_ZERO_S(*size, set);
	for (i = 0; i < n; i++)
		CPU_SET_S(cpus[i], *size, set);
	return set;
}

/* A request for the @len bytes of mask at @mask. */
static inline void rps_req_init(struct reuserps_req *req, __u32 policy,
				__u32 max_conns, const void *mask, size_t len)
{
	memset(req, 0, sizeof(*req));
	req->policy = policy;
	req->max_conns = max_conns;
	req->cpus_len = len;
	req->cpus = (__u64)(uintptr_t)mask;
}

/* setsockopt(SO_REUSERPS) of the @len bytes at @req; 0 or errno. */
static inline int rps_setsockopt(int fd, const void *req, socklen_t len)
{
	return setsockopt(fd, SOL_SOCKET, SO_REUSERPS, req, len) ? errno : 0;
}

/* setsockopt(SO_REUSERPS) for the mask at @mask; 0 or errno. */
static inline int rps_set_mask(int fd, __u32 policy, __u32 max_conns,
			       const void *mask, size_t len)
{
	struct reuserps_req req;

	rps_req_init(&req, policy, max_conns, mask, len);
	return rps_setsockopt(fd, &req, sizeof(req));
}

/*
 * setsockopt(SO_REUSERPS) of a REUSERPS_REQ_SIZE_VER1 request with
 * @max_pending for @cpus, in a CPU_ALLOC()ed mask of nr_cpu_ids CPUs
 * (more if @cpus names a higher one); 0 or errno.
 */
static inline int request_pending(int fd, __u32 policy, __u32 max_conns,
				  __u32 max_pending, const int *cpus,
				  int ncpus)
{
	struct reuserps_req req;
	cpu_set_t *set;
	size_t size;
	int err;

	set = rps_mask(cpus, ncpus, rps_nr_cpu_ids(), &size);
	if (!set)
		return errno;	/* CPU_ALLOC()'s: ENOMEM */
	rps_req_init(&req, policy, max_conns, set, size);
	req.max_pending = max_pending;
	err = rps_setsockopt(fd, &req, REUSERPS_REQ_SIZE_VER1);
	CPU_FREE(set);
	return err;
}

/* As request_pending(), without a max_pending limit. */
static inline int request(int fd, __u32 policy, __u32 max_conns,
			  const int *cpus, int ncpus)
{
	return request_pending(fd, policy, max_conns, 0, cpus, ncpus);
}

/*
 * getsockopt(SO_REUSERPS) into @info, the mask into the @len bytes at
 * @mask (NULL: only its size); 0 or errno.
 */
static inline int rps_get(int fd, struct reuserps_info *info, void *mask,
			  size_t len)
{
	socklen_t optlen = sizeof(*info);

	memset(info, 0, sizeof(*info));
	info->cpus = (__u64)(uintptr_t)mask;
	info->cpus_len = len;
	return getsockopt(fd, SOL_SOCKET, SO_REUSERPS, info, &optlen) ?
	       errno : 0;
}

/* getsockopt(SO_REUSERPS)'s errno alone: 0, or ENOENT without a request. */
static inline int rps_get_err(int fd)
{
	struct reuserps_info info;

	return rps_get(fd, &info, NULL, 0);
}

/*
 * Whether this kernel has SO_REUSERPS: 1 if it has; 0 if the option is
 * unknown (ENOPROTOOPT), or if there is no TCP socket to ask.  A TCP
 * socket without a request answers ENOENT.
 */
static inline int reuserps_supported(void)
{
	struct reuserps_info info;
	int fd, err;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;	/* no TCP: nothing to test */
	err = rps_get(fd, &info, NULL, 0);
	close(fd);
	return err == ENOPROTOOPT ? 0 : 1;
}

/*
 * A network namespace of its own for this process, with lo up, so that
 * sysctls and SNMP counters are the test's; 0 or errno.
 */
static inline int rps_netns(void)
{
	struct ifreq ifr = {};
	int fd, err = 0;

	if (unshare(CLONE_NEWNET))
		return errno;
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return errno;
	memcpy(ifr.ifr_name, "lo", sizeof("lo"));
	if (ioctl(fd, SIOCGIFFLAGS, &ifr))
		err = errno;
	ifr.ifr_flags |= IFF_UP;
	if (!err && ioctl(fd, SIOCSIFFLAGS, &ifr))
		err = errno;
	close(fd);
	return err;
}

/* struct in6_ifreq of <linux/ipv6.h>, which clashes with <netinet/in.h>. */
struct rps_in6_ifreq {
	struct in6_addr addr;
	__u32 prefixlen;
	int ifindex;
};

/* Adds @addr/128 to lo, usable at once (no DAD on loopback); 0 or errno. */
static inline int rps_add_lo6(const struct in6_addr *addr)
{
	struct rps_in6_ifreq r = { .addr = *addr, .prefixlen = 128 };
	int fd, err = 0;

	r.ifindex = if_nametoindex("lo");
	fd = socket(AF_INET6, SOCK_DGRAM, 0);
	if (fd < 0)
		return errno;
	if (ioctl(fd, SIOCSIFADDR, &r))
		err = errno;
	close(fd);
	return err;
}

/* The counter @name of @section ("TcpExt:", "Tcp:") in @file, or -1. */
static inline long snmp(const char *file, const char *section,
			const char *name)
{
	char names[4096], values[4096], *n, *v, *sn, *sv;
	long val = -1;
	FILE *f;

	f = fopen(file, "r");
	if (!f)
		return -1;
	while (fgets(names, sizeof(names), f) &&
	       fgets(values, sizeof(values), f)) {
		if (strncmp(names, section, strlen(section)))
			continue;
		n = strtok_r(names, "\n ", &sn);
		v = strtok_r(values, "\n ", &sv);
		while (n && v) {
			if (!strcmp(n, name))
				val = atol(v);
			n = strtok_r(NULL, "\n ", &sn);
			v = strtok_r(NULL, "\n ", &sv);
		}
	}
	fclose(f);
	return val;
}

/* The TcpExt counter @name of this network namespace, or -1. */
static inline long tcpext(const char *name)
{
	return snmp("/proc/net/netstat", "TcpExt:", name);
}

static inline long listen_drops(void)
{
	return tcpext("ListenDrops");
}

static inline long listen_overflows(void)
{
	return tcpext("ListenOverflows");
}

static inline long out_rsts(void)
{
	return snmp("/proc/net/snmp", "Tcp:", "OutRsts");
}

/*
 * Waits, up to 20 s, for the TcpExt counter @name to exceed @than: for
 * something that must happen (a bound, not a measure).  Returns its last
 * value.
 */
static inline long wait_tcpext_above(const char *name, long than)
{
	long now = -1;
	int i;

	for (i = 0; i < 2000; i++) {
		now = tcpext(name);
		if (now > than)
			break;
		usleep(10000);
	}
	return now;
}

/* The loopback address of @family, port 0, in @ss; returns its length. */
static inline socklen_t loopback(int family, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*a);
	}
	((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
	((struct sockaddr_in6 *)ss)->sin6_addr = in6addr_loopback;
	return sizeof(struct sockaddr_in6);
}

static inline int port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static inline void set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* Runs the calling thread on @cpu only; 0 or errno. */
static inline int pin_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? errno : 0;
}

/* The TCP state of @fd (TCP_INFO), or -1. */
static inline int tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return -1;
	return ti.tcpi_state;
}

/* close() then resets the connection. */
static inline void set_linger0(int fd)
{
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
}

/* CPU hotplug: 0 if cpu@cpu/online took @online. */
static inline int set_online(int cpu, int online)
{
	char path[64];

	snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/online",
		 cpu);
	return write_file(path, online ? "1" : "0");
}

/* Whether CPU @cpu can be taken offline by this process. */
static inline bool can_offline(int cpu)
{
	char path[64];

	snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/online",
		 cpu);
	return !access(path, W_OK);
}

/* The NUMA node of each CPU up to @n from sysfs; the number of nodes. */
static inline int cpu_nodes(int *node_of, int n)
{
	int node, nodes = 0, cpu, a, b, k;
	char path[64], list[256], *p;

	for (cpu = 0; cpu < n; cpu++)
		node_of[cpu] = -1;
	for (node = 0; node < 64; node++) {
		snprintf(path, sizeof(path),
			 "/sys/devices/system/node/node%d/cpulist", node);
		if (read_file(path, list, sizeof(list)))
			continue;
		nodes++;
		for (p = list; *p; p += k) {
			k = 0;
			if (sscanf(p, "%d-%d%n", &a, &b, &k) != 2) {
				k = 0;
				if (sscanf(p, "%d%n", &a, &k) != 1)
					break;
				b = a;
			}
			if (p[k] == ',')
				k++;
			for (cpu = a; cpu <= b && cpu < n; cpu++)
				node_of[cpu] = node;
		}
	}
	return nodes;
}

/* Adds the big-endian 16-bit words at @data to a ones' complement sum. */
static inline __u32 csum_add(__u32 sum, const void *data, size_t len)
{
	const __u8 *b = data;

	for (; len > 1; len -= 2, b += 2)
		sum += b[0] << 8 | b[1];
	return sum;
}

static inline __u16 csum_fold(__u32 sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/*
 * Sends a bare TCP segment from @src:@sport to @dst:@dport (network
 * order) on the IPPROTO_RAW socket @raw: a SYN (seq 1000) if @ack is 0,
 * else the ACK of a SYN+ACK whose sequence number was @ack - 1.
 */
static inline int send_tcp(int raw, __u32 src, __u16 sport, __u32 dst,
			   __u16 dport, __u32 ack)
{
	struct sockaddr_in to = { .sin_family = AF_INET };
	struct {
		struct iphdr ip;
		struct tcphdr tcp;
	} pkt = {};
	struct {
		__u32 src, dst;
		__u8 zero, proto;
		__u16 len;
	} ph = { src, dst, 0, IPPROTO_TCP, htons(sizeof(pkt.tcp)) };

	pkt.ip.version = 4;
	pkt.ip.ihl = 5;
	pkt.ip.ttl = 64;
	pkt.ip.protocol = IPPROTO_TCP;
	pkt.ip.saddr = src;
	pkt.ip.daddr = dst;
	pkt.tcp.source = sport;
	pkt.tcp.dest = dport;
	pkt.tcp.seq = htonl(ack ? 1001 : 1000);
	pkt.tcp.ack_seq = htonl(ack);
	pkt.tcp.doff = 5;
	pkt.tcp.syn = !ack;
	pkt.tcp.ack = !!ack;
	pkt.tcp.window = htons(65535);
	pkt.tcp.check = htons(csum_fold(csum_add(csum_add(0, &ph, sizeof(ph)),
						 &pkt.tcp, sizeof(pkt.tcp))));
	to.sin_addr.s_addr = dst;
	if (sendto(raw, &pkt, sizeof(pkt), 0, (struct sockaddr *)&to,
		   sizeof(to)) != sizeof(pkt))
		return errno;
	return 0;
}

/* Sends a bare SYN from @src:@sport to @dst:@dport (network order). */
static inline int send_syn(int raw, __u32 src, __u16 sport, __u32 dst,
			   __u16 dport)
{
	return send_tcp(raw, src, sport, dst, dport, 0);
}

#ifdef __KSELFTEST_HARNESS_H

/*
 * Runs the tests; on a kernel without SO_REUSERPS, where each of them
 * reported SKIP, exits KSFT_SKIP rather than KSFT_PASS.  Each fixture's
 * setup skips there, then gives its test a network namespace of its own.
 */
static inline int reuserps_harness_main(int argc, char **argv)
{
	int status;
	pid_t pid;

	if (reuserps_supported())
		return test_harness_run(argc, argv);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return KSFT_FAIL;
	if (!pid)
		_exit(test_harness_run(argc, argv));
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return KSFT_FAIL;
	return WEXITSTATUS(status) == KSFT_PASS ? KSFT_SKIP :
	       WEXITSTATUS(status);
}

#define MAX_LISTENERS	64

/* The listeners of one group and the address they share. */
struct group {
	int n;
	int fd[MAX_LISTENERS];
	struct sockaddr_storage addr;
	socklen_t alen;
};

/* An empty group on the loopback address of @family. */
static inline void group_init(struct group *g, int family)
{
	int i;

	memset(g, 0, sizeof(*g));
	for (i = 0; i < MAX_LISTENERS; i++)
		g->fd[i] = -1;
	g->alen = loopback(family, &g->addr);
}

static inline void group_close(struct group *g)
{
	int i;

	for (i = 0; i < g->n; i++) {
		if (g->fd[i] >= 0)
			close(g->fd[i]);
		g->fd[i] = -1;
	}
}

static inline void pin(struct __test_metadata *_metadata, int cpu)
{
	ASSERT_EQ(0, pin_cpu(cpu));
}

/* A bound socket of the group; 0 or the errno of setsockopt() or bind(). */
static inline int bound_capped(struct group *g, int family, bool reuserps,
			       __u32 policy, __u32 cap, const int *cpus,
			       int ncpus, int *fdp)
{
	int fd, one = 1, err;

	fd = socket(family, SOCK_STREAM, 0);
	if (fd < 0)
		return errno;
	err = setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ?
	      errno : 0;
	if (!err && reuserps)
		err = request(fd, policy, cap, cpus, ncpus);
	if (!err && bind(fd, (struct sockaddr *)&g->addr, g->alen))
		err = errno;
	if (err) {
		close(fd);
		return err;
	}
	*fdp = fd;
	return 0;
}

static inline int bound(struct group *g, int family, bool reuserps,
			__u32 policy, const int *cpus, int ncpus, int *fdp)
{
	return bound_capped(g, family, reuserps, policy, 0, cpus, ncpus, fdp);
}

/* Makes @fd, bound, a listening member; the first one picks the port. */
static inline int add_fd(struct __test_metadata *_metadata, struct group *g,
			 int fd)
{
	ASSERT_GT(MAX_LISTENERS, g->n);
	ASSERT_EQ(0, listen(fd, 256));
	ASSERT_EQ(0, fcntl(fd, F_SETFL, O_NONBLOCK));
	if (!g->n)
		ASSERT_EQ(0, getsockname(fd, (struct sockaddr *)&g->addr,
					 &g->alen));
	g->fd[g->n] = fd;
	return g->n++;
}

/* Adds a listening member with a cap; returns its index. */
static inline int add_capped(struct __test_metadata *_metadata,
			     struct group *g, int family, __u32 policy,
			     __u32 cap, const int *cpus, int ncpus)
{
	int fd = -1;

	ASSERT_EQ(0, bound_capped(g, family, true, policy, cap, cpus, ncpus,
				  &fd));
	return add_fd(_metadata, g, fd);
}

static inline int add_listener(struct __test_metadata *_metadata,
			       struct group *g, int family, __u32 policy,
			       const int *cpus, int ncpus)
{
	return add_capped(_metadata, g, family, policy, 0, cpus, ncpus);
}

/*
 * Adds a listening member with a cap and a max_pending limit (a VER1
 * request, set before bind()); returns its index.
 */
static inline int add_pending(struct __test_metadata *_metadata,
			      struct group *g, int family, __u32 policy,
			      __u32 cap, __u32 max_pending, const int *cpus,
			      int ncpus)
{
	int fd, one = 1;

	fd = socket(family, SOCK_STREAM, 0);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one,
				sizeof(one)));
	ASSERT_EQ(0, request_pending(fd, policy, cap, max_pending, cpus,
				     ncpus));
	ASSERT_EQ(0, bind(fd, (struct sockaddr *)&g->addr, g->alen));
	return add_fd(_metadata, g, fd);
}

/* Adds a listening member without SO_REUSERPS; returns its index. */
static inline int add_plain(struct __test_metadata *_metadata,
			    struct group *g, int family)
{
	int fd = -1;

	ASSERT_EQ(0, bound(g, family, false, 0, NULL, 0, &fd));
	return add_fd(_metadata, g, fd);
}

/*
 * The index of the first listener (in the group's order) that has a
 * connection to accept, accepted into *@afd; waits for one up to 20 s
 * (a connection that must come: a bound, not a measure); -1 if none.
 */
static inline int accept_any(struct __test_metadata *_metadata,
			     struct group *g, int *afd)
{
	struct pollfd pfd[MAX_LISTENERS];
	int i, a, n, tries;

	for (tries = 0; tries < 200; tries++) {
		for (i = 0, n = 0; i < g->n; i++) {
			if (g->fd[i] < 0)
				continue;
			a = accept(g->fd[i], NULL, NULL);
			if (a >= 0) {
				*afd = a;
				return i;
			}
			ASSERT_EQ(EAGAIN, errno);
			pfd[n].fd = g->fd[i];
			pfd[n].events = POLLIN;
			n++;
		}
		poll(pfd, n, 100);
	}
	*afd = -1;
	return -1;
}

/* A connection from the current CPU, left in its listener's queue. */
static inline int connect_queued(struct __test_metadata *_metadata,
				 struct group *g, int family)
{
	int fd = socket(family, SOCK_STREAM, 0);

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, connect(fd, (struct sockaddr *)&g->addr, g->alen));
	return fd;
}

/*
 * Connects from the current CPU and returns the index of the listener
 * that got the connection, both ends left open.  Over loopback the
 * handshake is done when connect() returns; accept_any() waits only to
 * guard against a slow guest.
 */
static inline int connect_keep(struct __test_metadata *_metadata,
			       struct group *g, int family, int *cfd,
			       int *afd)
{
	*cfd = connect_queued(_metadata, g, family);
	return accept_any(_metadata, g, afd);
}

/* As connect_keep(), closing both ends. */
static inline int connect_one(struct __test_metadata *_metadata,
			      struct group *g, int family)
{
	int c = -1, a = -1, got;

	got = connect_keep(_metadata, g, family, &c, &a);
	close(c);
	if (a >= 0)
		close(a);
	return got;
}

/*
 * A non-blocking connect() from the current CPU whose SYN is expected to
 * be dropped: returns once ListenDrops of this namespace rose above
 * @drops (the drop happened), with the client still in SYN_SENT.
 */
static inline int connect_dropped(struct __test_metadata *_metadata,
				  struct group *g, int family, long drops)
{
	int c = socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);

	ASSERT_LE(0, c);
	ASSERT_EQ(-1, connect(c, (struct sockaddr *)&g->addr, g->alen));
	ASSERT_EQ(EINPROGRESS, errno);
	EXPECT_LT(drops, wait_tcpext_above("ListenDrops", drops));
	EXPECT_EQ(TCP_SYN_SENT, tcp_state(c));
	return c;
}

/* Waits up to 20 s for the non-blocking connect() of @c to complete. */
static inline void wait_connected(struct __test_metadata *_metadata, int c)
{
	struct pollfd pfd = { .fd = c, .events = POLLOUT };
	socklen_t len;
	int err = -1;

	len = sizeof(err);
	EXPECT_EQ(1, poll(&pfd, 1, 20000));
	EXPECT_EQ(0, getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len));
	EXPECT_EQ(0, err);
}

static inline struct reuserps_info info_of(struct __test_metadata *_metadata,
					   int fd)
{
	struct reuserps_info info;

	EXPECT_EQ(0, rps_get(fd, &info, NULL, 0));
	return info;
}

/*
 * Waits up to 20 s for the __u32 of struct reuserps_info at @off to reach
 * @want; returns the last value read.
 */
static inline __u32 wait_info(struct __test_metadata *_metadata, int fd,
			      size_t off, __u32 want)
{
	struct reuserps_info info;
	__u32 now = ~0U;
	int i;

	for (i = 0; i < 2000; i++) {
		info = info_of(_metadata, fd);
		memcpy(&now, (char *)&info + off, sizeof(now));
		if (now == want)
			break;
		usleep(10000);
	}
	return now;
}

/*
 * The listener's active count (a request that expires takes its first
 * SYN+ACK timeout, 1 s).
 */
static inline __u32 wait_active(struct __test_metadata *_metadata, int fd,
				__u32 want)
{
	return wait_info(_metadata, fd,
			 offsetof(struct reuserps_info, active_conns), want);
}

/*
 * The listener's accept queue (pending, VER1): the handshake's last ACK
 * may still be on its way when connect() returns.
 */
static inline __u32 wait_pending(struct __test_metadata *_metadata, int fd,
				 __u32 want)
{
	return wait_info(_metadata, fd, offsetof(struct reuserps_info, pending),
			 want);
}

/*
 * Nearest fallback: with its own listener full, a connection from CPU a
 * goes to the listener of a CPU on a's node (sharing its cache, here:
 * one cache per socket, one socket per node) as long as that one has
 * room, never to the other node's; then anywhere.
 */
static inline void nearest_round(struct __test_metadata *_metadata,
				 struct group *g, int family, int near_cap,
				 const int *node_of, int a)
{
	int c[64], acc[64], k, got, n = 0, near = 0;

	pin(_metadata, a);
	/* Listener 0, on CPU a with a cap of 1, takes the first. */
	ASSERT_EQ(0, connect_keep(_metadata, g, family, &c[n], &acc[n]));
	n++;
	for (k = 0; k < near_cap; k++, n++) {
		got = connect_keep(_metadata, g, family, &c[n], &acc[n]);
		near += got == 1;
	}
	TH_LOG("%d of %d connections that left CPU %d stayed on node %d",
	       near, near_cap, a, node_of[a]);
	EXPECT_EQ(near_cap, near);
	/* The node is full: the other node's listeners. */
	got = connect_keep(_metadata, g, family, &c[n], &acc[n]);
	n++;
	EXPECT_LE(2, got);
	while (n--) {
		close(c[n]);
		close(acc[n]);
	}
	EXPECT_EQ(0, wait_active(_metadata, g->fd[0], 0));
	EXPECT_EQ(0, wait_active(_metadata, g->fd[1], 0));
}

/*
 * For the nearest fallback: a and s, two CPUs of one node; NULL, or why
 * this machine cannot tell (one node, or no node with two CPUs).
 */
static inline const char *nearest_cpus(int *node_of, int ncpus, int *a,
				       int *s)
{
	int cpu;

	if (cpu_nodes(node_of, ncpus) < 2)
		return "needs two NUMA nodes";
	*a = -1;
	*s = -1;
	for (cpu = 0; cpu < ncpus && *s < 0; cpu++) {
		if (node_of[cpu] < 0)
			continue;
		if (*a < 0)
			*a = cpu;
		else if (node_of[cpu] == node_of[*a])
			*s = cpu;
	}
	return *s < 0 ? "needs two CPUs on one node" : NULL;
}

#endif /* __KSELFTEST_HARNESS_H */

#endif /* REUSERPS_LIB_H */
