"""Whole-net calibration of a LUT: from LUT sums to measured end-to-end latency.

A LUT sum misses what happens between blocks (one runtime call instead of many,
cache reuse, framework overhead per call), so it is biased, by runtime and
resolution.  We measure N seeded random whole subnets, fit a ridge regression on
LUT-derived features, and store it as *plain numbers* in the LUT JSON (no pickles:
a scikit-learn upgrade cannot break a stored predictor).  The fit is reported on
subnets not used for fitting: share within +-2/5/10 %, RMSE, Spearman.

Features (:func:`features`): the LUT ms of the fixed part (stem, first block,
head), of each stage, the number of active blocks, and the resolution.
"""
from __future__ import annotations

import json
import random
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .errors import OfaProfileError
from .jsonio import plain
from .ops import subnet_ops
from .space import SubnetSpec, get_space

if TYPE_CHECKING:  # pragma: no cover
    from .lut import Lut
    from .measure import Profiler

__all__ = ["FEATURE_NAMES", "features", "fit_calibration", "apply_calibration", "check_calibration", "evaluate",
           "calibrate_device",
           "DriftReport", "measure_drift",
           "CalibrationReport"]

CALIBRATION_FORMAT = "ridge-v1"
FEATURE_NAMES = ("fixed_ms", "stage1_ms", "stage2_ms", "stage3_ms", "stage4_ms", "stage5_ms", "n_blocks", "r_norm")


def features(spec: SubnetSpec, lut: "Lut") -> list[float]:
    """LUT-derived features of a subnet (see FEATURE_NAMES); raises LutMissError on missing keys."""
    from .lut import LutMissError
    sp = get_space(spec.space)
    ops = subnet_ops(spec)
    missing = [op.key for op in ops if op.key not in lut.entries]
    ms = lambda op: lut.entry(op.key, spec.r).median_ms  # per-resolution figure where the LUT has one
    if missing:
        raise LutMissError(f"LUT lacks {len(missing)} key(s) for this subnet, e.g. {missing[0]}; "
                           f"measure resolution {spec.r} first")
    stage_ms = [0.0] * sp.n_stages
    fixed = 0.0
    # ops: stem, first block, elastic blocks in order, then 4 head ops
    for op in ops[:2] + ops[-4:]:
        fixed += ms(op)
    for (i, s, b), op in zip(spec.active_blocks(), ops[2:-4]):
        stage_ms[s] += ms(op)
    return [fixed, *stage_ms, float(len(spec.active_blocks())), spec.r / 224.0]


def _design(specs: Sequence[SubnetSpec], lut: "Lut"):
    import numpy as np
    return np.array([features(s, lut) for s in specs], dtype=float)


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
    return {
        "format": CALIBRATION_FORMAT,
        "model": "ridge",
        "feature_names": list(FEATURE_NAMES),
        "feature_mean": [float(v) for v in mu],
        "feature_scale": [float(v) for v in sd],
        "coef": [float(v) for v in model.coef_],
        "intercept": float(model.intercept_),
        "alpha": float(model.alpha_),
        "n_fit": int(len(specs)),
        "seed": seed,
        "sklearn_version": __import__("sklearn").__version__,
    }


def apply_calibration(calibration: Mapping[str, Any], spec: SubnetSpec, lut: "Lut") -> float:
    """Calibrated latency (ms) of ``spec``, from the stored plain parameters (no scikit-learn needed)."""
    if calibration.get("format") != CALIBRATION_FORMAT:
        raise OfaProfileError(f"LUT calibration format {calibration.get('format')!r} is not {CALIBRATION_FORMAT!r}; "
                              f"re-run `ofa-profile calibrate`")
    if list(calibration["feature_names"]) != list(FEATURE_NAMES):
        raise OfaProfileError("LUT calibration uses other features than this version; re-run `ofa-profile calibrate`")
    x = features(spec, lut)
    y = calibration["intercept"]
    for xi, m, s, c in zip(x, calibration["feature_mean"], calibration["feature_scale"], calibration["coef"]):
        y += c * (xi - m) / s
    return float(y)


def _finite_list(v: Any, n: int) -> bool:
    import math
    return (isinstance(v, (list, tuple)) and len(v) == n
            and all(type(x) in (int, float) and math.isfinite(x) for x in v))


