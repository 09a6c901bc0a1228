#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# Static checks of what the series changes, against the base:
#  - sparse (C=2, with a sparse that 7.3 accepts: harness/build-sparse.sh)
#    and W=1 on every C file the series adds or changes that the gcc
#    kernel builds; a warning the base does not have fails;
#  - clippy on the Rust files the series adds, with and without KUnit:
#    any warning fails;
#  - kernel-doc -Wall on the C files and headers the series adds: any
#    warning fails.
# The files are those the gcc kernel builds (build/kbuild, after the
# `kernel` stage); they are checked in build/kbuild-static, a W=1 copy of
# that config, so that the flags do not flip back and forth in
# build/kbuild (W=1 reaches bindgen's flags: the rust/ crates would be
# rebuilt twice).  The base's warnings come from a worktree of the base
# built the same way in build/kbuild-base, once per fragment and file list.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${BUILD:-$repo/build}
src=$build/linux
built=$build/kbuild
out=$build/kbuild-static
sd=$build/static
mkdir -p "$sd"

"$here/build-sparse.sh"
. "$here/toolchain.sh"
sparse=$build/tools/bin/sparse

[ -f "$built/vmlinux" ] || {
	echo "static-check: no kernel built in $built (run harness/kbuild.sh)" >&2
	exit 1
}

changed=$(git -C "$src" diff --name-only --diff-filter=M base series -- '*.c')
added=$(git -C "$src" diff --name-only --diff-filter=A base series -- \
	'*.c' '*.h' ':!tools/')
objs=()
base_objs=()
for f in $changed $added; do
	case "$f" in *.c) ;; *) continue ;; esac
	o=${f%.c}.o
	# Only what the gcc kernel builds.
	[ -f "$built/$(dirname "$o")/.$(basename "$o").cmd" ] || continue
	objs+=("$o")
	grep -qxF "$f" <<<"$changed" && base_objs+=("$o")
done

# Warnings as "file: warning: text", without line and column numbers, so
# that the same warning on a shifted line matches.
warnings() { # SRC OUT OBJS...
	local s=$1 o=$2
	shift 2
	# -Wno-error: CONFIG_WERROR would stop at the first W=1 warning.
	make -k -C "$s" O="$o" "${KMAKE_VARS[@]}" C=2 CHECK="$sparse" W=1 \
		KCFLAGS=-Wno-error "$@" 2>&1 | tee "$o/static-check.log" |
		sed -n -E 's/^([^: ]+):[0-9]+:([0-9]+:)? (warning|error): /\1: \3: /p' |
		sed -E "s|^$s/||; s|^(\.\./)+||" | sort
}

echo "static-check: sparse and W=1 on ${objs[*]}"
KOUT=$out "$here/kbuild.sh" prepare >/dev/null
warnings "$src" "$out" "${objs[@]}" >"$sd/series.txt"
grep -q "not available or not up to date" "$out/static-check.log" && {
	echo "static-check: the kernel refused $sparse" >&2
	exit 1
}

key=$( (cat "$here/kernel.config"; echo "${base_objs[*]}") | sha1sum |
	cut -c1-12)
