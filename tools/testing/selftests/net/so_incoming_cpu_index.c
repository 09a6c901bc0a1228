// SPDX-License-Identifier: GPL-2.0
/* SO_INCOMING_CPU in SO_REUSEPORT groups: several listeners per CPU,
 * listeners with no or a bogus SO_INCOMING_CPU, CPUs without a listener,
 * SO_INCOMING_CPU changed while listening, listeners leaving and coming back,
 * and UDP groups with a connected member.
 *
 * Over loopback, a packet is processed on the CPU that sends it, so pinning
 * the client to a CPU makes the kernel select the receiving socket there.
 */
#define _GNU_SOURCE
#include <sched.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "kselftest_harness.h"

#define MAX_CPUS	8
#define MAX_SOCKS	256
#define NR_CONNS	128
#define NR_DGRAMS	512

/* Not indexed by the kernel: no CPU can match these. */
#define CPU_UNSET	-1
#define CPU_BOGUS	(1024 * 1024)

FIXTURE(incpu)
{
	struct sockaddr_in addr;
	int cpus[MAX_CPUS];
	int nr_cpus;
	int nr_cpu_ids;
	int type;
	int fds[MAX_SOCKS];
	int fd_cpu[MAX_SOCKS];
	int count[MAX_SOCKS];
	int nr_fds;
};

static void write_sysctl(struct __test_metadata *_metadata,
			 const char *path, const char *val)
{
	int fd, len;

	fd = open(path, O_WRONLY);
	ASSERT_NE(fd, -1);

	len = strlen(val);
	ASSERT_EQ(write(fd, val, len), len);
	close(fd);
}

static int read_nr_cpu_ids(void)
{
	int lo, hi, max = -1;
	char buf[256], *p;
	FILE *f;

	f = fopen("/sys/devices/system/cpu/possible", "r");
	if (!f)
		return -1;

	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -1;
	}
	fclose(f);

	/* e.g. "0-3,8-11" */
	for (p = strtok(buf, ",\n"); p; p = strtok(NULL, ",\n")) {
		if (sscanf(p, "%d-%d", &lo, &hi) == 2 ||
		    sscanf(p, "%d", &hi) == 1)
			max = hi > max ? hi : max;
	}

	return max + 1;
}

FIXTURE_SETUP(incpu)
{
	cpu_set_t set;
	int cpu;

	if (unshare(CLONE_NEWNET))
		SKIP(return, "unshare(CLONE_NEWNET): %s", strerror(errno));
	ASSERT_EQ(system("ip link set lo up"), 0);

	write_sysctl(_metadata, "/proc/sys/net/ipv4/ip_local_port_range",
		     "10000 60001");
	write_sysctl(_metadata, "/proc/sys/net/ipv4/tcp_tw_reuse", "0");

	ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);

	self->nr_cpus = 0;
	for (cpu = 0; cpu < CPU_SETSIZE && self->nr_cpus < MAX_CPUS; cpu++)
		if (CPU_ISSET(cpu, &set))
			self->cpus[self->nr_cpus++] = cpu;

	self->nr_cpu_ids = read_nr_cpu_ids();
	ASSERT_GT(self->nr_cpu_ids, 0);

	self->addr.sin_family = AF_INET;
	self->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	self->addr.sin_port = 0;
	self->nr_fds = 0;
	self->type = SOCK_STREAM;

	if (self->nr_cpus < 2)
		SKIP(return, "needs at least 2 CPUs");
}

FIXTURE_TEARDOWN(incpu)
{
	int i;

	for (i = 0; i < self->nr_fds; i++)
		if (self->fds[i] >= 0)
			close(self->fds[i]);
}

static void set_incoming_cpu(struct __test_metadata *_metadata,
			     struct _test_data_incpu *self, int i, int cpu)
{
	ASSERT_EQ(setsockopt(self->fds[i], SOL_SOCKET, SO_INCOMING_CPU,
			     &cpu, sizeof(cpu)), 0);
	self->fd_cpu[i] = cpu;
}

static void do_listen(struct __test_metadata *_metadata,
		      struct _test_data_incpu *self, int i)
{
	if (self->type == SOCK_STREAM)
		ASSERT_EQ(listen(self->fds[i], 4096), 0);
}

/* Add a member to the group.  SO_INCOMING_CPU is set before bind() on
 * even members and after listen() on odd ones, to cover both paths.
 */
static int add_sock(struct __test_metadata *_metadata,
		    struct _test_data_incpu *self, int cpu)
{
	socklen_t len = sizeof(self->addr);
	int i = self->nr_fds, fd;

