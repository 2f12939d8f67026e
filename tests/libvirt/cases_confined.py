"""The libvirt tier's cases of confinement and of a full domain: QEMU
under libvirt's seccomp sandbox and AppArmor profile, as Debian runs it,
and a domain with a Debian guest's devices.  Each case is a function of
the tier (libvirt_tier.Tier) and of libvirt_tier itself (its XML
writers); confined.py holds what they read and write."""

import os
import subprocess

import confined
from domain import IMAGES, Domain, guest_work
from pylib.check import check
from pylib.inguest import guest_edus, insmod
from pylib.procfs import bind, cdev_of, driver, pci, write
from pylib.tap import note
from pylib.tracelog import find as trace
from pylib.wait import until


def confinement(t, d):
    """libvirt's -sandbox on QEMU's command line and its filter in
    force; QEMU's AppArmor label."""
    argv = d.cmdline()
    opts = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == '-sandbox']
    check(opts == [confined.SANDBOX], f'libvirt passed -sandbox '
          f'{confined.SANDBOX}: {opts}')
    mode, filters = confined.seccomp(d.pid)
    check(mode == '2', f'QEMU runs under a seccomp filter (Seccomp: 2): '
          f'Seccomp: {mode}')
    return (f'-sandbox {opts[0]}, /proc/{d.pid}/status Seccomp: {mode} '
            f'({filters} filters), AppArmor: '
            f'{confined.apparmor_label(d.pid)}')


def free_port(t, d):
    """The index of a pcie-root-port of the running @d with no device."""
    port = confined.free_root_port(t.virsh('dumpxml', d.name).stdout)
    check(port is not None, f'{d.name} has a free pcie-root-port')
    return port


def wait_hostdevs(t, d, want, what):
    until(lambda: t.virsh('dumpxml', d.name).stdout.count('<hostdev ') ==
          want, 60, f'{want} hostdev(s) in the domain: {what}')
    until(lambda: len(guest_edus(d)) == want, 60,
          f'the guest sees {want} edu(s): {what}')


def plug_unplug(t, h, d, bdf, dev):
    """attach-device and detach-device of @bdf (its XML written to
    @dev, in a free root port) into the running @d, which has one
    hostdev: the guest's DMA and MSIs on both devices while it is in."""
    write(t.rpath(dev), h.hostdev_xml(bdf, 'yes',
                                       guest_bus=free_port(t, d)))
    t.virsh('attach-device', d.name, dev, '--live')
    wait_hostdevs(t, d, 2, f'after attaching {bdf}')
    work = guest_work(d, 2, irqs=10, load=False)
    t.virsh('detach-device', d.name, dev, '--live')
    wait_hostdevs(t, d, 1, f'after detaching {bdf}')
    return work


def sandbox(t, h):
    """QEMU under libvirt's seccomp sandbox (qemu.conf at Debian's
    defaults): start, DMA, interrupts, hot-plug and unplug."""
    a, b = t.edus[:2]
    d = t.domain('l2-sandbox', h.hostdev_xml(a, 'yes'), ports=2)
    dev = '/tmp/hostdev-sandbox.xml'

    def body(d):
        conf = confinement(t, d)
        note(f'sandbox: {conf}')
        work = guest_work(d)
        plugged = plug_unplug(t, h, d, b, dev)
        mode, _ = confined.seccomp(d.pid)
        check(mode == '2', f'Seccomp: 2 after the hot-plug: {mode}')
        return (f'{conf}; guest: {work}; attach-device {b}: {plugged}; '
                f'detach-device; Seccomp still {mode}')
    return t.with_domain(d, body, clean=[a, b])


