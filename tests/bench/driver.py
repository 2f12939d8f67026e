#!/usr/bin/python3
"""Benchmark driver: iommufd against the legacy container, inside L1.

Run by tests/bench/run.sh through tests/testbed/run-l1.sh (as root in L1,
with the edu devices bound to vfio-pci).  Starts our QEMU again and again,
both paths interleaved in this one boot, and writes everything it measured
to $L1_RESULTS/raw.json, with the logs it measured from under
$L1_RESULTS/logs/ (QEMU's trace logs, strace logs, the reference's
output).  It prints progress and figures; it never judges them.
Exit status: 0, or 1 if something broke (a QEMU that did not start, ...).

Environment: BENCH_QEMU (our QEMU, default build/obj's of this checkout),
BENCH_REF (ioas-map-ref, default build/bench's), L1_EDU_BDFS,
L1_RESULTS; BENCH_KERNEL and BENCH_GUEST_DIR (the guest tier's kernel and
build directory, for the parts that boot guests); BENCH_QUICK=1 for fewer
repetitions (a smoke run);
BENCH_ONLY=viommu,parallel,large,running,syscalls,startup,map,hotplug,memory for some
parts only; BENCH_MAP_SIZES="256 1024" (MiB) and BENCH_MAP_RUNS=N for the
mapping part; BENCH_LARGE_SIZES="1 2 4 8" (GiB), BENCH_LARGE_RUNS=N,
BENCH_LARGE_RUNS_OTHER=N, BENCH_PMAP_SIZES="4 8" (GiB), BENCH_PMAP_RUNS=N,
BENCH_RUNNING_RUNS=N for the large and the running guests and the
parallel map (large.py, running.py).  PYTHONPATH: tests/ (pylib) and the
assembled tree's python/ (QEMU's qemu.machine), as run.sh sets it.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from pylib import procfs, tracelog
from pylib.devices import device_arg, path_objects, vfio_props
from pylib.vm import QtestMachine

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))

# Defaults: what `make` and run.sh build in this checkout.
QEMU = os.environ.get("BENCH_QEMU",
                      os.path.join(TOP, "build/obj/qemu-system-x86_64"))
REF = os.environ.get("BENCH_REF", os.path.join(TOP, "build/bench/ioas-map-ref"))
# The peer: a later upstream QEMU (Debian's binary package, unpacked by
# scripts/peer-qemu.sh), measured beside ours where a figure applies.
PEER = os.environ.get("BENCH_PEER") or None
PEER_LABEL = os.environ.get("BENCH_PEER_LABEL", "upstream")
# What the peer's intel-iommu needs here: its default address width (48)
# is more than this host's IOMMU maps, which it refuses.
PEER_VIOMMU = "aw-bits=39"
# Sections 1-5 start QEMU paused under KVM where L1 has it: the peer, a
# distribution build, has no qtest accelerator (its qtest protocol works
# with KVM, as ours does).
ACCEL = "kvm" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "qtest"
OUT = os.environ["L1_RESULTS"]
# Logs go to L1's tmpfs while measuring (the results share is 9p, slow
# enough to show in the figures) and are copied there at the end.
LOGS = "/tmp/bench-logs"
BDFS = sorted(os.environ["L1_EDU_BDFS"].split())
QUICK = os.environ.get("BENCH_QUICK") == "1"

STARTUP_RUNS = 3 if QUICK else 5
MAP_SIZES = [int(x) for x in os.environ.get(
    "BENCH_MAP_SIZES", "256 1024").split()]
MAP_RUNS = int(os.environ.get("BENCH_MAP_RUNS", 1 if QUICK else 3))
HOTPLUG_CYCLES = 3 if QUICK else 8
MEMORY_RUNS = 1 if QUICK else 3
SLOTS = [4, 5]
PATHS = ["iommufd", "legacy"]


def peer_variants(paths=PATHS):
    """The peer's variants, named PEER_LABEL-PATH (none without a peer)."""
    return ["%s-%s" % (PEER_LABEL, p) for p in paths] if PEER else []


def qemu_of(variant):
    """(binary, path) of a variant: ours for 'iommufd' or 'legacy' (or
    'qemu-PATH'), the peer's for 'PEER_LABEL-PATH'."""
    if PEER and variant.startswith(PEER_LABEL + "-"):
        return PEER, variant[len(PEER_LABEL) + 1:]
    if variant.startswith("qemu-"):
        return QEMU, variant[5:]
    return QEMU, variant

