"""Few-shot latency for devices we cannot run on: architecture features + k measured subnets.

A device we have no LUT for (a GPU, a phone) is still predictable from a handful of
whole-net measurements, because its latency is close to a *non-negative* mix of a few
physical quantities of the subnet that need no LUT:

``n_blocks``      active elastic blocks (kernel launches / per-layer overhead)
``n_se_blocks``   active blocks with squeeze-excite (several extra small kernels each)
``pw_macs_m``     MACs outside depthwise convs, millions (1x1 convs, SE, stem, head)
``dw_macs_m``     depthwise-conv MACs, millions (memory-bound on most hardware)
``mid_act_m``     expanded activations read+written by the blocks, millions of elements

plus optionally ``prior_ms``, the latency some *other* model predicts (a LUT of
another runtime, or a model fitted on another device): see :func:`fit_adapter`.

With a *source model* (:mod:`ofa_profile.latency_source`: additive latency models learned on other
devices, one column per batch size), the features are instead that model's columns ``src:<name>``:
the target device is fitted as a non-negative mix of what the source devices' latency looks like at
batch 1 (overhead-bound) and at large batches (compute-bound) -- few-shot transfer in the manner of HELP.
The source model travels inside the adapter's JSON, so an adapter file is self-contained.

The fit is non-negative least squares on *relative* error with a robust
re-weighting (IRLS towards least absolute relative deviation), so one noisy sample
among ten cannot drag the fit; few parameters and sign constraints keep the variance
low with 10-20 samples.  The result, :class:`LatencyAdapter`, is plain numbers (JSON).

All features are computed vectorised from per-block tables (:class:`~ofa_profile.encodings.BlockTable`),
which also give MACs and parameter counts of whole batches for the search.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .accuracy_data import csv_records
from .atomic import write_json_atomic
from .encodings import (ArchArrays, BlockTable, as_arrays, macs_table,  # noqa: F401  (re-exported)
                        op_cost_table, params_table, same_macro_architecture)
from .errors import OfaProfileError
from .inputs import MAX_BYTES, open_input_text
from .fewshot_score import AdaptScore, score_latency  # noqa: F401  (re-exported)
from .jsonio import JsonInputError, load_checked, loads_strict
from .latency_source import SourceModel
from .space import DEFAULT_SPACE, SpaceError, SubnetSpec, get_space

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


__all__ = [
    "BlockTable", "op_cost_table", "macs_table", "params_table", "ARCH_FEATURES", "DEFAULT_FEATURES",
    "arch_features", "LatencyAdapter", "fit_adapter", "AdaptScore", "score_latency", "LatencyData",
    "read_latency_csv", "ADAPTER_FORMAT", "load_adapter", "evaluate_few_shot", "cross_validated", "AdaptRun",
    "adapt_device",
]

ADAPTER_FORMAT = "ofa-profile-latency-adapter"
ADAPTER_VERSION = 1


# -- architecture features ----------------------------------------------------------------------------

ARCH_FEATURES = ("n_blocks", "n_se_blocks", "pw_macs_m", "dw_macs_m", "mid_act_m", "macs_m", "params_m", "r")
DEFAULT_FEATURES = ("n_blocks", "n_se_blocks", "pw_macs_m", "dw_macs_m", "mid_act_m")


def arch_features(specs: "Sequence[SubnetSpec] | ArchArrays", names: Sequence[str] = DEFAULT_FEATURES
                  ) -> "np.ndarray":
    """``[N, len(names)]`` features of :data:`ARCH_FEATURES` (no LUT needed)."""
    import numpy as np
    a = specs if isinstance(specs, ArchArrays) else ArchArrays.from_specs(specs)
    sp = get_space(a.space)
    cols = []
    for n in names:
        if n == "n_blocks":
            cols.append(a.d.sum(axis=1).astype(float))
        elif n == "n_se_blocks":
            se = np.array([st.se for st in sp.stages], dtype=float)
            cols.append(a.d @ se)
        elif n == "macs_m":
            cols.append(op_cost_table(sp.name, "macs").total(a) / 1e6)
        elif n == "pw_macs_m":
            cols.append((op_cost_table(sp.name, "macs").total(a) - op_cost_table(sp.name, "dw_macs").total(a)) / 1e6)
        elif n == "dw_macs_m":
            cols.append(op_cost_table(sp.name, "dw_macs").total(a) / 1e6)
        elif n == "mid_act_m":
            cols.append(op_cost_table(sp.name, "mid_act").total(a) / 1e6)
        elif n == "params_m":
            cols.append(op_cost_table(sp.name, "params").total(a) / 1e6)
        elif n == "r":
            cols.append(a.r.astype(float))
        else:
            raise OfaProfileError(f"unknown feature {n!r}; choose from {', '.join(ARCH_FEATURES)}")
    return np.stack(cols, axis=1) if cols else np.zeros((len(a), 0))


# -- the adapter ---------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class LatencyAdapter:
    """``latency_ms = intercept_ms + sum(coef * features)`` (all coefficients >= 0), plain numbers."""
    device: str
    space: str
    feature_names: tuple[str, ...]
    coef: tuple[float, ...]
    intercept_ms: float
    prior: str | None = None   # what ``prior_ms`` was (e.g. "lut:cpu-ort"), None when unused
    info: Mapping[str, Any] = field(default_factory=dict)
    source: "SourceModel | None" = None   # the model behind the ``src:*`` features, None when unused

    def __post_init__(self) -> None:
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))

    @property
    def uses_prior(self) -> bool:
        return "prior_ms" in self.feature_names

    def predict_ms(self, specs: "Sequence[SubnetSpec] | ArchArrays", prior_ms: "Sequence[float] | None" = None
                   ) -> "np.ndarray":
        """Predicted latency (ms) of each subnet; ``prior_ms`` is required when the adapter uses a prior."""
        import numpy as np
        a = specs if isinstance(specs, ArchArrays) else ArchArrays.from_specs(specs)
        if not same_macro_architecture(a.space, self.space):
            raise OfaProfileError(f"adapter for {self.device} was fitted on {self.space}, not {a.space}")
        X = _design(a, self.feature_names, prior_ms, self.prior, self.source)
        return X @ np.asarray(self.coef) + self.intercept_ms

    def as_block_table(self) -> BlockTable | None:
        """The adapter folded into one additive :class:`BlockTable` (every arch feature is a sum over
        blocks), for vectorised search; None when it uses a prior (not known to be additive)."""
        import numpy as np
        if self.uses_prior:
            return None
        sp = get_space(self.space)
        ones = BlockTable.from_op_cost(sp.name, lambda op: 0.0)
        fixed = np.full_like(ones.fixed, self.intercept_ms)
        block = np.zeros_like(ones.block)
        se = np.repeat(np.array([float(st.se) for st in sp.stages]), sp.max_depth)
        res = np.array(ones.resolutions, dtype=float)
        for name, c in zip(self.feature_names, self.coef):
            if name == "n_blocks":
                block += c
            elif name == "n_se_blocks":
                block += c * se[None, :, None, None]
            elif name == "r":
                fixed += c * res
            elif name.startswith("src:") and self.source is not None:
                t = self.source.block_table(name[4:], ones.resolutions)
                fixed += c * t.fixed
                block += c * t.block
            else:
                parts = {"macs_m": [("macs", 1.0)], "pw_macs_m": [("macs", 1.0), ("dw_macs", -1.0)],
                         "dw_macs_m": [("dw_macs", 1.0)], "mid_act_m": [("mid_act", 1.0)],
                         "params_m": [("params", 1.0)]}[name]
                for cost, sign in parts:
                    t = op_cost_table(sp.name, cost).restricted(ones.resolutions)
                    fixed += sign * c * t.fixed / 1e6
                    block += sign * c * t.block / 1e6
        return BlockTable(sp.name, ones.resolutions, fixed, block, name=f"adapter:{self.device}")

    def to_json(self) -> dict[str, Any]:
        return {"format": ADAPTER_FORMAT, "version": ADAPTER_VERSION, "device": self.device, "space": self.space,
                "feature_names": list(self.feature_names), "coef": [float(c) for c in self.coef],
                "intercept_ms": float(self.intercept_ms), "prior": self.prior, "info": dict(self.info),
                "source": self.source.to_json() if self.source is not None else None}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "LatencyAdapter":
        """Read an adapter's JSON object, checking every field's type and shape (one-line errors)."""
        if not isinstance(obj, Mapping) or obj.get("format") != ADAPTER_FORMAT:
            raise OfaProfileError(f"not a latency adapter file (format should be {ADAPTER_FORMAT!r})")
        if obj.get("version") != ADAPTER_VERSION:
            raise OfaProfileError(f"latency adapter version {_short(obj.get('version'))} is not supported; refit it")
        dev, space, names, coef = obj.get("device"), obj.get("space"), obj.get("feature_names"), obj.get("coef")
        if not isinstance(dev, str) or not dev:
            raise OfaProfileError(f"latency adapter: 'device' is {_short(dev)}, not a non-empty string; refit it")
        if not isinstance(space, str):
            raise OfaProfileError(f"latency adapter: 'space' is {_short(space)}, not a space name; refit it")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            raise OfaProfileError(f"latency adapter: 'feature_names' is {_short(names)}, not a list of distinct "
                                  f"feature names; refit it")
        source = None
        if obj.get("source") is not None:
            try:
                source = SourceModel.from_json(obj["source"])
            except OfaProfileError as exc:
                raise OfaProfileError(f"latency adapter: its source model: {exc}; refit it") from None
        known = set(source.names) if source is not None else set()
        unknown = [n for n in names if n not in ARCH_FEATURES and n != "prior_ms" and
                   not (n.startswith("src:") and n[4:] in known)]
        if unknown:
            srcs = f", src:<{'|'.join(sorted(known))}>" if known else " (src:* features need a 'source' model)"
            raise OfaProfileError(f"latency adapter has unknown features {unknown[:3]} (known: "
                                  f"{', '.join(ARCH_FEATURES)}, prior_ms{srcs}); refit it")
        if not _finite_numbers(coef) or len(coef) != len(names):
            raise OfaProfileError(f"latency adapter: 'coef' is {_short(coef)}, not a list of {len(names)} finite "
                                  f"numbers (one per feature); refit it")
        icpt = obj.get("intercept_ms")
        if not _finite_numbers([icpt]):
            raise OfaProfileError(f"latency adapter: 'intercept_ms' is {_short(icpt)}, not a finite number; refit it")
        prior, info = obj.get("prior"), obj.get("info", {})
        if prior is not None and not isinstance(prior, str):
            raise OfaProfileError(f"latency adapter: 'prior' is {_short(prior)}, not a string or null; refit it")
        if not isinstance(info, Mapping):
            raise OfaProfileError(f"latency adapter: 'info' is {_short(info)}, not an object; refit it")
        if source is not None and not same_macro_architecture(source.space, space):
            raise OfaProfileError(f"latency adapter for {space} carries a source model of {source.space}; refit it")
        return cls(device=dev, space=get_space(space).name, feature_names=tuple(names),
                   coef=tuple(float(c) for c in coef), intercept_ms=float(icpt), prior=prior, info=dict(info),
                   source=source)

    def check(self, source: str = "", prior_fn: Callable[[Sequence[SubnetSpec]], Any] | None = None,
              resolutions: Sequence[int] | None = None) -> None:
        """Refuse (one line) an adapter that predicts a latency that is not a positive finite number for the
        space's smallest or largest subnet at the smallest and largest resolution (of ``resolutions``,
        default the space's).  An adapter with a prior is checked only given ``prior_fn`` (its prior's
        batched latency function)."""
        import numpy as np
        if self.uses_prior and prior_fn is None:
            return
        sp = get_space(self.space)
        res = tuple(resolutions) if resolutions else sp.resolutions
        cases = [(which, r, f(r)) for r in sorted({min(res), max(res)})
                 for which, f in (("smallest", sp.smallest), ("largest", sp.largest))]
        specs = [c[2] for c in cases]
        with np.errstate(all="ignore"):
            y = np.asarray(self.predict_ms(specs, prior_fn(specs) if self.uses_prior else None), dtype=float)
        for (which, r, _), v in zip(cases, y):
            if not (np.isfinite(v) and v > 0):
                where = f"latency adapter {source}" if source else f"latency adapter for {self.device}"
                raise OfaProfileError(f"{where} predicts {v:.6g} ms for the space's {which} subnet at r={r} (a "
                                      f"latency must be a positive finite number); refit it with `ofa-profile adapt`")

    def save(self, path: str | Path) -> Path:
        return write_json_atomic(path, self.to_json(), indent=2)


def _short(v: Any) -> str:
    """A value for a one-line message: its repr, cut."""
    t = repr(v) if not isinstance(v, (dict, list)) or len(v) < 8 else f"a {type(v).__name__} of {len(v)} items"
    t = " ".join(t.split())
    return t if len(t) <= 60 else t[:57] + "..."


def _finite_numbers(v: Any) -> bool:
    import math
    return isinstance(v, list) and all(type(x) in (int, float) and math.isfinite(x) for x in v)


def load_adapter(path: str | Path) -> LatencyAdapter:
    """Read and check an adapter file: strict JSON, every field checked, and its predictions on the space's
    smallest and largest subnets positive and finite (one-line :class:`OfaProfileError` otherwise)."""
    return load_checked(path, "latency adapter", LatencyAdapter.from_json)


def _design(a: ArchArrays, names: Sequence[str], prior_ms: "Sequence[float] | None", prior: str | None,
            source: "SourceModel | None" = None) -> "np.ndarray":
    """The adapter's feature columns in the order of ``names``: architecture features, ``prior_ms`` and the
    source model's ``src:<column>`` predictions."""
    import numpy as np
    src = [n[4:] for n in names if n.startswith("src:")]
    if src and source is None:
        raise OfaProfileError("this adapter uses a source model's columns but carries no source model; refit it")
    S = source.predict(a, src) if src else None
    X = arch_features(a, [n for n in names if n != "prior_ms" and not n.startswith("src:")])
    cols, ai, si = [], 0, 0
    for n in names:
        if n == "prior_ms":
            cols.append(_prior_column(a, prior_ms, prior))
        elif n.startswith("src:"):
            cols.append(S[:, si]); si += 1
        else:
            cols.append(X[:, ai]); ai += 1
    return np.stack(cols, axis=1) if cols else np.zeros((len(a), 0))


