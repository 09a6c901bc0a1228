// SPDX-License-Identifier: GPL-2.0
/*
 * reuserps-stat: list the TCP listeners that have SO_REUSERPS, the way
 * "ss -tl" lists listeners, with the CPUs each is registered for, its
 * policy and cap, and its connection counts.
 *
 * The data comes from a sock_diag dump (NETLINK_SOCK_DIAG) that asks for
 * INET_DIAG_INFO: the kernel then adds to each such listener the nested
 * attribute INET_DIAG_REUSERPS, whose REUSERPS_DIAG_* members are listed
 * in <linux/reuserps.h>.  Listeners without SO_REUSERPS carry no such
 * attribute and are not shown, so a kernel without the option lists
 * nothing.  As in ss, -p finds the owners of a socket by matching
 * "socket:[INODE]" links under /proc/PID/fd, and -N enters a network
 * namespace that "ip netns add" made.
 *
 * With --interval, refresh every SECONDS and show, in +New, the
 * connections each listener was handed since the previous refresh.  With
 * -j, print a JSON array, one object per listener (one array per line
 * with --interval).
 *
 * Build: gcc -O2 -Wall -I../../../usr/include -o reuserps-stat \
 *	  reuserps-stat.c
 * (or make -C tools/net/reuserps, after make headers)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
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

#define FAMILY_INET	1
#define FAMILY_INET6	2

/*
 * Without INET_DIAG_SK_BPF_STORAGES, which is not asked for, the kernel
 * never builds a dump message larger than 32 KiB.
 */
#define RECV_BUF_SIZE 32768

/* The policies, as the table and the JSON name them. */
static const char *const policies[] = {
	[REUSERPS_ROUND_ROBIN]	= "rr",
	[REUSERPS_FILL_FIRST]	= "ff",
	[REUSERPS_LEAST_CONNS]	= "lc",
};

struct opts {
	unsigned int families;	/* FAMILY_* */
	unsigned int port;	/* only this local port; 0: all */
	unsigned int interval;	/* refresh every so many seconds, or 0 */
	bool numeric;		/* no service names */
	bool processes;		/* find the owners */
	bool no_header;
	bool json;
};

/* A process that holds a listener, as ss -p shows it. */
struct user {
	char comm[64];
	int pid;
	int fd;
};

struct listener {
	unsigned char addr[16];
	unsigned long long cookie;
	unsigned long long total;
	unsigned long long skips;
	unsigned long long new_conns;	/* if new_known, in refresh mode */
	unsigned long long *cpus;	/* bit n % 64 of word n / 64: CPU n */
	struct user *users;
	size_t nr_users;
	unsigned int nr_words;
	__u32 policy;
	__u32 max_conns;
	__u32 max_pending;
	__u32 pending;		/* its accept queue (idiag_rqueue) */
	__u32 active;
	__u32 inode;
	__u32 ifindex;
	__u16 port;
	__u8 family;
	bool v6only;
	bool new_known;
};

struct table {
	struct listener *l;
	size_t n, cap;
};

/* Totals of the previous refresh, by socket cookie, for +New. */
struct prev_total {
	unsigned long long cookie;
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
	p = realloc(p, n ? n : 1);
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
	fputs("Usage: reuserps-stat [OPTIONS] [ FILTER ]\n"
	      "List the TCP listeners that have SO_REUSERPS, as ss -tl does.\n"
	      "\n"
	      "  -t, --tcp            TCP sockets (the default and only one)\n"
	      "  -l, --listening      listening sockets (the only state)\n"
	      "  -4, --ipv4           only IPv4 sockets\n"
	      "  -6, --ipv6           only IPv6 sockets\n"
	      "  -n, --numeric        do not resolve service names\n"
	      "  -p, --processes      show the processes holding each one\n"
	      "  -H, --no-header      do not print the header line(s)\n"
	      "  -j, --json           a JSON array, an object per listener\n"
	      "  -N, --net NSNAME     use network namespace NSNAME (under\n"
	      "                       /var/run/netns, or /proc/PID/ns/net)\n"
	      "      --interval SECS  refresh every SECS seconds; +New counts\n"
	      "                       the connections handed out in between\n"
	      "                       (with -j, one JSON array per line)\n"
	      "  -h, --help           show this help\n"
	      "\n"
	      "FILTER := sport = :PORT  only listeners on local port PORT\n"
	      "                         (a number or a service name)\n"
	      "\n"
	      "Columns: CPUs the listener is registered for, Policy (rr:\n"
	      "round robin, ff: fill first, lc: least connections), Cap\n"
	      "(most active connections, - for none), Active, Total, Skips\n"
	      "(times passed over for being full).\n", f);
}

