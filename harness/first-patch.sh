#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The series' first two commits stand alone: the SO_INCOMING_CPU index
# and its selftest, applied to the base without the rest.  Builds that
# tree (a worktree of build/linux at the second commit, build/linux-first)
# with the gcc kernel's configuration without Rust (so no SO_REUSERPS
# code at all), in build/kbuild-first, and the tests it must pass: the
# upstream reuseport family and so_incoming_cpu_index, from that tree.
# Writes build/tests-first/first.manifest for harness/guest.py.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
src=$build/linux
wt=$build/linux-first
out=$build/tests-first
hdr=$build/kbuild/usr/include

# The first two commits must be the index and its test.
mapfile -t first < <(git -C "$src" rev-list --reverse base..series | head -2)
c1=${first[0]:-}
c2=${first[1]:-}
s1=$(git -C "$src" log -1 --format=%s "$c1")
s2=$(git -C "$src" log -1 --format=%s "$c2")
case "$s1 / $s2" in
"net: reuseport: "*SO_INCOMING_CPU*" / selftests: net: "*SO_INCOMING_CPU*) ;;
*)
	echo "first-patch: the series does not start with the index" \
		"and its test: '$s1', '$s2'" >&2
	exit 1
	;;
esac
if [ ! -f "$wt/Makefile" ]; then
	git -C "$src" worktree prune
	git -C "$src" worktree add -q --detach "$wt" "$c2"
else
	git -C "$wt" checkout -q -f --detach "$c2"
fi
echo "first-patch: $(git -C "$wt" log --format='%h %s' base..HEAD |
	tr '\n' ';')"
# Nothing of SO_REUSERPS is in this tree: its uapi header is not either.
if [ -e "$wt/include/uapi/linux/reuserps.h" ]; then
	echo "first-patch: the tree has SO_REUSERPS's uapi" >&2
	exit 1
fi
KSRC=$wt KOUT=$build/kbuild-first \
	KFRAGS="$here/kernel.config $here/kernel-norps.config" \
	"$here/kbuild.sh" --no-verify bzImage

rm -rf "$out"
mkdir -p "$out"
: >"$out/first.manifest"
"$here/upstream-tests.sh" "$wt" "$hdr" "$out" "$out/first.manifest"
echo "first-patch: $(wc -l <"$out/first.manifest") program(s)"
