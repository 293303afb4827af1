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
           "save_lut", "import_ofa_yaml", "export_ofa_yaml", "detect_format"]


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


def load_lut(path_or_device: str | Path) -> Lut:
    """Load and validate a LUT file, or the shipped LUT of a device name (``lut/<device>.json``)."""
    p = Path(path_or_device)
    if isinstance(path_or_device, str) and not p.exists() and _looks_like_device_name(path_or_device):
        cand = paths.lut_dir() / f"{path_or_device}.json"
        if not cand.exists():
            shipped = sorted(q.stem for q in paths.lut_dir().glob("*.json")) if paths.lut_dir().is_dir() else []
            raise LutError(f"{path_or_device!r} is neither a LUT file nor a device with a shipped LUT (shipped: "
                           f"{', '.join(shipped) or 'none'}); pass a LUT path or build one with "
                           f"`{shell_command('ofa-profile', 'measure', '--device', path_or_device)}`")
        p = cand
    text = _read_text(p)
    if not text.lstrip().startswith(("{", "[")):
        _classify_yaml(_parse_yaml(text, p), p)
        raise LutError(f"{p} is an OFA YAML latency table, not an ofa-profile LUT; convert it first: "
                       f"`{shell_command('ofa-profile', 'lut', 'import-ofa', p, '--out', p.stem + '.json')}`")
    return Lut.from_json(_parse_json(text, p), source=str(p))
