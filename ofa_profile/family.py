"""A search-space family as one record: :class:`Family`, registered with :func:`register_family`.

A family is what differs between OFA's supernet kinds (MobileNetV3, ProxylessNAS): its spaces
(:class:`~ofa_profile.space.Space`: widths, strides, per-stage activations and SE, choice sets), its LUT key
grammar and OFA's table format for it (:class:`KeyGrammar`), the layers of its head (:attr:`Family.head`), the
activations of its fixed layers, and the name OFA's ``net.config`` gives its networks.  Everything else (the op
chain and its enumeration, the layer library, encodings, search) is written once and driven by this data.

One call registers a family and every space of it::

    register_family(Family(name="tiny", description="...", spaces=(space,), grammar=KeyGrammar(...),
                           net_config_name="TinyNets", head=("Conv_1", "Logits"),
                           stem_act="relu", first_block_act="relu", head_act="relu"))

The built-in families are modules of :mod:`ofa_profile.families`; an installed package adds one through the
``ofa_profile.families`` entry point group (:mod:`ofa_profile.plugins`).  This module sits below
:mod:`ofa_profile.space` and :mod:`ofa_profile.ops` (it imports neither): the registries of families and of
spaces (:data:`SPACES`) live here, so a space asks its family for its family's facts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .errors import SpaceError

__all__ = ["HEAD_KINDS", "ACTIVATIONS", "KeyGrammar", "Family", "FAMILIES", "SPACES", "register_family",
           "get_family", "list_families", "family_spaces"]

# The layers a head may have, in the order they run: a 1x1 conv to the space's final_expand_ch (Conv_1), the global
# pool (AvgPool2D), a 1x1 conv to its feature_mix_ch on the pooled map (Conv_2), the classifier (Logits; it pools
# itself when no AvgPool2D comes before it).
HEAD_KINDS = ("Conv_1", "AvgPool2D", "Conv_2", "Logits")
ACTIVATIONS = ("relu", "relu6", "h_swish")        # what the layer library (ofa_profile.blocks) builds


@dataclass(frozen=True)
class KeyGrammar:
    """A family's LUT key grammar: ``key(op)`` and its inverse ``parse(key)`` (raises
    :class:`~ofa_profile.ops.KeyError_`; both take and give :class:`~ofa_profile.ops.Op`), and OFA's YAML latency
    tables of the family: their format id (what ``detect_format`` names), the spread statistic they store beside
    count and mean (``std`` or ``var``), how messages name the format, and ``recognise(table)``: True for a parsed
    table that shows this family's marks (None: recognised by its keys parsing)."""
    family: str
    key: Callable[[Any], str]
    parse: Callable[[str], Any]
    example: str
    table_format: str = ""
    table_stat: str = "std"
    table_name: str = ""
    recognise: "Callable[[Mapping[str, Any]], bool] | None" = None


@dataclass(frozen=True, kw_only=True)
class Family:
    """One family: its spaces (:class:`~ofa_profile.space.Space` objects whose ``family`` is :attr:`name`), its
    key grammar, the head's layers (a sub-sequence of :data:`HEAD_KINDS` ending in ``Logits``), the activations
    of the stem, the fixed first block and the head's convs (one of :data:`ACTIVATIONS`), and the ``name`` of its
    networks in OFA's ``net.config``."""
    name: str
    description: str
    spaces: tuple[Any, ...]
    grammar: KeyGrammar
    net_config_name: str
    head: tuple[str, ...]
    stem_act: str
    first_block_act: str
    head_act: str

    def check(self) -> None:
        """Raise :class:`SpaceError` (one line naming the family) for a record that cannot work."""
        def bad(why: str) -> SpaceError:
            return SpaceError(f"family {self.name!r} cannot be registered: {why}")
        if not isinstance(self.name, str) or not self.name:
            raise bad("its name must be a non-empty string")
        if self.grammar.family != self.name:
            raise bad(f"its key grammar is family {self.grammar.family!r}'s")
        kinds = tuple(self.head)
        if not kinds or kinds[-1] != "Logits" or len(set(kinds)) != len(kinds) or \
                [k for k in HEAD_KINDS if k in kinds] != list(kinds):
            raise bad(f"head {kinds} is not a sub-sequence of {HEAD_KINDS} ending in Logits")
        for what in ("stem_act", "first_block_act", "head_act"):
            if getattr(self, what) not in ACTIVATIONS:
                raise bad(f"{what}={getattr(self, what)!r} is not one of {ACTIVATIONS}")
        if not self.spaces:
            raise bad("it has no space")
        for sp in self.spaces:
            if sp.family != self.name:
                raise bad(f"its space {sp.name} says family {sp.family!r}")
            for st in sp.stages:
                if st.act not in ACTIVATIONS:
                    raise bad(f"space {sp.name} has a stage activation {st.act!r} (one of {ACTIVATIONS})")
            if ("Conv_1" in kinds) != (sp.final_expand_ch > 0) or ("Conv_2" in kinds) != (sp.feature_mix_ch > 0):
                raise bad(f"space {sp.name}'s final_expand_ch {sp.final_expand_ch} / feature_mix_ch "
                          f"{sp.feature_mix_ch} do not fit the head {kinds} (> 0 exactly for Conv_1 / Conv_2)")


# The registries: families by name, and every family's spaces by name (ofa_profile.space re-exports SPACES)
FAMILIES: dict[str, Family] = {}
SPACES: dict[str, Any] = {}


def register_family(family: Family) -> Family:
    """Register a family and its spaces (the built-in family modules and plug-ins call it once on import).  The
    same record again is a no-op; another record under a registered family or space name is refused."""
    family.check()
    old = FAMILIES.get(family.name)
    if old is not None:
        if old == family:
            return old
        raise SpaceError(f"family {family.name!r} is registered twice with different definitions")
    for sp in family.spaces:
        if sp.name in SPACES and SPACES[sp.name] != sp:
            raise SpaceError(f"space {sp.name} of family {family.name!r} is already registered (family "
                             f"{SPACES[sp.name].family!r}); give it another name")
    FAMILIES[family.name] = family
    for sp in family.spaces:
        SPACES[sp.name] = sp
    return family


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise SpaceError(f"unknown family {name!r} (known: {', '.join(sorted(FAMILIES))})")
    return FAMILIES[name]


def list_families() -> list[str]:
    """The registered families' names, sorted."""
    return sorted(FAMILIES)


def family_spaces(family: str) -> list[str]:
    """The names of one family's spaces, in the order the family lists them."""
    return [sp.name for sp in get_family(family).spaces]
