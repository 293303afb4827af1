"""Strict JSON in and out: the one reader and writer for JSON that users hand us or read from us.

Reading refuses what Python's ``json`` lets through but no other JSON reader accepts (``NaN``,
``Infinity``, numbers that overflow a float such as ``1e400``), a key given twice in one object, and turns
nesting deep enough to exhaust the stack into one clear error instead of a ``RecursionError``.  Writing never
emits ``NaN``/``Infinity``: an undefined figure becomes ``null``.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

from .errors import OfaProfileError
from .inputs import MAX_BYTES, InputFileError, read_input

__all__ = ["JsonInputError", "MAX_DEPTH", "loads_strict", "read_json_file", "load_checked", "to_strict",
           "dumps_strict", "plain"]

T = TypeVar("T")

MAX_DEPTH = 64   # no file of ours nests deeper than ~6; a deeper one is not ours (and would exhaust the stack)


class JsonInputError(ValueError):
    """Text that is not strict JSON; the message is one line (without the file's name: callers add it)."""


def _reject_constant(name: str) -> Any:
    raise JsonInputError(f"holds {name}, which is not JSON (JSON has no NaN/Infinity)")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise JsonInputError(f"holds the number {text[:40]}, which overflows a float")
    return v


_PLAIN_STRING = re.compile(r'"[^"]*"')          # a string without escapes (linear: stops at the next quote)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_TOKEN = re.compile(r'\\.|[\[\]{}"]', re.S)       # an escape pair, a bracket or a quote


def _depth_ok(text: str, limit: int) -> bool:
    """True when brackets outside strings nest at most ``limit`` deep.  No recursion, and linear time without
    a Python loop over every character (a 2 MB LUT takes ~20 ms): text without backslashes has its strings
    and all but the brackets cut by regular expressions; other text is scanned token by token."""
    if text.count("[") + text.count("{") <= limit:
        return True
    depth = 0
    if "\\" not in text:
        for ch in _NOT_BRACKET.sub("", _PLAIN_STRING.sub("", text)):
            depth += 1 if ch in "[{" else -1
            if depth > limit:
                return False
        return True
    in_str = False
    for m in _TOKEN.finditer(text):
        tok = m.group()
        if tok == '"':
            in_str = not in_str
        elif in_str or len(tok) > 1:
            continue
        else:
            depth += 1 if tok in "[{" else -1
            if depth > limit:
                return False
    return True


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's members as a dict; a key given twice is refused (readers disagree on which one counts:
    Python keeps the last, others the first, so the file means different things to different tools)."""
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))   # type: ignore[func-returns-value]
        raise JsonInputError(f"has the key {json.dumps(dup)[:60]} twice in one object, which is ambiguous; keep "
                             f"one")
    return d


def loads_strict(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse strict JSON.  Raises :class:`JsonInputError` (a ``ValueError``) with a one-line reason on
    malformed text, ``NaN``/``Infinity``, float overflow or nesting deeper than ``max_depth``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise JsonInputError("is not UTF-8 text") from None
    if not _depth_ok(text, max_depth):
        raise JsonInputError(f"nests deeper than {max_depth} levels, which no ofa-profile file does")
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                          object_pairs_hook=_unique_keys)
    except JsonInputError:
        raise
    except json.JSONDecodeError as exc:
        raise JsonInputError(f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:   # pragma: no cover - the depth scan comes first
        raise JsonInputError("nests too deeply") from None
    except ValueError as exc:   # e.g. an integer literal longer than Python's int-parsing limit
        raise JsonInputError(f"is not usable JSON ({str(exc).splitlines()[0][:120]})") from None


def read_json_file(path: str | Path, what: str = "JSON file", *, max_bytes: int | None = None,
                   follow_symlinks: bool = True) -> Any:
    """Read ``path`` as strict JSON; every failure is one :class:`JsonInputError` line naming ``what`` and
    the path (missing file, folder, FIFO or device, over ``max_bytes`` [default: the cap of its kind,
    :data:`ofa_profile.inputs.MAX_BYTES`], unreadable, not UTF-8, malformed, NaN, too deep); nothing blocks
    (:func:`ofa_profile.inputs.read_input`).  ``follow_symlinks=False``: a symlink is refused (the user cache)."""
    p = Path(path)
    cap = max_bytes if max_bytes is not None else MAX_BYTES.get(_KINDS.get(what, "json"), MAX_BYTES["json"])
    try:
        raw = read_input(p, what, cap, follow_symlinks=follow_symlinks)
    except InputFileError as exc:
        raise JsonInputError(str(exc)) from None
    try:
        return loads_strict(raw)
    except JsonInputError as exc:
        raise JsonInputError(f"{what} {p} {exc}") from None


def load_checked(path: str | Path, what: str, from_json: Callable[[Any], T], *,
                 follow_symlinks: bool = True) -> T:
    """The one reader of the project's checked JSON files (an accuracy predictor, a latency adapter, a latency
    source model): strict JSON (:func:`read_json_file`), the record built by ``from_json(obj)``, which checks every
    field, then the record's own ``check(path)`` where it has one (e.g. its predictions on the space's extremes).
    Every failure is one :class:`~ofa_profile.errors.OfaProfileError` line naming ``what`` and the file: a
    ``from_json`` message that starts with ``what`` gets the path after it (``accuracy predictor P: ...``), any other
    is prefixed with ``what P:``."""
    p = Path(path)
    try:
        obj = read_json_file(p, what, follow_symlinks=follow_symlinks)
    except JsonInputError as exc:
        raise OfaProfileError(str(exc)) from None
    try:
        record = from_json(obj)
    except OfaProfileError as exc:
        msg = str(exc)
        raise OfaProfileError(f"{what} {p}{msg[len(what):]}" if msg.startswith(what) else f"{what} {p}: {msg}") \
            from None
    check = getattr(record, "check", None)
    if callable(check):
        check(str(p))
    return record


_KINDS = {"device spec": "device", "arch file": "arch", "run.config": "arch", "accuracy predictor": "predictor",
          "latency adapter": "adapter", "latency source": "adapter", "speed-check cache": "cache"}


def plain(obj: Any) -> Any:
    """Frozen structures (mappings, tuples) back to JSON-ready dicts and lists, keys as strings."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def to_strict(obj: Any) -> Any:
    """A copy of ``obj`` (dicts, lists, tuples, numbers, numpy scalars) where every non-finite float is
    ``None``, ready for ``json.dumps(..., allow_nan=False)``."""
    if isinstance(obj, dict):
        return {k: to_strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_strict(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "item") and hasattr(obj, "dtype") and getattr(obj, "ndim", 1) == 0:   # numpy scalar
        return to_strict(obj.item())
    return obj


def dumps_strict(obj: Any, indent: int | None = 2, **kw: Any) -> str:
    """``json.dumps`` that writes ``null`` for non-finite floats and can never print ``NaN``/``Infinity``."""
    return json.dumps(to_strict(obj), indent=indent, allow_nan=False, **kw)
