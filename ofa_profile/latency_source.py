"""A latency model learned on *source* devices, for few-shot transfer to a device it never saw.

HELP (Lee et al., NeurIPS'21) predicts latency on a new device from a model learned on other devices plus a
few samples of the new one.  This module is the "model learned on other devices" half, kept plain and
additive so it ships as JSON and folds into the search's cost tables:

    latency_ms(subnet) = f0 + f2 * rho^2 + sum over active blocks of (c0[s, k, e] + c2[s, k, e] * rho^2)

with ``rho = r / r_ref`` (``r_ref`` the space's largest resolution) and ``s, k, e`` the block's stage, kernel
and expand ratio: a per-block constant (launch and per-layer overhead) plus a per-block part that grows with
the pixels (compute and memory traffic).  One such *column* is fitted per batch size, pooled over the source
devices (each device's fit normalised to its mean latency before averaging, so no device dominates); the
few-shot adapter (:mod:`ofa_profile.adapt`) then fits the target device as a non-negative mix of the columns
from k measured subnets.

The shipped model (:func:`shipped_source`) was fitted on the Titan RTX and Titan Xp measurements of
``reference/help-ofa-gpu-latency.csv`` with ``ofa-profile adapt-source`` (see docs/device-specs.md).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .atomic import write_json_atomic
from .encodings import ArchArrays, BlockTable, as_arrays, same_macro_architecture
from .errors import OfaProfileError
from .fewshot_score import score_latency
from .jsonio import load_checked
from .space import SpaceError, get_space

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["SOURCE_FORMAT", "SourceColumn", "SourceModel", "fit_source_model", "load_source", "shipped_source",
           "SHIPPED_SOURCE", "column_groups"]

SOURCE_FORMAT = "ofa-profile-latency-source"
SOURCE_VERSION = 1
SHIPPED_SOURCE = "gpu"          # the name `adapt --source` knows without a path
_RIDGE = 1e-4                   # on the relative-error design; keeps never-seen combinations finite


@dataclass(frozen=True, eq=False)
class SourceColumn:
    """One additive latency model (ms): ``fixed = (f0, f2)`` and ``block[s, ki, ei] = (c0, c2)``."""
    name: str
    batch_size: int | None
    devices: tuple[str, ...]
    fixed: tuple[float, float]
    block: "np.ndarray"                      # [n_stages, n_kernels, n_expands, 2]
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))


@dataclass(frozen=True, eq=False)
class SourceModel:
    """Additive latency models of source devices, one :class:`SourceColumn` per batch size (plain numbers)."""
    space: str
    r_ref: int
    columns: tuple[SourceColumn, ...]
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> SourceColumn:
        for c in self.columns:
            if c.name == name:
                return c
        raise OfaProfileError(f"latency source has no column {name!r}; it has {', '.join(self.names)}")

    def predict(self, specs: "Sequence[Any] | ArchArrays", names: Sequence[str] | None = None) -> "np.ndarray":
        """``[N, n_columns]`` latency (ms) of each subnet under each column (all, or ``names``)."""
        import numpy as np
        a = as_arrays(specs)
        if not same_macro_architecture(a.space, self.space):
            raise OfaProfileError(f"latency source fitted on {self.space} cannot predict {a.space} subnets")
        cols = [self.column(n) for n in names] if names is not None else list(self.columns)
        if not len(a):
            return np.zeros((0, len(cols)))
        W = np.stack([np.concatenate([np.asarray(c.fixed), c.block.reshape(-1, 2).T.reshape(-1)]) for c in cols], 1)
        return _design(a, self.r_ref) @ W

    def block_table(self, name: str, resolutions: Sequence[int] | None = None) -> BlockTable:
        """Column ``name`` as a :class:`BlockTable` (exactly the same sums, tabulated for the search)."""
        import numpy as np
        c = self.column(name)
        sp = get_space(self.space)
        res = tuple(resolutions) if resolutions is not None else sp.resolutions
        rho2 = (np.asarray(res, dtype=float) / self.r_ref) ** 2
        fixed = c.fixed[0] + c.fixed[1] * rho2
        stage_of = np.repeat(np.arange(sp.n_stages), sp.max_depth)
        per_block = c.block[stage_of]                                      # [n_blocks, nk, ne, 2]
        block = per_block[None, ..., 0] + per_block[None, ..., 1] * rho2[:, None, None, None]
        return BlockTable(sp.name, res, fixed, block, name=f"source:{name}")

    def check(self, source: str = "") -> None:
        """Refuse (one line) a model that predicts a non-positive or non-finite latency for the space's smallest
        or largest subnet at its smallest or largest resolution."""
        import numpy as np
        sp = get_space(self.space)
        cases = [(w, r, f(r)) for r in sorted({min(sp.resolutions), max(sp.resolutions)})
                 for w, f in (("smallest", sp.smallest), ("largest", sp.largest))]
        with np.errstate(all="ignore"):
            y = self.predict([c[2] for c in cases])
        for j, name in enumerate(self.names):
            for (w, r, _), v in zip(cases, y[:, j]):
                if not (np.isfinite(v) and v > 0):
                    raise OfaProfileError(f"latency source {source or ''} column {name!r} predicts {v:.6g} ms for the "
                                          f"{w} subnet at r={r} (must be a positive finite number); refit it")

    def to_json(self) -> dict[str, Any]:
        return {"format": SOURCE_FORMAT, "version": SOURCE_VERSION, "space": self.space, "r_ref": self.r_ref,
                "basis": ["1", "rho^2"], "info": dict(self.info),
                "columns": [{"name": c.name, "batch_size": c.batch_size, "devices": list(c.devices),
                             "fixed": [float(x) for x in c.fixed],
                             "block": [[[[float(v) for v in e] for e in k] for k in s] for s in c.block.tolist()],
                             "info": dict(c.info)} for c in self.columns]}

    @classmethod
    def from_json(cls, obj: Any) -> "SourceModel":
        """Read a source model's JSON object, checking every field (one-line :class:`OfaProfileError`)."""
        import numpy as np
        if not isinstance(obj, Mapping) or obj.get("format") != SOURCE_FORMAT:
            raise OfaProfileError(f"not a latency source file (format should be {SOURCE_FORMAT!r})")
        if obj.get("version") != SOURCE_VERSION:
            raise OfaProfileError(f"latency source version {obj.get('version')!r} is not supported; refit it")
        try:
            sp = get_space(obj.get("space"))
        except (SpaceError, TypeError):
            raise OfaProfileError(f"latency source: 'space' is {_short(obj.get('space'))}, not a known space") from None
        r_ref = obj.get("r_ref")
        if type(r_ref) is not int or r_ref <= 0:
            raise OfaProfileError(f"latency source: 'r_ref' is {_short(r_ref)}, not a positive integer")
        cols, info = obj.get("columns"), obj.get("info", {})
        if not isinstance(info, Mapping):
            raise OfaProfileError(f"latency source: 'info' is {_short(info)}, not an object")
        if not isinstance(cols, list) or not cols:
            raise OfaProfileError(f"latency source: 'columns' is {_short(cols)}, not a non-empty list")
        shape = (sp.n_stages, len(sp.kernels), len(sp.expands), 2)
        out, seen = [], set()
        for i, c in enumerate(cols):
            where = f"latency source: column {i}"
            if not isinstance(c, Mapping):
                raise OfaProfileError(f"{where} is {_short(c)}, not an object")
            name, bs, devs = c.get("name"), c.get("batch_size"), c.get("devices", [])
            if not isinstance(name, str) or not name or name in seen:
                raise OfaProfileError(f"{where}: 'name' is {_short(name)}, not a new non-empty string")
            seen.add(name)
            if bs is not None and (type(bs) is not int or bs <= 0):
                raise OfaProfileError(f"{where}: 'batch_size' is {_short(bs)}, not a positive integer or null")
            if not isinstance(devs, list) or not all(isinstance(d, str) for d in devs):
                raise OfaProfileError(f"{where}: 'devices' is {_short(devs)}, not a list of names")
            fixed = c.get("fixed")
            if not _finite_list(fixed) or len(fixed) != 2:
                raise OfaProfileError(f"{where}: 'fixed' is {_short(fixed)}, not 2 finite numbers")
            block = _finite_array(c.get("block"), shape)
            if block is None:
                raise OfaProfileError(f"{where}: 'block' is not a {'x'.join(map(str, shape))} array of finite "
                                      f"numbers (stages x kernels x expands x basis of {sp.name})")
            cinfo = c.get("info", {})
            if not isinstance(cinfo, Mapping):
                raise OfaProfileError(f"{where}: 'info' is {_short(cinfo)}, not an object")
            out.append(SourceColumn(name, bs, tuple(devs), (float(fixed[0]), float(fixed[1])),
                                    np.asarray(block, dtype=float), dict(cinfo)))
        return cls(sp.name, r_ref, tuple(out), dict(info))

    def save(self, path: str | Path) -> Path:
        return write_json_atomic(path, self.to_json(), indent=1)


