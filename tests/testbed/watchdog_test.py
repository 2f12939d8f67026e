#!/usr/bin/python3
"""
The watchdog tier: run-l1.sh's watchdog and l1_tier.py against an L1 that
really stops.  The test stops L1's vCPUs through the outer emulator's
monitor (QMP "stop"), which leaves the outer emulator as a real freeze
did: every thread asleep, no console output.

1. L1 stopped; the watchdog records L1's state and sends a serial BREAK
   and an NMI; the test lets L1 run again ("cont") and the watchdog sees
   it wake.
2. L1 stopped again and left stopped: the watchdog ends L1, run-l1.sh
   exits 123 and says why.
3. The state it recorded: registers of both vCPUs with their symbols,
   local APICs, the outer emulator's threads.
4. l1_tier.py runs the group that was running when L1 froze again in a
   new L1, also when it had ended once before (--repeat), and closes
   with the tier's line.

Usage (PYTHONPATH with tests/ and QEMU's python/): watchdog_test.py
        --kernel BZIMAGE --results DIR
Closes with "watchdog: N passed, M failed".
"""

import argparse
import asyncio
import os
import re
import sys
import time

from pylib.tap import Tap
from qemu.qmp import QMPClient

HERE = os.path.dirname(os.path.abspath(__file__))
SILENCE = 45


class Run:
    """l1_tier.py with the stand-in tier, its output read as it comes."""

    def __init__(self, args):
        self.args = args
        self.ctl = os.path.join(args.results, '.l1')
        self.out, self.err = [], []

    async def start(self):
        env = dict(os.environ, L1_SILENCE=str(SILENCE))
        self.proc = await asyncio.create_subprocess_exec(
            os.path.join(HERE, 'l1_tier.py'), 'wdtest', '--groups',
            '--kernel', self.args.kernel, '--results', self.args.results,
            '--timeout', '600', '--', os.path.join(HERE, 'watchdog-tier.sh'),
            '--repeat', '2',
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env)
        self.readers = [asyncio.create_task(self.read(self.proc.stdout,
                                                      self.out)),
                        asyncio.create_task(self.read(self.proc.stderr,
                                                      self.err))]

    async def read(self, stream, into):
        async for line in stream:
            line = line.decode(errors='replace')
            print(f'# {line}', end='', flush=True)
            into.append(line)

    async def wait_for(self, lines, pattern, timeout):
        """The first line of @lines that matches @pattern, within
        @timeout seconds (monotonic)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in lines:
                if re.search(pattern, line):
                    return line
            await asyncio.sleep(0.5)
        raise TimeoutError(f'no "{pattern}" within {timeout} s')

    async def monitor(self, cmd):
        with open(os.path.join(self.ctl, 'qmp')) as f:
            path = f.read().strip()
        qmp = QMPClient('watchdog-test')
        await asyncio.wait_for(qmp.connect(path), 15)
        try:
            await asyncio.wait_for(qmp.execute(cmd), 15)
        finally:
            await qmp.disconnect()


class Test:
    def __init__(self):
        self.tap = Tap('watchdog')

    def report(self, name, ok, detail):
        self.tap.report(name, ok, detail)

    async def main(self, args):
        run = Run(args)
        await run.start()
        try:
            await self.cases(run)
        finally:
            if run.proc.returncode is None:
                # Whatever failed, l1_tier.py ends its L1.
                run.proc.terminate()
                await run.proc.wait()

    async def cases(self, run):
        try:
            await run.wait_for(run.out, 'watchdog-test: freeze me', 300)
            await run.monitor('stop')
            await run.wait_for(run.err, 'sending L1 a serial BREAK',
                               SILENCE + 120)
            await run.monitor('cont')
            woke = await run.wait_for(run.err, 'L1 woke', 60)
            self.report('wake', True, woke.strip())
        except (TimeoutError, OSError) as e:
            self.report('wake', False, repr(e))
        try:
            await run.monitor('stop')
            stopped = time.monotonic()
            froze = await run.wait_for(run.err, r'L1 froze: .*silent', 300)
            await run.wait_for(run.err, r'run-l1: L1 froze', 60)
            took = time.monotonic() - stopped
            self.report('end', True, f'{froze.strip()} ({took:.0f} s after '
                        f'L1 stopped)')
        except (TimeoutError, OSError) as e:
            self.report('end', False, repr(e))
        await asyncio.wait_for(self.finish(run), 300)
        self.state(os.path.join(run.ctl + '.froze-1', 'watchdog.txt'))

    def state(self, path):
        try:
            with open(path) as f:
                state = f.read()
        except OSError as e:
            self.report('state', False, str(e))
            return
        cpus = re.findall(r'^CPU (\d): RIP (0x[0-9a-f]+) \((\S+)\)', state,
                          re.M)
        want = ['--- info registers -a', '--- info lapic 0',
                '--- info lapic 1', '--- outer emulator threads',
                '--- info pic']
        missing = [w for w in want if w not in state]
        self.report('state', not missing and len({c[0] for c in cpus}) == 2,
                    f'missing {missing}' if missing else
                    'vCPUs: ' + ', '.join(f'{c} at {s}' for c, _, s in cpus))

    async def finish(self, run):
        rc = await run.proc.wait()
        await asyncio.gather(*run.readers)
        last = run.out[-1].strip() if run.out else ''
        again = any('groups run again in a new L1: b' in l for l in run.out)
        # a and b in the first repeat, a in the second (b froze), then b
        # twice in the new L1 (the stand-in repeats as it was told).
        self.report('rerun', rc == 0 and last == 'wdtest: 5 passed, 0 failed'
                    and again, f'status {rc}, closing line "{last}"')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--kernel', required=True)
    ap.add_argument('--results', required=True)
    args = ap.parse_args()
    t = Test()
    try:
        asyncio.run(t.main(args))
    except (TimeoutError, asyncio.TimeoutError) as e:
        t.report('finish', False, f'l1_tier.py did not finish: {e!r}')
    return t.tap.close()


if __name__ == '__main__':
    sys.exit(main())