static void enter_netns(const char *ns)
{
	char path[PATH_MAX];
	int fd;

	/* A bare name is one that "ip netns add" created, as for ss -N. */
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
		case REUSERPS_DIAG_MAX_PENDING:
			l->max_pending = get_u32(a, 0);
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
	bool v6only = false;
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
	for (; RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		switch (a->rta_type & NLA_TYPE_MASK) {
		case INET_DIAG_REUSERPS:
			nest = a;
			break;
		case INET_DIAG_SKV6ONLY:
			/* Sent for every IPv6 listener. */
			v6only = RTA_PAYLOAD(a) >= 1 &&
				 *(const __u8 *)RTA_DATA(a);
			break;
		}
	}
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
	l->pending = r->idiag_rqueue;
	l->ifindex = r->id.idiag_if;
	l->cookie = (unsigned long long)r->id.idiag_cookie[1] << 32 |
		    r->id.idiag_cookie[0];
	l->v6only = v6only;
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
		/* The kernel skips other listeners; parse_msg() checks. */
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

static int cmp_cookie(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a;
	unsigned long long y = *(const unsigned long long *)b;

	return (x > y) - (x < y);
}

static int cmp_user(const void *a, const void *b)
{
	const struct user *x = a, *y = b;

	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return (x->fd > y->fd) - (x->fd < y->fd);
}

struct owner {
	__u32 inode;	/* first, for cmp_inode() */
	struct user *users;
	size_t n;
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
	/* The kernel ends it with a newline, which a comm cannot hold. */
	if (comm[n - 1] == '\n')
		n--;
	comm[n] = '\0';
}

/* Scan the file descriptors of every process we may look at, once. */
static void scan_owners(struct owner *own, size_t n)
{
	char link[64], path[64], comm[64];
	struct dirent *de, *fe;
	unsigned long v;
	DIR *proc, *fds;
	int fd, pid, fdnum;
	struct owner *o;
	struct user *u;
	ssize_t len;
	char *end;

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
			fdnum = strtol(fe->d_name, &end, 10);
			if (fdnum < 0 || *end || end == fe->d_name)
				continue;
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
			if (!o)
				continue;
			if (!comm[0])
				read_comm(dirfd(proc), pid, comm, sizeof(comm));
			o->users = xrealloc(o->users,
					    (o->n + 1) * sizeof(*o->users));
			u = &o->users[o->n++];
			snprintf(u->comm, sizeof(u->comm), "%s", comm);
			u->pid = pid;
			u->fd = fdnum;
		}
		closedir(fds);
	}
	closedir(proc);
}

static void find_owners(struct table *t)
{
	struct owner *own, *o;
	struct listener *l;
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
		l = &t->l[i];
		o = bsearch(&l->inode, own, n, sizeof(*own), cmp_inode);
		if (!o->n)
			continue;
		qsort(o->users, o->n, sizeof(*o->users), cmp_user);
		l->users = xrealloc(NULL, o->n * sizeof(*l->users));
		memcpy(l->users, o->users, o->n * sizeof(*l->users));
		l->nr_users = o->n;
	}
	for (i = 0; i < n; i++)
		free(own[i].users);
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
	return cmp_cookie(&x->cookie, &y->cookie);
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

/* As ss names a device it cannot find (ll_index_to_name()). */
static char *ifname(__u32 ifindex, char *buf)
{
	if (!if_indextoname(ifindex, buf))
		snprintf(buf, IF_NAMESIZE, "if%u", ifindex);
	return buf;
}

