"""The machine's own noise floor: how well do two measurements of the same whole subnet agree?

No latency predictor can agree with a measurement better than a second measurement of the same subnet
does.  For each device: --subnets seeded random subnets (all 25 resolutions), each measured end to end
--repeats times in separate passes (each pass a few seconds to minutes after the previous one); for
each subnet and each pair of passes, the relative difference.  Printed for the plain median of one
pass, and for the figure calibration uses (the lowest median of 2 passes, compared between two such
pairs when --repeats >= 4).

    python benchmarks/bench_noise.py [--devices cpu-ort] [--subnets 20] [--repeats 4] [--json FILE]

Pinned to one core at raised priority where permitted: run it alone.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def shares(rel) -> dict:
    import numpy as np
    rel = np.asarray(rel)
    return {"n": int(rel.size), "within_2pct": float((rel <= 0.02).mean()), "within_3pct": float((rel <= 0.03).mean()),
            "within_5pct": float((rel <= 0.05).mean()), "within_10pct": float((rel <= 0.10).mean()),
            "median_pct": float(np.median(rel) * 100), "max_pct": float(rel.max() * 100)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", default="cpu-ort")
    ap.add_argument("--subnets", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--cpu", type=int, default=None)
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()
    if args.repeats < 2 or args.subnets < 1:
        ap.error("--repeats must be >= 2 (pairs of repeats are compared) and --subnets >= 1")
    from _pin import pin_to_one_core
    pin_to_one_core(args.cpu)

    from ofa_profile.calibrate import sample_specs
    from ofa_profile.devices import load_device
    from ofa_profile.measure import make_profiler

    report = {}
    for name in args.devices.split(","):
        dev = load_device(name)
        specs = sample_specs(dev.space, args.subnets, args.seed, list(range(128, 225, 4)))
        med = [[0.0] * args.repeats for _ in specs]
        t0 = time.perf_counter()
        with make_profiler(dev) as prof:
            for r in range(args.repeats):
                order = list(range(len(specs)))
                for i in (order[::-1] if r % 2 else order):
                    med[i][r] = prof.measure_subnet(specs[i], 0).median_ms
        one = [abs(a - b) / min(a, b) for m in med for a, b in itertools.combinations(m, 2)]
        row = {"one_pass": shares(one)}
        if args.repeats >= 4:
            two = [abs(min(m[0], m[1]) - min(m[2], m[3])) / min(min(m[0], m[1]), min(m[2], m[3])) for m in med]
            row["min_of_two_passes"] = shares(two)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        report[name] = row
        for k in ("one_pass", "min_of_two_passes"):
            if k in row:
                s = row[k]
                print(f"[{name}] {k:17s}: {s['n']} pairs of repeated measurements of the same subnet agree within "
                      f"2/3/5/10 %: {s['within_2pct']:.0%}/{s['within_3pct']:.0%}/{s['within_5pct']:.0%}/"
                      f"{s['within_10pct']:.0%}; median difference {s['median_pct']:.1f} %, max {s['max_pct']:.1f} %",
                      flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
