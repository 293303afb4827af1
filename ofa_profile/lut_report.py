"""What the LUT commands report, as data (the commands print it): a LUT's summary (``lut info``), the outcome of an
OFA table import (``lut import-ofa``) and of a check (``lut validate``), and one subnet's prediction (``predict``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .argsafety import shell_command
from .calibration import CALIBRATION_FORMAT, head_note
from .errors import LutError, OfaProfileError
from .jsonio import plain
from .lut import FORMAT, Lut, detect_format, import_ofa_yaml, load_lut, save_lut
from .measure import NOISY_IQR_REL, timing_summary
from .model_file import exported_subnet
from .space import SubnetSpec
from .speedcheck import check_for_command

__all__ = ["check_out_file", "ImportReport", "import_ofa_lut", "lut_summary", "Validation", "validate_lut_file",
           "Prediction", "predict_subnet"]


def check_out_file(out: str) -> None:
    """Refuse (one line) an output file whose folder does not exist, or that is a folder."""
    p = Path(out)
    if not p.parent.is_dir():
        raise OfaProfileError(f"output folder {p.parent} does not exist; create it or choose another --out")
    if p.is_dir():
        raise OfaProfileError(f"--out {p} is a folder; give a file path such as {p / 'lut.json'}")


@dataclass(frozen=True)
class ImportReport:
    """An OFA table import written to ``out``; ``partial``: the missing keys of each partly covered resolution."""
    lut: Lut
    out: str
    partial: Mapping[int, Sequence[str]]

    def as_dict(self) -> dict[str, Any]:
        lut = self.lut
        return {"lut": self.out, "space": lut.space, "device": lut.device, "resolutions": list(lut.resolutions),
                "entries": len(lut.entries), "partial_resolutions": {str(r): len(m) for r, m in self.partial.items()}}


def import_ofa_lut(src: str | Path, out: str, space: str | None = None, device: str = "imported",
                   allow_partial: bool = False) -> ImportReport:
    """Import OFA's YAML tables (:func:`ofa_profile.lut.import_ofa_yaml`) and save the LUT to ``out`` atomically."""
    lut = import_ofa_yaml(src, space=space, device=device, allow_partial=allow_partial)
    save_lut(lut, out)
    return ImportReport(lut, out, {r: m for r, m in lut.gaps().items() if r not in lut.resolutions})


def lut_summary(lut: Lut) -> dict[str, Any]:
    """A LUT described as JSON-ready data: space, device, runtime, resolutions, entries, its fingerprint (the machine:
    CPU, flags, caches, clock, memory, as far as the LUT recorded them; the software),
    calibration (with its test figures), how its blocks were timed, and coverage (missing and partial keys)."""
    fp = dict(lut.fingerprint)
    keep = ("cpu_model", "cpu_vendor", "cpu_family", "cpu_model_number", "cpu_stepping", "cpu_max_mhz", "cpu_mhz",
            "cache_kb", "mem_total_kb", "cpu_flags", "machine", "logical_cpus", "num_threads", "os", "python",
            "runtime_versions", "ofa_profile", "hardware", "device", "gpu")
    fp_sum = {k: fp[k] for k in keep if k in fp} or {k: fp[k] for k in list(fp)[:6]}
    cal = None
    if lut.calibration:
        c = lut.calibration
        cal = {k: c[k] for k in ("format", "model", "n_fit", "seed", "alpha", "calibrated_utc") if k in c}
        rep = c.get("report") or {}
        t = rep.get("test_calibrated") if isinstance(rep, Mapping) else None
        if t and isinstance(t, Mapping):
            cal["test"] = {k: t[k] for k in ("n", "mape_pct", "within_5pct", "within_10pct", "rmse_ms", "spearman")
                           if k in t}
        t = rep.get("test_lut_sum") if isinstance(rep, Mapping) else None
        if t and isinstance(t, Mapping) and "mape_pct" in t:
            cal["test_lut_sum_mape_pct"] = t["mape_pct"]
    cov = lut.coverage()
    missing = {r: keys for r, keys in cov.items() if r in lut.resolutions and keys}
    partial = {r: len(keys) for r, keys in cov.items() if r not in lut.resolutions}
    return plain({
        "lut": lut.source, "space": lut.space, "device": lut.device, "runtime": lut.runtime,
        "batch_size": lut.batch_size, "num_threads": lut.num_threads, "schema_version": lut.schema_version,
        "timed": lut.timed.to_json(), "timed_label": lut.timed.label(lut.runtime),
        "heads_classes": lut.head_classes(),
        "created_utc": lut.created_utc, "resolutions": list(lut.resolutions), "entries": len(lut.entries),
        "resolution_entries": sum(len(m) for m in lut.resolution_entries.values()),
        "source": lut.provenance.get("source"), "tool": lut.provenance.get("tool"), "seed": lut.provenance.get("seed"),
        "fingerprint": fp_sum, "calibration": cal, "timing": timing_summary(lut), "noisy_above": NOISY_IQR_REL,
        "coverage": {"complete": not missing,
                     "missing_keys": sum(len(v) for v in missing.values()),
                     "missing_by_resolution": {str(r): v for r, v in missing.items()},
                     "partial_resolutions": {str(r): n for r, n in partial.items()}},
    })


@dataclass(frozen=True)
class Validation:
    """A file that passed ``lut validate``: OFA YAML table(s) (``ofa_tables``) or an ofa-profile LUT whose listed
    resolutions are complete; ``partial``: the missing keys of each partly covered resolution it does not list."""
    path: Path
    lut: Lut
    ofa_tables: bool
    partial: Mapping[int, Sequence[str]]


