#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs in the bench guest (see harness/bench.sh): connections steered by
# RPS, live counts of one CPU's listeners, the micro benchmarks, a stalled
# worker, the BPF peer's exactness, then nginx under wrk with and without
# SO_REUSERPS.  Results are lines starting with "R ".
# REPS repeats the counted runs (under RPS); TIMED_REPS the timed ones
# (the loopback rates and the servers), which only rank ratios.
SECS=${1:-2}
REPS=${2:-5}
NGINX_SECS=${3:-5}
TIMED_REPS=${4:-3}
export PATH=/usr/sbin:/usr/bin:/bin:/sbin

insmod /tests/reuserps_select_bench.ko || echo "R test=select insmod=failed"
# Under RPS first: it sets lo's rps_cpus and clears them when done.
/tests/reuserps_bench rps "${RPS_CONNS:-2000}" "$REPS" || exit 1
# One CPU, four listeners, heavy-tailed lifetimes: live counts apart.
/tests/reuserps_bench live "${LIVE_CONNS:-6000}" 256 || exit 1
/tests/reuserps_bench "$SECS" "$TIMED_REPS" || exit 1
# Two workers per CPU, one stopped (SIGSTOP): connections left waiting in
# the stopped workers' accept queues, by mechanism, for either worker.
/tests/reuserps_bench stall "${STALL_CONNS:-400}" "$REPS" all both || exit 1
# The same connection lives on SO_REUSERPS and on the BPF peer: does
# each count exactly what exists, and hold its caps?
/tests/bpf_peer_exact || exit 1

ncpu=$(grep -c ^processor /proc/cpuinfo)

# wrk for NGINX_SECS against PORT; its output is kept in $out.
load() {	# PORT
	out=$(wrk -t"$ncpu" -c32 -d"${NGINX_SECS}s" \
		-H "Connection: close" "http://127.0.0.1:$1/" 2>&1)
	echo "$out"
}

# The result line of TEST from $out: requests/s, errors, and the preload
# library's locality counts.  WHO names the server's workers or threads.
report() {	# TEST MODE REP WHO
	rps=$(echo "$out" | sed -n 's/^Requests\/sec: *//p')
	errs=$(echo "$out" | sed -n 's/.*Socket errors: //p' |
		tr ' ,' '_;')
	loc=$(cat /tmp/rps.* 2>/dev/null |
		awk '{l += $2; r += $4} END {print l + 0, r + 0}')
	set -- "$@" $loc
	echo "R test=$1 mode=$2 rep=$3 $4=$ncpu" \
		"rps=${rps:-0} local=$5 remote=$6 errors=${errs:-none}"
}
mkdir -p /var/log/nginx /var/lib/nginx /run
for rep in $(seq 1 "$TIMED_REPS"); do
	for mode in off rr; do
		rm -f /tmp/rps.*
		LD_PRELOAD=/usr/lib/libreuserps_preload.so \
			REUSERPS_POLICY=$mode REUSERPS_STATS=/tmp/rps \
			nginx -c /etc/nginx/bench.conf || exit 1
		sleep 1
		load 8080
		nginx -c /etc/nginx/bench.conf -s quit
		sleep 2
		report nginx "$mode" "$rep" workers
	done
done

# HAProxy: threads pinned one per CPU, a listener per thread.
mkdir -p /run/haproxy
for rep in $(seq 1 "$TIMED_REPS"); do
	for mode in off rr; do
		rm -f /tmp/rps.*
		LD_PRELOAD=/usr/lib/libreuserps_preload.so \
			REUSERPS_POLICY=$mode REUSERPS_STATS=/tmp/rps \
			haproxy -f /etc/haproxy/bench.cfg -db &
		pid=$!
		sleep 2
		load 8081
		kill -USR1 "$pid"
		wait "$pid"
		report haproxy "$mode" "$rep" threads
	done
done
