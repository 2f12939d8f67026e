"""Where a guest's vIOMMU map+unmap cycle spends its time, on each path
and on the peer QEMUs.

A guest with intel-iommu (caching-mode) runs guest-vfio's cycles of one
page: each IOMMU_IOAS_MAP and UNMAP in the guest is a queued invalidation
that the QEMU under test walks (vtd_*) and turns into a host map or unmap
(vfio_iommu_map_notify, then the container's call).  Per guest:

- the cycles untraced, timed by the guest's own clock (guest-vfio's ns=),
  with the vCPU's KVM statistics (query-stats) around them: exits of each
  kind per cycle;
- then fewer cycles with the trace events below on (QMP
  trace-event-set-state), whose log timestamps (-msg timestamp=on, µs)
  cut each cycle into steps: between two consecutive events, the time
  and how often per cycle.  The step from vfio_iommu_map_notify to the
  event after the container's call is the host ioctl and QEMU's wrapper
  around it; the steps outside QEMU's events are the guest's own work and
  the exits that bring each invalidation to QEMU.

Imported by driver.py (part "viommu"), run inside L1.
"""

import os
import time

from driver import LOGS, QUICK, log, median, read_trace
from pylib.devices import edu_arg, path_objects
from pylib.inguest import bind_vfio, guest_edus, kv
from pylib.l2 import Guest

CYCLES = int(os.environ.get("BENCH_VIOMMU_CYCLES", 500 if QUICK else 2000))
TRACED = int(os.environ.get("BENCH_VIOMMU_TRACED", 200))
IOVA = 0x200000
# The events of one cycle, in the order a cycle meets them.
EVENTS = ("vtd_reg_write", "vtd_reg_read", "vtd_inv_qi_tail",
          "vtd_inv_desc_iotlb_pages", "vtd_inv_desc_iotlb_domain",
          "vtd_inv_desc_iotlb_global", "vtd_page_walk_one",
          "vtd_page_walk_one_skip_map", "vtd_page_walk_one_skip_unmap",
          "vfio_iommu_map_notify", "iommufd_backend_map_dma",
          "iommufd_backend_unmap_dma", "iommufd_backend_unmap_dma_non_exist",
          "vfio_dma_map", "vfio_dma_unmap",
          "vtd_inv_desc_wait_sw", "vtd_inv_desc_wait_irq")


def guest_args(qemu):
    from large import guest_args as args
    a = args()
    a.qemu = qemu
    return a


def vcpu_stats(g):
    """The vCPU's KVM statistics (integers only)."""
    r = g.qmp("query-stats", target="vcpu")
    return {s["name"]: s["value"] for s in r[0]["stats"]
            if isinstance(s["value"], int)}


def set_trace(g, state):
    """Turn EVENTS on or off, those this QEMU has (the peer's differ)."""
    have = {e["name"] for e in g.qmp("trace-event-get-state", name="*")}
    for ev in EVENTS:
        if ev in have:
            g.qmp("trace-event-set-state", name=ev, enable=state)


def cycles(g, edu, n):
    """Run n cycles in the guest: seconds per cycle by the guest's clock,
    and by L1's clock around the command."""
    t0 = time.perf_counter()
    out = g.sh("guest-vfio %s cycles %d 0x%x" % (edu, n, IOVA), timeout=900)
    wall = time.perf_counter() - t0
    res = kv(out.strip().splitlines()[-1])
    if res.get("result") != "ok":
        raise RuntimeError("guest-vfio cycles: %s" % out.strip())
    return int(res["ns"]) / 1e9 / n, wall / n


def steps(trace, n):
    """{"A > B": [µs per cycle, times per cycle]} over the traced cycles:
    the time from each event to the next, by the pair of names.  An event
    is named with its op where it has one (MAP/UNMAP).  The time per
    cycle is the median gap times how often the pair comes per cycle: the
    traced window also holds the DMA round trips that frame the cycles
    (edu's 100 ms timer), which a sum would spread over every cycle."""
    def name(e, a):
        if e == "vfio_iommu_map_notify":
            return e + (" UNMAP" if "UNMAP" in a else " MAP")
        if e == "vtd_reg_write" or e == "vtd_reg_read":
            return e + " " + a.split()[1]       # the register's offset
        return e
    tr = [(t, name(e, a)) for t, e, a in trace if t is not None]
    gaps = {}
    for (t0, a), (t1, b) in zip(tr, tr[1:]):
        gaps.setdefault("%s > %s" % (a, b), []).append((t1 - t0) * 1e6)
    return {k: [median(v) * len(v) / n, len(v) / n]
            for k, v in gaps.items()}


