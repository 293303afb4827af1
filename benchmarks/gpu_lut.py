"""GPU LUTs with PyTorch CUDA at batch 1 and 64, calibrated, and how well LUT sums predict whole nets.

For a session with a GPU (the `device` tool's H100/H200).  For each batch size:

1. measure the full w1.0 LUT with the ``cuda`` device spec (torch-cuda: each call synchronised),
   resumable and in chunks, stopping cleanly before ``--max-minutes`` (rerun to continue);
2. measure the per-call synchronisation overhead (an empty call + sync) and one tiny kernel + sync;
3. calibrate the LUT (``calibrate_device``: ridge on LUT features, stored in the LUT) on
   ``--samples`` seeded random subnets and test on ``--test-samples`` others;
4. on the same measured subnets compare predictors of whole-net latency:
   ``lut_sum`` (raw), ``lut_sum_minus_sync`` = LUT sum - (n_blocks - 1) x sync overhead (no fit: a whole
   net pays one synchronisation, a LUT sum one per block), ``linear_launch`` = a x LUT sum + c x n_blocks + b
   (least squares on the fit split: c is the per-block launch/sync term), and the stored ridge calibration;
5. cross-check wall-clock+sync against CUDA-event times on a few whole nets.

Outputs in ``--out-dir``: ``cuda.json`` and ``cuda-b64.json`` (LUTs with fingerprints and calibration),
``gpu_report.json`` (every figure above, with the command and seeds).

    python benchmarks/gpu_lut.py --out-dir out/gpu [--batch-sizes 1,64] [--resolutions all]
        [--samples 60] [--test-samples 40] [--seed 0] [--cuda-graphs] [--max-minutes 9]

``--device cpu-torch --resolutions 128 --samples 10 --test-samples 5`` runs the same pipeline on a CPU
(a dry run of this script, not a GPU figure).  Exit status 3: stopped by --max-minutes, rerun to continue.
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


def _load_spec(name: str):
    """The device spec; without jsonschema (the GPU machine may lack it) it is read unvalidated."""
    from ofa_profile.devices import DeviceSpec, load_device
    try:
        return load_device(name)
    except ImportError:
        from ofa_profile.paths import device_specs_dir
        from ofa_profile.timing import TimingConfig
        obj = json.loads((device_specs_dir() / f"{name}.json").read_text())
        print(f"note: jsonschema is missing: {name}.json read without validation", file=sys.stderr)
        return DeviceSpec(name=obj["name"], description=obj["description"], runtime=obj["runtime"],
                          transport=obj["transport"], space=obj.get("space", "ofa-mbv3-w1.0"),
                          num_threads=obj.get("num_threads", 1), batch_sizes=tuple(obj.get("batch_sizes", [1])),
                          timing=TimingConfig.from_mapping(obj.get("timing")),
                          runtime_options=obj.get("runtime_options", obj.get("cuda", {})),
                          path=str(device_specs_dir() / f"{name}.json"))


def _profiler(dev, batch_size: int, cuda_graphs: bool | None):
    """A LocalProfiler; for torch-cuda with the spec's cuda options (device index, graphs, dtype)."""
    from ofa_profile.measure import LocalProfiler
    prof = LocalProfiler(dev, batch_size=batch_size)
    if dev.runtime == "torch-cuda":
        from ofa_profile.cuda import CudaRuntime
        opts = dict(dev.runtime_options)
        if cuda_graphs is not None:
            opts["cuda_graphs"] = cuda_graphs
        prof.runtime = CudaRuntime.from_spec(opts)
        prof._sync = prof.runtime.sync
    return prof


