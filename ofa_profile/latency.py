"""Latency sources of the search: batched functions of subnets, from a LUT (calibrated or a plain sum), a few-shot
adapter, a per-block table or a MACs stand-in, and :class:`LatencySource` (what a command's latencies come from:
``--device``, ``--lut`` or ``--adapter``).

A batched function takes ``list[SubnetSpec]`` and returns ``np.ndarray``; one that also has an
``on_arrays(ArchArrays)`` method (:class:`BatchFn`) is called on integer arrays directly (:func:`call_batched`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .argsafety import shell_command
from .adapt import load_adapter
from .calibration import batch_predictor, calibration_classes
from .encodings import ArchArrays, BlockTable, macs_table
from .errors import OfaProfileError
from .lut import is_shipped, load_lut
from .space import SubnetSpec, get_space

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["BatchFn", "call_batched", "table_latency_fn", "lut_latency_fn", "adapter_latency_fn", "LatencySource",
           "resolve_latency_source", "latency_source_from_lut", "macs_latency_fn", "AutoMargin",
           "AUTO_MARGIN_NEAR", "AUTO_MARGIN_SPAN"]


# -- batched functions ----------------------------------------------------------------------------------

class BatchFn:
    """A batched subnet function that also takes :class:`ArchArrays` (``on_arrays``), the fast path."""

    def __init__(self, on_arrays: Callable[[ArchArrays], "np.ndarray"], name: str = "") -> None:
        self._fn = on_arrays
        self.name = name

    def on_arrays(self, a: ArchArrays) -> "np.ndarray":
        return self._fn(a)

    def __call__(self, specs: Sequence[SubnetSpec]) -> "np.ndarray":
        return self._fn(specs if isinstance(specs, ArchArrays) else ArchArrays.from_specs(list(specs)))

    def __repr__(self) -> str:
        return f"BatchFn({self.name or self._fn!r})"


def table_latency_fn(table: BlockTable, scale: float = 1.0, offset_ms: float = 0.0, name: str = "") -> BatchFn:
    """Latency (ms) as ``offset_ms + scale * table.total(subnet)``, vectorised."""
    return BatchFn(lambda a: offset_ms + scale * table.total(a), name or f"table:{table.name}")


def lut_latency_fn(lut: Any, calibrated: bool = True, resolutions: Sequence[int] | None = None) -> BatchFn:
    """Batched ``lut.predict_ms``: the calibrated latency when the LUT holds a calibration and ``calibrated``
    (refusing one that is not positive), else the LUT sum; :func:`ofa_profile.calibration.batch_predictor`, the
    batch form of the one prediction path, over the LUT's tables at ``resolutions`` (default: its complete ones)."""
    cal = bool(lut.calibration) and calibrated
    fn = batch_predictor(lut, calibrated=cal, resolutions=resolutions)
    return BatchFn(_positive(fn, lut) if cal else fn, f"lut:{lut.device}{' calibrated' if cal else ' sum'}")


def _positive(fn: Callable[[ArchArrays], "np.ndarray"], lut: Any) -> Callable[[ArchArrays], "np.ndarray"]:
    """``fn`` that refuses, in one line, a calibrated latency that is not positive: a linear calibration fitted on
    few or noisy subnets can go below zero inside the space even where the space's extreme subnets (checked when
    the LUT loads) stay positive, and a search must not rank subnets by such figures."""
    import numpy as np

    def checked(a: ArchArrays) -> "np.ndarray":
        y = fn(a)
        bad = np.flatnonzero(~(y > 0))
        if len(bad):
            spec = a.take(bad[:1]).to_specs()[0]
            fix = shell_command("ofa-profile", "calibrate", "--device", lut.device, "--lut", lut.source,
                                "--samples", "100")
            raise OfaProfileError(
                f"LUT {lut.source}'s calibration predicts {float(y[bad[0]]):.3f} ms for the subnet "
                f"d={list(spec.d)} ks={list(spec.ks)} e={list(spec.e)} r={spec.r}: not a latency; recalibrate "
                f"with more subnets (`{fix}`) or search the plain LUT sums (--no-calibration)")
        return y
    return checked


