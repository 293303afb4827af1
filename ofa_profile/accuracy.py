"""Accuracy predictors: architecture encodings, regressors stored as plain JSON, OFA's official MLP.

An :class:`AccuracyPredictor` maps subnet specs to a predicted top-1 accuracy (a
fraction).  It is fitted with scikit-learn but stored and evaluated *without* it:
:meth:`AccuracyPredictor.to_json` writes plain arrays (ridge coefficients, boosted
trees as node arrays, MLP weights) and :meth:`AccuracyPredictor.predict`
re-implements prediction with numpy, so a scikit-learn upgrade cannot break a
stored predictor (nn-Meter's pickles did).

Encodings (:data:`ENCODINGS`), all computed vectorised from :class:`ArchArrays`:

``ofa-onehot``      OFA's own 128 features: 60 kernel one-hots (3/5/7) and 60 expand
                    one-hots (3/4/6) for the 20 elastic blocks (zeros for skipped
                    blocks), then an 8-slot resolution one-hot at ``(r - 112) // 16``.
``onehot-depth-r``  the 120 block one-hots, a one-hot of each stage's depth (15), and
                    the resolution as numbers ``(r - 176) / 48`` and its square: it
                    interpolates between trained resolutions instead of binning them.

Models (:data:`MODELS`): ``ridge``; ``gbm`` (gradient-boosted trees); ``mlp``
(one hidden ReLU layer, L-BFGS); ``ridge+gbm`` (ridge, then boosted trees on its
residuals -- the default, best on the ImageNet reference split).  A prediction is
the sum of the outputs of the stored *components*.

Datasets: :func:`read_accuracy_csv` reads both the reference ImageNet CSV
(``image_size, d, ks, e, accuracy``) and the bundled dataset CSV (``space, d, ks, e,
r, accuracy, macs, params``); lists are JSON, ``r`` may be called ``image_size``.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .errors import OfaProfileError
from .space import DEFAULT_SPACE, Space, SpaceError, SubnetSpec, get_space

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "ENCODINGS", "MODELS", "PREDICTOR_FORMAT", "ArchArrays", "encode", "AccuracyDataset", "read_accuracy_csv",
    "split_dataset", "AccuracyPredictor", "AccuracyScore", "fit_accuracy_predictor", "evaluate_accuracy_predictor",
    "load_official_predictor", "load_accuracy_predictor", "same_macro_architecture", "resolve_accuracy_predictor",
    "fit_cached", "bundled_predictor_path", "imagenet_predictor_path", "ACCURACY_CHOICES", "PredictorLabel",
    "predictor_label", "supernet_label", "outside_trained_range", "load_predictor_file", "own_supernet_predictor",
    "read_specs_csv",
]

ENCODINGS = ("ofa-onehot", "onehot-depth-r")
MODELS = ("ridge", "gbm", "mlp", "ridge+gbm")
PREDICTOR_FORMAT = "ofa-profile-accuracy-predictor"
PREDICTOR_VERSION = 1
DEFAULT_ENCODING = "onehot-depth-r"
DEFAULT_MODEL = "ridge+gbm"


def same_macro_architecture(a: Space | str, b: Space | str) -> bool:
    """True if two spaces share widths, strides and blocks (e.g. OFA w1.0 and CompOFA w1.0)."""
    sa, sb = get_space(a), get_space(b)
    return sa.macro() == sb.macro() and sa.n_classes == sb.n_classes


# -- architectures as arrays ----------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class ArchArrays:
    """A batch of subnets of one space as integer arrays (the fast form for encodings and search).

    ``ks``/``e``: ``[N, n_blocks]`` with 0 for skipped blocks; ``d``: ``[N, n_stages]``; ``r``: ``[N]``.
    """
    space: str
    ks: "np.ndarray"
    e: "np.ndarray"
    d: "np.ndarray"
    r: "np.ndarray"

    def __len__(self) -> int:
        return int(self.r.shape[0])

    @property
    def active(self) -> "np.ndarray":
        """``[N, n_blocks]`` bool: block is active (its index in the stage is below the stage depth)."""
        import numpy as np
        sp = get_space(self.space)
        pos = np.tile(np.arange(sp.max_depth), sp.n_stages)
        return pos[None, :] < np.repeat(self.d, sp.max_depth, axis=1)

    @classmethod
    def from_specs(cls, specs: Sequence[SubnetSpec], space: str | None = None) -> "ArchArrays":
        import numpy as np
        specs = list(specs)
        if not specs:
            if space is None:
                raise OfaProfileError("no subnets given: pass at least one spec (or a space for an empty batch)")
            sp = get_space(space)
            z = np.zeros((0, sp.n_blocks), dtype=np.int64)
            return cls(sp.name, z, z.copy(), np.zeros((0, sp.n_stages), dtype=np.int64), np.zeros(0, dtype=np.int64))
        name = space or specs[0].space
        bad = [s.space for s in specs if s.space != name]
        if bad:
            raise OfaProfileError(f"subnets of several spaces in one batch ({name}, {bad[0]}); pass one space at a time")
        ks = np.array([s.ks for s in specs], dtype=np.int64)
        e = np.array([s.e for s in specs], dtype=np.int64)
        d = np.array([s.d for s in specs], dtype=np.int64)
        r = np.array([s.r for s in specs], dtype=np.int64)
        out = cls(get_space(name).name, ks, e, d, r)
        act = out.active
        return cls(out.space, np.where(act, ks, 0), np.where(act, e, 0), d, r)

    def to_specs(self) -> list[SubnetSpec]:
        """Back to specs (skipped entries set to the space minimum, i.e. canonical form)."""
        import numpy as np
        sp = get_space(self.space)
        ks = np.where(self.ks == 0, min(sp.kernels), self.ks).tolist()
        e = np.where(self.e == 0, min(sp.expands), self.e).tolist()
        d = self.d.tolist()
        r = self.r.tolist()
        return [SubnetSpec(sp.name, tuple(ks[i]), tuple(e[i]), tuple(d[i]), int(r[i])) for i in range(len(r))]

    def take(self, idx: Any) -> "ArchArrays":
        return ArchArrays(self.space, self.ks[idx], self.e[idx], self.d[idx], self.r[idx])

    def row_keys(self) -> "np.ndarray":
        """One hashable key per row (the bytes of the packed row), for de-duplication."""
        import numpy as np
        packed = np.concatenate([self.ks, self.e, self.d, self.r[:, None]], axis=1).astype(np.int16)
        return np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1] * 2))).ravel()

    @staticmethod
    def concat(parts: Sequence["ArchArrays"]) -> "ArchArrays":
        import numpy as np
        return ArchArrays(parts[0].space, np.concatenate([p.ks for p in parts]), np.concatenate([p.e for p in parts]),
                          np.concatenate([p.d for p in parts]), np.concatenate([p.r for p in parts]))


def _as_arrays(specs: "Sequence[SubnetSpec] | ArchArrays") -> ArchArrays:
    return specs if isinstance(specs, ArchArrays) else ArchArrays.from_specs(specs)


def _onehot(values: "np.ndarray", choices: Sequence[int]) -> "np.ndarray":
    """[N, B] ints (0 = none) -> [N, B*len(choices)] one-hot, block-major (OFA's order)."""
    import numpy as np
    n, b = values.shape
    out = np.zeros((n, b, len(choices)), dtype=np.float64)
    for j, c in enumerate(choices):
        out[:, :, j] = values == c
    return out.reshape(n, b * len(choices))


def encode(specs: "Sequence[SubnetSpec] | ArchArrays", encoding: str = DEFAULT_ENCODING) -> "np.ndarray":
    """Encode subnets as a float matrix ``[N, F]`` (see :data:`ENCODINGS`)."""
    import numpy as np
    a = _as_arrays(specs)
    sp = get_space(a.space)
    if encoding not in ENCODINGS:
        raise OfaProfileError(f"unknown encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")
    blocks = [_onehot(a.ks, sp.kernels), _onehot(a.e, sp.expands)]
    if encoding == "ofa-onehot":
        slot = (a.r - 112) // 16
        if len(a) and (slot.min() < 0 or slot.max() > 7):
            raise OfaProfileError("OFA's encoding covers resolutions 112..239 only")
        res = np.zeros((len(a), 8))
        res[np.arange(len(a)), slot] = 1.0
        return np.concatenate(blocks + [res], axis=1)
    rn = (a.r.astype(np.float64) - 176.0) / 48.0
    return np.concatenate(blocks + [_onehot(a.d, sp.depths), rn[:, None], (rn ** 2)[:, None]], axis=1)


# -- datasets ---------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class AccuracyDataset:
    """Subnets with measured top-1 accuracy (fraction)."""
    specs: tuple[SubnetSpec, ...]
    accuracy: "np.ndarray"
    source: str = ""

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(sorted({s.r for s in self.specs}))

    def subset(self, idx: Sequence[int]) -> "AccuracyDataset":
        return AccuracyDataset(tuple(self.specs[i] for i in idx), self.accuracy[list(idx)], self.source)


def csv_records(fh: Any, path: Path) -> tuple[list[str], Any]:
    """``(column names, rows)`` of a ``csv.DictReader`` over ``fh`` where a line the csv module cannot read (a
    field over its size limit, a NUL byte, text that is not UTF-8) is one :class:`OfaProfileError` naming it."""
    reader = csv.DictReader(fh)

    def bad(exc: Exception) -> OfaProfileError:
        why = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"is not readable as CSV ({exc})"
        return OfaProfileError(f"{path}: row {reader.line_num + 1} {why}; fix or drop that row")

    try:
        cols = list(reader.fieldnames or ())
    except (csv.Error, UnicodeDecodeError) as exc:
        raise bad(exc) from None

    def rows() -> Any:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                raise bad(exc) from None
            yield row
    return cols, rows()


def _json_list(text: str | None, field_name: str, row: int, path: Path) -> list[int]:
    from .jsonio import JsonInputError, loads_strict
    try:
        v = loads_strict(text) if isinstance(text, str) else None
    except JsonInputError:
        v = None
    if not isinstance(v, list):
        raise OfaProfileError(f"{path}: row {row}: column {field_name!r} is not a JSON list of integers "
                              f"({_short(text)})")
    return v


def read_accuracy_csv(path: str | Path, space: str | None = None) -> AccuracyDataset:
    """Read an accuracy CSV: columns d, ks, e (JSON lists), r or image_size, accuracy; optional space.

    Accuracies above 1 are read as percentages and divided by 100 (all rows must agree).
    """
    import numpy as np
    p = Path(path)
    try:
        fh = open(p, newline="", encoding="utf-8-sig")  # a leading BOM (Excel) is no part of the first column name
    except FileNotFoundError:
        raise OfaProfileError(f"accuracy CSV {p} does not exist") from None
    with fh:
        colnames, reader = csv_records(fh, p)
        cols = set(colnames)
        need = {"d", "ks", "e", "accuracy"}
        rcol = "r" if "r" in cols else "image_size" if "image_size" in cols else None
        if not need <= cols or rcol is None:
            raise OfaProfileError(f"{p} lacks column(s) {sorted(need - cols) + ([] if rcol else ['r'])}; "
                                  f"an accuracy CSV needs d, ks, e, r (or image_size) and accuracy")
        specs: list[SubnetSpec] = []
        acc: list[float] = []
        from .jsonio import JsonInputError, loads_strict
        for i, row in enumerate(reader, start=2):
            sp_name = space or row.get("space") or DEFAULT_SPACE
            rv: Any = row[rcol]
            try:
                rv = loads_strict(rv) if isinstance(rv, str) else rv
            except JsonInputError:
                pass
            obj = {"d": _json_list(row["d"], "d", i, p), "ks": _json_list(row["ks"], "ks", i, p),
                   "e": _json_list(row["e"], "e", i, p), "r": rv}
            try:
                specs.append(SubnetSpec.from_ofa(obj, space=sp_name))
            except SpaceError as exc:
                raise OfaProfileError(f"{p}: row {i}: {exc}") from None
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                raise OfaProfileError(f"{p}: row {i}: d, ks, e, r are not a subnet spec "
                                      f"({str(exc).splitlines()[0][:100]})") from None
            a = row["accuracy"]
            try:
                v = float(a)
            except (TypeError, ValueError):
                v = math.nan
            if not (math.isfinite(v) and 0.0 <= v <= 100.0):
                raise OfaProfileError(f"{p}: row {i}: accuracy {_short(a)} is not a finite number in 0..1 (or a "
                                      f"percentage 0..100); fix or drop that row")
            acc.append(v)
    if not specs:
        raise OfaProfileError(f"{p} has no rows")
    y = np.array(acc, dtype=np.float64)
    if (y > 1.0).all() and (y <= 100.0).all():
        y = y / 100.0
    elif (y > 1.0).any():
        raise OfaProfileError(f"{p}: accuracies mix fractions and percentages; write all as fractions (0..1)")
    names = {s.space for s in specs}
    if len(names) > 1 and not all(same_macro_architecture(n, next(iter(names))) for n in names):
        raise OfaProfileError(f"{p} mixes subnets of different supernets ({', '.join(sorted(names))})")
    return AccuracyDataset(tuple(specs), y, str(p))


def split_dataset(ds: AccuracyDataset, test_frac: float = 0.2, seed: int = 0
                  ) -> tuple[AccuracyDataset, AccuracyDataset]:
    """Seeded random split -> (train, test); the test part has round(test_frac * N) rows."""
    import numpy as np
    if not 0.0 < test_frac < 1.0:
        raise OfaProfileError(f"test fraction {test_frac} must lie strictly between 0 and 1")
    perm = np.random.default_rng(seed).permutation(len(ds))
    nt = int(round(test_frac * len(ds)))
    return ds.subset(sorted(perm[nt:].tolist())), ds.subset(sorted(perm[:nt].tolist()))


# -- model components (plain arrays) ------------------------------------------------------------------

def _linear_predict(c: Mapping[str, Any], X: "np.ndarray") -> "np.ndarray":
    return X @ c["coef"] + c["intercept"]


def _trees_predict(c: Mapping[str, Any], X: "np.ndarray") -> "np.ndarray":
    """All trees at once: one global node id per (row, tree), ``max_depth`` steps of vectorised descent.

    Leaves loop to themselves (stored with ``left == right == 0``, feature -1), so no masking is needed.
    """
    import numpy as np
    flat = c.get("_flat")
    if flat is None:
        t, width = c["feature"].shape
        base = (np.arange(t) * width)[:, None]
        leaf = c["feature"] < 0
        ids = base + np.arange(width)[None, :]
        flat = (np.where(leaf, 0, c["feature"]).ravel(), np.where(leaf, np.inf, c["threshold"]).ravel(),
                np.where(leaf, ids, base + c["left"]).ravel(), np.where(leaf, ids, base + c["right"]).ravel(),
                c["value"].ravel(), base.ravel())
        if isinstance(c, dict):
            c["_flat"] = flat  # derived cache, never written to JSON
    feat, thr, left, right, value, roots = flat
    width, n = feat.shape[0], X.shape[0]
    # every node's decision for every row at once (rows last: contiguous), then descend by lookups;
    # float32 features as scikit-learn's trees compare them
    go_left = (np.ascontiguousarray(X.astype(np.float32).T)[feat] <= thr[:, None]).ravel()  # [nodes * n]
    child = np.concatenate([right, left])  # child[go_left * width + node]
    node = np.repeat(roots[:, None], n, axis=1)  # [trees, n]
    cols = np.arange(n)[None, :]
    for _ in range(int(c["max_depth"])):
        node = child[go_left[node * n + cols] * width + node]
    return c["init"] + c["learning_rate"] * value[node].sum(axis=0)


def _mlp_predict(c: Mapping[str, Any], X: "np.ndarray") -> "np.ndarray":
    import numpy as np
    h = (X - c["x_mean"]) / c["x_scale"]
    layers = c["layers"]
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h[:, 0] * c["y_scale"] + c["y_mean"]


_PREDICT = {"linear": _linear_predict, "trees": _trees_predict, "mlp": _mlp_predict}


def _component_to_json(c: Mapping[str, Any]) -> dict[str, Any]:
    import numpy as np

    def conv(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, (np.floating, np.integer)):
            return v.item()
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v
    return {k: conv(v) for k, v in c.items() if not k.startswith("_")}


def _short(v: Any) -> str:
    """A value for a one-line message: its repr, cut."""
    t = repr(v) if not isinstance(v, (dict, list)) or len(v) < 8 else f"a {type(v).__name__} of {len(v)} items"
    t = " ".join(t.split())
    return t if len(t) <= 60 else t[:57] + "..."


def _num(v: Any, what: str) -> float:
    if type(v) not in (int, float) or not math.isfinite(v):
        raise OfaProfileError(f"{what} is {_short(v)}, not a finite number")
    return float(v)


def _array(v: Any, what: str, ndim: int, integer: bool = False) -> "np.ndarray":
    """A JSON (nested) list of finite numbers with exactly ``ndim`` rectangular dimensions, as an array."""
    import numpy as np
    if not isinstance(v, list):
        raise OfaProfileError(f"{what} is {_short(v)}, not a list")
    try:
        a = np.asarray(v)
    except (ValueError, TypeError):
        raise OfaProfileError(f"{what} is a ragged list (rows of different lengths)") from None
    if a.ndim != ndim:
        raise OfaProfileError(f"{what} has {a.ndim} dimension(s), not {ndim}")
    if a.size and a.dtype.kind not in "iuf":
        raise OfaProfileError(f"{what} holds values that are not numbers (e.g. strings, booleans, nulls)")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise OfaProfileError(f"{what} holds a non-finite number")
    if integer:
        if (a != np.floor(a)).any():
            raise OfaProfileError(f"{what} holds a number that is not an integer")
        return a.astype(np.int64)
    return a


def _component_from_json(obj: Any, n_features: int | None = None, where: str = "predictor component"
                         ) -> dict[str, Any]:
    """A stored component as arrays, every field checked for type, shape and finiteness against
    ``n_features`` (the encoding's width); one-line :class:`OfaProfileError` otherwise."""
    import numpy as np
    if not isinstance(obj, Mapping):
        raise OfaProfileError(f"{where} is {_short(obj)}, not an object; refit the predictor")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in _PREDICT:
        raise OfaProfileError(f"{where} type {_short(kind)} is not one of {', '.join(_PREDICT)}")
    c: dict[str, Any] = {k: v for k, v in obj.items() if not str(k).startswith("_")}
    w = f"{where} ({kind})"
    try:
        if kind == "linear":
            c["coef"] = _array(obj.get("coef"), f"{w} coef", 1)
            c["intercept"] = _num(obj.get("intercept"), f"{w} intercept")
            if n_features is not None and c["coef"].shape != (n_features,):
                raise OfaProfileError(f"{w} coef has {c['coef'].shape[0]} values; the encoding has {n_features} "
                                      f"features")
        elif kind == "trees":
            for k in ("feature", "left", "right"):
                c[k] = _array(obj.get(k), f"{w} {k}", 2, integer=True)
            for k in ("threshold", "value"):
                c[k] = _array(obj.get(k), f"{w} {k}", 2)
            shape = c["feature"].shape
            if 0 in shape or any(c[k].shape != shape for k in ("left", "right", "threshold", "value")):
                raise OfaProfileError(f"{w}: feature, threshold, left, right and value must be non-empty arrays of "
                                      f"one shape (trees x nodes), got " + ", ".join(
                                          f"{k} {c[k].shape}" for k in ("feature", "threshold", "left", "right",
                                                                         "value")))
            hi = n_features if n_features is not None else np.inf
            if (c["feature"] < -1).any() or (c["feature"] >= hi).any():
                raise OfaProfileError(f"{w} feature holds an index outside -1..{hi - 1}")
            if ((c["left"] < 0) | (c["left"] >= shape[1]) | (c["right"] < 0) | (c["right"] >= shape[1])).any():
                raise OfaProfileError(f"{w} left/right hold a node index outside 0..{shape[1] - 1}")
            c["init"] = _num(obj.get("init"), f"{w} init")
            c["learning_rate"] = _num(obj.get("learning_rate"), f"{w} learning_rate")
            md = obj.get("max_depth")
            if type(md) is not int or not 0 <= md <= shape[1]:
                raise OfaProfileError(f"{w} max_depth is {_short(md)}, not an integer in 0..{shape[1]} (nodes)")
            c["max_depth"] = md
        else:
            if obj.get("activation", "relu") != "relu":
                raise OfaProfileError(f"{w} activation is {_short(obj.get('activation'))}; only 'relu' is supported")
            layers = obj.get("layers")
            if not isinstance(layers, list) or not layers:
                raise OfaProfileError(f"{w} layers is {_short(layers)}, not a non-empty list of [weights, bias]")
            out = []
            width = n_features
            for i, lb in enumerate(layers):
                if not isinstance(lb, list) or len(lb) != 2:
                    raise OfaProfileError(f"{w} layers[{i}] is {_short(lb)}, not a pair [weights, bias]")
                wt = _array(lb[0], f"{w} layers[{i}] weights", 2)
                b = _array(lb[1], f"{w} layers[{i}] bias", 1)
                if (width is not None and wt.shape[0] != width) or b.shape != (wt.shape[1],):
                    raise OfaProfileError(f"{w} layers[{i}] has weights {wt.shape} and bias {b.shape}; expected "
                                          f"({width if width is not None else 'n'}, m) and (m,)")
                width = wt.shape[1]
                out.append((wt, b))
            if width != 1:
                raise OfaProfileError(f"{w}: the last layer has {width} outputs, not 1")
            c["layers"] = out
            nf = out[0][0].shape[0]
            c["x_mean"] = _array(obj.get("x_mean"), f"{w} x_mean", 1)
            c["x_scale"] = _array(obj.get("x_scale"), f"{w} x_scale", 1)
            if c["x_mean"].shape != (nf,) or c["x_scale"].shape != (nf,) or (c["x_scale"] == 0).any():
                raise OfaProfileError(f"{w} x_mean/x_scale must hold {nf} values (x_scale none 0)")
            c["y_mean"] = _num(obj.get("y_mean"), f"{w} y_mean")
            c["y_scale"] = _num(obj.get("y_scale"), f"{w} y_scale")
    except OfaProfileError as exc:
        raise OfaProfileError(f"{exc}; refit the predictor") from None
    return c


def _n_features(space: str, encoding: str) -> int:
    sp = get_space(space)
    return int(encode([sp.smallest(sp.resolutions[0])], encoding).shape[1])


# -- the predictor ------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class AccuracyPredictor:
    """Predicts top-1 accuracy (fraction) from plain stored parameters; no scikit-learn needed to predict."""
    space: str
    encoding: str
    model: str
    components: tuple[Mapping[str, Any], ...]
    trained_resolutions: tuple[int, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))

    def check_space(self, space: str) -> None:
        if not same_macro_architecture(space, self.space):
            raise OfaProfileError(f"this accuracy predictor was fitted on {self.space}; subnets of {space} are a "
                                  f"different supernet: fit a predictor on that space's accuracy data")

    def predict(self, specs: "Sequence[SubnetSpec] | ArchArrays") -> "np.ndarray":
        """Predicted accuracy (fraction) of each subnet, as a float array."""
        import numpy as np
        a = _as_arrays(specs)
        self.check_space(a.space)
        if len(a) == 0:
            return np.zeros(0)
        X = encode(a, self.encoding)
        out = np.zeros(len(a))
        for c in self.components:
            out += _PREDICT[c["type"]](c, X)
        return out

    __call__ = predict
    on_arrays = predict  # the fast path of ofa_profile.search

    def predict_one(self, spec: SubnetSpec) -> float:
        return float(self.predict([spec])[0])

    # plain JSON ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"format": PREDICTOR_FORMAT, "version": PREDICTOR_VERSION, "space": self.space,
                "encoding": self.encoding, "model": self.model,
                "trained_resolutions": list(self.trained_resolutions), "info": dict(self.info),
                "components": [_component_to_json(c) for c in self.components]}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "AccuracyPredictor":
        """Read a predictor's JSON object, checking every field's type and every array's shape against the
        encoding (one-line :class:`OfaProfileError` naming the field otherwise)."""
        if not isinstance(obj, Mapping) or obj.get("format") != PREDICTOR_FORMAT:
            raise OfaProfileError(f"not an accuracy predictor file (format should be {PREDICTOR_FORMAT!r})")
        if obj.get("version") != PREDICTOR_VERSION:
            raise OfaProfileError(f"accuracy predictor version {_short(obj.get('version'))} is not supported "
                                  f"(this ofa-profile reads version {PREDICTOR_VERSION}); refit it")
        enc = obj.get("encoding")
        if not isinstance(enc, str) or enc not in ENCODINGS:
            raise OfaProfileError(f"unknown encoding {_short(enc)} in accuracy predictor (known: "
                                  f"{', '.join(ENCODINGS)})")
        space = obj.get("space")
        if not isinstance(space, str):
            raise OfaProfileError(f"accuracy predictor: 'space' is {_short(space)}, not a space name; refit it")
        sp = get_space(space)
        model, info = obj.get("model", ""), obj.get("info", {})
        if not isinstance(model, str):
            raise OfaProfileError(f"accuracy predictor: 'model' is {_short(model)}, not a string; refit it")
        if not isinstance(info, Mapping):
            raise OfaProfileError(f"accuracy predictor: 'info' is {_short(info)}, not an object; refit it")
        tr = obj.get("trained_resolutions", [])
        if (not isinstance(tr, list) or any(type(r) is not int or r not in sp.resolutions for r in tr)):
            raise OfaProfileError(f"accuracy predictor: 'trained_resolutions' is {_short(tr)}, not a list of "
                                  f"resolutions of {sp.name}; refit it")
        comps = obj.get("components")
        if not isinstance(comps, list) or not comps:
            raise OfaProfileError(f"accuracy predictor has no components ('components' is {_short(comps)}, not a "
                                  f"non-empty list); refit it")
        nf = _n_features(sp.name, enc)
        return cls(space=sp.name, encoding=enc, model=model,
                   components=tuple(_component_from_json(c, nf, f"predictor component {i}")
                                    for i, c in enumerate(comps)),
                   trained_resolutions=tuple(tr), info=dict(info))

    def check(self, source: str = "") -> None:
        """Refuse (one line) a predictor whose prediction for the space's smallest or largest subnet at the
        smallest and largest resolution it was trained on (else the space's) is not a fraction in [0, 1]."""
        import numpy as np
        sp = get_space(self.space)
        res = self.trained_resolutions or sp.resolutions
        if self.encoding == "ofa-onehot":
            res = tuple(r for r in res if 112 <= r <= 239) or (160,)
        cases = [(which, r, f(r)) for r in sorted({min(res), max(res)})
                 for which, f in (("smallest", sp.smallest), ("largest", sp.largest))]
        if not self.components:
            raise OfaProfileError(f"accuracy predictor {source} has no components; refit it")
        with np.errstate(all="ignore"):
            y = self.predict([c[2] for c in cases])
        for (which, r, _), v in zip(cases, y):
            if not (np.isfinite(v) and 0.0 <= v <= 1.0):
                raise OfaProfileError(f"accuracy predictor {source or self.model} predicts {v:.6g} for the space's "
                                      f"{which} subnet at r={r} (an accuracy is a fraction in [0, 1]); refit it with "
                                      f"`ofa-profile accuracy-predictor`")

    def save(self, path: str | Path) -> Path:
        """Write the predictor as JSON, atomically."""
        from .atomic import write_json_atomic
        return write_json_atomic(path, self.to_json(), indent=None)


