"""A command's request as one record, option groups defined once, a transport's own command-line shorthands, and
one reader of the checked JSON files.

``pareto`` builds one frozen :class:`~ofa_profile.pareto_request.ParetoRequest` (what to search, the latency and
accuracy sources, what is measured again, what is written) and :func:`ofa_profile.pareto.run_pareto` takes it; a
bad value is refused by the record in one line.  ``evaluate`` and ``pareto --verify`` take their evaluation options
from one group.  ``--serial``/``--benchmark-binary`` are adb's own declarations, and a transport registered by a
plug-in brings its shorthands to ``measure``.  Predictors, adapters and latency sources are read by one loader.
"""
from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from ofa_model.evaluate import EvalRequest
from ofa_profile.cli import main
from ofa_profile.errors import OfaProfileError, RequestError
from ofa_profile.pareto_request import (AccuracyRequest, LatencyRequest, OutputRequest, ParetoRequest, SearchRequest,
                                        VerifyRequest)

# ---- the request records -----------------------------------------------------------------------------------------

_NOT_WHOLE = st.one_of(st.integers(max_value=-1), st.floats(allow_nan=True), st.booleans(), st.text(max_size=5),
                       st.none())


@settings(max_examples=150, deadline=None)
@given(budget=st.one_of(st.floats(max_value=0), st.just(math.nan), st.just(math.inf), st.booleans(),
                        st.text(max_size=5), st.none()))
def test_a_bad_budget_is_one_line_naming_the_option(budget):
    with pytest.raises(RequestError) as ei:
        SearchRequest(budget)
    assert ei.value.param_hint == "--budget" and "\n" not in str(ei.value) and "budget_ms=" in str(ei.value)


@settings(max_examples=200, deadline=None)
@given(field=st.sampled_from([("seed", "--seed"), ("n_budgets", "--n-budgets")]), value=_NOT_WHOLE)
def test_a_bad_count_of_the_search_is_refused(field, value):
    name, hint = field
    with pytest.raises(RequestError) as ei:
        SearchRequest(20.0, **{name: value})
    assert ei.value.param_hint == hint and "\n" not in str(ei.value)


@pytest.mark.parametrize("make, hint", [
    (lambda: SearchRequest(20.0, n_budgets=0), "--n-budgets"),
    (lambda: SearchRequest(20.0, effort="max"), "--effort"),
    (lambda: SearchRequest(20.0, margin_pct=100.0), "--margin"),
    (lambda: SearchRequest(20.0, margin_pct=-1), "--margin"),
    (lambda: SearchRequest(20.0, space=""), "--space"),
    (lambda: LatencyRequest(classes=0), "--classes"),
    (lambda: LatencyRequest(rescale="yes"), "--rescale"),
    (lambda: LatencyRequest(lut=""), "--lut"),
    (lambda: AccuracyRequest(predictor=3), "--predictor"),
    (lambda: VerifyRequest(rounds=0), "--verify-rounds"),
    (lambda: VerifyRequest(refresh=-2), "--refresh"),
    (lambda: OutputRequest("", plot=False), "--out-dir"),
])
def test_each_record_refuses_a_bad_value_in_one_line(make, hint):
    with pytest.raises(RequestError) as ei:
        make()
    assert ei.value.param_hint == hint and "\n" not in str(ei.value), str(ei.value)
    assert ei.value.exit_code == 2


@settings(max_examples=100, deadline=None)
@given(n_val=st.integers(max_value=-1), n_calib=st.integers(max_value=0))
def test_an_evaluation_request_refuses_bad_counts(n_val, n_calib):
    with pytest.raises(RequestError, match="n_val="):
        EvalRequest(n_val=n_val)
    with pytest.raises(RequestError, match="n_calib="):
        EvalRequest(n_calib=n_calib)


def test_the_records_are_frozen_and_combinations_are_checked(tmp_path):
    req = ParetoRequest(SearchRequest(20.0), output=OutputRequest(str(tmp_path)))
    assert req.output.out_dir == tmp_path and req.latency.device_or_default == "cpu-ort"
    with pytest.raises(AttributeError):
        req.search.budget_ms = 5.0                    # frozen
    with pytest.raises(RequestError, match="--rescale .*--refresh scales by the drift it measures: pass one"):
        ParetoRequest(SearchRequest(20.0), latency=LatencyRequest(rescale=True), verify=VerifyRequest(refresh=2))
    with pytest.raises(RequestError, match="--adapter has no LUT to check"):
        ParetoRequest(SearchRequest(20.0), latency=LatencyRequest(adapter="a.json", rescale=True))
    with pytest.raises(RequestError, match="need a SearchRequest"):
        ParetoRequest({"budget_ms": 20.0})


