#!/bin/sh
# The guest tier of `make check`: Linux guests (L2) booted by the QEMU in
# BUILDDIR inside the test bed's L1, every case on the legacy and the
# iommufd path.  Builds what the guest runs (tests/guest/build.sh) and the
# fault injection library, boots L1 with its own set of edu devices and
# runs tests/guest/guest_tier.py there.  Logs of failed cases are kept in
# BUILDDIR/guest-results/.
#
# Usage: tests/guest/check.sh BUILDDIR [guest_tier.py options...]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
obj=$(cd "${1:?usage: check.sh BUILDDIR [options...]}" && pwd)
shift
tree=$(sed -n 's/^SRC_PATH=//p' "$obj/config-host.mak")

echo "guest: building the test kernel (cached after the first time)"
kernel=$("$top/tests/testbed/build-kernel.sh" | tail -n 1)
"$here/build.sh" "$(dirname "$kernel")/build" "$tree" "$obj/guest"
"$top/tests/faultinject/build.sh" "$tree" "$obj/tests/faultinject/libfaultinject.so"

results=$obj/guest-results
rm -rf "$results"
mkdir -p "$results"

# L1's edus, all able to reach any address (edu's default mask is 28 bits):
# one on the root bus per path, two functions of one slot behind a root
# port (one IOMMU group: only a bus reset resets them), one alone behind a
# second port.  l1_tier.py closes with the tier's line whatever happens
# to L1, and runs the groups that did not end again in a new L1 if L1
# freezes.
mask=dma_mask=0xffffffffffffffff
# The tiers' library (tests/pylib) on QEMU's own python/qemu, here and
# in L1.
export PYTHONPATH="$top/tests:$tree/python"
exec "$top/tests/testbed/l1_tier.py" guest --groups --kernel "$kernel" --results "$results" \
    --mem 3G --timeout "${GUEST_TIMEOUT:-2700}" --no-edu --env PYTHONPATH \
    --qemu-arg -device --qemu-arg "edu,addr=0x10,$mask" \
    --qemu-arg -device --qemu-arg "edu,addr=0x11,$mask" \
    --qemu-arg -device --qemu-arg pcie-root-port,id=rp1,chassis=1,slot=1,addr=0x1c \
    --qemu-arg -device --qemu-arg "edu,bus=rp1,addr=0.0,multifunction=on,$mask" \
    --qemu-arg -device --qemu-arg "edu,bus=rp1,addr=0.1,$mask" \
    --qemu-arg -device --qemu-arg pcie-root-port,id=rp2,chassis=2,slot=2,addr=0x1d \
    --qemu-arg -device --qemu-arg "edu,bus=rp2,addr=0.0,$mask" \
    -- "$here/guest_tier.py" --qemu "$obj/qemu-system-x86_64" \
    --kernel "$kernel" --initrd "$obj/guest/initramfs.cpio.gz" \
    --faultinject "$obj/tests/faultinject/libfaultinject.so" \
    --logdir "$results/logs" "$@"
