"""The peer in the report: ours against a later upstream QEMU (Debian's
binary package, raw["env"]["peer"]), figure by figure, and the profile of
the vIOMMU map+unmap cycle (tests/bench/viommu.py).  Used by report.py
and report_md.py.

Ratios are ours over the peer's, both on iommufd: above 1.00 ours costs
more.  A ratio is called a win or a loss only when the runs' ranges do
not overlap (report_fmt.verdict).
"""

from report_fmt import cell_range, fmt_r, fmt_rv, fmt_s, med, ratio, \
    verdict


def label(raw):
    """The peer's label ("upstream"), or None without a peer."""
    return raw["env"].get("peer", {}).get("label")


def version(raw):
    """'QEMU 10.0.2' of the peer's --version line."""
    v = raw["env"].get("peer", {}).get("qemu", "")
    parts = v.split()
    return "QEMU %s" % parts[3] if len(parts) > 3 else v


def runs_of(raw, part, variant, key):
    """A part's runs of one variant and figure (sections 2 and 4)."""
    return [r[key] for r in raw.get(part, {}).get("runs", {}).get(variant, [])
            if r.get(key) is not None]


def map_runs(raw, size, variant):
    return raw.get("map", {}).get("runs", {}).get(size, {}).get(variant, [])


def large_runs(raw, kind, gib, variant, key):
    runs = raw.get("large", {}).get("runs", {}).get(kind, {}).get(gib, {})
    return [r[key] for r in runs.get(variant, []) if r.get(key) is not None]


def compute(rep):
    """rep.ratios[PART_upstream]: ours (iommufd) over the peer's iommufd,
    beside rep.ratios[PART]; rep.verdicts alike."""
    raw, R = rep.raw, rep.ratios
    L = label(raw)
    if "viommu" in raw:
        R["viommu"] = viommu_ratios(raw)
    if not L:
        return
    peer = L + "-iommufd"
    if "syscalls" in raw and peer in raw["syscalls"]["paths"]:
        ph = raw["syscalls"]["paths"]
        R["syscalls_upstream"] = {
            p: ratio(ph["iommufd"]["phases"][p]["count"],
                     ph[peer]["phases"][p]["count"])
            for p in ph["iommufd"]["phases"]}
    for part, keys in (("startup", ("realized", "realize", "ready")),
                       ("hotplug", ("add", "del", "cycle"))):
        if part in raw and peer in raw[part]["runs"]:
            R[part + "_upstream"] = {
                k: ratio(med(runs_of(raw, part, "iommufd", k)),
                         med(runs_of(raw, part, peer, k))) for k in keys}
    if "map" in raw:
        R["map_upstream"] = {
            s: ratio(med(map_runs(raw, s, "qemu-iommufd")),
                     med(map_runs(raw, s, peer)))
            for s in raw["map"]["runs"] if map_runs(raw, s, peer)}
    if "large" in raw:
        out = {}
        for kind, per in raw["large"]["runs"].items():
            for gib in per:
                if not large_runs(raw, kind, gib, L, "map"):
                    continue
                out.setdefault(kind, {})[gib] = {
                    "map": ratio(med(large_runs(raw, kind, gib, "iommufd",
                                                "map")),
                                 med(large_runs(raw, kind, gib, L, "map"))),
                    "init": ratio(med(large_runs(raw, kind, gib, "iommufd",
                                                 "ready")),
                                  med(large_runs(raw, kind, gib, L,
                                                 "ready")))}
        R["large_upstream"] = out
    if "running" in raw:
        import report_large
        rn = raw["running"]
        if peer in rn["runs"]:
            R["running_upstream"] = {
                k: ratio(med(report_large.running_values(rn, "iommufd", k)),
                         med(report_large.running_values(rn, peer, k)))
                for k, _, _ in report_large.RUNNING_METRICS}


