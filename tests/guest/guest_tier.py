#!/usr/bin/python3
"""The guest tier: Linux guests (L2) on our QEMU, driving assigned devices.

Runs inside the test bed's L1 (see tests/guest/README.md): boots the test
kernel as an L2 guest on the QEMU under test (-accel kvm, nested), with an
edu device of L1 assigned on the legacy path and, side by side, on the
iommufd path.  The guest's own driver (edu_guest.ko) and the guest's own
VFIO (guest-vfio) drive the device; the guest reports what it saw on a
control serial line and this script asserts it, together with what the
host saw: QEMU's trace, its pinned memory and fds, and the kernel's count
of what is left mapped.

Prints "ok N - case/path: detail" or "not ok N - case/path: reason" per
check, a table of figures, and "guest: N passed, M failed".
"""

import argparse
import ctypes
import fcntl
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

PATHS = ('legacy', 'iommufd')
EDU = '1234:11e8'
MIB = 1 << 20

# linux/iommufd.h: IOMMU_IOAS_UNMAP = _IO(';', 0x86), struct iommu_ioas_unmap
IOMMU_IOAS_UNMAP = (ord(';') << 8) | 0x86
SYS_pidfd_open, SYS_pidfd_getfd = 434, 438

# The IOVAs the guest maps through its vIOMMU: L2's intel-iommu reserves
# the interrupt window 0xfee00000-0xfeefffff and has a 39-bit width.
IOVAS = [
    ('low', 0x100000),
    ('below-window', 0xfedfe000),
    ('above-window', 0xfef00000),
    ('near-4G', 0xffffe000),
    ('above-4G', 0x100000000),
    ('top-39bit', 0x7fffffe000),
]
CYCLES_IOVA = 0x200000
BLOCKED_IOVA = 0x300000
FAULT_IOVA = 0x400000
HOLD_IOVA = 0x500000
# Seconds of silence on the control line before the guest is nudged.
NUDGE_AFTER = 15
# Runs of a case group whose guest stops answering (see Tier.all).
GROUP_RUNS = 3
MTTY_TYPE = '/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2'


NUDGED = []


class Fail(Exception):
    pass


class Hang(Fail):
    """The L2 guest stopped answering on its control line."""


def check(cond, what):
    if not cond:
        raise Fail(what)


def kv(line):
    """'a=1 b=x' -> {'a': '1', 'b': 'x'}"""
    return dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))


