#!/bin/sh
# A program that never ends, with a child, as a forking test would have.
sleep 100000 &
while :; do sleep 1; done
