"""Search-space families: each module registers its spaces and its LUT key grammar on import.

A family owns what differs between OFA's supernet kinds: the spaces (widths, strides, activations, SE, head,
depth choices: data in :class:`~ofa_profile.space.Space`), the LUT key grammar (:class:`~ofa_profile.ops.KeyGrammar`)
and OFA's table format for it (import/export, :mod:`ofa_profile.lut`).  What every family shares is written
once and driven by that data: the op chain and its enumeration (:mod:`ofa_profile.ops`), the layer library
(:mod:`ofa_profile.blocks`), calibration features, encodings, search.

Adding a family: a module here that builds its :class:`~ofa_profile.space.Space` objects, calls
:func:`~ofa_profile.space.register_space` for each and :func:`~ofa_profile.ops.register_grammar` once, and an
import line below.  The tests loop over :func:`list_families` / :data:`~ofa_profile.space.SPACES`.

    >>> from ofa_profile.families import list_families
    >>> list_families()
    ['mbv3', 'proxyless']
"""
from __future__ import annotations

from ..ops import _GRAMMARS
from ..space import SPACES
from . import mbv3, proxyless  # noqa: F401  (registration)

__all__ = ["list_families", "family_spaces"]


def list_families() -> list[str]:
    return sorted(_GRAMMARS)


def family_spaces(family: str) -> list[str]:
    return [n for n, s in SPACES.items() if s.family == family]
