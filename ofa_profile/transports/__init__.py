"""Where a device's ops run: one module per transport, a registry, and the dispatch on a device spec.

========= ===================================================================================================
local     :mod:`.local`: this process, a runtime of :mod:`ofa_profile.runtimes`
adb       :mod:`.adb`: Android phones, ops timed by TFLite ``benchmark_model`` (runtime ``tflite-benchmark``)
ssh       :mod:`.ssh`: Linux boards, :mod:`ofa_profile.remote_worker` run there over one SSH session
========= ===================================================================================================

The LUT format, the journal and resumption are the same over every transport
(:func:`ofa_profile.measure.measure_lut`).  :func:`make_profiler` and :func:`reachable` look the spec's
``transport`` up in the registry (:mod:`.base`: :func:`register_transport`, :func:`get_transport`,
:func:`list_transports`).  Adding a transport is one module here ending with its :func:`register_transport` call,
one import line below, its name in the device schema's ``transport`` enum (a test compares the two), the runtimes
that run over it (:func:`ofa_profile.runtimes.register_runtime`), a spec file and tests.  The options a spec's
``transport_options`` may set are declared in that same :func:`register_transport` call
(:class:`~ofa_profile.options.Option` records); a spec is checked against them when it loads, and ``measure
--transport-option KEY=VALUE`` sets them for one run (:func:`ofa_profile.devices.with_transport_options`).
"""
from __future__ import annotations

from typing import Any

from ..devicespec import DeviceError, DeviceSpec
from ..quantize import tflite_quantizer_available
from ..runtimes import get_runtime
from .base import Profiler, Transport, get_transport, list_transports, register_transport
# the built-in transports register themselves on import, in this order (the schema's)
from .local import LocalProfiler  # noqa: I001
from .adb import (ADB_MISSING, CHUNK_OPS, DEFAULT_ADB_DIR, HOW_TO_CONNECT, AdbTarget, BenchmarkModelProfiler,
                  LocalTarget, _core_mask, _split_runs, adb_devices)
from .ssh import DEFAULT_SSH_DIR, SshProfiler, SshTarget

__all__ = ["Profiler", "Transport", "register_transport", "get_transport", "list_transports", "make_profiler",
           "reachable", "make_remote_profiler", "precision_available", "INT8_TRANSPORTS", "LocalProfiler", "AdbTarget", "LocalTarget", "BenchmarkModelProfiler",
           "SshTarget", "SshProfiler", "adb_devices", "HOW_TO_CONNECT", "ADB_MISSING", "CHUNK_OPS", "DEFAULT_ADB_DIR",
           "DEFAULT_SSH_DIR", "_core_mask", "_split_runs"]

TEMPLATE = "template: copy it to a new spec file and fill in the connection details"


def reachable(spec: DeviceSpec) -> tuple[bool, str]:
    """(can ``spec`` be measured from here now?, one-line reason) for ``ofa-profile devices``. Cheap: no measuring."""
    if spec.template:
        return False, TEMPLATE
    if spec.transport not in list_transports():
        return False, f"transport {spec.transport!r} is not handled by ofa_profile.transports"
    return get_transport(spec.transport).reachable(spec)


def _local_int8(device: DeviceSpec) -> tuple[bool, str]:
    return get_runtime(device.runtime, device.runtime_options or None).check_precision("int8")


def _adb_int8(device: DeviceSpec) -> tuple[bool, str]:
    return tflite_quantizer_available()


#: the transports whose profilers time int8 blocks (quantized on this machine), each with its check: this
#: machine's onnxruntime and litert runtimes (:attr:`ofa_profile.runtimes.Runtime.precisions`); phones, whose
#: benchmark_model runs the int8 .tflite files as they are
INT8_TRANSPORTS = {"local": _local_int8, "adb": _adb_int8}


def precision_available(device: DeviceSpec, precision: str) -> tuple[bool, str]:
    """(can ``device``'s profiler time ``precision`` blocks and subnets?, one-line reason): fp32 everywhere, int8
    on :data:`INT8_TRANSPORTS`."""
    if precision == "fp32":
        return True, "fp32"
    if precision != "int8" or device.transport not in INT8_TRANSPORTS:
        return False, (f"device {device.name} ({device.transport}) cannot time {precision} blocks: {precision} is "
                       f"timed over transport {'/'.join(INT8_TRANSPORTS)} in this version")
    ok, why = INT8_TRANSPORTS[device.transport](device)
    return ok, why if ok else f"device {device.name} cannot time {precision} blocks: {why}"


def make_profiler(device: DeviceSpec, batch_size: int | None = None, *, precision: str = "fp32",
                  **options: Any) -> Profiler:
    """A connected profiler for ``device`` over its transport (every reachability check happens here, before any
    work); ``options`` are the profiler's keyword arguments (``timing``; for adb ``serial``, ``benchmark_binary``,
    ``local``...); the spec's own transport options are in ``device.transport_options``.  ``precision``: of the
    blocks timed (``int8`` on :data:`INT8_TRANSPORTS` only)."""
    if device.template:
        raise DeviceError(f"device {device.name} is a template: copy {device.path} to a new file, fill it in, "
                          f"and pass that file's path as --device")
    if precision != "fp32":
        ok, why = precision_available(device, precision)
        if not ok:
            raise DeviceError(why)
        options["precision"] = precision
    return get_transport(device.transport).profiler(device, batch_size=batch_size, **options)


def make_remote_profiler(device: DeviceSpec, batch_size: int | None = None, **options: Any) -> Profiler:
    """:func:`make_profiler` for a device that is not this process (adb, ssh): a local device is refused."""
    if device.transport == "local" or device.transport not in list_transports():
        raise DeviceError(f"device {device.name}: transport {device.transport!r} has no remote profiler")
    return get_transport(device.transport).profiler(device, batch_size=batch_size, **options)
