"""
QEMU launched and driven through QEMU's own python/qemu: qemu.machine's
QEMUMachine and QEMUQtestMachine, with what every tier wants of them:

- every wait bounded: the QMP handshake and the qtest connection within
  @launch_timeout, each QMP command within @qmp_timeout, events within the
  timeout asked for;
- QEMU's output (stdout and stderr) in @log_dir/NAME.log, readable while
  it runs and kept after it;
- how QEMU runs given by a wrapper= prefix: an environment (env), one CPU
  (taskset), another user with a memlock limit (prlimit, setpriv), strace;
- fds passed over QMP (getfd, add-fd) and qtest's port and memory access.
"""

import asyncio
import os
import threading

from qemu.machine import QEMUMachine
from qemu.machine.machine import QEMUMachineError, VMLaunchFailure
from qemu.machine.qtest import QEMUQtestMachine
from qemu.qmp import ExecuteError, QMPError

from pylib import procfs
from pylib.check import Fail

__all__ = ['ExecuteError', 'Machine', 'QtestMachine', 'as_user',
           'env_wrapper', 'taskset']

ACPI_PCIHP_EJ = 0xae00 + 0x8    # PIIX4 ACPI PCI hotplug eject register
QMP_LINE_LIMIT = 16 << 20       # the longest QMP message we read

_loops = threading.local()


def _thread_loop():
    """qemu.qmp's sync wrapper runs on the thread's asyncio loop: give each
    thread that starts a machine one of its own."""
    if getattr(_loops, 'loop', None) is None:
        _loops.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loops.loop)


def env_wrapper(env):
    """A wrapper= prefix that runs QEMU with @env added to its environment."""
    return ['env'] + [f'{k}={v}' for k, v in env.items()] if env else []


def taskset(cpu):
    """A wrapper= prefix that keeps QEMU on one of the CPUs."""
    return ['taskset', '-c', str(cpu % os.cpu_count())]


def as_user(uid, gid, memlock=None):
    """A wrapper= prefix that runs QEMU as @uid:@gid without supplementary
    groups and with RLIMIT_MEMLOCK @memlock bytes, as libvirt runs it."""
    out = []
    if memlock is not None:
        out += ['prlimit', f'--memlock={memlock}:{memlock}', '--']
    return out + ['setpriv', f'--reuid={uid}', f'--regid={gid}',
                  '--clear-groups', '--']


