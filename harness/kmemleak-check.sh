#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs last in the selftests guest: kmemleak must find no unreferenced
# object allocated since boot (harness/guest-init.sh set aside what it
# suspected then).  Prints the suspects and fails if there are any.
f=/sys/kernel/debug/kmemleak
if [ ! -e "$f" ]; then
	echo "kmemleak: not in this kernel"
	exit 4	# kselftest's skip
fi
# Objects younger than 5 s are not reported yet; sockets of the last
# tests are freed after an RCU grace period.
sleep 6
echo scan >"$f"
echo scan >"$f"
out=$(cat "$f")
if [ -n "$out" ]; then
	echo "$out"
	echo "kmemleak: suspected leaks above"
	exit 1
fi
echo "kmemleak: no suspected leaks"
