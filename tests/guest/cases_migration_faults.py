"""
Migrations whose kernel calls fail or are faked, with the fault injection
preload (tests/faultinject): a device that goes to ERROR, a device whose
DMA nothing tracks, iommufd HWPT dirty tracking on a faked capability,
and sweeps that fail each migration call of both ends in turn.
"""

import tempfile

from pylib import migration as mig
from pylib import mtty, tracelog
from pylib.check import Fail, check
from pylib.l2 import Guest
from pylib.tap import note
from pylib.vm import ExecuteError

UNTRACKED = ("nothing tracks the device's DMA for migration: the device "
             "has no DMA logging (VFIO_DEVICE_FEATURE_DMA_LOGGING) and its "
             "iommufd container has no HWPT dirty tracking "
             "(IOMMU_HW_CAP_DIRTY_TRACKING)")
# The migration calls of a sweep, on top of what tracks the DMA.
MIG_CALLS = ['VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE',
             'VFIO_MIG_GET_PRECOPY_INFO', 'VFIO_MIG_READ', 'VFIO_MIG_WRITE',
             'VFIO_DEVICE_RESET']
TRACKING = {
    'legacy': ['VFIO_IOMMU_DIRTY_PAGES'],
    'iommufd': ['VFIO_DEVICE_FEATURE_DMA_LOGGING_START',
                'VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT',
                'VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP'],
    'hwpt': ['IOMMU_HWPT_SET_DIRTY_TRACKING', 'IOMMU_HWPT_GET_DIRTY_BITMAP'],
}


class Faulty:
    """The fault injection preload's files for one QEMU: the control file
    that arms it, the count of matched calls."""

    def __init__(self, workdir, lib, reqs, fake=False, mig_error=False):
        d = tempfile.mkdtemp(prefix='fault.', dir=workdir)
        self.ctl = f'{d}/fault.ctl'
        self.count = f'{d}/fault.count'
        self.env = {'LD_PRELOAD': lib, 'FAULT_REQ': ','.join(reqs),
                    'FAULT_CTL': self.ctl, 'FAULT_COUNT_FILE': self.count,
                    'FAULT_ERRNO': 'EIO'}
        if fake:
            self.env['FAULT_FAKE_DIRTY'] = '1'
        if mig_error:
            self.env['FAULT_MIG_ERROR'] = '1'

    def arm(self, what):
        """'N TAG': fail the Nth match from now on ('0 TAG' counts)."""
        with open(self.ctl, 'w') as f:
            f.write(what)

    def matches(self):
        """The matched calls since the last arm: [(n, request)]."""
        try:
            with open(self.count) as f:
                return [(int(ln.split()[0]), ln.split()[1])
                        for ln in f if ln.strip()]
        except FileNotFoundError:
            return []


