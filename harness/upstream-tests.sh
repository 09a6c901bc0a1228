#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The reuseport family of a tree's net selftests (reuseport_bpf,
# reuseport_bpf_cpu, reuseport_bpf_numa, reuseport_dualstack,
# reuseport_addr_any, so_incoming_cpu) and the series' own
# so_incoming_cpu_index, compiled directly (the net/ Makefile builds far
# more), static, with the libraries net/Makefile gives them; one line
# each appended to a harness/guest.py manifest.  harness/build-tests.sh
# builds them from the series, harness/first-patch.sh from its first two
# commits.
#
# Usage: upstream-tests.sh TREE UAPI_INCLUDE OUT MANIFEST
set -euo pipefail

net=$1/tools/testing/selftests/net
hdr=$2
out=$3
manifest=$4
tmo=240 # net/settings says 3600: for the whole of net/, not these.
for p in reuseport_bpf reuseport_bpf_cpu reuseport_bpf_numa \
	reuseport_dualstack reuseport_addr_any so_incoming_cpu \
	so_incoming_cpu_index; do
	libs=(-lpthread)
	[ "$p" = reuseport_bpf_numa ] && libs+=(-lnuma)
	# As lib.mk builds them (-D_GNU_SOURCE=), without -Werror: their
	# warnings are upstream's.
	gcc -static -O2 -Wall -D_GNU_SOURCE= -isystem "$hdr" -I"$net/.." \
		-I"$net/lib" -o "$out/$p" "$net/$p.c" "${libs[@]}"
	echo "$p $tmo $out/$p" >>"$manifest"
done
