#!/bin/sh
# A failing program without KTAP: only its exit code tells.
echo "about to fail"
exit 1
