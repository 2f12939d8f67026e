#!/bin/sh
# The real-kernel tier of `make check`: build (or reuse) the test kernel,
# boot L1 and run our qtests there against the QEMU build in BUILDDIR.
# The L1 console log is kept in BUILDDIR/testbed/.l1/ (printed on failure).
# Usage: tests/testbed/check.sh BUILDDIR [TEST...]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
obj=$(cd "${1:?usage: check.sh BUILDDIR [TEST...]}" && pwd)
shift
tree=$(sed -n 's/^SRC_PATH=//p' "$obj/config-host.mak")

echo "testbed: building the test kernel (cached after the first time)"
kernel=$("$here/build-kernel.sh" | tail -n 1)
results=$obj/testbed
rm -rf "$results"
mkdir -p "$results"
# The tiers' library (tests/pylib) on QEMU's own python/qemu, for
# l1_tier.py here and launcher.py in L1.
export PYTHONPATH="$(dirname "$here"):$tree/python"
exec "$here/l1_tier.py" testbed --kernel "$kernel" --results "$results" \
    --env PYTHONPATH \
    -- "$here/l1-tests.sh" "$obj" "$@"
