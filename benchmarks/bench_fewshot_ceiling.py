"""How predictable is each HELP GPU latency column at all?  A model-agnostic ceiling for few-shot adaptation.

Fits a gradient-boosted tree model (scikit-learn's HistGradientBoostingRegressor, log latency) on a
seeded 4,000 of HELP's 5,000 measured OFA subnets with a full per-block encoding (resolution, depth per
stage, and kernel / expand / active for each of the 20 block slots) and reports Spearman and the share
within +-10 % on the other 1,000, next to the Spearman of the total depth alone.  Where even this fit stays
far from the few-shot target (Spearman >= 0.95, >= 90 % within +-10 %), the limit is the data, not the
number of samples.

    python benchmarks/bench_fewshot_ceiling.py [--data ../shared/data/reference/help-ofa-gpu-latency.csv]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def encode(r: int, d: list[int], ks: list[int], e: list[int]) -> list[float]:
    f = [float(r), float(sum(d))] + [float(x) for x in d]
    for s in range(5):
        for b in range(4):
            act = b < d[s]
            f += [ks[s * 4 + b] * act, e[s * 4 + b] * act, float(act)]
    return f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--n-fit", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import numpy as np
    import pandas as pd
    from scipy.stats import spearmanr
    from sklearn.ensemble import HistGradientBoostingRegressor

    from ofa_profile.paths import shared_data_dir
    path = Path(args.data) if args.data else (shared_data_dir() or Path("../shared/data")) / "reference" / \
        "help-ofa-gpu-latency.csv"
    df = pd.read_csv(path)
    X = np.array([encode(int(r.r), json.loads(r.d), json.loads(r.ks), json.loads(r.e)) for r in df.itertuples()])
    idx = np.random.default_rng(args.seed).permutation(len(df))
    tr, te = idx[:args.n_fit], idx[args.n_fit:]
    for col in [c for c in df.columns if c.startswith("lat_ms_")]:
        y = df[col].to_numpy(dtype=float)
        m = HistGradientBoostingRegressor(max_iter=500, learning_rate=0.05, random_state=args.seed)
        m.fit(X[tr], np.log(y[tr]))
        p = np.exp(m.predict(X[te]))
        rho = spearmanr(p, y[te]).statistic
        within = float((np.abs(p - y[te]) / y[te] <= 0.10).mean())
        rho_d = spearmanr(X[te, 1], y[te]).statistic
        print(f"{col[7:]:14s} fitted on {len(tr)}: Spearman {rho:.3f}, within +-10 % {within:.1%} "
              f"(n={len(te)}); Spearman of total depth alone {rho_d:.3f}", flush=True)


if __name__ == "__main__":
    main()
