#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Every commit of the series must build on its own (netdev bisects).  Build
# each commit before the head in turn, in the same output tree so that only
# what a commit changes is rebuilt, then return to the head.  The head
# itself is the `kernel` stage of make check.  A commit whose tree (and
# config fragment) already built is not built again: build/each-commit.ok
# remembers them.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
src=$build/linux

"$here/series.py" assemble
commits=$(git -C "$src" rev-list --reverse base..series)
head=$(git -C "$src" rev-parse series)
okfile=$build/each-commit.ok
touch "$okfile"
frag=$(sha1sum "$here/kernel.config" | cut -c1-12)
n=0
skipped=0
restore() { git -C "$src" checkout -q -f series; }
trap restore EXIT
for c in $commits; do
	[ "$c" = "$head" ] && continue
	key="$(git -C "$src" rev-parse "$c^{tree}") $frag"
	if grep -qxF "$key" "$okfile"; then
		skipped=$((skipped + 1))
		continue
	fi
	n=$((n + 1))
	echo "each-commit: building $(git -C "$src" log -1 --format='%h %s' "$c")"
	git -C "$src" checkout -q -f "$c"
	# --no-verify: options of the fragment may not exist yet at this point.
	"$here/kbuild.sh" --no-verify bzImage
	echo "$key" >>"$okfile"
done
echo "each-commit: $n commit(s) before the head built," \
	"$skipped unchanged since they last built"
