#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Linux 7.3's C=1 needs a sparse that knows __typeof_unqual__
# (scripts/checker-valid.sh); bookworm's 0.6.4 does not, and the kernel
# then skips the check with only a warning.  Build sparse from Debian's
# source package of one exact version (sid's 0.6.5~rc1, whose binary
# package needs a newer libc) into build/tools/bin.  Done once.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
ver=0.6.5~rc1-2
d=$build/tools/sparse-src
bin=$build/tools/bin/sparse

if [ -x "$bin" ] && [ "$(cat "$d/version" 2>/dev/null)" = "$ver" ]; then
	exit 0
fi
. "$here/apt-private.sh"
rm -rf "$d"
echo "build-sparse: sparse $ver (source) from Debian sid" >&2
apt_private "$d" "deb-src $(debian_mirror) sid main"
(cd "$d" && apt-get "${APT_PRIVATE[@]}" -qq source --download-only \
	"sparse=$ver") >&2 || {
	echo "build-sparse: source of sparse $ver not available" >&2
	exit 1
}
tar -xzf "$d"/sparse_*.orig.tar.gz -C "$d"
make -s -C "$d"/sparse-*/ HAVE_LLVM=no HAVE_GTK=no HAVE_SQLITE=no \
	HAVE_LIBXML=no sparse >&2
mkdir -p "$(dirname "$bin")"
cp "$d"/sparse-*/sparse "$bin"
rm -rf "$d"/lists "$d"/cache
echo "$ver" >"$d/version"
