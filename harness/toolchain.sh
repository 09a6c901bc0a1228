# SPDX-License-Identifier: GPL-2.0
# Sourced: the pinned toolchain every kernel make of this project uses.
# The rustup rustc on PATH has no rust-src; Debian's rustc-web 1.85 and
# rust-web-src 1.85 match each other, which building `core` requires.
# Linux 7.3 needs bindgen >= 0.71.1 with libclang >= 17: bindgen-cli
# 0.71.1 from crates.io over bookworm's libclang-19.

BINDGEN_BIN=${BINDGEN_BIN:-${CARGO_HOME:-$HOME/.cargo}/bin/bindgen}
# harness/deps.sh may still be building bindgen in the background.
_tc_build=${BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build}
if [ -f "$_tc_build/bindgen.pending" ]; then
	echo "toolchain: waiting for bindgen-cli to finish building" >&2
	while [ -f "$_tc_build/bindgen.pending" ] &&
		kill -0 "$(cat "$_tc_build/bindgen.pending" 2>/dev/null)" \
			2>/dev/null; do
		sleep 2
	done
fi
if [ -f "$_tc_build/bindgen.rc" ] &&
	[ "$(cat "$_tc_build/bindgen.rc")" != 0 ]; then
	echo "toolchain: installing bindgen-cli failed:" >&2
	tail -20 "$_tc_build/logs/bindgen.log" >&2
	return 1 2>/dev/null || exit 1
fi
export LIBCLANG_PATH=${LIBCLANG_PATH:-/usr/lib/llvm-19/lib}
# ccache: each-commit flips headers such as include/net/sock.h back and
# forth between commits; the cache (~/.cache/ccache, kept between runs
# on one machine) turns those rebuilds into lookups.  Paths are made
# relative to the repository so that another clone hits the same cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
# Depend mode: a miss compiles once instead of preprocessing twice (a
# fresh build is a quarter faster); kbuild's -Wp,-MMD gives ccache the
# dependencies it needs.
export CCACHE_DEPEND=${CCACHE_DEPEND:-1}
# KLLVM=-19: build with clang-19/lld-19 (the debug kernel: Rust with KASAN
# needs clang, and bookworm's clang-19 is on rustc-web's LLVM, 19.1.7).
if [ -n "${KLLVM:-}" ]; then
	_tc_cc=(LLVM="$KLLVM" CC="ccache clang$KLLVM")
else
	_tc_cc=(LLVM= CC="ccache gcc")
fi
# What a kernel build sees of commit $2 of tree $1: its tree without
# tools/ and Documentation/ (selftests, the preload library and docs
# build elsewhere), so the commits that add only those at the end of the
# series build the same kernel as the one before them.
kernel_tree() { # SRC COMMIT
	git -C "$1" ls-tree "$2" | grep -vP '\t(tools|Documentation)$' |
		sha1sum | cut -c1-40
}
# shellcheck disable=SC2034 # used by the scripts that source this file
KMAKE_VARS=(
	"${_tc_cc[@]}"
	RUSTC=/usr/bin/rustc
	HOSTRUSTC=/usr/bin/rustc
	RUSTDOC=/usr/bin/rustdoc
	RUSTFMT=/usr/bin/rustfmt
	CLIPPY_DRIVER=/usr/bin/clippy-driver
	BINDGEN="$BINDGEN_BIN"
)
