"""virtio-mem under an assigned device."""

import os
import re

from harness import MIB, pinned
from pylib.check import Fail, check
from pylib.devices import PATHS, edu_arg, path_objects
from pylib.inguest import edu_attr, guest_edus, insmod
from pylib.l2 import Guest
from pylib.wait import Deadline, until


class VmemCases:
    """The vmem case groups of the guest tier's Tier."""

    # 4 and 7b: virtio-mem
    def case_virtio_mem(self, path):
        host = self.host_edu(path)
        ctl = f'{self.args.workdir}/fault-vmem-{path}'
        env = self.fault_env(path, ctl)
        g = Guest(self.args, f'vmem-{path}',
                  path_objects(path) +
                  ['-object', 'memory-backend-ram,id=vmem0,size=512M',
                   '-device', 'virtio-mem-pci,id=vm0,memdev=vmem0,'
                   'block-size=2M,requested-size=0'] +
                  edu_arg(path, host, 'edu0'),
                  mem='256M,maxmem=1G', env=env, cpu=PATHS.index(path))

        def body(g):
            self.sub('virtio-mem', path, lambda: self.virtio_mem(g, path))
            # A failed case may have left memory plugged.
            self.vmem_resize(g, 0)
            if self.args.faultinject:
                self.sub('fault-virtio-mem', path,
                         lambda: self.fault_virtio_mem(g, path, ctl))
        self.with_guest('virtio-mem', path, g, body)
        if path == 'iommufd':
            self.virtio_mem_threads(path, host)

    def virtio_mem_threads(self, path, host):
        """
        The same plug and unplug with the object's map-threads=2: QEMU maps
        the plugged range in granule-sized chunks from two threads (series
        patch "map large RAM sections in chunks"), and the unplug's unmap
        still finds whole mappings.  The type1 container maps serially.
        """
        g = Guest(self.args, f'vmem-threads-{path}',
                  path_objects(path, map_threads=2) +
                  ['-object', 'memory-backend-ram,id=vmem0,size=512M',
                   '-device', 'virtio-mem-pci,id=vm0,memdev=vmem0,'
                   'block-size=2M,requested-size=0'] +
                  edu_arg(path, host, 'edu0'),
                  mem='256M,maxmem=1G', trace=('vfio_dma_map_chunks*',))
        self.with_guest('virtio-mem-threads', path, g, lambda g: self.sub(
            'virtio-mem-threads', path,
            lambda: self.virtio_mem(g, path, threads=2)))

    def vmem_resize(self, g, size, timeout=120):
        """
        Ask the guest to plug or unplug virtio-mem memory up to @size and
        wait until it did, and until the guest has onlined what it plugged.
        """
        def memtotal():
            return int(re.search(r'MemTotal:\s+(\d+)',
                                 g.sh('cat /proc/meminfo')).group(1))

        before = g.qmp('qom-get', path='vm0', property='size')
        total = memtotal()
        g.qmp('qom-set', path='vm0', property='requested-size', value=size)
        deadline = Deadline(timeout)
        until(lambda: g.qmp('qom-get', path='vm0', property='size') == size,
              timeout, lambda: f'virtio-mem size did not reach {size}: '
              f'{g.qmp("qom-get", path="vm0", property="size")}')
        # Onlining follows the plug; the memmap of a new memory block may
        # live in the block itself, so allow a little less.
        want = total + (size - before) // 1024 * 9 // 10
        if size > before:
            until(lambda: memtotal() >= want, max(deadline.left(), 0),
                  lambda: f'the guest did not online '
                  f'{(size - before) // MIB} MiB: MemTotal {memtotal()} kB')

    def vmem_region(self, g):
        for d in g.qmp('query-memory-devices'):
            if d['type'] == 'virtio-mem':
                return d['data']['memaddr'], d['data']['max-size']
        raise Fail('no virtio-mem device in query-memory-devices')

    def dma_calls(self, g, since, op):
        """vfio_dma_map/unmap calls of the trace from line @since on."""
        out = []
        for line in g.trace_lines()[since:]:
            m = re.search(rf'vfio_dma_{op} \S+ iova=0x([0-9a-f]+) '
                          r'size=0x([0-9a-f]+).* ret=(-?\d+)', line)
            if m:
                out.append((int(m.group(1), 16), int(m.group(2), 16),
                            int(m.group(3))))
        return out

    def virtio_mem(self, g, path, threads=1):
        bdf = guest_edus(g)[0]
        insmod(g, dma_bits=39)
        addr, size = self.vmem_region(g)
        base = g.status()
        plug = 128 * MIB
        mark = len(g.trace_lines())
        self.vmem_resize(g, plug)
        plugged = g.status()
        grew = pinned(plugged, path) - pinned(base, path)
        check(grew == plug // 1024, f'pinned memory grew by {plug // MIB} '
              f'MiB: {base} -> {plugged}')
        chunked = ''
        if threads > 1:
            text = '\n'.join(g.trace_lines()[mark:])
            runs = re.findall(r'vfio_dma_map_chunks \S+ iova=0x([0-9a-f]+) '
                              r'size=0x([0-9a-f]+) chunk=0x([0-9a-f]+) '
                              r'chunks=(\d+) threads=(\d+)', text)
            done = re.findall(r'vfio_dma_map_chunks_done .* ret=(-?\d+)',
                              text)
            ours = [r for r in runs if addr <= int(r[0], 16) < addr + size
                    and int(r[2], 16) == 2 * MIB and int(r[4]) == threads]
            mapped = sum(int(r[1], 16) for r in ours)
            check(mapped == plug and set(done) == {'0'},
                  f'the plug mapped {plug // MIB} MiB in 2 MiB chunks from '
                  f'{threads} threads: {runs}, done {done}')
            chunked = (f'; mapped in {sum(int(r[3]) for r in ours)} '
                       f'chunks of 2 MiB by {threads} threads')
        r = edu_attr(g, bdf, 'edu_dma_range',
                     f'{addr:x} {addr + size:x} 4095')
        check(r.get('result') == 'ok', f'DMA into plugged memory: {r}')
        mark = len(g.trace_lines())
        self.vmem_resize(g, 0)
        unplugged = g.status()
        gone = self.dma_calls(g, mark, 'unmap')
        in_region = sum(s for i, s, r in gone
                        if addr <= i < addr + size and r == 0)
        check(in_region == plug, f'unmaps of {plug // MIB} MiB in the '
              f'virtio-mem region traced, got {in_region // MIB} MiB '
              f'({len(gone)} calls)')
        check(pinned(unplugged, path) == pinned(base, path),
              f'pinned memory back down: {base} -> {unplugged}')
        fig = (f'plugged 128 MiB: pinned +{grew // 1024} MiB{chunked}, DMA '
               f'at {r["phys"]} ok; unplugged: {len(gone)} unmap calls '
               f'({in_region // MIB} MiB), pinned '
               f'{pinned(plugged, path)} -> {pinned(unplugged, path)} kB')
        self.figure('virtio-mem' if threads == 1 else
                        'virtio-mem-threads', path, fig)
        return fig

    def fault_virtio_mem(self, g, path, ctl):
        """Fail each host map of a plug in turn."""
        bdf = guest_edus(g)[0]
        addr, size = self.vmem_region(g)
        base = g.status()
        plug = 6 * MIB
        # A clean plug first: the trace counts the maps it makes.
        mark = len(g.trace_lines())
        self.vmem_resize(g, plug)
        count = len([c for c in self.dma_calls(g, mark, 'map')
                     if addr <= c[0] < addr + size])
        self.vmem_resize(g, 0)
        check(count > 0, 'a plug maps memory')
        want = 'IOMMU_IOAS_MAP' if path == 'iommufd' else 'VFIO_MAP_DMA'
        for n in range(1, count + 1):
            injected = g.errors().count('faultinject:')
            with open(ctl, 'w') as f:
                f.write(f'{n} vmem\n')
            try:
                g.qmp('qom-set', path='vm0', property='requested-size',
                      value=plug)
                until(lambda: g.errors().count('faultinject:') != injected,
                      60, f'map {n} of the plug was not failed')
            finally:
                os.unlink(ctl)
            errs = g.errors()
            check(want in errs.split('faultinject:')[-1],
                  f'map {n}: the error names the failed map')
            check(g.running(), f'map {n}: QEMU running')
            # The guest got BUSY and waits before it retries; a new
            # request makes it retry at once.
            got = g.qmp('qom-get', path='vm0', property='size')
            check(got < plug, f'map {n}: the failed plug was refused')
            st = g.status()
            check(pinned(st, path) - pinned(base, path) == got // 1024,
                  f'map {n}: pinned memory is what stayed plugged '
                  f'({got // MIB} MiB): {base} -> {st}')
            self.vmem_resize(g, plug + 2 * MIB)
            r = edu_attr(g, bdf, 'edu_dma_range',
                         f'{addr:x} {addr + size:x} 4095')
            check(r.get('result') == 'ok',
                  f'DMA into memory plugged after failed map {n}: {r}')
            self.vmem_resize(g, 0)
        st = g.status()
        check(st['fds'] == base['fds'] and
              pinned(st, path) == pinned(base, path),
              f'nothing leaks: {base} -> {st}')
        line = [l for l in g.errors().splitlines() if want in l][-1]
        self.figure('fault-virtio-mem', path,
                        f'{count}/{count} maps of a plug failed in turn')
        return (f'{count}/{count} maps of a {plug // MIB} MiB plug failed in '
                f'turn: "{line.strip()}", plug refused, the guest\'s retry '
                f'and DMA worked, fds and pinned memory at baseline')
