"""Where the shipped data folders are, from a checkout or from an installed wheel."""
from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _data_dir(installed_name: str, checkout_name: str) -> Path:
    inst = _PKG / installed_name          # wheel: mapped into the package (see setup.py)
    if inst.is_dir():
        return inst
    return _PKG.parent / checkout_name    # checkout / editable install


def device_specs_dir() -> Path:
    return _data_dir("device_specs", "device_specs")


def lut_dir() -> Path:
    return _data_dir("lut_data", "lut")


def schemas_dir() -> Path:
    return _PKG / "schemas"


def shared_data_dir() -> Path | None:
    """../shared/data beside a checkout (reference data for tests/benchmarks), or None."""
    import os
    env = os.environ.get("OFA_PROFILE_SHARED_DATA")
    cands = [Path(env)] if env else []
    cands.append(_PKG.parent.parent / "shared" / "data")
    for c in cands:
        if c.is_dir():
            return c
    return None
