"""A guest with its own vIOMMU, and a vIOMMU that must fit the host IOMMU."""

import os
import re
import subprocess
import time

from harness import pinned
from pylib.check import Fail, check
from pylib.devices import PATHS, edu_arg, path_objects
from pylib.inguest import bind_vfio, edu_attr, guest_dma, guest_edus, \
    insmod, kv
from pylib.iommufd import left_mapped
from pylib.l2 import Guest
from pylib.vm import ExecuteError
from pylib.wait import until

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


class ViommuCases:
    """The viommu case groups of the guest tier's Tier."""

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
        self.figure('viommu-iovas', path,
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
        t = time.monotonic()
        rc, out = g.sh(f'guest-vfio {bdf} cycles {n} {CYCLES_IOVA:#x}',
                       ok=False, timeout=300)
        took = time.monotonic() - t
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
        self.figure('viommu-cycles', path, fig)
        return fig

    def viommu_left(self, g, bdf, path, base):
        """
        What is left in the host container is what the guest has mapped:
        the guest holds two pages mapped, which must be all there is.
        """
        g.sh(f'rm -f /tmp/release; guest-vfio {bdf} hold {HOLD_IOVA:#x} '
             f'/tmp/release > /tmp/hold.out 2>&1 &')
        until(lambda: 'held=yes' in g.sh('cat /tmp/hold.out'), 60,
              lambda: 'the guest holds a mapping: ' + g.sh('cat /tmp/hold.out'))
        st = g.status()
        held = pinned(st, path) - pinned(base, path)
        check(held == 8, f'the two held pages are all that is pinned: '
              f'{held} kB over the baseline')
        if path == 'iommufd':
            ids = trace_ioas_ids(g)
            check(ids, 'IOAS ids in the trace')
            left = left_mapped(g.pid, ids)
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
        self.figure('viommu-left', path, how)
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
            except ExecuteError as e:
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
