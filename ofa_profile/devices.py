"""Device specs: one validated JSON file per device in ``device_specs/``.

A device = a *runtime* (what runs the model: torch, onnxruntime, litert,
tflite-benchmark, torch-cuda) reached through a *transport* (where: local process,
adb, ssh), with its thread count, batch sizes and timing settings.  Specs are
validated against ``ofa_profile/schemas/device.schema.json`` on load.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import OfaProfileError
from .paths import device_specs_dir, schemas_dir
from .timing import TimingConfig

__all__ = ["DeviceError", "DeviceSpec", "load_device", "list_devices", "device_status"]


class DeviceError(OfaProfileError):
    """Unknown device, malformed spec, or a device that cannot be reached."""


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    description: str
    runtime: str
    transport: str
    space: str = "ofa-mbv3-w1.0"
    num_threads: int = 1
    batch_sizes: tuple[int, ...] = (1,)
    timing: TimingConfig = TimingConfig()
    template: bool = False
    adb: Mapping[str, Any] = field(default_factory=dict)
    ssh: Mapping[str, Any] = field(default_factory=dict)
    cuda: Mapping[str, Any] = field(default_factory=dict)
    path: str = ""

    @property
    def batch_size(self) -> int:
        return self.batch_sizes[0]

    def lut_name(self, batch_size: int | None = None) -> str:
        """File stem of this device's LUT: ``cpu-ort`` or ``cuda-b64`` for a non-default batch."""
        b = self.batch_size if batch_size is None else batch_size
        return self.name if b == self.batch_sizes[0] else f"{self.name}-b{b}"


_SCHEMA: dict | None = None


def _schema() -> dict:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = json.loads((schemas_dir() / "device.schema.json").read_text())
    return _SCHEMA


def parse_device(obj: Any, source: str = "<spec>") -> DeviceSpec:
    import jsonschema

    try:
        jsonschema.validate(obj, _schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise DeviceError(f"device spec {source} is invalid at {where}: {exc.message}") from None
    from .space import get_space
    space = obj.get("space", "ofa-mbv3-w1.0")
    get_space(space)
    return DeviceSpec(
        name=obj["name"], description=obj["description"], runtime=obj["runtime"], transport=obj["transport"],
        space=space, num_threads=obj.get("num_threads", 1), batch_sizes=tuple(obj.get("batch_sizes", [1])),
        timing=TimingConfig.from_mapping(obj.get("timing")), template=obj.get("template", False),
        adb=dict(obj.get("adb", {})), ssh=dict(obj.get("ssh", {})), cuda=dict(obj.get("cuda", {})), path=source)


def load_device(name_or_path: str | Path) -> DeviceSpec:
    """A device by name (``device_specs/NAME.json``) or a path to a spec file."""
    p = Path(name_or_path)
    if p.suffix == ".json" or p.exists():
        path = p
    else:
        path = device_specs_dir() / f"{name_or_path}.json"
        if not path.exists():
            names = ", ".join(s.name for s in list_devices())
            raise DeviceError(f"unknown device {str(name_or_path)!r}; known devices: {names} "
                              f"(or pass a spec file path)")
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise DeviceError(f"device spec {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DeviceError(f"device spec {path} is not valid JSON ({exc}); fix or restore the file") from None
    return parse_device(obj, str(path))


def list_devices() -> list[DeviceSpec]:
    out = []
    for p in sorted(device_specs_dir().glob("*.json")):
        try:
            out.append(load_device(p))
        except DeviceError:
            continue  # a broken spec is reported by `ofa-profile devices`, not here
    return out


def device_status(spec: DeviceSpec) -> tuple[bool, str]:
    """(can it be measured from here now?, why / why not) — cheap checks, no measurement."""
    if spec.template:
        return False, "template: copy it to a new spec file and fill in the connection details"
    if spec.transport == "local":
        from .runtimes import get_runtime
        return get_runtime(spec.runtime, spec.cuda or None).check()
    try:
        from . import transports
    except ImportError:  # pragma: no cover
        return False, f"{spec.transport} transport is not available in this installation"
    return transports.reachable(spec)
