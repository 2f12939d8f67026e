"""The report's sections on large guests and on a running guest:
figures, ratios, flags and plots from the "large" and "running" parts of
raw.json (tests/bench/large.py, running.py).  Used by report.py.

Ratios follow report.py's rule (above 1.00: the first costs more); time
per cycle stands for the vIOMMU map+unmap rate, so that it does too.
Flagged: iommufd above 1.00 against legacy, QEMU above 1.10 against the
reference, and the parallel map above 0.70 of the serial one at 4 GiB
and more (the target).
"""

from report_fmt import cell_range, fmt_r, fmt_rv, fmt_s, med, p_faster, \
    ratio, verdict

KIND_TITLE = {"anon": "anonymous RAM", "hugetlb": "hugetlbfs (2 MiB pages)",
              "prealloc": "anonymous RAM, prealloc=on"}
VARIANT_TITLE = {"none": "no device", "legacy": "legacy",
                 "iommufd": "iommufd, default map-threads (auto: chunks on "
                            "%s threads only where RAM is preallocated or "
                            "on huge pages)",
                 "iommufd-serial": "iommufd, map-threads=1 (one call per "
                                   "section)",
                 "upstream": "upstream, iommufd"}
REF_TITLE = {"iommufd-1": "reference, iommufd, 1 thread",
             "iommufd-n": "reference, iommufd, chunks, %s threads",
             "type1-1": "reference, type1, 1 thread",
             "type1-n": "reference, type1, chunks, %s threads"}
PARALLEL_TARGET = 0.70
RUNNING_METRICS = [
    ("ready", "exec to guest init (256 MiB)", "s"),
    ("dma_round_trip", "DMA round trip, 2 × 4095 bytes (edu_guest)", "s"),
    ("irq_latency", "interrupt, raise to delivery (edu_guest)", "s"),
    ("cycle_time", "vIOMMU map+unmap cycle (guest-vfio)", "s"),
]


def sizes(large):
    return [str(s) for s in large["sizes_gib"]]


def values(large, kind, gib, variant, key):
    runs = large["runs"].get(kind, {}).get(gib, {}).get(variant, [])
    return [r[key] for r in runs if r.get(key) is not None]


def threads_used(large):
    used = set()
    for kind in large["runs"].values():
        for per in kind.values():
            for r in per.get("iommufd", []):
                used.add(r.get("threads", 1))
    return "/".join(str(t) for t in sorted(used)) or "?"


def compute(rep):
    raw = rep.raw
    if "large" in raw:
        lg = raw["large"]
        out = {}
        for kind in lg["runs"]:
            for gib in sizes(lg):
                m = {v: med(values(lg, kind, gib, v, "map"))
                     for v in ("legacy", "iommufd", "iommufd-serial")}
                i = {v: med(values(lg, kind, gib, v, "ready"))
                     for v in ("none", "legacy", "iommufd",
                               "iommufd-serial")}
                ref = {k: med(x) for k, x in
                       lg["ref"].get(kind, {}).get(gib, {}).items()}
                out.setdefault(kind, {})[gib] = {
                    "map iommufd/legacy": ratio(m["iommufd"], m["legacy"]),
                    "map serial/legacy":
                        ratio(m["iommufd-serial"], m["legacy"]),
                    "map parallel/serial":
                        ratio(m["iommufd"], m["iommufd-serial"]),
                    "map qemu/ref (parallel)":
                        ratio(m["iommufd"], ref.get("iommufd-n")),
                    "map qemu/ref (serial)":
                        ratio(m["iommufd-serial"], ref.get("iommufd-1")),
                    "ref iommufd parallel/serial":
                        ratio(ref.get("iommufd-n"), ref.get("iommufd-1")),
                    "ref type1 parallel/serial":
                        ratio(ref.get("type1-n"), ref.get("type1-1")),
                    "init iommufd/legacy": ratio(i["iommufd"], i["legacy"]),
                    "init serial/legacy":
                        ratio(i["iommufd-serial"], i["legacy"]),
                    "init default/serial":
                        ratio(i["iommufd"], i["iommufd-serial"]),
                }
        rep.ratios["large"] = out
    if "parallel" in raw:
        rep.ratios["parallel"] = {
            gib: ratio(med([x["map"] for x in r["parallel"]]),
                       med([x["map"] for x in r["serial"]]))
            for gib, r in raw["parallel"]["runs"].items()}
    if "running" in raw:
        rn = raw["running"]
        m = running_medians(rn)
        rep.ratios["running"] = {
            k: ratio(m["iommufd"].get(k), m["legacy"].get(k))
            for k, _, _ in RUNNING_METRICS}


