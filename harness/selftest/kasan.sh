#!/bin/sh
# A program that reads freed memory in the kernel (LKDTM) and exits 0:
# the debug kernel's KASAN must report it.
echo READ_AFTER_FREE >/sys/kernel/debug/provoke-crash/DIRECT
exit 0
