"""Loading torch files a user can supply, without running code from them.

Every checkpoint or weights file (the bundle, ``--supernet``, ``--init``, a run's ``ckpt-last.pt``, OFA's official
``.pth``) goes through :func:`load_torch_file`, which

1. checks a torch zip archive against the CRC-32 of every entry before unpickling anything (a flipped byte in the
   tensor data or the pickle is refused; ~20 ms for the 13 MB bundle);
2. unpickles with ``torch.load(weights_only=True)``: tensors, containers and plain values only.  A file that would
   need arbitrary unpickling (a class or function such as ``os.system``, numpy arrays, ...) is refused in one line
   that names what it holds, and nothing in it runs;
3. refuses any floating tensor with a NaN or an infinity, naming the first such key.

Every refusal is a :class:`RefusedWeightsError` (a :class:`~ofa_model.supernet.WeightsError`, one line, exit 1).
"""
from __future__ import annotations

import os
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Mapping

from ofa_profile.errors import OfaProfileError


class WeightsError(OfaProfileError):
    """Weights that do not fit the supernet (another space, corrupt or missing file)."""

__all__ = ["RefusedWeightsError", "load_torch_file", "check_zip_crc", "first_non_finite", "check_finite",
           "SAFE_HINT"]

SAFE_HINT = "pass a checkpoint saved by ofa-profile or a plain state dict"
_ZIP_MAGIC = b"PK\x03\x04"


class RefusedWeightsError(WeightsError):
    """A weights file that exists but is refused: it needs arbitrary unpickling, fails an integrity check
    (CRC-32, sha256, unreadable) or holds non-finite values."""


def check_zip_crc(path: str | os.PathLike, what: str = "checkpoint", hint: str = SAFE_HINT) -> bool:
    """When ``path`` is a zip archive (torch's format since 1.6), read every entry and compare it with the CRC-32
    the archive records; raise :class:`RefusedWeightsError` on a mismatch or a damaged archive.  Returns whether
    the file was a zip archive (legacy torch files carry no checksum)."""
    p = Path(path)
    with open(p, "rb") as f:
        if f.read(4) != _ZIP_MAGIC:
            return False
    try:
        with zipfile.ZipFile(p) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError) as exc:
        raise RefusedWeightsError(f"{what} {p} is a damaged archive ({type(exc).__name__}: "
                                  f"{_first_line(str(exc))}); refused: {hint}") from None
    if bad is not None:
        raise RefusedWeightsError(f"{what} {p} is corrupt: its entry {bad} fails the archive's CRC-32 check (the "
                                  f"file changed after it was written); refused: {hint}")
    return True


def _first_line(text: str, limit: int = 160) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _unsafe_reason(msg: str) -> str | None:
    """What a weights-only refusal names: the global (``posix.system``, ``numpy...._reconstruct``) or the pickle
    instruction; None when the message is not a weights-only refusal."""
    if "Weights only load failed" not in msg and "WeightsUnpickler" not in msg:
        return None
    m = re.search(r"GLOBAL ([\w.<>]+)", msg)
    if m:
        return m.group(1)
    m = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", msg, re.S)
    return _first_line(m.group(1)) if m else "an object outside plain tensors and containers"


def first_non_finite(obj: Any) -> tuple[str, str] | None:
    """``(key path, 'NaN'|'Inf')`` of the first floating (or complex) tensor in ``obj`` (nested mappings, lists,
    tuples, walked in order, without recursion) holding a NaN or an infinity; None when every one is finite.
    Levels of the key path are joined with ``/`` (state-dict keys keep their dots)."""
    import torch
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        key, x = stack.pop()
        if isinstance(x, torch.Tensor):
            if x.is_quantized:
                x = x.dequantize()
            if (x.is_floating_point() or x.is_complex()) and x.numel() and x.layout == torch.strided:
                fin = torch.isfinite(x)
                if not bool(fin.all()):
                    return key or "<top level>", "NaN" if bool(torch.isnan(x).any()) else "Inf"
        elif isinstance(x, Mapping):
            stack.extend(reversed([(f"{key}/{k}" if key else str(k), v) for k, v in x.items()]))
        elif isinstance(x, (list, tuple)):
            stack.extend(reversed([(f"{key}/{i}" if key else str(i), v) for i, v in enumerate(x)]))
    return None


def check_finite(obj: Any, what: str) -> None:
    """Refuse ``obj`` (one line naming ``what`` and the first bad key) when a floating tensor in it is not finite."""
    bad = first_non_finite(obj)
    if bad is not None:
        raise RefusedWeightsError(f"{what} holds non-finite values ({bad[1]}) in {bad[0]}; refused: the weights are "
                                  f"damaged (a diverged training run?): pass other weights")


def load_torch_file(path: str | os.PathLike, what: str = "checkpoint", hint: str = SAFE_HINT) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU after :func:`check_zip_crc`, then :func:`check_finite`.
    Every failure is one line: :class:`RefusedWeightsError` for a file that is unsafe, damaged or non-finite,
    :class:`WeightsError` for a missing or unreadable one."""
    import pickle

    import torch
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"{what} {p} does not exist; pass the path of a supernet checkpoint")
    try:
        check_zip_crc(p, what, hint)
    except OSError as exc:
        raise WeightsError(f"{what} {p} is unreadable ({type(exc).__name__}: {exc.strerror or exc})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # e.g. torch's note on pickle protocols: the refusal says it all
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unsafe_reason(str(exc))
        if reason is None:
            raise RefusedWeightsError(f"{what} {p} is not a readable torch checkpoint: corrupt (UnpicklingError: "
                                      f"{_first_line(str(exc))}); refused: {hint}") from None
        if reason.startswith("Unsupported operand"):
            raise RefusedWeightsError(f"{what} {p} is not a readable torch checkpoint (the safe loader stops at "
                                      f"pickle opcode {reason.split()[-1]}): it is corrupt, or a pickle that needs "
                                      f"arbitrary unpickling, which could run code; refused: {hint}") from None
        raise RefusedWeightsError(f"{what} {p} needs arbitrary unpickling (it holds {reason}), which could run "
                                  f"code; refused: {hint}") from None
    except OSError as exc:
        raise WeightsError(f"{what} {p} is unreadable ({type(exc).__name__}: {exc.strerror or exc})") from None
    except (MemoryError, RecursionError) as exc:
        raise RefusedWeightsError(f"{what} {p} is not a readable torch checkpoint ({type(exc).__name__} while "
                                  f"reading it); refused: {hint}") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types (RuntimeError, KeyError, EOFError) on bad files
        raise RefusedWeightsError(f"{what} {p} is not a readable torch checkpoint: corrupt ({type(exc).__name__}: "
                                  f"{_first_line(str(exc))}); refused: {hint}") from None
    check_finite(obj, f"{what} {p}")
    return obj
