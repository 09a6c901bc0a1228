#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Sizes of the structures the series could grow, with the series and at
# the base, in the gcc kernel's configuration (build/kbuild, no lockdep):
# harness/sizes/sizes.c is built as an external module of build/kbuild,
# then compiled again with the same command against the base tree's
# headers (build/linux-base).
# The sizes are those of objects of each type (nm -S): pahole is not
# needed, and no debug info.
#
# Usage: harness/struct-sizes.sh [--check]
# --check fails if a socket structure or the bind bucket (any but struct
# sock_reuseport, which holds the group's match table) differs from the
# base's: sockets that do not use SO_REUSERPS must not pay for it in
# memory.
set -euo pipefail
check=0
[ "${1:-}" = --check ] && check=1

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
kout=$build/kbuild
work=$build/sizes
. "$here/toolchain.sh"

[ -f "$kout/vmlinux" ] || {
	echo "struct-sizes: no kernel in $kout (make kernel)" >&2
	exit 1
}
if [ ! -f "$build/linux-base/Makefile" ]; then
	# A worktree of the base, as harness/static-check.sh makes it.
	"$here/series.py" assemble >/dev/null
	git -C "$build/linux" worktree prune
	git -C "$build/linux" worktree add -q --detach "$build/linux-base" base
fi
rm -rf "$work"
mkdir -p "$work"
cp "$here/sizes/sizes.c" "$here/sizes/Kbuild" "$work/"
make -s -C "$build/linux" O="$kout" "${KMAKE_VARS[@]}" M="$work" modules \
	>"$work/build.log" 2>&1 || {
	cat "$work/build.log" >&2
	exit 1
}
cmd=$(sed -n 's/^savedcmd_sizes.o := //p' "$work/.sizes.o.cmd")
cmd=${cmd#ccache }
cmd=${cmd//"$build/linux/"/"$build/linux-base/"}
cmd=$(sed -E 's/-Wp,-MMD,[^ ]+//; s| -o [^ ]*sizes\.o | -o '"$work"'/base.o |' \
	<<<"$cmd")
(cd "$work" && eval "$cmd")

sizes() { nm -S "$1" | awk '$4 ~ /^size_/ { print substr($4, 6), $2 }'; }
grown=0
printf '%-32s %6s %6s\n' "" base series
while read -r name base series; do
	base=$((16#$base))
	series=$((16#$series))
	printf '%-32s %6d %6d\n' "struct $name" "$base" "$series"
	[ "$name" = sock_reuseport ] || [ "$base" = "$series" ] || grown=1
done < <(join <(sizes "$work/base.o" | sort) <(sizes "$work/sizes.o" | sort))
if [ "$check" = 1 ] && [ "$grown" = 1 ]; then
	echo "struct-sizes: a socket structure grew" >&2
	exit 1
fi
