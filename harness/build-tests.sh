#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the kselftests the guest runs, statically, against the uapi headers
# of the assembled tree (build/kbuild/usr/include, from `make headers`),
# and write build/tests/selftests.manifest for harness/guest.py.
#
#  - tools/testing/selftests/net/reuserps: through its own Makefile
#    (kselftest lib.mk), every TEST_GEN_PROGS entry, with the timeout of
#    its `settings` file;
#  - the upstream peers so_incoming_cpu and reuseport_bpf_cpu of the base
#    tree, which show that the guest steers loopback SYNs by CPU;
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

# Upstream peers, compiled directly: the net/ Makefile builds far more.
net=$src/tools/testing/selftests/net
tmo=120 # net/settings says 3600: for the whole of net/, not these two.
for p in so_incoming_cpu reuseport_bpf_cpu; do
	gcc "${cflags[@]}" -I"$net/.." -o "$out/$p" "$net/$p.c" -lpthread
	echo "$p $tmo $out/$p" >>"$manifest"
done
# Last: nothing the programs above did may have leaked (kmemleak).
echo "kmemleak 300 $here/kmemleak-check.sh" >>"$manifest"
echo "build-tests: $(wc -l <"$manifest") program(s) in $manifest"
