"""Verified search: are the subnets the search picks really inside their budget on the device?

For each device (default: the three CPU runtimes with shipped, calibrated LUTs), --budgets budgets spread
evenly between the fastest and the slowest subnet (inside the accuracy predictor's trained resolutions):
search the most accurate subnet under each budget on the calibrated LUT, then measure that subnet end to
end on the device (1 thread, the device's timing settings; the lowest median of --rounds passes, as
calibration measures) and count the budgets whose measured latency is
within budget + 3 % (target: >= 95 % of 20 budgets).  Also prints the prediction error of each chosen subnet.

    python benchmarks/bench_verify.py [--devices cpu-ort,cpu-torch,cpu-tflite] [--budgets 20] [--seed 0]
                                      [--margin PCT|auto] [--refresh N] [--json FILE]

--margin searches under budget x (1 - PCT/100) as `pareto --margin` does ('auto': the 90th percentile of the
calibrated LUT's under-predictions on its held-out subnets); the count is still against the full budget.
--refresh N first re-measures N of those held-out subnets and scales the latency model by the drift, as
`pareto --refresh N` does; the drift printed after the measurements is then relative to calibration time,
not to the refresh.

Pinned to one core at raised priority where permitted: run it alone.
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
    ap.add_argument("--budgets", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--effort", default="full", choices=["fast", "medium", "full"])
    ap.add_argument("--rounds", type=int, default=2, help="passes; each measured figure is their lowest median")
    ap.add_argument("--drift-subnets", type=int, default=5,
                    help="calibration test subnets measured again to report the machine's drift")
    ap.add_argument("--cpu", type=int, default=None, help="pin to this core [default: the last one]")
    ap.add_argument("--margin", default="0", help="safety margin in percent, or 'auto' (as pareto --margin)")
    ap.add_argument("--refresh", type=int, default=0,
                    help="as pareto --refresh: before searching, re-measure this many held-out calibration subnets "
                         "and scale the latency model by the drift (0: off)")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()

    from _pin import pin_to_one_core
    pin_to_one_core(args.cpu)

    import numpy as np

    from ofa_profile.accuracy import resolve_accuracy_predictor
    from ofa_profile.calibrate import measure_drift
    from ofa_profile.devices import load_device
    from ofa_profile.lut import load_lut
    from ofa_profile.measure import make_profiler
    from ofa_profile.search import fastest_latency_ms, latency_source_from_lut, search
    from ofa_profile.space import SubnetSpec, get_space

    acc = resolve_accuracy_predictor(accuracy="bundled", log=print)     # the figures below were measured with it
    report = {"seed": args.seed, "budgets": args.budgets, "devices": {}}
    for name in args.devices.split(","):
        dev = load_device(name)
        lut = load_lut(name)
        if lut.calibration is None:
            sys.exit(f"LUT {name} is not calibrated: run benchmarks/bench_lut.py first")
        src = latency_source_from_lut(lut)
        refresh = None
        if args.refresh:
            t_r = time.perf_counter()
            with make_profiler(dev) as prof:
                refresh = measure_drift(lut, prof, args.refresh, rounds=args.rounds, progress=False)
            src = src.scaled(refresh.factor, "refresh")
            print(f"\n{name}: refresh: {len(refresh.specs)} held-out calibration subnets measure {refresh.factor:.3f} x "
                  f"their calibration figures; latency model scaled by it ({time.perf_counter() - t_r:.0f} s)")
        lat = src.fn
        sp = get_space(lut.space)
        tr = acc.trained_resolutions
        res = tuple(r for r in lut.resolutions if not tr or min(tr) <= r <= max(tr))
        fastest, _ = fastest_latency_ms(sp, lat, res)
        slowest = float(lat([sp.largest(max(res))])[0])
        budgets = [float(b) for b in np.linspace(fastest, slowest, args.budgets + 1)[1:]]
        margin = src.auto_margin_pct() if args.margin == "auto" else float(args.margin)
        rows = []
        print(f"\n{name}: {len(budgets)} budgets {budgets[0]:.2f}..{budgets[-1]:.2f} ms, resolutions "
              f"{res[0]}..{res[-1]}, margin {margin:.1f} %")
        print(f"  {'budget':>8} {'predicted':>9} {'measured':>9} {'IQR':>6} {'err %':>6}  within budget+3 %")
        t0 = time.perf_counter()
        # with a margin the lowest budgets can fall below the fastest subnet: the search then refuses them (as
        # `pareto --margin` does) and those budgets count as failures
        margin_ok = [b * (1 - margin / 100) >= fastest for b in budgets]
        if not all(margin_ok):
            print(f"  {len(budgets) - sum(margin_ok)} budget(s) below the fastest subnet once the margin is taken: "
                  f"counted as failures")
        budgets = [b for b, ok in zip(budgets, margin_ok) if ok]
        n_refused = len(margin_ok) - len(budgets)
        chosen = [search(sp, lat, acc, b * (1 - margin / 100), seed=args.seed, resolutions=res, effort=args.effort)
                  for b in budgets]
        t_search = time.perf_counter() - t0
        meas = [[] for _ in chosen]
        # the machine's drift since calibration: the first --drift-subnets test subnets of the calibration,
        # measured again now the same way (their figures then are stored in the LUT)
        then = [s for s in lut.calibration.get("samples", []) if s.get("split") == "test"][:args.drift_subnets]
        then_specs = [SubnetSpec.from_ofa(s["arch"], space=lut.space) for s in then]
        now_ms = [[] for _ in then]
        with make_profiler(dev) as prof:   # as calibration does: the lowest median of 2 passes
            for r in range(args.rounds):
                for j, s in enumerate(then_specs):
                    now_ms[j].append(prof.measure_subnet(s, args.seed).median_ms)
                order = list(range(len(chosen)))
                for i in (order[::-1] if r % 2 else order):
                    meas[i].append(prof.measure_subnet(chosen[i].spec, args.seed))
        drift = float(np.median([min(n) / s["measured_ms"] for n, s in zip(now_ms, then)])) if then else 1.0
        print(f"  drift: {len(then)} calibration test subnets measure {drift:.3f} x their figures at calibration "
              f"time ({lut.created_utc})")
        # the model was already scaled by the refresh factor: what is left to divide out is the drift since then
        residual = drift / (refresh.factor if refresh else 1.0)
        for b, best, ms in zip(budgets, chosen, meas):
            m = min(ms, key=lambda x: x.median_ms)
            ok = m.median_ms <= b * 1.03
            ok_drift = m.median_ms / residual <= b * 1.03
            rows.append({"ok_drift_corrected": ok_drift, "budget_ms": b, "arch": best.spec.canonical().to_ofa(), "predicted_ms": best.latency_ms,
                         "measured_ms": m.median_ms, "pass_medians_ms": [x.median_ms for x in ms],
                         "iqr_ms": m.iqr_ms, "runs": m.count,
                         "error_pct": 100 * (best.latency_ms - m.median_ms) / m.median_ms, "ok": ok})
            print(f"  {b:8.2f} {best.latency_ms:9.2f} {m.median_ms:9.2f} {m.iqr_ms:6.2f} "
                  f"{rows[-1]['error_pct']:+6.2f}  {'yes' if ok else 'NO'}", flush=True)
        n_ok = sum(r["ok"] for r in rows)
        n_ok_d = sum(r["ok_drift_corrected"] for r in rows)
        rows += [{"budget_ms": None, "refused_by_margin": True, "ok": False, "ok_drift_corrected": False}] * n_refused
        err = np.abs([r["error_pct"] for r in rows if "error_pct" in r])
        print(f"  {name}: measured within budget + 3 % on {n_ok}/{len(rows)} budgets ({n_ok / len(rows):.0%}; "
              f"target >= 95 %); within budget on {sum(r['measured_ms'] <= r['budget_ms'] for r in rows if 'measured_ms' in r)}/"
              f"{len(rows)}{f' ({n_refused} refused by the margin)' if n_refused else ''}; |prediction error| mean {err.mean():.2f} %, max {err.max():.2f} %; "
              f"search {t_search:.0f} s, all {time.perf_counter() - t0:.0f} s")
        print(f"  {name}: divided by the drift {'since the refresh ' if refresh else ''}({residual:.3f}), within budget "
              f"+ 3 % on {n_ok_d}/{len(rows)} budgets")
        report["devices"][name] = {"margin_pct": margin, "mean_predicted_accuracy": float(np.mean([c.accuracy for c in chosen])), "rows": rows, "ok": n_ok, "n": len(rows), "drift": drift, "ok_drift_corrected": n_ok_d,
                                   "refresh": refresh.as_dict() if refresh else None,
                                   "mean_abs_error_pct": float(err.mean()), "max_abs_error_pct": float(err.max())}
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
