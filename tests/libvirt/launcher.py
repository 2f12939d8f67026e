#!/usr/bin/python3
"""Run our QEMU the way libvirt does, for what real libvirt does not cover.

Real libvirt drives our QEMU in the libvirt tier (libvirt_tier.py beside
this file); the cases here are the rest: fd sets (-add-fd, add-fd) at start
and hot-plug, the introspection a management tool relies on, a hot-plug
under a memlock limit below guest RAM, two devices pinning guest RAM once.

Plays libvirt's part for VFIO device assignment through iommufd: as root it
opens /dev/iommu (with per-process RLIMIT_MEMLOCK accounting) and the
device cdev /dev/vfio/devices/vfioN, then starts QEMU as 'nobody', who can
open neither, with a memlock limit and libvirt's JSON command line:

    -object '{"qom-type":"iommufd","id":"iommufd0","fd":"<fd>"}'
    -device '{"driver":"vfio-pci","id":"hostdev0","iommufd":"iommufd0",
              "fd":"<fd>","bus":"pci.1","addr":"0x0"}'

QEMU runs with -accel qtest; the launcher drives the guest side (PCI
config space, BARs, edu DMA) over the qtest socket and management over QMP.
Runs as root where edu devices (1234:11e8) are bound to vfio-pci, e.g.
inside the test bed:

    tests/testbed/run-l1.sh --env PYTHONPATH -- tests/libvirt/launcher.py \\
        --qemu $PWD/build/obj/qemu-system-x86_64 [--case NAME]...

with PYTHONPATH=tests:build/qemu/python (pylib on QEMU's python/qemu).
Prints the TAP of pylib.tap, a line per case, and closes with
"launcher: N passed, N failed"; exits 1 on any failure.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from pylib import procfs, tracelog
from pylib.check import expect
from pylib.devices import hostdev_json, iommufd_json
from pylib.iommufd import open_accounted
from pylib.tap import Tap, note
from pylib.wait import until
from pylib.vm import QtestMachine, as_user

NOBODY = 65534          # uid 'nobody' and gid 'nogroup'
MIB = 1 << 20
GUEST_RAM = 128 * MIB
ENOUGH_MEMLOCK = GUEST_RAM + 64 * MIB   # fits guest RAM once, not twice
LOW_MEMLOCK = 32 * MIB                  # below guest RAM

EDU_ID = 0x11e81234             # device << 16 | vendor
EDU_DMA_SRC, EDU_DMA_DST, EDU_DMA_COUNT, EDU_DMA_CMD = 0x80, 0x88, 0x90, 0x98
EDU_DMA_RUN, EDU_DMA_TO_RAM = 0x1, 0x2
EDU_BUFFER = 0x40000
DMA_LEN = 2048                  # edu's buffer ends at 0x41000: stay below
GUEST_SRC, GUEST_DST = 0x1000000, 0x2000000

MMIO_BASE = 0xe0000000          # BARs go here, in the PC's PCI hole
PCI_COMMAND_MEMORY_MASTER = 0x6

TRACE_EVENTS = ['iommufd_backend_*', 'vfio_iommufd_*', 'vfio_kvm_device_*']


# --- the nodes, opened the way libvirt opens them ---------------------------

def cdev_of(bdf):
    cdev = procfs.cdev_of(bdf)
    expect(cdev, f'vfio-dev of {bdf}', 'one vfioN', cdev)
    return cdev


def open_cdev(bdf):
    return os.open(cdev_of(bdf), os.O_RDWR)


# --- QEMU as an unprivileged process ----------------------------------------

class Vm(QtestMachine):
    """Our QEMU, started as nobody with the given args and inherited fds;
    its files (output, trace, strace log) in a directory of its own."""

    def __init__(self, opts, name, args, fds=(), memlock=ENOUGH_MEMLOCK,
                 strace=False):
        self.opts = opts
        self.dir = tempfile.mkdtemp(prefix=f'libvirt-{name}-')
        os.chown(self.dir, NOBODY, NOBODY)
        self.trace = self.path('trace.log')
        self.strace = self.path('strace.log') if strace else None
        cmd = ['-machine', 'pc', '-m', f'{GUEST_RAM // MIB}M', '-nodefaults',
               '-qtest-log', 'none', '-D', self.trace]
        for ev in TRACE_EVENTS:
            cmd += ['-trace', f'enable={ev}']
        cmd += args
        wrapper = as_user(NOBODY, NOBODY, memlock)
        if self.strace:
            wrapper += ['strace', '-f', '-o', self.strace,
                        '-e', 'trace=open,openat,openat2,creat', '--']
        super().__init__(opts.qemu, cmd, name, self.dir, wrapper=wrapper,
                         owner=(NOBODY, NOBODY))
        for fd in fds:
            os.set_inheritable(fd, True)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise

    def path(self, name):
        return os.path.join(self.dir, name)

    def quit(self, timeout=30):
        """Quit over QMP, check QEMU exits cleanly (flushes the trace)."""
        rc = super().quit(timeout)
        expect(rc == 0, 'QEMU exit status', 0, f'{rc}: {self.output()}')

    def stop(self):
        """End QEMU if it still runs, keep or remove its files."""
        if self.is_running():
            # QEMU first: strace, killed, would leave its tracee running.
            os.kill(self.pid, signal.SIGKILL)
            self.kill()
        if self.opts.logs:
            dest = os.path.join(self.opts.logs, self.name)
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(self.dir, dest,
                            ignore=shutil.ignore_patterns('*.sock'))
        shutil.rmtree(self.dir)

    # --- evidence -------------------------------------------------------

    def trace_lines(self, event):
        """Lines of the log-backend trace recording @event."""
        return [f'{e} {a}' for _, e, a in tracelog.events(self.trace)
                if e == event]

    def strace_opens(self):
        with open(self.strace) as f:
            return [line.strip() for line in f if 'open' in line]

    def assert_nobody(self):
        uids = procfs.status(self.pid)['Uid']
        expect(uids == [str(NOBODY)] * 4, 'QEMU uids (real, eff, saved, fs)',
               f'all {NOBODY}', uids)

    def memory_kib(self):
        return procfs.memory_kb(self.pid)


# --- the guest side over qtest: PCI config space, BAR, edu DMA --------------

def cfg_addr(bus, slot, reg):
    return 0x80000000 | bus << 16 | slot << 11 | reg


def cfg_readl(qt, bus, slot, reg):
    qt.outl(0xcf8, cfg_addr(bus, slot, reg))
    return qt.inl(0xcfc)


def cfg_writel(qt, bus, slot, reg, val):
    qt.outl(0xcf8, cfg_addr(bus, slot, reg))
    qt.outl(0xcfc, val)


class Edu:
    """The assigned edu at bus/slot: IDs checked, BAR0 at @mmio, master on."""

    def __init__(self, qt, bus, slot, mmio):
        self.qt = qt
        ids = cfg_readl(qt, bus, slot, 0)
        expect(ids == EDU_ID, f'config space IDs at {bus:02x}:{slot:02x}.0',
               f'0x{EDU_ID:08x} (1234:11e8)', f'0x{ids:08x}')
        cfg_writel(qt, bus, slot, 0x10, 0xffffffff)
        size = (~(cfg_readl(qt, bus, slot, 0x10) & ~0xf) & 0xffffffff) + 1
        expect(size == MIB, 'edu BAR0 size', MIB, size)
        cfg_writel(qt, bus, slot, 0x10, mmio)
        cmd = cfg_readl(qt, bus, slot, 0x04)
        cfg_writel(qt, bus, slot, 0x04, cmd | PCI_COMMAND_MEMORY_MASTER)
        self.bar = mmio
        ident = qt.readl(mmio)
        expect(ident == 0x010000ed, 'edu identification register',
               '0x010000ed', f'0x{ident:08x}')

    def dma(self, src, dst, length, to_ram):
        qt = self.qt
        qt.writeq(self.bar + EDU_DMA_SRC, src)
        qt.writeq(self.bar + EDU_DMA_DST, dst)
        qt.writeq(self.bar + EDU_DMA_COUNT, length)
        qt.writeq(self.bar + EDU_DMA_CMD,
                  EDU_DMA_RUN | (EDU_DMA_TO_RAM if to_ram else 0))
        # edu runs on real time: sleep, do not step the clock.
        until(lambda: not qt.readq(self.bar + EDU_DMA_CMD) & EDU_DMA_RUN,
              10, 'edu DMA: expected done in 10 s, got still running', 0.01)

    def round_trip(self, seed):
        """Guest RAM -> edu buffer -> other guest RAM; the bytes must match."""
        pattern = bytes((seed + i * 7) & 0xff for i in range(DMA_LEN))
        self.qt.write(GUEST_SRC, pattern)
        self.qt.write(GUEST_DST, bytes(DMA_LEN))
        self.dma(GUEST_SRC, EDU_BUFFER, DMA_LEN, False)
        self.dma(EDU_BUFFER, GUEST_DST, DMA_LEN, True)
        back = self.qt.read(GUEST_DST, DMA_LEN)
        same = sum(a == b for a, b in zip(pattern, back))
        expect(back == pattern, 'DMA round trip bytes',
               f'{DMA_LEN} matching', f'{same} matching')
        return f'{DMA_LEN} bytes guest 0x{GUEST_SRC:x} -> edu -> ' \
               f'0x{GUEST_DST:x} verified'


# --- proofs ----------------------------------------------------------------

def assert_passed_fds_only(vm, cdevs):
    """QEMU (nobody) holds the nodes but never opened them (strace, trace)."""
    vm.assert_nobody()
    held = procfs.fds(vm.pid)
    for node in ['/dev/iommu'] + cdevs:
        fds = [fd for fd, target in held.items() if target == node]
        expect(fds, f'QEMU fds on {node}', 'at least one', 'none')
        note(f'QEMU (pid {vm.pid}, uid {NOBODY}) holds {node} as fd '
             f'{",".join(map(str, fds))}')
    return held


def assert_never_opened(vm):
    """After quit: the strace log (if any) and the trace show no open."""
    if vm.strace:
        opens = vm.strace_opens()
        expect(len(opens) > 10, 'open calls in the strace log', 'many',
               len(opens))
        bad = [line for line in opens
               if '"/dev/iommu"' in line or '"/dev/vfio' in line]
        expect(not bad, 'opens of /dev/iommu or /dev/vfio/* by QEMU', 'none',
               bad)
        note(f'strace -f: {len(opens)} open/openat calls, none of /dev/iommu '
             f'or /dev/vfio/*; last: {opens[-1][:100]}')
    cdev_opens = vm.trace_lines('vfio_iommufd_open_cdev')
    expect(not cdev_opens, 'vfio_iommufd_open_cdev trace', 'none', cdev_opens)
    connects = vm.trace_lines('iommufd_backend_connect')
    expect(connects and all('owned=0' in c for c in connects),
           'iommufd_backend_connect trace', 'owned=0', connects)
    note(f'trace: no vfio_iommufd_open_cdev; {connects[0]}')


# --- the cases --------------------------------------------------------------

def case_cold_start_fdset(opts):
    """Cold start with the fds in -add-fd sets, named /dev/fdset/N.  (Plain
    inherited fd numbers, libvirt's own way, are tests/libvirt's managed
    case.)"""
    bdf = opts.bdfs[0]
    iommufd, devfd = open_accounted(), open_cdev(bdf)
    args = ['-add-fd', f'fd={iommufd},set=1', '-add-fd', f'fd={devfd},set=2']
    args += iommufd_json('/dev/fdset/1')
    args += hostdev_json('hostdev0', '/dev/fdset/2', 'pci.0', 4)
    note('QEMU args: ' + ' '.join(args))
    try:
        vm = Vm(opts, 'cold-start-fdset', args, fds=(iommufd, devfd),
                strace=True)
    finally:
        os.close(iommufd)
        os.close(devfd)
    try:
        assert_passed_fds_only(vm, [cdev_of(bdf)])
        fdsets = vm.cmd('query-fdsets')
        expect(sorted(s['fdset-id'] for s in fdsets) == [1, 2],
               'query-fdsets ids', [1, 2], fdsets)
        note(Edu(vm, 0, 4, MMIO_BASE).round_trip(0x22))
        vm.quit()
        assert_never_opened(vm)
    finally:
        vm.stop()


def send_fds(vm, bdf, iommufd_name, dev_name):
    """Open both nodes as root, getfd them over QMP, close our copies."""
    iommufd, devfd = open_accounted(), open_cdev(bdf)
    try:
        vm.getfd(iommufd_name, iommufd)
        vm.getfd(dev_name, devfd)
    finally:
        os.close(iommufd)
        os.close(devfd)
    return iommufd_name, dev_name


def add_fds(vm, bdf, iommufd_set, dev_set):
    """The same with QMP add-fd: fd sets, named /dev/fdset/N."""
    iommufd, devfd = open_accounted(), open_cdev(bdf)
    try:
        for fd, fdset in ((iommufd, iommufd_set), (devfd, dev_set)):
            got = vm.add_fd_qmp(fd, fdset)
            expect(got['fdset-id'] == fdset, 'add-fd fdset-id', fdset, got)
    finally:
        os.close(iommufd)
        os.close(devfd)
    return f'/dev/fdset/{iommufd_set}', f'/dev/fdset/{dev_set}'


def hotplug_once(vm, bdf, n, via):
    """libvirt's hot-plug and unplug of one device, with a round trip."""
    qmp, slot = vm, 4
    if via == 'getfd':
        iommufd_fd, dev_fd = send_fds(vm, bdf, f'iommufd{n}', f'hostdev{n}')
    else:
        iommufd_fd, dev_fd = add_fds(vm, bdf, 10 * n, 10 * n + 1)
    qmp.cmd('object-add', **{'qom-type': 'iommufd', 'id': 'iommufd0',
                             'fd': iommufd_fd})
    start = time.monotonic()
    qmp.cmd('device_add', driver='vfio-pci', id='hostdev0',
            iommufd='iommufd0', fd=dev_fd, bus='pci.0', addr=f'0x{slot:x}')
    took = time.monotonic() - start
    held = set(procfs.fds(vm.pid).values())
    expect({'/dev/iommu', cdev_of(bdf)} <= held, 'QEMU fds after device_add',
           f'/dev/iommu and {cdev_of(bdf)}', sorted(held))
    result = Edu(vm, 0, slot, MMIO_BASE).round_trip(0x30 + n)
    reply = qmp.reply('object-del', id='iommufd0')
    expect('error' in reply, 'object-del of iommufd0 while hostdev0 uses it',
           'an error', reply)
    vm.acpi_unplug('hostdev0', slot)    # device_del, the guest's eject
    qmp.cmd('object-del', id='iommufd0')
    if via == 'add-fd':     # libvirt drops its fd sets after the unplug
        qmp.cmd('remove-fd', **{'fdset-id': 10 * n})
        qmp.cmd('remove-fd', **{'fdset-id': 10 * n + 1})
    held = set(procfs.fds(vm.pid).values())
    expect(not {'/dev/iommu', cdev_of(bdf)} & held,
           'QEMU fds after device_del + object-del',
           'no /dev/iommu, no cdev', sorted(held))
    note(f'hot-plug {n}: {via} x2, object-add, device_add ({took:.1f} s), '
         f'{result}, object-del refused while in use, device_del + '
         f'DEVICE_DELETED, object-del'
         f'{", remove-fd x2" if via == "add-fd" else ""}; both fds closed')