def running_values(rn, variant, key):
    if key == "cycle_time":
        return [r["cycles_time"] / rn["cycles"]
                for r in rn["viommu"].get(variant, [])]
    return [r[key] for r in rn["runs"].get(variant, []) if key in r]


def running_medians(rn):
    return {v: {k: med(running_values(rn, v, k))
                for k, _, _ in RUNNING_METRICS}
            for v in ("none", "legacy", "iommufd")}


def spread(a, b, what):
    """A line on how two variants' runs compare, run by run."""
    if not a or not b:
        return None
    p = p_faster(a, b)
    return ("run to run: %s %s–%s against %s–%s; in %d%% of run pairs "
            "the first was the faster" % (what, fmt_s(min(a)), fmt_s(max(a)),
                                          fmt_s(min(b)), fmt_s(max(b)),
                                          round(100 * p)))


def explain(rep):
    raw, R = rep.raw, rep.ratios
    if "large" in R:
        lg = raw["large"]
        for kind, per in R["large"].items():
            for gib, r in per.items():
                title = "%s GiB, %s" % (gib, KIND_TITLE[kind])
                pr = r["map parallel/serial"]
                # The target applies where the default maps in chunks.
                if pr is not None and int(gib) >= 4 and kind != "anon" and \
                        round(pr, 2) > PARALLEL_TARGET:
                    rep.flag("map time, parallel/serial, " + title, pr,
                             "the target 0.70", why_parallel(lg, kind, gib,
                                                             r),
                             close_parallel(kind))
                for key, against in (("map iommufd/legacy", "legacy"),
                                     ("init iommufd/legacy", "legacy")):
                    x = r[key]
                    if x is not None and round(x, 2) > 1.0:
                        what = "map" if key.startswith("map") else "ready"
                        a = values(lg, kind, gib, "iommufd", what)
                        b = values(lg, kind, gib, "legacy", what)
                        why = [w for w in (spread(a, b, "iommufd"),) if w]
                        if what == "ready":
                            why.append(init_parts(lg, kind, gib))
                        rep.flag("%s, %s" % (
                            "map time" if what == "map" else
                            "exec to guest init", title), x, against, why,
                            close_large(what, kind))
                x = r["map qemu/ref (serial)"]
                if x is not None and round(x, 2) > 1.10:
                    rep.flag("map time, QEMU/reference, " + title, x,
                             "the reference",
                             [spread(values(lg, kind, gib, "iommufd-serial",
                                            "map"),
                                     lg["ref"][kind][gib].get("iommufd-1"),
                                     "QEMU") or "",
                              "QEMU's time runs from the first RAM section "
                              "the listener sees to the last map call "
                              "(trace timestamps, wall), so it includes "
                              "what QEMU does between the calls (the "
                              "listener's other sections, tracing); the "
                              "reference's is the calls alone"],
                             ["the calls are the reference's: the gap is "
                              "between them; more runs show whether it is "
                              "more than the run-to-run spread"])
                x = r["map qemu/ref (parallel)"]
                if x is not None and round(x, 2) > 1.10:
                    rep.flag("map time, QEMU/reference (chunks), " + title,
                             x, "the reference",
                             [spread(values(lg, kind, gib, "iommufd", "map"),
                                     lg["ref"][kind][gib].get("iommufd-n"),
                                     "QEMU") or "",
                              "QEMU's time runs from the first RAM section "
                              "the listener sees to the last map call "
                              "(trace timestamps), so it includes the small "
                              "sections mapped one by one and the thread "
                              "start and join of each split section; the "
                              "reference starts its threads once and takes "
                              "QEMU's calls from one queue"],
                             ["map all RAM sections of a listener "
                              "transaction from one pool of threads (at "
                              "commit) instead of section by section"])
    if "parallel" in R:
        pm = raw["parallel"]
        for gib, x in R["parallel"].items():
            if x is None or int(gib) < 4 or round(x, 2) <= PARALLEL_TARGET:
                continue
            r = pm["runs"][gib]
            a = [y["map"] for y in r["parallel"]]
            b = [y["map"] for y in r["serial"]]
            why = [spread(a, b, "chunks")]
            lr = R.get("large", {}).get("anon", {}).get(gib)
            if lr:
                why += why_parallel(raw["large"], "anon", gib, lr)
            rep.flag("map time alone, parallel/serial, %s GiB, anonymous "
                     "RAM" % gib, x, "the target 0.70", why,
                     close_parallel("anon"))
    if "running" in R:
        rn = raw["running"]
        for k, title, _ in RUNNING_METRICS:
            x = R["running"][k]
            if x is None or round(x, 2) <= 1.0:
                continue
            a, b = running_values(rn, "iommufd", k), \
                running_values(rn, "legacy", k)
            why, close = [spread(a, b, "iommufd"), RUNNING_WHY.get(k, "")], \
                [RUNNING_CLOSE.get(k, "")]
            if k == "cycle_time" and "ref_cycle" in rn:
                why.append(ref_cycle_line(rn))
                close = [ref_cycle_close(rn)]
            rep.flag("running guest, " + title, x, "legacy", why, close)


