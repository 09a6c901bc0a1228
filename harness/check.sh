#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# `make check`: every stage in order, each timed, each ring's cases counted.
# A build stage that fails skips the stages that need it and counts as one
# failure; the closing line sums every ring: `N passed, N failed, N skipped`.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
export BUILD=$build
mkdir -p "$build/logs"
cpus=${CPUS:-4}
kunit_glob=${KUNIT_GLOB:-reuserps*}

passed=0
failed=0
skipped=0
timing=()
broken=() # stages that failed

add_counts() { # PASS FAIL SKIP
	passed=$((passed + $1))
	failed=$((failed + $2))
	skipped=$((skipped + $3))
}

stage() { # NAME COMMAND...: run, tee the log, time it; 0 if it passed
	local name=$1 t0 rc
	shift
	echo "=== $name: $*"
	t0=$(date +%s)
	"$@" 2>&1 | tee "$build/logs/$name.log"
	rc=${PIPESTATUS[0]}
	timing+=("$(printf '%-14s %5d s  %s' "$name" $(($(date +%s) - t0)) \
		"$([ "$rc" = 0 ] && echo ok || echo "FAILED (exit $rc)")")")
	[ "$rc" = 0 ] || broken+=("$name")
	return "$rc"
}

skip_stage() {
	timing+=("$(printf '%-14s %7s  %s' "$1" "-" "not run: $2")")
}