def sweep_points(matches):
    """Each request's first, middle and last match (all of them if few):
    the sorted match numbers, and the request of each."""
    by_req = {}
    for n, req in matches:
        by_req.setdefault(req, []).append(n)
    points = set()
    for ns in by_req.values():
        points.update(ns if len(ns) <= 4 else (ns[0], ns[len(ns) // 2],
                                               ns[-1]))
    return sorted(points), dict(matches)


def bitmaps(g):
    """The dirty bitmaps @g read from a HWPT (trace)."""
    return sum(1 for _, ev, args in tracelog.events(g.trace)
               if ev == 'iommufd_backend_get_dirty_bitmap' and
               args.endswith('errno=0'))


def failed_calls(g):
    """The calls the preload failed in @g so far: ['REQUEST #N', ...]."""
    return [f'{ln.split()[2]} #{ln.split()[4].rstrip(")")}'
            for ln in g.errors().splitlines()
            if ln.startswith('faultinject: failing')]


class MigrationFaultCases:
    """The guest tier's migration groups with the fault injection
    preload; on MigrationCases' helpers."""

    def preload(self, case, path):
        if not self.args.faultinject:
            self.res.report(f'{case}/{path}', False,
                            'no --faultinject library')
        return self.args.faultinject

    def faulty_guest(self, path, sysfs, name, faulty, cls=Guest, opts=''):
        return self.mtty_guest(path, sysfs, name, opts, cls=cls,
                               env=faulty.env)

    # --- a device that goes to ERROR -----------------------------------------

    def case_migration_error(self, path):
        """
        A state change of the source's device fails and the device reports
        ERROR (FAULT_MIG_ERROR): QEMU resets it, the migration fails, the
        guest runs on with a working device; in the migration's setup
        (RUNNING -> PRE_COPY, the first call) and when the VM stops
        (PRE_COPY_P2P -> STOP_COPY, the third).
        """
        if self.preload('migration-error', path):
            self.with_mttys('migration-error', path, 2,
                            lambda a, b: self.error_group(path, a, b))

    def error_group(self, path, mdev_a, mdev_b):
        fault = Faulty(self.args.workdir, self.args.faultinject,
                       ['VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE'],
                       mig_error=True)
        src = self.faulty_guest(path, mdev_a, f'mig-err-{path}', fault)

        def fail_nth(n):
            fault.arm(f'{n} error')
            dst = self.incoming(path, mdev_b, f'mig-err{n}-{path}')
            mig.start(src, dst.uri)
            return dst

        def body(g):
            _, ttys = mtty.ports(g)
            out = []
            for n in (1, 3):
                res = self.failed_migration(g, path, ttys, f'error-{n}',
                                            lambda: fail_nth(n))
                err = g.errors()
                check(err.count('the device was reset: a state change '
                                'failed in ERROR') == len(out) + 1,
                      f'QEMU reset the device in ERROR: {err[-400:]}')
                out.append(f'call {n}: {res}')
            return '; '.join(out)
        self.run('migration-error', path, lambda p: self.in_guest(src, body))

    # --- a device whose DMA nothing tracks (iommufd) -------------------------

    def case_migration_untracked(self, path):
        """
        On the iommufd path (no IOMMU tracking in the test bed), the
        mtty's DMA logging probe fails (the preload fails the first
        VFIO_DEVICE_FEATURE_DMA_LOGGING_START, the probe at realize):
        enable-migration=auto blocks with a message that names what is
        missing; =on warns and migrates with all RAM the device reaches
        sent dirty.  (A type1 container always tracks.)
        """
        if path == 'iommufd' and self.preload('migration-untracked', path):
            self.with_mttys('migration-untracked', path, 2,
                            lambda a, b: self.untracked(path, a, b))

    def untracked(self, path, mdev_a, mdev_b):
        env = {'LD_PRELOAD': self.args.faultinject,
               'FAULT_REQ': 'VFIO_DEVICE_FEATURE_DMA_LOGGING_START',
               'FAULT_NTH': '1'}
        self.refused(path, 'untracked', mig.mtty_devices(path, mdev_a),
                     UNTRACKED, env=env)
        g = self.mtty_guest(path, mdev_a, f'mig-untracked-on-{path}',
                            ',enable-migration=on', env=env)

        def on(g):
            check('with enable-migration=on all guest RAM the device can '
                  'reach is sent as dirty' in g.errors(),
                  f'the warning of enable-migration=on: {g.errors()[-300:]}')
            _, ttys = mtty.ports(g)
            dst = self.incoming(path, mdev_b, f'mig-untracked-dst-{path}')
            try:
                # Every round sends all RAM again: only a downtime limit
                # that takes all of it lets the migration converge.
                info = mig.migrate(g, dst, downtime=60000)
                mtty.round_trip(dst, ttys[1], 'untracked')
            finally:
                dst.quit()
                dst.keep(False)
            check(mig.trackers(g) == [('none', True)],
                  f'no tracker, all RAM dirty: {mig.trackers(g)}')
            return (f'warned, migrated with all RAM sent dirty in '
                    f'{info.get("total-time")} ms (downtime '
                    f'{info.get("downtime")} ms), port 1 loops on the '
                    f'destination')
        self.run('migration-untracked-on', path,
                 lambda p: self.in_guest(g, on))

    # --- HWPT dirty tracking on a faked capability (iommufd) -----------------

    def case_migration_hwpt(self, path):
        """One migration with iommufd dirty tracking faked by the preload
        (FAULT_FAKE_DIRTY): the container tracks through its HWPT."""
        if path == 'iommufd' and self.preload('migration-hwpt-dirty', path):
            self.with_mttys('migration-hwpt-dirty', path, 2,
                            lambda a, b: self.sweep(path, a, b, 'hwpt',
                                                    full=False))

    # --- sweeps: each migration call of both ends failed in turn -------------

    def case_migration_faults(self, path):
        """The sweeps (make check-migration): the path's own tracker,
        and on iommufd the faked HWPT's too."""
        if not self.preload('migration-faults', path):
            return
        self.with_mttys('migration-faults', path, 2,
                        lambda a, b: self.sweep(path, a, b, path))
        if path == 'iommufd':
            self.with_mttys('migration-hwpt-faults', path, 2,
                            lambda a, b: self.sweep(path, a, b, 'hwpt'))

    def sweep(self, path, mdev_a, mdev_b, tracker, full=True):
        """
        A count run (one migration, every matching call of both ends
        counted), then, if @full, one migration per call point, with that
        call failed (EIO): the migration fails and the source runs on with
        its device, fds and pinned memory as before, or (a call whose
        failure is tolerated) it completes and the destination runs on.
        """
        fake = tracker == 'hwpt'
        case = ('migration-hwpt-faults' if full else
                'migration-hwpt-dirty') if fake else 'migration-faults'
        reqs = MIG_CALLS + TRACKING[tracker]
        mdevs = [mdev_a, mdev_b]
        ends = []
        outcomes = []

        def new_end(cls, tag):
            """A QEMU on the mtty instance that no other end holds (a
            cdev opens once)."""
            f = Faulty(self.args.workdir, self.args.faultinject, reqs, fake)
            held = [g.mdev for g in ends]
            sysfs = next(m for m in mdevs if m not in held)
            g = self.faulty_guest(path, sysfs, f'mig-f-{tag}-{path}', f, cls)
            g.fault, g.mdev = f, sysfs
            ends.append(g)
            return g.start()

        def attempt(src, src_arm, dst_arm, tag):
            """One migration with both ends armed: the guest's QEMU now,
            and what happened."""
            before = src.status()
            seen = len(failed_calls(src))
            dst = new_end(mig.Incoming, tag)
            src.fault.arm(src_arm)
            dst.fault.arm(dst_arm)
            mig.start(src, dst.uri)
            info = mig.wait(src)
            failed = ', '.join((failed_calls(src)[seen:] +
                                failed_calls(dst)) or ['nothing'])
            if info['status'] == 'completed':
                status = dst.qmp('query-status')['status']
                check(status == 'running', f'{tag}: completed, the '
                      f'destination is {status}')
                home, gone = dst, src
                result = 'completed'
            else:
                status = src.qmp('query-status')['status']
                check(status == 'running', f'{tag}: migration '
                      f'{info["status"]}, the source is {status}')
                self.unchanged(src, path, before, tag)
                home, gone = src, dst
                result = 'failed: ' + info.get('error-desc', '?')[:80]
            self.ran = {'src': src.fault.matches(),
                        'dst': dst.fault.matches(),
                        'trackers': mig.trackers(src),
                        'bitmaps': bitmaps(src)}
            gone.quit()
            gone.keep(False)
            ends.remove(gone)
            mtty.round_trip(home, ttys[1], tag[:10])
            return home, failed, result

        try:
            cur = new_end(Guest, 'src')
            _, ttys = mtty.ports(cur)
            cur, _, result = attempt(cur, '0 count', '0 count', 'count')
            check(result == 'completed', f'count run: {result}')
            fig = self.count_run(path, fake)
            if full:
                fig = self.sweep_all(cur, attempt, outcomes, fig)
        except (Fail, ExecuteError, OSError) as e:
            self.res.report(f'{case}/{path}', False,
                            f'{e}; so far: {"; ".join(outcomes)}')
            return
        finally:
            for g in ends:
                g.quit()
                g.keep(self.res.failures() > 0)
        for o in outcomes:
            note(f'{case}/{path}: {o}')
        self.figure(case, path, fig)
        self.res.report(f'{case}/{path}', True, fig)

    def count_run(self, path, fake):
        """What the count run says: the calls of each end, and what
        tracked the DMA (the faked HWPT with FAULT_FAKE_DIRTY)."""
        self.points = {end: sweep_points(self.ran[end])
                       for end in ('src', 'dst')}
        want = 'iommu' if fake or path == 'legacy' else 'device'
        check(self.ran['trackers'] == [(want, True)],
              f'the source tracked with the {want}: {self.ran["trackers"]}')
        check(not fake or self.ran['bitmaps'],
              'the source read its dirty bitmaps from the HWPT')
        fig = (f'count run: {len(self.ran["src"])} calls on the source, '
               f'{len(self.ran["dst"])} on the destination, DMA tracked by '
               f'the {want}')
        if fake:
            fig += (f' (the faked dirty HWPT: {self.ran["bitmaps"]} '
                    f'IOMMU_HWPT_GET_DIRTY_BITMAP)')
        return fig

    def sweep_all(self, cur, attempt, outcomes, fig):
        """Fail each call point of the count run's source, then each of
        its destination."""
        points, reqs = self.points['src']
        for n in points:
            cur, what, res = attempt(cur, f'{n} src', '0 none', f'src{n}')
            outcomes.append(f'source match {n} ({reqs[n]}), failed {what}: '
                            f'{res}')
        points, reqs = self.points['dst']
        for n in points:
            cur, what, res = attempt(cur, '0 none', f'{n} dst', f'dst{n}')
            outcomes.append(f'destination match {n} ({reqs[n]}), failed '
                            f'{what}: {res}')
        failed = sum(': failed' in o for o in outcomes)
        return (f'{fig}; {len(outcomes)} calls failed in turn: {failed} '
                f'migrations failed with the source running on, fds and '
                f'pinned memory as before, {len(outcomes) - failed} '
                f'completed')
