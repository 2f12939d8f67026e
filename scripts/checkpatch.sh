#!/bin/sh
# Run QEMU's scripts/checkpatch.pl over every patch of the series (the
# files a patch adds are part of it), and check that each patch is signed
# off by its author.  Errors fail; warnings are shown.
# Usage: scripts/checkpatch.sh TREE
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
tree=$(cd "${1:?usage: checkpatch.sh TREE}" && pwd)
checkpatch="perl $tree/scripts/checkpatch.pl --no-tree --terse --color=never"

failed=0
checked=0
while read -r patch _; do
    [ -n "$patch" ] || continue
    checked=$((checked + 1))
    if ! (cd "$repo/patches" && $checkpatch "$patch"); then
        echo "checkpatch: FAIL patches/$patch"
        failed=$((failed + 1))
        continue
    fi
    from=$(sed -n 's/^From: //p' "$repo/patches/$patch" | head -n 1)
    if ! grep -Fqx "Signed-off-by: $from" "$repo/patches/$patch"; then
        echo "checkpatch: FAIL patches/$patch: no Signed-off-by of its author, $from"
        failed=$((failed + 1))
    fi
done <<EOS
$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$repo/patches/series")
EOS
echo "checkpatch: $((checked - failed)) passed, $failed failed"
[ "$failed" = 0 ]
