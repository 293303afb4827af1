"""The calibration a LUT stores, as plain numbers: the one owner of its features, of the formula that turns them
into a latency, and of its checks.

:mod:`ofa_profile.lut` applies and checks it when it predicts, loads or saves; :mod:`ofa_profile.calibrate`
fits it (scikit-learn) from measured subnets; :mod:`ofa_profile.latency` hands its batch form to the search.
This module sits below all three and needs neither scikit-learn nor a profiler.

Features (:func:`feature_names`): the LUT ms of the fixed part (stem, first block, head), of each stage, the
number of active blocks, and the resolution / 224.  The calibrated latency is the ridge line
:class:`Ridge` over them, plus, when the LUT predicts another classifier head than the calibration's subnets
were measured with, the LUT's difference between the two heads.

Two forms compute it, from the same feature layout (:func:`_assemble`) and the same formula (:class:`Ridge`):
the scalar form :func:`predict_ms` (:meth:`ofa_profile.lut_format.Lut.predict_ms`; one subnet from its ops) and
the batch form :func:`batch_predictor` (a numpy function of :class:`~ofa_profile.encodings.ArchArrays`, from
per-block tables: what the search calls).  Both predict the plain LUT sum when uncalibrated, and a LUT lacking
a subnet's keys is refused by both with the LUT's one message (:meth:`~ofa_profile.lut_format.Lut.miss_message`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

from .argsafety import shell_command
from .encodings import ArchArrays, BlockTable
from .errors import LutError, LutMissError, OfaProfileError
from .jsonio import plain
from .ops import split_ops, subnet_ops
from .space import DEFAULT_SPACE, Space, SpaceError, SubnetSpec, get_space

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["CALIBRATION_FORMAT", "FEATURE_NAMES", "feature_names", "features", "Ridge", "apply_calibration",
           "predict_ms", "batch_predictor", "check_calibration", "extreme_specs", "head_note", "LutView"]


class LutView(Protocol):
    """What the calibration reads of a LUT (:class:`ofa_profile.lut_format.Lut` is one).  Named here rather than
    imported, so that this module stays below the LUT modules that apply and check it."""
    space: str
    source: str
    resolutions: tuple[int, ...]
    entries: Mapping[str, Any]
    calibration: Mapping[str, Any] | None

    def entry(self, key: str, r: int | None = None) -> Any: ...

    def lut_sum_ms(self, spec: SubnetSpec, classes: int | None = None) -> float: ...

    def miss_message(self, missing: Sequence[str], resolutions: Iterable[int]) -> str: ...

CALIBRATION_FORMAT = "ridge-v1"


def feature_names(space: "str | Space") -> tuple[str, ...]:
    """The calibration features of a space: fixed part, one per stage, block count, resolution."""
    sp = get_space(space)
    return ("fixed_ms", *(f"stage{i + 1}_ms" for i in range(sp.n_stages)), "n_blocks", "r_norm")


FEATURE_NAMES = feature_names(DEFAULT_SPACE)     # MobileNetV3's (5 stages)


def _assemble(fixed_ms: Any, stage_ms: Any, n_blocks: Any, r: Any) -> "np.ndarray":
    """The feature matrix ``[N, F]`` in :func:`feature_names`' order, from ``[N]`` fixed-part ms, ``[N, stages]``
    stage ms, ``[N]`` active block counts and ``[N]`` resolutions (one subnet: scalars and one list)."""
    import numpy as np
    fixed = np.asarray(fixed_ms, dtype=float).reshape(-1)
    stages = np.asarray(stage_ms, dtype=float).reshape(len(fixed), -1)
    return np.column_stack([fixed, stages, np.asarray(n_blocks, dtype=float).reshape(-1),
                            np.asarray(r, dtype=float).reshape(-1) / 224.0])


@dataclass(frozen=True)
class Ridge:
    """The stored formula: ``intercept + sum(coef * (x - feature_mean) / feature_scale)`` over the features."""
    mean: "np.ndarray"
    scale: "np.ndarray"
    coef: "np.ndarray"
    intercept: float

    @classmethod
    def of(cls, calibration: Mapping[str, Any], space: "str | Space", source: str) -> "Ridge":
        """The formula of a stored calibration; one line (:class:`OfaProfileError`) when this version cannot apply
        it (another format, or other features)."""
        import numpy as np
        fmt, names = calibration.get("format"), calibration.get("feature_names")
        want = list(feature_names(space))
        if fmt != CALIBRATION_FORMAT or not isinstance(names, (list, tuple)) or list(names) != want:
            what = (f"format {str(fmt)[:40]!r} is not {CALIBRATION_FORMAT!r}" if fmt != CALIBRATION_FORMAT
                    else f"features are not this version's {want}")
            fix = shell_command("ofa-profile", "calibrate", *(() if source.startswith("<") else ("--lut", source)))
            raise OfaProfileError(f"LUT {source}: its calibration's {what}, so it cannot be applied; re-run "
                                  f"`{fix}` (or use the plain LUT sums: --no-calibration)")
        return cls(np.asarray(calibration["feature_mean"], dtype=float),
                   np.asarray(calibration["feature_scale"], dtype=float),
                   np.asarray(calibration["coef"], dtype=float), float(calibration["intercept"]))

    def __call__(self, X: "np.ndarray") -> "np.ndarray":
        return self.intercept + ((X - self.mean) / self.scale) @ self.coef


def calibration_classes(lut: "LutView", calibration: Mapping[str, Any] | None = None) -> int | None:
    """The classifier head (classes) a calibration (default: the LUT's) measured its subnets with; a calibration
    written before the head was recorded measured the space's.  Without a calibration: the LUT's own head."""
    cal = calibration if calibration is not None else lut.calibration
    if cal:
        return int(cal.get("classes", get_space(lut.space).n_classes))
    timed = getattr(lut, "timed", None)
    return timed.classes if timed is not None else None


def head_note(lut: "LutView") -> str | None:
    """One line for a calibrated LUT that predicts another classifier head than its calibration measured (None
    otherwise): that head is predicted by adding the LUT's difference between the two head ops, which understates
    the difference inside a network (the 1,000-class classifier's weights compete with the rest for the cache), so
    the fix is a calibration with the head that ships."""
    own = _own_classes(lut)
    if not lut.calibration or own is None:
        return None
    head = calibration_classes(lut)
    if head is None or head == own:
        return None
    fix = shell_command("ofa-profile", "calibrate", "--device", getattr(lut, "device", None) or "DEVICE", "--lut",
                        lut.source, "--classes", str(own))
    return (f"the calibration of {lut.source} measured {head}-class subnets; the {own}-class head is predicted by "
            f"the LUT's difference between the two heads, which understates it inside a network: for the head you "
            f"ship, calibrate with it (`{fix}`)")


def _own_classes(lut: "LutView") -> int | None:
    """The classifier head the LUT predicts (its timed record's)."""
    timed = getattr(lut, "timed", None)
    return timed.classes if timed is not None else None


def _head_ms(spec: SubnetSpec, lut: "LutView", classes: int | None) -> float:
    return sum(lut.entry(op.key, spec.r).median_ms for op in subnet_ops(spec, classes) if op.kind == "Logits")


def features(spec: SubnetSpec, lut: "LutView", classes: int | None = None) -> list[float]:
    """LUT-derived features of a subnet (see :func:`feature_names`), with the classifier head of ``classes`` outputs
    (default: the one the LUT's calibration measured, else the LUT's own); raises the LUT's
    :class:`LutMissError` naming the keys it lacks."""
    sp = get_space(spec.space)
    ops = subnet_ops(spec, classes if classes is not None else calibration_classes(lut))
    missing = list(dict.fromkeys(op.key for op in ops if op.key not in lut.entries))
    if missing:
        raise LutMissError(lut.miss_message(missing, [spec.r]))
    ms = lambda op: lut.entry(op.key, spec.r).median_ms  # per-resolution figure where the LUT has one
    stage_ms = [0.0] * sp.n_stages
    fixed_ops, block_ops = split_ops(spec, ops)
    fixed = sum(ms(op) for op in fixed_ops)
    for (i, s, b), op in zip(spec.active_blocks(), block_ops):
        stage_ms[s] += ms(op)
    return _assemble(fixed, stage_ms, len(spec.active_blocks()), spec.r)[0].tolist()


def apply_calibration(calibration: Mapping[str, Any], spec: SubnetSpec, lut: "LutView") -> float:
    """Calibrated latency (ms) of ``spec``, from the stored plain parameters (no scikit-learn needed): the scalar
    form (:func:`batch_predictor` is the batch form)."""
    import numpy as np
    ridge = Ridge.of(calibration, lut.space, lut.source)
    cal_classes = calibration_classes(lut, calibration)
    y = float(ridge(np.asarray([features(spec, lut, cal_classes)]))[0])
    own = _own_classes(lut)
    if own is not None and own != cal_classes:   # another head: its LUT difference
        y += _head_ms(spec, lut, own) - _head_ms(spec, lut, cal_classes)
    return y


def predict_ms(lut: "LutView", spec: SubnetSpec, calibrated: bool = True) -> float:
    """Predicted latency (ms) of one subnet: the LUT's calibration applied (if it holds one and ``calibrated``),
    else the plain LUT sum; a subnet whose keys the LUT lacks is refused with the LUT's one message."""
    s = lut.lut_sum_ms(spec)  # checks space and coverage with the LUT's message
    if calibrated and lut.calibration:
        return apply_calibration(lut.calibration, spec, lut)
    return s


def _lut_table(lut: "LutView", resolutions: Sequence[int] | None, classes: int | None) -> BlockTable:
    """The LUT's per-block table at ``resolutions`` (default: those it covers completely), refusing resolutions
    that lack keys with the LUT's one message (naming them all)."""
    gaps = lut.gaps(resolutions) if resolutions is not None and hasattr(lut, "gaps") else {}
    if gaps:
        raise LutMissError(lut.miss_message([k for m in gaps.values() for k in m], gaps))
    return BlockTable.from_lut(lut, resolutions, classes)


def batch_predictor(lut: "LutView", calibrated: bool = True,
                    resolutions: Sequence[int] | None = None) -> Callable[[ArchArrays], "np.ndarray"]:
    """The batch form of :func:`predict_ms`: a function of :class:`ArchArrays` giving each subnet's predicted ms
    (calibrated when the LUT holds a calibration and ``calibrated``, else the LUT sum), vectorised over per-block
    tables of ``resolutions`` (default: the LUT's complete ones).  A subnet at another resolution is refused with
    the LUT's miss message where the LUT lacks its keys."""
    cal = lut.calibration if calibrated else None
    own = _own_classes(lut)
    table = _lut_table(lut, resolutions, own)
    if not cal:
        return _covered(lut, table, table.total)
    ridge = Ridge.of(cal, lut.space, lut.source)
    cal_classes = calibration_classes(lut, cal)
    cal_table = table if cal_classes == own else _lut_table(lut, resolutions, cal_classes)

    def predict(a: ArchArrays) -> "np.ndarray":
        fixed = cal_table.fixed_cost(a)       # the head the calibration measured; another one: its difference
        y = ridge(_assemble(fixed, table.per_stage(a), a.d.sum(axis=1), a.r))
        return y if cal_table is table else y + (table.fixed_cost(a) - fixed)
    return _covered(lut, table, predict)


def _covered(lut: "LutView", table: BlockTable,
             fn: Callable[[ArchArrays], "np.ndarray"]) -> Callable[[ArchArrays], "np.ndarray"]:
    """``fn``, refusing a subnet at a resolution ``table`` lacks with the LUT's own miss message (the scalar form's)
    where the LUT lacks that subnet's keys (else with the table's message)."""
    def on_arrays(a: ArchArrays) -> "np.ndarray":
        try:
            return fn(a)
        except LutError:
            raise
        except OfaProfileError:
            res = set(table.resolutions)
            off = [i for i, r in enumerate(a.r.tolist()) if int(r) not in res]
            if off:
                lut.lut_sum_ms(a.take([off[0]]).to_specs()[0])   # the LUT's miss message, if it lacks the keys
            raise
    return on_arrays


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
