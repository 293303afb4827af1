"""Accuracy of subnets: BN recalibration + top-1 on a fixed val subset; the accuracy-dataset builder.

:func:`accuracy_dataset` evaluates N seeded random subnets (subnet ``i`` is drawn from
``random.Random(f"{seed}-{i}")``, so any row can be reproduced alone) and writes a CSV atomically with the
spec, resolution, top-1, MACs and params of each.  ``shard=(k, n)`` evaluates rows ``i % n == k`` only (one
process or GPU per shard; :func:`merge_shards` joins them).

Resumable: every finished row is appended (and flushed) to ``<out>.partial.csv`` beside the output; a rerun
of the same call keeps the rows already in the output or the partial file (after checking that they are the
same subnets with the same seed, val subset size and calibration size) and evaluates only the missing ones.
The columns (``CSV_FIELDS``) include ``space``, ``r``, ``d``/``ks``/``e`` (JSON lists) and ``accuracy`` (top-1
fraction), the format :func:`ofa_profile.accuracy.read_accuracy_csv` reads.
"""
from __future__ import annotations

import csv
import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ofa_profile.atomic import atomic_path
from ofa_profile.errors import OfaProfileError, RequestError
from ofa_profile.jsonio import loads_strict
from ofa_profile.ops import subnet_ops
from ofa_profile.quantize import int8_recipe, quantize_onnx_bytes
from ofa_profile.space import SubnetSpec, get_space

from .data import INT8_CALIB_IMAGES, eval_batches, int8_calibration_images, train_batch
from .evaldata import default_data, supernet_caches
from .export import onnx_export

__all__ = ["EvalRequest", "csv_fields", "INT8_FIELDS", "subnet_macs_params", "val_subset", "evaluate_spec",
           "accuracy_dataset", "dataset_spec", "merge_shards",
           "CSV_FIELDS", "PARTIAL_SUFFIX", "evaluate_arch", "evaluate_precisions", "int8_calibration_images",
           "INT8_CALIB_IMAGES"]

CSV_FIELDS = ("index", "space", "seed", "r", "d", "ks", "e", "accuracy", "macs", "params", "n_val", "n_calib",
              "batch_size", "arch")
#: the further columns of an int8 dataset (``accuracy`` is then the int8 top-1, ``accuracy_fp32`` the same subnet's
#: fp32 top-1 on the same val images; an fp32 dataset has no ``precision`` column)
INT8_FIELDS = ("precision", "accuracy_fp32", "n_int8_calib")
PRECISIONS = ("fp32", "int8")


def csv_fields(precision: str = "fp32") -> tuple[str, ...]:
    """The columns of an accuracy-dataset CSV of ``precision``."""
    if precision not in PRECISIONS:
        raise OfaProfileError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return CSV_FIELDS + (INT8_FIELDS if precision == "int8" else ())


def _precision_of(fields: Sequence[str]) -> str | None:
    """The precision of a CSV with these columns, None for columns of neither kind."""
    return next((p for p in PRECISIONS if tuple(fields) == csv_fields(p)), None)
ORT_CHUNK = 8   # images per onnxruntime call: small batches stay in cache (~1.5x the img/s of 100 on one core)
PARTIAL_SUFFIX = ".partial.csv"


