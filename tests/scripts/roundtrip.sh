#!/bin/sh
# The developer round trip and the reviewer's view of the series:
# 1. a freshly assembled tree, exported again, gives back the repository
#    byte for byte;
# 2. `git am` of patches/series on the base (tag "headers": QEMU and the
#    imported kernel headers) gives exactly the tree that assembly built.
# Usage: tests/scripts/roundtrip.sh
set -eu

repo=$(cd "$(dirname "$0")/../.." && pwd)
# No background "git gc --auto" in the trees below while they are removed.
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=gc.auto GIT_CONFIG_VALUE_0=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# Import into a new tree, export into a copy of the repository's files.
mkdir "$tmp/repo"
git -C "$repo" ls-files -co --exclude-standard -z |
    (cd "$repo" && xargs -0 -r cp --parents -t "$tmp/repo")
"$repo/scripts/assemble.sh" "$tmp/tree" 2>"$tmp/log" || {
    cat "$tmp/log"
    echo "roundtrip: assembly failed"
    echo "roundtrip: 0 passed, 2 failed"
    exit 1
}
"$tmp/repo/scripts/export.sh" "$tmp/tree" 2>>"$tmp/log"
if diff -ru "$repo/patches" "$tmp/repo/patches" &&
   diff -ru -x .git -x build -x patches -x __pycache__ "$repo" "$tmp/repo"; then
    passed=$((passed + 1))
else
    echo "roundtrip: export after import changed the repository (diff above)"
    failed=$((failed + 1))
fi

# What a maintainer gets from the mails.
git -C "$tmp/tree" worktree add -q --detach "$tmp/am" headers
sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$repo/patches/series" |
    while read -r patch _; do echo "$repo/patches/$patch"; done > "$tmp/mails"
if GIT_COMMITTER_NAME=roundtrip GIT_COMMITTER_EMAIL=roundtrip@invalid \
       xargs git -C "$tmp/am" am -q < "$tmp/mails" >"$tmp/am.log" 2>&1 &&
   [ "$(git -C "$tmp/am" rev-parse 'HEAD^{tree}')" = \
     "$(git -C "$tmp/tree" rev-parse 'HEAD^{tree}')" ]; then
    passed=$((passed + 1))
else
    cat "$tmp/am.log"
    git -C "$tmp/am" diff --stat HEAD "$(git -C "$tmp/tree" rev-parse HEAD)" 2>/dev/null || true
    echo "roundtrip: git am of the series on the base differs from the assembled tree"
    failed=$((failed + 1))
fi

echo "roundtrip: $passed passed, $failed failed"
[ "$failed" = 0 ]
