"""The LUT: one import for its users.  A LUT file is either ofa-profile's versioned JSON format
(:mod:`ofa_profile.lut_format`: the records :class:`Lut` and :class:`LutEntry`, validation, LUT-sum prediction,
:func:`save_lut`) or OFA's YAML latency tables (:mod:`ofa_profile.lut_ofa`: :func:`import_ofa_yaml`,
:func:`export_ofa_yaml`); this module tells them apart (:func:`detect_format`) and loads a LUT file or a device's
shipped LUT (:func:`load_lut`).

Every load failure is an :class:`LutError` with one line naming the file and the fix.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import paths
from .argsafety import shell_command
from .errors import LutError, LutMissError
from .lut_format import (FORMAT, IQR_PER_STD, SCHEMA_VERSION, Lut, LutEntry, _atomic_write, _check_header,  # noqa: F401
                         _keys_at, _parse_json, _parse_yaml, _read_text, _space_keys, save_lut)
from .lut_ofa import _classify_yaml, export_ofa_yaml, import_ofa_yaml  # noqa: F401

__all__ = ["FORMAT", "SCHEMA_VERSION", "IQR_PER_STD", "LutError", "LutMissError", "LutEntry", "Lut", "load_lut",
           "save_lut", "import_ofa_yaml", "export_ofa_yaml", "detect_format", "is_shipped", "lut_sha256",
           "lut_identity"]


def detect_format(path: str | Path) -> str:
    """``'ofa-profile-lut'`` or the format id of an OFA latency table of a registered family (``'ofa-mbv3-yaml'``,
    ``'proxylessnas-yaml'``: :attr:`ofa_profile.ops.KeyGrammar.table_format`); :class:`LutError` otherwise."""
    p = Path(path)
    text = _read_text(p, "file")
    if text.lstrip().startswith(("{", "[")):
        obj = _parse_json(text, p)
        if isinstance(obj, dict) and obj.get("format") == FORMAT:
            return FORMAT
        _check_header(obj, str(p))  # raises with the reason
    return _classify_yaml(_parse_yaml(text, p), p).table_format


def _looks_like_device_name(s: str) -> bool:
    return "/" not in s and os.sep not in s and not s.endswith((".json", ".yaml", ".yml"))


def _missing_lut_hint(name: str) -> str:
    """What to do about a LUT name that is neither a file nor a shipped LUT: the file ``NAME.json`` when it lies
    here, else the nearest shipped LUT's name, else how to build one (``measure`` of a known device)."""
    import difflib

    shipped = sorted(q.stem for q in paths.lut_dir().glob("*.json")) if paths.lut_dir().is_dir() else []
    devices = sorted(q.stem for q in paths.device_specs_dir().glob("*.json")) if paths.device_specs_dir().is_dir() \
        else []
    listing = f"(shipped: {', '.join(shipped) or 'none'})"
    for cand in (Path(f"{name}.json"), Path(f"{name}.yaml")):
        if cand.is_file():
            return f"{shell_command(str(cand))} lies here: pass it as the LUT"
    near = difflib.get_close_matches(name, shipped, n=1, cutoff=0.6)
    if near:
        return f"did you mean {near[0]}? {listing}"
    if name in devices:
        return f"build one with `{shell_command('ofa-profile', 'measure', '--device', name)}` {listing}"
    near_dev = difflib.get_close_matches(name, devices, n=1, cutoff=0.6)
    how = (f"`{shell_command('ofa-profile', 'measure', '--device', near_dev[0])}`" if near_dev
           else "`ofa-profile measure --device DEVICE` (`ofa-profile devices` lists the devices)")
    return f"pass a LUT path or build one with {how} {listing}"


def load_lut(path_or_device: str | Path) -> Lut:
    """Load and validate a LUT file, or the shipped LUT of a device name (``lut/<device>.json``)."""
    p = Path(path_or_device)
    if isinstance(path_or_device, str) and not p.exists() and _looks_like_device_name(path_or_device):
        cand = paths.lut_dir() / f"{path_or_device}.json"
        if not cand.exists():
            raise LutError(f"{path_or_device!r} is neither a LUT file nor a device with a shipped LUT; "
                           f"{_missing_lut_hint(path_or_device)}")
        p = cand
    text = _read_text(p)
    if not text.lstrip().startswith(("{", "[")):
        _classify_yaml(_parse_yaml(text, p), p)
        raise LutError(f"{p} is an OFA YAML latency table, not an ofa-profile LUT; convert it first: "
                       f"`{shell_command('ofa-profile', 'lut', 'import-ofa', p, '--out', p.stem + '.json')}`")
    return Lut.from_json(_parse_json(text, p), source=str(p))


def is_shipped(lut: Lut) -> bool:
    """The LUT was loaded from the package's ``lut/`` folder (``--device cpu-ort``, ``--lut cpu-ort``)."""
    try:
        return Path(lut.source).resolve().parent == paths.lut_dir().resolve()   # paths.: tests point it elsewhere
    except (OSError, RuntimeError, ValueError):
        return False


def lut_sha256(lut: Lut) -> str:
    """The sha256 of the LUT's file (of its contents, where it is not, or no longer, a file)."""
    import hashlib
    import json
    try:
        return hashlib.sha256(Path(lut.source).read_bytes()).hexdigest()
    except OSError:
        return hashlib.sha256(json.dumps(lut.to_json(), sort_keys=True).encode()).hexdigest()


def lut_identity(lut: Lut) -> dict:
    """What an output names as its latency source: the LUT file, its sha256, whether it is a shipped one, and what
    was timed (space, device, runtime, batch size, and the LUT's "what was timed" record: graph flavour, classifier
    head, precision, threads)."""
    return {"path": str(lut.source), "sha256": lut_sha256(lut), "shipped": is_shipped(lut), "space": lut.space,
            "device": lut.device, "runtime": lut.runtime, "batch_size": lut.batch_size,
            "timed": lut.timed.to_json(), "timed_label": lut.timed.label(lut.runtime),
            "calibrated": bool(lut.calibration)}
