#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs in the bench guest (see harness/bench.sh): connections steered by
# RPS, the micro benchmarks, then nginx under wrk with and without
# SO_REUSERPS.  Results are lines starting with "R ".
SECS=${1:-3}
REPS=${2:-3}
NGINX_SECS=${3:-8}
export PATH=/usr/sbin:/usr/bin:/bin:/sbin

insmod /tests/reuserps_select_bench.ko || echo "R test=select insmod=failed"
# Under RPS first: it sets lo's rps_cpus and clears them when done.
/tests/reuserps_bench rps "${RPS_CONNS:-2000}" "$REPS" || exit 1
/tests/reuserps_bench "$SECS" "$REPS" || exit 1

ncpu=$(grep -c ^processor /proc/cpuinfo)
mkdir -p /var/log/nginx /var/lib/nginx /run
for rep in $(seq 1 "$REPS"); do
	for mode in off rr; do
		rm -f /tmp/rps.*
		LD_PRELOAD=/usr/lib/libreuserps_preload.so \
			REUSERPS_POLICY=$mode REUSERPS_STATS=/tmp/rps \
			nginx -c /etc/nginx/bench.conf || exit 1
		sleep 1
		out=$(wrk -t"$ncpu" -c32 -d"${NGINX_SECS}s" \
			-H "Connection: close" http://127.0.0.1:8080/ 2>&1)
		echo "$out"
		nginx -c /etc/nginx/bench.conf -s quit
		sleep 2
		rps=$(echo "$out" | sed -n 's/^Requests\/sec: *//p')
		errs=$(echo "$out" | sed -n 's/.*Socket errors: //p' |
			tr ' ,' '_;')
		loc=$(cat /tmp/rps.* 2>/dev/null |
			awk '{l += $2; r += $4} END {print l + 0, r + 0}')
		set -- $loc
		echo "R test=nginx mode=$mode rep=$rep workers=$ncpu" \
			"rps=${rps:-0} local=$1 remote=$2 errors=${errs:-none}"
	done
done

# HAProxy: threads pinned one per CPU, a listener per thread.
mkdir -p /run/haproxy
for rep in $(seq 1 "$REPS"); do
	for mode in off rr; do
		rm -f /tmp/rps.*
		LD_PRELOAD=/usr/lib/libreuserps_preload.so \
			REUSERPS_POLICY=$mode REUSERPS_STATS=/tmp/rps \
			haproxy -f /etc/haproxy/bench.cfg -db &
		pid=$!
		sleep 2
		out=$(wrk -t"$ncpu" -c32 -d"${NGINX_SECS}s" \
			-H "Connection: close" http://127.0.0.1:8081/ 2>&1)
		echo "$out"
		kill -USR1 "$pid"
		wait "$pid"
		rps=$(echo "$out" | sed -n 's/^Requests\/sec: *//p')
		errs=$(echo "$out" | sed -n 's/.*Socket errors: //p' |
			tr ' ,' '_;')
		loc=$(cat /tmp/rps.* 2>/dev/null |
			awk '{l += $2; r += $4} END {print l + 0, r + 0}')
		set -- $loc
		echo "R test=haproxy mode=$mode rep=$rep threads=$ncpu" \
			"rps=${rps:-0} local=$1 remote=$2 errors=${errs:-none}"
	done
done
