"""The resumable LUT builder.

``measure_lut`` measures every op of a space at the chosen resolutions on one
device and writes a LUT JSON.  Each finished op is appended (and fsync'ed) to a
journal ``<out>.journal.jsonl`` beside the output, so a run killed at any moment
(SIGKILL included) resumes where it stopped; the LUT itself is only ever written
atomically.  An existing LUT at ``out`` is extended: only missing keys are measured.

With ``passes`` > 1 every missing op is measured in that many passes over the whole list (each pass after
the previous one, alternate passes in reverse order) and its entry is the pass with the lowest median: a
machine that slows down for seconds at a time (a shared VM) then inflates an entry only if it was slow in
every pass (the replicate policy of :mod:`ofa_profile.replicates`, shared with calibration and verification).
Each pass's figure is journalled, so a killed multi-pass run resumes too.

A *profiler* runs ops on a device (:class:`Profiler`); each transport of :mod:`ofa_profile.transports` provides
one (:class:`LocalProfiler` compiles each op with a runtime of this machine) and :func:`make_profiler` picks it
by the device's transport.  The three names are re-exported here.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .devices import DeviceSpec, plugin_options, with_transport_options
from .errors import OfaProfileError
from .jsonio import loads_strict
from .lut import Lut, LutEntry, LutError, load_lut, save_lut
from .lut_format import _space_keys
from .ops import Op, enumerate_ops, ops_at_resolution
from .quantize import int8_recipe
from .replicates import run_passes
from .space import get_space
from .timed import Timed, TimedError
from .timing import Measurement, TimingConfig, fingerprint_mismatch
# the profilers (local, adb, ssh) and the dispatch on a device's transport live in ofa_profile.transports
from .transports import LocalProfiler, Profiler, make_profiler, precision_available

__all__ = ["Profiler", "LocalProfiler", "make_profiler", "measure_lut", "JOURNAL_SUFFIX", "BlockNoise", "block_noise",
           "timing_summary", "NOISY_IQR_REL", "lut_space", "default_lut_stem", "DeviceMeasurement", "measure_device",
           "device_with_options"]

JOURNAL_SUFFIX = ".journal.jsonl"


# -- journal ------------------------------------------------------------------------------------

def _journal_path(out: Path) -> Path:
    return out.with_name(out.name + JOURNAL_SUFFIX)


class JournalError(OfaProfileError):
    """A journal that cannot be read back or written: one line naming the journal (and ``--fresh``)."""


_ENTRY_FIELDS = ("median_ms", "iqr_ms", "count", "mean_ms", "std_ms", "raw_ms")


def _journal_record(raw: bytes) -> tuple[str, Any]:
    """``("header", rec)`` or ``("entry", (key, pass, entry))`` of one journal line; ``ValueError`` with the
    reason when the line is not a record this module writes (strict JSON, the fields and types it writes)."""
    rec = loads_strict(raw)
    if not isinstance(rec, dict):
        raise ValueError(f"a JSON {type(rec).__name__}, not a record")
    if rec.get("type") == "header":
        for k in ("fingerprint", "timing"):
            if rec.get(k) is not None and not isinstance(rec[k], dict):
                raise ValueError(f"header field {k!r} is not an object")
        return "header", rec
    if rec.get("type") != "entry":
        raise ValueError(f"unknown record type {str(rec.get('type'))[:40]!r}")
    key, e, p = rec.get("key"), rec.get("entry"), rec.get("pass", 1)
    if not isinstance(key, str) or not key:
        raise ValueError("an entry without a key")
    if isinstance(p, bool) or not isinstance(p, int) or p < 1:
        raise ValueError(f"pass={str(p)[:20]} is not a pass number")
    if not isinstance(e, dict) or set(e) - set(_ENTRY_FIELDS) or not {"median_ms", "iqr_ms", "count"} <= set(e):
        raise ValueError(f"entry of {key[:60]} does not hold the fields {', '.join(_ENTRY_FIELDS)}")
    if isinstance(e.get("raw_ms"), list):
        e = {**e, "raw_ms": tuple(e["raw_ms"])}
    try:
        LutEntry(**e)                       # the LUT's own checks: finite, non-negative, count >= 1
    except (OfaProfileError, TypeError, ValueError) as exc:
        raise ValueError(f"entry of {key[:60]}: {exc}") from None
    return "entry", (key, p, rec["entry"])


def read_journal(path: Path, parse: Callable[[bytes], Any], fix: str) -> list[Any]:
    """The records of a journal (JSON lines), each as ``parse(line)`` returns it (``ValueError``: not a record).

    A torn last line (a run killed while writing it) is ignored; any other line that is not a record (garbage,
    a cut line in the middle, wrong types, NaN) is a :class:`JournalError` naming the journal, the line and
    ``fix`` (what to do): resuming on top of it could put wrong figures into the result."""
    if not path.exists() and not path.is_symlink():
        return []
    if not path.is_file():
        raise JournalError(f"journal {path} is not a regular file; {fix}")
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError as exc:
        raise JournalError(f"cannot read journal {path}: {exc.strerror or exc}") from None
    lines.pop()     # after the last newline: nothing, or a line torn by a kill mid-write (its work is done again)
    out = []
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            out.append(parse(raw))
        except ValueError as exc:
            raise JournalError(f"journal {path} line {n} is corrupt ({' '.join(str(exc).split())[:160]}); "
                               f"{fix}") from None
    return out


def _read_journal(path: Path) -> tuple[dict | None, dict[str, dict[int, dict]]]:
    """Header and entries (``{key: {pass: entry}}``; records without a pass are pass 1) of a journal
    (:func:`read_journal`: a torn last line is ignored, any other bad line is an error naming ``--fresh``)."""
    header: dict | None = None
    entries: dict[str, dict[int, dict]] = {}
    for kind, rec in read_journal(path, _journal_record, "pass --fresh to discard the journal and measure again"):
        if kind == "header":
            header = rec
        else:
            key, p, e = rec
            entries.setdefault(key, {})[p] = e
    return header, entries


class _Journal:
    """Appends records, one line each, written whole and fsync'ed. A write that fails (a full disk) is undone
    (the journal is cut back to its last complete line) and raised as one :class:`JournalError`."""

    def __init__(self, path: Path, header: Mapping[str, Any] | None):
        self.path = path
        self.f: Any = None
        try:
            self.f = open(path, "ab", buffering=0)      # unbuffered: a record is on disk or not at all
            size = os.fstat(self.f.fileno()).st_size
            if size:
                # a torn last line (killed mid-write) would swallow our next record: cut it off
                with open(path, "rb") as r:
                    cut = r.read().rfind(b"\n") + 1
                if cut != size:
                    os.ftruncate(self.f.fileno(), cut)
                    size = cut
        except OSError as exc:
            self.close()
            raise self._error(exc) from None
        if not size and header is not None:
            self._write({"type": "header", **header})

    def _error(self, exc: OSError) -> JournalError:
        why = exc.strerror or str(exc)
        return JournalError(f"cannot write journal {self.path}: {why}; the measurements journalled so far are "
                            f"kept: free space (or fix the folder) and rerun the same command")

    def _write(self, rec: Mapping[str, Any]) -> None:
        data = (json.dumps(rec, separators=(",", ":")) + "\n").encode()
        fd = self.f.fileno()
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                n = self.f.write(view)
                view = view[n:]
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, start)       # no half line for the next run to trip over
            except OSError:
                pass
            raise self._error(exc) from None

    def add(self, key: str, entry: Mapping[str, Any], pass_no: int = 1) -> None:
        rec: dict[str, Any] = {"type": "entry", "key": key, "entry": entry}
        if pass_no != 1:
            rec["pass"] = pass_no
        self._write(rec)

    write = _write

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


def entry_from_measurement(m: Measurement, keep_raw: bool = True) -> dict[str, Any]:
    e: dict[str, Any] = {"median_ms": round(m.median_ms, 6), "iqr_ms": round(m.iqr_ms, 6), "count": m.count,
                         "mean_ms": round(m.mean_ms, 6), "std_ms": round(m.std_ms, 6)}
    if keep_raw:
        e["raw_ms"] = [round(x, 5) for x in m.raw_ms]
    return e


@dataclass(frozen=True)
class MeasureResult:
    lut_path: Path
    measured: int        # new measurements this call (ops x passes)
    reused: int          # ops taken as they were (LUT or journal), not measured this call
    total: int           # ops of the space at the resolutions
    elapsed_s: float
    missing: int = 0     # ops still without all their passes (a --limit run: rerun to continue)

    @property
    def complete(self) -> bool:
        return self.missing == 0


def measure_lut(device: DeviceSpec, out: Path, resolutions: Sequence[int] | None = None, *, space: str | None = None,
                batch_size: int | None = None, seed: int = 0, progress: bool = True, fresh: bool = False,
                profiler: Profiler | None = None, limit: int | None = None, passes: int = 1,
                timed: Timed | None = None, graph: str = "ofa-profile", classes: int | None = None,
                precision: str = "fp32") -> MeasureResult:
    """Measure (or finish measuring) the LUT of ``device`` at ``resolutions`` into ``out``.

    ``timed``: what the blocks are timed as (graph flavour, head, precision, threads; default: ``graph``, the
    space's head, ``precision``, the device's threads); an existing LUT at ``out`` of another record is refused, except for
    the head: ``classes`` (or ``timed.classes``) adds that classifier head's op beside the LUT's own (default: the
    LUT's own head).

    ``limit`` stops after that many new measurements (the journal keeps them; a rerun goes on).
    ``passes``: measure each missing op that many times, in passes over the list; keep the lowest median.
    """
    t0 = time.perf_counter()
    if passes < 1:
        raise OfaProfileError(f"passes must be >= 1, got {passes}")
    sp = get_space(space or device.space)
    res = tuple(resolutions) if resolutions else sp.resolutions
    out = Path(out)
    given_classes = timed is not None or classes is not None
    timed = timed or Timed.default_for(sp.name, threads=device.num_threads, graph=graph).with_(precision=precision)
    if classes is not None:
        timed = timed.with_(classes=classes)
    timed = check_measurable(timed, device)
    if not out.parent.exists():
        raise OfaProfileError(f"output folder {out.parent} does not exist; create it or choose another --out")
    jpath = _journal_path(out)
    if fresh and jpath.exists():
        jpath.unlink()

    existing: dict[str, LutEntry] = {}
    base: Lut | None = None
    if out.exists() and not fresh:
        try:
            base = load_lut(out)
        except LutError as exc:
            raise OfaProfileError(f"{out} exists but is not a valid LUT ({exc}); move it away or pass --fresh") from None
        if base.space != sp.name or base.runtime != device.runtime:
            raise OfaProfileError(f"{out} holds a {base.space}/{base.runtime} LUT, not {sp.name}/{device.runtime}; "
                                  f"choose another --out")
        # another classifier head is added beside the LUT's own (its one op); anything else is another LUT
        base.timed.require_same(timed.with_(classes=base.timed.classes), f"LUT {out}", "this run",
                                "choose another --out or pass --fresh")
        if not given_classes:
            timed = timed.with_(classes=base.timed.classes)      # its own head, unless another is asked for
        existing = dict(base.entries)
    ops = [op for _, op in enumerate_ops(sp, res, classes=timed.classes)]

    own = profiler is None
    prof = profiler or make_profiler(device, batch_size=batch_size, precision=timed.precision)
    try:
        if prof.precision != timed.precision:
            raise TimedError(f"the profiler times {prof.precision} blocks but this run measures {timed.precision} "
                             f"ones (a bug in the caller)")
        prof.use_graph(timed.graph)
        fp = prof.fingerprint()
        header = {"device": device.name, "runtime": device.runtime, "space": sp.name, "seed": seed,
                  "batch_size": prof.batch_size, "num_threads": device.num_threads, "fingerprint": fp,
                  "timing": device.timing.as_dict(), "timed": timed.to_json()}
        jheader, jentries = _read_journal(jpath)
        foreign = sorted(set(jentries) - _space_keys(sp.name))
        if foreign:
            raise JournalError(f"journal {jpath} holds {len(foreign)} entr{'y' if len(foreign) == 1 else 'ies'} whose "
                               f"key is no block of space {sp.name} (e.g. {foreign[0][:80]!r}); pass --fresh to "
                               f"discard the journal and measure again")
        if jheader is not None:
            bad = [k for k in ("device", "runtime", "space", "seed", "batch_size", "num_threads")
                   if jheader.get(k) != header[k]]
            jtimed = jheader.get("timed", Timed.default_for(sp.name, threads=jheader.get("num_threads")).to_json())
            if {**jtimed, "classes": 0} != {**header["timed"], "classes": 0}:     # entries of any head may mix
                bad.append(f"timed: {jtimed} != {header['timed']}")
            bad += fingerprint_mismatch(jheader.get("fingerprint", {}), fp)
            if jheader.get("timing") is not None and \
                    TimingConfig.from_mapping(jheader["timing"]).as_dict() != header["timing"]:
                bad.append(f"timing: {dict(jheader['timing'])} != {header['timing']}")
            if bad:
                raise OfaProfileError(f"journal {jpath} comes from a different setup ({'; '.join(bad)}); "
                                      f"pass --fresh to discard it")
        if base is not None:
            bad = fingerprint_mismatch(base.fingerprint, fp)
            if bad:
                raise OfaProfileError(f"{out} was measured on a different setup ({'; '.join(bad)}); "
                                      f"use another --out or --fresh")
        def entry(e: Mapping[str, Any]) -> "LutEntry":
            return LutEntry(**{f: (tuple(v) if f == 'raw_ms' else v) for f, v in e.items()})

        # per op, the figures of each pass so far (journal; passes 1.. there, 0.. in run_passes): an op is done
        # once it has `passes` of them, and its entry is the one with the lowest median (replicates.run_passes)
        have = {k: {p - 1: e for p, e in v.items()} for k, v in jentries.items() if k not in existing}
        need = [op for op in ops if op.key not in existing]
        journal = _Journal(jpath, header)
        bar: Any = _NullBar()

        def start(remaining: int) -> None:
            nonlocal bar
            bar = _progress(len(ops) * passes, len(ops) * passes - remaining, device.name, progress)

        def measure(batch: list[Op], p: int, record: Callable[[Op, dict], None]) -> None:
            def on_result(op: Op, m: Measurement) -> None:
                e = entry_from_measurement(m)
                journal.add(op.key, e, p + 1)
                record(op, e)
                bar.update(1)
            prof.measure_ops(batch, seed, on_result)
        try:
            reps = run_passes(need, passes, measure, key=lambda op: op.key, have=have, limit=limit, on_plan=start)
        finally:
            journal.close()
            bar.close()
    finally:
        if own:
            prof.close()

    done: dict[str, Any] = dict(existing)
    for k, e in reps.lowest.items():
        done[k] = entry(e)
    touched = {k for _, k in reps.planned}
    missing = [op.key for op in ops if op.key not in done]
    all_res = tuple(sorted(set(res) | set(base.resolutions if base else ())))
    provenance = dict(base.provenance) if base else {}
    if passes > 1:
        provenance["passes"] = passes
    provenance.update({"tool": "ofa-profile", "seed": seed, "timing": device.timing.as_dict(),
                       "device_spec": device.name, "source": "measured",
                       "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))})
    if timed.precision == "int8":     # how the int8 blocks were made: quantizer, formats, calibration inputs
        provenance["int8"] = int8_recipe(device.runtime)
    lut_timed = base.timed if base else timed
    lut = Lut(space=sp.name, device=device.lut_name(prof.batch_size), runtime=device.runtime,
              entries={k: done[k] for k in sorted(done)}, resolutions=all_res if not missing else tuple(
                  r for r in all_res if all(op.key in done for op in _ops_at(sp, r, lut_timed.classes))),
              batch_size=prof.batch_size, num_threads=device.num_threads, fingerprint=fp, provenance=provenance,
              calibration=base.calibration if base else None, timed=lut_timed,
              created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    save_lut(lut, out)
    if not missing and jpath.exists():
        jpath.unlink()
    return MeasureResult(out, measured=len(reps.planned), reused=sum(op.key in done and op.key not in touched for op in ops),
                         total=len(ops), elapsed_s=time.perf_counter() - t0, missing=len(missing))


#: runtimes that run the 'ofa' graph flavour (torch modules, or their torch.onnx export)
OFA_GRAPH_RUNTIMES = ("onnxruntime", "torch", "torch-cuda")


def check_measurable(timed: Timed, device: DeviceSpec) -> Timed:
    """``timed`` where this version can time blocks that way on ``device``; :class:`TimedError` (one line) else."""
    ok, why = precision_available(device, timed.precision)
    if not ok:
        raise TimedError(why)
    if timed.threads != device.num_threads:
        raise TimedError(f"device {device.name} runs {device.num_threads} thread(s), not {timed.threads}; use a "
                         f"device spec with num_threads {timed.threads}")
    runtime = str(device.transport_options.get("remote_runtime") or device.runtime)
    if timed.graph == "ofa" and runtime not in OFA_GRAPH_RUNTIMES:
        raise TimedError(f"graph flavour 'ofa' is OFA's torch modules exported through torch.onnx; device "
                         f"{device.name} runs {runtime}: measure it on a device whose runtime is "
                         f"{' or '.join(OFA_GRAPH_RUNTIMES)}")
    return timed


def _ops_at(sp: Any, r: int, classes: int | None = None) -> list[Op]:
    return ops_at_resolution(sp, r, classes)


class _NullBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, initial: int, desc: str, enabled: bool, unit: str = "op") -> Any:
    if not enabled:
        return _NullBar()
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=f"measure {desc}", unit=unit, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5)


# -- noise: is a measured LUT to be trusted? ---------------------------------------------------------

NOISY_IQR_REL = 0.05   # block IQR/median above which a LUT's machine is called noisy (a quiet one: 1-3 %)


def timing_summary(lut: Any) -> dict | None:
    """How the LUT's blocks were timed (its provenance), how many runs they took and how noisy they were."""
    import statistics
    from collections.abc import Mapping
    t = lut.provenance.get("timing")
    t = t if isinstance(t, Mapping) else None   # free-form in the schema: anything else is not settings
    entries = list(lut.entries.values())
    if not t and not entries:
        return None
    out: dict = {"settings": dict(t) if t else None}
    if entries:
        cap = (t or {}).get("max_runs")
        cap = cap if type(cap) in (int, float) and cap > 0 else None
        rel = [e.iqr_ms / e.median_ms for e in entries if e.median_ms > 0]
        out.update({"runs_per_block_median": statistics.median(e.count for e in entries),
                    "share_at_max_runs": round(sum(e.count >= cap for e in entries) / len(entries), 4) if cap else None,
                    "iqr_rel_median": round(statistics.median(rel), 5) if rel else None})
    return out


@dataclass(frozen=True)
class BlockNoise:
    """How noisy the blocks of a measured LUT were, and whether that makes its machine a noisy one."""
    iqr_rel_median: float                # median over the blocks of IQR/median
    max_runs: Any                        # the run cap of its timing settings (None: not recorded)
    share_at_max_runs: float | None      # share of blocks that ran to the cap (None: cap not recorded)
    threshold: float = NOISY_IQR_REL

    @property
    def noisy(self) -> bool:
        """Too noisy to trust without more passes (``iqr_rel_median`` over ``threshold``)."""
        return self.iqr_rel_median > self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {"iqr_rel_median": self.iqr_rel_median, "max_runs": self.max_runs,
                "share_at_max_runs": self.share_at_max_runs}

    def describe(self) -> str:
        """One line for the log: the blocks' noise, how many ran to the run cap, and advice on a noisy machine."""
        return (f"noise: block IQR/median {100 * self.iqr_rel_median:.1f} % (median over blocks); "
                + (f"{self.share_at_max_runs:.0%} of blocks ran the {self.max_runs}-run cap"
                   if self.share_at_max_runs is not None else "run cap not recorded")
                + ("; a noisy machine: --passes 3 and `calibrate --rounds 3` help, a quieter one helps more"
                   if self.noisy else ""))


def block_noise(lut: Any) -> BlockNoise | None:
    """The noise of a measured LUT's blocks (None where its entries hold no IQR to judge)."""
    t = timing_summary(lut)
    if not t or t.get("iqr_rel_median") is None:
        return None
    return BlockNoise(t["iqr_rel_median"], (t["settings"] or {}).get("max_runs"), t["share_at_max_runs"])


# -- one device's LUT: the space, the default file name, a run with its profiler and its noise judged ------------

def lut_space(device: DeviceSpec, space: str | None = None) -> str:
    """The space a LUT of ``device`` covers: ``space`` where given, else the device spec's."""
    return get_space(space).name if space else device.space


def default_lut_stem(device: DeviceSpec, space: str, batch_size: int | None = None, *, precision: str = "fp32",
                     threads: int | None = None) -> str:
    """The default LUT name of ``device`` (no ``.json``): its LUT name, with ``-SPACE`` for a space other than the
    spec's, ``-int8`` for int8 blocks and ``-tN`` for ``threads`` other than the spec's (``--threads``)."""
    return (device.lut_name(batch_size) + ("" if space == get_space(device.space).name else f"-{space}")
            + ("" if precision == "fp32" else f"-{precision}")
            + ("" if threads is None or threads == device.num_threads else f"-t{threads}"))


@dataclass(frozen=True)
class DeviceMeasurement:
    """One `measure` run: the LUT it wrote or extended, and (a complete LUT) how noisy its blocks were."""
    result: MeasureResult
    device: str
    passes: int
    noise: BlockNoise | None          # None: the LUT is not complete yet, or holds no IQR to judge

    def as_dict(self) -> dict[str, Any]:
        r = self.result
        return {"lut": str(r.lut_path), "device": self.device, "measured": r.measured, "reused": r.reused,
                "total": r.total, "passes": self.passes, "complete": r.complete, "elapsed_s": round(r.elapsed_s, 1),
                "noise": self.noise.as_dict() if self.noise else None}


def device_with_options(device: DeviceSpec, transport_options: Mapping[str, Any] | None = None,
                        shorthands: Mapping[str, Any] | None = None) -> tuple[DeviceSpec, dict[str, Any]]:
    """``(device, profiler keyword arguments)`` for a run with ``transport_options`` replacing some of the spec's
    (checked against the transport's declared options: :func:`ofa_profile.devices.with_transport_options`);
    ``shorthands`` are the values of the transports' command-line shorthands (``{option: value}``:
    :func:`ofa_profile.transports.base.transport_shorthands`), set like ``transport_options`` where the device's
    transport declares the option, and else given to its profiler as keyword arguments (the local one ignores
    what it does not take)."""
    opts = dict(transport_options or {})
    declared = {o.name for o in plugin_options("transport", device.transport)[0]}
    kw = {}
    for key, value in (shorthands or {}).items():
        if value:
            if key in declared:
                opts.setdefault(key, value)
            else:
                kw[key] = value
    return with_transport_options(device, opts), kw


def measure_device(device: DeviceSpec, out: Path, resolutions: Sequence[int], *, space: str,
                   batch_size: int | None = None, seed: int = 0, progress: bool = True, fresh: bool = False,
                   limit: int | None = None, passes: int = 1, transport_options: Mapping[str, Any] | None = None,
                   shorthands: Mapping[str, Any] | None = None,
                   timed: Timed | None = None, graph: str = "ofa-profile",
                   classes: int | None = None, precision: str = "fp32") -> DeviceMeasurement:
    """:func:`measure_lut` with the device's own profiler (opened and closed here), and the noise of the blocks
    once the LUT is complete (:func:`block_noise`).  ``transport_options`` replace some of the spec's, and
    ``shorthands`` (the transports' command-line shorthands) likewise: :func:`device_with_options`.
    ``precision``: of the blocks (with ``graph`` and ``classes``, the LUT's ``timed`` record, unless ``timed`` is
    given)."""
    device, kw = device_with_options(device, transport_options, shorthands)
    check_measurable(timed or Timed.default_for(space, threads=device.num_threads, graph=graph)
                     .with_(precision=precision), device)  # first
    prof = make_profiler(device, batch_size=batch_size, precision=timed.precision if timed else precision, **kw)
    try:
        r = measure_lut(device, out, resolutions, space=space, batch_size=batch_size, seed=seed, progress=progress,
                        fresh=fresh, profiler=prof, limit=limit, passes=passes, timed=timed, graph=graph,
                        classes=classes, precision=precision)
    finally:
        prof.close()
    nz = block_noise(load_lut(r.lut_path)) if r.complete else None
    return DeviceMeasurement(r, device.name, passes, nz)
