"""Whole-net calibration of a LUT: from LUT sums to measured end-to-end latency.

A LUT sum misses what happens between blocks (one runtime call instead of many,
cache reuse, framework overhead per call), so it is biased, by runtime and
resolution.  We measure N seeded random whole subnets, fit a ridge regression on
LUT-derived features, and store it as *plain numbers* in the LUT JSON (no pickles:
a scikit-learn upgrade cannot break a stored predictor).  The fit is reported on
subnets not used for fitting: share within +-2/5/10 %, RMSE, Spearman.

The stored model (features, prediction, checks) is :mod:`ofa_profile.calibration`, below
:mod:`ofa_profile.lut`; its names are re-exported here.
"""
from __future__ import annotations

import json
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .calibration import (CALIBRATION_FORMAT, FEATURE_NAMES, apply_calibration, check_calibration, extreme_specs,
                          feature_names, features)
from .errors import LutMissError, OfaProfileError
from .jsonio import loads_strict
from .lut import load_lut, save_lut
from .measure import _Journal, _progress, make_profiler, read_journal
from .replicates import per_item, run_passes
from .space import SubnetSpec, get_space
from .timed import TimedError
from .timing import fingerprint_mismatch

if TYPE_CHECKING:  # pragma: no cover
    from .devicespec import DeviceSpec
    from .lut import Lut
    from .timed import Timed
    from .measure import Profiler

__all__ = ["FEATURE_NAMES", "features", "fit_calibration", "apply_calibration", "check_calibration", "evaluate",
           "calibrate_device", "calibrate_on_device",
           "DriftReport", "measure_drift",
           "CalibrationReport"]


def _design(specs: Sequence[SubnetSpec], lut: "Lut"):
    import numpy as np
    return np.array([features(s, lut) for s in specs], dtype=float)


def _extremes_design(lut: "Lut"):
    """Features of the subnets :func:`ofa_profile.calibration.check_calibration` checks on save and load."""
    import numpy as np
    rows = []
    for _, spec in extreme_specs(lut):
        try:
            rows.append(features(spec, lut))
        except LutMissError:
            continue
    return np.array(rows, dtype=float).reshape(len(rows), len(feature_names(lut.space)))


def fit_calibration(specs: Sequence[SubnetSpec], measured_ms: Sequence[float], lut: "Lut",
                    seed: int = 0) -> dict[str, Any]:
    """Fit the calibration (ridge on standardised features, alpha by leave-one-out CV) -> plain dict."""
    import numpy as np
    from sklearn.linear_model import RidgeCV

    if len(specs) < 10:
        raise OfaProfileError(f"calibration needs at least 10 measured subnets, got {len(specs)}")
    X = _design(specs, lut)
    y = np.asarray(measured_ms, dtype=float)
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd[sd == 0] = 1.0
    Z = (X - mu) / sd
    # relative error matters: weight each subnet by 1/y^2 (fit in relative terms)
    w = 1.0 / np.maximum(y, 1e-6) ** 2
    model = RidgeCV(alphas=np.logspace(-4, 2, 25)).fit(Z, y, sample_weight=w)
    # a fit on few or noisy subnets may extrapolate to a non-positive latency at the space's extremes, which the
    # LUT would then refuse to store: shrink harder (larger alpha) until it predicts a latency there; a large
    # enough alpha leaves the (positive) weighted mean, so this ends
    alpha = float(model.alpha_)
    ext = _extremes_design(lut)
    if len(ext):
        from sklearn.linear_model import Ridge
        while (model.predict((ext - mu) / sd) <= 0).any() and alpha < 1e12:
            alpha *= 10.0
            model = Ridge(alpha=alpha).fit(Z, y, sample_weight=w)
    return {
        "format": CALIBRATION_FORMAT,
        "model": "ridge",
        "feature_names": list(feature_names(lut.space)),
        "feature_mean": [float(v) for v in mu],
        "feature_scale": [float(v) for v in sd],
        "coef": [float(v) for v in model.coef_],
        "intercept": float(model.intercept_),
        "alpha": alpha,
        "n_fit": int(len(specs)),
        "seed": seed,
        "sklearn_version": __import__("sklearn").__version__,
    }


