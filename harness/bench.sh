#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# make bench: SO_REUSERPS against its peers in one guest boot.
#
#  1. the bench kernel: the gcc kernel of make and make check
#     (harness/kernel.config), without the tests and the debugging that
#     would be timed too, with modules, and with cgroup BPF for the BPF
#     peer's sockops program (harness/bench/kernel-bench.config), in
#     build/kbuild-bench;
#  2. the selection timer module, the benchmark program, the preload
#     library, nginx and wrk with their libraries, in the guest's root;
#  3. one 4-vCPU guest boot runs harness/bench/guest-bench.sh;
#  4. the Rust core's selection cost on the host, in instructions
#     (callgrind), for the same group sizes;
#  5. harness/bench.py writes build/bench/results.md and the plots.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
out=$build/bench
kout=$build/kbuild-bench
kfrags="$here/kernel.config $here/bench/kernel-bench.config"
cpus=${CPUS:-4}
secs=${BENCH_SECS:-2}
reps=${BENCH_REPS:-5}
timed_reps=${BENCH_TIMED_REPS:-3}

. "$here/toolchain.sh"

# How long make bench took, which kernels it built from an empty output
# folder, and how many compiles ccache answered (results.md says so).
start=$(date +%s)
timing=$build/logs/bench-timing.log
ccache_calls() {
	ccache --print-stats 2>/dev/null | awk '
		/^(direct|preprocessed)_cache_hit\t/ {h += $2}
		/^cache_miss\t/ {m += $2}
		END {print h + 0, m + 0}'
}
read -r hits0 miss0 < <(ccache_calls)
: >"$timing"
kbuild_timed() {	# NAME OUT COMMAND...
	local name=$1 dir=$2 t0=$SECONDS how=incremental
	shift 2
	[ -f "$dir/vmlinux" ] || how=fresh
	"$@"
	echo "R test=timing kernel=$name build=$how secs=$((SECONDS - t0))" \
		>>"$timing"
}

need=()
for p in nginx-light haproxy wrk valgrind; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "bench: installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${need[@]}" >"$build/logs/bench-apt.log"
fi

KOUT=$kout KFRAGS="$kfrags" \
	kbuild_timed series "$kout" "$here/kbuild.sh" bzImage headers modules
hdr=$kout/usr/include

rm -rf "$out"
mkdir -p "$out/kmod" "$out/root/usr/lib" "$out/root/etc/nginx" \
	"$out/root/var/log/nginx" "$out/root/var/lib/nginx" "$out/root/run"
cp "$here/bench/kmod/reuserps_select_bench.c" "$out/kmod/"
echo "obj-m += reuserps_select_bench.o" >"$out/kmod/Makefile"
make -s -C "$build/linux" O="$kout" "${KMAKE_VARS[@]}" M="$out/kmod" modules
# The BPF peer (harness/bench/bpf), which reuserps_bench runs as the
# mechanism "bpf" and whose bpf_peer_exact compares live counts.
"$here/bench/bpf/build.sh" "$build/linux" "$hdr" "$out/bpf"
gcc -static -O2 -Wall -Werror -isystem "$hdr" -I"$here/bench/bpf" \
	-I"$out/bpf/libbpf/include" -o "$out/reuserps_bench" \
	"$here/bench/reuserps_bench.c" "$out/bpf/bpf_peer.o" \
	"$out/bpf/libbpf/lib64/libbpf.a" -lelf -lz -lpthread -lm
make -s -C "$repo/tools/net/reuserps" EXTRA_CFLAGS="-isystem $hdr" \
	OUTPUT="$out/root/usr/lib/"
make -s -C "$repo/preload" EXTRA_CFLAGS="-isystem $hdr" \
	OUTPUT="$out/root/usr/lib/"

