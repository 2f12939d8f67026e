#!/bin/sh
# `make deb`: a Debian package of our QEMU, qemu-iommufd, built with
# debhelper (dpkg-buildpackage -b) from packaging/debian.  The binary goes
# to /usr/bin/qemu-iommufd-system-x86_64, beside Debian's qemu-system-x86;
# the firmware comes from Debian's packages (dependencies).  The version
# is QEMU's, then +iommufd and the number of commits of this repository.
#
# Usage: packaging/deb.sh BUILDDIR OUTDIR
# Writes OUTDIR/qemu-iommufd_VERSION_amd64.deb and prints its path last.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
obj=${1:?usage: deb.sh BUILDDIR OUTDIR}
out=${2:?usage: deb.sh BUILDDIR OUTDIR}

say() { echo "deb: $*" >&2; }
die() { say "$*"; exit 1; }

"$top/scripts/deps.sh" deb >&2 || die "cannot install Debian's packaging tools"

# Build first, so that the package step only installs.
"$top/packaging/build.sh" "$obj"
obj=$(cd "$obj" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

qemu_version=$(cat "$top/build/qemu/VERSION")
count=$(git -C "$top" rev-list --count HEAD 2>/dev/null || echo 0)
version=$qemu_version+iommufd$count
src=$out/qemu-iommufd-$version
# One package at a time in OUTDIR: drop earlier builds and their trees.
rm -rf "$out"/qemu-iommufd-[0-9]* "$out"/qemu-iommufd_*
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
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Depends\|Installed-Size\):/deb: \1:/p' >&2
dpkg-deb --contents "$deb" | awk '{ print "deb:   " $6 }' >&2
echo "$deb"
