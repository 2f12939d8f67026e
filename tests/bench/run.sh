#!/bin/sh
# Benchmarks: the iommufd path against the legacy container and against the
# kernel's own cost, in one boot of the test bed's L1.
#
# Usage: tests/bench/run.sh [BUILDDIR]     (default: build/obj)
#   BENCH_QUICK=1   fewer repetitions and sizes (a smoke run, ~3 min)
#   BENCH_OUT=DIR   its work and L1 results directory (default build/bench)
#   BENCH_DOCS=DIR  where REPORT.md, results.json, map-time.png go
#                   (default: docs/bench)
#
# Builds the reference program and what the guests run (the test kernel and
# tests/guest/build.sh's initramfs, both cached), boots L1
# (tests/testbed/run-l1.sh, 10 GiB so that an 8 GiB guest fits, or
# BENCH_L1_MEM) with its results in build/bench/results, runs
# tests/bench/driver.py there, then writes the report.  It records figures
# and never judges them: the exit status is non-zero only if something
# broke.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
obj=$(cd "${1:-$top/build/obj}" 2>/dev/null && pwd) || {
    echo "bench: no build directory ${1:-$top/build/obj}; run 'make' first" >&2
    exit 1
}
qemu=$obj/qemu-system-x86_64
out=${BENCH_OUT:-$top/build/bench}
results=$out/results
docs=${BENCH_DOCS:-$top/docs/bench}
start=$(date +%s)

say() { echo "bench: $*"; }
[ -x "$qemu" ] || { say "no $qemu; run 'make' first" >&2; exit 1; }

"$top/scripts/deps.sh" bench

# The reference program, against the 6.12 uapi headers QEMU was built with
# (build/qemu/linux-headers), else Debian's linux-headers-6.12 package.
mkdir -p "$out/include/linux"
for h in vfio.h iommufd.h; do
    if [ -f "$top/build/qemu/linux-headers/linux/$h" ]; then
        cp "$top/build/qemu/linux-headers/linux/$h" "$out/include/linux/$h"
    else
        src=$(ls -d /usr/src/linux-headers-6.*-common/include/uapi 2>/dev/null |
              tail -n 1)
        [ -n "$src" ] || { say "no 6.x uapi headers for $h" >&2; exit 1; }
        sed 's/__user//g' "$src/linux/$h" >"$out/include/linux/$h"
    fi
done
cc -O2 -Wall -Wextra -Werror -I "$out/include" -o "$out/ioas-map-ref" \
    "$here/ioas-map-ref.c" -lpthread

# The guests of the large and running parts: the test bed's kernel and the
# guest tier's initramfs (edu_guest.ko, guest-vfio), as make check builds
# them.
kernel=$("$top/tests/testbed/build-kernel.sh" | tail -n 1)
tree=$(sed -n 's/^SRC_PATH=//p' "$obj/config-host.mak")
# The driver's library (tests/pylib) on QEMU's own python/qemu.
pythonpath=$top/tests:$tree/python
"$top/tests/guest/build.sh" "$(dirname "$kernel")/build" "$tree" \
    "$obj/guest" >/dev/null

# The peer: Debian's later upstream QEMU (BENCH_PEER=none: without it).
peer=
if [ "${BENCH_PEER:-}" != none ]; then
    peer=${BENCH_PEER:-$("$top/scripts/peer-qemu.sh")} ||
        { say "no peer QEMU (scripts/peer-qemu.sh failed)" >&2; exit 1; }
fi

host_load() { cut -d' ' -f1-3 /proc/loadavg; }
load_before=$(host_load)
say "host load before: $load_before"

rm -rf "$results"
mkdir -p "$results" "$docs"
rc=0
"$top/tests/testbed/run-l1.sh" --kernel "$kernel" \
    --mem "${BENCH_L1_MEM:-10G}" --timeout 4500 --results "$results" \
    --env PYTHONPATH="$pythonpath" \
    --env BENCH_QEMU="$qemu" --env BENCH_REF="$out/ioas-map-ref" \
    --env BENCH_KERNEL="$kernel" --env BENCH_GUEST_DIR="$obj/guest" \
    --env BENCH_QUICK --env BENCH_ONLY --env BENCH_MAP_SIZES \
    --env BENCH_MAP_RUNS --env BENCH_LARGE_SIZES --env BENCH_LARGE_RUNS \
    --env BENCH_LARGE_RUNS_OTHER --env BENCH_PMAP_SIZES --env BENCH_PMAP_RUNS \
    --env BENCH_RUNNING_RUNS --env BENCH_VIOMMU_RUNS --env BENCH_VIOMMU_CYCLES \
    --env BENCH_VIOMMU_TRACED --env BENCH_PEER="$peer" \
    -- /usr/bin/python3 "$here/driver.py" || rc=$?
load_after=$(host_load)
say "host load after: $load_after"
if [ ! -f "$results/raw.json" ]; then
    say "the driver wrote no results (status $rc); L1 console: $results/.l1/console.log" >&2
    exit 1
fi

# What the L1 side cannot see: the host.
python3_json() { /usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }
cat >"$out/host.json" <<EOF
{
 "date": $(python3_json "$(date -u '+%Y-%m-%d %H:%M UTC')"),
 "uname": $(python3_json "$(uname -srvm)"),
 "cpu": $(python3_json "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"),
 "cpus": $(nproc),
 "outer_qemu": $(python3_json "$(${L1_QEMU:-qemu-system-x86_64} --version | head -n 1)"),
 "loadavg_before": $(python3_json "$load_before" | sed 's/ /", "/g; s/^/[/; s/$/]/'),
 "loadavg_after": $(python3_json "$load_after" | sed 's/ /", "/g; s/^/[/; s/$/]/'),
 "elapsed": $(( $(date +%s) - start ))
}
EOF
/usr/bin/python3 "$here/report.py" "$results/raw.json" "$out/host.json" \
    "$docs" "$out" || rc=1
say "report: $docs/REPORT.md (raw logs: $results/logs)"
say "took $(( $(date +%s) - start )) s"
[ "$rc" = 0 ] || say "something broke (status $rc); see above" >&2
exit "$rc"
