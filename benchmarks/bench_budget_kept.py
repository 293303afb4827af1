"""Is the budget kept?  `pareto --budget B --margin auto --verify` for several budgets, in one interleaved run.

For each budget: the margin `--margin auto` takes (`LatencySource.auto_margin`: the 90th percentile of the
calibrated LUT's under-predictions on the held-out subnets predicted nearest the budget), the most accurate
subnet under budget x (1 - margin) (`search`, the accuracy predictor pareto uses by default), then every pick
measured end to end through the device's profiler, --rounds passes over all picks (odd passes reversed), each
pick's figure the lowest pass median (as `pareto --verify` and calibration measure).  Prints, per budget, the
margin and its basis, `measured X ms, N % over/under the predicted Y ms`, and whether the pick is within its budget.
The top-1 evaluation of `--verify` is left out (it does not bear on latency).

    python benchmarks/bench_budget_kept.py --lut cpu-ort.json [--device cpu-ort]
        [--budgets 2,3,5,8,12] [--rounds 2] [--refresh 5] [--clock thread-cpu] [--json FILE]

--clock thread-cpu measures by the thread's CPU time: use it only with a LUT measured and calibrated with the same
clock (benchmarks/bench_deploy_fidelity.py --measure-lut ... --calibrate --clock thread-cpu).
Pinned to one core at raised priority where permitted: run it alone.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lut", required=True)
    ap.add_argument("--device", default="cpu-ort")
    ap.add_argument("--budgets", default="2,3,5,8,12")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--effort", default="full", choices=["fast", "medium", "full"])
    ap.add_argument("--clock", default="wall", help="wall | thread-cpu (see _clock.py)")
    ap.add_argument("--cpu", type=int, default=None)
    ap.add_argument("--refresh", type=int, default=0, metavar="N",
                    help="first measure the device's drift since calibration on N held-out calibration subnets and "
                         "scale the latencies by it, as `pareto --refresh N` does (0: off)")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()

    from _clock import make_profiler_with_clock
    from _pin import pin_to_one_core
    pin_to_one_core(args.cpu)

    from ofa_profile.devices import load_device
    from ofa_profile.errors import OfaProfileError
    from ofa_profile.lut import load_lut
    from ofa_profile.pareto import VERIFY_TOLERANCE, resolve_predictor, search_resolutions, verify_noise, \
        verify_sentence
    from ofa_profile.replicates import per_item, run_passes
    from ofa_profile.search import latency_source_from_lut, search
    from ofa_profile.space import get_space

    lut = load_lut(args.lut)
    src = latency_source_from_lut(lut)
    pred, why = resolve_predictor(None, None, None, lut.space)
    sp = get_space(lut.space)
    res = search_resolutions(None, sp.name, src.resolutions, pred, lut)
    budgets = [float(b) for b in args.budgets.split(",")]
    dev = load_device(args.device)
    drift = None
    if args.refresh:
        from ofa_profile.calibrate import measure_drift
        with make_profiler_with_clock(dev, args.clock) as prof:
            prof.use_graph(lut.timed.graph)
            drift = measure_drift(lut, prof, args.refresh, progress=False)
        src = src.scaled(drift.factor, f"drift on {len(drift.specs)} subnets re-measured now")
        print(f"refresh: {dev.name} runs {drift.factor:.3f} x its speed at calibration ({drift.calibrated_utc})")
    picks = []
    for b in budgets:
        m = src.auto_margin(b)
        try:
            best = search(sp, src.fn, pred, b * (1 - m.pct / 100), seed=args.seed, resolutions=res, effort=args.effort)
        except OfaProfileError as exc:
            best = None
            print(f"{b:g} ms: {str(exc).splitlines()[0]}")
        picks.append((b, m, best))
    todo = [i for i, (_, _, best) in enumerate(picks) if best is not None]
    t0 = time.time()
    with make_profiler_with_clock(dev, args.clock) as prof:
        reps = run_passes(todo, args.rounds, per_item(lambda i, _p: prof.measure_subnet(picks[i][2].spec, args.seed)))
    rows = []
    print(f"{args.clock} clock; LUT {args.lut} (calibrated {(lut.calibration or {}).get('calibrated_utc')}); "
          f"accuracy predictor: {why}")
    for i, (b, m, best) in enumerate(picks):
        row = {"budget_ms": b, "margin": m.as_dict(), "search_budget_ms": b * (1 - m.pct / 100)}
        if best is None:
            row.update({"refused": True, "within_budget": False})
            rows.append(row)
            continue
        x = reps.lowest[i]
        noise = verify_noise(x.iqr_ms, x.median_ms, reps.medians(i))
        row.update({"arch": best.spec.canonical().to_ofa(), "predicted_ms": best.latency_ms,
                    "measured_ms": x.median_ms, "pass_medians_ms": list(reps.medians(i)), "iqr_ms": x.iqr_ms,
                    "noisy": noise[2], "within_budget": x.median_ms <= b,
                    "within_budget_plus_3pct": x.median_ms <= b * (1 + VERIFY_TOLERANCE)})
        rows.append(row)
        print(f"{b:5g} ms: margin {m.pct:4.1f} % ({m.basis}, {m.n_subnets} subnets) -> {best.spec.short()}: "
              f"{verify_sentence(x.median_ms, best.latency_ms)}; {'within' if row['within_budget'] else 'OVER'} "
              f"its budget{' (NOISY measurement)' if noise[2] else ''}")
    ok = sum(r["within_budget"] for r in rows)
    print(f"{ok}/{len(rows)} picks measure within their budget; measured in {time.time() - t0:.0f} s; load average "
          f"after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"lut": args.lut, "clock": args.clock, "rounds": args.rounds,
                                                   "drift": drift.as_dict() if drift else None, "rows": rows, "within_budget": ok, "n": len(rows),
                                                   "loadavg_after": list(os.getloadavg())}, indent=1))


if __name__ == "__main__":
    main()
