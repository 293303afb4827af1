"""The phase loop of the trainer (:mod:`ofa_model.train`): for each phase from the resume point on, the channel
re-sorting, the optimiser, the seeded steps with their log and periodic checkpoints, a stop on a signal after the
step in flight, and the phase end (a quick check on the val set, the phase's weights file, the next resume point).

:mod:`ofa_model.train` sets a run up (process, device, data, model, resume point) and hands it here as a
:class:`TrainRun`; checkpoints (``ckpt-last.pt``, format :data:`CKPT_FORMAT`) are written here and read there.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any, Protocol

from ofa_profile.atomic import atomic_path
from ofa_profile.errors import OfaProfileError
from ofa_profile.jsonio import dumps_strict
from ofa_profile.space import Space

from .data import epoch_batches, train_batch
from .evaluate import evaluate_spec
from .recipes import PhaseDef, TrainConfig, phase_steps, sample_phase_spec

__all__ = ["CKPT_FORMAT", "Interrupted", "Place", "TrainData", "ResumePoint", "TrainRun", "log_line", "append_jsonl",
           "full_net", "run_phases", "finish_run", "StopRequest"]

CKPT_FORMAT = "ofa_model.train/1"


class StopRequest(Protocol):
    """What the loop asks after each step: the number of a signal that asked the run to stop (0: none yet)."""
    signum: int


def log_line(msg: str, rank: int = 0) -> None:
    """A progress line on stderr (rank 0 only)."""
    if rank == 0:
        print(f"[train] {msg}", file=sys.stderr, flush=True)


def _plain_types(obj: Any) -> str | None:
    """The first value in ``obj`` that is not a tensor, a dict/list/tuple of them or a plain value (str, int, float,
    bool, None), by type name; None when there is none.  Checkpoints hold only these, so that they load with
    ``torch.load(weights_only=True)`` (the RNG state goes in as torch's uint8 tensor, never a numpy array)."""
    import torch
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
        elif not (x is None or isinstance(x, (torch.Tensor, str, int, float, bool))):
            return type(x).__name__
    return None


def _atomic_save(obj: Any, path: Path) -> None:
    import torch
    bad = _plain_types(obj)
    if bad is not None:     # a checkpoint must load with weights_only=True: a bug, not a user error
        raise TypeError(f"checkpoint {path.name} would hold a {bad}, which weights_only=True refuses to load")
    with atomic_path(path) as tmp:      # a temp name tagged <pid>-<host>, removed if the save fails
        torch.save(obj, tmp)


def _plain_state(module) -> dict:
    """``module``'s state dict with every tensor in the default (NCHW-contiguous) layout, whatever layout
    training used, so that saved weights load anywhere the same way."""
    return {k: v.contiguous() for k, v in module.state_dict().items()}


def append_jsonl(path: Path, rec: dict) -> None:
    with open(path, "a") as f:
        f.write(dumps_strict(rec, indent=None) + "\n")   # a NaN loss is written as null


def _peak_mem_mb(device) -> float:
    import torch
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return 0.5 * peak * (1 + math.cos(math.pi * min(1.0, t)))


def _param_groups(model, wd: float):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if (p.ndim <= 1 or "bn" in n or n.endswith("bias")) else decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def _evaluate_quick(model, specs, train_cache, val_cache, cfg: TrainConfig, device, r: int) -> dict[str, float]:
    return {tag: round(evaluate_spec(model, spec, train_cache, val_cache, n_val=cfg.eval_images,
                                     n_calib=cfg.calib_images, batch_size=max(cfg.batch_size, 50), device=device,
                                     resolution=r), 4)
            for tag, spec in specs}


class Interrupted(OfaProfileError):
    """The run was asked to stop (SIGINT, SIGTERM) and stopped at a step boundary after writing its checkpoint;
    ``exit_code`` is 128 + the signal's number, as a shell reports a process ended by that signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


@dataclasses.dataclass(frozen=True)
class Place:
    """Where this process trains: its rank among ``world`` processes, its device, the space and resolutions it
    trains at, the run folder and the starting weights (read before anything is written)."""
    world: int
    rank: int
    local_rank: int
    device: Any                      # torch.device
    space: Space
    res: tuple[int, ...]
    out: Path
    init_weights: Any = None         # --init: a state dict
    lite0_state: Any = None          # --init-from efficientnet-lite0: its state dict


@dataclasses.dataclass(frozen=True)
class TrainData:
    """The decoded training and validation images (ofa_model.data.ImageCache; ``val`` None without --val-data)."""
    train: Any
    val: Any = None


@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """Where the run (re)starts: phase index and step, and what the checkpoint saved with them."""
    phase_index: int = 0
    step: int = 0
    reorganized: bool = False        # the phase's channel re-sorting was done before the checkpoint
    teacher: dict | None = None      # the teacher's state dict
    optimizer: dict | None = None
    phase_wall_s: float = 0.0        # the phase's wall time and images before the checkpoint
    phase_imgs: int = 0
    torch_rng: Any = None            # torch's CPU generator (dropout) as saved: a resumed run draws what it would have


@dataclasses.dataclass(frozen=True)
class TrainRun:
    """What the phase loop trains: the settings, this process's place, the data, the model (wrapped by DDP in a
    multi-process run), the phases and where the run resumes."""
    cfg: TrainConfig
    place: Place
    data: TrainData
    model: Any                       # OFAMobileNetV3
    ddp: Any                         # its DistributedDataParallel wrapper, or None
    memory_format: Any               # torch.channels_last or torch.contiguous_format
    phases: tuple[PhaseDef, ...]
    steps_per_epoch: int
    resume: ResumePoint

    @property
    def net(self):
        """The module the steps call: the DDP wrapper in a multi-process run, else the model."""
        return self.ddp if self.ddp is not None else self.model

    @property
    def ckpt_path(self) -> Path:
        return self.place.out / "ckpt-last.pt"

    @property
    def log_path(self) -> Path:
        return self.place.out / "train_log.jsonl"


def full_net(run: TrainRun):
    """The supernet's full net as a static module in eval mode: the teacher of the distilled phases."""
    run.model.set_max_net()
    return run.model.get_active_subnet().to(run.place.device, memory_format=run.memory_format).eval()