def sandbox_map_threads(t, h):
    """map-threads under the sandbox: hot-plug over QMP (getfd of the
    tier's own /dev/iommu and cdev fds, object-add with map-threads 2,
    device_add), guest RAM mapped by two threads, DMA on it.  libvirt
    cannot set map-threads, and fds of the tier's choosing are not the
    domain's: this domain has no AppArmor profile (seccomp only)."""
    a, b = t.edus[:2]
    d = t.domain('l2-sandbox-mt', h.hostdev_xml(a, 'yes'), ports=2,
                    trace=True, top=confined.UNCONFINED)
    fds = []

    def qmp(cmd, pass_fds=(), **args):
        ret, err = confined.qmp_passing(t, d.name, pass_fds, cmd, **args)
        check(err is None, f'{cmd}: {err}')
        return ret

    def body(d):
        mode, _ = confined.seccomp(d.pid)
        check(mode == '2', f'Seccomp: 2: {mode}')
        insmod(d)
        bind(b, 'vfio-pci')
        check(driver(b) == 'vfio-pci', f'{b} on vfio-pci')
        fds.extend([os.open('/dev/iommu', os.O_RDWR),
                    os.open(cdev_of(b), os.O_RDWR)])
        qmp('getfd', (fds[0],), fdname='mt-iommu')
        qmp('getfd', (fds[1],), fdname='mt-dev')
        qmp('object-add', **{'qom-type': 'iommufd', 'id': 'iommufd-mt',
                             'fd': 'mt-iommu', 'map-threads': 2})
        qmp('device_add', driver='vfio-pci', id='mt0',
            bus=f'pci.{free_port(t, d)}', addr='0x0',
            iommufd='iommufd-mt', fd='mt-dev')
        log = d.errors()
        chunks = trace(log, 'vfio_dma_map_chunks')
        done = trace(log, 'vfio_dma_map_chunks_done')
        check(chunks and all(' threads=2' in c for c in chunks) and
              len(done) == len(chunks) and
              all(c.endswith(' ret=0') for c in done),
              f'guest RAM mapped in chunks by 2 threads: {chunks} {done}')
        check(t.virsh('dumpxml', d.name).stdout.count('<hostdev ') == 1,
              'libvirt knows only its own hostdev after the QMP hot-plug')
        until(lambda: len(guest_edus(d)) == 2, 60, 'the guest sees both edus')
        work = guest_work(d, 2, irqs=10, load=False)
        qmp('device_del', id='mt0')
        until(lambda: not any(o['name'] == 'mt0' for o in
                              d.qmp('qom-list', path='/machine/peripheral')),
              60, 'mt0 is deleted')
        qmp('object-del', id='iommufd-mt')
        while fds:
            os.close(fds.pop())
        mode, _ = confined.seccomp(d.pid)
        check(mode == '2' and d.alive(), f'QEMU alive, Seccomp: {mode}')
        return (f'Seccomp: {mode}; QMP hot-plug of {b} on iommufd-mt '
                f'(map-threads 2): {chunks[0].split(" ", 1)[1]}, ret=0; '
                f'guest: {work}; device_del, object-del')
    try:
        return t.with_domain(d, body, clean=[a])
    finally:
        for fd in fds:
            os.close(fd)