@dataclass(frozen=True)
class EvalRequest:
    """How a subnet's top-1 is measured (``evaluate``, and ``pareto --verify``: one option group,
    :func:`ofa_profile.commands.base.evaluation_options`): the supernet weights (None: the bundled ones), ``n_val``
    seeded val images (0: all), ``n_calib`` training images for the BN recalibration, the two data sets (None: the
    shared Imagenette) and the decoded-image cache.  A bad count is one :class:`~ofa_profile.errors.RequestError`
    line."""

    supernet: str | None = None
    n_val: int = 1000
    n_calib: int = 2000
    train_data: str | None = None
    val_data: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        for name, least, what in (("n_val", 0, "val images (0: all)"), ("n_calib", 1, "BN recalibration images")):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                raise RequestError(f"{name}={v!r}: the number of {what} is a whole number >= {least}")

    def caches(self, info):
        """The decoded train and val caches of the supernet ``info`` describes, from this request's data sets."""
        return supernet_caches(info, default_data("train", self.train_data), default_data("val", self.val_data),
                               self.cache_dir)


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
                  calib_seed: int = 0, val_indices: Sequence[int] | None = None,
                  timings: dict | None = None, engine: str = "auto") -> float:
    """Top-1 (fraction) of ``spec`` from supernet ``model``: extract, recalibrate BN on ``n_calib`` augmented
    training images (seeded, as OFA does), evaluate centre crops of the fixed val subset.
    ``resolution`` overrides ``spec.r`` (CPU recipes below the space's range).  ``timings``, when given, receives
    ``extract_s``, ``calib_s`` and ``eval_s`` (wall seconds, synchronised on CUDA).

    ``engine`` runs the val pass: ``"torch"``, ``"onnxruntime"`` (the recalibrated subnet exported in memory;
    about 3x faster than torch eager on one CPU thread, same logits to float tolerance) or ``"auto"``
    (onnxruntime on CPU where it is installed, else torch).  BN recalibration always runs in torch."""
    import torch

    r = resolution or spec.r
    device = device or next(model.parameters()).device
    dev_type = torch.device(device).type
    now = _clock(device, dev_type)
    sub, t_extract, t_calib = _recalibrated(model, spec, train_cache, n_calib, batch_size, device, r, calib_seed, now)
    t2 = now()
    idx = val_indices if val_indices is not None else val_subset(len(val_cache), n_val, val_seed)
    run = _ort_runner(sub.eval(), r) if _use_ort(engine, dev_type) else None
    correct, seen = _count_correct(sub, run, val_cache, r, batch_size, idx, device)
    if timings is not None:
        timings.update({"extract_s": t_extract, "calib_s": t_calib, "eval_s": now() - t2, "n_val": seen})
    return correct / max(1, seen)


def _clock(device, dev_type: str):
    import torch

    def now() -> float:
        if dev_type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()
    return now


def _recalibrated(model, spec: SubnetSpec, train_cache, n_calib: int, batch_size: int, device, r: int,
                  calib_seed: int, now):
    """The subnet of ``spec`` extracted from ``model``, BN recalibrated on ``n_calib`` augmented seeded training
    images; with the seconds the extraction and the recalibration took."""
    import numpy as np
    import torch

    from .supernet import recalibrate_bn
    t0 = now()
    model.set_active_subnet(spec)
    sub = model.get_active_subnet().to(device)
    t1 = now()
    gen = torch.Generator().manual_seed(calib_seed)
    order = np.random.default_rng(calib_seed).permutation(len(train_cache))[:max(1, n_calib)]

    def calib():
        for i in range(0, len(order), batch_size):
            x, _ = train_batch(train_cache, np.sort(order[i:i + batch_size]), r, gen, (0.08, 1.0))
            yield x.to(device).contiguous(memory_format=torch.channels_last)

    sub.to(memory_format=torch.channels_last)    # NHWC: ~1.6x faster BN recalibration on CPU
    recalibrate_bn(sub, calib(), n_calib)
    sub.to(memory_format=torch.contiguous_format)
    return sub.eval(), t1 - t0, now() - t1


def _count_correct(sub, run, val_cache, r: int, batch_size: int, idx, device) -> tuple[int, int]:
    """(correct, seen) over the val images ``idx``: ``run`` (NCHW array -> logits array) where given, else ``sub``
    in torch."""
    import torch
    correct = seen = 0
    with torch.no_grad():
        for x, y in eval_batches(val_cache, r, batch_size, idx):
            logits = torch.from_numpy(run(x.numpy())) if run is not None else sub(x.to(device)).cpu()
            correct += int((logits.argmax(1) == y).sum())
            seen += y.numel()
    return correct, seen