def fmt_us(x):
    return "%.1f µs" % (x * 1e6)


def cell_us(xs):
    return "%s (%s–%s)" % (fmt_us(med(xs)), fmt_us(min(xs)), fmt_us(max(xs)))


def ref_cycle_ratio(rn):
    rc = rn["ref_cycle"]
    return ratio(med(rc["iommufd"]), med(rc["type1"]))


def ref_cycle_gap(rn):
    """How much of the guest's cycle gap the kernel's own calls make up."""
    rc = rn["ref_cycle"]
    kernel = med(rc["iommufd"]) - med(rc["type1"])
    guest = med(running_values(rn, "iommufd", "cycle_time")) - \
        med(running_values(rn, "legacy", "cycle_time"))
    return kernel, guest


def ref_cycle_line(rn):
    rc = rn["ref_cycle"]
    kernel, guest = ref_cycle_gap(rn)
    return ("the kernel alone (ioas-map-ref, no guest, %d cycles of one "
            "page, %d runs): IOMMU_IOAS_MAP + UNMAP %s against "
            "VFIO_IOMMU_MAP_DMA + UNMAP_DMA %s (%s), %s more a cycle, of "
            "the %s by which a guest's cycle differs" % (
                rn["cycles"], len(rc["iommufd"]), fmt_us(med(rc["iommufd"])),
                fmt_us(med(rc["type1"])), fmt_r(ref_cycle_ratio(rn)),
                fmt_us(kernel), fmt_us(guest)))


def ref_cycle_close(rn):
    kernel, guest = ref_cycle_gap(rn)
    if guest > 0 and kernel >= guest / 2:
        return ("nothing in QEMU: the kernel's own iommufd map + unmap of a "
                "page makes up most of the gap, and QEMU makes one call of "
                "each per guest invalidation on both paths; a kernel change "
                "(or batching the guest's invalidations) would")
    a, b = running_values(rn, "iommufd", "cycle_time"), \
        running_values(rn, "legacy", "cycle_time")
    p = p_faster(a, b)
    if 0.2 <= p <= 0.8:
        return ("not the kernel's calls, which make up %s of %s; the rest "
                "is within the run to run spread (above): more runs" % (
                    fmt_us(kernel), fmt_us(guest)))
    return ("not the kernel's calls, which make up %s of %s, and the runs "
            "agree on the gap: a profile of a guest's cycle on both paths "
            "(QEMU's notifier path, L1's exits) is the next step" % (
                fmt_us(kernel), fmt_us(guest)))


def init_parts(lg, kind, gib):
    m = {v: med(values(lg, kind, gib, v, "ready"))
         for v in ("none", "legacy", "iommufd")}
    mp = {v: med(values(lg, kind, gib, v, "map"))
          for v in ("legacy", "iommufd")}
    return ("no device %s; with the device legacy %s (map %s), iommufd %s "
            "(map %s): the rest is the guest's boot, the same work on both "
            "paths" % (fmt_s(m["none"]), fmt_s(m["legacy"]),
                       fmt_s(mp["legacy"]), fmt_s(m["iommufd"]),
                       fmt_s(mp["iommufd"])))


def why_parallel(lg, kind, gib, r):
    rp = r["ref iommufd parallel/serial"]
    lines = ["the kernel alone (the reference replaying QEMU's calls) gets "
             "%s from the same threads on the same memory, so that is the "
             "most QEMU can get here" % fmt_r(rp)]
    if kind == "prealloc":
        lines.append("with prealloc=on the pages are present before the "
                     "map: what is left to parallelise is pinning and the "
                     "IOMMU page tables, which take the IOAS's locks more "
                     "often per byte")
    if kind == "hugetlb":
        lines.append("hugetlbfs pages are pinned 2 MiB at a time and "
                     "zeroed when the file is faulted; a map call is short "
                     "and the fixed cost of each chunk weighs more")
    lines.append("L1's two vCPUs are threads of the outer emulator (TCG) on "
                 "a 2-core host that also runs other work (host load in "
                 "'Where it ran'): both threads' page faults take the same "
                 "spinlocks (zone, LRU, page table), and when the host "
                 "deschedules the vCPU that holds one, the other vCPU spins "
                 "on the CPU the holder needs; one thread leaves the other "
                 "vCPU idle and loses nothing to that")
    return lines


