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

Prints pylib.tap's TAP ("ok N - case: detail" / "not ok N - case:
reason", notes as "# ...", the plan last) and closes with "libvirt: N
passed, M failed".  PYTHONPATH: tests/ and the assembled tree's python/
(check.sh passes it into L1).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import cases_confined
import cases_migration
import confined
from domain import IMAGES, QEMU_LOGS, SOCKDIR, Domain, guest_work
from pylib import procfs
from pylib.check import Fail, check
from pylib.inguest import guest_edus, insmod
from pylib.iommufd import IOMMU_OPTION_OP_GET, IOMMU_OPTION_OP_SET, \
    ioas_alloc, rlimit_mode
from pylib.procfs import bind, cdev_of, driver, group_of, memlock_limit, \
    pinners, write
from pylib.tap import Tap, failure, note
from pylib.tracelog import find as trace
from pylib.wait import until

MIB = 1 << 20
GUEST_MIB = 256
QEMU_UID = 64055                # libvirt-qemu in Debian
ROOT = None                     # the trixie root, set by main()
VERBOSE = False                 # the guest kernel logs to its console
# The failures a case reports by their message (anything else is a bug of
# the test: pylib.tap.failure).
EXPECTED = (Fail, OSError, subprocess.SubprocessError, ValueError, KeyError)
STOCK_MSG = "Parameter 'qom-type' does not accept value 'iommufd'"
TRACE = ['iommufd_backend_connect', 'iommufd_backend_alloc_ioas',
         'vfio_iommufd_*', 'vfio_dma_map_chunks*']


# --- the host (L1) ----------------------------------------------------------

proc_status = procfs.status


def proc_fds(pid):
    """fd -> path; paths of processes in the root read as the root sees them."""
    return procfs.fds(pid, ROOT)


def holders():
    """Every process holding one of the VFIO/iommufd nodes: [(pid, comm, node)]."""
    return procfs.holders(root=ROOT)


def qemu_user_procs():
    return [pid for pid in procfs.pids()
            if proc_status(pid).get('Uid', [''])[0] == str(QEMU_UID)]


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


# --- the tier ---------------------------------------------------------------