def evaluate_precisions(model, spec: SubnetSpec, train_cache, val_cache, precisions: Sequence[str] = ("fp32", "int8"),
                        n_val: int = 0, n_calib: int = 2000, n_int8_calib: int = INT8_CALIB_IMAGES,
                        batch_size: int = 100, resolution: int | None = None, val_seed: int = 0, calib_seed: int = 0,
                        timings: dict | None = None, val_indices: Sequence[int] | None = None) -> dict[str, float]:
    """Top-1 (fraction) of ``spec`` at each of ``precisions`` on the same val subset, one BN recalibration shared:
    ``fp32`` and ``int8`` both run in ONNX Runtime on the CPU (the int8 model: the fp32 one quantized by
    :func:`ofa_profile.quantize.quantize_onnx`, calibrated on :func:`int8_calibration_images`)."""
    import torch

    bad = [p for p in precisions if p not in ("fp32", "int8")]
    if bad or not precisions:
        raise OfaProfileError(f"precision {', '.join(bad) or '(none)'} is not one of fp32, int8")
    _use_ort("onnxruntime", "cpu")              # one line where onnxruntime is missing
    r = resolution or spec.r
    now = _clock("cpu", "cpu")
    sub, t_extract, t_calib = _recalibrated(model.cpu(), spec, train_cache, n_calib, batch_size, "cpu", r, calib_seed,
                                            now)
    idx = val_indices if val_indices is not None else val_subset(len(val_cache), n_val, val_seed)
    out: dict[str, float] = {}
    tm: dict = {"extract_s": t_extract, "calib_s": t_calib}
    with torch.no_grad():
        for p in precisions:
            t = now()
            cal = int8_calibration_images(train_cache, r, n_int8_calib, calib_seed) if p == "int8" else None
            correct, seen = _count_correct(sub, _ort_runner(sub, r, calibration=cal), val_cache, r, batch_size, idx,
                                           "cpu")
            out[p] = correct / max(1, seen)
            tm[f"{p}_s"], tm["n_val"] = now() - t, seen
    if timings is not None:
        timings.update(tm)
    return out


ENGINES = ("auto", "torch", "onnxruntime")


def _use_ort(engine: str, dev_type: str) -> bool:
    if engine not in ENGINES:
        raise OfaProfileError(f"unknown evaluation engine {engine!r}; use one of {', '.join(ENGINES)}")
    if engine == "torch" or (engine == "auto" and dev_type != "cpu"):
        return False
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        if engine == "onnxruntime":
            raise OfaProfileError("engine onnxruntime asked for but onnxruntime is not installed; "
                                  "pip install onnxruntime or use --engine torch") from None
        return False
    return True


def _ort_runner(sub, r: int, calibration: Sequence | None = None):
    """A function NCHW float32 array -> logits array: ``sub`` exported to ONNX in memory, run by onnxruntime
    with the process's torch thread count; quantized to int8 (:func:`ofa_profile.quantize.quantize_onnx`) on the
    NCHW arrays ``calibration`` where given."""
    import io
    import warnings

    import onnxruntime as ort
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_export(sub.cpu(), torch.zeros(1, 3, r, r), buf)
    model = buf.getvalue()
    if calibration is not None:
        model = quantize_onnx_bytes(model, calibration)
    so = ort.SessionOptions()
    so.intra_op_num_threads = torch.get_num_threads()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    import numpy as np

    def run(x):
        return np.concatenate([sess.run(["logits"], {"input": x[i:i + ORT_CHUNK]})[0]
                               for i in range(0, len(x), ORT_CHUNK)])
    return run


def _write_csv_atomic(rows: list[dict], path: Path, fields: Sequence[str] = CSV_FIELDS) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields))
        w.writeheader()
        w.writerows(rows)


def dataset_spec(space: str, seed: int, index: int, resolutions: Sequence[int]) -> SubnetSpec:
    """Subnet ``index`` of an accuracy dataset: drawn from ``random.Random(f"{seed}-{index}")``."""
    rng = random.Random(f"{seed}-{index}")
    return get_space(space).sample(rng, resolution=rng.choice(tuple(resolutions)))


def _read_rows(path: Path, precision: str = "fp32") -> list[dict]:
    """Complete rows of an earlier output or partial file (a kill may have cut the last line) of a dataset of
    ``precision`` (a file of the other precision is refused: one dataset, one precision)."""
    if not path.exists():
        return []
    text = path.read_text()
    if not text.strip():
        return []
    lines = text.splitlines(keepends=True)
    if not lines[-1].endswith("\n"):
        lines = lines[:-1]
    reader = csv.DictReader(lines)
    fields = csv_fields(precision)
    found = _precision_of(reader.fieldnames or ())
    if found is not None and found != precision:
        raise OfaProfileError(f"{path} holds {found} accuracies and this run measures {precision} ones (one dataset, "
                              f"one precision); choose another --out or delete it")
    if found is None:
        raise OfaProfileError(f"{path} exists but is not an accuracy-dataset CSV of this version (columns "
                              f"{','.join(fields)}); choose another --out or delete it")
    return [r for r in reader if all(r.get(k) not in (None, "") for k in fields)]


