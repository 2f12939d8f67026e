#!/bin/sh
# The developer round trip: a freshly assembled tree, exported again, must
# give back the repository's patches and new files byte for byte.
# Usage: tests/scripts/roundtrip.sh
set -eu

repo=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Import into a new tree, export into a copy of the repository's files.
mkdir "$tmp/repo"
git -C "$repo" ls-files -co --exclude-standard -z |
    (cd "$repo" && xargs -0 -r cp --parents -t "$tmp/repo")
"$repo/scripts/assemble.sh" "$tmp/tree" 2>"$tmp/log" || {
    cat "$tmp/log"
    echo "roundtrip: 0 passed, 1 failed"
    exit 1
}
"$tmp/repo/scripts/export.sh" "$tmp/tree" 2>>"$tmp/log"
if diff -ru "$repo/patches" "$tmp/repo/patches" &&
   diff -ru -x .git -x build -x patches -x __pycache__ "$repo" "$tmp/repo"; then
    echo "roundtrip: 1 passed, 0 failed"
else
    echo "roundtrip: export after import changed the repository (diff above)"
    echo "roundtrip: 0 passed, 1 failed"
    exit 1
fi
