"""The few iommufd ioctls a test makes itself (linux/iommufd.h, 6.6+)."""

import ctypes
import fcntl
import os
import struct

from pylib import procfs
from pylib.check import check, expect


def _io(nr):
    return (ord(';') << 8) | nr         # _IO(IOMMUFD_TYPE, nr)


IOMMU_IOAS_ALLOC = _io(0x81)            # struct {size, flags, out_ioas_id}
IOMMU_IOAS_UNMAP = _io(0x86)            # struct {size, ioas_id, iova, length}
IOMMU_OPTION = _io(0x87)
IOMMU_OPTION_RLIMIT_MODE = 0
IOMMU_OPTION_OP_SET = 0
IOMMU_OPTION_OP_GET = 1
# struct iommu_option: size, option_id, op, __reserved, object_id, val64
OPTION_FMT = '=IIHHIQ'
SYS_pidfd_getfd = 438


def rlimit_mode(fd, op, val=0):
    """IOMMU_OPTION_RLIMIT_MODE of an iommufd: set it (OP_SET) or get it."""
    arg = struct.pack(OPTION_FMT, struct.calcsize(OPTION_FMT),
                      IOMMU_OPTION_RLIMIT_MODE, op, 0, 0, val)
    return struct.unpack(OPTION_FMT, fcntl.ioctl(fd, IOMMU_OPTION, arg))[5]


def open_accounted():
    """/dev/iommu with per-process memlock accounting, as libvirt sets it."""
    fd = os.open('/dev/iommu', os.O_RDWR)
    rlimit_mode(fd, IOMMU_OPTION_OP_SET, 1)
    mode = rlimit_mode(fd, IOMMU_OPTION_OP_GET)
    expect(mode == 1, 'IOMMU_OPTION_RLIMIT_MODE', '1 (per process)', mode)
    return fd


def ioas_alloc(fd):
    """A new IOAS on @fd: its id."""
    arg = bytearray(struct.pack('=III', 12, 0, 0))
    fcntl.ioctl(fd, IOMMU_IOAS_ALLOC, arg)
    return struct.unpack('=III', arg)[2]


def left_mapped(pid, ioas_ids):
    """
    Ask the kernel how much is still mapped in a process's IOASes:
    duplicate its /dev/iommu fd (pidfd_getfd) and unmap everything, which
    reports the bytes it unmapped.  Destructive: only at the end of a
    guest's life.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    held = procfs.fd_of(pid, '/dev/iommu')
    check(held, 'QEMU has /dev/iommu open')
    pidfd = os.pidfd_open(pid)
    fd = libc.syscall(SYS_pidfd_getfd, pidfd, held[-1], 0)
    os.close(pidfd)
    check(fd >= 0, f'pidfd_getfd: {os.strerror(ctypes.get_errno())}')
    total = 0
    try:
        for ioas in ioas_ids:
            arg = bytearray(struct.pack('=IIQQ', 24, ioas, 0, (1 << 64) - 1))
            fcntl.ioctl(fd, IOMMU_IOAS_UNMAP, arg)
            total += struct.unpack('=IIQQ', arg)[3]
    finally:
        os.close(fd)
    return total