def accuracy_dataset(model, train_cache, val_cache, out_csv: str | os.PathLike, n_subnets: int, seed: int = 0,
                     resolutions: Sequence[int] | None = None, n_val: int = 1000, n_calib: int = 2000,
                     batch_size: int = 100, device=None, shard: tuple[int, int] = (0, 1),
                     space: str | None = None, progress: bool = False, resume: bool = True,
                     engine: str = "auto", precision: str = "fp32", n_int8_calib: int = INT8_CALIB_IMAGES) -> Path:
    """Evaluate ``n_subnets`` seeded random subnets and write the CSV (``CSV_FIELDS``) atomically.
    Returns the CSV path.  ``space`` defaults to the supernet's space.  With ``resume`` rows already in the
    output or its partial file are kept, not re-evaluated.

    ``precision="int8"``: each subnet's top-1 as :func:`evaluate_precisions` measures it (``evaluate --precision
    int8``: ONNX Runtime on the CPU, quantized after the BN recalibration, activation ranges from
    ``n_int8_calib`` seeded training images); ``accuracy`` is the int8 top-1 and ``accuracy_fp32`` the fp32 one
    on the same val images (columns :func:`csv_fields`)."""
    fields = csv_fields(precision)
    sp = get_space(space or model.space.name)
    res = tuple(resolutions or sp.resolutions)
    k, n = shard
    if not (n >= 1 and 0 <= k < n):
        raise OfaProfileError(f"bad shard {k}/{n}; use k/n with 0 <= k < n")
    out = Path(out_csv)
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    n_classes = model.n_classes
    val_idx = val_subset(len(val_cache), n_val, seed)
    wanted = [i for i in range(n_subnets) if i % n == k]
    done: dict[int, dict] = {}
    if resume:
        for src in (out, partial):
            for row in _read_rows(src, precision):
                i = int(row["index"])
                if i not in wanted:
                    continue
                spec = dataset_spec(sp.name, seed, i, res)
                if (row["space"], int(row["seed"]), row["arch"], int(row["n_val"]), int(row["n_calib"]),
                        int(row["batch_size"])) != (sp.name, seed, spec.short(), len(val_idx), n_calib, batch_size) \
                        or (precision == "int8" and int(row["n_int8_calib"]) != n_int8_calib):
                    raise OfaProfileError(f"{src} holds row {i} of another run (seed/space/resolutions/--n-val/"
                                          f"--n-calib/--batch-size/--int8-calib-images differ); choose another "
                                          f"--out or delete it")
                done[i] = row
    else:
        partial.unlink(missing_ok=True)
    todo = [i for i in wanted if i not in done]
    if done and progress:
        print(f"[evaluate] resuming: {len(done)} row(s) kept, {len(todo)} to evaluate", file=__import__("sys").stderr)
    t0 = time.monotonic()
    # the partial file restarts clean (its complete rows only: a kill may have cut its last line)
    _write_csv_atomic(_read_rows(partial, precision) if resume else [], partial, fields)
    with open(partial, "a", newline="") as pf:
        pw = csv.DictWriter(pf, fieldnames=list(fields))
        it = todo
        if progress:
            from tqdm import tqdm
            it = tqdm(todo, desc="subnets", file=__import__("sys").stderr)
        for i in it:
            spec = dataset_spec(sp.name, seed, i, res)
            extra: dict = {}
            if precision == "int8":
                both = evaluate_precisions(model, spec, train_cache, val_cache, ("fp32", "int8"), n_calib=n_calib,
                                           n_int8_calib=n_int8_calib, batch_size=batch_size, calib_seed=seed,
                                           val_indices=val_idx)
                top1 = both["int8"]
                extra = {"precision": "int8", "accuracy_fp32": round(both["fp32"], 6), "n_int8_calib": n_int8_calib}
            else:
                top1 = evaluate_spec(model, spec, train_cache, val_cache, n_calib=n_calib, batch_size=batch_size,
                                     device=device, val_indices=val_idx, calib_seed=seed, engine=engine)
            macs, params = subnet_macs_params(spec, n_classes)
            row = {"index": i, "space": sp.name, "seed": seed, "r": spec.r, "d": json.dumps(list(spec.d)),
                   "ks": json.dumps(list(spec.ks)), "e": json.dumps(list(spec.e)), "accuracy": round(top1, 6),
                   "macs": macs, "params": params, "n_val": len(val_idx), "n_calib": n_calib, "batch_size": batch_size,
                   "arch": spec.short(), **extra}
            pw.writerow(row)
            pf.flush()
            done[i] = {k2: str(v) for k2, v in row.items()}
    _write_csv_atomic([done[i] for i in sorted(done)], out, fields)
    partial.unlink(missing_ok=True)
    if progress:
        rate = len(todo) / max(1e-9, time.monotonic() - t0) * 60
        print(f"[evaluate] {len(todo)} subnets evaluated ({len(done)} rows), {rate:.1f} subnets/min -> {out}",
              file=__import__("sys").stderr)
    return out