def adapter_latency_fn(adapter: Any, prior_fn: Any = None) -> BatchFn:
    """Batched latency of a few-shot :class:`~ofa_profile.adapt.LatencyAdapter` (with its prior's function
    when it was fitted with one, e.g. :func:`lut_latency_fn` of the same LUT)."""
    if adapter.uses_prior and prior_fn is None:
        raise OfaProfileError(f"adapter for {adapter.device} was fitted with a prior ({adapter.prior}); "
                              f"pass the same LUT (--lut) to use it")

    table = adapter.as_block_table()
    if table is not None:
        return BatchFn(table.total, f"adapter:{adapter.device}")

    def fn(a: ArchArrays) -> "np.ndarray":
        return adapter.predict_ms(a, call_batched(prior_fn, a) if adapter.uses_prior else None)
    return BatchFn(fn, f"adapter:{adapter.device}")


AUTO_MARGIN_NEAR = 10      # --margin auto: held-out subnets nearest the budget whose under-predictions set it
AUTO_MARGIN_SPAN = 1.5     # ... when all of them are predicted within this factor of the budget


@dataclass(frozen=True)
class AutoMargin:
    """What ``--margin auto`` chose: the percentage and what it was learned from."""
    pct: float
    basis: str                                  # near-budget | all-held-out | adapter
    n_subnets: int                              # held-out subnets it was taken over (0: an adapter's own figure)
    predicted_range_ms: "tuple[float, float] | None"   # near-budget: their predicted latencies
    description: str                            # one phrase, for the log line

    def as_dict(self) -> dict[str, Any]:
        return {"pct": round(self.pct, 3), "basis": self.basis, "n_subnets": self.n_subnets,
                "predicted_range_ms": ([round(v, 4) for v in self.predicted_range_ms]
                                       if self.predicted_range_ms else None),
                "description": self.description}


