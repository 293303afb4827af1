"""Device specs: one validated JSON file per device in ``device_specs/``.

A device = a *runtime* (what runs the model: one of :func:`ofa_profile.runtimes.list_runtimes`) reached
through a *transport* (where: one of :func:`ofa_profile.transports.list_transports`), with its thread count,
batch sizes and timing settings.  Specs are validated against ``ofa_profile/schemas/device.schema.json`` on
load (its runtime and transport enums are the registries' names: tests/test_architecture.py) and against the
runtime registry's pairings of runtime and transport.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from .devicespec import DeviceError, DeviceSpec
from .errors import OfaProfileError
from .jsonio import JsonInputError, read_json_file
from .paths import device_specs_dir, schemas_dir
from .runtimes import list_runtimes, runtime_info
from .timing import TimingConfig
from .transports import reachable

__all__ = ["DeviceError", "DeviceSpec", "load_device", "list_devices", "device_status", "device_table"]


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
    """Which runtime runs over which transport (a pairing the code would otherwise ignore or fail on late): the
    transports the runtime registry names for it (:func:`ofa_profile.runtimes.runtime_info`)."""
    allowed = runtime_info(runtime).transports
    if transport not in allowed:
        also = [r for r in list_runtimes(transport) if r != runtime]
        raise DeviceError(f"device spec {source} is invalid: runtime {runtime} over transport {transport}; "
                          f"{runtime} runs over {' or '.join(allowed)} only"
                          + (f", and transport {transport} runs {', '.join(also)}" if also else ""))


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
    from .space import DEFAULT_SPACE, get_space
    obj = _ints(obj)
    space = obj.get("space", DEFAULT_SPACE)
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
    """(can it be measured from here now?, why / why not) — cheap checks, no measurement: its transport's
    (:func:`ofa_profile.transports.reachable`)."""
    return reachable(spec)


def device_table() -> list[dict[str, Any]]:
    """One row per spec file of ``device_specs/``: name, runtime, transport, whether it can be measured from here
    now and why (:func:`device_status`), description; a spec that does not load is a row naming its error."""
    rows: list[dict[str, Any]] = []
    for p in sorted(device_specs_dir().glob("*.json")):
        try:
            d = load_device(p)
        except DeviceError as exc:
            rows.append({"name": p.stem, "runtime": "?", "transport": "?", "available": False, "reason": str(exc)})
            continue
        try:
            ok, why = device_status(d)
        except Exception as exc:  # a probe must never break the listing
            ok, why = False, f"check failed: {exc}"
        rows.append({"name": d.name, "runtime": d.runtime, "transport": d.transport, "available": ok,
                     "reason": why, "description": d.description})
    return rows
