"""
Live migration of an L2 guest between two QEMUs in L1: the destination
that waits for it, the QMP of a migration, what QEMU's trace says about
the device's migration states, and one whole mtty migration for the
benchmarks (mtty_migration()).
"""

import argparse
import os
import shutil
import tempfile

from pylib import mtty, tracelog
from pylib.check import check
from pylib.devices import mdev_arg, path_objects
from pylib.l2 import Guest
from pylib.wait import until

# QEMU's trace events of a VFIO migration (tracelog-readable).
TRACE = ('vfio_migration_*', 'vfio_save_*', 'vfio_load_*',
         'vfio_vmstate_change*', 'vfio_update_precopy_info',
         'vfio_device_dma_logging_*', 'vfio_listener_log_global_*',
         'vfio_legacy_set_dirty_page_tracking', 'vfio_get_dirty_bitmap',
         'iommufd_backend_get_hw_caps', 'iommufd_backend_alloc_hwpt',
         'iommufd_backend_*dirty*')
# Fast enough for any of our guests; slow enough that a migration of a
# 256 MiB guest stays in pre-copy for seconds.
FAST_BANDWIDTH = 8 << 30
SLOW_BANDWIDTH = 64 << 10
DONE = ('completed', 'failed', 'cancelled')


class Incoming(Guest):
    """A QEMU that waits for a migration (-incoming defer) instead of
    booting its guest; start() leaves it listening on a unix socket,
    whose URI is .uri."""

    def __init__(self, args, name, devices, **kw):
        extra = ('-incoming', 'defer') + tuple(kw.pop('extra', ()))
        super().__init__(args, name, devices, extra=extra, **kw)
        self.uri = f'unix:{os.path.join(self.dir, "migrate.sock")}'

    def start(self):
        super().start()
        self.qmp('migrate-incoming', uri=self.uri)
        return self

    def wait_ready(self, timeout=120):
        """The guest comes with the migration: no @@READY."""


def mtty_devices(path, sysfs, opts=''):
    """An mtty instance (@sysfs) behind a root port, on @path."""
    port = ['-device', 'pcie-root-port,id=rp1,chassis=1,slot=1']
    return path_objects(path) + port + mdev_arg(path, sysfs, 'mtty0',
                                                ',bus=rp1' + opts)


def start(src, uri, bandwidth=FAST_BANDWIDTH, caps=(), downtime=300):
    """Migrate @src to @uri with the capabilities @caps (return-path
    always); the migration runs on."""
    src.qmp('migrate-set-capabilities', capabilities=[
        {'capability': c, 'state': c in caps or c == 'return-path'}
        for c in ('return-path', 'pause-before-switchover', 'postcopy-ram')])
    src.qmp('migrate-set-parameters', **{'max-bandwidth': bandwidth,
                                         'downtime-limit': downtime})
    src.qmp('migrate', uri=uri)


def wait(src, states=DONE, timeout=180):
    """query-migrate of @src once its status is one of @states."""
    info = {}

    def reached():
        info.update(src.qmp('query-migrate'))
        return info.get('status') in states
    until(reached, timeout, lambda: f'migration still {info.get("status")} '
          f'after {timeout} s, not {"/".join(states)}', 0.1)
    return info


def migrate(src, dst, downtime=300, timeout=180):
    """Migrate @src into @dst (an Incoming, started): query-migrate of
    the completed migration; both ends checked."""
    start(src, dst.uri, downtime=downtime)
    info = wait(src, timeout=timeout)
    check(info['status'] == 'completed', f'migration {info["status"]}: '
          f'{info.get("error-desc", "")} {dst.errors()[-300:]}')
    s = src.qmp('query-status')['status']
    d = dst.qmp('query-status')['status']
    check(s == 'postmigrate' and d == 'running',
          f'after the migration: source {s}, destination {d}')
    return info


def states(g):
    """The device's migration state changes in QEMU's trace, in order:
    ['RUNNING -> PRE_COPY', ...]."""
    return [args.split(') ', 1)[1].split(' data_fd')[0]
            for _, ev, args in tracelog.events(g.trace)
            if ev == 'vfio_migration_set_state' and args.endswith(' err 0')]


def trace_sum(g, event, field):
    """The sum of "FIELD N" over the trace lines of @event."""
    total = 0
    for _, ev, args in tracelog.events(g.trace):
        words = args.split()
        if ev == event and field in words:
            total += int(words[words.index(field) + 1])
    return total


def trackers(g):
    """What tracked the DMA in each migration, from the trace: 'iommu',
    'device' (its DMA logging) or 'none' (all RAM sent dirty), each with
    whether it started."""
    names = {'1': 'iommu', '2': 'device', '3': 'none'}
    out = []
    for _, ev, args in tracelog.events(g.trace):
        if ev == 'vfio_listener_log_global_start':
            words = args.split()
            out.append((names.get(words[words.index('tracker') + 1], '?'),
                        words[-1] == '1'))
    return out


def mtty_migration(qemu, kernel, initrd, path='iommufd', workdir='/tmp',
                   logdir=None):
    """
    For the benchmarks: one migration of an L2 guest with an mtty (in
    L1, on @path) from one QEMU @qemu to another, the way the guest tier
    does it, with a serial round trip on the destination.  Returns
    query-migrate's figures: {'total-time': ms, 'downtime': ms,
    'setup-time': ms, 'status': 'completed'}.  Works with another QEMU
    binary too (Debian's bookworm-backports 10.0.2): only standard options
    and QMP.
    """
    work = tempfile.mkdtemp(prefix='mtty-migration.', dir=workdir)
    args = argparse.Namespace(qemu=qemu, kernel=kernel, initrd=initrd,
                              workdir=work, verbose=False, keep=False,
                              logdir=logdir)
    mdevs = [mtty.create(), mtty.create()]
    guests = []
    try:
        src = Guest(args, 'bench-src', mtty_devices(path, mdevs[0]))
        guests.append(src)
        src.start()
        dst = Incoming(args, 'bench-dst', mtty_devices(path, mdevs[1]))
        guests.append(dst)
        dst.start()
        info = migrate(src, dst)
        _, ttys = mtty.ports(dst)
        mtty.round_trip(dst, ttys[0], 'bench')
        return {k: info.get(k) for k in ('status', 'total-time', 'downtime',
                                         'setup-time')}
    finally:
        for g in guests:
            g.quit()
            g.keep(False)
        for m in mdevs:
            mtty.remove(m)
        shutil.rmtree(work, ignore_errors=True)