def _overheads(prof, cfg) -> dict:
    """Median ms of an empty call + sync, and of one tiny kernel + sync, on this profiler's device."""
    import torch

    from ofa_profile.timing import measure_callable
    sync = getattr(prof, "_sync", None)
    out = {"sync_only_ms": measure_callable(lambda: None, cfg, sync=sync).median_ms}
    dev = torch.device("cuda", prof.runtime.device_index) if prof.device.runtime == "torch-cuda" else "cpu"
    x = torch.zeros(1, device=dev)
    out["one_kernel_ms"] = measure_callable(lambda: x.add_(0), cfg, sync=sync).median_ms
    return out


def _importable(mod: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(mod) is not None


def _lstsq_launch(fit, test):
    """measured ~ a * lut_sum + c * n_blocks + b on ``fit``; predictions for ``test``."""
    import numpy as np
    X = np.array([[s["lut_sum_ms"], s["n_blocks"], 1.0] for s in fit])
    y = np.array([s["measured_ms"] for s in fit])
    w = 1.0 / y  # relative errors: scale rows by 1/y
    coef, *_ = np.linalg.lstsq(X * w[:, None], y * w, rcond=None)
    pred = [float(coef[0] * s["lut_sum_ms"] + coef[1] * s["n_blocks"] + coef[2]) for s in test]
    return {"a": float(coef[0]), "c_ms_per_block": float(coef[1]), "b_ms": float(coef[2])}, pred


def run_batch(dev, b: int, args, deadline: float) -> dict | None:
    from ofa_profile.calibrate import calibrate_device, evaluate
    from ofa_profile.cuda import measure_cuda_events
    from ofa_profile.lut import load_lut
    from ofa_profile.measure import measure_lut
    from ofa_profile.ops import subnet_ops
    from ofa_profile.space import SubnetSpec, parse_resolutions
    from ofa_profile.timing import TimingConfig, measure_callable

    res = parse_resolutions(args.resolutions, dev.space)
    out = Path(args.out_dir) / f"{dev.lut_name(b)}.json"
    row: dict = {"batch_size": b, "lut": out.name, "resolutions": list(res)}
    prof = _profiler(dev, b, args.cuda_graphs)
    try:
        t0 = time.perf_counter()
        while True:   # LUT in chunks, so a time limit stops between ops with the journal intact
            left = deadline - time.time()
            if left < 60:
                print(f"[b{b}] stopping for --max-minutes; rerun the same command to continue", flush=True)
                return None
            r = measure_lut(dev, out, res, batch_size=b, seed=args.seed, progress=not args.quiet, profiler=prof,
                            limit=args.chunk)
            if r.complete:
                break
        row["lut_s_this_run"] = round(time.perf_counter() - t0, 1)
        row["ops"] = r.total
        cfg = TimingConfig(warmup_runs=50, min_runs=200, max_runs=2000, max_time_s=2.0, target_iqr_rel=0.02)
        row["overheads"] = _overheads(prof, cfg)
        print(f"[b{b}] LUT {out.name}: {r.total} ops; sync-only {row['overheads']['sync_only_ms'] * 1e3:.1f} us, "
              f"one kernel + sync {row['overheads']['one_kernel_ms'] * 1e3:.1f} us", flush=True)
        if deadline - time.time() < 120:
            print(f"[b{b}] stopping before calibration for --max-minutes; rerun to continue", flush=True)
            return None
        rep = calibrate_device(out, prof, args.samples, args.test_samples, seed=args.seed, progress=not args.quiet)
        lut = load_lut(out)
        samples = []
        for s in rep["samples"]:
            spec = SubnetSpec.from_ofa(s["arch"], space=lut.space)
            samples.append({**s, "lut_sum_ms": lut.lut_sum_ms(spec), "n_blocks": len(subnet_ops(spec))})
        fit = [s for s in samples if s["split"] == "fit"]
        test = [s for s in samples if s["split"] == "test"]
        meas = [s["measured_ms"] for s in test]
        sync_ms = row["overheads"]["sync_only_ms"]
        coef, lin_pred = _lstsq_launch(fit, test)
        row["predictors_on_test"] = {
            "lut_sum": evaluate([s["lut_sum_ms"] for s in test], meas).as_dict(),
            "lut_sum_minus_sync": evaluate([s["lut_sum_ms"] - (s["n_blocks"] - 1) * sync_ms for s in test],
                                           meas).as_dict(),
            "linear_launch": {**evaluate(lin_pred, meas).as_dict(), **coef},
            "ridge_calibration": rep["test_calibrated"],
        }
        row["lut_sum_to_measured_mean"] = rep["ratio_lut_sum_to_measured_mean"]
        # wall clock + sync vs CUDA events on a few whole nets
        if dev.runtime == "torch-cuda":
            from ofa_profile.blocks import subnet_input, subnet_module
            ev_rows = []
            for s in test[:3]:
                spec = SubnetSpec.from_ofa(s["arch"], space=lut.space)
                c = prof.runtime.compile(subnet_module(spec, seed=args.seed),
                                         subnet_input(spec, seed=args.seed, batch=b), 1, None)
                try:
                    ev = measure_cuda_events(c.run, dev.timing, prof.runtime.device_index)
                    wall = measure_callable(c.run, dev.timing, sync=prof.runtime.sync)
                finally:
                    c.close()
                ev_rows.append({"arch": s["arch"], "events_ms": ev.median_ms, "wall_sync_ms": wall.median_ms})
            row["events_vs_wall"] = ev_rows
        row["fingerprint"] = prof.fingerprint()
        for name, m in row["predictors_on_test"].items():
            if m:
                print(f"[b{b}] {name:20s} within 2/5/10 %: {m['within_2pct']:.0%}/{m['within_5pct']:.0%}/"
                      f"{m['within_10pct']:.0%}  MAPE {m['mape_pct']:.2f} %  Spearman {m['spearman']:.4f}", flush=True)
        return row
    finally:
        prof.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--device", default="cuda", help="device spec (cuda; cpu-torch for a dry run)")
    ap.add_argument("--batch-sizes", default="1,64")
    ap.add_argument("--resolutions", default="all")
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--test-samples", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cuda-graphs", action="store_true", default=None, help="replay CUDA graphs (default: spec)")
    ap.add_argument("--chunk", type=int, default=150, help="ops measured between time checks")
    ap.add_argument("--max-minutes", type=float, default=9.0, help="stop cleanly before this (rerun continues)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    deadline = time.time() + args.max_minutes * 60
    missing = [m for m in ("torch", "numpy", "scipy", "sklearn", "jsonschema") if not _importable(m)]
    if missing:   # the GPU machine has no internet: carry wheels for these (pip download --python-version 3.12)
        sys.exit(f"error: this script needs {', '.join(missing)} (pip install them, or carry their wheels here)")
    if not args.quiet and not _importable("tqdm"):
        args.quiet = True
    dev = _load_spec(args.device)
    if dev.runtime == "torch-cuda":
        from ofa_profile.cuda import cuda_status
        ok, why = cuda_status(int(dev.runtime_options.get("device_index", 0)))
        if not ok:
            sys.exit(f"error: {why}")
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    report_path = Path(args.out_dir) / "gpu_report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    report.update({"command": " ".join(sys.argv), "device": dev.name, "seed": args.seed,
                   "samples": args.samples, "test_samples": args.test_samples})
    report.setdefault("batches", {})
    done = True
    for b in (int(x) for x in args.batch_sizes.split(",")):
        if str(b) in report["batches"]:
            print(f"[b{b}] already in {report_path.name}; delete its entry to redo", flush=True)
            continue
        row = run_batch(dev, b, args, deadline)
        if row is None:
            done = False
            break
        report["batches"][str(b)] = row
        tmp = report_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(report, indent=1))
        os.replace(tmp, report_path)
    print(json.dumps({b: r.get("predictors_on_test") for b, r in report["batches"].items()}, indent=1))
    sys.exit(0 if done else 3)


if __name__ == "__main__":
    main()