/* Control characters would reach the terminal: ss prints them raw. */
static char *printable(char *s)
{
	unsigned char *p;

	for (p = (unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	return s;
}

/*
 * The local address as ss prints it before ":PORT": IPv6 in brackets,
 * "*" for the IPv6 any address of a socket that takes IPv4 too (not
 * v6only), and "%DEVICE" for a socket bound to a device.
 */
static char *address(const struct listener *l)
{
	char ip[INET6_ADDRSTRLEN], dev[IF_NAMESIZE];
	char *s = NULL;

	inet_ntop(l->family, l->addr, ip, sizeof(ip));
	if (l->family == AF_INET)
		append(&s, "%s", ip);
	else if (!l->v6only && !memcmp(l->addr, &in6addr_any, 16))
		append(&s, "*");
	else
		append(&s, "[%s]", ip);
	if (l->ifindex)
		append(&s, "%%%s", printable(ifname(l->ifindex, dev)));
	return s;
}

/*
 * Like ss, which does not name the ports of the local (ephemeral) range:
 * /etc/services has names for many of them that mean nothing there.
 */
static bool ephemeral(unsigned int port)
{
	static unsigned int lo, hi;
	FILE *f;

	if (!lo) {
		f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
		if (!f || fscanf(f, "%u %u", &lo, &hi) != 2 || !lo) {
			lo = 1024;
			hi = 4999;
		}
		if (f)
			fclose(f);
	}
	return port >= lo && port <= hi;
}

struct service {
	struct service *next;
	unsigned int port;
	char *name;	/* NULL: none */
};

/* The port as ss prints it: its service name, unless -n. */
static char *service(unsigned int port, bool numeric)
{
	static struct service *cache;
	struct servent *se;
	struct service *c;
	char *s = NULL;

	for (c = cache; c; c = c->next)
		if (c->port == port)
			break;
	if (!c && !numeric && !ephemeral(port)) {
		if (!cache)
			setservent(1);
		se = getservbyport(htons(port), "tcp");
		c = xrealloc(NULL, sizeof(*c));
		c->port = port;
		c->name = NULL;
		if (se)
			append(&c->name, "%s", se->s_name);
		c->next = cache;
		cache = c;
	}
	if (!numeric && c && c->name)
		append(&s, "%s", c->name);
	else
		append(&s, "%u", port);
	return s;
}

/* As ss -p: users:(("nginx",pid=123,fd=6),("nginx",pid=124,fd=6)) */
static char *users_of(const struct listener *l)
{
	char comm[sizeof(l->users->comm)];
	char *s = NULL;
	size_t i;

	if (!l->nr_users) {
		append(&s, "");
		return s;
	}
	append(&s, "users:(");
	for (i = 0; i < l->nr_users; i++) {
		snprintf(comm, sizeof(comm), "%s", l->users[i].comm);
		append(&s, "%s(\"%s\",pid=%d,fd=%d)", i ? "," : "",
		       printable(comm), l->users[i].pid, l->users[i].fd);
	}
	append(&s, ")");
	return s;
}

enum {
	COL_ADDR, COL_PORT, COL_CPUS, COL_POLICY, COL_CAP, COL_ACTIVE,
	COL_QUEUE, COL_TOTAL, COL_SKIPS, COL_NEW, COL_PROC, NR_COLS
};

/* As ss: the address right-aligned up to its ':', the port after it. */
static const struct {
	const char *name;
	const char *sep;	/* before the column */
	bool right;
} cols[NR_COLS] = {
	[COL_ADDR]	= { "Local Address:", "", true },
	[COL_PORT]	= { "Port", "", false },
	[COL_CPUS]	= { "CPUs", "  ", false },
	[COL_POLICY]	= { "Policy", "  ", false },
	[COL_CAP]	= { "Cap", "  ", true },
	[COL_ACTIVE]	= { "Active", "  ", true },
	[COL_QUEUE]	= { "Queue", "  ", true },
	[COL_TOTAL]	= { "Total", "  ", true },
	[COL_SKIPS]	= { "Skips", "  ", true },
	[COL_NEW]	= { "+New", "  ", true },
	[COL_PROC]	= { "Process", "  ", false },
};

static bool col_shown(int c, const struct opts *o)
{
	if (c == COL_NEW)
		return o->interval;
	if (c == COL_PROC)
		return o->processes;
	return true;
}

static void fill_row(char **row, const struct listener *l,
		     const struct opts *o)
{
	row[COL_ADDR] = address(l);
	append(&row[COL_ADDR], ":");
	row[COL_PORT] = service(l->port, o->numeric);
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
	/* Unaccepted connections, against max_pending if it has one. */
	if (l->max_pending)
		append(&row[COL_QUEUE], "%u/%u", l->pending, l->max_pending);
	else
		append(&row[COL_QUEUE], "%u", l->pending);
	append(&row[COL_TOTAL], "%llu", l->total);
	append(&row[COL_SKIPS], "%llu", l->skips);
	if (l->new_known)
		append(&row[COL_NEW], "%llu", l->new_conns);
	else
		append(&row[COL_NEW], "-");
	row[COL_PROC] = users_of(l);
}

static void print_text(const struct table *t, const struct opts *o)
{
	size_t i, first = o->no_header ? 1 : 0;
	char *(*cell)[NR_COLS];
	int c, w[NR_COLS];
	char *line;
	size_t len;

	cell = xrealloc(NULL, (t->n + 1) * sizeof(*cell));
	memset(cell, 0, (t->n + 1) * sizeof(*cell));
	for (c = 0; c < NR_COLS; c++)
		append(&cell[0][c], "%s", cols[c].name);
	for (i = 0; i < t->n; i++)
		fill_row(cell[i + 1], &t->l[i], o);

	for (c = 0; c < NR_COLS; c++) {
		w[c] = 0;
		for (i = first; i <= t->n; i++)
			if ((int)strlen(cell[i][c]) > w[c])
				w[c] = strlen(cell[i][c]);
	}
	for (i = 0; i <= t->n; i++) {
		line = NULL;
		for (c = 0; c < NR_COLS; c++) {
			if (col_shown(c, o))
				append(&line,
				       cols[c].right ? "%s%*s" : "%s%-*s",
				       cols[c].sep, w[c], cell[i][c]);
			free(cell[i][c]);
		}
		/* No trailing blanks after the last column. */
		len = strlen(line);
		while (len && line[len - 1] == ' ')
			line[--len] = '\0';
		if (i >= first)
			puts(line);
		free(line);
	}
	free(cell);
}

/*
 * Length of the valid UTF-8 sequence (RFC 3629) that @p starts, or 0.
 * A comm is cut at 15 bytes, maybe in the middle of a character.
 */
static size_t utf8_len(const unsigned char *p)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] < 0xc2)
		return 0;
	if (p[0] < 0xe0) {
		n = 2;
	} else if (p[0] < 0xf0) {
		n = 3;
		if (p[0] == 0xe0)
			lo = 0xa0;	/* overlong */
		if (p[0] == 0xed)
			hi = 0x9f;	/* surrogates */
	} else if (p[0] < 0xf5) {
		n = 4;
		if (p[0] == 0xf0)
			lo = 0x90;	/* overlong */
		if (p[0] == 0xf4)
			hi = 0x8f;	/* beyond U+10FFFF */
	} else {
		return 0;
	}
	/* The terminating NUL fails the test: no read past it. */
	for (i = 1; i < n; i++, lo = 0x80, hi = 0xbf)
		if (p[i] < lo || p[i] > hi)
			return 0;
	return n;
}