@dataclass(frozen=True)
class LatencySource:
    """Where a command's latencies come from."""
    fn: Any
    name: str           # device name for titles and file names
    space: str
    resolutions: tuple[int, ...]
    description: str
    # held-out calibration subnets (spec, measured ms) of a calibrated LUT: what --margin auto learns from
    held_out: tuple = ()
    lut: Any = None     # the loaded LUT behind it, if any (what --refresh re-measures against)
    # an adapter's own cross-validated 90th percentile of under-predictions (percent): --margin auto without a LUT
    margin_hint_pct: float | None = None
    adapter: str | None = None   # the few-shot adapter file behind it, if any

    @property
    def file_id(self) -> str:
        """The source as output files name it: the LUT file's stem (a shipped LUT: ``<stem>-shipped``, so that it
        never shares a name with a LUT of this machine measured to ``./<device>.json``), or the adapter file's."""
        if self.adapter is not None:
            return Path(self.adapter).stem.removesuffix(".adapter")
        if self.lut is not None:
            return Path(self.lut.source).stem + ("-shipped" if is_shipped(self.lut) else "")
        return self.name

    def auto_margin(self, budget_ms: float | None = None, quantile: float = 0.9) -> "AutoMargin":
        """The safety margin (percent of the budget) that covers ``quantile`` of the latency source's own
        under-predictions: the q-quantile of measured/predicted - 1 (at least 0) over the held-out calibration
        subnets whose prediction lies nearest ``budget_ms`` (the :data:`AUTO_MARGIN_NEAR` nearest, when all of
        them lie within a factor :data:`AUTO_MARGIN_SPAN` of it: a model's error depends on the size of the
        subnet, and the pick lies at the budget); over all held-out subnets when there are too few near it or
        no budget is given (``basis`` says which); for a few-shot adapter, the same quantile of its
        cross-validated under-predictions on the subnets it was fitted on (stored in the adapter).  Raises when
        the source holds neither."""
        import numpy as np
        if not self.held_out and self.margin_hint_pct is not None and quantile == 0.9:
            return AutoMargin(float(self.margin_hint_pct), "adapter", 0, None,
                              "the adapter's cross-validated under-predictions on the subnets it was fitted on")
        if not self.held_out:
            raise OfaProfileError("--margin auto needs a calibrated LUT (its held-out subnets set the margin) or an "
                                  "adapter fitted by this version (refit it); give --margin PCT instead")
        specs = [s for s, _ in self.held_out]
        measured = np.array([m for _, m in self.held_out], dtype=float)
        pred = np.asarray(self.fn(specs), dtype=float)
        under = measured / pred - 1.0
        n = len(specs)
        why_all = ""
        if budget_ms is not None and budget_ms > 0:
            dist = np.abs(np.log(pred / float(budget_ms)))
            near = np.argsort(dist, kind="stable")[:AUTO_MARGIN_NEAR]
            if len(near) >= AUTO_MARGIN_NEAR and dist[near].max() <= np.log(AUTO_MARGIN_SPAN):
                lo, hi = float(pred[near].min()), float(pred[near].max())
                pct = float(max(0.0, np.quantile(under[near], quantile) * 100.0))
                return AutoMargin(pct, "near-budget", len(near), (lo, hi),
                                  f"the LUT's under-predictions on the {len(near)} of its {n} held-out calibration "
                                  f"subnets predicted nearest {budget_ms:g} ms ({lo:.3f}..{hi:.3f} ms)")
            inside = int((dist <= np.log(AUTO_MARGIN_SPAN)).sum())
            why_all = (f"; only {inside} of them are predicted within x{AUTO_MARGIN_SPAN:g} of {budget_ms:g} ms, "
                       f"fewer than the {AUTO_MARGIN_NEAR} a near-budget margin takes")
        pct = float(max(0.0, np.quantile(under, quantile) * 100.0))
        return AutoMargin(pct, "all-held-out", n, None,
                          f"the LUT's under-predictions on all its {n} held-out calibration subnets{why_all}")

    def auto_margin_pct(self, quantile: float = 0.9, budget_ms: float | None = None) -> float:
        """:meth:`auto_margin`'s percentage."""
        return self.auto_margin(budget_ms, quantile).pct

    def scaled(self, factor: float, why: str) -> "LatencySource":
        """The same source with every latency multiplied by ``factor`` (e.g. the device's drift since
        calibration, :func:`~ofa_profile.calibrate.measure_drift`).  Held-out figures are scaled too, so
        ``--margin auto`` is unchanged."""
        if not factor > 0:
            raise OfaProfileError(f"a latency scale must be > 0, got {factor}")
        inner = self.fn
        fn = BatchFn(lambda a: factor * call_batched(inner, a), f"{getattr(inner, 'name', inner)} x {factor:.3f}")
        return LatencySource(fn, self.name, self.space, self.resolutions, f"{self.description}, x {factor:.3f} ({why})",
                             tuple((s, m * factor) for s, m in self.held_out), self.lut, self.margin_hint_pct,
                             self.adapter)


def _precision_lut(device: str, precision: str) -> str:
    """``--device NAME --precision P`` (P not fp32): the LUT ``measure --device NAME --precision P`` writes by
    default in this folder (no LUT of another precision ships), or one line saying how to make it."""
    from .devices import load_device
    from .measure import default_lut_stem
    spec = load_device(device)
    name = default_lut_stem(spec, spec.space, precision=precision) + ".json"
    if Path(name).is_file():
        return name
    how = shell_command("ofa-profile", "measure", "--device", device, "--precision", precision)
    raise OfaProfileError(f"no {precision} LUT of device {device} here: none ships and ./{name} does not exist; "
                          f"measure it (`{how}` writes ./{name}) or pass --lut FILE")


