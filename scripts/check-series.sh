#!/bin/sh
# Build every patch of the series on its own: each commit of the
# assembled tree after tag "headers", in order, in a separate worktree and
# build directory (incremental from one commit to the next).
# Usage: scripts/check-series.sh TREE WORKDIR
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
tree=$(cd "${1:?usage: check-series.sh TREE WORKDIR}" && pwd)
work=${2:?usage: check-series.sh TREE WORKDIR}
mkdir -p "$work"
work=$(cd "$work" && pwd)

if [ ! -e "$work/src/.git" ]; then
    rm -rf "$work/src"
    git -C "$tree" worktree prune
    git -C "$tree" worktree add -q --detach "$work/src" headers
fi

passed=0
failed=0
for c in $(git -C "$tree" rev-list --reverse headers..HEAD); do
    subject=$(git -C "$tree" log -1 --format=%s "$c")
    git -C "$work/src" checkout -q --detach "$c"
    if "$repo/scripts/build.sh" "$work/src" "$work/obj" > "$work/build.log" 2>&1; then
        echo "ok: $subject"
        passed=$((passed + 1))
    else
        tail -n 20 "$work/build.log"
        echo "FAIL: $subject (log: $work/build.log)"
        failed=$((failed + 1))
    fi
done
echo "series: $passed passed, $failed failed"
[ "$failed" = 0 ]