def require_a_resolution(lut: Lut) -> None:
    """Refuse (one line) a LUT that lists no resolution it covers completely (``"resolutions": []``: a measurement
    stopped early, or a table of partial resolutions only): its figures are no LUT of the space yet."""
    if not lut.resolutions:
        part = sorted(lut.coverage())
        cmd = shell_command("ofa-profile", "measure", "--device", lut.device, "--out", lut.source)
        raise LutError(f"LUT {lut.source} lists no resolution it covers completely (resolutions: [])"
                       + (f"; it holds part of r={','.join(map(str, part[:6]))}" if part else "")
                       + f": finish it (`{cmd}`) or list the resolutions it covers")


def validate_lut_file(path: str | Path) -> Validation:
    """Check a LUT file (or OFA YAML tables) against the format, schema and space, and its coverage: every
    resolution it lists must have every key.  Raises :class:`LutError` (one line naming the missing keys)."""
    p = Path(path)
    fmt = FORMAT if p.is_dir() else detect_format(p)
    if fmt != FORMAT or p.is_dir():           # OFA latency table(s) of some family
        return Validation(p, import_ofa_yaml(p), True, {})
    lut = load_lut(p)
    require_a_resolution(lut)
    cal = lut.calibration
    if cal and cal.get("format") != CALIBRATION_FORMAT:
        raise LutError(f"LUT {p}: its calibration's format {str(cal.get('format'))[:40]!r} is not "
                       f"{CALIBRATION_FORMAT!r}, so predict cannot apply it; re-run "
                       f"`{shell_command('ofa-profile', 'calibrate', '--lut', p)}` (or remove its 'calibration')")
    gaps = lut.gaps()
    listed = {r: m for r, m in gaps.items() if r in lut.resolutions}
    if listed:
        cmd = shell_command("ofa-profile", "measure", "--device", lut.device, "--resolutions",
                            ",".join(map(str, listed)), "--out", p)
        raise LutError(f"LUT {p} lists resolution(s) {','.join(map(str, listed))} but lacks keys there: "
                       f"{lut.gaps_text(listed)}; measure them (`{cmd}`) or drop those resolutions from "
                       f"'resolutions'")
    return Validation(p, lut, False, {r: m for r, m in gaps.items() if r not in lut.resolutions})


@dataclass(frozen=True)
class Prediction:
    """One subnet's predicted latency: calibrated where the LUT holds a calibration and it is wanted; ``latency_ms``
    is scaled by ``scale`` (the speed check's factor, with ``--rescale``; 1 otherwise), ``lut_sum_ms`` is the
    LUT's own sum."""
    latency_ms: float
    lut_sum_ms: float
    calibrated: bool
    spec: SubnetSpec
    lut: Lut
    speed_check: Any = None          # a speedcheck.SpeedCheck where one ran (a shipped LUT on a local device)
    scale: float = 1.0
    rescaled: bool = False           # the figures are scaled by the check's factor (--rescale)

    def as_dict(self) -> dict[str, Any]:
        chk = None if self.speed_check is None else {**self.speed_check.as_dict(), "applied": self.rescaled}
        return {"latency_ms": round(self.latency_ms, 6), "lut_sum_ms": round(self.lut_sum_ms, 6),
                "calibrated": self.calibrated, "arch": self.spec.to_ofa(), "resolution": self.spec.r,
                "space": self.spec.space, "lut": self.lut.source, "device": self.lut.device, "scale": self.scale,
                "timed": self.lut.timed.to_json(), "timed_label": self.lut.timed.label(self.lut.runtime),
                "speed_check": chk}


def predict_subnet(lut_ref: str, arch_path: str, space: str | None = None, resolution: int | None = None,
                   calibrated: bool = True, speed_check: bool = False, rescale: bool = False,
                   log: Callable[[str], None] = lambda msg: None, classes: int | None = None) -> Prediction:
    """Load the LUT (a file or a device's shipped LUT) and the subnet (a spec JSON, of ``space`` or the LUT's, or a
    net.config; ``resolution`` overrides its r) and predict its latency.

    ``speed_check``: where the LUT is a shipped one and its device runs here, time a few of its blocks first
    (:func:`ofa_profile.speedcheck.shipped_lut_check`, cached) and ``log`` one warning line when it is off by more
    than 15 %; ``rescale`` multiplies the prediction by the check's factor.

    ``classes``: the classifier head to predict with (one the LUT holds; default: the LUT's own).  ``arch_path``
    may be an .onnx written by ``ofa-profile export``: the subnet and head it holds are predicted (the bundled
    weights' 10-class head, unless ``classes`` says otherwise)."""
    lut = load_lut(lut_ref)
    require_a_resolution(lut)
    if Path(arch_path).suffix.lower() in (".onnx", ".tflite"):
        spec, head = exported_subnet(arch_path)
        if resolution is not None:
            spec = SubnetSpec.from_ofa({**spec.to_ofa(), "r": resolution}, space=spec.space)
        classes = head if classes is None else classes
    else:
        spec = SubnetSpec.load(arch_path, space=space or lut.space, r=resolution)
    lut = lut.with_classes(classes)
    lut_sum = lut.lut_sum_ms(spec)
    use_cal = bool(lut.calibration) and calibrated
    pred = lut.predict_ms(spec, calibrated=use_cal)
    note = head_note(lut) if use_cal else None
    if note:
        log(f"note: {note}")
    chk = check_for_command(lut, None, enabled=speed_check, rescale=rescale, what=lut.source, log=log)
    applied = rescale and chk is not None
    scale = chk.factor if applied else 1.0
    return Prediction(pred * scale, lut_sum, use_cal, spec, lut, chk, scale, applied)
