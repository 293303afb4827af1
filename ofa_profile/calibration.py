"""The calibration a LUT stores, as plain numbers: its features of a subnet, the prediction, the checks.

:mod:`ofa_profile.lut` applies and checks it when it predicts, loads or saves; :mod:`ofa_profile.calibrate`
fits it (scikit-learn) from measured subnets.  This module sits below both and needs neither scikit-learn nor
a profiler.

Features (:func:`features`): the LUT ms of the fixed part (stem, first block, head), of each stage, the number
of active blocks, and the resolution.
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping, Protocol

from .argsafety import shell_command
from .errors import LutError, LutMissError, OfaProfileError
from .jsonio import plain
from .ops import split_ops, subnet_ops
from .space import DEFAULT_SPACE, Space, SpaceError, SubnetSpec, get_space

__all__ = ["CALIBRATION_FORMAT", "FEATURE_NAMES", "feature_names", "features", "apply_calibration",
           "check_calibration", "extreme_specs", "LutView"]


class LutView(Protocol):
    """What the calibration reads of a LUT (:class:`ofa_profile.lut_format.Lut` is one).  Named here rather than
    imported, so that this module stays below the LUT modules that apply and check it."""
    space: str
    source: str
    resolutions: tuple[int, ...]
    entries: Mapping[str, Any]
    calibration: Mapping[str, Any] | None

    def entry(self, key: str, r: int | None = None) -> Any: ...

CALIBRATION_FORMAT = "ridge-v1"


def feature_names(space: "str | Space") -> tuple[str, ...]:
    """The calibration features of a space: fixed part, one per stage, block count, resolution."""
    sp = get_space(space)
    return ("fixed_ms", *(f"stage{i + 1}_ms" for i in range(sp.n_stages)), "n_blocks", "r_norm")


FEATURE_NAMES = feature_names(DEFAULT_SPACE)     # MobileNetV3's (5 stages)


def calibration_classes(lut: "LutView", calibration: Mapping[str, Any] | None = None) -> int | None:
    """The classifier head (classes) a calibration (default: the LUT's) measured its subnets with; a calibration
    written before the head was recorded measured the space's.  Without a calibration: the LUT's own head."""
    cal = calibration if calibration is not None else lut.calibration
    if cal:
        return int(cal.get("classes", get_space(lut.space).n_classes))
    timed = getattr(lut, "timed", None)
    return timed.classes if timed is not None else None


def _head_ms(spec: SubnetSpec, lut: "LutView", classes: int | None) -> float:
    return sum(lut.entry(op.key, spec.r).median_ms for op in subnet_ops(spec, classes) if op.kind == "Logits")


def features(spec: SubnetSpec, lut: "LutView", classes: int | None = None) -> list[float]:
    """LUT-derived features of a subnet (see :func:`feature_names`), with the classifier head of ``classes`` outputs
    (default: the one the LUT's calibration measured, else the LUT's own); raises LutMissError on missing keys."""
    sp = get_space(spec.space)
    ops = subnet_ops(spec, classes if classes is not None else calibration_classes(lut))
    missing = [op.key for op in ops if op.key not in lut.entries]
    ms = lambda op: lut.entry(op.key, spec.r).median_ms  # per-resolution figure where the LUT has one
    if missing:
        raise LutMissError(f"LUT lacks {len(missing)} key(s) for this subnet, e.g. {missing[0]}; "
                           f"measure resolution {spec.r} first")
    stage_ms = [0.0] * sp.n_stages
    fixed_ops, block_ops = split_ops(spec, ops)
    fixed = sum(ms(op) for op in fixed_ops)
    for (i, s, b), op in zip(spec.active_blocks(), block_ops):
        stage_ms[s] += ms(op)
    return [fixed, *stage_ms, float(len(spec.active_blocks())), spec.r / 224.0]


def apply_calibration(calibration: Mapping[str, Any], spec: SubnetSpec, lut: "LutView") -> float:
    """Calibrated latency (ms) of ``spec``, from the stored plain parameters (no scikit-learn needed)."""
    if calibration.get("format") != CALIBRATION_FORMAT:
        raise OfaProfileError(f"LUT calibration format {calibration.get('format')!r} is not {CALIBRATION_FORMAT!r}; "
                              f"re-run `ofa-profile calibrate`")
    if list(calibration["feature_names"]) != list(feature_names(spec.space)):
        raise OfaProfileError("LUT calibration uses other features than this version; re-run `ofa-profile calibrate`")
    cal_classes = calibration_classes(lut, calibration)
    x = features(spec, lut, cal_classes)
    y = calibration["intercept"]
    for xi, m, s, c in zip(x, calibration["feature_mean"], calibration["feature_scale"], calibration["coef"]):
        y += c * (xi - m) / s
    timed = getattr(lut, "timed", None)
    if timed is not None and timed.classes != cal_classes:   # another head: its LUT difference
        y += _head_ms(spec, lut, timed.classes) - _head_ms(spec, lut, cal_classes)
    return float(y)


def _finite_list(v: Any, n: int) -> bool:
    import math
    return (isinstance(v, (list, tuple)) and len(v) == n
            and all(type(x) in (int, float) and math.isfinite(x) for x in v))


def check_calibration(lut: "LutView") -> None:
    """Refuse (one line, :class:`~ofa_profile.lut.LutError`) a LUT calibration that is malformed or predicts a
    latency that is not a positive finite number for the space's smallest or largest subnet at the smallest
    and largest resolution the LUT covers.  Run when a LUT is loaded and before one is saved."""
    import math

    cal = lut.calibration
    if not cal:
        return
    fix = f"re-run `{shell_command('ofa-profile', 'calibrate', '--lut', lut.source)}` (or remove its 'calibration')"

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
    want = list(feature_names(lut.space))
    if not isinstance(names, (list, tuple)) or list(names) != want:
        fn = " ".join(repr(_plain(cal.get("feature_names"))).split())
        raise bad(f"has feature_names {fn if len(fn) <= 60 else fn[:57] + '...'}, not {want}")
    n = len(want)
    for k in ("feature_mean", "feature_scale", "coef"):
        if not _finite_list(cal.get(k), n):
            raise bad(f"'{k}' is not a list of {n} finite numbers")
    if any(v == 0 for v in cal["feature_scale"]):
        raise bad("'feature_scale' holds a 0 (a division by zero)")
    icpt = cal.get("intercept")
    if type(icpt) not in (int, float) or not math.isfinite(icpt):
        raise bad(f"intercept={str(_plain(icpt))[:60]} is not a finite number")
    for which, spec in extreme_specs(lut):
        try:
            y = apply_calibration(cal, spec, lut)
        except LutMissError:
            continue  # a listed resolution lacking keys: `lut validate` names them
        if not (math.isfinite(y) and y > 0):
            raise bad(f"predicts {y:.6g} ms for the space's {which} subnet at r={spec.r} (a latency must be a "
                      f"positive finite number)")


def extreme_specs(lut: "LutView") -> Iterator[tuple[str, SubnetSpec]]:
    """``("smallest" | "largest", spec)`` of the space at the smallest and largest resolution the LUT covers:
    where a calibration must still predict a positive latency (checked on load and save, kept so by the fit)."""
    if not lut.resolutions:
        return
    sp = get_space(lut.space)
    for r in sorted({min(lut.resolutions), max(lut.resolutions)}):
        yield "smallest", sp.smallest(r)
        yield "largest", sp.largest(r)


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