def load_accuracy_predictor(path: str | Path) -> AccuracyPredictor:
    """Read and check a predictor file: strict JSON, every field and array shape checked, and its predictions
    on the space's smallest and largest subnets fractions in [0, 1] (one-line :class:`OfaProfileError`)."""
    from .jsonio import JsonInputError, read_json_file
    p = Path(path)
    try:
        obj = read_json_file(p, "accuracy predictor")
    except JsonInputError as exc:
        raise OfaProfileError(str(exc)) from None
    try:
        pred = AccuracyPredictor.from_json(obj)
    except OfaProfileError as exc:
        msg = str(exc)
        if msg.startswith("accuracy predictor:"):
            msg = f"accuracy predictor {p}:{msg[len('accuracy predictor:'):]}"
        elif msg.startswith("accuracy predictor "):
            msg = f"accuracy predictor {p} {msg[len('accuracy predictor '):]}"
        else:
            msg = f"accuracy predictor {p}: {msg}"
        raise OfaProfileError(msg) from None
    pred.check(str(p))
    return pred


# -- fitting -----------------------------------------------------------------------------------------

def _fit_ridge(X: "np.ndarray", y: "np.ndarray") -> tuple[dict[str, Any], Any]:
    import numpy as np
    from sklearn.linear_model import RidgeCV
    m = RidgeCV(alphas=np.logspace(-2, 2, 9)).fit(X, y)
    return {"type": "linear", "coef": np.asarray(m.coef_, dtype=np.float64), "intercept": float(m.intercept_),
            "alpha": float(m.alpha_)}, m


