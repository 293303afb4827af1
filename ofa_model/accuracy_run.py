"""One process of ``ofa-profile accuracy-dataset``: which shard it evaluates, where it writes, and the run.

``--shard k/n`` evaluates rows ``i % n == k`` into ``--out`` (joined later with :func:`merge_accuracy_shards`).
Under torchrun, ``--shard auto`` gives every process the shard of its ``RANK`` out of ``WORLD_SIZE``, written to
``OUT.shardKofN.csv`` (kept for resuming); after a gloo barrier rank 0 merges them into ``--out``, and the other
ranks end without a summary (:func:`run_accuracy_dataset` returns None there).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ofa_profile.space import get_space, parse_resolutions
from ofa_profile.timing import fix_malloc

from .data import INT8_CALIB_IMAGES
from .evaldata import default_data, supernet_caches
from .evaluate import accuracy_dataset, merge_shards

__all__ = ["ShardPlan", "run_accuracy_dataset", "merge_accuracy_shards", "csv_rows"]


@dataclass(frozen=True)
class ShardPlan:
    """Shard ``k`` of ``n`` of the accuracy dataset ``out``; ``torchrun``: the shard is this process's rank."""
    out: Path
    k: int = 0
    n: int = 1
    torchrun: bool = False

    @classmethod
    def of(cls, out: str | os.PathLike, shard: tuple[int, int] | None) -> "ShardPlan":
        """``shard``: ``(k, n)`` of ``--shard k/n``; None: torchrun's ``RANK`` of ``WORLD_SIZE`` (``--shard auto``)."""
        if shard is None:
            return cls(Path(out), int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")), True)
        return cls(Path(out), shard[0], shard[1], False)

    @property
    def distributed(self) -> bool:
        """Several torchrun processes: each writes its shard file, rank 0 merges them after a barrier."""
        return self.torchrun and self.n > 1

    def shard_path(self, i: int) -> Path:
        return self.out.with_name(f"{self.out.stem}.shard{i}of{self.n}{self.out.suffix}")

    @property
    def target(self) -> Path:
        """The CSV this process evaluates into."""
        return self.shard_path(self.k) if self.distributed else self.out

    @property
    def writes(self) -> tuple[Path, ...]:
        """The CSVs this process writes, one writer each (lock them): each torchrun process its own shard file,
        rank 0 (or a plain process) also ``out``."""
        paths = [self.out] if self.k == 0 or not self.torchrun else []
        return tuple(paths + ([self.target] if self.target != self.out else []))

    def torch_device(self, device: str, auto: bool) -> str:
        """``device`` (a checked torch device); under torchrun an automatic ``cuda`` is this process's
        ``cuda:LOCAL_RANK``."""
        if self.torchrun and auto and device == "cuda":
            return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
        return device


def csv_rows(path: str | os.PathLike) -> int:
    """Data rows of a CSV the accuracy dataset wrote (lines less the header)."""
    with open(path) as f:
        return sum(1 for _ in f) - 1


def merge_accuracy_shards(paths: Sequence[str | os.PathLike], out: str | os.PathLike) -> dict[str, Any]:
    """``accuracy-dataset --merge``: join shard CSVs into ``out``; ``{out, rows}``."""
    merged = merge_shards(paths, out)
    return {"out": str(merged), "rows": csv_rows(merged)}


def run_accuracy_dataset(plan: ShardPlan, n_subnets: int, *, device: str, device_auto: bool = False,
                         supernet: str | None = None, space: str | None = None, seed: int = 0,
                         resolutions: str = "all", train_data: str | None = None, val_data: str | None = None,
                         cache_dir: str | None = None, n_val: int = 1000, n_calib: int = 2000,
                         batch_size: int | None = None, engine: str = "auto", progress: bool = True,
                         resume: bool = True, precision: str = "fp32",
                         n_int8_calib: int | None = None) -> dict[str, Any] | None:
    """Evaluate this process's shard of ``n_subnets`` seeded random subnets of ``supernet`` (the bundled weights
    by default; its own space unless ``space``) into ``plan.target``; under torchrun with several processes,
    rank 0 then merges every shard into ``plan.out``.  Returns the summary, or None on the other torchrun ranks.

    ``device``: a checked torch device (``device_auto``: chosen automatically); ``batch_size``: images per BN
    recalibration batch (default 25 on CPU, 100 else); ``train_data``/``val_data`` default to the shared
    Imagenette (:func:`ofa_model.evaldata.default_data`).  The caller holds the locks of ``plan.writes``.

    ``precision="int8"``: the int8 top-1 of each subnet beside its fp32 one, both in ONNX Runtime on the CPU
    (as ``evaluate --precision int8``; activation ranges from ``n_int8_calib`` seeded training images, default
    :data:`ofa_model.data.INT8_CALIB_IMAGES`): the whole evaluation runs on the CPU."""
    import time

    from .bundle import load_supernet

    fix_malloc()   # torch eager without it spends as long in the kernel (mmap/munmap) as in the convolutions
    dev = "cpu" if precision == "int8" else plan.torch_device(device, device_auto)
    if batch_size is None:
        batch_size = 25 if dev == "cpu" else 100
    model, info = load_supernet(supernet, space=space, device=dev)
    sp = get_space(space or info.space)
    res = parse_resolutions(resolutions, sp)
    tr, va = supernet_caches(info, default_data("train", train_data), default_data("val", val_data), cache_dir)
    k, n = plan.k, plan.n
    t0 = time.monotonic()
    if plan.distributed:
        import datetime

        import torch.distributed as dist

        dist.init_process_group("gloo", timeout=datetime.timedelta(days=2))   # a barrier only: gloo everywhere
    p = accuracy_dataset(model, tr, va, plan.target, n_subnets, seed=seed, resolutions=res, n_val=n_val,
                         n_calib=n_calib, batch_size=batch_size, device=dev, shard=(k, n), space=sp.name,
                         progress=progress and k == 0, resume=resume, engine=engine, precision=precision,
                         n_int8_calib=n_int8_calib or INT8_CALIB_IMAGES)
    if plan.distributed:
        dist.barrier()
        if k == 0:
            p = merge_shards([plan.shard_path(i) for i in range(n)], plan.out)
        dist.barrier()
        dist.destroy_process_group()
        if k != 0:
            return None
    return {"out": str(p), "rows": csv_rows(p), "shard": f"{k}/{n}", "seed": seed, "space": sp.name,
            "precision": precision,
            "supernet": info.path, "supernet_sha256": info.sha256, "verified": info.verified,
            "elapsed_s": round(time.monotonic() - t0, 1)}
