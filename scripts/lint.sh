#!/bin/sh
# The lint tier of `make check`: the project's own Python (pyflakes: names
# that are not defined, imports and variables left unused) and shell
# (shellcheck, errors) checked without running them, one TAP result per
# file.  A case of a slow tier that calls a function nobody defined fails
# here in seconds, not after an hour in L1.
# Usage: scripts/lint.sh
set -u

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo" || exit 1
n=0
failed=0
result() {
    n=$((n + 1))
    if [ -z "$2" ]; then
        echo "ok $n - $1"
    else
        failed=$((failed + 1))
        echo "not ok $n - $1: $(echo "$2" | tr '\n' ' ')"
    fi
}
files=$(git ls-files -- '*.py' '*.sh' 'tests/testbed/l1-init' '.ci/run')
for f in $files; do
    case $f in
    *.py) out=$(/usr/bin/python3 -m pyflakes "$f" 2>&1) ;;
    *) out=$(shellcheck -S error -f gcc "$f" 2>&1) ;;
    esac
    result "$f" "$out"
done
echo "1..$n"
echo "lint: $((n - failed)) passed, $failed failed"
[ "$failed" = 0 ]
