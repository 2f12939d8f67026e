"""Mediated devices: the kernel's mtty sample."""

import os
import re
import subprocess
import time

from pylib import mtty, procfs
from pylib.check import Fail, check
from pylib.devices import edu_arg, mdev_arg, path_objects
from pylib.inguest import guest_dma, guest_edus, insmod
from pylib.l2 import Guest
from pylib.wait import until


class MdevCases:
    """The mdev case groups of the guest tier's Tier."""

    # Issue 12: mediated devices, the kernel's mtty sample
    def case_mdev(self, path):
        if not mtty.available():
            self.res.report(f'mdev/{path}', False,
                            f'no {mtty.MTTY_TYPES} in L1')
            return
        mdev = mtty.create()
        try:
            mdev = self.mdev_cases(path, mdev)
        finally:
            mtty.remove(mdev)

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
            mdev = mtty.create()
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
        return mtty.ports(g)

    def mdev_serial(self, g, path):
        bdf, ttys = self.mtty_ports(g)
        check(len(ttys) == 2, f'two serial ports from 8250_pci: {ttys}')
        irq0 = g.sh(f'cat /sys/bus/pci/devices/{bdf}/irq').strip()
        before = self.irq_count(g, irq0)
        for i, t in enumerate(ttys):
            mtty.round_trip(g, t, f'{path[:3]}-port{i}')
        after = self.irq_count(g, irq0)
        check(after > before, f'the ports took interrupts: {before} -> '
              f'{after}')
        fig = (f'{bdf}: {", ".join(ttys)}; 2 x 9 bytes looped back, '
               f'{after - before} interrupts')
        self.figure('mdev-serial', path, fig)
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
        mtty.round_trip(g, ttys[0], f'{path[:3]}-mixed')
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
                    node = procfs.cdev_of(mdev)
                    check(node, f'{mdev}/vfio-dev: one vfioN')
                    cdev = os.open(node, os.O_RDWR)
                    try:
                        g.qmp_getfd(f'mtty{i}', cdev)
                    finally:
                        os.close(cdev)
                    args['fd'] = f'mtty{i}'
                    passed += 1
            g.qmp('device_add', **args)

            def ports():
                try:
                    found = self.mtty_ports(g)
                except Fail:
                    return None
                return found if len(found[1]) == 2 else None
            bdf, ttys = until(ports, 30, 'the guest did not find the '
                              'plugged mtty', 0.3)
            if i % 5 == 4 or i == n - 1:
                mtty.round_trip(g, ttys[0], f'cycle{i}')
        g.qmp('device_del', id='mtty0')
        g.wait_event('DEVICE_DELETED', device='mtty0')
        last = g.status()
        check(first['fds'] == last['fds'], f'fds flat: {first} -> {last}')
        fig = (f'{n} unplug/plug cycles ({passed} with the cdev passed as '
               f'an fd), serial checked every 5th; fds {first["fds"]} -> '
               f'{last["fds"]}')
        self.figure('mdev-hotplug', path, fig)
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
