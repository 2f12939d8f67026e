"""
Live migration of L2 guests with an assigned mtty (the kernel's mdev
sample, which speaks VFIO migration protocol v2 with PRE_COPY, STOP_COPY,
P2P and DMA logging), from one of our QEMUs to another in L1 over a unix
socket, on both paths; and the guests that must not migrate.

The guest programs port 0's registers itself (line control, divisor,
bytes left in the receive FIFO) through the BAR's sysfs resource file, so
that only the device's migrated state can give them back on the
destination; the ports' round trips go through its 8250 driver.
"""

import os
import signal
import time

from harness import pinned
from pylib import migration as mig
from pylib import mtty
from pylib.check import Fail, check
from pylib.devices import edu_arg, mdev_arg, path_objects
from pylib.l2 import Guest
from pylib.vm import ExecuteError
from pylib.wait import until

# The device states of a migration, source and destination, as traced.
SRC_STATES = ['RUNNING -> PRE_COPY', 'PRE_COPY -> PRE_COPY_P2P',
              'PRE_COPY_P2P -> STOP_COPY', 'STOP_COPY -> STOP']
DST_STATES = ['RUNNING -> RESUMING', 'RESUMING -> STOP',
              'STOP -> RUNNING_P2P', 'RUNNING_P2P -> RUNNING']


