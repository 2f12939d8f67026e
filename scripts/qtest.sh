#!/bin/sh
# Run the qtest-x86_64 suite of a built tree, but the tests named after
# BUILDDIR (each left out for a reason given where the caller lists it).
# Usage: scripts/qtest.sh BUILDDIR [EXCLUDED_TEST...]
set -eu

obj=${1:?usage: qtest.sh BUILDDIR [EXCLUDED_TEST...]}
shift
# `meson test --list` prints "project:suites / name" per test.
tests=$(meson test -C "$obj" --no-rebuild --list --suite qtest-x86_64 2>/dev/null |
    sed -n 's|^.* / \(qtest-x86_64/.*\)$|\1|p')
for ex in "$@"; do
    tests=$(echo "$tests" | grep -v -x "qtest-x86_64/$ex" || true)
    echo "qtest: leaving out $ex"
done
[ -n "$tests" ] || { echo "qtest: no qtest-x86_64 tests found in $obj" >&2; exit 1; }
# QTEST_SKIP: test case paths to skip (GLib's -s; other tests ignore it).
skip=""
for case in ${QTEST_SKIP:-}; do
    skip="$skip -s $case"
    echo "qtest: skipping case $case"
done
# shellcheck disable=SC2086
# The timeouts are QEMU's own (30 s, migration-test 150 s); on a busy
# 2-core machine migration-test alone needs 120 s, so give them room.
exec meson test -C "$obj" --no-rebuild --print-errorlogs \
    --timeout-multiplier 3 --num-processes "$(nproc)" ${skip:+--test-args "$skip"} $tests