def case_hotplug_fdset(opts):
    """QMP hot-plug with the fds in fd sets (add-fd), twice, and object-del
    refused while the device uses the object.  (libvirt's own way, getfd,
    is tests/libvirt's hotplug case.)"""
    vm = Vm(opts, 'hotplug-fdset', [], strace=True)
    try:
        vm.assert_nobody()
        for n in (1, 2):
            hotplug_once(vm, opts.bdfs[0], n, 'add-fd')
        vm.quit()
        assert_never_opened(vm)
        connects = vm.trace_lines('iommufd_backend_connect')
        expect(len(connects) == 2, 'iommufd_backend_connect count', 2,
               len(connects))
    finally:
        vm.stop()


def start_with_devices(opts, name, bdfs, memlock):
    iommufd = open_accounted()
    devfds = [open_cdev(bdf) for bdf in bdfs]
    args = iommufd_json(iommufd)
    for i, fd in enumerate(devfds):
        args += hostdev_json(f'hostdev{i}', fd, 'pci.0', 4 + i)
    try:
        return Vm(opts, name, args, fds=[iommufd] + devfds, memlock=memlock)
    finally:
        for fd in [iommufd] + devfds:
            os.close(fd)


def pinned_figures(opts, bdfs):
    name = f'memlock-{len(bdfs)}dev'
    vm = start_with_devices(opts, name, bdfs, ENOUGH_MEMLOCK)
    try:
        for i in range(len(bdfs)):
            Edu(vm, 0, 4 + i, MMIO_BASE + i * MIB).round_trip(0x40 + i)
        mem = vm.memory_kib()
        vm.quit()
        ioas = vm.trace_lines('iommufd_backend_alloc_ioas')
        expect(len(ioas) == 1, 'IOAS allocations', 1, ioas)
        maps = [line for line in vm.trace_lines('iommufd_backend_map_dma')
                if 'errno=0' in line]
        mapped = sum(int(line.split('size=')[1].split()[0], 16)
                     for line in maps)
    finally:
        vm.stop()
    note(f'{len(bdfs)} device(s), one iommufd object: VmLck {mem["VmLck"]} '
         f'kB, VmPin {mem["VmPin"]} kB, VmRSS {mem["VmRSS"]} kB; '
         f'{len(maps)} IOAS maps, {mapped // 1024} kB mapped')
    return mem


