#!/bin/sh
# A well-behaved program: two KTAP cases that pass.
echo "TAP version 13"
echo "1..2"
echo "ok 1 first"
echo "ok 2 second"