def _prior_column(a: ArchArrays, prior_ms: "Sequence[float] | None", prior: str | None) -> "np.ndarray":
    import numpy as np
    if prior_ms is None:
        raise OfaProfileError(f"this adapter uses a prior latency ({prior or 'prior_ms'}); pass its predictions "
                              f"(e.g. the same --lut it was fitted with)")
    pr = np.asarray(prior_ms, dtype=float).reshape(-1)
    if pr.shape[0] != len(a):
        raise OfaProfileError(f"got {pr.shape[0]} prior latencies for {len(a)} subnets")
    return pr


def _robust_nnls(X: "np.ndarray", y: "np.ndarray", iters: int = 10, floor: float = 0.02) -> "np.ndarray":
    """Non-negative least squares on relative error, re-weighted towards least absolute relative deviation."""
    import numpy as np
    from scipy.optimize import nnls
    base = 1.0 / y
    w = base.copy()
    coef = np.zeros(X.shape[1])
    for _ in range(max(1, iters)):
        coef, _ = nnls(X * w[:, None], y * w)
        rel = np.abs(X @ coef / y - 1.0)
        w = base / np.sqrt(np.maximum(rel, floor))
    return coef


def fit_adapter(specs: "Sequence[SubnetSpec] | ArchArrays", measured_ms: Sequence[float], device: str, *,
                features: Sequence[str] | None = None, prior_ms: "Sequence[float] | None" = None,
                prior: str | None = None, robust: bool = True, seed: int | None = None,
                source: "SourceModel | None" = None) -> LatencyAdapter:
    """Fit a :class:`LatencyAdapter` from measured subnets of one device.

    ``features`` (default :data:`DEFAULT_FEATURES`, or with ``source`` every column of the source model as
    ``src:<name>``) may include ``"prior_ms"``; then ``prior_ms`` gives that column (e.g. a
    LUT sum of another runtime) and ``prior`` names where it came from.  Passing
    ``prior_ms`` without naming it in ``features`` appends it.
    """
    import numpy as np
    a = specs if isinstance(specs, ArchArrays) else ArchArrays.from_specs(specs)
    y = np.asarray(measured_ms, dtype=float).reshape(-1)
    if y.shape[0] != len(a):
        raise OfaProfileError(f"got {y.shape[0]} latencies for {len(a)} subnets")
    if not np.isfinite(y).all() or (y <= 0).any():
        raise OfaProfileError("measured latencies must be positive finite numbers (ms)")
    if features is None:
        features = tuple(f"src:{n}" for n in source.names) if source is not None else DEFAULT_FEATURES
    names = tuple(features)
    if source is not None and not same_macro_architecture(source.space, a.space):
        raise OfaProfileError(f"the latency source was fitted on {source.space}, not {a.space}; use --source none")
    if prior_ms is not None and "prior_ms" not in names:
        names = names + ("prior_ms",)
    min_k = 3
    if len(a) < min_k:
        raise OfaProfileError(f"few-shot adaptation needs at least {min_k} measured subnets, got {len(a)}")
    X = _design(a, names, prior_ms, prior, source)
    if not np.isfinite(X).all():
        raise OfaProfileError("the prior latencies are not all finite numbers; check the LUT passed as the prior")
    Xi = np.concatenate([np.ones((len(a), 1)), X], axis=1)
    with np.errstate(all="ignore"):
        try:
            coef = _robust_nnls(Xi, y, iters=10 if robust else 1)
        except (RuntimeError, ValueError) as exc:  # scipy: "too many iterations", non-finite input
            raise OfaProfileError(f"the adapter fit failed on these measurements ({str(exc).splitlines()[0][:100]}); "
                                  f"check the latencies (ms) for extreme values") from None
        fitted = Xi @ coef
        rel = np.abs(fitted / y - 1.0)
    if not (np.isfinite(coef).all() and np.isfinite(fitted).all() and (fitted > 0).all()):
        raise OfaProfileError(f"the adapter fit on {len(a)} subnets produced non-finite coefficients or non-positive "
                              f"latencies (degenerate measurements?); nothing was saved: measure more varied subnets")
    info = {"n_fit": int(len(a)), "robust": robust, "fit_median_rel_err": float(np.median(rel)),
            "fit_within_10pct": float((rel <= 0.10).mean())}
    if seed is not None:
        info["seed"] = seed
    ad = LatencyAdapter(device=device, space=a.space, feature_names=names, coef=tuple(float(c) for c in coef[1:]),
                        intercept_ms=float(coef[0]), prior=prior if "prior_ms" in names else None, info=info,
                        source=source if any(n.startswith("src:") for n in names) else None)
    ad.check()  # a fit that would be refused on load is refused now (an adapter with a prior: its fitted values)
    return ad