def _short(v: Any) -> str:
    t = " ".join(repr(v).split())
    return t if len(t) <= 60 else t[:57] + "..."


def _finite_list(v: Any) -> bool:
    import math
    return isinstance(v, list) and all(type(x) in (int, float) and math.isfinite(x) for x in v)


def _finite_array(v: Any, shape: tuple[int, ...]) -> "np.ndarray | None":
    """``v`` as a float array of ``shape`` if it is nested lists of finite numbers of exactly that shape."""
    import numpy as np

    def ok(x: Any, dims: tuple[int, ...]) -> bool:
        if not dims:
            return type(x) in (int, float)
        return isinstance(x, list) and len(x) == dims[0] and all(ok(y, dims[1:]) for y in x)
    if not ok(v, shape):
        return None
    arr = np.asarray(v, dtype=float)
    return arr if np.isfinite(arr).all() else None


def _design(a: ArchArrays, r_ref: int) -> "np.ndarray":
    """``[N, 2 + 2 * n_stages * nk * ne]``: (1, rho^2), then per (stage, k, e) the count of active blocks,
    times 1 (first half) and times rho^2 (second half)."""
    import numpy as np
    sp = get_space(a.space)
    nk, ne = len(sp.kernels), len(sp.expands)
    kmap = np.zeros(max(sp.kernels) + 1, dtype=np.int64)
    kmap[list(sp.kernels)] = np.arange(nk)
    emap = np.zeros(max(sp.expands) + 1, dtype=np.int64)
    emap[list(sp.expands)] = np.arange(ne)
    act = a.active
    stage = np.repeat(np.arange(sp.n_stages), sp.max_depth)[None, :].repeat(len(a), 0)
    cell = (stage * nk + kmap[a.ks]) * ne + emap[a.e]                     # [N, n_blocks]
    counts = np.zeros((len(a), sp.n_stages * nk * ne))
    rows = np.repeat(np.arange(len(a)), act.shape[1]).reshape(act.shape)
    np.add.at(counts, (rows[act], cell[act]), 1.0)
    rho2 = (a.r.astype(float) / r_ref) ** 2
    return np.concatenate([np.ones((len(a), 1)), rho2[:, None], counts, counts * rho2[:, None]], axis=1)


