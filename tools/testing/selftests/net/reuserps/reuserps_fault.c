// SPDX-License-Identifier: GPL-2.0
/*
 * SO_REUSERPS under allocation failure.  Each call that can allocate
 * (setsockopt, bind, listen of a group's first and of a joining member,
 * SO_REUSERPS on a listening member, attaching a reuseport program, close)
 * is made with its n-th allocation failing, for n = 1, 2, ... until it
 * succeeds (/proc/thread-self/fail-nth; failslab and fail_page_alloc are
 * told to fail sleeping allocations too).  Each attempt must succeed or
 * fail with ENOMEM or ENOBUFS, and a failed one must leave the socket and
 * its group as they were: the same request read back, the same listener
 * for a connection from each CPU.  listen() does not fail for want of a
 * match table: the group keeps steering by the table it had, without the
 * new member, until its next build; once a call succeeds without a
 * fault, steering is exact.
 * kmemleak, run after the selftests, finds what a failed path leaked.
 * Needs CONFIG_FAILSLAB, CONFIG_FAIL_PAGE_ALLOC and
 * CONFIG_FAULT_INJECTION_DEBUG_FS (not in the default config), and
 * changes those system-wide knobs while it runs (the parent process
 * restores them): it SKIPs where they are absent.  Each test runs in a
 * network namespace of its own.
 */
#include "kselftest_harness.h"

#include <arpa/inet.h>
#include <linux/filter.h>

#include "reuserps_lib.h"

#define MAX_TRIES	400

static const char *const knobs[] = {
	"/sys/kernel/debug/failslab/ignore-gfp-wait",
	"/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait",
	"/sys/kernel/debug/failslab/verbose",
	"/sys/kernel/debug/fail_page_alloc/verbose",
};

#define NKNOBS	4

/* This thread's fail-nth, opened once: opening it allocates. */
static int nth_fd = -1;

/* Arms the n-th fault point this thread passes; 0 disarms. */
static void arm(int n)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%d", n);
	if (pwrite(nth_fd, buf, strlen(buf), 0) != (ssize_t)strlen(buf))
		abort();
}

/* Disarms; whether the armed fault was injected.  Neither reading nor
 * writing fail-nth allocates, so a fault left armed is not spent here.
 */
static bool injected(void)
{
	char buf[16] = "";
	bool hit;

	if (pread(nth_fd, buf, sizeof(buf) - 1, 0) < 0)
		abort();
	hit = atoi(buf) == 0;
	arm(0);
	return hit;
}

/* The masks of CPU 0 and CPU 1, made before any fault is armed. */
static cpu_set_t *masks[2];
static size_t mask_size;

/* SO_REUSERPS for @cpu: allocates nothing in this process. */
static int request_cpu(int fd, __u32 cap, int cpu)
{
	return rps_set_mask(fd, REUSERPS_ROUND_ROBIN, cap, masks[cpu],
			    mask_size);
}

/* 127.0.0.1, the port of the test's group. */
static struct sockaddr_in addr = { .sin_family = AF_INET };

static int sock_reuseport(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;

	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		abort();
	return fd;
}

/*
 * Which of @fds accepted a connection made from @cpu; -1 if none within
 * 20 s (a bound for what must come, not a measure).
 */
static int lands_on(const int *fds, int n, int cpu)
{
	int c = socket(AF_INET, SOCK_STREAM, 0), i, a, tries;
	struct pollfd pfd[2];

	if (pin_cpu(cpu))
		abort();
	if (c < 0 || connect(c, (struct sockaddr *)&addr, sizeof(addr))) {
		close(c);
		return -1;
	}
	for (tries = 0; tries < 200; tries++) {
		for (i = 0; i < n; i++) {
			a = accept(fds[i], NULL, NULL);
			if (a >= 0) {
				close(a);
				close(c);
				return i;
			}
			pfd[i].fd = fds[i];
			pfd[i].events = POLLIN;
		}
		poll(pfd, n, 100);
	}
	close(c);
	return -1;
}

static __u32 cap_of(int fd)
{
	struct reuserps_info info;

	if (rps_get(fd, &info, NULL, 0))
		return ~0U;
	return info.max_conns;
}

static bool listening(int fd)
{
	int on = 0;
	socklen_t len = sizeof(on);

	getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len);
	return on;
}

FIXTURE(fault)
{
	int fd[2];
	bool saved;		/* knobs[] hold what they held in saved_val */
	char saved_val[NKNOBS][16];
};