def _shard_row(row: dict, where: str, fields: Sequence[str] = CSV_FIELDS) -> int:
    """Check one row of a shard CSV (the types ``accuracy_dataset`` writes); return its index."""
    import math

    if None in row or any(row.get(k) in (None, "") for k in fields):
        raise OfaProfileError(f"{where} has {'more' if None in row else 'fewer'} fields than the columns "
                              f"{','.join(fields)}")
    try:
        for k in ("index", "seed", "r", "macs", "params", "n_val", "n_calib", "batch_size"):
            if int(row[k]) < 0:
                raise ValueError(f"{k}={row[k]} is negative")
        for k in ("accuracy", "accuracy_fp32") if "accuracy_fp32" in fields else ("accuracy",):
            acc = float(row[k])
            if not (math.isfinite(acc) and 0 <= acc <= 1):
                raise ValueError(f"{k}={row[k]} is not a fraction in [0, 1]")
        if "precision" in fields and row["precision"] != "int8":
            raise ValueError(f"precision={row['precision'][:20]} in an int8 shard")
        for k in ("d", "ks", "e"):
            try:
                v = loads_strict(row[k])
            except ValueError as exc:
                raise ValueError(f"{k}={row[k][:40]} {exc}") from None
            if not isinstance(v, list) or not all(type(x) is int for x in v):
                raise ValueError(f"{k}={row[k][:40]} is not a JSON list of integers")
    except ValueError as exc:
        raise OfaProfileError(f"{where}: {' '.join(str(exc).split())[:160]}") from None
    return int(row["index"])


def merge_shards(paths: Sequence[str | os.PathLike], out_csv: str | os.PathLike) -> Path:
    """Join shard CSVs (sorted by index, duplicates refused) into one CSV, atomically.  Every shard is checked
    first (its columns, each row's types, one run's seed/space/n_val/n_calib): a malformed shard is one
    :class:`~ofa_profile.errors.OfaProfileError` naming the file and line, and ``out_csv`` is left as it was."""
    rows: dict[int, dict] = {}
    run: tuple | None = None
    precision: str | None = None
    for p in paths:
        try:
            text = Path(p).read_text(encoding="utf-8-sig")  # a leading BOM (Excel) is not data
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
            raise OfaProfileError(f"cannot read shard CSV {p}: {why}") from None
        reader = csv.DictReader(text.splitlines())
        try:
            fields = tuple(reader.fieldnames or ())
            found = _precision_of(fields)
            if found is not None and precision is not None and found != precision:
                raise OfaProfileError(f"shard CSV {p} holds {found} accuracies and the shards before it {precision} "
                                      f"ones; merge shards of one precision")
            precision = found or precision
            if found is None:
                missing = [k for k in CSV_FIELDS if k not in fields]
                raise OfaProfileError(
                    f"shard CSV {p} is not an accuracy-dataset CSV of this version ("
                    + (f"no column {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}" if missing else f"columns {','.join(fields)[:120]}")
                    + f"; expected {','.join(CSV_FIELDS)}): pass the files `accuracy-dataset --shard k/n` wrote")
            for row in reader:
                where = f"shard CSV {p} line {reader.line_num}"
                i = _shard_row(row, where, fields)
                ident = (row["space"], row["seed"], row["n_val"], row["n_calib"], row.get("n_int8_calib", "-"))
                if run is None:
                    run = ident
                elif ident != run:
                    raise OfaProfileError(f"{where} comes from another run (space, seed, n_val, n_calib, "
                                          f"n_int8_calib {', '.join(ident)} vs {', '.join(run)}); merge shards of "
                                          f"one run")
                if i in rows:
                    raise OfaProfileError(f"subnet index {i} appears in two shards ({p}); evaluate disjoint shards")
                rows[i] = row
        except csv.Error as exc:
            raise OfaProfileError(f"shard CSV {p} is not a readable CSV ({exc})") from None
    out = Path(out_csv)
    _write_csv_atomic([rows[i] for i in sorted(rows)], out, csv_fields(precision or "fp32"))
    return out


