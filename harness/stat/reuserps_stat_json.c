// SPDX-License-Identifier: GPL-2.0
/*
 * reuserps_stat_json: check what "reuserps-stat -j -n -p" reports against
 * getsockopt(SO_REUSERPS) and against the connections this test made.
 *
 * It makes two reuseport groups, on 127.0.0.1 and on [::1], each of a
 * listener registered for CPU 0 with a cap of 5 and one for CPU 1
 * without a cap (round robin), and a plain SO_REUSEPORT listener that
 * must not be listed.  A client thread pinned to CPU 0 then connects 6
 * times to each group (the 6th finds the CPU 0 listener full and goes to
 * the other), pinned to CPU 1 3 times; the test accepts every connection,
 * noting the listener it came from, and closes some.  Then it parses the
 * JSON of reuserps-stat (beside this program) and checks each listener,
 * found by address, port and socket cookie, and the plain text output.
 *
 * Run as root, in a guest with at least 2 CPUs booting a kernel with
 * SO_REUSERPS.  Prints a TAP line per check.  Exit: 0 pass, 1 fail,
 * 4 skip (no SO_REUSERPS, or not 2 CPUs).
 *
 * Build: gcc -static -O2 -Wall -pthread -I usr/include \
 *	  -o reuserps_stat_json reuserps_stat_json.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/reuserps.h>

/* SO_REUSERPS and SO_COOKIE come from the patched uapi headers it is
 * built against (harness/build-tests.sh: -isystem usr/include).
 */
#define KSFT_SKIP 4
#define CAP 5			/* of the CPU 0 listeners */
#define N_CPU0 (CAP + 1)	/* connections from CPU 0, to each group */
#define N_CPU1 3		/* from CPU 1 */
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * ---- A small JSON parser (RFC 8259), for what reuserps-stat prints.
 * Stricter than the RFC in three ways: no lone surrogates, no \u0000 (the
 * strings are C strings), and no nesting deeper than 32.
 */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
	enum jtype type;
	bool b;
	bool is_uint;		/* a number that is a whole u64: in u */
	unsigned long long u;
	double d;
	char *s;		/* J_STR, decoded to UTF-8 */
	struct jval **v;	/* J_ARR items, J_OBJ values */
	char **k;		/* J_OBJ keys */
	size_t n;
};

struct jparser {
	const char *p;
	const char *err;
	int depth;
};

static struct jval *jparse_value(struct jparser *jp);

static void *xmalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (!p) {
		perror("calloc");
		exit(1);
	}
	return p;
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		perror("realloc");
		exit(1);
	}
	return p;
}

static void jfree(struct jval *v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < v->n; i++) {
		jfree(v->v[i]);
		if (v->k)
			free(v->k[i]);
	}
	free(v->v);
	free(v->k);
	free(v->s);
	free(v);
}

