#!/bin/sh
# Install our QEMU from the build the tiers test (build/obj, configured by
# scripts/build.sh for /usr with the suffix qemu-iommufd): `make install`
# and the package's install step.  QEMU 7.2 finds its data and modules
# relative to its binary (get_relocated_path), so the tree installs under
# any PREFIX.
#
# Installs, next to Debian's QEMU without touching its files:
#   PREFIX/bin/qemu-iommufd-system-x86_64
#   PREFIX/share/qemu-iommufd/            keymaps, trace-events-all, ...
#   PREFIX/lib/MULTIARCH/qemu-iommufd/    UI, audio, device, block modules
#   /etc/apparmor.d/abstractions/libvirt-qemu.d/qemu-iommufd
#                                         the lines libvirt's AppArmor
#                                         profiles need for the three above
# Left out, as Debian leaves them out: the qtest accelerator module (the
# tiers run it from the build tree).  Left to Debian's packages, which have
# the same files at these paths: QEMU's desktop file and icons
# (qemu-system-data), the GTK UI's translations (qemu-system-common, which
# our binary uses where installed: same gettext domain) and the plugin API
# header (qemu-system-common).  For a PREFIX other than /usr, the firmware
# directories (Debian's seabios, ipxe-qemu, qemu-system-data), which the
# binary looks for relative to itself, are linked into PREFIX when absent.
#
# Usage: packaging/install.sh BUILDDIR [PREFIX [DESTDIR]]
#        (PREFIX default /usr/local; DESTDIR default empty)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
obj=${1:?usage: install.sh BUILDDIR [PREFIX [DESTDIR]]}
prefix=${2:-/usr/local}
destdir=${3:-}
configured=/usr
suffix=qemu-iommufd

say() { echo "install: $*" >&2; }
die() { say "$*"; exit 1; }

case $prefix in /*) ;; *) die "PREFIX must be absolute: $prefix" ;; esac
[ -f "$obj/qemu-system-x86_64" ] || die "no $obj/qemu-system-x86_64: build first (make)"
libdir=$(python3 -c 'import json,sys; print([o["value"] for o in json.load(open(sys.argv[1])) if o["name"] == "libdir"][0])' \
    "$obj/meson-info/intro-buildoptions.json")
case $libdir in "$configured"/*) libdir=${libdir#"$configured"/} ;; esac

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
meson install -C "$obj" --no-rebuild --quiet --destdir "$stage" >/dev/null ||
    die "meson install failed in $obj"
from=$stage$configured
to=$destdir$prefix
install -D -m 755 "$from/bin/qemu-system-x86_64" "$to/bin/qemu-iommufd-system-x86_64"
for d in "share/$suffix" "$libdir/$suffix"; do
    mkdir -p "$(dirname "$to/$d")"
    rm -rf "${to:?}/$d"
    cp -R "$from/$d" "$to/$d"
    rm -rf "${from:?}/$d"
done
rm -f "$to/$libdir/$suffix"/accel-qtest-*.so
rm -rf "$from/bin/qemu-system-x86_64" "$from/share/applications/qemu.desktop" \
    "$from/share/icons" "$from/share/locale" "$from/include/qemu-plugin.h"
left=$(find "$stage" ! -type d)
[ -z "$left" ] || die "meson installed files this script does not know:
$left"

# libvirt's AppArmor profiles for QEMU (abstractions/libvirt-qemu) name
# Debian's QEMU binaries and paths, one by one; they include what packages
# drop in libvirt-qemu.d.  Without the binary's line, QEMU cannot even be
# executed under the domain's profile.
aa=$destdir/etc/apparmor.d/abstractions/libvirt-qemu.d
mkdir -p "$aa"
cat >"$aa/$suffix" <<EOF
# qemu-iommufd: $prefix/bin/qemu-iommufd-system-x86_64, its data and modules
# (abstractions/libvirt-qemu names each of Debian's QEMU binaries).
  $prefix/bin/qemu-iommufd-system-x86_64 rmix,
  $prefix/share/$suffix/** r,
  $prefix/$libdir/$suffix/*.so mr,
# What it reads to check passed descriptors: /dev/iommu's device number and
# the major of the VFIO cdevs.
  /sys/devices/virtual/misc/iommu/dev r,
  /proc/devices r,
EOF

if [ "$prefix" != "$configured" ]; then
    for d in share/qemu share/seabios lib/ipxe/qemu; do
        if [ ! -e "$to/$d" ]; then
            mkdir -p "$(dirname "$to/$d")"
            ln -s "$configured/$d" "$to/$d"
            say "linked $to/$d -> $configured/$d (Debian's firmware)"
        fi
    done
fi
say "installed $to/bin/qemu-iommufd-system-x86_64, $to/share/$suffix/," \
    "$to/$libdir/$suffix/ and $aa/$suffix"
