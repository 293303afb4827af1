"""The "what was timed" record (graph flavour, classifier head, precision, threads): strict JSON, one-line errors,
stored in the LUT header, read as the defaults from a LUT without it, carried in the outputs, and never mixed."""
import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from ofa_profile.cli import main
from ofa_profile.errors import LutError
from ofa_profile.lut import load_lut, save_lut
from ofa_profile.paths import lut_dir
from ofa_profile.timed import GRAPHS, PRECISIONS, Timed, TimedError

ROOT = Path(__file__).resolve().parents[1]
FAST_TIMING = {"warmup_runs": 1, "min_runs": 3, "max_runs": 3, "max_time_s": 0.5, "target_iqr_rel": 1.0}

timed_records = st.builds(Timed, graph=st.sampled_from(GRAPHS), classes=st.integers(1, 1_000_000),
                          precision=st.sampled_from(PRECISIONS), threads=st.none() | st.integers(1, 256))


def one_line(exc) -> str:
    msg = str(exc)
    assert "\n" not in msg and msg, msg
    return msg


@given(timed_records)
@settings(max_examples=200, deadline=None)
def test_round_trip_through_strict_json(t):
    text = json.dumps(t.to_json(), allow_nan=False)
    assert Timed.from_json(json.loads(text)) == t


@pytest.mark.parametrize("field,value,fragment", [
    ("graph", "OFA", "graph 'OFA' is not a graph flavour"),
    ("graph", None, "graph None"),
    ("classes", True, "classes True"),
    ("classes", "1000", "classes '1000'"),
    ("classes", 1000.0, "classes 1000.0"),
    ("classes", 0, "classes 0"),
    ("precision", "fp16", "precision 'fp16'"),
    ("threads", 0, "threads 0"),
    ("threads", False, "threads False"),
    ("threads", 1.5, "threads 1.5"),
])
def test_wrong_types_and_values_are_refused_in_one_line(field, value, fragment):
    obj = {**Timed().to_json(), field: value}
    with pytest.raises(TimedError) as ei:
        Timed.from_json(obj, "LUT x.json timed")
    msg = one_line(ei.value)
    assert msg.startswith("LUT x.json timed: ") and fragment in msg


@given(st.dictionaries(st.text(max_size=8), st.none() | st.integers() | st.text(max_size=5), max_size=6)
       | st.lists(st.integers(), max_size=3) | st.text(max_size=5) | st.integers())
@settings(max_examples=200, deadline=None)
def test_any_other_json_is_one_line_error_or_a_record(obj):
    try:
        t = Timed.from_json(obj)
    except TimedError as exc:
        one_line(exc)
    else:
        assert t.to_json() == obj


def test_unknown_and_missing_fields_are_named():
    with pytest.raises(TimedError, match="unknown field.*'batch'"):
        Timed.from_json({**Timed().to_json(), "batch": 1})
    with pytest.raises(TimedError, match="lacks field.*precision"):
        Timed.from_json({"graph": "ofa", "classes": 10, "threads": 1})


def test_label_says_every_field():
    assert Timed().label("onnxruntime") == "onnxruntime fp32, 1 thread, ofa-profile graph, 1000-class head"
    assert Timed("ofa", 10, "int8", 4).label() == "int8, 4 threads, ofa graph, 10-class head"
    assert "threads unknown" in Timed(threads=None).label()


def test_mixing_refused_naming_the_fields_that_differ():
    a, b = Timed(), Timed(graph="ofa", classes=10)
    with pytest.raises(TimedError) as ei:
        a.require_same(b, "LUT a.json", "this run", "choose another --out")
    msg = one_line(ei.value)
    assert "graph ofa-profile vs ofa" in msg and "classes 1000 vs 10" in msg and msg.endswith("choose another --out")
    a.require_same(Timed(), "x", "y")                 # the same record mixes
    a.require_same(Timed(threads=None), "x", "y")     # threads unknown on one side is no difference


# -- in the LUT ------------------------------------------------------------------------------------------

def test_shipped_lut_without_timed_reads_as_the_defaults():
    raw = json.loads((lut_dir() / "cpu-ort.json").read_text())
    assert "timed" not in raw                          # written before the record existed
    lut = load_lut("cpu-ort")
    assert lut.timed == Timed(graph="ofa-profile", classes=1000, precision="fp32", threads=1)


def test_imported_ofa_table_reads_as_ofa_graph_threads_unknown(shared_data):
    from ofa_profile.lut import import_ofa_yaml
    lut = import_ofa_yaml(shared_data / "reference" / "ofa-note10-lut-w1.2")
    assert lut.timed == Timed(graph="ofa", classes=1000, precision="fp32", threads=None)


