"""Does the accuracy `pareto` predicts hold when the chosen subnet is measured?

For each of --budgets, run `ofa-profile pareto --budget B --device D --verify` (without --accuracy/--predictor,
--verify predicts with the predictor of the supernet it evaluates with, the bundled one by default, so predicted
and measured top-1 are of the same model on the same data), and print the chosen subnet, its predicted and
measured top-1 (BN recalibrated, --verify-images val images; 0: all) and latency.  Target (issue 16): every
measured top-1 within 2 points of the predicted one.

    python benchmarks/bench_accuracy_verify.py [--budgets 6,8,11,15,20] [--device cpu-ort] [--verify-images 0]
                                               [--verify-calib-images 2000]
                                               [--supernet W] [--json FILE]

Each budget is one `pareto --verify` process (search, an end-to-end latency measurement and one evaluation:
about 1-2 minutes on two CPU threads).  Run it alone: it times the subnets it picks.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE_POINTS = 2.0


def run_budget(budget_ms: float, args: argparse.Namespace, out_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "ofa_profile", "pareto", "--budget", f"{budget_ms:g}ms", "--device", args.device,
           "--seed", str(args.seed), "--verify", "--verify-images", str(args.verify_images),
           "--verify-calib-images", str(args.verify_calib_images), "--no-speed-check",
           "--no-plot", "--out-dir", str(out_dir), "--json"]
    if args.supernet:
        cmd += ["--supernet", args.supernet]
    t0 = time.monotonic()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        return {"budget_ms": budget_ms, "error": (res.stderr.strip().splitlines() or ["?"])[-1]}
    obj = json.loads(res.stdout)
    best, v, p = obj["best"], obj["verify"], obj["accuracy_predictor"]
    predicted = 100 * best["accuracy"]
    measured = 100 * v["top1"] if v.get("top1") is not None else None
    return {"budget_ms": budget_ms, "arch": best["short"], "r": best["arch"].get("r"),
            "predicted_top1": round(predicted, 3), "measured_top1": None if measured is None else round(measured, 3),
            "diff_points": None if measured is None else round(measured - predicted, 3), "n_val": v.get("n_val"),
            "predicted_latency_ms": v.get("predicted_latency_ms"), "measured_latency_ms": v.get("measured_latency_ms"),
            "predictor": p.get("describes"), "seconds": round(time.monotonic() - t0, 1),
            **({"top1_error": v["top1_error"]} if "top1_error" in v else {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", default="6,8,11,15,20", help="comma-separated budgets in ms")
    ap.add_argument("--device", default="cpu-ort")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verify-images", type=int, default=0, help="val images per evaluation (0: all)")
    ap.add_argument("--verify-calib-images", type=int, default=2000,
                    help="training images for BN recalibration (pareto's default)")
    ap.add_argument("--supernet", default=None, help="supernet weights [default: the bundled ones]")
    ap.add_argument("--json", default=None, help="also write the rows and the summary to this file")
    args = ap.parse_args()
    budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for b in budgets:
            row = run_budget(b, args, Path(tmp) / f"b{b:g}")
            rows.append(row)
            if "error" in row:
                print(f"{b:6g} ms  error: {row['error']}", flush=True)
                continue
            meas = "-" if row["measured_top1"] is None else f"{row['measured_top1']:.2f} %"
            diff = "" if row["diff_points"] is None else f" ({row['diff_points']:+.2f} pt)"
            print(f"{b:6g} ms  {row['arch']}  predicted {row['predicted_top1']:.2f} %  measured {meas}{diff}  "
                  f"n_val {row['n_val']}  latency {row['predicted_latency_ms']} ms predicted, "
                  f"{row['measured_latency_ms']} ms measured  ({row['seconds']} s)", flush=True)
    diffs = [r["diff_points"] for r in rows if r.get("diff_points") is not None]
    summary = {"budgets": len(budgets), "measured": len(diffs),
               "within_2_points": sum(abs(d) <= TOLERANCE_POINTS for d in diffs),
               "mean_abs_diff_points": round(sum(map(abs, diffs)) / len(diffs), 3) if diffs else None,
               "max_abs_diff_points": round(max(map(abs, diffs)), 3) if diffs else None,
               "mean_diff_points": round(sum(diffs) / len(diffs), 3) if diffs else None}
    print(f"within {TOLERANCE_POINTS:g} points: {summary['within_2_points']} of {summary['budgets']}; mean |diff| "
          f"{summary['mean_abs_diff_points']} pt, max {summary['max_abs_diff_points']} pt, mean signed "
          f"{summary['mean_diff_points']} pt (measured - predicted)")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
