"""Plug-ins from outside the tree: installed packages that add search-space families, runtimes, transports or
device specs.

A package declares Python entry points (``[project.entry-points."ofa_profile.runtimes"]`` in its pyproject, or
``entry_points={"ofa_profile.runtimes": [...]}`` in setup.py):

``ofa_profile.families``, ``ofa_profile.transports``, ``ofa_profile.runtimes``
    each names a module, imported once: it registers what it adds with the registry's own call
    (:func:`ofa_profile.family.register_family`, :func:`ofa_profile.transports.register_transport`,
    :func:`ofa_profile.runtimes.register_runtime`), exactly as a built-in module does;
``ofa_profile.device_specs``
    names an object that is (or returns) a folder of device spec files (``NAME.json``), listed by ``ofa-profile
    devices`` and found by ``--device NAME`` after the shipped ones.

The runtime and transport registries call :func:`load_plugins` before they answer, so a plug-in's runtime is valid
in a device spec (the schema's enums are the registries' names) and shows in every listing.  The families are
loaded when :mod:`ofa_profile.families` is imported (right after the built-in ones), so a plug-in's spaces are in
:data:`~ofa_profile.space.SPACES`, every ``--space`` choice and every help text that lists the spaces.  A plug-in that fails to load is
reported in one line naming its package and entry point, never a traceback.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import OfaProfileError

__all__ = ["GROUPS", "FAMILY_GROUP", "SPEC_GROUP", "load_plugins", "plugin_spec_dirs"]

FAMILY_GROUP = "ofa_profile.families"
GROUPS = ("ofa_profile.transports", "ofa_profile.runtimes")
SPEC_GROUP = "ofa_profile.device_specs"

_loaded: dict[tuple[str, ...], list[str]] = {}
_loading: set[tuple[str, ...]] = set()


def _entry_points(group: str) -> list[Any]:
    from importlib.metadata import entry_points
    return sorted(entry_points(group=group), key=lambda ep: ep.name)


def _where(ep: Any) -> str:
    dist = getattr(getattr(ep, "dist", None), "name", None)
    return f"plug-in {ep.name!r} ({ep.group} = {ep.value}" + (f", package {dist}" if dist else "") + ")"


def load_plugins(groups: tuple[str, ...] = GROUPS) -> list[str]:
    """Import every installed plug-in module of ``groups`` (default :data:`GROUPS`: transports first, then
    runtimes) once; the names of the entry points loaded.  A module that fails to import is one error line (and
    is tried again next time)."""
    groups = tuple(groups)
    if groups in _loaded or groups in _loading:
        return list(_loaded.get(groups, []))
    _loading.add(groups)              # a plug-in module that asks a registry while it registers is not reloaded
    try:
        names = []
        for group in groups:
            for ep in _entry_points(group):
                try:
                    ep.load()
                except Exception as exc:  # a broken plug-in: one line naming it
                    raise OfaProfileError(f"{_where(ep)} does not load: {type(exc).__name__}: "
                                          f"{' '.join(str(exc).split())[:200]}; fix or uninstall it") from None
                names.append(f"{group}:{ep.name}")
        _loaded[groups] = names
    finally:
        _loading.discard(groups)
    return list(names)


def plugin_spec_dirs() -> list[Path]:
    """The folders of device spec files the installed plug-ins provide (:data:`SPEC_GROUP`), in name order."""
    out = []
    for ep in _entry_points(SPEC_GROUP):
        try:
            obj = ep.load()
            d = Path(obj() if callable(obj) else obj)
        except Exception as exc:
            raise OfaProfileError(f"{_where(ep)} does not load: {type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())[:200]}; fix or uninstall it") from None
        if d.is_dir():
            out.append(d)
    return out