base_txt=$sd/base-$key.txt
if [ ! -f "$base_txt" ] && [ ${#base_objs[@]} -gt 0 ]; then
	bsrc=$build/linux-base
	if [ ! -d "$bsrc" ]; then
		git -C "$src" worktree prune
		git -C "$src" worktree add -q --detach "$bsrc" base
	fi
	echo "static-check: the base's warnings (build/kbuild-base, once)"
	# Without Rust, which these files do not depend on: a cheaper prepare.
	printf '# CONFIG_RUST is not set\n' >"$sd/no-rust.config"
	KSRC=$bsrc KOUT=$build/kbuild-base \
		KFRAGS="$here/kernel.config $sd/no-rust.config" \
		"$here/kbuild.sh" --no-verify prepare >/dev/null
	warnings "$bsrc" "$build/kbuild-base" "${base_objs[@]}" >"$base_txt.new"
	mv "$base_txt.new" "$base_txt"
fi
[ -f "$base_txt" ] || : >"$base_txt"
new=$(comm -13 "$base_txt" "$sd/series.txt")
fail=0
if [ -n "$new" ]; then
	echo "static-check: warnings the base does not have:"
	echo "$new" | sed 's/^/  /'
	fail=1
else
	echo "static-check: sparse and W=1 add no warning" \
		"($(wc -l <"$sd/series.txt") in these files, as at the base)"
fi

# The Rust the series adds, under the kernel's clippy lints: each object's
# own rustc command, as kbuild saved it, run by the pinned clippy-driver
# into a scratch folder (what make CLIPPY=1 does, without rebuilding the
# rust/ crates of a tree with clippy and back).  In the gcc tree and in
# the trees with the KUnit suites (the debug kernel, series-check's "on").
clippy_one() { # OUT OBJ
	local o=$1 obj=$2 cmdf tmp cmd rc=0
	cmdf=$o/$(dirname "$obj")/.$(basename "$obj").cmd
	tmp=$(mktemp -d)
	cmd=$(sed -n "s|^savedcmd_$obj := ||p" "$cmdf")
	cmd=${cmd%%;*}
	cmd=$(sed -E "s| /usr/bin/rustc | $CLIPPY_DRIVER |;
		s|--out-dir [^ ]+|--out-dir $tmp|; s|--emit=[^ ]+||g" <<<"$cmd")
	case "$cmd" in
	*" $CLIPPY_DRIVER "*) ;;
	*)
		echo "no rustc command for $obj in $cmdf"
		rm -rf "$tmp"
		return 1
		;;
	esac
	# As the kernel Makefile exports them: -Z options, and the kernel's
	# .clippy.toml (msrv, disallowed macros and methods).
	(cd "$o" && export RUSTC_BOOTSTRAP=1 CLIPPY_CONF_DIR="$src" &&
		eval "$cmd --emit=metadata=$tmp/out.rmeta") 2>&1 || rc=$?
	rm -rf "$tmp"
	return "$rc"
}
CLIPPY_DRIVER=${CLIPPY_DRIVER:-/usr/bin/clippy-driver}
rs=$(git -C "$src" diff --name-only --diff-filter=A base series -- '*.rs')
linted=()
cfail=0
head_tree=$(kernel_tree "$src" series)
for o in "$built" "$build/kbuild-test" "$build/kbuild-debug"; do
	[ -f "$o/vmlinux" ] || continue
	# Only a tree built from the head: the others' rust/ crates and
	# bindings are another commit's.  The gcc tree must be one.
	if [ "$(cat "$o/.source-tree" 2>/dev/null)" != "$head_tree" ]; then
		echo "static-check: clippy: $o is not built from the head"
		[ "$o" != "$built" ] || cfail=1
		continue
	fi
	for f in $rs; do
		obj=${f%.rs}.o
		[ -f "$o/$(dirname "$obj")/.$(basename "$obj").cmd" ] || continue
		rc=0
		log=$(clippy_one "$o" "$obj") || rc=$?
		linted+=("$(basename "$o"):$obj")
		if [ "$rc" != 0 ] || grep -qE '^(warning|error)' <<<"$log"; then
			echo "static-check: clippy on $obj in $o:"
			sed 's/^/  /' <<<"$log"
			cfail=1
		fi
	done
done
if [ "$cfail" = 1 ]; then
	fail=1
elif [ ${#linted[@]} -gt 0 ]; then
	echo "static-check: clippy clean on ${linted[*]}"
fi

docs=()
for f in $added; do
	case "$f" in *.c | *.h) docs+=("$f") ;; esac
done
kd=$(cd "$src" && python3 scripts/kernel-doc -none -Wall "${docs[@]}" 2>&1 || true)
if [ -n "$kd" ]; then
	echo "static-check: kernel-doc -Wall on the new files:"
	echo "$kd" | sed 's/^/  /'
	fail=1
else
	echo "static-check: kernel-doc -Wall clean on ${docs[*]}"
fi
exit "$fail"