def close_parallel(kind):
    return ["CPUs to spare while the device attaches: an L1 whose vCPUs "
            "have host cores of their own (or KVM instead of TCG for L1, "
            "whose paravirtual spinlocks yield instead of spinning) should "
            "show the kernel's concurrent pinning; 2 vCPUs cap it at 0.5 "
            "at best; until it measures faster on fresh anonymous RAM, the "
            "default (auto) maps such RAM in one call",
            "prefaulting in the same threads (prealloc-threads) moves "
            "zeroing out of the map call" if kind == "anon" else
            "nothing QEMU-side: QEMU is at the reference's ratio"]


def close_large(what, kind):
    if what == "map":
        return ["the same calls as the reference; where QEMU's threads "
                "started later or finished apart (trace), a pool started "
                "once per listener transaction would save the start-up"]
    return ["guest boot time dominates: the device adds only its map time "
            "(above); more runs would show whether a difference remains"]


RUNNING_WHY = {
    "ready": "both paths start the same guest; the device's share is "
             "realize with its map (256 MiB)",
    "dma_round_trip": "edu's DMA engine waits for a 100 ms timer of the "
                      "outer emulator per transfer; the IOMMU translation "
                      "in L0's VT-d is the same for both paths",
    "irq_latency": "the interrupt path is the same on both paths (vfio-pci "
                   "MSI through an eventfd into KVM's irqfd); the IOMMU "
                   "backend is not on it",
    "cycle_time": "each guest map or unmap is a vIOMMU invalidation that "
                  "QEMU replays as one host IOMMU_IOAS_MAP or "
                  "VFIO_IOMMU_MAP_DMA (and UNMAP)",
}
RUNNING_CLOSE = {
    "ready": "more runs (the guests' boots vary by more than the device's "
             "share)",
    "dma_round_trip": "nothing backend-side: the timer sets it",
    "irq_latency": "nothing backend-side; more runs",
    "cycle_time": "compare the kernel's own IOMMU_IOAS_MAP/UNMAP of one page "
                  "with type1's in the reference program",
}


def summary_rows(rep):
    """Rows for report.py's "All figures" table."""
    import report_peer
    raw, R = rep.raw, rep.ratios
    L = report_peer.label(raw)
    rows = []
    if "large" in R:
        lg = raw["large"]
        for kind in R["large"]:
            for gib in sizes(lg):
                r = R["large"][kind].get(gib)
                if not r:
                    continue
                ref = lg["ref"].get(kind, {}).get(gib, {})
                a = values(lg, kind, gib, "iommufd", "map")
                s1 = values(lg, kind, gib, "iommufd-serial", "map")
                b = values(lg, kind, gib, "legacy", "map")
                u = values(lg, kind, gib, L, "map") if L else []
                rows.append(
                    "| map time, %s GiB, %s (median of %d) | %s (map-threads"
                    "=1: %s, default/serial %s) | %s | %s | %s (chunks, %d "
                    "threads: %s) | %s | %s | %s |"
                    % (gib, KIND_TITLE[kind], len(a), fmt_s(med(a)),
                       fmt_s(med(s1)), fmt_rv(a, s1), fmt_s(med(b)),
                       fmt_s(med(u)), fmt_s(med(ref.get("iommufd-1"))),
                       lg["cpus"], fmt_s(med(ref.get("iommufd-n"))),
                       fmt_rv(a, b), fmt_rv(a, u) if u else "—",
                       fmt_r(r["map qemu/ref (serial)"])))
        for kind in R["large"]:
            for gib in sizes(lg):
                r = R["large"][kind].get(gib)
                if not r:
                    continue
                a = values(lg, kind, gib, "iommufd", "ready")
                b = values(lg, kind, gib, "legacy", "ready")
                u = values(lg, kind, gib, L, "ready") if L else []
                rows.append(
                    "| exec to guest init, %s GiB, %s (no device: %s) | %s | "
                    "%s | %s | — | %s | %s | — |"
                    % (gib, KIND_TITLE[kind],
                       fmt_s(med(values(lg, kind, gib, "none", "ready"))),
                       fmt_s(med(a)), fmt_s(med(b)), fmt_s(med(u)),
                       fmt_rv(a, b), fmt_rv(a, u) if u else "—"))
    if "running" in R:
        rn = raw["running"]
        m = running_medians(rn)
        peer = "%s-iommufd" % L if L else None
        for k, title, _ in RUNNING_METRICS:
            a = running_values(rn, "iommufd", k)
            b = running_values(rn, "legacy", k)
            u = running_values(rn, peer, k) if peer else []
            rows.append("| running guest: %s (no device: %s) | %s | %s | %s "
                        "| — | %s | %s | — |" % (
                            title, fmt_s(m["none"][k]),
                            fmt_s(m["iommufd"][k]), fmt_s(m["legacy"][k]),
                            fmt_s(med(u)), fmt_rv(a, b),
                            fmt_rv(a, u) if u else "—"))
    if "viommu" in raw:
        vs = raw["viommu"]["runs"]
        cyc = {k: [r["cycle"] for r in v] for k, v in vs.items()}
        peer = "%s-iommufd" % L if L else None
        a, b = cyc.get("ours-iommufd", []), cyc.get("ours-legacy", [])
        u = cyc.get(peer, []) if peer else []
        rows.append("| vIOMMU map+unmap cycle, profile guests (section 9, "
                    "guest clock) | %s | %s | %s | — | %s | %s | — |" % (
                        fmt_s(med(a)), fmt_s(med(b)), fmt_s(med(u)),
                        fmt_rv(a, b), fmt_rv(a, u) if u else "—"))
    return rows