def _gbm_component(m: Any) -> dict[str, Any]:
    """Flatten a fitted GradientBoostingRegressor into padded node arrays."""
    import numpy as np
    trees = [est[0].tree_ for est in m.estimators_]
    width = max(t.node_count for t in trees)
    t_n = len(trees)
    feat = np.full((t_n, width), -1, dtype=np.int64)
    thr = np.zeros((t_n, width))
    left = np.zeros((t_n, width), dtype=np.int64)
    right = np.zeros((t_n, width), dtype=np.int64)
    value = np.zeros((t_n, width))
    for i, t in enumerate(trees):
        k = t.node_count
        is_leaf = t.children_left[:k] < 0
        feat[i, :k] = np.where(is_leaf, -1, t.feature[:k])
        thr[i, :k] = t.threshold[:k]
        left[i, :k] = np.where(is_leaf, 0, t.children_left[:k])
        right[i, :k] = np.where(is_leaf, 0, t.children_right[:k])
        value[i, :k] = t.value[:k, 0, 0]
    init = m.init_.constant_ if hasattr(m.init_, "constant_") else m._raw_predict_init(np.zeros((1, m.n_features_in_)))
    return {"type": "trees", "feature": feat, "threshold": thr, "left": left, "right": right, "value": value,
            "init": float(np.ravel(init)[0]), "learning_rate": float(m.learning_rate),
            "max_depth": int(max(t.max_depth for t in trees))}