# -- scoring -------------------------------------------------------------------------------------------

# -- measurement files ---------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class LatencyData:
    """Measured whole-net latencies: subnets and one or more latency columns (ms)."""
    specs: tuple[SubnetSpec, ...]
    latency_ms: Mapping[str, "np.ndarray"]
    source: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.latency_ms)

    def column(self, name: str | None = None) -> "np.ndarray":
        if name is None:
            if len(self.latency_ms) != 1:
                raise OfaProfileError(f"{self.source or 'measurements'} has several latency columns "
                                      f"({', '.join(self.latency_ms)}); pick one with --column")
            name = next(iter(self.latency_ms))
        if name not in self.latency_ms:
            raise OfaProfileError(f"no latency column {name!r} in {self.source or 'measurements'}; "
                                  f"choose one of {', '.join(self.latency_ms)}")
        return self.latency_ms[name]


_LAT_NAMES = ("latency_ms", "median_ms", "measured_ms", "lat_ms")


def _finite_ms(text: Any) -> float | None:
    """A CSV cell as a positive finite latency, else None (empty, 'nan', 'inf', text, <= 0)."""
    import math
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def read_latency_csv(path: str | Path, space: str | None = None) -> LatencyData:
    """Read whole-net measurements: subnet as ``arch`` (JSON spec) or ``d, ks, e, r`` columns,
    latency in every column named ``latency_ms``/``median_ms``/``measured_ms`` or starting with ``lat_ms``.
    """
    import numpy as np
    p = Path(path)
    fh = open_input_text(p, "measurements file", MAX_BYTES["csv"])   # a leading BOM (Excel) is not data
    with fh:
        cols, reader = csv_records(fh, p)
        lat_cols = [c for c in cols if c in _LAT_NAMES or c.startswith("lat_ms")]
        has_arch = "arch" in cols
        rcol = "r" if "r" in cols else "image_size" if "image_size" in cols else None
        if not lat_cols:
            raise OfaProfileError(f"{p} has no latency column (name it latency_ms, median_ms or lat_ms_*)")
        if not has_arch and (not {"d", "ks", "e"} <= set(cols) or rcol is None):
            raise OfaProfileError(f"{p} needs the subnet as an 'arch' JSON column or as d, ks, e, r columns")
        specs: list[SubnetSpec] = []
        vals: dict[str, list[float]] = {c: [] for c in lat_cols}
        for i, row in enumerate(reader, start=2):
            sp_name = space or row.get("space") or DEFAULT_SPACE
            try:
                if has_arch:
                    obj = loads_strict(row["arch"] or "")
                else:
                    obj = {"d": loads_strict(row["d"] or ""), "ks": loads_strict(row["ks"] or ""),
                           "e": loads_strict(row["e"] or ""), "r": loads_strict(row[rcol] or "")}
                if isinstance(obj, Mapping) and "space" in obj and space is None:
                    sp_name = obj["space"]
                specs.append(SubnetSpec.from_ofa(obj, space=sp_name))
            except JsonInputError as exc:
                raise OfaProfileError(f"{p}: row {i}: the subnet column(s) {exc}") from None
            except SpaceError as exc:
                raise OfaProfileError(f"{p}: row {i}: {exc}") from None
            except (TypeError, ValueError, AttributeError) as exc:
                raise OfaProfileError(f"{p}: row {i}: the subnet column(s) are not a subnet spec "
                                      f"({str(exc).splitlines()[0][:100]})") from None
            for c in lat_cols:
                v = _finite_ms(row.get(c))
                if v is None:
                    raise OfaProfileError(f"{p}: row {i}: latency {c}={_short(row.get(c))} is not a positive finite "
                                          f"number (ms); fix or drop that row")
                vals[c].append(v)
    if not specs:
        raise OfaProfileError(f"{p} has no rows")
    return LatencyData(tuple(specs), {c: np.asarray(v, dtype=float) for c, v in vals.items()}, str(p))


