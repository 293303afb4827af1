"""What a training run trains: the phases of each recipe, the subnet each step samples, and the run's settings.

``--recipe ofa`` (OFA's progressive shrinking): ``teacher`` -> ``kernel`` -> ``depth1`` -> ``depth2`` -> ``expand1``
-> ``expand2`` (:func:`recipe_phases`); ``--recipe compofa``: ``teacher`` -> ``kernel`` -> ``compound``.  Epochs
default to OFA's ImageNet ones (:data:`OFA_EPOCHS`) times ``--epoch-scale``.  :class:`TrainConfig` holds every
setting of a run (``config.json``); ``--standalone`` runs train one fixed subnet (:func:`standalone_spec`).  The
training loop is :func:`ofa_model.train.train`.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ofa_profile.errors import OfaProfileError
from ofa_profile.space import DEFAULT_SPACE, SpaceError, SubnetSpec, get_space

__all__ = ["OFA_EPOCHS", "PhaseDef", "recipe_phases", "sample_phase_spec", "TrainConfig", "phase_steps",
           "standalone_spec"]

# OFA's ImageNet epochs per phase (teacher: a standard MobileNetV3 schedule)
OFA_EPOCHS = {"teacher": 180, "kernel": 120, "depth1": 25, "depth2": 120, "expand1": 25, "expand2": 120,
              "compound": 120}


@dataclass(frozen=True)
class PhaseDef:
    """One training phase.  ``ks``/``e``/``d``: allowed choices (``()`` = the space's full set).
    ``lr``: peak LR at batch 256 (scaled linearly with the global batch).  ``reorganize``: the
    ``expand_ratio_stage`` of the channel re-sort done at the phase start (None: no re-sort)."""
    name: str
    epochs: float
    lr: float
    n_subnets: int
    kd: bool
    ks: tuple[int, ...] = ()
    e: tuple[int, ...] = ()
    d: tuple[int, ...] = ()
    compound: bool = False
    largest_only: bool = False
    reorganize: int | None = None
    warmup_epochs: float = 0.0
    fixed: SubnetSpec | None = None      # standalone baseline: always this subnet
    steps: int = 0                       # > 0: exact step count (overrides epochs)


def recipe_phases(recipe: str, space_name: str, epochs: dict[str, float] | None = None,
                  epoch_scale: float = 1.0) -> list[PhaseDef]:
    """The phases of ``recipe`` ('ofa' or 'compofa') with epochs = OFA's x ``epoch_scale`` unless given."""
    sp = get_space(space_name)
    kmax, emax, dmax = max(sp.kernels), max(sp.expands), max(sp.depths)
    es = sorted(sp.expands, reverse=True)
    ds = sorted(sp.depths, reverse=True)
    ep = {k: v * epoch_scale for k, v in OFA_EPOCHS.items()}
    ep.update(epochs or {})
    teacher = PhaseDef("teacher", ep["teacher"], 0.1, 1, False, (kmax,), (emax,), (dmax,), largest_only=True,
                       warmup_epochs=min(5.0, 0.05 * ep["teacher"]))
    kernel = PhaseDef("kernel", ep["kernel"], 0.12, 1, True, tuple(sp.kernels), (emax,), (dmax,),
                      warmup_epochs=min(5.0, 0.05 * ep["kernel"]))
    if recipe == "ofa":
        if sp.compound:
            raise SpaceError(f"recipe 'ofa' trains a full space; {sp.name} is compound: use --recipe compofa")
        return [teacher, kernel,
                PhaseDef("depth1", ep["depth1"], 0.01, 2, True, tuple(sp.kernels), (emax,), tuple(sorted(ds[:2]))),
                PhaseDef("depth2", ep["depth2"], 0.03, 2, True, tuple(sp.kernels), (emax,), tuple(sp.depths)),
                PhaseDef("expand1", ep["expand1"], 0.01, 4, True, tuple(sp.kernels), tuple(sorted(es[:2])),
                         tuple(sp.depths), reorganize=1),
                PhaseDef("expand2", ep["expand2"], 0.03, 4, True, tuple(sp.kernels), tuple(sp.expands),
                         tuple(sp.depths), reorganize=2)]
    if recipe == "compofa":
        return [teacher, kernel,
                PhaseDef("compound", ep["compound"], 0.03, 4, True, compound=True, reorganize=0)]
    raise OfaProfileError(f"unknown recipe {recipe!r}; use 'ofa' or 'compofa'")


def sample_phase_spec(space_name: str, phase: PhaseDef, rng: random.Random, r: int) -> SubnetSpec:
    """Sample a subnet allowed in ``phase`` (seeded by ``rng``); ``r`` is recorded in the spec when it is in
    the space (CPU recipes may train below it; the spec then carries the space's smallest resolution)."""
    from .supernet import compound_space, full_space
    sp = get_space(space_name)
    r_spec = r if r in sp.resolutions else sp.resolutions[0]
    if phase.compound:
        csp = compound_space(sp)
        return csp.compound_spec([rng.choice(csp.depths) for _ in range(csp.n_stages)], r_spec)
    sp = full_space(sp)
    d = tuple(rng.choice(phase.d or sp.depths) for _ in range(sp.n_stages))
    ks = tuple(rng.choice(phase.ks or sp.kernels) for _ in range(sp.n_blocks))
    e = tuple(rng.choice(phase.e or sp.expands) for _ in range(sp.n_blocks))
    return SubnetSpec(sp.name, ks, e, d, r_spec).validated()


@dataclass(frozen=True)
class TrainConfig:
    train_data: str
    out: str
    val_data: str | None = None
    cache_dir: str | None = None
    space: str = DEFAULT_SPACE
    recipe: str = "ofa"
    epoch_scale: float = 1.0
    phase_epochs: tuple[tuple[str, float], ...] = ()
    batch_size: int = 64                 # per process
    lr_scale: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 3e-5
    label_smoothing: float = 0.1
    kd_ratio: float = 1.0
    resolutions: tuple[int, ...] = ()    # () = the space's
    image_size: int = 224                # cache size
    crop_scale_min: float = 0.08
    dropout_rate: float = 0.1
    max_steps_per_phase: int = 0         # 0 = the full schedule
    ckpt_every: int = 0                  # steps; 0 = only by time and at phase ends
    ckpt_minutes: float = 10.0
    eval_images: int = 500               # val images for the end-of-phase check (0 = none)
    calib_images: int = 500
    seed: int = 0
    init: str | None = None              # supernet weights to start from (e.g. OFA's official checkpoint)
    init_from: str | None = None         # 'efficientnet-lite0': ImageNet filters mapped in (ofa_model.transfer)
    limit_per_class: int | None = None
    log_every: int = 10
    device: str = "auto"
    threads: int = 0
    standalone: str | None = None        # 'largest' | 'smallest' | ARCH.json: train only that subnet
    amp: str = "off"                     # 'bf16': forward passes under bfloat16 autocast (GPU runs)
    channels_last: bool = True           # NHWC weights and batches (1.5-2.2x faster training on CPU)

    def phases(self, steps_per_epoch: int | None = None) -> list[PhaseDef]:
        """The run's phases.  A standalone run has one phase whose step count is that of the whole PS
        recipe with the same flags (needs ``steps_per_epoch``; without it ``steps`` stays 0)."""
        ps = recipe_phases(self.recipe, self.space, dict(self.phase_epochs), self.epoch_scale)
        if not self.standalone:
            return ps
        epochs = sum(p.epochs for p in ps)
        steps = sum(phase_steps(p, steps_per_epoch, self.max_steps_per_phase) for p in ps) if steps_per_epoch else 0
        return [PhaseDef("standalone", epochs, ps[0].lr, 1, False, warmup_epochs=ps[0].warmup_epochs,
                         fixed=standalone_spec(self.standalone, self.space), steps=steps)]

    def identity(self) -> dict[str, Any]:
        """Fields that must match for a resume."""
        ident = {k: getattr(self, k) for k in ("space", "recipe", "seed", "batch_size", "image_size")}
        if self.standalone:
            ident["standalone"] = standalone_spec(self.standalone, self.space).short()
        return ident


def phase_steps(ph: PhaseDef, steps_per_epoch: int, max_steps_per_phase: int = 0) -> int:
    """Optimizer steps of a phase: ``ph.steps`` if set (exact: a standalone run's count already holds every cap),
    else round(epochs x steps/epoch) (at least 1), capped by ``max_steps_per_phase`` when that is > 0."""
    if ph.steps:
        return ph.steps
    total = max(1, round(ph.epochs * steps_per_epoch))
    return min(total, max_steps_per_phase) if max_steps_per_phase else total


def standalone_spec(which: str, space: str) -> SubnetSpec:
    """The subnet of a standalone run: 'largest', 'smallest' (of the space, r = its largest) or an ARCH.json."""
    sp = get_space(space)
    if which == "largest":
        from .supernet import full_space
        return full_space(sp).largest(sp.resolutions[-1])
    if which == "smallest":
        return sp.smallest(sp.resolutions[-1])
    if not Path(which).is_file():
        raise OfaProfileError(f"--standalone {which!r} is neither 'largest', 'smallest' nor an existing ARCH.json")
    return SubnetSpec.load(which, space=sp.name, r=sp.resolutions[-1])   # r is irrelevant: batches pick it
