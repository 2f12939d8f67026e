#!/bin/sh
# make demo: boot the test bed (L1), start a Linux guest on our QEMU there
# under KVM with an edu device assigned through iommufd, and let the
# guest's driver do DMA and take interrupts, with a short report of the
# kernel calls QEMU made.  See tests/testbed/ and tests/guest/.
# Usage: scripts/demo.sh BUILDDIR
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
obj=$(cd "${1:?usage: demo.sh BUILDDIR}" && pwd)
tree=$(sed -n 's/^SRC_PATH=//p' "$obj/config-host.mak")

start=$(date +%s)
echo "demo: test kernel (built once, then cached) and the guest's initramfs"
kernel=$("$repo/tests/testbed/build-kernel.sh" | tail -n 1)
"$repo/tests/guest/build.sh" "$(dirname "$kernel")/build" "$tree" "$obj/guest"
results=$obj/demo
rm -rf "$results"
mkdir -p "$results"
echo "demo: booting L1 (q35, TCG, emulated VT-d, two edu devices on vfio-pci)"
boot=$(date +%s)
status=0
"$repo/tests/testbed/run-l1.sh" --kernel "$kernel" --results "$results" \
    --env PYTHONPATH="$repo/tests:$tree/python" \
    -- "$repo/tests/guest/guest_tier.py" --demo \
    --qemu "$obj/qemu-system-x86_64" --kernel "$kernel" \
    --initrd "$obj/guest/initramfs.cpio.gz" --logdir "$results/logs" ||
    status=$?
end=$(date +%s)
echo "Timings: kernel and initramfs $((boot - start)) s, L1 boot + demo $((end - boot)) s"
exit "$status"