def _candidates(source: "SourceModel | None") -> dict[str, tuple["SourceModel | None", tuple[str, ...]]]:
    """The designs :func:`fit_chosen` picks from, simplest first: the source model's columns, the architecture
    features, and both."""
    if source is None:
        return {"features": (None, DEFAULT_FEATURES)}
    src = tuple(f"src:{n}" for n in source.names)
    return {"transfer": (source, src), "features": (None, DEFAULT_FEATURES), "combined": (source, DEFAULT_FEATURES + src)}


def fit_chosen(specs: "Sequence[SubnetSpec] | ArchArrays", measured_ms: Sequence[float], device: str, *,
               source: "SourceModel | None" = None, choose: bool = False, prior_ms: "Sequence[float] | None" = None,
               prior: str | None = None, seed: int | None = None, features: Sequence[str] | None = None,
               margin: bool = True) -> LatencyAdapter:
    """:func:`fit_adapter` (``features`` as there) with the source model, or -- ``choose`` -- whichever design of
    :func:`_candidates` predicts these measurements best under cross-validation (the lowest mean relative
    error on rows left out; the simplest within 2 % of it; the source model's columns below 4 rows).  ``info["model"]``
    names the pick ("transfer", "combined" or "features") and ``info["cv_mape_pct"]`` the errors.

    ``margin`` (4 rows or more): ``info["margin_p90_pct"]``, the 90th percentile of the cross-validated
    under-predictions (measured / predicted - 1, at least 0) -- what ``pareto --margin auto`` takes off the
    budget so that the search's pick, which favours under-predicted subnets, still fits."""
    import dataclasses
    import numpy as np
    a = as_arrays(specs)
    y = np.asarray(measured_ms, dtype=float)
    pr = None if prior_ms is None else np.asarray(prior_ms, dtype=float)
    if source is None or not choose or len(a) < 4:
        ad = fit_adapter(a, y, device, prior_ms=pr, prior=prior, seed=seed, source=source, features=features)
        info: dict[str, Any] = {"model": "transfer" if ad.source is not None else "features"}
        if margin and len(a) >= 4:
            cv, _ = cv_predict(a, y, device, seed or 0, prior_ms=pr, source=source, features=features)
            info["margin_p90_pct"] = _under_p90_pct(cv, y)
        return dataclasses.replace(ad, info={**ad.info, **info})
    errs: dict[str, float] = {}
    cvs = {}
    cands = _candidates(source)
    for name, (src, feats) in cands.items():
        cvs[name], _ = cv_predict(a, y, device, seed or 0, prior_ms=pr, source=src, features=feats)
        errs[name] = round(score_latency(cvs[name], y).mape_pct, 4)
    best = min(errs.values())
    pick = next(n for n in cands if errs[n] <= best * 1.02 + 1e-12)
    src, feats = cands[pick]
    ad = fit_adapter(a, y, device, prior_ms=pr, prior=prior, seed=seed, source=src, features=feats)
    info = {"model": pick, "cv_mape_pct": errs}
    if margin:
        info["margin_p90_pct"] = _under_p90_pct(cvs[pick], y)
    return dataclasses.replace(ad, info={**ad.info, **info})


