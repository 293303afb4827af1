"""Accuracy predictors: regressors stored as plain JSON, OFA's official MLP, and which predictor a command uses.

An :class:`AccuracyPredictor` maps subnet specs to a predicted top-1 accuracy (a
fraction).  It is fitted with scikit-learn but stored and evaluated *without* it:
:meth:`AccuracyPredictor.to_json` writes plain arrays (ridge coefficients, boosted
trees as node arrays, MLP weights: :mod:`ofa_profile.accuracy_components`) and
:meth:`AccuracyPredictor.predict` re-implements prediction with numpy, so a
scikit-learn upgrade cannot break a stored predictor (nn-Meter's pickles did).

Encodings: :data:`~ofa_profile.encodings.ENCODINGS` (computed from :class:`~ofa_profile.encodings.ArchArrays`).

Models (:data:`MODELS`): ``ridge``; ``gbm`` (gradient-boosted trees); ``mlp``
(one hidden ReLU layer, L-BFGS); ``ridge+gbm`` (ridge, then boosted trees on its
residuals -- the default, best on the ImageNet reference split).  A prediction is
the sum of the outputs of the stored *components*.

Datasets: :func:`~ofa_profile.accuracy_data.read_accuracy_csv` (re-exported here).
"""
from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .accuracy_components import PREDICT, component_from_json, component_to_json, fit_components, n_features
from .accuracy_data import (SOURCE_SEPARATOR, AccuracyDataset, csv_records, grouped_folds,  # noqa: F401
                            load_subnets, read_accuracy_csv, read_accuracy_csvs, read_specs_csv, short_value,
                            split_dataset, subnet_groups)   # (re-exported)
from .accuracy_scores import (AccuracyScore, band_name, band_scores, evaluate_accuracy_predictor,  # noqa: F401
                              fitted_text, measured_resolutions, outside_trained_range)
from .atomic import write_json_atomic
from .encodings import (DEFAULT_ENCODING, ENCODINGS, ArchArrays, as_arrays, encode,  # noqa: F401  (re-exported)
                        same_macro_architecture)
from .errors import OfaProfileError
from .inputs import MAX_BYTES, read_input
from .jsonio import load_checked, loads_strict
from .paths import model_weights_dir, shared_data_dir, user_cache_dir
from .space import SubnetSpec, full_space, get_space

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "ENCODINGS", "MODELS", "PREDICTOR_FORMAT", "ArchArrays", "encode", "AccuracyDataset", "read_accuracy_csv",
    "split_dataset", "AccuracyPredictor", "AccuracyScore", "fit_accuracy_predictor", "evaluate_accuracy_predictor",
    "load_official_predictor", "load_accuracy_predictor", "same_macro_architecture", "resolve_accuracy_predictor",
    "fit_cached", "bundled_predictor_path", "imagenet_predictor_path", "ACCURACY_CHOICES", "PredictorLabel",
    "predictor_label", "supernet_label", "outside_trained_range", "load_predictor_file", "own_supernet_predictor",
    "read_specs_csv", "fit_with_held_out", "predictor_name", "predicted_rows", "load_subnets", "cross_validate",
    "band_scores", "describe_predictor", "fitted_text", "measured_resolutions", "read_accuracy_csvs",
    "grouped_folds", "subnet_groups",
]