def _autocast(run: TrainRun):
    """bfloat16 autocast for forward passes with --amp bf16 (no loss scaling needed); a no-op otherwise."""
    import torch
    return torch.autocast(device_type=run.place.device.type, dtype=torch.bfloat16, enabled=run.cfg.amp == "bf16")


def _save_ckpt(run: TrainRun, pi: int, step: int, reorganized: bool, opt, teacher,
               wall_s: float = 0.0, imgs: int = 0) -> None:
    """Write ``ckpt-last.pt`` (rank 0): resume at step ``step`` of phase ``pi`` (``len(phases)``: all done), with
    the state of torch's CPU generator (dropout draws from it), so that a resumed CPU run is the run never stopped."""
    if run.place.rank != 0:
        return
    import torch
    phases = run.phases
    _atomic_save({"format": CKPT_FORMAT, "identity": run.cfg.identity(), "classes": list(run.data.train.classes),
                  "meta": run.model.meta(), "phase_index": pi, "step": step, "reorganized": reorganized,
                  "phase_wall_s": wall_s, "phase_imgs": imgs, "phase": phases[pi].name if pi < len(phases) else "done",
                  "state_dict": _plain_state(run.model),
                  "teacher": _plain_state(teacher) if teacher is not None else None,
                  "optimizer": opt.state_dict() if opt is not None else None,
                  "torch_rng": torch.get_rng_state()}, run.ckpt_path)


@dataclasses.dataclass(frozen=True)
class _PhasePlan:
    """One phase as this run trains it: steps ``start``..``total`` (``start`` > 0 on a resume into it), the LR
    schedule, and the wall time and images of its steps before a resume."""
    index: int
    phase: PhaseDef
    total: int
    start: int
    warmup_steps: int
    peak_lr: float
    wall_before_s: float = 0.0
    imgs_before: int = 0


def run_phases(run: TrainRun, teacher: Any, stopper: StopRequest) -> None:
    """Train the phases from the resume point on; each ends with its weights file and the next resume point."""
    last_ckpt_t = time.monotonic()
    for pi in range(run.resume.phase_index, len(run.phases)):
        if run.phases[pi].kd and teacher is None:
            teacher = full_net(run)
        plan, opt = _start_phase(run, pi, teacher)
        wall_s, imgs = _train_steps(run, plan, opt, teacher, stopper, last_ckpt_t)
        teacher = _end_phase(run, plan, wall_s, imgs, teacher)
        last_ckpt_t = time.monotonic()


