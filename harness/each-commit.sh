#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Every commit of the series must build on its own (netdev bisects), with
# the feature on (the test config, harness/kernel.config), on without its
# tests (harness/bench/kernel.config over it) and off (a minimal
# networking kernel without Rust, harness/kernel-off.config).
# Each config has its own output tree, so that only what a commit
# changes is rebuilt; commits are checked out in order and each is built
# in both before the next.  The head in the
# test config is the `kernel` stage of make check and is skipped here.
# A commit whose tree (but for tools/ and Documentation/) already built
# with a config's fragments is not built again: build/each-commit.ok
# remembers them.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
src=$build/linux

# NAME OUTPUT FRAGMENTS...  "prod" is the feature on without KUnit and
# lockdep, as allmodconfig (KUNIT=m) and distributions build it: code
# that only tests use must not be left dead there (Rust warnings are
# errors with CONFIG_WERROR).  It is also make bench's kernel.
configs=(
	"on $build/kbuild $here/kernel.config"
	"off $build/kbuild-off $here/kernel-off.config"
	"prod $build/kbuild-bench $here/kernel.config $here/bench/kernel.config"
)

"$here/series.py" assemble
commits=$(git -C "$src" rev-list --reverse base..series)
head=$(git -C "$src" rev-parse series)
okfile=$build/each-commit.ok
touch "$okfile"
n=0
skipped=0
restore() { git -C "$src" checkout -q -f series; }
trap restore EXIT
for c in $commits; do
	# What the kernel build sees: the tree without tools/ and
	# Documentation/ (selftests, the preload library and docs build
	# elsewhere), so commits that change only those are not rebuilt.
	tree=$(git -C "$src" ls-tree "$c" |
		grep -vP '\t(tools|Documentation)$' | sha1sum | cut -c1-40)
	for cfg in "${configs[@]}"; do
		read -r name out frags <<<"$cfg"
		[ "$name" = on ] && [ "$c" = "$head" ] && continue
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
echo "each-commit: $n build(s) of the commits (feature on and off)," \
	"$skipped unchanged since they last built"
