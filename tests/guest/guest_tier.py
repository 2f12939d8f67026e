#!/usr/bin/python3
"""The guest tier: Linux guests (L2) on our QEMU, driving assigned devices.

Runs inside the test bed's L1 (see tests/guest/README.md): boots the test
kernel as an L2 guest on the QEMU under test (-accel kvm, nested), with an
edu device of L1 assigned on the legacy path and, side by side, on the
iommufd path.  The guest's own driver (edu_guest.ko) and the guest's own
VFIO (guest-vfio) drive the device; the guest reports what it saw on a
control serial line and this script asserts it, together with what the
host saw: QEMU's trace, its pinned memory and fds, and the kernel's count
of what is left mapped.

Prints pylib.tap's TAP ("ok N - case/path: detail" or "not ok N -
case/path: reason" per check, the plan last), a table of figures, and
"guest: N passed, M failed".

The harness is harness.py, the case groups cases_*.py, the demo demo.py,
all on tests/pylib (QEMU, QMP, the guest's control line, what runs in the
guest); PYTHONPATH has tests/ and the assembled tree's python/ (check.sh
passes it into L1).
"""


import argparse
import os
import sys
import tempfile

from cases_mdev import MdevCases
from cases_migration import MigrationCases
from cases_migration_faults import MigrationFaultCases
from cases_plain import PlainCases
from cases_viommu import ViommuCases
from cases_vmem import VmemCases
from demo import demo
from harness import Harness
from pylib.devices import PATHS


class Tier(PlainCases, ViommuCases, VmemCases, MdevCases, MigrationCases,
           MigrationFaultCases, Harness):
    """The guest tier: the harness with every case group."""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--qemu', required=True)
    ap.add_argument('--kernel', required=True)
    ap.add_argument('--initrd', required=True)
    ap.add_argument('--faultinject', help='libfaultinject.so for the fault '
                    'cases')
    ap.add_argument('--workdir', default='/tmp',
                    help='where the sockets go (not on 9p)')
    ap.add_argument('--logdir', help='where logs of failed guests go')
    ap.add_argument('--case', action='append')
    ap.add_argument('--path', action='append', choices=PATHS)
    ap.add_argument('--group', action='append',
                    help='CASE/PATH: run exactly these groups, in order '
                    '(instead of --case and --path)')
    ap.add_argument('--repeat', type=int, default=1,
                    help='run the groups this many times, stopping after '
                    'a run with a failure (to hunt rare hangs)')
    ap.add_argument('--reboots', type=int, default=20)
    ap.add_argument('--cycles', type=int, default=10000)
    ap.add_argument('--mdev-cycles', type=int, default=20)
    ap.add_argument('--pingpong', type=int, default=10,
                    help='migrations back and forth in the migration group')
    ap.add_argument('--keep', action='store_true', help='keep the logs')
    ap.add_argument('--verbose', action='store_true',
                    help='the guest kernel logs to its console')
    ap.add_argument('--demo', action='store_true',
                    help='make demo: one guest on the iommufd path, with a '
                    'report')
    ap.add_argument('--jobs', type=int, default=1,
                    help='1 (default): one path after the other; 2: the '
                    'legacy and the iommufd path side by side, for the '
                    'cases where that has been safe (faster, but two L2 '
                    'guests side by side have stopped at the same moment)')
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    args.workdir = tempfile.mkdtemp(prefix='guest-tier.', dir=args.workdir)
    if args.demo:
        sys.exit(demo(args))
    sys.exit(Tier(args).all())


if __name__ == '__main__':
    main()
