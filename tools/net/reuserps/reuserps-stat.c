// SPDX-License-Identifier: GPL-2.0
/*
 * reuserps-stat: list the TCP listeners that have SO_REUSERPS.
 *
 * For every listening TCP socket (IPv4 and IPv6) of the current network
 * namespace, or of the one given with -n, that has SO_REUSERPS, print its
 * port and local address, the processes holding it, the CPUs it is
 * registered for, its policy and cap, and its connection counts.
 *
 * The data comes from a sock_diag dump (NETLINK_SOCK_DIAG) that asks for
 * INET_DIAG_INFO: the kernel then adds to each such listener the nested
 * attribute INET_DIAG_REUSERPS, whose REUSERPS_DIAG_* members are listed
 * in <linux/reuserps.h>.  Listeners without SO_REUSERPS carry no such
 * attribute and are not shown.  Owners are found as ss -p finds them, by
 * matching "socket:[INODE]" links under /proc/PID/fd.
 *
 * With -w, refresh every SECONDS and show, in +NEW, the connections each
 * listener was handed since the previous refresh.
 *
 * Build: gcc -O2 -Wall -I../../../usr/include -o reuserps-stat \
 *	  reuserps-stat.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/reuserps.h>

#ifndef INET_DIAG_REUSERPS
#define INET_DIAG_REUSERPS 23
#endif

#define TCP_LISTEN_STATE 10
#define POLICY_UNKNOWN ((__u32)-1)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Without INET_DIAG_SK_BPF_STORAGES, which is not asked for, the kernel
 * never builds a dump message larger than 32 KiB.
 */
#define RECV_BUF_SIZE 32768

enum {
	COL_PORT, COL_ADDR, COL_OWNER, COL_CPUS, COL_POLICY, COL_CAP,
	COL_ACTIVE, COL_TOTAL, COL_SKIPS, COL_NEW, NR_COLS
};

static const struct {
	const char *name;
	bool right;
} cols[NR_COLS] = {
	{ "PORT", true }, { "ADDRESS", false }, { "PID/COMMAND", false },
	{ "CPUS", false }, { "POLICY", false }, { "CAP", true },
	{ "ACTIVE", true }, { "TOTAL", true }, { "SKIPS", true },
	{ "+NEW", true },
};

struct listener {
	unsigned char addr[16];
	unsigned long long total;
	unsigned long long skips;
	unsigned long long *cpus;
	unsigned int nr_words;
	__u32 policy;
	__u32 max_conns;
	__u32 active;
	__u32 inode;
	__u32 ifindex;
	__u16 port;
	__u8 family;
	char *owners;
};

struct table {
	struct listener *l;
	size_t n, cap;
};

/* Totals of the previous refresh, by inode, for the +NEW column. */
struct prev_total {
	__u32 inode;
	unsigned long long total;
};

static struct prev_total *prev;
static size_t nr_prev;
static bool have_prev;

static void die(int err, const char *fmt, ...)
{
	va_list ap;

	fputs("reuserps-stat: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(err));
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p)
		die(ENOMEM, "realloc");
	return p;
}

/* Append to a malloc()ed string that may be NULL. */
static void append(char **s, const char *fmt, ...)
{
	size_t len = *s ? strlen(*s) : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	*s = xrealloc(*s, len + n + 1);
	va_start(ap, fmt);
	vsnprintf(*s + len, n + 1, fmt, ap);
	va_end(ap);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: reuserps-stat [-n NETNS] [-p PORT] [-w [SECS]] [-h]\n"
		"List the TCP listeners that have SO_REUSERPS.\n\n"
		"  -n, --netns NETNS   look in network namespace NETNS: a\n"
		"                      name under /var/run/netns or a path\n"
		"                      such as /proc/PID/ns/net\n"
		"  -p, --port PORT     only listeners on local port PORT\n"
		"  -w, --watch [SECS]  refresh every SECS seconds (default 1)\n"
		"  -h, --help          show this help\n");
}

static void enter_netns(const char *ns)
{
	char path[PATH_MAX];
	int fd;

	/* A bare name is one that "ip netns add" created. */
	if (strchr(ns, '/'))
		snprintf(path, sizeof(path), "%s", ns);
	else
		snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(errno, "%s", path);
	if (setns(fd, CLONE_NEWNET))
		die(errno, "setns %s", path);
	close(fd);
}

