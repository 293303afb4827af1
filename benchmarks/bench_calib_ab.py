"""The calibration's own part in the small-subnet error: sampling and the model's form, A/B in one run.

Measures, in one shuffled run of --rounds passes through the device's own profiler (the harness `calibrate`
uses; each subnet's figure is its lowest pass median, as calibration keeps), four sets of subnets of a LUT's
resolutions:

  uniform     --n-fit subnets drawn as `calibrate` drew them before (uniformly: `sample_specs`)
  stratified  --n-fit subnets spread over the LUT-sum range (`sample_stratified`, as `calibrate` draws now)
  extremes    the space's smallest and largest subnets at the lowest and highest resolution
  test        --n-test held-out subnets spread over the LUT-sum range (another seed), and the extremes

then fits the calibration on each fit set (A: uniform, B: stratified, C: stratified + extremes: what
`calibrate` now does) and, on C's fit set, alternative model forms (the stored ridge form without its
1/y^2 weights; the three-term form a * LUT sum + b * blocks + c), and prints each one's signed error on the
held-out subnets per size tercile (by LUT sum) and on the extremes (held out for A and B; fitted for C).

    python benchmarks/bench_calib_ab.py --lut cpu-ort.json [--device cpu-ort]
        [--n-fit 40] [--n-test 30] [--rounds 3] [--max-time-s 0.6] [--clock thread-cpu] [--json FILE]

Pinned to one core at raised priority where permitted: run it alone.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def errors_table(name, pred, meas, size):
    import numpy as np
    from ofa_profile.calibrate import by_size
    p, m = np.asarray(pred), np.asarray(meas)
    e = 100 * (p - m) / m
    rows = by_size(p, m, size)
    return {"name": name, "mean_signed_error_pct": round(float(e.mean()), 3),
            "within_5pct": round(float((abs(e) <= 5).mean()), 4), "within_10pct": round(float((abs(e) <= 10).mean()), 4),
            "worst_error_pct": round(float(e[abs(e).argmax()]), 3), "by_size": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lut", required=True)
    ap.add_argument("--device", default="cpu-ort")
    ap.add_argument("--n-fit", type=int, default=40)
    ap.add_argument("--n-test", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-time-s", type=float, default=0.6, help="timing per subnet and pass (device default 2 s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu", type=int, default=None)
    ap.add_argument("--clock", default="wall", help="wall | thread-cpu (an oversubscribed machine: see _clock.py)")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()

    from _pin import pin_to_one_core
    pin_to_one_core(args.cpu)

    import dataclasses
    import random

    import numpy as np

    from ofa_profile.calibrate import (_arch_key, apply_calibration, extreme_specs_at, features, fit_calibration,
                                       measure_subnets, sample_specs, sample_stratified)
    from ofa_profile.devices import load_device
    from ofa_profile.lut import load_lut

    lut = load_lut(args.lut)
    res = list(lut.resolutions)
    ext = extreme_specs_at(lut.space, res)
    ext_specs = [s for _, s in ext]
    uni = sample_specs(lut.space, args.n_fit, args.seed, res)
    strat = sample_stratified(lut, args.n_fit, args.seed, res, exclude=ext_specs)
    test = sample_stratified(lut, args.n_test, args.seed + 1000, res, exclude=ext_specs)
    allspecs, seen = [], set()
    for s in uni + strat + ext_specs + test:
        k = _arch_key(s)
        if k not in seen:
            seen.add(k)
            allspecs.append(s)
    order = list(range(len(allspecs)))
    random.Random(args.seed).shuffle(order)
    dev = load_device(args.device)
    timing = dataclasses.replace(dev.timing, max_time_s=args.max_time_s)
    t0 = time.time()
    from _clock import make_profiler_with_clock
    with tempfile.TemporaryDirectory() as tmp, make_profiler_with_clock(dev, args.clock, timing=timing) as prof:
        got = measure_subnets(prof, [allspecs[i] for i in order], Path(tmp) / "j.jsonl", args.seed, progress=False,
                              rounds=args.rounds)
    ms = {_arch_key(allspecs[i]): got[j] for j, i in enumerate(order)}
    secs = time.time() - t0
    M = lambda specs: [ms[_arch_key(s)] for s in specs]   # noqa: E731

    out = {"lut": args.lut, "clock": args.clock, "n_fit": args.n_fit, "n_test": args.n_test, "rounds": args.rounds,
           "max_time_s": args.max_time_s, "seconds": round(secs, 1), "loadavg_after": os.getloadavg(), "fits": []}

    def report(name, predict, note=""):
        pt = [predict(s) for s in test]
        r = errors_table(name, pt, M(test), [lut.lut_sum_ms(s) for s in test])
        r["extremes"] = [{"subnet": w, "r": s.r, "measured_ms": round(ms[_arch_key(s)], 4),
                          "predicted_ms": round(predict(s), 4),
                          "error_pct": round(100 * (predict(s) - ms[_arch_key(s)]) / ms[_arch_key(s)], 2)}
                         for w, s in ext]
        r["note"] = note
        out["fits"].append(r)
        print(f"{name:<40} test: mean {r['mean_signed_error_pct']:+6.2f} %, within 5 % {r['within_5pct']:.0%}, "
              f"10 % {r['within_10pct']:.0%}, worst {r['worst_error_pct']:+.1f} %  {note}")
        for t in r["by_size"]:
            print(f"    {t['tercile']:<7} n={t['n']:<3} LUT {t['size_range'][0]:.2f}..{t['size_range'][1]:.2f} ms: "
                  f"mean {t['mean_signed_error_pct']:+6.2f} %, within 5 % {t['within_5pct']:.0%}, "
                  f"worst {t['worst_error_pct']:+.1f} %")
        print("    extremes: " + ", ".join(f"{x['subnet']} r{x['r']} {x['error_pct']:+.1f} %" for x in r["extremes"]))

    report("LUT sum", lut.lut_sum_ms)
    for name, fs in (("A ridge-v1 on uniform", uni), ("B ridge-v1 on stratified", strat),
                     ("C ridge-v1 on stratified+extremes", strat + ext_specs)):
        cal = fit_calibration(fs, M(fs), lut, seed=args.seed)
        report(name, lambda s, cal=cal: apply_calibration(cal, s, lut),
               "(extremes fitted)" if "extremes" in name else "(extremes held out)")
    fit = strat + ext_specs
    y = np.array(M(fit))
    # the ridge form without the 1/y^2 weights
    from sklearn.linear_model import RidgeCV
    X = np.array([features(s, lut) for s in fit])
    mu, sd = X.mean(0), X.std(0)
    sd[sd == 0] = 1
    rm = RidgeCV(alphas=np.logspace(-4, 2, 25)).fit((X - mu) / sd, y)
    report("D ridge-v1 unweighted, strat+extremes",
           lambda s: float(rm.predict(((np.array(features(s, lut)) - mu) / sd)[None])[0]), "(extremes fitted)")
    # three terms: a * LUT sum + b * blocks + c (relative least squares)
    def f3(s):
        return [lut.lut_sum_ms(s), float(len(s.active_blocks())), 1.0]
    A = np.array([f3(s) for s in fit]) / y[:, None]
    coef, *_ = np.linalg.lstsq(A, np.ones(len(y)), rcond=None)
    report("E a*LUTsum + b*blocks + c, strat+extremes", lambda s: float(np.dot(f3(s), coef)),
           f"(extremes fitted; a={coef[0]:.3f} b={coef[1]:.4f} c={coef[2]:.4f})")
    print(f"{args.clock} clock; {len(allspecs)} subnets x {args.rounds} passes in {secs:.0f} s; load average after "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
