#!/bin/sh
# A program that makes the kernel WARN (LKDTM) and still exits 0.
echo WARNING >/sys/kernel/debug/provoke-crash/DIRECT
exit 0
