#!/bin/bash
# Run every test tier of `make check` and close with one summary line.
# Usage: scripts/check.sh BUILDDIR TIER...
#   tiers: lint checkpatch roundtrip parity qtest testbed watchdog
#          reliability guest libvirt
# QTEST_EXCLUDE lists qtest-x86_64 tests to leave out (see the Makefile).
# PKG_DEBS: the directory of the packages of BUILDDIR (make deb), which the
# parity tier compares with Debian's QEMU and the libvirt tier installs.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
obj=${1:?usage: check.sh BUILDDIR TIER...}
shift
passed=0
failed=0
skipped=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# A tier's TAP (tests/pylib/tap.py's format, and GLib's of the qtests it
# runs in L1): "PASSED FAILED SKIPPED FOUND".  Each stream has a plan,
# 1..N, first or last; results a plan does not account for, or that a plan
# promised and never came, count as failed, and so does a stream without
# a plan.  FOUND is 1 if there was any TAP.
tap_count() {
    awk '
    function close_stream() {
        if (plan < 0 && res > 0)
            bad++
        else if (plan >= 0 && res != plan)
            bad += res > plan ? res - plan : plan - res
        res = 0
        plan = -1
    }
    BEGIN { plan = -1 }
    /^1\.\.[0-9]+/ {
        n = substr($1, 4) + 0
        if (plan < 0 && res > 0) {
            plan = n
            close_stream()
        } else {
            close_stream()
            plan = n
            found = 1
        }
        next
    }
    # A stream that starts again at 1 without a plan between (a tier run
    # again in a new L1) is a new stream.
    /^(not )?ok 1([^0-9]|$)/ { if (res > 0) close_stream() }
    /^ok [0-9]+/ { res++; found = 1; if ($0 ~ /# *SKIP/) skip++; else pass++; next }
    /^not ok [0-9]+/ { res++; found = 1; fail++; next }
    END { close_stream(); print pass + 0, fail + bad, skip + 0, found + 0 }
    ' "$1"
}

# Count a tier: by its TAP, checked against the line it closes with
# ("NAME: N passed, M failed[, K skipped]"); by that line alone where a
# tier has no TAP (checkpatch, roundtrip, meson's qtest summary).
count() {
    local p f s tp tf ts found
    p=$(sed -n 's/^[A-Za-z-]*:\{0,1\} *\([0-9]\+\) passed, \([0-9]\+\) failed.*/\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^[A-Za-z-]*:\{0,1\} *\([0-9]\+\) passed, \([0-9]\+\) failed.*/\2/p' "$log" | tail -n 1)
    s=$(sed -n 's/.* passed, [0-9]\+ failed, \([0-9]\+\) skipped.*/\1/p' "$log" | tail -n 1)
    read -r tp tf ts found <<EOF
$(tap_count "$log")
EOF
    if [ "$found" = 1 ]; then
        if [ "$tp" != "${p:-}" ] || [ "$tf" != "${f:-}" ]; then
            echo "check: $tier: its TAP counts $tp passed, $tf failed; its" \
                "closing line ${p:-(none)} passed, ${f:-(none)} failed"
            # A tier that miscounts has failed: at least one failure.
            tf=$(( tf > ${f:-0} ? tf : ${f:-0} ))
            [ "$tf" -gt 0 ] || tf=1
        fi
        p=$tp f=$tf s=$ts
    fi
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-1}))
    skipped=$((skipped + ${s:-0}))
}

for tier in "$@"; do
    echo "=== check: $tier"
    case "$tier" in
    lint)
        "$repo/scripts/lint.sh" 2>&1 | tee "$log"
        ;;
    checkpatch)
        "$repo/scripts/checkpatch.sh" "$repo/build/qemu" 2>&1 | tee "$log"
        ;;
    roundtrip)
        "$repo/tests/scripts/roundtrip.sh" 2>&1 | tee "$log"
        ;;
    parity)
        "$repo/tests/parity/check.sh" "$obj" "${PKG_DEBS:-$repo/build/deb}" 2>&1 | tee "$log"
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
        deb=$(ls "${PKG_DEBS:-$repo/build/deb}"/qemu-iommufd_*.deb 2>/dev/null | sort -V | tail -n 1)
        "$repo/tests/libvirt/check.sh" "$obj" ${deb:+--deb "$deb"} 2>&1 | tee "$log"
        ;;
    *)
        echo "check: unknown tier $tier" > "$log"
        ;;
    esac
    count
done

echo "check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