# Trace events: only what a figure needs, the same for both paths.
REALIZE_EVENTS = ["vfio_mdev", "vfio_intx_enable"]
MAP_EVENTS = ["vfio_listener_region_add_ram", "vfio_listener_region_del",
              "iommufd_backend_map_dma", "iommufd_backend_unmap_dma",
              "vfio_dma_map_chunks"]

STRACE = ["strace", "-f", "--seccomp-bpf", "-ttt", "-T", "-y", "-X", "raw"]


def log(*args):
    print(*args, flush=True)


def median(xs):
    return statistics.median(xs) if xs else None


# --- QEMU under our control ------------------------------------------------

class Vm(QtestMachine):
    """
    One QEMU with QMP and the qtest protocol, started at once, its output
    in LOGS/NAME.log and its trace in LOGS/NAME.trace.  t_exec and t_ready
    are wall-clock times, as the trace's (-msg timestamp=on) and strace's
    (-ttt) are, to place its calls in phases.
    """

    def __init__(self, name, args, mem="256M", accel=ACCEL, events=(),
                 strace=None, extra=(), qemu=QEMU):
        self.tmp = tempfile.mkdtemp(prefix="bench-", dir="/tmp")
        self.trace = os.path.join(LOGS, name + ".trace")
        self.strace = os.path.join(LOGS, name + ".strace") if strace else None
        cmd = ["-machine", "pc", "-m", mem, "-nodefaults",
               "-msg", "timestamp=on", "-D", self.trace]
        for e in events:
            cmd += ["-trace", "enable=" + e]
        if accel != "qtest":
            cmd += ["-S"]           # no guest code runs, as under qtest
        cmd += list(extra) + list(args)
        wrapper = []
        if strace:
            wrapper = STRACE + ["-e", "trace=" + strace, "-o", self.strace]
        super().__init__(qemu, cmd, name, LOGS, wrapper=wrapper,
                         sock_dir=self.tmp, accel=accel, launch_timeout=120)
        self.t_exec = time.time()
        try:
            self.start()
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        self.t_ready = time.time()

    def quit(self, timeout=120):
        rc = super().quit(timeout)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return rc


def device_args(path, bdf, dev_id, slot):
    """A vfio-pci device's properties, for device_add or -device."""
    return vfio_props(path, dev_id, host=bdf, addr=str(slot))


def cold_args(path, ndev, map_threads=None):
    args = path_objects(path, map_threads)
    for i in range(ndev):
        args += device_arg(device_args(path, BDFS[i], "hostdev%d" % i,
                                       SLOTS[i]))
    return args


# --- Logs ------------------------------------------------------------------

read_trace = tracelog.events
first = tracelog.first
hexarg = tracelog.arg


STRACE_RE = re.compile(r"^(\d+)\s+(\d+\.\d+) (.*)$")
CALL_RE = re.compile(r"^(\w+)\((.*)\) += (.*?)(?: <(\d+\.\d+)>)?$")


def read_strace(path):
    """[{pid, t, call, args, ret, err, dur}] with unfinished calls joined."""
    calls, pending = [], {}
    with open(path) as f:
        for line in f:
            m = STRACE_RE.match(line.rstrip("\n"))
            if not m:
                continue
            pid, t, rest = int(m.group(1)), float(m.group(2)), m.group(3)
            if rest.endswith(" <unfinished ...>"):
                pending[pid] = (t, rest[:-len(" <unfinished ...>")])
                continue
            r = re.match(r"^<\.\.\. \w+ resumed>(.*)$", rest)
            if r:
                if pid not in pending:
                    continue
                t, head = pending.pop(pid)
                rest = head + r.group(1)
            c = CALL_RE.match(rest)
            if not c:
                continue
            ret = c.group(3)
            rm = re.match(r"^(-?\d+|0x[0-9a-f]+)(?:<(.*)>)?(?: (E\w+))?", ret)
            calls.append({
                "pid": pid, "t": t, "call": c.group(1), "args": c.group(2),
                "ret": int(rm.group(1), 0) if rm else None,
                "ret_path": rm.group(2) if rm else None,
                "err": rm.group(3) if rm else None,
                "dur": float(c.group(4)) if c.group(4) else 0.0,
            })
    return calls


