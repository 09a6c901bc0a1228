#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
# The debug kernel every guest ring boots (build/kbuild-debug): the gcc
# kernel's configuration, its tests (harness/kernel-test.config: KUnit,
# lockdep, kmemleak, LKDTM) and harness/kernel-debug.config (KASAN,
# PROVE_RCU, DEBUG_OBJECTS_RCU_HEAD, Rust debug assertions and overflow
# checks, fault injection), built with clang-19, as Rust with KASAN needs
# clang.  Same arguments as harness/kbuild.sh.
here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD:-$(dirname "$here")/build}
export KOUT=${KOUT_DEBUG:-$build/kbuild-debug}
export KFRAGS="$here/kernel.config $here/kernel-test.config \
$here/kernel-debug.config"
export KLLVM=${KLLVM:--19}
exec "$here/kbuild.sh" "$@"