class Results:
    """
    TAP lines of the tier.  While a case group runs (begin .. end), its
    results are held back, so that a group whose guest hung can run again
    (see Tier.all); each thread holds its own.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.local = threading.local()
        self.n = 0
        self.failed = 0
        self.figures = {}

    def report(self, name, ok, detail, hang=False):
        held = getattr(self.local, 'held', None)
        if held is not None:
            held.append((name, ok, detail, hang))
        else:
            self.commit([(name, ok, detail, hang)])

    def failures(self):
        """Failures so far: of the group running in this thread, if any."""
        held = getattr(self.local, 'held', None)
        if held is None:
            return self.failed
        return sum(1 for r in held if not r[1])

    def begin(self):
        self.local.held = []

    def end(self):
        held, self.local.held = self.local.held, None
        return held

    def commit(self, results):
        with self.lock:
            for name, ok, detail, _ in results:
                self.n += 1
                if not ok:
                    self.failed += 1
                print(f'{"ok" if ok else "not ok"} {self.n} - {name}: '
                      f'{detail}', flush=True)

    def figure(self, case, path, text):
        with self.lock:
            self.figures.setdefault(case, {})[path] = text


def note(msg):
    print(f'# {msg}', flush=True)


class QMPError(Exception):
    pass


def read_agent(guest, marker, timeout):
    """
    Read l2-init's control line (ttyS1) up to a line that starts with
    @marker: the output before it, and the rest of that line.  @guest has
    .agent (the socket), .buf, .nudges and .name, and says how QEMU's end
    is checked (agent_check) and what a silent guest raises
    (agent_timeout).
    """
    deadline = time.time() + timeout
    quiet_since = time.time()
    while True:
        m = re.search(rb'^' + re.escape(marker) + rb'([^\n]*)\n', guest.buf,
                      re.M)
        if m:
            before, guest.buf = guest.buf[:m.start()], guest.buf[m.end():]
            return before.decode(errors='replace'), m.group(1).decode().strip()
        left = deadline - time.time()
        if left <= 0:
            raise guest.agent_timeout(marker, timeout)
        guest.agent_check()
        guest.agent.settimeout(min(left, 1.0))
        try:
            data = guest.agent.recv(65536)
        except socket.timeout:
            # A guard: nested on TCG, a halted L2 vCPU was seen to miss
            # its TSC-deadline timer (now off, see Guest) and sleep for
            # good.  An empty line (which the agent skips) raises a UART
            # interrupt that wakes it; the tiers report how often.
            if time.time() - quiet_since > NUDGE_AFTER:
                guest.agent.sendall(b'\n')
                guest.nudges += 1
                quiet_since = time.time()
            continue
        if not data:
            raise Fail(f'{guest.name}: control channel closed')
        quiet_since = time.time()
        guest.buf += data


class Guest:
    """One L2 guest: our QEMU with a kernel, our initramfs and devices."""

    def __init__(self, args, name, devices, viommu=False, mem='256M',
                 extra=(), env=None, machine_extra='', cpu=None,
                 trace=()):
        self.args = args
        self.name = name
        self.dead = None
        self.nudges = 0
        self.dir = tempfile.mkdtemp(prefix=f'{name}.', dir=args.workdir)
        self.console = os.path.join(self.dir, 'console.log')
        self.stderr = os.path.join(self.dir, 'qemu.err')
        self.trace = os.path.join(self.dir, 'trace.log')
        self.events = []
        self.readies = 0
        self.buf = b''
        machine = 'q35' + machine_extra
        append = 'console=ttyS0 panic=-1 no_timer_check'
        append += ' loglevel=7' if args.verbose else ' quiet'
        if viommu:
            machine += ',kernel-irqchip=split'
            append += ' intel_iommu=on iommu.strict=1'
        # No TSC-deadline timer: L1's KVM, itself on TCG, lost the
        # guest's deadlines and left its vCPU halted for good (README.md,
        # "How it runs"); the guest then uses the APIC timer's one-shot
        # mode, which L1's KVM delivers.
        cmd = [args.qemu, '-machine', machine, '-accel', 'kvm',
               '-cpu', 'max,-svm,-vmx,-tsc-deadline', '-smp', '1', '-m', mem,
               '-nodefaults', '-no-user-config', '-display', 'none',
               '-chardev', f'socket,id=qmp,path={self.dir}/qmp.sock',
               '-mon', 'chardev=qmp,mode=control',
               '-serial', f'file:{self.console}',
               '-chardev', f'socket,id=agent,path={self.dir}/agent.sock',
               '-serial', 'chardev:agent',
               '-kernel', args.kernel, '-initrd', args.initrd,
               '-append', append,
               '-D', self.trace]
        for ev in ('iommufd_backend_map_dma', 'iommufd_backend_unmap_dma',
                   'vfio_dma_map', 'vfio_dma_unmap', 'vfio_iommu_map_notify*',
                   'vfio_iommufd_container_new', 'vfio_pci_hot_reset*',
                   'vfio_pci_reset*', 'vfio_kvm_device_*',
                   'vfio_iommufd_bind', 'vfio_ram_discard_*',
                   'vfio_container_check_viommu') + tuple(trace):
            cmd += ['-trace', f'enable={ev}']
        if viommu:
            cmd += ['-device', 'intel-iommu,intremap=on,caching-mode=on']
        cmd += list(extra) + list(devices)
        if cpu is not None and os.cpu_count() > 1:
            # Side by side, each guest keeps to one of L1's CPUs: an L2
            # vCPU moved between L1's (emulated) CPUs has been seen to
            # lose its timer and hang.
            cmd = ['taskset', '-c', str(cpu % os.cpu_count())] + cmd
        self.cmd = cmd
        self.env = dict(os.environ, **(env or {}))

    def start(self):
        socks = {}
        for s in ('qmp', 'agent'):
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            srv.bind(f'{self.dir}/{s}.sock')
            srv.listen(1)
            srv.settimeout(60)
            socks[s] = srv
        with open(os.path.join(self.dir, 'cmdline'), 'w') as f:
            f.write(' '.join(self.cmd) + '\n')
        self.err = open(self.stderr, 'w')
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=self.err,
                                     env=self.env)
        try:
            self.qmp_sock, _ = socks['qmp'].accept()
            self.agent, _ = socks['agent'].accept()
        except socket.timeout:
            self.proc.kill()
            raise Fail(f'{self.name}: QEMU did not connect: {self.errors()}')
        finally:
            for s in socks.values():
                s.close()
        self.qmp_file = self.qmp_sock.makefile('rw')
        greeting = json.loads(self.qmp_file.readline())
        check('QMP' in greeting, 'QMP greeting')
        self.qmp('qmp_capabilities')
        self.wait_ready()
        return self

    @property
    def pid(self):
        return self.proc.pid

    def errors(self):
        self.err.flush()
        with open(self.stderr) as f:
            return f.read().strip()

    def trace_lines(self):
        try:
            with open(self.trace) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def qmp(self, cmd, **arguments):
        msg = {'execute': cmd}
        if arguments:
            msg['arguments'] = arguments
        self.qmp_file.write(json.dumps(msg) + '\n')
        self.qmp_file.flush()
        return self._qmp_return(cmd)

    def _qmp_return(self, cmd):
        """The answer to @cmd; events that come first are kept."""
        while True:
            line = self.qmp_file.readline()
            if not line:
                raise Fail(f'{self.name}: QMP closed during {cmd}: '
                           f'{self.errors()}')
            resp = json.loads(line)
            if 'event' in resp:
                self.events.append(resp)
                continue
            if 'error' in resp:
                raise QMPError(resp['error']['desc'])
            return resp['return']

    def qmp_getfd(self, name, fd):
        """Pass @fd to QEMU as getfd name @name, as libvirt does."""
        self.qmp_file.flush()
        msg = json.dumps({'execute': 'getfd',
                          'arguments': {'fdname': name}}) + '\n'
        socket.send_fds(self.qmp_sock, [msg.encode()], [fd])
        return self._qmp_return('getfd')

    def _read_agent(self, marker, timeout):
        """Read the agent channel up to a line starting with marker."""
        if self.dead:
            raise Hang(f'{self.name}: {self.dead}')
        return read_agent(self, marker, timeout)

    def agent_check(self):
        if self.proc.poll() is not None:
            raise Fail(f'{self.name}: QEMU exited with status '
                       f'{self.proc.returncode}: {self.errors()}')

    def agent_timeout(self, marker, timeout):
        self.dump_threads()
        # Its answer may still come: the channel is out of step.
        self.dead = f'no answer since a timeout ({marker.decode()})'
        return Hang(f'{self.name}: no {marker.decode()} within {timeout} s; '
                    f'console: {self.console_tail()}')

    def dump_threads(self):
        """
        Where QEMU's threads are and what the guest's vCPU does, for a
        guest that stopped answering: KVM's vCPU statistics over 2 s
        (halted, exiting, interrupts injected), its registers and APIC.
        """
        out = os.path.join(self.dir, 'threads.txt')
        with open(out, 'w') as f:
            try:
                def stats():
                    r = self.qmp('query-stats', target='vcpu')
                    return {s['name']: s['value'] for s in r[0]['stats']
                            if isinstance(s['value'], int)}
                a = stats()
                time.sleep(2)
                b = stats()
                f.write('vCPU stats over 2 s: ' + ', '.join(
                    f'{k} +{b[k] - a[k]}' for k in sorted(b)
                    if b[k] != a.get(k)) + '\n')
                for hmp in ('info registers', 'info lapic', 'info pic'):
                    f.write(self.qmp('human-monitor-command',
                                     **{'command-line': hmp}))
            except (Fail, QMPError, OSError, KeyError, IndexError) as e:
                f.write(f'no vCPU state: {e}\n')
            for tid in sorted(os.listdir(f'/proc/{self.pid}/task')):
                try:
                    with open(f'/proc/{self.pid}/task/{tid}/comm') as c, \
                         open(f'/proc/{self.pid}/task/{tid}/wchan') as w:
                        f.write(f'{tid} {c.read().strip()} {w.read()}\n')
                except OSError:
                    pass
            if shutil.which('gdb'):
                f.flush()
                subprocess.run(['gdb', '-batch', '-p', str(self.pid),
                                '-ex', 'thread apply all bt'],
                               stdout=f, stderr=subprocess.STDOUT, timeout=120)

    def console_tail(self, n=8):
        try:
            with open(self.console, errors='replace') as f:
                return ' | '.join(f.read().splitlines()[-n:])
        except FileNotFoundError:
            return '(none)'

    def wait_ready(self, timeout=120):
        self._read_agent(b'@@READY', timeout)
        self.readies += 1

    def wait_event(self, name, timeout=60, **match):
        """Wait for QMP event @name whose data has @match; return it."""
        deadline = time.time() + timeout
        while True:
            for i, ev in enumerate(self.events):
                data = ev.get('data', {})
                if ev['event'] == name and all(data.get(k) == v
                                               for k, v in match.items()):
                    return self.events.pop(i)
            check(time.time() < deadline, f'{self.name}: no {name} {match} '
                  f'within {timeout} s')
            self.qmp('query-status')    # reads events that came meanwhile
            time.sleep(0.2)

    def sh(self, cmd, timeout=120, ok=True):
        """Run cmd in the guest: its output; raises if ok and it failed."""
        self.agent.sendall(cmd.encode() + b'\n')
        out, rc = self._read_agent(b'@@RC', timeout)
        if ok and rc != '0':
            raise Fail(f'{self.name}: guest command "{cmd}" exited {rc}: '
                       f'{out.strip()}')
        return out if ok else (int(rc), out)

    def reboot(self):
        """A reboot from inside the guest, as a user types it."""
        self.agent.sendall(b'reboot -f\n')
        self.wait_ready()

    def system_reset(self):
        self.qmp('system_reset')
        self.wait_ready()

    def status(self):
        """Pinned and locked memory (kB) and open fds of QEMU."""
        st = {}
        with open(f'/proc/{self.pid}/status') as f:
            for line in f:
                k, _, v = line.partition(':')
                if k in ('VmPin', 'VmLck', 'VmRSS'):
                    st[k] = int(v.split()[0])
        st['fds'] = len(os.listdir(f'/proc/{self.pid}/fd'))
        return st

    def running(self):
        return self.proc.poll() is None and \
            self.qmp('query-status')['status'] == 'running'

    def quit(self):
        if self.proc.poll() is None:
            try:
                self.qmp('quit')
            except (Fail, OSError):
                pass
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        return self.proc.returncode

    def keep(self, failed):
        """Copy the logs of a failed guest to --logdir; drop the rest."""
        if self.nudges:
            note(f'{self.name}: the guest was silent for {NUDGE_AFTER} s and '
                 f'was woken by a byte on its control line {self.nudges} '
                 f'time(s)')
            NUDGED.append(f'{self.name}: {self.nudges}')
        if (failed or self.args.keep) and self.args.logdir:
            dest = os.path.join(self.args.logdir, self.name)
            os.makedirs(dest, exist_ok=True)
            for f in os.listdir(self.dir):
                if not f.endswith('.sock'):
                    shutil.copy(os.path.join(self.dir, f), dest)
            note(f'{self.name}: logs kept in {dest}')
        shutil.rmtree(self.dir, ignore_errors=True)


# --- the guest side ---------------------------------------------------------

def guest_edus(g):
    """BDFs of the edu devices the guest sees, in order."""
    out = g.sh('for d in /sys/bus/pci/devices/*; do '
               'echo "$(basename $d) $(cat $d/vendor):$(cat $d/device)"; done')
    return [l.split()[0] for l in out.splitlines()
            if l.split()[1:] == ['0x1234:0x11e8']]


def insmod(g, msi=True, dma_bits=28):
    """(Re)load edu_guest; it must bind to every edu of the guest."""
    g.sh('rmmod edu_guest 2>/dev/null; '
         f'insmod /edu_guest.ko msi={1 if msi else 0} dma_bits={dma_bits}')
    for bdf in guest_edus(g):
        rc, out = g.sh(f'readlink /sys/bus/pci/devices/{bdf}/driver', ok=False)
        if not out.strip().endswith('/edu_guest'):
            raise Fail(f'edu_guest did not bind to {bdf} ({out.strip()}); '
                       f'guest dmesg: {g.sh("dmesg | tail -n 5")}')


def edu_attr(g, bdf, attr, value=None):
    base = f'/sys/bus/pci/devices/{bdf}'
    if value is not None:
        rc, out = g.sh(f'echo "{value}" > {base}/{attr}', ok=False)
    res = kv(g.sh(f'cat {base}/{attr}'))
    if value is not None and rc != 0 and res.get('result') == 'ok':
        res['result'] = 'fail'
    return res


def guest_dma(g, bdf, length=4095, offset=0):
    r = edu_attr(g, bdf, 'edu_dma', f'{length} {offset}')
    check(r.get('result') == 'ok', f'DMA of {length} bytes at {offset}: {r}')
    return r


def bind_vfio(g, bdf):
    g.sh(f'd=/sys/bus/pci/devices/{bdf}; '
         f'[ -e $d/driver ] && echo {bdf} > $d/driver/unbind; '
         f'echo vfio-pci > $d/driver_override; '
         f'echo {bdf} > /sys/bus/pci/drivers_probe; '
         f'ls $d/vfio-dev')


# --- the host side ----------------------------------------------------------

def edu_arg(path, host, dev_id, bus_args=''):
    if path == 'iommufd':
        return ['-device', f'vfio-pci,host={host},id={dev_id},'
                f'iommufd=iommufd0{bus_args}']
    return ['-device', f'vfio-pci,host={host},id={dev_id}{bus_args}']


def mdev_arg(path, sysfs, dev_id, bus_args=''):
    if path == 'iommufd':
        return ['-device', f'vfio-pci,sysfsdev={sysfs},id={dev_id},'
                f'iommufd=iommufd0{bus_args}']
    return ['-device', f'vfio-pci,sysfsdev={sysfs},id={dev_id}{bus_args}']


def mdev_cdev(sysfs):
    """/dev/vfio/devices/vfioN of an mdev, from its vfio-dev/ directory."""
    names = [n for n in os.listdir(f'{sysfs}/vfio-dev') if n.startswith('vfio')]
    check(len(names) == 1, f'{sysfs}/vfio-dev: {names}')
    return f'/dev/vfio/devices/{names[0]}'


def path_objects(path, map_threads=None):
    if path != 'iommufd':
        return []
    opts = f',map-threads={map_threads}' if map_threads else ''
    return ['-object', f'iommufd,id=iommufd0{opts}']


def pinned(st, path):
    """The pinned memory of a path, kB: iommufd charges VmPin, type1 VmLck."""
    return st['VmPin'] if path == 'iommufd' else st['VmLck']


def iommufd_left_mapped(g, ioas_ids):
    """
    Ask the kernel how much is still mapped in QEMU's IOASes: duplicate
    QEMU's /dev/iommu fd (pidfd_getfd) and unmap everything, which reports
    the bytes it unmapped.  Destructive: only at the end of a guest's life.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    fdnum = None
    for fd in os.listdir(f'/proc/{g.pid}/fd'):
        try:
            if os.readlink(f'/proc/{g.pid}/fd/{fd}') == '/dev/iommu':
                fdnum = int(fd)
        except OSError:
            pass
    check(fdnum is not None, 'QEMU has /dev/iommu open')
    pidfd = os.pidfd_open(g.pid)
    fd = libc.syscall(SYS_pidfd_getfd, pidfd, fdnum, 0)
    os.close(pidfd)
    check(fd >= 0, f'pidfd_getfd: {os.strerror(ctypes.get_errno())}')
    total = 0
    try:
        for ioas in ioas_ids:
            arg = bytearray(struct.pack('=IIQQ', 24, ioas, 0, (1 << 64) - 1))
            fcntl.ioctl(fd, IOMMU_IOAS_UNMAP, arg)
            total += struct.unpack('=IIQQ', arg)[3]
    finally:
        os.close(fd)
    return total


