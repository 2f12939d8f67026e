#!/usr/bin/python3
"""The libvirt tier: real libvirt (12.x, trixie-backports) drives our QEMU.

Runs inside the test bed's L1, where tests/libvirt/l1-libvirt.sh has started
libvirtd in the trixie root (--root).  Each case does what a user does:
domain XML and virsh (define, start, attach-device, detach-device,
destroy).  The guest is the guest tier's L2 Linux (tests/guest): its
edu_guest driver reports the DMA bytes it compared and the interrupts it
raised and received; this script asserts that, and what libvirt and QEMU
did on the host: device bindings, QEMU's command line, user, fds, limits,
pinned memory, and what is left after a domain ends or fails to start.

L1's edu devices start bound to edu_guest (the "host driver" that managed
hostdevs are taken from and returned to).

Prints "ok N - case: detail" / "not ok N - case: reason", notes as
"# ...", and closes with "libvirt: N passed, M failed".
"""

import argparse
import fcntl
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'guest'))
from guest_tier import Fail, Hang, NUDGE_AFTER, check, kv, insmod, \
    guest_edus, guest_dma, edu_attr, read_agent         # noqa: E402

MIB = 1 << 20
GUEST_MIB = 256
QEMU_UID = 64055                # libvirt-qemu in Debian
IMAGES = '/var/lib/libvirt/images'
SOCKDIR = '/run/l2'
QEMU_LOGS = '/var/log/libvirt/qemu'
ROOT = None                     # the trixie root, set by main()
VERBOSE = False                 # the guest kernel logs to its console
STOCK_MSG = "Parameter 'qom-type' does not accept value 'iommufd'"
TRACE = ['iommufd_backend_connect', 'iommufd_backend_alloc_ioas',
         'vfio_iommufd_*']

# linux/iommufd.h
IOMMU_IOAS_ALLOC = (ord(';') << 8) | 0x81      # struct {size, flags, out_id}
IOMMU_OPTION = (ord(';') << 8) | 0x87
IOMMU_OPTION_RLIMIT_MODE = 0
IOMMU_OPTION_OP_SET = 0
IOMMU_OPTION_OP_GET = 1


def note(msg):
    print(f'# {msg}', flush=True)


def trace(log, event):
    """The lines of QEMU's trace (log backend: "PID@TIME:event args")."""
    return re.findall(rf'^\d+@[\d.]+:({event} .*)$', log, re.M)


# --- the host (L1) ----------------------------------------------------------

def sysfs(bdf, name=''):
    return f'/sys/bus/pci/devices/{bdf}/{name}'.rstrip('/')


def driver(bdf):
    link = sysfs(bdf, 'driver')
    return os.path.basename(os.readlink(link)) if os.path.exists(link) else None


def write(path, text):
    with open(path, 'w') as f:
        f.write(text)


def bind(bdf, override=''):
    """Rebind @bdf: to the driver that matches it (edu_guest) or @override."""
    if driver(bdf):
        write(sysfs(bdf, 'driver/unbind'), bdf)
    write(sysfs(bdf, 'driver_override'), override + '\n')
    write('/sys/bus/pci/drivers_probe', bdf)


def cdev_of(bdf):
    """The VFIO cdev of @bdf while vfio-pci has it, else None."""
    try:
        return '/dev/vfio/devices/' + os.listdir(sysfs(bdf, 'vfio-dev'))[0]
    except (FileNotFoundError, IndexError):
        return None


def group_of(bdf):
    return '/dev/vfio/' + os.path.basename(os.readlink(sysfs(bdf, 'iommu_group')))


def procs():
    for p in os.listdir('/proc'):
        if p.isdigit():
            yield int(p)


def proc_status(pid):
    st = {}
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                k, _, v = line.partition(':')
                st[k] = v.split()
    except OSError:
        return {}
    return st


def proc_fds(pid):
    """fd -> path; paths of processes in the root read as the root sees them."""
    fds = {}
    try:
        for fd in os.listdir(f'/proc/{pid}/fd'):
            try:
                path = os.readlink(f'/proc/{pid}/fd/{fd}')
                if ROOT and path.startswith(ROOT + '/'):
                    path = path[len(ROOT):]
                fds[int(fd)] = path
            except OSError:
                pass
    except OSError:
        pass
    return fds


def holders(prefixes=('/dev/iommu', '/dev/vfio/')):
    """Every process holding one of the VFIO/iommufd nodes: [(pid, comm, node)]."""
    out = []
    for pid in procs():
        for target in proc_fds(pid).values():
            if target.startswith(prefixes):
                out.append((pid, proc_status(pid).get('Name', ['?'])[0], target))
    return out


def pinners():
    """Processes with pinned or locked memory: [(pid, comm, VmPin, VmLck)]."""
    out = []
    for pid in procs():
        st = proc_status(pid)
        pin, lck = int(st.get('VmPin', ['0'])[0]), int(st.get('VmLck', ['0'])[0])
        if pin or lck:
            out.append((pid, st['Name'][0], pin, lck))
    return out


def qemu_user_procs():
    return [pid for pid in procs()
            if proc_status(pid).get('Uid', [''])[0] == str(QEMU_UID)]


def memlock_limit(pid):
    with open(f'/proc/{pid}/limits') as f:
        for line in f:
            if line.startswith('Max locked memory'):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise Fail(f'no memlock limit for {pid}')


# --- domains ----------------------------------------------------------------

