#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
# /init of the test guest (busybox sh).  Runs every line of /tests/list,
# "NAME TIMEOUT COMMAND...", in its own session with a watchdog, and
# reports on ttyS1 (ttyS0 is the kernel console):
#   @@ BOOTED cpus=N online=N kernel=REL
#   @@ START NAME / program output / @@ KMSG NAME / its kernel log /
#   @@ END NAME rc=RC timeout=0|1
#   @@ DONE
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
# What kmemleak suspects at boot is not the tests' doing: set it aside,
# so that harness/kmemleak-check.sh reports only what comes later.
if [ -w /sys/kernel/debug/kmemleak ]; then
	echo scan >/sys/kernel/debug/kmemleak
	echo clear >/sys/kernel/debug/kmemleak
fi
mount -t tmpfs tmpfs /tmp
ip link set lo up
exec 3>/dev/ttyS1
say() { echo "$@" >&3; }

online=$(grep -c ^processor /proc/cpuinfo)
say "@@ BOOTED cpus=$(cat /sys/devices/system/cpu/possible) online=$online" \
	"kernel=$(uname -r)"
while read -r name tmo cmd; do
	case "$name" in ''|'#'*) continue ;; esac
	dmesg -c >/dev/null
	rm -f /tmp/timedout
	say "@@ START $name"
	# setsid: the test gets its own process group, so the watchdog
	# can kill whatever it forked too.
	(cd /tests && exec setsid $cmd) </dev/null >&3 2>&3 &
	pid=$!
	(
		t=0
		while [ "$t" -lt "$tmo" ]; do
			sleep 1
			kill -0 "$pid" 2>/dev/null || exit 0
			t=$((t + 1))
		done
		touch /tmp/timedout
		kill -KILL -- "-$pid" 2>/dev/null
		kill -KILL "$pid" 2>/dev/null
	) &
	wd=$!
	wait "$pid"
	rc=$?
	wait "$wd"
	kill -KILL -- "-$pid" 2>/dev/null
	to=0
	[ -e /tmp/timedout ] && to=1
	say "@@ KMSG $name"
	dmesg -c >&3
	say "@@ END $name rc=$rc timeout=$to"
done </tests/list
say "@@ DONE"
sync
reboot -f