def _under_p90_pct(predicted: "np.ndarray", measured: "np.ndarray") -> float:
    import numpy as np
    return round(float(max(0.0, np.quantile(measured / predicted - 1.0, 0.9) * 100.0)), 3)


def evaluate_few_shot(specs: "Sequence[SubnetSpec] | ArchArrays", measured_ms: Sequence[float], k: int, seed: int,
                      *, prior_ms: "Sequence[float] | None" = None, prior: str | None = None, device: str = "target",
                      source: "SourceModel | None" = None, choose: bool = False,
                      features: Sequence[str] | None = None) -> tuple[LatencyAdapter, AdaptScore]:
    """Fit on ``k`` seeded random subnets (:func:`fit_chosen`), score on all the others (never seen by the fit)."""
    import numpy as np
    a = as_arrays(specs)
    y = np.asarray(measured_ms, dtype=float)
    if not 0 < k < len(a):
        raise OfaProfileError(f"k={k} must be between 1 and {len(a) - 1} (the rest is the test set)")
    perm = np.random.default_rng(seed).permutation(len(a))
    fit_i, test_i = np.sort(perm[:k]), np.sort(perm[k:])
    pr = None if prior_ms is None else np.asarray(prior_ms, dtype=float)
    ad = fit_chosen(a.take(fit_i), y[fit_i], device, prior_ms=None if pr is None else pr[fit_i], prior=prior,
                    seed=seed, source=source, choose=choose, features=features)
    pred = ad.predict_ms(a.take(test_i), None if pr is None else pr[test_i])
    return ad, score_latency(pred, y[test_i])