def resolve_latency_source(device: str | None = None, lut: str | None = None, adapter: str | None = None,
                           calibrated: bool = True, classes: int | None = None,
                           precision: str | None = None) -> LatencySource:
    """``--device NAME`` (its shipped LUT), ``--lut FILE`` or ``--adapter FILE`` (with ``--lut`` for its prior);
    ``classes``: predict subnets with a classifier head of that many outputs (the LUT must hold it);
    ``precision``: the LUT must time blocks of that precision (``--device NAME`` with int8: the LUT
    ``measure --precision int8`` wrote here)."""
    if classes is not None and adapter is not None:
        raise OfaProfileError("--classes picks a LUT's classifier head; a few-shot adapter has one head: drop "
                              "--classes or --adapter")
    if precision is not None and adapter is not None:
        raise OfaProfileError("--precision picks a LUT of that precision; a few-shot adapter predicts the one its "
                              "subnets were timed in: drop --precision or --adapter")
    if device and lut:
        raise OfaProfileError("give either --device (a shipped LUT) or --lut FILE, not both")
    ref = lut or device
    if adapter is not None:
        ad = load_adapter(adapter)
        prior = None
        if ad.uses_prior:
            if ref is None:
                raise OfaProfileError(f"adapter {adapter} was fitted with a prior ({ad.prior}); pass that LUT with --lut")
            prior_lut = load_lut(ref)
            prior = lut_latency_fn(prior_lut, calibrated=calibrated)
            ad.check(adapter, prior_fn=prior, resolutions=prior_lut.resolutions)  # with its prior, now known
        sp = get_space(ad.space)
        hint = ad.info.get("margin_p90_pct")
        return LatencySource(adapter_latency_fn(ad, prior), ad.device, sp.name, sp.resolutions,
                             f"few-shot adapter {adapter} ({ad.info.get('n_fit', '?')} measured subnets)",
                             margin_hint_pct=float(hint) if isinstance(hint, (int, float)) and hint >= 0 else None,
                             adapter=str(adapter))
    if ref is None:
        raise OfaProfileError("no latency source: pass --device NAME (a shipped LUT), --lut FILE or --adapter FILE")
    if precision not in (None, "fp32") and lut is None:
        ref = _precision_lut(ref, precision)
    lt = load_lut(ref)
    timed = getattr(lt, "timed", None)
    if precision is not None and timed is not None and timed.precision != precision:
        how = shell_command("ofa-profile", "measure", "--device", lt.device or "DEVICE", "--precision", precision)
        raise OfaProfileError(f"LUT {lt.source} times {timed.precision} blocks, not {precision}: measure a {precision} "
                              f"LUT (`{how}`) and pass it with --lut, or drop --precision")
    return latency_source_from_lut(lt.with_classes(classes), calibrated=calibrated)


def latency_source_from_lut(lt: Any, calibrated: bool = True) -> LatencySource:
    """The latency source of a loaded LUT (its calibrated predictor unless ``calibrated`` is False)."""
    fn = lut_latency_fn(lt, calibrated=calibrated)
    how = "calibrated LUT" if (lt.calibration and calibrated) else "LUT sum"
    held = ()
    if lt.calibration and calibrated:
        held = tuple((SubnetSpec.from_ofa(x["arch"], space=lt.space), float(x["measured_ms"]))
                     for x in lt.calibration.get("samples", []) if x.get("split") == "test")
        head = calibration_classes(lt)
        timed = getattr(lt, "timed", None)
        if timed is not None and head is not None and timed.classes != head:
            # measured with the calibration's head: shifted by the LUT's difference to the head predicted, so that
            # --margin auto compares like with like
            held = tuple((s, m + lt.lut_sum_ms(s) - lt.lut_sum_ms(s, head)) for s, m in held)
    return LatencySource(fn, lt.device, lt.space, tuple(lt.resolutions), f"{how} {lt.source}", held, lt)


def macs_latency_fn(space: str, ms_per_mmac: float = 0.05, ms_per_block: float = 0.1) -> BatchFn:
    """A development stand-in for a device: ``ms_per_mmac * MMACs + ms_per_block * blocks``."""
    t = macs_table(get_space(space).name)

    def fn(a: ArchArrays) -> "np.ndarray":
        return ms_per_mmac * t.total(a) / 1e6 + ms_per_block * a.d.sum(axis=1)
    return BatchFn(fn, f"macs-proxy({ms_per_mmac} ms/MMAC, {ms_per_block} ms/block)")


def call_batched(fn: Any, a: ArchArrays) -> "np.ndarray":
    """``fn`` on a batch: its ``on_arrays`` fast path when it has one, else on specs; one finite float
    per subnet, checked."""
    import numpy as np
    if len(a) == 0:
        return np.zeros(0)
    fast = getattr(fn, "on_arrays", None)
    out = fast(a) if fast is not None else fn(a.to_specs())
    out = np.asarray(out, dtype=float).reshape(-1)
    if out.shape[0] != len(a):
        raise OfaProfileError(f"a search function returned {out.shape[0]} values for {len(a)} subnets")
    return out