def _fit_gbm(X: "np.ndarray", y: "np.ndarray", seed: int, n_estimators: int = 300, learning_rate: float = 0.03,
             max_depth: int = 3) -> tuple[dict[str, Any], Any]:
    from sklearn.ensemble import GradientBoostingRegressor
    m = GradientBoostingRegressor(n_estimators=n_estimators, learning_rate=learning_rate, max_depth=max_depth,
                                  subsample=0.8, random_state=seed).fit(X, y)
    return _gbm_component(m), m


def _fit_mlp(X: "np.ndarray", y: "np.ndarray", seed: int, hidden: tuple[int, ...] = (64,), alpha: float = 10.0,
             max_iter: int = 3000) -> tuple[dict[str, Any], Any]:
    import numpy as np
    from sklearn.neural_network import MLPRegressor
    xm, xs = X.mean(axis=0), X.std(axis=0)
    xs = np.where(xs > 0, xs, 1.0)
    ym, ys = float(y.mean()), float(y.std() or 1.0)
    m = MLPRegressor(hidden_layer_sizes=hidden, alpha=alpha, solver="lbfgs", max_iter=max_iter,
                     random_state=seed).fit((X - xm) / xs, (y - ym) / ys)
    if m.activation != "relu":  # pragma: no cover - we always fit relu
        raise OfaProfileError("only ReLU MLPs can be stored")
    layers = [(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64))
              for w, b in zip(m.coefs_, m.intercepts_)]
    return {"type": "mlp", "activation": "relu", "layers": layers, "x_mean": xm, "x_scale": xs, "y_mean": ym,
            "y_scale": ys}, m


