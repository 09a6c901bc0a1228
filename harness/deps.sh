#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Install what this project needs and is missing; a second run does nothing.
# Debian 12 packages (Rust pinned: rustc and its library source must match
# exactly to build `core`; libclang 19 for bindgen, as Linux 7.3 needs 17
# or later; clang-19/lld-19/llvm-19 for the debug kernel, as KASAN with
# Rust needs clang on rustc's own LLVM, 19.1.7), bindgen-cli from
# crates.io, virtme-ng + b4 in a venv under build/, and the base tree's
# tarball (harness/fetch-base.sh).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
rustver=1.85.0+dfsg3-1~deb12u3
bindgen_ver=0.71.1

pkgs=(
	build-essential flex bison bc cpio kmod
	libelf-dev zlib1g-dev libssl-dev libclang-19-dev clang-19 lld-19 llvm-19
	qemu-system-x86 busybox-static python3-venv python3-ply python3-git
	codespell git perl ccache libnuma-dev udev rsync
	"rustc-web=$rustver" "rust-web-src=$rustver"
	"libstd-rust-web-dev=$rustver" "libstd-rust-web-1.85=$rustver"
	"rustfmt-web=$rustver" "rust-web-clippy=$rustver"
)

sudo=
[ "$(id -u)" = 0 ] || sudo=sudo

missing=()
for p in "${pkgs[@]}"; do
	name=${p%%=*}
	want=${p#*=}
	[ "$want" = "$p" ] && want=
	have=$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null ||
		true)
	case "$have" in
	"install ok installed "*)
		[ -z "$want" ] || [ "${have##* }" = "$want" ] && continue
		;;
	esac
	missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
		--no-install-recommends --allow-downgrades "${missing[@]}" \
		>/dev/null
fi

# bindgen is first needed by a kernel build: it compiles (about 100 s)
# in the background while the base is fetched and the series checked;
# harness/toolchain.sh waits for it.
bindgen=${CARGO_HOME:-$HOME/.cargo}/bin/bindgen
pending=$build/bindgen.pending
if [ "$("$bindgen" --version 2>/dev/null)" != "bindgen $bindgen_ver" ] &&
	! { [ -f "$pending" ] && kill -0 "$(cat "$pending")" 2>/dev/null; }; then
	echo "deps: installing bindgen-cli $bindgen_ver in the background" \
		"($build/logs/bindgen.log)"
	mkdir -p "$build/logs"
	rm -f "$build/bindgen.rc"
	(
		echo "$BASHPID" >"$pending"
		rc=0
		cargo install --locked bindgen-cli --version "$bindgen_ver" \
			|| rc=$?
		echo "$rc" >"$build/bindgen.rc"
		rm -f "$pending"
	) </dev/null >"$build/logs/bindgen.log" 2>&1 &
fi

venv=$build/venv
if ! "$venv/bin/vng" --version >/dev/null 2>&1 ||
	! "$venv/bin/b4" --version >/dev/null 2>&1 ||
	! "$venv/bin/python" -c 'import docutils' 2>/dev/null; then
	echo "deps: installing virtme-ng, b4 and docutils into $venv"
	python3 -m venv "$venv"
	"$venv/bin/pip" install --quiet --disable-pip-version-check \
		virtme-ng b4 docutils
fi

"$here/fetch-base.sh" >/dev/null
"$here/build-sparse.sh"

if [ ! -f "$build/linux/Makefile" ]; then
	exit 0
fi
# (Waits for a bindgen still building in the background.)
. "$here/toolchain.sh"
# The kernel's own verdict on the toolchain, once the tree exists.
make -s -C "$build/linux" "${KMAKE_VARS[@]}" rustavailable >/dev/null || {
	echo "deps: the kernel rejects the Rust toolchain:" >&2
	make -C "$build/linux" "${KMAKE_VARS[@]}" rustavailable >&2
	exit 1
}