	ASSERT_LT(i, MAX_SOCKS);

	fd = socket(AF_INET, self->type | SOCK_NONBLOCK, 0);
	ASSERT_NE(fd, -1);

	self->fds[i] = fd;
	self->fd_cpu[i] = CPU_UNSET;
	self->count[i] = 0;
	self->nr_fds++;

	ASSERT_EQ(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT,
			     &(int){1}, sizeof(int)), 0);

	if (cpu != CPU_UNSET && !(i & 1))
		set_incoming_cpu(_metadata, self, i, cpu);

	ASSERT_EQ(bind(fd, (struct sockaddr *)&self->addr, len), 0);
	do_listen(_metadata, self, i);

	if (cpu != CPU_UNSET && (i & 1))
		set_incoming_cpu(_metadata, self, i, cpu);

	if (!self->addr.sin_port)
		ASSERT_EQ(getsockname(fd, (struct sockaddr *)&self->addr,
				      &len), 0);

	return i;
}

static void close_sock(struct _test_data_incpu *self, int i)
{
	close(self->fds[i]);
	self->fds[i] = -1;
}

static void pin(struct __test_metadata *_metadata, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	ASSERT_EQ(sched_setaffinity(0, sizeof(set), &set), 0);
}

/* Send nr TCP connections or UDP datagrams from distinct source ports. */
static void send_from(struct __test_metadata *_metadata,
		      struct _test_data_incpu *self, int cpu, int nr)
{
	int i, fd;

	pin(_metadata, cpu);

	for (i = 0; i < nr; i++) {
		fd = socket(AF_INET, self->type, 0);
		ASSERT_NE(fd, -1);

		if (self->type == SOCK_STREAM) {
			ASSERT_EQ(connect(fd, (struct sockaddr *)&self->addr,
					  sizeof(self->addr)), 0);
		} else {
			ASSERT_EQ(sendto(fd, "x", 1, 0,
					 (struct sockaddr *)&self->addr,
					 sizeof(self->addr)), 1);
		}
		close(fd);
	}
}

/* Receive nr connections or datagrams, counting them per member. */
static void receive(struct __test_metadata *_metadata,
		    struct _test_data_incpu *self, int cpu, int nr)
{
	int i, fd, val, total = 0, last = 0, idle = 0;
	struct pollfd pfd[MAX_SOCKS];
	socklen_t len;
	char buf[8];

	while (total < nr) {
		/* A shut down listener always polls readable. */
		if (total == last) {
			ASSERT_LT(idle++, 200);
			if (idle > 1)
				usleep(10000);
		}
		last = total;

		for (i = 0; i < self->nr_fds; i++) {
			pfd[i].fd = self->fds[i];
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}

		if (poll(pfd, self->nr_fds, 100) <= 0)
			continue;

		for (i = 0; i < self->nr_fds; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;

			if (self->type == SOCK_DGRAM) {
				while (recv(self->fds[i], buf, sizeof(buf),
					    MSG_DONTWAIT) >= 0) {
					self->count[i]++;
					total++;
				}
				continue;
			}

			while ((fd = accept(self->fds[i], NULL, NULL)) >= 0) {
				/* The test relies on this. */
				len = sizeof(val);
				ASSERT_EQ(getsockopt(fd, SOL_SOCKET,
						     SO_INCOMING_CPU,
						     &val, &len), 0);
				ASSERT_EQ(val, cpu);

				close(fd);
				self->count[i]++;
				total++;
			}
		}
	}

	ASSERT_EQ(total, nr);
}

/* Send nr from cpu and count what each member gets, in batches that
 * fit in the queues.
 */
static void transfer(struct __test_metadata *_metadata,
		     struct _test_data_incpu *self, int cpu, int nr)
{
	int i, batch;

	for (i = 0; i < self->nr_fds; i++)
		self->count[i] = 0;

	for (i = 0; i < nr; i += batch) {
		batch = nr - i < 64 ? nr - i : 64;
		send_from(_metadata, self, cpu, batch);
		receive(_metadata, self, cpu, batch);
	}
}

static int nr_members_of(struct _test_data_incpu *self, int cpu)
{
	int i, nr = 0;

	for (i = 0; i < self->nr_fds; i++)
		if (self->fds[i] >= 0 && self->fd_cpu[i] == cpu)
			nr++;

	return nr;
}

/* Everything sent from cpu went to members of cpu.  If all is set, each
 * of them got some: the scan starts at a position chosen by the flow hash,
 * so each member wins for the positions up to it from the previous member.
 */