def load_ioctl_names():
    """{(fd class, number): name}, the numbers from the kernel's headers."""
    names = {}
    out = subprocess.run([REF, "ioctls"], check=True, capture_output=True,
                         text=True).stdout
    for line in out.split("\n"):
        if not line:
            continue
        name, nr = line.split()
        if name.startswith("IOMMU_"):
            cls = "iommufd"
        elif name.startswith("VFIO_GROUP_"):
            cls = "group"
        elif name.startswith("VFIO_DEVICE_"):
            cls = "device"
        elif name.startswith("VFIO_"):
            cls = "container"
        elif name == "KVM_CREATE_DEVICE":
            cls = "kvm-vm"
        else:
            cls = "kvm-vfio"
        names[(cls, int(nr, 16))] = name
    return names


def fd_class(path):
    if path == "/dev/iommu":
        return "iommufd"
    if path == "/dev/vfio/vfio":
        return "container"
    if re.fullmatch(r"/dev/vfio/\d+", path):
        return "group"
    if path.startswith("/dev/vfio/devices/") or "vfio-device" in path:
        return "device"
    if path.startswith("anon_inode:kvm-vfio"):
        return "kvm-vfio"
    if path.startswith("anon_inode:kvm-vm"):
        return "kvm-vm"
    return None


FD_ARG_RE = re.compile(r"^(-?\d+)<([^>]*)>(?:, ([^,]+))?(?:, (.*))?$")


def vfio_calls(calls, names):
    """The vfio, iommufd and kvm-vfio calls of an strace log, named."""
    out = []
    for c in calls:
        if c["call"] == "openat":
            path = c["ret_path"] or ""
            m = re.search(r'"([^"]*)"', c["args"])
            want = m.group(1) if m else ""
            cls = fd_class(path) or fd_class(want)
            if cls:
                out.append(dict(c, name="open " + want, cls=cls))
            elif re.match(r"/sys/(bus/pci/devices|devices)/", want) and \
                    any(b in want for b in BDFS):
                out.append(dict(c, name="sysfs open", cls="sysfs"))
            continue
        m = FD_ARG_RE.match(c["args"])
        if not m:
            continue
        cls = fd_class(m.group(2))
        if not cls:
            continue
        if c["call"] == "close":
            out.append(dict(c, name="close " + cls, cls=cls))
            continue
        if c["call"] != "ioctl":
            continue
        nr = int(m.group(3), 0)
        name = names.get((cls, nr))
        if cls == "kvm-vm" and name is None:
            continue                # memslots and the like: not ours
        out.append(dict(c, name=name or "%s ioctl 0x%x" % (cls, nr),
                        cls=cls, arg=m.group(4)))
    return out


# --- 1. Syscall budget -----------------------------------------------------

# The calls each phase needs at the least (device-level queries such as
# VFIO_DEVICE_GET_REGION_INFO are the same on both paths and counted apart).
MINIMUM = {
    "iommufd": {
        "start": ["open /dev/vfio/devices/vfioN", "open /dev/iommu",
                  "KVM_CREATE_DEVICE", "KVM_SET_DEVICE_ATTR",
                  "VFIO_DEVICE_BIND_IOMMUFD", "IOMMU_IOAS_ALLOC",
                  "VFIO_DEVICE_ATTACH_IOMMUFD_PT", "IOMMU_IOAS_IOVA_RANGES",
                  "VFIO_DEVICE_GET_INFO", "MAP per RAM section"],
        "second": ["open /dev/vfio/devices/vfioN", "KVM_SET_DEVICE_ATTR",
                   "VFIO_DEVICE_BIND_IOMMUFD", "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
                   "VFIO_DEVICE_GET_INFO"],
        "unplug": ["KVM_SET_DEVICE_ATTR", "close device"],
        "unplug-last": ["KVM_SET_DEVICE_ATTR", "close device",
                        "close iommufd"],
    },
    "legacy": {
        "start": ["open /dev/vfio/N", "VFIO_GROUP_GET_STATUS",
                  "open /dev/vfio/vfio", "VFIO_GET_API_VERSION",
                  "VFIO_CHECK_EXTENSION", "VFIO_GROUP_SET_CONTAINER",
                  "VFIO_SET_IOMMU", "VFIO_IOMMU_GET_INFO",
                  "KVM_CREATE_DEVICE", "KVM_SET_DEVICE_ATTR",
                  "VFIO_GROUP_GET_DEVICE_FD", "VFIO_DEVICE_GET_INFO",
                  "MAP per RAM section"],
        "second": ["open /dev/vfio/N", "VFIO_GROUP_GET_STATUS",
                   "VFIO_GROUP_SET_CONTAINER", "KVM_SET_DEVICE_ATTR",
                   "VFIO_GROUP_GET_DEVICE_FD", "VFIO_DEVICE_GET_INFO"],
        "unplug": ["KVM_SET_DEVICE_ATTR", "close device", "close group"],
        "unplug-last": ["KVM_SET_DEVICE_ATTR", "close device", "close group",
                        "close container"],
    },
}
MAP_NAME = {"iommufd": "IOMMU_IOAS_MAP", "legacy": "VFIO_IOMMU_MAP_DMA"}
UNMAP_NAME = {"iommufd": "IOMMU_IOAS_UNMAP", "legacy": "VFIO_IOMMU_UNMAP_DMA"}
QUERIES = {"IOMMU_IOAS_IOVA_RANGES", "VFIO_IOMMU_GET_INFO",
           "VFIO_CHECK_EXTENSION", "VFIO_GET_API_VERSION",
           "VFIO_GROUP_GET_STATUS", "IOMMU_GET_HW_INFO",
           "KVM_HAS_DEVICE_ATTR"}
