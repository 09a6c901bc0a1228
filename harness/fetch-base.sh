#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Fetch the base tree's tarball: Debian trixie-backports' linux-source-7.3
# at one exact version, through a private apt configuration (the machine's
# own apt sources are not touched), unpacked with dpkg-deb -x.  Prints the
# tarball's path.  Done once: a second run only prints the path.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
pkg=linux-source-7.3
ver=${BASE_VERSION:-7.3.4-1~bpo13+1}
suite=trixie-backports
d=$build/base
tarball=$d/x/usr/src/$pkg.tar.xz

if [ -f "$tarball" ] && [ "$(cat "$d/version" 2>/dev/null)" = "$ver" ]; then
	echo "$tarball"
	exit 0
fi

. "$here/apt-private.sh"
mirror=$(debian_mirror)
rm -rf "$d"
echo "fetch-base: $pkg=$ver from $mirror $suite" >&2
apt_private "$d" "deb $mirror $suite main" || {
	echo "fetch-base: cannot read $suite from $mirror" >&2
	exit 1
}
(cd "$d" && apt-get "${APT_PRIVATE[@]}" -qq download "$pkg=$ver") >&2 || {
	echo "fetch-base: $pkg version $ver is not available from" \
		"$mirror $suite (gone from the pool?); the series is based on" \
		"exactly that version" >&2
	exit 1
}
dpkg-deb -x "$d"/"$pkg"_*.deb "$d/x"
[ -f "$tarball" ] || {
	echo "fetch-base: $pkg $ver has no $tarball" >&2
	exit 1
}
rm -rf "$d"/*.deb "$d/lists" "$d/cache"
echo "$ver" >"$d/version"
echo "$tarball"