def apparmor(t, h):
    """libvirt's AppArmor driver as on Debian: virt-aa-helper writes
    the domain's profile, QEMU runs confined by it; DMA, hot-plug and
    unplug work; what is not the domain's is denied, though file
    permissions would allow it."""
    check(os.path.isdir(confined.APPARMOR), "L1's kernel has AppArmor")
    a, b = t.edus[:2]
    d = t.domain('l2-apparmor', h.hostdev_xml(a, 'yes'), ports=2)
    dev = '/tmp/hostdev-apparmor.xml'
    other = f'{IMAGES}/not-this-domain.img'
    write(t.rpath(other), 'not this domain\n' * 256)
    os.chmod(t.rpath(other), 0o644)
    seen = {}

    def files(uuid):
        with open(t.rpath(f'/etc/apparmor.d/libvirt/libvirt-{uuid}'
                             f'.files')) as f:
            return f.read()

    def body(d):
        uuid = t.virsh('domuuid', d.name).stdout.strip()
        profile = f'libvirt-{uuid}'
        label = confined.apparmor_label(d.pid)
        check(label == f'{profile} (enforce)', f'QEMU confined by '
              f'{profile}: /proc/{d.pid}/attr/current "{label}"')
        note(f'apparmor: /proc/{d.pid}/attr/current: {label}')
        own = os.path.realpath(pci(a, 'config'))
        check(own in files(uuid), f'{profile}.files names {own}: '
              f'{files(uuid)}')
        note(f'apparmor: {profile}.files: '
             f'{" ".join(files(uuid).split())}')
        work = guest_work(d)
        plugged = plug_unplug(t, h, d, b, dev)
        check(label == confined.apparmor_label(d.pid), 'label kept')
        log = confined.kernel_log()
        # The domain's own kernel image: allowed.  A world-readable
        # image of no domain: denied.
        node_opts = {'driver': 'file', 'read-only': True}
        _, err = confined.qmp_passing(
            t, d.name, (), 'blockdev-add', filename=f'{IMAGES}/bzImage',
            **{'node-name': 'aa-own'}, **node_opts)
        check(err is None, f'QEMU opens its own kernel image: {err}')
        d.qmp('blockdev-del', **{'node-name': 'aa-own'})
        _, err = confined.qmp_passing(
            t, d.name, (), 'blockdev-add', filename=other,
            **{'node-name': 'aa-other'}, **node_opts)
        check(err and 'Permission denied' in err,
              f'{other} (mode 0644) refused: {err}')
        # The PCI config space of its own device: allowed; of the
        # other edu (mode 0644 too): denied.
        for bdf, node in ((a, 'aa-dev'), (b, 'aa-other-dev')):
            _, err2 = confined.qmp_passing(
                t, d.name, (), 'blockdev-add',
                filename=pci(bdf, 'config'), **{'node-name': node},
                **node_opts)
            seen[bdf] = err2
        check(seen[a] is None or 'Permission denied' not in seen[a],
              f'QEMU opens {a}\'s config: {seen[a]}')
        gerr = seen[b]
        check(gerr and 'Permission denied' in gerr,
              f'{b}\'s config (mode 0644) refused: {gerr}')
        denied = confined.denials(log, profile)
        names = {n for _, n in denied}
        # What QEMU reads to check the fds libvirt passed, at start-up
        # and hot-plug: allowed by the package's lines in
        # abstractions/libvirt-qemu.d.
        since = {n for _, n in confined.denials(boot, profile)}
        check(not since & {'/proc/devices',
                           '/sys/devices/virtual/misc/iommu/dev'},
              f'QEMU reads /proc/devices and /dev/iommu\'s number: '
              f'denied {since}')
        check(other in names and
              any(n.endswith(f'{b}/config') for n in names),
              f'AppArmor logged the denials of {other} and {b}\'s '
              f'config: {denied}')
        check(d.alive() and guest_work(d, irqs=10, load=False),
              'the guest runs on')
        return (f'{label}; {profile}.files names {own}; guest: '
                f'{work}; attach-device {b}: {plugged}; detach-device; '
                f'its own kernel image and device config open; denied '
                f'(mode 0644, so by the profile alone): "{err}", '
                f'"{gerr}"; kernel: {sorted(set(denied))}')
    boot = confined.kernel_log()
    return t.with_domain(d, body, clean=[a])


