"""The versioned LUT JSON format: the records (:class:`LutEntry`, :class:`Lut`, its LUT-sum prediction), their
checks against the schema and the space, and reading and writing the JSON text.

A LUT holds one latency figure per block configuration (LUT key, OFA's grammar: see
:mod:`ofa_profile.ops`) for one space on one device and runtime.  On disk it is JSON::

    {"format": "ofa-profile-lut", "schema_version": 1, "space": "ofa-mbv3-w1.0",
     "device": "cpu-ort", "runtime": "onnxruntime", "batch_size": 1, "num_threads": 1,
     "resolutions": [160, 224], "created_utc": "2026-01-01T00:00:00Z",
     "timed": {"graph": "ofa-profile", "classes": 1000, "precision": "fp32", "threads": 1},
     "fingerprint": {...}, "provenance": {"tool": "ofa-profile 0.1.0", "seed": 0,
     "timing": {...}, "source": "measured"}, "calibration": null | {...},
     "entries": {KEY: {"median_ms": .., "iqr_ms": .., "count": .., "mean_ms"?, "std_ms"?, "raw_ms"?}},
     "resolution_entries"?: {"176": {KEY: {...}}}}

validated on load against ``schemas/lut.schema.json`` (JSON Schema 2020-12) and
against the space: every key must parse (:func:`ofa_profile.ops.parse_key`) and be an
op of the declared space.  ``resolution_entries`` is optional: figures that apply at
one resolution only.  ``timed`` (:class:`ofa_profile.timed.Timed`: graph flavour, classifier head, precision,
threads) says what the figures time; a LUT without it reads as the defaults (the project's graph, the space's
head, fp32, ``num_threads``; OFA's graph for an imported OFA table), and its ``threads`` must equal
``num_threads``.  OFA's own tables (one YAML file per resolution) measured an op
shared by several resolutions once per file; an import keeps each file's figure there
(so OFA's per-resolution sums and a YAML re-export are exact) and the count-weighted
pooled figure in ``entries``.  A measured LUT has none.

Every load failure is an :class:`LutError` with one line naming the file and the fix.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
import types
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from . import __version__
from .argsafety import shell_command
from .atomic import write_target
from .calibration import check_calibration, predict_ms as _predict_ms
from .errors import LutError, LutMissError  # defined in errors: the calibration model below lut raises them too
from .inputs import MAX_BYTES, InputFileError, read_input
from .jsonio import JsonInputError, loads_strict, plain
from .ops import enumerate_ops, grammar, ops_at_resolution, parse_key, subnet_ops
from .paths import schemas_dir
from .space import SPACES, SpaceError, SubnetSpec, get_space
from .timed import Timed, TimedError
from .timing import MAX_BATCH_SIZE, MAX_COUNT

__all__ = ["FORMAT", "SCHEMA_VERSION", "IQR_PER_STD", "LutError", "LutMissError", "LutEntry", "Lut", "save_lut"]

FORMAT = "ofa-profile-lut"
SCHEMA_VERSION = 1
#: IQR of a normal distribution in standard deviations: iqr_ms of an imported OFA entry = 1.349 * std (an estimate).
IQR_PER_STD = 1.349
_MAX_KEYS_SHOWN = 3


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _tool() -> str:
    return f"ofa-profile {__version__}"


def _finite_nonneg(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise LutError(f"LUT entry field {name}={v!r} must be a finite number >= 0")
    return float(v)


@dataclass(frozen=True)
class LutEntry:
    """Latency of one op: median and IQR of ``count`` timed runs (ms), optionally mean/std and the raw times."""
    median_ms: float
    iqr_ms: float
    count: int
    mean_ms: float | None = None
    std_ms: float | None = None
    raw_ms: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "median_ms", _finite_nonneg("median_ms", self.median_ms))
        object.__setattr__(self, "iqr_ms", _finite_nonneg("iqr_ms", self.iqr_ms))
        if isinstance(self.count, bool) or not isinstance(self.count, int) or not 1 <= self.count <= MAX_COUNT:
            raise LutError(f"LUT entry field count={str(self.count)[:40]} must be an integer in 1..{MAX_COUNT:.0e}")
        for f in ("mean_ms", "std_ms"):
            v = getattr(self, f)
            if v is not None:
                object.__setattr__(self, f, _finite_nonneg(f, v))
        if self.raw_ms is not None:
            object.__setattr__(self, "raw_ms", tuple(_finite_nonneg("raw_ms[]", x) for x in self.raw_ms))

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"median_ms": self.median_ms, "iqr_ms": self.iqr_ms, "count": self.count}
        if self.mean_ms is not None:
            d["mean_ms"] = self.mean_ms
        if self.std_ms is not None:
            d["std_ms"] = self.std_ms
        if self.raw_ms is not None:
            d["raw_ms"] = list(self.raw_ms)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "LutEntry":
        raw = d.get("raw_ms")
        return cls(median_ms=d["median_ms"], iqr_ms=d["iqr_ms"], count=d["count"], mean_ms=d.get("mean_ms"),
                   std_ms=d.get("std_ms"), raw_ms=tuple(raw) if raw is not None else None)


# -- space checks (cached per space; nothing is computed at import time) -------------------------

@lru_cache(maxsize=None)
def _space_keys(space: str) -> frozenset[str]:
    """Every key of the space at every resolution a LUT may hold (its run resolutions, above 224 too)."""
    return frozenset(op.key for _, op in enumerate_ops(space, get_space(space).run_resolutions))


@lru_cache(maxsize=None)
def _keys_at(space: str, r: int, classes: int | None = None) -> tuple[str, ...]:
    return tuple(op.key for op in ops_at_resolution(space, r, classes))


def _is_head_key(key: str, space: str) -> bool:
    """A classifier-head key of the space with another number of outputs than its default (a LUT may hold the head
    of every class count it was measured with: ``measure --classes N``)."""
    sp = get_space(space)
    try:
        op = parse_key(key, sp.family)
    except SpaceError:
        return False
    return op.kind == "Logits" and op.out_ch >= 1 and replace(op, out_ch=sp.n_classes).key in _space_keys(space)


def _bad_key_message(key: str, space: str, where: str) -> str:
    """Why ``key`` is not an op of ``space`` (one line)."""
    fam = get_space(space).family
    try:
        parse_key(key, fam)
    except SpaceError:
        what = "an OFA MobileNetV3" if fam == "mbv3" else f"a {fam} ({space})"
        return (f"{where}: key {key!r} is not {what} LUT key (expected e.g. '{grammar(fam).example}'); fix or remove "
                f"that entry")
    others = [n for n in SPACES if n != space and not SPACES[n].compound and key in _space_keys(n)]
    if others:
        return (f"{where}: key {key!r} belongs to space {others[0]} (other channel widths), but the LUT declares "
                f"space {space}; fix the 'space' field or use a LUT measured for {space}")
    return (f"{where}: key {key!r} is not a block of space {space} (no subnet at its resolutions "
            f"{get_space(space).resolution_text()} has it); fix or remove that entry")


def _freeze(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return types.MappingProxyType({str(k): _freeze(v) for k, v in obj.items()})
    if isinstance(obj, (list, tuple)):
        return tuple(_freeze(v) for v in obj)
    return obj


_plain = plain   # frozen structures back to JSON-ready dicts and lists


def _shorten(keys: Sequence[str]) -> str:
    s = ", ".join(keys[:_MAX_KEYS_SHOWN])
    return s + (f" and {len(keys) - _MAX_KEYS_SHOWN} more" if len(keys) > _MAX_KEYS_SHOWN else "")


@dataclass(frozen=True)
class Lut:
    """A latency LUT: one :class:`LutEntry` per op key of ``space`` (immutable; build new ones with ``with_*``).

    ``resolutions`` are those the LUT covers completely.  ``resolution_entries`` (optional,
    ``{r: {key: LutEntry}}``) override ``entries`` at one resolution (imported OFA tables).
    ``source`` (the file it came from) is used in messages only.
    """
    space: str
    device: str
    runtime: str
    entries: Mapping[str, LutEntry]
    resolutions: tuple[int, ...] = ()
    batch_size: int = 1
    num_threads: int | None = 1
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    calibration: Mapping[str, Any] | None = None
    created_utc: str = field(default_factory=_utc_now)
    schema_version: int = SCHEMA_VERSION
    resolution_entries: Mapping[int, Mapping[str, LutEntry]] = field(default_factory=dict)
    timed: Timed | None = None       # None: the defaults of the space and num_threads (see the module's text)
    source: str = field(default="<memory>", compare=False, repr=False)

    def __post_init__(self) -> None:
        src = self.source
        try:
            sp = get_space(self.space)
        except SpaceError as exc:
            raise LutError(f"{src}: {exc}") from None
        object.__setattr__(self, "space", sp.name)
        ents: dict[str, LutEntry] = {}
        for k, e in self.entries.items():
            ents[k] = e if isinstance(e, LutEntry) else LutEntry.from_json(e)
        object.__setattr__(self, "entries", types.MappingProxyType(ents))
        res = tuple(sorted({int(r) for r in self.resolutions}))
        bad_r = [r for r in res if r not in sp.run_resolutions]
        if bad_r:
            raise LutError(f"{src}: resolution(s) {bad_r} are not in space {sp.name} ({sp.resolution_text()}); fix "
                           f"the 'resolutions' field")
        object.__setattr__(self, "resolutions", res)
        self._set_timed(sp.name)
        valid = _space_keys(sp.name)
        for k in ents:
            if k not in valid and not _is_head_key(k, sp.name):
                raise LutError(_bad_key_message(k, sp.name, f"LUT {src}"))
        per: dict[int, types.MappingProxyType] = {}
        for r, m in self.resolution_entries.items():
            ri = int(r)
            if ri not in sp.run_resolutions:  # one not in 'resolutions' is partly covered (an import --allow-partial)
                raise LutError(f"LUT {src}: resolution_entries has resolution {ri}, which is not in space "
                               f"{sp.name} ({sp.resolution_text()}); drop those entries")
            d: dict[str, LutEntry] = {}
            for k, e in m.items():
                if k not in ents:
                    if k not in valid and not _is_head_key(k, sp.name):
                        raise LutError(_bad_key_message(k, sp.name, f"LUT {src} (resolution_entries {ri})"))
                    raise LutError(f"LUT {src}: resolution_entries[{ri}] has key {k!r} that 'entries' lacks; "
                                   f"add it to entries (the pooled figure) or drop it")
                d[k] = e if isinstance(e, LutEntry) else LutEntry.from_json(e)
            if d:
                per[ri] = types.MappingProxyType(d)
        object.__setattr__(self, "resolution_entries", types.MappingProxyType(dict(sorted(per.items()))))
        object.__setattr__(self, "fingerprint", _freeze(self.fingerprint or {}))
        object.__setattr__(self, "provenance", _freeze(self.provenance or {}))
        if self.calibration is not None:
            object.__setattr__(self, "calibration", _freeze(self.calibration))
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or \
                not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise LutError(f"{src}: batch_size={str(self.batch_size)[:40]} must be an integer in 1..{MAX_BATCH_SIZE}")

    def _set_timed(self, space: str) -> None:
        """The record of what the LUT times (the defaults where none is given), checked against num_threads."""
        src = self.source
        if self.timed is None:
            prov = self.provenance or {}
            imported = str(prov.get("source", "")).startswith("imported from OFA")
            try:
                object.__setattr__(self, "timed", Timed.default_for(space, threads=self.num_threads,
                                                                    graph="ofa" if imported else "ofa-profile"))
            except TimedError as exc:
                raise LutError(f"{src}: num_threads: {exc}") from None
        elif not isinstance(self.timed, Timed):
            raise LutError(f"{src}: timed must be a Timed record, not {type(self.timed).__name__}")
        elif self.timed.threads != self.num_threads:
            raise LutError(f"{src}: num_threads {self.num_threads} and timed.threads {self.timed.threads} disagree; "
                           f"they name the same setting: make them equal")
        cal_timed = (self.calibration or {}).get("report", {}).get("timed") \
            if isinstance((self.calibration or {}).get("report"), Mapping) else None
        if cal_timed is not None:      # a calibration fitted on subnets timed otherwise than the blocks: no mixing
            try:                       # (but the head: a prediction for another head adds the two heads' difference)
                cal_rec = Timed.from_json(cal_timed, "calibration.report.timed").with_(classes=self.timed.classes)
                self.timed.require_same(cal_rec, f"{src}: its blocks",
                                        "its calibration's subnets", "calibrate it again (ofa-profile calibrate)")
            except TimedError as exc:
                raise LutError(str(exc)) from None

    # -- lookups ----------------------------------------------------------------------------
    def entry(self, key: str, r: int | None = None) -> LutEntry:
        """The figure of ``key`` (at resolution ``r`` where the LUT has a per-resolution one)."""
        if r is not None:
            per = self.resolution_entries.get(int(r))
            if per is not None and key in per:
                return per[key]
        try:
            return self.entries[key]
        except KeyError:
            raise LutMissError(self.miss_message([key], [r] if r is not None else [])) from None

    def _check_space(self, spec: SubnetSpec) -> None:
        if not isinstance(spec, SubnetSpec):
            raise LutError(f"expected a SubnetSpec, got {type(spec).__name__}")
        if spec.space != self.space and get_space(spec.space).macro() != get_space(self.space).macro():
            raise LutError(f"the arch is for space {spec.space} but LUT {self.source} is for space {self.space} "
                           f"(other channel widths: stem {get_space(spec.space).stem_ch} vs "
                           f"{get_space(self.space).stem_ch}); use a LUT of {spec.space}, or give the arch's space "
                           f"as {self.space} (--space) if it was written for that space")

    def miss_message(self, missing: Sequence[str], resolutions: Iterable[int]) -> str:
        """The one message for keys a subnet needs that the LUT lacks: which, where, and the command that measures
        them (every prediction path raises it: :func:`ofa_profile.calibration.predict_ms` and its batch form)."""
        res = sorted(set(resolutions))
        rtxt = ",".join(map(str, res)) if res else "the needed resolution(s)"
        have = ",".join(map(str, self.resolutions)) or "none completely"
        out = () if self.source.startswith("<") else ("--out", self.source)
        return (f"LUT {self.source} ({self.space}, device {self.device}) lacks {len(missing)} key(s) at r={rtxt}: "
                f"{_shorten(list(missing))}; it covers resolutions {have}: measure the missing ones, e.g. "
                f"`{shell_command('ofa-profile', 'measure', '--device', self.device, '--resolutions', rtxt, *out)}`")

    def ops(self, spec: SubnetSpec, classes: int | None = None) -> list:
        """The ops of ``spec`` with this LUT's classifier head (or one of ``classes`` outputs)."""
        return subnet_ops(spec, self.timed.classes if classes is None else classes)

    def head_classes(self) -> list[int]:
        """The class counts whose classifier head the LUT holds (its own first)."""
        sp = get_space(self.space)
        other = sorted({parse_key(k, sp.family).out_ch for k in self.entries if _is_head_key(k, self.space)}
                       - {self.timed.classes})
        return [self.timed.classes, *other]

    def with_classes(self, classes: int | None) -> "Lut":
        """This LUT predicting subnets with a classifier head of ``classes`` outputs (None: its own); the head's
        figure must be in the LUT (:class:`LutMissError` naming the ``measure --classes`` that adds it)."""
        if classes is None or classes == self.timed.classes:
            return self
        sp = get_space(self.space)
        res = self.resolutions or sp.resolutions
        need = [op.key for op in ops_at_resolution(sp, res[0], classes) if op.kind == "Logits"]
        if any(k not in self.entries for k in need):
            out = "" if self.source.startswith("<") else f" --out {self.source}"
            raise LutMissError(f"LUT {self.source} holds no {classes}-class classifier head (it holds "
                               f"{', '.join(map(str, self.head_classes()))}); measure it (one op): `ofa-profile measure "
                               f"--device {self.device} --classes {classes}{out}`")
        return replace(self, timed=self.timed.with_(classes=int(classes)))

    def missing_keys(self, spec_or_specs: SubnetSpec | Iterable[SubnetSpec]) -> list[str]:
        """Keys the subnet(s) need that the LUT lacks (unique, first-seen order)."""
        specs = [spec_or_specs] if isinstance(spec_or_specs, SubnetSpec) else list(spec_or_specs)
        out: dict[str, None] = {}
        for s in specs:
            self._check_space(s)
            for op in self.ops(s):
                if op.key not in self.entries:
                    out[op.key] = None
        return list(out)

    def lut_sum_ms(self, spec: SubnetSpec, classes: int | None = None) -> float:
        """OFA's LUT sum: the median_ms of every op of the subnet, with the LUT's classifier head (or one of
        ``classes`` outputs); raises :class:`LutMissError` on a miss."""
        self._check_space(spec)
        ops = self.ops(spec, classes)
        missing = list(dict.fromkeys(op.key for op in ops if op.key not in self.entries))
        if missing:
            raise LutMissError(self.miss_message(missing, [spec.r]))
        per = self.resolution_entries.get(spec.r, {})
        return float(sum((per.get(op.key) or self.entries[op.key]).median_ms for op in ops))

    def _check_sums(self) -> None:
        """Refuse (one line) a LUT whose plain sum for the space's smallest subnet, at the smallest and largest
        resolution it lists, is not a positive finite latency (every median 0, or ones summing to infinity): it
        would rank every subnet as free, and a search would pick the largest under any budget."""
        if not self.resolutions:
            return
        sp = get_space(self.space)
        for r in sorted({min(self.resolutions), max(self.resolutions)}):
            try:
                s = self.lut_sum_ms(sp.smallest(r))
            except LutMissError:
                continue  # a listed resolution lacking keys: `lut validate` names them
            if not (math.isfinite(s) and s > 0):
                raise LutError(f"LUT {self.source}: its entries sum to {s:.6g} ms for the space's smallest subnet "
                               f"at r={r} (a latency must be a positive finite number); re-measure it with "
                               f"`ofa-profile measure --fresh`")

    def predict_ms(self, spec: SubnetSpec, calibrated: bool = True) -> float:
        """Predicted latency: the stored calibration applied to the subnet if any (and wanted), else the LUT sum
        (:func:`ofa_profile.calibration.predict_ms`; its batch form, :func:`~ofa_profile.calibration.batch_predictor`,
        is what the search calls)."""
        return _predict_ms(self, spec, calibrated)

    def coverage(self) -> dict[int, list[str]]:
        """Keys still missing at each resolution the LUT covers or has begun (holds that resolution's stem key,
        or per-resolution figures: a partial import).

        Head ops shared by all resolutions do not make a resolution count as begun.
        """
        out: dict[int, list[str]] = {}
        for r in get_space(self.space).run_resolutions:
            keys = _keys_at(self.space, r, self.timed.classes)  # keys[0] is the stem Conv, unique to r
            if r in self.resolutions or keys[0] in self.entries or r in self.resolution_entries:
                out[r] = [k for k in keys if k not in self.entries]
        return out

    def gaps(self, resolutions: Iterable[int] | None = None) -> dict[int, list[str]]:
        """``{r: missing keys}`` of the resolutions (default: all the LUT has begun or lists) that lack keys."""
        cov = self.coverage()
        want = cov if resolutions is None else {int(r): None for r in resolutions}
        out: dict[int, list[str]] = {}
        for r in want:
            miss = cov[r] if r in cov else [k for k in _keys_at(self.space, r, self.timed.classes)
                                            if k not in self.entries]
            if miss:
                out[r] = miss
        return out

    def gaps_text(self, gaps: Mapping[int, Sequence[str]]) -> str:
        """One phrase naming the missing keys: ``r=192: 45 key(s) missing, e.g. K1, K2, K3 and 42 more; ...``."""
        return "; ".join(f"r={r}: {len(m)} key(s) missing, e.g. {_shorten(list(m))}" for r, m in sorted(gaps.items()))

    # -- copies -----------------------------------------------------------------------------
    def with_entries(self, new: Mapping[str, LutEntry]) -> "Lut":
        """A copy whose entries are exactly ``new`` (merge with ``{**lut.entries, **more}``).

        Per-resolution figures are kept only for keys whose entry is unchanged.
        """
        per = {r: {k: e for k, e in m.items() if k in new and new[k] == self.entries.get(k)}
               for r, m in self.resolution_entries.items()}
        return replace(self, entries=dict(new), resolution_entries={r: m for r, m in per.items() if m})

    def with_calibration(self, cal: Mapping[str, Any] | None) -> "Lut":
        return replace(self, calibration=cal)

    # -- JSON edge --------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        prov = _plain(self.provenance)
        if prov.get("tool") in (None, "ofa-profile"):
            prov["tool"] = _tool()
        obj: dict[str, Any] = {
            "format": FORMAT, "schema_version": self.schema_version, "space": self.space, "device": self.device,
            "runtime": self.runtime, "batch_size": self.batch_size, "num_threads": self.num_threads,
            "resolutions": list(self.resolutions), "created_utc": self.created_utc,
            "timed": self.timed.to_json() if self.timed is not None else None,
            "fingerprint": _plain(self.fingerprint), "provenance": prov,
            "calibration": _plain(self.calibration) if self.calibration is not None else None,
            "entries": {k: e.to_json() for k, e in self.entries.items()},
        }
        if self.resolution_entries:
            obj["resolution_entries"] = {str(r): {k: e.to_json() for k, e in m.items()}
                                         for r, m in self.resolution_entries.items()}
        return obj

    @classmethod
    def from_json(cls, obj: Any, source: str = "<memory>") -> "Lut":
        """Build a LUT from its JSON object, validating format, version, schema and keys."""
        _check_header(obj, source)
        _schema_validate(obj, source)
        try:
            timed = Timed.from_json(obj["timed"], "timed") if "timed" in obj else None
        except TimedError as exc:
            raise LutError(f"LUT {source}: {exc}; fix that field or re-create the LUT") from None
        try:
            lut = cls(space=obj["space"], device=obj["device"], runtime=obj["runtime"],
                       entries={k: LutEntry.from_json(e) for k, e in obj["entries"].items()},
                       resolutions=tuple(obj["resolutions"]), batch_size=obj["batch_size"],
                       num_threads=obj["num_threads"], fingerprint=obj["fingerprint"], provenance=obj["provenance"],
                       calibration=obj["calibration"], created_utc=obj["created_utc"],
                       schema_version=obj["schema_version"],
                       resolution_entries={int(r): {k: LutEntry.from_json(e) for k, e in m.items()}
                                           for r, m in obj.get("resolution_entries", {}).items()},
                       timed=timed, source=source)
        except LutError as exc:
            msg = str(exc)
            raise LutError(msg if source in msg else f"LUT {source}: {msg}") from None
        lut._check_sums()
        if lut.calibration:
            check_calibration(lut)  # a calibration predicting a negative or non-finite latency is refused
        return lut


