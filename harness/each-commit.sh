#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Every commit of the series must build on its own (netdev bisects).
#
# Usage: harness/each-commit.sh [--all]
#
# The configurations (each its own output tree, so that a commit
# rebuilds only what it changes; ccache answers for states seen before):
#   prod  the feature on, no tests, modules, as distributions build it
#         (harness/kernel.config, build/kbuild: the gcc kernel that
#         `make` boots and the static checks, sizes and headers use)
#   off   a minimal networking kernel without Rust, so without the
#         series' code (harness/kernel-off.config, build/kbuild-off)
#   on    the feature with its tests: KUnit, lockdep, sock_diag built in
#         (harness/kernel.config + harness/kernel-test.config,
#         build/kbuild-test)
#
# Without --all (make check): every commit in prod, off at the head.  The
# head in prod is the `kernel` stage of make check and is left to it; on
# at the head is the guest rings' debug kernel (clang, the same options
# and more).  With --all (make series-check): every commit in all three.
#
# A commit whose tree (but for tools/ and Documentation/) already built
# with a config's fragments is not built again: build/each-commit.ok
# remembers them.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
src=$build/linux
all=0
case "${1:-}" in
--all) all=1 ;;
"") ;;
*)
	echo "usage: $0 [--all]" >&2
	exit 2
	;;
esac

# NAME OUTPUT FRAGMENTS...
configs=(
	"prod $build/kbuild $here/kernel.config"
	"off $build/kbuild-off $here/kernel-off.config"
	"on $build/kbuild-test $here/kernel.config $here/kernel-test.config"
)

"$here/series.py" assemble
commits=$(git -C "$src" rev-list --reverse base..series)
head=$(git -C "$src" rev-parse series)
# kernel_tree (toolchain.sh): commits that change only tools/ and
# Documentation/ are not rebuilt, and those at the end count as the head.
. "$here/toolchain.sh"
htree=$(kernel_tree "$src" "$head")
okfile=$build/each-commit.ok
touch "$okfile"
n=0
skipped=0
restore() { git -C "$src" checkout -q -f series; }
trap restore EXIT
for c in $commits; do
	tree=$(kernel_tree "$src" "$c")
	for cfg in "${configs[@]}"; do
		read -r name out frags <<<"$cfg"
		if [ "$all" = 0 ]; then
			case "$name" in
			prod) [ "$tree" != "$htree" ] || continue ;;
			off) [ "$tree" = "$htree" ] || continue ;;
			on) continue ;;
			esac
		fi
		# shellcheck disable=SC2086 # frags is a list of paths
		key="$tree $name $(cat $frags | sha1sum | cut -c1-12)"
		if grep -qxF "$key" "$okfile"; then
			skipped=$((skipped + 1))
			continue
		fi
		if [ "$(git -C "$src" rev-parse HEAD)" != "$c" ]; then
			git -C "$src" checkout -q -f "$c"
		fi
		n=$((n + 1))
		echo "each-commit: building ($name) $(git -C "$src" log -1 \
			--format='%h %s' "$c")"
		# --no-verify: options of the fragment may not exist yet.
		t0=$SECONDS
		KOUT=$out KFRAGS=$frags "$here/kbuild.sh" --no-verify \
			bzImage modules
		echo "each-commit: ($name) $((SECONDS - t0)) s"
		echo "$key" >>"$okfile"
	done
done
echo "each-commit: $n build(s) of the commits, $skipped unchanged since" \
	"they last built"