static __u32 get_u32(const struct rtattr *a, __u32 def)
{
	__u32 v;

	if (RTA_PAYLOAD(a) < sizeof(v))
		return def;
	memcpy(&v, RTA_DATA(a), sizeof(v));
	return v;
}

static unsigned long long get_u64(const struct rtattr *a)
{
	__u64 v;

	/* Only 4-byte aligned in the message: do not dereference. */
	if (RTA_PAYLOAD(a) < sizeof(v))
		return 0;
	memcpy(&v, RTA_DATA(a), sizeof(v));
	return v;
}

static void parse_reuserps(struct listener *l, const struct rtattr *nest)
{
	int len = RTA_PAYLOAD(nest);
	const struct rtattr *a;
	size_t n;

	for (a = RTA_DATA(nest); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		switch (a->rta_type & NLA_TYPE_MASK) {
		case REUSERPS_DIAG_POLICY:
			l->policy = get_u32(a, l->policy);
			break;
		case REUSERPS_DIAG_MAX_CONNS:
			l->max_conns = get_u32(a, 0);
			break;
		case REUSERPS_DIAG_ACTIVE:
			l->active = get_u32(a, 0);
			break;
		case REUSERPS_DIAG_TOTAL:
			l->total = get_u64(a);
			break;
		case REUSERPS_DIAG_FULL_SKIPS:
			l->skips = get_u64(a);
			break;
		case REUSERPS_DIAG_CPUS:
			/* Whole words only; a partial one is ignored. */
			n = RTA_PAYLOAD(a) / sizeof(__u64);
			if (!n || l->cpus)
				break;
			l->cpus = xrealloc(NULL, n * sizeof(__u64));
			memcpy(l->cpus, RTA_DATA(a), n * sizeof(__u64));
			l->nr_words = n;
			break;
		}
	}
}

static void parse_msg(struct table *t, const struct nlmsghdr *nlh,
		      int family, unsigned int port)
{
	const struct inet_diag_msg *r = NLMSG_DATA(nlh);
	const struct rtattr *a, *nest = NULL;
	struct listener *l;
	int len;

	if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*r)) ||
	    r->idiag_family != family || r->idiag_state != TCP_LISTEN_STATE)
		return;
	/* May be negative if the message ends before the aligned size. */
	len = (int)nlh->nlmsg_len -
	      (int)NLMSG_LENGTH(NLMSG_ALIGN(sizeof(*r)));
	if (port && ntohs(r->id.idiag_sport) != port)
		return;

	a = (const void *)((const char *)r + NLMSG_ALIGN(sizeof(*r)));
	for (; RTA_OK(a, len); a = RTA_NEXT(a, len))
		if ((a->rta_type & NLA_TYPE_MASK) == INET_DIAG_REUSERPS)
			nest = a;
	if (!nest)
		return;

	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->l = xrealloc(t->l, t->cap * sizeof(*t->l));
	}
	l = &t->l[t->n++];
	memset(l, 0, sizeof(*l));
	l->family = family;
	l->port = ntohs(r->id.idiag_sport);
	l->inode = r->idiag_inode;
	l->ifindex = r->id.idiag_if;
	l->policy = POLICY_UNKNOWN;
	memcpy(l->addr, r->id.idiag_src, family == AF_INET ? 4 : 16);
	parse_reuserps(l, nest);
}

