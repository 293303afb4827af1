"""Search-space families: each module registers one :class:`~ofa_profile.family.Family` record on import.

A family owns what differs between OFA's supernet kinds: the spaces (widths, strides, activations, SE, depth
choices: data in :class:`~ofa_profile.space.Space`), the LUT key grammar (:class:`~ofa_profile.family.KeyGrammar`)
and OFA's table format for it (import/export, :mod:`ofa_profile.lut_ofa`), the head's layers, the fixed layers'
activations and the net.config name.  What every family shares is written once and driven by that data: the op
chain and its enumeration (:mod:`ofa_profile.ops`), the layer library (:mod:`ofa_profile.blocks`), calibration
features, encodings, search.

Adding a family: a module that builds its :class:`~ofa_profile.space.Space` objects and calls
``register_family(Family(...))`` once, either here (and an import line below) or in an installed package that
names the module in the ``ofa_profile.families`` entry point group (:mod:`ofa_profile.plugins`); the installed
ones are loaded right after the built-in ones, so every listing and ``--space`` choice has them.  The tests loop
over :func:`list_families` / :data:`~ofa_profile.space.SPACES`.

    >>> from ofa_profile.families import list_families
    >>> [f for f in list_families() if f in ("mbv3", "proxyless")]
    ['mbv3', 'proxyless']
"""
from __future__ import annotations

from ..errors import OfaProfileError
from ..family import family_spaces, list_families
from ..plugins import FAMILY_GROUP, load_plugins
from . import mbv3, proxyless  # noqa: F401  (registration)

__all__ = ["list_families", "family_spaces", "plugin_error"]

_PLUGIN_ERROR: OfaProfileError | None = None


def plugin_error() -> OfaProfileError | None:
    """The error of a family plug-in that failed to load when the package was imported (None: all loaded).  The
    command line ends with it in one line (it cannot be raised while the package imports)."""
    return _PLUGIN_ERROR


try:
    load_plugins((FAMILY_GROUP,))
except OfaProfileError as _exc:
    _PLUGIN_ERROR = _exc
