"""The elastic search spaces (OFA's MobileNetV3 and ProxylessNAS families, and any family a plug-in registers).

A *space* fixes the macro-architecture (widths, strides, activations, SE) and the
per-block choices (kernel, expand ratio), per-stage depth and input resolution.
A *subnet spec* (:class:`SubnetSpec`) picks one value for each choice.  It reads
and writes OFA's own formats: the spec dict ``{"ks": [20], "e": [20], "d": [5],
"r": R}`` and a specialised network's ``net.config`` JSON.

Registered spaces (see :data:`SPACES`; each family registers its own with its :class:`~ofa_profile.family.Family`
record, :func:`~ofa_profile.family.register_family`):

``ofa-mbv3-w1.0``       OFA ``ofa_mbv3_d234_e346_k357_w1.0``
``ofa-mbv3-w1.2``       the same at width multiplier 1.2 (OFA's Note10 LUT space)
``compofa-mbv3-w1.0``   CompOFA compound space: per stage d in {2,3,4}, expand
                        coupled to depth (2->3, 3->4, 4->6), fixed kernel per stage.
``ofa-proxyless-w1.3``  OFA ``ofa_proxyless_d234_e346_k357_w1.3`` (ProxylessNAS family, ReLU6, no SE)
"""
from __future__ import annotations

import dataclasses
import itertools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from .errors import SpaceError
from .family import SPACES, Family, get_family
from .jsonio import JsonInputError, read_json_file
from .netconfig import check_net_config, has_identity_skip

__all__ = [
    "SpaceError", "StageDef", "Space", "SubnetSpec", "SPACES", "get_space", "space_names",
    "make_divisible", "parse_resolutions", "has_identity_skip",
]


