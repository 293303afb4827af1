"""A device spec as a value: :class:`DeviceSpec` and :class:`DeviceError`.

A module of its own below the transports (which take a spec) and :mod:`ofa_profile.devices` (which reads,
validates and lists spec files, and asks the transports whether a device is reachable), so that neither imports
the other's layer; both names are re-exported by :mod:`ofa_profile.devices`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import OfaProfileError, UnsafeInputError
from .space import DEFAULT_SPACE
from .timing import TimingConfig

__all__ = ["DeviceError", "UnsafeDeviceError", "DeviceSpec"]


class DeviceError(OfaProfileError):
    """Unknown device, malformed spec, or a device that cannot be reached."""


class UnsafeDeviceError(DeviceError, UnsafeInputError):
    """A device spec value that would reach a command line on this machine as something other than data, or an
    ssh option that the command line did not allow (:mod:`ofa_profile.argsafety`): exit 2."""


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    description: str
    runtime: str
    transport: str
    space: str = DEFAULT_SPACE
    num_threads: int = 1
    batch_sizes: tuple[int, ...] = (1,)
    timing: TimingConfig = TimingConfig()
    template: bool = False
    #: the runtime's options (:attr:`ofa_profile.runtimes.RuntimeInfo.options`), checked and with defaults
    runtime_options: Mapping[str, Any] = field(default_factory=dict)
    #: the transport's options (:attr:`ofa_profile.transports.Transport.options`), checked and with defaults
    transport_options: Mapping[str, Any] = field(default_factory=dict)
    path: str = ""
    #: ssh ``-o`` options beyond :data:`ofa_profile.argsafety.SAFE_SSH_OPTIONS` that the command line allowed
    #: (``--allow-ssh-option``); never read from a spec file
    allow_ssh_options: tuple[str, ...] = ()

    @property
    def batch_size(self) -> int:
        return self.batch_sizes[0]

    def lut_name(self, batch_size: int | None = None) -> str:
        """File stem of this device's LUT: ``cpu-ort`` or ``cuda-b64`` for a non-default batch."""
        b = self.batch_size if batch_size is None else batch_size
        return self.name if b == self.batch_sizes[0] else f"{self.name}-b{b}"
