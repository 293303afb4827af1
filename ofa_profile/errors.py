"""The one exception type the CLI turns into a one-line message (exit 1), and the subclasses that modules on
different layers raise alike (a LUT error is raised by :mod:`ofa_profile.lut` and by the calibration model below
it, :mod:`ofa_profile.calibration`)."""
from __future__ import annotations


class OfaProfileError(Exception):
    """A user-facing error: its message is one line naming the problem and the fix."""


class SpaceError(OfaProfileError, ValueError):
    """A spec, space name or resolution that does not fit a space (one-line message; raised by
    :mod:`ofa_profile.space` and by the net.config check below it, :mod:`ofa_profile.netconfig`)."""


class LutError(OfaProfileError):
    """A LUT that cannot be read, written or used (one-line message naming the file and the fix)."""


class LutMissError(LutError):
    """The LUT lacks keys a subnet needs (the message names them and says what to measure)."""


class UnsafeInputError(OfaProfileError):
    """A value that would reach another program's command line as something other than data (an ssh option in a
    login name, an ssh option that runs a command on this machine): refused as a usage error, exit 2
    (:mod:`ofa_profile.argsafety`)."""

    exit_code = 2


class RequestError(OfaProfileError):
    """A wrong value (``param_hint`` names the option, as click writes it) or combination of values (``param_hint``
    None) in a command's request record, such as :class:`ofa_profile.pareto_request.ParetoRequest`: the command line
    reports it as a usage error (exit 2)."""

    exit_code = 2

    def __init__(self, message: str, param_hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param_hint = param_hint
