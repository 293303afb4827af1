"""OFA's own latency tables (one ``<r>_lookup_table.yaml`` per resolution, ``{count, mean, <spread>}`` per key,
the spread statistic and the key grammar being the family's: :class:`ofa_profile.ops.KeyGrammar`): recognising,
importing and exporting them (:func:`import_ofa_yaml`, :func:`export_ofa_yaml`; both re-exported by
:mod:`ofa_profile.lut`).
"""
from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any, Mapping

from .errors import LutError, LutMissError
from .jsonio import JsonInputError, loads_strict
from .lut_format import (FORMAT, IQR_PER_STD, _MAX_KEYS_SHOWN, Lut, LutEntry, _atomic_write, _bad_key_message, _keys_at,
                         _parse_yaml, _read_text, _shorten, _space_keys, _tool)
from .ops import KeyError_, KeyGrammar, grammar, list_grammars, parse_key
from .space import DEFAULT_SPACE, SPACES, SpaceError, get_space
from .timing import MAX_COUNT

__all__ = ["import_ofa_yaml", "export_ofa_yaml"]


def _classify_yaml(data: Any, p: Path) -> KeyGrammar:
    """The family (its key grammar, which describes OFA's table format of the family) of a parsed OFA latency
    table: the first family that recognises the table by its marks, else the default space's family, whose keys
    must then all parse."""
    if not isinstance(data, dict) or not data:
        raise LutError(f"{p} is neither an ofa-profile LUT (JSON object) nor an OFA latency table (YAML mapping of "
                       f"LUT key -> {{count, mean, std}}); pass one of those")
    for g in list_grammars():
        if g.recognise is not None and g.recognise(data):
            return g
    g = grammar(get_space(DEFAULT_SPACE).family)
    for k in data:
        try:
            g.parse(str(k))
        except SpaceError as exc:
            raise LutError(f"{p}: {exc}, so this is not an OFA latency table of a registered family; pass an OFA "
                           f"<r>_lookup_table.yaml or an ofa-profile LUT") from None
    return g


# -- OFA YAML ----------------------------------------------------------------------------------

_OFA_NAME = re.compile(r"^(\d+)_lookup_table$")