guest_counts() { # RUN: read build/results/RUN/counts, or count one failure
	local f=$build/results/$1/counts
	if [ -f "$f" ]; then
		add_counts $(python3 -c 'import json,sys
c = json.load(open(sys.argv[1]))
print(c["pass"], c["fail"], c["skip"])' "$f")
	else
		add_counts 0 1 0
	fi
}

# Where the option does not exist, our programs skip (KSFT_SKIP), none
# fails: the gcc kernel without Rust, so without CONFIG_REUSERPS
# (build/kbuild-norps), boots them.  One case: every test skipped.
selftests_off() {
	local off=$build/kbuild-norps/arch/x86/boot/bzImage c
	if ! stage kernel-norps env KOUT="$build/kbuild-norps" \
		KFRAGS="$here/kernel.config $here/kernel-norps.config" \
		"$here/kbuild.sh" --no-verify bzImage; then
		add_counts 0 1 0
		return
	fi
	grep -E '^reuserps_' "$build/tests/selftests.manifest" \
		>"$build/tests/off.manifest"
	# One CPU: the programs skip before they need more, and this gcc
	# kernel once died booting four under TCG (an int3 of live code
	# patching, in sched_clock_cpu()), which one CPU cannot race.
	stage selftests-off "$here/guest.py" --name selftests-off \
		--cpus 1 --kernel "$off" --extra "$build/tests/extra" \
		--manifest "$build/tests/off.manifest"
	c=$build/results/selftests-off/counts
	if [ -f "$c" ] && python3 -c 'import json,sys
c = json.load(open(sys.argv[1]))
sys.exit(not (c["skip"] > 0 and c["pass"] == 0 and c["fail"] == 0))' "$c"
	then
		echo "selftests-off: every test skipped without SO_REUSERPS"
		add_counts 1 0 0
	else
		echo "selftests-off: a test ran or failed without SO_REUSERPS"
		add_counts 0 1 0
	fi
}

# The first two commits alone (the SO_INCOMING_CPU index and its test)
# on the base: their kernel passes upstream's reuseport family and the
# new test without the rest of the series (harness/first-patch.sh).
first_patch() {
	if ! stage kernel-first "$here/first-patch.sh"; then
		add_counts 0 1 0
		return
	fi
	stage selftests-first "$here/guest.py" --name selftests-first \
		--cpus "$cpus" --numa \
		--kernel "$build/kbuild-first/arch/x86/boot/bzImage" \
		--manifest "$build/tests-first/first.manifest"
	guest_counts selftests-first
}

t_start=$(date +%s)
built=0
debug=0
if stage deps "$here/deps.sh"; then
	# The series as posted: git am gives the same tree, checkpatch is
	# clean (one case per patch).  A failure here still lets the kernel
	# and the tests run.
	stage series "$here/series.py" verify
	p=$(grep -cE '^(checkpatch: .*: clean|series: b4 am .* exactly)$' \
		"$build/logs/series.log")
	f=$(grep -cE '^checkpatch: .*: PROBLEMS$' "$build/logs/series.log")
	if [[ " ${broken[*]} " == *" series "* ]] && [ "$f" = 0 ]; then
		f=1 # It failed before checkpatch: assembly or git am.
	fi
	add_counts "$p" "$f" 0
	# Every commit in the gcc config but the head, and the feature off
	# at the head (make series-check builds every commit in all three).
	stage each-commit "$here/each-commit.sh" || add_counts 0 1 0
	# The head's gcc kernel: static checks, sizes, uapi headers.
	if stage kernel bash -c '"$1/series.py" assemble && "$1/kbuild.sh"' \
		_ "$here"; then
		built=1
	else
		add_counts 0 1 0
	fi
	# The guest rings' kernel: clang, KASAN, lockdep, KUnit.
	if stage debug-kernel "$here/kbuild-debug.sh"; then
		debug=1
	else
		add_counts 0 1 0
	fi
else
	add_counts 0 1 0
fi

if [ "$built" = 1 ]; then
	# sparse, W=1 and kernel-doc: one case.
	if stage static "$here/static-check.sh"; then
		add_counts 1 0 0
	else
		add_counts 0 1 0
	fi
	# Sockets that do not use SO_REUSERPS pay nothing in size: one case.
	if stage sizes "$here/struct-sizes.sh" --check; then
		add_counts 1 0 0
	else
		add_counts 0 1 0
	fi
else
	skip_stage static "no kernel"
	skip_stage sizes "no kernel"
fi

if [ -f "$repo/Cargo.toml" ]; then
	if stage host-tests cargo test --manifest-path "$repo/Cargo.toml" \
		--release; then :; fi
	read -r p f i < <(awk '/^test result:/ {
		for (n = 1; n <= NF; n++) {
			if ($(n+1) ~ /^passed/) p += $n
			if ($(n+1) ~ /^failed/) f += $n
			if ($(n+1) ~ /^ignored/) i += $n
		} } END { print p+0, f+0, i+0 }' "$build/logs/host-tests.log")
	if [ "$p$f" = 00 ] || [[ " ${broken[*]} " == *" host-tests "* ]]; then
		[ "$f" -gt 0 ] || f=1
	fi
	add_counts "$p" "$f" "$i"
else
	skip_stage host-tests "no host crate (Cargo.toml) yet"
fi

# The guest rings boot the debug kernel; the selftests are built
# against the gcc kernel's uapi headers.
if [ "$debug" = 1 ]; then
	stage kunit "$here/guest.py" --name kunit --kunit "$kunit_glob" \
		--cpus "$cpus"
	guest_counts kunit
	if [ "$built" != 1 ]; then
		skip_stage tests-build "no gcc kernel (uapi headers)"
		skip_stage selftests "no gcc kernel (uapi headers)"
	elif stage tests-build "$here/build-tests.sh"; then
		stage selftests "$here/guest.py" --name selftests --cpus "$cpus" \
			--numa --extra "$build/tests/extra" \
			--manifest "$build/tests/selftests.manifest"
		guest_counts selftests
		selftests_off
		first_patch
	else
		add_counts 0 1 0
	fi
	stage harness "$here/test-harness.sh"
	read -r p f < <(sed -n 's/^harness: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' \
		"$build/logs/harness.log")
	add_counts "${p:-0}" "${f:-1}" 0
else
	for s in kunit tests-build selftests harness; do
		skip_stage "$s" "no debug kernel"
	done
fi

echo
echo "=== stage times (total $(($(date +%s) - t_start)) s)"
printf '%s\n' "${timing[@]}"
[ ${#broken[@]} -eq 0 ] || echo "failed stages: ${broken[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ ${#broken[@]} -eq 0 ]