class _Ours:
    """What Machine and QtestMachine add to qemu.machine's classes."""

    def _ours(self, name, log_dir, qmp_timeout, launch_timeout):
        self.name = name
        self._log_dir = log_dir
        self.qmp_timeout = qmp_timeout
        self.launch_timeout = launch_timeout

    @property
    def log_path(self):
        return os.path.join(self._log_dir, self._name + '.log')

    def output(self):
        """What QEMU printed so far (stdout and stderr)."""
        try:
            with open(self.log_path, errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def _pre_launch(self):
        _thread_loop()
        super()._pre_launch()

    def _load_io_log(self):
        # get_log() after shutdown, without failing on bytes that are not
        # text in the locale's encoding.
        self._iolog = self.output() if self._qemu_log_path else None

    def _post_launch(self):
        super()._post_launch()
        self._qmp.settimeout(self.qmp_timeout)
        # 7.2's qemu.qmp opens the socket pair's stream with asyncio's
        # default line limit, 64 KiB, which an answer such as
        # query-qmp-schema's exceeds (its listening sockets get 256 KiB).
        self._qmp._qmp._reader._limit = QMP_LINE_LIMIT

    def start(self):
        """Launch QEMU and connect; Fail with its output if it did not."""
        try:
            self.launch()
        except VMLaunchFailure as e:
            raise Fail(f'{self.name}: QEMU did not start (status '
                       f'{e.exitcode}, {e.__cause__ or "no cause"}): '
                       f'{" | ".join(self.output().strip().splitlines())}'
                       ) from None
        return self

    @property
    def pid(self):
        """QEMU's pid, below the wrappers that did not exec it (strace)."""
        pid = self._popen.pid
        binary = os.path.realpath(self._binary)
        for _ in range(4):
            try:
                if os.path.realpath(f'/proc/{pid}/exe') == binary:
                    return pid
            except OSError:
                break
            kids = procfs.children(pid)
            if not kids:
                break
            pid = kids[0]
        return self._popen.pid

    def set_qmp_timeout(self, seconds):
        """Seconds each QMP command may take from now on."""
        self.qmp_timeout = seconds
        if self._qmp_connection:
            self._qmp.settimeout(seconds)

    def _fail(self, what, err):
        return Fail(f'{self.name}: QMP {what}: {type(err).__name__} {err}; '
                    f'QEMU said: {self.output().strip()[-500:]}')

    def reply(self, cmd, **args):
        """The whole QMP response to @cmd: {'return': ...} or {'error': ...}."""
        try:
            return self.qmp(cmd, args_dict=args)
        except (QMPError, QEMUMachineError, EOFError, OSError) as e:
            raise self._fail(cmd, e) from None

    def cmd(self, cmd, **args):
        """@cmd's return value; ExecuteError if QEMU refused it."""
        try:
            return self.command(cmd, conv_keys=False, **args)
        except ExecuteError:
            raise
        except (QMPError, QEMUMachineError, EOFError, OSError) as e:
            raise self._fail(cmd, e) from None

    def getfd(self, name, fd):
        """Pass @fd to QEMU as getfd @name, as libvirt does."""
        self.send_fd_scm(fd)
        return self.cmd('getfd', fdname=name)

    def add_fd_qmp(self, fd, fdset):
        """Pass @fd into fd set @fdset (QMP add-fd): /dev/fdset/@fdset."""
        self.send_fd_scm(fd)
        return self.cmd('add-fd', **{'fdset-id': fdset})

    def wait_event(self, name, timeout=60, **data):
        """The next QMP event @name whose data has @data; Fail after
        @timeout seconds."""
        try:
            ev = self.event_wait(name, float(timeout),
                                 {'data': data} if data else None)
        except asyncio.TimeoutError:
            ev = None
        except (QMPError, QEMUMachineError, EOFError, OSError) as e:
            raise self._fail(f'waiting for {name}', e) from None
        if ev is None:
            raise Fail(f'{self.name}: no QMP event {name} {data or ""} '
                       f'within {timeout} s')
        return ev

    def quit(self, timeout=60):
        """quit over QMP, or kill after @timeout s; QEMU's exit status."""
        if not self._launched:
            return self.exitcode()
        try:
            self.shutdown(timeout=timeout)
        except QEMUMachineError:
            pass                # it was killed; the status says so
        return self.exitcode()


class Machine(_Ours, QEMUMachine):
    """QEMU with QMP (on a socket pair), output in @log_dir/@name.log."""

    def __init__(self, binary, args, name, log_dir, wrapper=(),
                 qmp_timeout=300, launch_timeout=60):
        super().__init__(binary, args, wrapper=list(wrapper), name=name,
                         log_dir=log_dir, sock_dir=log_dir,
                         qmp_timer=launch_timeout)
        self._ours(name, log_dir, qmp_timeout, launch_timeout)


class QtestMachine(_Ours, QEMUQtestMachine):
    """
    QEMU with QMP and the qtest socket (in @sock_dir, default @log_dir),
    -accel qtest unless @accel says otherwise.  @owner (uid, gid): who
    QEMU runs as, when the wrapper drops privileges; it gets the qtest
    socket.
    """

    def __init__(self, binary, args, name, log_dir, wrapper=(),
                 sock_dir=None, owner=None, accel='qtest', qmp_timeout=300,
                 launch_timeout=60, qtest_timeout=60):
        super().__init__(binary, args, wrapper=list(wrapper), name=name,
                         sock_dir=sock_dir or log_dir,
                         qmp_timer=launch_timeout)
        self._ours(name, log_dir, qmp_timeout, launch_timeout)
        self.owner = owner
        self.accel = accel
        self.qtest_timeout = qtest_timeout

    @property
    def _base_args(self):
        # QEMUQtestMachine asks for -accel qtest; the qtest protocol works
        # with another accelerator too (the benchmarks' -accel kvm).
        args = super()._base_args
        i = len(args) - 1 - args[::-1].index('-accel')
        args[i + 1] = self.accel
        return args

    def _pre_launch(self):
        super()._pre_launch()
        self._qtest.settimeout(self.launch_timeout)
        if self.owner:
            os.chown(self._qtest_path, *self.owner)

    def _post_launch(self):
        super()._post_launch()
        self._qtest.settimeout(self.qtest_timeout)

    def qt(self, line):
        """A qtest command; what follows its OK."""
        try:
            resp = self.qtest(line).strip()
        except OSError as e:
            raise Fail(f'{self.name}: qtest {line[:60]!r}: {e}') from None
        if not resp.startswith('OK'):
            raise Fail(f'{self.name}: qtest {line[:60]!r}: expected OK, '
                       f'got {resp!r}')
        return resp[2:].strip()

    def outl(self, port, val):
        self.qt(f'outl 0x{port:x} 0x{val:x}')

    def inl(self, port):
        return int(self.qt(f'inl 0x{port:x}'), 16)

    def readl(self, addr):
        return int(self.qt(f'readl 0x{addr:x}'), 16)

    def readq(self, addr):
        return int(self.qt(f'readq 0x{addr:x}'), 16)

    def writeq(self, addr, val):
        self.qt(f'writeq 0x{addr:x} 0x{val:x}')

    def write(self, addr, data):
        self.qt(f'write 0x{addr:x} {len(data)} 0x{data.hex()}')

    def read(self, addr, length):
        return bytes.fromhex(self.qt(f'read 0x{addr:x} {length}')[2:])

    def acpi_unplug(self, dev_id, slot, timeout=60):
        """device_del, the guest's ACPI eject of @slot (pc machine), then
        DEVICE_DELETED."""
        self.cmd('device_del', id=dev_id)
        self.outl(ACPI_PCIHP_EJ, 1 << slot)
        return self.wait_event('DEVICE_DELETED', timeout, device=dev_id)
