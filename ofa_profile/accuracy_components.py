"""The stored components of an accuracy predictor: plain arrays, evaluated with numpy, checked on load.

A component is a ``dict`` of one ``type``: ``linear`` (ridge coefficients), ``trees`` (boosted trees as padded
node arrays) or ``mlp`` (ReLU layers with input/output scaling); a prediction is the sum of its components'
outputs (:data:`PREDICT`).  :func:`component_to_json` writes one as plain lists, :func:`component_from_json` reads
one back, checking every field's type, shape and finiteness (one-line :class:`OfaProfileError` otherwise).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

from .accuracy_data import short_value
from .encodings import encode
from .errors import OfaProfileError
from .space import get_space

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["PREDICT", "linear_predict", "trees_predict", "mlp_predict", "component_to_json", "component_from_json",
           "n_features"]


def linear_predict(c: Mapping[str, Any], X: "np.ndarray") -> "np.ndarray":
    return X @ c["coef"] + c["intercept"]


def trees_predict(c: Mapping[str, Any], X: "np.ndarray") -> "np.ndarray":
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


def mlp_predict(c: Mapping[str, Any], X: "np.ndarray") -> "np.ndarray":
    import numpy as np
    h = (X - c["x_mean"]) / c["x_scale"]
    layers = c["layers"]
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h[:, 0] * c["y_scale"] + c["y_mean"]


PREDICT = {"linear": linear_predict, "trees": trees_predict, "mlp": mlp_predict}


def component_to_json(c: Mapping[str, Any]) -> dict[str, Any]:
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


def _num(v: Any, what: str) -> float:
    if type(v) not in (int, float) or not math.isfinite(v):
        raise OfaProfileError(f"{what} is {short_value(v)}, not a finite number")
    return float(v)


def _array(v: Any, what: str, ndim: int, integer: bool = False) -> "np.ndarray":
    """A JSON (nested) list of finite numbers with exactly ``ndim`` rectangular dimensions, as an array."""
    import numpy as np
    if not isinstance(v, list):
        raise OfaProfileError(f"{what} is {short_value(v)}, not a list")
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


def component_from_json(obj: Any, n_features: int | None = None, where: str = "predictor component"
                         ) -> dict[str, Any]:
    """A stored component as arrays, every field checked for type, shape and finiteness against
    ``n_features`` (the encoding's width); one-line :class:`OfaProfileError` otherwise."""
    import numpy as np
    if not isinstance(obj, Mapping):
        raise OfaProfileError(f"{where} is {short_value(obj)}, not an object; refit the predictor")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in PREDICT:
        raise OfaProfileError(f"{where} type {short_value(kind)} is not one of {', '.join(PREDICT)}")
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
                raise OfaProfileError(f"{w} max_depth is {short_value(md)}, not an integer in 0..{shape[1]} (nodes)")
            c["max_depth"] = md
        else:
            if obj.get("activation", "relu") != "relu":
                raise OfaProfileError(f"{w} activation is {short_value(obj.get('activation'))}; only 'relu' is supported")
            layers = obj.get("layers")
            if not isinstance(layers, list) or not layers:
                raise OfaProfileError(f"{w} layers is {short_value(layers)}, not a non-empty list of [weights, bias]")
            out = []
            width = n_features
            for i, lb in enumerate(layers):
                if not isinstance(lb, list) or len(lb) != 2:
                    raise OfaProfileError(f"{w} layers[{i}] is {short_value(lb)}, not a pair [weights, bias]")
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


def n_features(space: str, encoding: str) -> int:
    sp = get_space(space)
    return int(encode([sp.smallest(sp.resolutions[0])], encoding).shape[1])
