"""Option value types and parsers shared by the three command lines (``ofa-profile``, the trainer, the card).

A value a user typed that does not parse or lies outside its range is a usage error (click's
``BadParameter``: one line naming the option, exit 2, see :mod:`ofa_profile.clierrors`), raised before any
work starts; what the value then refers to (a file, a device, a LUT's coverage) is checked by the command
and fails with exit 1.
"""
from __future__ import annotations

import math
import re
from contextlib import contextmanager
from typing import Any, Iterator

import click

from .errors import OfaProfileError
from .options import parse_assignment
from .space import DEFAULT_SPACE, get_space, parse_resolutions

__all__ = ["FiniteFloatRange", "POSITIVE_INT", "NON_NEGATIVE_INT", "INT_MAX", "count_range", "NoEmptyValues",
           "NoRepeatedOptions",
           "option_value", "RESOLUTION", "TORCH_DEVICE",
           "SPACE_NAME", "SEED", "require_torch_device",
           "check_resolutions", "KEY_VALUE"]

INT_MAX = 2**31 - 1   # a count above this overflows the C ints it reaches (torch, numpy): a usage error instead
POSITIVE_INT = click.IntRange(min=1, max=INT_MAX)
NON_NEGATIVE_INT = click.IntRange(min=0, max=INT_MAX)


def count_range(min: int, max: int = INT_MAX) -> click.IntRange:
    """A count option: ``min..max`` (a count that sizes an array or a loop gets a ``max`` it can reach in
    minutes and memory, so a typo such as ``--n-budgets 1e9`` is a usage error, not a traceback or a hang)."""
    return click.IntRange(min=min, max=max)
SEED = click.IntRange(min=0, max=2**32 - 1)   # what numpy and scikit-learn take as a seed


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses ``nan`` and ``inf`` (which ``FloatRange`` lets through)."""

    name = "float range"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        v = super().convert(value, param, ctx)
        if isinstance(v, float) and not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return v


class NoEmptyValues:
    """Mixin for a ``click.Command`` (put it before ``click.Command``): a text or path option or argument given as
    the empty string (``--out ''``, a shell variable that was never set) is a usage error, instead of being read
    as the current folder, the default, or a file named ''."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)  # type: ignore[misc]
        for p in self.params:  # type: ignore[attr-defined]
            if not isinstance(p.type, (click.types.StringParamType, click.Path)):
                continue
            v = ctx.params.get(p.name)
            if any(x == "" for x in (v if isinstance(v, (tuple, list)) else (v,))):
                raise click.BadParameter("the value is empty; give a value or leave the option out", ctx=ctx,
                                         param=p)
        return rest


class NoRepeatedOptions:
    """Mixin for a ``click.Command`` (put it before ``click.Command``): an option that takes one value given twice
    (``--arch a.json --arch b.json`` where one subnet is meant; click would silently keep the last) is a usage
    error naming it; so is an on/off flag given both ways (``--x --no-x``).  Options declared ``multiple`` or
    ``count`` repeat as they are meant to, and a plain flag given twice means what it means once."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        given = list(args)
        rest = super().parse_args(ctx, args)  # type: ignore[misc]   # --help and parse errors first
        if ctx.resilient_parsing:
            return rest
        _, _, order = self.make_parser(ctx).parse_args(args=given)  # type: ignore[attr-defined]
        seen: set[str] = set()
        for p in order:
            if not isinstance(p, click.Option) or p.multiple or p.count or (p.is_flag and not p.secondary_opts):
                continue
            if p.name in seen:
                names = "/".join(p.opts + p.secondary_opts)
                raise click.UsageError(f"option {names} given more than once; it takes one value: give it once",
                                       ctx=ctx)
            seen.add(p.name)
        return rest


@contextmanager
def option_value(option: str) -> Iterator[None]:
    """Parse an option's value inside this block: an :class:`OfaProfileError` or ``ValueError`` raised by the
    parser becomes a usage error naming ``option`` (exit 2)."""
    try:
        yield
    except (OfaProfileError, ValueError) as exc:
        raise click.BadParameter(" ".join(str(exc).split()), param_hint=f"'{option}'") from None


class _Resolution(click.ParamType):
    """An input resolution of the spaces (128..224 in steps of 4; above, up to 320, for latency only)."""

    name = "resolution"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            v = int(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not an integer resolution", param, ctx)
        sp = get_space(DEFAULT_SPACE)     # every space has the same resolutions
        if v not in sp.run_resolutions:
            self.fail(f"{v} is not a resolution of the spaces: use {sp.resolution_text()}", param, ctx)
        return v


RESOLUTION = _Resolution()


class _SpaceName(click.ParamType):
    """A registered space (or its OFA id); kept as the name the user typed."""

    name = "space"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            get_space(value)
        except OfaProfileError as exc:
            self.fail(str(exc), param, ctx)
        return value


SPACE_NAME = _SpaceName()


class _KeyValue(click.ParamType):
    """``KEY=VALUE`` (:func:`ofa_profile.options.parse_assignment`) -> (KEY, VALUE); what KEY may be is the
    command's to check (``--transport-option``: the device's transport's options)."""

    name = "key=value"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            return parse_assignment(value)
        except OfaProfileError as exc:
            self.fail(str(exc), param, ctx)


KEY_VALUE = _KeyValue()


class _TorchDevice(click.ParamType):
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (checked without importing torch; whether the device
    exists here is checked when it is used)."""

    name = "device"
    _PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        v = str(value).strip()
        if not self._PATTERN.match(v):
            self.fail(f"{value!r}; use auto, cpu, cuda, cuda:N or mps", param, ctx)
        return v


TORCH_DEVICE = _TorchDevice()


def require_torch_device(name: str) -> None:
    """Refuse (exit 1, one line) a CUDA or MPS device this machine does not have, before any work starts."""
    if name.startswith("cuda") or name == "mps":
        import torch

        if name == "mps":
            ok = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
        else:
            idx = int(name.split(":", 1)[1]) if ":" in name else 0
            ok = torch.cuda.is_available() and idx < torch.cuda.device_count()
        if not ok:
            raise OfaProfileError(f"device {name} is not available on this machine; use --device cpu or auto")


def check_resolutions(text: str | None, option: str = "--resolutions") -> None:
    """Refuse a malformed resolution list before any work (every space has the same resolutions, so the
    check needs no space; the command parses it again against its space)."""
    if text:
        with option_value(option):
            parse_resolutions(text)