def make_divisible(v: float, divisor: int = 8, min_val: int | None = None) -> int:
    """OFA's / TF's channel rounding: nearest multiple of ``divisor``, never < 90 % of ``v``."""
    if min_val is None:
        min_val = divisor
    new_v = max(min_val, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


@dataclass(frozen=True)
class StageDef:
    """One elastic stage: output width, stride of its first block, activation, squeeze-excite, and (when it
    differs from the space's) its depth choices (ProxylessNAS's last stage is one block: ``depths=(1,)``)."""
    width: int
    stride: int
    act: str  # "relu" | "h_swish" | "relu6"
    se: bool
    depths: tuple[int, ...] = ()   # () = the space's depths


RESOLUTIONS = tuple(range(128, 225, 4))
# Every input resolution a subnet may be measured and predicted at (latency): the supernet's 128..224 and, above it,
# those OFA's finetuned specialized nets use (228..260) and a margin beyond, in the same steps of 4.  Search, sampling
# and the accuracy predictors keep to RESOLUTIONS (what the supernet was trained at).
RUN_RESOLUTIONS = tuple(range(128, 321, 4))


@dataclass(frozen=True, kw_only=True)
class Space:
    """An elastic space of a family (MobileNetV3, ProxylessNAS, a plug-in's). Construct through :func:`get_space`.

    Every stage has ``max_depth`` block slots (``n_blocks = n_stages * max_depth``); a stage whose depth
    choices stop below ``max_depth`` leaves its last slots always skipped.  OFA's own spec lists hold only the
    slots a stage can use (``ofa_block_slots``); :meth:`SubnetSpec.from_ofa` / :meth:`SubnetSpec.to_ofa`
    convert.  What every space of a family shares (the head's layers, the fixed layers' activations, the
    net.config name, the key grammar) is the family's record (:attr:`family_def`)."""
    name: str
    family: str
    ofa_id: str
    width_mult: float
    stem_ch: int
    first_block_ch: int
    stages: tuple[StageDef, ...]
    final_expand_ch: int
    feature_mix_ch: int
    depths: tuple[int, ...]
    expands: tuple[int, ...]
    kernels: tuple[int, ...]
    n_classes: int = 1000
    resolutions: tuple[int, ...] = RESOLUTIONS
    run_resolutions: tuple[int, ...] = RUN_RESOLUTIONS
    max_depth: int = 4
    compound: bool = False
    # a compound space (CompOFA): expand ratio as a function of stage depth, and the fixed kernel of each stage
    compound_expand: tuple[tuple[int, int], ...] = ()
    compound_kernels: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.compound and (not self.compound_expand or len(self.compound_kernels) != len(self.stages)):
            raise SpaceError(f"compound space {self.name} needs compound_expand and one compound kernel per stage")

    @property
    def family_def(self) -> Family:
        """The space's family record (:func:`ofa_profile.family.get_family`)."""
        return get_family(self.family)

    @property
    def net_config_name(self) -> str:
        return self.family_def.net_config_name

    @property
    def stem_act(self) -> str:
        return self.family_def.stem_act

    @property
    def first_block_act(self) -> str:
        return self.family_def.first_block_act

    @property
    def head_act(self) -> str:
        return self.family_def.head_act

    @property
    def n_stages(self) -> int:
        return len(self.stages)

    def resolution_text(self) -> str:
        """How messages name the resolutions a subnet may have: the supernet's and the latency-only ones above."""
        r, run = self.resolutions, self.run_resolutions
        above = [v for v in run if v > r[-1]]
        more = f" (the supernet's; {above[0]}..{above[-1]} for latency only)" if above else ""
        return f"{r[0]}..{r[-1]}{more} in steps of 4"

    def check_resolution(self, r: Any, what: str = "r") -> None:
        """Refuse (:class:`SpaceError`, one line) a resolution no subnet of the space runs at: one outside
        :attr:`run_resolutions` (the supernet's :attr:`resolutions`, and above them the latency-only ones)."""
        if r not in self.run_resolutions:
            raise SpaceError(f"{what}={r!r} is not in the space: use {self.resolution_text()}")

    def stage_depths(self, stage: int) -> tuple[int, ...]:
        """The depth choices of one stage."""
        return self.stages[stage].depths or self.depths

    @property
    def ofa_block_slots(self) -> tuple[int, ...]:
        """The block slots OFA's spec lists (``ks``/``e``) hold, in order: every slot a stage can use."""
        return tuple(s * self.max_depth + b for s in range(self.n_stages) for b in range(max(self.stage_depths(s))))

    def macro(self) -> tuple:
        """What "the same macro-architecture" means (one supernet, one LUT grammar, one encoding serve both):
        family, widths, strides, activations, SE, depth slots.  Choice sets and resolutions may differ."""
        return (self.family, self.stem_ch, self.first_block_ch, self.stages, self.final_expand_ch,
                self.feature_mix_ch, self.max_depth, self.stem_act, self.first_block_act, self.head_act)

    @property
    def n_blocks(self) -> int:
        return self.n_stages * self.max_depth

    def mid_channels(self, in_ch: int, expand: float) -> int:
        """Middle (expanded) channels of an MBConv block: make_divisible(round(in * e), 8)."""
        return make_divisible(round(in_ch * expand), 8)

    @staticmethod
    def se_channels(mid_ch: int) -> int:
        """Squeeze-excite hidden channels: make_divisible(mid // 4, 8)."""
        return make_divisible(mid_ch // 4, 8)

    def stage_in_channels(self, stage: int) -> int:
        return self.first_block_ch if stage == 0 else self.stages[stage - 1].width

    def size(self, per_resolution: bool = True) -> int:
        """Number of distinct subnets (active blocks only)."""
        if self.compound:
            n = len(self.depths) ** self.n_stages
        else:
            per_block = len(self.kernels) * len(self.expands)
            n = 1
            for s in range(self.n_stages):
                n *= sum(per_block ** d for d in self.stage_depths(s))
        return n if per_resolution else n * len(self.resolutions)

    # -- sampling ---------------------------------------------------------------------------
    def sample(self, rng: random.Random | int, resolution: int | Sequence[int] | None = None) -> "SubnetSpec":
        """Uniformly sample a subnet. ``rng`` is a ``random.Random`` or an int seed."""
        if isinstance(rng, int):
            rng = random.Random(rng)
        if resolution is None:
            r = rng.choice(self.resolutions)
        elif isinstance(resolution, int):
            r = resolution
        else:
            r = rng.choice(list(resolution))
        d = tuple(rng.choice(self.stage_depths(s)) for s in range(self.n_stages))
        if self.compound:
            return self.compound_spec(d, r)
        ks = tuple(rng.choice(self.kernels) for _ in range(self.n_blocks))
        e = tuple(rng.choice(self.expands) for _ in range(self.n_blocks))
        return SubnetSpec(self.name, ks, e, d, r).validated()

    def compound_spec(self, d: Sequence[int], r: int) -> "SubnetSpec":
        """CompOFA subnet from per-stage depths (expand and kernel follow from them)."""
        emap = dict(self.compound_expand)
        ks: list[int] = []
        e: list[int] = []
        for s, ds in enumerate(d):
            if ds not in emap:
                raise SpaceError(f"d[{s}]={ds} is not one of {sorted(emap)}")
            ks += [self.compound_kernels[s]] * self.max_depth
            e += [emap[ds]] * self.max_depth
        return SubnetSpec(self.name, tuple(ks), tuple(e), tuple(d), int(r)).validated()

    def largest(self, r: int = 224) -> "SubnetSpec":
        if self.compound:
            return self.compound_spec([max(self.depths)] * self.n_stages, r)
        return SubnetSpec(self.name, (max(self.kernels),) * self.n_blocks, (max(self.expands),) * self.n_blocks,
                          tuple(max(self.stage_depths(s)) for s in range(self.n_stages)), r)

    def smallest(self, r: int = 224) -> "SubnetSpec":
        if self.compound:
            return self.compound_spec([min(self.depths)] * self.n_stages, r)
        return SubnetSpec(self.name, (min(self.kernels),) * self.n_blocks, (min(self.expands),) * self.n_blocks,
                          tuple(min(self.stage_depths(s)) for s in range(self.n_stages)), r)

    def iter_compound(self, r: int) -> Iterator["SubnetSpec"]:
        """All subnets of a compound space at one resolution (243 for CompOFA)."""
        if not self.compound:
            raise SpaceError(f"space {self.name} is not a compound space; iterate only compound spaces")
        for d in itertools.product(self.depths, repeat=self.n_stages):
            yield self.compound_spec(d, r)


DEFAULT_SPACE = "ofa-mbv3-w1.0"


def space_names() -> list[str]:
    """Every name :func:`get_space` takes: the registered spaces' names, then OFA's ids of the non-compound ones."""
    return list(dict.fromkeys([*SPACES, *(s.ofa_id for s in SPACES.values() if not s.compound)]))


def get_space(name: str | Space) -> Space:
    if isinstance(name, Space):
        return name
    alias = {s.ofa_id: k for k, s in SPACES.items() if not s.compound}
    key = alias.get(name, name)
    if key not in SPACES:
        raise SpaceError(f"unknown space {name!r}; choose one of {', '.join(SPACES)}")
    return SPACES[key]


def _sibling(space: Space, compound: bool) -> Space:
    if space.compound == compound:
        return space
    for s in SPACES.values():
        if s.compound == compound and s.macro() == space.macro():
            return s
    kind = "compound" if compound else "full (non-compound)"
    raise SpaceError(f"no registered {kind} space shares the macro-architecture of {space.name}")


def full_space(space: str | Space) -> Space:
    """The non-compound space with the same macro-architecture (a supernet's full choice set; the space itself
    unless it is compound)."""
    return _sibling(get_space(space), False)


def compound_space(space: str | Space) -> Space:
    """The CompOFA (compound) space with the same macro-architecture."""
    return _sibling(get_space(space), True)


def parse_resolutions(text: str | Sequence[int] | None, space: Space | str = DEFAULT_SPACE) -> tuple[int, ...]:
    """Parse ``"160,224"``, ``"128-224"`` (every step-4 value of the space between) or ``"all"`` (the supernet's
    resolutions).  Values above the supernet's (``228-260``: :attr:`Space.run_resolutions`) are for latency."""
    sp = get_space(space)
    if text is None or text == "all":
        return sp.resolutions
    if not isinstance(text, str):
        vals = [int(v) for v in text]
    else:
        vals = []
        for part in text.replace(" ", "").split(","):
            if not part:
                continue
            try:
                if "-" in part:
                    lo, hi = (int(x) for x in part.split("-", 1))
                    vals += [r for r in sp.run_resolutions if lo <= r <= hi]
                else:
                    vals.append(int(part))
            except ValueError:
                raise SpaceError(f"bad resolution list {text!r}; write e.g. 160,224 or 128-224") from None
    bad = [v for v in vals if v not in sp.run_resolutions]
    if bad or not vals:
        raise SpaceError(f"resolution(s) {bad or text} not in the space: use {sp.resolution_text()}")
    return tuple(sorted(set(vals)))


def _short(v: Any, n: int = 60) -> str:
    t = repr(v)
    return t if len(t) <= n else t[:n] + "..."


def _strict_int(v: Any, what: str, kind: str = "integer") -> int:
    """An integer read from JSON: an int or a float with an integer value (``3.0``); a bool, a string, a
    fraction (``160.5``) or a non-finite number is refused, never rounded."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not v.is_integer()):
        raise SpaceError(f"{what}={_short(v)} is not an integer{'' if kind == 'integer' else ' ' + kind}")
    return int(v)


@dataclass(frozen=True)
class SubnetSpec:
    """One subnet: kernel and expand per block (``n_blocks`` entries), depth per stage, resolution.

    Entries of skipped blocks (index >= d of their stage) are kept as given but ignored.
    """
    space: str
    ks: tuple[int, ...]
    e: tuple[int, ...]
    d: tuple[int, ...]
    r: int

    @property
    def space_def(self) -> Space:
        return get_space(self.space)

    def validated(self) -> "SubnetSpec":
        """Return self, or raise :class:`SpaceError` naming the first bad field."""
        sp = get_space(self.space)
        for field, vals, n, allowed in (("d", self.d, sp.n_stages, sp.depths), ("ks", self.ks, sp.n_blocks, sp.kernels),
                                       ("e", self.e, sp.n_blocks, sp.expands)):
            if len(vals) != n:
                raise SpaceError(f"field {field!r} has {len(vals)} entries; space {sp.name} needs {n}")
            for i, v in enumerate(vals):
                if field != "d" and i % sp.max_depth >= self.d[i // sp.max_depth]:
                    continue  # skipped block: its value is ignored
                if field == "d":
                    allowed = sp.stage_depths(i)
                if v not in allowed:
                    raise SpaceError(f"{field}[{i}]={v!r} is not one of {list(allowed)} (space {sp.name})")
        sp.check_resolution(self.r)
        if sp.compound:
            emap = dict(sp.compound_expand)
            for s, ds in enumerate(self.d):
                for b in range(ds):
                    i = s * sp.max_depth + b
                    if self.ks[i] != sp.compound_kernels[s] or self.e[i] != emap[ds]:
                        raise SpaceError(f"block {i} (ks={self.ks[i]}, e={self.e[i]}) breaks the compound rule of "
                                         f"{sp.name}: stage {s} at depth {ds} needs ks={sp.compound_kernels[s]}, e={emap[ds]}")
        return self

    def active_blocks(self) -> list[tuple[int, int, int]]:
        """(global block index, stage, index in stage) of every active elastic block, in order."""
        sp = get_space(self.space)
        return [(s * sp.max_depth + b, s, b) for s in range(sp.n_stages) for b in range(self.d[s])]

    def canonical(self) -> "SubnetSpec":
        """Same subnet with skipped-block entries set to the space minimum (for hashing/dedup)."""
        sp = get_space(self.space)
        ks, e = list(self.ks), list(self.e)
        for s in range(sp.n_stages):
            for b in range(self.d[s], sp.max_depth):
                ks[s * sp.max_depth + b] = min(sp.kernels)
                e[s * sp.max_depth + b] = min(sp.expands)
        return dataclasses.replace(self, ks=tuple(ks), e=tuple(e))

    # -- OFA formats ------------------------------------------------------------------------
    def to_ofa(self) -> dict[str, Any]:
        """OFA's spec dict: ``ks``/``e`` over the space's OFA slots (all blocks for MobileNetV3; 21 of the 24
        slots for ProxylessNAS, whose last stage is one block)."""
        slots = get_space(self.space).ofa_block_slots
        return {"ks": [self.ks[i] for i in slots], "e": [self.e[i] for i in slots], "d": list(self.d), "r": self.r}

    @classmethod
    def from_ofa(cls, obj: Mapping[str, Any], space: str | Space = DEFAULT_SPACE, r: int | None = None) -> "SubnetSpec":
        """Read OFA's spec dict. ``r`` may be an int or OFA's one-element list; ``r=`` overrides."""
        sp = get_space(space)
        if not isinstance(obj, Mapping):
            raise SpaceError("a subnet spec must be a JSON object with keys ks, e, d, r")
        missing = [k for k in ("ks", "e", "d") if k not in obj]
        if missing:
            raise SpaceError(f"subnet spec lacks field(s) {', '.join(missing)}; expected {{'ks': [..], 'e': [..], 'd': [..], 'r': R}}")
        rv: Any = r if r is not None else obj.get("r", obj.get("image_size"))
        if isinstance(rv, (list, tuple)):
            if len(rv) != 1:
                raise SpaceError(f"r={_short(rv)} is not one resolution; give an integer such as 224 (or [224])")
            rv = rv[0]
        if rv is None:
            raise SpaceError("subnet spec lacks the resolution 'r' (give it in the spec or with --resolution)")

        def ints(field: str) -> tuple[int, ...]:
            vals = obj[field]
            if not isinstance(vals, (list, tuple)):
                raise SpaceError(f"field {field!r} must be a list, got {type(vals).__name__}")
            return tuple(_strict_int(v, f"{field}[{i}]") for i, v in enumerate(vals))

        ks, e = ints("ks"), ints("e")
        slots = sp.ofa_block_slots
        if len(slots) != sp.n_blocks and len(ks) == len(e) == len(slots):     # OFA's lists: only usable slots
            full_ks, full_e = [min(sp.kernels)] * sp.n_blocks, [min(sp.expands)] * sp.n_blocks
            for j, i in enumerate(slots):
                full_ks[i], full_e[i] = ks[j], e[j]
            ks, e = tuple(full_ks), tuple(full_e)
        return cls(sp.name, ks, e, ints("d"), _strict_int(rv, "r", "resolution")).validated()

    @classmethod
    def from_net_config(cls, cfg: Mapping[str, Any], r: int | None = None) -> "SubnetSpec":
        """Read an OFA specialised network's ``net.config`` (MobileNetV3 JSON).  Every field read is checked:
        a malformed config is one :class:`SpaceError` naming the field, never a ``KeyError``/``TypeError``."""
        if not isinstance(cfg, Mapping):
            raise SpaceError(f"net.config must be a JSON object, not {type(cfg).__name__}")
        names = sorted({s.net_config_name for s in SPACES.values()})
        name = cfg.get("name") if cfg.get("name") is not None else "MobileNetV3"
        if name not in names:
            raise SpaceError(f"net.config describes a {_short(cfg.get('name'))} network, not one of "
                             f"{', '.join(names)} (OFA's MobileNetV3 and ProxylessNAS)")
        first, blocks = cfg.get("first_conv"), cfg.get("blocks")
        if not isinstance(first, Mapping) or not isinstance(blocks, list):
            raise SpaceError(f"not an OFA {name} net.config (needs first_conv {{...}} and a list of blocks)")
        stem = _strict_int(first.get("out_channels"), "net.config first_conv.out_channels")
        spaces = [s for s in SPACES.values() if not s.compound and s.stem_ch == stem and s.net_config_name == name]
        if not spaces:
            raise SpaceError(f"net.config stem width {stem} matches no {name} space ({', '.join(SPACES)})")
        sp = spaces[0]
        if r is None:
            r = cfg.get("image_size") if cfg.get("image_size") is not None else cfg.get("r")
        if r is None:
            raise SpaceError("net.config has no image size: pass the resolution (run.config image_size)")
        if isinstance(r, list) and len(r) == 1:
            r = r[0]
        r = _strict_int(r, "net.config image_size", "resolution")
        if not blocks:
            raise SpaceError("net.config has no MobileInvertedResidualBlock blocks")
        body = []
        for i, b in enumerate(blocks):
            conv = (b.get("mobile_inverted_conv") or b.get("conv")) if isinstance(b, Mapping) else None
            if not isinstance(conv, Mapping):
                raise SpaceError(f"net.config block {i} is not a MobileInvertedResidualBlock (no mobile_inverted_conv "
                                 f"object)")
            if conv.get("name") not in (None, "MBInvertedConvLayer", "MBConvLayer"):
                raise SpaceError(f"net.config blocks[{i}] holds a {_short(conv.get('name'))}, not an MBConv layer "
                                 f"(MBInvertedConvLayer or MBConvLayer)")
            body.append(conv)
        # blocks[0] is the fixed first block; each later block without shortcut starts a stage
        stages: list[list[Mapping[str, Any]]] = []
        for blk, conv in zip(blocks[1:], body[1:]):
            if blk.get("shortcut") is None:
                stages.append([])
            if not stages:
                raise SpaceError("net.config blocks[1] (the first elastic block) has an identity shortcut; space "
                                 "blocks start a stage there (shortcut null)")
            stages[-1].append(conv)
        if len(stages) != sp.n_stages:
            raise SpaceError(f"net.config has {len(stages)} stages (a block whose shortcut is null starts one); space "
                             f"{sp.name} has {sp.n_stages}")
        ks, e, d = [], [], []
        for s, convs in enumerate(stages):
            if len(convs) > max(sp.stage_depths(s)):
                raise SpaceError(f"net.config stage {s} has {len(convs)} blocks; space {sp.name} allows at most "
                                 f"{max(sp.stage_depths(s))}")
            width = _strict_int(convs[0].get("out_channels"), f"net.config stage {s} out_channels")
            if width != sp.stages[s].width:
                raise SpaceError(f"net.config stage {s} out_channels {width} != {sp.stages[s].width} of {sp.name}")
            d.append(len(convs))
            for b in range(sp.max_depth):
                if b < len(convs):
                    ks.append(_strict_int(convs[b].get("kernel_size"), f"net.config stage {s} block {b} kernel_size"))
                    e.append(_strict_int(convs[b].get("expand_ratio"), f"net.config stage {s} block {b} expand_ratio"))
                else:
                    ks.append(min(sp.kernels))
                    e.append(min(sp.expands))
        spec = cls(sp.name, tuple(ks), tuple(e), tuple(d), r).validated()
        check_net_config(cfg, spec)        # every other field: the network the space builds for these choices
        return spec

    @classmethod
    def load(cls, path: str | Path, space: str | Space = DEFAULT_SPACE, r: int | None = None) -> "SubnetSpec":
        """Load a spec JSON file or a net.config (a sibling run.config supplies the image size).  The file is
        read as strict JSON (:mod:`ofa_profile.jsonio`: no NaN/Infinity, no overflowing numbers, bounded
        nesting); every problem is one :class:`SpaceError`."""
        p = Path(path)
        try:
            obj = read_json_file(p, "arch file")
        except JsonInputError as exc:
            raise SpaceError(str(exc)) from None
        if isinstance(obj, Mapping) and "blocks" in obj:
            run_config = p.parent / "run.config"
            if r is None and run_config.is_file():
                try:
                    rc = read_json_file(run_config, "run.config")
                except JsonInputError as exc:
                    raise SpaceError(f"{exc}; fix it or pass the resolution (--resolution)") from None
                size = rc.get("image_size") if isinstance(rc, Mapping) else None
                if isinstance(size, list) and len(size) == 1:
                    size = size[0]
                if size is not None:
                    r = _strict_int(size, f"run.config {run_config} image_size", "resolution")
            return cls.from_net_config(obj, r=r)
        if isinstance(obj, Mapping) and isinstance(obj.get("arch"), Mapping):
            obj = obj["arch"]  # our own output files: {"arch": {...}, ...}
        own = obj.get("space", space) if isinstance(obj, Mapping) else space
        if not isinstance(own, (str, Space)):
            raise SpaceError(f"field 'space'={_short(own)} of {p} is not a space name; choose one of "
                             f"{', '.join(SPACES)}")
        return cls.from_ofa(obj, space=own, r=r)

    def short(self) -> str:
        """A compact readable id, e.g. ``r192-d23433-k5353...-e3344...`` (active blocks only)."""
        act = self.active_blocks()
        return (f"r{self.r}-d{''.join(map(str, self.d))}-k{''.join(str(self.ks[i]) for i, _, _ in act)}"
                f"-e{''.join(str(self.e[i]) for i, _, _ in act)}")