static void jskip(struct jparser *jp)
{
	while (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' ||
	       *jp->p == '\r')
		jp->p++;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool jhex4(struct jparser *jp, unsigned int *cp)
{
	int i, h;

	*cp = 0;
	for (i = 0; i < 4; i++) {
		h = hexval(jp->p[i]);
		if (h < 0)
			return false;
		*cp = *cp << 4 | h;
	}
	jp->p += 4;
	return true;
}

static void put_utf8(char **s, size_t *len, unsigned int cp)
{
	char *o;

	*s = xrealloc(*s, *len + 5);
	o = *s + *len;
	if (cp < 0x80) {
		*o++ = cp;
	} else if (cp < 0x800) {
		*o++ = 0xc0 | cp >> 6;
		*o++ = 0x80 | (cp & 0x3f);
	} else if (cp < 0x10000) {
		*o++ = 0xe0 | cp >> 12;
		*o++ = 0x80 | (cp >> 6 & 0x3f);
		*o++ = 0x80 | (cp & 0x3f);
	} else {
		*o++ = 0xf0 | cp >> 18;
		*o++ = 0x80 | (cp >> 12 & 0x3f);
		*o++ = 0x80 | (cp >> 6 & 0x3f);
		*o++ = 0x80 | (cp & 0x3f);
	}
	*len = o - *s;
}

/* A string at jp->p, which is at its opening quote. */
static char *jparse_string(struct jparser *jp)
{
	unsigned int cp, lo;
	size_t len = 0;
	char *s = NULL;
	unsigned char c;

	jp->p++;
	for (;;) {
		c = *jp->p++;
		if (c == '"')
			break;
		if (c < 0x20) {
			jp->err = c ? "control character in string" :
				      "unterminated string";
			free(s);
			return NULL;
		}
		if (c != '\\') {
			s = xrealloc(s, len + 2);
			s[len++] = c;
			continue;
		}
		c = *jp->p++;
		switch (c) {
		case '"': case '\\': case '/':
			cp = c;
			break;
		case 'b':
			cp = '\b';
			break;
		case 'f':
			cp = '\f';
			break;
		case 'n':
			cp = '\n';
			break;
		case 'r':
			cp = '\r';
			break;
		case 't':
			cp = '\t';
			break;
		case 'u':
			if (!jhex4(jp, &cp))
				goto bad;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				goto bad;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (jp->p[0] != '\\' || jp->p[1] != 'u')
					goto bad;
				jp->p += 2;
				if (!jhex4(jp, &lo) || lo < 0xdc00 ||
				    lo > 0xdfff)
					goto bad;
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     (lo - 0xdc00);
			}
			if (!cp)
				goto bad;	/* would cut the C string */
			break;
		default:
			goto bad;
		}
		put_utf8(&s, &len, cp);
	}
	s = xrealloc(s, len + 1);
	s[len] = '\0';
	return s;
bad:
	jp->err = "bad escape in string";
	free(s);
	return NULL;
}

static bool isdigit_(char c)
{
	return c >= '0' && c <= '9';
}

static bool jparse_number(struct jparser *jp, struct jval *v)
{
	const char *start = jp->p, *p = jp->p;
	bool whole = true;
	char *end;

	if (*p == '-') {
		whole = false;
		p++;
	}
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (isdigit_(*p))
			p++;
	else
		goto bad;
	if (*p == '.') {
		whole = false;
		if (!isdigit_(*++p))
			goto bad;
		while (isdigit_(*p))
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		whole = false;
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!isdigit_(*p))
			goto bad;
		while (isdigit_(*p))
			p++;
	}
	v->type = J_NUM;
	v->d = strtod(start, NULL);
	if (whole) {
		errno = 0;
		v->u = strtoull(start, &end, 10);
		v->is_uint = !errno && end == p;
	}
	jp->p = p;
	return true;
bad:
	jp->err = "bad number";
	return false;
}

static bool jliteral(struct jparser *jp, const char *word)
{
	size_t n = strlen(word);

	if (strncmp(jp->p, word, n)) {
		jp->err = "unexpected token";
		return false;
	}
	jp->p += n;
	return true;
}

static bool jparse_items(struct jparser *jp, struct jval *v, bool obj)
{
	char close = obj ? '}' : ']';
	struct jval *item;
	char *key = NULL;

	jp->p++;
	jskip(jp);
	if (*jp->p == close) {
		jp->p++;
		return true;
	}
	for (;;) {
		jskip(jp);
		if (obj) {
			if (*jp->p != '"') {
				jp->err = "expected a key";
				return false;
			}
			key = jparse_string(jp);
			if (!key)
				return false;
			jskip(jp);
			if (*jp->p++ != ':') {
				jp->err = "expected ':'";
				free(key);
				return false;
			}
		}
		item = jparse_value(jp);
		if (!item) {
			free(key);
			return false;
		}
		v->v = xrealloc(v->v, (v->n + 1) * sizeof(*v->v));
		if (obj)
			v->k = xrealloc(v->k, (v->n + 1) * sizeof(*v->k));
		v->v[v->n] = item;
		if (obj)
			v->k[v->n] = key;
		v->n++;
		key = NULL;
		jskip(jp);
		if (*jp->p == ',') {
			jp->p++;
			continue;
		}
		if (*jp->p == close) {
			jp->p++;
			return true;
		}
		jp->err = obj ? "expected ',' or '}'" : "expected ',' or ']'";
		return false;
	}
}