def write(rep, png_map, png_init, png_running):
    raw = rep.raw
    if "parallel" in raw:
        write_parallel(rep)
    if "large" in raw:
        write_large(rep, png_map, png_init)
    if "running" in raw:
        write_running(rep, png_running)


def write_parallel(rep):
    pm = rep.raw["parallel"]
    R = rep.ratios["parallel"]
    threads = sorted({x["threads"] for r in pm["runs"].values()
                      for x in r["parallel"]})
    rep.out("## 6. Parallel mapping: map time alone", "",
            "QEMU with one edu on iommufd, -machine pc, -accel qtest (no "
            "guest code runs; the map at realize is the one of a real "
            "start), anonymous guest RAM, quit once QMP answers: "
            "`map-threads=N` (one thread per CPU: %s, chunks forced; the "
            "default maps such RAM in one call) against `map-threads=1` "
            "(one call per section), %d pairs per size, the "
            "first of a pair alternating. Map time is wall time from "
            "QEMU's trace, as in section 7. What chunks would give on "
            "fresh anonymous RAM, against the %.2f that the default's "
            "chunks must reach on RAM whose pages are in place (0.5 is the "
            "limit of L1's two vCPUs). Medians (min–max):" % ("/".join(str(t) for t in threads),
                            max(len(r["serial"])
                                for r in pm["runs"].values()),
                            PARALLEL_TARGET), "",
            "| guest RAM | map-threads=1 | map-threads=N (chunks) | chunks / "
            "serial | map calls, chunks / serial |",
            "| ---: | ---: | ---: | ---: | ---: |")
    for gib in sorted(pm["runs"], key=int):
        r = pm["runs"][gib]
        rep.out("| %s GiB | %s | %s | %s | %s / %s |" % (
            gib, cell_range([x["map"] for x in r["serial"]]),
            cell_range([x["map"] for x in r["parallel"]]), fmt_r(R[gib]),
            r["parallel"][0]["calls"] if r["parallel"] else "—",
            r["serial"][0]["calls"] if r["serial"] else "—"))
    rep.out("", "![map time alone, serial against chunks](%s)" % "parallel-map.png",
            "")


