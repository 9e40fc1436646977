#!/bin/sh
# make bench-quick: the built-in quick matrix, then its summary.
set -e
cd "$(dirname "$0")/.."
dir=$(./tools/qmigrate bench bench/scenarios/quick.conf)
echo "results in $dir:"
ls "$dir"
cat "$dir/summary.md"