static void check_cpu(struct __test_metadata *_metadata,
		      struct _test_data_incpu *self, int cpu, bool all)
{
	int i, nr = self->type == SOCK_DGRAM ? NR_DGRAMS : NR_CONNS;

	ASSERT_GT(nr_members_of(self, cpu), 0);

	transfer(_metadata, self, cpu, nr);

	for (i = 0; i < self->nr_fds; i++) {
		if (self->fds[i] < 0)
			continue;

		if (self->fd_cpu[i] != cpu) {
			EXPECT_EQ(self->count[i], 0) {
				TH_LOG("member %d of CPU %d got %d from CPU %d",
				       i, self->fd_cpu[i], self->count[i],
				       cpu);
			}
		} else if (all) {
			EXPECT_GT(self->count[i], 0) {
				TH_LOG("member %d of CPU %d got nothing",
				       i, cpu);
			}
		}
	}
}

/* Without a member for cpu, the scan falls back to the member where it
 * starts: all of them get some.
 */
static void check_no_member(struct __test_metadata *_metadata,
			    struct _test_data_incpu *self, int cpu, int nr)
{
	int i;

	ASSERT_EQ(nr_members_of(self, cpu), 0);

	transfer(_metadata, self, cpu, nr);

	for (i = 0; i < self->nr_fds; i++) {
		if (self->fds[i] < 0)
			continue;

		EXPECT_GT(self->count[i], 0) {
			TH_LOG("member %d (CPU %d) got nothing",
			       i, self->fd_cpu[i]);
		}
	}
}

/* Several members per CPU, interleaved with members that match no CPU. */
static void add_rounds(struct __test_metadata *_metadata,
		       struct _test_data_incpu *self, int rounds, bool others)
{
	int r, c;

	for (r = 0; r < rounds; r++) {
		for (c = 0; c < self->nr_cpus; c++)
			add_sock(_metadata, self, self->cpus[c]);

		if (!others)
			continue;

		add_sock(_metadata, self, CPU_UNSET);
		add_sock(_metadata, self, CPU_BOGUS);
		/* The first value that is not a CPU id */
		add_sock(_metadata, self, self->nr_cpu_ids);
	}
}

static void check_all_cpus(struct __test_metadata *_metadata,
			   struct _test_data_incpu *self, bool all)
{
	int c;

	for (c = 0; c < self->nr_cpus; c++)
		check_cpu(_metadata, self, self->cpus[c], all);
}

TEST_F(incpu, several_per_cpu)
{
	add_rounds(_metadata, self, 3, true);
	check_all_cpus(_metadata, self, true);
}

TEST_F(incpu, cpu_without_member)
{
	int a = self->cpus[0], b = self->cpus[1];

	/* No member for b; the others are in the same group. */
	add_sock(_metadata, self, a);
	add_sock(_metadata, self, CPU_UNSET);
	add_sock(_metadata, self, CPU_BOGUS);
	add_sock(_metadata, self, a);
	add_sock(_metadata, self, self->nr_cpu_ids);
	add_sock(_metadata, self, CPU_UNSET);

	check_cpu(_metadata, self, a, true);
	check_no_member(_metadata, self, b, 2 * NR_CONNS);
}

TEST_F(incpu, change_while_listening)
{
	int a = self->cpus[0], b = self->cpus[1];

	add_sock(_metadata, self, a);		/* 0 */
	add_sock(_metadata, self, b);		/* 1 */
	add_sock(_metadata, self, a);		/* 2 */
	add_sock(_metadata, self, b);		/* 3 */
	check_cpu(_metadata, self, a, true);
	check_cpu(_metadata, self, b, true);

	/* Move 2 from a to b. */
	set_incoming_cpu(_metadata, self, 2, b);
	check_cpu(_metadata, self, a, true);
	check_cpu(_metadata, self, b, true);

	/* Unset 0: a has no member left. */
	set_incoming_cpu(_metadata, self, 0, CPU_UNSET);
	check_no_member(_metadata, self, a, NR_CONNS);
	check_cpu(_metadata, self, b, true);

	/* Back to a, and 3 to a value that matches no CPU. */
	set_incoming_cpu(_metadata, self, 0, a);
	set_incoming_cpu(_metadata, self, 3, CPU_BOGUS);
	check_cpu(_metadata, self, a, true);
	check_cpu(_metadata, self, b, true);

	/* All back to what they were. */
	set_incoming_cpu(_metadata, self, 2, a);
	set_incoming_cpu(_metadata, self, 3, b);
	check_cpu(_metadata, self, a, true);
	check_cpu(_metadata, self, b, true);
}

