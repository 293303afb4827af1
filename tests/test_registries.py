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


# ---- options: declared in the registry entry, checked on load, passed to the plug-in -------------------------------

def _write_spec(tmp_path, **fields):
    import json
    obj = {"format": "ofa-profile-device", "schema_version": 1, "name": "dev", "description": "d", **fields}
    p = tmp_path / "dev.json"
    p.write_text(json.dumps(obj))
    return p


def test_a_runtime_registered_with_an_option_is_usable_from_a_spec_file(registered, tmp_path):
    """No devices.py, schema or if/elif to touch: the option is declared in the registry entry, a spec file sets
    it under runtime_options, and the factory receives it (defaults filled in)."""
    from ofa_profile import runtimes
    from ofa_profile.devices import load_device
    from ofa_profile.options import Option

    got = []

    class TestRuntime(Runtime):
        name = "test-rt"

        def __init__(self, options):
            got.append(dict(options or {}))

        def check(self):
            return True, "runtime test-rt: here"

    register_runtime("test-rt", TestRuntime, transports=("local",), description="a runtime of this test",
                     options=(Option("streams", "integer", 1, minimum=1), Option("mode", "string", "fast",
                                                                                   choices=("fast", "exact"))))
    registered(runtimes._REGISTRY, "test-rt")
    spec = load_device(_write_spec(tmp_path, runtime="test-rt", transport="local", runtime_options={"streams": 4}))
    assert dict(spec.runtime_options) == {"streams": 4, "mode": "fast"}
    with make_profiler(spec) as prof:
        assert prof.runtime.name == "test-rt"
    assert got[-1] == {"streams": 4, "mode": "fast"}
    assert get_runtime(spec.runtime, spec.runtime_options) is not None and got[-1]["streams"] == 4

    for opts, needle in [({"stream": 4}, "runtime test-rt has no option 'stream'"),
                         ({"streams": "4"}, "runtime test-rt option streams must be an integer"),
                         ({"streams": True}, "must be an integer"),
                         ({"streams": 0}, "must be at least 1"),
                         ({"mode": "slow"}, "must be one of fast, exact")]:
        with pytest.raises(DeviceError) as ei:
            load_device(_write_spec(tmp_path, runtime="test-rt", transport="local", runtime_options=opts))
        msg = str(ei.value)
        assert needle in msg and "at runtime_options" in msg and "\n" not in msg, msg
        assert "its options: streams (integer), mode (fast|exact)" in msg, msg


def test_a_runtime_without_options_refuses_any(tmp_path):
    from ofa_profile.devices import load_device
    with pytest.raises(DeviceError, match="runtime torch has no option 'threads'; it takes no options"):
        load_device(_write_spec(tmp_path, runtime="torch", transport="local", runtime_options={"threads": 2}))


def test_a_transport_registered_with_options_gets_them_from_the_spec(registered, tmp_path):
    from ofa_profile.devices import load_device, transport_options_from_text, with_transport_options
    from ofa_profile.options import REQUIRED, Option, OptionError
    from ofa_profile.transports import base

    class TestProfiler(Profiler):
        def __init__(self, device, batch_size=None, **kw):
            self.device, self.batch_size = device, batch_size or device.batch_size
            self.address, self.lanes = device.transport_options["address"], device.transport_options["lanes"]

    register_transport("test-link", TestProfiler, lambda spec: (True, "up"), description="a transport of this test",
                       options=(Option("address", "string", REQUIRED), Option("lanes", "array", [0],
                                                                               items=Option("", "integer"))))
    registered(base._REGISTRY, "test-link")
    from ofa_profile import runtimes
    register_runtime("test-rt", lambda options: None, transports=("test-link",), description="runs over test-link")
    registered(runtimes._REGISTRY, "test-rt")

    spec = load_device(_write_spec(tmp_path, runtime="test-rt", transport="test-link",
                                   transport_options={"address": "10.0.0.7"}))
    prof = make_profiler(spec)
    assert (prof.address, prof.lanes) == ("10.0.0.7", [0])
    # the command line's --transport-option: text parsed by the declared type, checked, merged into the spec
    over = transport_options_from_text(spec, [("lanes", "1,2"), ("address", "board")])
    assert over == {"lanes": [1, 2], "address": "board"}
    assert make_profiler(with_transport_options(spec, over)).lanes == [1, 2]
    with pytest.raises(OptionError, match="transport test-link has no option 'speed'; its options: address"):
        transport_options_from_text(spec, [("speed", "9")])
    with pytest.raises(OptionError, match="item 1 must be an integer"):
        with_transport_options(spec, {"lanes": [1, "2"]})
    for opts, needle in [({}, "transport test-link needs option address"),
                         ({"address": "a", "speed": 9}, "has no option 'speed'"),
                         ({"address": 7}, "option address must be a string")]:
        with pytest.raises(DeviceError) as ei:
            load_device(_write_spec(tmp_path, runtime="test-rt", transport="test-link", transport_options=opts))
        assert needle in str(ei.value) and "at transport_options" in str(ei.value), str(ei.value)


