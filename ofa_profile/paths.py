"""Where the shipped data folders are, from a checkout or from an installed wheel."""
from __future__ import annotations

import re
from pathlib import Path

from .errors import OfaProfileError

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


def model_weights_dir() -> Path:
    """``ofa_model/weights``: the bundled supernet, its manifest and accuracy predictor (the ``ofa_model`` package
    sits beside this one in a checkout and in an installation alike)."""
    return _PKG.parent / "ofa_model" / "weights"


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


def user_cache_dir() -> Path:
    """The user's cache folder for ofa-profile (``$XDG_CACHE_HOME/ofa-profile``, else ``~/.cache/ofa-profile``);
    not created here."""
    import os
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ofa-profile"


# -- output names and folders ----------------------------------------------------------------------

_UNSAFE = re.compile(r"(?:[^A-Za-z0-9._-]|\.{2,})+")


def safe_name(text: object, max_len: int = 80, default: str = "unnamed") -> str:
    """A file name made from file contents or user data (a LUT's or adapter's ``device``, a ``--name``) that
    stays in the folder it is written to: only ``[A-Za-z0-9._-]`` is kept, every other run (``/``, spaces,
    ``..``) becomes one ``-``, leading dots and dashes are dropped (no hidden file, no option look-alike),
    at most ``max_len`` characters, never empty (``default``).  A plain name (``cpu-ort``) is unchanged."""
    s = _UNSAFE.sub("-", str(text))
    s = re.sub(r"-{2,}", "-", s).lstrip(".-")[:max_len].rstrip(".-")
    return s or default


def check_out_dir(path: str, option: str = "--out-dir") -> tuple[Path, bool]:
    """Make sure output folder ``path`` can be written, before any work: it must be a folder (one whose parent
    exists is created) that a file can really be created in (``os.access`` and a temporary file: ACLs,
    read-only mounts, quotas).  Returns ``(folder, created)``; raises :class:`OfaProfileError` (one line)."""
    import os
    import tempfile

    d = Path(path)
    created = False
    if d.exists() and not d.is_dir():
        raise OfaProfileError(f"{option} {d} is a file, not a folder; choose a folder")
    if not d.exists():
        if not d.parent.is_dir():
            raise OfaProfileError(f"{option} {d} does not exist and neither does its parent {d.parent}; "
                                  f"create it or choose another folder")
        try:
            d.mkdir()
            created = True
        except FileExistsError:
            pass
        except OSError as exc:
            raise OfaProfileError(f"{option} {d} cannot be created ({exc.strerror or exc}); "
                                  f"choose a writable folder") from None
    why = None
    try:                                   # the real test; its error names the cause (read-only file system ...)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".ofa-profile-probe.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        why = exc.strerror or str(exc)
    if why is None and not os.access(d, os.W_OK | os.X_OK):
        why = "no write permission"
    if why:
        raise OfaProfileError(f"{option} {d} is not writable ({why}); choose a writable folder")
    return d, created
