"""A/B of the supernet's starting weights: the same subnet trained alone for the same short schedule from
random weights and from EfficientNet-Lite0's ImageNet filters (``train --init-from efficientnet-lite0``).

Each arm: the subnet (``--subnet largest|smallest``) active in a fresh supernet, ``--steps`` SGD steps
(Nesterov 0.9, cosine LR from ``--lr`` with a 20-step warm-up, batch 32, label smoothing 0.1, random-resized
crops of scale 0.25-1 at ``--res`` px, seeded: both arms see the same batches), then Imagenette val top-1 on a
fixed subset (``--val-images``) after BN recalibration on 500 training images, at 128, 160 and 224 px.
This is an accuracy comparison (figures do not depend on the machine's speed); wall seconds are printed too.

Needs ../shared/data/imagenette2-224 and the training extra (``pip install 'ofa-profile[teacher]'``).

    python benchmarks/bench_init_ab.py [--subnet largest] [--steps 150] [--json]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_arm(init: str, subnet: str, steps: int, res: int, lr0: float, train_cache, val_cache, val_idx,
            threads: int) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from ofa_model.data import train_batch
    from ofa_model.evaluate import evaluate_spec
    from ofa_model.supernet import OFAMobileNetV3
    from ofa_model.transfer import init_from_lite0
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=len(train_cache.classes))
    if init == "lite0":
        init_from_lite0(model)
    sp = model.space
    spec = sp.largest(224) if subnet == "largest" else sp.smallest(224)
    model.set_active_subnet(spec)
    model = model.to(memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 3e-5}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=lr0, momentum=0.9, nesterov=True)
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    model.train()
    t0 = time.perf_counter()
    for s in range(steps):
        idx = np.sort(rng.choice(len(train_cache), 32, replace=False))
        x, y = train_batch(train_cache, idx, res, gen, (0.25, 1.0))
        lr = lr0 * 0.5 * (1 + math.cos(math.pi * s / steps)) * min(1.0, (s + 1) / 20)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    train_s = time.perf_counter() - t0
    top1 = {r: evaluate_spec(model, dataclasses.replace(spec, r=r), train_cache, val_cache, val_indices=val_idx,
                             n_calib=500) for r in (128, 160, 224)}
    return {"init": init, "subnet": subnet, "steps": steps, "train_s": round(train_s, 1),
            "top1": {str(r): round(v * 100, 2) for r, v in top1.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subnet", choices=["largest", "smallest"], default="largest")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--val-images", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-dir", default=None, help="decoded-image cache (default: the project's)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    from ofa_model.data import build_cache, default_cache_dir
    from ofa_model.evaluate import val_subset
    from ofa_profile.paths import shared_data_dir
    from ofa_profile.timing import fix_malloc
    fix_malloc()
    d = shared_data_dir() / "imagenette2-224"
    if not (d / "train.tar").is_file():
        print(f"error: {d}/train.tar not found (the Imagenette data of ../shared/data)", file=sys.stderr)
        return 1
    tr_src, va_src = d / "train.tar", d / "val.tar"
    tr = build_cache(tr_src, Path(a.cache_dir) / "train" if a.cache_dir else default_cache_dir(tr_src, 224), 224)
    va = build_cache(va_src, Path(a.cache_dir) / "val" if a.cache_dir else default_cache_dir(va_src, 224), 224,
                     classes=tr.classes)
    idx = val_subset(len(va), a.val_images, 0)
    rows = [run_arm(init, a.subnet, a.steps, a.res, a.lr, tr, va, idx, a.threads) for init in ("random", "lite0")]
    if a.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"{a.subnet} subnet alone, {a.steps} steps at {a.res} px, batch 32; top-1 (%) on {len(idx)} val images")
        for r in rows:
            t = r["top1"]
            print(f"  init {r['init']:<6}  128 {t['128']:6.2f}  160 {t['160']:6.2f}  224 {t['224']:6.2f}   "
                  f"train {r['train_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
