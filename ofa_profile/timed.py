"""What was timed: the one record of the choices a latency figure depends on beyond the blocks themselves.

A LUT entry, a calibration and a ``bench`` figure each describe one graph on one runtime; four choices change
that graph's speed and are recorded together, as a :class:`Timed`:

``graph``      ``"ofa-profile"``: the blocks as this project's layer library builds and exports them (fused
               HardSwish/HardSigmoid ops, one pooling op in SE; what ``ofa-profile export`` writes);
               ``"ofa"``: the blocks as OFA's own modules build them and ``torch.onnx`` exports them (activations
               as Add/Clip/Mul/Div chains, SE pooling as two ReduceMeans; what an OFA user deploys).
``classes``    outputs of the classifier head (the space's default: 1000 for OFA nets; ``export``'s bundled
               weights have 10).
``precision``  ``"fp32"`` or ``"int8"``.
``threads``    intra-op threads the runtime ran with; ``None`` where unknown (an imported OFA table).

A LUT stores it in its header as ``"timed": {...}``; a LUT without one reads as the defaults (the shipped
LUTs), with ``threads`` from its ``num_threads``.  Figures of two different records are never mixed:
:meth:`Timed.require_same` refuses it in one line naming the fields that differ.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from .errors import OfaProfileError
from .space import get_space

__all__ = ["GRAPHS", "PRECISIONS", "Timed", "TimedError"]

#: graph flavours: the project's layer library, OFA's own modules
GRAPHS = ("ofa-profile", "ofa")
PRECISIONS = ("fp32", "int8")
_MAX_CLASSES = 1_000_000
_MAX_THREADS = 256


class TimedError(OfaProfileError):
    """A "what was timed" record that is malformed, or two that may not be mixed (one line naming the fix)."""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class Timed:
    """What a latency figure was timed on besides the blocks: graph flavour, classifier head, precision, threads."""
    graph: str = "ofa-profile"
    classes: int = 1000
    precision: str = "fp32"
    threads: int | None = 1

    def __post_init__(self) -> None:
        if not isinstance(self.graph, str) or self.graph not in GRAPHS:
            raise TimedError(f"graph {self.graph!r} is not a graph flavour; use one of {', '.join(GRAPHS)}")
        if not _is_int(self.classes) or not 1 <= self.classes <= _MAX_CLASSES:
            raise TimedError(f"classes {self.classes!r} must be an integer from 1 to {_MAX_CLASSES:,} (the "
                             f"classifier head's outputs)")
        if not isinstance(self.precision, str) or self.precision not in PRECISIONS:
            raise TimedError(f"precision {self.precision!r} is not a precision; use one of {', '.join(PRECISIONS)}")
        if self.threads is not None and (not _is_int(self.threads) or not 1 <= self.threads <= _MAX_THREADS):
            raise TimedError(f"threads {self.threads!r} must be an integer from 1 to {_MAX_THREADS} (or null where "
                             f"unknown)")

    # -- JSON edge -------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"graph": self.graph, "classes": self.classes, "precision": self.precision, "threads": self.threads}

    @classmethod
    def from_json(cls, obj: Any, where: str = "timed") -> "Timed":
        """The record from its JSON object: every field present, of its exact type (no ``true`` for 1, no
        ``"1000"`` for 1000), no unknown field; :class:`TimedError` (one line naming ``where``) otherwise."""
        if not isinstance(obj, Mapping):
            raise TimedError(f"{where} must be an object {{graph, classes, precision, threads}}, not a JSON "
                             f"{type(obj).__name__}")
        names = [f.name for f in fields(cls)]
        extra = sorted(set(obj) - set(names))
        if extra:
            raise TimedError(f"{where} has unknown field(s) {', '.join(map(repr, extra))}; it holds only "
                             f"{', '.join(names)}")
        missing = [n for n in names if n not in obj]
        if missing:
            raise TimedError(f"{where} lacks field(s) {', '.join(missing)}")
        try:
            return cls(**{n: obj[n] for n in names})
        except TimedError as exc:
            raise TimedError(f"{where}: {exc}") from None

    @classmethod
    def default_for(cls, space: str | None = None, threads: int | None = 1, graph: str = "ofa-profile") -> "Timed":
        """The record of a LUT that does not state one: fp32, the space's classifier head, ``threads``."""
        classes = 1000
        if space is not None:
            classes = get_space(space).n_classes
        return cls(graph=graph, classes=classes, precision="fp32", threads=threads)

    def with_(self, **changes: Any) -> "Timed":
        """A copy with some fields changed (checked like a new record)."""
        return replace(self, **changes)

    # -- text -------------------------------------------------------------------------------------
    def label(self, runtime: str | None = None) -> str:
        """One phrase for text outputs, e.g. ``onnxruntime fp32, 1 thread, ofa-profile graph, 1000-class head``."""
        th = ("threads unknown" if self.threads is None
              else f"{self.threads} thread{'s' if self.threads != 1 else ''}")
        head = f"{runtime} {self.precision}" if runtime else self.precision
        return f"{head}, {th}, {self.graph} graph, {self.classes}-class head"

    # -- mixing -----------------------------------------------------------------------------------
    def differences(self, other: "Timed") -> list[str]:
        """``field this vs that`` for each field that differs (threads unknown on either side is no difference)."""
        out = []
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "threads" and (a is None or b is None):
                continue
            if a != b:
                out.append(f"{f.name} {a} vs {b}")
        return out

    def require_same(self, other: "Timed", this: str, that: str, fix: str = "") -> None:
        """Refuse (:class:`TimedError`, one line) mixing figures of this record (``this`` names them) with figures of
        ``other`` (``that``): they time different graphs."""
        diff = self.differences(other)
        if diff:
            tail = f"; {fix}" if fix else ""
            raise TimedError(f"{this} timed {self.label()} but {that} timed {other.label()} ({'; '.join(diff)}): "
                             f"their figures cannot be mixed{tail}")