static void diag_dump(int fd, struct table *t, int family, unsigned int port)
{
	static long buf[RECV_BUF_SIZE / sizeof(long)];
	static __u32 seq;
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req = {
		.nlh.nlmsg_len = sizeof(req),
		.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY,
		.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		.nlh.nlmsg_seq = ++seq,
		.r.sdiag_family = family,
		.r.sdiag_protocol = IPPROTO_TCP,
		.r.idiag_states = 1 << TCP_LISTEN_STATE,
		.r.idiag_ext = 1 << (INET_DIAG_INFO - 1),
		.r.id.idiag_sport = htons(port),
	};
	struct sockaddr_nl nladdr = { .nl_family = AF_NETLINK };
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr msg = {
		.msg_name = &nladdr, .msg_namelen = sizeof(nladdr),
		.msg_iov = &iov, .msg_iovlen = 1,
	};
	const struct nlmsgerr *e;
	struct nlmsghdr *nlh;
	ssize_t n;
	int err;

	if (sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&nladdr,
		   sizeof(nladdr)) < 0)
		die(errno, "sock_diag request");

	for (;;) {
		n = recvmsg(fd, &msg, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die(errno, "sock_diag reply");
		if (msg.msg_flags & MSG_TRUNC)
			die(EMSGSIZE, "sock_diag reply truncated");
		if (!n)
			die(EPIPE, "sock_diag reply");

		for (nlh = (void *)buf; NLMSG_OK(nlh, n);
		     nlh = NLMSG_NEXT(nlh, n)) {
			if (nlh->nlmsg_seq != req.nlh.nlmsg_seq)
				continue;
			switch (nlh->nlmsg_type) {
			case NLMSG_DONE:
				/* A dump may end with an error code. */
				err = 0;
				if (nlh->nlmsg_len >= NLMSG_LENGTH(sizeof(err)))
					memcpy(&err, NLMSG_DATA(nlh),
					       sizeof(err));
				if (err < 0)
					die(-err, "sock_diag dump");
				return;
			case NLMSG_ERROR:
				e = NLMSG_DATA(nlh);
				if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
					die(EBADMSG, "sock_diag reply");
				if (e->error == -ENOENT ||
				    e->error == -EPROTONOSUPPORT)
					die(-e->error, "no TCP sock_diag (%s)",
					    "modprobe tcp_diag");
				if (e->error)
					die(-e->error, "sock_diag dump");
				return;
			case SOCK_DIAG_BY_FAMILY:
				parse_msg(t, nlh, family, port);
				break;
			}
		}
	}
}

static int cmp_inode(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return (x > y) - (x < y);
}

struct owner {
	__u32 inode;	/* first, for cmp_inode() */
	int last_pid;
	char *who;
};

static void read_comm(int procfd, int pid, char *comm, size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%d/comm", pid);
	fd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, comm, size - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0) {
		snprintf(comm, size, "?");
		return;
	}
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
}

