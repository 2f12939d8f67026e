#!/bin/sh
# Write the history of the assembled tree back into the repository: one
# patch per commit after tag "headers" into patches/ and patches/series,
# and every file the series adds back at its QEMU path in the repository.
#
# A file that the series adds is exported whole, never as part of a
# patch; it enters the tree with the commit that adds it.
#
# Usage: scripts/export.sh TREE
set -eu

die() {
    echo "export: $*" >&2
    exit 1
}

repo=$(cd "$(dirname "$0")/.." && pwd)
tree=${1:?usage: export.sh TREE}
[ -d "$tree/.git" ] || die "$tree is not an assembled tree; run 'make tree' first"
# A fixed abbreviation keeps the index lines of the patches independent
# of the size of the tree they were exported from.
git_tree() {
    git -C "$tree" -c core.abbrev=12 "$@"
}
git_tree rev-parse -q --verify headers >/dev/null ||
    die "$tree has no 'headers' tag"
[ -z "$(git_tree status --porcelain --untracked-files=no)" ] ||
    die "$tree has uncommitted changes; commit them first"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/patches"

# Files the series adds, as they are at its end.
git_tree diff --name-only --diff-filter=A headers HEAD > "$tmp/new"
excludes=$(sed 's/^/:(exclude)/' "$tmp/new")

old_new_files=$(sed -e 's/#.*//' "$repo/patches/series" 2>/dev/null |
    awk '{ for (i = 2; i <= NF; i++) print $i }')

{
    echo "# QEMU 7.2 iommufd series, applied in order by scripts/assemble.sh."
    echo "# patch file                              new files it introduces"
} > "$tmp/series"

n=0
for c in $(git_tree rev-list --reverse headers..HEAD); do
    n=$((n + 1))
    subject=$(git_tree log -1 --format=%s "$c")
    slug=$(echo "$subject" | tr -c 'A-Za-z0-9\n' '-' | tr -s '-' |
        sed -e 's/^-//' -e 's/-$//' | cut -c1-52 | sed 's/-$//')
    name=$(printf '%04d-%s.patch' "$n" "$slug")
    # shellcheck disable=SC2086
    # A range, not -1: with a pathspec, -1 would pick the last commit that
    # touches those paths, an earlier one if this commit does not.
    git_tree format-patch --stdout --zero-commit --no-signature \
        --subject-prefix=PATCH "$c^..$c" -- . $excludes > "$tmp/patches/$name"
    if [ ! -s "$tmp/patches/$name" ]; then
        # The commit only adds new files: keep its message, with no diff.
        git_tree format-patch -1 --stdout --zero-commit --no-signature \
            --subject-prefix=PATCH --no-stat "$c" |
            sed '/^diff --git /,$d' > "$tmp/patches/$name"
    fi
    added=$(git_tree diff-tree -r --no-commit-id --name-only --diff-filter=A "$c" |
        grep -Fx -f "$tmp/new" | tr '\n' ' ' | sed 's/ $//' || true)
    if [ -n "$added" ]; then
        printf '%-40s %s\n' "$name" "$added" >> "$tmp/series"
    else
        echo "$name" >> "$tmp/series"
    fi
done

rm -f "$repo"/patches/*.patch
cp "$tmp"/patches/*.patch "$repo/patches/" 2>/dev/null || true
cp "$tmp/series" "$repo/patches/series"
while read -r f; do
    mkdir -p "$repo/$(dirname "$f")"
    git_tree show "HEAD:$f" > "$repo/$f"
done < "$tmp/new"
for f in $old_new_files; do
    grep -Fxq "$f" "$tmp/new" || { rm -f "$repo/$f"; echo "export: removed $f" >&2; }
done
# The tree now holds what the repository says: no need to reassemble.
"$repo/scripts/assemble.sh" "$tree" --stamp
echo "export: $n patches, $(wc -l < "$tmp/new") new files written to $repo" >&2