def write_large(rep, png_map, png_init):
    lg = rep.raw["large"]
    n = threads_used(lg)
    rep.out("## 7. Large guests: map time and exec to guest init", "",
            "Guests of %s GiB, each run a real boot (KVM in L1, q35, the "
            "guest tier's kernel and initramfs, one vCPU) with an edu "
            "assigned on each path, or none, and guest RAM of three kinds: "
            "anonymous (as QEMU allocates it by default), hugetlbfs "
            "(`memory-backend-file` on a hugetlbfs mount of L1, 2 MiB "
            "pages) and `memory-backend-ram,prealloc=on,prealloc-threads=%d`. "
            "**Map time** is wall time from QEMU's trace (`-msg "
            "timestamp=on`): from the first RAM section the listener saw to "
            "the last map call before the device's info was read, so with "
            "several threads it is what the user waits, not the sum of the "
            "calls. **Exec to guest init** runs from exec to the guest's "
            "init announcing itself on its control line. iommufd runs with "
            "its default `map-threads` (auto: chunks on one thread per CPU, "
            "here %s, L1 has %d CPUs, where the RAM is preallocated or on "
            "huge pages; one call per section on other RAM) and with "
            "`map-threads=1`, one call per section; upstream is the peer on "
            "its iommufd backend. The "
            "reference, `ioas-map-ref`, replays QEMU's own calls (those of "
            "map-threads=1 and of the default) on memory of the "
            "same kind, from 1 thread and from %d taking calls from one "
            "queue; its type1 variant does the same through a container "
            "(anonymous memory only). Runs of each: %d, order rotated; "
            "medians (min–max). A ratio says win or loss only when the "
            "runs' ranges do not overlap." % (
                ", ".join(sizes(lg)), lg["cpus"], n, lg["cpus"],
                lg["cpus"], max(len(per["iommufd"])
                                for k in lg["runs"].values()
                                for per in k.values())), "")
    woken = sum(1 for k in lg["runs"].values() for per in k.values()
                for runs in per.values() for r in runs if r.get("nudges"))
    if woken:
        rep.out("%d boot(s) lost the guest's timer and were woken by the "
                "harness after 15 s of silence (the guest tier's nudge): "
                "their map time counts, their exec to init does not (shown "
                "as — where no other run was left)." % woken, "")
    if lg.get("skipped"):
        rep.out("Not measured: " + "; ".join(
            "%s (%s)" % kv for kv in lg["skipped"].items()), "")
    for kind in lg["runs"]:
        t = KIND_TITLE[kind]
        rep.out("### %s" % (t[0].upper() + t[1:]), "",
                "| | " + " | ".join("%s GiB" % g for g in sizes(lg)) + " |",
                "| --- | " + " | ".join("---:" for _ in sizes(lg)) + " |")
        for v in ("iommufd", "iommufd-serial", "legacy", "upstream"):
            if not any(values(lg, kind, g, v, "map") for g in sizes(lg)):
                continue
            rep.out("| map, QEMU %s | %s |" % (
                VARIANT_TITLE[v].replace("%s", n),
                " | ".join(cell_range(values(lg, kind, g, v, "map"))
                           for g in sizes(lg))))
        for k in ("iommufd-n", "iommufd-1", "type1-n", "type1-1"):
            if not any(lg["ref"].get(kind, {}).get(g, {}).get(k)
                       for g in sizes(lg)):
                continue
            rep.out("| map, %s | %s |" % (
                REF_TITLE[k].replace("%s", str(lg["cpus"])),
                " | ".join(cell_range(lg["ref"][kind].get(g, {}).get(k, []))
                           for g in sizes(lg))))
        for v in ("none", "iommufd", "iommufd-serial", "legacy",
                  "upstream"):
            if not any(values(lg, kind, g, v, "ready") for g in sizes(lg)):
                continue
            rep.out("| exec to init, %s | %s |" % (
                VARIANT_TITLE[v].replace("%s", n),
                " | ".join(cell_range(values(lg, kind, g, v, "ready"))
                           for g in sizes(lg))))
        r = rep.ratios["large"][kind]
        for key, a, b, what in (
                ("map default/serial", "iommufd", "iommufd-serial", "map"),
                ("map iommufd/legacy", "iommufd", "legacy", "map"),
                ("map serial/legacy", "iommufd-serial", "legacy", "map"),
                ("map ours/upstream", "iommufd", "upstream", "map"),
                ("init default/serial", "iommufd", "iommufd-serial",
                 "ready"),
                ("init iommufd/legacy", "iommufd", "legacy", "ready"),
                ("init ours/upstream", "iommufd", "upstream", "ready")):
            if not any(values(lg, kind, g, b, what) for g in sizes(lg)):
                continue
            rep.out("| ratio %s | %s |" % (key, " | ".join(
                fmt_rv(values(lg, kind, g, a, what),
                       values(lg, kind, g, b, what)) for g in sizes(lg))))
        for key in ("ref iommufd parallel/serial",
                    "ref type1 parallel/serial", "map qemu/ref (serial)",
                    "map qemu/ref (parallel)"):
            if all(r[g][key] is None for g in sizes(lg) if g in r):
                continue
            rep.out("| ratio %s | %s |" % (key, " | ".join(
                fmt_r(r[g][key]) if g in r else "—" for g in sizes(lg))))
        calls = [values(lg, kind, g, "iommufd", "calls") for g in sizes(lg)]
        serial = [values(lg, kind, g, "iommufd-serial", "calls")
                  for g in sizes(lg)]
        rep.out("| map calls at attach, default / map-threads=1 | %s |" %
                " | ".join("%s / %s" % (c[0] if c else "—",
                                        s[0] if s else "—")
                           for c, s in zip(calls, serial)), "")
    rep.out("![map time against guest RAM](%s)" % png_map, "",
            "![exec to guest init against guest RAM](%s)" % png_init, "")
    write_parallel_notes(rep)