/* Scan the file descriptors of every process we may look at, once. */
static void scan_owners(struct owner *own, size_t n)
{
	char link[64], path[64], comm[32];
	struct dirent *de, *fe;
	struct owner *o;
	unsigned long v;
	DIR *proc, *fds;
	ssize_t len;
	char *end;
	int fd, pid;

	proc = opendir("/proc");
	if (!proc)
		return;
	while ((de = readdir(proc))) {
		pid = strtol(de->d_name, &end, 10);
		if (pid <= 0 || *end)
			continue;
		snprintf(path, sizeof(path), "%d/fd", pid);
		/* Other users' processes (EACCES) or gone (ENOENT). */
		fd = openat(dirfd(proc), path,
			    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue;
		fds = fdopendir(fd);
		if (!fds) {
			close(fd);
			continue;
		}
		comm[0] = '\0';
		while ((fe = readdir(fds))) {
			len = readlinkat(fd, fe->d_name, link,
					 sizeof(link) - 1);
			if (len < 9 || strncmp(link, "socket:[", 8))
				continue;
			link[len] = '\0';
			errno = 0;
			v = strtoul(link + 8, &end, 10);
			if (errno || strcmp(end, "]") || v > UINT32_MAX)
				continue;
			o = bsearch(&(__u32){ v }, own, n, sizeof(*own),
				    cmp_inode);
			if (!o || o->last_pid == pid)
				continue;
			if (!comm[0])
				read_comm(dirfd(proc), pid, comm, sizeof(comm));
			append(&o->who, "%s%d/%s", o->who ? "," : "", pid,
			       comm);
			o->last_pid = pid;
		}
		closedir(fds);
	}
	closedir(proc);
}

static void find_owners(struct table *t)
{
	struct owner *own, *o;
	size_t i, n = 0;

	own = xrealloc(NULL, t->n * sizeof(*own));
	for (i = 0; i < t->n; i++)
		own[i] = (struct owner){ .inode = t->l[i].inode };
	qsort(own, t->n, sizeof(*own), cmp_inode);
	for (i = 0; i < t->n; i++)
		if (!n || own[n - 1].inode != own[i].inode)
			own[n++] = own[i];
	scan_owners(own, n);
	for (i = 0; i < t->n; i++) {
		o = bsearch(&t->l[i].inode, own, n, sizeof(*own), cmp_inode);
		if (o->who)
			append(&t->l[i].owners, "%s", o->who);
	}
	for (i = 0; i < n; i++)
		free(own[i].who);
	free(own);
}

static int cmp_listener(const void *a, const void *b)
{
	const struct listener *x = a, *y = b;
	int d;

	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	d = memcmp(x->addr, y->addr, sizeof(x->addr));
	if (d)
		return d;
	return cmp_inode(&x->inode, &y->inode);
}

static bool cpu_set(const struct listener *l, unsigned int cpu)
{
	return l->cpus[cpu / 64] >> (cpu % 64) & 1;
}

/* The mask as a cpulist, as in /sys/devices/system/cpu/online. */
static char *cpulist(const struct listener *l)
{
	unsigned int cpu, first, nbits = l->nr_words * 64;
	char *s = NULL;

	for (cpu = 0; cpu < nbits; cpu++) {
		if (!cpu_set(l, cpu))
			continue;
		first = cpu;
		while (cpu + 1 < nbits && cpu_set(l, cpu + 1))
			cpu++;
		append(&s, "%s%u", s ? "," : "", first);
		if (cpu != first)
			append(&s, "-%u", cpu);
	}
	if (!s)
		append(&s, "-");
	return s;
}

static char *address(const struct listener *l)
{
	char ip[INET6_ADDRSTRLEN], ifname[IF_NAMESIZE];
	char *s = NULL;

	inet_ntop(l->family, l->addr, ip, sizeof(ip));
	append(&s, l->family == AF_INET6 ? "[%s]" : "%s", ip);
	/* Bound to a device (SO_BINDTODEVICE or a link-local scope). */
	if (l->ifindex)
		append(&s, "%%%s", if_indextoname(l->ifindex, ifname) ?
		       ifname : "?");
	return s;
}

static unsigned long long new_since(const struct listener *l, bool *known)
{
	struct prev_total *p;

	p = have_prev ? bsearch(&l->inode, prev, nr_prev, sizeof(*prev),
				cmp_inode) : NULL;
	*known = p && l->total >= p->total;
	return *known ? l->total - p->total : 0;
}

static void print_table(struct table *t, bool watch)
{
	static const char *const policies[] = { "rr", "ff", "lc" };
	int ncols = watch ? NR_COLS : COL_NEW;
	char *(*cell)[NR_COLS];
	unsigned long long d;
	struct listener *l;
	int c, w[NR_COLS];
	char **row;
	size_t i;
	bool ok;

	cell = xrealloc(NULL, (t->n + 1) * sizeof(*cell));
	memset(cell, 0, (t->n + 1) * sizeof(*cell));
	for (c = 0; c < NR_COLS; c++)
		append(&cell[0][c], "%s", cols[c].name);
	for (i = 0; i < t->n; i++) {
		row = cell[i + 1];
		l = &t->l[i];
		append(&row[COL_PORT], "%u", l->port);
		row[COL_ADDR] = address(l);
		append(&row[COL_OWNER], "%s", l->owners ? l->owners : "-");
		row[COL_CPUS] = cpulist(l);
		if (l->policy < ARRAY_SIZE(policies))
			append(&row[COL_POLICY], "%s", policies[l->policy]);
		else if (l->policy == POLICY_UNKNOWN)
			append(&row[COL_POLICY], "?");
		else
			append(&row[COL_POLICY], "%u", l->policy);
		if (l->max_conns)
			append(&row[COL_CAP], "%u", l->max_conns);
		else
			append(&row[COL_CAP], "-");
		append(&row[COL_ACTIVE], "%u", l->active);
		append(&row[COL_TOTAL], "%llu", l->total);
		append(&row[COL_SKIPS], "%llu", l->skips);
		d = new_since(l, &ok);
		if (ok)
			append(&row[COL_NEW], "%llu", d);
		else
			append(&row[COL_NEW], "-");
	}

	for (c = 0; c < ncols; c++) {
		w[c] = 0;
		for (i = 0; i <= t->n; i++)
			if ((int)strlen(cell[i][c]) > w[c])
				w[c] = strlen(cell[i][c]);
	}
	for (i = 0; i <= t->n; i++) {
		for (c = 0; c < ncols; c++) {
			const char *sep = c + 1 < ncols ? "  " : "\n";

			/* No trailing blanks after the last column. */
			if (!cols[c].right && c + 1 == ncols)
				printf("%s%s", cell[i][c], sep);
			else
				printf(cols[c].right ? "%*s%s" : "%-*s%s",
				       w[c], cell[i][c], sep);
		}
		for (c = 0; c < NR_COLS; c++)
			free(cell[i][c]);
	}
	free(cell);
}

static void refresh(int fd, unsigned int port, unsigned int interval)
{
	struct table t = { 0 };
	char stamp[64];
	time_t now;
	size_t i;

	diag_dump(fd, &t, AF_INET, port);
	diag_dump(fd, &t, AF_INET6, port);
	if (t.n)
		find_owners(&t);
	qsort(t.l, t.n, sizeof(*t.l), cmp_listener);

	if (interval) {
		if (isatty(STDOUT_FILENO))
			fputs("\033[H\033[2J", stdout);
		else if (have_prev)
			putchar('\n');
		now = time(NULL);
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S",
			 localtime(&now));
		printf("%s  every %us\n", stamp, interval);
	}
	print_table(&t, interval);
	fflush(stdout);

	/* Remember the totals for the next +NEW. */
	prev = xrealloc(prev, (t.n + 1) * sizeof(*prev));
	for (i = 0; i < t.n; i++)
		prev[i] = (struct prev_total){ t.l[i].inode, t.l[i].total };
	nr_prev = t.n;
	have_prev = true;
	qsort(prev, nr_prev, sizeof(*prev), cmp_inode);

	for (i = 0; i < t.n; i++) {
		free(t.l[i].cpus);
		free(t.l[i].owners);
	}
	free(t.l);
}