def check_calibration(lut: "Lut") -> None:
    """Refuse (one line, :class:`~ofa_profile.lut.LutError`) a LUT calibration that is malformed or predicts a
    latency that is not a positive finite number for the space's smallest or largest subnet at the smallest
    and largest resolution the LUT covers.  Run when a LUT is loaded and before one is saved."""
    import math

    from .lut import LutError, LutMissError
    from .space import SpaceError
    cal = lut.calibration
    if not cal:
        return
    fix = f"re-run `ofa-profile calibrate --lut {lut.source}` (or remove its 'calibration')"

    def bad(what: str) -> LutError:
        return LutError(f"LUT {lut.source}: its calibration {what}; {fix}")

    samples = cal.get("samples", [])
    if not isinstance(samples, (list, tuple)):
        raise bad(f"'samples' is {_json_type(samples)}, not a list")
    for i, x in enumerate(samples):
        if not isinstance(x, Mapping) or x.get("split") not in ("fit", "test") or "arch" not in x:
            raise bad(f"samples[{i}] is not {{arch, measured_ms, split: fit|test}}")
        m = x.get("measured_ms")
        if type(m) not in (int, float) or not math.isfinite(m) or m <= 0:
            raise bad(f"samples[{i}].measured_ms={str(_plain(m))[:60]} is not a positive finite number")
        try:
            SubnetSpec.from_ofa(_plain(x["arch"]), space=lut.space)
        except (SpaceError, TypeError, ValueError, KeyError, AttributeError) as exc:
            raise bad(f"samples[{i}].arch is not a subnet of {lut.space} ({str(exc).splitlines()[0][:120]})") \
                from None
    rep = cal.get("report")
    if rep is not None and not isinstance(rep, Mapping):
        raise bad(f"'report' is {_json_type(rep)}, not an object")
    seed = (rep or {}).get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise bad(f"report.seed={str(_plain(seed))[:60]} is not an integer")
    if not isinstance(cal.get("calibrated_utc", ""), (str, type(None))):
        raise bad("'calibrated_utc' is not a string")
    if cal.get("format") != CALIBRATION_FORMAT:
        return  # another format: refused where it would be applied (apply_calibration), not for --no-calibration
    names = cal.get("feature_names")
    if not isinstance(names, (list, tuple)) or list(names) != list(FEATURE_NAMES):
        fn = " ".join(repr(_plain(cal.get("feature_names"))).split())
        raise bad(f"has feature_names {fn if len(fn) <= 60 else fn[:57] + '...'}, not {list(FEATURE_NAMES)}")
    n = len(FEATURE_NAMES)
    for k in ("feature_mean", "feature_scale", "coef"):
        if not _finite_list(cal.get(k), n):
            raise bad(f"'{k}' is not a list of {n} finite numbers")
    if any(v == 0 for v in cal["feature_scale"]):
        raise bad("'feature_scale' holds a 0 (a division by zero)")
    icpt = cal.get("intercept")
    if type(icpt) not in (int, float) or not math.isfinite(icpt):
        raise bad(f"intercept={str(_plain(icpt))[:60]} is not a finite number")
    if not lut.resolutions:
        return
    sp = get_space(lut.space)
    for r in sorted({min(lut.resolutions), max(lut.resolutions)}):
        for which, spec in (("smallest", sp.smallest(r)), ("largest", sp.largest(r))):
            try:
                y = apply_calibration(cal, spec, lut)
            except LutMissError:
                continue  # a listed resolution lacking keys: `lut validate` names them
            if not (math.isfinite(y) and y > 0):
                raise bad(f"predicts {y:.6g} ms for the space's {which} subnet at r={r} (a latency must be a "
                          f"positive finite number)")


def _json_type(v: Any) -> str:
    """What a JSON value is, in words (frozen LUT fields hold tuples for lists)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    return "an object" if isinstance(v, Mapping) else "a list"


_plain = plain


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
    the specs (minutes apart; odd passes in reverse order), so that a burst of load from elsewhere on the
    machine, which only ever slows a run down, does not decide a figure.  Every finished (spec, pass) is
    journaled (fsync) and reused on rerun."""
    from .measure import _Journal, _progress, read_journal

    # a torn last line is dropped; any other bad line is one error (journal code shared with `measure`)
    done: dict[tuple[str, int], float] = dict(read_journal(
        journal, _calib_record, f"delete it (rm {journal}) to measure the subnets again"))
    rounds = max(1, int(rounds))
    keys = [_arch_key(s) for s in specs]
    todo = sum(1 for k in keys for r in range(rounds) if (k, r) not in done)
    bar = _progress(len(specs) * rounds, len(specs) * rounds - todo, "subnets", progress, unit="subnet")
    f = _Journal(journal, None)      # appends whole lines; a failed write (full disk) is undone, one error line
    try:
        for r in range(rounds):
            order = list(zip(specs, keys))
            for s, k in (order[::-1] if r % 2 else order):
                if (k, r) in done:
                    continue
                m = profiler.measure_subnet(s, seed)
                done[(k, r)] = m.median_ms
                f.write({"arch": k, "round": r, "median_ms": m.median_ms, "iqr_ms": m.iqr_ms, "count": m.count})
                bar.update(1)
    finally:
        f.close()
    bar.close()
    return [min(done[(k, r)] for r in range(rounds)) for k in keys]


def _calib_record(raw: bytes) -> tuple[tuple[str, int], float]:
    """``((arch key, round), median_ms)`` of one calibration-journal line; ``ValueError`` if it is not one."""
    import math

    from .jsonio import loads_strict

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
    from .lut import load_lut, save_lut

    from .timing import fingerprint_mismatch

    lut = load_lut(lut_path)
    bad = fingerprint_mismatch(lut.fingerprint, profiler.fingerprint())
    if bad:
        raise OfaProfileError(f"LUT {lut_path} was measured on another setup ({'; '.join(bad)}); "
                              f"calibrate on the machine and runtime that built it")
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
    from .timing import fingerprint_mismatch

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
    held = held[:n]
    specs = [SubnetSpec.from_ofa(x["arch"], space=lut.space) for x in held]
    seed = int((cal.get("report") or {}).get("seed", 0))
    from .measure import _progress
    rounds = max(1, int(rounds))
    bar = _progress(len(specs) * rounds, 0, "drift", progress, unit="subnet")
    now: list[list[float]] = [[] for _ in specs]
    for r in range(rounds):
        order = list(range(len(specs)))
        for i in (order[::-1] if r % 2 else order):
            now[i].append(profiler.measure_subnet(specs[i], seed).median_ms)
            bar.update(1)
    bar.close()
    then_ms = tuple(float(x["measured_ms"]) for x in held)
    now_ms = tuple(min(v) for v in now)
    factor = statistics.median(b / a for a, b in zip(then_ms, now_ms))
    return DriftReport(factor, tuple(specs), then_ms, now_ms, rounds, cal.get("calibrated_utc") or lut.created_utc)
