"""What one ``ofa-profile pareto`` run is asked to do: one frozen record, :class:`ParetoRequest`, that the command
builds from its options and :func:`ofa_profile.pareto.run_pareto` takes.

It is grouped as a user thinks of the run: what to search (:class:`SearchRequest`: budget, space, resolutions,
seed, effort, margin), where the latency comes from (:class:`LatencyRequest`: device, LUT or adapter, calibration,
head, speed check), where the accuracy comes from (:class:`AccuracyRequest`), what is measured again on the device
(:class:`VerifyRequest`: ``--verify``, ``--refresh``, and how the chosen subnet is evaluated,
:class:`ofa_model.evaluate.EvalRequest`) and what is written (:class:`OutputRequest`).  Each record checks its
values when it is made: a bad value or combination is one :class:`~ofa_profile.errors.RequestError` line naming the
option (the command line's usage error, exit 2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ofa_model.evaluate import EvalRequest

from .errors import RequestError
from .timed import PRECISIONS

__all__ = ["SearchRequest", "LatencyRequest", "AccuracyRequest", "VerifyRequest", "OutputRequest", "ParetoRequest",
           "EFFORTS", "DEFAULT_DEVICE"]

EFFORTS = ("fast", "medium", "full")     # search effort for the budget (ofa_profile.search.search)
DEFAULT_DEVICE = "cpu-ort"               # the latency source without --device, --lut or --adapter


def _whole(value: Any, least: int, name: str, hint: str, most: int | None = None) -> None:
    """``value`` must be a whole number in ``least..most``; else one line naming ``hint``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least or (most is not None and value > most):
        bound = f"from {least} to {most}" if most is not None else f">= {least}"
        raise RequestError(f"{name}={value!r}: need a whole number {bound}", hint)


def _text(value: Any, name: str, hint: str) -> None:
    if value is not None and (not isinstance(value, (str, Path)) or not str(value)):
        raise RequestError(f"{name}={value!r}: need a non-empty name or path, or None", hint)


@dataclass(frozen=True)
class SearchRequest:
    """What to search: the most accurate subnet under ``budget_ms`` (searched under ``budget_ms x (1 -
    margin_pct / 100)``; ``margin_pct`` None: ``--margin auto``, from the latency source) in ``space`` (None: the
    latency source's) at ``resolutions`` (``--resolutions`` text; None: the latency source's, inside the
    predictor's range), with ``seed`` and ``effort``; the frontier over ``n_budgets`` budgets."""

    budget_ms: float
    space: str | None = None
    resolutions: str | None = None
    seed: int = 0
    effort: str = "full"
    n_budgets: int = 20
    margin_pct: float | None = 0.0

    def __post_init__(self) -> None:
        b = self.budget_ms
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or b <= 0:
            raise RequestError(f"budget_ms={b!r}: need a positive, finite number of milliseconds", "--budget")
        _text(self.space, "space", "--space")
        _text(self.resolutions, "resolutions", "--resolutions")
        _whole(self.seed, 0, "seed", "--seed")
        if self.effort not in EFFORTS:
            raise RequestError(f"effort={self.effort!r}: choose one of {', '.join(EFFORTS)}", "--effort")
        _whole(self.n_budgets, 1, "n_budgets", "--n-budgets")
        m = self.margin_pct
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 <= m < 100):
            raise RequestError(f"margin_pct={m!r}: need 0 <= PCT < 100, or None for 'auto'", "--margin")


@dataclass(frozen=True)
class LatencyRequest:
    """Where the latency comes from: a device's LUT (``device``), a LUT file (``lut``) or a few-shot adapter
    (``adapter``; none of them: :data:`DEFAULT_DEVICE`); the LUT's calibration unless ``no_calibration``; the
    classifier head of ``classes`` outputs (None: the LUT's); ``precision``: the LUT's blocks must be timed in it
    (None: whichever the LUT's are).  ``speed_check``: a shipped LUT used on a device of
    this machine is speed-checked first; ``rescale`` scales the latency model by the check's factor."""

    device: str | None = None
    lut: str | None = None
    adapter: str | None = None
    no_calibration: bool = False
    classes: int | None = None
    speed_check: bool = False
    rescale: bool = False
    precision: str | None = None       # the LUT must time blocks of this precision (None: the LUT's)

    def __post_init__(self) -> None:
        for name in ("device", "lut", "adapter"):
            _text(getattr(self, name), name, f"--{name}")
        if self.classes is not None:
            _whole(self.classes, 1, "classes", "--classes")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise RequestError(f"precision={str(self.precision)[:20]!r}: choose one of {', '.join(PRECISIONS)}",
                               "--precision")
        for name in ("no_calibration", "speed_check", "rescale"):
            if not isinstance(getattr(self, name), bool):
                raise RequestError(f"{name}={getattr(self, name)!r}: need True or False",
                                   f"--{name.replace('_', '-')}")

    @property
    def device_or_default(self) -> str | None:
        """The device to resolve: ``device``, or :data:`DEFAULT_DEVICE` when no source is named at all."""
        return self.device if (self.device or self.lut or self.adapter) else DEFAULT_DEVICE


