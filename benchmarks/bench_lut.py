"""Build (or finish) the shipped CPU LUTs and print the figures benchmarks/RESULTS.md quotes.

For each CPU device: the wall time of a full 25-resolution LUT (target <= 5 min per
runtime on a 2-core machine), then calibration on N fresh random subnets and its
accuracy on M further subnets (target: >= 99 % within +-5 %, >= 90 % within +-3 %).

    python benchmarks/bench_lut.py [--devices cpu-ort,cpu-torch,cpu-tflite] [--out-dir lut]
                                   [--samples 60] [--test-samples 50] [--rounds 2] [--passes 1] [--fresh]

--passes N measures every block in N passes and keeps its lowest median (`ofa-profile measure --passes`).

Resumable: rerun the same command after an interruption.  Runs one device at a time,
in this process, pinned to one core at raised priority where permitted.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", default="cpu-ort,cpu-torch,cpu-tflite")
    ap.add_argument("--out-dir", default=str(ROOT / "lut"))
    ap.add_argument("--resolutions", default="all")
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--test-samples", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2, help="passes over the subnets; each figure is their minimum")
    ap.add_argument("--passes", type=int, default=1, help="LUT passes; each block's figure is the lowest median")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--skip-calibration", action="store_true")
    ap.add_argument("--cpu", type=int, default=None, help="pin to this core [default: the last one]")
    args = ap.parse_args()

    from _pin import pin_to_one_core
    pin_to_one_core(args.cpu)

    from ofa_profile.calibrate import calibrate_device
    from ofa_profile.devices import load_device
    from ofa_profile.measure import make_profiler, measure_lut
    from ofa_profile.space import parse_resolutions

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in args.devices.split(","):
        dev = load_device(name)
        res = parse_resolutions(args.resolutions, dev.space)
        out = out_dir / f"{dev.lut_name()}.json"
        with make_profiler(dev) as prof:
            t0 = time.perf_counter()
            r = measure_lut(dev, out, res, seed=args.seed, fresh=args.fresh, profiler=prof, passes=args.passes)
            lut_s = time.perf_counter() - t0
            row = {"ops": r.total, "measured_now": r.measured, "passes": args.passes, "lut_wall_s": round(lut_s, 1)}
            print(f"[{name}] LUT {out.name}: {r.total} ops, {r.measured} measurements now ({args.passes} pass(es)) in {lut_s:.1f} s "
                  f"({lut_s / max(1, r.measured) * 1000:.0f} ms/op)", flush=True)
            if not args.skip_calibration:
                rep = calibrate_device(out, prof, args.samples, args.test_samples, seed=args.seed, rounds=args.rounds)
                c, s = rep["test_calibrated"], rep["test_lut_sum"]
                row.update({"calibration_measure_s": rep["measure_s"], "calibrated": c, "lut_sum": s,
                            "lut_sum_ratio": rep["ratio_lut_sum_to_measured_mean"]})
                print(f"[{name}] raw LUT sum / measured = {rep['ratio_lut_sum_to_measured_mean']:.3f}; "
                      f"LUT sum within 3/5/10 %: {s['within_3pct']:.0%}/{s['within_5pct']:.0%}/{s['within_10pct']:.0%}",
                      flush=True)
                print(f"[{name}] calibrated on {args.samples}, tested on {c['n']} fresh subnets: within 2/3/5/10 %: "
                      f"{c['within_2pct']:.1%}/{c['within_3pct']:.1%}/{c['within_5pct']:.1%}/{c['within_10pct']:.1%}; "
                      f"MAPE {c['mape_pct']:.2f} %; RMSE {c['rmse_ms']:.3f} ms; Spearman {c['spearman'] if c['spearman'] is None else round(c['spearman'], 4)}; "
                      f"measuring {rep['measure_s']} s", flush=True)
        results[name] = row
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
