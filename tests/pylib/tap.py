"""
The one TAP format of the tiers:

    1..N                          (first when the count is known, else last)
    ok 1 - NAME: DETAIL
    not ok 2 - NAME: REASON
    # a note
    TIER: P passed, F failed      (the closing line scripts/check.sh reads
                                   beside the TAP lines)

A result is one line (white space folded).  While a group of cases runs
with its results held (hold .. release), a group whose guest hung can run
again without its first results counting: rerun_on_hang.
"""

import collections
import threading
import time
import traceback

from pylib.check import Hang

Result = collections.namedtuple('Result', 'name ok detail hang')


def note(msg):
    """A TAP comment line per line of @msg."""
    for line in str(msg).splitlines() or ['']:
        print(f'# {line}', flush=True)


def failure(e, expected):
    """What a case that raised @e reports: (reason, whether its guest
    hung).  An exception of the kinds in @expected gives its message; any
    other (a bug of the test's own code, or of a library under it) gives
    its traceback as notes and a reason naming it, so that it fails its
    case and not the tier."""
    if isinstance(e, expected):
        return str(e), isinstance(e, Hang)
    note(''.join(traceback.format_exception(e)).rstrip())
    where = traceback.extract_tb(e.__traceback__)[-1:]
    at = f' at {where[0].filename}:{where[0].lineno}' if where else ''
    return f'unexpected {type(e).__name__}{at}: {e}', False


def one_line(text):
    return ' '.join(str(text).split())


class Tap:
    """The results of one tier, numbered as they are committed."""

    def __init__(self, tier, plan=None):
        self.tier = tier
        self.plan = plan
        self.n = 0
        self.failed = 0
        self.reruns = []
        self.lock = threading.Lock()
        self.local = threading.local()
        if plan is not None:
            print(f'1..{plan}', flush=True)

    def report(self, name, ok, detail='', hang=False):
        """A result: held while this thread holds a group, else printed."""
        result = Result(name, bool(ok), one_line(detail), hang)
        held = getattr(self.local, 'held', None)
        if held is not None:
            held.append(result)
        else:
            self.commit([result])

    def failures(self):
        """Failures so far: of the group this thread holds, if any."""
        held = getattr(self.local, 'held', None)
        if held is None:
            return self.failed
        return sum(1 for r in held if not r.ok)

    def hold(self):
        self.local.held = []

    def release(self):
        held, self.local.held = self.local.held, None
        return held

    def commit(self, results):
        with self.lock:
            for r in results:
                self.n += 1
                if not r.ok:
                    self.failed += 1
                line = f'{"ok" if r.ok else "not ok"} {self.n} - {r.name}'
                print(f'{line}: {r.detail}' if r.detail else line,
                      flush=True)

    def rerun_on_hang(self, label, body, runs):
        """
        Run body() with its results held, up to @runs times: while one of
        them says its guest hung and runs are left, they are dropped and
        body runs again with fresh guests; then they count.
        """
        for attempt in range(1, runs + 1):
            start = time.monotonic()
            self.hold()
            try:
                body()
            finally:
                held = self.release()
            note(f'{label} took {time.monotonic() - start:.0f} s')
            hung = [r for r in held if r.hang]
            if hung and attempt < runs:
                note(f'{label}: {hung[0].detail[:300]}; it runs again')
                self.reruns.append(label)
                continue
            self.commit(held)
            return

    def close(self):
        """The plan (if not given first) and the closing line; exit status."""
        passed = self.n - self.failed
        if self.plan is None:
            print(f'1..{self.n}', flush=True)
        elif self.plan != self.n:
            # What the plan promised and never came counts as failed.
            note(f'planned {self.plan} results, made {self.n}')
            self.failed += abs(self.plan - self.n)
        print(f'{self.tier}: {passed} passed, {self.failed} failed',
              flush=True)
        return 1 if self.failed else 0