def _num(v: Any) -> str:
    """A short text of a YAML value for a message: an integer too long to print in decimal (YAML reads
    ``0x`` + thousands of digits) by its size."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 64:
        return f"<an integer of {v.bit_length():,} bits>"
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _read_ofa_table(p: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    text = _read_text(p, "OFA table")
    if text.lstrip().startswith("{"):
        try:
            obj = loads_strict(text)
        except JsonInputError:
            obj = None
        if isinstance(obj, dict) and obj.get("format") == FORMAT:
            raise LutError(f"{p} is already an ofa-profile LUT (JSON), not an OFA YAML table; use it directly")
    data = _parse_yaml(text, p)
    g = _classify_yaml(data, p)
    family, stat = g.family, g.table_stat
    out: dict[str, dict[str, Any]] = {}
    conv_r = None
    for k, v in data.items():
        k = str(k)
        if not isinstance(v, dict):
            raise LutError(f"{p}: entry {k!r} is {v!r}, not {{count, mean, {stat}}} (file truncated?); restore the file")
        miss = [f for f in ("count", "mean", stat) if f not in v]
        if miss:
            raise LutError(f"{p}: entry {k!r} lacks {', '.join(miss)} (file truncated?); restore the file")
        c, m, s = v["count"], v["mean"], v[stat]
        ok = (isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= MAX_COUNT
              and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0
                      for x in (m, s)))
        if not ok:
            raise LutError(f"{p}: entry {k[:80]!r} has count={_num(c)}, mean={_num(m)}, {stat}={_num(s)}; need an "
                           f"integer count in 1..{MAX_COUNT:.0e} and finite mean, {stat} >= 0")
        out[k] = {"count": c, "mean": float(m), "std": float(s) if stat == "std" else math.sqrt(float(s))}
        try:
            op = parse_key(k, family)
        except KeyError_ as exc:
            raise LutError(f"{p}: {exc}; fix or remove that entry") from None
        if op.kind == "Conv":
            conv_r = op.in_hw
    mname = _OFA_NAME.match(p.stem)
    r = int(mname.group(1)) if mname else conv_r
    if r is None:
        raise LutError(f"{p}: cannot tell its resolution (no <r>_lookup_table.yaml name and no Conv key); rename it "
                       f"to <r>_lookup_table.yaml")
    if conv_r is not None and conv_r != r:
        raise LutError(f"{p}: the file name says r={r} but its Conv key has input {conv_r}x{conv_r}; rename the file")
    return r, family, out


def _infer_space(tables: Mapping[int, Mapping[str, Any]], src: Path, family: str) -> str:
    for t in tables.values():
        for k in t:
            op = parse_key(k, family)
            if op.kind == "Conv":
                names = [n for n, s in SPACES.items()
                         if not s.compound and s.family == family and s.stem_ch == op.out_ch]
                if not names:
                    raise LutError(f"{src}: stem width {op.out_ch} (key {k!r}) matches no space "
                                   f"({', '.join(SPACES)}); pass --space")
                return names[0]
    raise LutError(f"{src}: no Conv (stem) key to infer the space from; pass --space")


def import_ofa_yaml(src: str | Path, space: str | None = None, device: str = "imported",
                    runtime: str = "unknown", allow_partial: bool = False) -> Lut:
    """Import OFA's latency tables (a folder of ``<r>_lookup_table.yaml`` or one file) as a :class:`Lut`.

    OFA stores ``{count, mean, std}`` (ms) per key.  ``median_ms`` and ``mean_ms`` get OFA's
    mean (OFA stores no median), ``std_ms`` its std, ``iqr_ms`` = 1.349 * std (the IQR of a
    normal distribution: an estimate), ``count`` its count.  A key found in several tables
    gets the count-weighted pooled mean/std in ``entries`` and each table's own figures in
    ``resolution_entries`` (used at that resolution, so OFA's sums are reproduced exactly).
    The space is inferred from the stem width of the Conv key (16 -> w1.0, 24 -> w1.2)
    unless given.

    A table that lacks keys of its resolution (found in no other table either) is refused
    naming them, unless ``allow_partial``: then that resolution is recorded as partial (not in
    ``resolutions``; its figures are kept, :meth:`Lut.coverage` lists what it lacks and a
    prediction there names the missing keys) and in ``provenance["partial_resolutions"]``.
    """
    src = Path(src)
    if src.is_dir():
        files = sorted(src.glob("*_lookup_table.yaml")) or sorted(src.glob("*.yaml")) + sorted(src.glob("*.yml"))
        if not files:
            raise LutError(f"{src} holds no <r>_lookup_table.yaml files; pass OFA's latency-table folder or one file")
    else:
        files = [src]
    tables: dict[int, dict[str, dict[str, Any]]] = {}
    hashes = []
    families = set()
    for f in files:
        r, fam, t = _read_ofa_table(f)
        if r in tables:
            raise LutError(f"{src}: two tables for resolution {r} ({f.name} and another); keep one")
        tables[r] = t
        families.add(fam)
        hashes.append({"file": f.name, "resolution": r, "keys": len(t),
                       "sha256": hashlib.sha256(f.read_bytes()).hexdigest()})
    if len(families) > 1:
        raise LutError(f"{src}: the tables mix OFA's MobileNetV3 and ProxylessNAS formats; import each on its own")
    family = families.pop()
    sp_name = get_space(space).name if space else _infer_space(tables, src, family)
    if get_space(sp_name).family != family:
        raise LutError(f"{src} holds {family} tables, but --space {sp_name} is of the {get_space(sp_name).family} "
                       f"family; pass a {family} space or omit --space")
    valid = _space_keys(sp_name)
    ignored: dict[str, None] = {}
    for r, t in sorted(tables.items()):
        for k in list(t):
            if k not in valid:
                if not allow_partial:
                    raise LutError(_bad_key_message(k, sp_name, f"{src} ({r}_lookup_table, {grammar(family).table_name})")
                                   + "; or pass --allow-partial to import the keys the space has and list the others")
                ignored[k] = None          # a block of another search space (e.g. ProxylessNAS's own first block)
                del t[k]
    by_key: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for r, t in sorted(tables.items()):
        for k, v in t.items():
            by_key.setdefault(k, []).append((r, v))

    def entry(count: int, mean: float, std: float) -> LutEntry:
        return LutEntry(median_ms=mean, iqr_ms=IQR_PER_STD * std, count=count, mean_ms=mean, std_ms=std)

    entries: dict[str, LutEntry] = {}
    per: dict[int, dict[str, LutEntry]] = {}
    for k in sorted(by_key):
        vs = by_key[k]
        if len(vs) == 1:
            v = vs[0][1]
            entries[k] = entry(v["count"], v["mean"], v["std"])
            continue
        n = sum(v["count"] for _, v in vs)
        mean = sum(v["count"] * v["mean"] for _, v in vs) / n
        second = sum(v["count"] * (v["std"] ** 2 + v["mean"] ** 2) for _, v in vs) / n
        entries[k] = entry(n, mean, math.sqrt(max(0.0, second - mean * mean)))
        for r, v in vs:
            per.setdefault(r, {})[k] = entry(v["count"], v["mean"], v["std"])
    partial = {r: [k for k in _keys_at(sp_name, r) if k not in by_key] for r in sorted(tables)
               if r in get_space(sp_name).run_resolutions}  # others: refused by Lut below
    partial = {r: m for r, m in partial.items() if m}
    if partial and not allow_partial:
        what = "; ".join(f"{r}_lookup_table lacks {len(m)} of the {len(_keys_at(sp_name, r))} keys of r={r}, e.g. "
                         f"{_shorten(m)}" for r, m in partial.items())
        raise LutError(f"{src}: partial table(s): {what}; restore the complete table(s), or pass --allow-partial "
                       f"to import them as partly covered resolutions")
    shared = sum(1 for vs in by_key.values() if len(vs) > 1)
    provenance = {
        "tool": _tool(), "seed": None, "timing": None, "source": "imported from OFA YAML latency tables",
        "files": hashes,
        "notes": {
            "median_ms": "OFA stores no median: median_ms and mean_ms are OFA's mean",
            "iqr_ms": f"an estimate, {IQR_PER_STD} * OFA's std (the IQR of a normal distribution); OFA stores no quartiles",
            "std_ms": "OFA's std" if grammar(family).table_stat == "std" else "the square root of the table's var",
            "count": "OFA's count",
            "shared_keys": (f"{shared} key(s) occur in several tables: 'entries' holds their count-weighted pooled "
                            f"mean and std, 'resolution_entries' each table's own figures (used at that resolution)"),
        },
    }
    if partial:
        provenance["partial_resolutions"] = {str(r): {"missing_keys": len(m), "first_missing": m[:_MAX_KEYS_SHOWN]}
                                             for r, m in partial.items()}
    if ignored:
        provenance["ignored_keys"] = {"count": len(ignored), "why": f"not blocks of space {sp_name}",
                                      "keys": list(ignored)[:_MAX_KEYS_SHOWN]}
    fingerprint = {"hardware": "unknown: OFA's YAML format records no hardware or software",
                   "imported_from": "OFA YAML latency tables"}
    return Lut(space=sp_name, device=device, runtime=runtime, entries=entries,
               resolutions=tuple(r for r in sorted(tables) if r not in partial),
               batch_size=1, num_threads=None, fingerprint=fingerprint, provenance=provenance, calibration=None,
               resolution_entries=per, source=str(src))


def export_ofa_yaml(lut: Lut, out_dir: str | Path, value: str = "median") -> list[Path]:
    """Write one ``<r>_lookup_table.yaml`` per complete resolution in OFA's format of the LUT's family:
    ``{count, mean, std}`` (MobileNetV3) or ``{count, mean, var}`` (ProxylessNAS, ``var = std ** 2``).

    ``value="median"`` (default) writes ``median_ms`` into OFA's ``mean`` field, so OFA's
    estimator sums to :meth:`Lut.lut_sum_ms` (for an imported table median = OFA's mean);
    ``"mean"`` writes ``mean_ms``.  ``std`` is ``std_ms``, or ``iqr_ms / 1.349`` where an
    entry has no std.  Each file is written atomically.
    """
    import yaml

    if value not in ("median", "mean"):
        raise LutError(f"value must be 'median' or 'mean', got {value!r}")
    out = Path(out_dir)
    if not out.is_dir():
        raise LutError(f"output folder {out} does not exist; create it or choose another")
    if not lut.resolutions:
        raise LutError(f"LUT {lut.source} covers no resolution completely; nothing to export (measure one first)")
    tables = {}
    for r in lut.resolutions:
        keys = _keys_at(lut.space, r)
        missing = [k for k in keys if k not in lut.entries]
        if missing:
            raise LutMissError(lut.miss_message(missing, [r]))
        t = {}
        for k in keys:
            e = lut.entry(k, r)
            if value == "mean" and e.mean_ms is None:
                raise LutError(f"LUT {lut.source}: entry {k!r} has no mean_ms; export with value='median'")
            mean = e.median_ms if value == "median" else e.mean_ms
            std = e.std_ms if e.std_ms is not None else e.iqr_ms / IQR_PER_STD
            if grammar(get_space(lut.space).family).table_stat == "var":
                t[k] = {"count": e.count, "mean": mean, "var": std * std}
            else:
                t[k] = {"count": e.count, "mean": mean, "std": std}
        tables[r] = t
    paths = []
    for r, t in tables.items():
        head = (f"# OFA latency lookup table (ms), r={r}, space {lut.space}, device {lut.device}, runtime {lut.runtime};"
                f" exported by {_tool()}: 'mean' holds {value}_ms\n")
        text = head + yaml.safe_dump(t, sort_keys=True, default_flow_style=False)
        p = out / f"{r}_lookup_table.yaml"
        _atomic_write(p, text.encode("utf-8"), "OFA table")
        paths.append(p)
    return paths
