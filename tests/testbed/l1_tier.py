#!/usr/bin/python3
"""
Run a test tier in the test bed's L1 and always close with its one line
"NAME: N passed, M failed", whatever happens to L1.

The command runs through run-l1.sh; its output is passed on as it comes,
its TAP results renumbered into one stream of pylib.tap's (a skipped
result fails: in L1 everything must run), its plans and closing line
replaced by ours.  When L1 ends normally, failures the tier's closing line
counts beyond its TAP results count as results of their own.  When it
does not (it froze and run-l1.sh's watchdog ended it, it timed out, it
failed to boot), the results printed so far count and the end counts as
one failure.

With --groups, the command is a tier that runs named groups of cases and
says so (guest_tier.py): "# groups: A B ..." first, then "# group A
begins" and "# group A ends" around each.  If L1 freezes, the groups that
did not end run again in a new L1 (`--group A --group B ...` appended to
the command); the group that was running when L1 froze runs again once,
and if L1 freezes in it again, it fails.  The frozen L1's logs stay in
RESULTS/.l1.froze-N.

Usage: l1_tier.py NAME [--groups] RUN_L1_OPTION... -- COMMAND [ARGS...]
"""

import os
import re
import signal
import subprocess
import sys

from pylib.tap import Tap

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_L1 = os.path.join(HERE, 'run-l1.sh')
FROZE = 123
RESULT = re.compile(r'^(not )?ok\b(?: \d+)?(?: -)? ?(.*)$')
PLAN = re.compile(r'^1\.\.\d+')


def say(name, msg):
    print(f'{name}: {msg}', flush=True)


def run_once(tap, name, l1_args, command):
    """One L1: its exit status, the tier's summary (or None), the TAP
    results and group notes seen."""
    proc = subprocess.Popen([RUN_L1] + l1_args + ['--'] + command,
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, errors='replace', bufsize=1)
    try:
        return read(tap, name, proc)
    finally:
        if proc.poll() is None:
            # Interrupted: run-l1.sh ends its L1.
            proc.terminate()
            proc.wait()


def read(tap, name, proc):
    summary = None
    passed = failed = 0
    groups, began, ended = [], [], []
    for line in proc.stdout:
        m = re.match(rf'^{re.escape(name)}: (\d+) passed, (\d+) failed', line)
        if m:
            summary = (int(m.group(1)), int(m.group(2)))
            continue
        if PLAN.match(line):
            continue
        m = RESULT.match(line)
        if m:
            ok = not m.group(1) and '# SKIP' not in line
            passed += ok
            failed += not ok
            tap.report(m.group(2).strip(), ok)
            continue
        print(line, end='', flush=True)
        m = re.match(r'^# groups: (.*)', line)
        if m:
            groups = m.group(1).split()
        m = re.match(r'^# group (\S+) (begins|ends)', line)
        if m:
            (began if m.group(2) == 'begins' else ended).append(m.group(1))
    rc = proc.wait()
    return rc, summary, (passed, failed), groups, began, ended


def keep_logs(l1_args, n):
    """The next L1 starts a new RESULTS/.l1: keep the frozen one's."""
    if '--results' in l1_args:
        ctl = os.path.join(l1_args[l1_args.index('--results') + 1], '.l1')
        if os.path.isdir(ctl):
            os.rename(ctl, f'{ctl}.froze-{n}')


def main():
    argv = sys.argv[1:]
    name = argv.pop(0)
    grouped = argv[:1] == ['--groups']
    if grouped:
        argv.pop(0)
    sep = argv.index('--')
    l1_args, command = argv[:sep], argv[sep + 1:]

    tap = Tap(name)
    freezes, rerun = 0, []
    todo = None                     # groups left; None: as the tier chooses
    while True:
        args = command + [a for g in (todo or []) for a in ('--group', g)]
        rc, summary, seen, groups, began, ended = run_once(tap, name, l1_args,
                                                           args)
        if summary is not None and rc in (0, 1):
            for _ in range(summary[1] - seen[1]):
                tap.report(name, False, 'a failure the tier counted beyond '
                           'its results (see above)')
            break
        if rc != FROZE or not grouped:
            tap.report(name, False, f'L1 ended abnormally (run-l1.sh '
                       f'status {rc})')
            break
        freezes += 1
        if not (todo or groups):
            # Froze before the tier named its groups: once more, whole.
            if freezes > 1:
                tap.report(name, False, 'L1 froze twice before the tier '
                           'began')
                break
            say(name, 'L1 froze before the tier began; it runs again')
            keep_logs(l1_args, freezes)
            continue
        # A group runs while it began more often than it ended (with
        # --repeat a group begins and ends once per repeat): the group
        # that was running runs again, with those that never ended.
        running = [g for g in dict.fromkeys(began)
                   if began.count(g) > ended.count(g)]
        todo = [g for g in (todo or groups)
                if g not in ended or g in running]
        for g in running:
            if g in rerun:
                todo.remove(g)
                tap.report(g, False, 'L1 froze in this group twice')
            else:
                rerun.append(g)
        keep_logs(l1_args, freezes)
        if not todo:
            break
        say(name, f'L1 froze; {", ".join(todo)} run again in a new L1')
    if freezes:
        print(f'# L1 froze {freezes} time(s); groups run again in a new L1: '
              f'{", ".join(rerun) or "none"}', flush=True)
    return tap.close()


def terminated(signum, frame):
    raise SystemExit(128 + signum)


if __name__ == '__main__':
    signal.signal(signal.SIGTERM, terminated)
    sys.exit(main())
