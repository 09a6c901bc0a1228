#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Run tools/testing/selftests/net/reuserps as NIPA (netdev's CI) runs a
# target: built and installed by the kselftest Makefile, then run by
# run_kselftest.sh, which applies the target's `settings` timeout, once,
# in a virtme-ng guest booting the debug kernel (build/kbuild-debug).
# Prints the runner's TAP output and the wall time of the run.
#
# The guest is software-emulated (no KVM here): times are those of TCG
# on this machine, several times what a NIPA runner takes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
kdir=$build/kbuild-debug
src=$build/linux
out=$build/nipa
cpus=${CPUS:-4}

[ -f "$kdir/arch/x86/boot/bzImage" ] || {
	echo "nipa: no debug kernel in $kdir (make debug-kernel)" >&2
	exit 1
}
rm -rf "$out"
mkdir -p "$out"
make -s -C "$src/tools/testing/selftests" TARGETS=net/reuserps \
	KHDR_INCLUDES="-isystem $kdir/usr/include" \
	INSTALL_PATH="$out/ksft" install >"$out/install.log" 2>&1 || {
	cat "$out/install.log" >&2
	exit 1
}

start=$(date +%s)
set +e
PATH=$build/venv/bin:$PATH timeout 3600 vng --run \
	"$kdir/arch/x86/boot/bzImage" --disable-kvm --cpus "$cpus" \
	--memory 4G --user root \
	--exec "cd '$out/ksft' && ./run_kselftest.sh" 2>&1 |
	while IFS= read -r line; do
		# Each line with the seconds since the start: what each
		# program took, under the settings timeout.
		printf '%4d %s\n' $(($(date +%s) - start)) "$line"
	done | tee "$out/run.log"
rc=${PIPESTATUS[0]}
set -e
end=$(date +%s)
pass=$(grep -cE '^ *[0-9]+ ok ' "$out/run.log" || true)
skip=$(grep -cE '^ *[0-9]+ ok .*# SKIP' "$out/run.log" || true)
fail=$(grep -cE '^ *[0-9]+ not ok ' "$out/run.log" || true)
echo "nipa: net/reuserps through vng on the debug kernel:" \
	"$((pass - skip)) ok, $skip skipped, $fail not ok, in $((end - start)) s"
[ "$rc" = 0 ] && [ "$fail" = 0 ] && [ "$pass" -gt 0 ]