static struct jval *jparse_value(struct jparser *jp)
{
	struct jval *v = xmalloc(sizeof(*v));
	bool ok;

	if (++jp->depth > 32) {
		jp->err = "nested too deep";
		free(v);
		return NULL;
	}
	jskip(jp);
	switch (*jp->p) {
	case '{':
		v->type = J_OBJ;
		ok = jparse_items(jp, v, true);
		break;
	case '[':
		v->type = J_ARR;
		ok = jparse_items(jp, v, false);
		break;
	case '"':
		v->type = J_STR;
		v->s = jparse_string(jp);
		ok = v->s;
		break;
	case 't':
		v->type = J_BOOL;
		v->b = true;
		ok = jliteral(jp, "true");
		break;
	case 'f':
		v->type = J_BOOL;
		ok = jliteral(jp, "false");
		break;
	case 'n':
		v->type = J_NULL;
		ok = jliteral(jp, "null");
		break;
	default:
		ok = jparse_number(jp, v);
	}
	jp->depth--;
	if (!ok) {
		jfree(v);
		return NULL;
	}
	return v;
}

/* The document in @s, which must be one value; NULL with *err. */
static struct jval *jparse(const char *s, const char **err,
			   size_t *err_at)
{
	struct jparser jp = { .p = s };
	struct jval *v;

	v = jparse_value(&jp);
	if (v) {
		jskip(&jp);
		if (*jp.p) {
			jp.err = "trailing characters";
			jfree(v);
			v = NULL;
		}
	}
	*err = jp.err;
	*err_at = jp.p - s;
	return v;
}

static const struct jval *jget(const struct jval *o, const char *key)
{
	size_t i;

	if (!o || o->type != J_OBJ)
		return NULL;
	for (i = 0; i < o->n; i++)
		if (!strcmp(o->k[i], key))
			return o->v[i];
	return NULL;
}

static bool jget_u64(const struct jval *o, const char *key,
		     unsigned long long *u)
{
	const struct jval *v = jget(o, key);

	if (!v || v->type != J_NUM || !v->is_uint)
		return false;
	*u = v->u;
	return true;
}

static const char *jget_str(const struct jval *o, const char *key)
{
	const struct jval *v = jget(o, key);

	return v && v->type == J_STR ? v->s : NULL;
}

/* ---- The test. */

static int nr_checks, nr_failed;

static bool check(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", ok ? "" : "not ", ++nr_checks);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (!ok)
		nr_failed++;
	return ok;
}

static void diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static int finish(void)
{
	printf("1..%d\n", nr_checks);
	printf("# %s: %d of %d checks failed\n",
	       nr_failed ? "FAIL" : "PASS", nr_failed, nr_checks);
	return nr_failed ? 1 : 0;
}

static void bail(const char *what)
{
	check(false, "%s: %s", what, strerror(errno));
	exit(finish());
}

struct listener {
	const char *name;
	int family;
	int cpu;		/* registered for; -1: no SO_REUSERPS */
	unsigned int max_conns;
	int fd;
	unsigned short port;
	unsigned long long cookie;
	unsigned long long inode;
	unsigned int accepted;	/* what the test did */
	unsigned int closed;
	struct reuserps_info info;	/* what getsockopt() says */
	int *cpus;		/* its mask, read back */
	int nr_cpus;
};

/* Two groups: 127.0.0.1 (0, 1) and [::1] (2, 3); 4 is plain. */
static struct listener ls[] = {
	{ .name = "v4/cpu0", .family = AF_INET, .cpu = 0, .max_conns = CAP },
	{ .name = "v4/cpu1", .family = AF_INET, .cpu = 1 },
	{ .name = "v6/cpu0", .family = AF_INET6, .cpu = 0, .max_conns = CAP },
	{ .name = "v6/cpu1", .family = AF_INET6, .cpu = 1 },
	{ .name = "v4/plain", .family = AF_INET, .cpu = -1 },
};

