"""How the three command lines end: one exit code per kind of ending, and one line on stderr.

``ofa-profile``, the trainer (``python -m ofa_model.train``) and the card (``python -m ofa_model.card``) all end
through :func:`report`:

====  ==========================================================================================
0     done
1     a runtime error: :class:`~ofa_profile.errors.OfaProfileError` (a missing file, a LUT that does not cover
      a subnet ...) or an OS error (no space left, permission denied), as one line ``error: ...``
2     a usage error: an unknown option, an option value out of range or unparsable (click's
      ``UsageError``/``BadParameter``), as one line ``error: ...``
130   Ctrl-C (SIGINT) at any moment, 143 SIGTERM: one line (128 + the signal's number, as a shell reports it)
====  ==========================================================================================

Signals: the entry points install handlers for SIGINT and SIGTERM before they import anything else.  A signal
is recorded and raised as :class:`StopSignal` where the program is, as soon as that is safe: not inside an import
(a C extension initialising, as ``import torch`` does, may abort the process on an exception from a callback, or
clear it and run on) and not while clean-up code unwinds; until then it is retried every 50 ms (SIGALRM), so
Ctrl-C during ``import torch`` stops when that import is done.  Whatever exception then comes out (the
StopSignal, or what a library makes of it: an ``ImportError``, a ``RecursionError`` ...) ends as the one
interrupted line and 128 + the signal.  Work already finished is kept by the commands themselves (journals,
atomic writes).  The trainer's own handler (``ofa_model.train._StopOnSignal``: the step in flight finishes, a
checkpoint is written) takes over while it trains and hands back to these on exit.

This module imports only the standard library at import time, so that the console script
(:mod:`ofa_profile.console`) installs the handlers before click, numpy or torch is imported; it imports no command
line, so that every command line can import it.
"""
from __future__ import annotations

import errno
import os
import signal
import sys

from .errors import OfaProfileError

TYPE_CHECKING = False
if TYPE_CHECKING:   # annotations only: typing costs milliseconds before the handlers are in place
    from typing import Any, Callable

__all__ = ["EXIT_ERROR", "EXIT_USAGE", "StopSignal", "CliExitCodes", "report", "guarded", "install_signal_handlers",
           "restore_signal_handlers", "received_signal", "stop_handling"]

EXIT_ERROR = 1
EXIT_USAGE = 2
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
INTERRUPTED = "finished work is saved and a rerun of the same command resumes it"   # ofa-profile's line


class _State:
    signum = 0            # the first signal received (0: none)
    handling = False      # the ending is being reported: a further signal is only recorded
    depth = 0             # nested install_signal_handlers calls (ofa-profile train -> the trainer)
    previous: dict = {}   # the handlers before the outermost install


_state = _State()


RETRY_S = 0.05   # after a stop signal, how often to try raising it again (see _on_retry)


class StopSignal(BaseException):
    """Raised where the program is when SIGINT or SIGTERM arrives.  Like ``KeyboardInterrupt`` it is no
    ``Exception`` (``except Exception`` lets it through, ``finally`` runs), but it is not one: CPython ends a
    process by SIGINT at exit, whatever its exit code, once a ``KeyboardInterrupt`` went unhandled inside code
    that a C extension ran and then cleared (``import torch``), which would turn exit 130/143 into a death by
    SIGINT."""


def _in_import(frame: Any) -> bool:
    """Whether ``frame`` runs inside an import (importlib's frames below it)."""
    while frame is not None:
        name = frame.f_code.co_filename
        if "importlib._bootstrap" in name or name.endswith(("_bootstrap.py", "_bootstrap_external.py")):
            return True
        frame = frame.f_back
    return False


def _may_raise(frame: Any) -> bool:
    """Raising where the program is now is safe: no import is running (a C extension initialising, ``import
    torch``, may call back into Python from C++ that cannot take an exception: it would abort the process, or
    clear the exception and run on), and no exception is unwinding (``finally``/``__exit__`` clean-up must not
    be cut short)."""
    return not _state.handling and sys.exc_info()[1] is None and not _in_import(frame)


def _on_signal(signum: int, frame: Any) -> None:
    if not _state.signum:
        _state.signum = signum
        _arm_retry()
    if _may_raise(frame):
        raise StopSignal(signum)