def _start_phase(run: TrainRun, pi: int, teacher: Any) -> tuple[_PhasePlan, Any]:
    """Re-sort the channels (expand phases, unless the checkpoint was saved after it), make the optimiser (with
    the checkpoint's state on a resume into this phase), and checkpoint the phase's start."""
    import torch
    import torch.distributed as dist

    cfg, ph, res, model = run.cfg, run.phases[pi], run.resume, run.model
    if ph.reorganize is not None and not (pi == res.phase_index and res.reorganized):
        model.re_organize_middle_weights(ph.reorganize)
        if run.ddp is not None:   # identical on all ranks already (same weights); keep buffers in step too
            for t in model.state_dict().values():
                dist.broadcast(t, 0)
    total = phase_steps(ph, run.steps_per_epoch, cfg.max_steps_per_phase)
    gbatch = cfg.batch_size * run.place.world
    peak = ph.lr * cfg.lr_scale * gbatch / 256
    opt = torch.optim.SGD(_param_groups(model, cfg.weight_decay), lr=peak, momentum=cfg.momentum, nesterov=True)
    start = res.step if pi == res.phase_index else 0
    if start and res.optimizer is not None:
        opt.load_state_dict(res.optimizer)
    log_line(f"phase {ph.name}: steps {start}..{total} (epochs {ph.epochs:g}, {run.steps_per_epoch} steps/epoch), "
             f"peak lr {peak:.4g}, {ph.n_subnets} subnet(s)/step, kd={ph.kd}", run.place.rank)
    if run.place.rank == 0 and start == 0:
        _save_ckpt(run, pi, 0, ph.reorganize is not None, None, teacher)
    resumed = pi == res.phase_index and start > 0      # the phase's wall time and images before a kill
    return _PhasePlan(pi, ph, total, start, min(round(ph.warmup_epochs * run.steps_per_epoch), total // 10), peak,
                      float(res.phase_wall_s) if resumed else 0.0, int(res.phase_imgs) if resumed else 0), opt


def _train_steps(run: TrainRun, plan: _PhasePlan, opt, teacher, stopper: StopRequest,
                 last_ckpt_t: float) -> tuple[float, int]:
    """The phase's steps from ``plan.start``: log, periodic checkpoints, a stop on a signal after the step in
    flight (with a checkpoint: :class:`Interrupted`).  Returns the phase's wall time and images."""
    import torch
    import torch.distributed as dist

    cfg, place, ph, pi, total = run.cfg, run.place, plan.phase, plan.index, plan.total
    run.net.train()
    t_phase = time.monotonic()
    imgs = plan.imgs_before
    batches, cur_epoch = None, -1
    for step in range(plan.start, total):
        t0 = time.monotonic()
        epoch, bi = divmod(step, run.steps_per_epoch)
        if epoch != cur_epoch:
            batches = epoch_batches(len(run.data.train), cfg.batch_size, cfg.seed * 1000 + pi, epoch, place.rank,
                                    place.world)
            cur_epoch = epoch
        loss, lr, r, n = _step(run, plan, step, batches[bi], opt, teacher)
        dt = time.monotonic() - t0
        imgs += n * place.world
        done = step + 1
        if place.rank == 0 and (done % cfg.log_every == 0 or done == total):
            rec = {"phase": ph.name, "step": done, "of": total, "loss": loss, "lr": lr, "r": r,
                   "step_s": round(dt, 4), "img_s": round(n * place.world / dt, 2),
                   "peak_mem_mb": round(_peak_mem_mb(place.device), 1), "world": place.world, "t": time.time()}
            append_jsonl(run.log_path, rec)
            log_line(f"{ph.name} {done}/{total} loss {rec['loss']:.4f} r {r} {rec['img_s']} img/s", place.rank)
        stop = stopper.signum
        if place.world > 1:     # every replica stops after the same step (each may see the signal at another one)
            flag = torch.tensor([stop], device=place.device if place.device.type == "cuda" else "cpu")
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            stop = int(flag.item())
        if stop or (done < total and ((cfg.ckpt_every and done % cfg.ckpt_every == 0)
                                      or (time.monotonic() - last_ckpt_t) > cfg.ckpt_minutes * 60)):
            _save_ckpt(run, pi, done, ph.reorganize is not None, opt, teacher,
                       plan.wall_before_s + time.monotonic() - t_phase, imgs)
            last_ckpt_t = time.monotonic()
        if stop:
            if place.world > 1:
                dist.barrier()        # rank 0 has written the checkpoint before any process exits
            raise Interrupted(f"stopped by {signal.Signals(stop).name} after step {done}/{total} of phase "
                              f"{ph.name}; checkpoint {run.ckpt_path} written: rerun the same command to resume", stop)
    return plan.wall_before_s + time.monotonic() - t_phase, imgs


def _step(run: TrainRun, plan: _PhasePlan, step: int, batch_idx, opt, teacher) -> tuple[float, float, int, int]:
    """One optimiser step (seeded by run, phase and step: a resumed run draws the same batches, resolutions and
    subnets); returns the loss (mean over the step's subnets), the LR, the resolution and the batch's images."""
    import torch
    import torch.nn.functional as F

    cfg, device, ph = run.cfg, run.place.device, plan.phase
    rs = random.Random(f"{cfg.seed}-{plan.index}-{step}")
    r = rs.choice(run.place.res)
    gen = torch.Generator().manual_seed(hash((cfg.seed, plan.index, step, run.place.rank)) & 0x7FFFFFFF)
    x, y = train_batch(run.data.train, batch_idx, r, gen, (cfg.crop_scale_min, 1.0),
                       device=device if device.type == "cuda" else None)
    x = x.to(device, non_blocking=True).contiguous(memory_format=run.memory_format)
    y = y.to(device, non_blocking=True)
    lr = _lr_at(step, plan.total, plan.warmup_steps, plan.peak_lr)
    for g in opt.param_groups:
        g["lr"] = lr
    soft = None
    if ph.kd and teacher is not None and cfg.kd_ratio > 0:
        with torch.no_grad(), _autocast(run):
            soft = F.softmax(teacher(x).float(), dim=1)
    opt.zero_grad(set_to_none=True)
    loss_sum = 0.0
    for _ in range(ph.n_subnets):
        if ph.largest_only:
            run.model.set_max_net()
        elif ph.fixed is not None:
            run.model.set_active_subnet(ph.fixed)
        else:
            run.model.set_active_subnet(sample_phase_spec(cfg.space, ph, rs, r))
        with _autocast(run):
            logits = run.net(x).float()
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        if soft is not None:
            loss = loss + cfg.kd_ratio * torch.mean(torch.sum(-soft * F.log_softmax(logits, dim=1), 1))
        loss.backward()
        loss_sum += float(loss.detach())
    opt.step()
    return loss_sum / ph.n_subnets, lr, r, x.size(0)


def _end_phase(run: TrainRun, plan: _PhasePlan, wall_s: float, imgs: int, teacher: Any) -> Any:
    """The phase's end: the replicas' weights compared (DDP), a quick check on the val set, the phase's weights
    file and summary, then the resume point moves to the next phase.  Returns the teacher (made from the full
    net once the teacher phase has ended)."""
    import torch.distributed as dist

    cfg, place, ph, pi, model = run.cfg, run.place, plan.phase, plan.index, run.model
    if place.world > 1:
        _check_replicas(run, ph.name)
    summary = {"phase": ph.name, "steps": plan.total, "wall_s": round(wall_s, 1),
               "img_s": round(imgs / wall_s, 2) if wall_s > 0 and imgs else None,
               "peak_mem_mb": round(_peak_mem_mb(place.device), 1), "device": str(place.device), "world": place.world}
    if place.rank == 0:
        if run.data.val is not None and cfg.eval_images:
            r_eval = max(place.res)
            r_spec = r_eval if r_eval in place.space.resolutions else place.space.resolutions[0]
            specs = [("largest", place.space.largest(r_spec)), ("smallest", place.space.smallest(r_spec))]
            if ph.fixed is not None:
                specs = [("standalone", dataclasses.replace(ph.fixed, r=r_spec))]
            was = model.active_spec
            summary["val_top1"] = _evaluate_quick(model, specs, run.data.train, run.data.val, cfg, place.device,
                                                  r_eval)
            summary["val_resolution"] = r_eval
            model.set_active_subnet(was)
            run.net.train()
        _atomic_save({"state_dict": _plain_state(model), "meta": {**model.meta(), "phase": ph.name}},
                     place.out / f"phase-{pi}-{ph.name}.pt")
        append_jsonl(run.log_path, {"phase_end": summary})
        log_line(f"phase {ph.name} done: {json.dumps(summary)}", place.rank)
    if ph.name == "teacher":
        teacher = full_net(run)
    _save_ckpt(run, pi + 1, 0, False, None, teacher)
    if place.world > 1:
        dist.barrier()
    return teacher


def _check_replicas(run: TrainRun, phase: str) -> None:
    """The DDP replicas must hold identical weights: compare a digest of every parameter (logged by rank 0)."""
    import hashlib

    import torch
    import torch.distributed as dist

    flat = torch.cat([p.detach().double().flatten().cpu() for p in run.model.parameters()])
    digests: list = [None] * run.place.world
    dist.all_gather_object(digests, hashlib.sha256(flat.numpy().tobytes()).hexdigest()[:16])
    if run.place.rank == 0:
        append_jsonl(run.log_path, {"sync_check": digests, "phase": phase})
    if len(set(digests)) > 1:
        raise OfaProfileError(f"DDP replicas diverged in phase {phase} (digests {digests}); report a bug")


def finish_run(run: TrainRun) -> Path:
    """Write ``supernet.pt`` (the weights, with the classes, recipe and seed) and end the process group."""
    import torch.distributed as dist

    final = run.place.out / "supernet.pt"
    if run.place.rank == 0:
        meta = {**run.model.meta(), "recipe": run.cfg.recipe, "classes": list(run.data.train.classes),
                "seed": run.cfg.seed}
        if run.phases[0].fixed is not None:
            meta["standalone"] = run.phases[0].fixed.to_ofa()
        _atomic_save({"state_dict": _plain_state(run.model), "meta": meta}, final)
        log_line(f"done: {final}", run.place.rank)
    if run.place.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return final