def fit_accuracy_predictor(data: "str | Path | AccuracyDataset", model: str = DEFAULT_MODEL,
                           encoding: str = DEFAULT_ENCODING, seed: int = 0, *, gbm_trees: int | None = None,
                           gbm_learning_rate: float | None = None, mlp_hidden: tuple[int, ...] = (64,),
                           mlp_max_iter: int = 3000, return_sklearn: bool = False, space: str | None = None) -> Any:
    """Fit a predictor on an accuracy CSV (reference or bundled) or a dataset.

    Boosted trees: 300 trees at learning rate 0.03 for ``gbm``; 100 at 0.09 for the residuals of
    ``ridge+gbm`` (as accurate on the ImageNet split as 300 at 0.03, and 3x cheaper to evaluate in search).

    Returns the :class:`AccuracyPredictor` (or ``(predictor, [sklearn models])`` with
    ``return_sklearn=True``, for checking that the stored form reproduces them).
    """
    import numpy as np
    import sklearn
    ds = data if isinstance(data, AccuracyDataset) else read_accuracy_csv(data, space)
    if model not in MODELS:
        raise OfaProfileError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if len(ds) < 20:
        raise OfaProfileError(f"an accuracy predictor needs at least 20 subnets, got {len(ds)}")
    a = ArchArrays.from_specs(list(ds.specs))
    X = encode(a, encoding)
    y = np.asarray(ds.accuracy, dtype=np.float64)
    src = f" of {ds.source}" if ds.source else ""
    if not np.isfinite(y).all():
        raise OfaProfileError(f"the accuracies{src} are not all finite numbers; fix the data")
    if np.ptp(y) == 0:
        raise OfaProfileError(f"all {len(y)} accuracies{src} are equal ({y[0]:g}): nothing to learn a ranking "
                              f"from (its figures would be undefined); nothing was written: use measured accuracies")
    comps: list[dict[str, Any]] = []
    sk: list[Any] = []
    if model in ("ridge", "ridge+gbm"):
        c, m = _fit_ridge(X, y)
        comps.append(c); sk.append(m)
    if model in ("gbm", "ridge+gbm"):
        resid = y - (_linear_predict(comps[0], X) if comps else 0.0)
        trees = gbm_trees or (100 if comps else 300)
        lr = gbm_learning_rate or (0.09 if comps else 0.03)
        c, m = _fit_gbm(X, resid, seed, n_estimators=trees, learning_rate=lr)
        comps.append(c); sk.append(m)
    if model == "mlp":
        c, m = _fit_mlp(X, y, seed, hidden=mlp_hidden, max_iter=mlp_max_iter)
        comps.append(c); sk.append(m)
    pred = AccuracyPredictor(space=a.space, encoding=encoding, model=model, components=tuple(comps),
                             trained_resolutions=ds.resolutions,
                             info={"n_train": len(ds), "seed": seed, "source": Path(ds.source).name if ds.source else "",
                                   "sklearn_version": sklearn.__version__,
                                   **({"gbm_trees": trees, "gbm_learning_rate": lr} if "gbm" in model else {})})
    # refused instead of saved: a fit with non-finite numbers, or one that load_accuracy_predictor would refuse
    try:
        AccuracyPredictor.from_json(pred.to_json()).check(f"fitted{src}")
        with np.errstate(all="ignore"):
            if not np.isfinite(pred.predict(a)).all():
                raise OfaProfileError("it predicts non-finite accuracies for its own training subnets")
    except OfaProfileError as exc:
        raise OfaProfileError(f"the {model} fit{src} is unusable ({str(exc).split('; refit')[0]}); nothing was "
                              f"written") from None
    return (pred, sk) if return_sklearn else pred


