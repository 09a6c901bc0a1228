#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Build the assembled tree out of tree: allnoconfig + harness/kernel.config,
# then bzImage and the uapi headers.  Incremental: .config is replaced only
# when its content changes, so an edit rebuilds only what it touches.
#
# Usage: harness/kbuild.sh [--no-verify] [make targets...]
# KOUT: the output folder (build/kbuild); KFRAGS: the fragments, in order,
# later ones overriding earlier ones (harness/kernel.config).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
src=${KSRC:-$build/linux}
out=${KOUT:-$build/kbuild}
read -r -a frags <<<"${KFRAGS:-$here/kernel.config}"
verify=1
if [ "${1:-}" = "--no-verify" ]; then
	verify=0
	shift
fi

. "$here/toolchain.sh"

mkdir -p "$out"
frag=$out/fragment.config
cat "${frags[@]}" >"$frag"
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
	# Each option of the fragments, as the last one that names it
	# sets it, must have survived Kconfig.
	missing=0
	while IFS= read -r line; do
		sym=${line%%=*}
		case "$line" in
		"# CONFIG_"*" is not set")
			sym=${line#\# }
			sym=${sym%% *}
			grep -q "^$sym=" "$out/.config" || continue
			;;
		CONFIG_*=*)
			grep -qxF "$line" "$out/.config" && continue
			;;
		*)
			continue
			;;
		esac
		got=$(grep -E "^($sym=|# $sym is not set)" "$out/.config" ||
			echo "absent")
		echo "kbuild: wanted $line, got: $got" >&2
		missing=1
	done < <(awk '
		/^CONFIG_[A-Za-z0-9_]+=/ { s = $0; sub(/=.*/, "", s) }
		/^# CONFIG_[A-Za-z0-9_]+ is not set$/ { s = $2 }
		s != "" { last[s] = $0; order[++n] = s; s = "" }
		END { for (i = 1; i <= n; i++)
			if (!(order[i] in seen)) { seen[order[i]] = 1
				print last[order[i]] } }' "$frag")
	if [ "$missing" = 1 ]; then
		echo "kbuild: options of ${frags[*]} were dropped" \
			"(missing dependency or toolchain: see make rustavailable)" >&2
		exit 1
	fi
fi

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(bzImage modules headers)
rm -f "$out/.source-tree"
kmake -j"$jobs" "${targets[@]}"
# Which kernel tree this output now holds (harness/static-check.sh lints
# only trees built from the series' head).
kernel_tree "$src" HEAD >"$out/.source-tree" 2>/dev/null || :
echo "kbuild: built ${targets[*]} in $out"
