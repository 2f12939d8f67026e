#!/bin/sh
# Inside L1: run our real-kernel qtests against the QEMU build in BUILDDIR
# and count their TAP results.  Nothing may be skipped here: the test bed
# has the devices, so a skip would mean a case did not run.
# Usage (through run-l1.sh): tests/testbed/l1-tests.sh BUILDDIR [TEST...]
# L1_TIER names the tier in its lines (default testbed).
set -u

# A TEST is a qtest in BUILDDIR/tests/qtest, or "libvirt" for
# tests/libvirt/launcher.py (which plays libvirt's part).
repo=$(cd "$(dirname "$0")/../.." && pwd)
obj=$(cd "${1:?usage: l1-tests.sh BUILDDIR [TEST...]}" && pwd)
shift
[ $# -gt 0 ] ||
    set -- vfio-edu-test vfio-iommufd-test vfio-iommufd-map-test libvirt
export QTEST_QEMU_BINARY="$obj/qemu-system-x86_64"

tier=${L1_TIER:-testbed}
passed=0 failed=0
for t in "$@"; do
    echo "=== $tier: $t"
    out=$(mktemp)
    if [ "$t" = libvirt ]; then
        "$repo/tests/libvirt/launcher.py" --qemu "$QTEST_QEMU_BINARY" \
            > "$out" 2>&1
    else
        (cd "$obj" && "./tests/qtest/$t" --tap -k) > "$out" 2>&1
    fi
    rc=$?
    grep -v '^# starting QEMU' "$out"
    ok=$(grep -c '^ok ' "$out")
    skip=$(grep -c '^ok .*# SKIP' "$out")
    bad=$(grep -c '^not ok ' "$out")
    if [ "$rc" != 0 ] && [ "$bad" = 0 ]; then
        echo "$tier: $t exited with status $rc"
        bad=1
    fi
    passed=$((passed + ok - skip))
    failed=$((failed + bad + skip))
    [ "$skip" = 0 ] || echo "$tier: $t skipped $skip case(s), which must run here"
    rm -f "$out"
done
echo "$tier: $passed passed, $failed failed"
[ "$failed" = 0 ]
