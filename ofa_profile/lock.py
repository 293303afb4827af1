"""One writer per file: an advisory ``flock`` on a lock file beside the output.

Every command that reads, changes and rewrites a file (a LUT and its journal, an accuracy CSV and its
``.partial.csv``, a training run folder, ...) holds :func:`output_lock` on it for its whole run.  The lock
file is ``.<name>.lock`` in the output's folder (for a folder, such as a training run: ``<folder>/.lock``);
it holds the holder's pid, host, command and start time, so a second writer is refused with one line
naming them (:class:`LockBusy`, exit 1), or waits for the lock with ``wait=True`` (``--wait``).

The lock is the kernel's (``flock``), not the file: it is released on every exit path, and when the
holder dies outright (SIGKILL, power loss) the kernel drops it, so a lock file left behind is harmless
and the next writer simply takes it over.  A symlinked output is locked at its target, so two links to
one file share one lock.  A lock is re-entrant within a process (a command and a library function it
calls may both take it).  On a filesystem without ``flock`` support the writer is warned and goes on.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .atomic import write_target
from .errors import OfaProfileError

__all__ = ["LockBusy", "output_lock", "lock_file_for", "holder_of"]


class LockBusy(OfaProfileError):
    """Another process holds the lock of the output (the message names its pid)."""


_held: dict[str, list] = {}          # lock file -> [fd, depth] of the locks this process holds
_held_guard = threading.Lock()
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


def _target(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` lands in: a symlink's target (followed to the end), else ``path``; a device,
    FIFO or socket there is refused (:func:`ofa_profile.atomic.write_target`) before a lock file is made beside it."""
    return write_target(path)


def lock_file_for(path: str | os.PathLike, folder: bool = False) -> Path:
    """The lock file of output ``path``: ``.<name>.lock`` beside it, or ``<path>/.lock`` for a ``folder``."""
    t = _target(path)
    if folder:
        return t / ".lock"
    return t.parent / f".{t.name}.lock"


def _host() -> str:
    return socket.gethostname() or "?"


def _command() -> str:
    """``ofa-profile measure`` / ``ofa_model.train``: the program and its first word that is no option."""
    argv = list(sys.argv) or ["python"]
    prog = os.path.basename(argv[0])
    if prog in ("__main__.py", "cli.py"):
        prog = "ofa-profile"
    elif prog.endswith(".py"):
        prog = f"ofa_model.{prog[:-3]}" if prog[:-3] in ("train", "card") else prog
    sub = next((a for a in argv[1:] if not a.startswith("-")), None)
    return f"{prog} {sub}" if sub and prog == "ofa-profile" else prog


def holder_of(lock_file: str | os.PathLike, tries: int = 20) -> dict:
    """What the lock file says about its holder (``{pid, host, command, since}``; ``{}`` if unreadable).
    A holder that has just taken the lock may not have written yet: read a few times."""
    for i in range(tries):
        try:
            text = Path(lock_file).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return {}
        try:
            info = json.loads(text)
            if isinstance(info, dict) and "pid" in info:
                return info
        except ValueError:
            pass
        time.sleep(0.025)
    return {}


def _who(info: dict) -> str:
    if not info:
        return "another process"
    host = info.get("host")
    on = f" on {host}" if host and host != _host() else ""
    extra = ", ".join(str(x) for x in (info.get("command"), f"since {info['since']}" if info.get("since") else None)
                      if x)
    return f"pid {info.get('pid', '?')}{on}" + (f" ({extra})" if extra else "")


def _open(lock_path: Path, shown: str) -> int:
    """Open (or make) the lock file; one that is a symlink, a FIFO or anything but a regular file is refused: a
    lock file planted as a link to another file would have that file overwritten with the holder's line."""
    import stat
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OfaProfileError(f"cannot write {shown}: its lock file {lock_path} is a symlink, which this "
                                  f"program does not follow; remove it and rerun") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise OfaProfileError(f"cannot write {shown}: folder {lock_path.parent} does not exist; create it or "
                                  f"choose another path") from None
        raise OfaProfileError(f"cannot write {shown}: cannot create its lock file {lock_path} "
                              f"({exc.strerror or exc}); choose a writable folder") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OfaProfileError(f"cannot write {shown}: its lock file {lock_path} is not a regular file; remove it "
                              f"and rerun")
    return fd


def _same_file(fd: int, lock_path: Path) -> bool:
    """Whether ``lock_path`` still names the file open as ``fd`` (a releasing holder unlinks it)."""
    try:
        a, b = os.fstat(fd), os.stat(lock_path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@contextmanager
def output_lock(path: str | os.PathLike, *, wait: bool = False, folder: bool = False, what: str | None = None,
                wait_hint: str = "pass --wait", log: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Hold the lock of output ``path`` (a file, or with ``folder=True`` a folder that must exist) for the block.

    Taken: yields the lock file's path.  Held by another process: raises :class:`LockBusy` (one line naming
    its pid), or with ``wait`` prints one line to stderr and blocks until it is free (Ctrl-C interrupts).
    ``what`` names the holder in the lock file (default: the running command).  Released (and the lock file
    removed) on every exit path of the block."""
    shown = str(path)
    lock_path = lock_file_for(path, folder=folder)
    key = os.path.realpath(lock_path)
    with _held_guard:
        if key in _held:                      # re-entrant: this process holds it already
            _held[key][1] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield lock_path
        finally:
            with _held_guard:
                _held[key][1] -= 1
        return
    say = log or (lambda m: print(m, file=sys.stderr, flush=True))
    fd = -1
    locked = announced = False
    try:
        while True:
            fd = _open(lock_path, shown)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                info = holder_of(lock_path)
                if not wait:
                    raise LockBusy(f"{shown} is being written by {_who(info)}; wait for it to finish or "
                                   f"{wait_hint}") from None
                if not announced:
                    say(f"waiting for {_who(info)} to finish writing {shown} ...")
                    announced = True
                fcntl.flock(fd, fcntl.LOCK_EX)  # blocks; Ctrl-C raises KeyboardInterrupt here
                locked = True
            except OSError as exc:
                if exc.errno not in _NO_FLOCK:
                    raise OfaProfileError(f"cannot lock {shown} ({exc.strerror or exc})") from None
                say(f"note: this filesystem cannot lock {lock_path} ({exc.strerror}); make sure no other "
                    f"process writes {shown} meanwhile")
                break
            if _same_file(fd, lock_path):
                break
            # the previous holder removed the lock file while we waited on it: take the new one
            fcntl.flock(fd, fcntl.LOCK_UN)
            locked = False
            os.close(fd)
            fd = -1
        if locked:
            info = {"pid": os.getpid(), "host": _host(), "command": what or _command(),
                    "since": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())}
            data = (json.dumps(info) + "\n").encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        with _held_guard:
            _held[key] = [fd, 1]
        try:
            yield lock_path
        finally:
            with _held_guard:
                _held.pop(key, None)
            if locked and _same_file(fd, lock_path):
                try:                        # still ours: remove it before unlocking (see _same_file)
                    os.unlink(lock_path)
                except OSError:
                    pass
    finally:
        if fd >= 0:
            if locked:
                try:
                    fcntl.flock(fd, fcntl.LOCK_UN)
                except OSError:
                    pass
            os.close(fd)