# -- OFA's official predictor ---------------------------------------------------------------------------

def load_official_predictor(path: str | Path, space: str = "ofa-mbv3-w1.2") -> AccuracyPredictor:
    """OFA's ``acc_predictor.pth`` (MLP 128-400-400-400-1, ReLU) as an :class:`AccuracyPredictor`.

    Loaded with ``weights_only=True`` on the CPU; the layers are ``0, 2, 4, 6`` of an
    ``nn.Sequential`` (ReLU between).  Encoding: ``ofa-onehot``.  It predicts the ImageNet top-1 of OFA's
    w1.2 supernet (``ofa_mbv3_d234_e346_k357_w1.2``, the one of OFA's tutorial), so it is tagged
    ``ofa-mbv3-w1.2``; pass ``space="ofa-mbv3-w1.0"`` to score w1.0 subnets with it anyway (its encoding
    ignores widths), as the head-to-head comparisons on OFA's w1.0 measurements do.
    """
    import numpy as np
    import torch
    p = Path(path)
    if not p.exists():
        raise OfaProfileError(f"official OFA predictor {p} does not exist")
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types here
        raise OfaProfileError(f"{p} is not a loadable torch state dict ({type(exc).__name__})") from None
    if isinstance(sd, Mapping) and "state_dict" in sd:
        sd = sd["state_dict"]
    try:
        idx = sorted({int(k.split(".")[0]) for k in sd if k.endswith(".weight")})
        layers = [(sd[f"{i}.weight"].detach().cpu().double().numpy().T.copy(),
                   sd[f"{i}.bias"].detach().cpu().double().numpy().copy()) for i in idx]
    except (KeyError, ValueError, TypeError, AttributeError):
        raise OfaProfileError(f"{p} is not OFA's acc_predictor.pth (layers 0, 2, 4, 6 of an nn.Sequential: "
                              f"'<i>.weight' and '<i>.bias' tensors)") from None
    if not idx:
        raise OfaProfileError(f"{p} holds no layer weights")
    if any(w.ndim != 2 or b.ndim != 1 or b.shape[0] != w.shape[1] or not (np.isfinite(w).all() and np.isfinite(b).all())
           for w, b in layers) or any(a[0].shape[1] != b[0].shape[0] for a, b in zip(layers, layers[1:])):
        raise OfaProfileError(f"{p}: its layers are not a chain of finite [in, out] weights and biases")
    if layers[0][0].shape[0] != 128 or layers[-1][0].shape[1] != 1:
        raise OfaProfileError(f"{p}: expected an MLP from 128 OFA features to 1 output, got "
                              f"{layers[0][0].shape[0]} -> {layers[-1][0].shape[1]}")
    comp = {"type": "mlp", "activation": "relu", "layers": layers, "x_mean": np.zeros(128), "x_scale": np.ones(128),
            "y_mean": 0.0, "y_scale": 1.0}
    pred = AccuracyPredictor(space=get_space(space).name, encoding="ofa-onehot", model="ofa-official-mlp",
                             components=(comp,), trained_resolutions=(),
                             info={"source": p.name, "layers": [int(i) for i in idx], "dataset": "imagenet",
                                   "describes": OFFICIAL_W12_DESCRIBES,
                                   "label": "ImageNet top-1 of OFA's w1.2 supernet"})
    pred.check(str(p))
    return pred


# -- evaluation ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AccuracyScore:
    """Rank and error figures of predicted vs measured accuracy."""
    n: int
    kendall_tau: float
    spearman: float
    rmse: float
    kendall_tau_within_r: float  # mean over resolutions of the Kendall tau inside each resolution

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def evaluate_accuracy_predictor(pred: AccuracyPredictor, ds: AccuracyDataset) -> AccuracyScore:
    import numpy as np
    from scipy.stats import kendalltau, spearmanr
    p = pred.predict(list(ds.specs))
    y = np.asarray(ds.accuracy)
    r = np.array([s.r for s in ds.specs])
    within = [float(kendalltau(p[r == v], y[r == v]).statistic) for v in np.unique(r) if (r == v).sum() > 2]
    return AccuracyScore(n=len(y), kendall_tau=float(kendalltau(p, y).statistic),
                         spearman=float(spearmanr(p, y).statistic), rmse=float(math.sqrt(np.mean((p - y) ** 2))),
                         kendall_tau_within_r=float(np.mean(within)) if within else float("nan"))


# -- which predictor a command uses ----------------------------------------------------------------------

BUNDLED_PREDICTOR = "accuracy_predictor.json"  # in ofa_model/weights/, beside the bundled supernet


def bundled_predictor_path() -> Path:
    """Where the bundled accuracy predictor lives (``ofa_model/weights/accuracy_predictor.json``)."""
    from .paths import model_weights_dir
    return model_weights_dir() / BUNDLED_PREDICTOR


