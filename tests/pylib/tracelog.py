"""
QEMU's trace logs (the log backend: "event args", or
"PID@SECONDS.USEC:event args" with -msg timestamp=on).
"""

import re

LINE = re.compile(r'^(?:(\d+)@(\d+\.\d+):)?(\w+) ?(.*)$')


def lines(path):
    """The lines of a trace log ([] while it does not exist)."""
    try:
        with open(path, errors='replace') as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def events(path):
    """[(seconds or None, event, args)] of the trace lines of a log."""
    out = []
    for line in lines(path):
        m = LINE.match(line)
        if m:
            t = float(m.group(2)) if m.group(2) else None
            out.append((t, m.group(3), m.group(4)))
    return out


def find(text, event):
    """'event args' of each line of @event in a log's text (trace lines
    among others, such as libvirt's domain log)."""
    return re.findall(rf'^(?:\d+@[\d.]+:)?({event} .*)$', text, re.M)


def first(trace, event):
    """The time of the first @event of events()."""
    return next((t for t, e, _ in trace if e == event), None)


def arg(args, key):
    """The number after 'key=' in a trace line's arguments, or None."""
    m = re.search(r'\b%s=(0x[0-9a-f]+|-?\d+)' % key, args)
    return int(m.group(1), 0) if m else None
