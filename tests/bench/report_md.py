"""The Markdown of REPORT.md: the sections of report.Report."""

import os

import report_large
import report_peer
from report_fmt import MAP_VARIANTS, PATHS, PHASES, cell_range, fmt_dur, \
    fmt_kb, fmt_r, fmt_rv, fmt_s, med, rle, sizes, traced_calls, worse


class Markdown:
    """REPORT.md from the figures, ratios and flags of a Report."""

    def write(self, docs, png_name, png_large=("large-map.png",
                                              "large-init.png",
                                              "running.png")):
        raw, host = self.raw, self.host
        env = raw["env"]
        self.out("# Benchmarks: iommufd against the legacy container, "
                 "upstream QEMU and the kernel's own cost", "",
                 "Written by `tests/bench/run.sh` on %s; "
                 "the whole "
                 "run took %s (host side, L1 boot included). "
                 "Machine-readable figures: [results.json](results.json)."
                 % (host["date"], fmt_dur(host["elapsed"])), "",
                 boots_line(raw) +
                 "L1 is emulated with TCG on a shared 2-core "
                 "host, so absolute times are slow and noisy; the ratios are "
                 "the figures. Ratios are iommufd over legacy and QEMU over "
                 "the reference program (time, calls or kB): **above 1.00 "
                 "means iommufd (or QEMU) costs more.** Flagged: above 1.00 "
                 "against legacy, above 1.10 against the reference; each "
                 "flag is explained under [Flags](#flags-why-and-what-could-"
                 "close-them). Benchmarks only record: nothing here passes "
                 "or fails.", "")
        if raw.get("second_boot"):
            sb = raw["second_boot"]
            self.out("Exception to the above: %s did not fit in the first "
                     "boot's time limit and ran in a second boot (L1 with "
                     "%s, host load %s at its start); its figures compare "
                     "runs within that boot only." % (
                         ", ".join(sb["parts"]), sb["l1_mem"],
                         " ".join(sb["loadavg"])), "")
        if raw.get("errors"):
            self.out("**Parts that broke:** " + "; ".join(
                "%s: %s" % kv for kv in raw["errors"].items()), "")
        self.out("## Where it ran", "",
                 "| | |", "| --- | --- |",
                 "| host | %s; %s; %s cores |" % (host["uname"], host["cpu"],
                                                 host["cpus"]),
                 "| host load (1/5/15 min) | before %s, after %s |" % (
                     " ".join(host["loadavg_before"]),
                     " ".join(host["loadavg_after"])),
                 "| outer emulator (L1) | %s, TCG, q35, -cpu EPYC, "
                 "intel-iommu, %d vCPUs, %s MiB |" % (
                     host["outer_qemu"], env["cpus"],
                     env["mem_total_kb"] // 1024),
                 "| L1 kernel | %s |" % env["uname"],
                 "| L1 CPU (/proc/cpuinfo) | %s |" % env["cpu"],
                 "| L1 transparent huge pages | %s |" % env["thp"],
                 "| emulator measured (L2) | %s, `build/obj` of this tree, "
                 "-machine pc (sections 1-5), q35 with KVM in L1 (nested "
                 "SVM), -cpu max,-svm,-vmx,-tsc-deadline, one vCPU, the "
                 "test bed's kernel and the guest tier's initramfs "
                 "(sections 7 and 8) |"
                 % env["qemu"],
                 "| L1 load (1/5/15 min) | start %s, end %s |" % (
                     " ".join(raw["l1_loadavg_start"]),
                     " ".join(raw.get("l1_loadavg_end", ["—"]))),
                 "| tracer | %s (`-f --seccomp-bpf -T`) |" % env["strace"],
                 "| devices | edu (1234:11e8) at %s, vfio-pci |"
                 % ", ".join(env["edu_bdfs"]), "")
        self.write_summary()
        self.write_syscalls()
        self.write_startup()
        self.write_map(png_name)
        self.write_hotplug()
        self.write_memory()
        report_large.write(self, *png_large)
        report_peer.write_viommu(self)
        report_peer.write_migration(self)
        self.write_extras()
        self.write_flags()
        self.write_caveats()
        with open(os.path.join(docs, "REPORT.md"), "w") as f:
            f.write("\n".join(self.lines) + "\n")

    def write_summary(self):
        raw, R = self.raw, self.ratios
        L = report_peer.label(raw)
        peer = "%s-iommufd" % L if L else None
        self.out("## All figures", "",
                 "Ours is this tree's QEMU on each path; upstream is %s. "
                 "A ratio with runs on both sides says **win** or **loss** "
                 "only when the ranges (min–max) do not overlap, and "
                 "*within noise* otherwise." % (
                     "%s (Debian's binary package) on its iommufd backend, "
                     "in the same L1 and the same run"
                     % report_peer.version(raw) if L else "not measured in "
                     "this run"), "",
                 "| what | iommufd | legacy | upstream | reference "
                 "| iommufd / legacy | ours / upstream | QEMU / reference |",
                 "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        if "syscalls" in R:
            ph = raw["syscalls"]["paths"]
            for p, title in PHASES:
                s = R["syscalls"][p]
                up = ph.get(peer, {}).get("phases", {}).get(p)
                self.out("| calls, %s (minimum: iommufd %d, legacy %d) "
                         "| %d | %d | %s | — | %s | %s | — |" % (
                             title, s["iommufd_minimum"], s["legacy_minimum"],
                             s["iommufd"], s["legacy"],
                             up["count"] if up else "—",
                             fmt_r(s["iommufd/legacy"]),
                             fmt_r(R.get("syscalls_upstream", {}).get(p))))
        if "startup" in R:
            m = raw["startup"]["median"]
            for k, title in (("realized", "start-up: exec to device realized"),
                             ("realize", "start-up: vfio-pci realize span"),
                             ("ready", "start-up: exec to QMP ready")):
                a = report_peer.runs_of(raw, "startup", "iommufd", k)
                b = report_peer.runs_of(raw, "startup", "legacy", k)
                u = report_peer.runs_of(raw, "startup", peer, k) if L else []
                self.out("| %s (median of %d; no device: %s) | %s | %s | %s "
                         "| — | %s | %s | — |" % (
                             title, len(a),
                             fmt_s(m["none"]["ready"]) if k == "ready"
                             else "—", fmt_s(m["iommufd"][k]),
                             fmt_s(m["legacy"][k]), fmt_s(med(u)),
                             fmt_rv(a, b), fmt_rv(a, u) if u else "—"))
        if "map" in R:
            for size in sizes(raw):
                m = raw["map"]["median"][size]
                rs = R["map"][size]
                a = report_peer.map_runs(raw, size, "qemu-iommufd")
                b = report_peer.map_runs(raw, size, "qemu-legacy")
                u = report_peer.map_runs(raw, size, peer) if L else []
                self.out("| map time, %s MiB guest RAM (median of %d) | %s "
                         "| %s | %s | %s (type1 %s) | %s | %s | %s "
                         "(legacy/type1 %s) |"
                         % (size, len(a),
                            fmt_s(m["qemu-iommufd"]), fmt_s(m["qemu-legacy"]),
                            fmt_s(med(u)),
                            fmt_s(m["ref-iommufd"]), fmt_s(m["ref-type1"]),
                            fmt_rv(a, b), fmt_rv(a, u) if u else "—",
                            fmt_r(rs["qemu-iommufd/ref-iommufd"]),
                            fmt_r(rs["qemu-legacy/ref-type1"])))
        if "hotplug" in R:
            m = raw["hotplug"]["median"]
            for k, title in (("add", "device_add to realized"),
                             ("del", "device_del to DEVICE_DELETED"),
                             ("cycle", "whole cycle")):
                a = report_peer.runs_of(raw, "hotplug", "iommufd", k)
                b = report_peer.runs_of(raw, "hotplug", "legacy", k)
                u = report_peer.runs_of(raw, "hotplug", peer, k) if L else []
                self.out("| hot-plug: %s (median of %d) | %s | %s | %s | — "
                         "| %s | %s | — |" % (
                             title, len(a), fmt_s(m["iommufd"][k]),
                             fmt_s(m["legacy"][k]), fmt_s(med(u)),
                             fmt_rv(a, b), fmt_rv(a, u) if u else "—"))
        if "memory" in R:
            m = raw["memory"]["median"]
            for n in (1, 2):
                i, lg = m["iommufd-%d" % n], m["legacy-%d" % n]
                self.out("| memory, %d device%s: VmRSS (no device: %s) | %s "
                         "| %s | — | — | %s | — | — |" % (
                             n, "s" if n > 1 else "",
                             fmt_kb(m["none-0"]["VmRSS"]),
                             fmt_kb(i["VmRSS"]), fmt_kb(lg["VmRSS"]),
                             fmt_r(R["memory"]["VmRSS-%d" % n])))
                self.out("| memory, %d device%s: pinned (iommufd VmPin, "
                         "legacy VmLck) | %s | %s | — | — | %s | — | — |" % (
                             n, "s" if n > 1 else "",
                             fmt_kb(i["VmPin"] + i["VmLck"]),
                             fmt_kb(lg["VmPin"] + lg["VmLck"]),
                             fmt_r(R["memory"]["pinned-%d" % n])))
        self.out(*report_large.summary_rows(self))
        self.out("")

    def write_syscalls(self):
        raw = self.raw
        if "syscalls" not in raw:
            return
        sc = raw["syscalls"]
        self.out("## 1. Syscall budget", "",
                 "QEMU under `strace -f -e trace=ioctl,openat,close -y -X "
                 "raw`, request numbers decoded by the fd they go to (the "
                 "numbers from the 6.12 uapi headers, printed by "
                 "`ioas-map-ref ioctls`), accel %s with -S, -machine pc, "
                 "256 MiB. Phases are cut at the driver's QMP commands: "
                 "start (exec to QMP ready, one cold-plugged device), "
                 "device_add of a second device (same iommufd object, or "
                 "the same container), device_del + ACPI eject of it, then "
                 "of the first. Listed: the vfio, iommufd and kvm-vfio calls; "
                 "device-level calls (region, IRQ and reset queries, "
                 "SET_IRQS), which are the same on both paths, are counted "
                 "apart. Durations are strace -T. The minimum is the target's "
                 "(open, FILE_ADD, BIND, IOAS_ALLOC, ATTACH, IOVA_RANGES, one "
                 "MAP per RAM section the memory listener reports, or per "
                 "chunk where threads map a section in chunks (iommufd's "
                 "map-threads other than 1, sections 6-7); the second "
                 "device no MAP) plus what any user needs: opening "
                 "/dev/iommu, creating the kvm-vfio device once, and "
                 "VFIO_DEVICE_GET_INFO; legacy's is the same walk through "
                 "group and container. Unplugging needs FILE_DEL and "
                 "closing the fds: closing a device fd detaches and unbinds "
                 "it, closing /dev/iommu (or the container) frees the IOAS "
                 "and its mappings." % sc["accel"], "")
        for ph, title in PHASES:
            self.out("### %s" % title[0].upper() + title[1:], "")
            self.out("| | iommufd | legacy |", "| --- | --- | --- |")
            ps = {p: sc["paths"][p]["phases"][ph] for p in PATHS}
            seq = {p: rle([c["name"] + ("→" + c["err"] if c["err"] else "")
                           for c in ps[p]["calls"]]) for p in PATHS}
            self.out("| calls, in order | %s | %s |" % (seq["iommufd"],
                                                        seq["legacy"]))
            self.out("| count (minimum) | %d (%d) | %d (%d) |" % (
                ps["iommufd"]["count"], ps["iommufd"]["minimum_count"],
                ps["legacy"]["count"], ps["legacy"]["minimum_count"]))
            self.out("| minimum | %s | %s |" % (
                rle(ps["iommufd"]["minimum"]), rle(ps["legacy"]["minimum"])))
            self.out("| beyond the minimum | %s | %s |" % tuple(
                rle(["%s: %s" % (e["name"], e["why"])
                     for e in ps[p]["extra"]], "; ") for p in PATHS))
            self.out("| MAP undone by an UNMAP of the same range | %s | %s |"
                     % tuple(", ".join(ps[p]["map_undone_by_unmap"]) or "none"
                             for p in PATHS))
            self.out("| RAM sections (listener), chunks beyond one per "
                     "section | %d, %d | %d, %d |" % (
                         ps["iommufd"]["ram_sections"],
                         ps["iommufd"].get("extra_chunks", 0),
                         ps["legacy"]["ram_sections"],
                         ps["legacy"].get("extra_chunks", 0)))
            self.out("| device-level calls (same on both paths) | %d | %d |"
                     % (ps["iommufd"]["device_common_count"],
                        ps["legacy"]["device_common_count"]))
            self.out("| sysfs opens of the device | %d | %d |" % (
                ps["iommufd"]["sysfs_opens"], ps["legacy"]["sysfs_opens"]))
            self.out("| time in the listed calls (strace -T) | %s | %s |" %
                     tuple(fmt_s(sum(c["dur"] for c in ps[p]["calls"]))
                           for p in PATHS))
            self.out("")
        self.out("Failed calls, all phases (expected with edu: it has no "
                 "reset and no MSI-X): " + "; ".join(
                     "%s: %s" % (p, ", ".join(sorted(set(
                         f for ph, _ in PHASES
                         for f in sc["paths"][p]["phases"][ph]["failed"])))
                         or "none") for p in PATHS), "")

    def write_startup(self):
        raw = self.raw
        if "startup" not in raw:
            return
        s = raw["startup"]
        L = report_peer.label(raw)
        variants = ["none", "legacy", "iommufd"] + (
            ["%s-legacy" % L, "%s-iommufd" % L] if L else [])
        self.out("## 2. Start-up", "",
                 "One cold-plugged device, -accel %s -S (no guest code "
                 "runs), 256 MiB, no strace; " % s.get("accel", "qtest") +
                 "%d runs of each variant, the order rotated every round. "
                 "exec is the driver's clock just before it starts QEMU; "
                 "realized is the trace timestamp (`-msg timestamp=on`) of "
                 "`vfio_intx_enable`, the last step of vfio-pci's realize; "
                 "the realize span starts at `vfio_mdev`, its first step; "
                 "ready is the answer to qmp_capabilities (the main loop "
                 "runs). Upstream is the peer (%s). Medians, with min–max; "
                 "a ratio says win or loss only when the ranges do not "
                 "overlap:" % (len(s["runs"]["iommufd"]),
                               report_peer.version(raw) if L else "none"),
                 "", "| | " + " | ".join(variants) + " | iommufd / legacy"
                 + (" | ours / upstream (iommufd)" if L else "") + " |",
                 "| --- |" + " ---: |" * (len(variants) + 1 + bool(L)))
        for k in ("realized", "realize", "ready"):
            cells = []
            runs = {}
            for v in variants:
                runs[v] = [r[k] for r in s["runs"].get(v, []) if k in r]
                cells.append(cell_range(runs[v]))
            self.out("| %s | %s | %s%s |" % (
                k, " | ".join(cells), fmt_rv(runs["iommufd"], runs["legacy"]),
                " | " + fmt_rv(runs["iommufd"], runs["%s-iommufd" % L])
                if L else ""))
        self.out("")

    def write_map(self, png_name):
        raw = self.raw
        if "map" not in raw:
            return
        mp = raw["map"]
        L = report_peer.label(raw)
        self.out("## 3. Mapping cost", "",
                 "Guest RAM of %s MiB, -accel %s (-S), one device. QEMU's "
                 "time "
                 "is the sum of its IOMMU_IOAS_MAP / VFIO_IOMMU_MAP_DMA "
                 "durations under `strace -T`. The reference, "
                 "`tests/bench/ioas-map-ref.c`, opens /dev/iommu and the "
                 "cdev, binds, allocates an IOAS, attaches and makes the "
                 "same IOAS_MAP calls (IOVA, size, read-only flag, from "
                 "QEMU's trace of a warm-up run) on anonymous memory mapped "
                 "like QEMU's guest RAM (same addresses, MADV_HUGEPAGE, not "
                 "prefaulted: pinning faults the pages in, as in QEMU; the "
                 "ROMs, which QEMU has filled, are touched first); its type1 "
                 "variant does the same through a container "
                 "(VFIO_IOMMU_MAP_DMA). The reference runs under the same "
                 "strace, for the ratio; its own clock (CLOCK_MONOTONIC "
                 "around each call) is shown too. %d runs of "
                 "each, order rotated; medians (min–max):" % (
                     ", ".join(str(x) for x in mp["sizes_mib"]),
                     mp.get("accel", "qtest"),
                     len(next(iter(mp["runs"].values()))["qemu-iommufd"])), "",
                 "| variant | " + " | ".join("%s MiB" % s for s in
                                             sizes(raw)) + " |",
                 "| --- | " + " | ".join("---:" for _ in sizes(raw)) + " |")
        variants = list(MAP_VARIANTS)
        if L:
            variants += [("%s-iommufd" % L, "upstream (%s), iommufd"
                          % report_peer.version(raw)),
                         ("%s-legacy" % L, "upstream (%s), legacy"
                          % report_peer.version(raw))]
        for v, title in variants:
            cells = []
            for size in sizes(raw):
                xs = mp["runs"][size].get(v)
                if not xs:
                    cells.append("—")
                    continue
                cells.append("%s (%s–%s)" % (fmt_s(med(xs)), fmt_s(min(xs)),
                                             fmt_s(max(xs))))
            self.out("| %s | %s |" % (title, " | ".join(cells)))
        for v, title in (("ref-iommufd", "reference, iommufd, own clock"),
                         ("ref-type1", "reference, type1, own clock")):
            cells = []
            for size in sizes(raw):
                xs = mp["ref_internal"][size][v]
                cells.append("%s (%s–%s)" % (fmt_s(med(xs)), fmt_s(min(xs)),
                                             fmt_s(max(xs))))
            self.out("| %s | %s |" % (title, " | ".join(cells)))
        self.out("| ratio qemu-iommufd/qemu-legacy | %s |" % " | ".join(
            fmt_rv(mp["runs"][s]["qemu-iommufd"], mp["runs"][s]["qemu-legacy"])
            for s in sizes(raw)))
        if L:
            self.out("| ratio ours/upstream (iommufd) | %s |" % " | ".join(
                fmt_rv(mp["runs"][s]["qemu-iommufd"],
                       mp["runs"][s].get("%s-iommufd" % L))
                for s in sizes(raw)))
        for key in ("qemu-iommufd/ref-iommufd",
                    "qemu-legacy/ref-type1", "ref-iommufd/ref-type1"):
            self.out("| ratio %s | %s |" % (key, " | ".join(
                fmt_r(self.ratios["map"][s][key]) for s in sizes(raw))))
        self.out("| map calls per start | %s |" % " | ".join(
            str(mp.get("map_calls", {}).get(s, "—")) for s in sizes(raw)))
        self.out("", "![map time against guest RAM](%s)" % png_name, "")

    def write_hotplug(self):
        raw = self.raw
        if "hotplug" not in raw:
            return
        h = raw["hotplug"]
        self.out("## 4. Hot-plug cycle", "",
                 "One QEMU (-machine pc, 256 MiB, -accel qtest, an iommufd "
                 "object present), %d cycles per path, alternating: "
                 "device_add (returns once realized), then device_del, the "
                 "guest's part of ACPI eject done through qtest (`outl "
                 "0xae08, 1 << slot`), and the DEVICE_DELETED event, which "
                 "QEMU sends once the device is finalized (vfio detached). "
                 "A warm-up cycle of each path, iommufd's first, is not "
                 "counted: the first pin faults guest RAM in (device_add: "
                 "iommufd %s, then legacy %s); the counted cycles pin pages "
                 "already present, as a hot-plug into a running guest does. "
                 "Medians (min–max):" % (
                     len(h["runs"]["iommufd"]),
                     fmt_s(h["first_cycle"]["iommufd"]["add"]),
                     fmt_s(h["first_cycle"]["legacy"]["add"])), "",
                 "| | legacy | iommufd | iommufd / legacy |",
                 "| --- | ---: | ---: | ---: |")
        for k in ("add", "del", "cycle"):
            cells = []
            for p in ("legacy", "iommufd"):
                xs = [r[k] for r in h["runs"][p]]
                cells.append("%s (%s–%s)" % (fmt_s(med(xs)), fmt_s(min(xs)),
                                             fmt_s(max(xs))))
            self.out("| %s | %s | %s |" % (k, " | ".join(cells),
                                           fmt_r(self.ratios["hotplug"][k])))
        tr = h.get("traced")
        if tr:
            self.out("", "Where a cycle's time goes: %d more cycles per path "
                     "under `strace -T` (their wall times mean nothing; the "
                     "durations of long calls do, short ones are inflated by "
                     "the tracer, see the last section); median per call "
                     "name, calls of 1 ms or more:" % len(tr["iommufd"]["add"]), "",
                     "| step | legacy | iommufd |", "| --- | --- | --- |")
            for step in ("add", "del"):
                cells = []
                for p in ("legacy", "iommufd"):
                    cyc = tr[p][step]
                    parts = traced_calls(cyc)
                    total = med([sum(v[1] for v in c["calls"].values())
                                 for c in cyc])
                    cells.append("total %s: %s" % (fmt_s(total),
                                                   ", ".join(parts)))
                self.out("| %s | %s |" % (step, " | ".join(cells)))
        self.out("")

    def write_memory(self):
        raw = self.raw
        if "memory" not in raw:
            return
        m = raw["memory"]["median"]
        self.out("## 5. Memory", "",
                 "/proc/PID/status of QEMU (-machine pc, 256 MiB, -accel "
                 "qtest) half a second after QMP is ready, devices "
                 "cold-plugged; medians of %d runs, kB. iommufd accounts "
                 "pinned pages in VmPin (mm->pinned_vm; by default it charges "
                 "RLIMIT_MEMLOCK per user), type1 in VmLck (mm->locked_vm). "
                 "Two devices share one IOAS (one container): RAM is pinned "
                 "once." % len(raw["memory"]["runs"]["none-0"]), "",
                 "| | VmRSS | RssAnon | RssFile | VmLck | VmPin |",
                 "| --- | ---: | ---: | ---: | ---: | ---: |")
        labels = {"none-0": "no device", "legacy-1": "legacy, 1 device",
                  "iommufd-1": "iommufd, 1 device",
                  "legacy-2": "legacy, 2 devices",
                  "iommufd-2": "iommufd, 2 devices"}
        for k, label in labels.items():
            v = m[k]
            self.out("| %s | %d | %d | %d | %d | %d |" % (
                label,
                v["VmRSS"], v["RssAnon"], v["RssFile"], v["VmLck"],
                v["VmPin"]))
        self.out("")

    def write_extras(self):
        raw = self.raw
        if "syscalls" not in raw:
            return
        more = [t for ph, t in PHASES if worse(
            self.ratios["syscalls"][ph]["iommufd/legacy"], 1.0)]
        self.out("## Calls beyond the minimum: their cost, and what could "
                 "drop them", "",
                 ("iommufd makes more calls than legacy in: %s (flagged "
                  "below)." % ", ".join(more) if more else
                  "iommufd makes no more calls than legacy in any phase of "
                  "this run (first table), so these are no ratio flags; the "
                  "budget asks for them by name.") +
                 " Time is strace -T in the budget run.", "",
                 "| path | phase | calls | time | what could drop them |",
                 "| --- | --- | --- | ---: | --- |")
        for p in PATHS:
            for ph, title in PHASES:
                ex = raw["syscalls"]["paths"][p]["phases"][ph]["extra"]
                if not ex:
                    continue
                self.out("| %s | %s | %s | %s | %s |" % (
                    p, title, rle([e["name"] for e in ex]),
                    fmt_s(sum(e.get("dur", 0) for e in ex)),
                    "; ".join(dict.fromkeys(
                        DROP.get(e["name"], "—") for e in ex))))
        self.out("")

    def write_caveats(self):
        self.out("## How far to trust these figures", "",
                 "- L1 runs under TCG on a 2-core host shared with other "
                 "work (load above): absolute times are many times a real "
                 "machine's, and a busy host spreads them; the ratios come "
                 "from interleaved runs in one boot. While this benchmark "
                 "was written, runs at a host load of 7-9 gave ratios up to "
                 "1.2 either way on single sizes, which more runs (15 at "
                 "256 MiB) brought back to about 1.0.",
                 "- Guest RAM is untouched at start-up, so a map call's time "
                 "is mostly the kernel faulting in and zeroing 4 KiB pages "
                 "(the test kernel has no THP) while it pins them; the "
                 "hot-plug cycles after the first pin pages already present; "
                 "that is where iommufd and legacy differ most (section 4).",
                 "- strace -T of short calls is inflated by the tracer's own "
                 "scheduling under TCG (device-level calls that are the same "
                 "on both paths vary from under 1 ms to tens of ms); only the "
                 "long calls (pinning) and medians mean something.",
                 "- Start-up, mapping, hot-plug and memory use -accel qtest "
                 "(no guest code runs, so no BIOS reprograms BARs or PAM); "
                 "the syscall budget uses KVM (nested SVM in L1) with -S so "
                 "that KVM_DEV_VFIO_FILE_ADD is in it.",
                 "- Two threads in L1 are at the mercy of the host: a run "
                 "either finds both of L1's vCPUs running and maps in about "
                 "0.6-0.7 of one thread's time, or finds one descheduled "
                 "while it holds a lock the other spins on, and takes up to "
                 "several times as long (the min–max of sections 6 and 7). "
                 "One thread does not suffer this. Medians of a few runs "
                 "cannot settle a ratio whose runs split like that; they "
                 "say what a user of a busy host should expect.",
                 "- Sections 7 and 8 boot real guests (KVM nested in L1): a "
                 "guest's boot varies by seconds from run to run, more than "
                 "what the device adds, so exec-to-init ratios of single "
                 "sizes mean little; the map time beside them is the "
                 "device's share.", "")

    def write_flags(self):
        self.out("## Flags: why, and what could close them", "")
        if not self.flags:
            self.out("No ratio above 1.00 against legacy or above 1.10 "
                     "against the reference in this run.", "")
            return
        for f in self.flags:
            self.out("### %s: %.2f against %s" % (f["metric"], f["ratio"],
                                                   f["against"]), "",
                     "Why, from the data:", "")
            for w in f["why"]:
                self.out("- " + w)
            self.out("", "What could close it:", "")
            for c in f["close"]:
                self.out("- " + c)
            self.out("")


# What could drop a call beyond the minimum.
DROP = {
    "IOMMU_IOAS_IOVA_RANGES": "give the first IOMMU_IOAS_IOVA_RANGES room for "
    "a few ranges (x86 reports 2): the sizing pass is then only needed for "
    "more (backends/iommufd.c)",
    "VFIO_IOMMU_GET_INFO": "legacy code as it was (argsz sizing of the "
    "capability chain)",
    "VFIO_DEVICE_DETACH_IOMMUFD_PT": "closing the device fd detaches; the "
    "explicit detach is cheap and makes the UNMAPs that follow cheap too "
    "(no domain left to unmap from)",
    "IOMMU_IOAS_UNMAP": "the memory listener's region_del for each section "
    "when the last device goes; IOMMU_DESTROY (or closing /dev/iommu) frees "
    "the mappings anyway, so the container could drop its listener without "
    "unmapping",
    "VFIO_IOMMU_UNMAP_DMA": "legacy code as it was (closing the container "
    "would free the mappings)",
    "IOMMU_DESTROY": "closing /dev/iommu destroys the IOAS, but the fd "
    "outlives the device when passed or shared, so this one stays",
    "VFIO_GROUP_UNSET_CONTAINER": "legacy code as it was (closing the group "
    "unsets it)",
}


def boots_line(raw):
    """How many boots of L1 the figures come from."""
    if "boots" not in raw:
        return ("Everything below was measured in **one boot** of the test "
                "bed's L1 guest, both paths on the same kernel, runs "
                "interleaved. ")
    return ("The figures come from **%d boots** of the test bed's L1 guest "
            "(L1's timeout ended the first before it reached every part, "
            "and later boots ran the rest): %s. Within a part "
            "all paths ran in the same boot, on the same kernel, runs "
            "interleaved. " % (len(raw["boots"]), "; ".join(
                "%s (%s, host load %s → %s)" % (
                    ", ".join(b["parts"]), b["date"],
                    " ".join(b["host_loadavg"][0]),
                    " ".join(b["host_loadavg"][1])) for b in raw["boots"])))