def trace_ioas_ids(g):
    ids = []
    for line in g.trace_lines():
        m = re.search(r'vfio_iommufd_container_new .* ioas=(\d+)', line)
        if m:
            ids.append(int(m.group(1)))
    return ids


def notifier_balance(g):
    """
    Replay the vIOMMU notifier's MAP and UNMAP events of QEMU's trace:
    what the guest left mapped, as a list of (start, end) ranges.
    """
    live = {}
    maps = unmaps = 0
    for line in g.trace_lines():
        m = re.search(r'vfio_iommu_map_notify iommu (MAP|UNMAP) @ '
                      r'0x([0-9a-f]+) - 0x([0-9a-f]+)', line)
        if not m:
            continue
        start, end = int(m.group(2), 16), int(m.group(3), 16)
        if m.group(1) == 'MAP':
            maps += 1
            live[start] = end
        else:
            unmaps += 1
            for s in [s for s, e in live.items() if s <= end and e >= start]:
                del live[s]
    return maps, unmaps, sorted(live.items())


# --- cases ------------------------------------------------------------------

class Tier:
    def __init__(self, args):
        self.args = args
        self.res = Results()
        self.reruns = []
        self.edus = self.find_edus()

    def find_edus(self):
        """Sort L1's edus by place: on the root bus, or behind a port."""
        root, ports = [], {}
        for bdf in os.environ.get('L1_EDU_BDFS', '').split():
            real = os.path.realpath(f'/sys/bus/pci/devices/{bdf}')
            parent = os.path.basename(os.path.dirname(real))
            if parent.startswith('pci'):
                root.append(bdf)
            else:
                ports.setdefault(parent, []).append(bdf)
        pair = [v for v in ports.values() if len(v) == 2]
        single = [v for v in ports.values() if len(v) == 1]
        return {'root': sorted(root), 'pair': sorted(pair[0]) if pair else [],
                'single': single[0][0] if single else None}

    def fault_env(self, path, ctl):
        """
        QEMU's environment with the fault injection library, armed by the
        file @ctl, failing the path's host map call.
        """
        if not self.args.faultinject:
            return {}
        return {'LD_PRELOAD': self.args.faultinject,
                'FAULT_REQ': 'IOMMU_IOAS_MAP' if path == 'iommufd'
                else 'VFIO_IOMMU_MAP_DMA',
                'FAULT_CTL': ctl}

    def host_edu(self, path):
        return self.edus['root'][PATHS.index(path)]

    def run(self, case, path, fn):
        name = f'{case}/{path}'
        try:
            detail = fn(path)
            self.res.report(name, True, detail)
        except (Fail, QMPError, OSError, subprocess.SubprocessError) as e:
            self.res.report(name, False, str(e), isinstance(e, Hang))

    # 1, 2, 6, 8: a guest without vIOMMU
    def case_plain(self, path):
        host = self.host_edu(path)
        g = Guest(self.args, f'plain-{path}',
                  path_objects(path) + edu_arg(path, host, 'edu0'),
                  cpu=PATHS.index(path))

        def body(g):
            self.sub('probe', path, lambda: self.probe(g))
            for msi in (True, False):
                mode = 'msi' if msi else 'intx'
                self.sub(f'dma-irq-{mode}', path,
                         lambda: self.dma_irq(g, path, msi))
            self.sub('reboot-loop', path, lambda: self.reboot_loop(g, path))
            self.sub('p2p-warning', path, lambda: self.p2p_warning(g, path))
        self.with_guest('plain', path, g, body)

    def sub(self, case, path, fn):
        self.run(case, path, lambda p: fn())

    def in_guest(self, g, body):
        """Start @g, return body(g), stop it; failures go to the caller."""
        ok = False
        try:
            g.start()
            ret = body(g)
            ok = True
            return ret
        finally:
            rc = g.quit()
            if ok and rc not in (0, None):
                ok = False
                raise Fail(f'QEMU exit status {rc}: {g.errors()}')
            g.keep(not ok)

    def with_guest(self, case, path, g, body):
        """Start @g, run body(g), stop it; keep its logs if anything failed."""
        before = self.res.failures()
        try:
            g.start()
            body(g)
        except (Fail, QMPError, OSError) as e:
            self.res.report(f'{case}/{path}', False, str(e),
                            isinstance(e, Hang))
        finally:
            rc = g.quit()
            if rc not in (0, None):
                self.res.report(f'{case}/{path}', False,
                                f'QEMU exit status {rc}: {g.errors()}')
            g.keep(self.res.failures() > before)

    def probe(self, g):
        edus = guest_edus(g)
        check(len(edus) == 1, f'one edu in the guest, found {edus}')
        bdf = edus[0]
        res = g.sh(f'head -n 1 /sys/bus/pci/devices/{bdf}/resource').split()
        bar0 = int(res[1], 16) - int(res[0], 16) + 1
        check(bar0 == MIB, f'BAR0 of 1 MiB, got {bar0:#x}')
        insmod(g, msi=True)
        drv = g.sh(f'basename $(readlink /sys/bus/pci/devices/{bdf}/driver)')
        check(drv.strip() == 'edu_guest', f'driver edu_guest, got {drv}')
        return f'{bdf} is {EDU}, BAR0 1 MiB, bound to edu_guest'

    def dma_irq(self, g, path, msi):
        bdf = guest_edus(g)[0]
        insmod(g, msi=msi)
        r1 = guest_dma(g, bdf, 4095, 0)
        r2 = guest_dma(g, bdf, 1024, 3000)
        irq = edu_attr(g, bdf, 'edu_irq', '200')
        check(irq.get('result') == 'ok', f'raised interrupts: {irq}')
        st = kv(g.sh(f'cat /sys/bus/pci/devices/{bdf}/edu_stats'))
        mode = 'msi' if msi else 'intx'
        check(st['mode'] == mode, f'interrupt mode {mode}, got {st}')
        check(st['raised'] == st['delivered'] and st['spurious'] == '0',
              f'interrupts raised = delivered, no spurious: {st}')
        self.res.figure(f'irq-{mode}', path,
                        f'{st["raised"]} raised, {st["delivered"]} delivered')
        return (f'{mode}: DMA to/from device ok at {r1["src"]}/{r1["dst"]} '
                f'and {r2["src"]}; {st["raised"]} interrupts raised, '
                f'{st["delivered"]} delivered')

    def reboot_loop(self, g, path):
        n = self.args.reboots
        bdf = guest_edus(g)[0]
        insmod(g)
        guest_dma(g, bdf)
        first = g.status()
        t = time.time()
        for i in range(n):
            g.reboot()
            insmod(g)
            guest_dma(g, bdf, 4095 - i, i)
        took = (time.time() - t) / max(n, 1)
        last = g.status()
        check(last['fds'] == first['fds'], f'fds flat: {first} -> {last}')
        check(pinned(last, path) == pinned(first, path),
              f'pinned memory flat: {first} -> {last}')
        check(last['VmPin'] == first['VmPin'], f'VmPin flat: {first} -> {last}')
        fig = (f'{n} reboots ({took:.1f} s each), DMA ok each; '
               f'fds {first["fds"]}->{last["fds"]}, '
               f'VmPin {first["VmPin"]}->{last["VmPin"]} kB, '
               f'VmLck {first["VmLck"]}->{last["VmLck"]} kB')
        self.res.figure('reboot-loop', path, fig)
        return fig

    def p2p_warning(self, g, path, regions=1):
        warn = [l for l in g.errors().splitlines()
                if 'cannot map device memory' in l]
        found = {}
        for l in warn:
            m = re.search(r'device memory (.*) at 0x', l)
            key = m.group(1) if m else l
            found[key] = found.get(key, 0) + 1
        if path == 'legacy':
            check(not warn, f'no warning on the legacy path: {warn}')
            return 'legacy maps BARs: no warning'
        check(len(found) == regions and all(v == 1 for v in found.values()),
              f'one warning for each of {regions} region(s) after '
              f'{g.readies} boots: {found}')
        return (f'{len(found)} region(s), one warning each after '
                f'{g.readies} boots')

    # 3 and 7a: a guest with its own intel-iommu
    def case_viommu(self, path):
        host = self.host_edu(path)
        env = self.fault_env(path, f'{self.args.workdir}/fault-viommu-{path}')
        g = Guest(self.args, f'viommu-{path}',
                  path_objects(path) + edu_arg(path, host, 'edu0'),
                  viommu=True, env=env, cpu=PATHS.index(path))

        def body(g):
            bdf = guest_edus(g)[0]
            self.sub('viommu-dma-api', path,
                     lambda: self.viommu_dma_api(g, bdf))
            bind_vfio(g, bdf)
            self.sub('viommu-iovas', path,
                     lambda: self.viommu_iovas(g, bdf, path))
            self.sub('viommu-blocked', path,
                     lambda: self.viommu_blocked(g, bdf))
            base = g.status()
            self.sub('viommu-cycles', path,
                     lambda: self.viommu_cycles(g, bdf, path, base))
            if self.args.faultinject:
                self.sub('fault-viommu', path,
                         lambda: self.fault_viommu(g, bdf, path, env))
            self.sub('viommu-left-mapped', path,
                     lambda: self.viommu_left(g, bdf, path, base))
        self.with_guest('viommu', path, g, body)

    def viommu_dma_api(self, g, bdf):
        # Linux's DMA API puts IOVAs just below 4 GiB first: above the
        # interrupt window.
        # aw-bits=39 (7.2's default) fits L1's VT-d: checked, and silent.
        check(any('vfio_container_check_viommu' in l and '0x7fffffffff' in l
                  for l in g.trace_lines()),
              'realize compared the vIOMMU with the host IOMMU')
        check('IOVA' not in g.errors(), f'no warning: {g.errors()}')
        insmod(g, msi=True, dma_bits=39)
        r = guest_dma(g, bdf, 4095, 0)
        irq = edu_attr(g, bdf, 'edu_irq', '50')
        check(irq.get('result') == 'ok', f'interrupts: {irq}')
        g.sh('rmmod edu_guest')
        return f'DMA API IOVAs {r["src"]}, {r["dst"]}: ok; 50 interrupts'

    def viommu_iovas(self, g, bdf, path):
        iovas = ' '.join(hex(i) for _, i in IOVAS)
        rc, out = g.sh(f'guest-vfio {bdf} iovas {iovas}', ok=False,
                       timeout=300)
        got = {int(kv(l)['iova'], 16): kv(l).get('result')
               for l in out.splitlines() if 'iova=' in l}
        bad = [f'{n} {i:#x}' for n, i in IOVAS if got.get(i) != 'ok']
        check(not bad and rc == 0, f'DMA failed at {bad}: {out.strip()}')
        check(g.running(), 'QEMU running')
        self.res.figure('viommu-iovas', path,
                        ', '.join(f'{i:#x}' for _, i in IOVAS) + ': all ok')
        return 'DMA ok at ' + ', '.join(f'{n} {i:#x}' for n, i in IOVAS)

    def viommu_blocked(self, g, bdf):
        rc, out = g.sh(f'guest-vfio {bdf} blocked {BLOCKED_IOVA:#x}', ok=False)
        r = kv(out.strip().splitlines()[-1]) if out.strip() else {}
        check(rc == 0 and r.get('result') == 'ok',
              f'DMA to an unmapped IOVA: {out.strip()}')
        check(g.running(), 'QEMU running after a blocked DMA')
        return (f'mapped DMA ok, DMA after unmap landed '
                f'{r["unmapped_dma_landed"]} bytes; QEMU running')

    def viommu_cycles(self, g, bdf, path, base):
        n = self.args.cycles
        before = notifier_balance(g)
        t = time.time()
        rc, out = g.sh(f'guest-vfio {bdf} cycles {n} {CYCLES_IOVA:#x}',
                       ok=False, timeout=300)
        took = time.time() - t
        r = kv(out.strip().splitlines()[-1]) if out.strip() else {}
        check(rc == 0 and r.get('result') == 'ok', f'cycles: {out.strip()}')
        maps, unmaps, live = notifier_balance(g)
        st = g.status()
        check(maps - before[0] >= n and unmaps - before[1] >= n,
              f'{n} MAP and UNMAP notifications, saw {maps - before[0]}, '
              f'{unmaps - before[1]}')
        check(not live, f'notifier ranges left mapped: {live[:4]}')
        check(pinned(st, path) == pinned(base, path),
              f'pinned memory back to {pinned(base, path)} kB: {st}')
        fig = (f'{n} cycles in {took:.0f} s; notifier {maps} MAP / {unmaps} '
               f'UNMAP, 0 ranges left; pinned {pinned(base, path)} -> '
               f'{pinned(st, path)} kB')
        self.res.figure('viommu-cycles', path, fig)
        return fig

    def viommu_left(self, g, bdf, path, base):
        """
        What is left in the host container is what the guest has mapped:
        the guest holds two pages mapped, which must be all there is.
        """
        g.sh(f'rm -f /tmp/release; guest-vfio {bdf} hold {HOLD_IOVA:#x} '
             f'/tmp/release > /tmp/hold.out 2>&1 &')
        deadline = time.time() + 60
        while 'held=yes' not in g.sh('cat /tmp/hold.out'):
            check(time.time() < deadline, 'the guest holds a mapping: '
                  + g.sh('cat /tmp/hold.out'))
            time.sleep(0.2)
        st = g.status()
        held = pinned(st, path) - pinned(base, path)
        check(held == 8, f'the two held pages are all that is pinned: '
              f'{held} kB over the baseline')
        if path == 'iommufd':
            ids = trace_ioas_ids(g)
            check(ids, 'IOAS ids in the trace')
            left = iommufd_left_mapped(g, ids)
            check(left == 8192, f'the kernel unmapped {left} bytes from IOAS '
                  f'{ids}, expected the 8192 the guest holds')
            how = (f'kernel: IOAS {ids} held {left} bytes = the 2 pages the '
                   f'guest maps (IOMMU_IOAS_UNMAP of all, on a pidfd_getfd '
                   f'copy of QEMU\'s /dev/iommu)')
        else:
            how = (f'VmLck {pinned(base, path)} -> {pinned(st, path)} kB: '
                   f'the 2 pages the guest maps (type1 lets no other process '
                   f'read or unmap QEMU\'s mappings)')
        g.sh('touch /tmp/release; while ! grep -q result= /tmp/hold.out; do '
             'sleep 0.2; done')
        if path == 'legacy':
            check(pinned(g.status(), path) == pinned(base, path),
                  'pinned memory back to the baseline after the release')
        self.res.figure('viommu-left', path, how)
        return how

    def fault_viommu(self, g, bdf, path, env):
        """Fail the host map behind a guest vIOMMU mapping."""
        ctl = env['FAULT_CTL']
        base = g.status()
        with open(ctl, 'w') as f:
            f.write('1 viommu\n')
        try:
            rc, out = g.sh(f'guest-vfio {bdf} iovas {FAULT_IOVA:#x}', ok=False)
        finally:
            os.unlink(ctl)
        check(rc != 0 and 'result=fail' in out,
              f'the guest sees a DMA fault: {out.strip()}')
        errs = g.errors()
        check('faultinject:' in errs, 'the fault was injected')
        want = 'IOMMU_IOAS_MAP' if path == 'iommufd' else 'VFIO_MAP_DMA'
        check(want in errs, f'the error names the failed map: {errs[-300:]}')
        check(g.running(), 'QEMU running')
        rc, out = g.sh(f'guest-vfio {bdf} iovas {FAULT_IOVA:#x}', ok=False)
        check(rc == 0, f'the same mapping works once the fault is gone: {out}')
        st = g.status()
        check(st['fds'] == base['fds'] and
              pinned(st, path) == pinned(base, path),
              f'nothing leaks: {base} -> {st}')
        line = [l for l in errs.splitlines() if want in l][-1]
        return f'guest DMA faulted, QEMU said "{line.strip()}", then ok'

    # Issue 14: a guest vIOMMU must fit the host IOMMU
    def case_viommu_width(self, path):
        host = self.host_edu(path)
        dev = edu_arg(path, host, 'edu0')
        base = path_objects(path)
        self.sub('width-intel-48-refused', path,
                 lambda: self.width_refused(path, base + dev))
        self.sub('width-intel-48-hotplug', path,
                 lambda: self.width_hotplug(path, host, intel=True))
        self.sub('width-virtio-iommu', path,
                 lambda: self.width_virtio(path, base + dev))
        self.sub('width-virtio-iommu-hotplug', path,
                 lambda: self.width_hotplug(path, host, intel=False))

    def width_refused(self, path, devs):
        """aw-bits=48 against L1's 39-bit VT-d: QEMU refuses to start."""
        cmd = [self.args.qemu, '-machine', 'q35,kernel-irqchip=split',
               '-accel', 'kvm', '-nodefaults', '-display', 'none', '-S',
               '-device', 'intel-iommu,intremap=on,caching-mode=on,'
               'aw-bits=48'] + devs
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=60)
        want = ('intel-iommu lets the guest map IOVAs up to 0xffffffffffff '
                '(aw-bits=48), the host IOMMU only up to 0x7fffffffff')
        check(r.returncode == 1, f'QEMU exit status 1, got {r.returncode}: '
              f'{r.stderr.strip()}')
        check(want in r.stderr and 'use aw-bits=39' in r.stderr,
              f'the message names both widths and the fix: {r.stderr.strip()}')
        return r.stderr.strip().replace('\n', ' | ')

    def width_hotplug(self, path, host, intel):
        """Hot-plug into a running guest whose vIOMMU does not fit."""
        viommu = ('intel-iommu,intremap=on,caching-mode=on,aw-bits=48'
                  if intel else 'virtio-iommu-pci')
        g = Guest(self.args, f'width-{"intel" if intel else "virtio"}-{path}',
                  path_objects(path),
                  extra=['-device', viommu, '-device',
                         'pcie-root-port,id=rp1,chassis=1,slot=1'],
                  machine_extra=',kernel-irqchip=split' if intel else '')

        def body(g):
            args = {'driver': 'vfio-pci', 'host': host, 'id': 'edu0',
                    'bus': 'rp1'}
            if path == 'iommufd':
                args['iommufd'] = 'iommufd0'
            try:
                g.qmp('device_add', **args)
                raise Fail('device_add succeeded')
            except QMPError as e:
                out = str(e)
            want = (('intel-iommu lets the guest map IOVAs up to '
                     '0xffffffffffff (aw-bits=48)') if intel else
                    ('virtio-iommu lets the guest map IOVAs up to '
                     '0xffffffffffffffff'))
            fix = 'use aw-bits=39' if intel else 'assign the device at start-up'
            check(want in out and 'only up to 0x7fffffffff' in out and
                  fix in out,
                  f'device_add error names both sides: {out}')
            check(g.running() and g.sh('echo alive').strip() == 'alive',
                  'the guest keeps running')
            check(not any(p['name'] == 'edu0' for p in
                          g.qmp('qom-list', path='/machine/peripheral')),
                  'no device left behind')
            return out
        out = self.in_guest(g, body)
        return f'QMP: "{out}"; the guest runs on'

    def width_virtio(self, path, devs):
        """virtio-iommu offers the guest only what the host maps."""
        g = Guest(self.args, f'width-virtio-cold-{path}', devs,
                  extra=['-device', 'virtio-iommu-pci'])

        def body(g):
            msg = g.sh('dmesg | grep -i "input address" || true').strip()
            check('39 bits' in msg, f'the guest sees a 39-bit input range: '
                  f'"{msg}"')
            bdf = guest_edus(g)[0]
            insmod(g, dma_bits=39)
            r = guest_dma(g, bdf, 4095, 0)
            check('IOVA' not in g.errors(), f'no warning: {g.errors()}')
            return (f'guest: "{msg.split("] ")[-1]}"; DMA through '
                    f'virtio-iommu at {r["src"]}/{r["dst"]} ok')
        return self.in_guest(g, body)

    # Issue 12: mediated devices, the kernel's mtty sample
    def mdev_create(self):
        """A dual-port mtty instance in L1: its sysfs directory."""
        uid = str(uuid.uuid4())
        with open(MTTY_TYPE + '/create', 'w') as f:
            f.write(uid)
        return f'/sys/bus/mdev/devices/{uid}'

    def mdev_remove(self, sysfs):
        if os.path.exists(sysfs):
            with open(sysfs + '/remove', 'w') as f:
                f.write('1')

    def case_mdev(self, path):
        if not os.path.isdir(MTTY_TYPE):
            self.res.report(f'mdev/{path}', False, f'no {MTTY_TYPE} in L1')
            return
        mdev = self.mdev_create()
        try:
            mdev = self.mdev_cases(path, mdev)
        finally:
            self.mdev_remove(mdev)

    def mdev_cases(self, path, mdev):
        # The mdev alone behind a root port (hot-pluggable there) for its
        # serial data, hot-plug and removal; then beside the edu for the
        # shared IOAS.
        port = ['-device', 'pcie-root-port,id=rp1,chassis=1,slot=1']
        g = Guest(self.args, f'mdev-{path}', path_objects(path) + port +
                  mdev_arg(path, mdev, 'mtty0', ',bus=rp1'))

        def body(g):
            self.sub('mdev-serial', path, lambda: self.mdev_serial(g, path))
            self.sub('mdev-hotplug', path,
                     lambda: self.mdev_hotplug(g, path, mdev))
            self.sub('mdev-remove', path,
                     lambda: self.mdev_remove_busy(g, path, mdev))
        self.with_guest('mdev', path, g, body)

        if not os.path.exists(mdev):
            mdev = self.mdev_create()
        host = self.host_edu(path)
        g = Guest(self.args, f'mdev-mixed-{path}', path_objects(path) +
                  mdev_arg(path, mdev, 'mtty0') + edu_arg(path, host, 'edu0'),
                  trace=('vfio_iommufd_attach_ioas',))
        self.with_guest('mdev-mixed', path, g,
                        lambda g: self.sub('mdev-mixed', path,
                                           lambda: self.mdev_mixed(g, path)))
        return mdev

    def mtty_ports(self, g):
        """The guest's ttys of its mtty device (4348:3253), and its BDF."""
        out = g.sh('for d in /sys/bus/pci/devices/*; do '
                   'echo "$(basename $d) $(cat $d/vendor):$(cat $d/device)"; '
                   'done')
        bdfs = [l.split()[0] for l in out.splitlines()
                if l.split()[1:] == ['0x4348:0x3253']]
        check(len(bdfs) == 1, f'one mtty device in the guest: {out}')
        ttys = g.sh(f'ls /sys/bus/pci/devices/{bdfs[0]}/tty 2>/dev/null || '
                    f'for t in /sys/class/tty/ttyS*; do '
                    f'readlink $t/device | grep -q {bdfs[0]} && '
                    f'basename $t; done; true').split()
        return bdfs[0], sorted(ttys)

    def serial_round_trip(self, g, tty, msg):
        """Bytes written to @tty come back (mtty loops TX into RX)."""
        # Shorter than mtty's 16-byte FIFO: 8250_pci sends it in one go.
        out = g.sh(f't=/dev/{tty}; stty -F $t raw -echo; rm -f /tmp/rx; '
                   f'(timeout 8 cat $t > /tmp/rx &); sleep 0.5; '
                   f'timeout 5 sh -c "printf %s {msg} > $t"; echo "w=$?"; '
                   f'for i in $(seq 30); do '
                   f'[ "$(cat /tmp/rx)" = {msg} ] && break; sleep 0.2; '
                   f'done; cat /tmp/rx', timeout=60)
        wrote, _, got = out.partition('\n')
        got = got.rstrip('\n')
        check(wrote == 'w=0' and got == msg,
              f'{tty}: sent "{msg}" ({wrote}), read back "{got}"')

    def mdev_serial(self, g, path):
        bdf, ttys = self.mtty_ports(g)
        check(len(ttys) == 2, f'two serial ports from 8250_pci: {ttys}')
        irq0 = g.sh(f'cat /sys/bus/pci/devices/{bdf}/irq').strip()
        before = self.irq_count(g, irq0)
        for i, t in enumerate(ttys):
            self.serial_round_trip(g, t, f'{path[:3]}-port{i}')
        after = self.irq_count(g, irq0)
        check(after > before, f'the ports took interrupts: {before} -> '
              f'{after}')
        fig = (f'{bdf}: {", ".join(ttys)}; 2 x 9 bytes looped back, '
               f'{after - before} interrupts')
        self.res.figure('mdev-serial', path, fig)
        return fig

    def irq_count(self, g, irq):
        for line in g.sh('cat /proc/interrupts').splitlines():
            f = line.split()
            if f and f[0] == f'{irq}:':
                return sum(int(x) for x in f[1:] if x.isdigit())
        return 0

    def mdev_mixed(self, g, path):
        lines = g.trace_lines()
        if path == 'iommufd':
            ioas = {m.group(1) for l in lines for m in
                    [re.search(r'vfio_iommufd_attach_ioas .* ioas=(\d+) '
                               r'errno=0', l)] if m}
            new = [l for l in lines if 'vfio_iommufd_container_new' in l]
            check(len(ioas) == 1 and len(new) == 1,
                  f'one IOAS for the mdev and the edu: {ioas}, {len(new)} '
                  f'created')
            shared = f'one IOAS ({ioas.pop()}) for both'
        else:
            fds = [f for f in os.listdir(f'/proc/{g.pid}/fd')
                   if os.readlink(f'/proc/{g.pid}/fd/{f}') == '/dev/vfio/vfio']
            check(len(fds) == 1, f'one /dev/vfio/vfio container for both '
                  f'groups, QEMU has {len(fds)}')
            shared = 'one type1 container (/dev/vfio/vfio) for both groups'
        edu = guest_edus(g)
        insmod(g, dma_bits=39)
        r = guest_dma(g, edu[0])
        _, ttys = self.mtty_ports(g)
        self.serial_round_trip(g, ttys[0], f'{path[:3]}-mixed')
        return (f'{shared}; edu DMA at {r["src"]}/{r["dst"]} ok, serial '
                f'round trip on {ttys[0]} ok')

    def mdev_hotplug(self, g, path, mdev):
        n = self.args.mdev_cycles
        first = last = None
        passed = 0
        for i in range(n):
            g.qmp('device_del', id='mtty0')
            g.wait_event('DEVICE_DELETED', device='mtty0')
            if i == 0:
                first = g.status()
            args = {'driver': 'vfio-pci', 'sysfsdev': mdev, 'id': 'mtty0',
                    'bus': 'rp1'}
            if path == 'iommufd':
                args['iommufd'] = 'iommufd0'
                if i % 2:
                    # Every other time the cdev comes as an fd, as libvirt
                    # passes it: sysfsdev= names it, fd= is its cdev.
                    cdev = os.open(mdev_cdev(mdev), os.O_RDWR)
                    try:
                        g.qmp_getfd(f'mtty{i}', cdev)
                    finally:
                        os.close(cdev)
                    args['fd'] = f'mtty{i}'
                    passed += 1
            g.qmp('device_add', **args)
            deadline = time.time() + 30
            while True:
                try:
                    bdf, ttys = self.mtty_ports(g)
                    if len(ttys) == 2:
                        break
                except Fail:
                    pass
                check(time.time() < deadline, 'the guest did not find the '
                      'plugged mtty')
                time.sleep(0.3)
            if i % 5 == 4 or i == n - 1:
                self.serial_round_trip(g, ttys[0], f'cycle{i}')
        g.qmp('device_del', id='mtty0')
        g.wait_event('DEVICE_DELETED', device='mtty0')
        last = g.status()
        check(first['fds'] == last['fds'], f'fds flat: {first} -> {last}')
        fig = (f'{n} unplug/plug cycles ({passed} with the cdev passed as '
               f'an fd), serial checked every 5th; fds {first["fds"]} -> '
               f'{last["fds"]}')
        self.res.figure('mdev-hotplug', path, fig)
        return fig

    def mdev_remove_busy(self, g, path, mdev):
        """Removing an mdev instance that QEMU holds waits for QEMU."""
        args = {'driver': 'vfio-pci', 'sysfsdev': mdev, 'id': 'mtty0',
                'bus': 'rp1'}
        if path == 'iommufd':
            args['iommufd'] = 'iommufd0'
        g.qmp('device_add', **args)
        time.sleep(1)
        rm = subprocess.Popen(['sh', '-c', f'echo 1 > {mdev}/remove'])
        time.sleep(3)
        # The kernel drops the bus link (the sysfsdev path) first, then
        # waits in the parent's remove for QEMU to close the device.
        check(rm.poll() is None,
              'the kernel does not finish removing the mdev while QEMU '
              'holds it')
        check(g.running(), 'QEMU runs on')
        g.qmp('device_del', id='mtty0')
        g.wait_event('DEVICE_DELETED', device='mtty0')
        try:
            rm.wait(30)
        except subprocess.TimeoutExpired:
            rm.kill()
            raise Fail('the removal did not finish after device_del')
        check(rm.returncode == 0 and not os.path.exists(mdev),
              f'the mdev is gone after device_del (status {rm.returncode})')
        check(g.running(), 'QEMU runs on')
        return ('the kernel blocked the removal while QEMU held the device '
                '(mtty has no request callback), device_del released it and '
                'the removal finished')

    # 4 and 7b: virtio-mem
    def case_virtio_mem(self, path):
        host = self.host_edu(path)
        ctl = f'{self.args.workdir}/fault-vmem-{path}'
        env = self.fault_env(path, ctl)
        g = Guest(self.args, f'vmem-{path}',
                  path_objects(path) +
                  ['-object', 'memory-backend-ram,id=vmem0,size=512M',
                   '-device', 'virtio-mem-pci,id=vm0,memdev=vmem0,'
                   'block-size=2M,requested-size=0'] +
                  edu_arg(path, host, 'edu0'),
                  mem='256M,maxmem=1G', env=env, cpu=PATHS.index(path))

        def body(g):
            self.sub('virtio-mem', path, lambda: self.virtio_mem(g, path))
            # A failed case may have left memory plugged.
            self.vmem_resize(g, 0)
            if self.args.faultinject:
                self.sub('fault-virtio-mem', path,
                         lambda: self.fault_virtio_mem(g, path, ctl))
        self.with_guest('virtio-mem', path, g, body)
        if path == 'iommufd':
            self.virtio_mem_threads(path, host)

    def virtio_mem_threads(self, path, host):
        """
        The same plug and unplug with the object's map-threads=2: QEMU maps
        the plugged range in granule-sized chunks from two threads (series
        patch "map large RAM sections in chunks"), and the unplug's unmap
        still finds whole mappings.  The type1 container maps serially.
        """
        g = Guest(self.args, f'vmem-threads-{path}',
                  path_objects(path, map_threads=2) +
                  ['-object', 'memory-backend-ram,id=vmem0,size=512M',
                   '-device', 'virtio-mem-pci,id=vm0,memdev=vmem0,'
                   'block-size=2M,requested-size=0'] +
                  edu_arg(path, host, 'edu0'),
                  mem='256M,maxmem=1G', trace=('vfio_dma_map_chunks*',))
        self.with_guest('virtio-mem-threads', path, g, lambda g: self.sub(
            'virtio-mem-threads', path,
            lambda: self.virtio_mem(g, path, threads=2)))

    def vmem_resize(self, g, size, timeout=120):
        """
        Ask the guest to plug or unplug virtio-mem memory up to @size and
        wait until it did, and until the guest has onlined what it plugged.
        """
        def memtotal():
            return int(re.search(r'MemTotal:\s+(\d+)',
                                 g.sh('cat /proc/meminfo')).group(1))

        before = g.qmp('qom-get', path='vm0', property='size')
        total = memtotal()
        g.qmp('qom-set', path='vm0', property='requested-size', value=size)
        deadline = time.time() + timeout
        while g.qmp('qom-get', path='vm0', property='size') != size:
            check(time.time() < deadline,
                  f'virtio-mem size did not reach {size}: '
                  f'{g.qmp("qom-get", path="vm0", property="size")}')
            time.sleep(0.2)
        # Onlining follows the plug; the memmap of a new memory block may
        # live in the block itself, so allow a little less.
        want = total + (size - before) // 1024 * 9 // 10
        while size > before and memtotal() < want:
            check(time.time() < deadline, f'the guest did not online '
                  f'{(size - before) // MIB} MiB: MemTotal {memtotal()} kB')
            time.sleep(0.2)

    def vmem_region(self, g):
        for d in g.qmp('query-memory-devices'):
            if d['type'] == 'virtio-mem':
                return d['data']['memaddr'], d['data']['max-size']
        raise Fail('no virtio-mem device in query-memory-devices')

    def dma_calls(self, g, since, op):
        """vfio_dma_map/unmap calls of the trace from line @since on."""
        out = []
        for line in g.trace_lines()[since:]:
            m = re.search(rf'vfio_dma_{op} \S+ iova=0x([0-9a-f]+) '
                          r'size=0x([0-9a-f]+).* ret=(-?\d+)', line)
            if m:
                out.append((int(m.group(1), 16), int(m.group(2), 16),
                            int(m.group(3))))
        return out

    def virtio_mem(self, g, path, threads=1):
        bdf = guest_edus(g)[0]
        insmod(g, dma_bits=39)
        addr, size = self.vmem_region(g)
        base = g.status()
        plug = 128 * MIB
        mark = len(g.trace_lines())
        self.vmem_resize(g, plug)
        plugged = g.status()
        grew = pinned(plugged, path) - pinned(base, path)
        check(grew == plug // 1024, f'pinned memory grew by {plug // MIB} '
              f'MiB: {base} -> {plugged}')
        chunked = ''
        if threads > 1:
            text = '\n'.join(g.trace_lines()[mark:])
            runs = re.findall(r'vfio_dma_map_chunks \S+ iova=0x([0-9a-f]+) '
                              r'size=0x([0-9a-f]+) chunk=0x([0-9a-f]+) '
                              r'chunks=(\d+) threads=(\d+)', text)
            done = re.findall(r'vfio_dma_map_chunks_done .* ret=(-?\d+)',
                              text)
            ours = [r for r in runs if addr <= int(r[0], 16) < addr + size
                    and int(r[2], 16) == 2 * MIB and int(r[4]) == threads]
            mapped = sum(int(r[1], 16) for r in ours)
            check(mapped == plug and set(done) == {'0'},
                  f'the plug mapped {plug // MIB} MiB in 2 MiB chunks from '
                  f'{threads} threads: {runs}, done {done}')
            chunked = (f'; mapped in {sum(int(r[3]) for r in ours)} '
                       f'chunks of 2 MiB by {threads} threads')
        r = edu_attr(g, bdf, 'edu_dma_range',
                     f'{addr:x} {addr + size:x} 4095')
        check(r.get('result') == 'ok', f'DMA into plugged memory: {r}')
        mark = len(g.trace_lines())
        self.vmem_resize(g, 0)
        unplugged = g.status()
        gone = self.dma_calls(g, mark, 'unmap')
        in_region = sum(s for i, s, r in gone
                        if addr <= i < addr + size and r == 0)
        check(in_region == plug, f'unmaps of {plug // MIB} MiB in the '
              f'virtio-mem region traced, got {in_region // MIB} MiB '
              f'({len(gone)} calls)')
        check(pinned(unplugged, path) == pinned(base, path),
              f'pinned memory back down: {base} -> {unplugged}')
        fig = (f'plugged 128 MiB: pinned +{grew // 1024} MiB{chunked}, DMA '
               f'at {r["phys"]} ok; unplugged: {len(gone)} unmap calls '
               f'({in_region // MIB} MiB), pinned '
               f'{pinned(plugged, path)} -> {pinned(unplugged, path)} kB')
        self.res.figure('virtio-mem' if threads == 1 else
                        'virtio-mem-threads', path, fig)
        return fig

    def fault_virtio_mem(self, g, path, ctl):
        """Fail each host map of a plug in turn."""
        bdf = guest_edus(g)[0]
        addr, size = self.vmem_region(g)
        base = g.status()
        plug = 6 * MIB
        # A clean plug first: the trace counts the maps it makes.
        mark = len(g.trace_lines())
        self.vmem_resize(g, plug)
        count = len([c for c in self.dma_calls(g, mark, 'map')
                     if addr <= c[0] < addr + size])
        self.vmem_resize(g, 0)
        check(count > 0, 'a plug maps memory')
        want = 'IOMMU_IOAS_MAP' if path == 'iommufd' else 'VFIO_MAP_DMA'
        for n in range(1, count + 1):
            injected = g.errors().count('faultinject:')
            with open(ctl, 'w') as f:
                f.write(f'{n} vmem\n')
            try:
                g.qmp('qom-set', path='vm0', property='requested-size',
                      value=plug)
                deadline = time.time() + 60
                while g.errors().count('faultinject:') == injected:
                    check(time.time() < deadline,
                          f'map {n} of the plug was not failed')
                    time.sleep(0.2)
            finally:
                os.unlink(ctl)
            errs = g.errors()
            check(want in errs.split('faultinject:')[-1],
                  f'map {n}: the error names the failed map')
            check(g.running(), f'map {n}: QEMU running')
            # The guest got BUSY and waits before it retries; a new
            # request makes it retry at once.
            got = g.qmp('qom-get', path='vm0', property='size')
            check(got < plug, f'map {n}: the failed plug was refused')
            st = g.status()
            check(pinned(st, path) - pinned(base, path) == got // 1024,
                  f'map {n}: pinned memory is what stayed plugged '
                  f'({got // MIB} MiB): {base} -> {st}')
            self.vmem_resize(g, plug + 2 * MIB)
            r = edu_attr(g, bdf, 'edu_dma_range',
                         f'{addr:x} {addr + size:x} 4095')
            check(r.get('result') == 'ok',
                  f'DMA into memory plugged after failed map {n}: {r}')
            self.vmem_resize(g, 0)
        st = g.status()
        check(st['fds'] == base['fds'] and
              pinned(st, path) == pinned(base, path),
              f'nothing leaks: {base} -> {st}')
        line = [l for l in g.errors().splitlines() if want in l][-1]
        self.res.figure('fault-virtio-mem', path,
                        f'{count}/{count} maps of a plug failed in turn')
        return (f'{count}/{count} maps of a {plug // MIB} MiB plug failed in '
                f'turn: "{line.strip()}", plug refused, the guest\'s retry '
                f'and DMA worked, fds and pinned memory at baseline')

    # 5: hot reset
    def case_hot_reset(self, path):
        pair, single = self.edus['pair'], self.edus['single']
        check(len(pair) == 2 and single, f'L1 topology: {self.edus}')
        devs = path_objects(path) + [
            '-device', 'pcie-root-port,id=rp1,chassis=1,slot=1',
            '-device', 'pcie-root-port,id=rp2,chassis=2,slot=2']
        devs += edu_arg(path, pair[0], 'fn0',
                        ',bus=rp1,addr=0.0,multifunction=on')
        devs += edu_arg(path, pair[1], 'fn1', ',bus=rp1,addr=0.1')
        devs += edu_arg(path, single, 'solo', ',bus=rp2,addr=0.0')
        g = Guest(self.args, f'reset-{path}', devs)

        def body(g):
            edus = guest_edus(g)
            check(len(edus) == 3, f'three edus in the guest: {edus}')
            insmod(g)
            for b in edus:
                guest_dma(g, b)
            out = []
            for how in ('system_reset', 'reboot'):
                mark = len(g.trace_lines())
                g.system_reset() if how == 'system_reset' else g.reboot()
                insmod(g)
                for b in edus:
                    guest_dma(g, b)
                out.append(self.check_resets(g, path, mark, how))
            self.res.report(f'hot-reset/{path}', True, '; '.join(out))
            self.sub('p2p-warning-3dev', path,
                     lambda: self.p2p_warning(g, path, regions=3))
        self.with_guest('hot-reset', path, g, body)

    def check_resets(self, g, path, mark, how):
        lines = g.trace_lines()[mark:]
        text = '\n'.join(lines)
        pair, single = self.edus['pair'], self.edus['single']
        res = re.findall(r'vfio_pci_hot_reset_result (\S+) hot reset: (\S+)',
                         text)
        check(res and all(r == 'Success' for _, r in res),
              f'{how}: hot reset results {res}')
        form = 'devid' if path == 'iommufd' else 'group'
        check(re.search(rf'vfio_pci_hot_reset_dep_devices?\S* .*{form}', text)
              or re.search(rf'\b{form} ', text),
              f'{how}: dependent devices listed by {form}')
        names = {n for n, _ in res}
        check(any(p in names for p in pair),
              f'{how}: the pair was reset together: {res}')
        solo = [l for l in lines if single in l and
                re.search(r'vfio_pci_reset|vfio_pci_hot_reset', l)]
        check(solo, f'{how}: the single edu was reset: no trace')
        kind = 'VFIO_DEVICE_RESET' if any('FLR/VFIO_DEVICE_RESET' in l
                                          for l in solo) else 'hot reset'
        return (f'{how}: pair by bus hot reset ({form} form, Success), '
                f'single edu by {kind}, DMA ok on all three')

    def all(self):
        cases = {
            'plain': self.case_plain,
            'viommu': self.case_viommu,
            'virtio-mem': self.case_virtio_mem,
            'hot-reset': self.case_hot_reset,
            'viommu-width': self.case_viommu_width,
            'mdev': self.case_mdev,
        }
        chosen = self.args.case or list(cases)
        paths = self.args.path or PATHS
        if self.args.group:
            groups = [tuple(g.split('/', 1)) for g in self.args.group]
        else:
            groups = [(c, p) for c in chosen for p in paths]
        for case, path in groups:
            check(case in cases and path in PATHS, f'no group {case}/{path}')
        # For l1_tier.py, which runs the groups that did not end again in
        # a new L1 if this one freezes.
        note('groups: ' + ' '.join(f'{c}/{p}' for c, p in groups))

        def run(case, path):
            note(f'group {case}/{path} begins')
            try:
                run_group(case, path)
            finally:
                note(f'group {case}/{path} ends')

        def run_group(case, path):
            # A guard: an L2 guest on nested KVM on TCG stopped for good
            # when L1's KVM lost its TSC-deadline timer (now off).
            # A group whose guest stopped answering runs again with fresh
            # guests, up to GROUP_RUNS times in all; a hang in the last
            # run, or any other failure, counts.
            for attempt in range(1, GROUP_RUNS + 1):
                t = time.time()
                self.res.begin()
                cases[case](path)
                held = self.res.end()
                note(f'{case}/{path} took {time.time() - t:.0f} s')
                hung = [r for r in held if r[3]]
                if hung and attempt < GROUP_RUNS:
                    note(f'{case}/{path}: {hung[0][2][:300]}; the group runs '
                         f'again')
                    self.reruns.append(f'{case}/{path}')
                    continue
                self.res.commit(held)
                break

        # Side by side where that is safe: guests with a vIOMMU of their
        # own, and mdev guests, have hung at random when another L2 guest
        # ran beside them (nested virtualization on TCG), and the hot reset
        # guests share the devices behind the root ports.  Those run one
        # at a time.
        alone = ('viommu', 'hot-reset', 'viommu-width', 'mdev')
        t = time.time()
        for i in range(self.args.repeat):
            if i:
                note(f'repeat {i + 1} of {self.args.repeat}')
            done = set()
            for case, path in groups:
                if (case, path) in done:
                    continue
                side = [p for c, p in groups if c == case and
                        (c, p) not in done]
                if self.args.jobs > 1 and case not in alone and len(side) > 1:
                    threads = [threading.Thread(target=run, args=(case, p))
                               for p in side]
                    for th in threads:
                        th.start()
                    for th in threads:
                        th.join()
                    done.update((case, p) for p in side)
                else:
                    run(case, path)
                    done.add((case, path))
            if self.res.failed:
                break
        note(f'all cases took {time.time() - t:.0f} s')
        note(f'guests woken by a byte after {NUDGE_AFTER} s of silence: '
             f'{", ".join(NUDGED) or "none"}; groups run again after '
             f'a guest hang: {", ".join(self.reruns) or "none"}')
        self.table()
        print(f'guest: {self.res.n - self.res.failed} passed, '
              f'{self.res.failed} failed', flush=True)
        return 1 if self.res.failed else 0

    def table(self):
        if not self.res.figures:
            return
        note('figures (legacy | iommufd):')
        for case, by_path in self.res.figures.items():
            for path in PATHS:
                if path in by_path:
                    note(f'  {case:16} {path:8} {by_path[path]}')


