"""The options of a plug-in (a runtime or a transport), declared in its registry entry.

A runtime (:func:`ofa_profile.runtimes.register_runtime`) or a transport
(:func:`ofa_profile.transports.register_transport`) lists the options it takes as :class:`Option` records: name,
JSON type, default, and the bounds or choices that matter.  A device spec's ``runtime_options`` and
``transport_options`` (or the plug-in's own named section, e.g. ``cuda``, ``adb``, ``ssh``) are checked against
them when the spec loads (:func:`check_options`: unknown names, wrong types and missing required options are one
line naming the options it takes, and declared defaults are filled in), and ``measure --transport-option
KEY=VALUE`` is parsed by :func:`parse_assignment` and :func:`option_from_text`.  :meth:`Option.schema` is the
option as JSON Schema, which the device schema's documented sections are tested against.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, Union

from .errors import OfaProfileError, UnsafeInputError

__all__ = ["Option", "OptionError", "UnsafeOptionError", "REQUIRED", "ABSENT", "check_options", "parse_assignment", "option_from_text",
           "describe_options"]


class OptionError(OfaProfileError):
    """An option a plug-in does not take, a value of the wrong type, or a required option left out."""


class UnsafeOptionError(OptionError, UnsafeInputError):
    """A value its option's ``check`` refuses: it would reach a command line as something other than data
    (exit 2)."""


class _Marker:
    def __init__(self, name: str):
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: ``default=REQUIRED``: a spec must give the option
REQUIRED = _Marker("REQUIRED")
#: ``default=ABSENT``: optional, and left out of the options when not given (the plug-in works it out)
ABSENT = _Marker("ABSENT")

_PY_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float),
                                          "boolean": (bool,), "array": (list, tuple)}
_FLAG = re.compile(r"--[a-z][a-z0-9]*(-[a-z0-9]+)*")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True)
class Option:
    """One option of a plug-in.

    ``type`` is a JSON type (string, integer, number, boolean, array; an array's elements are ``items``, an
    :class:`Option` whose name is unused); ``nullable`` admits ``null``; ``choices`` (or a callable returning
    them, for choices that are another registry's names), ``minimum``/``maximum`` and a string's ``min_length``
    bound the value; ``check`` (a function of a well-typed value: why it is unsafe, or None) refuses values that
    would reach a command line as something other than data (:mod:`ofa_profile.argsafety`; an array's ``items``
    may have one too), raised as :class:`UnsafeOptionError`.
    ``default`` is filled in when a spec leaves the option out; :data:`REQUIRED` and :data:`ABSENT` say
    there is none.  ``flag``: a command-line shorthand the plug-in declares for the option (adb's ``--serial``):
    the commands that take ``--transport-option NAME=VALUE`` take ``FLAG VALUE`` for it too
    (:func:`ofa_profile.transports.base.transport_shorthands`).
    """

    name: str
    type: str
    default: Any = ABSENT
    description: str = ""
    nullable: bool = False
    choices: Union[Sequence[Any], Callable[[], Sequence[Any]]] = ()
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    items: "Option | None" = None
    check: "Callable[[Any], str | None] | None" = None
    flag: str | None = None

    def __post_init__(self) -> None:
        if self.type not in _PY_TYPES:
            raise ValueError(f"option {self.name!r}: type {self.type!r} is not one of {', '.join(_PY_TYPES)}")
        if self.flag is not None and not _FLAG.fullmatch(self.flag):
            raise ValueError(f"option {self.name!r}: flag {self.flag!r} is not a long option such as --serial")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def allowed(self) -> tuple[Any, ...]:
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def schema(self) -> dict[str, Any]:
        """The option as JSON Schema (what the device schema's documented sections state; descriptions aside)."""
        out: dict[str, Any] = {}
        if self.allowed():
            out["enum"] = list(self.allowed()) + ([None] if self.nullable else [])
        else:
            out["type"] = [self.type, "null"] if self.nullable else self.type
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.min_length is not None:
            out["minLength"] = self.min_length
        if self.items is not None:
            out["items"] = self.items.schema()
        return out

    def brief(self) -> str:
        """``name (type)`` for the one-line errors: ``dtype (float32|float16)``, ``cores (array of integer)``."""
        if self.allowed():
            what = "|".join(str(c) for c in self.allowed())
        elif self.type == "array" and self.items is not None:
            what = f"array of {self.items.type}"
        else:
            what = self.type
        return f"{self.name} ({what}{' or null' if self.nullable else ''}{', required' if self.required else ''})"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not a value of this option, or None."""
        if value is None:
            return None if self.nullable else "must not be null"
        ok = isinstance(value, _PY_TYPES[self.type]) and not (isinstance(value, bool) and self.type != "boolean")
        if not ok:
            return f"must be {'an' if self.type[0] in 'aeiou' else 'a'} {self.type}, not {value!r}"
        if self.allowed() and value not in self.allowed():
            return f"must be one of {', '.join(map(str, self.allowed()))}, not {value!r}"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}, not {value!r}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}, not {value!r}"
        if self.min_length is not None and len(value) < self.min_length:
            return f"must hold at least {self.min_length} character(s), not {value!r}"
        if self.items is not None and self.type == "array":
            for i, v in enumerate(value):
                why = self.items.problem(v)
                if why:
                    return f"item {i} {why}"
        return None

    def unsafe(self, value: Any) -> str | None:
        """Why the well-typed ``value`` (:meth:`problem` found none) is refused by ``check``, or None."""
        if value is None:
            return None
        if self.check is not None:
            why = self.check(value)
            if why:
                return why
        if self.items is not None and self.type == "array":
            for i, v in enumerate(value):
                why = self.items.unsafe(v)
                if why:
                    return f"item {i}: {why}"
        return None


def describe_options(options: Sequence[Option]) -> str:
    """``its options: a (integer), b (boolean)`` or ``it takes no options``."""
    return ("its options: " + ", ".join(o.brief() for o in options)) if options else "it takes no options"


def check_options(owner: str, options: Sequence[Option], given: Mapping[str, Any] | None) -> dict[str, Any]:
    """``given`` checked against the ``options`` of ``owner`` (``runtime torch-cuda``, ``transport adb``), with
    the declared defaults filled in.  Raises :class:`OptionError` (one line naming the options) on an unknown
    name, a wrong value or a required option left out."""
    by_name = {o.name: o for o in options}
    given = dict(given or {})
    for k, v in given.items():
        if k not in by_name:
            raise OptionError(f"{owner} has no option {k!r}; {describe_options(options)}")
        why = by_name[k].problem(v)
        if why:
            raise OptionError(f"{owner} option {k} {why}; {describe_options(options)}")
        why = by_name[k].unsafe(v)
        if why:
            raise UnsafeOptionError(f"{owner} option {k} refused: {why}")
    out: dict[str, Any] = {}
    for o in options:
        if o.name in given:
            v = given[o.name]
            out[o.name] = list(v) if isinstance(v, tuple) else v
        elif o.required:
            raise OptionError(f"{owner} needs option {o.name}; {describe_options(options)}")
        elif o.default is not ABSENT:
            out[o.name] = list(o.default) if isinstance(o.default, (list, tuple)) else o.default
    return out


def parse_assignment(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> (KEY, VALUE): the value is everything after the first ``=`` (it may be empty, or hold
    more ``=``); a missing ``=`` or an empty or blank key raises :class:`OptionError`."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise OptionError(f"{text!r} is not KEY=VALUE")
    if key != key.strip() or any(c.isspace() for c in key):
        raise OptionError(f"{text!r}: the key {key!r} holds white space")
    return key, value


def _scalar(opt: Option, text: str) -> Any:
    if opt.nullable and text == "null":
        return None
    if opt.type == "string":
        return text
    if opt.type == "boolean":
        t = text.strip().lower()
        if t in _TRUE or t in _FALSE:
            return t in _TRUE
        raise OptionError(f"option {opt.name}: {text!r} is not a boolean (true/false)")
    try:
        return int(text) if opt.type == "integer" else float(text)
    except ValueError:
        raise OptionError(f"option {opt.name}: {text!r} is not {'an integer' if opt.type == 'integer' else 'a number'}"
                          ) from None


def option_from_text(owner: str, options: Sequence[Option], key: str, text: str) -> Any:
    """The value of option ``key`` of ``owner`` from command-line text (``--transport-option KEY=VALUE``): a
    string as is, an integer, number or boolean (true/false) parsed, an array as comma-separated items (or a
    JSON list), ``null`` for a nullable option; checked like a spec's value."""
    by_name = {o.name: o for o in options}
    if key not in by_name:
        raise OptionError(f"{owner} has no option {key!r}; {describe_options(options)}")
    opt = by_name[key]
    if opt.type == "array":
        import json
        if text.strip().startswith("["):
            try:
                value: Any = json.loads(text)
            except ValueError:
                raise OptionError(f"option {key}: {text!r} is not a JSON list") from None
        else:
            item = opt.items or Option(key, "string")
            value = [_scalar(item, t.strip()) for t in text.split(",")] if text.strip() else []
    else:
        value = _scalar(opt, text)
    why = opt.problem(value)
    if why:
        raise OptionError(f"{owner} option {key} {why}; {describe_options(options)}")
    why = opt.unsafe(value)
    if why:
        raise UnsafeOptionError(f"{owner} option {key} refused: {why}")
    return value
