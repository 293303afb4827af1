"""What a transport is: the :class:`Profiler` interface its profilers implement, and the registry of transports.

A *transport* says where a device's ops run: ``local`` (this process), ``adb`` (an Android phone), ``ssh`` (a
Linux board).  Each is one module of this package that ends with one :func:`register_transport` call: its
profiler factory and its cheap reachability check.  :mod:`ofa_profile.transports` dispatches on a device spec's
``transport`` by a lookup here; the device schema's ``transport`` enum names the same transports (a test compares
them).  This module imports no transport, so the transports import it without a circle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..devicespec import DeviceError, DeviceSpec
from ..options import Option
from ..plugins import load_plugins
from ..timed import Timed
from ..timing import Measurement, fingerprint

if TYPE_CHECKING:  # pragma: no cover
    from ..model_file import ModelFile
    from ..ops import Op
    from ..space import SubnetSpec

__all__ = ["Profiler", "Transport", "register_transport", "get_transport", "list_transports", "Shorthand",
           "transport_shorthands"]


class Profiler:
    """Runs ops and whole subnets on one device. Subclasses implement :meth:`measure_op`."""

    device: DeviceSpec
    batch_size: int = 1
    #: what its blocks and subnets are timed in (``int8``: :class:`~ofa_profile.transports.local.LocalProfiler`)
    precision: str = "fp32"
    #: the graph flavour measure_op / measure_subnet build (ofa_profile.timed.GRAPHS), and those this profiler can
    graph: str = "ofa-profile"
    graphs: tuple[str, ...] = ("ofa-profile",)

    def versions(self) -> dict[str, str]:
        return {}

    def fingerprint(self) -> dict[str, Any]:
        return fingerprint(self.versions(), num_threads=self.device.num_threads)

    def timed(self, space: str) -> Timed:
        """What :meth:`measure_op` and :meth:`measure_subnet` time for ``space`` (graph flavour, head, precision,
        threads): the project's graph (or the one :meth:`use_graph` chose), the space's head, its :attr:`precision`,
        the device's threads."""
        threads = getattr(getattr(self, "device", None), "num_threads", None)   # None: a profiler of no device spec
        return Timed.default_for(space, threads=threads, graph=self.graph).with_(precision=self.precision)

    def use_graph(self, graph: str) -> None:
        """Build the blocks and subnets of ``graph`` from now on; one line where this profiler cannot."""
        if graph not in self.graphs:
            raise DeviceError(f"device {self.device.name} (transport {self.device.transport}) cannot build the "
                              f"{graph!r} graph flavour (it builds {', '.join(self.graphs)})")
        self.graph = graph

    def measure_op(self, op: Op, seed: int) -> Measurement:
        raise NotImplementedError

    def measure_ops(self, ops: Sequence[Op], seed: int, on_result: Callable[[Op, Measurement], None]) -> None:
        """Measure many ops, reporting each as soon as it is done (remote profilers batch here)."""
        for op in ops:
            on_result(op, self.measure_op(op, seed))

    def measure_subnet(self, spec: SubnetSpec, seed: int, classes: int | None = None) -> Measurement:
        """Time the whole subnet (its classifier head of ``classes`` outputs; default: the space's)."""
        raise NotImplementedError

    def measure_file(self, model: ModelFile, seed: int) -> Measurement:
        """Time a model file (:func:`ofa_profile.model_file.check_model_file`) end to end, with the device's timing
        settings, the way :meth:`measure_subnet` times a subnet (``ofa-profile bench``)."""
        raise DeviceError(f"device {self.device.name} (transport {self.device.transport}) cannot time a model file")

    def close(self) -> None:
        pass

    def __enter__(self) -> "Profiler":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass(frozen=True)
class Transport:
    """One registered transport.

    ``profiler(device, batch_size=None, **options)`` returns a connected :class:`Profiler` for a device spec of
    this transport (every reachability check happens there, before any work; ``options`` are the transport's
    own, e.g. ``serial``/``benchmark_binary`` for adb, and ``timing``; options it does not take are refused or
    ignored as that transport documents).  ``reachable(spec)`` is (can ``spec`` be measured from here now?,
    one-line reason), cheap: no measuring.  ``description`` is one line for listings and help texts.
    ``options`` are the options a device spec's ``transport_options`` may set
    (:class:`~ofa_profile.options.Option`: checked on load, defaults filled in, read by the profiler from
    ``device.transport_options``; ``measure --transport-option KEY=VALUE`` sets them too); ``section`` is the
    name of a spec section that may hold them instead (``adb``, ``ssh``: the older spelling, still read),
    documented in the device schema (a test compares the two).
    """

    name: str
    profiler: Callable[..., Profiler]
    reachable: Callable[[DeviceSpec], "tuple[bool, str]"]
    description: str = ""
    options: tuple[Option, ...] = ()
    section: str | None = None


_REGISTRY: dict[str, Transport] = {}


def register_transport(name: str, profiler: Callable[..., Profiler], reachable: Callable[[DeviceSpec], Any], *,
                       description: str = "", options: Sequence[Option] = (), section: str | None = None,
                       replace: bool = False) -> Transport:
    """Add a transport under ``name`` (see :class:`Transport`)."""
    if name in _REGISTRY and not replace:
        raise ValueError(f"transport {name!r} is already registered")
    for o in options:
        other = next((s for s in _shorthands(t for t in _REGISTRY.values() if t.name != name)
                      if s.flag == o.flag and s.option != o.name), None) if o.flag else None
        if other is not None:
            raise ValueError(f"transport {name!r}: flag {o.flag} of option {o.name!r} is transport "
                             f"{other.transports[0]!r}'s shorthand for its option {other.option!r}")
    t = Transport(name, profiler, reachable, description, tuple(options), section)
    _REGISTRY[name] = t
    return t


def list_transports() -> list[str]:
    """The registered transport names, in registration order; installed plug-ins' included
    (:func:`ofa_profile.plugins.load_plugins`)."""
    load_plugins()
    return list(_REGISTRY)


def get_transport(name: str) -> Transport:
    """The transport called ``name``; an unknown one raises :class:`~ofa_profile.devices.DeviceError`."""
    load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DeviceError(f"unknown transport {name!r}: use one of {', '.join(_REGISTRY)}") from None


@dataclass(frozen=True)
class Shorthand:
    """A command-line shorthand a transport declares for one of its options (:attr:`Option.flag
    <ofa_profile.options.Option>`): ``FLAG VALUE`` means ``--transport-option OPTION=VALUE``; ``transports``: those
    that declare it; ``help``: its line in ``--help``."""

    flag: str
    option: str
    help: str
    transports: tuple[str, ...]
    metavar: str | None = None     # how --help names its value: the option's JSON type (None: text)


def _shorthands(transports: Any) -> list[Shorthand]:
    out: dict[str, Shorthand] = {}
    for t in transports:
        for o in t.options:
            if not o.flag:
                continue
            have = out.get(o.flag)
            names = (have.transports if have else ()) + (t.name,)
            out[o.flag] = Shorthand(o.flag, o.name, f"{'/'.join(names)} devices: {o.description} (--transport-option "
                                                    f"{o.name}=VALUE)", names,
                                    None if o.type == "string" else o.type.upper())
    return list(out.values())


def transport_shorthands() -> list[Shorthand]:
    """The shorthands of the registered transports' options, in registration order (a flag two transports declare
    for the same option is one shorthand); installed plug-ins' included."""
    load_plugins()
    return _shorthands(_REGISTRY.values())