def test_run_pareto_takes_the_request_and_picks_as_the_command(tmp_path):
    """The request the command builds from its options and one made in code pick the same subnet and write the same
    files."""
    from ofa_profile.pareto import run_pareto

    cli = tmp_path / "cli"
    cli.mkdir()
    r = CliRunner().invoke(main, ["pareto", "--budget", "6ms", "--device", "cpu-ort", "--effort", "fast",
                                  "--n-budgets", "2", "--no-plot", "--no-speed-check", "--out-dir", str(cli),
                                  "--json"])
    assert r.exit_code == 0, r.output
    by_cli = json.loads(r.stdout)
    req = ParetoRequest(SearchRequest(6.0, effort="fast", n_budgets=2), latency=LatencyRequest(device="cpu-ort"),
                        output=OutputRequest(tmp_path, plot=False))
    run = run_pareto(req)
    assert run.result["best"] == by_cli["best"] and run.result["frontier"] == by_cli["frontier"]
    assert sorted(p.name for p in tmp_path.glob("pareto-*")) == sorted(p.name for p in cli.glob("pareto-*"))


def test_rescale_with_refresh_is_still_a_usage_error(tmp_path):
    r = CliRunner().invoke(main, ["pareto", "--budget", "20", "--rescale", "--refresh", "2", "--out-dir",
                                  str(tmp_path)])
    assert r.exit_code == 2 and "--refresh scales by the drift it measures: pass one" in r.stderr, r.stderr
    assert "Traceback" not in r.output


# ---- one option group for evaluate and pareto --verify -------------------------------------------------------------

def _params(command):
    return {p.name: p for p in main.commands[command].params}


def test_evaluate_and_pareto_verify_share_one_option_group():
    """The same options (type, default) under evaluate's names and pareto's --verify names, and both commands get
    them as one EvalRequest."""
    import inspect

    ev, pa = _params("evaluate"), _params("pareto")
    group = [n for n in ev if n.startswith("evaluation_")]
    assert sorted(group) == sorted(n for n in pa if n.startswith("evaluation_")) and len(group) == 6
    for n in group:
        assert type(ev[n].type) is type(pa[n].type) and ev[n].default == pa[n].default, n
        assert pa[n].help.startswith("--verify: ") and pa[n].help.removeprefix("--verify: ").startswith(ev[n].help)
    assert ev["evaluation_n_val"].opts == ["--val-images"] and pa["evaluation_n_val"].opts == ["--verify-images"]
    assert ev["evaluation_n_calib"].opts == ["--calib-images"]
    assert pa["evaluation_n_calib"].opts == ["--verify-calib-images"]
    for command in ("evaluate", "pareto"):
        sig = inspect.signature(inspect.unwrap(main.commands[command].callback))
        assert sig.parameters["evaluation"].annotation in ("EvalRequest", EvalRequest), command


def test_the_group_builds_the_request_from_the_command_line(monkeypatch, tmp_path):
    """evaluate --val-images 0 --calib-images 5 ... reaches the evaluation as one EvalRequest (the supernet file
    missing: the evaluation stops at loading it, one line naming it)."""
    r = CliRunner().invoke(main, ["evaluate", "--arch", "examples/arch-r160.json", "--supernet",
                                  str(tmp_path / "none.pt"), "--val-images", "0", "--calib-images", "5"])
    assert r.exit_code == 1 and "none.pt" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


# ---- a transport's own shorthands --------------------------------------------------------------------------------

@pytest.fixture
def link_transport():
    """A transport registered the way a plug-in registers one, with an option that declares the shorthand
    ``--lane-count``; removed afterwards."""
    from ofa_profile import runtimes
    from ofa_profile.devices import DeviceError
    from ofa_profile.options import Option
    from ofa_profile.transports import Profiler, register_transport
    from ofa_profile.transports import base

    seen = []

    class LinkProfiler(Profiler):
        def __init__(self, device, batch_size=None, **kw):
            seen.append((dict(device.transport_options), kw))
            raise DeviceError("link: nothing to measure in this test")

    register_transport("test-shorthand-link", LinkProfiler, lambda spec: (True, "up"), description="a test link",
                       options=(Option("lane_count", "integer", 1, "lanes of the link", minimum=1,
                                       flag="--lane-count"),))
    register_runtime_name = "test-shorthand-rt"
    runtimes.register_runtime(register_runtime_name, lambda options: None, transports=("test-shorthand-link",),
                              description="runs over the test link")
    yield seen
    base._REGISTRY.pop("test-shorthand-link", None)
    runtimes._REGISTRY.pop(register_runtime_name, None)