# Per-device calls that are the same whichever path set the device up.
DEVICE_COMMON = {"VFIO_DEVICE_GET_REGION_INFO", "VFIO_DEVICE_GET_IRQ_INFO",
                 "VFIO_DEVICE_SET_IRQS", "VFIO_DEVICE_RESET",
                 "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO",
                 "VFIO_DEVICE_PCI_HOT_RESET", "VFIO_DEVICE_FEATURE",
                 "VFIO_DEVICE_IOEVENTFD"}


def short(call):
    """A call's name as the minimum lists name it."""
    n = call["name"]
    if n.startswith("open /dev/vfio/devices/"):
        return "open /dev/vfio/devices/vfioN"
    if re.fullmatch(r"open /dev/vfio/\d+", n):
        return "open /dev/vfio/N"
    return n


def budget_phase(path, phase, calls, trace):
    """Compare one phase's calls with its minimum; name the extra ones."""
    sections = sum(1 for _, e, _ in trace
                   if e == "vfio_listener_region_add_ram")
    # A section that threads map in chunks takes a MAP per chunk.
    chunks = sum(hexarg(a, "chunks") - 1 for _, e, a in trace
                 if e == "vfio_dma_map_chunks")
    main, common, sysfs = [], [], 0
    for c in calls:
        if c["cls"] == "sysfs":
            sysfs += 1
        elif c["name"] in DEVICE_COMMON:
            common.append(c)
        else:
            main.append(c)
    minimum = list(MINIMUM[path][phase])
    if "MAP per RAM section" in minimum:
        minimum.remove("MAP per RAM section")
        minimum += [MAP_NAME[path]] * (sections + chunks)
    left = list(minimum)
    extra = []
    for c in main:
        s = short(c)
        if s in left:
            left.remove(s)
        else:
            extra.append(c)
    # Why each extra call is there.
    redundant = []
    seen = {}
    for c in main:
        seen.setdefault(c["name"], []).append(c)
    for c in extra:
        n = c["name"]
        if n in QUERIES and len(seen[n]) > 1:
            why = "repeated query (%d calls%s)" % (
                len(seen[n]), ", the first one %s: a sizing pass"
                % seen[n][0]["err"] if seen[n][0]["err"] else "")
        elif n == UNMAP_NAME[path] and phase.startswith("unplug"):
            why = ("explicit unmap of a RAM section before the IOAS/container "
                   "goes (closing or destroying it unmaps everything)")
        elif n == UNMAP_NAME[path]:
            why = "unmap during this phase"
        elif n == MAP_NAME[path]:
            why = "map beyond one per RAM section"
        elif n == "IOMMU_DESTROY" and phase == "unplug-last":
            why = ("IOAS destroyed explicitly before /dev/iommu is closed "
                   "(closing destroys it)")
        elif n == "VFIO_DEVICE_DETACH_IOMMUFD_PT":
            why = ("explicit detach before the device fd is closed (closing "
                   "it detaches and unbinds)")
        elif n == "VFIO_GROUP_UNSET_CONTAINER":
            why = ("explicit unset before the group fd is closed (closing "
                   "it unsets)")
        elif n.startswith("close") or n.startswith("open"):
            why = "fd handling beyond the minimum"
        elif c["err"]:
            why = "failed call (%s)" % c["err"]
        else:
            why = "beyond the minimum"
        redundant.append({"name": n, "why": why, "ret": c["ret"],
                          "err": c["err"], "dur": c["dur"]})
    # MAPs undone by an UNMAP of the same range within the phase.
    maps, undone = [], []
    for t, e, a in trace:
        if e == "vfio_listener_region_add_ram":
            m = re.search(r"(0x[0-9a-f]+) - (0x[0-9a-f]+)", a)
            maps.append((int(m.group(1), 16), int(m.group(2), 16)))
        elif e == "vfio_listener_region_del":
            m = re.search(r"(0x[0-9a-f]+) - (0x[0-9a-f]+)", a)
            r = (int(m.group(1), 16), int(m.group(2), 16))
            if r in maps:
                maps.remove(r)
                undone.append("0x%x-0x%x" % r)
    errors = [c["name"] + " " + c["err"] for c in main + common if c["err"]]
    return {
        "calls": [{"name": c["name"], "ret": c["ret"], "err": c["err"],
                   "dur": c["dur"]} for c in main],
        "count": len(main),
        "minimum": minimum,
        "minimum_count": len(minimum),
        "missing": left,
        "extra": redundant,
        "map_undone_by_unmap": undone,
        "ram_sections": sections,
        "extra_chunks": chunks,
        "device_common_count": len(common),
        "device_common": sorted(set(c["name"] for c in common)),
        "sysfs_opens": sysfs,
        "failed": errors,
    }