def case_memlock(opts):
    """Per-process accounting: a low limit fails hot-plug clearly; RAM is
    pinned once for two devices.  (A cold start under a low limit is
    tests/libvirt's fail-memlock case.)"""
    # 1. Hot-plug with the limit below guest RAM: what QMP says.
    vm = Vm(opts, 'memlock-low-hotplug', [], memlock=LOW_MEMLOCK)
    try:
        send_fds(vm, opts.bdfs[0], 'iommufd', 'hostdev')
        vm.cmd('object-add', **{'qom-type': 'iommufd', 'id': 'iommufd0',
                                'fd': 'iommufd'})
        reply = vm.reply('device_add', driver='vfio-pci', id='hostdev0',
                         iommufd='iommufd0', fd='hostdev', bus='pci.0',
                         addr='0x4')
        expect('error' in reply, 'device_add with memlock below guest RAM',
               'an error', reply)
        desc = reply['error']['desc']
        held = set(procfs.fds(vm.pid).values())
        expect(cdev_of(opts.bdfs[0]) not in held,
               'QEMU fds after the failed device_add', 'no cdev', sorted(held))
        vm.quit()
        out = vm.output()
    finally:
        vm.stop()
    note(f'hot-plug, same limit: QMP device_add error: {desc}')
    note(f'  QEMU stderr: {" | ".join(out.strip().splitlines())}')
    # What libvirt reports is the QMP error: it must name the limit, and
    # not leak host pointers.
    expect('RLIMIT_MEMLOCK' in desc, 'hot-plug QMP error',
           'a message naming RLIMIT_MEMLOCK', desc)
    expect(not re.search(r'0x7f[0-9a-f]{10}', desc) and
           'vfio_dma_map(' not in desc,
           'hot-plug QMP error', 'no host addresses', desc)

    # 2. Enough for guest RAM once: one device, then two on one backend.
    one = pinned_figures(opts, opts.bdfs[:1])
    two = pinned_figures(opts, opts.bdfs[:2])
    for key in ('VmLck', 'VmPin'):
        expect(one[key] >= GUEST_RAM // 1024 * 9 // 10,
               f'{key} with one device', f'about guest RAM '
               f'({GUEST_RAM // 1024} kB)', one[key])
        expect(abs(two[key] - one[key]) <= one[key] // 20,
               f'{key} with two devices', f'about one device\'s {one[key]} kB '
               '(guest RAM pinned once)', two[key])
    note(f'pinned with 1 device: VmLck {one["VmLck"]} kB, VmPin '
         f'{one["VmPin"]} kB; with 2 devices: VmLck {two["VmLck"]} kB, '
         f'VmPin {two["VmPin"]} kB (memlock limit '
         f'{ENOUGH_MEMLOCK // MIB} MiB, guest RAM {GUEST_RAM // MIB} MiB)')


