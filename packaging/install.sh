#!/bin/sh
# Install our QEMU, built by packaging/build.sh (which this runs first):
# `make install` and the package's install step.  The build directory is
# configured for /usr/local with the data suffix qemu-iommufd; QEMU 7.2
# finds its data relative to its binary (get_relocated_path), so the tree
# installs under any PREFIX.  The firmware path (Debian's seabios,
# ipxe-qemu, qemu-system-data) lies outside /usr/local and stays absolute.
#
# Installs, next to Debian's qemu-system-x86 without touching its files:
#   PREFIX/bin/qemu-iommufd-system-x86_64
#   PREFIX/share/qemu-iommufd/trace-events-all
# (QEMU's desktop file and icons are left out: qemu-system-data has them.)
#
# Usage: packaging/install.sh BUILDDIR [PREFIX [DESTDIR]]
#        (PREFIX default /usr/local; DESTDIR default empty)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
obj=${1:?usage: install.sh BUILDDIR [PREFIX [DESTDIR]]}
prefix=${2:-/usr/local}
destdir=${3:-}
configured=/usr/local
suffix=qemu-iommufd

say() { echo "install: $*" >&2; }
die() { say "$*"; exit 1; }

case $prefix in /*) ;; *) die "PREFIX must be absolute: $prefix" ;; esac
"$top/packaging/build.sh" "$obj"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
meson install -C "$obj" --no-rebuild --quiet --destdir "$stage" >/dev/null ||
    die "meson install failed in $obj"
from=$stage$configured
to=$destdir$prefix
install -D -m 755 "$from/bin/qemu-system-x86_64" "$to/bin/qemu-iommufd-system-x86_64"
mkdir -p "$to/share"
rm -rf "$to/share/$suffix"
cp -R "$from/share/$suffix" "$to/share/$suffix"
rm -rf "$from/bin/qemu-system-x86_64" "$from/share/$suffix" \
    "$from/share/applications/qemu.desktop" "$from/share/icons"
left=$(find "$stage" ! -type d)
[ -z "$left" ] || die "meson installed files this script does not know:
$left"
say "installed $to/bin/qemu-iommufd-system-x86_64 and $to/share/$suffix/"