def viommu_ratios(raw):
    s = raw["viommu"]["summary"]
    out = {}
    for a, b, key in (("ours-iommufd", "ours-legacy", "iommufd/legacy"),
                      ("ours-iommufd", None, "ours/upstream"),
                      ("ours-legacy", None, "ours/upstream legacy")):
        if b is None:
            L = label(raw)
            b = "%s-%s" % (L, a.split("-")[1]) if L else None
        if a in s and b in s:
            out[key] = ratio(s[a]["cycle"], s[b]["cycle"])
    return out


# --- cells for report_md's tables --------------------------------------

def summary_cells(rep, part, key, ours_runs=None, peer_runs=None):
    """The two cells the summary table adds to a row: the peer's figure
    and ours over it (with a verdict where both have runs)."""
    if not label(rep.raw) or peer_runs is None:
        return "| — | — "
    if not peer_runs:
        return "| — | — "
    return "| %s | %s " % (fmt_s(med(peer_runs)),
                           fmt_rv(ours_runs, peer_runs) if ours_runs
                           else "—")


# --- the vIOMMU cycle profile ------------------------------------------

def us(x):
    return "—" if x is None else "%.1f µs" % (x * 1e6)


def write_viommu(rep):
    raw = rep.raw
    if "viommu" not in raw:
        return
    vp = raw["viommu"]
    s = vp["summary"]
    order = [k for k in ("ours-iommufd", "ours-legacy") if k in s]
    L = label(raw)
    if L:
        order += [k for k in ("%s-iommufd" % L, "%s-legacy" % L) if k in s]
    nruns = len(next(iter(vp["runs"].values())))
    rep.out("## 9. The vIOMMU map+unmap cycle, step by step", "",
            "A guest with intel-iommu (caching-mode) runs guest-vfio's "
            "cycles of one page, as in section 8 (%d guests of each "
            "variant, order rotated): %d cycles untraced, timed by the "
            "guest's own clock, with the vCPU's KVM statistics "
            "(query-stats) around them, then %d cycles with QEMU's trace "
            "events on (vtd_*, vfio_iommu_map_notify, the container's "
            "calls; `-msg timestamp=on`, microseconds). A step is the time "
            "from one event to the next: its median times how often it "
            "comes per cycle (the traced window also holds the DMA round "
            "trips that frame the cycles, on edu's 100 ms timer, which a "
            "sum would spread over every cycle). Medians (min–max):" % (nruns, vp["cycles"], vp["traced"]), "",
            "| | " + " | ".join(order) + " |",
            "| --- |" + " ---: |" * len(order))
    cyc = {k: [r["cycle"] for r in vp["runs"][k]] for k in order}
    rep.out("| cycle, untraced (guest clock) | " + " | ".join(
        "%s (%s–%s)" % (us(med(cyc[k])), us(min(cyc[k])), us(max(cyc[k])))
        for k in order) + " |")
    rep.out("| cycle, traced | " + " | ".join(
        us(s[k]["cycle_traced"]) for k in order) + " |")
    kinds = sorted({e for k in order for e in s[k]["exits"]
                    if e.endswith("exits") or e == "exits"})
    for e in kinds:
        rep.out("| KVM %s per cycle | " % e + " | ".join(
            "%.2f" % s[k]["exits"].get(e, 0) for k in order) + " |")
    # The steps that take the most time on any variant.
    steps = {}
    for k in order:
        for name, (t, n) in s[k]["steps"].items():
            steps[name] = max(steps.get(name, 0), t)
    top = sorted(steps, key=lambda n: -steps[n])[:14]
    rep.out("", "Steps (µs per cycle, and how often per cycle), the 14 "
            "largest:", "",
            "| from > to | " + " | ".join(order) + " |",
            "| --- |" + " ---: |" * len(order))
    for name in top:
        rep.out("| `%s` | " % name + " | ".join(
            "%.1f ×%.2f" % tuple(s[k]["steps"][name])
            if name in s[k]["steps"] else "—" for k in order) + " |")
    split = {k: viommu_split(s[k]["steps"]) for k in order}
    rep.out("", "Where a traced cycle goes (µs per cycle, from the steps): "
            "**guest** is from QEMU's answer to one invalidation wait "
            "(`vtd_inv_desc_wait_sw`) to the guest's next queue tail "
            "write (`vtd_reg_write 0x88`): the guest's own work for the "
            "next map or unmap and the exits that bring it to QEMU; "
            "**host call** runs from `vfio_iommu_map_notify` to the next "
            "event, the container's ioctl with QEMU's wrapper and its "
            "trace line; **QEMU, vIOMMU** is the rest, from the tail write "
            "to the wait: the queue, the page walk and the notifier.", "",
            "| | " + " | ".join(order) + " |",
            "| --- |" + " ---: |" * len(order))
    for part in ("guest", "host call", "QEMU, vIOMMU", "total"):
        rep.out("| %s | " % part + " | ".join(
            "%.1f" % split[k][part] for k in order) + " |")
    rep.out("", "Run by run (µs per cycle; the guest's side, the host "
            "calls and QEMU's vIOMMU side from the traced cycles, exits "
            "from the untraced ones). QEMU's vIOMMU side runs the same code "
            "on every path of a QEMU (no container call in it), so it shows "
            "how busy the machine was during that guest:", "",
            "| run | cycle, untraced | KVM exits | guest | host call "
            "| QEMU, vIOMMU |", "| --- | ---: | ---: | ---: | ---: | ---: |")
    for k in order:
        for i, r in enumerate(vp["runs"][k]):
            sp = viommu_split(r["steps"])
            rep.out("| %s #%d | %s | %.2f | %.1f | %.1f | %.1f |" % (
                k, i + 1, us(r["cycle"]), r["exits"].get("exits", 0),
                sp["guest"], sp["host call"], sp["QEMU, vIOMMU"]))
    rep.out("", viommu_findings(raw, order), "")
    rep.out("Ratios of the untraced cycle: iommufd/legacy %s%s." % (
        fmt_rv(cyc.get("ours-iommufd"), cyc.get("ours-legacy")),
        ("; ours/%s (iommufd) %s; legacy %s" % (
            version(raw), fmt_rv(cyc.get("ours-iommufd"),
                                 cyc.get("%s-iommufd" % L)),
            fmt_rv(cyc.get("ours-legacy"), cyc.get("%s-legacy" % L))))
        if L and "%s-iommufd" % L in cyc else ""), "")
    return cyc


