"""Large guests: mapping guest RAM of 1-8 GiB, and
the time from exec to the guest's init, on both paths, with three kinds of
guest RAM: plain anonymous memory, hugetlbfs, and prealloc=on.

Each run boots a real guest (the guest tier's kernel and initramfs, KVM in
L1) with or without an assigned edu, so one run gives both figures: the
map time from QEMU's trace (the first RAM section the listener saw to the
last map call before the device's info was read: wall time, which is what
counts once several threads map) and the time from exec to the guest's
init saying @@READY.  iommufd runs twice: with its default map-threads
(auto: chunks mapped by one thread per CPU where the RAM is preallocated
or on huge pages, one call per section otherwise) and with map-threads=1
(one call per section, as every VMM does).  The peer (a later upstream
QEMU, its iommufd backend) boots alike.  The reference program replays
QEMU's own calls (IOVAs, sizes, layout) from one thread and from two, on
memory of the same kind, and the same with type1.

Imported by driver.py; run inside L1 (it needs /dev/kvm, the edus bound
to vfio-pci, and hugetlbfs in L1's kernel).
"""

import os
import subprocess
import time
import types

from driver import LOGS, PEER, PEER_LABEL, QUICK, REF, QEMU, log, median, \
    read_trace, hexarg, map_spec, vfio_nodes
from pylib.devices import edu_arg, path_objects
from pylib.l2 import Guest

SIZES_GIB = [int(x) for x in os.environ.get(
    "BENCH_LARGE_SIZES", "1" if QUICK else "4").split()]
# Boots per variant and size, each kind: 5 for a spread.  The whole
# benchmark has to fit in 60 minutes on the 2-core machine, where one
# round of 4 GiB boots (13 guests and the reference's replays) takes
# about 3.5 minutes: hence one size, the one the map-threads target
# names.
RUNS = int(os.environ.get("BENCH_LARGE_RUNS", 1 if QUICK else 5))
RUNS_OTHER = int(os.environ.get("BENCH_LARGE_RUNS_OTHER", RUNS))
# hugetlb first: its pages are reserved while L1's memory is unfragmented.
KINDS = ["hugetlb", "anon", "prealloc"]
# QEMU variants: the device path and the iommufd object's map-threads
# ("iommufd": its default).  Without a device ("none") only on anonymous
# RAM: the guest's own start.  The peer on its iommufd backend.
VARIANTS = [("none", None), ("legacy", None), ("iommufd", None),
            ("iommufd-serial", 1)] + ([(PEER_LABEL, None)] if PEER else [])
# Parallel against serial map alone (no guest boot, -accel qtest): sizes
# (GiB) and interleaved pairs of starts, anonymous RAM.
PMAP_SIZES = [int(x) for x in os.environ.get(
    "BENCH_PMAP_SIZES", "4").split()]
# 3 pairs: under load a chunked start of fresh anonymous RAM took over a
# minute (against 5 s in one call).
PMAP_RUNS = int(os.environ.get("BENCH_PMAP_RUNS", 1 if QUICK else 3))
HUGEPAGES = "/dev/hugepages-bench"
GUEST_DIR = os.environ.get("BENCH_GUEST_DIR", "")


def guest_args(qemu=QEMU):
    """What pylib.l2.Guest wants of a command line."""
    return types.SimpleNamespace(
        qemu=qemu, kernel=os.environ["BENCH_KERNEL"],
        initrd=os.path.join(GUEST_DIR, "initramfs.cpio.gz"),
        workdir="/tmp", verbose=False, keep=False,
        logdir=os.path.join(LOGS, "guests"))


def memory_args(kind, gib):
    """-object and machine options for @gib GiB of guest RAM of @kind."""
    if kind == "anon":
        return [], ""
    if kind == "hugetlb":
        backend = ("memory-backend-file,id=ram0,size=%dG,mem-path=%s"
                   % (gib, HUGEPAGES))
    else:
        backend = ("memory-backend-ram,id=ram0,size=%dG,prealloc=on,"
                   "prealloc-threads=%d" % (gib, os.cpu_count()))
    return ["-object", backend], ",memory-backend=ram0"


def device_args(variant, bdf):
    if variant == "none":
        return []
    if variant == "legacy":
        return edu_arg("legacy", bdf, "hostdev0")
    # map-threads=1: one call per section; the default (and the peer,
    # which has no such property): unset.
    threads = 1 if variant == "iommufd-serial" else None
    return path_objects("iommufd", threads) + \
        edu_arg("iommufd", bdf, "hostdev0")