class Tier:
    def __init__(self, args):
        self.args = args
        self.tap = Tap('libvirt')
        self.edus = sorted(os.environ.get('L1_EDU_BDFS', '').split())
        self.facts = {}

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
        self.tap.report(name, ok, detail, hang)

    def failures(self):
        return self.tap.failures()

    def run(self, name, fn):
        """Run a case.  As in the guest tier: an L2 guest on nested KVM on
        TCG has been seen to stop, or to reset itself, at random (more
        often under load); a case whose guest did runs once more with a
        fresh guest, and a second time counts."""
        if self.args.case and name not in self.args.case:
            return

        def once():
            start = time.monotonic()
            try:
                detail = fn()
                self.report(name, True,
                            f'{detail} ({time.monotonic() - start:.0f} s)')
            except Exception as e:      # pylint: disable=broad-except
                self.report(name, False, *failure(e, EXPECTED))
            finally:
                self.reset_devices()
        self.tap.rerun_on_hang(name, once, 2)

    def sub(self, name, fn):
        """A result inside a case (the case's domain is still up)."""
        try:
            self.report(name, True, fn())
        except Exception as e:          # pylint: disable=broad-except
            self.report(name, False, *failure(e, EXPECTED))

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
        left = {}

        def clean():
            left.update({'drivers': {b: driver(b) for b in bdfs
                                     if driver(b) != drv},
                         'holders': holders(), 'pinned': pinners(),
                         'qemu': qemu_user_procs()})
            return not any(left.values())
        until(clean, 60, lambda: f'{what}: left behind: {left}', 0.5)
        return (f'{", ".join(bdfs)} on {drv}; no process holds '
                f'/dev/iommu or a VFIO node; nothing pinned; no QEMU')

    def domain(self, name, devices='', **kw):
        emulator = kw.pop('emulator', self.args.qemu)
        if emulator == self.args.stock:
            # The stock binary runs through a wrapper from L1's own root,
            # which no AppArmor profile of the trixie root can describe.
            kw['top'] = kw.get('top', '') + confined.UNCONFINED
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
            # Built on Debian 12: its Depends name bookworm's packages,
            # some of which trixie renamed; build-root.sh installed what
            # they hold.  Every library of the binary and its modules must
            # resolve.
            r = subprocess.run(['chroot', self.args.root, 'dpkg', '-i',
                                '--force-depends', deb],
                               capture_output=True, text=True, check=False)
            check(r.returncode == 0, f'dpkg -i {deb}: {r.stdout} {r.stderr}')
            note(f'installed {os.path.basename(self.args.deb)} in the root')
            missing = confined.unresolved(self.args.root, 'qemu-iommufd')
            check(not missing, f'libraries of the package not found in the '
                  f'root: {missing}')
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
        rlimit_mode(fd, IOMMU_OPTION_OP_SET, 1)
        # An object of our own on it (id 1): QEMU's device then gets id 2
        # and its IOAS id 3, where a fresh /dev/iommu gives 1 and 2.
        ours = ioas_alloc(fd)
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
            mode = rlimit_mode(fd, IOMMU_OPTION_OP_GET)
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
            until(lambda: len(guest_edus(d)) == want, 60,
                  f'guest sees {want} edu: {what}', 0.5)

        def body(d):
            insmod(d)
            base = d.status()
            check(not d.iommufd_objects(), 'no iommufd object before the '
                  'first attach')
            for i in range(1, self.args.hotplug + 1):
                t = time.monotonic()
                marks = []
                self.virsh('attach-device', d.name, '/tmp/hostdev-a.xml',
                           '--live')
                marks.append(('attach', time.monotonic()))
                wait_guest(1, f'after attach {i}')
                marks.append(('seen', time.monotonic()))
                # The hot-plugged edu binds to the loaded edu_guest, as a
                # user's driver does.  (Reloading the module right after
                # the first attach has hung the guest's shell: README.)
                work = guest_work(d, irqs=10, load=False)
                marks.append(('work', time.monotonic()))
                objs = d.iommufd_objects()
                check(len(objs) == 1, f'attach {i}: one iommufd object: {objs}')
                held = set(proc_fds(d.pid).values())
                check({'/dev/iommu', cdev_of(a)} <= held,
                      f'attach {i}: QEMU holds /dev/iommu and the cdev')
                self.virsh('detach-device', d.name, '/tmp/hostdev-a.xml',
                           '--live')
                marks.append(('detach', time.monotonic()))
                until(lambda: '<hostdev' not in
                      self.virsh('dumpxml', d.name).stdout, 60,
                      f'detach {i} completes', 0.5)
                marks.append(('gone', time.monotonic()))
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
                times.append(time.monotonic() - t)
                marks.append(('checked', time.monotonic()))
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
        for name, fn in cases_migration.CASES.items():
            self.run(name, lambda fn=fn: fn(self, sys.modules[__name__]))
        # The cases with managed='no' come last: once a device was used
        # unmanaged, libvirt 12.9 does not return it to its driver after a
        # later managed domain (README).
        for name in ('domcaps', 'managed', 'domain-iommufd', 'fdgroup',
                     'hotplug', 'mixed', 'sandbox', 'sandbox-map-threads',
                     'apparmor', 'full-domain', 'stock-hotplug',
                     'fail-no-iommu', 'fail-unmanaged', 'fail-memlock'):
            fn = cases_confined.CASES.get(name)
            self.run(name, (lambda fn=fn: fn(self, sys.modules[__name__]))
                     if fn else
                     getattr(self, 'case_' + name.replace('-', '_')))
        if 'cmdline' in self.facts:
            note(f'QEMU command line libvirt generated: {self.facts["cmdline"]}')
        note(f'cases run again after their guest hung or reset itself: '
             f'{", ".join(self.tap.reruns) or "none"}')
        return self.tap.close()


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