# nginx, wrk and the preload library are dynamically linked: their
# libraries and the loader go along.
for bin in /usr/sbin/nginx /usr/sbin/haproxy /usr/bin/wrk \
	"$out/root/usr/lib/libreuserps_preload.so"; do
	case "$bin" in "$out"/*) ;; *) install -D "$bin" "$out/root$bin" ;; esac
	ldd "$bin" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' |
		while read -r lib; do
			[ -e "$out/root$lib" ] || install -D "$lib" "$out/root$lib"
		done
done
cp "$here/bench/nginx.conf" "$out/root/etc/nginx/bench.conf"
mkdir -p "$out/root/etc/haproxy"
cp "$here/bench/haproxy.cfg" "$out/root/etc/haproxy/bench.cfg"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n' \
	>"$out/root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$out/root/etc/group"
mkdir -p "$out/root/tests"
cp "$out/kmod/reuserps_select_bench.ko" "$out/reuserps_bench" \
	"$out/bpf/bpf_peer_exact" "$out/root/tests/"
echo "bench 1500 $here/bench/guest-bench.sh $secs $reps 5 $timed_reps" \
	>"$out/manifest"

"$here/guest.py" --name bench --cpus "$cpus" --mem 2G --timeout 1500 \
	--kernel "$kout/arch/x86/boot/bzImage" --extra "$out/root" \
	--manifest "$out/manifest" || true
cp "$build/results/bench/results.log" "$out/guest.log"

# Instructions, under QEMU's -icount (one guest ns per instruction): per
# reuseport_select_sock() and per whole connection, on the bench kernel
# and on the base built with the same configuration (sockets that do not
# use SO_REUSERPS must not pay).
icount_iters=${ICOUNT_ITERS:-20000}
icount_conns=${ICOUNT_CONNS:-400}
icount_reps=${ICOUNT_REPS:-5}
icount() {	# NAME KSRC KOUT MECHS
	local name=$1 ksrc=$2 kdir=$3 mechs=$4 d=$out/icount-$1
	rm -rf "$d"
	mkdir -p "$d/kmod" "$d/root/tests"
	cp "$here/bench/kmod/reuserps_select_bench.c" "$d/kmod/"
	echo "obj-m += reuserps_select_bench.o" >"$d/kmod/Makefile"
	make -s -C "$ksrc" O="$kdir" "${KMAKE_VARS[@]}" M="$d/kmod" modules
	cp "$d/kmod/reuserps_select_bench.ko" "$out/reuserps_bench" \
		"$d/root/tests/"
	echo "icount 1500 $here/bench/guest-icount.sh $icount_iters" \
		"$icount_conns $icount_reps $mechs" >"$d/manifest"
	"$here/guest.py" --name "icount-$name" --icount --cpus "$cpus" \
		--timeout 1500 --kernel "$kdir/arch/x86/boot/bzImage" \
		--extra "$d/root" --manifest "$d/manifest" || true
	sed -n "s/^R /R kernel=$name /p" \
		"$build/results/icount-$name/results.log" >>"$out/icount.log"
}
base_out=$build/kbuild-bench-base
if [ ! -f "$build/linux-base/Makefile" ]; then
	# A worktree of the base, as harness/static-check.sh makes it.
	git -C "$build/linux" worktree prune
	git -C "$build/linux" worktree add -q --detach "$build/linux-base" base
fi
KSRC=$build/linux-base KOUT=$base_out \
	KFRAGS="$kfrags" \
	kbuild_timed base "$base_out" "$here/kbuild.sh" --no-verify \
	bzImage modules >"$build/logs/bench-base.log"
# And the bench kernel built with clang, whose Rust inlines the kernel
# crate's C helpers (CONFIG_RUST_INLINE_HELPERS): with gcc, every atomic
# operation of the Rust core is a call.
llvm_out=$build/kbuild-bench-llvm
KOUT_FROM=$kout KOUT=$llvm_out \
	kbuild_timed llvm "$llvm_out" "$here/bench/kbuild-llvm.sh" \
	>"$build/logs/bench-llvm.log"
: >"$out/icount.log"
icount series "$build/linux" "$kout" hash,incpu,incpu_n,cbpf,ebpf,bpf_peer,rps_rr,rps_ff
icount base "$build/linux-base" "$base_out" hash,incpu,incpu_n,cbpf,ebpf
KLLVM=-19 . "$here/toolchain.sh"
icount llvm "$build/linux" "$llvm_out" hash,incpu,incpu_n,cbpf,ebpf,bpf_peer,rps_rr,rps_ff

# The Rust core on the host: instructions per selection.
cargo build -q --release --manifest-path "$repo/Cargo.toml" \
	--example select_cost
bin=$repo/target/release/examples/select_cost
for n in 4 16 64 256; do
	for iters in 0 100000; do
		valgrind --tool=callgrind --callgrind-out-file=/dev/null \
			"$bin" "$n" "$iters" 2>&1 |
			sed -n "s/.*Collected : \([0-9]*\).*/R test=host n=$n iters=$iters ir=\1/p"
	done
done >"$out/host.log"
# And per build of a table of n listeners (listen()), n up to 1024.
for n in 1 4 16 64 256 1024; do
	for iters in 0 20; do
		valgrind --tool=callgrind --callgrind-out-file=/dev/null \
			"$bin" build "$n" "$iters" 2>&1 |
			sed -n "s/.*Collected : \([0-9]*\).*/R test=host_build n=$n iters=$iters ir=\1/p"
	done
done >>"$out/host.log"

# Locality on a larger guest: 32 vCPUs, RPS over all of them, plain hash
# against SO_REUSERPS (a smoke run: one repetition, 20 connections per
# CPU).  Single-threaded TCG (--icount): with 32 vCPUs in parallel, QEMU
# lets a vCPU hit the int3 of a finished text_poke_bp() (a jump label
# flipped at boot) and the guest oopses in poke_int3_handler()'s stead.
mkdir -p "$out/big/root/tests"
cp "$out/reuserps_bench" "$out/big/root/tests/"
echo "rps32 1500 $out/big/root/tests/reuserps_bench rps 640 1" \
	"hash,rps_rr" >"$out/big/manifest"
"$here/guest.py" --name bench-32cpu --cpus 32 --mem 2G --timeout 1500 --icount \
	--kernel "$kout/arch/x86/boot/bzImage" --extra "$out/big/root" \
	--manifest "$out/big/manifest" || true
sed -n 's/^R /R guest=32cpu /p' "$build/results/bench-32cpu/results.log" \
	>"$out/big.log"

# Struct sizes, with the series and at the base (harness/struct-sizes.sh).
"$here/struct-sizes.sh" >"$out/sizes.txt" 2>&1 || true

# A 256-CPU, 1024-listener group over the real Rust core, simulated.
cargo build -q --release --manifest-path "$repo/Cargo.toml" --example simulate
"$repo/target/release/examples/simulate" >"$out/sim.log"

read -r hits1 miss1 < <(ccache_calls)
{
	cat "$timing"
	echo "R test=timing total_secs=$(($(date +%s) - start))" \
		"ccache_hits=$((hits1 - hits0)) ccache_misses=$((miss1 - miss0))"
} >"$out/timing.log"
"$here/bench.py" "$out" "$cpus"