TRACE = ("vfio_listener_region_add_ram", "vfio_dma_map_chunks*",
         "vfio_get_device")


def map_phase(trace):
    """(wall seconds, map calls, threads) of the maps made while the
    device was attached: from the first RAM section to the last map before
    vfio_get_device.  Map calls are vfio_dma_map, or the backend's event
    for the peer, which has no vfio_dma_map; where vfio_get_device does not
    follow the maps (the peer), the attach ends at the first RAM section
    that came more than a second after the last map."""
    start = next((t for t, e, _ in trace
                  if e == "vfio_listener_region_add_ram"), None)
    if start is None:
        return None, 0, 1
    end = next((t for t, e, _ in trace
                if e == "vfio_get_device" and t >= start), None)
    names = {e for _, e, _ in trace}
    mapev = "vfio_dma_map" if "vfio_dma_map" in names else \
        "iommufd_backend_map_dma"
    last, calls, threads = start, 0, 1
    for t, e, a in trace:
        if t < start:
            continue
        if end is not None and t > end:
            break
        if end is None and e == "vfio_listener_region_add_ram" and \
                t - last > 1.0:
            break
        if e == mapev:
            calls += 1
            last = max(last, t)
        elif e == "vfio_dma_map_chunks_done":
            last = max(last, t)
        elif e == "vfio_dma_map_chunks":
            threads = max(threads, hexarg(a, "threads") or 1)
    return last - start, calls, threads


def boot(variant, kind, gib, bdf, tag):
    """One guest: exec to @@READY, and the map phase of its trace."""
    objs, machine = memory_args(kind, gib)
    qemu = PEER if PEER and variant == PEER_LABEL else QEMU
    g = Guest(guest_args(qemu), tag, objs + device_args(variant, bdf),
              mem="%dG" % gib, machine_extra=machine,
              extra=("-msg", "timestamp=on"), trace=TRACE)
    t0 = time.monotonic()
    try:
        g.start()
        ready = time.monotonic() - t0
    except Exception:
        g.quit()
        g.keep(True)
        raise
    g.quit()
    # A guest woken by the harness (its timer lost, see pylib.l2's
    # NUDGE_AFTER) waited for the harness: its exec-to-init is not the
    # guest's own.
    nudges = g.nudges
    trace = [x for x in read_trace(g.trace)]
    wall, calls, threads = map_phase(trace)
    # Keep the trace for the report's logs and the reference's spec.
    kept = os.path.join(LOGS, tag + ".trace")
    subprocess.run(["cp", g.trace, kept], check=False)
    g.keep(False)
    return {"ready": None if nudges else ready, "ready_nudged": ready,
            "nudges": nudges, "map": wall, "calls": calls,
            "threads": threads, "trace": kept}


def run_ref(kind, node, spec, threads, memory, tag):
    out = subprocess.run([REF, kind, node, spec, str(threads), memory],
                         check=True, capture_output=True, text=True).stdout
    with open(os.path.join(LOGS, tag + ".out"), "w") as f:
        f.write(out)
    wall = [ln for ln in out.split("\n") if ln.startswith("wall ")][0]
    return int(wall.split()[1]) / 1e9


def hugepages(n):
    with open("/proc/sys/vm/nr_hugepages", "w") as f:
        f.write("%d\n" % n)
    with open("/proc/sys/vm/nr_hugepages") as f:
        return int(f.read())


def bench_large(bdfs):
    bdf = bdfs[0]
    cdev, group = vfio_nodes(bdf)
    log("== large guests: %s GiB, %s, %d runs each"
        % (SIZES_GIB, ", ".join(KINDS), RUNS))
    os.makedirs(os.path.join(LOGS, "guests"), exist_ok=True)
    result = {"sizes_gib": SIZES_GIB, "kinds": KINDS, "runs": {},
              "ref": {}, "cpus": os.cpu_count()}
    os.makedirs(HUGEPAGES, exist_ok=True)
    for kind in KINDS:
        if kind == "hugetlb":
            want = max(SIZES_GIB) * 512 + 8
            got = hugepages(want)
            subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M",
                            "none", HUGEPAGES], check=True)
            log("  %d of %d huge pages reserved" % (got, want))
            if got < want:
                result.setdefault("skipped", {})[kind] = \
                    "only %d of %d huge pages" % (got, want)
                subprocess.run(["umount", HUGEPAGES], check=False)
                hugepages(0)
                continue
        try:
            bench_kind(kind, bdf, cdev, group, result)
        finally:
            if kind == "hugetlb":
                subprocess.run(["umount", HUGEPAGES], check=False)
                hugepages(0)
    return result


