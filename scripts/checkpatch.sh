#!/bin/sh
# Run QEMU's scripts/checkpatch.pl over every patch of the series and every
# new file it introduces.  Errors fail; warnings are shown.
# Usage: scripts/checkpatch.sh TREE
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
tree=$(cd "${1:?usage: checkpatch.sh TREE}" && pwd)
checkpatch="perl $tree/scripts/checkpatch.pl --no-tree --terse --color=never"

failed=0
checked=0
while read -r patch files; do
    [ -n "$patch" ] || continue
    if ! (cd "$repo/patches" && $checkpatch "$patch"); then
        echo "checkpatch: FAIL patches/$patch"
        failed=$((failed + 1))
    fi
    checked=$((checked + 1))
    for f in $files; do
        if ! (cd "$repo" && $checkpatch -f "$f"); then
            echo "checkpatch: FAIL $f"
            failed=$((failed + 1))
        fi
        checked=$((checked + 1))
    done
done <<EOS
$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$repo/patches/series")
EOS
echo "checkpatch: $((checked - failed)) passed, $failed failed"
[ "$failed" = 0 ]
