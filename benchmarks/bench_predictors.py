"""Accuracy predictors vs OFA's official one, and few-shot latency adaptation on the HELP GPU data.

Part 1 (../shared/data/reference/ofa-w1.0-imagenet-accuracy.csv, 2,610 ImageNet subnets): a seeded
80/20 split; every model/encoding is fitted on the 80 % and scored on the 20 % (Kendall tau, Spearman,
RMSE, and the mean Kendall tau inside each resolution), next to OFA's official MLP predictor
(ofa-acc-predictor.pth) on the same 20 %.  Sanity: the official predictor on the OFA tutorial subnet.

Part 2 (help-ofa-gpu-latency.csv: Titan RTX / Titan Xp at batch 1, 32, 64; 5,000 subnets): for each of
the six settings and k = 10, 20, fit on k seeded random subnets, score on the other 5,000 - k
(Spearman, share within +-10 % and +-5 %).  Modes:
  arch       architecture features only (what `ofa-profile adapt` does without --lut)
  lodo       + a prior: the same model fitted on ALL rows of the *other* GPU at the same batch size
             (leave-one-device-out: the target device's rows are never used except the k shots)
  ceiling    (reference, not few-shot) the arch model fitted on 4,000 rows of the target device itself,
             scored on the other 1,000: what the features can reach given the measurement noise

Part 3 (ofa_model/weights/accuracy-dataset.csv, the bundled supernet's own accuracy dataset, when shipped):
the same seeded 80/20 split and models, next to two baselines on the same 20 %: rank by MACs, and the
shipped ImageNet predictor; with the spread of the accuracies beside the binomial standard error of one
subnet's top-1 on the fixed val subset (an upper bound on the label noise: all subnets see the same images,
so their differences are less noisy than that), which limits what any predictor can reach.

    python benchmarks/bench_predictors.py [--seeds 20] [--skip-accuracy] [--skip-adapt] [--skip-bundled] [--json]

Figures: seed 0, and mean / min over --seeds seeds.  Nothing here is timed against a target.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TUTORIAL = {"d": [2, 2, 3, 4, 3], "ks": [5, 3, 3, 3, 5, 3, 3, 3, 7, 7, 3, 3, 5, 5, 7, 3, 3, 3, 5, 3],
            "e": [3, 3, 3, 3, 4, 4, 3, 3, 6, 3, 4, 3, 4, 4, 4, 3, 6, 6, 6, 3], "r": 192}
SETTINGS = ("titan_rtx_1", "titan_rtx_32", "titan_rtx_64", "titan_xp_1", "titan_xp_32", "titan_xp_64")


def accuracy_part(ref: Path, seed: int) -> dict:
    from ofa_profile.accuracy import (ENCODINGS, MODELS, evaluate_accuracy_predictor, fit_accuracy_predictor,
                                      load_official_predictor, read_accuracy_csv, split_dataset)
    from ofa_profile.space import SubnetSpec

    ds = read_accuracy_csv(ref / "ofa-w1.0-imagenet-accuracy.csv")
    tr, te = split_dataset(ds, 0.2, seed=seed)
    off = load_official_predictor(ref / "ofa-acc-predictor.pth", space="ofa-mbv3-w1.0")
    out = {"n_train": len(tr), "n_test": len(te), "split_seed": seed,
           "official_tutorial": off.predict_one(SubnetSpec.from_ofa(TUTORIAL)),
           "official": evaluate_accuracy_predictor(off, te).as_dict(), "ours": {}}
    print(f"accuracy predictors: {len(ds)} subnets, train {len(tr)} / test {len(te)} (split seed {seed}); "
          f"official predictor on the OFA tutorial subnet: {out['official_tutorial']:.4f} (tutorial: 0.8171)")
    hdr = f"  {'predictor':32s} {'Kendall':>8} {'Spearman':>9} {'RMSE':>8} {'tau in r':>9} {'fit s':>6}"
    print(hdr)
    o = out["official"]
    print(f"  {'OFA official MLP (ofa-onehot)':32s} {o['kendall_tau']:8.4f} {o['spearman']:9.4f} {o['rmse']:8.5f} "
          f"{o['kendall_tau_within_r']:9.4f} {'-':>6}")
    for model in MODELS:
        for enc in ENCODINGS:
            t0 = time.perf_counter()
            p = fit_accuracy_predictor(tr, model=model, encoding=enc, seed=seed)
            dt = time.perf_counter() - t0
            s = evaluate_accuracy_predictor(p, te).as_dict()
            out["ours"][f"{model}/{enc}"] = {**s, "fit_seconds": round(dt, 2)}
            print(f"  {model + ' (' + enc + ')':32s} {s['kendall_tau']:8.4f} {s['spearman']:9.4f} {s['rmse']:8.5f} "
                  f"{s['kendall_tau_within_r']:9.4f} {dt:6.1f}", flush=True)
    return out


def adapt_part(ref: Path, n_seeds: int) -> dict:
    import numpy as np

    from ofa_profile.accuracy import ArchArrays
    from ofa_profile.adapt import evaluate_few_shot, fit_adapter, read_latency_csv

    data = read_latency_csv(ref / "help-ofa-gpu-latency.csv")
    a = ArchArrays.from_specs(list(data.specs))
    cols = {s: data.column(f"lat_ms_{s}") for s in SETTINGS}
    other = {s: s.replace("rtx", "@").replace("xp", "rtx").replace("@", "xp") for s in SETTINGS}
    priors = {}
    for s in SETTINGS:  # leave-one-device-out prior: the other GPU, same batch size, all of its rows
        src = other[s]
        priors[s] = fit_adapter(a, cols[src], src).predict_ms(a)
    out: dict = {}
    print(f"\nfew-shot latency adaptation: {len(a)} subnets; seed 0 | mean over {n_seeds} seeds (min); "
          f"Spearman, share within +-10 %, +-5 %")
    print(f"  {'setting':14s} {'k':>3} {'mode':8s} {'Spearman':>9} {'w10':>7} {'w5':>7} | {'mean rho':>9} {'min rho':>8} "
          f"{'mean w10':>9} {'min w10':>8}")
    for s in SETTINGS:
        y = cols[s]
        out[s] = {}
        for k in (10, 20):
            for mode in ("arch", "lodo"):
                scores = [evaluate_few_shot(a, y, k, seed, prior_ms=priors[s] if mode == "lodo" else None,
                                            features=() if mode == "lodo" else
                                            ("n_blocks", "n_se_blocks", "pw_macs_m", "dw_macs_m", "mid_act_m"),
                                            device=s)[1] for seed in range(n_seeds)]
                s0 = scores[0]
                # a constant prediction (the fit kept only the intercept) has no rank correlation: count it as 0
                rho = np.nan_to_num(np.array([x.spearman for x in scores]), nan=0.0)
                w10 = np.array([x.within_10pct for x in scores])
                out[s][f"k{k}/{mode}"] = {"seed0": s0.as_dict(), "mean_spearman": float(rho.mean()),
                                          "min_spearman": float(rho.min()), "mean_within_10pct": float(w10.mean()),
                                          "min_within_10pct": float(w10.min()), "n_seeds": n_seeds}
                print(f"  {s:14s} {k:3d} {mode:8s} {rho[0]:9.4f} {s0.within_10pct * 100:6.1f}% "
                      f"{s0.within_5pct * 100:6.1f}% | {rho.mean():9.4f} {rho.min():8.4f} {w10.mean() * 100:8.1f}% "
                      f"{w10.min() * 100:7.1f}%", flush=True)
        _, ceil = evaluate_few_shot(a, y, 4000, 0, device=s)
        out[s]["ceiling_4000"] = ceil.as_dict()
        print(f"  {s:14s} {'4000':>3} {'ceiling':8s} {ceil.spearman:9.4f} {ceil.within_10pct * 100:6.1f}% "
              f"{ceil.within_5pct * 100:6.1f}%   (this model fitted on 4,000 rows of the target itself)")
        g = _gbm_ceiling(a, y)
        out[s]["ceiling_gbm_4000"] = g.as_dict()
        print(f"  {s:14s} {'4000':>3} {'gbm-ceil':8s} {g.spearman:9.4f} {g.within_10pct * 100:6.1f}% "
              f"{g.within_5pct * 100:6.1f}%   (boosted trees on 16 per-stage features, same 4,000 rows)", flush=True)
    return out


def _gbm_ceiling(a, y):
    """A high-capacity reference: boosted trees on per-stage block counts / MACs / activations + r,
    fitted on the same 4,000 rows as the linear ceiling, scored on the other 1,000."""
    import numpy as np
    from sklearn.ensemble import GradientBoostingRegressor

    from ofa_profile.adapt import arch_features, op_cost_table, score_latency
    sp_name = a.space
    X = np.concatenate([a.d, op_cost_table(sp_name, "macs").per_stage(a) / 1e6,
                        op_cost_table(sp_name, "mid_act").per_stage(a) / 1e6, arch_features(a, ("r",))], axis=1)
    perm = np.random.default_rng(0).permutation(len(y))
    tr, te = perm[:4000], perm[4000:]
    m = GradientBoostingRegressor(n_estimators=400, max_depth=4, learning_rate=0.05, random_state=0).fit(X[tr], y[tr])
    return score_latency(m.predict(X[te]), y[te])


def bundled_part(csv_path: Path, seed: int) -> dict:
    import csv
    import math

    import numpy as np
    from scipy.stats import kendalltau, spearmanr

    from ofa_profile.accuracy import (MODELS, ArchArrays, evaluate_accuracy_predictor, fit_accuracy_predictor,
                                      imagenet_predictor_path, load_accuracy_predictor, read_accuracy_csv,
                                      split_dataset)
    from ofa_profile.search import macs_table

    ds = read_accuracy_csv(csv_path)
    tr, te = split_dataset(ds, 0.2, seed=seed)
    acc = np.asarray(ds.accuracy, dtype=float)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    n_val = int(rows[0]["n_val"])
    p = float(acc.mean())
    out = {"csv": str(csv_path), "rows": len(ds), "n_train": len(tr), "n_test": len(te), "split_seed": seed,
           "n_val": n_val, "accuracy_mean": p, "accuracy_std": float(acc.std()),
           "accuracy_min": float(acc.min()), "accuracy_max": float(acc.max()),
           "label_se": math.sqrt(p * (1 - p) / n_val), "ours": {}}
    print(f"\nbundled accuracy dataset {csv_path.name}: {len(ds)} subnets (train {len(tr)} / test {len(te)}), "
          f"top-1 {100 * acc.min():.1f}..{100 * acc.max():.1f} % (mean {100 * p:.1f}, std {100 * acc.std():.2f} pt); "
          f"binomial SE of one top-1 on {n_val} val images: {100 * out['label_se']:.2f} pt")
    yt = np.asarray(te.accuracy, dtype=float)
    macs = macs_table(te.specs[0].space).total(ArchArrays.from_specs(list(te.specs)))
    out["macs_baseline"] = {"kendall_tau": float(kendalltau(macs, yt).statistic),
                            "spearman": float(spearmanr(macs, yt).statistic)}
    print(f"  {'predictor':32s} {'Kendall':>8} {'Spearman':>9} {'RMSE':>8}")
    print(f"  {'rank by MACs':32s} {out['macs_baseline']['kendall_tau']:8.4f} {out['macs_baseline']['spearman']:9.4f} "
          f"{'-':>8}")
    ip = imagenet_predictor_path()
    if ip.exists():
        s = evaluate_accuracy_predictor(load_accuracy_predictor(ip), te).as_dict()
        out["imagenet_predictor"] = s
        print(f"  {'shipped ImageNet predictor':32s} {s['kendall_tau']:8.4f} {s['spearman']:9.4f} {s['rmse']:8.5f}")
    for model in MODELS:
        pr = fit_accuracy_predictor(tr, model=model, encoding="onehot-depth-r", seed=seed)
        s = evaluate_accuracy_predictor(pr, te).as_dict()
        out["ours"][model] = s
        print(f"  {model + ' (onehot-depth-r)':32s} {s['kendall_tau']:8.4f} {s['spearman']:9.4f} {s['rmse']:8.5f}",
              flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20, help="seeds of the k-samples (figures: seed 0, mean, min)")
    ap.add_argument("--split-seed", type=int, default=0, help="seed of the 80/20 accuracy split")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-adapt", action="store_true")
    ap.add_argument("--skip-bundled", action="store_true")
    ap.add_argument("--bundled-data", default=str(ROOT / "ofa_model" / "weights" / "accuracy-dataset.csv"),
                    help="the bundled supernet's accuracy CSV (part 3)")
    ap.add_argument("--json", dest="json_out", default=None, help="also write all figures to this JSON file")
    args = ap.parse_args()

    from ofa_profile.paths import shared_data_dir
    sd = shared_data_dir()
    if sd is None:
        sys.exit("../shared/data is absent (set OFA_PROFILE_SHARED_DATA): nothing to benchmark")
    ref = sd / "reference"
    res = {}
    if not args.skip_accuracy:
        res["accuracy"] = accuracy_part(ref, args.split_seed)
    if not args.skip_adapt:
        res["adapt"] = adapt_part(ref, args.seeds)
    if not args.skip_bundled:
        if Path(args.bundled_data).exists():
            res["bundled"] = bundled_part(Path(args.bundled_data), args.split_seed)
        else:
            print(f"\n(part 3 skipped: no {args.bundled_data})")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
