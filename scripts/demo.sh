#!/bin/sh
# make demo: boot the test bed (L1) and assign an edu device to our QEMU
# through iommufd there, with a short report.  See tests/testbed/.
# Usage: scripts/demo.sh BUILDDIR
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
obj=$(cd "${1:?usage: demo.sh BUILDDIR}" && pwd)

start=$(date +%s)
echo "demo: test kernel (built once, then cached)"
kernel=$("$repo/tests/testbed/build-kernel.sh" | tail -n 1)
results=$obj/demo
rm -rf "$results"
mkdir -p "$results"
echo "demo: booting L1 (q35, TCG, emulated VT-d, two edu devices)"
boot=$(date +%s)
status=0
"$repo/tests/testbed/run-l1.sh" --kernel "$kernel" --results "$results" \
    -- "$repo/tests/testbed/demo-l1.sh" "$obj" || status=$?
end=$(date +%s)
echo "Timings: kernel $((boot - start)) s, L1 boot + demo $((end - boot)) s"
exit "$status"
