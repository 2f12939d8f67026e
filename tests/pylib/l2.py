"""
An L2 Linux guest: the test kernel with tests/guest's initramfs on our
QEMU inside L1, and l2-init's control line to it.

l2-init (the guest's PID 1) says "@@READY" on its control line (ttyS1) at
every boot, runs each line it reads there as a shell command and answers
with the command's output and "@@RC <status>".
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

from pylib import procfs, tracelog
from pylib.check import Fail, Hang
from pylib.tap import note
from pylib.vm import ExecuteError, Machine, env_wrapper, taskset
from pylib.wait import Deadline

# Seconds of silence on the control line before the guest is nudged.
NUDGE_AFTER = 15
# Guests that were nudged, "name: count" (the tiers report them).
NUDGED = []

# What every guest traces: its kernel calls and the notifiers behind them.
TRACE = ('iommufd_backend_map_dma', 'iommufd_backend_unmap_dma',
         'vfio_dma_map', 'vfio_dma_unmap', 'vfio_iommu_map_notify*',
         'vfio_iommufd_container_new', 'vfio_pci_hot_reset*',
         'vfio_pci_reset*', 'vfio_kvm_device_*', 'vfio_iommufd_bind',
         'vfio_ram_discard_*', 'vfio_container_check_viommu')


class ControlLine:
    """
    The guest's end of l2-init's control line, on a socket QEMU (or
    libvirt's QEMU) connects to.  @alive() fails if QEMU is gone;
    @hung(marker, timeout) makes the error for a guest that went silent.
    """

    def __init__(self, name, alive, hung, console=None):
        self.name = name
        self.alive = alive
        self.hung = hung
        self.console = console
        self.srv = self.sock = None
        self.buf = b''
        self.nudges = 0
        self.dead = None

    def listen(self, path, mode=None):
        if os.path.exists(path):
            os.unlink(path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        if mode is not None:
            os.chmod(path, mode)
        self.srv.listen(1)

    def accept(self, timeout, what):
        """QEMU's connection, within @timeout s; Fail with what()."""
        self.srv.settimeout(timeout)
        try:
            self.sock, _ = self.srv.accept()
        except socket.timeout:
            raise Fail(f'{self.name}: QEMU did not connect the control '
                       f'line within {timeout} s: {what()}') from None
        finally:
            self.srv.close()

    def close(self):
        for s in (self.sock, self.srv):
            if s:
                s.close()
        self.sock = self.srv = None

    def send(self, text):
        self.sock.sendall(text.encode() + b'\n')

    def read_until(self, marker, timeout):
        """
        The output up to a line that starts with @marker, and the rest of
        that line.  A guest silent for NUDGE_AFTER s gets an empty line
        (which l2-init skips): nested on TCG, a halted L2 vCPU was seen to
        miss its TSC-deadline timer (now off) and sleep for good, and the
        UART interrupt wakes it.  The tiers report how often it happened.
        """
        if self.dead:
            raise Hang(f'{self.name}: {self.dead}')
        deadline = Deadline(timeout)
        quiet = Deadline(NUDGE_AFTER)
        pattern = re.compile(rb'^' + re.escape(marker) + rb'([^\n]*)\n',
                             re.M)
        while True:
            m = pattern.search(self.buf)
            if m:
                before, self.buf = self.buf[:m.start()], self.buf[m.end():]
                return (before.decode(errors='replace'),
                        m.group(1).decode().strip())
            if deadline.passed():
                err = self.hung(marker, timeout)
                # Its answer may still come: the line is out of step.
                self.dead = f'no answer since a timeout ({marker.decode()})'
                raise err
            self.alive()
            self.sock.settimeout(min(deadline.left(), 1.0))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                if quiet.passed():
                    self.sock.sendall(b'\n')
                    self.nudges += 1
                    quiet = Deadline(NUDGE_AFTER)
                continue
            if not data:
                raise Fail(f'{self.name}: control line closed')
            quiet = Deadline(NUDGE_AFTER)
            self.buf += data

    def sh(self, cmd, timeout=120, ok=True):
        """Run @cmd in the guest: its output, or (status, output) unless
        @ok; with @ok a non-zero status fails."""
        self.send(cmd)
        out, rc = self.read_until(b'@@RC', timeout)
        if '@@READY' in out:
            raise Hang(f'{self.name}: the guest reset itself during "{cmd}" '
                       f'(a new @@READY); console: '
                       f'{console_tail(self.console)}')
        if ok and rc != '0':
            raise Fail(f'{self.name}: guest command "{cmd}" exited {rc}: '
                       f'{out.strip()}')
        return out if ok else (int(rc), out)

    def report_nudges(self):
        if self.nudges:
            note(f'{self.name}: the guest was silent for {NUDGE_AFTER} s and '
                 f'was woken by a byte on its control line {self.nudges} '
                 f'time(s)')
            NUDGED.append(f'{self.name}: {self.nudges}')


def console_tail(path, n=8):
    """The last @n lines of a console log, on one line."""
    try:
        with open(path, errors='replace') as f:
            return ' | '.join(f.read().splitlines()[-n:])
    except FileNotFoundError:
        return '(none)'


class Guest:
    """
    One L2 guest: our QEMU (-accel kvm in L1) with the test kernel, the
    initramfs and @devices.  @args has qemu, kernel, initrd, workdir (for
    sockets: not on 9p), verbose, keep and logdir.
    """

    def __init__(self, args, name, devices, viommu=False, mem='256M',
                 extra=(), env=None, machine_extra='', cpu=None,
                 trace=()):
        self.args = args
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f'{name}.', dir=args.workdir)
        self.console = os.path.join(self.dir, 'console.log')
        self.trace = os.path.join(self.dir, 'trace.log')
        self.readies = 0
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
        cmd = ['-machine', machine, '-accel', 'kvm',
               '-cpu', 'max,-svm,-vmx,-tsc-deadline', '-smp', '1', '-m', mem,
               '-nodefaults', '-no-user-config',
               '-serial', f'file:{self.console}',
               '-chardev', f'socket,id=agent,path={self.dir}/agent.sock',
               '-serial', 'chardev:agent',
               '-kernel', args.kernel, '-initrd', args.initrd,
               '-append', append, '-D', self.trace]
        for ev in TRACE + tuple(trace):
            cmd += ['-trace', f'enable={ev}']
        if viommu:
            # viommu may name more options (a later QEMU's aw-bits=39).
            more = f',{viommu}' if isinstance(viommu, str) else ''
            cmd += ['-device',
                    f'intel-iommu,intremap=on,caching-mode=on{more}']
        cmd += list(extra) + list(devices)
        wrapper = env_wrapper(env)
        if cpu is not None and os.cpu_count() > 1:
            # Side by side, each guest keeps to one of L1's CPUs: an L2
            # vCPU moved between L1's (emulated) CPUs has been seen to
            # lose its timer and hang.
            wrapper += taskset(cpu)
        self.vm = Machine(args.qemu, cmd, name, self.dir, wrapper=wrapper,
                          qmp_timeout=120)
        self.line = ControlLine(name, self.agent_check, self.agent_timeout,
                                self.console)

    @property
    def cmd(self):
        """QEMU's arguments as the caller gave them."""
        return self.vm.args

    def start(self):
        with open(os.path.join(self.dir, 'cmdline'), 'w') as f:
            f.write(' '.join([self.args.qemu] + self.vm.args) + '\n')
        self.line.listen(f'{self.dir}/agent.sock')
        self.vm.start()
        self.line.accept(60, self.errors)
        self.wait_ready()
        return self

    @property
    def pid(self):
        return self.vm.pid

    @property
    def nudges(self):
        return self.line.nudges

    def errors(self):
        """What QEMU printed."""
        return self.vm.output().strip()

    def trace_lines(self):
        return tracelog.lines(self.trace)

    def qmp(self, cmd, **arguments):
        return self.vm.cmd(cmd, **arguments)

    def qmp_getfd(self, name, fd):
        """Pass @fd to QEMU as getfd name @name, as libvirt does."""
        return self.vm.getfd(name, fd)

    def agent_check(self):
        if not self.vm.is_running():
            raise Fail(f'{self.name}: QEMU exited with status '
                       f'{self.vm.exitcode()}: {self.errors()}')

    def agent_timeout(self, marker, timeout):
        self.dump_threads()
        return Hang(f'{self.name}: no {marker.decode()} within {timeout} s; '
                    f'console: {console_tail(self.console)}')

    def dump_threads(self):
        """
        Where QEMU's threads are and what the guest's vCPU does, for a
        guest that stopped answering: KVM's vCPU statistics over 2 s
        (halted, exiting, interrupts injected), its registers and APIC.
        """
        out = os.path.join(self.dir, 'threads.txt')
        # QEMU's main loop may be stuck too: ask briefly.
        timeout = self.vm.qmp_timeout
        self.vm.set_qmp_timeout(20)
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
            except (Fail, ExecuteError, OSError, KeyError, IndexError) as e:
                f.write(f'no vCPU state: {e}\n')
            finally:
                self.vm.set_qmp_timeout(timeout)
            for tid, comm, _, wchan in procfs.threads(self.pid):
                f.write(f'{tid} {comm} {wchan}\n')
            if shutil.which('gdb'):
                f.flush()
                try:
                    subprocess.run(['gdb', '-batch', '-p', str(self.pid),
                                    '-ex', 'thread apply all bt'], stdout=f,
                                   stderr=subprocess.STDOUT, timeout=120,
                                   check=False)
                except subprocess.TimeoutExpired:
                    f.write('gdb did not finish in 120 s\n')

    def wait_ready(self, timeout=120):
        self.line.read_until(b'@@READY', timeout)
        self.readies += 1

    def wait_event(self, name, timeout=60, **match):
        """Wait for QMP event @name whose data has @match; return it."""
        return self.vm.wait_event(name, timeout, **match)

    def sh(self, cmd, timeout=120, ok=True):
        """Run cmd in the guest: its output; raises if ok and it failed."""
        return self.line.sh(cmd, timeout, ok)

    def reboot(self):
        """A reboot from inside the guest, as a user types it."""
        self.line.send('reboot -f')
        self.wait_ready()

    def system_reset(self):
        self.qmp('system_reset')
        self.wait_ready()

    def status(self):
        """Pinned and locked memory (kB) and open fds of QEMU."""
        st = procfs.memory_kb(self.pid)
        st['fds'] = len(procfs.fds(self.pid))
        return st

    def running(self):
        return self.vm.is_running() and \
            self.qmp('query-status')['status'] == 'running'

    def quit(self):
        rc = self.vm.quit()
        self.line.close()
        return rc

    def keep(self, failed):
        """Copy the logs of a failed guest to --logdir; drop the rest."""
        self.line.report_nudges()
        if (failed or self.args.keep) and self.args.logdir:
            dest = os.path.join(self.args.logdir, self.name)
            os.makedirs(dest, exist_ok=True)
            for f in os.listdir(self.dir):
                if not f.endswith('.sock'):
                    shutil.copy(os.path.join(self.dir, f), dest)
            note(f'{self.name}: logs kept in {dest}')
        shutil.rmtree(self.dir, ignore_errors=True)
