"""A device spec as a value: :class:`DeviceSpec` and :class:`DeviceError`.

A module of its own below the transports (which take a spec) and :mod:`ofa_profile.devices` (which reads,
validates and lists spec files, and asks the transports whether a device is reachable), so that neither imports
the other's layer; both names are re-exported by :mod:`ofa_profile.devices`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import OfaProfileError
from .space import DEFAULT_SPACE
from .timing import TimingConfig

__all__ = ["DeviceError", "DeviceSpec"]


class DeviceError(OfaProfileError):
    """Unknown device, malformed spec, or a device that cannot be reached."""


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

    @property
    def batch_size(self) -> int:
        return self.batch_sizes[0]

    def lut_name(self, batch_size: int | None = None) -> str:
        """File stem of this device's LUT: ``cpu-ort`` or ``cuda-b64`` for a non-default batch."""
        b = self.batch_size if batch_size is None else batch_size
        return self.name if b == self.batch_sizes[0] else f"{self.name}-b{b}"