def evaluate_arch(arch: str | os.PathLike, evaluation: EvalRequest = EvalRequest(), *, device: str,
                  resolution: int | None = None, log=None, precision: str = "fp32",
                  n_int8_calib: int = INT8_CALIB_IMAGES) -> dict:
    """``ofa-profile evaluate``: the measured top-1 of the subnet of spec file or net.config ``arch`` (at
    ``resolution`` if given) on ``device``, as ``evaluation`` says: with its supernet (the bundled weights by
    default), BN recalibrated on its ``n_calib`` seeded training images, on a fixed seeded subset of its ``n_val``
    val images of the supernet's dataset (the data sets default to the shared Imagenette).  Returns the JSON
    summary; ``log(str)`` is told what is evaluated.

    ``precision="int8"``: the subnet in ONNX Runtime on the CPU, fp32 and int8 (calibrated on ``n_int8_calib``
    seeded training images: :func:`evaluate_precisions`) on the same val images; ``top1`` is the int8 figure,
    ``top1_fp32`` the fp32 one beside it."""
    from .bundle import load_supernet

    n_val, n_calib = evaluation.n_val, evaluation.n_calib
    model, info = load_supernet(evaluation.supernet, device=device)
    spec = SubnetSpec.load(arch, space=info.space, r=resolution)
    if info.classes is None:
        raise OfaProfileError(f"the supernet {info.path} names no classes, so its validation set is unknown; pass "
                              f"weights with a manifest (a bundle) or a run's supernet.pt")
    tr, va = evaluation.caches(info)
    if log is not None:
        log(f"evaluate: {spec.short()} with {info.path} ...")
    tm: dict = {}
    t0 = time.perf_counter()
    extra: dict = {}
    if precision == "int8":
        both = evaluate_precisions(model, spec, tr, va, ("fp32", "int8"), n_val=n_val, n_calib=n_calib,
                                   n_int8_calib=n_int8_calib, timings=tm)
        top1 = both["int8"]
        extra = {"precision": "int8", "top1_fp32": round(both["fp32"], 5),
                 "int8_drop_points": round(100 * (both["fp32"] - both["int8"]), 3), "runtime": "onnxruntime",
                 "int8": int8_recipe("onnxruntime", f"{n_int8_calib} seeded training images, centre crop at r "
                                                    f"(ofa_model.data.int8_calibration_images)")}
    elif precision == "fp32":
        top1 = evaluate_spec(model, spec, tr, va, n_val=n_val, n_calib=n_calib, timings=tm)
    else:
        raise OfaProfileError(f"precision {precision!r} is not one of fp32, int8")
    return {**extra, "top1": round(float(top1), 5), "n_val": tm.get("n_val"), "n_calib": n_calib,
            "dataset": (info.manifest or {}).get("dataset") or "validation", "arch": spec.short(),
            "spec": spec.canonical().to_ofa(), "space": spec.space, "r": spec.r, "supernet": info.path,
            "supernet_sha256": info.sha256, "seconds": round(time.perf_counter() - t0, 2)}