def profile(qemu, label, variant, bdf, viommu, tag):
    devices = path_objects(variant) + edu_arg(variant, bdf, "edu0")
    g = Guest(guest_args(qemu), tag, devices, viommu=viommu,
              extra=("-msg", "timestamp=on"), trace=(), cpu=0)
    g.start()
    try:
        set_trace(g, False)
        edu = guest_edus(g)[0]
        bind_vfio(g, edu)
        cycles(g, edu, 20)                      # warm the paths up
        a = vcpu_stats(g)
        guest, wall = cycles(g, edu, CYCLES)
        b = vcpu_stats(g)
        exits = {k: (b[k] - a.get(k, 0)) / CYCLES for k in b
                 if b[k] != a.get(k, 0)}
        mark = os.path.getsize(g.trace) if os.path.exists(g.trace) else 0
        set_trace(g, True)
        traced, _ = cycles(g, edu, TRACED)
        set_trace(g, False)
    finally:
        g.quit()
    with open(g.trace, errors="replace") as f:
        f.seek(mark)
        kept = os.path.join(LOGS, tag + ".trace")
        with open(kept, "w") as out:
            out.write(f.read())
    g.keep(False)
    trace = read_trace(kept)
    # Only the traced cycles: from the first map notify on.
    start = next((i for i, (_, e, a) in enumerate(trace)
                  if e == "vfio_iommu_map_notify" and "UNMAP" not in a), 0)
    return {"label": label, "cycle": guest, "cycle_wall": wall,
            "cycle_traced": traced, "exits": exits,
            "steps": steps(trace[start:], TRACED), "trace": kept}


def summary(runs):
    """Medians over runs of each figure and step."""
    out = {"cycle": median([r["cycle"] for r in runs]),
           "cycle_min": min(r["cycle"] for r in runs),
           "cycle_max": max(r["cycle"] for r in runs),
           "cycle_traced": median([r["cycle_traced"] for r in runs]),
           "exits": {}, "steps": {}}
    for k in sorted({k for r in runs for k in r["exits"]}):
        out["exits"][k] = median([r["exits"].get(k, 0) for r in runs])
    for k in sorted({k for r in runs for k in r["steps"]}):
        out["steps"][k] = [median([r["steps"].get(k, [0, 0])[i]
                                   for r in runs]) for i in (0, 1)]
    return out


def bench_viommu(bdfs, peers, runs=None):
    """peers: [(label, qemu, viommu options)] of the QEMUs to profile
    beside ours, on iommufd and legacy each."""
    from driver import QEMU
    runs = runs or int(os.environ.get("BENCH_VIOMMU_RUNS", 1 if QUICK else 3))
    bdf = bdfs[0]
    who = [("ours", QEMU, True)] + list(peers)
    variants = [(label, qemu, vi, path) for label, qemu, vi in who
                for path in ("iommufd", "legacy")]
    log("== vIOMMU cycle profile: %s, %d runs, %d cycles (%d traced)"
        % (", ".join("%s-%s" % (v[0], v[3]) for v in variants), runs,
           CYCLES, TRACED))
    out = {"cycles": CYCLES, "traced": TRACED, "runs": {}, "summary": {}}
    for i in range(runs):
        k = i % len(variants)
        for label, qemu, vi, path in variants[k:] + variants[:k]:
            key = "%s-%s" % (label, path)
            r = profile(qemu, label, path, bdf, vi,
                        "viommu-%s-%d" % (key, i))
            out["runs"].setdefault(key, []).append(r)
            log("  %-18s cycle %.1f us (guest clock), traced %.1f us, "
                "exits/cycle %.1f" % (key, r["cycle"] * 1e6,
                                      r["cycle_traced"] * 1e6,
                                      r["exits"].get("exits", 0)))
    for key, rs in out["runs"].items():
        s = out["summary"][key] = summary(rs)
        top = sorted(s["steps"].items(), key=lambda kv: -kv[1][0])[:8]
        log("  %s: cycle %.1f us (%.1f-%.1f); exits %s; steps %s" % (
            key, s["cycle"] * 1e6, s["cycle_min"] * 1e6,
            s["cycle_max"] * 1e6,
            ", ".join("%s %.2f" % kv for kv in s["exits"].items()
                      if kv[0].endswith("exits")),
            "; ".join("%s %.1f us x%.2f" % (k, v[0], v[1])
                      for k, v in top)))
    return out
