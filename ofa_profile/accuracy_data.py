"""Subnets read from CSV files: accuracy datasets (:func:`read_accuracy_csv`) and plain subnet lists
(:func:`read_specs_csv`).

:func:`read_accuracy_csv` reads both the reference ImageNet CSV (``image_size, d, ks, e, accuracy``) and the
bundled dataset CSV (``space, d, ks, e, r, accuracy, macs, params``); lists are JSON, ``r`` may be called
``image_size``.  A row that cannot be read is one :class:`OfaProfileError` naming the file and the row.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .encodings import same_macro_architecture
from .errors import OfaProfileError
from .inputs import MAX_BYTES, open_input_text
from .jsonio import JsonInputError, loads_strict
from .space import DEFAULT_SPACE, SpaceError, SubnetSpec, get_space

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["ACCURACY_PRECISIONS", "AccuracyDataset",
           "csv_records", "read_accuracy_csv", "read_accuracy_csvs", "split_dataset",
           "read_specs_csv", "short_value", "load_subnets", "subnet_groups", "grouped_folds", "SOURCE_SEPARATOR"]


def short_value(v: Any) -> str:
    """A value for a one-line message: its repr, cut."""
    t = repr(v) if not isinstance(v, (dict, list)) or len(v) < 8 else f"a {type(v).__name__} of {len(v)} items"
    t = " ".join(t.split())
    return t if len(t) <= 60 else t[:57] + "..."


ACCURACY_PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True, eq=False)
class AccuracyDataset:
    """Subnets with measured top-1 accuracy (fraction) of the subnets run in ``precision`` (a CSV's ``precision``
    column, fp32 where it has none); ``accuracy_fp32``: the fp32 top-1 of the same subnets on the same images where
    the CSV holds it (an int8 dataset of ``accuracy-dataset --precision int8``), else None."""
    specs: tuple[SubnetSpec, ...]
    accuracy: "np.ndarray"
    source: str = ""
    precision: str = "fp32"
    accuracy_fp32: "np.ndarray | None" = None

    def __len__(self) -> int:
        return len(self.specs)

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(sorted({s.r for s in self.specs}))

    def subset(self, idx: Sequence[int]) -> "AccuracyDataset":
        fp32 = None if self.accuracy_fp32 is None else self.accuracy_fp32[list(idx)]
        return AccuracyDataset(tuple(self.specs[i] for i in idx), self.accuracy[list(idx)], self.source, self.precision,
                               fp32)

    def drop(self) -> "AccuracyDataset":
        """The int8 drop of each subnet as its 'accuracy': int8 top-1 - fp32 top-1 (a fraction, usually <= 0),
        for fitting a drop model (needs an int8 dataset with its fp32 column)."""
        if self.accuracy_fp32 is None:
            raise OfaProfileError(f"{self.source or 'the dataset'} holds no fp32 top-1 beside its {self.precision} one "
                                  f"(column accuracy_fp32 of accuracy-dataset --precision int8): no drop to model")
        return AccuracyDataset(self.specs, self.accuracy - self.accuracy_fp32, self.source, "int8-drop")


def csv_records(fh: Any, path: Path) -> tuple[list[str], Any]:
    """``(column names, rows)`` of a ``csv.DictReader`` over ``fh`` where a line the csv module cannot read (a
    field over its size limit, a NUL byte, text that is not UTF-8) is one :class:`OfaProfileError` naming it."""
    reader = csv.DictReader(fh)

    def bad(exc: Exception) -> OfaProfileError:
        why = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else f"is not readable as CSV ({exc})"
        return OfaProfileError(f"{path}: row {reader.line_num + 1} {why}; fix or drop that row")

    try:
        cols = list(reader.fieldnames or ())
    except (csv.Error, UnicodeDecodeError) as exc:
        raise bad(exc) from None

    def rows() -> Any:
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                raise bad(exc) from None
            yield row
    return cols, rows()


def _json_list(text: str | None, field_name: str, row: int, path: Path) -> list[int]:
    try:
        v = loads_strict(text) if isinstance(text, str) else None
    except JsonInputError:
        v = None
    if not isinstance(v, list):
        raise OfaProfileError(f"{path}: row {row}: column {field_name!r} is not a JSON list of integers "
                              f"({short_value(text)})")
    return v


def read_accuracy_csv(path: str | Path, space: str | None = None) -> AccuracyDataset:
    """Read an accuracy CSV: columns d, ks, e (JSON lists), r or image_size, accuracy; optional space (rows
    without one are read in ``space``, default ``ofa-mbv3-w1.0``).

    Accuracies above 1 are read as percentages and divided by 100 (all rows must agree).
    """
    import numpy as np
    p = Path(path)
    # a leading BOM (Excel) is no part of the first column name; a FIFO or a device is refused at once
    fh = open_input_text(p, "accuracy CSV", MAX_BYTES["csv"])
    with fh:
        colnames, reader = csv_records(fh, p)
        cols = set(colnames)
        need = {"d", "ks", "e", "accuracy"}
        rcol = "r" if "r" in cols else "image_size" if "image_size" in cols else None
        if not need <= cols or rcol is None:
            raise OfaProfileError(f"{p} lacks column(s) {sorted(need - cols) + ([] if rcol else ['r'])}; "
                                  f"an accuracy CSV needs d, ks, e, r (or image_size) and accuracy")
        specs: list[SubnetSpec] = []
        acc: list[float] = []
        fp32: list[float] = []
        precision: str | None = None
        for i, row in enumerate(reader, start=2):
            prec = _row_precision(row, i, p)
            if precision is not None and prec != precision:
                raise OfaProfileError(f"{p}: row {i} is {prec} and the rows before it {precision}: one accuracy "
                                      f"dataset holds one precision; split the file")
            precision = prec
            sp_name = row.get("space") or space or DEFAULT_SPACE
            rv: Any = row[rcol]
            try:
                rv = loads_strict(rv) if isinstance(rv, str) else rv
            except JsonInputError:
                pass
            obj = {"d": _json_list(row["d"], "d", i, p), "ks": _json_list(row["ks"], "ks", i, p),
                   "e": _json_list(row["e"], "e", i, p), "r": rv}
            try:
                specs.append(SubnetSpec.from_ofa(obj, space=sp_name))
            except SpaceError as exc:
                raise OfaProfileError(f"{p}: row {i}: {exc}") from None
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                raise OfaProfileError(f"{p}: row {i}: d, ks, e, r are not a subnet spec "
                                      f"({str(exc).splitlines()[0][:100]})") from None
            a = row["accuracy"]
            v = _number_in(a, 100.0)
            if v is None:
                raise OfaProfileError(f"{p}: row {i}: accuracy {short_value(a)} is not a finite number in 0..1 (or a "
                                      f"percentage 0..100); fix or drop that row")
            acc.append(v)
            if "accuracy_fp32" in cols:
                fp32.append(_fraction(row["accuracy_fp32"], "accuracy_fp32", i, p))
    if not specs:
        raise OfaProfileError(f"{p} has no rows")
    y = np.array(acc, dtype=np.float64)
    if (y > 1.0).all() and (y <= 100.0).all():
        y = y / 100.0
    elif (y > 1.0).any():
        raise OfaProfileError(f"{p}: accuracies mix fractions and percentages; write all as fractions (0..1)")
    y32 = np.array(fp32, dtype=np.float64) if fp32 else None
    names = {s.space for s in specs}
    if len(names) > 1 and not all(same_macro_architecture(n, next(iter(names))) for n in names):
        raise OfaProfileError(f"{p} mixes subnets of different supernets ({', '.join(sorted(names))})")
    return AccuracyDataset(tuple(specs), y, str(p), precision or "fp32", y32)


def _row_precision(row: Mapping[str, Any], i: int, p: Path) -> str:
    v = row.get("precision")
    if v in (None, ""):
        return "fp32"
    if v not in ACCURACY_PRECISIONS:
        raise OfaProfileError(f"{p}: row {i}: precision {short_value(v)} is not one of "
                              f"{', '.join(ACCURACY_PRECISIONS)}")
    return str(v)


def _number_in(text: Any, hi: float) -> float | None:
    """``text`` as a finite number in 0..``hi``, else None."""
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and 0.0 <= v <= hi else None


def _fraction(text: Any, name: str, i: int, p: Path) -> float:
    v = _number_in(text, 1.0)
    if v is None:
        raise OfaProfileError(f"{p}: row {i}: {name} {short_value(text)} is not a fraction in 0..1; fix or drop "
                              f"that row")
    return v


SOURCE_SEPARATOR = " + "   # between the files of a dataset read from several CSVs


def read_accuracy_csvs(paths: Sequence[str | Path], space: str | None = None) -> AccuracyDataset:
    """Several accuracy CSVs (:func:`read_accuracy_csv` each) as one dataset, rows in file order; its ``source``
    names the files joined by :data:`SOURCE_SEPARATOR`.  The files must describe one supernet."""
    import numpy as np
    if not paths:
        raise OfaProfileError("no accuracy CSV given")
    parts = [read_accuracy_csv(p, space) for p in paths]
    if len(parts) == 1:
        return parts[0]
    names = sorted({s.space for d in parts for s in d.specs})
    if not all(same_macro_architecture(n, names[0]) for n in names):
        raise OfaProfileError(f"the accuracy CSVs describe different supernets ({', '.join(names)}); fit one at a "
                              f"time")
    precs = {d.precision for d in parts}
    if len(precs) > 1:
        desc = ", ".join(f"{d.source}: {d.precision}" for d in parts)
        raise OfaProfileError(f"the accuracy CSVs hold different precisions ({desc}); fit one precision at a time")
    fp32 = (np.concatenate([d.accuracy_fp32 for d in parts])  # type: ignore[misc]
            if all(d.accuracy_fp32 is not None for d in parts) else None)
    return AccuracyDataset(tuple(s for d in parts for s in d.specs), np.concatenate([d.accuracy for d in parts]),
                           SOURCE_SEPARATOR.join(d.source for d in parts), parts[0].precision, fp32)


def subnet_groups(ds: AccuracyDataset) -> "np.ndarray":
    """One group id per row: rows of the same subnet (same depths and active kernels and expands, at any
    resolution) share it, so a grouped split never has one subnet on both sides."""
    import numpy as np
    ids: dict[tuple, int] = {}
    out = []
    for s in ds.specs:
        c = s.canonical()
        out.append(ids.setdefault((c.space, c.ks, c.e, c.d), len(ids)))
    return np.array(out, dtype=np.int64)


def grouped_folds(ds: AccuracyDataset, folds: int = 5, seed: int = 0) -> list["np.ndarray"]:
    """``folds`` seeded test folds (row indices) of ``ds``, split by subnet (:func:`subnet_groups`): the subnets
    are shuffled and dealt round-robin, so the folds hold nearly equal numbers of subnets."""
    import numpy as np
    g = subnet_groups(ds)
    n_groups = int(g.max()) + 1 if len(g) else 0
    if not 2 <= folds <= n_groups:
        raise OfaProfileError(f"{folds} cross-validation folds need 2..{n_groups} distinct subnets")
    fold_of = np.empty(n_groups, dtype=np.int64)
    fold_of[np.random.default_rng(seed).permutation(n_groups)] = np.arange(n_groups) % folds
    return [np.flatnonzero(fold_of[g] == k) for k in range(folds)]


def split_dataset(ds: AccuracyDataset, test_frac: float = 0.2, seed: int = 0
                  ) -> tuple[AccuracyDataset, AccuracyDataset]:
    """Seeded random split -> (train, test); the test part has round(test_frac * N) rows."""
    import numpy as np
    if not 0.0 < test_frac < 1.0:
        raise OfaProfileError(f"test fraction {test_frac} must lie strictly between 0 and 1")
    perm = np.random.default_rng(seed).permutation(len(ds))
    nt = int(round(test_frac * len(ds)))
    return ds.subset(sorted(perm[nt:].tolist())), ds.subset(sorted(perm[:nt].tolist()))


def read_specs_csv(path: str | Path, space: str | None = None) -> list[SubnetSpec]:
    """Subnets of a CSV: an ``arch`` column (a JSON spec, optionally with its space) or ``d, ks, e`` (JSON
    lists) and ``r`` (or ``image_size``) columns, optional ``space``; other columns are ignored."""
    p = Path(path)
    fh = open_input_text(p, "CSV", MAX_BYTES["csv"])   # a leading BOM (Excel) is not data
    specs: list[SubnetSpec] = []
    with fh:
        cols, reader = csv_records(fh, p)
        rcol = "r" if "r" in cols else "image_size" if "image_size" in cols else None
        if "arch" not in cols and (not {"d", "ks", "e"} <= set(cols) or rcol is None):
            raise OfaProfileError(f"{p} needs the subnets as an 'arch' JSON column or as d, ks, e, r columns "
                                  f"(has {', '.join(cols[:8]) or 'no columns'})")
        for i, row in enumerate(reader, start=2):
            sp_name = space or row.get("space") or DEFAULT_SPACE
            try:
                if "arch" in cols:
                    obj = loads_strict(row["arch"] or "")
                    if isinstance(obj, Mapping) and isinstance(obj.get("space"), str) and space is None:
                        sp_name = obj["space"]
                else:
                    rv: Any = row[rcol] or ""
                    obj = {"d": _json_list(row["d"], "d", i, p), "ks": _json_list(row["ks"], "ks", i, p),
                           "e": _json_list(row["e"], "e", i, p), "r": loads_strict(rv)}
                specs.append(SubnetSpec.from_ofa(obj, space=sp_name))
            except JsonInputError as exc:
                raise OfaProfileError(f"{p}: row {i}: the subnet column(s) {exc}") from None
            except SpaceError as exc:
                raise OfaProfileError(f"{p}: row {i}: {exc}") from None
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                raise OfaProfileError(f"{p}: row {i}: the subnet column(s) are not a subnet spec "
                                      f"({str(exc).splitlines()[0][:100]})") from None
    if not specs:
        raise OfaProfileError(f"{p} has no rows")
    return specs


def load_subnets(archs: Sequence[str | Path] = (), csv_path: str | Path | None = None, *, space: str | None = None,
                 resolution: int | None = None) -> tuple[list[SubnetSpec], str]:
    """The subnets of spec files / net.configs ``archs`` and of the CSV ``csv_path`` (:func:`read_specs_csv`),
    at ``resolution`` if given, and their one space (subnets of several spaces are refused).  ``space``: of specs
    that name none (default: ofa-mbv3-w1.0)."""
    import dataclasses

    specs = [SubnetSpec.load(a, space=space or DEFAULT_SPACE, r=resolution) for a in archs]
    if csv_path is not None:
        specs += read_specs_csv(csv_path, space=space)
    if resolution is not None:
        specs = [dataclasses.replace(s, r=resolution) for s in specs]
    names = sorted({s.space for s in specs})
    if len(names) > 1:
        raise OfaProfileError(f"the subnets belong to several spaces ({', '.join(names)}); score one space at a time")
    return specs, get_space(names[0]).name