def hostdev_xml(bdf, iommufd=None, managed=True, guest_bus=None):
    """A PCI hostdev; @guest_bus puts it in slot 0 of that bus (a root port:
    without an address libvirt looks for a conventional PCI slot for edu
    and hot-plug fails with "No more available PCI slots")."""
    dom, bus, slotfn = bdf.split(':')
    slot, fn = slotfn.split('.')
    drv = f"\n      <driver iommufd='{iommufd}'/>" if iommufd else ''
    addr = ''
    if guest_bus is not None:
        addr = (f"      <address type='pci' domain='0x0000' "
                f"bus='0x{guest_bus:02x}' slot='0x00' function='0x0'/>\n")
    return (f"    <hostdev mode='subsystem' type='pci' "
            f"managed='{'yes' if managed else 'no'}'>{drv}\n"
            f"      <source>\n"
            f"        <address domain='0x{dom}' bus='0x{bus}' slot='0x{slot}' "
            f"function='0x{fn}'/>\n"
            f"      </source>\n{addr}"
            f"    </hostdev>\n")


def domain_xml(name, emulator, devices='', top='', trace=False, ports=0):
    """An L2 guest as libvirt domain XML: the guest tier's kernel and
    initramfs, its console on serial 0 and its control line on serial 1."""
    extra = ''
    if ports:
        extra = ("    <controller type='pci' index='0' model='pcie-root'/>\n" +
                 "    <controller type='pci' model='pcie-root-port'/>\n" * ports)
    cmdline = ''
    if trace:
        args = ''.join(f"    <qemu:arg value='-trace'/>\n"
                       f"    <qemu:arg value='enable={ev}'/>\n" for ev in TRACE)
        cmdline = f'  <qemu:commandline>\n{args}  </qemu:commandline>\n'
    return f"""<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <memory unit='MiB'>{GUEST_MIB}</memory>
  <vcpu>1</vcpu>
{top}  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{IMAGES}/bzImage</kernel>
    <initrd>{IMAGES}/initramfs.cpio.gz</initrd>
    <cmdline>console=ttyS0 panic=-1 no_timer_check {'' if VERBOSE else 'quiet'}</cmdline>
  </os>
  <features>
    <acpi/>
  </features>
  <cpu mode='host-passthrough' check='none' migratable='off'>
    <feature policy='disable' name='svm'/>
    <feature policy='disable' name='tsc-deadline'/>
  </cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{emulator}</emulator>
    <controller type='usb' model='none'/>
{extra}    <serial type='file'>
      <source path='{QEMU_LOGS}/{name}.console'/>
      <target port='0'/>
    </serial>
    <serial type='unix'>
      <source mode='connect' path='{SOCKDIR}/{name}.sock'/>
      <target port='1'/>
    </serial>
{devices}    <memballoon model='none'/>
  </devices>
{cmdline}</domain>
"""


class Domain:
    """An L2 guest that libvirt runs, and the guest tier's control line to
    it (serial 1): each line sent runs as a shell command in the guest,
    which answers with its output and "@@RC <status>"; it says "@@READY"
    when it boots.  Has the .sh() that guest_tier's helpers use."""

    def __init__(self, tier, name, xml):
        self.t = tier
        self.args = tier.args
        self.name = name
        self.xml = xml
        self.buf = b''
        self.pid = None
        self.agent = None
        self.srv = None
        self.nudges = 0
        self.dir = tier.rpath(SOCKDIR)
        self.console = tier.rpath(f'{QEMU_LOGS}/{name}.console')
        self.stderr = tier.rpath(f'{QEMU_LOGS}/{name}.log')
        self.log_from = 0

    def alive(self):
        try:
            with open(f'/proc/{self.pid}/stat') as f:
                return not f.read().split(') ')[1].startswith('Z')
        except FileNotFoundError:
            return False

    def read_until(self, marker, timeout):
        """The output before a line starting with @marker, and its rest."""
        return read_agent(self, marker, timeout)

    def agent_check(self):
        check(self.alive(), f'{self.name}: QEMU is gone: '
              f'{self.errors()[-500:]}')

    def agent_timeout(self, marker, timeout):
        return Hang(f'{self.name}: no {marker.decode()} within {timeout} s; '
                    f'console: {self.console_tail()}; {self.hang_report()}')

    def sh(self, cmd, timeout=120, ok=True):
        """Run @cmd in the guest: its output (and status unless @ok)."""
        self.agent.sendall(cmd.encode() + b'\n')
        out, rc = self.read_until(b'@@RC', timeout)
        if '@@READY' in out:
            raise Hang(f'{self.name}: the guest reset itself during "{cmd}" '
                       f'(a new @@READY); console: {self.console_tail()}')
        if ok and rc != '0':
            raise Fail(f'{self.name}: guest command "{cmd}" exited {rc}: '
                       f'{out.strip()}')
        return out if ok else (int(rc), out)

    def status(self):
        """QEMU's pinned and locked memory (kB) and its number of fds."""
        st = {k: int(v[0]) for k, v in proc_status(self.pid).items()
              if k in ('VmPin', 'VmLck', 'VmRSS')}
        st['fds'] = len(proc_fds(self.pid))
        return st

    def console_tail(self, n=8):
        try:
            with open(self.console, errors='replace') as f:
                return ' | '.join(f.read().splitlines()[-n:])
        except FileNotFoundError:
            return '(none)'

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
        write(self.t.rpath(path), self.xml)
        self.t.virsh('define', path)

    def listen(self):
        os.makedirs(self.dir, exist_ok=True)
        path = self.t.rpath(f'{SOCKDIR}/{self.name}.sock')
        if os.path.exists(path):
            os.unlink(path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        os.chmod(path, 0o666)
        self.srv.listen(1)
        self.srv.settimeout(60)

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
        try:
            self.agent, _ = self.srv.accept()
        except socket.timeout:
            raise Fail(f'{self.name}: QEMU did not connect the control line: '
                       f'{self.errors()[-500:]}')
        finally:
            self.srv.close()
        self.read_until(b'@@READY', 120)
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
                       f'VFIO/iommufd nodes held: {holders()}')
        finally:
            self.srv.close()
        check(r.returncode != 0, f'virsh start of {self.name} failed '
              f'(it started: {r.stdout.strip()})')
        return ' '.join(r.stderr.split())

    def cmdline(self):
        with open(f'/proc/{self.pid}/cmdline', 'rb') as f:
            return [a.decode() for a in f.read().split(b'\0') if a]

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
        if self.agent:
            self.agent.close()
            self.agent = None
        for cmd in ('destroy', 'undefine'):
            try:
                self.t.virsh(cmd, self.name, ok=False, timeout=60)
            except subprocess.TimeoutExpired:
                note(f'virsh {cmd} {self.name} did not return in 60 s')
        return None

    def threads(self):
        """QEMU's threads: name, state and what they wait in (wchan)."""
        out = []
        for tid in sorted(os.listdir(f'/proc/{self.pid}/task'), key=int):
            try:
                with open(f'/proc/{self.pid}/task/{tid}/stat') as f:
                    st = f.read().rsplit(') ', 1)[1].split()[0]
                with open(f'/proc/{self.pid}/task/{tid}/comm') as f:
                    comm = f.read().strip()
                with open(f'/proc/{self.pid}/task/{tid}/wchan') as f:
                    wchan = f.read().strip()
            except OSError:
                continue
            out.append(f'{comm}:{st}:{wchan}')
        return ' '.join(out)

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
        if self.nudges:
            note(f'{self.name}: the guest was silent for {NUDGE_AFTER} s '
                 f'and woken by a byte on its control line {self.nudges} '
                 f'time(s)')
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


