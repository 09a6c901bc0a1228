# SPDX-License-Identifier: GPL-2.0
# Sourced: the pinned toolchain every kernel make of this project uses.
# The rustup rustc on PATH has no rust-src; Debian's rustc-web 1.85 and
# rust-web-src 1.85 match each other, which building `core` requires.

BINDGEN_BIN=${BINDGEN_BIN:-${CARGO_HOME:-$HOME/.cargo}/bin/bindgen}
# ccache: each-commit flips headers such as include/net/sock.h back and
# forth between commits; the cache (~/.cache/ccache, kept between runs
# on one machine) turns those rebuilds into lookups.
# shellcheck disable=SC2034 # used by the scripts that source this file
KMAKE_VARS=(
	LLVM=
	CC="ccache gcc"
	RUSTC=/usr/bin/rustc
	HOSTRUSTC=/usr/bin/rustc
	RUSTDOC=/usr/bin/rustdoc
	RUSTFMT=/usr/bin/rustfmt
	BINDGEN="$BINDGEN_BIN"
)