#define NR_RPS 4
#define PLAIN 4

struct conn {
	int cfd, afd;
	int listener;
	int cpu;
};

static struct conn conns[64];
static int nr_conns;

/* Connections a client pinned to @cpu makes to group @group. */
static const struct {
	int cpu, group, n;
} plan[] = {
	{ 0, 0, N_CPU0 }, { 0, 1, N_CPU0 }, { 1, 0, N_CPU1 }, { 1, 1, N_CPU1 },
};

/* Per listener, how many of its connections the test closes. */
static const unsigned int to_close[NR_RPS] = { 2, 1, 2, 1 };

static socklen_t loopback(int family, unsigned short port,
			  struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *sin6 = (void *)ss;
	struct sockaddr_in *sin = (void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*sin);
	}
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	sin6->sin6_addr = in6addr_loopback;
	return sizeof(*sin6);
}

/* SO_REUSERPS for @cpu alone, in a mask sized as CPU_ALLOC() does. */
static int set_reuserps(int fd, int cpu, unsigned int max_conns)
{
	struct reuserps_req req = {
		.policy = REUSERPS_ROUND_ROBIN,
		.max_conns = max_conns,
	};
	int ncpus = cpu + 1, ret;
	cpu_set_t *set;

	set = CPU_ALLOC(ncpus);
	if (!set)
		return -1;
	CPU_ZERO_S(CPU_ALLOC_SIZE(ncpus), set);
	CPU_SET_S(cpu, CPU_ALLOC_SIZE(ncpus), set);
	req.cpus = (uintptr_t)set;
	req.cpus_len = CPU_ALLOC_SIZE(ncpus);
	ret = setsockopt(fd, SOL_SOCKET, SO_REUSERPS, &req, sizeof(req));
	CPU_FREE(set);
	return ret;
}