def _on_retry(signum: int, frame: Any) -> None:
    """SIGALRM, every RETRY_S after a stop signal until the ending is reported: raise the stop as soon as that is
    safe (:func:`_may_raise`), also when an earlier one was cleared by C code, which would run on as if no one
    had asked it to stop."""
    if _state.handling or not _state.signum:
        _cancel_retry()
    elif _may_raise(frame):
        raise StopSignal(_state.signum)


def _arm_retry() -> None:
    try:
        if signal.getsignal(signal.SIGALRM) is signal.SIG_DFL:     # SIGALRM is nobody else's here
            signal.signal(signal.SIGALRM, _on_retry)
            signal.setitimer(signal.ITIMER_REAL, RETRY_S, RETRY_S)
    except (AttributeError, ValueError, OSError):                     # no setitimer here, or not the main thread
        pass


def _cancel_retry() -> None:
    try:
        if signal.getsignal(signal.SIGALRM) is _on_retry:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
    except (AttributeError, ValueError, OSError):
        pass


def install_signal_handlers() -> bool:
    """Handle SIGINT and SIGTERM as described in the module docstring (main thread only; a signal the parent
    ignores, as a shell does for background jobs, stays ignored). Returns whether it installed them; pair
    each call with :func:`restore_signal_handlers`."""
    if _state.depth == 0:
        prev = {}
        for sig in _SIGNALS:
            old = signal.getsignal(sig)
            if old is signal.SIG_IGN:
                continue
            try:
                prev[sig] = signal.signal(sig, _on_signal)
            except ValueError:             # not the main thread: signals are not ours to handle there
                for s, h in prev.items():
                    signal.signal(s, h)
                return False
        _state.previous, _state.signum, _state.handling = prev, 0, False
    _state.depth += 1
    return True


def restore_signal_handlers(installed: bool) -> None:
    """Undo one :func:`install_signal_handlers` call; the outermost one puts the earlier handlers back."""
    if not installed:
        return
    _state.depth -= 1
    if _state.depth == 0:
        _cancel_retry()
        for sig, old in _state.previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        _state.previous, _state.signum, _state.handling = {}, 0, False


def received_signal() -> int:
    """The signal that asked this process to stop (0: none)."""
    return _state.signum


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _rank0() -> bool:
    """Under torchrun only rank 0 prints the interrupted line (every rank gets the signal)."""
    return os.environ.get("RANK", "0") == "0"


def _end_progress_bars() -> None:
    """A progress bar cut short by the ending leaves its line open: close it, so the message is a line of its
    own (tqdm ends a kept bar with a newline, a transient one with a carriage return).  Known gap: a signal
    during the trainer's image decoding was seen, in two clean-checkout runs, to leave that bar's line open all
    the same (the stop line then shares it); why is not yet understood."""
    tq = sys.modules.get("tqdm.std")
    for bar in list(getattr(getattr(tq, "tqdm", None), "_instances", None) or ()):
        try:
            bar.close()
        except Exception:  # noqa: BLE001 - a bar that cannot close must not hide the message
            pass


def _echo(line: str) -> None:
    try:
        _end_progress_bars()
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):   # stderr closed or gone: the exit code still tells
        pass


def _interrupted(signum: int, message: str) -> int:
    _cancel_retry()
    name = signal.Signals(signum).name if signum else "SIGINT"
    if _rank0():
        _echo(f"stopped by {name}: {message}")
    return 128 + (signum or signal.SIGINT)


def _usage_line(exc: Any) -> str:
    msg = _one_line(exc.format_message())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and ctx.command.get_help_option(ctx) is not None:
        msg += f" (see '{ctx.command_path} --help')"
    return f"error: {msg}"


def _click() -> Any:
    """click if it is imported completely (a signal may have stopped its import half way), else None."""
    click = sys.modules.get("click")
    try:
        click.exceptions.Exit, click.exceptions.Abort, click.UsageError, click.ClickException  # noqa: B018
    except AttributeError:
        return None
    return click