class MigrationCases:
    """The migration case groups of the guest tier's Tier (the fault
    sweeps are in cases_migration_faults.py)."""

    # --- helpers -------------------------------------------------------------

    def mtty_guest(self, path, sysfs, name, opts='', cls=Guest, **kw):
        """A guest (or with cls=mig.Incoming, a destination) with @sysfs."""
        g = cls(self.args, name, mig.mtty_devices(path, sysfs, opts),
                trace=mig.TRACE, **kw)
        return g

    def incoming(self, path, sysfs, name, **kw):
        return self.mtty_guest(path, sysfs, name, cls=mig.Incoming,
                               **kw).start()

    def with_mttys(self, case, path, n, body):
        """body(sysfs...) with @n new mtty instances, removed after it."""
        if not mtty.available():
            self.res.report(f'{case}/{path}', False, f'no {mtty.MTTY_TYPES} '
                            f'in L1')
            return
        made = []
        try:
            for _ in range(n):
                made.append(mtty.create())
            body(*made)
        finally:
            for m in made:
                mtty.remove(m)

    def unchanged(self, g, path, before, what):
        """@g's fds and pinned memory are what they were @before."""
        after = g.status()
        check(before['fds'] == after['fds'] and
              pinned(before, path) == pinned(after, path),
              f'{what}: fds {before["fds"]} -> {after["fds"]}, pinned '
              f'{pinned(before, path)} -> {pinned(after, path)} kB')
        kind = 'VmPin' if path == 'iommufd' else 'VmLck'
        return f'fds {after["fds"]}, {kind} {pinned(after, path)} kB as before'

    def failed_migration(self, src, path, ttys, name, fn):
        """
        Run @fn, a migration of @src that must fail (it returns the
        destination, or None): the source runs on with its device back in
        RUNNING, port 1 loops bytes, fds and pinned memory as before.
        """
        before = src.status()
        dst = fn()
        try:
            info = mig.wait(src)
        finally:
            if dst is not None:
                dst.quit()
                dst.keep(False)
        status = src.qmp('query-status')['status']
        check(info['status'] in ('failed', 'cancelled') and
              status == 'running', f'{name}: migration {info["status"]}, '
              f'source {status}')
        states = mig.states(src)
        check(not states or states[-1].endswith('-> RUNNING'),
              f'{name}: the device was left in {states[-1:]}')
        mtty.round_trip(src, ttys[1], name[:12])
        err = info.get('error-desc')
        return (f'{info["status"]}{": " + err if err else ""}; source '
                f'running, port 1 loops, '
                f'{self.unchanged(src, path, before, name)}')

    # --- the main group: failures, a migration, ten ping-pongs ---------------

    def case_migration(self, path):
        self.with_mttys('migration', path, 2,
                        lambda a, b: self.migration_group(path, a, b))

    def migration_group(self, path, mdev_a, mdev_b):
        src = self.mtty_guest(path, mdev_a, f'mig-src-{path}')
        guests = [src]
        try:
            src.start()
            bdf, ttys = mtty.ports(src)
            check(len(ttys) == 2, f'two ports: {ttys}')
            mtty.uart_setup(src, bdf)
            mtty.check_regs(src, bdf, 'source before migrating')
            mtty.round_trip(src, ttys[1], f'{path[:3]}-before')
            self.migration_failures(src, path, ttys, mdev_b)
            mtty.check_regs(src, bdf, 'source after the failed migrations')
            before = src.status()
            dst = self.incoming(path, mdev_b, f'mig-dst-{path}')
            guests.append(dst)
            t = time.monotonic()
            info = mig.migrate(src, dst)
            wall = time.monotonic() - t
            self.sub('migration-mtty', path, lambda: self.migrated(
                src, dst, bdf, ttys, path, info, before, wall))
            src.quit()
            src.keep(self.res.failures() > 0)
            guests.remove(src)
            self.sub('migration-pingpong', path, lambda: self.pingpong(
                guests, path, ttys, [mdev_a, mdev_b]))
        except (Fail, ExecuteError, OSError) as e:
            self.res.report(f'migration/{path}', False, str(e))
        finally:
            for g in guests:
                g.quit()
                g.keep(self.res.failures() > 0)

    def migration_failures(self, src, path, ttys, mdev_b):
        """The failures that must lose nothing, one after the other on
        the same source."""
        def fail(name, fn):
            self.sub(f'migration-{name}', path, lambda: self.failed_migration(
                src, path, ttys, name, fn))
        for phase in ('setup', 'pre-copy', 'pre-switchover'):
            fail(f'cancel-{phase}',
                 lambda: self.cancel_in(src, path, mdev_b, phase))
        fail('postcopy-refused', lambda: self.postcopy(src, path, mdev_b))
        fail('refused-stream', lambda: self.refused_stream(src, path))
        fail('dest-killed', lambda: self.dest_killed(src, path, mdev_b))

    def cancel_in(self, src, path, sysfs, phase):
        """migrate_cancel in setup, in pre-copy (the device in PRE_COPY)
        or paused before switchover (the device in STOP_COPY)."""
        dst = self.incoming(path, sysfs, f'mig-cancel-{phase}-{path}')
        if phase == 'pre-switchover':
            mig.start(src, dst.uri, caps=('pause-before-switchover',))
            mig.wait(src, ('pre-switchover',))
            check(mig.states(src)[-1].endswith('-> STOP_COPY'),
                  f'the device is in STOP_COPY: {mig.states(src)[-1:]}')
        else:
            mig.start(src, dst.uri, mig.SLOW_BANDWIDTH)
        if phase == 'pre-copy':
            mig.wait(src, ('active',))
            until(lambda: any(s.endswith('-> PRE_COPY')
                              for s in mig.states(src)), 30,
                  'the device went to PRE_COPY')
        src.qmp('migrate_cancel')
        return dst

    def postcopy(self, src, path, sysfs):
        """postcopy-ram: the source refuses in its setup."""
        dst = self.incoming(path, sysfs, f'mig-postcopy-{path}')
        mig.start(src, dst.uri, caps=('postcopy-ram',))
        info = mig.wait(src)
        check('cannot migrate with the postcopy-ram capability' in
              info.get('error-desc', ''), f'postcopy refused: {info}')
        return dst

    def refused_stream(self, src, path):
        """A destination whose mtty has one port refuses the stream."""
        made = mtty.create(ports=1)
        try:
            dst = self.incoming(path, made, f'mig-refused-{path}')
            mig.start(src, dst.uri)
            mig.wait(src)
            until(lambda: not dst.vm.is_running(), 60,
                  'the destination exits after refusing the stream')
            err = dst.errors()
            check('the device refused its migration data' in err,
                  f'the destination names the refused data: {err[-300:]}')
            dst.quit()
            dst.keep(False)
        finally:
            mtty.remove(made)

    def dest_killed(self, src, path, sysfs):
        """The destination killed mid-stream (in pre-copy)."""
        dst = self.incoming(path, sysfs, f'mig-killed-{path}')
        mig.start(src, dst.uri, mig.SLOW_BANDWIDTH)
        mig.wait(src, ('active',))
        time.sleep(1)
        os.kill(dst.pid, signal.SIGKILL)
        return dst

    def migrated(self, src, dst, bdf, ttys, path, info, before, wall):
        """What the destination has of the source."""
        lcr, div = mtty.check_regs(dst, bdf, 'destination')
        fifo = mtty.check_fifo(dst, bdf, 'destination')
        for i, tty in enumerate(ttys):
            mtty.round_trip(dst, tty, f'{path[:3]}-after{i}')
        s_states, d_states = mig.states(src), mig.states(dst)
        check(s_states[-4:] == SRC_STATES, f'source states {s_states[-4:]}, '
              f'expected {SRC_STATES}')
        # (A device that an earlier QEMU left stopped is run at realize.)
        check(d_states[-4:] == DST_STATES, f'destination states '
              f'{d_states}, expected them to end {DST_STATES}')
        wrote = mig.trace_sum(dst, 'vfio_load_block', 'wrote')
        check(wrote > 0, 'the destination wrote device state')
        tracker = mig.trackers(src)[-1:]
        after = dst.status()
        fig = (f'{fifo} FIFO bytes, LCR 0x{lcr:02x}, divisor 0x{div:04x} '
               f'intact, both ports loop; device state {wrote} bytes; '
               f'downtime {info.get("downtime")} ms, total '
               f'{info.get("total-time")} ms ({wall:.1f} s wall); dirty '
               f'tracking: {tracker[0][0] if tracker else "?"}; fds '
               f'{before["fds"]} -> {after["fds"]}, pinned '
               f'{pinned(before, path)} -> {pinned(after, path)} kB')
        self.figure('migration-mtty', path, fig)
        return fig

    def pingpong(self, guests, path, ttys, mdevs):
        """Migrations back and forth between the two mtty instances, a
        round trip after each; guests[0] is the guest's current QEMU."""
        n = self.args.pingpong
        downtimes, totals, t = [], [], time.monotonic()
        for i in range(n):
            src = guests[0]
            dst = self.incoming(path, mdevs[i % 2], f'mig-pp{i}-{path}')
            guests.append(dst)
            info = mig.migrate(src, dst)
            src.quit()
            src.keep(False)
            guests.remove(src)
            mtty.round_trip(dst, ttys[i % 2], f'pp{i}')
            downtimes.append(info.get('downtime'))
            totals.append(info.get('total-time'))
        wall = time.monotonic() - t
        fig = (f'{n} migrations in {wall:.1f} s with a round trip each; '
               f'downtime ms: {", ".join(map(str, downtimes))}; total ms: '
               f'{", ".join(map(str, totals))}')
        self.figure('migration-pingpong', path, fig)
        return fig

    # --- guests that cannot migrate ------------------------------------------

    def refused(self, path, name, devices, expect, viommu=False, env=None):
        """migrate is refused with @expect, which query-migrate's
        blocked-reasons (what libvirt asks) has too; the guest runs on."""
        g = Guest(self.args, f'mig-{name}-{path}', devices, viommu=viommu,
                  env=env, trace=mig.TRACE)

        def body(g):
            try:
                g.qmp('migrate', uri='unix:/nonexistent')
                raise Fail('migrate was accepted')
            except ExecuteError as e:
                msg = str(e)
            check(expect in msg, f'migrate refused with "{msg}", expected '
                  f'"{expect}"')
            reasons = g.qmp('query-migrate').get('blocked-reasons', [])
            check(any(expect in r for r in reasons),
                  f'query-migrate blocked-reasons: {reasons}')
            check(g.running() and g.sh('echo alive').strip() == 'alive',
                  'the guest runs on')
            return f'refused: "{msg}", also in blocked-reasons; the guest ' \
                   f'runs on'
        self.run(f'migration-blocked-{name}', path,
                 lambda p: self.in_guest(g, body))

    def case_migration_blocked(self, path):
        self.with_mttys('migration-blocked', path, 1,
                        lambda m: self.blocked(path, m))

    def blocked(self, path, sysfs):
        host = self.host_edu(path)
        edu = edu_arg(path, host, 'edu0')
        no_mig = f'vfio {host}: the device does not support migration'
        self.refused(path, 'edu', path_objects(path) + edu, no_mig)
        self.refused(path, 'edu-mtty', path_objects(path) +
                     mdev_arg(path, sysfs, 'mtty0') + edu, no_mig)
        self.refused(path, 'viommu', path_objects(path) +
                     mdev_arg(path, sysfs, 'mtty0'),
                     'a device behind a guest vIOMMU cannot migrate',
                     viommu=True)
