#!/bin/sh
# Build the L1 test kernel: Debian's linux-source-6.12, tinyconfig plus
# kernel.config, all built in.  Prints the bzImage path as the last line of
# stdout; progress goes to stderr.
#
# Cache: $QEMU_IOMMUFD_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/qemu-iommufd)
# /kernel/KEY, KEY = sha256 of the fragment and the package version.  A
# finished build has KEY/complete; then nothing is rebuilt.  Full log:
# KEY/build.log.
#
# Usage: tests/testbed/build-kernel.sh [FRAGMENT]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
frag=${1:-$here/kernel.config}
pkg=linux-source-6.12
tarball=/usr/src/$pkg.tar.xz
cache=${QEMU_IOMMUFD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qemu-iommufd}/kernel

say() { echo "build-kernel: $*" >&2; }
die() { say "$*"; exit 1; }

[ -f "$frag" ] || die "no config fragment $frag"
frag=$(cd "$(dirname "$frag")" && pwd)/$(basename "$frag")

version() {
    dpkg-query -W -f='${Status} ${Version}\n' $pkg 2>/dev/null |
        sed -n 's/^install ok installed //p'
}
ver=$(version)
if [ -z "$ver" ] || [ ! -f "$tarball" ]; then
    say "installing $pkg"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends $pkg >&2 ||
        { apt-get update -q >&2 && apt-get install -y -q --no-install-recommends $pkg >&2; } ||
        die "cannot install $pkg"
    ver=$(version)
fi
[ -n "$ver" ] && [ -f "$tarball" ] || die "$pkg is not installed"

key=$( { echo "$pkg $ver"; cat "$frag"; } | sha256sum | cut -c1-16)
dir=$cache/$key
if [ -f "$dir/complete" ] && [ -f "$dir/bzImage" ]; then
    echo "$dir/bzImage"
    exit 0
fi

mkdir -p "$dir"
# One build per key at a time; a second caller waits and then finds it done.
exec 9>"$dir/lock"
if ! flock -n 9; then
    say "waiting for another build of $key"
    flock 9
fi
if [ -f "$dir/complete" ] && [ -f "$dir/bzImage" ]; then
    echo "$dir/bzImage"
    exit 0
fi

# The unpacked source is shared by all keys of one package version: one
# caller unpacks it (builds of other keys wait), into a directory that
# only gets its name when complete.
src=$cache/src-$ver/$pkg
exec 8>"$cache/src-$ver.lock"
flock 8
if [ ! -f "$cache/src-$ver/unpacked" ]; then
    say "unpacking $tarball"
    rm -rf "$cache/src-$ver" "$cache/src-$ver.tmp"
    mkdir -p "$cache/src-$ver.tmp"
    tar -C "$cache/src-$ver.tmp" -xJf "$tarball" || die "cannot unpack $tarball"
    touch "$cache/src-$ver.tmp/unpacked"
    mv -T "$cache/src-$ver.tmp" "$cache/src-$ver" ||
        die "cannot rename the unpacked source"
fi
flock -u 8

obj=$dir/build
log=$dir/build.log
mkdir -p "$obj"
: >"$log"
kmake() {
    make -C "$src" O="$obj" "$@" >>"$log" 2>&1 || die "make $* failed; log: $log"
}

say "configuring $key (tinyconfig + $(basename "$frag"))"
kmake tinyconfig
(cd "$obj" && "$src/scripts/kconfig/merge_config.sh" -m .config "$frag") >>"$log" 2>&1 ||
    die "merge_config.sh failed; log: $log"
kmake olddefconfig

# Every option the fragment sets must have survived olddefconfig.
bad=$(
    sed -n 's/^\(CONFIG_[A-Za-z0-9_]*\)=y$/\1/p' "$frag" | while read -r opt; do
        if ! grep -qx "$opt=y" "$obj/.config"; then
            echo "  $opt=y wanted, got: $(grep -E "^$opt=|^# $opt is not set" "$obj/.config" || echo unset)"
        fi
    done
    sed -n 's/^# \(CONFIG_[A-Za-z0-9_]*\) is not set$/\1/p' "$frag" | while read -r opt; do
        if grep -q "^$opt=" "$obj/.config"; then
            echo "  $opt wanted unset, got: $(grep "^$opt=" "$obj/.config")"
        fi
    done
)
[ -z "$bad" ] || die "options not as wanted after olddefconfig:
$bad"
cp "$obj/.config" "$dir/config"

jobs=$(nproc)
say "building bzImage with $jobs jobs (log: $log)"
start=$(date +%s)
rm -f "$dir/make.rc"
# "modules" builds none (all is built in) but writes Module.symvers, which
# the guest tier's out-of-tree edu_guest module is built against.
{ make -C "$src" O="$obj" -j"$jobs" bzImage modules 2>&1; echo $? >"$dir/make.rc"; } |
    tee -a "$log" |
    awk '/warning:|error:|Error [0-9]|Kernel: / { print "  " $0; fflush(); next }
         /^  (CC|AS|LD|AR)/ { if (++n % 250 == 0) { print "  ... " n " objects"; fflush() } }' >&2
[ "$(cat "$dir/make.rc" 2>/dev/null)" = 0 ] || die "make bzImage failed; log: $log"

cp "$obj/arch/x86/boot/bzImage" "$dir/bzImage.tmp"
mv "$dir/bzImage.tmp" "$dir/bzImage"
touch "$dir/complete"
say "built in $(($(date +%s) - start)) s: $(du -h "$dir/bzImage" | cut -f1)"
echo "$dir/bzImage"