MODELS = ("ridge", "gbm", "mlp", "ridge+gbm")
PREDICTOR_FORMAT = "ofa-profile-accuracy-predictor"
PREDICTOR_VERSION = 1
DEFAULT_MODEL = "ridge+gbm"


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
        a = as_arrays(specs)
        self.check_space(a.space)
        if len(a) == 0:
            return np.zeros(0)
        X = encode(a, self.encoding)
        out = np.zeros(len(a))
        for c in self.components:
            out += PREDICT[c["type"]](c, X)
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
                "components": [component_to_json(c) for c in self.components]}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "AccuracyPredictor":
        """Read a predictor's JSON object, checking every field's type and every array's shape against the
        encoding (one-line :class:`OfaProfileError` naming the field otherwise)."""
        if not isinstance(obj, Mapping) or obj.get("format") != PREDICTOR_FORMAT:
            raise OfaProfileError(f"not an accuracy predictor file (format should be {PREDICTOR_FORMAT!r})")
        if obj.get("version") != PREDICTOR_VERSION:
            raise OfaProfileError(f"accuracy predictor version {short_value(obj.get('version'))} is not supported "
                                  f"(this ofa-profile reads version {PREDICTOR_VERSION}); refit it")
        enc = obj.get("encoding")
        if not isinstance(enc, str) or enc not in ENCODINGS:
            raise OfaProfileError(f"unknown encoding {short_value(enc)} in accuracy predictor (known: "
                                  f"{', '.join(ENCODINGS)})")
        space = obj.get("space")
        if not isinstance(space, str):
            raise OfaProfileError(f"accuracy predictor: 'space' is {short_value(space)}, not a space name; refit it")
        sp = get_space(space)
        model, info = obj.get("model", ""), obj.get("info", {})
        if not isinstance(model, str):
            raise OfaProfileError(f"accuracy predictor: 'model' is {short_value(model)}, not a string; refit it")
        if not isinstance(info, Mapping):
            raise OfaProfileError(f"accuracy predictor: 'info' is {short_value(info)}, not an object; refit it")
        tr = obj.get("trained_resolutions", [])
        if (not isinstance(tr, list) or any(type(r) is not int or r not in sp.resolutions for r in tr)):
            raise OfaProfileError(f"accuracy predictor: 'trained_resolutions' is {short_value(tr)}, not a list of "
                                  f"resolutions of {sp.name}; refit it")
        comps = obj.get("components")
        if not isinstance(comps, list) or not comps:
            raise OfaProfileError(f"accuracy predictor has no components ('components' is {short_value(comps)}, not a "
                                  f"non-empty list); refit it")
        nf = n_features(sp.name, enc)
        return cls(space=sp.name, encoding=enc, model=model,
                   components=tuple(component_from_json(c, nf, f"predictor component {i}")
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
        return write_json_atomic(path, self.to_json(), indent=None)


def load_accuracy_predictor(path: str | Path, *, follow_symlinks: bool = True) -> AccuracyPredictor:
    """Read and check a predictor file: strict JSON, every field and array shape checked, and its predictions
    on the space's smallest and largest subnets fractions in [0, 1] (one-line :class:`OfaProfileError`)."""
    return load_checked(path, "accuracy predictor", AccuracyPredictor.from_json, follow_symlinks=follow_symlinks)


# -- fitting -----------------------------------------------------------------------------------------

def fit_accuracy_predictor(data: "str | Path | AccuracyDataset", model: str = DEFAULT_MODEL,
                           encoding: str = DEFAULT_ENCODING, seed: int = 0, *, gbm_trees: int | None = None,
                           gbm_learning_rate: float | None = None, gbm_max_depth: int = 3,
                           resolution_weights: Mapping[int, float] | None = None, mlp_hidden: tuple[int, ...] = (64,),
                           mlp_max_iter: int = 3000, return_sklearn: bool = False, space: str | None = None) -> Any:
    """Fit a predictor on an accuracy CSV (reference or bundled) or a dataset.

    Boosted trees: 300 trees at learning rate 0.03 for ``gbm``; 100 at 0.09 for the residuals of
    ``ridge+gbm`` (as accurate on the ImageNet split as 300 at 0.03, and 3x cheaper to evaluate in search);
    ``gbm_max_depth`` deep.  ``resolution_weights``: ``{r: w}``, the weight of the rows at resolution ``r`` in
    the ridge and tree fits (others 1), e.g. to let the few rows of one resolution count as much as the many of
    another.  The resolutions the data hold are recorded as ``measured_resolutions``.

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
    rw = {int(r): float(w) for r, w in (resolution_weights or {}).items()}
    if any(not (math.isfinite(w) and w > 0) for w in rw.values()):
        raise OfaProfileError(f"resolution weights must be positive finite numbers, got {rw}")
    sw = np.array([rw.get(int(r), 1.0) for r in a.r]) if rw else None
    # one BLAS thread: the ridge solution's last bits (and so the trees fitted on its residuals) do not depend on
    # the machine's thread count, so a refit reproduces a stored predictor exactly
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1):
        comps, sk = fit_components(X, y, model, sw, seed, gbm_trees, gbm_learning_rate, gbm_max_depth, mlp_hidden,
                                    mlp_max_iter)
    trees = next((len(c["value"]) for c in comps if c["type"] == "trees"), None)
    lr = next((c["learning_rate"] for c in comps if c["type"] == "trees"), None)
    pred = AccuracyPredictor(space=a.space, encoding=encoding, model=model, components=tuple(comps),
                             trained_resolutions=ds.resolutions,
                             info={"n_train": len(ds), "seed": seed,
                                   "source": SOURCE_SEPARATOR.join(Path(x).name for x in ds.source.split(SOURCE_SEPARATOR))
                                   if ds.source else "",
                                   "sklearn_version": sklearn.__version__,
                                   "measured_resolutions": list(ds.resolutions),
                                   **({"precision": ds.precision} if ds.precision != "fp32" else {}),
                                   **({"gbm_trees": trees, "gbm_learning_rate": lr} if "gbm" in model else {}),
                                   **({"gbm_max_depth": gbm_max_depth} if "gbm" in model and gbm_max_depth != 3
                                      else {}),
                                   **({"resolution_weights": {str(r): w for r, w in sorted(rw.items())}}
                                      if rw else {})})
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
    data = read_input(p, "official OFA predictor", MAX_BYTES["predictor"])
    try:
        sd = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
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
    digest = hashlib.sha256(data).hexdigest()
    if digest != OFFICIAL_PREDICTOR_SHA256:     # its legacy torch format carries no checksum of its own
        raise OfaProfileError(f"{p} has the layout of OFA's acc_predictor.pth but not its content: sha256 "
                              f"{digest[:16]}..., the official file's is {OFFICIAL_PREDICTOR_SHA256[:16]}... (a "
                              f"damaged or changed copy); refused: download it again from OFA's release")
    comp = {"type": "mlp", "activation": "relu", "layers": layers, "x_mean": np.zeros(128), "x_scale": np.ones(128),
            "y_mean": 0.0, "y_scale": 1.0}
    pred = AccuracyPredictor(space=get_space(space).name, encoding="ofa-onehot", model="ofa-official-mlp",
                             components=(comp,), trained_resolutions=(),
                             info={"source": p.name, "layers": [int(i) for i in idx], "dataset": "imagenet",
                                   "describes": OFFICIAL_W12_DESCRIBES,
                                   "label": "ImageNet top-1 of OFA's w1.2 supernet"})
    pred.check(str(p))
    return pred


FIT_OPTIONS = ("gbm_trees", "gbm_learning_rate", "gbm_max_depth", "resolution_weights")   # fit_accuracy_predictor's


def cross_validate(ds: AccuracyDataset, model: str = DEFAULT_MODEL, encoding: str = DEFAULT_ENCODING, *,
                   folds: int = 5, seed: int = 0, bands: Sequence[Sequence[int]] | None = None,
                   **fit_options: Any) -> dict[str, Any]:
    """Grouped ``folds``-fold cross-validation (:func:`grouped_folds`: no subnet in both a training and its test
    fold): every row predicted by a fit on the other folds, scored per band of resolutions (:func:`band_scores`;
    ``bands`` default: each measured resolution, and all).  Returns ``{folds, grouped_by, seed, bands: {name:
    figures}}`` and, under ``predicted``, the out-of-fold predictions."""
    import numpy as np
    y = np.asarray(ds.accuracy, dtype=np.float64)
    r = np.array([s.r for s in ds.specs])
    oof = np.full(len(ds), np.nan)
    for test in grouped_folds(ds, folds, seed):
        train = np.setdiff1d(np.arange(len(ds)), test)
        pred = fit_accuracy_predictor(ds.subset(train.tolist()), model=model, encoding=encoding, seed=seed,
                                      **fit_options)
        oof[test] = pred.predict([ds.specs[i] for i in test])
    if bands is None:
        bands = [(v,) for v in ds.resolutions] + ([tuple(ds.resolutions)] if len(ds.resolutions) > 1 else [])
    out = {}
    for b in bands:
        m = np.isin(r, list(b))
        if m.any():
            out[band_name(sorted(b))] = band_scores(oof[m], y[m], r[m])
    return {"folds": folds, "grouped_by": "subnet (depths, kernels, expands; any resolution)", "seed": seed,
            "bands": out, "predicted": oof}


def fit_with_held_out(data: "str | Path | Sequence[str | Path]", model: str = DEFAULT_MODEL,
                      encoding: str = DEFAULT_ENCODING, *, test_frac: float = 0.2, seed: int = 0,
                      official: str | Path | None = None, supernet: str | Path | None = None, cv_folds: int = 0,
                      dataset: str | None = None, made_by: str | None = None,
                      **fit_options: Any) -> tuple[AccuracyPredictor, dict[str, Any]]:
    """``ofa-profile accuracy-predictor``: the predictor fitted on all rows of the CSV(s) ``data``, and its report.

    With ``test_frac > 0`` the report holds the figures of a fit on a seeded ``1 - test_frac`` share, scored on
    the rest (``held_out``; ``official_held_out``: OFA's ``acc_predictor.pth`` ``official`` on the same rows).
    With ``cv_folds >= 2``: grouped cross-validation figures per resolution (:func:`cross_validate`,
    ``cross_validated``).  ``supernet``: the weights the CSV was measured with (``"bundled"``: ``ofa_model/weights``);
    their sha256 and label are recorded in the predictor's info, as are each CSV's sha256, the held-out and
    cross-validated figures.  ``dataset="imagenet"``: the CSVs hold ImageNet top-1 of OFA's w1.0 supernet (OFA's
    reference files); recorded as the predictor's label.  ``made_by``: the command line, recorded.
    ``fit_options``: :data:`FIT_OPTIONS` of :func:`fit_accuracy_predictor`."""
    import dataclasses
    import time

    bad = sorted(set(fit_options) - set(FIT_OPTIONS))
    if bad:
        raise TypeError(f"unknown fit option(s) {bad}")
    paths = [data] if isinstance(data, (str, Path)) else list(data)
    supernet_sha = wpath = None
    if supernet is not None:
        from ofa_model.bundle import bundled_weights_path, sha256_file
        wpath = bundled_weights_path() if supernet == "bundled" else Path(supernet)
        if not wpath.is_file():
            raise OfaProfileError(f"supernet weights {wpath} do not exist; pass the weights file the CSV was "
                                  f"measured with")
        supernet_sha = sha256_file(wpath)
    if dataset is not None and dataset != "imagenet":
        raise OfaProfileError(f"unknown dataset {dataset!r}; the only named one is 'imagenet' (OFA's w1.0 supernet)")
    ds = read_accuracy_csvs(paths)
    if dataset == "imagenet" and not same_macro_architecture(ds.specs[0].space, "ofa-mbv3-w1.0"):
        raise OfaProfileError(f"--dataset imagenet names ImageNet top-1 of OFA's w1.0 supernet; these subnets are of "
                              f"{ds.specs[0].space}")
    report: dict[str, Any] = {"data": [str(p) for p in paths] if len(paths) > 1 else str(paths[0]), "n": len(ds),
                              "model": model, "encoding": encoding, "seed": seed, "resolutions": list(ds.resolutions)}
    if test_frac > 0:
        tr, te = split_dataset(ds, test_frac, seed)
        t0 = time.perf_counter()
        held = fit_accuracy_predictor(tr, model=model, encoding=encoding, seed=seed, **fit_options)
        report["fit_seconds"] = round(time.perf_counter() - t0, 2)
        report["held_out"] = {"n_train": len(tr), **evaluate_accuracy_predictor(held, te).as_dict()}
        if official:
            off = load_official_predictor(official, space=te.specs[0].space)
            report["official_held_out"] = evaluate_accuracy_predictor(off, te).as_dict()
    if cv_folds:
        cv = cross_validate(ds, model, encoding, folds=cv_folds, seed=seed, **fit_options)
        cv.pop("predicted")
        report["cross_validated"] = cv
    pred = fit_accuracy_predictor(ds, model=model, encoding=encoding, seed=seed, **fit_options)
    digests = [hashlib.sha256(read_input(p, "accuracy CSV", MAX_BYTES["csv"])).hexdigest() for p in paths]
    extra: dict[str, Any] = {"source_sha256": digests[0] if len(paths) == 1 else digests}
    if supernet_sha:
        extra["supernet_sha256"] = supernet_sha
        extra.update(supernet_label(wpath, supernet_sha))     # dataset, describes, label: what it predicts
    if dataset == "imagenet":
        extra.update({"dataset": "imagenet", "describes": IMAGENET_DESCRIBES, "label": IMAGENET_LABEL})
    if "held_out" in report:
        extra.update({"held_out": report["held_out"], "test_frac": test_frac})
    if "cross_validated" in report:
        extra["cross_validated"] = report["cross_validated"]
    if made_by:
        extra["made_by"] = made_by
    return dataclasses.replace(pred, info={**pred.info, **extra}), report


def predictor_name(predictor: str | Path | None = None, data: str | Path | None = None,
                   accuracy: str | None = None) -> str:
    """How a command names the predictor of :func:`resolve_accuracy_predictor` with the same arguments."""
    if predictor:
        return str(predictor)
    if data:
        return f"fitted on {data}"
    return "bundled accuracy_predictor.json" if accuracy == "bundled" else IMAGENET_PREDICTOR


def predicted_rows(specs: Sequence[SubnetSpec], pred: AccuracyPredictor, block: Mapping[str, Any],
                   name: str) -> list[dict[str, Any]]:
    """``ofa-profile predict-accuracy``: one row per subnet, its predicted accuracy (a fraction), what that
    accuracy is (``block``: the command's ``accuracy_predictor`` record), the predictor's ``name`` and whether the
    subnet's resolution lies inside those the predictor was fitted on."""
    outside = set(block["outside_trained_range"])
    acc = pred.predict(list(specs))
    return [{"arch": s.short(), "spec": s.canonical().to_ofa(), "space": s.space, "r": s.r,
             "accuracy": round(float(a), 6), "dataset": block["dataset"], "describes": block["describes"],
             "predictor": name, "within_trained_range": s.r not in outside} for s, a in zip(specs, acc)]


# -- which predictor a command uses ----------------------------------------------------------------------

BUNDLED_PREDICTOR = "accuracy_predictor.json"  # in ofa_model/weights/, beside the bundled supernet


def bundled_predictor_path() -> Path:
    """Where the bundled accuracy predictor lives (``ofa_model/weights/accuracy_predictor.json``)."""
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
    try:
        have = loads_strict(man.read_bytes()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return f"{man} is unreadable"
    if have != want:
        return (f"it was fitted for supernet sha256 {want[:12]}..., the bundled weights are {str(have)[:12]}...; "
                f"rebuild it with `ofa-profile accuracy-dataset` + `ofa-profile accuracy-predictor --supernet bundled`")
    return None


#: sha256 of OFA's official ``acc_predictor.pth`` (1,492,497 bytes; the w1.2 tutorial's predictor)
OFFICIAL_PREDICTOR_SHA256 = "48685122a3540636b06699af66cd816456b25f29b69563e2fda9bed4018eeba0"


def _cache_dir() -> Path:
    return user_cache_dir() / "predictors"


def fit_cached(csv_path: str | Path, model: str = DEFAULT_MODEL, encoding: str = DEFAULT_ENCODING,
               seed: int = 0, space: str | None = None) -> AccuracyPredictor:
    """:func:`fit_accuracy_predictor` on a CSV, cached by the CSV's sha256 (plain JSON, never a pickle)."""
    p = Path(csv_path)
    digest = hashlib.sha256(read_input(p, "accuracy CSV", MAX_BYTES["csv"])).hexdigest()[:16]
    tag = "" if space is None else f"-{get_space(space).name}"
    cache = _cache_dir() / f"{p.stem}-{digest}-{model.replace('+', '_')}-{encoding}-s{seed}{tag}.json"
    if cache.exists() or cache.is_symlink():
        try:
            return load_accuracy_predictor(cache, follow_symlinks=False)
        except OfaProfileError:
            pass  # a stale or foreign file, or a planted symlink: refit below (and replace it)
    pred = fit_accuracy_predictor(p, model=model, encoding=encoding, seed=seed, space=space)
    try:
        if not cache.parent.is_symlink():
            write_json_atomic(cache, pred.to_json(), indent=None, follow_symlinks=False)
    except (OSError, OfaProfileError):
        pass  # a read-only home: the fit is still returned
    return pred


ACCURACY_CHOICES = ("imagenet", "bundled")     # pareto / plot frontier / predict-accuracy --accuracy
DATASET_NAMES = {"imagenet": "ImageNet", "imagenette": "Imagenette"}
IMAGENET_DESCRIBES = "OFA ofa_mbv3_d234_e346_k357_w1.0 (ImageNet)"
IMAGENET_LABEL = "ImageNet top-1 of OFA's w1.0 supernet"
OFFICIAL_W12_DESCRIBES = "OFA ofa_mbv3_d234_e346_k357_w1.2 (ImageNet)"


@dataclass(frozen=True)
class PredictorLabel:
    """What a predictor's accuracy is: ``dataset`` (``imagenet``, ``imagenette`` or ``unknown``), ``describes``
    (the model whose top-1 it predicts), ``fitted`` (the resolutions it was fitted on: :func:`fitted_text`) and
    ``text`` (for a human, both: "ImageNet top-1 of OFA's w1.0 supernet; measured at r=128,160,192,224, ...")."""
    dataset: str
    describes: str
    text: str
    fitted: str = ""


def predictor_label(pred: AccuracyPredictor) -> PredictorLabel:
    """The label a predictor records in its info (``dataset``, ``describes``, ``label``), else one derived from
    what it records (the bundled supernet's sha256, OFA's reference CSV), else ``unknown``; its text ends with
    the resolutions it was fitted on (:func:`fitted_text`)."""
    lab = _base_label(pred)
    fitted = fitted_text(pred)
    return PredictorLabel(lab.dataset, lab.describes, f"{lab.text}; {fitted}" if fitted else lab.text, fitted)


def _base_label(pred: AccuracyPredictor) -> PredictorLabel:
    info = pred.info
    ds, desc, text = info.get("dataset"), info.get("describes"), info.get("label")
    if isinstance(ds, str) and isinstance(desc, str):
        return PredictorLabel(ds, desc, text if isinstance(text, str) else f"{DATASET_NAMES.get(ds, ds)} top-1 of {desc}")
    if info.get("source") == "ofa-w1.0-imagenet-accuracy.csv":
        return PredictorLabel("imagenet", IMAGENET_DESCRIBES, IMAGENET_LABEL)
    sha = info.get("supernet_sha256")
    if isinstance(sha, str) and sha:
        return PredictorLabel("unknown", f"supernet {sha[:12]}", f"top-1 of supernet {sha[:12]}")
    src = info.get("source") or "its accuracy data"
    return PredictorLabel("unknown", f"the subnets of {src}", f"top-1 as measured in {src}")


def supernet_label(weights: str | Path, sha256: str) -> dict[str, str]:
    """``{dataset, describes, label}`` for a predictor fitted on the accuracy dataset of supernet ``weights``:
    the dataset from the ``manifest.json`` beside it (when that manifest names this file and sha256)."""
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


ACCURACY_CSV_HELP = ("columns r, d, ks, e (the subnet in OFA's spec format, lists as JSON) and accuracy (top-1, a "
                     "fraction or a percentage), one measured subnet per row: docs/search-spaces.md")


def _refuse_for_space(space: str, what: str) -> None:
    """No shipped predictor describes ``space``: the options that work there.  OFA's official ``.pth`` is named
    only for the w1.2 space it describes (a predictor of one space is refused for another)."""
    if get_space(space).name == "ofa-mbv3-w1.2":
        raise OfaProfileError(f"{what} describes OFA's w1.0 supernet, not {space}: pass --predictor "
                              f"ofa-acc-predictor.pth (OFA's official w1.2 predictor, e.g. "
                              f"../shared/data/reference/ofa-acc-predictor.pth), or --accuracy-data FILE.csv of "
                              f"measured {space} subnets ({ACCURACY_CSV_HELP})")
    raise OfaProfileError(f"{what} describes OFA's w1.0 MobileNetV3 supernet, not {space}, and no accuracy "
                          f"predictor ships for {space}: pass --accuracy-data FILE.csv of measured {space} subnets "
                          f"({ACCURACY_CSV_HELP}), or --predictor FILE.json fitted on one (with a column "
                          f"space={space}) by `ofa-profile accuracy-predictor --data FILE.csv --out FILE.json`")


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
        # rows without a 'space' column are read in the searched space (a compound space's rows are subnets of
        # the full space it is carved from)
        row_space = full_space(space).name if space is not None else None
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
        say(f"accuracy predictor: {shipped.name} ({predictor_label(pred).text}; fitted on OFA's measured ImageNet "
            f"top-1 of {pred.info.get('n_train', 'its')} subnet rows)")
        return pred
    sd = shared_data_dir()
    ref = sd / "reference" / "ofa-w1.0-imagenet-accuracy.csv" if sd else None
    if ref is not None and ref.exists():
        say(f"accuracy predictor: {model} fitted on the ImageNet reference CSV {ref.name} (resolutions 128/160/192 "
            f"only: searching there by default); pass --predictor or --accuracy-data for another")
        return fit_cached(ref, model=model, seed=seed)
    raise OfaProfileError(f"no accuracy predictor: pass --predictor FILE.json or --accuracy-data FILE.csv "
                          f"(none shipped at {shipped})")


def describe_predictor(which: str = "imagenet") -> dict[str, Any]:
    """``ofa-profile predictor info``: a predictor (``imagenet``: the shipped one, ``bundled``, or a file)
    described as JSON-ready data: its label, the resolutions it was fitted on (measured, and the range it
    interpolates), model, encoding, data and the figures it records."""
    if which in ACCURACY_CHOICES:
        pred = resolve_accuracy_predictor(accuracy=which)
        name = IMAGENET_PREDICTOR if which == "imagenet" else BUNDLED_PREDICTOR
    else:
        if not Path(which).is_file():
            raise OfaProfileError(f"{which} is neither 'imagenet', 'bundled' nor a predictor file")
        pred, name = load_predictor_file(which), str(which)
    lab = predictor_label(pred)
    meas = measured_resolutions(pred)
    tr = tuple(pred.trained_resolutions)
    info = dict(pred.info)
    out: dict[str, Any] = {"name": name, "label": lab.text, "dataset": lab.dataset, "describes": lab.describes,
                           "fitted": lab.fitted, "measured_resolutions": list(meas),
                           "fitted_range": [min(tr), max(tr)] if tr else None,
                           "interpolated_resolutions": [r for r in get_space(pred.space).resolutions
                                                        if tr and min(tr) <= r <= max(tr) and r not in meas],
                           "space": pred.space, "model": pred.model, "encoding": pred.encoding}
    for k in ("source", "n_train", "seed", "made_by", "cross_validated", "held_out", "source_sha256",
              "supernet_sha256"):
        if k in info:
            out[k] = info[k]
    return out


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