static void make_listener(struct listener *l, unsigned short port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	struct stat st;
	int one = 1;

	/* Close-on-exec: reuserps-stat -p must find this process only. */
	l->fd = socket(l->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		bail("socket");
	if (setsockopt(l->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		bail("SO_REUSEPORT");
	if (l->cpu >= 0 && set_reuserps(l->fd, l->cpu, l->max_conns)) {
		if (errno == ENOPROTOOPT) {
			printf("SKIP: no SO_REUSERPS in this kernel\n");
			exit(KSFT_SKIP);
		}
		bail("SO_REUSERPS");
	}
	len = loopback(l->family, port, &ss);
	if (bind(l->fd, (struct sockaddr *)&ss, len))
		bail("bind");
	if (listen(l->fd, 64))
		bail("listen");
	len = sizeof(ss);
	if (getsockname(l->fd, (struct sockaddr *)&ss, &len))
		bail("getsockname");
	l->port = ntohs(l->family == AF_INET ?
			((struct sockaddr_in *)&ss)->sin_port :
			((struct sockaddr_in6 *)&ss)->sin6_port);
	len = sizeof(l->cookie);
	if (getsockopt(l->fd, SOL_SOCKET, SO_COOKIE, &l->cookie, &len))
		bail("SO_COOKIE");
	if (fstat(l->fd, &st))
		bail("fstat");
	l->inode = st.st_ino;
}

static int pin(int cpu)
{
	cpu_set_t *set = CPU_ALLOC(cpu + 1);
	size_t size = CPU_ALLOC_SIZE(cpu + 1);
	int ret;

	if (!set)
		return -1;
	CPU_ZERO_S(size, set);
	CPU_SET_S(cpu, size, set);
	/* 0: the calling thread. */
	ret = sched_setaffinity(0, size, set);
	CPU_FREE(set);
	return ret;
}

/* Accepts the connection just made, on whichever listener of @group. */
static int accept_one(int group, int *which)
{
	struct pollfd p[2] = {
		{ .fd = ls[2 * group].fd, .events = POLLIN },
		{ .fd = ls[2 * group + 1].fd, .events = POLLIN },
	};
	int i, fd;

	if (poll(p, 2, 3000) <= 0)
		return -1;
	for (i = 0; i < 2; i++) {
		if (!(p[i].revents & POLLIN))
			continue;
		fd = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			*which = 2 * group + i;
		return fd;
	}
	return -1;
}

static void *client(void *arg)
{
	struct sockaddr_storage ss;
	const char **err = arg;
	struct listener *l;
	struct conn *c;
	socklen_t len;
	size_t p;
	int i;

	for (p = 0; p < ARRAY_SIZE(plan); p++) {
		if (pin(plan[p].cpu)) {
			*err = "sched_setaffinity";
			return NULL;
		}
		l = &ls[2 * plan[p].group];
		len = loopback(l->family, l->port, &ss);
		for (i = 0; i < plan[p].n; i++) {
			c = &conns[nr_conns];
			c->cpu = plan[p].cpu;
			c->cfd = socket(l->family, SOCK_STREAM | SOCK_CLOEXEC,
					0);
			if (c->cfd < 0 ||
			    connect(c->cfd, (struct sockaddr *)&ss, len)) {
				*err = "connect";
				return NULL;
			}
			c->afd = accept_one(plan[p].group, &c->listener);
			if (c->afd < 0) {
				*err = "accept";
				return NULL;
			}
			ls[c->listener].accepted++;
			nr_conns++;
		}
	}
	return NULL;
}

/* Ends a connection at once: a reset takes it to TCP_CLOSE. */
static void close_conn(struct conn *c)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(c->afd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(c->afd);
	close(c->cfd);
	c->afd = -1;
	c->cfd = -1;
	ls[c->listener].closed++;
}

static int read_info(struct listener *l)
{
	struct reuserps_info info = { 0 };
	socklen_t len = sizeof(info);
	cpu_set_t *mask;
	size_t size;
	int cpu;

	/* First the size of the mask, then the mask. */
	if (getsockopt(l->fd, SOL_SOCKET, SO_REUSERPS, &info, &len))
		return -1;
	size = info.cpus_len;
	mask = xmalloc(size);
	memset(&info, 0, sizeof(info));
	info.cpus = (uintptr_t)mask;
	info.cpus_len = size;
	len = sizeof(info);
	if (getsockopt(l->fd, SOL_SOCKET, SO_REUSERPS, &info, &len)) {
		free(mask);
		return -1;
	}
	l->info = info;
	free(l->cpus);
	l->cpus = NULL;
	l->nr_cpus = 0;
	for (cpu = 0; cpu < (int)size * 8; cpu++) {
		if (!CPU_ISSET_S(cpu, size, mask))
			continue;
		l->cpus = xrealloc(l->cpus, (l->nr_cpus + 1) * sizeof(int));
		l->cpus[l->nr_cpus++] = cpu;
	}
	free(mask);
	return 0;
}

static unsigned int expect_active(const struct listener *l)
{
	return l->accepted - l->closed;
}

/* Counts settle in softirq: wait until they show what the test did. */
static void settle(void)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	bool done;
	int i, t;

	for (t = 0; t < 300; t++) {
		done = true;
		for (i = 0; i < NR_RPS; i++) {
			if (read_info(&ls[i]))
				bail("getsockopt(SO_REUSERPS)");
			if (ls[i].info.active_conns != expect_active(&ls[i]))
				done = false;
		}
		if (done)
			return;
		nanosleep(&ts, NULL);
	}
	diag("active counts still differ after 3s");
}

/* Runs @argv, its stdout captured; no shell, so no quoting of paths. */
static char *run(char *const argv[], int *status)
{
	size_t len = 0, cap = 4096;
	char *out = xmalloc(cap);
	int pfd[2];
	ssize_t n;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC))
		bail("pipe");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		bail("fork");
	if (!pid) {
		dup2(pfd[1], STDOUT_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		if (len + 1 == cap)
			out = xrealloc(out, cap *= 2);
		n = read(pfd[0], out + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
	}
	out[len] = '\0';
	close(pfd[0]);
	while (waitpid(pid, status, 0) < 0)
		if (errno != EINTR)
			bail("waitpid");
	return out;
}

static const char *local_of(const struct listener *l)
{
	return l->family == AF_INET ? "127.0.0.1" : "::1";
}

/* The object for @l: its address, port and cookie; NULL if none. */
static const struct jval *find(const struct jval *arr,
			       const struct listener *l, int *count)
{
	const struct jval *o, *found = NULL;
	unsigned long long port, cookie;
	const char *local;
	size_t i;

	*count = 0;
	for (i = 0; i < arr->n; i++) {
		o = arr->v[i];
		local = jget_str(o, "local");
		if (!jget_u64(o, "port", &port) ||
		    !jget_u64(o, "cookie", &cookie) || !local ||
		    port != l->port || cookie != l->cookie ||
		    strcmp(local, local_of(l)))
			continue;
		found = o;
		(*count)++;
	}
	return found;
}

static bool cpus_match(const struct jval *o, const struct listener *l)
{
	const struct jval *a = jget(o, "cpus");
	size_t i;

	if (!a || a->type != J_ARR || a->n != (size_t)l->nr_cpus)
		return false;
	for (i = 0; i < a->n; i++)
		if (a->v[i]->type != J_NUM || !a->v[i]->is_uint ||
		    a->v[i]->u != (unsigned long long)l->cpus[i])
			return false;
	return true;
}

static void check_u64(const struct jval *o, const char *key,
		      const struct listener *l, unsigned long long kernel,
		      long long expected)
{
	unsigned long long v = 0;
	bool have = jget_u64(o, key, &v);

	if (expected < 0)
		check(have && v == kernel, "%s: %s %llu = getsockopt %llu",
		      l->name, key, v, kernel);
	else
		check(have && v == kernel && v == (unsigned long long)expected,
		      "%s: %s %llu = getsockopt %llu = expected %lld",
		      l->name, key, v, kernel, expected);
}

static void check_users(const struct jval *o, const struct listener *l,
			const char *comm)
{
	const struct jval *a = jget(o, "users"), *u;
	unsigned long long pid, fd;
	bool found = false;
	const char *c;
	size_t i;

	if (!check(a && a->type == J_ARR, "%s: users is an array", l->name))
		return;
	for (i = 0; i < a->n; i++) {
		u = a->v[i];
		c = jget_str(u, "comm");
		if (jget_u64(u, "pid", &pid) && jget_u64(u, "fd", &fd) &&
		    pid == (unsigned long long)getpid() &&
		    fd == (unsigned long long)l->fd && c && !strcmp(c, comm))
			found = true;
	}
	check(found, "%s: users has {\"comm\":\"%s\",\"pid\":%d,\"fd\":%d}",
	      l->name, comm, (int)getpid(), l->fd);
}

static void check_listener(const struct jval *arr, const struct listener *l,
			   const char *comm)
{
	const char *family = l->family == AF_INET ? "inet" : "inet6";
	const struct jval *o;
	const char *s;
	int count;

	o = find(arr, l, &count);
	if (!check(count == 1, "%s: listed once as %s port %u cookie %llu",
		   l->name, local_of(l), l->port, l->cookie))
		return;
	s = jget_str(o, "family");
	check(s && !strcmp(s, family), "%s: family \"%s\"", l->name,
	      s ? s : "(none)");
	check_u64(o, "inode", l, l->inode, -1);
	check_u64(o, "max_conns", l, l->info.max_conns, l->max_conns);
	check_u64(o, "active_conns", l, l->info.active_conns,
		  expect_active(l));
	check_u64(o, "total_conns", l, l->info.total_conns, l->accepted);
	check_u64(o, "max_pending", l, l->info.max_pending, 0);
	check_u64(o, "pending", l, l->info.pending, -1);
	/* Only the CPU 0 listeners were ever full, once: the 6th request. */
	check_u64(o, "full_skips", l, l->info.full_skips,
		  l->max_conns ? 1 : 0);
	s = jget_str(o, "policy");
	check(s && !strcmp(s, "rr") &&
	      l->info.policy == REUSERPS_ROUND_ROBIN,
	      "%s: policy \"%s\", getsockopt %u", l->name, s ? s : "(none)",
	      l->info.policy);
	check(cpus_match(o, l) && l->nr_cpus == 1 && l->cpus[0] == l->cpu,
	      "%s: cpus [%d] = getsockopt's mask", l->name, l->cpu);
	check_users(o, l, comm);
}

/* Whether a whitespace-separated word of @text is @word. */
static bool has_word(const char *text, const char *word)
{
	size_t n = strlen(word);
	const char *p;

	for (p = strstr(text, word); p; p = strstr(p + 1, word))
		if ((p == text || p[-1] == ' ' || p[-1] == '\n') &&
		    (!p[n] || p[n] == ' ' || p[n] == '\n'))
			return true;
	return false;
}

/*
 * Whether a line of @text has the word @word and the string @str: the
 * listeners of a group share their address and port, not their owner.
 */
static bool has_line(const char *text, const char *word, const char *str)
{
	const char *start, *end;
	bool found = false;
	char *line;

	for (start = text; *start && !found; start = end + !!*end) {
		end = strchrnul(start, '\n');
		line = strndup(start, end - start);
		if (!line)
			bail("strndup");
		found = has_word(line, word) && strstr(line, str);
		free(line);
	}
	return found;
}

/* What the tool printed, as TAP comments: the log shows real output. */
static void show(const char *what, const char *out)
{
	const char *p = out, *nl;

	printf("# $ %s\n", what);
	while (*p) {
		nl = strchr(p, '\n');
		if (!nl)
			nl = p + strlen(p);
		printf("#   %.*s\n", (int)(nl - p), p);
		p = *nl ? nl + 1 : nl;
	}
}

static void check_text(const char *stat, const char *comm)
{
	char *argv[] = { (char *)stat, "-n", "-p", NULL };
	char word[64], user[128];
	const char *h;
	int status, i;
	char *out;

	out = run(argv, &status);
	check(WIFEXITED(status) && !WEXITSTATUS(status),
	      "reuserps-stat -n -p exits 0 (status %#x)", status);
	h = out + strspn(out, " ");
	check(!strncmp(h, "Local Address:Port", 18),
	      "text: header starts with \"Local Address:Port\"");
	for (i = 0; i < NR_RPS; i++) {
		/* As ss: 127.0.0.1:PORT, [::1]:PORT */
		snprintf(word, sizeof(word),
			 ls[i].family == AF_INET ? "%s:%u" : "[%s]:%u",
			 local_of(&ls[i]), ls[i].port);
		snprintf(user, sizeof(user), "(\"%s\",pid=%d,fd=%d)", comm,
			 (int)getpid(), ls[i].fd);
		check(has_line(out, word, user),
		      "text: %s has %s on a line with %s", ls[i].name, word,
		      user);
	}
	snprintf(word, sizeof(word), "127.0.0.1:%u", ls[PLAIN].port);
	check(!has_word(out, word), "text: no %s (plain SO_REUSEPORT)",
	      word);
	show("reuserps-stat -n -p", out);
	free(out);
}

static void check_json(const char *stat, const char *comm)
{
	char *argv[] = { (char *)stat, "-j", "-n", "-p", NULL };
	unsigned long long port;
	const struct jval *arr;
	struct jval *doc;
	int status, i;
	const char *err;
	size_t at, k;
	char *out;

	out = run(argv, &status);
	check(WIFEXITED(status) && !WEXITSTATUS(status),
	      "reuserps-stat -j -n -p exits 0 (status %#x)", status);
	doc = jparse(out, &err, &at);
	if (!check(doc && doc->type == J_ARR,
		   "JSON parses, an array (%s at %zu)", err ? err : "ok", at)) {
		show("reuserps-stat -j -n -p", out);
		free(out);
		jfree(doc);
		return;
	}
	arr = doc;
	for (k = 0; k < arr->n; k++)
		if (arr->v[k]->type != J_OBJ)
			break;
	check(k == arr->n, "JSON: every item is an object");
	for (i = 0; i < NR_RPS; i++)
		check_listener(arr, &ls[i], comm);
	for (k = 0; k < arr->n; k++)
		if (jget_u64(arr->v[k], "port", &port) &&
		    port == ls[PLAIN].port)
			break;
	check(k == arr->n,
	      "JSON: no listener on port %u (plain SO_REUSEPORT)",
	      ls[PLAIN].port);
	show("reuserps-stat -j -n -p", out);
	jfree(doc);
	free(out);
}

/* reuserps-stat, in the directory of this program. */
static char *stat_path(void)
{
	char exe[PATH_MAX], *slash, *path = NULL;
	ssize_t n;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		bail("readlink /proc/self/exe");
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	if (asprintf(&path, "%s/reuserps-stat", slash ? exe : ".") < 0)
		bail("asprintf");
	return path;
}

static void read_comm(char *comm, size_t size)
{
	ssize_t n;
	int fd;

	fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, comm, size - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		bail("/proc/self/comm");
	if (comm[n - 1] == '\n')
		n--;
	comm[n] = '\0';
}

int main(void)
{
	const char *thread_err = NULL;
	pthread_t thread;
	char comm[64];
	char *stat;
	int i, j;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (pin(0) || pin(1)) {
		printf("SKIP: needs CPUs 0 and 1\n");
		return KSFT_SKIP;
	}
	stat = stat_path();
	if (access(stat, X_OK)) {
		check(false, "%s: %s", stat, strerror(errno));
		return finish();
	}
	read_comm(comm, sizeof(comm));

	for (i = 0; i < NR_RPS; i += 2) {
		make_listener(&ls[i], 0);
		make_listener(&ls[i + 1], ls[i].port);
	}
	make_listener(&ls[PLAIN], 0);
	for (i = 0; i <= PLAIN; i++)
		diag("%s: %s port %u fd %d cookie %llu", ls[i].name,
		     local_of(&ls[i]), ls[i].port, ls[i].fd, ls[i].cookie);

	if (pthread_create(&thread, NULL, client, &thread_err) ||
	    pthread_join(thread, NULL))
		bail("pthread");
	if (thread_err)
		bail(thread_err);
	for (i = 0; i < nr_conns; i++)
		diag("connection %d: client on CPU %d, accepted on %s", i,
		     conns[i].cpu, ls[conns[i].listener].name);

	/*
	 * Each group's CPU 0 listener takes CAP of CPU 0's connections and
	 * is then full: the last goes to the CPU 1 listener, with CPU 1's.
	 */
	for (i = 0; i < NR_RPS; i += 2)
		check(ls[i].accepted == CAP &&
		      ls[i + 1].accepted == N_CPU0 - CAP + N_CPU1,
		      "%s group: %u on the CPU 0 listener (expected %d), %u on the CPU 1 one (%d)",
		      ls[i].family == AF_INET ? "v4" : "v6", ls[i].accepted,
		      CAP, ls[i + 1].accepted, N_CPU0 - CAP + N_CPU1);

	for (i = 0; i < NR_RPS; i++)
		for (j = 0; j < nr_conns && ls[i].closed < to_close[i]; j++)
			if (conns[j].listener == i && conns[j].afd >= 0)
				close_conn(&conns[j]);
	settle();
	for (i = 0; i < NR_RPS; i++)
		diag("%s: getsockopt policy %u max %u active %u total %llu skips %llu",
		     ls[i].name, ls[i].info.policy, ls[i].info.max_conns,
		     ls[i].info.active_conns,
		     (unsigned long long)ls[i].info.total_conns,
		     (unsigned long long)ls[i].info.full_skips);

	check_json(stat, comm);
	check_text(stat, comm);
	free(stat);
	return finish();
}
