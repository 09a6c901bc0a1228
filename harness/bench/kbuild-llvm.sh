#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The bench kernel built with clang-19 and CONFIG_RUST_INLINE_HELPERS
# (build/kbuild-bench-llvm): the gcc bench kernel's .config, plus
# CONFIG_EXPERT (RUST_INLINE_HELPERS depends on it) and the option, made
# consistent with olddefconfig.  Not allnoconfig: with EXPERT set,
# allnoconfig would also turn off everything EXPERT makes optional
# (futexes, epoll, tmpfs, ...).  Incremental, as harness/kbuild.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$(dirname "$here")/build}
src=$build/linux
from=${KOUT_FROM:-$build/kbuild}
out=${KOUT:-$build/kbuild-bench-llvm}
KLLVM=-19
. "$here/toolchain.sh"

[ -f "$from/.config" ] || {
	echo "kbuild-llvm: no $from/.config (build the gcc bench kernel)" >&2
	exit 1
}
mkdir -p "$out"
cp "$from/.config" "$out/.config.new"
"$src/scripts/config" --file "$out/.config.new" -e EXPERT \
	-e RUST_INLINE_HELPERS
make -s -C "$src" O="$out" "${KMAKE_VARS[@]}" KCONFIG_CONFIG=.config.new \
	olddefconfig >"$out/config.log" 2>&1
for opt in EXPERT RUST RUST_INLINE_HELPERS REUSERPS JUMP_LABEL; do
	grep -qx "CONFIG_$opt=y" "$out/.config.new" || {
		echo "kbuild-llvm: CONFIG_$opt did not survive olddefconfig" >&2
		exit 1
	}
done
if ! cmp -s "$out/.config.new" "$out/.config"; then
	mv "$out/.config.new" "$out/.config"
	echo "kbuild-llvm: new .config"
else
	rm -f "$out/.config.new"
fi
make -s -C "$src" O="$out" "${KMAKE_VARS[@]}" -j$(($(nproc) + 1)) \
	bzImage modules
echo "kbuild-llvm: built in $out"
