"""Atomic file writes: a temp file in the target's folder, renamed onto the target only once complete.

A crash or a kill at any moment leaves either the old file or the new one, never a half-written one.
(The LUT writer in :mod:`ofa_profile.lut` adds its own error messages and a folder fsync on top.)
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_path", "write_bytes_atomic", "write_text_atomic", "write_json_atomic"]


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it becomes ``path`` (mode 0644),
    when it raises the temporary file is removed and ``path`` is untouched."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: str | os.PathLike, data: bytes | Any) -> Path:
    """Write ``data`` (bytes or a buffer such as a uint8 numpy array) to ``path`` atomically, fsynced."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """JSON (``indent=None``: compact) with a final newline."""
    sep = (",", ":") if indent is None else None
    return write_text_atomic(path, json.dumps(obj, indent=indent, separators=sep) + "\n")