def viommu_split(steps):
    """µs per cycle of the guest's side, the host calls and the rest of
    QEMU's side, from a variant's steps (viommu.steps())."""
    out = {"guest": 0.0, "host call": 0.0, "QEMU, vIOMMU": 0.0}
    for name, (t, _) in steps.items():
        if name.startswith("vtd_inv_desc_wait_sw > "):
            out["guest"] += t
        elif name.startswith("vfio_iommu_map_notify "):
            out["host call"] += t
        else:
            out["QEMU, vIOMMU"] += t
    out["total"] = sum(out.values())
    return out


def viommu_findings(raw, order):
    """What the profile says, from its runs: how the cycle follows the
    machine's pace, and what the host calls cost against it."""
    vp = raw["viommu"]

    def per_run(k, f):
        return [f(r, viommu_split(r["steps"])) for r in vp["runs"][k]]
    share = {k: med(per_run(k, lambda r, sp: sp["host call"] /
                            sp["QEMU, vIOMMU"]
                            if sp["QEMU, vIOMMU"] else None)) for k in order}
    host = {k: per_run(k, lambda r, sp: sp["host call"]) for k in order}
    guest = {k: med(per_run(k, lambda r, sp: sp["guest"] / sp["total"]
                            if sp["total"] else None)) for k in order}
    lines = ["**What the profile says.** The guest's side (its own work "
             "and the exits that bring each invalidation to QEMU) is "
             "%s of a traced cycle, and QEMU's vIOMMU side, which calls "
             "no container, moves from run to run with the machine's load "
             "just as the whole cycle does (table above): a guest that ran "
             "while the host was busier is slower in every step, on either "
             "path." % ", ".join("%s %.0f%%" % (k, 100 * guest[k])
                                 for k in order if guest[k] is not None)]
    lines.append(" The host calls (map and unmap, with QEMU's wrapper "
                 "and trace line) per cycle: %s; against QEMU's vIOMMU side "
                 "of the same guest (a gauge of the machine's pace): %s." % (
                     "; ".join("%s %s" % (k, cell_us_runs(host[k]))
                               for k in order),
                     ", ".join("%s %.2f" % (k, share[k]) for k in order
                               if share[k] is not None)))
    rc = raw.get("running", {}).get("ref_cycle")
    if rc:
        gap = med(rc["iommufd"]) - med(rc["type1"])
        cyc = med([r["cycle"] for r in vp["runs"].get("ours-legacy", [])])
        lines.append(" The kernel alone (ioas-map-ref, section 8) takes "
                     "%.1f µs for IOMMU_IOAS_MAP + UNMAP of one page "
                     "against %.1f µs for type1's pair: %.1f µs per cycle%s, "
                     "iommufd's `iopt_area` and `iopt_pages` set up and "
                     "torn down per mapping against type1's `vfio_dma`. "
                     "QEMU's own part of a host call is the same on both "
                     "paths: the notifier, the container's op, one trace "
                     "line and the ioctl, no other system call." % (
                         med(rc["iommufd"]) * 1e6, med(rc["type1"]) * 1e6,
                         gap * 1e6,
                         " (%.0f%% of legacy's median cycle)" % (
                             100 * gap / cyc) if cyc else ""))
    return "".join(lines)


