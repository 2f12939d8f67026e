#!/bin/sh
# Write the history of the assembled tree back into the repository: one
# patch per commit after tag "headers" into patches/, and patches/series.
#
# A patch holds all of its commit, the files it adds included, as
# Debian's debian/patches do: a new file enters as the commit that adds
# it left it, and later commits change it with ordinary diffs.  The
# second column of patches/series names the files each patch adds.
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
    git -C "$tree" -c core.abbrev=12 -c diff.renames=false "$@"
}
git_tree rev-parse -q --verify headers >/dev/null ||
    die "$tree has no 'headers' tag"
[ -z "$(git_tree status --porcelain --untracked-files=no)" ] ||
    die "$tree has uncommitted changes; commit them first"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/patches"

{
    echo "# QEMU 7.2 iommufd series, applied in order by scripts/assemble.sh."
    echo "# patch file                              new files it adds"
} > "$tmp/series"

n=0
for c in $(git_tree rev-list --reverse headers..HEAD); do
    n=$((n + 1))
    subject=$(git_tree log -1 --format=%s "$c")
    slug=$(echo "$subject" | tr -c 'A-Za-z0-9\n' '-' | tr -s '-' |
        sed -e 's/^-//' -e 's/-$//' | cut -c1-52 | sed 's/-$//')
    name=$(printf '%04d-%s.patch' "$n" "$slug")
    git_tree format-patch --stdout --zero-commit --no-signature \
        --subject-prefix=PATCH -1 "$c" > "$tmp/patches/$name"
    grep -q '^diff --git ' "$tmp/patches/$name" ||
        die "commit $(git_tree rev-parse --short "$c") ($subject) changes nothing"
    added=$(git_tree diff-tree -r --no-commit-id --name-only --diff-filter=A "$c" |
        tr '\n' ' ' | sed 's/ $//')
    if [ -n "$added" ]; then
        printf '%-40s %s\n' "$name" "$added" >> "$tmp/series"
    else
        echo "$name" >> "$tmp/series"
    fi
done

rm -f "$repo"/patches/*.patch
cp "$tmp"/patches/*.patch "$repo/patches/" 2>/dev/null || true
cp "$tmp/series" "$repo/patches/series"
# The tree now holds what the repository says: no need to reassemble.
"$repo/scripts/assemble.sh" "$tree" --stamp
echo "export: $n patches written to $repo/patches" >&2