def write_parallel_notes(rep):
    lg = rep.raw["large"]
    R = rep.ratios["large"]

    def at(kind, key):
        return ", ".join("%s GiB %s" % (g, fmt_r(R[kind][g][key]))
                         for g in sizes(lg) if g in R.get(kind, {}))

    pm = rep.ratios.get("parallel", {})
    rep.out("### map-threads: where chunks help, and the default", "",
            "- Default/serial, QEMU (the default maps anonymous RAM in one "
            "call, so there it is serial against serial): anonymous %s; "
            "hugetlbfs %s; prealloc "
            "%s. The kernel alone, same calls, same threads: anonymous %s; "
            "hugetlbfs %s; prealloc %s." % (
                at("anon", "map parallel/serial"),
                at("hugetlb", "map parallel/serial"),
                at("prealloc", "map parallel/serial"),
                at("anon", "ref iommufd parallel/serial"),
                at("hugetlb", "ref iommufd parallel/serial"),
                at("prealloc", "ref iommufd parallel/serial")),
            "- type1 gains nothing from threads (%s): "
            "`vfio_dma_do_map()` holds the container's `iommu->lock` "
            "while it pins, so the legacy container keeps one call per "
            "section. iommufd pins each IOMMU_IOAS_MAP under the locks of "
            "its own `iopt_pages` and takes the IOAS's `iova_rwsem` only "
            "to reserve the range and to publish the area." % at(
                "anon", "ref type1 parallel/serial"),
            "- 0.5 is the limit of two CPUs. What keeps the kernel from it "
            "here: a pinned page is a page fault (zeroing 4 KiB, L1 has no "
            "THP) whose memory the outer emulator backs on first touch; "
            "the two vCPUs of L1 are TCG threads on a host whose two cores "
            "also run the emulator's other threads; both threads take the "
            "mm's locks (mmap_lock for reading, the page table and LRU "
            "locks) and the zone lock for their page allocations.",
            "- Fresh anonymous RAM in chunks (section 6, map-threads=N "
            "forced): %s at 4 GiB; earlier runs gave 0.53-0.84 on a quiet "
            "host and 1.0-5.6 under load, when the threads' page faults "
            "contend. Pages already in place (hugetlbfs, prealloc=on) "
            "leave only pinning and the IOMMU page tables to the threads, "
            "which the kernel does concurrently." % fmt_r(pm.get("4")),
            "- So the default, `map-threads=0` (auto), maps in chunks from "
            "one thread per host CPU (up to 4) only RAM whose pages are "
            "in place before the map: a hugetlbfs (or other huge-page) "
            "backend, or a memory backend with prealloc=on; other RAM in "
            "one call per section. `map-threads=1` is one call always; N "
            "forces N threads for any large section.",
            decision(rep),
            "- Sections below 128 MiB (the ROMs, the RAM below 1 MiB) and "
            "sections a vIOMMU or a RamDiscardManager (virtio-mem) owns "
            "stay one call per mapping or granule; RAM behind a "
            "RamDiscardManager is mapped granule by granule from several "
            "threads when a populate covers 128 MiB or more.", "")


