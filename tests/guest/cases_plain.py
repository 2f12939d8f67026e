"""A guest without vIOMMU, and the hot reset guest."""

import re
import time

from harness import EDU, MIB, pinned
from pylib.check import check
from pylib.devices import PATHS, edu_arg, path_objects
from pylib.inguest import edu_attr, edu_stats, guest_dma, guest_edus, insmod
from pylib.l2 import Guest


class PlainCases:
    """The plain case groups of the guest tier's Tier."""

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
        st = edu_stats(g, bdf)
        mode = 'msi' if msi else 'intx'
        check(st['mode'] == mode, f'interrupt mode {mode}, got {st}')
        check(st['raised'] == st['delivered'] and st['spurious'] == '0',
              f'interrupts raised = delivered, no spurious: {st}')
        self.figure(f'irq-{mode}', path,
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
        t = time.monotonic()
        for i in range(n):
            g.reboot()
            insmod(g)
            guest_dma(g, bdf, 4095 - i, i)
        took = (time.monotonic() - t) / max(n, 1)
        last = g.status()
        check(last['fds'] == first['fds'], f'fds flat: {first} -> {last}')
        check(pinned(last, path) == pinned(first, path),
              f'pinned memory flat: {first} -> {last}')
        check(last['VmPin'] == first['VmPin'], f'VmPin flat: {first} -> {last}')
        fig = (f'{n} reboots ({took:.1f} s each), DMA ok each; '
               f'fds {first["fds"]}->{last["fds"]}, '
               f'VmPin {first["VmPin"]}->{last["VmPin"]} kB, '
               f'VmLck {first["VmLck"]}->{last["VmLck"]} kB')
        self.figure('reboot-loop', path, fig)
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