def demo(args):
    """
    make demo: a Linux guest on our QEMU under KVM, its edu assigned through
    iommufd; the guest's driver does DMA and takes interrupts, and QEMU's
    trace shows the kernel calls that made it possible.
    """
    host = os.environ['L1_EDU_BDFS'].split()[0]
    g = Guest(args, 'demo', path_objects('iommufd') +
              edu_arg('iommufd', host, 'edu0'),
              trace=('iommufd_backend_connect', 'iommufd_backend_alloc_ioas',
                     'iommufd_backend_get_iova_ranges',
                     'vfio_iommufd_open_cdev', 'vfio_iommufd_attach_ioas'))
    t0 = time.time()
    ok = False
    try:
        g.start()
        up = time.time() - t0
        obj = next(a for a in g.cmd if a.startswith('iommufd,'))
        dev = next(a for a in g.cmd if a.startswith('vfio-pci,'))
        print(f'Our QEMU, -accel kvm inside L1: ... -object {obj} '
              f'-device {dev}')
        print(f'The guest (Linux {g.sh("uname -r").strip()}) was up '
              f'{up:.1f} s after QEMU started.')
        print()
        calls = ('vfio_kvm_device_add_fd', 'vfio_iommufd_bind',
                 'iommufd_backend_alloc_ioas', 'vfio_iommufd_attach_ioas',
                 'iommufd_backend_get_iova_ranges')
        print('Kernel calls QEMU made for the device, in order '
              '(errno 0 = accepted):')
        # The log backend may prefix "PID@TIME:".
        lines = [re.sub(r'^\d+@[\d.]+:', '', l) for l in g.trace_lines()]
        for l in lines:
            if l.split(' ')[0] in calls:
                print(f'  {l}')
        maps = [l for l in lines
                if l.startswith('iommufd_backend_map_dma') and 'errno=0' in l]
        print(f'  ... and {len(maps)} IOMMU_IOAS_MAP of guest RAM, e.g.')
        for m in maps[:3]:
            print(f'    {m}')
        add = next((i for i, l in enumerate(lines)
                    if 'vfio_kvm_device_add_fd' in l), None)
        bind = next((i for i, l in enumerate(lines)
                     if 'vfio_iommufd_bind' in l), None)
        check(add is not None and bind is not None and add < bind,
              'KVM_DEV_VFIO_FILE_ADD comes before VFIO_DEVICE_BIND_IOMMUFD')
        print('  KVM_DEV_VFIO_FILE_ADD came before VFIO_DEVICE_BIND_IOMMUFD: '
              'the kernel took its kvm reference at bind.')
        print()
        bdf = guest_edus(g)[0]
        insmod(g, msi=True)
        print(f'In the guest: edu at {bdf}, driven by edu_guest.ko:')
        for length, off in ((4095, 0), (1000, 3000)):
            r = guest_dma(g, bdf, length, off)
            print(f'  DMA {length} bytes guest -> device -> guest at '
                  f'{r["src"]}/{r["dst"]}: {r["bad"]} bytes differ')
        irq = edu_attr(g, bdf, 'edu_irq', '100')
        st = kv(g.sh(f'cat /sys/bus/pci/devices/{bdf}/edu_stats'))
        check(irq.get('result') == 'ok' and st['raised'] == st['delivered'],
              f'interrupts: {st}')
        print(f'  interrupts ({st["mode"]}): {st["raised"]} raised by the '
              f'device, {st["delivered"]} delivered to the guest')
        s = g.status()
        print(f'  QEMU: {s["fds"]} fds, {s["VmPin"] // 1024} MiB pinned '
              f'(VmPin: guest RAM, charged by iommufd)')
        ok = True
    except (Fail, QMPError, OSError) as e:
        print(f'demo: FAILED: {e}')
    finally:
        g.quit()
        g.keep(not ok)
    print(f'demo: {"guest DMA and interrupts through iommufd verified" if ok else "FAILED"}'
          f' ({time.time() - t0:.0f} s)')
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--qemu', required=True)
    ap.add_argument('--kernel', required=True)
    ap.add_argument('--initrd', required=True)
    ap.add_argument('--faultinject', help='libfaultinject.so for the fault '
                    'cases')
    ap.add_argument('--workdir', default='/tmp',
                    help='where the sockets go (not on 9p)')
    ap.add_argument('--logdir', help='where logs of failed guests go')
    ap.add_argument('--case', action='append')
    ap.add_argument('--path', action='append', choices=PATHS)
    ap.add_argument('--group', action='append',
                    help='CASE/PATH: run exactly these groups, in order '
                    '(instead of --case and --path)')
    ap.add_argument('--repeat', type=int, default=1,
                    help='run the groups this many times, stopping after '
                    'a run with a failure (to hunt rare hangs)')
    ap.add_argument('--reboots', type=int, default=20)
    ap.add_argument('--cycles', type=int, default=10000)
    ap.add_argument('--mdev-cycles', type=int, default=20)
    ap.add_argument('--keep', action='store_true', help='keep the logs')
    ap.add_argument('--verbose', action='store_true',
                    help='the guest kernel logs to its console')
    ap.add_argument('--demo', action='store_true',
                    help='make demo: one guest on the iommufd path, with a '
                    'report')
    ap.add_argument('--jobs', type=int, default=1,
                    help='1 (default): one path after the other; 2: the '
                    'legacy and the iommufd path side by side, for the '
                    'cases where that has been safe (faster, but two L2 '
                    'guests side by side have stopped at the same moment)')
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    args.workdir = tempfile.mkdtemp(prefix='guest-tier.', dir=args.workdir)
    if args.demo:
        sys.exit(demo(args))
    sys.exit(Tier(args).all())


if __name__ == '__main__':
    main()
