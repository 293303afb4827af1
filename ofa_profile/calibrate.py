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
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .calibration import (CALIBRATION_FORMAT, FEATURE_NAMES, apply_calibration, calibration_classes,
                          check_calibration, feature_names, features)
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
           "calibrate_device", "calibrate_on_device", "calibration_subnets",
           "DriftReport", "measure_drift", "spread_over_size", "corner_specs", "corners_design",
           "CalibrationReport"]


def _design(specs: Sequence[SubnetSpec], lut: "Lut"):
    import numpy as np
    return np.array([features(s, lut, lut.timed.classes) for s in specs], dtype=float)


def _corner_options(sp: Any, r: int) -> list[SubnetSpec]:
    """One subnet per choice a corner gives each stage, every stage taking it: its fewest or most blocks, each with
    its smallest or largest kernel and expand (a compound space: its fewest or most blocks).  The first is the
    space's smallest subnet, the last its largest."""
    if sp.compound:
        return [sp.compound_spec([d] * sp.n_stages, r) for d in sorted({min(sp.depths), max(sp.depths)})]
    return [SubnetSpec(sp.name, (k,) * sp.n_blocks, (e,) * sp.n_blocks,
                       tuple(pick(sp.stage_depths(st)) for st in range(sp.n_stages)), r).validated()
            for pick in (min, max) for k, e in ((min(sp.kernels), min(sp.expands)), (max(sp.kernels), max(sp.expands)))]


def _corner_choices(sp: Any, lut: "Lut"):
    """``(r, options, choice)`` of every corner: ``choice[stage]`` indexes the :func:`_corner_options` at ``r``
    that stage takes, at the LUT's lowest and highest resolution."""
    import itertools
    for r in sorted({min(lut.resolutions), max(lut.resolutions)}) if lut.resolutions else []:
        opts = _corner_options(sp, r)
        for choice in itertools.product(range(len(opts)), repeat=sp.n_stages):
            yield r, opts, choice


def corner_specs(lut: "Lut") -> list[SubnetSpec]:
    """Subnets where a linear calibration with coefficients of mixed signs reaches its lowest figures: at the
    LUT's lowest and highest resolution, every stage independently at its fewest or most blocks, each with its
    smallest or largest kernel and expand (4 ** stages per resolution; a compound space: its stage depths).  The
    space's smallest and largest subnets are two of them.  A fit whose coefficient of one stage is negative is
    lowest where that stage is largest and the others smallest, which the two extremes alone never test."""
    sp = get_space(lut.space)
    out: list[SubnetSpec] = []
    w = sp.max_depth
    for r, opts, choice in _corner_choices(sp, lut):
        ks = tuple(k for st, o in enumerate(choice) for k in opts[o].ks[st * w:(st + 1) * w])
        e = tuple(x for st, o in enumerate(choice) for x in opts[o].e[st * w:(st + 1) * w])
        out.append(SubnetSpec(sp.name, ks, e, tuple(opts[o].d[st] for st, o in enumerate(choice)), r).validated())
    return out


def corners_design(lut: "Lut"):
    """The features of every :func:`corner_specs` subnet, composed from the :func:`_corner_options` (a stage's LUT
    ms and depth do not depend on the other stages' choices, nor the fixed part on any): the same rows as
    ``features`` of each corner (tests/test_calibrate.py), for 8 subnets' work instead of 2,048.  The space's
    smallest and largest subnets at both resolutions, which :func:`ofa_profile.calibration.check_calibration`
    checks on save and load, are among them."""
    import numpy as np
    sp = get_space(lut.space)
    names = list(feature_names(lut.space))
    stage_cols = [names.index(f"stage{i + 1}_ms") for i in range(sp.n_stages)]
    nb = names.index("n_blocks")
    rows = []
    feats: dict[int, list[Any] | None] = {}
    for r, opts, choice in _corner_choices(sp, lut):
        if r not in feats:
            try:
                feats[r] = [np.asarray(features(o, lut, lut.timed.classes), dtype=float) for o in opts]
            except LutMissError:
                feats[r] = None
        f = feats[r]
        if f is None:
            continue
        row = f[0].copy()
        for st, o in enumerate(choice):
            row[stage_cols[st]] = f[o][stage_cols[st]]
        row[nb] = sum(opts[o].d[st] for st, o in enumerate(choice))
        rows.append(row)
    return np.array(rows, dtype=float).reshape(len(rows), len(names))


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
    ext = corners_design(lut)          # the space's extremes among them
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
        "classes": lut.timed.classes,        # the classifier head the subnets were measured with
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


