"""How well the int8 drop of a subnet can be predicted: a drop model fitted on an int8 accuracy dataset.

Reads a CSV of ``ofa-profile accuracy-dataset --precision int8`` (int8 top-1 in ``accuracy``, fp32 top-1 in
``accuracy_fp32``), splits its subnets into a training and a held-out part (seeded, ``--test-frac``), fits
``--model`` on the training part with the drop (int8 top-1 - fp32 top-1) as the target, and prints on the held-out
subnets: Kendall tau and MAE of the predicted drop; Kendall tau of the int8 top-1 predicted as the measured fp32
top-1 + the predicted drop, and of an int8-top-1 predictor fitted directly; and, for scale, the drop's own spread
and the tau of the fp32 top-1 against the int8 top-1 (what assuming no drop ranks).

    python benchmarks/bench_int8_drop.py acc-int8.csv --model ridge --test-frac 0.25

The drop model is fitted on 0.5 + drop (a predictor's outputs are checked to be fractions in [0, 1]; a drop is
usually negative) and read back less 0.5.  No timing: it runs anywhere in seconds.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", help="an int8 accuracy dataset (accuracy-dataset --precision int8)")
    ap.add_argument("--model", default="ridge", help="predictor model (ridge, gbm, mlp, ridge+gbm)")
    ap.add_argument("--test-frac", type=float, default=0.25)
    ap.add_argument("--seeds", type=int, default=5, help="repeat the split with this many seeds (medians printed)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import numpy as np
    from scipy.stats import kendalltau

    from ofa_profile.accuracy import fit_accuracy_predictor, read_accuracy_csv, split_dataset
    from ofa_profile.accuracy_data import AccuracyDataset

    ds = read_accuracy_csv(args.csv)
    if ds.precision != "int8" or ds.accuracy_fp32 is None:
        sys.exit(f"{args.csv} is not an int8 accuracy dataset with its fp32 column")
    drop = ds.drop()
    d = 100 * drop.accuracy
    whole = {"subnets": len(ds), "drop_points": {"mean": float(d.mean()), "sd": float(d.std()),
                                                  "min": float(d.min()), "max": float(d.max())},
             "tau_int8_vs_fp32_all": float(kendalltau(ds.accuracy_fp32, ds.accuracy).statistic)}
    print(f"{len(ds)} subnets at r={','.join(map(str, ds.resolutions))}: drop (int8 - fp32) {d.mean():.2f} +- "
          f"{d.std():.2f} points (min {d.min():.2f}, max {d.max():.2f}); measured fp32 vs int8 top-1 Kendall tau "
          f"{whole['tau_int8_vs_fp32_all']:.3f}")
    n_train = len(ds) - int(round(args.test_frac * len(ds)))
    if n_train < 20:
        print(f"no drop model: {n_train} training subnets, and a predictor needs at least 20")
        if args.json:
            from ofa_profile.atomic import write_json_atomic
            write_json_atomic(args.json, {"csv": args.csv, **whole, "drop_model": None})
        return
    rows = []
    for seed in range(args.seeds):
        train, test = split_dataset(drop, args.test_frac, seed)
        shifted = AccuracyDataset(train.specs, 0.5 + train.accuracy, train.source, "int8-drop")
        p = fit_accuracy_predictor(shifted, model=args.model, seed=seed).predict(list(test.specs)) - 0.5
        perm = np.random.default_rng(seed).permutation(len(ds))      # split_dataset's held-out rows
        idx = sorted(perm[:int(round(args.test_frac * len(ds)))].tolist())
        fp32, int8 = ds.accuracy_fp32[idx], ds.accuracy[idx]
        tr8, _ = split_dataset(AccuracyDataset(ds.specs, ds.accuracy, ds.source, "int8"), args.test_frac, seed)
        direct = fit_accuracy_predictor(tr8, model=args.model, seed=seed).predict(list(test.specs))
        rows.append({"seed": seed, "n_train": len(train), "n_test": len(test),
                     "tau_drop": float(kendalltau(p, test.accuracy).statistic),
                     "mae_drop_points": float(100 * np.mean(np.abs(p - test.accuracy))),
                     "tau_int8_fp32_plus_drop": float(kendalltau(fp32 + p, int8).statistic),
                     "tau_int8_direct": float(kendalltau(direct, int8).statistic),
                     "tau_int8_vs_fp32": float(kendalltau(fp32, int8).statistic)})
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "seed"}
    out = {"csv": args.csv, **whole, "resolutions": list(ds.resolutions), "model": args.model,
           "median_over_seeds": med, "per_seed": rows}
    print(f"held-out ({med['n_test']:.0f} subnets, {args.seeds} seeded splits, medians; {args.model}): drop model "
          f"Kendall tau {med['tau_drop']:.3f}, MAE {med['mae_drop_points']:.2f} points; int8 top-1 as fp32 + "
          f"predicted drop tau {med['tau_int8_fp32_plus_drop']:.3f}; int8 predictor fitted directly tau "
          f"{med['tau_int8_direct']:.3f}; measured fp32 vs int8 tau {med['tau_int8_vs_fp32']:.3f}")
    if args.json:
        from ofa_profile.atomic import write_json_atomic
        write_json_atomic(args.json, out)
    else:
        print(json.dumps(med))


if __name__ == "__main__":
    main()