FIXTURE_SETUP(fault)
{
	static const char *const val[NKNOBS] = { "N", "N", "0", "0" };
	int cpus[2] = { 0, 1 }, i;

	self->fd[0] = -1;
	self->fd[1] = -1;
	if (!reuserps_supported())
		SKIP(return, "no SO_REUSERPS in this kernel (ENOPROTOOPT)");
	nth_fd = open("/proc/thread-self/fail-nth", O_RDWR);
	if (nth_fd < 0)
		SKIP(return, "no fail-nth (CONFIG_FAULT_INJECTION)");
	for (i = 0; i < NKNOBS; i++)
		if (read_file(knobs[i], self->saved_val[i],
			      sizeof(self->saved_val[i])))
			SKIP(return, "no %s (debugfs, CONFIG_FAILSLAB...)",
			     knobs[i]);
	self->saved = true;
	/* Sleeping allocations fail too; a forced failure is no report. */
	for (i = 0; i < NKNOBS; i++)
		if (write_file(knobs[i], val[i]))
			SKIP(return, "cannot write %s", knobs[i]);
	ASSERT_EQ(0, rps_netns());
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < 2; i++) {
		masks[i] = rps_mask(&cpus[i], 1, rps_nr_cpu_ids(), &mask_size);
		ASSERT_NE(NULL, masks[i]);
	}
}

/* In the parent (self is shared): the knobs as they were, whatever
 * happened to the test.
 */
FIXTURE_TEARDOWN_PARENT(fault)
{
	int i;

	for (i = 0; self->saved && i < NKNOBS; i++)
		write_file(knobs[i], self->saved_val[i]);
}

/*
 * A result of an attempt with a fault armed: 0, ENOMEM or ENOBUFS; for
 * bind() and listen() also EADDRINUSE, which inet_csk_get_port() returns
 * when it cannot allocate a bind bucket (upstream's choice).
 */
static bool clean(int err, bool port)
{
	return !err || err == ENOMEM || err == ENOBUFS ||
	       (port && err == EADDRINUSE);
}

/* The first listener (CPU 0): setsockopt, bind and listen each fail. */
TEST_F(fault, first_listener)
{
	int n, err, faults = 0, step;

	for (step = 0; step < 3; step++) {
		for (n = 1; n <= MAX_TRIES; n++) {
			if (step == 0) {
				self->fd[0] = sock_reuseport();
				arm(n);
				err = request_cpu(self->fd[0], 0, 0);
			} else if (step == 1) {
				self->fd[0] = sock_reuseport();
				ASSERT_EQ(0, request_cpu(self->fd[0], 0, 0));
				addr.sin_port = 0;
				arm(n);
				err = bind(self->fd[0],
					   (struct sockaddr *)&addr,
					   sizeof(addr)) ? errno : 0;
			} else {
				self->fd[0] = sock_reuseport();
				ASSERT_EQ(0, request_cpu(self->fd[0], 0, 0));
				addr.sin_port = 0;
				ASSERT_EQ(0, bind(self->fd[0],
						  (struct sockaddr *)&addr,
						  sizeof(addr)));
				arm(n);
				err = listen(self->fd[0], 64) ? errno : 0;
			}
			if (!injected()) {
				ASSERT_EQ(0, err);
				break;
			}
			faults++;
			EXPECT_TRUE(clean(err, step > 0))
				TH_LOG("errno %d", err);
			if (err && step == 0)
				/* No request was stored. */
				EXPECT_EQ(~0U, cap_of(self->fd[0]));
			if (err && step == 2)
				EXPECT_FALSE(listening(self->fd[0]));
			close(self->fd[0]);
			self->fd[0] = -1;
		}
		ASSERT_GE(MAX_TRIES, n);
	}
	/* The last one succeeded: it listens and steers. */
	socklen_t len = sizeof(addr);

	ASSERT_EQ(0, getsockname(self->fd[0], (struct sockaddr *)&addr, &len));
	EXPECT_EQ(0, lands_on(self->fd, 1, 0));
	TH_LOG("%d faults injected", faults);
	EXPECT_LT(0, faults);
}

/*
 * A member for CPU 1 joins (listen), changes its request while listening
 * and a program is attached to the group, each with allocations failing:
 * a failure leaves the group steering as before.
 */
