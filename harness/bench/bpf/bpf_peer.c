// SPDX-License-Identifier: GPL-2.0
/*
 * Loader of reuserps_peer.bpf.c: the object is embedded
 * (reuserps_peer.bpf.inc, made by xxd -i), so a static binary needs no
 * file beside it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf_peer.h"

#ifndef SO_ATTACH_REUSEPORT_EBPF
#define SO_ATTACH_REUSEPORT_EBPF	52
#endif
#ifndef SO_COOKIE
#define SO_COOKIE			57
#endif
#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF		68
#endif
#define CGROUP2_MAGIC			0x63677270

#include "reuserps_peer.bpf.inc"	/* reuserps_peer_bpf_o[_len] */

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* the verifier log, on failure, is worth seeing */
	if (level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* An fd of the root of cgroup2, mounting it first if need be. */
static int cgroup_root(void)
{
	static const char *const where[] = { "/sys/fs/cgroup",
					     "/tmp/bpf_peer_cgroup2" };
	struct statfs sf;
	unsigned i;

	for (i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		mkdir(where[i], 0755);	/* sysfs has it, or refuses */
		if (statfs(where[i], &sf) || sf.f_type != CGROUP2_MAGIC)
			mount("cgroup2", where[i], "cgroup2", 0, NULL);
		if (!statfs(where[i], &sf) && sf.f_type == CGROUP2_MAGIC)
			return open(where[i], O_RDONLY | O_DIRECTORY);
	}
	return -1;
}

static int fail(struct peer *p, int err)
{
	peer_close(p);
	return err < 0 ? err : -err;
}

int peer_open_opts(struct peer *p, int policy, const int *fds,
		   const int *cpu_of, const unsigned *caps, int n,
		   const struct peer_opts *opts)
{
	struct peer_cfg cfg = { .policy = policy, .nslots = n };
	struct bpf_program *sel, *cnt;
	struct peer_range r;
	int i, err, fd, map, own;
	__u32 k;

	memset(p, 0, sizeof(*p));
	p->cg_fd = -1;
	/* a CPU's range is at most the group: PEER_MAX_PER_CPU covers it */
	_Static_assert(PEER_MAX_PER_CPU >= PEER_MAX_SLOTS, "per-CPU scan");
	if (n <= 0 || n > PEER_MAX_SLOTS || policy < 0 ||
	    policy > PEER_LEAST_CONNS)
		return -EINVAL;
	for (i = 1; i < n; i++)	/* a CPU's slots are consecutive */
		if (cpu_of[i] != cpu_of[i - 1]) {
			int j;

			for (j = 0; j < i - 1; j++)
				if (cpu_of[j] == cpu_of[i])
					return -EINVAL;
		}
	for (i = 0; i < n; i++)
		if (cpu_of[i] < 0 || cpu_of[i] >= PEER_MAX_CPUS)
			return -EINVAL;
	cfg.hold_ns = opts ? opts->hold_ns : 0;
	libbpf_set_print(quiet);

	p->obj = bpf_object__open_mem(reuserps_peer_bpf_o,
				      reuserps_peer_bpf_o_len, NULL);
	if (!p->obj)
		return fail(p, -errno);
	err = bpf_object__load(p->obj);
	if (err)
		return fail(p, err);
	sel = bpf_object__find_program_by_name(p->obj, "select_or_migrate");
	cnt = bpf_object__find_program_by_name(p->obj, "count");
	if (!sel || !cnt)
		return fail(p, -ENOENT);

	/* The config: one range of slots per CPU, a cap per slot. */
	k = 0;
	map = bpf_object__find_map_fd_by_name(p->obj, "cfg");
	if (bpf_map_update_elem(map, &k, &cfg, BPF_ANY))
		return fail(p, -errno);
	map = bpf_object__find_map_fd_by_name(p->obj, "cpus");
	for (i = 0; i < n; i++) {
		if (i && cpu_of[i] == cpu_of[i - 1])
			continue;
		r.first = i;
		for (r.n = 0; i + r.n < (unsigned)n &&
		     cpu_of[i + r.n] == cpu_of[i]; r.n++)
			;
		k = cpu_of[i];
		if (bpf_map_update_elem(map, &k, &r, BPF_ANY))
			return fail(p, -errno);
	}
	p->slots_fd = bpf_object__find_map_fd_by_name(p->obj, "slots");
	p->stats_fd = bpf_object__find_map_fd_by_name(p->obj, "stats");
	for (i = 0; i < n; i++) {
		struct peer_slot s = { .cap = caps ? caps[i] : 0 };

		k = i;
		if (bpf_map_update_elem(p->slots_fd, &k, &s, BPF_ANY))
			return fail(p, -errno);
	}

	/* Each listener: its slot in the sockarray (it must be listening)
	 * and in its sk_storage, which every child inherits.
	 */
	map = bpf_object__find_map_fd_by_name(p->obj, "socks");
	own = bpf_object__find_map_fd_by_name(p->obj, "owner");
	for (i = 0; i < n; i++) {
		struct peer_owner ow = { .slot = i };
		__u64 v = fds[i];

		socklen_t len = sizeof(p->cookies[i]);

		p->fds[i] = fds[i];
		if (getsockopt(fds[i], SOL_SOCKET, SO_COOKIE, &p->cookies[i],
			       &len))
			return fail(p, -errno);
		k = i;
		if (bpf_map_update_elem(map, &k, &v, BPF_NOEXIST))
			return fail(p, -errno);
		if (bpf_map_update_elem(own, &fds[i], &ow, BPF_NOEXIST))
			return fail(p, -errno);
	}
	p->n = n;

	/* Counting first, steering after: no child escapes the count. */
	p->cg_fd = cgroup_root();
	if (p->cg_fd < 0)
		return fail(p, -errno);
	p->sockops = bpf_program__attach_cgroup(cnt, p->cg_fd);
	if (!p->sockops) {
		err = -errno;
		p->sockops = NULL;
		return fail(p, err);
	}
	fd = bpf_program__fd(sel);
	if (setsockopt(fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &fd,
		       sizeof(fd)))
		return fail(p, -errno);
	p->attached = 1;
	return 0;
}

int peer_open(struct peer *p, int policy, const int *fds, const int *cpu_of,
	      const unsigned *caps, int n)
{
	return peer_open_opts(p, policy, fds, cpu_of, caps, n, NULL);
}

int peer_slot_info(struct peer *p, int slot, struct peer_slot *out)
{
	__u32 k = slot;

	if (!p->obj || slot < 0 || slot >= p->n)
		return -EINVAL;
	return bpf_map_lookup_elem(p->slots_fd, &k, out) ? -errno : 0;
}

unsigned peer_live(struct peer *p, int slot)
{
	struct peer_slot s;

	if (peer_slot_info(p, slot, &s))
		return (unsigned)-1;
	return s.live;
}

int peer_stats(struct peer *p, struct peer_stats *out)
{
	__u32 k = 0;

	if (!p->obj)
		return -EINVAL;
	return bpf_map_lookup_elem(p->stats_fd, &k, out) ? -errno : 0;
}

void peer_close(struct peer *p)
{
	int i;

	if (p->attached) {
		/* any member still in the group detaches the group's program */
		for (i = 0; i < p->n; i++) {
			unsigned long long c = 0;
			socklen_t len = sizeof(c);

			/* only if the fd is still that listener */
			if (getsockopt(p->fds[i], SOL_SOCKET, SO_COOKIE, &c,
				       &len) || c != p->cookies[i])
				continue;
			if (!setsockopt(p->fds[i], SOL_SOCKET,
					SO_DETACH_REUSEPORT_BPF, NULL, 0))
				break;
		}
		p->attached = 0;
	}
	if (p->sockops)
		bpf_link__destroy(p->sockops);
	p->sockops = NULL;
	if (p->cg_fd >= 0)
		close(p->cg_fd);
	p->cg_fd = -1;
	if (p->obj)
		bpf_object__close(p->obj);
	p->obj = NULL;
	p->n = 0;
}
