#!/bin/sh
# The libvirt tier of `make check`: real libvirt 12.x (Debian trixie-
# backports, in a trixie root built once by build-root.sh) drives the QEMU
# of BUILDDIR inside the test bed's L1, with the guest tier's L2 Linux as
# the guest.  Builds what it needs (cached): the test bed's kernel (L1 and
# L2), the guest's initramfs against it, the trixie root; boots L1 with two
# edus and runs libvirt_tier.py there.  Logs of failed cases are kept in
# build/libvirt/results/logs/.
#
# Usage: tests/libvirt/check.sh BUILDDIR [--deb FILE] [libvirt_tier.py options...]
#   --deb FILE   test that qemu-iommufd package instead (installed into the
#                root inside L1, emulator /usr/bin/qemu-iommufd-system-x86_64)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
obj=$(cd "${1:?usage: check.sh BUILDDIR [--deb FILE] [options...]}" && pwd)
shift
qemu="--qemu $obj/qemu-system-x86_64"
if [ "${1:-}" = --deb ]; then
    deb=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
    qemu="--qemu /usr/bin/qemu-iommufd-system-x86_64 --deb $deb"
    shift 2
else
    # The root needs our build's libraries: those the package depends on.
    deb=$(ls "$top"/build/deb/qemu-iommufd_*.deb 2>/dev/null | sort -V | tail -n 1)
    [ -n "$deb" ] || { echo "libvirt: no package in build/deb (make deb)"; exit 1; }
fi
tree=$(sed -n 's/^SRC_PATH=//p' "$obj/config-host.mak")
work=$top/build/libvirt
mkdir -p "$work"

echo "libvirt: building the test kernel and the trixie root (cached after the first time)"
kernel=$("$top/tests/testbed/build-kernel.sh" | tail -n 1)
"$top/tests/guest/build.sh" "$(dirname "$kernel")/build" "$tree" "$work/guest"
root=$("$here/build-root.sh" "$deb" | tail -n 1)

results=$work/results
rm -rf "$results"
mkdir -p "$results"
# L1's edus (edu's default DMA mask is 28 bits: widen it): one on the root
# bus, one alone behind a root port, where libvirt can reset it (a bus
# reset: edu has no FLR) when it takes it from its driver itself.
mask=dma_mask=0xffffffffffffffff
# The tiers' library (tests/pylib) on QEMU's own python/qemu, here and
# in L1.
export PYTHONPATH="$top/tests:$tree/python"
# shellcheck disable=SC2086
exec "$top/tests/testbed/l1_tier.py" libvirt --kernel "$kernel" --results "$results" \
    --timeout "${LIBVIRT_TIMEOUT:-1200}" --no-edu --env PYTHONPATH \
    --qemu-arg -device --qemu-arg "edu,addr=0x10,$mask" \
    --qemu-arg -device --qemu-arg pcie-root-port,id=rp1,chassis=1,slot=1,addr=0x1c \
    --qemu-arg -device --qemu-arg "edu,bus=rp1,addr=0.0,$mask" \
    -- "$here/l1-libvirt.sh" "$root" $qemu \
    --kernel "$kernel" --initrd "$work/guest/initramfs.cpio.gz" \
    --edu-ko "$work/guest/edu-guest/edu_guest.ko" --logdir "$results/logs" "$@"