@dataclass(frozen=True)
class AccuracyRequest:
    """Where the accuracy comes from, at most one of: ``accuracy`` (``imagenet``/``bundled``), a ``predictor``
    file, or ``accuracy_data`` (a CSV to fit one on); none: ``--verify``'s supernet's own predictor, else the
    default (:func:`ofa_profile.pareto.resolve_predictor` refuses two at once, naming them)."""

    accuracy: str | None = None
    predictor: str | None = None
    accuracy_data: str | None = None

    def __post_init__(self) -> None:
        for name in ("accuracy", "predictor", "accuracy_data"):
            _text(getattr(self, name), name, f"--{name.replace('_', '-')}")

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.accuracy, self.predictor, self.accuracy_data))


@dataclass(frozen=True)
class VerifyRequest:
    """What is measured on the device around the search: ``refresh`` held-out calibration subnets re-measured
    first (0: off; the drift scales the latency model), and with ``verify`` the chosen subnet measured end to end
    (the lowest median of ``rounds`` passes) and evaluated as ``evaluation`` says.  ``device``: where both
    measure (None: the latency request's device, or the LUT's)."""

    verify: bool = False
    refresh: int = 0
    device: str | None = None
    rounds: int = 2
    evaluation: EvalRequest = field(default_factory=EvalRequest)

    def __post_init__(self) -> None:
        if not isinstance(self.verify, bool):
            raise RequestError(f"verify={self.verify!r}: need True or False", "--verify")
        _whole(self.refresh, 0, "refresh", "--refresh")
        _text(self.device, "device", "--verify-device")
        _whole(self.rounds, 1, "rounds", "--verify-rounds")
        if not isinstance(self.evaluation, EvalRequest):
            raise RequestError(f"evaluation={self.evaluation!r}: need an ofa_model.evaluate.EvalRequest")


@dataclass(frozen=True)
class OutputRequest:
    """What is written: ``pareto-<source>-<budget>ms.json`` and ``.best.json`` into ``out_dir`` (an existing
    folder), and with ``plot`` the ``.png``."""

    out_dir: Path = Path(".")
    plot: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.out_dir, (str, Path)) or not str(self.out_dir):
            raise RequestError(f"out_dir={self.out_dir!r}: need a folder", "--out-dir")
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        if not isinstance(self.plot, bool):
            raise RequestError(f"plot={self.plot!r}: need True or False", "--no-plot")


@dataclass(frozen=True)
class ParetoRequest:
    """One ``pareto`` run: what to search, the latency and accuracy sources, what is measured again, what is
    written.  Combinations that cannot work together are refused here, in one line."""

    search: SearchRequest
    latency: LatencyRequest = field(default_factory=LatencyRequest)
    accuracy: AccuracyRequest = field(default_factory=AccuracyRequest)
    verify: VerifyRequest = field(default_factory=VerifyRequest)
    output: OutputRequest = field(default_factory=OutputRequest)

    def __post_init__(self) -> None:
        for name, kind in (("search", SearchRequest), ("latency", LatencyRequest), ("accuracy", AccuracyRequest),
                           ("verify", VerifyRequest), ("output", OutputRequest)):
            if not isinstance(getattr(self, name), kind):
                raise RequestError(f"{name}={getattr(self, name)!r}: need a {kind.__name__}")
        lat, ver = self.latency, self.verify
        if lat.rescale and (ver.refresh or lat.adapter is not None):
            other = "--refresh scales by the drift it measures" if ver.refresh else "--adapter has no LUT to check"
            raise RequestError(f"--rescale scales a shipped LUT by its speed check; {other}: pass one")
