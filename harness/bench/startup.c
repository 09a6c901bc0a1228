// SPDX-License-Identifier: GPL-2.0
/*
 * Start-up and shut-down time of a SO_REUSERPS group: N listeners on one
 * port, listener i registered for CPU i % ncpus, each created with
 * socket(), SO_REUSEPORT, SO_REUSERPS, bind() and listen() in turn; then
 * all closed.  Prints one line per N:
 *
 *   startup N=<n> bind_ms=<socket to bind, total> listen_ms=<total>
 *           listen_us=<mean> max_listen_us=<slowest> close_ms=<total>
 *
 * Counts, not a test: the guest is emulated, so compare only numbers of
 * one run (harness/bench.sh keeps them with the kernel they came from).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include <linux/reuserps.h>

#define MASK_WORDS 16

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int run(int n, int ncpus, int port)
{
	__u64 cpus[MASK_WORDS];
	struct reuserps_req b;
	struct sockaddr_in a = { .sin_family = AF_INET };
	double t0, t1, t, bound = 0, total = 0, slowest = 0;
	int *fd = calloc(n, sizeof(*fd)), i, one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(port);
	for (i = 0; i < n; i++) {
		memset(&b, 0, sizeof(b));
		memset(cpus, 0, sizeof(cpus));
		b.policy = REUSERPS_ROUND_ROBIN;
		b.cpus = (__u64)(uintptr_t)cpus;
		b.cpus_len = sizeof(cpus);
		cpus[(i % ncpus) / 64] = 1ULL << ((i % ncpus) % 64);
		t0 = now_us();
		fd[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fd[i] < 0 ||
		    setsockopt(fd[i], SOL_SOCKET, SO_REUSEPORT, &one,
			       sizeof(one)) ||
		    setsockopt(fd[i], SOL_SOCKET, SO_REUSERPS, &b,
			       sizeof(b)) ||
		    bind(fd[i], (struct sockaddr *)&a, sizeof(a))) {
			fprintf(stderr, "listener %d: %s\n", i,
				strerror(errno));
			return 1;
		}
		t1 = now_us();
		if (listen(fd[i], 128)) {
			fprintf(stderr, "listen %d: %s\n", i, strerror(errno));
			return 1;
		}
		t = now_us();
		bound += t1 - t0;
		total += t - t1;
		if (t - t1 > slowest)
			slowest = t - t1;
	}
	t0 = now_us();
	for (i = 0; i < n; i++)
		close(fd[i]);
	t1 = now_us();
	printf("startup N=%d bind_ms=%.2f listen_ms=%.2f listen_us=%.1f "
	       "max_listen_us=%.1f close_ms=%.2f\n", n, bound / 1e3,
	       total / 1e3, total / n, slowest, (t1 - t0) / 1e3);
	free(fd);
	return 0;
}

int main(int argc, char **argv)
{
	static const int sizes[] = { 1, 64, 256, 1024 };
	struct rlimit rl = { 4096, 4096 };
	int ncpus = get_nprocs(), i, reps = argc > 1 ? atoi(argv[1]) : 3, r;

	setrlimit(RLIMIT_NOFILE, &rl);
	for (r = 0; r < reps; r++)
		for (i = 0; i < 4; i++)
			if (run(sizes[i], ncpus, 31000 + r * 8 + i))
				return 1;
	return 0;
}