def bench_kind(kind, bdf, cdev, group, result):
    runs = result["runs"].setdefault(kind, {})
    refs = result["ref"].setdefault(kind, {})
    names = [v for v, _ in VARIANTS if kind == "anon" or v != "none"]
    for k, gib in enumerate(SIZES_GIB):
        r = runs.setdefault(str(gib), {v: [] for v in names})
        rr = refs.setdefault(str(gib), {})
        specs = {}
        for i in range(RUNS if kind == "anon" else RUNS_OTHER):
            # Rotate the order by run and by size: no variant always goes
            # first (and pays for what the one before left behind).
            j = (i + k) % len(names)
            order = names[j:] + names[:j]
            for v in order:
                tag = "large-%s-%d-%s-%d" % (kind, gib, v, i)
                x = boot(v, kind, gib, bdf, tag)
                r[v].append(x)
                if v.startswith("iommufd") and v not in specs and \
                        x["calls"]:
                    specs[v] = os.path.join(LOGS, tag + ".spec")
                    map_spec(read_trace(x["trace"]), specs[v],
                             "vfio_get_device")
            # The reference, on memory of the same kind: QEMU's calls of
            # one call per section from one thread, and its chunks from
            # the threads QEMU used; type1 too, on anonymous memory.
            refv = [("iommufd-1", "iommufd", cdev, "iommufd-serial", 1),
                    ("iommufd-n", "iommufd", cdev, "iommufd",
                     result["cpus"])]
            if kind == "anon":
                refv += [("type1-1", "type1", group, "iommufd-serial", 1),
                         ("type1-n", "type1", group, "iommufd",
                          result["cpus"])]
            for name, how, node, spec, threads in refv:
                tag = "large-%s-%d-ref-%s-%d" % (kind, gib, name, i)
                rr.setdefault(name, []).append(
                    run_ref(how, node, specs[spec], threads, kind, tag))
        med = {v: {q: median([x[q] for x in r[v] if x[q] is not None])
                   for q in ("ready", "map")} for v in names}
        log("  %-8s %d GiB: " % (kind, gib) + "; ".join(
            "%s map %s init %s" % (
                v, "—" if med[v]["map"] is None else "%.3f s" % med[v]["map"],
                "— (woken)" if med[v]["ready"] is None
                else "%.2f s" % med[v]["ready"]) for v in names) +
            "; ref " + ", ".join("%s %.3f s" % (k, median(x))
                                 for k, x in rr.items()))


def bench_parallel(bdfs):
    """Map time alone, one call per section (map-threads=1, the default)
    against chunks from one thread per CPU (map-threads=0): QEMU started with -accel qtest (no guest
    code runs; the map is the same as at a real start), quit once QMP
    answers.  Pairs interleaved, the first of a pair alternating."""
    from driver import Vm
    bdf = bdfs[0]
    log("== parallel map: %s GiB, anonymous RAM, %d pairs: map-threads=1 "
        "against chunks (map-threads=%d)" % (PMAP_SIZES, PMAP_RUNS,
                                              os.cpu_count()))
    out = {"sizes_gib": PMAP_SIZES, "runs": {}}
    events = TRACE + ("vfio_dma_map",)
    for gib in PMAP_SIZES:
        r = out["runs"].setdefault(str(gib), {"serial": [], "parallel": []})
        for i in range(PMAP_RUNS):
            order = ["serial", "parallel"] if i % 2 else ["parallel",
                                                          "serial"]
            for v in order:
                # Chunks forced: the default (auto) maps anonymous RAM in
                # one call.
                obj = "iommufd,id=iommufd0,map-threads=%d" % (
                    1 if v == "serial" else os.cpu_count())
                vm = Vm("pmap-%d-%s-%d" % (gib, v, i),
                        ["-object", obj] + edu_arg("iommufd", bdf, "hostdev0"),
                        mem="%dG" % gib, events=events)
                vm.quit()
                wall, calls, threads = map_phase(read_trace(vm.trace))
                r[v].append({"map": wall, "calls": calls,
                             "threads": threads})
        s, p = (median([x["map"] for x in r[v]]) for v in ("serial",
                                                          "parallel"))
        log("  %d GiB: serial %.3f s, parallel %.3f s (%d threads): %.2f"
            % (gib, s, p, r["parallel"][0]["threads"], p / s))
    return out
