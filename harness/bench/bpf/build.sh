#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Builds the BPF peer of SO_REUSERPS (see bpf_peer.h): libbpf.a from the
# kernel tree's tools/lib/bpf (once), the BPF object (clang), embedded as
# a C array in bpf_peer.o, and the static bpf_peer_exact.
#
# Usage: build.sh KSRC UAPI_INCLUDE OUT
# OUT gets bpf_peer.o, bpf_peer_exact, and libbpf/ (link with
# OUT/libbpf/lib64/libbpf.a -lelf -lz).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
ksrc=$(realpath "$1")
uapi=$(realpath "$2")
mkdir -p "$3" "$3/libbpf-obj"
out=$(realpath "$3")
lib=$out/libbpf
if [ ! -f "$lib/lib64/libbpf.a" ] ||
	[ -n "$(find "$ksrc/tools/lib/bpf" -newer "$lib/lib64/libbpf.a" \
		-name '*.[ch]' -print -quit)" ]; then
	make -s -j1 -C "$ksrc/tools/lib/bpf" OUTPUT="$out/libbpf-obj/" \
		BUILD_STATIC_ONLY=1 DESTDIR="$lib" prefix= install \
		>"$out/libbpf.log" 2>&1 || {
		cat "$out/libbpf.log" >&2
		exit 1
	}
fi
clang-19 -O2 -g -target bpf -mcpu=v3 -Wall -Werror -I"$here" \
	-I"$lib/include" -I"$uapi" -c "$here/reuserps_peer.bpf.c" \
	-o "$out/reuserps_peer.bpf.o"
# The object as a C array (what xxd -i writes), so that a static binary
# carries it into the guest.
python3 - "$out/reuserps_peer.bpf.o" "$out/reuserps_peer.bpf.inc" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "w") as f:
    f.write("unsigned char reuserps_peer_bpf_o[] = {\n")
    for i in range(0, len(data), 12):
        f.write("  " + ", ".join(f"0x{b:02x}" for b in data[i:i + 12]) +
                ",\n")
    f.write("};\n")
    f.write(f"unsigned int reuserps_peer_bpf_o_len = {len(data)};\n")
PY
cflags=(-O2 -Wall -Werror -isystem "$uapi" -I"$here" -I"$out" -I"$lib/include")
gcc "${cflags[@]}" -c "$here/bpf_peer.c" -o "$out/bpf_peer.o"
gcc "${cflags[@]}" -static -pthread -o "$out/bpf_peer_exact" \
	"$here/bpf_peer_exact.c" "$out/bpf_peer.o" "$lib/lib64/libbpf.a" \
	-lelf -lz
