"""How well an accuracy predictor ranks and hits measured accuracies: :class:`AccuracyScore` of
:func:`evaluate_accuracy_predictor` (Kendall tau, Spearman, RMSE, tau inside each resolution) and
:func:`band_scores` (Kendall tau and mean absolute / signed error in points of some rows, e.g. one band of
resolutions of a cross-validation); and where a predictor holds: the resolutions it was fitted on
(:func:`measured_resolutions`, :func:`fitted_text`) and those outside them (:func:`outside_trained_range`)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from .accuracy_data import AccuracyDataset
from .space import get_space

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["AccuracyScore", "evaluate_accuracy_predictor", "band_scores", "band_name", "measured_resolutions",
           "fitted_text", "outside_trained_range"]


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


def evaluate_accuracy_predictor(pred: Any, ds: AccuracyDataset) -> AccuracyScore:
    import numpy as np
    from scipy.stats import kendalltau, spearmanr
    p = pred.predict(list(ds.specs))
    y = np.asarray(ds.accuracy)
    r = np.array([s.r for s in ds.specs])
    within = [float(kendalltau(p[r == v], y[r == v]).statistic) for v in np.unique(r) if (r == v).sum() > 2]
    return AccuracyScore(n=len(y), kendall_tau=float(kendalltau(p, y).statistic),
                         spearman=float(spearmanr(p, y).statistic), rmse=float(math.sqrt(np.mean((p - y) ** 2))),
                         kendall_tau_within_r=float(np.mean(within)) if within else float("nan"))


def band_scores(predicted: "np.ndarray", measured: "np.ndarray", r: "np.ndarray") -> dict[str, Any]:
    """Figures of predictions against measurements (fractions) of some rows: ``n``, Kendall tau (pooled), the
    mean Kendall tau inside each resolution, and the mean absolute and mean signed error in points (x 100)."""
    import numpy as np
    from scipy.stats import kendalltau
    p, y = np.asarray(predicted, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    within = [float(kendalltau(p[r == v], y[r == v]).statistic) for v in np.unique(r) if (r == v).sum() > 2]
    return {"n": int(len(y)), "kendall_tau": float(kendalltau(p, y).statistic) if len(y) > 2 else float("nan"),
            "kendall_tau_within_r": float(np.mean(within)) if within else float("nan"),
            "mae_pt": float(np.mean(np.abs(p - y)) * 100), "bias_pt": float(np.mean(p - y) * 100)}


def band_name(rs: Sequence[int]) -> str:
    return str(rs[0]) if len(rs) == 1 else f"{min(rs)}..{max(rs)}"


def measured_resolutions(pred: Any) -> tuple[int, ...]:
    """The resolutions the predictor's data were measured at (``info["measured_resolutions"]``, else its trained
    resolutions)."""
    m = pred.info.get("measured_resolutions")
    if isinstance(m, (list, tuple)) and m and all(type(r) is int for r in m):
        return tuple(sorted(m))
    return tuple(sorted(pred.trained_resolutions))


def fitted_text(pred: Any) -> str:
    """Which resolutions the predictor was fitted on, in words: ``measured at r=128,160,192,224, the 21 others in
    128..224 interpolated`` ("" when it records none, as OFA's official predictor)."""
    meas = measured_resolutions(pred)
    if not meas:
        return ""
    inside = [r for r in get_space(pred.space).resolutions if meas[0] <= r <= meas[-1]]
    others = [r for r in inside if r not in meas]
    if not others:
        return f"measured at r={meas[0]}..{meas[-1]}" if len(meas) > 2 else f"measured at r={','.join(map(str, meas))}"
    return (f"measured at r={','.join(map(str, meas))}, the {len(others)} other{'s' if len(others) > 1 else ''} in "
            f"{meas[0]}..{meas[-1]} interpolated")


def outside_trained_range(pred: Any, resolutions: Sequence[int]) -> list[int]:
    """The resolutions among ``resolutions`` outside the range the predictor was fitted on (its lowest to its
    highest trained resolution): there it extrapolates.  Empty when it records no trained resolutions."""
    tr = tuple(pred.trained_resolutions)
    if not tr:
        return []
    return sorted({int(r) for r in resolutions if not min(tr) <= int(r) <= max(tr)})
