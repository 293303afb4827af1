"""The stored components of an accuracy predictor: plain arrays, evaluated with numpy, checked on load.

:func:`fit_components` fits them with scikit-learn (ridge, boosted trees, MLP).  A component is a ``dict`` of one
``type``: ``linear`` (ridge coefficients), ``trees`` (boosted trees as padded
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
           "n_features", "fit_components"]


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


# -- fitting (scikit-learn, imported inside) --------------------------------------------------------------

def _fit_ridge(X: "np.ndarray", y: "np.ndarray", sample_weight: "np.ndarray | None" = None
               ) -> tuple[dict[str, Any], Any]:
    import numpy as np
    from sklearn.linear_model import RidgeCV
    m = RidgeCV(alphas=np.logspace(-2, 2, 9)).fit(X, y, sample_weight=sample_weight)
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
             max_depth: int = 3, sample_weight: "np.ndarray | None" = None) -> tuple[dict[str, Any], Any]:
    from sklearn.ensemble import GradientBoostingRegressor
    m = GradientBoostingRegressor(n_estimators=n_estimators, learning_rate=learning_rate, max_depth=max_depth,
                                  subsample=0.8, random_state=seed).fit(X, y, sample_weight=sample_weight)
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


def fit_components(X: "np.ndarray", y: "np.ndarray", model: str, sw: "np.ndarray | None", seed: int,
                    gbm_trees: int | None, gbm_learning_rate: float | None, gbm_max_depth: int,
                    mlp_hidden: tuple[int, ...], mlp_max_iter: int) -> tuple[list[dict[str, Any]], list[Any]]:
    """Fit ``model``'s components on features ``X`` and targets ``y`` (rows weighted by ``sw``): ridge, boosted
    trees (on the ridge residuals for ``ridge+gbm``) or an MLP; returns them and the scikit-learn models."""
    comps: list[dict[str, Any]] = []
    sk: list[Any] = []
    if model in ("ridge", "ridge+gbm"):
        c, m = _fit_ridge(X, y, sw)
        comps.append(c); sk.append(m)
    if model in ("gbm", "ridge+gbm"):
        resid = y - (linear_predict(comps[0], X) if comps else 0.0)
        trees = gbm_trees or (100 if comps else 300)
        lr = gbm_learning_rate or (0.09 if comps else 0.03)
        c, m = _fit_gbm(X, resid, seed, n_estimators=trees, learning_rate=lr, max_depth=gbm_max_depth,
                        sample_weight=sw)
        comps.append(c); sk.append(m)
    if model == "mlp":
        c, m = _fit_mlp(X, y, seed, hidden=mlp_hidden, max_iter=mlp_max_iter)
        comps.append(c); sk.append(m)
    return comps, sk