def test_named_sections_are_the_plug_ins_options(tmp_path):
    """cuda, adb and ssh sections (the older spelling) are read as the runtime's or transport's options, checked
    the same way; the same options under runtime_options / transport_options load the same spec."""
    from dataclasses import replace

    from ofa_profile.devices import load_device

    old = load_device("cuda")
    assert dict(old.runtime_options) == {"device_index": 0, "cuda_graphs": False, "dtype": "float32"}
    new = load_device(_write_spec(tmp_path, name="cuda", description=old.description, runtime="torch-cuda",
                                  transport="local", space=old.space, batch_sizes=list(old.batch_sizes),
                                  timing=old.timing.as_dict(), runtime_options={"cuda_graphs": False}))
    assert replace(new, path="", timing=old.timing) == replace(old, path="")
    pixel = load_device("pixel")
    assert pixel.transport_options["cores"] == [2, 3] and pixel.transport_options["repeats"] == 3
    with pytest.raises(DeviceError, match="at cuda: runtime torch-cuda option dtype must be one of float32, "
                                          "float16, not 'float64'; its options: device_index"):
        load_device(_write_spec(tmp_path, runtime="torch-cuda", transport="local", cuda={"dtype": "float64"}))
    with pytest.raises(DeviceError, match="in runtime_options or in cuda, not both"):
        load_device(_write_spec(tmp_path, runtime="torch-cuda", transport="local", cuda={}, runtime_options={}))
    with pytest.raises(DeviceError, match="at cuda: it holds the options of runtime torch-cuda, and this spec's "
                                          "runtime is torch"):
        load_device(_write_spec(tmp_path, runtime="torch", transport="local", cuda={"dtype": "float32"}))
    with pytest.raises(DeviceError, match="at transport_options: transport ssh needs option host"):
        load_device(_write_spec(tmp_path, runtime="litert", transport="ssh"))
    board = load_device(_write_spec(tmp_path, runtime="litert", transport="ssh", transport_options={"host": "b"}))
    assert board.transport_options["port"] == 22 and board.transport_options["remote_python"] == "python3"


def test_measure_device_passes_transport_options_and_the_shorthands(monkeypatch, tmp_path):
    """--transport-option and --serial/--benchmark-binary reach the transport the same way: in the spec's
    transport_options; a transport that does not declare serial gets it as before (local ignores it)."""
    from ofa_profile import measure
    from ofa_profile.devices import load_device

    seen = []

    def fake(device, batch_size=None, **kw):
        seen.append((device, kw))
        raise DeviceError("stop here")

    monkeypatch.setattr(measure, "make_profiler", fake)
    for dev, kw in [("pixel", dict(transport_options={"cores": [7], "repeats": 5},
                                   shorthands={"serial": "S1", "benchmark_binary": "/bm"})),
                    ("cpu-ort", dict(shorthands={"serial": "S1"}))]:
        with pytest.raises(DeviceError, match="stop here"):
            measure.measure_device(load_device(dev), tmp_path / "l.json", [160], space="ofa-mbv3-w1.0", **kw)
    (pixel, kw_pixel), (ort, kw_ort) = seen
    assert kw_pixel == {"precision": "fp32"} and pixel.transport_options["serial"] == "S1"
    assert pixel.transport_options["benchmark_binary"] == "/bm" and pixel.transport_options["cores"] == [7]
    assert pixel.transport_options["repeats"] == 5 and pixel.transport_options["use_xnnpack"] is True
    assert kw_ort == {"serial": "S1", "precision": "fp32"} and ort == load_device("cpu-ort")


def test_measure_command_transport_option_reaches_the_transport(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from ofa_profile import measure
    from ofa_profile.cli import main

    seen = []

    def fake(device, batch_size=None, **kw):
        seen.append((device, kw))
        raise DeviceError("stop here")

    monkeypatch.setattr(measure, "make_profiler", fake)
    r = CliRunner().invoke(main, ["measure", "--device", "pixel", "--transport-option", "cores=2,3",
                                  "--transport-option", "use_xnnpack=false", "--transport-option", "serial=S9",
                                  "--benchmark-binary", "/bm", "--resolutions", "160", "--out", tmp_path / "p.json"])
    assert r.exit_code == 1 and r.stderr.strip() == "error: stop here", (r.exit_code, r.stderr)
    (dev, kw), = seen
    assert kw == {"precision": "fp32"} and dev.transport_options["cores"] == [2, 3] and dev.transport_options["use_xnnpack"] is False
    assert dev.transport_options["serial"] == "S9" and dev.transport_options["benchmark_binary"] == "/bm"


# ---- KEY=VALUE ---------------------------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_KEY = st.text(st.characters(blacklist_characters="=", blacklist_categories=("Zs", "Cc", "Zl", "Zp", "Cs")),
               min_size=1, max_size=20).filter(lambda k: not any(c.isspace() for c in k))


@settings(max_examples=200, deadline=None)
@given(key=_KEY, value=st.text(max_size=30))
def test_key_value_round_trip(key, value):
    from ofa_profile.options import parse_assignment
    assert parse_assignment(f"{key}={value}") == (key, value)


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(blacklist_characters="="), max_size=30))
def test_text_without_equals_is_refused(text):
    from ofa_profile.options import OptionError, parse_assignment
    with pytest.raises(OptionError, match="is not KEY=VALUE"):
        parse_assignment(text)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(min_value=0, max_value=10**6), flag=st.booleans(),
       items=st.lists(st.integers(min_value=0, max_value=512), max_size=8))
def test_option_values_from_text_round_trip(n, flag, items):
    from ofa_profile.options import Option, option_from_text
    opts = (Option("n", "integer"), Option("flag", "boolean"), Option("cores", "array", items=Option("", "integer")),
            Option("serial", "string", nullable=True))
    assert option_from_text("t", opts, "n", str(n)) == n
    assert option_from_text("t", opts, "flag", str(flag).lower()) is flag
    assert option_from_text("t", opts, "cores", ",".join(map(str, items))) == items
    assert option_from_text("t", opts, "cores", str(items)) == items
    assert option_from_text("t", opts, "serial", f"S{n}") == f"S{n}"
    assert option_from_text("t", opts, "serial", "null") is None
