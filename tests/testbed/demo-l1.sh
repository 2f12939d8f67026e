#!/bin/sh
# Inside L1: assign an edu device to our QEMU through iommufd, run a DMA
# round trip, and report what happened from QEMU's trace of its kernel
# calls.  Exits non-zero if any step fails.
# Usage (through run-l1.sh): tests/testbed/demo-l1.sh BUILDDIR
set -u

obj=$(cd "${1:?usage: demo-l1.sh BUILDDIR}" && pwd)
trace=$(mktemp -d)
export QTEST_QEMU_BINARY="$obj/qemu-system-x86_64"
export VFIO_EDU_TEST_TRACE_DIR="$trace"

echo "L1 is up: $(uname -sr), $(ls /dev/vfio/devices | wc -l) VFIO device cdevs, /dev/iommu $(test -c /dev/iommu && echo present || echo MISSING)"
echo "edu devices bound to vfio-pci: ${L1_EDU_BDFS:-none}"
echo

t0=$(date +%s.%N)
(cd "$obj" && ./tests/qtest/vfio-edu-test --tap --verbose \
    -p /x86_64/vfio-edu/iommufd/host) > "$trace/out" 2>&1
rc=$?
t1=$(date +%s.%N)
log=$trace/iommufd-host.log

field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
first() { grep -m1 "^$1 \|:$1 " "$log"; }

if [ ! -f "$log" ]; then
    cat "$trace/out"
    echo "demo: FAILED: our QEMU left no trace (status $rc)"
    exit 1
fi
sysfsdev=$(first vfio_iommufd_open_cdev | sed 's/^[^ ]* \(.*\): \/dev\/.*/\1/')
echo "Our QEMU: -object iommufd,id=iommufd0 -device vfio-pci,host=${sysfsdev##*/},iommufd=iommufd0"
echo
echo "File descriptors QEMU opened:"
echo "  /dev/iommu                fd $(first iommufd_backend_connect | field fd) (owned by the iommufd object, opened on first use)"
echo "  $(first vfio_iommufd_open_cdev | sed 's/.*: \([^ ]*\) fd=\(.*\)/\1  fd \2 (found through sysfs vfio-dev\/)/')"
echo
echo "Kernel calls, in order (errno 0 = accepted):"
grep -E "(^|:)(vfio_kvm_device_add_fd|vfio_iommufd_bind|iommufd_backend_alloc_ioas|vfio_iommufd_attach_ioas|iommufd_backend_get_iova_ranges) " "$log" |
    sed 's/^/  /' | head -n 8
grep -qE "(^|:)vfio_kvm_device_add_fd " "$log" ||
    echo "  (no KVM in this run: KVM_DEV_VFIO_FILE_ADD is skipped; see the kvm-order test)"
echo
echo "  iommufd device id (devid): $(first vfio_iommufd_bind | field devid)"
echo "  I/O address space (IOAS):  $(first iommufd_backend_alloc_ioas | field ioas)"
echo
echo "Guest RAM mapped into the IOAS (IOVA = guest physical address):"
grep -E "(^|:)iommufd_backend_map_dma " "$log" | grep "errno=0" |
    sed 's/.*iova=\([^ ]*\) size=\([^ ]*\).*readonly=\([01]\).*/  iova \1 size \2 readonly=\3/'
echo "  $(grep -cE '(^|:)iommufd_backend_map_dma .*errno=0' "$log") mappings made; the IOAS goes with QEMU's fds at exit"
echo
echo "DMA by the real (emulated) edu device through the vIOMMU:"
grep "bytes verified" "$trace/out" | sed 's/^# /  /'
echo
printf 'Timings: QEMU start + DMA round trip + quit %.1f s inside L1\n' \
    "$(echo "$t1 - $t0" | bc)"
if [ "$rc" = 0 ] && grep -q "^ok .*iommufd/host$" "$trace/out"; then
    echo "demo: DMA round trip verified through iommufd"
    exit 0
fi
grep -v "^# starting" "$trace/out"
echo "demo: FAILED (status $rc)"
exit 1
