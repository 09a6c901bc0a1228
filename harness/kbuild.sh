#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the assembled tree out of tree: allnoconfig + harness/kernel.config,
# then bzImage and the uapi headers.  Incremental: .config is replaced only
# when its content changes, so an edit rebuilds only what it touches.
#
# Usage: harness/kbuild.sh [--no-verify] [make targets...]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
src=$build/linux
out=${KOUT:-$build/kbuild}
frag=$here/kernel.config
verify=1
if [ "${1:-}" = "--no-verify" ]; then
	verify=0
	shift
fi

. "$here/toolchain.sh"

mkdir -p "$out"
jobs=$(($(nproc) + 1))
kmake() {
	make -s -C "$src" O="$out" "${KMAKE_VARS[@]}" "$@"
}

# Generate the config into a side file and swap it in only if it differs.
KCONFIG_ALLCONFIG=$frag kmake KCONFIG_CONFIG=.config.new allnoconfig \
	>"$out/config.log" 2>&1 || {
	cat "$out/config.log" >&2
	echo "kbuild: allnoconfig failed" >&2
	exit 1
}
if ! cmp -s "$out/.config.new" "$out/.config"; then
	mv "$out/.config.new" "$out/.config"
	echo "kbuild: new .config"
else
	rm -f "$out/.config.new"
fi

if [ "$verify" = 1 ]; then
	# Each option of the fragment must have survived Kconfig.
	missing=0
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*)
			if ! grep -qxF "$line" "$out/.config"; then
				sym=${line%%=*}
				got=$(grep -E "^($sym=|# $sym is not set)" \
					"$out/.config" || echo "absent")
				echo "kbuild: wanted $line, got: $got" >&2
				missing=1
			fi
			;;
		esac
	done <"$frag"
	if [ "$missing" = 1 ]; then
		echo "kbuild: harness/kernel.config options were dropped" \
			"(missing dependency or toolchain: see make rustavailable)" >&2
		exit 1
	fi
fi

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(bzImage headers)
kmake -j"$jobs" "${targets[@]}"
echo "kbuild: built ${targets[*]} in $out"
