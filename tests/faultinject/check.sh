#!/bin/sh
# The reliability tests on the real kernel: build the fault injection
# library into BUILDDIR, boot the test bed (tests/testbed) and run there
# the fault sweep, the bad input table, the teardown soak and the guest
# misbehaviour tests against the QEMU build in BUILDDIR.
#
# Usage: tests/faultinject/check.sh [--soak CYCLES] [--sanitizers] BUILDDIR
#   --soak CYCLES  hot-plug cycles of the soak test (default 10)
#   --sanitizers   BUILDDIR was configured with --enable-sanitizers: also
#                  run vfio-edu-test and vfio-iommufd-test, make every
#                  sanitizer report fail its test, and fail if any report
#                  shows up in the output
# The L1 console log is kept in BUILDDIR/reliability/.l1/.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cycles=10
sanitizers=
while [ $# -gt 1 ]; do
    case $1 in
    --soak) cycles=$2; shift 2 ;;
    --sanitizers) sanitizers=1; shift ;;
    *) break ;;
    esac
done
obj=$(cd "${1:?usage: check.sh [--soak CYCLES] [--sanitizers] BUILDDIR}" && pwd)
tree=$(sed -n 's/^SRC_PATH=//p' "$obj/config-host.mak")

"$here/build.sh" "$tree" "$obj/tests/faultinject/libfaultinject.so"
kernel=$("$top/tests/testbed/build-kernel.sh" | tail -n 1)
results=$obj/reliability
rm -rf "$results"
mkdir -p "$results"

tests="vfio-iommufd-fault-test vfio-iommufd-input-test vfio-iommufd-soak-test
       vfio-iommufd-guest-test"
set -- --env VFIO_SOAK_CYCLES="$cycles"
if [ -n "$sanitizers" ]; then
    tests="$tests vfio-edu-test vfio-iommufd-test"
    # exitcode: not 1, which a QEMU that fails to start returns anyway.
    # verify_asan_link_order: libfaultinject.so is preloaded before libasan.
    # fast_unwind_on_malloc=0: whole stacks through glib's g_malloc().
    # VFIO_SOAK_RSS_KB: freed memory waits in ASan's quarantine (256 MiB)
    # and counts in RSS; LeakSanitizer checks for leaks instead.
    asan=detect_leaks=1:exitcode=66:verify_asan_link_order=0
    asan=$asan:fast_unwind_on_malloc=0
    set -- "$@" --env ASAN_OPTIONS=$asan \
        --env UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        --env VFIO_SOAK_RSS_KB=262144
fi

status=0
# l1_tier.py's library (tests/pylib) on QEMU's own python/qemu.
# shellcheck disable=SC2086
PYTHONPATH="$top/tests:$tree/python" \
    "$top/tests/testbed/l1_tier.py" reliability --kernel "$kernel" \
    --results "$results" --env L1_TIER=reliability "$@" \
    -- "$top/tests/testbed/l1-tests.sh" "$obj" $tests || status=$?

if [ -n "$sanitizers" ]; then
    reports=$(grep -c -e 'ERROR: AddressSanitizer' -e 'ERROR: LeakSanitizer' \
              -e 'runtime error:' "$results/.l1/console.log" || true)
    echo "reliability: $reports sanitizer report(s)"
    [ "$reports" = 0 ] || status=1
fi
exit "$status"