IMAGENET_PREDICTOR = "ofa-mbv3-w1.0-imagenet.json"  # in ofa_profile/predictors/


def imagenet_predictor_path() -> Path:
    """The shipped predictor of OFA's official ImageNet supernet (``ofa_profile/predictors/``), fitted by
    ``ofa-profile accuracy-predictor`` on ``ofa-w1.0-imagenet-accuracy.csv`` (all rows, seed 0)."""
    return Path(__file__).resolve().parent / "predictors" / IMAGENET_PREDICTOR


def _bundled_predictor_mismatch(pred: "AccuracyPredictor") -> str | None:
    """Why the bundled predictor does not belong to the bundled weights (None: it does).  It records the
    sha256 of the supernet its dataset was measured with; weights retrained since make it stale."""
    want = pred.info.get("supernet_sha256")
    if not want:
        return "it records no supernet sha256"
    man = bundled_predictor_path().parent / "manifest.json"
    from .jsonio import loads_strict
    try:
        have = loads_strict(man.read_bytes()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return f"{man} is unreadable"
    if have != want:
        return (f"it was fitted for supernet sha256 {want[:12]}..., the bundled weights are {str(have)[:12]}...; "
                f"rebuild it with `ofa-profile accuracy-dataset` + `ofa-profile accuracy-predictor --supernet bundled`")
    return None


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ofa-profile" / "predictors"


def fit_cached(csv_path: str | Path, model: str = DEFAULT_MODEL, encoding: str = DEFAULT_ENCODING,
               seed: int = 0, space: str | None = None) -> AccuracyPredictor:
    """:func:`fit_accuracy_predictor` on a CSV, cached by the CSV's sha256 (plain JSON, never a pickle)."""
    import hashlib
    p = Path(csv_path)
    try:
        digest = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        raise OfaProfileError(f"accuracy CSV {p} does not exist") from None
    tag = "" if space is None else f"-{get_space(space).name}"
    cache = _cache_dir() / f"{p.stem}-{digest}-{model.replace('+', '_')}-{encoding}-s{seed}{tag}.json"
    if cache.exists():
        try:
            return load_accuracy_predictor(cache)
        except OfaProfileError:
            pass  # a stale or foreign file: refit below
    pred = fit_accuracy_predictor(p, model=model, encoding=encoding, seed=seed, space=space)
    try:
        pred.save(cache)
    except OSError:
        pass  # a read-only home: the fit is still returned
    return pred


ACCURACY_CHOICES = ("imagenet", "bundled")     # pareto / plot frontier / predict-accuracy --accuracy
DATASET_NAMES = {"imagenet": "ImageNet", "imagenette": "Imagenette"}
IMAGENET_DESCRIBES = "OFA ofa_mbv3_d234_e346_k357_w1.0 (ImageNet)"
OFFICIAL_W12_DESCRIBES = "OFA ofa_mbv3_d234_e346_k357_w1.2 (ImageNet)"


@dataclass(frozen=True)
class PredictorLabel:
    """What a predictor's accuracy is: ``dataset`` (``imagenet``, ``imagenette`` or ``unknown``), ``describes``
    (the model whose top-1 it predicts) and ``text`` (for a human: "ImageNet top-1 of OFA's w1.0 supernet")."""
    dataset: str
    describes: str
    text: str


def predictor_label(pred: AccuracyPredictor) -> PredictorLabel:
    """The label a predictor records in its info (``dataset``, ``describes``, ``label``), else one derived from
    what it records (the bundled supernet's sha256, OFA's reference CSV), else ``unknown``."""
    info = pred.info
    ds, desc, text = info.get("dataset"), info.get("describes"), info.get("label")
    if isinstance(ds, str) and isinstance(desc, str):
        return PredictorLabel(ds, desc, text if isinstance(text, str) else f"{DATASET_NAMES.get(ds, ds)} top-1 of {desc}")
    if info.get("source") == "ofa-w1.0-imagenet-accuracy.csv":
        return PredictorLabel("imagenet", IMAGENET_DESCRIBES, "ImageNet top-1 of OFA's w1.0 supernet")
    sha = info.get("supernet_sha256")
    if isinstance(sha, str) and sha:
        return PredictorLabel("unknown", f"supernet {sha[:12]}", f"top-1 of supernet {sha[:12]}")
    src = info.get("source") or "its accuracy data"
    return PredictorLabel("unknown", f"the subnets of {src}", f"top-1 as measured in {src}")


def supernet_label(weights: str | Path, sha256: str) -> dict[str, str]:
    """``{dataset, describes, label}`` for a predictor fitted on the accuracy dataset of supernet ``weights``:
    the dataset from the ``manifest.json`` beside it (when that manifest names this file and sha256)."""
    from .jsonio import loads_strict
    w = Path(weights)
    dataset = None
    try:
        man = loads_strict((w.parent / "manifest.json").read_bytes())
        if isinstance(man, Mapping) and man.get("sha256") == sha256 and isinstance(man.get("dataset"), str):
            dataset = man["dataset"]
    except (OSError, ValueError):
        pass
    bundled = bundled_predictor_path().parent.resolve() == w.resolve().parent
    who = f"bundled supernet {sha256[:12]}" if bundled else f"supernet {w.name} {sha256[:12]}"
    short = "the bundled supernet" if bundled else f"supernet {w.name}"
    return {"dataset": dataset.lower() if dataset else "unknown",
            "describes": f"{who} ({dataset})" if dataset else who,
            "label": f"{dataset} top-1 of {short}" if dataset else f"top-1 of {short}"}


def outside_trained_range(pred: AccuracyPredictor, resolutions: Sequence[int]) -> list[int]:
    """The resolutions among ``resolutions`` outside the range the predictor was fitted on (its lowest to its
    highest trained resolution): there it extrapolates.  Empty when it records no trained resolutions."""
    tr = tuple(pred.trained_resolutions)
    if not tr:
        return []
    return sorted({int(r) for r in resolutions if not min(tr) <= int(r) <= max(tr)})


def _refuse_for_space(space: str, what: str) -> None:
    official = " (OFA's official w1.2 predictor, e.g. ../shared/data/reference/ofa-acc-predictor.pth)" \
        if get_space(space).name == "ofa-mbv3-w1.2" else ""
    raise OfaProfileError(f"{what} describes OFA's w1.0 supernet, not {space}: pass --predictor "
                          f"ofa-acc-predictor.pth{official}, or --predictor FILE.json / --accuracy-data FILE.csv "
                          f"fitted on {space} accuracies")


def load_predictor_file(path: str | Path, space: str | None = None) -> AccuracyPredictor:
    """A predictor file: our JSON, or OFA's official ``acc_predictor.pth`` (``.pth``/``.pt``; it describes
    OFA's w1.2 supernet, so it is tagged ``space`` if that is a w1.2 space, else ``ofa-mbv3-w1.2``)."""
    p = Path(path)
    if p.suffix in (".pth", ".pt"):
        return load_official_predictor(p, space="ofa-mbv3-w1.2" if space is None else space)
    return load_accuracy_predictor(p)


def resolve_accuracy_predictor(predictor: str | Path | None = None, data: str | Path | None = None, *,
                               accuracy: str | None = None, space: str | None = None,
                               model: str = DEFAULT_MODEL, seed: int = 0,
                               log: Any = None) -> AccuracyPredictor:
    """The predictor a command uses: ``predictor`` (our JSON file, or OFA's official ``.pth``), else one fitted
    on ``data`` (a CSV), else ``accuracy``: ``"imagenet"`` (the default: the shipped predictor of OFA's own w1.0
    supernet, what a user deploys) or ``"bundled"`` (the bundled Imagenette supernet's, refused unless it was
    fitted for the bundled weights).  ``space``: the space the command searches; the ImageNet predictor is
    refused for a space of other widths (w1.2), naming the options.  ``log(str)`` is told which."""
    say = log or (lambda msg: None)
    if accuracy is not None and accuracy not in ACCURACY_CHOICES:
        raise OfaProfileError(f"unknown --accuracy {accuracy!r}; choose one of {', '.join(ACCURACY_CHOICES)}")
    if predictor is not None:
        pred = load_predictor_file(predictor)
        say(f"accuracy predictor: {predictor} ({predictor_label(pred).text})")
        return pred
    if data is not None:
        say(f"accuracy predictor: {model} fitted on {data} (seed {seed})")
        # rows without a 'space' column are read in the searched space's family (a compound space's rows are
        # full-space subnets of the same macro-architecture)
        row_space = space if space is not None and not get_space(space).compound \
            and get_space(space).family != "mbv3" else None
        return fit_cached(data, model=model, seed=seed, space=row_space)
    if accuracy == "bundled":
        b = bundled_predictor_path()
        if not b.exists():
            raise OfaProfileError(f"--accuracy bundled: no bundled predictor at {b}; use --accuracy imagenet or "
                                  f"--predictor FILE")
        pred = load_accuracy_predictor(b)
        stale = _bundled_predictor_mismatch(pred)
        if stale is not None:
            raise OfaProfileError(f"--accuracy bundled: {b.name} is not the bundled supernet's: {stale}")
        if space is not None and not same_macro_architecture(space, pred.space):
            raise OfaProfileError(f"--accuracy bundled describes a supernet of {pred.space}, not {space}: pass "
                                  f"--predictor FILE or --accuracy-data FILE.csv fitted on {space}")
        say(f"accuracy predictor: bundled {b} ({predictor_label(pred).text}, predicted)")
        return pred
    if space is not None and not same_macro_architecture(space, "ofa-mbv3-w1.0"):
        _refuse_for_space(get_space(space).name, "the default accuracy predictor (--accuracy imagenet)")
    shipped = imagenet_predictor_path()
    if shipped.exists():
        pred = load_accuracy_predictor(shipped)
        say(f"accuracy predictor: {shipped.name} ({predictor_label(pred).text}: fitted on OFA's measured ImageNet "
            f"top-1 of 2,610 subnets at resolutions 128/160/192)")
        return pred
    from .paths import shared_data_dir
    sd = shared_data_dir()
    ref = sd / "reference" / "ofa-w1.0-imagenet-accuracy.csv" if sd else None
    if ref is not None and ref.exists():
        say(f"accuracy predictor: {model} fitted on the ImageNet reference CSV {ref.name} (resolutions 128/160/192 "
            f"only: searching there by default); pass --predictor or --accuracy-data for another")
        return fit_cached(ref, model=model, seed=seed)
    raise OfaProfileError(f"no accuracy predictor: pass --predictor FILE.json or --accuracy-data FILE.csv "
                          f"(none shipped at {shipped})")


def own_supernet_predictor(weights: str | Path, sha256: str) -> AccuracyPredictor | None:
    """The accuracy predictor of supernet ``weights``: ``accuracy_predictor.json`` beside it, fitted for exactly
    that sha256 (``accuracy-predictor --supernet``); None if there is none."""
    p = Path(weights).parent / BUNDLED_PREDICTOR
    if not p.is_file():
        return None
    pred = load_accuracy_predictor(p)
    if pred.info.get("supernet_sha256") != sha256:
        return None
    if "dataset" not in pred.info:
        pred = AccuracyPredictor(pred.space, pred.encoding, pred.model, pred.components, pred.trained_resolutions,
                                 {**pred.info, **supernet_label(weights, sha256)})
    return pred


def read_specs_csv(path: str | Path, space: str | None = None) -> list[SubnetSpec]:
    """Subnets of a CSV: an ``arch`` column (a JSON spec, optionally with its space) or ``d, ks, e`` (JSON
    lists) and ``r`` (or ``image_size``) columns, optional ``space``; other columns are ignored."""
    from .jsonio import JsonInputError, loads_strict
    p = Path(path)
    try:
        fh = open(p, newline="", encoding="utf-8-sig")  # a leading BOM (Excel) is not data
    except FileNotFoundError:
        raise OfaProfileError(f"CSV {p} does not exist") from None
    specs: list[SubnetSpec] = []
    with fh:
        cols, reader = csv_records(fh, p)
        rcol = "r" if "r" in cols else "image_size" if "image_size" in cols else None
        if "arch" not in cols and (not {"d", "ks", "e"} <= set(cols) or rcol is None):
            raise OfaProfileError(f"{p} needs the subnets as an 'arch' JSON column or as d, ks, e, r columns "
                                  f"(has {', '.join(cols[:8]) or 'no columns'})")
        for i, row in enumerate(reader, start=2):
            sp_name = space or row.get("space") or DEFAULT_SPACE
            try:
                if "arch" in cols:
                    obj = loads_strict(row["arch"] or "")
                    if isinstance(obj, Mapping) and isinstance(obj.get("space"), str) and space is None:
                        sp_name = obj["space"]
                else:
                    rv: Any = row[rcol] or ""
                    obj = {"d": _json_list(row["d"], "d", i, p), "ks": _json_list(row["ks"], "ks", i, p),
                           "e": _json_list(row["e"], "e", i, p), "r": loads_strict(rv)}
                specs.append(SubnetSpec.from_ofa(obj, space=sp_name))
            except JsonInputError as exc:
                raise OfaProfileError(f"{p}: row {i}: the subnet column(s) {exc}") from None
            except SpaceError as exc:
                raise OfaProfileError(f"{p}: row {i}: {exc}") from None
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                raise OfaProfileError(f"{p}: row {i}: the subnet column(s) are not a subnet spec "
                                      f"({str(exc).splitlines()[0][:100]})") from None
    if not specs:
        raise OfaProfileError(f"{p} has no rows")
    return specs