TEST_F(fault, join_reconfigure_attach)
{
	struct sock_filter code[] = { BPF_STMT(BPF_RET | BPF_K, 0) };
	struct sock_fprog prog = { .len = 1, .filter = code };
	int n, k, err, faults = 0, one = 1;
	socklen_t len = sizeof(addr);

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		SKIP(return, "needs 2 CPUs");
	self->fd[0] = sock_reuseport();
	ASSERT_EQ(0, request_cpu(self->fd[0], 0, 0));
	addr.sin_port = 0;
	ASSERT_EQ(0, bind(self->fd[0], (struct sockaddr *)&addr,
			  sizeof(addr)));
	ASSERT_EQ(0, listen(self->fd[0], 64));
	ASSERT_EQ(0, getsockname(self->fd[0], (struct sockaddr *)&addr,
				 &len));

	/* Join: on failure, CPU 1's connections still go to listener 0. */
	for (n = 1; n <= MAX_TRIES; n++) {
		self->fd[1] = sock_reuseport();
		ASSERT_EQ(0, request_cpu(self->fd[1], 0, 1));
		ASSERT_EQ(0, bind(self->fd[1], (struct sockaddr *)&addr,
				  sizeof(addr)));
		arm(n);
		err = listen(self->fd[1], 64) ? errno : 0;
		if (!injected()) {
			ASSERT_EQ(0, err);
			break;
		}
		faults++;
		EXPECT_TRUE(clean(err, true)) TH_LOG("errno %d", err);
		if (err) {
			EXPECT_FALSE(listening(self->fd[1]));
			EXPECT_EQ(0, lands_on(self->fd, 1, 1));
		} else {
			/* Listening, with its table built (an allocation
			 * that failed had a fallback) or not: then the group
			 * keeps the one it had, where listener 0 serves CPU 0
			 * and, by the fallback, CPU 1.  Either way CPU 0's
			 * connections go to listener 0, never by the flow
			 * hash over both.
			 */
			for (k = 0; k < 8; k++) {
				EXPECT_EQ(0, lands_on(self->fd, 2, 0));
				EXPECT_LE(0, lands_on(self->fd, 2, 1));
			}
		}
		close(self->fd[1]);
		self->fd[1] = -1;
	}
	ASSERT_GE(MAX_TRIES, n);
	EXPECT_EQ(0, lands_on(self->fd, 2, 0));
	EXPECT_EQ(1, lands_on(self->fd, 2, 1));

	/* Reconfigure listener 1 to CPU 0 with a cap of 5. */
	for (n = 1; n <= MAX_TRIES; n++) {
		arm(n);
		err = request_cpu(self->fd[1], 5, 0);
		if (!injected()) {
			ASSERT_EQ(0, err);
			break;
		}
		faults++;
		EXPECT_TRUE(clean(err, false)) TH_LOG("errno %d", err);
		if (err) {
			EXPECT_EQ(0, cap_of(self->fd[1]));
			EXPECT_EQ(1, lands_on(self->fd, 2, 1));
		} else {
			break;
		}
	}
	ASSERT_GE(MAX_TRIES, n);
	EXPECT_EQ(5, cap_of(self->fd[1]));

	/* Attach a program that picks listener 0. */
	for (n = 1; n <= MAX_TRIES; n++) {
		arm(n);
		err = setsockopt(self->fd[0], SOL_SOCKET,
				 SO_ATTACH_REUSEPORT_CBPF, &prog,
				 sizeof(prog)) ? errno : 0;
		if (!injected()) {
			ASSERT_EQ(0, err);
			break;
		}
		faults++;
		EXPECT_TRUE(clean(err, false)) TH_LOG("errno %d", err);
		if (!err)
			break;
	}
	ASSERT_GE(MAX_TRIES, n);
	EXPECT_EQ(0, lands_on(self->fd, 2, 1));
	ASSERT_EQ(0, setsockopt(self->fd[0], SOL_SOCKET,
				SO_DETACH_REUSEPORT_BPF, &one, sizeof(one)));

	/* Close listener 0 with its allocations failing: 1 takes all. */
	arm(1);
	close(self->fd[0]);
	injected();
	self->fd[0] = -1;
	EXPECT_EQ(0, lands_on(&self->fd[1], 1, 1));
	TH_LOG("%d faults injected", faults);
	EXPECT_LT(0, faults);
}

int main(int argc, char **argv)
{
	return reuserps_harness_main(argc, argv);
}
