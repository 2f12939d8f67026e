#!/bin/sh
# Obtain the QEMU 7.2 base tree and print its path.
#
# Either QEMU_SRC names an unpacked 7.2.x tree (Debian's or upstream's), or
# the Debian 12 source package is fetched with `apt-get source qemu` into the
# cache, adding a deb-src entry for bookworm when apt has none.
set -eu

# The Debian revision this series was last tested with.  Newer 7.2
# revisions are accepted; any other upstream version is refused.
TESTED_DEBIAN_VERSION="1:7.2+dfsg-7+deb12u18"

cache=${QEMU_IOMMUFD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qemu-iommufd}

die() {
    echo "qemu-source: $*" >&2
    exit 1
}

check_tree() {
    [ -f "$1/VERSION" ] && [ -f "$1/hw/vfio/common.c" ] ||
        die "$1 is not a QEMU source tree (no VERSION or hw/vfio/common.c)"
    v=$(cat "$1/VERSION")
    case "$v" in
    7.2.*) ;;
    *) die "$1 is QEMU $v; this series applies to QEMU 7.2.x only" ;;
    esac
}

if [ -n "${QEMU_SRC:-}" ]; then
    check_tree "$QEMU_SRC"
    cd "$QEMU_SRC" && pwd
    exit 0
fi

has_deb_src() {
    apt-get indextargets --format '$(CREATED_BY) $(RELEASE)' 2>/dev/null |
        grep -q '^Sources bookworm'
}

if ! has_deb_src; then
    [ "$(id -u)" = 0 ] ||
        die "apt has no deb-src entry for bookworm; as root this script adds one, or set QEMU_SRC=/path/to/qemu-7.2"
    echo "qemu-source: adding deb-src entries for bookworm" >&2
    cat > /etc/apt/sources.list.d/qemu-iommufd-deb-src.sources <<'EOS'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
    apt-get update -q >/dev/null
fi

version=$(apt-cache showsrc qemu 2>/dev/null |
    sed -n 's/^Version: //p' | sort -V | tail -n 1)
[ -n "$version" ] || die "apt knows no source package for qemu"
case "$version" in
1:7.2+*) ;;
*) die "apt offers qemu $version; this series applies to QEMU 7.2 (Debian 12)" ;;
esac
if dpkg --compare-versions "$version" lt "$TESTED_DEBIAN_VERSION"; then
    echo "qemu-source: warning: qemu $version is older than the tested $TESTED_DEBIAN_VERSION" >&2
fi

dir="$cache/src/$(echo "$version" | tr ':+~' '___')"
if [ ! -f "$dir/.complete" ]; then
    echo "qemu-source: fetching qemu $version with apt-get source" >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    (cd "$dir" && apt-get source -q "qemu=$version" >/dev/null 2>"$dir/apt-get.log") ||
        die "apt-get source qemu=$version failed, see $dir/apt-get.log"
    echo "$version" > "$dir/.complete"
fi
tree=$(find "$dir" -mindepth 1 -maxdepth 1 -type d -name 'qemu-*' | head -n 1)
[ -n "$tree" ] || die "no qemu-* directory in $dir"
check_tree "$tree"
echo "$tree"