/* A JSON string; bytes that are not UTF-8 become U+FFFD. */
static void json_str(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	putchar('"');
	while (*p) {
		n = utf8_len(p);
		if (!n) {
			fputs("\\ufffd", stdout);
			p++;
			continue;
		}
		if (n > 1) {
			fwrite(p, 1, n, stdout);
			p += n;
			continue;
		}
		switch (*p) {
		case '"':
			fputs("\\\"", stdout);
			break;
		case '\\':
			fputs("\\\\", stdout);
			break;
		case '\n':
			fputs("\\n", stdout);
			break;
		case '\r':
			fputs("\\r", stdout);
			break;
		case '\t':
			fputs("\\t", stdout);
			break;
		default:
			if (*p < 0x20)
				printf("\\u%04x", *p);
			else
				putchar(*p);
		}
		p++;
	}
	putchar('"');
}

static void json_listener(const struct listener *l, const struct opts *o)
{
	char ip[INET6_ADDRSTRLEN], dev[IF_NAMESIZE];
	unsigned int cpu, nbits = l->nr_words * 64;
	bool first = true;
	size_t i;

	printf("{\"family\":\"%s\",\"local\":",
	       l->family == AF_INET ? "inet" : "inet6");
	inet_ntop(l->family, l->addr, ip, sizeof(ip));
	json_str(ip);
	printf(",\"port\":%u", l->port);
	if (l->family == AF_INET6)
		printf(",\"v6only\":%s", l->v6only ? "true" : "false");
	if (l->ifindex) {
		fputs(",\"ifname\":", stdout);
		json_str(ifname(l->ifindex, dev));
	}
	printf(",\"inode\":%u,\"cookie\":%llu,\"cpus\":[", l->inode,
	       l->cookie);
	for (cpu = 0; cpu < nbits; cpu++) {
		if (!cpu_set(l, cpu))
			continue;
		printf("%s%u", first ? "" : ",", cpu);
		first = false;
	}
	fputs("],\"policy\":", stdout);
	if (l->policy < ARRAY_SIZE(policies))
		json_str(policies[l->policy]);
	else	/* none, or one this tool does not know */
		fputs("null", stdout);
	printf(",\"max_conns\":%u,\"active_conns\":%u", l->max_conns,
	       l->active);
	printf(",\"max_pending\":%u,\"pending\":%u", l->max_pending,
	       l->pending);
	printf(",\"total_conns\":%llu,\"full_skips\":%llu", l->total,
	       l->skips);
	if (o->interval) {
		if (l->new_known)
			printf(",\"new_conns\":%llu", l->new_conns);
		else
			fputs(",\"new_conns\":null", stdout);
	}
	if (o->processes) {
		fputs(",\"users\":[", stdout);
		for (i = 0; i < l->nr_users; i++) {
			fputs(i ? ",{\"comm\":" : "{\"comm\":", stdout);
			json_str(l->users[i].comm);
			printf(",\"pid\":%d,\"fd\":%d}", l->users[i].pid,
			       l->users[i].fd);
		}
		putchar(']');
	}
	putchar('}');
}