def schema_object_members(schema, qom_type):
    """Members of the object-add variant for @qom_type in query-qmp-schema."""
    by_name = {e['name']: e for e in schema}
    cmd = by_name['object-add']
    args = by_name[cmd['arg-type']]
    variants = {v['case']: v['type'] for v in args.get('variants', [])}
    expect(qom_type in variants, 'object-add variants',
           f'a case {qom_type!r}', sorted(variants))
    return {m['name']: by_name.get(m['type'], {}).get('json-type', m['type'])
            for m in by_name[variants[qom_type]]['members']}


def case_introspection(opts):
    """What a management tool sees over QMP and on the command line."""
    help_out = subprocess.run([opts.qemu, '-object', 'iommufd,help'],
                              capture_output=True, text=True, check=False)
    expect(help_out.returncode == 0 and 'fd=<' in help_out.stdout,
           '-object iommufd,help', 'an fd=<...> option',
           help_out.stdout + help_out.stderr)
    note('-object iommufd,help: ' + ' '.join(help_out.stdout.split())[:160])

    vm = start_with_devices(opts, 'introspection', opts.bdfs[:1],
                            ENOUGH_MEMLOCK)
    try:
        qmp = vm
        members = schema_object_members(qmp.cmd('query-qmp-schema'), 'iommufd')
        expect(members.get('fd') == 'string', 'schema of iommufd fd',
               'a string member fd', members)
        note(f'query-qmp-schema: object-add case iommufd members {members}')

        types = [t['name'] for t in qmp.cmd('qom-list-types')]
        expect('iommufd' in types, 'qom-list-types', 'iommufd', 'absent')
        props = {p['name']: p['type'] for p in
                 qmp.cmd('qom-list-properties', typename='iommufd')}
        expect(props.get('fd') == 'string', 'qom-list-properties iommufd',
               'fd (string)', props)
        note(f'qom-list-types has iommufd; its properties: {props}')

        props = {p['name']: p['type'] for p in
                 qmp.cmd('device-list-properties', typename='vfio-pci')}
        expect(props.get('iommufd') == 'link<iommufd>' and
               props.get('fd') == 'string', 'device-list-properties vfio-pci',
               'iommufd (link<iommufd>) and fd (string)',
               {k: props.get(k) for k in ('iommufd', 'fd')})
        note(f'device-list-properties vfio-pci: iommufd {props["iommufd"]}, '
             f'fd {props["fd"]}')

        link = qmp.cmd('qom-get', path='hostdev0', property='iommufd')
        expect(link == '/objects/iommufd0', 'qom-get hostdev0 iommufd',
               '/objects/iommufd0', link)
        note(f'qom-get hostdev0 iommufd: {link}')
        vm.quit()
    finally:
        vm.stop()