# -- validation --------------------------------------------------------------------------------

def _check_header(obj: Any, source: str) -> None:
    if not isinstance(obj, dict):
        raise LutError(f"{source} is not an ofa-profile LUT: its top level is a JSON {type(obj).__name__}, "
                       f"not an object; pass a LUT file written by `ofa-profile measure` or `lut import-ofa`")
    fmt = obj.get("format")
    if fmt != FORMAT:
        what = "has no 'format' field" if fmt is None else f"has format {fmt!r}"
        raise LutError(f"{source} {what}, so it is not an ofa-profile LUT (format {FORMAT!r}); pass a LUT file "
                       f"(OFA YAML tables: convert them with `ofa-profile lut import-ofa`)")
    v = obj.get("schema_version")
    if isinstance(v, bool) or not isinstance(v, int):
        raise LutError(f"{source}: schema_version {v!r} is not an integer; this ofa-profile reads LUT "
                       f"schema_version {SCHEMA_VERSION}")
    if v > SCHEMA_VERSION:
        raise LutError(f"{source} has LUT schema_version {v}, written by a newer ofa-profile; this ofa-profile "
                       f"reads schema_version {SCHEMA_VERSION}: upgrade ofa-profile to read it")
    if v != SCHEMA_VERSION:
        raise LutError(f"{source} has unknown LUT schema_version {v}; this ofa-profile reads schema_version "
                       f"{SCHEMA_VERSION}; re-create the LUT with this version")


@lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads((schemas_dir() / "lut.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def _ok_raw(v: Any) -> bool:
    return (isinstance(v, list) and len(v) > 0
            and all(type(x) in (float, int) and x >= 0 for x in v))


def _schema_view(obj: Any) -> Any:
    """``obj`` with every well-formed ``raw_ms`` list cut to its first value (checked here, in bulk, first).

    Equivalent for the schema (raw_ms: non-empty array of numbers >= 0) and ~5x faster on a
    full LUT; malformed lists are left whole so the validator names their exact path.
    """
    if not isinstance(obj, dict):
        return obj

    def cut(entries: Any) -> Any:
        if not isinstance(entries, dict):
            return entries
        out = {}
        for k, e in entries.items():
            if isinstance(e, dict) and "raw_ms" in e and _ok_raw(e["raw_ms"]):
                e = {**e, "raw_ms": e["raw_ms"][:1]}
            out[k] = e
        return out

    view = dict(obj)
    view["entries"] = cut(obj.get("entries"))
    if isinstance(obj.get("resolution_entries"), dict):
        view["resolution_entries"] = {r: cut(m) for r, m in obj["resolution_entries"].items()}
    return view


def _schema_validate(obj: Any, source: str) -> None:
    errors = list(_validator().iter_errors(_schema_view(obj)))
    if not errors:
        return
    err = min(errors, key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path]))
    msg = " ".join(str(err.message).split())
    if len(msg) > 160:
        msg = msg[:157] + "..."
    raise LutError(f"{source} violates the LUT schema at {err.json_path}: {msg}; fix that field or re-create "
                   f"the LUT")


