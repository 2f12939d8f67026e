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

    tests/testbed/run-l1.sh -- tests/libvirt/launcher.py \\
        --qemu $PWD/build/obj/qemu-system-x86_64 [--case NAME]...

Prints "ok N name" / "not ok N name - reason" per case, then
"launcher: N passed, N failed"; exits 1 on any failure.
"""

import argparse
import fcntl
import json
import re
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

NOBODY = 65534          # uid 'nobody' and gid 'nogroup'
MIB = 1 << 20
GUEST_RAM = 128 * MIB
ENOUGH_MEMLOCK = GUEST_RAM + 64 * MIB   # fits guest RAM once, not twice
LOW_MEMLOCK = 32 * MIB                  # below guest RAM

# linux/iommufd.h: IOMMU_OPTION = _IO(IOMMUFD_TYPE ';', IOMMUFD_CMD_OPTION)
IOMMU_OPTION = (ord(';') << 8) | 0x87
IOMMU_OPTION_RLIMIT_MODE = 0
IOMMU_OPTION_OP_SET = 0
IOMMU_OPTION_OP_GET = 1
# struct iommu_option: size, option_id, op, __reserved, object_id, val64
IOMMU_OPTION_FMT = '=IIHHIQ'

EDU_ID = 0x11e81234             # device << 16 | vendor
EDU_DMA_SRC, EDU_DMA_DST, EDU_DMA_COUNT, EDU_DMA_CMD = 0x80, 0x88, 0x90, 0x98
EDU_DMA_RUN, EDU_DMA_TO_RAM = 0x1, 0x2
EDU_BUFFER = 0x40000
DMA_LEN = 2048                  # edu's buffer ends at 0x41000: stay below
GUEST_SRC, GUEST_DST = 0x1000000, 0x2000000

MMIO_BASE = 0xe0000000          # BARs go here, in the PC's PCI hole
PCI_COMMAND_MEMORY_MASTER = 0x6
ACPI_PCIHP_EJ = 0xae00 + 0x8    # PIIX4 ACPI PCI hotplug eject register

TRACE_EVENTS = ['iommufd_backend_*', 'vfio_iommufd_*', 'vfio_kvm_device_*']


class Fail(Exception):
    pass


def check(cond, what, expected, got):
    if not cond:
        raise Fail(f'{what}: expected {expected}, got {got}')


def note(msg):
    print(f'# {msg}', flush=True)


# --- the nodes, opened the way libvirt opens them ---------------------------

def edu_bdfs():
    """BDFs of the edu devices bound to vfio-pci, sorted."""
    drv = '/sys/bus/pci/drivers/vfio-pci'
    found = []
    for name in sorted(os.listdir(drv) if os.path.isdir(drv) else []):
        dev = os.path.join(drv, name)
        if ':' not in name:
            continue
        with open(f'{dev}/vendor') as v, open(f'{dev}/device') as d:
            if (int(v.read(), 16), int(d.read(), 16)) == (0x1234, 0x11e8):
                found.append(name)
    return found


def cdev_of(bdf):
    names = os.listdir(f'/sys/bus/pci/devices/{bdf}/vfio-dev')
    check(len(names) == 1, f'vfio-dev of {bdf}', 'one vfioN', names)
    return f'/dev/vfio/devices/{names[0]}'


def iommu_option(fd, op, val=0):
    arg = struct.pack(IOMMU_OPTION_FMT, struct.calcsize(IOMMU_OPTION_FMT),
                      IOMMU_OPTION_RLIMIT_MODE, op, 0, 0, val)
    return struct.unpack(IOMMU_OPTION_FMT,
                         fcntl.ioctl(fd, IOMMU_OPTION, arg))[5]


def open_iommufd():
    """/dev/iommu with per-process accounting, as libvirt sets it."""
    fd = os.open('/dev/iommu', os.O_RDWR)
    iommu_option(fd, IOMMU_OPTION_OP_SET, 1)
    mode = iommu_option(fd, IOMMU_OPTION_OP_GET)
    check(mode == 1, 'IOMMU_OPTION_RLIMIT_MODE', '1 (per process)', mode)
    return fd


def open_cdev(bdf):
    return os.open(cdev_of(bdf), os.O_RDWR)


def jarg(obj):
    return json.dumps(obj, separators=(',', ':'))


def iommufd_object(fd):
    return ['-object', jarg({'qom-type': 'iommufd', 'id': 'iommufd0',
                             'fd': str(fd)})]


def hostdev(dev_id, fd, bus, addr):
    return ['-device', jarg({'driver': 'vfio-pci', 'id': dev_id,
                             'iommufd': 'iommufd0', 'fd': str(fd),
                             'bus': bus, 'addr': f'0x{addr:x}'})]


# --- QEMU as an unprivileged process, with its sockets ----------------------

class LineSocket:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b''

    def readline(self):
        while b'\n' not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise Fail(f'{type(self).__name__}: QEMU closed the '
                           'connection')
            self.buf += data
        line, self.buf = self.buf.split(b'\n', 1)
        return line.decode().strip()


class Qtest(LineSocket):
    def cmd(self, line):
        self.sock.sendall(line.encode() + b'\n')
        while True:
            resp = self.readline()
            if resp.startswith('IRQ'):
                continue
            check(resp.startswith('OK'), f'qtest {line[:60]!r}', 'OK', resp)
            return resp[2:].strip()

    def outl(self, port, val):
        self.cmd(f'outl 0x{port:x} 0x{val:x}')

    def inl(self, port):
        return int(self.cmd(f'inl 0x{port:x}'), 16)

    def readl(self, addr):
        return int(self.cmd(f'readl 0x{addr:x}'), 16)

    def writeq(self, addr, val):
        self.cmd(f'writeq 0x{addr:x} 0x{val:x}')

    def readq(self, addr):
        return int(self.cmd(f'readq 0x{addr:x}'), 16)

    def write(self, addr, data):
        self.cmd(f'write 0x{addr:x} {len(data)} 0x{data.hex()}')

    def read(self, addr, length):
        return bytes.fromhex(self.cmd(f'read 0x{addr:x} {length}')[2:])


class Qmp(LineSocket):
    def __init__(self, sock):
        super().__init__(sock)
        self.events = []
        greeting = self.message()
        check('QMP' in greeting, 'QMP greeting', '{"QMP": ...}', greeting)
        self.cmd('qmp_capabilities')

    def message(self):
        while True:
            line = self.readline()
            if line:
                return json.loads(line)

    def raw(self, name, fds=(), **args):
        """Run a command; its reply, 'return' or 'error'."""
        msg = jarg({'execute': name, 'arguments': args}).encode() + b'\n'
        if fds:
            socket.send_fds(self.sock, [msg], list(fds))
        else:
            self.sock.sendall(msg)
        while True:
            reply = self.message()
            if 'event' in reply:
                self.events.append(reply)
            else:
                return reply

    def cmd(self, name, fds=(), **args):
        reply = self.raw(name, fds, **args)
        if 'error' in reply:
            raise Fail(f'QMP {name} {args}: {reply["error"]["desc"]}')
        return reply['return']

    def wait_event(self, name, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev['event'] == name:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            check(left > 0, f'QMP event {name}', f'within {timeout} s',
                  f'only {[e["event"] for e in self.events]}')
            self.sock.settimeout(left)
            try:
                self.events.append(self.message())
            except socket.timeout:
                pass
            finally:
                self.sock.settimeout(None)


def children_of(pid):
    """Pids whose parent is pid (the QEMU that strace started)."""
    found = []
    for name in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{name}/stat') as f:
                stat = f.read()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(')', 1)[1].split()[1]) == pid:
            found.append(int(name))
    return found


def drop_privileges(memlock):
    """In the child, before exec: what libvirt does for QEMU."""
    def preexec():
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (memlock, memlock))
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    return preexec


class Vm:
    """Our QEMU, started as nobody with the given args and inherited fds."""

    def __init__(self, opts, name, args, fds=(), memlock=ENOUGH_MEMLOCK,
                 strace=False, connect=True):
        self.opts = opts
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f'libvirt-{name}-')
        os.chown(self.dir, NOBODY, NOBODY)
        self.trace = self.path('trace.log')
        self.strace = self.path('strace.log') if strace else None
        self.proc = self.qemu_pid = None
        self.qt = self.qmp = None
        self.listeners = {}
        try:
            self.start(args, fds, memlock, connect)
        except BaseException:
            self.stop()
            raise

    def start(self, args, fds, memlock, connect):
        for sock_name in ('qtest', 'qmp'):
            lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listeners[sock_name] = lsock
            lsock.bind(self.path(f'{sock_name}.sock'))
            os.chown(self.path(f'{sock_name}.sock'), NOBODY, NOBODY)
            lsock.listen(1)
        cmd = [self.opts.qemu, '-machine', 'pc', '-accel', 'qtest',
               '-m', f'{GUEST_RAM // MIB}M', '-nodefaults', '-display', 'none',
               '-qtest', f'unix:{self.path("qtest.sock")}',
               '-qtest-log', 'none',
               '-chardev', f'socket,id=qmp,path={self.path("qmp.sock")}',
               '-mon', 'chardev=qmp,mode=control', '-D', self.trace]
        for ev in TRACE_EVENTS:
            cmd += ['-trace', f'enable={ev}']
        cmd += args
        if self.strace:
            cmd = ['strace', '-f', '-o', self.strace,
                   '-e', 'trace=open,openat,openat2,creat', '--'] + cmd
        with open(self.path('qemu.out'), 'wb') as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         pass_fds=fds, cwd=self.dir,
                                         preexec_fn=drop_privileges(memlock))
        if connect:
            qt = self.accept(self.listeners['qtest'])
            ucred = qt.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                  struct.calcsize('3i'))
            self.qemu_pid = struct.unpack('3i', ucred)[0]
            self.qt = Qtest(qt)
            self.qmp = Qmp(self.accept(self.listeners['qmp']))

    def path(self, name):
        return os.path.join(self.dir, name)

    def accept(self, lsock, timeout=60):
        deadline = time.monotonic() + timeout
        lsock.settimeout(0.2)
        while True:
            try:
                sock, _ = lsock.accept()
                sock.settimeout(None)
                return sock
            except socket.timeout:
                rc = self.proc.poll()
                if rc is not None:
                    raise Fail(f'QEMU exited with status {rc} at start-up: '
                               f'{self.output().strip()}')
                check(time.monotonic() < deadline, 'QEMU connecting',
                      f'within {timeout} s', 'nothing')

    def output(self):
        with open(self.path('qemu.out'), errors='replace') as f:
            return f.read()

    def wait(self, timeout=30):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Fail(f'QEMU still running after {timeout} s') from None

    def quit(self):
        """Quit over QMP, check QEMU exits cleanly (flushes the trace)."""
        try:
            self.qmp.cmd('quit')
        except Fail:
            pass        # QEMU may close the socket before replying
        rc = self.wait()
        check(rc == 0, 'QEMU exit status', 0, f'{rc}: {self.output()}')

    def stop(self):
        """End QEMU if it still runs, close sockets, keep or remove files."""
        if self.proc and self.proc.poll() is None:
            # QEMU first: strace, killed, would leave its tracee running.
            for pid in [self.qemu_pid] + children_of(self.proc.pid):
                if pid:
                    os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()
        for conn in (self.qt, self.qmp):
            if conn:
                conn.sock.close()
        for lsock in self.listeners.values():
            lsock.close()
        if self.opts.logs:
            dest = os.path.join(self.opts.logs, self.name)
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(self.dir, dest,
                            ignore=shutil.ignore_patterns('*.sock'))
        shutil.rmtree(self.dir)

    # --- evidence -------------------------------------------------------

    def trace_lines(self, event):
        """Lines of the log-backend trace recording @event."""
        found = []
        with open(self.trace) as f:
            for line in f:
                head = line.split(' ', 1)[0]
                if head.split(':', 1)[-1] == event:
                    found.append(line.strip())
        return found

    def strace_opens(self):
        with open(self.strace) as f:
            return [line.strip() for line in f if 'open' in line]

    def proc_status(self):
        with open(f'/proc/{self.qemu_pid}/status') as f:
            return dict(line.split(':', 1) for line in f if ':' in line)

    def proc_fds(self):
        fd_dir = f'/proc/{self.qemu_pid}/fd'
        return {int(n): os.readlink(f'{fd_dir}/{n}')
                for n in os.listdir(fd_dir)}

    def assert_nobody(self):
        uids = self.proc_status()['Uid'].split()
        check(uids == [str(NOBODY)] * 4, 'QEMU uids (real, eff, saved, fs)',
              f'all {NOBODY}', uids)

    def memory_kib(self):
        st = self.proc_status()
        return {k: int(st[k].split()[0]) for k in ('VmLck', 'VmPin', 'VmRSS')}


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
        check(ids == EDU_ID, f'config space IDs at {bus:02x}:{slot:02x}.0',
              f'0x{EDU_ID:08x} (1234:11e8)', f'0x{ids:08x}')
        cfg_writel(qt, bus, slot, 0x10, 0xffffffff)
        size = (~(cfg_readl(qt, bus, slot, 0x10) & ~0xf) & 0xffffffff) + 1
        check(size == MIB, 'edu BAR0 size', MIB, size)
        cfg_writel(qt, bus, slot, 0x10, mmio)
        cmd = cfg_readl(qt, bus, slot, 0x04)
        cfg_writel(qt, bus, slot, 0x04, cmd | PCI_COMMAND_MEMORY_MASTER)
        self.bar = mmio
        ident = qt.readl(mmio)
        check(ident == 0x010000ed, 'edu identification register',
              '0x010000ed', f'0x{ident:08x}')

    def dma(self, src, dst, length, to_ram):
        qt = self.qt
        qt.writeq(self.bar + EDU_DMA_SRC, src)
        qt.writeq(self.bar + EDU_DMA_DST, dst)
        qt.writeq(self.bar + EDU_DMA_COUNT, length)
        qt.writeq(self.bar + EDU_DMA_CMD,
                  EDU_DMA_RUN | (EDU_DMA_TO_RAM if to_ram else 0))
        deadline = time.monotonic() + 10    # edu runs on real time: sleep
        while qt.readq(self.bar + EDU_DMA_CMD) & EDU_DMA_RUN:
            check(time.monotonic() < deadline, 'edu DMA', 'done in 10 s',
                  'still running')
            time.sleep(0.01)

    def round_trip(self, seed):
        """Guest RAM -> edu buffer -> other guest RAM; the bytes must match."""
        pattern = bytes((seed + i * 7) & 0xff for i in range(DMA_LEN))
        self.qt.write(GUEST_SRC, pattern)
        self.qt.write(GUEST_DST, bytes(DMA_LEN))
        self.dma(GUEST_SRC, EDU_BUFFER, DMA_LEN, False)
        self.dma(EDU_BUFFER, GUEST_DST, DMA_LEN, True)
        back = self.qt.read(GUEST_DST, DMA_LEN)
        same = sum(a == b for a, b in zip(pattern, back))
        check(back == pattern, 'DMA round trip bytes',
              f'{DMA_LEN} matching', f'{same} matching')
        return f'{DMA_LEN} bytes guest 0x{GUEST_SRC:x} -> edu -> ' \
               f'0x{GUEST_DST:x} verified'


# --- proofs ----------------------------------------------------------------

def assert_passed_fds_only(vm, cdevs):
    """QEMU (nobody) holds the nodes but never opened them (strace, trace)."""
    vm.assert_nobody()
    held = vm.proc_fds()
    for node in ['/dev/iommu'] + cdevs:
        fds = [fd for fd, target in held.items() if target == node]
        check(fds, f'QEMU fds on {node}', 'at least one', 'none')
        note(f'QEMU (pid {vm.qemu_pid}, uid {NOBODY}) holds {node} as fd '
             f'{",".join(map(str, fds))}')
    return held


def assert_never_opened(vm):
    """After quit: the strace log (if any) and the trace show no open."""
    if vm.strace:
        opens = vm.strace_opens()
        check(len(opens) > 10, 'open calls in the strace log', 'many',
              len(opens))
        bad = [line for line in opens
               if '"/dev/iommu"' in line or '"/dev/vfio' in line]
        check(not bad, 'opens of /dev/iommu or /dev/vfio/* by QEMU', 'none',
              bad)
        note(f'strace -f: {len(opens)} open/openat calls, none of /dev/iommu '
             f'or /dev/vfio/*; last: {opens[-1][:100]}')
    cdev_opens = vm.trace_lines('vfio_iommufd_open_cdev')
    check(not cdev_opens, 'vfio_iommufd_open_cdev trace', 'none', cdev_opens)
    connects = vm.trace_lines('iommufd_backend_connect')
    check(connects and all('owned=0' in c for c in connects),
          'iommufd_backend_connect trace', 'owned=0', connects)
    note(f'trace: no vfio_iommufd_open_cdev; {connects[0]}')


# --- the cases --------------------------------------------------------------

def case_cold_start_fdset(opts):
    """Cold start with the fds in -add-fd sets, named /dev/fdset/N.  (Plain
    inherited fd numbers, libvirt's own way, are tests/libvirt's managed
    case.)"""
    bdf = opts.bdfs[0]
    iommufd, devfd = open_iommufd(), open_cdev(bdf)
    args = ['-add-fd', f'fd={iommufd},set=1', '-add-fd', f'fd={devfd},set=2']
    args += iommufd_object('/dev/fdset/1')
    args += hostdev('hostdev0', '/dev/fdset/2', 'pci.0', 4)
    note('QEMU args: ' + ' '.join(args))
    try:
        vm = Vm(opts, 'cold-start-fdset', args, fds=(iommufd, devfd),
                strace=True)
    finally:
        os.close(iommufd)
        os.close(devfd)
    try:
        assert_passed_fds_only(vm, [cdev_of(bdf)])
        fdsets = vm.qmp.cmd('query-fdsets')
        check(sorted(s['fdset-id'] for s in fdsets) == [1, 2],
              'query-fdsets ids', [1, 2], fdsets)
        note(Edu(vm.qt, 0, 4, MMIO_BASE).round_trip(0x22))
        vm.quit()
        assert_never_opened(vm)
    finally:
        vm.stop()


def send_fds(vm, bdf, iommufd_name, dev_name):
    """Open both nodes as root, getfd them over QMP, close our copies."""
    iommufd, devfd = open_iommufd(), open_cdev(bdf)
    try:
        vm.qmp.cmd('getfd', fds=[iommufd], fdname=iommufd_name)
        vm.qmp.cmd('getfd', fds=[devfd], fdname=dev_name)
    finally:
        os.close(iommufd)
        os.close(devfd)
    return iommufd_name, dev_name


def add_fds(vm, bdf, iommufd_set, dev_set):
    """The same with QMP add-fd: fd sets, named /dev/fdset/N."""
    iommufd, devfd = open_iommufd(), open_cdev(bdf)
    try:
        for fd, fdset in ((iommufd, iommufd_set), (devfd, dev_set)):
            got = vm.qmp.cmd('add-fd', fds=[fd], **{'fdset-id': fdset})
            check(got['fdset-id'] == fdset, 'add-fd fdset-id', fdset, got)
    finally:
        os.close(iommufd)
        os.close(devfd)
    return f'/dev/fdset/{iommufd_set}', f'/dev/fdset/{dev_set}'


def hotplug_once(vm, bdf, n, via):
    """libvirt's hot-plug and unplug of one device, with a round trip."""
    qmp, slot = vm.qmp, 4
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
    held = set(vm.proc_fds().values())
    check({'/dev/iommu', cdev_of(bdf)} <= held, 'QEMU fds after device_add',
          f'/dev/iommu and {cdev_of(bdf)}', sorted(held))
    result = Edu(vm.qt, 0, slot, MMIO_BASE).round_trip(0x30 + n)
    reply = qmp.raw('object-del', id='iommufd0')
    check('error' in reply, 'object-del of iommufd0 while hostdev0 uses it',
          'an error', reply)
    qmp.cmd('device_del', id='hostdev0')
    vm.qt.outl(ACPI_PCIHP_EJ, 1 << slot)        # the guest ejects the slot
    ev = qmp.wait_event('DEVICE_DELETED')
    check(ev['data'].get('device') == 'hostdev0', 'DEVICE_DELETED device',
          'hostdev0', ev['data'])
    qmp.cmd('object-del', id='iommufd0')
    if via == 'add-fd':     # libvirt drops its fd sets after the unplug
        qmp.cmd('remove-fd', **{'fdset-id': 10 * n})
        qmp.cmd('remove-fd', **{'fdset-id': 10 * n + 1})
    held = set(vm.proc_fds().values())
    check(not {'/dev/iommu', cdev_of(bdf)} & held,
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
        check(len(connects) == 2, 'iommufd_backend_connect count', 2,
              len(connects))
    finally:
        vm.stop()


def start_with_devices(opts, name, bdfs, memlock, connect=True):
    iommufd = open_iommufd()
    devfds = [open_cdev(bdf) for bdf in bdfs]
    args = iommufd_object(iommufd)
    for i, fd in enumerate(devfds):
        args += hostdev(f'hostdev{i}', fd, 'pci.0', 4 + i)
    try:
        return Vm(opts, name, args, fds=[iommufd] + devfds, memlock=memlock,
                  connect=connect)
    finally:
        for fd in [iommufd] + devfds:
            os.close(fd)


def pinned_figures(opts, bdfs):
    name = f'memlock-{len(bdfs)}dev'
    vm = start_with_devices(opts, name, bdfs, ENOUGH_MEMLOCK)
    try:
        for i in range(len(bdfs)):
            Edu(vm.qt, 0, 4 + i, MMIO_BASE + i * MIB).round_trip(0x40 + i)
        mem = vm.memory_kib()
        vm.quit()
        ioas = vm.trace_lines('iommufd_backend_alloc_ioas')
        check(len(ioas) == 1, 'IOAS allocations', 1, ioas)
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
        vm.qmp.cmd('object-add', **{'qom-type': 'iommufd', 'id': 'iommufd0',
                                    'fd': 'iommufd'})
        reply = vm.qmp.raw('device_add', driver='vfio-pci', id='hostdev0',
                           iommufd='iommufd0', fd='hostdev', bus='pci.0',
                           addr='0x4')
        check('error' in reply, 'device_add with memlock below guest RAM',
              'an error', reply)
        desc = reply['error']['desc']
        held = set(vm.proc_fds().values())
        check(cdev_of(opts.bdfs[0]) not in held,
              'QEMU fds after the failed device_add', 'no cdev', sorted(held))
        vm.quit()
        out = vm.output()
    finally:
        vm.stop()
    note(f'hot-plug, same limit: QMP device_add error: {desc}')
    note(f'  QEMU stderr: {" | ".join(out.strip().splitlines())}')
    # What libvirt reports is the QMP error: it must name the limit, and
    # not leak host pointers.
    check('RLIMIT_MEMLOCK' in desc, 'hot-plug QMP error',
          'a message naming RLIMIT_MEMLOCK', desc)
    check(not re.search(r'0x7f[0-9a-f]{10}', desc) and
          'vfio_dma_map(' not in desc,
          'hot-plug QMP error', 'no host addresses', desc)

    # 2. Enough for guest RAM once: one device, then two on one backend.
    one = pinned_figures(opts, opts.bdfs[:1])
    two = pinned_figures(opts, opts.bdfs[:2])
    for key in ('VmLck', 'VmPin'):
        check(one[key] >= GUEST_RAM // 1024 * 9 // 10,
              f'{key} with one device', f'about guest RAM '
              f'({GUEST_RAM // 1024} kB)', one[key])
        check(abs(two[key] - one[key]) <= one[key] // 20,
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
    check(qom_type in variants, 'object-add variants',
          f'a case {qom_type!r}', sorted(variants))
    return {m['name']: by_name.get(m['type'], {}).get('json-type', m['type'])
            for m in by_name[variants[qom_type]]['members']}


def case_introspection(opts):
    """What a management tool sees over QMP and on the command line."""
    help_out = subprocess.run([opts.qemu, '-object', 'iommufd,help'],
                              capture_output=True, text=True, check=False)
    check(help_out.returncode == 0 and 'fd=<' in help_out.stdout,
          '-object iommufd,help', 'an fd=<...> option',
          help_out.stdout + help_out.stderr)
    note('-object iommufd,help: ' + ' '.join(help_out.stdout.split())[:160])

    vm = start_with_devices(opts, 'introspection', opts.bdfs[:1],
                            ENOUGH_MEMLOCK)
    try:
        qmp = vm.qmp
        members = schema_object_members(qmp.cmd('query-qmp-schema'), 'iommufd')
        check(members.get('fd') == 'string', 'schema of iommufd fd',
              'a string member fd', members)
        note(f'query-qmp-schema: object-add case iommufd members {members}')

        types = [t['name'] for t in qmp.cmd('qom-list-types')]
        check('iommufd' in types, 'qom-list-types', 'iommufd', 'absent')
        props = {p['name']: p['type'] for p in
                 qmp.cmd('qom-list-properties', typename='iommufd')}
        check(props.get('fd') == 'string', 'qom-list-properties iommufd',
              'fd (string)', props)
        note(f'qom-list-types has iommufd; its properties: {props}')

        props = {p['name']: p['type'] for p in
                 qmp.cmd('device-list-properties', typename='vfio-pci')}
        check(props.get('iommufd') == 'link<iommufd>' and
              props.get('fd') == 'string', 'device-list-properties vfio-pci',
              'iommufd (link<iommufd>) and fd (string)',
              {k: props.get(k) for k in ('iommufd', 'fd')})
        note(f'device-list-properties vfio-pci: iommufd {props["iommufd"]}, '
             f'fd {props["fd"]}')

        link = qmp.cmd('qom-get', path='hostdev0', property='iommufd')
        check(link == '/objects/iommufd0', 'qom-get hostdev0 iommufd',
              '/objects/iommufd0', link)
        note(f'qom-get hostdev0 iommufd: {link}')
        vm.quit()
    finally:
        vm.stop()


def case_qtree_link(opts):
    """`info qtree` shows the device's iommufd link."""
    vm = start_with_devices(opts, 'qtree-link', opts.bdfs[:1], ENOUGH_MEMLOCK)
    try:
        qtree = vm.qmp.cmd('human-monitor-command',
                           **{'command-line': 'info qtree'})
        vm.quit()
    finally:
        vm.stop()
    lines = qtree.splitlines()
    start = [i for i, line in enumerate(lines) if 'id "hostdev0"' in line]
    check(start, 'info qtree', 'a vfio-pci with id "hostdev0"', qtree)
    dev = [line.strip() for line in lines[start[0]:start[0] + 40]]
    dev = dev[:1 + next((i for i, line in enumerate(dev[1:])
                         if line.startswith('dev:')), len(dev))]
    link = [line for line in dev if line.startswith('iommufd =')]
    check(link and '/objects/iommufd0' in link[0],
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
    opts.bdfs = edu_bdfs()
    names = opts.case or list(CASES)
    print(f'1..{len(names)}', flush=True)
    passed = failed = 0
    for n, name in enumerate(names, 1):
        start = time.monotonic()
        try:
            need = 2 if name == 'memlock' else 1
            check(len(opts.bdfs) >= need, 'edu devices bound to vfio-pci',
                  f'at least {need}', opts.bdfs)
            CASES[name](opts)
        except Exception as e:      # pylint: disable=broad-except
            failed += 1
            reason = ' '.join(str(e).split())
            print(f'not ok {n} {name} - {type(e).__name__}: {reason}',
                  flush=True)
        else:
            passed += 1
            print(f'ok {n} {name} ({time.monotonic() - start:.1f} s)',
                  flush=True)
    print(f'launcher: {passed} passed, {failed} failed', flush=True)
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