def bench_syscalls(names):
    log("== 1. syscall budget (accel %s)" % ACCEL)
    result = {"accel": ACCEL, "paths": {}}
    for variant in PATHS + peer_variants():
        qemu, path = qemu_of(variant)
        name = "budget-" + variant
        marks = []          # wall-clock: strace -ttt's and the trace's
        vm = Vm(name, cold_args(path, 1), events=MAP_EVENTS,
                strace="ioctl,openat,close", qemu=qemu)
        marks.append(("start", vm.t_exec))
        t = time.time()
        marks.append(("second", t))
        props = device_args(path, BDFS[1], "hostdev1", SLOTS[1])
        vm.cmd("device_add", **props)
        time.sleep(0.5)
        marks.append(("unplug", time.time()))
        vm.acpi_unplug("hostdev1", SLOTS[1])
        time.sleep(0.5)
        marks.append(("unplug-last", time.time()))
        vm.acpi_unplug("hostdev0", SLOTS[0])
        time.sleep(0.5)
        marks.append(("quit", time.time()))
        vm.quit()
        calls = vfio_calls(read_strace(vm.strace), names)
        trace = read_trace(vm.trace)
        phases = {}
        for i, (phase, t0) in enumerate(marks[:-1]):
            t1 = marks[i + 1][1]
            pc = [c for c in calls if t0 <= c["t"] < t1]
            pt = [x for x in trace if t0 <= x[0] < t1]
            phases[phase] = budget_phase(path, phase, pc, pt)
            p = phases[phase]
            log("  %-8s %-11s %2d calls (minimum %2d), device-common %d, "
                "extra: %s" % (variant, phase, p["count"], p["minimum_count"],
                               p["device_common_count"],
                               ", ".join(e["name"] for e in p["extra"])
                               or "none"))
        result["paths"][variant] = {"phases": phases,
                                 "quit_calls": [c["name"] for c in calls
                                                if c["t"] >= marks[-1][1]]}
    return result


# --- 2. Start-up -----------------------------------------------------------

def bench_startup():
    log("== 2. start-up, %d runs each, interleaved, accel %s"
        % (STARTUP_RUNS, ACCEL))
    variants = ["none", "legacy", "iommufd"] + peer_variants()
    runs = {v: [] for v in variants}
    for i in range(STARTUP_RUNS):
        k = i % len(variants)
        order = variants[k:] + variants[:k]
        for v in order:
            qemu, path = qemu_of(v)
            args = [] if v == "none" else cold_args(path, 1)
            vm = Vm("startup-%s-%d" % (v, i), args, events=REALIZE_EVENTS,
                    qemu=qemu)
            vm.quit()
            trace = read_trace(vm.trace)
            t_begin, t_end = first(trace, "vfio_mdev"), \
                first(trace, "vfio_intx_enable")
            r = {"ready": vm.t_ready - vm.t_exec}
            if v != "none":
                r["realized"] = t_end - vm.t_exec
                r["realize"] = t_end - t_begin
            runs[v].append(r)
    med = {v: {k: median([r[k] for r in runs[v]]) for k in runs[v][0]}
           for v in variants}
    for v in variants:
        log("  %-8s " % v + ", ".join("%s %.3f s" % kv for kv in
                                      med[v].items()))
    return {"runs": runs, "median": med, "accel": ACCEL}