# -- reading and writing the text -------------------------------------------------------------

def _read_text(p: Path, what: str = "LUT file") -> str:
    if not p.exists():
        raise LutError(f"{what} {p} does not exist; check the path (build a LUT with `ofa-profile measure "
                       f"--device NAME --out {shell_command(p.name)}`)")
    if p.is_dir():
        raise LutError(f"{what} {p} is a folder, not a file; pass a LUT .json file (folders of OFA YAML tables: "
                       f"`{shell_command('ofa-profile', 'lut', 'import-ofa', p)} --out LUT.json`)")
    try:
        data = read_input(p, what, MAX_BYTES["yaml" if what == "OFA table" else "lut"])
    except InputFileError as exc:
        raise LutError(f"{exc}; pass a LUT .json file" + ("" if "cannot read" not in str(exc) else
                                                          " (check its permissions)")) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LutError(f"{what} {p} is not a text file (not UTF-8 JSON or YAML); pass a LUT .json file") from None
    if not text.strip():
        raise LutError(f"{what} {p} is empty (an interrupted copy?); re-create or restore it")
    return text


def _parse_json(text: str, p: Path) -> Any:
    """Strict JSON (:func:`ofa_profile.jsonio.loads_strict`: no NaN/Infinity/overflow, no nesting deep enough to
    exhaust the stack), with a LUT's own wording for a truncated file."""
    try:
        return loads_strict(text)
    except JsonInputError as exc:
        why = str(exc)
    if why.startswith("is not valid JSON"):
        try:  # the nesting is known to be shallow here: re-parse only for the error position
            json.loads(text)
        except json.JSONDecodeError as exc:
            body = text.rstrip()
            if exc.pos >= len(body) or not body.endswith("}"):
                raise LutError(f"LUT file {p} is truncated (its JSON ends early at line {exc.lineno} column "
                               f"{exc.colno}); re-create it or restore a complete copy") from None
        except (ValueError, RecursionError):
            pass
        raise LutError(f"LUT file {p} {why}; fix it or re-create it") from None
    if why.startswith("holds ") and "which is not JSON" in why:  # NaN / Infinity: the message tests know
        name = why.split()[1].rstrip(",")
        raise LutError(f"LUT file {p} holds a non-finite number {name} (JSON has no NaN/Infinity); re-measure "
                       f"those entries") from None
    if "overflows" in why:
        raise LutError(f"LUT file {p} {why}; re-measure those entries") from None
    raise LutError(f"LUT file {p} {why}; pass a LUT written by `ofa-profile measure` or `lut import-ofa`") from None


