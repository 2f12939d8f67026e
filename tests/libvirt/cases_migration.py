"""The libvirt tier's migration cases: virsh save and virsh restore of a
domain with an mtty on the iommufd path, and a domain with an edu that
libvirt refuses to save, naming our migration blocker.

libvirt asks QEMU's query-migrate for blocked-reasons before it saves or
migrates a domain with a PCI hostdev.  libvirt 12.9 itself refuses any
domain with an mdev hostdev ("cannot migrate a domain with <hostdev
mode='subsystem' type='mdev'>") and assigns mdevs only through the legacy
container, so the mtty goes on QEMU's command line
(<qemu:commandline>), on iommufd, with QEMU running as root (a static DAC
label) and without a domain AppArmor profile, to open /dev/iommu and the
cdev itself.  Each case is a function
of the tier (libvirt_tier.Tier) and of libvirt_tier itself (its XML
writers); CASES names them."""

import os

from domain import Domain, guest_work
from pylib import mtty
from pylib.check import check
from pylib.tracelog import find as trace
from pylib.wait import until

SAVE = '/var/lib/libvirt/qemu/save'
# QEMU opens the mtty's cdev and /dev/iommu itself, as root; and without
# a domain AppArmor profile, since virt-aa-helper knows nothing of a
# device on <qemu:commandline> (the profile denies the mdev's vfio-dev/
# directory in sysfs).  libvirt's seccomp sandbox stays.
AS_ROOT = ("  <seclabel type='static' model='dac' relabel='no'>\n"
           "    <label>+0:+0</label>\n"
           "  </seclabel>\n"
           "  <seclabel type='none' model='apparmor'/>\n")
TRACE = ('vfio_migration_set_state', 'vfio_migration_realize',
         'vfio_listener_log_global_start')


def mtty_args(sysfs):
    """QEMU arguments (qemu:commandline) for an mtty on iommufd."""
    args = ['-object', 'iommufd,id=iommufd0',
            '-device', f'vfio-pci,sysfsdev={sysfs},iommufd=iommufd0,'
            f'id=mtty0']
    for ev in TRACE:
        args += ['-trace', f'enable={ev}']
    return ''.join(f"    <qemu:arg value='{a}'/>\n" for a in args)


def states(log):
    """The device's migration states in QEMU's log (its trace)."""
    return [line.split(') ', 1)[1].split(' data_fd')[0]
            for line in trace(log, 'vfio_migration_set_state')
            if line.endswith(' err 0')]


def case_save_restore(t, lt):
    """virsh save of a running domain with an mtty on iommufd, and virsh
    restore: port 0's FIFO bytes and registers (set by the guest) come
    back, both ports loop bytes."""
    check(mtty.available(), f'no {mtty.MTTY_TYPES} in L1')
    sysfs = mtty.create()
    try:
        return save_restore(t, lt, sysfs)
    finally:
        mtty.remove(sysfs)


def save_restore(t, lt, sysfs):
    name = 'l2-mig-save'
    xml = lt.domain_xml(name, t.args.qemu, top=AS_ROOT).replace(
        '</domain>', f'  <qemu:commandline>\n{mtty_args(sysfs)}'
        f'  </qemu:commandline>\n</domain>')
    d = Domain(t, name, xml)
    image = f'{SAVE}/{name}.save'

    def body(d):
        bdf, ttys = mtty.ports(d)
        check(len(ttys) == 2, f'two ports: {ttys}')
        mtty.uart_setup(d, bdf)
        mtty.check_regs(d, bdf, 'before virsh save')
        mtty.round_trip(d, ttys[1], 'before')
        before = d.status()
        t.virsh('save', name, image)
        saved_states = states(d.errors())
        until(lambda: not d.alive(), 60, 'QEMU exits after virsh save')
        dom = t.virsh('domstate', name).stdout.strip()
        check(dom == 'shut off', f'after virsh save the domain is {dom}')
        size = os.path.getsize(t.rpath(image))
        d.line.close()
        d.listen()
        d.log_from = d.log_size()
        t.virsh('restore', image)
        d.pid = t.qemu_pid(name)
        d.line.accept(60, lambda: d.errors()[-500:])
        lcr, div = mtty.check_regs(d, bdf, 'after virsh restore')
        fifo = mtty.check_fifo(d, bdf, 'after virsh restore')
        for i, tty in enumerate(ttys):
            mtty.round_trip(d, tty, f'restored{i}')
        restored = states(d.errors())
        check('STOP_COPY -> STOP' in saved_states and
              'RESUMING -> STOP' in restored,
              f'the device state went through the save image: saved '
              f'{saved_states}, restored {restored}')
        after = d.status()
        return (f'virsh save: {size >> 20} MiB image, the domain shut '
                f'off; virsh restore: '
                f'{fifo} FIFO bytes, LCR 0x{lcr:02x}, divisor 0x{div:04x} '
                f'intact, both ports loop; device states saved '
                f'{saved_states}, restored {restored}; QEMU fds '
                f'{before["fds"]} -> {after["fds"]}, VmPin '
                f'{before.get("VmPin")} -> {after.get("VmPin")} kB')
    try:
        return t.with_domain(d, body)
    finally:
        if os.path.exists(t.rpath(image)):
            os.unlink(t.rpath(image))


def case_save_blocked(t, lt):
    """virsh save of a domain with an edu (managed, iommufd): libvirt
    refuses with "cannot migrate domain" and our blocker's message; the
    guest runs on and its device works."""
    a = t.edus[0]
    d = t.domain('l2-mig-blocked', lt.hostdev_xml(a, 'yes'))
    image = f'{SAVE}/l2-mig-blocked.save'

    def body(d):
        r = t.virsh('save', d.name, image, ok=False)
        err = ' '.join(r.stderr.split())
        check(r.returncode != 0, f'virsh save refused: {r.stdout}')
        want = 'the device does not support migration'
        check('cannot migrate domain' in err and want in err,
              f'"cannot migrate domain" with our blocker ("{want}"): {err}')
        check(not os.path.exists(t.rpath(image)), 'no save image left')
        reasons = d.qmp('query-migrate').get('blocked-reasons', [])
        check(any(want in r for r in reasons),
              f'query-migrate blocked-reasons: {reasons}')
        return f'"{err}"; the guest runs on: {guest_work(d)}'
    return t.with_domain(d, body, clean=[a])


CASES = {'save-restore': case_save_restore,
         'save-blocked': case_save_blocked}
