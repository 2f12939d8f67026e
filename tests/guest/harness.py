"""
The guest tier's harness: the L1 edus, one result per case, the case
groups that start and stop guests, the run of the groups and the figures.
The groups themselves are the Tier's mixins (cases_*.py).
"""

import os
import subprocess
import threading
import time

from pylib.check import Fail, check
from pylib.devices import PATHS
from pylib.l2 import NUDGE_AFTER, NUDGED
from pylib.tap import Tap, failure, note
from pylib.vm import ExecuteError

EDU = '1234:11e8'
MIB = 1 << 20
# Runs of a case group whose guest stops answering (see Harness.all).
GROUP_RUNS = 3
# The failures a case reports by their message (anything else is a bug of
# the test: pylib.tap.failure).
EXPECTED = (Fail, ExecuteError, OSError, subprocess.SubprocessError)
# Case groups that run only when --case names them: the migration fault
# sweeps (make check-migration) would add 15 minutes to make check.
ONLY_ASKED = ('migration-faults',)


def pinned(st, path):
    """The pinned memory of a path, kB: iommufd charges VmPin, type1 VmLck."""
    return st['VmPin'] if path == 'iommufd' else st['VmLck']


class Harness:
    """What the case groups run on; Tier (guest_tier.py) adds the groups."""

    def __init__(self, args):
        self.args = args
        self.res = Tap('guest')
        self.lock = threading.Lock()
        self.figures = {}
        self.edus = self.find_edus()

    def figure(self, case, path, text):
        """A figure for the table at the end."""
        with self.lock:
            self.figures.setdefault(case, {})[path] = text

    def find_edus(self):
        """Sort L1's edus by place: on the root bus, or behind a port."""
        root, ports = [], {}
        for bdf in os.environ.get('L1_EDU_BDFS', '').split():
            real = os.path.realpath(f'/sys/bus/pci/devices/{bdf}')
            parent = os.path.basename(os.path.dirname(real))
            if parent.startswith('pci'):
                root.append(bdf)
            else:
                ports.setdefault(parent, []).append(bdf)
        pair = [v for v in ports.values() if len(v) == 2]
        single = [v for v in ports.values() if len(v) == 1]
        return {'root': sorted(root), 'pair': sorted(pair[0]) if pair else [],
                'single': single[0][0] if single else None}

    def fault_env(self, path, ctl):
        """
        QEMU's environment with the fault injection library, armed by the
        file @ctl, failing the path's host map call.
        """
        if not self.args.faultinject:
            return {}
        return {'LD_PRELOAD': self.args.faultinject,
                'FAULT_REQ': 'IOMMU_IOAS_MAP' if path == 'iommufd'
                else 'VFIO_IOMMU_MAP_DMA',
                'FAULT_CTL': ctl}

    def host_edu(self, path):
        return self.edus['root'][PATHS.index(path)]

    def run(self, case, path, fn):
        name = f'{case}/{path}'
        try:
            detail = fn(path)
            self.res.report(name, True, detail)
        except Exception as e:          # pylint: disable=broad-except
            self.res.report(name, False, *failure(e, EXPECTED))

    def sub(self, case, path, fn):
        self.run(case, path, lambda p: fn())

    def in_guest(self, g, body):
        """Start @g, return body(g), stop it; failures go to the caller."""
        ok = False
        try:
            g.start()
            ret = body(g)
            ok = True
            return ret
        finally:
            rc = g.quit()
            if ok and rc not in (0, None):
                ok = False
                raise Fail(f'QEMU exit status {rc}: {g.errors()}')
            g.keep(not ok)

    def with_guest(self, case, path, g, body):
        """Start @g, run body(g), stop it; keep its logs if anything failed."""
        before = self.res.failures()
        try:
            g.start()
            body(g)
        except Exception as e:          # pylint: disable=broad-except
            self.res.report(f'{case}/{path}', False, *failure(e, EXPECTED))
        finally:
            rc = g.quit()
            if rc not in (0, None):
                self.res.report(f'{case}/{path}', False,
                                f'QEMU exit status {rc}: {g.errors()}')
            g.keep(self.res.failures() > before)

    def all(self):
        cases = {
            'plain': self.case_plain,
            'viommu': self.case_viommu,
            'virtio-mem': self.case_virtio_mem,
            'hot-reset': self.case_hot_reset,
            'viommu-width': self.case_viommu_width,
            'mdev': self.case_mdev,
            'migration': self.case_migration,
            'migration-blocked': self.case_migration_blocked,
            'migration-error': self.case_migration_error,
            'migration-untracked': self.case_migration_untracked,
            'migration-hwpt': self.case_migration_hwpt,
            'migration-faults': self.case_migration_faults,
        }
        chosen = self.args.case or [c for c in cases if c not in ONLY_ASKED]
        paths = self.args.path or PATHS
        if self.args.group:
            groups = [tuple(g.split('/', 1)) for g in self.args.group]
        else:
            groups = [(c, p) for c in chosen for p in paths]
        for case, path in groups:
            check(case in cases and path in PATHS, f'no group {case}/{path}')
        # For l1_tier.py, which runs the groups that did not end again in
        # a new L1 if this one freezes.
        note('groups: ' + ' '.join(f'{c}/{p}' for c, p in groups))

        def run(case, path):
            note(f'group {case}/{path} begins')
            try:
                # A guard: an L2 guest on nested KVM on TCG stopped for
                # good when L1's KVM lost its TSC-deadline timer (now
                # off).  A group whose guest stopped answering runs again
                # with fresh guests, up to GROUP_RUNS times in all; a hang
                # in the last run, or any other failure, counts.
                self.res.rerun_on_hang(f'{case}/{path}',
                                       lambda: cases[case](path), GROUP_RUNS)
            finally:
                note(f'group {case}/{path} ends')

        # Side by side where that is safe: guests with a vIOMMU of their
        # own, and mdev guests, have hung at random when another L2 guest
        # ran beside them (nested virtualization on TCG), and the hot reset
        # guests share the devices behind the root ports.  Those run one
        # at a time.
        alone = ('viommu', 'hot-reset', 'viommu-width', 'mdev') + tuple(
            c for c in cases if c.startswith('migration'))
        t = time.monotonic()
        for i in range(self.args.repeat):
            if i:
                note(f'repeat {i + 1} of {self.args.repeat}')
            done = set()
            for case, path in groups:
                if (case, path) in done:
                    continue
                side = [p for c, p in groups if c == case and
                        (c, p) not in done]
                if self.args.jobs > 1 and case not in alone and len(side) > 1:
                    threads = [threading.Thread(target=run, args=(case, p))
                               for p in side]
                    for th in threads:
                        th.start()
                    for th in threads:
                        th.join()
                    done.update((case, p) for p in side)
                else:
                    run(case, path)
                    done.add((case, path))
            if self.res.failed:
                break
        note(f'all cases took {time.monotonic() - t:.0f} s')
        note(f'guests woken by a byte after {NUDGE_AFTER} s of silence: '
             f'{", ".join(NUDGED) or "none"}; groups run again after '
             f'a guest hang: {", ".join(self.res.reruns) or "none"}')
        self.table()
        return self.res.close()

    def table(self):
        if not self.figures:
            return
        note('figures (legacy | iommufd):')
        for case, by_path in self.figures.items():
            for path in PATHS:
                if path in by_path:
                    note(f'  {case:16} {path:8} {by_path[path]}')