def test_a_transport_brings_its_own_shorthand_to_measure(link_transport, tmp_path):
    r = CliRunner().invoke(main, ["measure", "--help"])
    assert r.exit_code == 0 and "--lane-count INTEGER" in r.stdout, r.stdout
    assert "test-shorthand-link devices: lanes of the link" in " ".join(r.stdout.split()), r.stdout
    spec = tmp_path / "link.json"
    spec.write_text(json.dumps({"format": "ofa-profile-device", "schema_version": 1, "name": "link",
                                "description": "d", "runtime": "test-shorthand-rt",
                                "transport": "test-shorthand-link"}))
    r = CliRunner().invoke(main, ["measure", "--device", str(spec), "--lane-count", "3", "--resolutions", "160",
                                  "--out", str(tmp_path / "l.json")])
    assert r.exit_code == 1 and r.stderr.strip() == "error: link: nothing to measure in this test", r.stderr
    (options, kw), = link_transport
    assert options["lane_count"] == 3
    r = CliRunner().invoke(main, ["measure", "--device", str(spec), "--lane-count", "3", "--transport-option",
                                  "lane_count=4", "--out", str(tmp_path / "l.json")])
    assert r.exit_code == 2 and "--lane-count 3 and --transport-option lane_count=4 disagree" in r.stderr, r.stderr


def test_the_shorthand_leaves_with_its_transport():
    r = CliRunner().invoke(main, ["measure", "--help"])
    assert "--lane-count" not in r.stdout and "--serial" in r.stdout and "--benchmark-binary" in r.stdout


def test_adb_declares_its_shorthands_and_generic_code_names_none():
    from pathlib import Path

    from ofa_profile.transports import get_transport
    from ofa_profile.transports.base import transport_shorthands

    flags = {o.flag: o.name for o in get_transport("adb").options if o.flag}
    assert flags == {"--serial": "serial", "--benchmark-binary": "benchmark_binary"}
    assert {(s.flag, s.option) for s in transport_shorthands()} >= set(flags.items())
    root = Path(__file__).resolve().parent.parent / "ofa_profile"
    for generic in ("commands/measure.py", "commands/base.py", "measure.py", "devices.py", "transports/__init__.py"):
        words = _code_words(root / generic)           # the code: names and strings, docstrings (examples) aside
        for word in ("serial", "benchmark-binary", "benchmark_binary"):
            assert not [w for w in words if word in w], (generic, word)


def _code_words(path):
    import ast

    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
            out.append(n.value)
        elif isinstance(n, ast.Name):
            out.append(n.id)
        elif isinstance(n, ast.arg):
            out.append(n.arg)
        elif isinstance(n, ast.keyword) and n.arg:
            out.append(n.arg)
        elif isinstance(n, ast.Attribute):
            out.append(n.attr)
    return out


def test_a_flag_cannot_mean_two_options():
    from ofa_profile.options import Option
    from ofa_profile.transports import Profiler, register_transport
    from ofa_profile.transports import base

    with pytest.raises(ValueError, match="flag --serial of option 'port' is transport 'adb'"):
        register_transport("test-clash", Profiler, lambda spec: (True, ""),
                           options=(Option("port", "string", None, nullable=True, flag="--serial"),))
    assert "test-clash" not in base._REGISTRY
    with pytest.raises(ValueError, match="not a long option"):
        Option("x", "string", flag="-x")


# ---- one checked-JSON loader ---------------------------------------------------------------------------------------

_LOADERS = [("ofa_profile.accuracy", "load_accuracy_predictor", "accuracy predictor"),
            ("ofa_profile.adapt", "load_adapter", "latency adapter"),
            ("ofa_profile.latency_source", "load_source", "latency source")]


@pytest.mark.parametrize("module, fn, what", _LOADERS)
def test_every_checked_file_is_read_by_one_loader_with_one_wording(module, fn, what, tmp_path):
    """A file of the wrong kind: ``WHAT PATH: not a WHAT file ...`` from each reader (the latency source read
    ``not a latency source PATH file`` before)."""
    import importlib

    load = getattr(importlib.import_module(module), fn)
    p = tmp_path / "x.json"
    p.write_text('{"format": "something-else"}')
    with pytest.raises(OfaProfileError) as ei:
        load(p)
    msg = str(ei.value)
    assert msg.startswith(f"{what} {p}: not a") and f"{what} file" in msg and "\n" not in msg, msg
    p.write_text('{"a": NaN}')
    with pytest.raises(OfaProfileError, match=f"^{what} {p} holds NaN"):
        load(p)


@settings(max_examples=60, deadline=None)
@given(text=st.one_of(st.text(max_size=60), st.builds(json.dumps, st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=8))))
def test_the_loader_turns_any_text_into_one_line(text, tmp_path_factory):
    from ofa_profile.jsonio import load_checked
    from ofa_profile.latency_source import SourceModel

    p = tmp_path_factory.mktemp("j") / "s.json"
    p.write_text(text)
    with pytest.raises(OfaProfileError) as ei:
        load_checked(p, "latency source", SourceModel.from_json)
    assert "\n" not in str(ei.value) and str(p) in str(ei.value)