def case_qtree_link(opts):
    """`info qtree` shows the device's iommufd link."""
    vm = start_with_devices(opts, 'qtree-link', opts.bdfs[:1], ENOUGH_MEMLOCK)
    try:
        qtree = vm.cmd('human-monitor-command',
                       **{'command-line': 'info qtree'})
        vm.quit()
    finally:
        vm.stop()
    lines = qtree.splitlines()
    start = [i for i, line in enumerate(lines) if 'id "hostdev0"' in line]
    expect(start, 'info qtree', 'a vfio-pci with id "hostdev0"', qtree)
    dev = [line.strip() for line in lines[start[0]:start[0] + 40]]
    dev = dev[:1 + next((i for i, line in enumerate(dev[1:])
                         if line.startswith('dev:')), len(dev))]
    link = [line for line in dev if line.startswith('iommufd =')]
    expect(link and '/objects/iommufd0' in link[0],
           'info qtree lines of hostdev0', 'iommufd = "/objects/iommufd0"',
           ' | '.join(dev))
    note(f'info qtree: {dev[0]} ... {link[0]}')


CASES = {
    'cold-start-fdset': case_cold_start_fdset,
    'hotplug-fdset': case_hotplug_fdset,
    'memlock': case_memlock,
    'introspection': case_introspection,
    'qtree-link': case_qtree_link,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--qemu', required=True, help='our qemu-system-x86_64')
    ap.add_argument('--case', action='append', choices=list(CASES),
                    help='run only this case (repeatable; default: all)')
    ap.add_argument('--logs', help='keep each QEMU\'s output, trace and '
                    'strace logs under this directory')
    opts = ap.parse_args()
    opts.qemu = os.path.abspath(opts.qemu)
    if opts.logs:
        os.makedirs(opts.logs, exist_ok=True)
    if os.geteuid() != 0:
        sys.exit('launcher.py: must run as root (it plays libvirt)')
    opts.bdfs = procfs.bound_to('vfio-pci', (0x1234, 0x11e8))
    names = opts.case or list(CASES)
    tap = Tap('launcher', plan=len(names))
    for name in names:
        start = time.monotonic()
        try:
            need = 2 if name == 'memlock' else 1
            expect(len(opts.bdfs) >= need, 'edu devices bound to vfio-pci',
                   f'at least {need}', opts.bdfs)
            CASES[name](opts)
        except Exception as e:      # pylint: disable=broad-except
            tap.report(name, False, f'{type(e).__name__}: {e}')
        else:
            tap.report(name, True, f'{time.monotonic() - start:.1f} s')
    sys.exit(tap.close())


if __name__ == '__main__':
    main()
