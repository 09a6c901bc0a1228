#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the kselftests the guest runs, statically, against the uapi headers
# of the assembled tree (build/kbuild/usr/include, from `make headers`),
# and write build/tests/selftests.manifest for harness/guest.py, with the
# files they need in build/tests/extra.
#
#  - tools/testing/selftests/net/reuserps: through its own Makefile
#    (kselftest lib.mk), every TEST_GEN_PROGS entry, with the timeout of
#    its `settings` file;
#  - reuserps-stat, and harness/stat/reuserps_stat_json.c, which checks
#    its -j output against the kernel's counts;
#  - harness/bench/bpf's bpf_peer_exact: the same connection lives on
#    SO_REUSERPS and on its strongest BPF peer; SO_REUSERPS must count
#    each exactly and hold its caps, the peer must load and run (what it
#    counts is make bench's to report);
#  - the upstream reuseport family of the base tree (reuseport_bpf,
#    reuseport_bpf_cpu, reuseport_bpf_numa, reuseport_dualstack,
#    reuseport_addr_any, so_incoming_cpu) and the series' own
#    so_incoming_cpu_index: a change to reuseport's lookup must not break
#    the users who do not ask for SO_REUSERPS;
#  - last, harness/kmemleak-check.sh: no leak after all of them.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
src=$build/linux
hdr=$build/kbuild/usr/include
out=$build/tests
manifest=$out/selftests.manifest
# Software emulation is slow: the settings' timeouts are for real machines.
slow=${GUEST_SLOWDOWN:-4}

[ -d "$hdr/linux" ] || {
	echo "build-tests: no uapi headers in $hdr (run harness/kbuild.sh)" >&2
	exit 1
}
rm -rf "$out"
mkdir -p "$out"
: >"$manifest"
cflags=(-static -O2 -Wall -Werror -isystem "$hdr")

settings_timeout() {
	local t=45
	if [ -f "$1/settings" ]; then
		t=$(sed -n 's/^timeout=\([0-9]*\)$/\1/p' "$1/settings")
	fi
	echo $((${t:-45} * slow))
}

# Our suite, through its Makefile as NIPA builds it.
dir=$src/tools/testing/selftests/net/reuserps
if [ -f "$dir/Makefile" ]; then
	mkdir -p "$out/reuserps"
	# -Werror: a warning in our own tests is a bug (a wrong pointer
	# type once passed silently and made a test fail).
	CFLAGS=-Werror LDFLAGS=-static make -s -C "$dir" OUTPUT="$out/reuserps" \
		KHDR_INCLUDES="-isystem $hdr" all
	tmo=$(settings_timeout "$dir")
	progs=$(make -s -C "$dir" OUTPUT="$out/reuserps" \
		KHDR_INCLUDES="-isystem $hdr" -f Makefile -f - print-progs \
		<<<'print-progs: ; @echo $(notdir $(TEST_GEN_PROGS))')
	for p in $progs; do
		echo "$p $tmo $out/reuserps/$p" >>"$manifest"
	done
fi

# reuserps-stat (tools/net/reuserps) and its guest test, which checks
# its JSON against the kernel's counts; the test runs reuserps-stat from
# /tests, where the guest puts the files of build/tests/extra/tests.
mkdir -p "$out/extra/tests"
gcc "${cflags[@]}" -Werror -o "$out/extra/tests/reuserps-stat" \
	"$src/tools/net/reuserps/reuserps-stat.c"
gcc "${cflags[@]}" -Werror -o "$out/reuserps_stat_json" \
	"$here/stat/reuserps_stat_json.c" -lpthread
echo "reuserps_stat_json $((60 * slow)) $out/reuserps_stat_json" >>"$manifest"

# The BPF peer (libbpf from the tree, the program built with clang).
"$here/bench/bpf/build.sh" "$src" "$hdr" "$build/bpf"
cp "$build/bpf/bpf_peer_exact" "$out/"
echo "bpf_peer_exact $((120 * slow)) $out/bpf_peer_exact" >>"$manifest"

# The upstream reuseport family and so_incoming_cpu_index.
"$here/upstream-tests.sh" "$src" "$hdr" "$out" "$manifest"
# Last: nothing the programs above did may have leaked (kmemleak).
echo "kmemleak 300 $here/kmemleak-check.sh" >>"$manifest"
echo "build-tests: $(wc -l <"$manifest") program(s) in $manifest"
