"""Reading an input file a user names: a regular file, of a size its kind can have, without blocking.

Every reader of a user's file (``--arch``, ``--lut``, ``adapt --measurements``/``--source``, ``--predictor``,
``lut validate``, device specs, OFA YAML tables, CSVs, the user cache) reads through :func:`read_input`: the file
is opened with ``O_NONBLOCK`` (a FIFO with no writer does not block the open) and then checked with ``fstat`` on
that same descriptor: a FIFO, a device (``/dev/zero``, ``/dev/urandom``), a socket or a folder is refused in one
line, and so is a file larger than the cap of its kind (:data:`MAX_BYTES`) -- before anything is read.  Files
of the user's cache are opened with ``O_NOFOLLOW`` as well: a symlink planted there is not followed.
"""
from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path
from typing import Any

from .errors import OfaProfileError

__all__ = ["InputFileError", "MAX_BYTES", "read_input", "open_input_text", "check_input_file", "human_bytes"]

_MIB = 1 << 20
#: the largest file of each kind that is read (a shipped LUT is 2.4 MB with its raw samples; a LUT of every
#: resolution with raw samples is ~40 MB; OFA's net.config ~10 KB; OFA's acc_predictor.pth 1.5 MB)
MAX_BYTES = {
    "lut": 512 * _MIB, "yaml": 64 * _MIB, "arch": 16 * _MIB, "device": 1 * _MIB, "predictor": 64 * _MIB,
    "adapter": 64 * _MIB, "csv": 256 * _MIB, "cache": 16 * _MIB, "weights": 2048 * _MIB, "journal": 2048 * _MIB,
    "json": 256 * _MIB,
}


class InputFileError(OfaProfileError):
    """An input that is missing, not a regular file, too large or unreadable (one line naming it)."""


def human_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", _MIB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} bytes"


def _kind(mode: int) -> str:
    return ("a folder" if stat.S_ISDIR(mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(mode)
            else "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")


def _open(path: Path, what: str, max_bytes: int, follow_symlinks: bool) -> tuple[int, int]:
    """(an open descriptor of the regular file ``path``, its size); refuses anything else in one line."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InputFileError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise InputFileError(f"{what} {path} is a folder, not a file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise InputFileError(f"{what} {path} is a symbolic link, which is not followed here; remove it") \
                from None
        raise InputFileError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            if stat.S_ISDIR(st.st_mode):
                raise InputFileError(f"{what} {path} is a folder, not a file")
            raise InputFileError(f"{what} {path} is {_kind(st.st_mode)}, not a regular file; pass a file")
        if st.st_size > max_bytes:
            raise InputFileError(f"{what} {path} is {human_bytes(st.st_size)}, more than the {human_bytes(max_bytes)} "
                                 f"a {what} can be; it is not one")
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def check_input_file(path: str | os.PathLike, what: str, max_bytes: int, *, follow_symlinks: bool = True) -> int:
    """Check that ``path`` is a regular file of at most ``max_bytes`` (as :func:`read_input`, without reading it,
    for readers that take a path, such as torch's); returns its size."""
    fd, size = _open(Path(path), what, max_bytes, follow_symlinks)
    os.close(fd)
    return size


def read_input(path: str | os.PathLike, what: str, max_bytes: int, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of the regular file ``path``; a missing file, a folder, a FIFO, a device, a socket, a file over
    ``max_bytes`` (also one that grows past it while read), or a symlink with ``follow_symlinks=False`` is one
    :class:`InputFileError` line naming ``what`` and the path, at once (nothing blocks)."""
    p = Path(path)
    fd, size = _open(p, what, max_bytes, follow_symlinks)
    try:
        chunks, total = [], 0
        while True:
            try:
                b = os.read(fd, min(max(size, 1 << 16), 1 << 24))
            except OSError as exc:
                raise InputFileError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
            if not b:
                break
            total += len(b)
            if total > max_bytes:
                raise InputFileError(f"{what} {p} is more than the {human_bytes(max_bytes)} a {what} can be; it is "
                                     f"not one")
            chunks.append(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def open_input_text(path: str | os.PathLike, what: str, max_bytes: int, encoding: str = "utf-8-sig") -> Any:
    """:func:`read_input` as a text stream for ``csv`` (``newline=""``; a decoding error surfaces while read,
    as from ``open``)."""
    return io.TextIOWrapper(io.BytesIO(read_input(path, what, max_bytes)), encoding=encoding, newline="")