@dataclass(frozen=True)
class CalibrationReport:
    n: int
    within_2pct: float
    within_3pct: float
    within_5pct: float
    within_10pct: float
    rmse_ms: float
    mape_pct: float
    spearman: float | None      # None where undefined (fewer than 3 subnets, or constant figures)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def evaluate(predicted_ms: Sequence[float], measured_ms: Sequence[float]) -> CalibrationReport:
    import numpy as np
    from scipy.stats import spearmanr

    p = np.asarray(predicted_ms, dtype=float)
    m = np.asarray(measured_ms, dtype=float)
    rel = np.abs(p - m) / m
    rho = float(spearmanr(p, m).statistic) if len(m) > 2 else float("nan")
    rho = None if np.isnan(rho) else rho  # NaN is not JSON: the report is stored in the LUT
    return CalibrationReport(n=len(m), within_2pct=float((rel <= 0.02).mean()), within_3pct=float((rel <= 0.03).mean()),
                             within_5pct=float((rel <= 0.05).mean()), within_10pct=float((rel <= 0.10).mean()),
                             rmse_ms=float(np.sqrt(((p - m) ** 2).mean())), mape_pct=float(rel.mean() * 100),
                             spearman=rho)


# -- measuring whole subnets (resumable) ---------------------------------------------------------

def sample_specs(space: str, n: int, seed: int, resolutions: Sequence[int]) -> list[SubnetSpec]:
    sp = get_space(space)
    rng = random.Random(seed)
    return [sp.sample(rng, resolution=list(resolutions)) for _ in range(n)]


def measure_subnets(profiler: "Profiler", specs: Sequence[SubnetSpec], journal: Path, seed: int,
                    progress: bool = True, rounds: int = 2) -> list[float]:
    """Whole-net latency of each spec: the lowest of ``rounds`` medians, each from its own pass over all
    the specs (minutes apart; odd passes in reverse order: :func:`ofa_profile.replicates.run_passes`), so that
    a burst of load from elsewhere on the machine, which only ever slows a run down, does not decide a figure.
    Every finished (spec, pass) is journaled (fsync) and reused on rerun."""
    # a torn last line is dropped; any other bad line is one error (journal code shared with `measure`)
    done: dict[tuple[str, int], float] = dict(read_journal(
        journal, _calib_record, f"delete it (rm {journal}) to measure the subnets again"))
    rounds = max(1, int(rounds))
    keys = [_arch_key(s) for s in specs]
    todo = sum(1 for k in keys for r in range(rounds) if (k, r) not in done)
    bar = _progress(len(specs) * rounds, len(specs) * rounds - todo, "subnets", progress, unit="subnet")
    have: dict[str, dict[int, float]] = {}
    for (k, r), med in done.items():
        if r < rounds:               # a journal of a run with more rounds: only this run's rounds count
            have.setdefault(k, {})[r] = med
    f = _Journal(journal, None)      # appends whole lines; a failed write (full disk) is undone, one error line

    def one(item: tuple[SubnetSpec, str], r: int) -> float:
        s, k = item
        m = profiler.measure_subnet(s, seed)
        f.write({"arch": k, "round": r, "median_ms": m.median_ms, "iqr_ms": m.iqr_ms, "count": m.count})
        bar.update(1)
        return m.median_ms
    try:
        reps = run_passes(list(zip(specs, keys)), rounds, per_item(one), key=lambda x: x[1], have=have)
    finally:
        f.close()
    bar.close()
    return [reps.lowest[k] for k in keys]


def _calib_record(raw: bytes) -> tuple[tuple[str, int], float]:
    """``((arch key, round), median_ms)`` of one calibration-journal line; ``ValueError`` if it is not one."""
    import math

    rec = loads_strict(raw)
    if not isinstance(rec, dict):
        raise ValueError(f"a JSON {type(rec).__name__}, not a record")
    arch, rnd, med = rec.get("arch"), rec.get("round", 0), rec.get("median_ms")
    if not isinstance(arch, str) or isinstance(rnd, bool) or not isinstance(rnd, int) or rnd < 0:
        raise ValueError("a record without an arch key and a round number")
    if isinstance(med, bool) or not isinstance(med, (int, float)) or not math.isfinite(med) or med <= 0:
        raise ValueError(f"median_ms={str(med)[:30]} is not a positive latency")
    return (arch, rnd), float(med)


