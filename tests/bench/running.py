"""A running guest: what a user of the guest feels, on
both paths and without a device, from the guest tier's guests (its kernel,
initramfs, edu_guest.ko and guest-vfio) booted on our QEMU in L1.

- exec to init: QEMU started to the guest's init saying @@READY (256 MiB,
  KVM, no vIOMMU).
- DMA: edu_guest's round trip (4095 bytes to the device and back through
  the DMA API, both completions by MSI), 20 in one guest command; the
  time per round trip and the bytes moved per second.  edu's DMA engine
  runs on a 100 ms timer of the outer emulator, which sets this figure.
- interrupt latency: edu_guest raising an interrupt through the device
  and waiting for its delivery, 2000 in one guest command: time per
  interrupt.
- vIOMMU map+unmap rate: guest-vfio in a guest with intel-iommu
  (caching-mode), 2000 IOMMU_IOAS_MAP + UNMAP cycles of one page in the
  guest, each a vIOMMU invalidation that QEMU turns into a host map or
  unmap: cycles per second, by the guest's own clock around the cycles
  (guest-vfio's ns=), without the DMA round trips that frame them.
  Beside it, the kernel's own cost of that host
  map + unmap: ioas-map-ref's cycles of one page on each path, no guest.

The guest-side figures are timed in L1 around the guest command (the
guest's busybox has no sub-second clock); the time of an empty command
(the control channel's round trip) is measured alike and subtracted.
"""

import os
import statistics
import subprocess
import time

from driver import PEER, PEER_VIOMMU, QUICK, REF, log, median, \
    peer_variants, qemu_of, vfio_nodes
from large import guest_args
from pylib.devices import edu_arg, path_objects
from pylib.inguest import bind_vfio, edu_stats, guest_edus, insmod, kv
from pylib.l2 import Guest

RUNS = int(os.environ.get("BENCH_RUNNING_RUNS", 1 if QUICK else 5))
DMA_ROUNDS = 20
IRQS = 2000
CYCLES = int(os.environ.get("BENCH_RUNNING_CYCLES", "2000"))
CYCLES_IOVA = 0x200000
VARIANTS = ["none", "legacy", "iommufd"] + peer_variants()
# Those with a device, which the vIOMMU guests run.
DEVICE_VARIANTS = VARIANTS[1:]
TRACE = ("vfio_get_device",)


def devices(variant, bdf):
    if variant == "none":
        return []
    _, path = qemu_of(variant)
    return path_objects(path) + edu_arg(path, bdf, "edu0")


def timed(g, cmd, timeout=600):
    t0 = time.perf_counter()
    out = g.sh(cmd, timeout=timeout)
    return time.perf_counter() - t0, out


def channel(g, n=5):
    """The control channel's own round trip: median of n empty commands."""
    return statistics.median(timed(g, "true")[0] for _ in range(n))


def plain_guest(variant, bdf, i):
    g = Guest(guest_args(qemu_of(variant)[0]), "running-%s-%d" % (variant, i),
              devices(variant, bdf), trace=TRACE, cpu=0)
    t0 = time.monotonic()
    g.start()
    r = {"ready": time.monotonic() - t0}
    try:
        if variant != "none":
            edu = guest_edus(g)[0]
            base = "/sys/bus/pci/devices/%s" % edu
            insmod(g, msi=True)
            empty = channel(g)
            t, _ = timed(g, "for i in $(seq %d); do echo '4095 0' > "
                         "%s/edu_dma || exit 1; done" % (DMA_ROUNDS, base))
            res = kv(g.sh("cat %s/edu_dma" % base))
            if res.get("result") != "ok":
                raise RuntimeError("edu_guest DMA: %s" % res)
            r["dma_round_trip"] = (t - empty) / DMA_ROUNDS
            t, _ = timed(g, "echo %d > %s/edu_irq" % (IRQS, base))
            st = edu_stats(g, edu)
            if st.get("raised") != st.get("delivered"):
                raise RuntimeError("interrupts lost: %s" % st)
            r["irq_latency"] = (t - empty) / IRQS
            r["channel"] = empty
    finally:
        g.quit()
        g.keep(False)
    return r


def viommu_guest(variant, bdf, i):
    qemu = qemu_of(variant)[0]
    g = Guest(guest_args(qemu), "running-viommu-%s-%d" % (variant, i),
              devices(variant, bdf), trace=TRACE, cpu=0,
              viommu=PEER_VIOMMU if qemu == PEER else True)
    g.start()
    try:
        edu = guest_edus(g)[0]
        bind_vfio(g, edu)
        empty = channel(g)
        t, out = timed(g, "guest-vfio %s cycles %d 0x%x"
                       % (edu, CYCLES, CYCLES_IOVA))
        res = kv(out.strip().splitlines()[-1])
        if res.get("result") != "ok":
            raise RuntimeError("guest-vfio cycles: %s" % out.strip())
        # The guest's own clock around the cycles alone: L1's clock around
        # the command also takes in the two DMA round trips (edu's 100 ms
        # timer) that frame them, the same on every path.
        own = int(res["ns"]) / 1e9
        return {"cycles_per_s": CYCLES / own, "cycles_time": own,
                "cycles_wall": t - empty}
    finally:
        g.quit()
        g.keep(False)


def ref_cycles(bdf):
    """The kernel's own map + unmap of one page, per path: the median of
    each of three ioas-map-ref runs, in seconds."""
    cdev, group = vfio_nodes(bdf)
    out = {"iommufd": [], "type1": []}
    for i in range(3):
        for kind in (("iommufd", "type1") if i % 2 == 0
                     else ("type1", "iommufd")):
            node = cdev if kind == "iommufd" else group
            res = subprocess.run([REF, kind, node, "cycles", str(CYCLES)],
                                 check=True, capture_output=True,
                                 text=True).stdout.split()
            out[kind].append(int(res[2]) / 1e9)
    return out


def bench_running(bdfs):
    bdf = bdfs[0]
    log("== running guest: %d runs each, interleaved" % RUNS)
    runs = {v: [] for v in VARIANTS}
    viommu = {v: [] for v in DEVICE_VARIANTS}
    for i in range(RUNS):
        k = i % len(VARIANTS)
        for v in VARIANTS[k:] + VARIANTS[:k]:
            runs[v].append(plain_guest(v, bdf, i))
        k = i % len(DEVICE_VARIANTS)
        for v in DEVICE_VARIANTS[k:] + DEVICE_VARIANTS[:k]:
            viommu[v].append(viommu_guest(v, bdf, i))
    med = {}
    for v in VARIANTS:
        med[v] = {k: median([r[k] for r in runs[v] if k in r])
                  for k in ("ready", "dma_round_trip", "irq_latency")}
        if v in viommu:
            med[v]["cycles_per_s"] = median(
                [r["cycles_per_s"] for r in viommu[v]])
    ref = ref_cycles(bdf)
    for v in VARIANTS:
        log("  %-8s " % v + ", ".join(
            "%s %s" % (k, "—" if x is None else "%.4g" % x)
            for k, x in med[v].items()))
    log("  kernel's own map+unmap of a page: " + ", ".join(
        "%s %.1f us" % (k, median(x) * 1e6) for k, x in ref.items()))
    return {"runs": runs, "viommu": viommu, "median": med,
            "dma_rounds": DMA_ROUNDS, "irqs": IRQS, "cycles": CYCLES,
            "ref_cycle": ref}
