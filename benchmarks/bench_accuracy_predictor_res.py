"""The ImageNet accuracy predictor over every resolution users pick: grouped cross-validation of model forms.

Data: OFA's reference ImageNet top-1 of the w1.0 supernet, ``ofa-w1.0-imagenet-accuracy.csv`` (2,610 subnets at
r = 128/160/192) and ``dynast-w1.0-r224-accuracy.csv`` (540 rows, 530 subnets, at r = 224), from ../shared/data.

Folds: 5, grouped by subnet (depths and active kernels / expands, at any resolution): no subnet is in a training
fold and its test fold (the 10 subnets the r=224 file holds twice stay together).  Every row is predicted by a fit
on the other folds; figures are given at r=224 and at r=128..192 separately: Kendall tau (pooled, and the mean
inside each resolution at 128..192), mean absolute error and mean signed error in points.

Before = today's predictor (``ofa-profile accuracy-predictor --data ofa-w1.0-imagenet-accuracy.csv``: ridge +
100 boosted trees on ``onehot-depth-r``, fitted on the 2,610 rows; refitted here, it reproduces the file shipped
before exactly).  At 224 it is scored on all 540 rows (it never saw r=224); at 128..192 by the same folds, trained
on the 128..192 rows of the training folds only.

After = each candidate form, fitted on both files by the same folds.  The chosen form is the one with the highest
tau at 224 among those whose 128..192 figures stay within 0.01 (tau, both kinds) and 0.1 points (MAE) of before's;
the shipped predictor records the command that fits it (``ofa-profile predictor info``).

Run:  .venv/bin/python benchmarks/bench_accuracy_predictor_res.py [--json] [--quick]
(CPU only; no timing, so no lock is needed; ~5-10 minutes on 2 loaded cores, --quick ~2.)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LOW, HIGH = (128, 160, 192), (224,)
# name -> (model, encoding, fit options)
CANDIDATES = {
    "today's form (ridge+gbm, onehot-depth-r, 100 trees depth 3)": ("ridge+gbm", "onehot-depth-r", {}),
    "r-spline offsets, ridge only": ("ridge", "onehot-depth-rspline", {}),
    "r-spline offsets (ridge+gbm, 100 trees depth 3)": ("ridge+gbm", "onehot-depth-rspline", {}),
    "r-spline, 200 trees lr 0.05 depth 4": ("ridge+gbm", "onehot-depth-rspline",
                                            {"gbm_trees": 200, "gbm_learning_rate": 0.05, "gbm_max_depth": 4}),
    "r-spline, 200 trees depth 4, r=224 rows x4": ("ridge+gbm", "onehot-depth-rspline",
                                                   {"gbm_trees": 200, "gbm_learning_rate": 0.05, "gbm_max_depth": 4,
                                                    "resolution_weights": {224: 4.0}}),
    "quadratic r, 300 trees depth 4, r=224 rows x4": ("ridge+gbm", "onehot-depth-r",
                                                      {"gbm_trees": 300, "gbm_learning_rate": 0.05,
                                                       "gbm_max_depth": 4, "resolution_weights": {224: 4.0}}),
    "r-spline, 300 trees depth 4, r=224 rows x2": ("ridge+gbm", "onehot-depth-rspline",
                                                   {"gbm_trees": 300, "gbm_learning_rate": 0.05, "gbm_max_depth": 4,
                                                    "resolution_weights": {224: 2.0}}),
    "r-spline, 300 trees depth 4, r=224 rows x4": ("ridge+gbm", "onehot-depth-rspline",
                                                   {"gbm_trees": 300, "gbm_learning_rate": 0.05, "gbm_max_depth": 4,
                                                    "resolution_weights": {224: 4.0}}),
}
QUICK = ("today's form (ridge+gbm, onehot-depth-r, 100 trees depth 3)", "r-spline, 300 trees depth 4, r=224 rows x4")


_ERR = False     # --json: the table goes to stderr, stdout holds the JSON only


def say(msg: str) -> None:
    print(msg, file=sys.stderr if _ERR else sys.stdout)


def _fmt(b: dict) -> str:
    wr = f" (within r {b['kendall_tau_within_r']:.4f})" if len(b.get("resolutions", ())) > 1 else ""
    return f"tau {b['kendall_tau']:.4f}{wr}  MAE {b['mae_pt']:.3f} pt  bias {b['bias_pt']:+.3f} pt"


def run(quick: bool) -> dict:
    import numpy as np

    from ofa_profile.accuracy import (band_scores, fit_accuracy_predictor, grouped_folds, imagenet_predictor_path,
                                      load_accuracy_predictor, read_accuracy_csvs)
    from ofa_profile.paths import shared_data_dir

    sd = shared_data_dir()
    if sd is None:
        sys.exit("../shared/data is absent (set OFA_PROFILE_SHARED_DATA): nothing to benchmark")
    ref = sd / "reference"
    low_csv, high_csv = ref / "ofa-w1.0-imagenet-accuracy.csv", ref / "dynast-w1.0-r224-accuracy.csv"
    ds = read_accuracy_csvs([low_csv, high_csv])
    y = np.asarray(ds.accuracy)
    r = np.array([s.r for s in ds.specs])
    folds = grouped_folds(ds, 5, seed=0)
    lo, hi = np.isin(r, LOW), np.isin(r, HIGH)

    def bands(pred: np.ndarray) -> dict:
        return {"224": {**band_scores(pred[hi], y[hi], r[hi]), "resolutions": list(HIGH)},
                "128..192": {**band_scores(pred[lo], y[lo], r[lo]), "resolutions": list(LOW)}}

    def oof(model: str, enc: str, opts: dict, train_mask: np.ndarray | None = None) -> np.ndarray:
        p = np.full(len(ds), np.nan)
        for test in folds:
            keep = np.ones(len(ds), bool)
            keep[test] = False
            if train_mask is not None:
                keep &= train_mask
            fit = fit_accuracy_predictor(ds.subset(np.flatnonzero(keep).tolist()), model=model, encoding=enc, seed=0,
                                         **opts)
            p[test] = fit.predict([ds.specs[i] for i in test])
        return p

    t0 = time.perf_counter()
    out: dict = {"data": [low_csv.name, high_csv.name], "rows": {"128..192": int(lo.sum()), "224": int(hi.sum())},
                 "subnets": int(len(set(map(tuple, [[*s.canonical().ks, *s.canonical().e, *s.canonical().d]
                                                    for s in ds.specs])))),
                 "folds": 5, "grouped_by": "subnet", "candidates": {}}
    say(f"grouped 5-fold CV on {len(ds)} rows ({int(lo.sum())} at 128..192, {int(hi.sum())} at 224; "
          f"{out['subnets']} distinct subnets)")
    # before: today's recipe, on the 128..192 file only
    low_only = fit_accuracy_predictor(ds.subset(np.flatnonzero(lo).tolist()), seed=0)
    before = oof("ridge+gbm", "onehot-depth-r", {}, train_mask=lo)
    before[hi] = low_only.predict([ds.specs[i] for i in np.flatnonzero(hi)])
    out["before"] = bands(before)
    say(f"  {'BEFORE (today: 2,610 rows at 128..192)':58s} 224: {_fmt(out['before']['224'])}")
    say(f"  {'':58s} 128..192: {_fmt(out['before']['128..192'])}")
    names = QUICK if quick else tuple(CANDIDATES)
    for name in names:
        model, enc, opts = CANDIDATES[name]
        t1 = time.perf_counter()
        b = bands(oof(model, enc, opts))
        b["model"], b["encoding"] = model, enc
        b["options"] = {k: ({str(kk): vv for kk, vv in v.items()} if isinstance(v, dict) else v)
                        for k, v in opts.items()}
        b["seconds"] = round(time.perf_counter() - t1, 1)
        bl, be = b["128..192"], out["before"]["128..192"]
        b["keeps_128_192"] = bool(bl["kendall_tau"] >= be["kendall_tau"] - 0.01
                                  and bl["kendall_tau_within_r"] >= be["kendall_tau_within_r"] - 0.01
                                  and bl["mae_pt"] <= be["mae_pt"] + 0.1)
        b["meets_224_targets"] = bool(b["224"]["mae_pt"] <= 0.4 and b["224"]["kendall_tau"] >= 0.95)
        out["candidates"][name] = b
        say(f"  {name:58s} 224: {_fmt(b['224'])}")
        say(f"  {'':58s} 128..192: {_fmt(bl)}  ({b['seconds']} s)")
    ok = {n: b for n, b in out["candidates"].items() if b["keeps_128_192"]}
    chosen = max(ok, key=lambda n: (ok[n]["224"]["kendall_tau"], -ok[n]["224"]["mae_pt"])) if ok else None
    out["chosen"] = chosen
    shipped = load_accuracy_predictor(imagenet_predictor_path())
    out["shipped"] = {"made_by": shipped.info.get("made_by"), "encoding": shipped.encoding, "model": shipped.model,
                      "trained_resolutions": list(shipped.trained_resolutions)}
    if chosen:
        c = out["candidates"][chosen]
        out["shipped"]["is_chosen"] = bool(
            shipped.encoding == c["encoding"] and shipped.model == c["model"]
            and all(shipped.info.get({"gbm_max_depth": "gbm_max_depth", "gbm_trees": "gbm_trees",
                                      "gbm_learning_rate": "gbm_learning_rate",
                                      "resolution_weights": "resolution_weights"}[k]) == v
                    for k, v in c["options"].items()))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    say(f"chosen by CV: {chosen}; shipped predictor: {out['shipped']['made_by']} "
          f"({'the chosen form' if out['shipped'].get('is_chosen') else 'NOT the chosen form'})")
    return out


def picks(budgets: list[float]) -> list[dict]:
    """``pareto --budget B`` (default device cpu-ort and its shipped LUT, seed 0, --no-speed-check) with the
    predictor of before (today's recipe refitted, as a --predictor file) and after (the shipped default)."""
    import subprocess
    import tempfile

    from ofa_profile.accuracy import fit_accuracy_predictor
    from ofa_profile.paths import shared_data_dir

    from ofa_profile.accuracy import imagenet_predictor_path, load_accuracy_predictor
    from ofa_profile.space import SubnetSpec

    exe = str(Path(sys.executable).parent / "ofa-profile")
    after_pred = load_accuracy_predictor(imagenet_predictor_path())
    before_specs: list = []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before.json"
        fit_accuracy_predictor(shared_data_dir() / "reference" / "ofa-w1.0-imagenet-accuracy.csv", seed=0).save(before)
        for b in budgets:
            row: dict = {"budget_ms": b}
            for which, extra in (("before", ["--predictor", str(before)]), ("after", [])):
                res = subprocess.run([exe, "pareto", "--budget", f"{b:g}ms", "--no-speed-check", "--no-plot", "--json",
                                      "--out-dir", tmp, *extra], capture_output=True, text=True, check=True)
                best = json.loads(res.stdout)["best"]
                if which == "before":
                    before_specs.append(SubnetSpec.from_ofa(best["arch"], space=best["arch"]["space"]))
                row[which] = {"arch": best["short"], "r": best["arch"]["r"], "latency_ms": best["latency_ms"],
                              "accuracy": best["accuracy"]}
            # the before pick scored by the after predictor: what the old search left on the table, by the new one
            row["before"]["accuracy_by_after_predictor"] = round(float(after_pred.predict([before_specs[-1]])[0]), 6)
            rows.append(row)
            say(f"  {b:g} ms: before {row['before']['arch']} ({row['before']['latency_ms']:.2f} ms, "
                f"{100 * row['before']['accuracy']:.2f} %; {100 * row['before']['accuracy_by_after_predictor']:.2f} % "
                f"by the new predictor) -> after {row['after']['arch']} ({row['after']['latency_ms']:.2f} ms, "
                f"{100 * row['after']['accuracy']:.2f} %)")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print all figures as JSON at the end")
    ap.add_argument("--quick", action="store_true", help="before, today's form and the chosen form only")
    ap.add_argument("--picks", default="5,6,8,11,15,20",
                    help="budgets (ms) of the README to show `pareto`'s pick at, before and after ('' : none)")
    ap.add_argument("--no-cv", action="store_true", help="the picks only")
    args = ap.parse_args()
    global _ERR
    _ERR = args.json
    out = {} if args.no_cv else run(args.quick)
    if args.picks:
        say("pareto --budget B (cpu-ort shipped LUT, seed 0, --no-speed-check): best subnet before -> after")
        out["picks"] = picks([float(b) for b in args.picks.split(",")])
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
