#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Runs in a guest under QEMU's -icount (see harness/bench.sh), where one
# guest ns is one instruction: instructions per reuseport_select_sock()
# and per whole connection.  Results are lines starting with "R ".
# Usage: guest-icount.sh ITERS CONNS REPS [MECH,MECH...]
export PATH=/usr/sbin:/usr/bin:/bin:/sbin
insmod /tests/reuserps_select_bench.ko || exit 1
exec /tests/reuserps_bench icount "$@"