def decision(rep):
    """The map-threads default against its targets, size by size: on RAM
    whose pages are in place the default's map time at most
    PARALLEL_TARGET of one call per section, on anonymous RAM never
    above it (ratios of medians, ranges compared)."""
    lg = rep.raw["large"]
    parts = []
    met = True
    for kind, target in (("prealloc", PARALLEL_TARGET),
                         ("hugetlb", PARALLEL_TARGET), ("anon", 1.0)):
        for g in sizes(lg):
            a = values(lg, kind, g, "iommufd", "map")
            b = values(lg, kind, g, "iommufd-serial", "map")
            ia = values(lg, kind, g, "iommufd", "ready")
            ib = values(lg, kind, g, "iommufd-serial", "ready")
            r = ratio(med(a), med(b))
            if r is None:
                continue
            # Anonymous RAM: not slower, or not told apart from serial.
            ok = round(r, 2) <= target or (
                target == 1.0 and verdict(a, b) == "within noise")
            met = met and ok
            parts.append("%s %s GiB: map %s (target %s %.2f: %s), exec to "
                         "init %s" % (KIND_TITLE[kind], g, fmt_rv(a, b),
                                      "at most" if target < 1 else
                                      "never above", target,
                                      "met" if ok else "missed",
                                      fmt_rv(ia, ib)))
    if not parts:
        return ""
    return ("- **The decision: map-threads stays, with an automatic "
            "default%s.** Default over map-threads=1, medians (verdict "
            "by the runs' ranges): %s. On anonymous RAM the default makes "
            "the same calls as map-threads=1 (one per section, see the map "
            "calls row), so a difference there is the machine's noise, not "
            "the default's doing." % (
                "" if met else " (a target missed in this run: see the "
                "figures)", "; ".join(parts)))


def write_running(rep, png_running):
    rn = rep.raw["running"]
    m = running_medians(rn)
    rep.out("## 8. A running guest", "",
            "The guest tier's guest (256 MiB, KVM, one vCPU) on each path "
            "and without a device, %d boots of each, order rotated: exec "
            "to init; edu_guest's DMA round trip (4095 bytes to the device "
            "and back through the DMA API, completions by MSI), %d in one "
            "guest command; %d interrupts raised through the device, each "
            "waited for; and in a guest with intel-iommu (caching-mode), "
            "guest-vfio's %d IOMMU_IOAS_MAP + UNMAP cycles of one page, "
            "each a vIOMMU invalidation QEMU turns into a host map or unmap "
            "(%d guests of each path), timed by the guest's own clock "
            "around the cycles alone. Other guest-side figures are timed "
            "in L1 around the guest command, less an empty command's "
            "round trip (median %s). Upstream is the peer on its iommufd "
            "backend; a ratio says win or loss only when the runs' ranges "
            "do not overlap. Medians (min–max):" % (
                len(rn["runs"]["iommufd"]), rn["dma_rounds"], rn["irqs"],
                rn["cycles"], len(rn["viommu"]["iommufd"]),
                fmt_s(med([r["channel"] for v in ("legacy", "iommufd")
                           for r in rn["runs"][v] if "channel" in r]))), "",
            "| | no device | legacy | iommufd | upstream | iommufd / legacy "
            "| ours / upstream |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    import report_peer
    L = report_peer.label(rep.raw)
    peer = "%s-iommufd" % L if L else None
    for k, title, _ in RUNNING_METRICS:
        a, b = running_values(rn, "iommufd", k), \
            running_values(rn, "legacy", k)
        u = running_values(rn, peer, k) if peer else []
        rep.out("| %s | %s | %s | %s | %s | %s | %s |" % (
            title, cell_range(running_values(rn, "none", k)),
            cell_range(b), cell_range(a), cell_range(u), fmt_rv(a, b),
            fmt_rv(a, u) if u else "—"))
    rate = {v: med([r["cycles_per_s"] for r in rn["viommu"][v]])
            for v in ("legacy", "iommufd")}
    dma = {v: m[v]["dma_round_trip"] for v in ("legacy", "iommufd")}
    if "ref_cycle" in rn:
        rc = rn["ref_cycle"]
        rep.out("| the host map+unmap alone (ioas-map-ref, no guest) | — "
                "| %s | %s | — | %s | — |" % (cell_us(rc["type1"]),
                                      cell_us(rc["iommufd"]),
                                      fmt_r(ref_cycle_ratio(rn))))
    rep.out("| vIOMMU map+unmap rate | — | %.0f /s | %.0f /s | — | — | — |" % (
        rate["legacy"], rate["iommufd"]),
        "| DMA throughput (bytes moved / round trip) | — | %s | %s | — | — "
        "| — |" % (
            "%.1f KB/s" % (8190 / dma["legacy"] / 1000)
            if dma["legacy"] else "—",
            "%.1f KB/s" % (8190 / dma["iommufd"] / 1000)
            if dma["iommufd"] else "—"), "",
        "![a running guest, iommufd against legacy](%s)" % png_running, "",
        "edu moves at most 4 KiB per transfer and starts each on a 100 ms "
        "timer of the outer emulator: the DMA figure is that timer's, on "
        "both paths; it shows that DMA works at the same pace, not what a "
        "real device would move.", "")
