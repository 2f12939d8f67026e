"""make demo: one L2 guest on the iommufd path, with a report."""

import os
import re
import time

from pylib.check import Fail, check
from pylib.devices import edu_arg, path_objects
from pylib.inguest import edu_attr, edu_stats, guest_dma, guest_edus, insmod
from pylib.l2 import Guest
from pylib.vm import ExecuteError


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
    t0 = time.monotonic()
    ok = False
    try:
        g.start()
        up = time.monotonic() - t0
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
        st = edu_stats(g, bdf)
        check(irq.get('result') == 'ok' and st['raised'] == st['delivered'],
              f'interrupts: {st}')
        print(f'  interrupts ({st["mode"]}): {st["raised"]} raised by the '
              f'device, {st["delivered"]} delivered to the guest')
        s = g.status()
        print(f'  QEMU: {s["fds"]} fds, {s["VmPin"] // 1024} MiB pinned '
              f'(VmPin: guest RAM, charged by iommufd)')
        ok = True
    except (Fail, ExecuteError, OSError) as e:
        print(f'demo: FAILED: {e}')
    finally:
        g.quit()
        g.keep(not ok)
    print(f'demo: {"guest DMA and interrupts through iommufd verified" if ok else "FAILED"}'
          f' ({time.monotonic() - t0:.0f} s)')
    return 0 if ok else 1