# --- 3. Mapping cost -------------------------------------------------------

def map_spec(trace, path, until=None):
    """
    The IOAS_MAP calls QEMU made, as ioas-map-ref's SPEC: all of them, or
    those before the first event @until (e.g. the end of the attach).
    """
    end = next((t for t, e, _ in trace if e == until), None)
    lines = []
    for t, e, a in trace:
        if end is not None and t > end:
            break
        if e == "iommufd_backend_map_dma" and hexarg(a, "errno") == 0:
            lines.append("0x%x 0x%x 0x%x %d" % (
                hexarg(a, "iova"), hexarg(a, "size"), hexarg(a, "vaddr"),
                hexarg(a, "readonly")))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return len(lines)


def strace_map_sum(path, names, name):
    calls = vfio_calls(read_strace(path), names)
    maps = [c for c in calls if c["name"] == name and c["ret"] == 0]
    return sum(c["dur"] for c in maps), [c["dur"] for c in maps]


def vfio_nodes(bdf):
    """The VFIO cdev and the group node of device @bdf."""
    return procfs.cdev_of(bdf), procfs.group_of(bdf)


def run_ref(kind, node, spec, tag):
    """Run the reference under the same strace as QEMU; its strace log and
    its own clock's total."""
    st = os.path.join(LOGS, tag + ".strace")
    cmd = STRACE + ["-e", "trace=ioctl", "-o", st, REF, kind, node, spec]
    out = subprocess.run(cmd, check=True, capture_output=True,
                         text=True).stdout
    with open(os.path.join(LOGS, tag + ".out"), "w") as f:
        f.write(out)
    total = [ln for ln in out.split("\n") if ln.startswith("total ")][0]
    internal = int(total.split()[1]) / 1e9
    return st, internal


def bench_map(names):
    log("== 3. mapping cost, %s MiB, %d runs each, interleaved"
        % (MAP_SIZES, MAP_RUNS))
    bdf = BDFS[0]
    cdev, group = vfio_nodes(bdf)
    variants = ["qemu-iommufd", "qemu-legacy", "ref-iommufd",
                "ref-type1"] + peer_variants()
    result = {"sizes_mib": MAP_SIZES, "accel": ACCEL, "runs": {}, "median": {},
              "calls": {}, "ref_internal": {}}
    for size in MAP_SIZES:
        runs = {v: [] for v in variants}
        percall = {v: [] for v in variants}
        internal = {v: [] for v in variants}
        spec = os.path.join(LOGS, "map-%d.spec" % size)
        # Warm-up, not counted: it gives the reference its spec, and it
        # makes the outer emulator back this much of L1's memory, which
        # otherwise the first run at a size pays for (seconds, under TCG).
        # One call per section (map-threads=1): this part compares each
        # call with the kernel's; what threads gain is large.py's part.
        vm = Vm("map-%d-warmup" % size, cold_args("iommufd", 1, 1),
                mem="%dM" % size, events=MAP_EVENTS)
        vm.quit()
        nspec = map_spec(read_trace(vm.trace), spec)
        for i in range(MAP_RUNS):
            order = variants[i % len(variants):] + \
                variants[:i % len(variants)]
            for v in order:
                tag = "map-%d-%s-%d" % (size, v, i)
                if not v.startswith("ref-"):
                    qemu, path = qemu_of(v)
                    # One call per section (map-threads=1) for ours; the
                    # peer has no such property.
                    threads = 1 if qemu == QEMU else None
                    vm = Vm(tag, cold_args(path, 1, threads),
                            mem="%dM" % size, events=MAP_EVENTS,
                            strace="ioctl", qemu=qemu)
                    vm.quit()
                    total, each = strace_map_sum(vm.strace, names,
                                                 MAP_NAME[path])
                else:
                    kind = v[4:]
                    st, inner = run_ref(kind, cdev if kind == "iommufd"
                                        else group, spec, tag)
                    internal[v].append(inner)
                    total, each = strace_map_sum(
                        st, names, MAP_NAME["iommufd" if kind == "iommufd"
                                            else "legacy"])
                runs[v].append(total)
                percall[v].append(each)
        result["runs"][str(size)] = runs
        result["calls"][str(size)] = percall
        result["ref_internal"][str(size)] = internal
        result["median"][str(size)] = {v: median(runs[v]) for v in variants}
        for v in ("ref-iommufd", "ref-type1"):
            # The reference's own clock around its calls (no strace in it).
            result["median"][str(size)][v + "-clock"] = median(internal[v])
        result.setdefault("map_calls", {})[str(size)] = nspec
        log("  %5d MiB: " % size + ", ".join(
            "%s %.3f s" % kv for kv in result["median"][str(size)].items()))
    return result


