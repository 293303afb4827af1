"""How long must a whole subnet be timed?  Agreement of timing windows of different lengths on this machine.

One exported subnet (default: the space's smallest at r=160, `ofa-profile export --random-weights`) in a plain
ONNX Runtime session, 1 thread, timed for --seconds in rounds; each round takes one window of each kind in turn:
30 calls (what the stop rules give a fast subnet: ~30 ms), and windows of each --windows length in seconds.  Per
kind: the median of the window medians, their 5th/95th percentiles relative to it, and how often two windows
agree within 5 % (consecutive ones, and random pairs: two timings taken at unrelated moments, as a calibration
and a later check are).  This is what `timing.subnet_min_time_s` in the device specs is set from.

    python benchmarks/bench_timing_window.py [--seconds 60] [--windows 0.25,1.0] [--r 160] [--largest]

Pinned to one core at raised priority where permitted: run it alone.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--windows", default="0.25,1.0", help="window lengths in seconds, besides the 30-call window")
    ap.add_argument("--r", type=int, default=160)
    ap.add_argument("--largest", action="store_true", help="the space's largest subnet instead of its smallest")
    ap.add_argument("--cpu", type=int, default=None)
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()

    from _pin import pin_to_one_core
    from _plain import plain_session
    pin_to_one_core(args.cpu)
    import numpy as np

    from ofa_model.export import export_random
    from ofa_profile.blocks import subnet_input
    from ofa_profile.space import get_space
    from ofa_profile.timing import fix_malloc, set_threads
    fix_malloc()
    set_threads(1)
    sp = get_space("ofa-mbv3-w1.0")
    spec = sp.largest(args.r) if args.largest else sp.smallest(args.r)
    lengths = [float(v) for v in args.windows.split(",") if v.strip()]
    kinds = ["30 calls"] + [f"{v:g} s" for v in lengths]
    got: dict = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="window-") as tmp:
        path = Path(tmp) / "subnet.onnx"
        export_random(spec, "onnx", path, check=False)
        _, call = plain_session(path, subnet_input(spec).numpy())
        for _ in range(50):
            call()

        def window(n: int | None = None, t: float | None = None) -> float:
            ts, t0 = [], time.perf_counter()
            while (n is not None and len(ts) < n) or (t is not None and time.perf_counter() - t0 < t):
                a = time.perf_counter_ns()
                call()
                ts.append(time.perf_counter_ns() - a)
            return statistics.median(ts) / 1e6

        t0 = time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            got["30 calls"].append(window(n=30))
            for v, k in zip(lengths, kinds[1:]):
                got[k].append(window(t=v))
    rng = np.random.default_rng(0)
    out = {"subnet": spec.to_ofa(), "r": spec.r, "seconds": args.seconds, "kinds": {}}
    print(f"{'largest' if args.largest else 'smallest'} subnet, r={spec.r}: windows over {args.seconds:g} s")
    for k in kinds:
        v = np.asarray(got[k])
        rel = v / np.median(v)
        consecutive = float((np.abs(v[1:] / v[:-1] - 1) <= 0.05).mean())
        rand = float((np.abs(v[rng.permutation(len(v))] / v - 1) <= 0.05).mean())
        med, p5, p95 = float(np.median(v)), float(np.percentile(rel, 5)), float(np.percentile(rel, 95))
        out["kinds"][k] = {"n": int(len(v)), "median_ms": round(med, 5), "p5_rel": round(p5, 4),
                           "p95_rel": round(p95, 4), "consecutive_within_5pct": round(consecutive, 4),
                           "random_pairs_within_5pct": round(rand, 4)}
        print(f"  {k:>9}: n={len(v)}, median {med:.3f} ms, p5/p95 {p5:.3f}/{p95:.3f}, consecutive pairs within "
              f"5 %: {consecutive:.0%}, random pairs: {rand:.0%}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
