#!/bin/sh
# The developer round trip: exporting a freshly assembled tree must give
# back the repository's patches and new files byte for byte.
# Usage: tests/scripts/roundtrip.sh TREE
set -eu

repo=$(cd "$(dirname "$0")/../.." && pwd)
tree=${1:?usage: roundtrip.sh TREE}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Export into a copy of the repository's files, then compare the two.
git -C "$repo" ls-files -co --exclude-standard -z |
    (cd "$repo" && xargs -0 -r cp --parents -t "$tmp")
"$tmp/scripts/export.sh" "$tree"
if diff -ru -x .git -x build "$repo" "$tmp"; then
    echo "roundtrip: 1 passed, 0 failed"
else
    echo "roundtrip: export after import changed the repository (diff above)"
    echo "roundtrip: 0 passed, 1 failed"
    exit 1
fi