def report(exc: BaseException, interrupted: str = INTERRUPTED) -> int:
    """Print the one line for ``exc`` (an exception that ended a command) and return the exit code; re-raise an
    exception that is none of the kinds above (a bug: its traceback is what a bug report needs)."""
    _state.handling = True
    _cancel_retry()
    click = _click()
    if click is not None and isinstance(exc, click.exceptions.Exit):
        return exc.exit_code
    if isinstance(exc, SystemExit):
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        _echo(f"error: {_one_line(exc.code)}")
        return EXIT_ERROR

    code = getattr(exc, "exit_code", None)
    if isinstance(exc, OfaProfileError) and isinstance(code, int):
        # an error that carries its own code: the trainer's clean stop (checkpoint written, 128 + signal)
        if _rank0():
            _echo(("error: " if code == EXIT_USAGE else "") + _one_line(str(exc)))
        return code
    if _state.signum:          # whatever the signal turned into where it arrived
        return _interrupted(_state.signum, interrupted)
    aborted = click is not None and isinstance(exc, click.exceptions.Abort)
    if isinstance(exc, (KeyboardInterrupt, StopSignal)) or aborted:     # e.g. the trainer's second Ctrl-C
        return _interrupted(signal.SIGINT, interrupted)
    if click is not None and isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
        exc.show()             # a group called without a command: its help (on stderr), exit 2
        return exc.exit_code
    if click is not None and isinstance(exc, click.UsageError):
        _echo(_usage_line(exc))
        return EXIT_USAGE
    if click is not None and isinstance(exc, click.ClickException):
        _echo(f"error: {_one_line(exc.format_message())}")
        return exc.exit_code
    if isinstance(exc, OfaProfileError):
        _echo(f"error: {_one_line(str(exc))}")
        return EXIT_ERROR
    if isinstance(exc, BrokenPipeError):     # `ofa-profile ... | head`: nobody reads on; end quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_ERROR
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            _echo(f"error: no space left on the device{where}; free some space and rerun (finished work is kept)")
        else:
            _echo(f"error: {_one_line(exc.strerror or str(exc))}{where}")
        return EXIT_ERROR
    if isinstance(exc, RecursionError):
        _echo("error: the input nests too deeply to be read (RecursionError); it is not a file ofa-profile wrote")
        return EXIT_ERROR
    if isinstance(exc, MemoryError):
        _echo("error: out of memory")
        return EXIT_ERROR
    raise exc


def guarded(body: Callable[[], int | None], interrupted: str) -> int:
    """Run ``body`` with the signal handlers installed; return its exit code (0 for ``None``) or the code
    :func:`report` gives for what it raised."""
    installed = install_signal_handlers()
    try:
        try:
            code = body()
        except BaseException as exc:     # noqa: B902 - every ending is mapped here, a StopSignal included
            return report(exc, interrupted)
        if _state.signum and not _state.handling:    # a library swallowed the StopSignal: still a stop
            _state.handling = True
            return _interrupted(_state.signum, interrupted)
        return code or 0
    finally:
        restore_signal_handlers(installed)


class CliExitCodes:
    """Mixin for a ``click.Command``/``click.Group`` (put it first): ``main`` ends with the exit codes and one
    line of this module instead of click's own handling (which prints usage errors over several lines, turns
    Ctrl-C into exit 1 and lets other errors through as tracebacks).  ``interrupted`` ends the line printed
    after a signal."""

    interrupted = INTERRUPTED

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)  # type: ignore[misc]
        sys.exit(self.run_cli(args, prog_name, complete_var, **extra))

    def run_cli(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
                **extra: Any) -> int:
        """Parse ``args`` (default ``sys.argv[1:]``), run the command, return the exit code (never raises for
        the endings of the module docstring)."""
        extra.pop("windows_expand_args", None)      # click's main() option; arguments here are taken as given

        def body() -> int:
            from click.utils import _detect_program_name

            argv = sys.argv[1:] if args is None else list(args)
            name = prog_name or _detect_program_name()
            self._main_shell_completion(extra, name, complete_var)  # type: ignore[attr-defined]
            with self.make_context(name, argv, **extra) as ctx:  # type: ignore[attr-defined]
                self.invoke(ctx)  # type: ignore[attr-defined]
            return 0
        return guarded(body, self.interrupted)


def stop_handling() -> None:
    """The process only exits from here on (the console script's last step): a signal arriving now is recorded,
    not raised, and the retry timer is off."""
    _state.handling = True
    _cancel_retry()