TEST_F(incpu, close_members)
{
	int i, c;

	/* (a b ... unset) x 3 */
	for (i = 0; i < 3; i++) {
		for (c = 0; c < self->nr_cpus; c++)
			add_sock(_metadata, self, self->cpus[c]);
		add_sock(_metadata, self, CPU_UNSET);
	}
	check_all_cpus(_metadata, self, true);

	/* The last members move into the holes. */
	close_sock(self, 0);
	close_sock(self, self->nr_cpus + 2);
	check_all_cpus(_metadata, self, true);

	/* One member left for the first CPU. */
	close_sock(self, 2 * (self->nr_cpus + 1));
	check_all_cpus(_metadata, self, true);
}

TEST_F(incpu, shutdown_and_listen_again)
{
	int a = self->cpus[0], b = self->cpus[1];
	int i, used;

	/* shutdown() moves a listener to the closed section of the group
	 * and releases its port, bind() and listen() bring it back at the
	 * end of the listening section.
	 */
	write_sysctl(_metadata, "/proc/sys/net/ipv4/tcp_migrate_req", "1");

	add_sock(_metadata, self, a);		/* 0 */
	add_sock(_metadata, self, b);		/* 1 */
	add_sock(_metadata, self, a);		/* 2 */
	add_sock(_metadata, self, b);		/* 3 */
	add_sock(_metadata, self, CPU_UNSET);	/* 4 */

	ASSERT_EQ(shutdown(self->fds[0], SHUT_RDWR), 0);
	self->fd_cpu[0] = CPU_BOGUS;
	check_cpu(_metadata, self, a, true);
	check_cpu(_metadata, self, b, true);

	ASSERT_EQ(bind(self->fds[0], (struct sockaddr *)&self->addr,
		       sizeof(self->addr)), 0);
	do_listen(_metadata, self, 0);
	self->fd_cpu[0] = a;
	check_cpu(_metadata, self, a, true);
	check_cpu(_metadata, self, b, true);

	/* Leave b without a listener; 1 stays in the closed section. */
	ASSERT_EQ(shutdown(self->fds[1], SHUT_RDWR), 0);
	ASSERT_EQ(shutdown(self->fds[3], SHUT_RDWR), 0);
	self->fd_cpu[1] = CPU_BOGUS;
	close_sock(self, 3);
	check_cpu(_metadata, self, a, true);
	/* Every connection from b finds a listener (transfer() checks),
	 * the one at the hash's position: more than one of them.
	 */
	transfer(_metadata, self, b, NR_CONNS);
	for (i = 0, used = 0; i < self->nr_fds; i++)
		used += self->count[i] > 0;
	EXPECT_GE(used, 2);
}

TEST_F(incpu, many_members)
{
	int i;

	/* More than the initial 128 slots of a group. */
	for (i = 0; i < 200; i++) {
		if (i % 5)
			add_sock(_metadata, self,
				 i & 1 ? CPU_UNSET : CPU_BOGUS);
		else
			add_sock(_metadata, self,
				 self->cpus[(i / 5) % self->nr_cpus]);
	}
	check_all_cpus(_metadata, self, false);

	for (i = 0; i < 200; i += 3)
		close_sock(self, i);
	for (i = 0; i < self->nr_cpus; i++)
		if (!nr_members_of(self, self->cpus[i]))
			add_sock(_metadata, self, self->cpus[i]);
	check_all_cpus(_metadata, self, false);
}

TEST_F(incpu, udp_connected_member)
{
	struct sockaddr_in peer = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
		.sin_port = htons(1),
	};
	int i;

	self->type = SOCK_DGRAM;
	add_rounds(_metadata, self, 2, true);
	check_all_cpus(_metadata, self, true);

	/* A connected member makes the group fall back to scoring and to
	 * skipping connected members: the others still get datagrams by CPU.
	 * Nothing is sent from the peer, so it gets nothing.
	 */
	i = add_sock(_metadata, self, CPU_UNSET);
	ASSERT_EQ(connect(self->fds[i], (struct sockaddr *)&peer,
			  sizeof(peer)), 0);
	check_all_cpus(_metadata, self, true);

	/* Changes after the connect() still count. */
	set_incoming_cpu(_metadata, self, 0, self->cpus[1]);
	check_all_cpus(_metadata, self, true);
}

TEST_HARNESS_MAIN