def cv_predict(specs: "Sequence[SubnetSpec] | ArchArrays", measured_ms: Sequence[float], device: str, seed: int,
               *, prior_ms: "Sequence[float] | None" = None, max_folds: int = 10, source: "SourceModel | None" = None,
               choose: bool = False, features: Sequence[str] | None = None) -> tuple["np.ndarray", int]:
    """Each subnet's latency predicted by :func:`fit_chosen` fitted without it: ``min(n, max_folds)`` seeded
    folds; returns the predictions and the number of folds."""
    import numpy as np
    a = as_arrays(specs)
    y = np.asarray(measured_ms, dtype=float)
    pr = None if prior_ms is None else np.asarray(prior_ms, dtype=float)
    n = len(y)
    folds = np.arange(n) % min(n, max_folds)
    np.random.default_rng(seed).shuffle(folds)
    cv = np.zeros(n)
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        m = fit_chosen(a.take(tr), y[tr], device, prior_ms=None if pr is None else pr[tr], source=source,
                       choose=choose, seed=seed, features=features, margin=False)
        cv[te] = m.predict_ms(a.take(te), None if pr is None else pr[te])
    return cv, int(min(n, max_folds))


def cross_validated(specs: "Sequence[SubnetSpec] | ArchArrays", measured_ms: Sequence[float], device: str, seed: int,
                    *, prior_ms: "Sequence[float] | None" = None, max_folds: int = 10,
                    source: "SourceModel | None" = None, choose: bool = False,
                    features: Sequence[str] | None = None) -> tuple[AdaptScore, int]:
    """The score of :func:`fit_chosen` on subnets it did not see (:func:`cv_predict`); returns the score and the
    number of folds."""
    import numpy as np
    cv, n_folds = cv_predict(specs, measured_ms, device, seed, prior_ms=prior_ms, max_folds=max_folds, source=source,
                             choose=choose, features=features)
    return score_latency(cv, np.asarray(measured_ms, dtype=float)), n_folds


