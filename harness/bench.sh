#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# make bench: SO_REUSERPS against its peers in one guest boot.
#
#  1. the bench kernel: the test kernel's config without lockdep and the
#     other debugging that would be timed too, with modules
#     (build/kbuild-bench);
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
cpus=${CPUS:-4}
secs=${BENCH_SECS:-3}
reps=${BENCH_REPS:-5}

. "$here/toolchain.sh"

need=()
for p in nginx-light wrk valgrind; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "bench: installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "${need[@]}" >"$build/logs/bench-apt.log"
fi

KOUT=$kout KFRAGS="$here/kernel.config $here/bench/kernel.config" \
	"$here/kbuild.sh" bzImage headers modules
hdr=$kout/usr/include

rm -rf "$out"
mkdir -p "$out/kmod" "$out/root/usr/lib" "$out/root/etc/nginx" \
	"$out/root/var/log/nginx" "$out/root/var/lib/nginx" "$out/root/run"
cp "$here/bench/kmod/reuserps_select_bench.c" "$out/kmod/"
echo "obj-m += reuserps_select_bench.o" >"$out/kmod/Makefile"
make -s -C "$build/linux" O="$kout" "${KMAKE_VARS[@]}" M="$out/kmod" modules
gcc -static -O2 -Wall -Werror -isystem "$hdr" -o "$out/reuserps_bench" \
	"$here/bench/reuserps_bench.c" -lpthread -lm
make -s -C "$repo/tools/net/reuserps" EXTRA_CFLAGS="-isystem $hdr" \
	OUTPUT="$out/root/usr/lib/"

# nginx, wrk and the preload library are dynamically linked: their
# libraries and the loader go along.
for bin in /usr/sbin/nginx /usr/bin/wrk \
	"$out/root/usr/lib/libreuserps_preload.so"; do
	case "$bin" in "$out"/*) ;; *) install -D "$bin" "$out/root$bin" ;; esac
	ldd "$bin" | awk '/=> \// {print $3} /^\t\/lib/ {print $1}' |
		while read -r lib; do
			[ -e "$out/root$lib" ] || install -D "$lib" "$out/root$lib"
		done
done
cp "$here/bench/nginx.conf" "$out/root/etc/nginx/bench.conf"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n' \
	>"$out/root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$out/root/etc/group"
mkdir -p "$out/root/tests"
cp "$out/kmod/reuserps_select_bench.ko" "$out/reuserps_bench" \
	"$out/root/tests/"
echo "bench 1500 $here/bench/guest-bench.sh $secs $reps 8" >"$out/manifest"

"$here/guest.py" --name bench --cpus "$cpus" --mem 2G --timeout 1500 \
	--kernel "$kout/arch/x86/boot/bzImage" --extra "$out/root" \
	--manifest "$out/manifest" || true
cp "$build/results/bench/results.log" "$out/guest.log"

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

"$here/bench.py" "$out" "$cpus"
