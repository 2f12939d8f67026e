#!/bin/sh
# `make deb`: Debian packages of our QEMU, built with debhelper
# (dpkg-buildpackage -b) from packaging/debian out of the build the tiers
# test (BUILDDIR, build/obj): qemu-iommufd, the binary as
# /usr/bin/qemu-iommufd-system-x86_64 beside Debian's qemu-system-x86, with
# its data and modules, and qemu-iommufd-gui, the modules that Debian puts
# in qemu-system-gui (GTK, SDL, JACK, PulseAudio, virtio-gpu-gl).  The
# firmware comes from Debian's packages (dependencies).  The version is
# QEMU's, then +iommufd and the number of commits of this repository.
#
# Usage: packaging/deb.sh BUILDDIR OUTDIR
# Writes OUTDIR/qemu-iommufd{,-gui}_VERSION_amd64.deb and prints the path
# of qemu-iommufd's last.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
obj=${1:?usage: deb.sh BUILDDIR OUTDIR}
out=${2:?usage: deb.sh BUILDDIR OUTDIR}

say() { echo "deb: $*" >&2; }
die() { say "$*"; exit 1; }

"$top/scripts/deps.sh" deb >&2 || die "cannot install Debian's packaging tools"

# The build is make's (scripts/build.sh): the package step only installs.
[ -f "$obj/qemu-system-x86_64" ] || die "no $obj/qemu-system-x86_64: build first (make)"
obj=$(cd "$obj" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

qemu_version=$(cat "$top/build/qemu/VERSION")
count=$(git -C "$top" rev-list --count HEAD 2>/dev/null || echo 0)
version=$qemu_version+iommufd$count
src=$out/qemu-iommufd-$version
# One package at a time in OUTDIR: drop earlier builds and their trees.
rm -rf "$out"/qemu-iommufd-[0-9]* "$out"/qemu-iommufd_* "$out"/qemu-iommufd-gui_*
mkdir -p "$src"
cp -R "$top/packaging/debian" "$src/debian"
cat >"$src/debian/changelog" <<EOF
qemu-iommufd ($version) unstable; urgency=medium

  * QEMU $qemu_version with the qemu-iommufd series
    ($(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)).

 -- The qemu-iommufd developers <root@localhost>  $(date -R)
EOF

say "building qemu-iommufd $version in $src"
(cd "$src" && QEMU_IOMMUFD_TOP=$top QEMU_IOMMUFD_OBJ=$obj \
    dpkg-buildpackage -b --no-sign) >"$out/build.log" 2>&1 || {
    tail -n 30 "$out/build.log" >&2
    die "dpkg-buildpackage failed; log: $out/build.log"
}
deb=$out/qemu-iommufd_${version}_amd64.deb
[ -f "$deb" ] || die "no $deb after dpkg-buildpackage"
for f in "$out"/qemu-iommufd*_"$version"_amd64.deb; do
    say "$(basename "$f"): $(du -k "$f" | cut -f1) kB"
    dpkg-deb --info "$f" | sed -n 's/^ \(Package\|Depends\|Recommends\|Installed-Size\):/deb:   \1:/p' >&2
done
dpkg-deb --contents "$deb" | awk '$1 !~ /^d/ { print "deb:   " $6 }' >&2
echo "$deb"