def _biased_spec(sp: Any, rng: random.Random, r: int, bias: float) -> SubnetSpec:
    """A subnet whose every choice (depth per stage, kernel and expand per block) takes the ``j``-th smallest of
    its ``k`` options with probability Binomial(k - 1, ``bias``): ``bias`` 0 gives the smallest subnet, 1 the
    largest, 0.5 mostly middling ones."""
    def pick(options: Sequence[int]) -> int:
        opts = sorted(options)
        j = sum(rng.random() < bias for _ in range(len(opts) - 1))
        return opts[j]
    d = tuple(pick(sp.stage_depths(s)) for s in range(sp.n_stages))
    if sp.compound:
        return sp.compound_spec(d, r)
    ks = tuple(pick(sp.kernels) for _ in range(sp.n_blocks))
    e = tuple(pick(sp.expands) for _ in range(sp.n_blocks))
    return SubnetSpec(sp.name, ks, e, d, r).validated()


def sample_stratified(lut: "Lut", n: int, seed: int, resolutions: Sequence[int], pool_factor: int = 30,
                      exclude: Sequence[SubnetSpec] = ()) -> list[SubnetSpec]:
    """``n`` seeded subnets spread evenly over the LUT-sum range of the space at each resolution, from its
    smallest to its largest subnet (the resolutions take turns).  Uniform sampling piles subnets up in the
    middle of that range and almost never draws one near either end, where a fitted model then extrapolates:
    here each of a resolution's ``m`` subnets is the one, of ``pool_factor * m`` candidates drawn with a size
    bias spread from small to large (:func:`_biased_spec`), whose LUT sum lies nearest its target, the
    ``(j + 1/2) / m`` point of the range.  Distinct subnets where the pool allows, none of ``exclude``."""
    sp = get_space(lut.space)
    res = list(resolutions)
    rng = random.Random(seed)
    quota = {r: n // len(res) + (1 if i < n % len(res) else 0) for i, r in enumerate(res)}
    picked: dict[int, list[SubnetSpec]] = {}
    skip = {_arch_key(x) for x in exclude}
    for r in res:
        m = quota[r]
        if not m:
            picked[r] = []
            continue
        lo, hi = lut.lut_sum_ms(sp.smallest(r)), lut.lut_sum_ms(sp.largest(r))
        pool: dict[str, tuple[float, SubnetSpec]] = {}
        for i in range(pool_factor * m):
            c = _biased_spec(sp, rng, r, (i + rng.random()) / (pool_factor * m))
            k = _arch_key(c)
            if k not in skip:
                pool.setdefault(k, (lut.lut_sum_ms(c), c))
        cands = sorted(pool.values(), key=lambda x: x[0])
        used: set[int] = set()
        mine = []
        for j in range(m):
            target = lo + (hi - lo) * (j + 0.5) / m
            free = [i for i in range(len(cands)) if i not in used] or list(range(len(cands)))
            best = min(free, key=lambda i: abs(cands[i][0] - target))
            used.add(best)
            mine.append(cands[best][1])
        picked[r] = mine
    # the resolutions take turns (a journal of an interrupted run is resumed subnet by subnet either way)
    out = []
    for j in range(max(quota.values(), default=0)):
        out += [picked[r][j] for r in res if j < len(picked[r])]
    return out


def split_fit_test(specs: Sequence[SubnetSpec], n_test: int, lut: "Lut") -> tuple[list[int], list[int]]:
    """Indices ``(fit, test)`` of ``specs``: ``n_test`` of them held out, taken evenly along the LUT-sum order so
    that both sets span every size."""
    order = sorted(range(len(specs)), key=lambda i: (lut.lut_sum_ms(specs[i]), i))
    n = len(order)
    test = {order[j] for j in range(n) if (j + 1) * n_test // n > j * n_test // n}
    return [i for i in range(n) if i not in test], sorted(test)


SAMPLING = "stratified-lut-sum+extremes"   # how calibrate_device draws its subnets (recorded in the report)


def extreme_specs_at(space: str, resolutions: Sequence[int]) -> list[tuple[str, SubnetSpec]]:
    """``(name, spec)`` of the space's smallest and largest subnet at the lowest and highest of ``resolutions``."""
    sp = get_space(space)
    return [(w, f(r)) for r in sorted({min(resolutions), max(resolutions)})
            for w, f in (("smallest", sp.smallest), ("largest", sp.largest))]


def by_size(predicted_ms: Sequence[float], measured_ms: Sequence[float],
            size: Sequence[float]) -> list[dict[str, Any]]:
    """Signed error per size tercile (by ``size``, e.g. the LUT sum): ``[{tercile, n, size range, mean signed
    error %, within 5 / 10 %, worst %}]``: a calibration whose error depends on size shows it here."""
    import numpy as np
    p, m, z = (np.asarray(v, dtype=float) for v in (predicted_ms, measured_ms, size))
    err = 100 * (p - m) / m
    order = np.argsort(z, kind="stable")
    out = []
    for t, idx in enumerate(np.array_split(order, 3)):
        if not len(idx):
            continue
        e = err[idx]
        out.append({"tercile": ("small", "middle", "large")[t], "n": int(len(idx)),
                    "size_range": [round(float(z[idx].min()), 4), round(float(z[idx].max()), 4)],
                    "mean_signed_error_pct": round(float(e.mean()), 3),
                    "within_5pct": round(float((np.abs(e) <= 5).mean()), 4),
                    "within_10pct": round(float((np.abs(e) <= 10).mean()), 4),
                    "worst_error_pct": round(float(e[np.argmax(np.abs(e))]), 3)})
    return out


def measure_subnets(profiler: "Profiler", specs: Sequence[SubnetSpec], journal: Path, seed: int,
                    progress: bool = True, rounds: int = 2, classes: int | None = None) -> list[float]:
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
        m = profiler.measure_subnet(s, seed) if classes is None else profiler.measure_subnet(s, seed, classes)
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


def calibration_subnets(lut: "Lut", n_fit: int, n_test: int, seed: int, resolutions: Sequence[int]
                        ) -> tuple[list[tuple[str, SubnetSpec]], list[SubnetSpec], list[SubnetSpec]]:
    """The subnets a calibration measures: (the space's extremes as (name, spec), the fit set (``n_fit`` drawn
    subnets + the extremes), the held-out set (``n_test``)), drawn by :func:`sample_stratified` and split evenly
    along the size range (:func:`split_fit_test`)."""
    ext = extreme_specs_at(lut.space, resolutions)
    drawn = sample_stratified(lut, n_fit + n_test, seed, resolutions, exclude=[s for _, s in ext])
    fit_i, test_i = split_fit_test(drawn, n_test, lut)
    return ext, [drawn[i] for i in fit_i] + [s for _, s in ext], [drawn[i] for i in test_i]


def calibrate_device(lut_path: Path, profiler: "Profiler", n_fit: int, n_test: int, seed: int = 0,
                     resolutions: Sequence[int] | None = None, progress: bool = True,
                     rounds: int = 2, classes: int | None = None) -> dict[str, Any]:
    """Measure ``n_fit + n_test`` seeded subnets spread over the size range (:func:`sample_stratified`, split
    evenly along it: :func:`split_fit_test`) plus the space's smallest and largest subnets at the lowest and
    highest resolution (fitted on), each with a classifier head of ``classes`` outputs (default: the LUT's), fit on
    the fit set, report on the held-out rest (overall, per size tercile, and the extremes), store the calibration
    in the LUT (atomically) and return the report dict."""
    stored = load_lut(lut_path)
    lut = stored.with_classes(classes)
    bad = fingerprint_mismatch(lut.fingerprint, profiler.fingerprint())
    if bad:
        raise OfaProfileError(f"LUT {lut_path} was measured on another setup ({'; '.join(bad)}); "
                              f"calibrate on the machine and runtime that built it")
    lut.timed.require_same(profiler.timed(lut.space).with_(classes=lut.timed.classes), f"LUT {lut_path}",
                           "the subnets calibration measures",
                           "calibrate it with a device spec and options that time what the LUT timed")
    head = None if lut.timed.classes == get_space(lut.space).n_classes else lut.timed.classes
    res = tuple(resolutions) if resolutions else lut.resolutions
    miss = [r for r in res if r not in lut.resolutions]
    if miss:
        raise OfaProfileError(f"LUT {lut_path} does not cover resolution(s) {miss}; measure them first")
    # subnets spread over the whole size range (uniform sampling almost never draws one near the smallest or
    # largest subnet), split evenly along it; the space's smallest and largest subnets at the lowest and highest
    # resolution join the fit set, so that the model holds at both ends (their fitted error is reported)
    ext, fit_specs, test_specs = calibration_subnets(lut, n_fit, n_test, seed, res)
    specs = fit_specs + test_specs
    n_fit_all = len(fit_specs)
    order = list(range(len(specs)))
    random.Random(seed).shuffle(order)           # measured in a seeded order: a slow spell hits every size
    journal = lut_path.with_name(lut_path.name + f".calib-s{seed}" + (f"-c{head}" if head else "") + ".jsonl")
    t0 = time.perf_counter()
    got = measure_subnets(profiler, [specs[i] for i in order], journal, seed, progress=progress, rounds=rounds,
                          classes=head)
    t_meas = time.perf_counter() - t0
    measured = [0.0] * len(specs)
    for j, i in enumerate(order):
        measured[i] = got[j]
    cal = fit_calibration(fit_specs, measured[:n_fit_all], lut, seed=seed)
    lut_sum = [lut.lut_sum_ms(s) for s in test_specs]
    cal_pred = [apply_calibration(cal, s, lut) for s in test_specs]
    m_test = measured[n_fit_all:]
    ext_rows = []
    for w, s in ext:
        m = measured[[_arch_key(x) for x in specs].index(_arch_key(s))]
        p = apply_calibration(cal, s, lut)
        ext_rows.append({"subnet": w, "r": s.r, "measured_ms": round(m, 5), "predicted_ms": round(p, 5),
                         "error_pct": round(100 * (p - m) / m, 3), "split": "fit"})
    report = {
        "n_fit": n_fit, "n_extremes": len(ext), "n_test": n_test, "seed": seed, "resolutions": list(res),
        "rounds": rounds, "timed": lut.timed.to_json(), "timed_label": lut.timed.label(lut.runtime),
        "sampling": SAMPLING,
        "test_calibrated": evaluate(cal_pred, m_test).as_dict() if n_test else None,
        "test_lut_sum": evaluate(lut_sum, m_test).as_dict() if n_test else None,
        "test_by_size": by_size(cal_pred, m_test, lut_sum) if n_test else None,
        "extremes": ext_rows,
        "ratio_lut_sum_to_measured_mean": float(sum(a / b for a, b in zip(lut_sum, m_test)) / max(1, n_test)),
        "measure_s": round(t_meas, 1),
        "samples": [{"arch": s.to_ofa(), "measured_ms": round(m, 5), "split": "fit" if i < n_fit_all else "test",
                     **({"predicted_ms": round(cal_pred[i - n_fit_all], 5)} if i >= n_fit_all else {})}
                    for i, (s, m) in enumerate(zip(specs, measured))],
    }
    cal["report"] = {k: v for k, v in report.items() if k != "samples"}
    cal["samples"] = report["samples"]
    cal["fingerprint_checked"] = True
    cal["calibrated_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save_lut(stored.with_calibration(cal), lut_path)     # the LUT's own head stays its head
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
                        rounds: int = 2, classes: int | None = None) -> dict[str, Any]:
    """:func:`calibrate_device` with the device's own profiler (opened and closed here), timing subnets in the LUT's
    precision; the report without its per-subnet samples (those are stored in the LUT's calibration).  A device
    that runs another thread count than the LUT was timed with is refused first (one line naming ``--threads``)."""
    timed = load_lut(lut_path).timed
    require_threads(timed, device, f"LUT {lut_path}")
    with make_profiler(device, precision=timed.precision) as prof:
        prof.use_graph(timed.graph)      # whole subnets built as the LUT's blocks were
        rep = calibrate_device(lut_path, prof, n_fit, n_test, seed=seed, resolutions=resolutions, progress=progress,
                               rounds=rounds, classes=classes)
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


def spread_over_size(samples: Sequence[Mapping[str, Any]], n: int, lut: "Lut") -> list[Mapping[str, Any]]:
    """``n`` of a calibration's ``samples`` spread evenly over their LUT sums, smallest and largest included (in
    that order of size; all of them where ``n`` covers them).  A machine's drift differs with the subnet's size
    (a host's cache and memory contention slows the large subnets most), so a drift measured on the first few
    held-out subnets, which may all be small, says little about the rest."""
    sized = sorted(samples, key=lambda x: lut.lut_sum_ms(SubnetSpec.from_ofa(x["arch"], space=lut.space)))
    if n >= len(sized):
        return sized
    if n == 1:
        return [sized[len(sized) // 2]]
    return [sized[round(i * (len(sized) - 1) / (n - 1))] for i in range(n)]


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
    lut.timed.require_same(profiler.timed(lut.space).with_(classes=lut.timed.classes), f"LUT {lut.source}",
                           "the subnets measured now", "measure the drift with a device spec that times what the LUT "
                                                       "timed")
    head = calibration_classes(lut)
    head = None if head == get_space(lut.space).n_classes else head
    held = spread_over_size(held, n, lut)
    specs = [SubnetSpec.from_ofa(x["arch"], space=lut.space) for x in held]
    seed = int((cal.get("report") or {}).get("seed", 0))
    rounds = max(1, int(rounds))
    bar = _progress(len(specs) * rounds, 0, "drift", progress, unit="subnet")

    def one(i: int, r: int) -> float:
        ms = (profiler.measure_subnet(specs[i], seed) if head is None
              else profiler.measure_subnet(specs[i], seed, head)).median_ms
        bar.update(1)
        return ms
    reps = run_passes(range(len(specs)), rounds, per_item(one))
    bar.close()
    then_ms = tuple(float(x["measured_ms"]) for x in held)
    now_ms = tuple(reps.lowest[i] for i in range(len(specs)))
    factor = statistics.median(b / a for a, b in zip(then_ms, now_ms))
    return DriftReport(factor, tuple(specs), then_ms, now_ms, rounds, cal.get("calibrated_utc") or lut.created_utc)