def _fit_column(X: "np.ndarray", y: "np.ndarray") -> "np.ndarray":
    """Least squares on relative error (rows weighted by 1/y), a small ridge for never-seen cells."""
    import numpy as np
    A = X / y[:, None]
    t = np.ones(len(y))
    return np.linalg.solve(A.T @ A + _RIDGE * np.eye(A.shape[1]), A.T @ t)


_COLUMN_RE = re.compile(r"^(?:lat_ms_)?(?P<device>.+?)_(?:b|bs)?(?P<batch>\d+)$")


def column_groups(columns: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """Latency columns named ``lat_ms_<device>_<batch>`` grouped by batch: ``{"b32": [(device, column)]}``;
    a column without a batch suffix is its own group (batch unknown)."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for col in columns:
        m = _COLUMN_RE.match(col)
        key, dev = (f"b{int(m['batch'])}", m["device"]) if m else (col, col)
        groups.setdefault(key, []).append((dev, col))
    return groups


def fit_source_model(data: Any, *, columns: Sequence[str] | None = None, exclude_devices: Sequence[str] = (),
                     folds: int = 5, seed: int = 0, name: str | None = None) -> SourceModel:
    """Fit one pooled additive column per batch size from measured whole subnets of several devices
    (``data``: an :class:`ofa_profile.adapt.LatencyData`, or anything with its ``specs``, ``columns``,
    ``column(name)`` and ``source``).

    ``columns``: the latency columns to use (default all); ``exclude_devices``: device names to leave out (the
    leave-one-device-out evaluation).  Each device column's fit is scored by ``folds``-fold cross-validation
    (Spearman, share within +-10 %) and the scores are stored in the column's ``info``."""
    import numpy as np

    cols = list(columns) if columns is not None else list(data.columns)
    a = ArchArrays.from_specs(list(data.specs))
    sp = get_space(a.space)
    r_ref = max(sp.resolutions)
    X = _design(a, r_ref)
    groups = {g: [(d, c) for d, c in members if d not in set(exclude_devices)]
              for g, members in column_groups(cols).items()}
    groups = {g: m for g, m in groups.items() if m}
    if not groups:
        raise OfaProfileError("no latency column left to fit a source model on")
    if len(a) < 4 * X.shape[1]:
        raise OfaProfileError(f"a latency source needs at least {4 * X.shape[1]} measured subnets (4 per parameter), "
                              f"got {len(a)}")
    fold_of = np.arange(len(a)) % folds
    np.random.default_rng(seed).shuffle(fold_of)
    out = []
    for g, members in sorted(groups.items(), key=lambda kv: (len(kv[0]), kv[0])):
        ws, scales, cv = [], [], {}
        for dev, col in members:
            y = data.column(col)
            pred = np.zeros(len(y))
            for f in range(folds):
                te = fold_of == f
                pred[te] = X[te] @ _fit_column(X[~te], y[~te])
            sc = score_latency(pred, y)
            cv[dev] = {"column": col, "spearman": round(sc.spearman, 4), "within_10pct": round(sc.within_10pct, 4)}
            w = _fit_column(X, y)
            ws.append(w)
            scales.append(float(np.mean(X @ w)))
        pooled = np.mean([w / s for w, s in zip(ws, scales)], axis=0) * float(np.mean(scales))
        m = _COLUMN_RE.match(members[0][1])
        block = pooled[2:].reshape(2, sp.n_stages, len(sp.kernels), len(sp.expands)).transpose(1, 2, 3, 0)
        out.append(SourceColumn(g, int(m["batch"]) if m else None, tuple(d for d, _ in members),
                                (float(pooled[0]), float(pooled[1])), block,
                                {"n_rows": int(len(a)), "cross_validated": cv, "folds": folds}))
    model = SourceModel(sp.name, r_ref, tuple(out), {"name": name or "+".join(sorted({d for c in out for d in c.devices})),
                                                    "data": Path(data.source).name if data.source else None,
                                                    "seed": seed, "folds": folds})
    model.check()
    return model


def load_source(ref: str | Path) -> SourceModel:
    """A source model by name (``gpu``: the shipped one) or JSON file; checked on load."""
    if str(ref) == SHIPPED_SOURCE:
        return shipped_source()
    return load_checked(ref, "latency source", SourceModel.from_json)


def shipped_source() -> SourceModel:
    """The source model shipped with the package (two GPUs, batch 1/32/64; see the module docstring)."""
    p = Path(__file__).resolve().parent / "predictors" / "latency-source-gpu.json"
    if not p.exists():
        raise OfaProfileError(f"the shipped latency source {p} is missing; reinstall ofa-profile")
    return load_source(p)