/*
 * SIGINT and SIGTERM stay blocked in watch mode and are only taken here,
 * so a refresh is never cut short.  True when one of them arrived.
 */
static bool wait_signal(const sigset_t *set, unsigned int secs)
{
	struct timespec end, now, left;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += secs;
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		left.tv_sec = end.tv_sec - now.tv_sec;
		left.tv_nsec = end.tv_nsec - now.tv_nsec;
		if (left.tv_nsec < 0) {
			left.tv_sec--;
			left.tv_nsec += 1000000000L;
		}
		if (left.tv_sec < 0)
			return false;
		if (sigtimedwait(set, NULL, &left) > 0)
			return true;
		if (errno == EAGAIN)
			return false;
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "netns", required_argument, NULL, 'n' },
		{ "port", required_argument, NULL, 'p' },
		{ "watch", optional_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	unsigned int port = 0, interval = 0;
	const char *netns = NULL, *arg;
	unsigned long v;
	sigset_t set;
	char *end;
	int fd, c;

	/* "+": no permutation, so "-w 5" can take its operand below. */
	while ((c = getopt_long(argc, argv, "+n:p:w::h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			netns = optarg;
			break;
		case 'p':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || !v || v > 65535) {
				fprintf(stderr, "reuserps-stat: bad port %s\n",
					optarg);
				return 1;
			}
			port = v;
			break;
		case 'w':
			arg = optarg;
			if (!arg && optind < argc && argv[optind][0] >= '0' &&
			    argv[optind][0] <= '9')
				arg = argv[optind++];
			interval = 1;
			if (!arg)
				break;
			errno = 0;
			v = strtoul(arg, &end, 10);
			if (errno || *end || !v || v > 86400) {
				fprintf(stderr,
					"reuserps-stat: bad interval %s\n",
					arg);
				return 1;
			}
			interval = v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 1;
	}

	if (netns)
		enter_netns(netns);
	/* Opened after setns(): it belongs to the namespace it is made in. */
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0) {
		if (errno == EPROTONOSUPPORT)
			die(errno, "sock_diag is not available");
		die(errno, "socket(NETLINK_SOCK_DIAG)");
	}

	if (!interval) {
		refresh(fd, port, 0);
		close(fd);
		return 0;
	}

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	do
		refresh(fd, port, interval);
	while (!wait_signal(&set, interval));
	close(fd);
	free(prev);
	return 0;
}
