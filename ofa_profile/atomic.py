"""Atomic file writes: a temp file in the target's folder, renamed onto the target only once complete.

A crash or a kill at any moment leaves either the old file or the new one, never a half-written one.
(The LUT writer in :mod:`ofa_profile.lut` adds its own error messages and a folder fsync on top.)
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import OfaProfileError
from .jsonio import dumps_strict

__all__ = ["atomic_path", "write_bytes_atomic", "write_text_atomic", "write_json_atomic", "temp_tag",
           "remove_dead_temps", "write_target"]


def write_target(path: str | os.PathLike) -> Path:
    """The file an atomic write to ``path`` replaces: a symlink is written through (its target, followed to
    the end, is replaced and the link stays a link); any other path is itself."""
    p = Path(path)
    t = Path(os.path.realpath(p)) if p.is_symlink() else p
    _refuse_special(t, p)
    return t


def _refuse_special(target: Path, given: Path) -> None:
    """Refuse an output that exists and is neither a regular file nor a folder (a device such as /dev/null, a
    FIFO, a socket): renaming a temporary file onto it would replace it (as root, /dev/null itself)."""
    import stat

    try:
        mode = os.stat(target).st_mode
    except OSError:
        return                      # missing (or unreadable): the write itself says what is wrong
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = ("a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
                else "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        via = f" (through the link {given})" if str(given) != str(target) else ""
        raise OfaProfileError(f"cannot write {target}{via}: it is {kind}, not a regular file, and would be "
                              f"replaced; choose a file path")


def temp_tag() -> str:
    """``<pid>-<host>``, part of every temporary name made here: a folder on a shared filesystem can be written
    from several machines, and a pid only means something on its own machine."""
    host = "".join(c if c.isalnum() else "-" for c in socket.gethostname()) or "host"
    return f"{os.getpid()}-{host}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_dead_temps(folder: str | os.PathLike, name: str) -> int:
    """Remove the temporaries ``.<name>.<pid>-<host>.*`` (files or folders) in ``folder`` that a process of this
    machine left when it was killed outright (SIGKILL, power loss: no clean-up ran) and that no longer runs;
    another machine's, and live ones, are left alone. Returns how many were removed."""
    own = temp_tag().split("-", 1)[1]
    prefix = f".{name}."
    removed = 0
    for t in Path(folder).glob(f".{glob.escape(name)}.*"):
        pid, _, host = t.name[len(prefix):].split(".", 1)[0].partition("-")
        if pid.isdigit() and host == own and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            if t.is_dir():
                shutil.rmtree(t, ignore_errors=True)
            else:
                t.unlink(missing_ok=True)
            removed += 1
    return removed


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp", *, follow_symlinks: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it becomes ``path`` (mode 0644),
    when it raises the temporary file is removed and ``path`` is untouched.  A symlinked ``path`` is written
    through: the temporary file goes beside the link's target and replaces it (:func:`write_target`);
    ``follow_symlinks=False`` (the user cache) replaces whatever entry is at ``path`` (a link, not its target; a
    FIFO) with the new file."""
    p = write_target(path) if follow_symlinks else Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.{temp_tag()}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: str | os.PathLike, data: bytes | Any, *, follow_symlinks: bool = True) -> Path:
    """Write ``data`` (bytes or a buffer such as a uint8 numpy array) to ``path`` atomically, fsynced
    (``follow_symlinks``: :func:`atomic_path`)."""
    with atomic_path(path, follow_symlinks=follow_symlinks) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, *, follow_symlinks: bool = True) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), follow_symlinks=follow_symlinks)


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2, *,
                      follow_symlinks: bool = True) -> Path:
    """Strict JSON (``indent=None``: compact) with a final newline: never ``NaN``/``Infinity``, an undefined
    figure is written as ``null`` (:func:`ofa_profile.jsonio.dumps_strict`); ``follow_symlinks=False``: a
    symlink at ``path`` is replaced, not written through (:func:`atomic_path`)."""
    sep = (",", ":") if indent is None else None
    return write_text_atomic(path, dumps_strict(obj, indent=indent, separators=sep) + "\n",
                             follow_symlinks=follow_symlinks)
