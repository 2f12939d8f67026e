#!/bin/bash
# Run every test tier of `make check` and close with one summary line.
# Usage: scripts/check.sh BUILDDIR TIER...
#   tiers: checkpatch roundtrip qtest testbed watchdog reliability guest
#          libvirt
# QTEST_EXCLUDE lists qtest-x86_64 tests to leave out (see the Makefile).
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
obj=${1:?usage: check.sh BUILDDIR TIER...}
shift
passed=0
failed=0
skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Count a tier from the lines its runner closes with.
count() {
    local p f s
    p=$(sed -n 's/^[A-Za-z-]*:\{0,1\} *\([0-9]\+\) passed, \([0-9]\+\) failed.*/\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^[A-Za-z-]*:\{0,1\} *\([0-9]\+\) passed, \([0-9]\+\) failed.*/\2/p' "$log" | tail -n 1)
    s=$(sed -n 's/.* passed, [0-9]\+ failed, \([0-9]\+\) skipped.*/\1/p' "$log" | tail -n 1)
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-1}))
    skipped=$((skipped + ${s:-0}))
}

for tier in "$@"; do
    echo "=== check: $tier"
    case "$tier" in
    checkpatch)
        "$repo/scripts/checkpatch.sh" "$repo/build/qemu" 2>&1 | tee "$log"
        ;;
    roundtrip)
        "$repo/tests/scripts/roundtrip.sh" 2>&1 | tee "$log"
        ;;
    qtest)
        # shellcheck disable=SC2086
        "$repo/scripts/qtest.sh" "$obj" ${QTEST_EXCLUDE:-} 2>&1 | tee "$log"
        # meson test closes with "Ok: N", "Fail: N", "Skipped: N"...
        ok=$(sed -n 's/^Ok: *\([0-9]\+\).*/\1/p' "$log")
        bad=$(sed -n 's/^\(Fail\|Timeout\|Unexpected Pass\): *\([0-9]\+\).*/\2/p' "$log" |
            awk '{ n += $1 } END { print n + 0 }')
        skip=$(sed -n 's/^Skipped: *\([0-9]\+\).*/\1/p' "$log")
        [ -n "$ok" ] || bad=$((bad + 1))
        echo "qtest: ${ok:-0} passed, $bad failed, ${skip:-0} skipped" | tee "$log"
        ;;
    testbed)
        "$repo/tests/testbed/check.sh" "$obj" 2>&1 | tee "$log"
        ;;
    watchdog)
        "$repo/tests/testbed/check-watchdog.sh" "$obj" 2>&1 | tee "$log"
        ;;
    reliability)
        "$repo/tests/faultinject/check.sh" "$obj" 2>&1 | tee "$log"
        ;;
    guest)
        "$repo/tests/guest/check.sh" "$obj" 2>&1 | tee "$log"
        ;;
    libvirt)
        "$repo/tests/libvirt/check.sh" "$obj" 2>&1 | tee "$log"
        ;;
    *)
        echo "check: unknown tier $tier" > "$log"
        ;;
    esac
    count
done

echo "check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