# --- what the guest reports -------------------------------------------------

def guest_work(d, count=1, irqs=50, load=True):
    """edu_guest in L2: DMA both ways (bytes compared by the guest) and
    @irqs interrupts, raised = delivered, on each of @count edus.  @load:
    (re)load the module; else it is loaded and must bind by itself."""
    edus = guest_edus(d)
    check(len(edus) == count, f'{count} edu(s) in the guest, found {edus}')
    if load:
        insmod(d, msi=True)
    else:
        deadline = time.time() + 60
        for bdf in edus:
            while not d.sh(f'readlink /sys/bus/pci/devices/{bdf}/driver; '
                           'true').strip().endswith('/edu_guest'):
                check(time.time() < deadline, f'edu_guest binds {bdf} by '
                      f'itself: {d.sh("dmesg | tail -n 5")}')
                time.sleep(0.5)
    said = []
    for bdf in edus:
        r1 = guest_dma(d, bdf, 4095, 0)
        r2 = guest_dma(d, bdf, 1024, 3000)
        irq = edu_attr(d, bdf, 'edu_irq', str(irqs))
        check(irq.get('result') == 'ok', f'{bdf}: interrupts: {irq}')
        st = kv(d.sh(f'cat /sys/bus/pci/devices/{bdf}/edu_stats'))
        check(st['raised'] == st['delivered'] and st['spurious'] == '0' and
              int(st['raised']) >= irqs and st['mode'] == 'msi',
              f'{bdf}: MSI interrupts raised = delivered, none spurious: {st}')
        said.append(f'{bdf}: DMA 4095 B at {r1["src"]}/{r1["dst"]} and 1024 B '
                    f'at {r2["src"]} ok, {st["raised"]} MSIs raised = '
                    f'{st["delivered"]} delivered')
    return '; '.join(said)


# --- the tier ---------------------------------------------------------------

