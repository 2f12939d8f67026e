"""Figures and words shared by the benchmark report's modules."""

import statistics


PATHS = ["iommufd", "legacy"]
PHASES = [("start", "starting one device"),
          ("second", "a second device, same address space"),
          ("unplug", "unplugging it again (device_del)"),
          ("unplug-last", "unplugging the last device (device_del)")]
MAP_VARIANTS = [("qemu-iommufd", "QEMU, iommufd"),
                ("qemu-legacy", "QEMU, legacy"),
                ("ref-iommufd", "reference, iommufd"),
                ("ref-type1", "reference, type1")]


def ratio(a, b):
    return a / b if a is not None and b else None


def med(xs):
    return statistics.median(xs) if xs else None


def p_faster(a, b):
    """Share of run pairs in which a run of @a took less than one of @b."""
    if not a or not b:
        return None
    wins = sum((x < y) + 0.5 * (x == y) for x in a for y in b)
    return wins / (len(a) * len(b))


def fmt_r(r):
    return "—" if r is None else "%.2f" % r


def fmt_s(x):
    if x is None:
        return "—"
    return "%.3f s" % x if x >= 0.1 else "%.1f ms" % (x * 1000)


def fmt_kb(x):
    return "%.1f MiB" % (x / 1024) if x >= 10240 else "%d kB" % x


def worse(r, limit):
    return r is not None and round(r, 2) > limit


def noise_note(a, b, what):
    """How much the runs of two variants overlap, in words."""
    p = p_faster(a, b)
    if p is None:
        return None
    lo_a, hi_a, lo_b, hi_b = min(a), max(a), min(b), max(b)
    text = ("run to run: %s %s–%s, against %s–%s; the fastest runs give a "
            "ratio of %.2f; in %.0f%% of run pairs the first was the faster"
            % (what, fmt_s(lo_a), fmt_s(hi_a), fmt_s(lo_b), fmt_s(hi_b),
               lo_a / lo_b, p * 100))
    if 0.3 <= p <= 0.7:
        text += (", so the runs overlap: this difference is inside the noise "
                 "of this machine (a shared 2-core host emulating L1 with "
                 "TCG)")
    elif round(lo_a / lo_b, 2) <= 1.0:
        text += (": the fastest runs are as fast as the other variant's, so "
                 "the difference is in how often and how much a run is "
                 "slowed down, not in the least the work costs")
    return text


def in_noise(a, b):
    """Do the runs of @a and @b overlap too much to tell them apart?"""
    p = p_faster(a, b)
    return p is not None and (0.3 <= p <= 0.7 or
                              round(min(a) / min(b), 2) <= 1.0)


def sizes(raw):
    """The guest RAM sizes of the mapping benchmark, smallest first."""
    return sorted(raw["map"]["runs"], key=int)


def fmt_dur(secs):
    return "%d min %02d s" % divmod(int(secs), 60)


def rle(names, sep=", "):
    """'A, B ×5, C': runs of the same name collapsed."""
    out = []
    for n in names:
        if out and out[-1][0] == n:
            out[-1][1] += 1
        else:
            out.append([n, 1])
    return sep.join(n if k == 1 else "%s ×%d" % (n, k) for n, k in out) \
        or "none"


def traced_calls(cycles):
    """'NAME 1.2 ms' of each call name of traced hot-plug cycles whose
    median time is 1 ms or more."""
    names = sorted({n for c in cycles for n in c["calls"]})
    parts = []
    for n in names:
        d = med([c["calls"].get(n, [0, 0])[1] for c in cycles])
        if d >= 0.001:
            parts.append("%s %s" % (n, fmt_s(d)))
    return parts


def verdict(a, b):
    """'win' when every run of @a took less than every run of @b, 'loss'
    when every run took more, 'within noise' when the ranges overlap
    (or there is one run or none of either)."""
    if not a or not b or len(a) < 2 or len(b) < 2:
        return None
    if max(a) < min(b):
        return "win"
    if min(a) > max(b):
        return "loss"
    return "within noise"


def fmt_rv(a, b):
    """The ratio of the medians of two variants' runs, with its verdict."""
    r = ratio(med(a), med(b))
    v = verdict(a, b)
    return fmt_r(r) + (" (%s)" % v if v and r is not None else "")


def cell_range(xs):
    """'median (min–max)' of runs, or the one value."""
    if not xs:
        return "—"
    if len(xs) == 1:
        return fmt_s(xs[0])
    return "%s (%s–%s)" % (fmt_s(med(xs)), fmt_s(min(xs)), fmt_s(max(xs)))
