"""How well a latency model ranks and matches measured subnets (shared by the few-shot adapter and the
source models it transfers from)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ["AdaptScore", "score_latency"]


@dataclass(frozen=True)
class AdaptScore:
    n: int
    spearman: float
    within_5pct: float
    within_10pct: float
    mape_pct: float

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def score_latency(predicted_ms: Sequence[float], measured_ms: Sequence[float]) -> AdaptScore:
    import numpy as np
    from scipy.stats import spearmanr
    p = np.asarray(predicted_ms, dtype=float)
    m = np.asarray(measured_ms, dtype=float)
    rel = np.abs(p / m - 1.0)
    defined = len(m) > 2 and np.ptp(p) > 0 and np.ptp(m) > 0  # a constant side has no rank correlation
    return AdaptScore(n=int(len(m)), spearman=float(spearmanr(p, m).statistic) if defined else float("nan"),
                      within_5pct=float((rel <= 0.05).mean()), within_10pct=float((rel <= 0.10).mean()),
                      mape_pct=float(rel.mean() * 100))
