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
from .jsonio import JsonInputError, read_json_file
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


def _as_int(v: Any) -> Any:
    """JSON Schema's "integer" admits ``2.0``; the code downstream gets an ``int``."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _ints(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _ints(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_ints(v) for v in obj]
    return _as_int(obj)


def _check_timing(t: TimingConfig, given: Mapping[str, Any], source: str) -> None:
    """Rules between the timing fields that a JSON Schema cannot state."""
    def val(k: str) -> str:
        return f"{getattr(t, k)}" + ("" if k in given else " (the default)")

    if t.min_runs > t.max_runs:
        raise DeviceError(f"device spec {source} is invalid at timing: min_runs {val('min_runs')} > max_runs "
                          f"{val('max_runs')}; a block would never reach its minimum")


def _check_transport(runtime: str, transport: str, source: str) -> None:
    """Which runtime runs over which transport (a pairing the code would otherwise ignore or fail on late)."""
    if (transport == "adb") != (runtime == "tflite-benchmark"):
        raise DeviceError(f"device spec {source} is invalid: runtime {runtime} over transport {transport}; a phone "
                          f"(adb) runs tflite-benchmark, and tflite-benchmark runs only on a phone")
    if runtime == "torch-cuda" and transport != "local":
        raise DeviceError(f"device spec {source} is invalid: runtime torch-cuda over transport {transport}; "
                          f"torch-cuda runs on this machine's GPU (transport local)")


def parse_device(obj: Any, source: str = "<spec>") -> DeviceSpec:
    """A :class:`DeviceSpec` from a spec's JSON value, validated against the schema and the rules between
    fields (``timing.min_runs <= timing.max_runs``, which runtime over which transport); every problem is one
    :class:`DeviceError`."""
    import jsonschema

    try:
        jsonschema.validate(obj, _schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        msg = " ".join(exc.message.split())
        raise DeviceError(f"device spec {source} is invalid at {where}: "
                          f"{msg if len(msg) <= 200 else msg[:200] + '...'}") from None
    from .space import get_space
    obj = _ints(obj)
    space = obj.get("space", "ofa-mbv3-w1.0")
    try:
        get_space(space)
    except OfaProfileError as exc:
        raise DeviceError(f"device spec {source} is invalid at space: {exc}") from None
    given = obj.get("timing") or {}
    timing = TimingConfig.from_mapping(given)
    _check_timing(timing, given, source)
    _check_transport(obj["runtime"], obj["transport"], source)
    return DeviceSpec(
        name=obj["name"], description=obj["description"], runtime=obj["runtime"], transport=obj["transport"],
        space=space, num_threads=obj.get("num_threads", 1), batch_sizes=tuple(obj.get("batch_sizes", [1])),
        timing=timing, template=obj.get("template", False),
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
        obj = read_json_file(path, "device spec")
    except JsonInputError as exc:
        raise DeviceError(f"{exc}; fix or restore the file") from None
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