# --- 4. Hot-plug cycle -----------------------------------------------------

def hotplug_cycle(vm, path):
    # Wall-clock marks: strace -ttt's clock, to find the calls between them.
    props = device_args(path, BDFS[0], "hp0", SLOTS[0])
    t0 = time.time()
    vm.cmd("device_add", **props)
    t1 = time.time()
    vm.acpi_unplug("hp0", SLOTS[0])
    return t0, t1, time.time()


def hotplug_traced(names, cycles=3):
    """Where the time of a (warm) cycle goes: the calls, under strace -T."""
    vm = Vm("hotplug-traced", ["-object", "iommufd,id=iommufd0"],
            strace="ioctl,openat,close")
    marks = []
    try:
        for path in PATHS:
            hotplug_cycle(vm, path)
        for i in range(cycles):
            for path in (PATHS if i % 2 == 0 else PATHS[::-1]):
                marks.append((path,) + hotplug_cycle(vm, path))
    finally:
        vm.quit()
    calls = vfio_calls(read_strace(vm.strace), names)
    out = {p: {"add": [], "del": []} for p in PATHS}
    for path, t0, t1, t2 in marks:
        for step, a, b in (("add", t0, t1), ("del", t1, t2)):
            by_name = {}
            for c in calls:
                if a <= c["t"] < b:
                    n = by_name.setdefault(c["name"], [0, 0.0])
                    n[0] += 1
                    n[1] += c["dur"]
            out[path][step].append({"wall": b - a, "calls": by_name})
    return out


def hotplug_runs(tag, qemu, prefix=""):
    """Hot-plug cycles of both paths in one QEMU: {PREFIX+path: cycles},
    and each path's first cycle."""
    vm = Vm(tag, ["-object", "iommufd,id=iommufd0"], qemu=qemu)
    runs = {prefix + p: [] for p in PATHS}
    first_cycle = {}
    try:
        # The first cycle of each path faults guest RAM in (pinning does);
        # later ones pin present pages, as hot-plug into a running guest
        # does.  Recorded apart.
        for path in PATHS:
            t0, t1, t2 = hotplug_cycle(vm, path)
            first_cycle[prefix + path] = {"add": t1 - t0, "del": t2 - t1}
        for i in range(HOTPLUG_CYCLES):
            for path in (PATHS if i % 2 == 0 else PATHS[::-1]):
                t0, t1, t2 = hotplug_cycle(vm, path)
                runs[prefix + path].append({"add": t1 - t0, "del": t2 - t1,
                                            "cycle": t2 - t0})
    finally:
        vm.quit()
    return runs, first_cycle


def bench_hotplug(names):
    log("== 4. hot-plug, %d cycles each, interleaved" % HOTPLUG_CYCLES)
    runs, first_cycle = hotplug_runs("hotplug", QEMU)
    if PEER:
        # The peer in a QEMU of its own, after ours.
        r, f = hotplug_runs("hotplug-" + PEER_LABEL, PEER, PEER_LABEL + "-")
        runs.update(r)
        first_cycle.update(f)
    med = {p: {k: median([r[k] for r in runs[p]]) for k in runs[p][0]}
           for p in runs}
    for p in runs:
        log("  %-8s " % p + ", ".join("%s %.3f s" % kv for kv in
                                      med[p].items()))
    return {"runs": runs, "median": med, "first_cycle": first_cycle,
            "traced": hotplug_traced(names), "accel": ACCEL}


# --- 5. Memory -------------------------------------------------------------

STATUS_KEYS = ["VmRSS", "RssAnon", "RssFile", "VmLck", "VmPin"]


def bench_memory():
    log("== 5. memory, 0/1/2 devices, %d runs each" % MEMORY_RUNS)
    variants = [("none", 0), ("legacy", 1), ("iommufd", 1), ("legacy", 2),
                ("iommufd", 2)]
    runs = {}
    for i in range(MEMORY_RUNS):
        for path, n in variants:
            key = "%s-%d" % (path, n)
            args = [] if path == "none" else cold_args(path, n)
            vm = Vm("memory-%s-%d" % (key, i), args)
            time.sleep(0.5)
            st = procfs.memory_kb(vm.pid, STATUS_KEYS)
            vm.quit()
            runs.setdefault(key, []).append(st)
    med = {k: {s: median([r[s] for r in v]) for s in STATUS_KEYS}
           for k, v in runs.items()}
    for k, v in med.items():
        log("  %-10s " % k + ", ".join("%s %d kB" % kv for kv in v.items()))
    return {"runs": runs, "median": med, "unit": "kB"}