@dataclass(frozen=True, eq=False)
class AdaptRun:
    """What ``ofa-profile adapt`` did: the adapter it wrote, its score on unseen subnets (held out with ``k``,
    else cross-validated) and the report (the command's JSON)."""
    adapter: LatencyAdapter
    score: AdaptScore
    report: Mapping[str, Any]


def adapt_device(measurements: str | Path, device: str, out: str | Path, *, column: str | None = None,
                 k: int | None = None, seed: int = 0,
                 prior: "Callable[[], tuple[str, Callable[[ArchArrays], Any]]] | None" = None,
                 source: "SourceModel | None" = None, choose: bool = False) -> AdaptRun:
    """Fit the adapter of ``device`` on the measured subnets of the CSV ``measurements`` and write it to ``out``.

    ``k``: fit on ``k`` seeded random rows and score on the others; None: fit on all rows, scored by
    :func:`cross_validated`.  ``prior``: called once the measurements are read, it returns the name and the
    batched latency function (``fn(ArchArrays) -> ms``) of a model whose prediction joins the features.
    ``source``: a latency model of other devices to transfer from (:mod:`ofa_profile.latency_source`);
    ``choose``: fall back to the architecture features where they predict the measurements better."""
    import dataclasses

    data = read_latency_csv(measurements)
    y = data.column(column)
    a = ArchArrays.from_specs(list(data.specs))
    if source is not None and not same_macro_architecture(source.space, a.space):
        if not choose:
            raise OfaProfileError(f"the latency source was fitted on {source.space}, not {a.space}; use --source none")
        source = None                  # the default source does not fit this space: the architecture features
    prior_ms = prior_name = None
    if prior is not None:
        prior_name, fn = prior()
        prior_ms = fn(a)
    report: dict[str, Any] = {"device": device, "measurements": str(measurements),
                              "column": column or data.columns[0], "n_rows": len(y), "prior": prior_name}
    if k is not None:
        ad, sc = evaluate_few_shot(a, y, k, seed, prior_ms=prior_ms, prior=prior_name, device=device, source=source,
                                   choose=choose)
        report.update({"k": k, "seed": seed, "held_out": sc.as_dict()})
        ad = dataclasses.replace(ad, info={**ad.info, "held_out": sc.as_dict()})
    else:
        sc, n_folds = cross_validated(a, y, device, seed, prior_ms=prior_ms, source=source, choose=choose)
        ad = fit_chosen(a, y, device, prior_ms=prior_ms, prior=prior_name, seed=seed, source=source, choose=choose)
        ad = dataclasses.replace(ad, info={**ad.info, "cross_validated": sc.as_dict()})
        report.update({"cross_validated": sc.as_dict(), "folds": n_folds})
    path = ad.save(out)
    report.update({"adapter": str(path), "model": ad.info.get("model"), "cv_mape_pct": ad.info.get("cv_mape_pct"),
                   "source": ad.source.info.get("name") if ad.source is not None else None,
                   "features": list(ad.feature_names), "coef": list(ad.coef), "intercept_ms": ad.intercept_ms})
    return AdaptRun(ad, sc, report)
