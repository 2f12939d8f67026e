#!/usr/bin/python3
"""
Watch an L1 test bed from outside; run-l1.sh starts this beside the outer
emulator.

L1's init prints a heartbeat on the console every 20 s, and the command's
output is copied there too, so a console that stays silent for --silence
seconds means L1 stopped, whatever froze underneath: nothing inside L1
can notice that.  The watchdog then

1. records L1's state from the outer emulator's monitor (vCPU registers
   with the symbol of each RIP, local APICs, PIC/IO-APIC, query-stats,
   the outer emulator's threads and their stacks) in CTL/watchdog.txt,
2. tries to wake L1 with an interrupt (a BREAK on a serial line L1
   keeps open) and an NMI, and waits for a new heartbeat,
3. if none comes, ends the outer emulator and writes CTL/frozen, which
   run-l1.sh reports (exit status 123).

Every firing is logged, one line each, in CTL/watchdog.log.

Usage: l1_watchdog.py --ctl DIR --pidfile FILE --qmp SOCKET
                      [--silence SECS (90)] [--system-map FILE]
"""

import argparse
import asyncio
import bisect
import os
import re
import signal
import subprocess
import sys
import time

from qemu.qmp import QMPClient, QMPError

HEARTBEAT = re.compile(rb'l1-init: \[[0-9.]+\] alive')
# How long a command on the outer emulator's monitor may take: a monitor
# that does not answer means its main loop is stuck, which is a finding.
QMP_TIMEOUT = 15
# How long L1 has to answer the NMI with a heartbeat: a woken L1 finds
# its heartbeat overdue and beats at once.
WAKE_WAIT = 30
POLL = 2


def say(msg):
    print(f'run-l1: watchdog: {msg}', file=sys.stderr, flush=True)


class SymbolMap:
    """Kernel symbols from System.map, to name the RIP of a vCPU."""

    def __init__(self, path):
        self.addrs, self.names = [], []
        if not path or not os.path.exists(path):
            return
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[1] in 'tTwW':
                    self.addrs.append(int(parts[0], 16))
                    self.names.append(parts[2])

    def name(self, addr):
        i = bisect.bisect_right(self.addrs, addr) - 1
        if i < 0 or addr - self.addrs[i] > 0x10000:
            return '?'
        return f'{self.names[i]}+{addr - self.addrs[i]:#x}'


