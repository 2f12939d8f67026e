#!/bin/sh
# Assemble the QEMU tree: the 7.2 base, the kernel UAPI headers, then each
# patch of patches/series.
#
# The tree is a git repository: tag "base" is the pristine base, tag
# "headers" adds the imported headers, and each patch is one commit on top.
# A patch carries everything it changes, the files it adds included; the
# second column of patches/series names those files, and assembly checks
# that the patch adds exactly them.
# Assembly is reproducible (fixed committer, committer date = author date).
# The tree's git identity is the series' own, so that a commit made there
# is exported with the same From: and Signed-off-by: as the others.
# If the tree already holds this assembly, nothing is done; if it holds work
# that was not exported, it is left alone and assembly stops.
#
# Usage: scripts/assemble.sh TREE [--force]
#        scripts/assemble.sh TREE --stamp   (after export: TREE holds the
#                                           series as the repo now has it)
set -eu

die() {
    echo "assemble: $*" >&2
    exit 1
}

repo=$(cd "$(dirname "$0")/.." && pwd)
tree=${1:?usage: assemble.sh TREE [--force]}
force=${2:-}
series=$repo/patches/series
stamp_name=qemu-iommufd-assembled

base=$(QEMU_SRC=${QEMU_SRC:-} "$repo/scripts/qemu-source.sh")

# Everything the assembly is made of: the series, its patches, the base
# and the headers it imports.
series_lines() {
    sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$series"
}

inputs_key() {
    {
        echo "base $base $(cat "$base/VERSION")"
        cat "$repo/scripts/assemble.sh" "$repo/scripts/linux-headers.sh"
        cat "$series"
        series_lines | while read -r patch _; do
            cat "$repo/patches/$patch"
        done
    } | sha256sum | cut -d' ' -f1
}

key=$(inputs_key)
stamp=$tree/.git/$stamp_name

# The one identity of the series: its patches' From: and Signed-off-by:.
export GIT_COMMITTER_NAME="qemu-iommufd developers"
export GIT_COMMITTER_EMAIL="devel@qemu-iommufd.invalid"
export GIT_AUTHOR_NAME="$GIT_COMMITTER_NAME"
export GIT_AUTHOR_EMAIL="$GIT_COMMITTER_EMAIL"
git_tree() {
    git -C "$tree" -c core.autocrlf=false -c advice.detachedHead=false "$@"
}

if [ "$force" = --stamp ]; then
    printf '%s\n%s\n%s\n' "$base" "$(git_tree rev-parse HEAD)" "$key" > "$stamp"
    exit 0
fi

if [ -f "$stamp" ] && [ "$(sed -n 1p "$stamp")" = "$base" ]; then
    head=$(git_tree rev-parse HEAD)
    dirty=$(git_tree status --porcelain)
    if [ "$(sed -n 2p "$stamp")" = "$head" ] && [ -z "$dirty" ]; then
        if [ "$(sed -n 3p "$stamp")" = "$key" ]; then
            echo "assemble: $tree is up to date" >&2
            exit 0
        fi
    elif [ "$force" != --force ]; then
        die "$tree has commits or changes that are not exported; run 'make export' first, or 'make tree FORCE=1' to discard them"
    fi
    echo "assemble: reapplying the series on $tree" >&2
    git_tree reset -q --hard headers
    git_tree clean -q -fdx
else
    echo "assemble: new tree $tree from $base" >&2
    origin=
    if [ -f "$base/debian/changelog" ]; then
        origin=" (Debian $(dpkg-parsechangelog -l "$base/debian/changelog" -S Version))"
    fi
    rm -rf "$tree"
    mkdir -p "$tree"
    tar -C "$base" --exclude=./.pc --exclude=./.git -cf - . | tar -C "$tree" -xf -
    git_tree init -q
    # Tells scripts/build.sh that this is a new tree: rebuild from scratch.
    date +%s.%N > "$tree/.git/qemu-iommufd-created"
    git_tree add -A -f .
    GIT_AUTHOR_DATE="2000-01-01T00:00:00Z" \
    GIT_COMMITTER_DATE="2000-01-01T00:00:00Z" \
        git_tree commit -q -m "base: QEMU $(cat "$base/VERSION")$origin"
    git_tree tag -f base >/dev/null
    "$repo/scripts/linux-headers.sh" "$tree"
    git_tree add linux-headers
    GIT_AUTHOR_DATE="2000-01-01T00:00:00Z" \
    GIT_COMMITTER_DATE="2000-01-01T00:00:00Z" \
        git_tree commit -q -m "linux-headers: import vfio.h and iommufd.h (generated, not exported)"
    git_tree tag -f headers >/dev/null
fi

# Work done in the tree is the series' too.
git_tree config user.name "$GIT_COMMITTER_NAME"
git_tree config user.email "$GIT_COMMITTER_EMAIL"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
series_lines | while read -r patch files; do
    p=$repo/patches/$patch
    [ -f "$p" ] || die "patch $patch is listed in patches/series but missing"
    git mailinfo "$tmp/msg" "$tmp/diff" < "$p" > "$tmp/info" ||
        die "patch $patch is not a mail-formatted patch"
    if [ -s "$tmp/diff" ]; then
        git_tree apply --index --whitespace=nowarn "$tmp/diff" 2>"$tmp/err" || {
            cat "$tmp/err" >&2
            die "patch $patch does not apply"
        }
    fi
    added=$(git_tree diff --cached --name-only --diff-filter=A | sort | xargs)
    listed=$(printf '%s\n' $files | sort | xargs)
    [ "$added" = "$listed" ] ||
        die "patch $patch adds '$added', but patches/series lists '$listed'"
    subject=$(sed -n 's/^Subject: //p' "$tmp/info")
    { echo "$subject"; echo; cat "$tmp/msg"; } > "$tmp/commit"
    GIT_AUTHOR_NAME=$(sed -n 's/^Author: //p' "$tmp/info") \
    GIT_AUTHOR_EMAIL=$(sed -n 's/^Email: //p' "$tmp/info") \
    GIT_AUTHOR_DATE=$(sed -n 's/^Date: //p' "$tmp/info") \
    GIT_COMMITTER_DATE=$(sed -n 's/^Date: //p' "$tmp/info") \
        git_tree commit -q --allow-empty --cleanup=verbatim -F "$tmp/commit"
done

printf '%s\n%s\n%s\n' "$base" "$(git_tree rev-parse HEAD)" "$key" > "$stamp"
echo "assemble: $tree at $(git_tree rev-parse --short HEAD), $(git_tree rev-list --count headers..HEAD) patches on QEMU $(cat "$tree/VERSION")" >&2
