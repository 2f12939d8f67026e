"""A libvirt domain of the libvirt tier: an L2 guest that libvirt runs,
l2-init's control line to it, and what its guest reports."""

import json
import os
import shutil
import subprocess

from pylib import procfs
from pylib.check import Fail, Hang, check
from pylib.inguest import edu_attr, edu_stats, guest_dma, guest_edus, insmod
from pylib.l2 import ControlLine, console_tail
from pylib.tap import note
from pylib.wait import until

IMAGES = '/var/lib/libvirt/images'
SOCKDIR = '/run/l2'
QEMU_LOGS = '/var/log/libvirt/qemu'


class Domain:
    """An L2 guest that libvirt runs, and l2-init's control line to it
    (serial 1, pylib.l2.ControlLine): .sh() runs a command in the guest,
    as pylib.inguest's helpers want."""

    def __init__(self, tier, name, xml):
        self.t = tier
        self.args = tier.args
        self.name = name
        self.xml = xml
        self.pid = None
        self.dir = tier.rpath(SOCKDIR)
        self.console = tier.rpath(f'{QEMU_LOGS}/{name}.console')
        self.stderr = tier.rpath(f'{QEMU_LOGS}/{name}.log')
        self.log_from = 0
        self.line = ControlLine(name, self.agent_check, self.agent_timeout,
                                self.console)

    def alive(self):
        return procfs.alive(self.pid)

    def agent_check(self):
        check(self.alive(), f'{self.name}: QEMU is gone: '
              f'{self.errors()[-500:]}')

    def agent_timeout(self, marker, timeout):
        return Hang(f'{self.name}: no {marker.decode()} within {timeout} s; '
                    f'console: {console_tail(self.console)}; '
                    f'{self.hang_report()}')

    def sh(self, cmd, timeout=120, ok=True):
        """Run @cmd in the guest: its output (and status unless @ok)."""
        return self.line.sh(cmd, timeout, ok)

    def status(self):
        """QEMU's pinned and locked memory (kB) and its number of fds."""
        st = procfs.memory_kb(self.pid)
        st['fds'] = len(procfs.fds(self.pid))
        return st

    def errors(self):
        """QEMU's log (stderr, trace) of this run: libvirt appends the
        runs of one domain name to one file."""
        try:
            with open(self.stderr, 'rb') as f:
                f.seek(self.log_from)
                return f.read().decode(errors='replace').strip()
        except FileNotFoundError:
            return '(no domain log)'

    def define(self):
        path = f'/tmp/{self.name}.xml'
        procfs.write(self.t.rpath(path), self.xml)
        self.t.virsh('define', path)

    def listen(self):
        os.makedirs(self.dir, exist_ok=True)
        self.line.listen(self.t.rpath(f'{SOCKDIR}/{self.name}.sock'), 0o666)

    def start(self, virsh_cmd=None, pass_fds=()):
        """virsh start (or @virsh_cmd), then wait for the guest's @@READY."""
        self.define()
        self.listen()
        self.log_from = self.log_size()
        if virsh_cmd:
            self.t.virsh(virsh_cmd, pass_fds=pass_fds)
        else:
            self.t.virsh('start', self.name)
        self.pid = self.t.qemu_pid(self.name)
        self.line.accept(60, lambda: self.errors()[-500:])
        self.line.read_until(b'@@READY', 120)
        return self

    def log_size(self):
        try:
            return os.path.getsize(self.stderr)
        except FileNotFoundError:
            return 0

    def try_start(self):
        """virsh start that is expected to fail: its error message."""
        self.define()
        self.listen()
        self.log_from = self.log_size()
        try:
            r = self.t.virsh('start', self.name, ok=False, timeout=120)
        except subprocess.TimeoutExpired:
            raise Fail(f'virsh start {self.name} did not return in 120 s; '
                       f'VFIO/iommufd nodes held: '
                       f'{procfs.holders(root=self.args.root)}') from None
        finally:
            self.line.close()
        check(r.returncode != 0, f'virsh start of {self.name} failed '
              f'(it started: {r.stdout.strip()})')
        return ' '.join(r.stderr.split())

    def cmdline(self):
        return procfs.cmdline(self.pid)

    def json_args(self, opt, key, value):
        """The JSON values of @opt arguments with @key = @value."""
        out, argv = [], self.cmdline()
        for i, a in enumerate(argv[:-1]):
            if a == opt and argv[i + 1].startswith('{'):
                obj = json.loads(argv[i + 1])
                if obj.get(key) == value:
                    out.append(obj)
        return out

    def qmp(self, cmd, **arguments):
        msg = {'execute': cmd}
        if arguments:
            msg['arguments'] = arguments
        r = self.t.virsh('qemu-monitor-command', self.name, json.dumps(msg))
        return json.loads(r.stdout)['return']

    def iommufd_objects(self):
        return [o['name'] for o in self.qmp('qom-list', path='/objects')
                if o['type'] == 'child<iommufd>']

    def quit(self):
        self.line.close()
        for cmd in ('destroy', 'undefine'):
            try:
                self.t.virsh(cmd, self.name, ok=False, timeout=60)
            except subprocess.TimeoutExpired:
                note(f'virsh {cmd} {self.name} did not return in 60 s')
        return None

    def threads(self):
        """QEMU's threads: name, state and what they wait in (wchan)."""
        return ' '.join(f'{comm}:{state}:{wchan}' for _, comm, state, wchan
                        in procfs.threads(self.pid))

    def hang_report(self):
        """What QEMU does while its guest does not answer."""
        if not (self.pid and self.alive()):
            return 'QEMU is gone'
        try:
            r = self.t.virsh('qemu-monitor-command', self.name, '--hmp',
                             'info status', ok=False, timeout=20)
            mon = ' '.join((r.stdout + r.stderr).split())
        except subprocess.TimeoutExpired:
            mon = 'the monitor does not answer in 20 s'
        return f'monitor: {mon}; QEMU threads: {self.threads()}'

    def keep(self, failed):
        self.line.report_nudges()
        if not (failed and self.args.logdir):
            return
        dest = os.path.join(self.args.logdir, self.name)
        os.makedirs(dest, exist_ok=True)
        for src in (self.console, self.stderr,
                    self.t.rpath(f'/tmp/{self.name}.xml'),
                    self.t.rpath('/var/log/libvirt/libvirtd.log')):
            if os.path.exists(src):
                shutil.copy(src, dest)
        note(f'{self.name}: logs kept in {dest}')


