#!/bin/sh
# Import linux/vfio.h and linux/iommufd.h of Linux 6.6+ into a QEMU tree.
#
# QEMU 7.2's scripts/update-linux-headers.sh cannot digest 6.12 headers and
# does not know iommufd.h, so take the two UAPI headers from a Debian
# package (linux-headers-6.12.*-common ships include/uapi) and process them
# the way the kernel's headers_install.sh does before 7.2's script copies
# them: drop __user/__force/__iomem and compiler.h, spell out __packed,
# strip the _UAPI guard prefix.
#
# Usage: scripts/linux-headers.sh QEMU_TREE
# LINUX_UAPI=DIR overrides the directory holding vfio.h and iommufd.h.
set -eu

die() {
    echo "linux-headers: $*" >&2
    exit 1
}

tree=${1:?usage: linux-headers.sh QEMU_TREE}
uapi=${LINUX_UAPI:-}
if [ -z "$uapi" ]; then
    common=$(ls -d /usr/src/linux-headers-6.*-common 2>/dev/null |
        sort -V | tail -n 1)
    [ -n "$common" ] ||
        die "no /usr/src/linux-headers-6.*-common; install linux-headers-6.12.*-common or set LINUX_UAPI"
    uapi=$common/include/uapi/linux
fi
for h in vfio.h iommufd.h; do
    [ -f "$uapi/$h" ] || die "$uapi/$h missing (need Linux 6.6 or later)"
done
grep -q 'VFIO_DEVICE_BIND_IOMMUFD' "$uapi/vfio.h" ||
    die "$uapi/vfio.h has no VFIO_DEVICE_BIND_IOMMUFD (need Linux 6.6 or later)"

for h in vfio.h iommufd.h; do
    if grep -q '__KERNEL__' "$uapi/$h"; then
        die "$uapi/$h has __KERNEL__ sections; use headers_install output"
    fi
    if grep '#include' "$uapi/$h" |
        grep -v -e '<linux/types.h>' -e '<linux/ioctl.h>' >/dev/null; then
        die "unexpected #include in $uapi/$h"
    fi
    sed -E -e '
        s/([[:space:](])(__user|__force|__iomem)[[:space:]]/\1/g
        s/__attribute_const__([[:space:]]|$)/\1/g
        s@^#include <linux/compiler(|_types).h>@@
        s/(^|[^a-zA-Z0-9])__packed([^a-zA-Z0-9_]|$)/\1__attribute__((packed))\2/g
        s/(^|[[:space:](])(inline|asm|volatile)([[:space:](]|$)/\1__\2__\3/g
        s@#(ifndef|define|endif[[:space:]]*/[*])[[:space:]]*_UAPI@#\1 @
    ' "$uapi/$h" > "$tree/linux-headers/linux/$h.tmp"
    mv "$tree/linux-headers/linux/$h.tmp" "$tree/linux-headers/linux/$h"
done
echo "linux-headers: vfio.h and iommufd.h from $uapi" >&2