def cell_us_runs(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "—"
    return "%.1f µs (%.1f–%.1f)" % (med(xs), min(xs), max(xs))


def write_migration(rep):
    """Migration figures (issue 19 item 6): total time and downtime of the
    same mtty migration, ours against the peer, once the driver has a
    "migration" part (tests/bench/migration.py, from the migration branch)."""
    raw = rep.raw
    if "migration" not in raw:
        rep.out("## 10. Migration", "",
                "Not measured yet: the driver runs a `migration` part when "
                "`tests/bench/migration.py` exists (`bench_migration(bdfs, "
                "peers)`, returning `{\"runs\": {VARIANT: [{\"total\": s, "
                "\"downtime\": s}]}}` for ours on each path and for the "
                "peer with the same mtty migration); this section then "
                "reports total time and downtime with ours/upstream.", "")
        return
    mg = raw["migration"]
    L = label(raw)
    variants = [v for v in ("iommufd", "legacy", "%s-iommufd" % L,
                            "%s-legacy" % L) if v in mg["runs"]]
    rep.out("## 10. Migration", "",
            mg.get("what", "The same mtty migration on each variant.") +
            " Medians (min–max):", "",
            "| | " + " | ".join(variants) + " | iommufd / legacy | ours / "
            "upstream |", "| --- |" + " ---: |" * (len(variants) + 2))
    for k in ("total", "downtime"):
        runs = {v: [r[k] for r in mg["runs"][v] if r.get(k) is not None]
                for v in variants}
        rep.out("| %s | %s | %s | %s |" % (
            k, " | ".join(cell_range(runs[v]) for v in variants),
            fmt_rv(runs.get("iommufd"), runs.get("legacy")),
            fmt_rv(runs.get("iommufd"), runs.get("%s-iommufd" % L))))
    rep.out("")


def verdict_line(a, b):
    v = verdict(a, b)
    return v or "too few runs to tell"


def range_cells(*runs):
    return " | ".join(cell_range(r) for r in runs)


def fmt_ratio(r):
    return fmt_r(r)
