#!/usr/bin/env python3
"""Join the parts of several benchmark runs into one raw.json and
host.json, for a run that L1's timeout cut short and further boots that
ran the parts it did not reach (BENCH_ONLY).  Each part is taken whole
from the run that has it, the later run's where several do; raw["boots"]
says which boot measured which parts, and the report says so.

Usage: tests/bench/merge.py RAW1 HOST1 RAW2 HOST2 [RAW3 HOST3...] OUTDIR
"""

import json
import os
import sys

ENV_KEYS = ("env", "l1_loadavg_start", "l1_loadavg_end", "took", "errors")


def main():
    args, out = sys.argv[1:-1], sys.argv[-1]
    runs = []
    for rp, hp in zip(args[0::2], args[1::2]):
        with open(rp) as f, open(hp) as g:
            runs.append((json.load(f), json.load(g)))
    raw = dict(runs[0][0])
    raw.pop("errors", None)
    boots = []
    for r, h in runs:
        parts = sorted(k for k in r if k not in ENV_KEYS and k != "boots")
        for k in parts:
            raw[k] = r[k]
        raw.setdefault("took", {}).update(r.get("took", {}))
        boots.append({"parts": parts, "date": h["date"],
                      "elapsed": h["elapsed"],
                      "host_loadavg": [h["loadavg_before"],
                                       h["loadavg_after"]],
                      "l1_loadavg": [r.get("l1_loadavg_start"),
                                     r.get("l1_loadavg_end")]})
    raw["boots"] = boots
    raw["l1_loadavg_end"] = runs[-1][0].get("l1_loadavg_end",
                                            runs[-1][0]["l1_loadavg_start"])
    host = dict(runs[-1][1])
    host["loadavg_before"] = runs[0][1]["loadavg_before"]
    host["elapsed"] = sum(h["elapsed"] for _, h in runs)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "raw.json"), "w") as f:
        json.dump(raw, f, indent=1, sort_keys=True)
    with open(os.path.join(out, "host.json"), "w") as f:
        json.dump(host, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
