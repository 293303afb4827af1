"""Speed figures of the supernet for the model card, on this machine's CPU (< 3 minutes).

* subnet extraction (``set_active_subnet`` + ``get_active_subnet``): median over subnets;
* BN recalibration: images/s of the train-mode forward of the extracted subnet (NHWC, as
  :func:`ofa_model.evaluate.evaluate_spec` runs it) at r = 128, 160, 224
  (the card's recipe uses 2,000 images: its time = 2,000 / rate, printed as derived);
* training step (forward + backward + SGD step of the supernet, largest and smallest subnet active, batch
  ``--train-batch`` at ``--train-res`` px) in the NCHW and the NHWC (channels-last, the trainer's default)
  layouts: images/s, best of ``--train-steps`` steps;
* accuracy-dataset rate: subnets/minute of :func:`ofa_model.evaluate.accuracy_dataset` with small settings
  (``--n-calib``/``--n-val`` images), measured end to end, and the rate derived for the command's defaults
  (2,000 calibration + 1,000 val images) from the measured per-image rates.

Data: Imagenette from ../shared/data (a few images per class) when present, else synthetic images.
Weights: the bundled supernet when shipped, else a random-init one (speed does not depend on the weights).

    python benchmarks/bench_supernet.py [--threads 1] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _synthetic_folder(root: Path, n_per_class: int, n_classes: int = 10) -> Path:
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in range(n_classes):
        d = root / f"c{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            Image.fromarray((rng.random((224, 224, 3)) * 255).astype(np.uint8)).save(d / f"{i}.jpg")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the card quotes 1 and the core count)")
    ap.add_argument("--n-extract", type=int, default=10)
    ap.add_argument("--calib-images", type=int, default=64, help="images timed per resolution for BN recalibration")
    ap.add_argument("--n-subnets", type=int, default=4, help="subnets of the timed accuracy-dataset run")
    ap.add_argument("--n-calib", type=int, default=100)
    ap.add_argument("--n-val", type=int, default=100)
    ap.add_argument("--train-batch", type=int, default=32)
    ap.add_argument("--train-res", type=int, default=112)
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from ofa_profile.timing import fix_malloc, set_threads
    fix_malloc()
    set_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-supernet-"))
    try:
        res = _run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _report(res, args)


def _run(args, tmp: Path) -> dict:
    import numpy as np
    import torch

    from ofa_model.bundle import load_supernet
    from ofa_model.data import build_cache, train_batch
    from ofa_model.evaluate import accuracy_dataset
    from ofa_model.supernet import OFAMobileNetV3, WeightsError, recalibrate_bn
    from ofa_profile.paths import shared_data_dir
    from ofa_profile.space import get_space

    t_start = time.perf_counter()
    log = lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    shared = shared_data_dir()
    tar = shared / "imagenette2-224" if shared else None
    if tar is not None and (tar / "train.tar").exists():
        src_tr, src_va, data_name = tar / "train.tar", tar / "val.tar", "Imagenette (shared data)"
        per_tr, per_va = max(1, -(-max(args.n_calib, args.calib_images) // 10)), max(1, -(-args.n_val // 10))
    else:
        src_tr, src_va, data_name = _synthetic_folder(tmp / "tr", 12), _synthetic_folder(tmp / "va", 10), "synthetic"
        per_tr, per_va = None, None
    log(f"decoding {data_name} ...")
    tr = build_cache(src_tr, tmp / "ctr", 224, limit_per_class=per_tr)
    va = build_cache(src_va, tmp / "cva", 224, classes=tr.classes, limit_per_class=per_va)
    try:
        model, info = load_supernet(None)
        weights = f"bundled ({Path(info.path).name})"
    except WeightsError:
        torch.manual_seed(0)
        model, weights = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=len(tr.classes)).eval(), "random init (no bundle)"
    sp = get_space(model.space.name)

    # 1. extraction
    ext = []
    for i in range(args.n_extract):
        spec = sp.sample(i)
        t0 = time.perf_counter()
        model.set_active_subnet(spec)
        model.get_active_subnet()
        ext.append(time.perf_counter() - t0)
    # 2. BN recalibration rate per resolution (largest and smallest subnets, and one random)
    calib = {}
    gen = torch.Generator().manual_seed(0)
    for r in (128, 160, 224):
        rates = []
        for spec in (sp.largest(r), sp.smallest(r), sp.sample(100 + r, resolution=r)):
            model.set_active_subnet(spec)
            sub = model.get_active_subnet().to(memory_format=torch.channels_last)   # as evaluate_spec
            batches = [train_batch(tr, np.arange(i, min(i + 32, args.calib_images)) % len(tr), r, gen)[0]
                       .contiguous(memory_format=torch.channels_last) for i in range(0, args.calib_images, 32)]
            t0 = time.perf_counter()
            n = recalibrate_bn(sub, iter(batches), args.calib_images)
            rates.append(n / (time.perf_counter() - t0))
        calib[r] = {"largest_img_s": round(rates[0], 1), "smallest_img_s": round(rates[1], 1),
                    "random_img_s": round(rates[2], 1)}
    # 3. training steps, both memory layouts
    train_rates = {}
    x_tr, y_tr = train_batch(tr, np.arange(args.train_batch) % len(tr), args.train_res, gen)
    for layout, mf in (("nchw", torch.contiguous_format), ("nhwc", torch.channels_last)):
        torch.manual_seed(0)
        net = OFAMobileNetV3(sp.name, n_classes=len(tr.classes)).to(memory_format=mf).train()
        opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
        xx = x_tr.contiguous(memory_format=mf)
        for which, spec in (("largest", sp.largest(sp.resolutions[0])), ("smallest", sp.smallest(sp.resolutions[0]))):
            net.set_active_subnet(spec)
            times = []
            for _ in range(args.train_steps + 1):      # the first step warms up
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(net(xx), y_tr).backward()
                opt.step()
                times.append(time.perf_counter() - t0)
            train_rates[f"{which}_{layout}_img_s"] = round(args.train_batch / min(times[1:]), 1)
        del net, opt
    # 4. accuracy dataset, end to end, small settings
    t0 = time.perf_counter()
    accuracy_dataset(model, tr, va, tmp / "acc.csv", args.n_subnets, seed=0, n_val=args.n_val, n_calib=args.n_calib,
                     batch_size=50, device="cpu")
    ad_s = time.perf_counter() - t0
    # eval (no-grad eval-mode forward) rate at a middle resolution, to derive the default-settings rate
    model.set_active_subnet(sp.sample(7, resolution=176))
    sub = model.get_active_subnet().eval()
    x = train_batch(tr, np.arange(50) % len(tr), 176, gen)[0]
    with torch.no_grad():
        sub(x)
        t1 = time.perf_counter()
        sub(x)
        sub(x)
        eval_img_s = 100 / (time.perf_counter() - t1)
    calib_s = statistics.mean(2000 / x for x in calib[160].values())   # r=176 lies between 160 and 224: 160's
    derived_s = statistics.median(ext) + calib_s + 1000 / eval_img_s
    res = {
        "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "data": data_name, "weights": weights,
        "extract_s_median": round(statistics.median(ext), 4), "extract_s_max": round(max(ext), 4),
        "bn_recalibration_img_s": calib,
        "bn_recalibration_2000_images_s": {r: round(statistics.mean(2000 / x for x in v.values()), 1)
                                           for r, v in calib.items()},
        "train_step": {"batch": args.train_batch, "resolution": args.train_res, **train_rates},
        "accuracy_dataset": {"subnets": args.n_subnets, "n_calib": args.n_calib, "n_val": args.n_val,
                             "wall_s": round(ad_s, 1), "subnets_per_min": round(args.n_subnets / ad_s * 60, 2)},
        "accuracy_dataset_defaults_derived": {"n_calib": 2000, "n_val": 1000, "eval_img_s_r176": round(eval_img_s, 1),
                                              "s_per_subnet": round(derived_s, 1),
                                              "subnets_per_min": round(60 / derived_s, 2)},
        "bench_wall_s": round(time.perf_counter() - t_start, 1),
    }
    return res


def _report(res: dict, args) -> None:
    if args.json:
        print(json.dumps(res, indent=1))
        return
    calib = res["bn_recalibration_img_s"]
    print(f"machine: {res['machine']}; data: {res['data']}; weights: {res['weights']}")
    print(f"subnet extraction: median {res['extract_s_median'] * 1000:.1f} ms, max {res['extract_s_max'] * 1000:.1f} ms"
          f" ({args.n_extract} random subnets)")
    for r, v in calib.items():
        print(f"BN recalibration r={r}: {v['largest_img_s']} img/s (largest), {v['smallest_img_s']} (smallest), "
              f"{v['random_img_s']} (random) -> 2,000 images in ~{res['bn_recalibration_2000_images_s'][r]} s (mean of the three)")
    t = res["train_step"]
    print(f"training step (batch {t['batch']}, {t['resolution']} px): largest {t['largest_nchw_img_s']} img/s NCHW, "
          f"{t['largest_nhwc_img_s']} NHWC; smallest {t['smallest_nchw_img_s']} NCHW, {t['smallest_nhwc_img_s']} NHWC")
    a = res["accuracy_dataset"]
    print(f"accuracy dataset (measured): {a['subnets']} subnets, {a['n_calib']} calib + {a['n_val']} val images each: "
          f"{a['wall_s']} s -> {a['subnets_per_min']} subnets/min")
    d = res["accuracy_dataset_defaults_derived"]
    print(f"accuracy dataset at the command's defaults (2,000 calib + 1,000 val), derived from the rates above: "
          f"~{d['s_per_subnet']} s/subnet -> {d['subnets_per_min']} subnets/min")
    print(f"(benchmark wall time {res['bench_wall_s']} s)")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
