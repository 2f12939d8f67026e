#!/bin/sh
# The watchdog tier of `make check`: run-l1.sh's watchdog and l1_tier.py
# against an L1 whose vCPUs the test stops (tests/testbed/watchdog_test.py).
# Usage: tests/testbed/check-watchdog.sh BUILDDIR
set -eu

here=$(cd "$(dirname "$0")" && pwd)
obj=$(cd "${1:?usage: check-watchdog.sh BUILDDIR}" && pwd)
tree=$(sed -n 's/^SRC_PATH=//p' "$obj/config-host.mak")

kernel=$("$here/build-kernel.sh" | tail -n 1)
results=$obj/watchdog
rm -rf "$results"
mkdir -p "$results"
PYTHONPATH=$(dirname "$here"):$tree/python${PYTHONPATH:+:$PYTHONPATH} \
    exec python3 "$here/watchdog_test.py" --kernel "$kernel" --results "$results"