# --- Main ------------------------------------------------------------------

def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True,
                          text=True).stdout.strip()


def environment():
    env = {
        "uname": sh("uname -srvm"),
        "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-"),
        "cpus": os.cpu_count(),
        "mem_total_kb": procfs.meminfo()["MemTotal"],
        "qemu": sh(QEMU + " --version | head -n1"),
        "strace": sh("strace -V | head -n1"),
        "thp": sh("cat /sys/kernel/mm/transparent_hugepage/enabled "
                  "2>/dev/null") or "not built in",
        "kvm": os.path.exists("/dev/kvm"),
        "edu_bdfs": BDFS,
        "quick": QUICK,
        "accel": ACCEL,
    }
    if PEER:
        env["peer"] = {"label": PEER_LABEL, "binary": PEER,
                       "qemu": sh(PEER + " --version | head -n1"),
                       "viommu": PEER_VIOMMU}
    return env


def warm_l1_memory():
    """Touch most of L1's free memory once: the outer emulator backs L1's
    RAM on first touch, which costs seconds under TCG and would otherwise
    land on whichever run first uses that memory."""
    info = procfs.meminfo()
    size = max(0, info["MemAvailable"] - 384 * 1024) * 1024
    t0 = time.monotonic()
    buf = bytearray(size)
    buf[::4096] = b"\1" * len(range(0, size, 4096))
    del buf
    log("== warmed %d MiB of L1 memory in %.1f s"
        % (size >> 20, time.monotonic() - t0))
    return size >> 20


def main():
    os.makedirs(LOGS, exist_ok=True)
    if len(BDFS) < 2:
        log("needs two edu devices bound to vfio-pci, found %s" % BDFS)
        return 1
    results = {"env": environment(), "l1_loadavg_start": procfs.loadavg()}
    log("L1: %s, %s, QEMU %s" % (results["env"]["uname"],
                                  results["env"]["cpu"],
                                  results["env"]["qemu"]))
    names = load_ioctl_names()
    results["env"]["warmed_mib"] = warm_l1_memory()
    rc = 0
    from large import bench_large, bench_parallel
    from running import bench_running
    from viommu import bench_viommu

    def bench_migration(peers):
        # The migration branch's part (issue 19 item 6), once it exists:
        # total time and downtime of the same mtty migration, ours on
        # each path and the peer.
        try:
            from migration import bench_migration as run
        except ImportError:
            return None
        return run(BDFS, peers)
    peers = [(PEER_LABEL, PEER, PEER_VIOMMU)] if PEER else []
    steps = [("viommu", lambda: bench_viommu(BDFS, peers)),
             ("migration", lambda: bench_migration(peers)),
             ("parallel", lambda: bench_parallel(BDFS)),
             ("large", lambda: bench_large(BDFS)),
             ("running", lambda: bench_running(BDFS)),
             ("syscalls", lambda: bench_syscalls(names)),
             ("startup", bench_startup),
             ("map", lambda: bench_map(names)),
             ("hotplug", lambda: bench_hotplug(names)),
             ("memory", bench_memory)]
    only = os.environ.get("BENCH_ONLY")
    for key, fn in steps:
        if only and key not in only.split(","):
            continue
        t0 = time.monotonic()
        try:
            r = fn()
            if r is None:           # a part that does not exist yet
                continue
            results[key] = r
        except Exception as e:      # record it, go on, fail at the end
            log("!! %s broke: %s" % (key, e))
            results.setdefault("errors", {})[key] = str(e)
            rc = 1
        took = time.monotonic() - t0
        log("   (%s took %.0f s)" % (key, took))
        results.setdefault("took", {})[key] = took
        # After every part: what L1's timeout would otherwise lose.
        write_results(results)
    results["l1_loadavg_end"] = procfs.loadavg()
    write_results(results)
    shutil.copytree(LOGS, os.path.join(OUT, "logs"), dirs_exist_ok=True)
    return rc


def write_results(results):
    with open(os.path.join(OUT, "raw.json.tmp"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    os.replace(os.path.join(OUT, "raw.json.tmp"),
               os.path.join(OUT, "raw.json"))


if __name__ == "__main__":
    sys.exit(main())
