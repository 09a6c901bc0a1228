// SPDX-License-Identifier: GPL-2.0
/*
 * `make` demo: one listener per CPU on one port, 8 connections from each
 * CPU (the client pinned there, so over loopback the SYN is processed on
 * it), first with plain SO_REUSEPORT (flow hash), then with SO_REUSERPS
 * (each listener registered for its CPU).  Prints which listener took
 * each connection and the share that stayed on the SYN's CPU.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <linux/reuserps.h>

#define CONNS		8
#define MAX_CPUS	64

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int listeners(int n, int reuserps, int *fd)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct reuserps_req r;
	__u64 cpus;
	socklen_t alen = sizeof(a);
	int i, one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < n; i++) {
		fd[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fd[i] < 0 ||
		    setsockopt(fd[i], SOL_SOCKET, SO_REUSEPORT, &one,
			       sizeof(one)))
			die("socket");
		if (reuserps) {
			/* CPU i: a one-word cpu_set_t on 64-bit. */
			cpus = 1ULL << i;
			memset(&r, 0, sizeof(r));
			r.policy = REUSERPS_ROUND_ROBIN;
			r.cpus = (__u64)(uintptr_t)&cpus;
			r.cpus_len = sizeof(cpus);
			if (setsockopt(fd[i], SOL_SOCKET, SO_REUSERPS, &r,
				       sizeof(r)))
				die("setsockopt(SO_REUSERPS)");
		}
		if (bind(fd[i], (struct sockaddr *)&a, sizeof(a)) ||
		    listen(fd[i], 64) || fcntl(fd[i], F_SETFL, O_NONBLOCK))
			die("bind/listen");
		if (!i && getsockname(fd[0], (struct sockaddr *)&a, &alen))
			die("getsockname");
	}
	return ntohs(a.sin_port);
}

static int connect_from(int cpu, int port, int n, const int *fd)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int c, i, s, tries;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("sched_setaffinity");
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(port);
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)))
		die("connect");
	for (tries = 0; tries < 1000; tries++) {
		for (i = 0; i < n; i++) {
			s = accept(fd[i], NULL, NULL);
			if (s >= 0) {
				close(s);
				close(c);
				return i;
			}
		}
		usleep(1000);
	}
	die("accept");
	return -1;
}

static int run(int n, int reuserps)
{
	int fd[MAX_CPUS], cpu, k, got, local = 0, port, i;

	port = listeners(n, reuserps, fd);
	printf("\n%s: listener L<i> serves CPU <i>\n",
	       reuserps ? "SO_REUSERPS, round robin" :
			  "plain SO_REUSEPORT (flow hash)");
	for (cpu = 0; cpu < n; cpu++) {
		printf("  SYN on CPU %d ->", cpu);
		for (k = 0; k < CONNS; k++) {
			got = connect_from(cpu, port, n, fd);
			printf(" L%d", got);
			local += got == cpu;
		}
		printf("\n");
	}
	printf("  on the SYN's CPU: %d of %d (%d%%)\n", local, n * CONNS,
	       100 * local / (n * CONNS));
	for (i = 0; i < n; i++)
		close(fd[i]);
	return local;
}

int main(void)
{
	int n = get_nprocs();

	if (n > MAX_CPUS)
		n = MAX_CPUS;
	printf("SO_REUSERPS demo: %d CPUs, one listener per CPU, %d connections from each CPU\n",
	       n, CONNS);
	run(n, 0);
	/* Exit status: whether SO_REUSERPS kept every connection local. */
	return run(n, 1) == n * CONNS ? 0 : 1;
}
