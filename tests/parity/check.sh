#!/bin/sh
# The parity tier of `make check`: our packages (qemu-iommufd and
# qemu-iommufd-gui from DEBDIR, unpacked as they install) against Debian
# 12's qemu-system-x86 with qemu-system-gui and qemu-block-extra
# (scripts/deps.sh parity), see parity.py.  Needs no L1.
# Closes with "parity: N passed, M failed".
#
# Usage: tests/parity/check.sh BUILDDIR DEBDIR
set -eu

here=$(cd "$(dirname "$0")" && pwd)
obj=$(cd "${1:?usage: check.sh BUILDDIR DEBDIR}" && pwd)
debs=${2:?usage: check.sh BUILDDIR DEBDIR}
tree=$(sed -n 's/^SRC_PATH=//p' "$obj/config-host.mak")

main=$(ls "$debs"/qemu-iommufd_*.deb 2>/dev/null | sort -V | tail -n 1)
gui=$(ls "$debs"/qemu-iommufd-gui_*.deb 2>/dev/null | sort -V | tail -n 1)
if [ -z "$main" ] || [ -z "$gui" ]; then
    echo "parity: no qemu-iommufd and qemu-iommufd-gui packages in $debs (make deb)"
    echo "parity: 0 passed, 1 failed"
    exit 1
fi
root=$(mktemp -d "${TMPDIR:-/tmp}/parity.XXXXXX")
trap 'rm -rf "$root"' EXIT
for deb in "$main" "$gui"; do
    dpkg-deb -x "$deb" "$root"
    echo "# unpacked $(basename "$deb")"
done
# The firmware is Debian's (dependencies of the package), found relative
# to the binary as in /usr.
mkdir -p "$root/usr/lib/ipxe"
ln -s /usr/share/qemu "$root/usr/share/qemu"
ln -s /usr/share/seabios "$root/usr/share/seabios"
ln -s /usr/lib/ipxe/qemu "$root/usr/lib/ipxe/qemu"
exec python3 "$here/parity.py" --ours "$root/usr/bin/qemu-iommufd-system-x86_64" \
    --obj "$obj" ${tree:+--tree "$tree"}