/* One line, so that each refresh of --interval is a line of its own. */
static void print_json(const struct table *t, const struct opts *o)
{
	size_t i;

	putchar('[');
	for (i = 0; i < t->n; i++) {
		if (i)
			putchar(',');
		json_listener(&t->l[i], o);
	}
	puts("]");
}

/* +New: the connections handed out since the previous refresh. */
static void count_new(struct table *t)
{
	struct prev_total *p;
	struct listener *l;
	size_t i;

	for (i = 0; i < t->n; i++) {
		l = &t->l[i];
		p = have_prev ? bsearch(&l->cookie, prev, nr_prev,
					sizeof(*prev), cmp_cookie) : NULL;
		l->new_known = p && l->total >= p->total;
		l->new_conns = l->new_known ? l->total - p->total : 0;
	}

	prev = xrealloc(prev, t->n * sizeof(*prev));
	for (i = 0; i < t->n; i++)
		prev[i] = (struct prev_total){ t->l[i].cookie, t->l[i].total };
	nr_prev = t->n;
	have_prev = true;
	qsort(prev, nr_prev, sizeof(*prev), cmp_cookie);
}

static void free_table(struct table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		free(t->l[i].cpus);
		free(t->l[i].users);
	}
	free(t->l);
	memset(t, 0, sizeof(*t));
}

static void refresh(int fd, const struct opts *o)
{
	static bool refreshed;
	struct table t = { 0 };
	char stamp[64];
	time_t now;

	if (o->families & FAMILY_INET)
		diag_dump(fd, &t, AF_INET, o->port);
	if (o->families & FAMILY_INET6)
		diag_dump(fd, &t, AF_INET6, o->port);
	if (t.n && o->processes)
		find_owners(&t);
	qsort(t.l, t.n, sizeof(*t.l), cmp_listener);
	if (o->interval)
		count_new(&t);

	if (o->json) {
		print_json(&t, o);
	} else {
		if (o->interval) {
			if (isatty(STDOUT_FILENO))
				fputs("\033[H\033[2J", stdout);
			else if (refreshed)
				putchar('\n');
		}
		if (o->interval && !o->no_header) {
			now = time(NULL);
			strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S",
				 localtime(&now));
			printf("%s  every %us\n", stamp, o->interval);
		}
		print_text(&t, o);
	}
	refreshed = true;
	if (fflush(stdout) || ferror(stdout))
		die(errno ? errno : EIO, "stdout");
	free_table(&t);
}

