"""The test tiers' Python library, on QEMU's own python/qemu.

The tiers (tests/guest, tests/libvirt, tests/bench) import it as
``pylib``; their check.sh (or run.sh) puts this directory's parent and the
assembled tree's python/ (QEMU 7.2's qemu.qmp and qemu.machine) on
PYTHONPATH, and passes that into L1.

  check     Fail, Hang and check(): how a case says what it expected
  wait      bounded waits on the monotonic clock
  tap       the one TAP format of the tiers, with held results for reruns
  procfs    /proc and PCI sysfs readers (status, fds, threads, drivers)
  tracelog  QEMU's trace logs (log backend)
  vm        QEMU launched and driven: Machine and QtestMachine on
            qemu.machine, with bounded QMP, fd passing and qtest helpers
  devices   command-line pieces for assigned devices
  iommufd   the few iommufd ioctls a test makes itself
  l2        an L2 Linux guest on our QEMU and its control line
  inguest   what the tiers do inside an L2 guest (edu_guest, vfio-pci)
"""