class Tier:
    def __init__(self, args):
        self.args = args
        self.n = 0
        self.failed = 0
        self.edus = sorted(os.environ.get('L1_EDU_BDFS', '').split())
        self.facts = {}
        self.held = None        # results of the running case
        self.reruns = []

    # plumbing
    def rpath(self, path):
        """A path of the trixie root, as seen from L1."""
        return self.args.root + path

    def virsh(self, *args, ok=True, pass_fds=(), timeout=300):
        r = subprocess.run(['chroot', self.args.root, 'virsh', '-q', '-c',
                            'qemu:///system'] + list(args),
                           capture_output=True, text=True, pass_fds=pass_fds,
                           timeout=timeout, check=False)
        if ok and r.returncode != 0:
            raise Fail(f'virsh {" ".join(args)[:120]}: '
                       f'{" ".join(r.stderr.split())}')
        return r

    def qemu_pid(self, name):
        with open(self.rpath(f'/run/libvirt/qemu/{name}.pid')) as f:
            return int(f.read().strip())

    def report(self, name, ok, detail, hang=False):
        """A result; held back while a case runs (see run)."""
        if self.held is not None:
            self.held.append((name, ok, detail, hang))
            return
        self.n += 1
        if not ok:
            self.failed += 1
        print(f'{"ok" if ok else "not ok"} {self.n} - {name}: {detail}',
              flush=True)

    def failures(self):
        return self.failed + sum(1 for r in (self.held or []) if not r[1])

    def run(self, name, fn):
        """Run a case.  As in the guest tier: an L2 guest on nested KVM on
        TCG has been seen to stop, or to reset itself, at random (more
        often under load); a case whose guest did runs once more with a
        fresh guest, and a second time counts."""
        if self.args.case and name not in self.args.case:
            return
        for attempt in (1, 2):
            start = time.monotonic()
            self.held = []
            try:
                detail = fn()
                self.report(name, True,
                            f'{detail} ({time.monotonic() - start:.0f} s)')
            except (Fail, OSError, subprocess.SubprocessError, ValueError,
                    KeyError) as e:
                self.report(name, False, ' '.join(str(e).split()),
                            isinstance(e, Hang))
            finally:
                self.reset_devices()
            held, self.held = self.held, None
            hung = [r for r in held if r[3]]
            if hung and attempt == 1:
                note(f'{name}: {hung[0][2][:300]}; the case runs again')
                self.reruns.append(name)
                continue
            for r in held:
                self.report(*r)
            break

    def sub(self, name, fn):
        """A result inside a case (the case's domain is still up)."""
        try:
            self.report(name, True, fn())
        except (Fail, OSError, subprocess.SubprocessError, ValueError,
                KeyError) as e:
            self.report(name, False, ' '.join(str(e).split()),
                        isinstance(e, Hang))

    def with_domain(self, d, body, start=None, clean=(), drv='edu_guest'):
        """Start @d, run body(d), destroy and undefine it, then check that
        nothing is left of it (@clean: the devices back on @drv); keep its
        logs if anything failed.  body's result and what was checked."""
        before, failed = self.failures(), True
        try:
            try:
                (start or d.start)()
                out = body(d)
            finally:
                d.quit()
            if clean:
                out += '; ' + self.assert_clean(clean, 'after virsh destroy',
                                                drv)
            failed = self.failures() > before
            return out
        finally:
            d.keep(failed)

    def reset_devices(self):
        """Every L1 edu back on its host driver, as the cases expect (unless
        a process still holds it: vfio-pci's unbind would wait for it)."""
        for bdf in self.edus:
            if driver(bdf) == 'edu_guest':
                continue
            nodes = [n for n in (cdev_of(bdf), driver(bdf) == 'vfio-pci' and
                                 group_of(bdf)) if n]
            held = [h for h in holders() if h[2] in nodes]
            if held:
                note(f'{bdf} left on {driver(bdf)}, held by {held}')
                continue
            bind(bdf)

    def assert_clean(self, bdfs, what, drv='edu_guest'):
        """Nothing left after a domain ended or failed to start (libvirt
        returns a device to its driver after QEMU is gone: allow for it)."""
        deadline = time.time() + 60
        while True:
            left = {'drivers': {b: driver(b) for b in bdfs
                                if driver(b) != drv},
                    'holders': holders(), 'pinned': pinners(),
                    'qemu': qemu_user_procs()}
            if not any(left.values()):
                break
            check(time.time() < deadline, f'{what}: left behind: {left}')
            time.sleep(0.5)
        return (f'{", ".join(bdfs)} on {drv}; no process holds '
                f'/dev/iommu or a VFIO node; nothing pinned; no QEMU')

    def domain(self, name, devices='', **kw):
        emulator = kw.pop('emulator', self.args.qemu)
        return Domain(self, name, domain_xml(name, emulator, devices, **kw))

    # setup
    def setup(self):
        check(len(self.edus) >= 2, f'two edus in L1, found {self.edus}')
        os.makedirs(self.rpath(IMAGES), exist_ok=True)
        shutil.copy(self.args.kernel, self.rpath(f'{IMAGES}/bzImage'))
        shutil.copy(self.args.initrd, self.rpath(f'{IMAGES}/initramfs.cpio.gz'))
        if self.args.deb:
            deb = f'/tmp/{os.path.basename(self.args.deb)}'
            shutil.copy(self.args.deb, self.rpath(deb))
            r = subprocess.run(['chroot', self.args.root, 'dpkg', '-i', deb],
                               capture_output=True, text=True, check=False)
            check(r.returncode == 0, f'dpkg -i {deb}: {r.stdout} {r.stderr}')
            note(f'installed {os.path.basename(self.args.deb)} in the root')
        check(os.access(self.rpath(self.args.qemu), os.X_OK),
              f'no QEMU at {self.args.qemu} in the root')
        # The host driver the managed hostdevs come from and go back to.
        subprocess.run(['busybox', 'insmod', self.args.edu_ko], check=True)
        for bdf in self.edus:
            bind(bdf)
            check(driver(bdf) == 'edu_guest', f'{bdf} on edu_guest in L1')
        r = subprocess.run(['chroot', self.args.root, 'dpkg-query', '-W',
                            '-f=${Package} ${Version}\\n', 'libvirt-daemon',
                            'libvirt-clients'], capture_output=True, text=True,
                           check=False)
        for line in r.stdout.splitlines():
            note(f'root: {line}')
        note(f'virsh version: {" | ".join(self.virsh("version").stdout.split(chr(10))[:4])}')
        note(f'QEMU under test: {self.args.qemu}; L1 edus {self.edus}, '
             f'all on edu_guest')

    # --- cases --------------------------------------------------------------

    def case_domcaps(self):
        """domcapabilities: iommufd with our QEMU, not with Debian's 7.2."""
        def caps(emulator):
            r = self.virsh('domcapabilities', '--emulatorbin', emulator,
                           '--machine', 'q35', '--virttype', 'kvm')
            root = ET.fromstring(r.stdout)
            hostdev = root.find('devices/hostdev')
            check(hostdev is not None and hostdev.get('supported') == 'yes',
                  f'{emulator}: hostdev supported')
            enum = hostdev.find("enum[@name='iommufd']")
            values = [v.text for v in enum.findall('value')] \
                if enum is not None else None
            return root.findtext('machine'), values
        m_ours, ours = caps(self.args.qemu)
        m_stock, stock = caps(self.args.stock)
        check(ours == ['yes', 'no'], f'our QEMU: hostdev iommufd {ours}')
        check(stock == ['no'], f'stock QEMU: hostdev iommufd {stock}')
        a = self.edus[0]
        errs = {}
        for variant, devices, top in (
                ('hostdev', hostdev_xml(a, 'yes'), ''),
                ('domain', hostdev_xml(a), "  <iommufd enabled='yes'/>\n")):
            d = self.domain(f'l2-stock-{variant}', devices, top=top,
                            emulator=self.args.stock)
            try:
                errs[variant] = d.try_start()
            finally:
                d.quit()
            clean = self.assert_clean([a], f'after the refused start ({variant})')
        # libvirt 12.9 does not check its own capability here: QEMU refuses.
        for variant, err in errs.items():
            check(STOCK_MSG in err, f'stock QEMU, iommufd asked for by the '
                  f'{variant}: {err}')
        return (f'ours ({m_ours}): iommufd {ours}; Debian 12 stock '
                f'({m_stock}): iommufd {stock}; iommufd domains on stock '
                f'(hostdev and domain level): "{errs["hostdev"]}"; {clean}')

    def case_stock_hotplug(self):
        """attach-device of an iommufd hostdev to a running domain of
        Debian's stock 7.2.  libvirt 12.9 does not check its probe here
        either: QEMU's object-add refuses.  The device is one the user
        bound to vfio-pci (managed='no'): with managed='yes' libvirt hangs
        returning it to its driver while it still holds the cdev (README)."""
        b = self.edus[1]
        bind(b, 'vfio-pci')
        check(driver(b) == 'vfio-pci', f'{b} on vfio-pci')
        d = self.domain('l2-stock-hotplug', ports=1, emulator=self.args.stock)
        dev = '/tmp/hostdev-stock.xml'
        write(self.rpath(dev), hostdev_xml(b, 'yes', managed=False,
                                           guest_bus=1))

        def body(d):
            r = self.virsh('attach-device', d.name, dev, '--live', ok=False,
                           timeout=120)
            err = ' '.join(r.stderr.split())
            check(r.returncode != 0, f'attach-device refused: {r.stdout}')
            check("object-add" in err and STOCK_MSG in err,
                  f'the error names the iommufd object QEMU refused: {err}')
            check('<hostdev' not in self.virsh('dumpxml', d.name).stdout,
                  'no hostdev in the running domain')
            check(d.alive(), 'the guest runs on')
            check(not holders(), f'no process holds /dev/iommu or a VFIO '
                  f'node: {holders()}')
            return f'"{err}"; the guest runs on, no fd kept by libvirt or QEMU'
        return self.with_domain(d, body, clean=[b], drv='vfio-pci')

    def case_managed(self):
        """A managed hostdev with <driver iommufd='yes'/>: start, DMA,
        unprivileged QEMU, destroy returns the device."""
        a = self.edus[0]
        d = self.domain('l2-iommufd', hostdev_xml(a, 'yes'), trace=True)

        def body(d):
            self.sub('managed-iommufd', lambda: self.managed_running(d, a))
            self.sub('unprivileged', lambda: self.unprivileged(d, a))
            return 'destroyed'
        return self.with_domain(d, body, clean=[a])

    def passed_fds(self, d, bdf):
        """QEMU's iommufd object and vfio-pci device use passed fds only."""
        objs = d.json_args('-object', 'qom-type', 'iommufd')
        devs = d.json_args('-device', 'driver', 'vfio-pci')
        check(len(objs) == 1 and 'fd' in objs[0], f'-object iommufd with fd: {objs}')
        iommufd = [v for v in devs if v.get('iommufd') == objs[0]['id']]
        check(len(iommufd) == 1 and 'fd' in iommufd[0] and
              'host' not in iommufd[0] and 'sysfsdev' not in iommufd[0],
              f'-device vfio-pci with iommufd and fd, no host: {devs}')
        fds = proc_fds(d.pid)
        ifd, dfd = int(objs[0]['fd']), int(iommufd[0]['fd'])
        check(fds.get(ifd) == '/dev/iommu' and fds.get(dfd) == cdev_of(bdf),
              f'fd {ifd} -> /dev/iommu, fd {dfd} -> {cdev_of(bdf)}: '
              f'{ {ifd: fds.get(ifd), dfd: fds.get(dfd)} }')
        self.facts.setdefault('cmdline', ' '.join(
            a for a in d.cmdline() if a))
        return objs[0], iommufd[0]

    def managed_running(self, d, a):
        check(driver(a) == 'vfio-pci', f'{a} on vfio-pci while running, '
              f'found {driver(a)}')
        obj, dev = self.passed_fds(d, a)
        note(f'QEMU: -object {json.dumps(obj)} -device {json.dumps(dev)}')
        work = guest_work(d)
        return (f'libvirt moved {a} edu_guest -> vfio-pci, passed /dev/iommu '
                f'as fd {obj["fd"]} and {cdev_of(a)} as fd {dev["fd"]}; '
                f'guest: {work}')

    def unprivileged(self, d, a):
        st = proc_status(d.pid)
        check(st['Uid'] == [str(QEMU_UID)] * 4 and
              st['Gid'] == [str(QEMU_UID)] * 4,
              f'QEMU runs as libvirt-qemu: Uid {st["Uid"]} Gid {st["Gid"]}')
        nodes = ['/dev/iommu', cdev_of(a)]
        probe = ('import os,sys\nfor p in sys.argv[1:]:\n    try:\n'
                 '        os.close(os.open(p, os.O_RDWR)); print(p, "opened")\n'
                 '    except OSError as e:\n        print(p, e.strerror)\n')
        groups = [int(g) for g in st['Groups']]
        r = subprocess.run([sys.executable, '-c', probe] + nodes, user=QEMU_UID,
                           group=QEMU_UID, extra_groups=groups,
                           capture_output=True, text=True, check=False)
        check(r.stdout.split('\n')[:2] == [f'{n} Permission denied'
                                           for n in nodes],
              f'libvirt-qemu cannot open the nodes: {r.stdout} {r.stderr}')
        log = d.errors()
        connects = trace(log, 'iommufd_backend_connect')
        check(connects and all('owned=0' in c for c in connects),
              f'QEMU traced iommufd_backend_connect owned=0: {connects}')
        check(not trace(log, 'vfio_iommufd_open_cdev'),
              'QEMU opened no cdev (no vfio_iommufd_open_cdev in its trace)')
        soft, hard = memlock_limit(d.pid)
        pin, lck = int(st['VmPin'][0]), int(st['VmLck'][0])
        want = (GUEST_MIB + 1024) * MIB
        check(soft == hard == want,
              f'RLIMIT_MEMLOCK = guest RAM + 1 GiB = {want}: {soft}/{hard}')
        check(pin == lck and GUEST_MIB * 1024 <= pin <= want // 1024,
              f'per-process accounting: VmPin = VmLck between guest RAM and '
              f'the limit: VmPin {pin} kB, VmLck {lck} kB')
        others = [p for p in pinners() if p[0] != d.pid]
        check(not others, f'no other process charged: {others}')
        return (f'QEMU uid/gid {QEMU_UID} (groups {groups}), which gets '
                f'"Permission denied" on /dev/iommu and {nodes[1]}; trace: '
                f'{connects[0].strip()}, no vfio_iommufd_open_cdev; memlock '
                f'{hard // MIB} MiB (guest RAM + 1 GiB), VmPin = VmLck = '
                f'{pin} kB charged to QEMU alone')

    def case_domain_iommufd(self):
        """<iommufd enabled='yes'/> for the domain: a plain hostdev uses it."""
        a = self.edus[0]
        d = self.domain('l2-domain-iommufd', hostdev_xml(a),
                        top="  <iommufd enabled='yes'/>\n")

        def body(d):
            obj, dev = self.passed_fds(d, a)
            return (f'hostdev without <driver> got iommufd: -object fd '
                    f'{obj["fd"]}, vfio-pci fd {dev["fd"]}; guest: '
                    f'{guest_work(d)}')
        return self.with_domain(d, body, clean=[a])

    def case_fdgroup(self):
        """fdgroup: the test, as the management application, opens
        /dev/iommu, sets per-process accounting on it and associates it
        with virsh dom-fd-associate; QEMU uses that fd, and the pins are
        charged as the application set."""
        a = self.edus[0]
        d = self.domain('l2-fdgroup', hostdev_xml(a, 'yes'), trace=True,
                        top="  <iommufd enabled='yes' fdgroup='mgmt'/>\n")
        fd = os.open('/dev/iommu', os.O_RDWR)

        def rlimit_mode(op, val=0):
            arg = struct.pack('=IIHHIQ', 24, IOMMU_OPTION_RLIMIT_MODE, op, 0,
                              0, val)
            return struct.unpack('=IIHHIQ', fcntl.ioctl(fd, IOMMU_OPTION,
                                                        arg))[5]
        rlimit_mode(IOMMU_OPTION_OP_SET, 1)
        # An object of our own on it (id 1): QEMU's device then gets id 2
        # and its IOAS id 3, where a fresh /dev/iommu gives 1 and 2.
        arg = bytearray(struct.pack('=III', 12, 0, 0))
        fcntl.ioctl(fd, IOMMU_IOAS_ALLOC, arg)
        ours = struct.unpack('=III', arg)[2]
        cmd = f'dom-fd-associate l2-fdgroup mgmt {fd}; start l2-fdgroup'

        def body(d):
            obj, _ = self.passed_fds(d, a)
            log = d.errors()
            binds = trace(log, 'vfio_iommufd_bind')
            allocs = trace(log, 'iommufd_backend_alloc_ioas')
            check(ours == 1 and binds and ' devid=2 ' in binds[0] and
                  allocs and ' ioas=3 ' in allocs[0],
                  f'QEMU works on our fd (our IOAS is {ours}): device id 2, '
                  f'IOAS 3: {binds} {allocs}')
            mode = rlimit_mode(IOMMU_OPTION_OP_GET)
            os.close(fd)            # ours, before the check that none is held
            fds.clear()
            st = d.status()
            check(mode == 1 and st['VmLck'] == st['VmPin'] >= GUEST_MIB * 1024,
                  f'per-process accounting (mode {mode}): VmLck = VmPin >= '
                  f'guest RAM: {st}')
            return (f'our /dev/iommu (per-process accounting, IOAS {ours} on '
                    f'it) associated as fdgroup mgmt; QEMU got it as fd '
                    f'{obj["fd"]}: device id 2, IOAS 3 on it; VmLck = VmPin = '
                    f'{st["VmPin"]} kB; guest: {guest_work(d)}')
        fds = [fd]
        try:
            return self.with_domain(
                d, body, start=lambda: d.start(cmd, pass_fds=(fd,)), clean=[a])
        finally:
            for f in fds:
                os.close(f)

    def case_hotplug(self):
        """attach-device / detach-device ten times, DMA each time; the
        iommufd object goes with the last device."""
        a = self.edus[0]
        d = self.domain('l2-hotplug', ports=2, trace=True)
        dev = self.rpath('/tmp/hostdev-a.xml')
        write(dev, hostdev_xml(a, 'yes', guest_bus=1))
        times = []

        def wait_guest(want, what):
            deadline = time.time() + 60
            while len(guest_edus(d)) != want:
                check(time.time() < deadline, f'guest sees {want} edu: {what}')
                time.sleep(0.5)

        def body(d):
            insmod(d)
            base = d.status()
            check(not d.iommufd_objects(), 'no iommufd object before the '
                  'first attach')
            for i in range(1, self.args.hotplug + 1):
                t = time.time()
                marks = []
                self.virsh('attach-device', d.name, '/tmp/hostdev-a.xml',
                           '--live')
                marks.append(('attach', time.time()))
                wait_guest(1, f'after attach {i}')
                marks.append(('seen', time.time()))
                # The hot-plugged edu binds to the loaded edu_guest, as a
                # user's driver does.  (Reloading the module right after
                # the first attach has hung the guest's shell: README.)
                work = guest_work(d, irqs=10, load=False)
                marks.append(('work', time.time()))
                objs = d.iommufd_objects()
                check(len(objs) == 1, f'attach {i}: one iommufd object: {objs}')
                held = set(proc_fds(d.pid).values())
                check({'/dev/iommu', cdev_of(a)} <= held,
                      f'attach {i}: QEMU holds /dev/iommu and the cdev')
                self.virsh('detach-device', d.name, '/tmp/hostdev-a.xml',
                           '--live')
                marks.append(('detach', time.time()))
                deadline = time.time() + 60
                while '<hostdev' in self.virsh('dumpxml', d.name).stdout:
                    check(time.time() < deadline, f'detach {i} completes')
                    time.sleep(0.5)
                marks.append(('gone', time.time()))
                wait_guest(0, f'after detach {i}')
                objs = d.iommufd_objects()
                check(not objs, f'detach {i}: iommufd object gone: {objs}')
                held = set(proc_fds(d.pid).values())
                check(not [h for h in held if h.startswith(('/dev/iommu',
                                                            '/dev/vfio/'))],
                      f'detach {i}: QEMU holds no iommufd/VFIO node: {held}')
                check(driver(a) == 'edu_guest',
                      f'detach {i}: {a} back on edu_guest, found {driver(a)}')
                st = d.status()
                check(st['VmPin'] == base['VmPin'] == 0,
                      f'detach {i}: nothing pinned: {base} -> {st}')
                times.append(time.time() - t)
                marks.append(('checked', time.time()))
                if i <= 2:
                    note(f'hot-plug {i}: {work}; ' + ', '.join(
                        f'{m} +{w - t:.1f} s' for m, w in marks))
            log = d.errors()
            connects = trace(log, 'iommufd_backend_connect')
            check(len(connects) == self.args.hotplug and
                  all(' owned=0 ' in c for c in connects),
                  f'one iommufd connect per attach, each on a passed fd '
                  f'(owned=0): {connects}')
            check(not trace(log, 'vfio_iommufd_open_cdev'),
                  'QEMU opened no cdev (no vfio_iommufd_open_cdev in its trace)')
            return (f'{self.args.hotplug} x attach-device (guest DMA and 10 '
                    f'MSIs each), detach-device: iommufd object and both fds '
                    f'gone, {a} back on edu_guest, VmPin 0 after each; '
                    f'{len(connects)} connects, all on passed fds; '
                    f'{sum(times) / len(times):.1f} s per cycle')
        return self.with_domain(d, body, clean=[a])

    def case_mixed(self):
        """A legacy (iommufd='no') and an iommufd hostdev in one domain."""
        a, b = self.edus[:2]
        d = self.domain('l2-mixed', hostdev_xml(a, 'yes') + hostdev_xml(b, 'no'))

        def body(d):
            obj, dev = self.passed_fds(d, a)
            devs = d.json_args('-device', 'driver', 'vfio-pci')
            legacy = [v for v in devs if 'iommufd' not in v]
            check(len(legacy) == 1 and legacy[0].get('host') == b,
                  f'a legacy vfio-pci with host={b}: {devs}')
            held = set(proc_fds(d.pid).values())
            want = {'/dev/iommu', cdev_of(a), '/dev/vfio/vfio', group_of(b)}
            check(want <= held, f'QEMU holds {sorted(want)}: {sorted(held)}')
            return (f'{a} via iommufd (fd {dev["fd"]}), {b} via the legacy '
                    f'container and {group_of(b)}; guest: {guest_work(d, 2)}')
        return self.with_domain(d, body, clean=[a, b])

    def failing_start(self, name, devices, bdfs, want, top='',
                      drv='edu_guest'):
        d = self.domain(name, devices, top=top)
        failed = True
        try:
            err = d.try_start()
            clean = self.assert_clean(bdfs, 'after the failed start', drv)
            check(all(w in err for w in want), f'error naming {want}: {err}')
            failed = False
        finally:
            d.quit()
            d.keep(failed)
        return f'"{err}"; {clean}'

    def case_fail_no_iommu(self):
        """A host without /dev/iommu (the node hidden), for a device the
        user bound to vfio-pci.  (managed='yes' hangs libvirt 12.9: it
        returns the device to its driver while holding the device's cdev,
        so vfio-pci's unbind waits forever; see the README.)"""
        b = self.edus[1]
        bind(b, 'vfio-pci')
        check(driver(b) == 'vfio-pci', f'{b} on vfio-pci')
        os.rename('/dev/iommu', '/dev/iommu.hidden')
        try:
            r = self.virsh('domcapabilities', '--emulatorbin', self.args.qemu,
                           '--machine', 'q35', '--virttype', 'kvm')
            enum = ET.fromstring(r.stdout).find(
                "devices/hostdev/enum[@name='iommufd']")
            values = [v.text for v in enum.findall('value')] \
                if enum is not None else None
            check(values == ['no'], f'domcapabilities without /dev/iommu: '
                  f'iommufd {values}')
            # libvirt 12.9 goes on without the fd it failed to open: what
            # virsh says is the next failure; its log has the first.
            out = self.failing_start(
                'l2-no-iommu', hostdev_xml(b, 'yes', managed=False), [b],
                ['failed to set memory accounting for iommufd'],
                drv='vfio-pci')
        finally:
            os.rename('/dev/iommu.hidden', '/dev/iommu')
        with open(self.rpath('/var/log/libvirt/libvirtd.log')) as f:
            first = [line.split(' : ')[-1].strip() for line in f
                     if 'cannot open IOMMUFD device' in line]
        check(first == ['cannot open IOMMUFD device: No such file or directory'],
              f'libvirtd.log names the open that failed: {first}')
        return (f'domcapabilities: iommufd {values}; virsh start: {out}; '
                f'libvirtd.log: "{first[0]}"')

    def case_fail_unmanaged(self):
        """managed='no' with the device on another driver (edu_guest)."""
        b = self.edus[1]
        return self.failing_start(
            'l2-unmanaged', hostdev_xml(b, 'yes', managed=False), [b],
            [f'cannot find VFIO device for PCI device {b}'])

    def case_fail_memlock(self):
        """A memlock limit below guest RAM (<memtune><hard_limit>)."""
        a = self.edus[0]
        return self.failing_start(
            'l2-memlock', hostdev_xml(a, 'yes'), [a], ['RLIMIT_MEMLOCK'],
            top="  <memtune>\n    <hard_limit unit='MiB'>128</hard_limit>\n"
                "  </memtune>\n")

    def all(self):
        self.setup()
        # The cases with managed='no' come last: once a device was used
        # unmanaged, libvirt 12.9 does not return it to its driver after a
        # later managed domain (README).
        for name in ('domcaps', 'managed', 'domain-iommufd', 'fdgroup',
                     'hotplug', 'mixed', 'stock-hotplug', 'fail-no-iommu',
                     'fail-unmanaged', 'fail-memlock'):
            self.run(name, getattr(self, 'case_' + name.replace('-', '_')))
        if 'cmdline' in self.facts:
            note(f'QEMU command line libvirt generated: {self.facts["cmdline"]}')
        note(f'cases run again after their guest hung or reset itself: '
             f'{", ".join(self.reruns) or "none"}')
        print(f'libvirt: {self.n - self.failed} passed, {self.failed} failed',
              flush=True)
        return 1 if self.failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--root', required=True, help='the trixie root')
    ap.add_argument('--qemu', required=True,
                    help='our QEMU, as a path inside the root')
    ap.add_argument('--stock', default='/usr/local/bin/qemu-system-x86_64-debian12',
                    help="Debian 12's QEMU 7.2, as a path inside the root")
    ap.add_argument('--deb', help='install this qemu-iommufd package in the '
                    'root first (then --qemu /usr/bin/qemu-iommufd-system-x86_64)')
    ap.add_argument('--kernel', required=True)
    ap.add_argument('--initrd', required=True)
    ap.add_argument('--edu-ko', required=True,
                    help="edu_guest.ko for L1 (the edus' host driver)")
    ap.add_argument('--logdir', help='where logs of failed cases go')
    ap.add_argument('--case', action='append', help='run only this case')
    ap.add_argument('--hotplug', type=int, default=10,
                    help='attach/detach cycles')
    ap.add_argument('--verbose', action='store_true',
                    help='the guest kernel logs to its console')
    args = ap.parse_args()
    args.root = os.path.abspath(args.root)
    global ROOT, VERBOSE        # pylint: disable=global-statement
    ROOT, VERBOSE = args.root, args.verbose
    sys.exit(Tier(args).all())


if __name__ == '__main__':
    main()
