#!/bin/sh
# A KTAP program that stops half-way: planned 3 cases, reports 1.
echo "TAP version 13"
echo "1..3"
echo "ok 1 first"
kill -SEGV $$