def _parse_yaml(text: str, p: Path) -> Any:
    import yaml
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except ValueError as exc:    # e.g. an integer of 5,000 digits (Python's int-parsing limit), out of range
        raise LutError(f"{p} holds a value YAML cannot read as a number ({str(exc).splitlines()[0][:80]}); it is "
                       f"not an OFA table") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise LutError(f"{p} is neither JSON nor valid YAML ({getattr(exc, 'problem', None) or 'parse error'}"
                       f"{where}); pass an ofa-profile LUT .json or an OFA <r>_lookup_table.yaml") from None


def _pretty(v: Any, ind: str) -> str:
    """Indented JSON with lists of scalars kept on one line."""
    if isinstance(v, Mapping) and v:
        rows = [f"{ind}  {json.dumps(str(k))}: {_pretty(x, ind + '  ')}" for k, x in v.items()]
        return "{\n" + ",\n".join(rows) + f"\n{ind}}}"
    if isinstance(v, (list, tuple)) and any(isinstance(x, (Mapping, list, tuple)) for x in v):
        return "[\n" + ",\n".join(f"{ind}  {_pretty(x, ind + '  ')}" for x in v) + f"\n{ind}]"
    return json.dumps(v, allow_nan=False, separators=(", ", ": "))


def _dumps(obj: Mapping[str, Any]) -> str:
    """Readable JSON: header fields indented, one line per entry."""
    def block(d: Mapping[str, Any], ind: str) -> str:
        if not d:
            return "{}"
        rows = [f'{ind}  {json.dumps(k)}: {json.dumps(v, allow_nan=False, separators=(", ", ": "))}'
                for k, v in d.items()]
        return "{\n" + ",\n".join(rows) + f"\n{ind}}}"

    parts = []
    for k, v in obj.items():
        if k == "entries":
            s = block(v, "  ")
        elif k == "resolution_entries":
            s = "{\n" + ",\n".join(f'    {json.dumps(r)}: {block(m, "    ")}' for r, m in v.items()) + "\n  }"
        else:
            s = _pretty(v, "  ")
        parts.append(f"  {json.dumps(k)}: {s}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _atomic_write(path: Path, data: bytes, what: str) -> None:
    path = write_target(path)      # a symlinked --out is written through: its target is replaced, the link stays
    parent = path.parent
    if not parent.is_dir():
        raise LutError(f"cannot write {what} {path}: folder {parent} does not exist; create it or choose another path")
    if path.is_dir():
        raise LutError(f"cannot write {what} {path}: it is a folder; choose a file path")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shipped LUT is read by everyone
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise LutError(f"cannot write {what} {path}: {exc.strerror or exc}; check the folder") from None
        raise
    try:  # make the rename durable
        dfd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def save_lut(lut: Lut, path: str | Path) -> None:
    """Validate and write the LUT atomically: a reader sees the old file or the new one, never a partial one."""
    path = Path(path)
    if lut.calibration:
        check_calibration(lut)  # refused instead of saved: it would be refused on load
    obj = lut.to_json()
    _check_header(obj, str(path))
    _schema_validate(obj, f"LUT to be written to {path}")
    try:
        text = _dumps(obj)
    except (TypeError, ValueError) as exc:
        raise LutError(f"cannot write LUT {path}: a field is not JSON data ({exc}); fix the fingerprint, provenance "
                       f"or calibration") from None
    _atomic_write(path, text.encode("utf-8"), "LUT")