def guest_work(d, count=1, irqs=50, load=True):
    """edu_guest in L2: DMA both ways (bytes compared by the guest) and
    @irqs interrupts, raised = delivered, on each of @count edus.  @load:
    (re)load the module; else it is loaded and must bind by itself."""
    edus = guest_edus(d)
    check(len(edus) == count, f'{count} edu(s) in the guest, found {edus}')
    if load:
        insmod(d, msi=True)
    else:
        for bdf in edus:
            until(lambda: d.sh(f'readlink /sys/bus/pci/devices/{bdf}/driver; '
                               'true').strip().endswith('/edu_guest'), 60,
                  lambda: f'edu_guest binds {bdf} by itself: '
                  f'{d.sh("dmesg | tail -n 5")}', 0.5)
    said = []
    for bdf in edus:
        r1 = guest_dma(d, bdf, 4095, 0)
        r2 = guest_dma(d, bdf, 1024, 3000)
        irq = edu_attr(d, bdf, 'edu_irq', str(irqs))
        check(irq.get('result') == 'ok', f'{bdf}: interrupts: {irq}')
        st = edu_stats(d, bdf)
        check(st['raised'] == st['delivered'] and st['spurious'] == '0' and
              int(st['raised']) >= irqs and st['mode'] == 'msi',
              f'{bdf}: MSI interrupts raised = delivered, none spurious: {st}')
        said.append(f'{bdf}: DMA 4095 B at {r1["src"]}/{r1["dst"]} and 1024 B '
                    f'at {r2["src"]} ok, {st["raised"]} MSIs raised = '
                    f'{st["delivered"]} delivered')
    return '; '.join(said)
