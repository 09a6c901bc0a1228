#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Tests of the guest harness itself: break the guest on purpose and check
# that harness/guest.py fails the run and names each cause.
#   run 1: a passing KTAP program, a failing one, one that hangs, one that
#          makes the kernel WARN, one that reads freed memory (KASAN), one
#          that dies half-way through its plan;
#   run 2: a program that outlives the whole-guest time limit;
#   run 3: a guest that brings up fewer CPUs than asked for.
# Prints one line per check and `harness: N passed, N failed`.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
st=$here/selftest
mkdir -p "$build/results"
pass=0
fail=0

verdict() { # OK(0/1) DESCRIPTION WHY
	if [ "$1" = 0 ]; then
		echo "  ok   harness: $2"
		pass=$((pass + 1))
	else
		echo "  FAIL harness: $2 ($3)"
		fail=$((fail + 1))
	fi
}

expect() { # LOG DESCRIPTION REGEX
	grep -qE -- "$3" "$1"
	verdict $? "$2" "no line matching '$3' in $1"
}

m=$build/results/harness-broken.manifest
cat >"$m" <<EOF
harness_ok 30 $st/ok.sh
harness_fail 30 $st/fail.sh
harness_hang 3 $st/hang.sh
harness_warn 30 $st/warn.sh
harness_kasan 30 $st/kasan.sh
harness_crash 30 $st/crash.sh
EOF
log=$build/results/harness-broken.out
"$here/guest.py" --name harness-broken --manifest "$m" --timeout 300 \
	>"$log" 2>&1
rc=$?
expect "$log" "a broken run counts its failures" \
	"^harness-broken: [0-9]+ passed, [1-9][0-9]* failed"
[ $rc -eq 1 ]
verdict $? "a broken run exits with status 1" "exit status $rc"
expect "$log" "a passing program's cases pass" "^  ok   harness_ok:first$"
expect "$log" "a failing program is named with its exit code" \
	"^  FAIL harness_fail: exit code 1$"
expect "$log" "a hanging program is killed and named" \
	"^  FAIL harness_hang: timed out after 3 s"
expect "$log" "a kernel WARN is caught and blamed on its program" \
	"^  FAIL harness_warn: kernel trouble in the guest log while it ran: .*WARNING:"
expect "$log" "a KASAN report is caught and blamed on its program" \
	"^  FAIL harness_kasan: kernel trouble in the guest log while it ran: .*BUG: KASAN: "
expect "$log" "the first report is quoted whole" \
	"^  \| .*(Call Trace:|end trace)"
expect "$log" "a program that dies mid-plan is caught" \
	"^  FAIL harness_crash: only 1 of 3 planned cases reported"
expect "$log" "later programs still run after a hang" \
	"^  ok   harness_crash:first$"

m=$build/results/harness-hang.manifest
echo "harness_forever 100000 $st/hang.sh" >"$m"
log=$build/results/harness-hang.out
"$here/guest.py" --name harness-hang --manifest "$m" --timeout 60 \
	>"$log" 2>&1
rc=$?
[ $rc -eq 1 ]
verdict $? "a guest killed for time exits with status 1" "exit status $rc"
expect "$log" "a guest that never finishes is killed and named" \
	"did not finish within 60 s \(last program started: harness_forever\)"

log=$build/results/harness-cpus.out
"$here/guest.py" --name harness-cpus --timeout 60 --append nr_cpus=2 \
	>"$log" 2>&1
expect "$log" "a guest that shows too few CPUs fails the run" \
	"shows 2 CPU\(s\) online, not the 4 asked for"

echo "harness: $pass passed, $fail failed"
[ $fail -eq 0 ]
