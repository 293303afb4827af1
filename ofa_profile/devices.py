"""Device specs: one validated JSON file per device in ``device_specs/``.

A device = a *runtime* (what runs the model: one of :func:`ofa_profile.runtimes.list_runtimes`) reached
through a *transport* (where: one of :func:`ofa_profile.transports.list_transports`), with its thread count,
batch sizes and timing settings.  Specs are validated against ``ofa_profile/schemas/device.schema.json`` on
load (its runtime and transport enums are the registries' names: tests/test_architecture.py), against the
runtime registry's pairings of runtime and transport, and the spec's ``runtime_options`` and
``transport_options`` against the options that runtime and transport declare in their registry entries
(:mod:`ofa_profile.options`; a plug-in's older named section, ``cuda``, ``adb`` or ``ssh``, is read the same way).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from .argsafety import shell_command
from .devicespec import DeviceError, DeviceSpec, UnsafeDeviceError
from .errors import OfaProfileError
from .jsonio import JsonInputError, read_json_file
from .options import Option, OptionError, UnsafeOptionError, check_options, option_from_text
from .paths import device_specs_dir, schemas_dir
from .plugins import plugin_spec_dirs
from .runtimes import RUNTIMES, list_runtimes, runtime_info
from .space import DEFAULT_SPACE, get_space, space_names
from .timing import TimingConfig
from .transports import get_transport, list_transports, reachable

__all__ = ["DeviceError", "UnsafeDeviceError", "DeviceSpec", "load_device", "allow_ssh_options", "list_devices",
           "device_status", "device_table", "plugin_options", "with_transport_options", "transport_options_from_text",
           "with_threads"]


_SCHEMA: dict | None = None


def _schema() -> dict:
    """The device schema with its ``runtime``, ``transport`` and ``space`` enums set to the registries' names now
    (a space by its name or OFA's id), so that a plug-in registered at run time is valid in a spec, and the plug-ins' named sections (``cuda``, ``adb``,
    ``ssh``) left to the registries' checks (:func:`_spec_options`: one message for every plug-in).  The file
    states the built-in names and options for readers; tests/test_architecture.py compares them with the
    registries."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = json.loads((schemas_dir() / "device.schema.json").read_text())
    props = dict(_SCHEMA["properties"])
    props["runtime"] = {**props["runtime"], "enum": list_runtimes()}
    props["transport"] = {**props["transport"], "enum": list_transports()}
    props["space"] = {**props["space"], "enum": space_names()}
    for section in _sections():
        props[section] = {"type": "object"}
    return {**_SCHEMA, "properties": props}


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


def plugin_options(kind: str, name: str) -> tuple[tuple[Option, ...], str | None]:
    """(the options, the older named section) that runtime or transport ``name`` declares in its registry entry;
    ``kind`` is ``runtime`` or ``transport``."""
    entry = runtime_info(name) if kind == "runtime" else get_transport(name)
    return entry.options, entry.section


def _sections() -> dict[str, tuple[str, str]]:
    """Every registered plug-in's older named section -> (kind, plug-in name)."""
    out: dict[str, tuple[str, str]] = {}
    for kind, names in (("runtime", list_runtimes()), ("transport", list_transports())):
        for n in names:
            section = plugin_options(kind, n)[1]
            if section:
                out[section] = (kind, n)
    return out


def _spec_options(obj: Mapping[str, Any], kind: str, source: str) -> dict[str, Any]:
    """The spec's options of its runtime or transport (``kind``), from ``<kind>_options`` or the plug-in's named
    section, checked against the registry's declaration, defaults filled in."""
    name = obj[kind]
    options, section = plugin_options(kind, name)
    where = f"{kind}_options"
    given = obj.get(where)
    if section and section in obj:
        if given is not None:
            raise DeviceError(f"device spec {source} is invalid: give {kind} {name}'s options once, in {where} or "
                              f"in {section}, not both")
        where, given = section, obj[section]
    try:
        return check_options(f"{kind} {name}", options, given)
    except UnsafeOptionError as exc:
        raise UnsafeDeviceError(f"device spec {source} is invalid at {where}: {exc}") from None
    except OptionError as exc:
        raise DeviceError(f"device spec {source} is invalid at {where}: {exc}") from None


def _check_sections(obj: Mapping[str, Any], source: str) -> None:
    """A plug-in's named section in a spec of another plug-in would be ignored: refused instead."""
    for key, (kind, owner) in _sections().items():
        if key in obj and obj[kind] != owner:
            raise DeviceError(f"device spec {source} is invalid at {key}: it holds the options of {kind} {owner}, "
                              f"and this spec's {kind} is {obj[kind]}; remove it, or set {kind}_options")


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
        if where == "space" and exc.validator == "enum":      # the space registry's own line (names, not ids)
            try:
                get_space(obj["space"])
            except OfaProfileError as e:
                msg = str(e)
        raise DeviceError(f"device spec {source} is invalid at {where}: "
                          f"{msg if len(msg) <= 200 else msg[:200] + '...'}") from None
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
    _check_sections(obj, source)
    return DeviceSpec(
        name=obj["name"], description=obj["description"], runtime=obj["runtime"], transport=obj["transport"],
        space=space, num_threads=obj.get("num_threads", 1), batch_sizes=tuple(obj.get("batch_sizes", [1])),
        timing=timing, template=obj.get("template", False), runtime_options=_spec_options(obj, "runtime", source),
        transport_options=_spec_options(obj, "transport", source), path=source)


def transport_options_from_text(spec: DeviceSpec, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``measure --transport-option KEY=VALUE`` pairs as values of ``spec``'s transport's declared options (text
    parsed by type: :func:`ofa_profile.options.option_from_text`); an unknown key or a bad value raises
    :class:`~ofa_profile.options.OptionError` naming the transport's options."""
    options, _ = plugin_options("transport", spec.transport)
    return {k: option_from_text(f"transport {spec.transport}", options, k, v) for k, v in pairs}


def with_transport_options(spec: DeviceSpec, overrides: Mapping[str, Any]) -> DeviceSpec:
    """``spec`` with some transport options replaced (the command line's ``--transport-option`` and the transports'
    shorthands), checked against the transport's declared options like a spec's
    (:class:`~ofa_profile.options.OptionError`)."""
    if not overrides:
        return spec
    options, _ = plugin_options("transport", spec.transport)
    merged = check_options(f"transport {spec.transport}", options, {**spec.transport_options, **overrides})
    return dataclasses.replace(spec, transport_options=merged)


MAX_THREADS = 256     # the device schema's num_threads maximum


def with_threads(spec: DeviceSpec, threads: int | None) -> DeviceSpec:
    """``spec`` run with ``threads`` intra-op threads (the command line's ``--threads``; None: as the spec says).
    Only this machine's CPU runtimes (transport ``local``, runtime torch/onnxruntime/litert) take it: a phone's
    or a board's threads are set in its spec file (:class:`DeviceError` otherwise, one line)."""
    if threads is None or threads == spec.num_threads:
        return spec
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise DeviceError(f"threads must be an integer from 1 to {MAX_THREADS}, not {threads!r}")
    if spec.transport != "local" or spec.runtime not in RUNTIMES:
        raise DeviceError(f"--threads applies to this machine's CPU runtimes ({', '.join(RUNTIMES)}); device "
                          f"{spec.name} runs {spec.runtime} over {spec.transport}: set num_threads in a copy of its "
                          f"spec file instead")
    return dataclasses.replace(spec, num_threads=int(threads))


def allow_ssh_options(spec: DeviceSpec, names: Sequence[str]) -> DeviceSpec:
    """``spec`` with the ssh ``-o`` options ``names`` allowed beyond the safe ones (the command line's
    ``--allow-ssh-option NAME``: :mod:`ofa_profile.argsafety`); a name that is no option name is refused."""
    if not names:
        return spec
    for n in names:
        if not n or not n.isalnum() or not n[0].isalpha():
            raise UnsafeDeviceError(f"--allow-ssh-option {n!r} is not an ssh option name (e.g. ProxyCommand)")
    if spec.transport != "ssh":
        raise UnsafeDeviceError(f"--allow-ssh-option applies to ssh boards, and device {spec.name}'s transport is "
                                f"{spec.transport}")
    return dataclasses.replace(spec, allow_ssh_options=tuple(names))


def load_device(name_or_path: str | Path) -> DeviceSpec:
    """A device by name (``device_specs/NAME.json``) or a path to a spec file."""
    p = Path(name_or_path)
    if p.suffix == ".json" or p.exists():
        path = p
    else:
        path = next((d / f"{name_or_path}.json" for d in spec_dirs() if (d / f"{name_or_path}.json").exists()),
                    device_specs_dir() / f"{name_or_path}.json")
        if not path.exists():
            raise DeviceError(f"unknown device {str(name_or_path)!r}; {_device_hint(str(name_or_path))}")
    try:
        obj = read_json_file(path, "device spec")
    except JsonInputError as exc:
        raise DeviceError(f"{exc}; fix or restore the file") from None
    return parse_device(obj, str(path))


def _device_hint(name: str) -> str:
    """What to do about an unknown device name: the spec file ``NAME.json`` beside it, or the nearest known name,
    and the known ones."""
    import difflib

    names = [s.name for s in list_devices()]
    known = f"known devices: {', '.join(names)}"
    own = Path(f"{name}.json")
    if own.is_file():
        return f"{shell_command(str(own))} lies here: pass it (a spec file path); {known}"
    near = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return (f"did you mean {near[0]}? " if near else "") + f"{known} (or pass a spec file path)"


def spec_dirs() -> list[Path]:
    """Where device specs are found by name: the shipped ``device_specs/``, then the folders of installed plug-ins
    (:func:`ofa_profile.plugins.plugin_spec_dirs`)."""
    return [device_specs_dir(), *plugin_spec_dirs()]


def _spec_files() -> list[Path]:
    """Every spec file of :func:`spec_dirs`, one per name (a shipped spec wins over a plug-in's of the same name)."""
    seen: dict[str, Path] = {}
    for d in spec_dirs():
        for p in sorted(d.glob("*.json")):
            seen.setdefault(p.stem, p)
    return list(seen.values())


def list_devices() -> list[DeviceSpec]:
    out = []
    for p in _spec_files():
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
    for p in _spec_files():
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
