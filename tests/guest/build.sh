#!/bin/sh
# Build what the guest tier's L2 guest runs: the edu_guest kernel module
# (against the test kernel's build tree), guest-vfio (static, with the VFIO
# and iommufd UAPI headers of an assembled QEMU tree) and an initramfs with
# busybox, both, and l2-init as /init.
#
# Usage: tests/guest/build.sh KERNEL_BUILD_DIR QEMU_TREE OUTDIR
# Writes OUTDIR/initramfs.cpio.gz (and the pieces beside it).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
kdir=${1:?usage: build.sh KERNEL_BUILD_DIR QEMU_TREE OUTDIR}
tree=${2:?usage: build.sh KERNEL_BUILD_DIR QEMU_TREE OUTDIR}
out=${3:?usage: build.sh KERNEL_BUILD_DIR QEMU_TREE OUTDIR}
busybox=/bin/busybox

say() { echo "guest-build: $*" >&2; }
die() { say "$*"; exit 1; }

# A kernel cached before build-kernel.sh built "modules" has no
# Module.symvers yet; making it builds nothing else (all is built in).
if [ ! -f "$kdir/Module.symvers" ]; then
    say "making Module.symvers in $kdir"
    make -s -C "$kdir" -j"$(nproc)" modules >"$kdir/modules.log" 2>&1 ||
        { tail -n 20 "$kdir/modules.log" >&2; die "make modules failed in $kdir"; }
fi
[ -x "$busybox" ] && ! ldd "$busybox" >/dev/null 2>&1 ||
    die "$busybox is missing or not static: install busybox-static"
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The module: kbuild builds in its source directory, so copy it there.
mkdir -p "$out/edu-guest"
cp "$here/edu-guest/edu_guest.c" "$here/edu-guest/Kbuild" "$out/edu-guest/"
make -s -C "$kdir" M="$out/edu-guest" modules >"$out/edu-guest/build.log" 2>&1 ||
    { cat "$out/edu-guest/build.log" >&2; die "building edu_guest.ko failed"; }

${CC:-cc} -static -O2 -Wall -Wextra -Werror -I "$tree/linux-headers" \
    -o "$out/guest-vfio" "$here/guest-vfio.c"

root=$out/root
rm -rf "$root"
mkdir -p "$root/bin"
cp "$busybox" "$root/bin/busybox"
cp "$here/l2-init" "$root/init"
chmod 755 "$root/init"
cp "$out/guest-vfio" "$root/bin/"
cp "$out/edu-guest/edu_guest.ko" "$root/"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) |
    gzip -1 >"$out/initramfs.cpio.gz.tmp"
mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
say "$out/initramfs.cpio.gz: $(du -h "$out/initramfs.cpio.gz" | cut -f1)"
