"""Accuracy of subnets: BN recalibration + top-1 on a fixed val subset; the accuracy-dataset builder.

:func:`accuracy_dataset` evaluates N seeded random subnets (subnet ``i`` is drawn from
``random.Random(f"{seed}-{i}")``, so any row can be reproduced alone) and writes a CSV atomically with the
spec, resolution, top-1, MACs and params of each.  ``shard=(k, n)`` evaluates rows ``i % n == k`` only (one
process or GPU per shard; :func:`merge_shards` joins them).
"""
from __future__ import annotations

import csv
import json
import os
import random
import time
from pathlib import Path
from typing import Sequence

from ofa_profile.ops import subnet_ops
from ofa_profile.space import SubnetSpec, get_space

__all__ = ["subnet_macs_params", "val_subset", "evaluate_spec", "accuracy_dataset", "merge_shards", "CSV_FIELDS"]

CSV_FIELDS = ("index", "seed", "r", "d", "ks", "e", "top1", "macs", "params", "n_val", "n_calib", "arch")


def subnet_macs_params(spec: SubnetSpec, n_classes: int) -> tuple[int, int]:
    """MACs and parameters of a subnet by the op enumerator (classifier at ``n_classes``)."""
    sp = get_space(spec.space)
    ops = subnet_ops(spec)
    body = ops[:-1]
    macs = sum(op.macs() for op in body) + sp.feature_mix_ch * n_classes
    params = sum(op.params() for op in body) + sp.feature_mix_ch * n_classes + n_classes
    return int(macs), int(params)


def val_subset(n_total: int, n_val: int, seed: int = 0) -> list[int]:
    """A fixed, seeded subset of val indices (all when ``n_val`` <= 0 or >= ``n_total``)."""
    import numpy as np
    if n_val <= 0 or n_val >= n_total:
        return list(range(n_total))
    return sorted(np.random.default_rng(seed).permutation(n_total)[:n_val].tolist())


def evaluate_spec(model, spec: SubnetSpec, train_cache, val_cache, n_val: int = 0, n_calib: int = 2000,
                  batch_size: int = 100, device=None, resolution: int | None = None, val_seed: int = 0,
                  calib_seed: int = 0, val_indices: Sequence[int] | None = None) -> float:
    """Top-1 (fraction) of ``spec`` from supernet ``model``: extract, recalibrate BN on ``n_calib`` augmented
    training images (seeded, as OFA does), evaluate centre crops of the fixed val subset.
    ``resolution`` overrides ``spec.r`` (CPU recipes below the space's range)."""
    import numpy as np
    import torch

    from .data import eval_batches, train_batch
    from .supernet import recalibrate_bn

    r = resolution or spec.r
    device = device or next(model.parameters()).device
    model.set_active_subnet(spec)
    sub = model.get_active_subnet().to(device)
    gen = torch.Generator().manual_seed(calib_seed)
    order = np.random.default_rng(calib_seed).permutation(len(train_cache))[:max(1, n_calib)]

    def calib():
        for i in range(0, len(order), batch_size):
            x, _ = train_batch(train_cache, np.sort(order[i:i + batch_size]), r, gen, (0.08, 1.0))
            yield x.to(device)

    recalibrate_bn(sub, calib(), n_calib)
    idx = val_indices if val_indices is not None else val_subset(len(val_cache), n_val, val_seed)
    correct = seen = 0
    with torch.no_grad():
        for x, y in eval_batches(val_cache, r, batch_size, idx):
            pred = sub(x.to(device)).argmax(1).cpu()
            correct += int((pred == y).sum())
            seen += y.numel()
    return correct / max(1, seen)


def _write_csv_atomic(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def accuracy_dataset(model, train_cache, val_cache, out_csv: str | os.PathLike, n_subnets: int, seed: int = 0,
                     resolutions: Sequence[int] | None = None, n_val: int = 1000, n_calib: int = 2000,
                     batch_size: int = 100, device=None, shard: tuple[int, int] = (0, 1),
                     space: str | None = None, progress: bool = False) -> Path:
    """Evaluate ``n_subnets`` seeded random subnets and write the CSV (``CSV_FIELDS``) atomically.
    Returns the CSV path.  ``space`` defaults to the supernet's space."""
    sp = get_space(space or model.space.name)
    res = tuple(resolutions or sp.resolutions)
    k, n = shard
    rows = []
    n_classes = model.n_classes
    val_idx = val_subset(len(val_cache), n_val, seed)
    t0 = time.monotonic()
    it = [i for i in range(n_subnets) if i % n == k]
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="subnets", file=__import__("sys").stderr)
    for i in it:
        rng = random.Random(f"{seed}-{i}")
        spec = sp.sample(rng, resolution=rng.choice(res))
        top1 = evaluate_spec(model, spec, train_cache, val_cache, n_calib=n_calib, batch_size=batch_size,
                             device=device, val_indices=val_idx, calib_seed=seed)
        macs, params = subnet_macs_params(spec, n_classes)
        rows.append({"index": i, "seed": seed, "r": spec.r, "d": json.dumps(list(spec.d)),
                     "ks": json.dumps(list(spec.ks)), "e": json.dumps(list(spec.e)), "top1": round(top1, 6),
                     "macs": macs, "params": params, "n_val": len(val_idx), "n_calib": n_calib, "arch": spec.short()})
    out = Path(out_csv)
    _write_csv_atomic(rows, out)
    if progress:
        rate = len(rows) / max(1e-9, time.monotonic() - t0) * 60
        print(f"[evaluate] {len(rows)} subnets, {rate:.1f} subnets/min -> {out}", file=__import__("sys").stderr)
    return out


def merge_shards(paths: Sequence[str | os.PathLike], out_csv: str | os.PathLike) -> Path:
    """Join shard CSVs (sorted by index, duplicates refused) into one CSV, atomically."""
    rows: dict[int, dict] = {}
    for p in paths:
        with open(p, newline="") as f:
            for row in csv.DictReader(f):
                i = int(row["index"])
                if i in rows:
                    from ofa_profile.errors import OfaProfileError
                    raise OfaProfileError(f"subnet index {i} appears in two shards ({p}); evaluate disjoint shards")
                rows[i] = row
    out = Path(out_csv)
    _write_csv_atomic([rows[i] for i in sorted(rows)], out)
    return out
