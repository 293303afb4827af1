"""Search speed and quality: one budget, a 20-budget frontier, and the baselines, side by side.

For each space (OFA MobileNetV3 w1.0 and CompOFA w1.0), on a latency function and the accuracy
predictor fitted on the ImageNet reference CSV (ridge+gbm; resolutions 128..192 only, so the search
stays inside them):

  * `search()` (default effort) on each of --budgets budgets spread evenly between the fastest and the
    slowest subnet: wall time per budget (target <= 2 s) and the subnet found;
  * `pareto_search()` over the same budgets: wall time (target <= 10 s for 20 budgets);
  * baselines per budget: the best of --random (10,000) random *feasible* subnets and OFA's
    EvolutionFinder with --evo-generations (500) generations (population 100), same predictors;
    the found subnet must be at least as accurate (predicted) as both.

Latency (--latency): `lut:FILE_OR_DEVICE` (a LUT, calibrated if it holds a calibration),
`help:COLUMN` (a few-shot adapter fitted on all 5,000 rows of that HELP GPU column: a real device's
latency structure), or `macs` (0.05 ms per MMAC + 0.1 ms per block).  `auto` (default): the shipped
cpu-ort LUT if there is one, else help:lat_ms_titan_rtx_64, else macs.

    python benchmarks/bench_search.py [--latency auto] [--budgets 20] [--seed 0] [--spaces ...] [--json FILE]

Timings are wall-clock on whatever else the machine is doing: run it alone.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def latency_source(spec: str):
    from ofa_profile.paths import lut_dir, shared_data_dir
    from ofa_profile.search import lut_latency_fn, macs_latency_fn
    sd = shared_data_dir()
    if spec == "auto":
        if (lut_dir() / "cpu-ort.json").exists():
            spec = "lut:cpu-ort"
        elif sd is not None:
            spec = "help:lat_ms_titan_rtx_64"
        else:
            spec = "macs"
    if spec.startswith("lut:"):
        from ofa_profile.lut import load_lut
        lut = load_lut(spec[4:])
        return lut_latency_fn(lut), tuple(lut.resolutions), f"{spec} ({'calibrated' if lut.calibration else 'LUT sum'})"
    if spec.startswith("help:"):
        from ofa_profile.accuracy import ArchArrays
        from ofa_profile.adapt import fit_adapter, read_latency_csv
        from ofa_profile.search import adapter_latency_fn
        from ofa_profile.space import get_space
        data = read_latency_csv(sd / "reference" / "help-ofa-gpu-latency.csv")
        ad = fit_adapter(ArchArrays.from_specs(list(data.specs)), data.column(spec[5:]), spec[5:])
        return adapter_latency_fn(ad), get_space("ofa-mbv3-w1.0").resolutions, \
            f"{spec} (adapter fitted on all 5,000 HELP rows)"
    if spec == "macs":
        from ofa_profile.space import get_space
        return macs_latency_fn("ofa-mbv3-w1.0"), get_space("ofa-mbv3-w1.0").resolutions, "macs proxy"
    sys.exit(f"unknown --latency {spec!r}: use auto, lut:REF, help:COLUMN or macs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", default="auto")
    ap.add_argument("--spaces", default="ofa-mbv3-w1.0,compofa-mbv3-w1.0")
    ap.add_argument("--budgets", type=int, default=20)
    ap.add_argument("--random", type=int, default=10_000)
    ap.add_argument("--evo-generations", type=int, default=500)
    ap.add_argument("--effort", default="full", choices=["fast", "medium", "full"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()

    import numpy as np

    from ofa_profile.accuracy import resolve_accuracy_predictor
    from ofa_profile.search import fastest_latency_ms, ofa_evolution, pareto_search, random_search, search
    from ofa_profile.space import get_space

    lat, lat_res, lat_desc = latency_source(args.latency)
    acc = resolve_accuracy_predictor(log=lambda m: print(m))
    tr = acc.trained_resolutions
    res = tuple(r for r in lat_res if not tr or min(tr) <= r <= max(tr))
    print(f"latency: {lat_desc}; resolutions {res[0]}..{res[-1]} ({len(res)}); seed {args.seed}")
    report = {"latency": lat_desc, "resolutions": list(res), "seed": args.seed, "spaces": {}}
    for name in args.spaces.split(","):
        sp = get_space(name)
        fastest, _ = fastest_latency_ms(sp, lat, res)
        slowest = float(lat([sp.largest(max(res))])[0])
        budgets = [float(b) for b in np.linspace(fastest, slowest, args.budgets + 1)[1:]]
        t0 = time.perf_counter()
        front = pareto_search(sp, lat, acc, budgets, seed=args.seed, resolutions=res)
        t_front = time.perf_counter() - t0
        print(f"\n{sp.name}: {len(budgets)} budgets {budgets[0]:.2f}..{budgets[-1]:.2f} ms; frontier search "
              f"{t_front:.2f} s ({front.method}, {front.n_evaluated:,} subnets evaluated, {len(front.frontier)} on "
              f"the frontier)")
        print(f"  {'budget':>8} {'ours':>8} {'lat':>7} {'time s':>7} | {'random':>8} {'t':>5} | {'OFA evo':>8} {'t':>5} | "
              f"{'frontier':>8}  ok")
        rows = []
        for b, fb in zip(budgets, front.best):
            t0 = time.perf_counter()
            ours = search(sp, lat, acc, b, seed=args.seed, resolutions=res, effort=args.effort)
            t_ours = time.perf_counter() - t0
            t0 = time.perf_counter()
            rnd = random_search(sp, lat, acc, b, n=args.random, seed=args.seed, resolutions=res)
            t_rnd = time.perf_counter() - t0
            t0 = time.perf_counter()
            evo = ofa_evolution(sp, lat, acc, b, seed=args.seed, resolutions=res, generations=args.evo_generations)
            t_evo = time.perf_counter() - t0
            tol = 1e-9  # the same subnet predicted in two different batches may differ in the last float bits
            ok = ours.accuracy >= max(rnd.accuracy, evo.accuracy) - tol
            ok_f = fb is not None and fb.accuracy >= max(rnd.accuracy, evo.accuracy) - tol
            rows.append({"budget_ms": b, "ours": ours.as_dict(), "ours_accuracy": ours.accuracy, "ours_seconds": t_ours, "random": rnd.accuracy,
                         "random_seconds": t_rnd, "ofa_evolution": evo.accuracy, "ofa_evolution_seconds": t_evo,
                         "frontier_best": None if fb is None else fb.accuracy, "ours_ok": ok, "frontier_ok": ok_f})
            print(f"  {b:8.2f} {ours.accuracy * 100:7.3f}% {ours.latency_ms:7.2f} {t_ours:7.2f} | "
                  f"{rnd.accuracy * 100:7.3f}% {t_rnd:5.1f} | {evo.accuracy * 100:7.3f}% {t_evo:5.1f} | "
                  f"{(fb.accuracy * 100 if fb else float('nan')):7.3f}%  {'yes' if ok else 'NO'}"
                  f"{'' if ok_f else ' (frontier: NO)'}", flush=True)
        times = np.array([r["ours_seconds"] for r in rows])
        n_ok = sum(r["ours_ok"] for r in rows)
        n_ok_f = sum(r["frontier_ok"] for r in rows)
        gap_evo = np.array([r["ours_accuracy"] - r["ofa_evolution"] for r in rows])
        print(f"  one budget: median {np.median(times):.2f} s, max {times.max():.2f} s (target <= 2 s); "
              f"{len(budgets)}-budget frontier {t_front:.2f} s (target <= 10 s)")
        print(f"  ours >= both baselines on {n_ok}/{len(rows)} budgets (frontier's best: {n_ok_f}/{len(rows)}); "
              f"accuracy minus OFA evolution: min {gap_evo.min() * 100:+.3f} pt, mean {gap_evo.mean() * 100:+.3f} pt")
        report["spaces"][sp.name] = {"budgets": rows, "frontier_seconds": t_front, "frontier_points": len(front.frontier),
                                     "frontier_evaluated": front.n_evaluated, "median_search_seconds": float(np.median(times)),
                                     "max_search_seconds": float(times.max()), "ours_ok": n_ok, "frontier_ok": n_ok_f}
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
