#!/bin/sh
# Fetch a later Debian QEMU binary package and unpack it (dpkg -x) into the
# cache, without installing it: a peer for the benchmarks and a choice of
# outer emulator for the test bed.  Its shared libraries come from
# bookworm (installed with apt-get when missing).  Prints the path of its
# qemu-system-x86_64.
#
# Usage: scripts/peer-qemu.sh [SUITE]   (default bookworm-backports)
set -eu

suite=${1:-bookworm-backports}
cache=${QEMU_IOMMUFD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qemu-iommufd}
dir=$cache/peer/$suite

die() {
    echo "peer-qemu: $*" >&2
    exit 1
}

if [ ! -f "$dir/complete" ]; then
    echo "peer-qemu: fetching qemu-system-x86 from $suite" >&2
    rm -rf "$dir"
    mkdir -p "$dir/apt/lists/partial" "$dir/apt/archives/partial" "$dir/root"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
        "http://deb.debian.org/debian $suite main" > "$dir/apt/sources.list"
    # A private apt state: the host's sources and packages stay as they are.
    set -- -o Dir::Etc::SourceList="$dir/apt/sources.list" \
        -o Dir::Etc::SourceParts=- -o Dir::State::Lists="$dir/apt/lists" \
        -o Dir::Cache="$dir/apt" -o APT::Sandbox::User=root
    apt-get -q "$@" update >/dev/null || die "apt-get update of $suite failed"
    (cd "$dir/apt/archives" &&
        apt-get -q "$@" download qemu-system-x86 qemu-system-common \
            qemu-system-data >/dev/null) || die "downloading from $suite failed"
    for deb in "$dir"/apt/archives/*.deb; do
        dpkg -x "$deb" "$dir/root"
    done
    # Its libraries, from the host's own suites.
    libs=$(for deb in "$dir"/apt/archives/*.deb; do
               dpkg-deb -f "$deb" Depends
           done | tr ',' '\n' | sed 's/(.*//; s/|.*//; s/ //g' |
           grep '^lib' | sort -u)
    missing=
    for p in $libs; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
            grep -q '^install ok installed$' || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        [ "$(id -u)" = 0 ] || die "needs root to install:$missing"
        echo "peer-qemu: installing$missing" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends $missing >/dev/null ||
            die "installing its libraries failed:$missing"
    fi
    dpkg-deb -f "$dir"/apt/archives/qemu-system-x86_*.deb Version > "$dir/complete"
fi
bin=$dir/root/usr/bin/qemu-system-x86_64
"$bin" --version >/dev/null || die "$bin does not run"
echo "$bin"