def _arch_key(spec: SubnetSpec) -> str:
    return json.dumps(spec.canonical().to_ofa(), separators=(",", ":"))


def calibrate_device(lut_path: Path, profiler: "Profiler", n_fit: int, n_test: int, seed: int = 0,
                     resolutions: Sequence[int] | None = None, progress: bool = True,
                     rounds: int = 2) -> dict[str, Any]:
    """Measure ``n_fit + n_test`` seeded random subnets, fit on the first ``n_fit``, report on the rest,
    store the calibration in the LUT (atomically) and return the report dict."""
    lut = load_lut(lut_path)
    bad = fingerprint_mismatch(lut.fingerprint, profiler.fingerprint())
    if bad:
        raise OfaProfileError(f"LUT {lut_path} was measured on another setup ({'; '.join(bad)}); "
                              f"calibrate on the machine and runtime that built it")
    lut.timed.require_same(profiler.timed(lut.space), f"LUT {lut_path}", "the subnets calibration measures",
                           "calibrate it with a device spec and options that time what the LUT timed")
    res = tuple(resolutions) if resolutions else lut.resolutions
    miss = [r for r in res if r not in lut.resolutions]
    if miss:
        raise OfaProfileError(f"LUT {lut_path} does not cover resolution(s) {miss}; measure them first")
    specs = sample_specs(lut.space, n_fit + n_test, seed, res)
    journal = lut_path.with_name(lut_path.name + f".calib-s{seed}.jsonl")
    t0 = time.perf_counter()
    measured = measure_subnets(profiler, specs, journal, seed, progress=progress, rounds=rounds)
    t_meas = time.perf_counter() - t0
    fit_specs, test_specs = specs[:n_fit], specs[n_fit:]
    cal = fit_calibration(fit_specs, measured[:n_fit], lut, seed=seed)
    lut_sum = [lut.lut_sum_ms(s) for s in test_specs]
    cal_pred = [apply_calibration(cal, s, lut) for s in test_specs]
    report = {
        "n_fit": n_fit, "n_test": n_test, "seed": seed, "resolutions": list(res), "rounds": rounds,
        "timed": lut.timed.to_json(), "timed_label": lut.timed.label(lut.runtime),
        "test_calibrated": evaluate(cal_pred, measured[n_fit:]).as_dict() if n_test else None,
        "test_lut_sum": evaluate(lut_sum, measured[n_fit:]).as_dict() if n_test else None,
        "ratio_lut_sum_to_measured_mean": float(sum(a / b for a, b in zip(lut_sum, measured[n_fit:])) / max(1, n_test)),
        "measure_s": round(t_meas, 1),
        "samples": [{"arch": s.to_ofa(), "measured_ms": round(m, 5), "split": "fit" if i < n_fit else "test"}
                    for i, (s, m) in enumerate(zip(specs, measured))],
    }
    cal["report"] = {k: v for k, v in report.items() if k != "samples"}
    cal["samples"] = report["samples"]
    cal["fingerprint_checked"] = True
    cal["calibrated_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save_lut(lut.with_calibration(cal), lut_path)
    journal.unlink(missing_ok=True)
    return report


def require_threads(timed: "Timed", device: "DeviceSpec", what: str) -> None:
    """Refuse (:class:`~ofa_profile.timed.TimedError`, one line) timing figures of ``timed`` (named ``what``) again
    on ``device`` when it runs another thread count."""
    if timed.threads is not None and timed.threads != device.num_threads:
        raise TimedError(f"{what} was timed with {timed.threads} thread(s) but device {device.name} runs "
                         f"{device.num_threads}: pass --threads {timed.threads} (this machine's CPU runtimes) or "
                         f"a device spec with num_threads {timed.threads}")


def calibrate_on_device(device: "DeviceSpec", lut_path: Path, n_fit: int, n_test: int, seed: int = 0,
                        resolutions: Sequence[int] | None = None, progress: bool = True,
                        rounds: int = 2) -> dict[str, Any]:
    """:func:`calibrate_device` with the device's own profiler (opened and closed here), timing subnets in the LUT's
    precision; the report without its per-subnet samples (those are stored in the LUT's calibration).  A device
    that runs another thread count than the LUT was timed with is refused first (one line naming ``--threads``)."""
    timed = load_lut(lut_path).timed
    require_threads(timed, device, f"LUT {lut_path}")
    with make_profiler(device, precision=timed.precision) as prof:
        rep = calibrate_device(lut_path, prof, n_fit, n_test, seed=seed, resolutions=resolutions, progress=progress,
                               rounds=rounds)
    return {k: v for k, v in rep.items() if k != "samples"}


@dataclass(frozen=True)
class DriftReport:
    """How fast the device runs now relative to when a LUT was calibrated."""
    factor: float                           # median over the subnets of now / then
    specs: tuple[SubnetSpec, ...]
    then_ms: tuple[float, ...]              # stored in the LUT's calibration
    now_ms: tuple[float, ...]               # lowest median of `rounds` passes, as calibration measures
    rounds: int
    calibrated_utc: str | None              # when the LUT was calibrated (older LUTs: when it was measured)

    def as_dict(self) -> dict[str, Any]:
        return {"factor": round(self.factor, 5), "n_subnets": len(self.specs), "rounds": self.rounds,
                "calibrated_utc": self.calibrated_utc,
                "subnets": [{"arch": s.to_ofa(), "then_ms": round(a, 5), "now_ms": round(b, 5)}
                            for s, a, b in zip(self.specs, self.then_ms, self.now_ms)]}


def measure_drift(lut: "Lut", profiler: "Profiler", n: int, rounds: int = 2, progress: bool = True) -> DriftReport:
    """Measure ``n`` of a calibrated LUT's held-out calibration subnets again, the way calibration measured
    them, and compare with the figures it stored: the factor by which the device is now slower (> 1) or
    faster (< 1) than at calibration time (thermal state, other load, a busier host).  Multiplying the
    calibrated prediction by it re-anchors the latency model to the device as it is now without re-measuring
    the LUT.  The profiler must be the setup that calibrated the LUT (checked by fingerprint)."""
    if n < 1:
        raise OfaProfileError(f"--refresh needs at least 1 subnet, got {n}")
    cal = lut.calibration
    if not cal:
        raise OfaProfileError(f"LUT {lut.source} is not calibrated, so it holds no measured subnets to compare "
                              f"with: run `ofa-profile calibrate` first")
    held = [x for x in cal.get("samples", []) if x.get("split") == "test"]
    if not held:
        raise OfaProfileError(f"LUT {lut.source}'s calibration holds no held-out subnets; re-run "
                              f"`ofa-profile calibrate` with --test-samples > 0")
    bad = fingerprint_mismatch(lut.fingerprint, profiler.fingerprint())
    if bad:
        raise OfaProfileError(f"LUT {lut.source} was measured on another setup ({'; '.join(bad)}): its drift "
                              f"cannot be measured here")
    lut.timed.require_same(profiler.timed(lut.space), f"LUT {lut.source}", "the subnets measured now",
                           "measure the drift with a device spec that times what the LUT timed")
    held = held[:n]
    specs = [SubnetSpec.from_ofa(x["arch"], space=lut.space) for x in held]
    seed = int((cal.get("report") or {}).get("seed", 0))
    rounds = max(1, int(rounds))
    bar = _progress(len(specs) * rounds, 0, "drift", progress, unit="subnet")

    def one(i: int, r: int) -> float:
        ms = profiler.measure_subnet(specs[i], seed).median_ms
        bar.update(1)
        return ms
    reps = run_passes(range(len(specs)), rounds, per_item(one))
    bar.close()
    then_ms = tuple(float(x["measured_ms"]) for x in held)
    now_ms = tuple(reps.lowest[i] for i in range(len(specs)))
    factor = statistics.median(b / a for a, b in zip(then_ms, now_ms))
    return DriftReport(factor, tuple(specs), then_ms, now_ms, rounds, cal.get("calibrated_utc") or lut.created_utc)