/*
 * SIGINT and SIGTERM stay blocked in refresh mode and are only taken
 * here, so a refresh is never cut short.  True when one of them arrived.
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

static unsigned int parse_port(const char *s)
{
	struct servent *se;
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s >= '0' && *s <= '9' && !errno && !*end && v && v <= 65535)
		return v;
	se = *s ? getservbyname(s, "tcp") : NULL;
	if (!se) {
		fprintf(stderr, "reuserps-stat: bad port \"%s\"\n", s);
		exit(1);
	}
	return ntohs(se->s_port);
}

/*
 * The one filter of ss that applies: "sport = :PORT", also with "==" or
 * "eq" or no operator, without the colon, and in parentheses.
 */
static unsigned int parse_filter(int argc, char **argv)
{
	char *buf = NULL, *tok[4], *save, *w, *p;
	unsigned int port;
	int i, n = 0;

	for (i = 0; i < argc; i++)
		append(&buf, "%s ", argv[i]);
	for (p = buf; *p; p++)
		if (*p == '(' || *p == ')')
			*p = ' ';
	for (w = strtok_r(buf, " \t\n", &save); w;
	     w = strtok_r(NULL, " \t\n", &save)) {
		if (n == (int)ARRAY_SIZE(tok))
			goto bad;
		tok[n++] = w;
	}
	if (n == 3 && (!strcmp(tok[1], "=") || !strcmp(tok[1], "==") ||
		       !strcmp(tok[1], "eq"))) {
		tok[1] = tok[2];
		n = 2;
	}
	if (n != 2 || strcmp(tok[0], "sport"))
		goto bad;
	port = parse_port(tok[1] + (tok[1][0] == ':'));
	free(buf);
	return port;
bad:
	fprintf(stderr,
		"reuserps-stat: unsupported filter; only \"sport = :PORT\"\n");
	exit(1);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "tcp", no_argument, NULL, 't' },
		{ "listening", no_argument, NULL, 'l' },
		{ "ipv4", no_argument, NULL, '4' },
		{ "ipv6", no_argument, NULL, '6' },
		{ "numeric", no_argument, NULL, 'n' },
		{ "processes", no_argument, NULL, 'p' },
		{ "no-header", no_argument, NULL, 'H' },
		{ "json", no_argument, NULL, 'j' },
		{ "net", required_argument, NULL, 'N' },
		{ "interval", required_argument, NULL, 'I' },
		{ "help", no_argument, NULL, 'h' },
		{ }
	};
	struct opts o = { 0 };
	const char *netns = NULL;
	unsigned long v;
	sigset_t set;
	char *end;
	int fd, c;

	while ((c = getopt_long(argc, argv, "tl46npHjN:h", longopts,
				NULL)) != -1) {
		switch (c) {
		case 't':
		case 'l':
			break;
		case '4':
			o.families |= FAMILY_INET;
			break;
		case '6':
			o.families |= FAMILY_INET6;
			break;
		case 'n':
			o.numeric = true;
			break;
		case 'p':
			o.processes = true;
			break;
		case 'H':
			o.no_header = true;
			break;
		case 'j':
			o.json = true;
			break;
		case 'N':
			netns = optarg;
			break;
		case 'I':	/* --interval: ss's -i is --info */
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || !v || v > 86400) {
				fprintf(stderr,
					"reuserps-stat: bad interval \"%s\"\n",
					optarg);
				return 1;
			}
			o.interval = v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (!o.families)
		o.families = FAMILY_INET | FAMILY_INET6;
	if (optind < argc)
		o.port = parse_filter(argc - optind, argv + optind);

	if (netns)
		enter_netns(netns);
	/* Opened after setns(): it belongs to the namespace it is made in. */
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0) {
		if (errno == EPROTONOSUPPORT)
			die(errno, "sock_diag is not available");
		die(errno, "socket(NETLINK_SOCK_DIAG)");
	}

	if (!o.interval) {
		refresh(fd, &o);
		close(fd);
		return 0;
	}

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	do
		refresh(fd, &o);
	while (!wait_signal(&set, o.interval));
	close(fd);
	free(prev);
	return 0;
}
