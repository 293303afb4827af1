"""Runtimes and transports are registries: a runtime or transport registered at run time is found by the same
lookups that serve the built-in ones (no if/elif to extend), and unknown names are one-line errors."""
from __future__ import annotations

import pytest

from ofa_profile.devices import DeviceError, DeviceSpec, device_status
from ofa_profile.errors import OfaProfileError
from ofa_profile.runtimes import Runtime, get_runtime, list_runtimes, register_runtime, runtime_info
from ofa_profile.transports import (Profiler, get_transport, list_transports, make_profiler, make_remote_profiler,
                                    reachable, register_transport)


@pytest.fixture
def registered():
    """Names registered by a test, removed afterwards (the registries are process-wide)."""
    from ofa_profile import runtimes
    from ofa_profile.transports import base

    added: list[tuple[dict, str]] = []
    yield lambda registry, name: added.append((registry, name))
    for registry, name in added:
        registry.pop(name, None)
    assert "test-rt" not in runtimes._REGISTRY and "test-link" not in base._REGISTRY


def test_a_registered_runtime_is_got_by_lookup(registered):
    from ofa_profile import runtimes

    class TestRuntime(Runtime):
        name = "test-rt"

        def __init__(self, options):
            self.options = options

    register_runtime("test-rt", TestRuntime, transports=("local",), description="a runtime of this test")
    registered(runtimes._REGISTRY, "test-rt")
    rt = get_runtime("test-rt", {"device_index": 1})
    assert isinstance(rt, TestRuntime) and rt.options == {"device_index": 1}
    assert "test-rt" in list_runtimes() and "test-rt" in list_runtimes("local")
    assert "test-rt" not in list_runtimes("ssh")
    assert runtime_info("test-rt").description == "a runtime of this test"
    with pytest.raises(ValueError, match="already registered"):
        register_runtime("test-rt", TestRuntime)
    with pytest.raises(OfaProfileError, match="unknown runtime 'nope': use one of .*test-rt") as ei:
        get_runtime("nope")
    assert "\n" not in str(ei.value)


def test_a_registered_transport_is_dispatched_by_lookup(registered):
    from ofa_profile.transports import base

    class TestProfiler(Profiler):
        def __init__(self, device, batch_size=None, **options):
            self.device, self.batch_size, self.options = device, batch_size or device.batch_size, options

    register_transport("test-link", TestProfiler, lambda spec: (True, f"{spec.name} answers"),
                       description="a transport of this test")
    registered(base._REGISTRY, "test-link")
    spec = DeviceSpec(name="dev", description="d", runtime="torch", transport="test-link")
    assert "test-link" in list_transports() and get_transport("test-link").description == "a transport of this test"
    prof = make_profiler(spec, batch_size=4, serial="S1")
    assert isinstance(prof, TestProfiler) and prof.batch_size == 4 and prof.options == {"serial": "S1"}
    assert isinstance(make_remote_profiler(spec), TestProfiler)
    assert reachable(spec) == device_status(spec) == (True, "dev answers")
    template = DeviceSpec(name="dev", description="d", runtime="torch", transport="test-link", template=True)
    assert reachable(template)[0] is False
    with pytest.raises(DeviceError, match="is a template"):
        make_profiler(template)
    with pytest.raises(ValueError, match="already registered"):
        register_transport("test-link", TestProfiler, lambda spec: (True, ""))


def test_unknown_transport_is_one_line():
    spec = DeviceSpec(name="dev", description="d", runtime="torch", transport="carrier-pigeon")
    with pytest.raises(DeviceError, match="unknown transport 'carrier-pigeon': use one of local, adb, ssh") as ei:
        make_profiler(spec)
    assert "\n" not in str(ei.value)
    ok, why = reachable(spec)
    assert not ok and "carrier-pigeon" in why
    with pytest.raises(DeviceError, match="has no remote profiler"):
        make_remote_profiler(DeviceSpec(name="dev", description="d", runtime="torch", transport="local"))