class Watchdog:
    def __init__(self, args):
        self.args = args
        self.ctl = args.ctl
        self.console = os.path.join(self.ctl, 'console.log')
        self.qmp = None
        self._pid = None
        self.symbols = SymbolMap(args.system_map)

    def pid(self):
        """The outer emulator's pid, once it wrote its pidfile."""
        if self._pid is None:
            try:
                with open(self.args.pidfile) as f:
                    self._pid = int(f.read().strip())
            except (OSError, ValueError):
                pass
        return self._pid

    def alive(self):
        pid = self.pid()
        if pid is None:
            return True         # not started yet
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False

    def console_size(self):
        try:
            return os.path.getsize(self.console)
        except OSError:
            return 0

    def heartbeats(self):
        try:
            with open(self.console, 'rb') as f:
                return len(HEARTBEAT.findall(f.read()))
        except OSError:
            return 0

    def log(self, line):
        with open(os.path.join(self.ctl, 'watchdog.log'), 'a') as f:
            f.write(line + '\n')

    async def connect(self):
        """Connect once L1 is up: a monitor that answered then and does
        not answer later tells that the outer main loop got stuck."""
        while self.alive():
            if os.path.exists(self.args.qmp):
                client = QMPClient('l1-watchdog')
                try:
                    await asyncio.wait_for(client.connect(self.args.qmp),
                                           QMP_TIMEOUT)
                    self.qmp = client
                    return
                except (OSError, QMPError, asyncio.TimeoutError):
                    pass
            await asyncio.sleep(0.5)

    async def execute(self, cmd, **arguments):
        if self.qmp is None:
            raise QMPError('no monitor connection')
        return await asyncio.wait_for(self.qmp.execute(cmd, arguments),
                                      QMP_TIMEOUT)

    async def hmp(self, line):
        return await self.execute('human-monitor-command',
                                  **{'command-line': line})

    def threads(self, pid):
        """Per thread: name, state, wchan and CPU ticks."""
        out = {}
        for tid in sorted(os.listdir(f'/proc/{pid}/task'), key=int):
            try:
                with open(f'/proc/{pid}/task/{tid}/stat') as f:
                    stat = f.read()
                with open(f'/proc/{pid}/task/{tid}/wchan') as f:
                    wchan = f.read().strip() or '-'
            except OSError:
                continue
            comm = stat[stat.index('(') + 1:stat.rindex(')')]
            fields = stat[stat.rindex(')') + 2:].split()
            out[tid] = (comm, fields[0], wchan,
                        int(fields[11]) + int(fields[12]))
        return out

    async def record(self, silent):
        """L1's state, as the outer emulator sees it."""
        pid = self.pid()
        lines = [f'=== {time.strftime("%H:%M:%S")}: L1 console silent for '
                 f'{silent:.0f} s']
        try:
            with open(self.console, 'rb') as f:
                tail = f.read()[-2000:].decode(errors='replace')
            lines += ['--- last console lines'] + tail.splitlines()[-15:]
        except OSError:
            pass
        if pid:
            a = self.threads(pid)
            await asyncio.sleep(5)
            b = self.threads(pid)
            lines.append('--- outer emulator threads: name state wchan '
                         'CPU ticks in 5 s')
            for tid, (comm, state, wchan, ticks) in b.items():
                used = ticks - a.get(tid, (0, 0, 0, ticks))[3]
                lines.append(f'{tid} {comm} {state} {wchan} +{used}')
        answered = True
        for cmd, arguments in (('query-status', {}),
                               ('query-cpus-fast', {}),
                               ('query-stats', {'target': 'vcpu'})):
            try:
                r = await self.execute(cmd, **arguments)
                lines.append(f'--- {cmd}: {r}')
            except (QMPError, asyncio.TimeoutError, OSError) as e:
                lines.append(f'--- {cmd}: no answer ({e!r})')
                answered = False
        hmps = ['info registers -a', 'info pic', 'info irq']
        hmps += [f'info lapic {i}' for i in range(2)]
        for line in hmps if answered else []:
            try:
                text = await self.hmp(line)
            except (QMPError, asyncio.TimeoutError, OSError) as e:
                text = f'no answer ({e!r})\n'
            lines.append(f'--- {line}')
            lines += text.splitlines()
            if line == 'info registers -a':
                lines += self.where(text)
        if not answered:
            lines.append('--- the monitor did not answer: the outer '
                         "emulator's main loop is stuck")
        if pid:
            lines.append('--- outer emulator stacks (gdb)')
            try:
                gdb = subprocess.run(
                    ['gdb', '-batch', '-p', str(pid), '-ex',
                     'thread apply all bt 12'], capture_output=True,
                    text=True, timeout=90)
                lines += [l for l in gdb.stdout.splitlines()
                          if l.startswith(('#', 'Thread'))]
            except (OSError, subprocess.SubprocessError) as e:
                lines.append(f'no stacks: {e!r}')
        with open(os.path.join(self.ctl, 'watchdog.txt'), 'a') as f:
            f.write('\n'.join(lines) + '\n')
        return answered

    def where(self, regs):
        """
        Per vCPU: RIP with its symbol, halted or not, interrupts on or
        off.  A halted vCPU is in L1 itself: L1's KVM intercepts HLT, so
        an L2 vCPU never sits halted in the outer emulator.
        """
        out = ['--- where the vCPUs are']
        cpu = -1
        for line in regs.splitlines():
            m = re.match(r'CPU#(\d+)', line)
            if m:
                cpu = int(m.group(1))
            m = re.search(r'RIP=([0-9a-f]+) RFL=([0-9a-f]+).*HLT=(\d)', line)
            if m:
                rip, rfl = int(m.group(1), 16), int(m.group(2), 16)
                out.append(f'CPU {cpu}: RIP {rip:#x} '
                           f'({self.symbols.name(rip)}), '
                           f'{"halted" if m.group(3) == "1" else "running"}, '
                           f'interrupts {"on" if rfl & 0x200 else "off"}')
        return out

    def end(self, why):
        with open(os.path.join(self.ctl, 'frozen'), 'w') as f:
            f.write(why + '\n')
        pid = self.pid()
        if pid:
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + wait
                while self.alive() and time.monotonic() < deadline:
                    time.sleep(0.2)

    async def run(self):
        await self.connect()
        size, since = self.console_size(), time.monotonic()
        while self.alive():
            await asyncio.sleep(POLL)
            now = self.console_size()
            if now != size:
                size, since = now, time.monotonic()
                continue
            silent = time.monotonic() - since
            if silent < self.args.silence:
                continue
            say(f'L1 silent for {silent:.0f} s: recording its state in '
                f'{self.ctl}/watchdog.txt')
            answered = await self.record(silent)
            beats = self.heartbeats()
            woke = False
            if answered:
                # A BREAK on the command's serial line (which L1 keeps
                # open) raises an ordinary interrupt: a CPU whose timer
                # was lost leaves idle and programs it again, which an
                # NMI does not make it do.  The NMI is for a CPU that
                # has interrupts off.
                say('sending L1 a serial BREAK and an NMI')
                for cmd, arguments in (('chardev-send-break',
                                        {'id': 'serial1'}),
                                       ('inject-nmi', {})):
                    try:
                        await self.execute(cmd, **arguments)
                    except (QMPError, asyncio.TimeoutError, OSError):
                        pass
                deadline = time.monotonic() + WAKE_WAIT
                while time.monotonic() < deadline and self.alive():
                    await asyncio.sleep(POLL)
                    if self.heartbeats() > beats:
                        woke = True
                        break
            took = time.monotonic() - since
            if woke:
                say(f'L1 woke ({took:.0f} s after it fell '
                    f'silent)')
                self.log(f'woke {took:.0f}')
                size, since = self.console_size(), time.monotonic()
                continue
            why = (f'L1 froze: its console was silent for {silent:.0f} s and '
                   f'{"it did not wake" if answered else "the outer emulator monitor did not answer"}'
                   f'; ended after {took:.0f} s (state in '
                   f'{self.ctl}/watchdog.txt)')
            say(why)
            self.log(f'ended {took:.0f}')
            self.end(why)
            break
        if self.qmp is not None:
            try:
                await asyncio.wait_for(self.qmp.disconnect(), 5)
            except (QMPError, asyncio.TimeoutError, OSError):
                pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--ctl', required=True)
    ap.add_argument('--pidfile', required=True)
    ap.add_argument('--qmp', required=True)
    ap.add_argument('--silence', type=float, default=90)
    ap.add_argument('--system-map')
    args = ap.parse_args()
    asyncio.run(Watchdog(args).run())


if __name__ == '__main__':
    main()
