"""The ``ofa-profile`` command line: the group and its commands, one module per area in
:mod:`ofa_profile.commands` (each command parses its options, calls one domain function and prints).

Conventions (every command): ``--help`` shows an example; data goes to stdout, logs and progress to stderr;
``--json`` where the output is data; a user error is one line on stderr and exit 1 (usage errors exit 2),
never a traceback (one mapping for every command line of the project: :mod:`ofa_profile.clierrors`).
"""
from __future__ import annotations

from .commands import accuracy as _accuracy  # noqa: F401  (each import registers its commands)
from .commands import lut as _lut  # noqa: F401
from .commands import measure as _measure  # noqa: F401
from .commands import plots as _plots  # noqa: F401
from .commands import search as _search  # noqa: F401
from .commands import supernet as _supernet  # noqa: F401
from .commands.base import echo_json, main

__all__ = ["main", "echo_json"]

if __name__ == "__main__":  # pragma: no cover
    main()   # _Group.main: the exit codes and signal handling of ofa_profile.clierrors
