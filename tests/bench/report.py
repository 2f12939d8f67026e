#!/usr/bin/python3
"""Turn the benchmark driver's raw.json into results.json, REPORT.md and
its plots (plots.py: gnuplot).  The Markdown is report_md.py's,
the sections on large and running guests report_large.py's.

Usage: tests/bench/report.py RAW_JSON HOST_JSON DOCS_DIR WORK_DIR

Ratios are time (or count, or kB) of iommufd over legacy, and of QEMU over
the reference program: above 1.0 means iommufd (or QEMU) costs more.  A
ratio is flagged when, rounded to two places, it is above 1.00 against
legacy or above 1.10 against the reference; the report then says why, from
the data, and what could close it.  Nothing here passes or fails.
"""

import json
import os
import sys

import plots
import report_large
import report_peer
from report_fmt import PATHS, PHASES, fmt_kb, fmt_r, fmt_s, in_noise, med, \
    noise_note, ratio, sizes, traced_calls, worse
from report_md import Markdown


class Report(Markdown):
    """Figures, ratios and flags (why, what could close it) of raw.json;
    Markdown writes them out."""

    def __init__(self, raw, host):
        self.raw = raw
        self.host = host
        self.ratios = {}
        self.flags = []         # {metric, ratio, against, why[], close[]}
        self.lines = []

    def out(self, *lines):
        self.lines.extend(lines)

    def flag(self, metric, r, against, why, close):
        self.flags.append({"metric": metric, "ratio": round(r, 3),
                           "against": against, "why": why, "close": close})

    # --- figures and ratios ----------------------------------------------

    def compute(self):
        raw = self.raw
        if "syscalls" in raw:
            sc = {}
            # Ours: the paths by their names; the peer's are PEER-PATH.
            for ph, _ in PHASES:
                i = raw["syscalls"]["paths"]["iommufd"]["phases"][ph]
                lg = raw["syscalls"]["paths"]["legacy"]["phases"][ph]
                sc[ph] = {"iommufd": i["count"], "legacy": lg["count"],
                          "iommufd_minimum": i["minimum_count"],
                          "legacy_minimum": lg["minimum_count"],
                          "iommufd/legacy": ratio(i["count"], lg["count"]),
                          "iommufd/minimum": ratio(i["count"],
                                                   i["minimum_count"])}
            self.ratios["syscalls"] = sc
        if "startup" in raw:
            m = raw["startup"]["median"]
            self.ratios["startup"] = {
                k: ratio(m["iommufd"][k], m["legacy"][k])
                for k in ("realized", "realize", "ready")}
        if "map" in raw:
            mp = {}
            for size in sizes(raw):
                m = raw["map"]["median"][size]
                mp[size] = {
                    "qemu-iommufd/qemu-legacy":
                        ratio(m["qemu-iommufd"], m["qemu-legacy"]),
                    "qemu-iommufd/ref-iommufd":
                        ratio(m["qemu-iommufd"], m["ref-iommufd"]),
                    "qemu-legacy/ref-type1":
                        ratio(m["qemu-legacy"], m["ref-type1"]),
                    "ref-iommufd/ref-type1":
                        ratio(m["ref-iommufd"], m["ref-type1"]),
                }
            self.ratios["map"] = mp
        if "hotplug" in raw:
            m = raw["hotplug"]["median"]
            self.ratios["hotplug"] = {
                k: ratio(m["iommufd"][k], m["legacy"][k])
                for k in ("add", "del", "cycle")}
        if "memory" in raw:
            m = raw["memory"]["median"]
            self.ratios["memory"] = {}
            for n in (1, 2):
                i, lg = m["iommufd-%d" % n], m["legacy-%d" % n]
                self.ratios["memory"]["VmRSS-%d" % n] = ratio(i["VmRSS"],
                                                              lg["VmRSS"])
                self.ratios["memory"]["pinned-%d" % n] = ratio(
                    i["VmPin"] + i["VmLck"], lg["VmPin"] + lg["VmLck"])
        report_large.compute(self)
        report_peer.compute(self)

    # --- explanations ----------------------------------------------------

    def budget_durations(self, path, phase):
        """(total, map) seconds in the phase's calls, from strace -T."""
        calls = self.raw["syscalls"]["paths"][path]["phases"][phase]["calls"]
        total = sum(c["dur"] for c in calls)
        maps = sum(c["dur"] for c in calls if c["name"] in
                   ("IOMMU_IOAS_MAP", "VFIO_IOMMU_MAP_DMA"))
        return total, maps

    def explain(self):
        self.explain_costs()
        report_large.explain(self)

    def explain_costs(self):
        """Syscalls, start-up, mapping, hot-plug and memory."""
        raw, R = self.raw, self.ratios
        for ph, title in PHASES:
            r = R.get("syscalls", {}).get(ph, {}).get("iommufd/legacy")
            if worse(r, 1.0):
                p = raw["syscalls"]["paths"]["iommufd"]["phases"][ph]
                self.flag("syscalls, " + title, r, "legacy",
                          ["iommufd makes %d calls here, legacy %d; beyond "
                           "its minimum of %d: %s" % (
                               R["syscalls"][ph]["iommufd"],
                               R["syscalls"][ph]["legacy"],
                               p["minimum_count"],
                               "; ".join("%s (%s)" % (e["name"], e["why"])
                                         for e in p["extra"]) or "none")],
                          ["drop the calls named above"])
        if "startup" in R:
            self.explain_startup()
        if "map" in R:
            self.explain_map()
        if "hotplug" in R:
            self.explain_hotplug()
        if "memory" in R:
            self.explain_memory()

    def explain_startup(self):
        raw, R = self.raw, self.ratios
        runs = raw["startup"]["runs"]
        what = {"realized": "exec to device realized",
                "realize": "vfio-pci realize span",
                "ready": "exec to QMP ready"}
        for k, title in what.items():
            r = R["startup"][k]
            if not worse(r, 1.0):
                continue
            a = [x[k] for x in runs["iommufd"]]
            b = [x[k] for x in runs["legacy"]]
            why = [noise_note(a, b, "iommufd")]
            if "map" in raw and "256" in raw["map"]["median"]:
                m = raw["map"]["median"]["256"]
                why.append("the same start-up with 256 MiB spends %s (iommufd) "
                           "and %s (legacy) in the map calls alone (median "
                           "of the mapping benchmark), of a realize span of "
                           "%s / %s: pinning, which faults in and zeroes "
                           "all of guest RAM, is most of it" % (
                               fmt_s(m["qemu-iommufd"]),
                               fmt_s(m["qemu-legacy"]),
                               fmt_s(raw["startup"]["median"]["iommufd"]
                                     ["realize"]),
                               fmt_s(raw["startup"]["median"]["legacy"]
                                     ["realize"])))
            if "syscalls" in raw:
                ti, mi = self.budget_durations("iommufd", "start")
                tl, ml = self.budget_durations("legacy", "start")
                pi = raw["syscalls"]["paths"]["iommufd"]["phases"]["start"]
                pl = raw["syscalls"]["paths"]["legacy"]["phases"]["start"]
                why.append("calls (syscall budget run): iommufd %d + %d "
                           "device-level + %d sysfs opens (the cdev is found "
                           "through sysfs), legacy %d + %d + %d; time in them "
                           "outside the maps %s against %s" % (
                               pi["count"], pi["device_common_count"],
                               pi["sysfs_opens"], pl["count"],
                               pl["device_common_count"], pl["sysfs_opens"],
                               fmt_s(ti - mi), fmt_s(tl - ml)))
            close = []
            if in_noise(a, b):
                close.append("nothing needs closing on this evidence (see "
                             "the run-to-run line above); more runs on an "
                             "idle host would show whether a difference "
                             "remains")
            close += ["for the part that is QEMU's: skip the sizing pass of "
                     "IOMMU_IOAS_IOVA_RANGES (pass room for a few ranges on "
                     "the first call) and the sysfs walk when the cdev fd is "
                     "passed (fd=, as libvirt does)",
                     "for the kernel's part (pinning): prefaulted or huge-page "
                     "backed guest RAM (-mem-prealloc, hugetlbfs or THP) "
                     "takes the page faults out of the map call or makes "
                     "them 512 times fewer; the test kernel has no THP"]
            self.flag("start-up, " + title, r, "legacy",
                      [w for w in why if w], close)

    def explain_map(self):
        raw, R = self.raw, self.ratios
        for size in sizes(raw):
            rs = R["map"][size]
            runs = raw["map"]["runs"][size]
            calls = raw["map"]["calls"][size]
            nmaps = raw["map"].get("map_calls", {}).get(size)

            def big(v):
                """Median time of the largest call, and its share."""
                tops = [max(c) for c in calls[v] if c]
                shares = [max(c) / sum(c) for c in calls[v] if c and sum(c)]
                return med(tops), med(shares)

            for key, against, a, b in (
                    ("qemu-iommufd/qemu-legacy", "legacy", "qemu-iommufd",
                     "qemu-legacy"),
                    ("qemu-iommufd/ref-iommufd", "reference", "qemu-iommufd",
                     "ref-iommufd"),
                    ("qemu-legacy/ref-type1", "reference (type1)",
                     "qemu-legacy", "ref-type1")):
                r = rs[key]
                limit = 1.0 if against == "legacy" else 1.1
                if not worse(r, limit):
                    continue
                ta, sa = big(a)
                tb, _ = big(b)
                why = [noise_note(runs[a], runs[b], a)]
                why.append("both make the same %s map calls (QEMU's are the "
                           "reference's spec); the largest, the RAM above "
                           "1 MiB, is %.0f%% of the time: %s against %s "
                           "(medians)" % (nmaps, (sa or 0) * 100, fmt_s(ta),
                                          fmt_s(tb)))
                noisy = in_noise(runs[a], runs[b])
                close = []
                if noisy:
                    close.append("nothing needs closing on this evidence "
                                 "(see the run-to-run line above)")
                if against == "legacy":
                    kr = rs["ref-iommufd/ref-type1"]
                    ku = ratio(raw["map"]["median"][size]
                               ["ref-iommufd-clock"],
                               raw["map"]["median"][size]
                               ["ref-type1-clock"])
                    why.append("the kernel alone (reference programs) gives "
                               "iommufd/type1 = %s by strace -T, %s by their "
                               "own clock; "
                               "QEMU/reference is %s (iommufd) and %s "
                               "(legacy)" % (
                                   fmt_r(kr), fmt_r(ku),
                                   fmt_r(rs["qemu-iommufd/ref-iommufd"]),
                                   fmt_r(rs["qemu-legacy/ref-type1"])))
                    if not noisy and kr is not None and kr >= r - 0.1:
                        close.append(
                            "not in QEMU: the kernel alone shows the same "
                            "ratio, so it is the kernel's pinning path "
                            "(iommufd's iopt_pages pinning and domain fill "
                            "against type1's vfio_pin_pages_remote) on this "
                            "kernel and memory")
                    elif not noisy:
                        close.append(
                            "the kernel alone does not show it, so look at "
                            "what QEMU does around the big call (other "
                            "threads holding mmap_lock, memory layout)")
                elif not noisy:
                    close.append(
                        "QEMU's calls are the reference's (same sizes, same "
                        "layout of untouched anonymous memory), so the extra "
                        "time is spent inside the same kernel call in QEMU's "
                        "process: look at what runs beside it there and not "
                        "in the reference (QEMU's other threads taking "
                        "mmap_lock or the CPU while the pin faults pages in); "
                        "prefaulting would take the faults, and with them "
                        "such contention, out of the call")
                close.append("the page faults dominate: prefaulted guest RAM "
                             "(-mem-prealloc) moves them out of the map call; "
                             "huge pages (hugetlbfs, or THP, which the test "
                             "kernel lacks) make them 512 times fewer and let "
                             "the IOMMU map 2 MiB at a time")
                self.flag("map time, %s MiB, %s" % (size, key), r, against,
                          [w for w in why if w], close)

    def explain_hotplug(self):
        raw, R = self.raw, self.ratios
        runs = raw["hotplug"]["runs"]
        traced = raw["hotplug"].get("traced", {})
        for k in ("add", "del", "cycle"):
            r = R["hotplug"][k]
            if not worse(r, 1.0):
                continue
            why = [noise_note([x[k] for x in runs["iommufd"]],
                              [x[k] for x in runs["legacy"]], "iommufd")]
            for step in (("add", "del") if k == "cycle" else (k,)):
                for p in PATHS:
                    parts = traced_calls(traced.get(p, {}).get(step, []))
                    if parts:
                        why.append("%s %s, calls under strace -T (median): %s"
                                   % (p, step, ", ".join(parts)))
            # Which calls cost iommufd more than legacy's counterparts.
            steps = ("add", "del") if k == "cycle" else (k,)
            tot = {}
            for p in PATHS:
                tot[p] = {}
                for step in steps:
                    cyc = traced.get(p, {}).get(step, [])
                    for n in {n for c in cyc for n in c["calls"]}:
                        tot[p][n] = tot[p].get(n, 0) + (med(
                            [c["calls"].get(n, [0, 0])[1] for c in cyc]) or 0)
            mp = sum(v for n, v in tot["iommufd"].items() if "MAP" in n)
            ml = sum(v for n, v in tot["legacy"].items() if "MAP" in n)
            close = []
            if in_noise([x[k] for x in runs["iommufd"]],
                        [x[k] for x in runs["legacy"]]):
                close.append("nothing needs closing on this evidence (see "
                             "the run-to-run line above)")
            if mp > ml:
                close.append("the map/unmap calls cost iommufd more (%s "
                             "against %s under strace): the kernel's pinning "
                             "of present pages, not QEMU" % (fmt_s(mp),
                                                              fmt_s(ml)))
            else:
                close.append("the map/unmap calls cost iommufd less (%s "
                             "against %s), so the rest of the cycle is "
                             "QEMU's: the calls iommufd makes beyond its "
                             "minimum (first section) and the cdev lookup "
                             "through sysfs are the candidates"
                             % (fmt_s(mp), fmt_s(ml)))
            self.flag("hot-plug, " + k, r, "legacy", [w for w in why if w],
                      close)

    def explain_memory(self):
        raw, R = self.raw, self.ratios
        m = raw["memory"]["median"]
        for n in (1, 2):
            i, lg = m["iommufd-%d" % n], m["legacy-%d" % n]
            r = R["memory"]["VmRSS-%d" % n]
            if worse(r, 1.0):
                self.flag(
                    "memory, VmRSS with %d device%s" % (n, "s" if n > 1 else ""), r, "legacy",
                    ["iommufd's RSS is %d kB higher (%.2f%%): RssAnon %+d kB, "
                     "RssFile %+d kB; both pin the same %s of guest RAM" % (
                         i["VmRSS"] - lg["VmRSS"],
                         (i["VmRSS"] / lg["VmRSS"] - 1) * 100,
                         i["RssAnon"] - lg["RssAnon"],
                         i["RssFile"] - lg["RssFile"],
                         fmt_kb(i["VmPin"] + i["VmLck"]))],
                    ["nothing worth closing: under 1% of RSS, the size of "
                     "run-to-run differences in heap and in library pages "
                     "touched (the iommufd and cdev code paths are other "
                     "code, not more data)"]
                    if r < 1.01 else
                    ["more than 1%%: look at what QEMU allocates on the "
                     "iommufd path (RssAnon %+d kB) and at the code it "
                     "touches (RssFile %+d kB)" % (
                         i["RssAnon"] - lg["RssAnon"],
                         i["RssFile"] - lg["RssFile"])])
            r = R["memory"]["pinned-%d" % n]
            if worse(r, 1.0):
                self.flag("memory, pinned with %d device%s" % (n, "s" if n > 1 else ""), r, "legacy",
                          ["iommufd pins %s, legacy %s" % (
                              fmt_kb(i["VmPin"] + i["VmLck"]),
                              fmt_kb(lg["VmPin"] + lg["VmLck"]))],
                          ["map each RAM section once per IOAS"])


def main():
    raw_path, host_path, docs, work = sys.argv[1:5]
    with open(raw_path) as f:
        raw = json.load(f)
    with open(host_path) as f:
        host = json.load(f)
    png = "map-time.png"
    rep = Report(raw, host)
    rep.compute()
    rep.explain()
    rep.write(docs, png)
    plots.plot(raw, docs, work, png)
    results = dict(raw, host=host, ratios=rep.ratios, flags=rep.flags)
    with open(os.path.join(docs, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
        f.write("\n")
    for f in rep.flags:
        print("flag: %s: %.2f against %s" % (f["metric"], f["ratio"],
                                             f["against"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
