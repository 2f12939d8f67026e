"""Bounded waits, on the monotonic clock only."""

import time

from pylib.check import Fail


class Deadline:
    """A point @seconds from now on the monotonic clock."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self):
        """Seconds left (negative once passed)."""
        return self.end - time.monotonic()

    def passed(self):
        return self.left() <= 0


def until(cond, timeout, what, interval=0.2):
    """
    Call cond() every @interval seconds until it returns a true value, and
    return that value.  Fail after @timeout seconds: with @what, or with
    what() if it is callable (a message built from the state at the end).
    """
    deadline = Deadline(timeout)
    while True:
        got = cond()
        if got:
            return got
        if deadline.passed():
            raise Fail(what() if callable(what) else
                       f'{what} (not within {timeout} s)')
        time.sleep(min(interval, max(deadline.left(), 0.01)))