def full_domain(t, h):
    """A Debian guest's domain as a management tool writes it, plus the
    iommufd hostdev: it starts confined, the guest boots, sees every
    device, writes its disk and does DMA; the display answers."""
    a = t.edus[0]
    disk = f'{IMAGES}/full.qcow2'
    r = subprocess.run(['chroot', t.args.root, 'qemu-img', 'create',
                        '-q', '-f', 'qcow2', disk, '64M'],
                       capture_output=True, text=True, check=False)
    check(r.returncode == 0, f'qemu-img create: {r.stderr}')
    name = 'l2-full'
    d = Domain(t, name, confined.full_domain(
        h.domain_xml(name, t.args.qemu, h.hostdev_xml(a, 'yes')), disk))
    said = {}

    def body(d):
        conf = confinement(t, d)
        types = sorted({o['type'][6:-1] for o in
                        d.qmp('qom-list', path='/machine/peripheral')
                        if o['type'].startswith('child<')})
        want = {'virtio-blk-pci', 'virtio-net-pci', 'virtserialport',
                'usb-redir', 'qemu-xhci', 'tpm-crb', 'virtio-rng-pci',
                'virtio-balloon-pci', 'vfio-pci'}
        check(want <= set(types), f'QEMU has {sorted(want)}: {types}')
        tpm = d.qmp('query-tpm')
        check(tpm and tpm[0]['options']['type'] == 'emulator',
              f'TPM on swtpm: {tpm}')
        check(d.qmp('query-spice')['enabled'], 'SPICE enabled')
        vnc = confined.vnc_socket(t.virsh('dumpxml', name).stdout)
        check(vnc, 'a VNC socket in the live XML')
        banner = confined.vnc_banner(t.rpath(vnc))
        check(banner.startswith('RFB 003.'), f'VNC on {vnc} answers '
              f'"RFB 003.x": "{banner}"')
        seen = d.sh(
            'cat /sys/block/vda/size; cat /sys/class/net/*/address; '
            'cat /sys/class/virtio-ports/*/name; '
            'cat /sys/class/tpm/tpm0/tpm_version_major; '
            'cat /sys/class/misc/hw_random/rng_available; '
            'ls /sys/bus/virtio/drivers/virtio_balloon').split()
        for w in ('131072', confined.MAC, 'org.qemu.guest_agent.0',
                  'com.redhat.spice.0', '2'):
            check(w in seen, f'the guest sees {w}: {seen}')
        check(any(s.startswith('virtio_rng') for s in seen) and
              any(s.startswith('virtio') and s[6:].isdigit()
                  for s in seen), f'virtio-rng and the balloon in the '
              f'guest: {seen}')
        said['md5'] = d.sh(
            'dd if=/dev/urandom of=/tmp/a bs=4096 count=64 2>/dev/null; '
            'dd if=/tmp/a of=/dev/vda bs=4096 count=64 conv=fsync '
            '2>/dev/null; echo 3 > /proc/sys/vm/drop_caches; '
            'dd if=/dev/vda of=/tmp/b bs=4096 count=64 2>/dev/null; '
            'cmp /tmp/a /tmp/b && md5sum /tmp/a').split()[0]
        work = guest_work(d)
        return (f'{conf}; QEMU devices: {", ".join(types)}; swtpm TPM '
                f'2.0, SPICE on, VNC {vnc} says "{banner}"; the guest '
                f'sees vda (64 MiB), {confined.MAC}, the agent and '
                f'SPICE ports, TPM 2, virtio-rng, the balloon, wrote '
                f'and read back 256 KiB of vda; guest: {work}')
    out = t.with_domain(d, body, clean=[a])
    raw = '/tmp/full.raw'
    r = subprocess.run(['chroot', t.args.root, 'qemu-img', 'convert',
                        '-O', 'raw', disk, raw], capture_output=True,
                       text=True, check=False)
    check(r.returncode == 0, f'qemu-img convert: {r.stderr}')
    got = confined.md5_of(t.rpath(raw), 256 * 1024)
    os.unlink(t.rpath(raw))
    check(got == said['md5'], f'the guest\'s bytes are in {disk}: md5 '
          f'{got}, guest wrote {said["md5"]}')
    return f'{out}; {disk} holds the guest\'s bytes (md5 {got})'


CASES = {
    'sandbox': sandbox,
    'sandbox-map-threads': sandbox_map_threads,
    'apparmor': apparmor,
    'full-domain': full_domain,
}