def test_lut_round_trip_keeps_the_record_and_schema_allows_it(tmp_path):
    lut = load_lut("cpu-ort")
    t = Timed(graph="ofa", classes=1000, precision="fp32", threads=1)
    save_lut(dataclasses.replace(lut, timed=t), tmp_path / "o.json")
    obj = json.loads((tmp_path / "o.json").read_text())
    assert obj["timed"] == t.to_json() and obj["num_threads"] == 1
    assert load_lut(tmp_path / "o.json").timed == t


def test_num_threads_and_timed_threads_must_agree(tmp_path):
    lut = load_lut("cpu-ort")
    with pytest.raises(LutError, match="num_threads 1 and timed.threads 2 disagree"):
        dataclasses.replace(lut, timed=Timed(threads=2))
    obj = json.loads((lut_dir() / "cpu-ort.json").read_text())
    obj["timed"] = {**Timed().to_json(), "threads": 2}
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(obj))
    with pytest.raises(LutError) as ei:
        load_lut(p)
    assert "disagree" in one_line(ei.value)


@pytest.mark.parametrize("timed", [{"graph": "tf"}, "fp32", {"graph": "ofa", "classes": "10", "precision": "fp32",
                                                                     "threads": 1}])
def test_bad_timed_in_a_lut_file_is_one_line(tmp_path, timed):
    obj = json.loads((lut_dir() / "cpu-ort.json").read_text())
    obj["timed"] = timed
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(obj))
    with pytest.raises(LutError) as ei:
        load_lut(p)
    assert str(p) in one_line(ei.value) and "timed" in str(ei.value)


# -- never mixed -----------------------------------------------------------------------------------------

def fast_device(tmp_path: Path, runtime: str = "onnxruntime"):
    from ofa_profile.devices import load_device
    spec = {"format": "ofa-profile-device", "schema_version": 1, "name": "fast", "description": "test device",
            "runtime": runtime, "transport": "local", "num_threads": 1, "timing": FAST_TIMING}
    p = tmp_path / "fast.json"
    p.write_text(json.dumps(spec))
    return load_device(p)


def test_measure_refuses_to_extend_a_lut_of_another_record(tmp_path):
    from ofa_profile.measure import measure_lut
    out = tmp_path / "lut.json"
    save_lut(dataclasses.replace(load_lut("cpu-ort"), timed=Timed(graph="ofa")), out)
    before = out.read_bytes()
    with pytest.raises(TimedError) as ei:
        measure_lut(fast_device(tmp_path), out, [128], progress=False, limit=1)
    assert "graph ofa vs ofa-profile" in one_line(ei.value)
    assert out.read_bytes() == before


def test_measure_refuses_int8_where_it_cannot_time_it(tmp_path):
    """int8 blocks are timed on onnxruntime and litert (tests/test_int8.py); torch times fp32 only."""
    from ofa_profile.measure import measure_lut
    with pytest.raises(TimedError, match="torch times fp32 only"):
        measure_lut(fast_device(tmp_path, "torch"), tmp_path / "l.json", [128], progress=False, limit=1,
                    timed=Timed(precision="int8"))
    assert not (tmp_path / "l.json").exists()


def test_calibrate_refuses_a_lut_of_another_record(tmp_path):
    from ofa_profile.calibrate import calibrate_device
    from ofa_profile.transports import make_profiler
    dev = fast_device(tmp_path)
    with make_profiler(dev) as prof:
        lut = dataclasses.replace(load_lut("cpu-ort"), fingerprint=prof.fingerprint(), calibration=None,
                                  timed=Timed(graph="ofa"))
        out = tmp_path / "lut.json"
        save_lut(lut, out)
        with pytest.raises(TimedError) as ei:
            calibrate_device(out, prof, 10, 0, progress=False)
    assert "graph ofa vs ofa-profile" in one_line(ei.value)
    assert load_lut(out).calibration is None


# -- in the outputs --------------------------------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_lut_info_and_predict_state_the_record(tmp_path):
    label = "onnxruntime fp32, 1 thread, ofa-profile graph, 1000-class head"
    res = run("lut", "info", "cpu-ort", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["timed"] == Timed().to_json()
    res = run("lut", "info", "cpu-ort")
    assert f"timed:        {label}" in res.stdout
    arch = ROOT / "examples" / "arch-r160.json"
    res = run("predict", "--lut", "cpu-ort", "--arch", arch, "--json")
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    assert obj["timed"] == Timed().to_json() and obj["timed_label"] == label
    res = run("predict", "--lut", "cpu-ort", "--arch", arch)
    assert res.stdout.splitlines()[1] == f"timed: {label}"
    other = tmp_path / "ofa.json"
    save_lut(dataclasses.replace(load_lut("cpu-ort"), timed=Timed(graph="ofa")), other)
    res = run("predict", "--lut", other, "--arch", arch)
    assert "ofa graph" in res.stdout.splitlines()[1]
