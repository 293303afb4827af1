"""`ofa-profile bench`: a model file or a subnet timed end to end on a device over every transport (local runtimes,
the real `adb` without a phone and the benchmark_model profiler with the real `litert-benchmark`, a real sshd on
loopback), bad model files as one line, --json strict."""
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ofa_profile.cli import main
from ofa_profile.devices import load_device
from ofa_profile.errors import OfaProfileError
from ofa_profile.model_file import ModelFileError, check_model_file
from ofa_profile.space import get_space
from ofa_profile.timed import Timed

from helpers import fast_spec as _fast_spec

ROOT = Path(__file__).resolve().parents[1]
FAST_TIMING = {"warmup_runs": 1, "min_runs": 5, "max_runs": 5, "max_time_s": 0.5, "target_iqr_rel": 1.0}


def fast_spec(tmp_path: Path, runtime: str) -> Path:
    """helpers' fast local device, timed 5 runs (the JSON's run count is checked)."""
    return _fast_spec(tmp_path, runtime, timing=FAST_TIMING)
SMALL = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128}
LITERT_BENCHMARK = Path(sys.executable).with_name("litert-benchmark")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def strict_json(text: str):
    def no_constant(name):
        raise AssertionError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=no_constant)


def assert_one_line_error(res, fragment="", code=1):
    assert res.exit_code == code, (res.exit_code, res.output)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in res.output and fragment in err, err


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The smallest subnet at r=128 exported by `ofa-profile export --random-weights`, as ONNX and TFLite."""
    d = tmp_path_factory.mktemp("models")
    arch = d / "small.json"
    arch.write_text(json.dumps(SMALL))
    out = {"arch": arch, "dir": d}
    for fmt in ("onnx", "tflite"):
        res = run("export", "--arch", arch, "--format", fmt, "--out", d / f"small.{fmt}", "--random-weights",
                  "--no-check")
        assert res.exit_code == 0, res.output
        out[fmt] = d / f"small.{fmt}"
    return out


# -- local runtimes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,runtime", [("onnx", "onnxruntime"), ("tflite", "litert")])
def test_local_file_json(models, tmp_path, fmt, runtime):
    res = run("bench", models[fmt], "--device", fast_spec(tmp_path, runtime), "--rounds", "2", "--json")
    assert res.exit_code == 0, res.output
    obj = strict_json(res.stdout)
    assert obj["runs"] == 5 and obj["rounds"] == 2 and len(obj["round_medians_ms"]) == 2
    assert obj["median_ms"] == min(obj["round_medians_ms"]) > 0 and obj["iqr_ms"] >= 0
    assert obj["device"] == "fast" and obj["transport"] == "local" and obj["runtime"] == runtime
    assert obj["timing"]["min_runs"] == 5 and obj["fingerprint"]["runtime_versions"]
    m = obj["model"]
    assert m["format"] == fmt and m["classes"] == 1000 and m["graph"] == "ofa-profile"
    assert m["sha256"] == hashlib.sha256(models[fmt].read_bytes()).hexdigest()
    shape = [1, 3, 128, 128] if fmt == "onnx" else [1, 128, 128, 3]
    assert m["inputs"] == [{"name": m["inputs"][0]["name"], "shape": shape, "dtype": "float32"}]
    assert obj["timed"] == Timed(graph="ofa-profile", classes=1000, precision="fp32", threads=1).to_json()
    text = run("bench", models[fmt], "--device", fast_spec(tmp_path, runtime), "--rounds", "1")
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert len(lines) == 2 and " ms median (IQR " in lines[0] and "5 runs" in lines[0]
    assert lines[1] == f"timed: {runtime} fp32, 1 thread, ofa-profile graph, 1000-class head"


def test_file_of_another_exporter_has_no_graph_flavour(tmp_path):
    """An ONNX file not written by ofa-profile: the figure is given, the graph flavour is said to be unknown."""
    import torch
    path = tmp_path / "plain.onnx"
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(8, 7)).eval()
    torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, opset_version=17)
    res = run("bench", path, "--device", fast_spec(tmp_path, "onnxruntime"), "--rounds", "1", "--json")
    assert res.exit_code == 0, res.output
    obj = strict_json(res.stdout)
    assert obj["timed"] is None and obj["model"]["graph"] is None and obj["model"]["classes"] == 7
    text = run("bench", path, "--device", fast_spec(tmp_path, "onnxruntime"), "--rounds", "1")
    assert "graph flavour not recorded in the file, 7-class head" in text.stdout.splitlines()[1]


def test_arch_is_built_as_export_builds_it_with_the_head_asked(models, tmp_path):
    res = run("bench", "--arch", models["arch"], "--device", fast_spec(tmp_path, "onnxruntime"), "--classes", "10",
              "--rounds", "1", "--json")
    assert res.exit_code == 0, res.output
    obj = strict_json(res.stdout)
    assert obj["arch"] == {"space": "ofa-mbv3-w1.0", **get_space("ofa-mbv3-w1.0").smallest(128).to_ofa()}
    assert obj["timed"]["classes"] == 10 and obj["model"]["classes"] == 10 and obj["model"]["format"] == "onnx"
    # a file export writes with the same arch and seed has the same graph: the same size and inputs
    assert obj["model"]["inputs"][0]["shape"] == [1, 3, 128, 128]
    res = run("bench", "--arch", models["arch"], "--device", fast_spec(tmp_path, "onnxruntime"), "--rounds", "1",
              "--json")
    assert strict_json(res.stdout)["model"]["sha256"] == hashlib.sha256(models["onnx"].read_bytes()).hexdigest()


def test_arch_on_torch_runs_the_module_with_the_head_and_graph_asked(models, tmp_path):
    res = run("bench", "--arch", models["arch"], "--device", fast_spec(tmp_path, "torch"), "--rounds", "1", "--json",
              "--classes", "10", "--graph", "ofa")
    assert res.exit_code == 0, res.output
    obj = strict_json(res.stdout)
    assert obj["model"] is None and obj["runtime"] == "torch"
    assert obj["timed"] == {"graph": "ofa", "classes": 10, "precision": "fp32", "threads": 1}


def test_graph_ofa_for_arch_is_ofas_export(models, tmp_path):
    """--graph ofa: the subnet built from OFA's own modules and exported through torch.onnx: its activations are
    Add/Clip/Mul/Div chains, its SE pools are ReduceMeans (the project's export has HardSwish ops)."""
    import onnx
    from ofa_profile.bench import _write_arch
    spec = get_space("ofa-mbv3-w1.0").smallest(128)
    ops = {}
    for graph in ("ofa", "ofa-profile"):
        (tmp_path / graph).mkdir()
        p = _write_arch(spec, "onnx", 1000, 0, tmp_path / graph, graph)
        ops[graph] = [n.op_type for n in onnx.load(str(p)).graph.node]
    assert "HardSwish" not in ops["ofa"] and ops["ofa"].count("Clip") == 21 and ops["ofa"].count("ReduceMean") == 14
    assert ops["ofa-profile"].count("HardSwish") == 15 and "Clip" not in ops["ofa-profile"]
    res = run("bench", "--arch", models["arch"], "--device", fast_spec(tmp_path, "onnxruntime"), "--graph", "ofa",
              "--rounds", "1", "--json")
    assert res.exit_code == 0, res.output
    assert strict_json(res.stdout)["timed"]["graph"] == "ofa"
    res = run("bench", "--arch", models["arch"], "--device", fast_spec(tmp_path, "litert"), "--graph", "ofa")
    assert_one_line_error(res, "--graph ofa builds OFA's modules")


# -- bad input -----------------------------------------------------------------------------------------------

def _w(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _dynamic_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "height", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, "height", 8])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("make,fragment", [
    (lambda d, m: d / "missing.onnx", "does not exist"),
    (lambda d, m: (d / "folder.onnx").mkdir() or d / "folder.onnx", "is a folder"),
    (lambda d, m: _w(d / "empty.onnx", b""), "is empty"),
    (lambda d, m: _w(d / "model.pt", b"x"), "not a model format"),
    (lambda d, m: _w(d / "text.onnx", "not a model\n".encode()), "is not an ONNX model"),
    (lambda d, m: _w(d / "cut.onnx", m["onnx"].read_bytes()[:5000]),
     "is not an ONNX model"),
    (lambda d, m: _w(d / "cut.tflite", m["tflite"].read_bytes()[:5000]),
     "is not a readable TFLite model"),
    (lambda d, m: _w(d / "onnx.tflite", m["onnx"].read_bytes()),
     "is not a TFLite model (no 'TFL3'"),
    (lambda d, m: _dynamic_onnx(d / "dyn.onnx"), "unknown size in dimension 2"),
])
def test_bad_model_files_are_one_line(models, tmp_path, make, fragment):
    path = make(tmp_path, models)
    fmt = path.suffix
    res = run("bench", path, "--device", fast_spec(tmp_path, "litert" if fmt == ".tflite" else "onnxruntime"))
    assert_one_line_error(res, fragment)
    assert str(path) in res.stderr


def test_format_the_device_does_not_read_is_one_line(models, tmp_path):
    assert_one_line_error(run("bench", models["tflite"], "--device", fast_spec(tmp_path, "onnxruntime")),
                          "does not read tflite files")
    assert_one_line_error(run("bench", models["onnx"], "--device", fast_spec(tmp_path, "torch")),
                          "does not read onnx files")


def test_usage_errors_exit_2(models, tmp_path):
    dev = fast_spec(tmp_path, "onnxruntime")
    assert run("bench", "--device", dev).exit_code == 2
    assert run("bench", models["onnx"], "--arch", models["arch"], "--device", dev).exit_code == 2
    assert run("bench", models["onnx"], "--classes", "10", "--device", dev).exit_code == 2
    assert run("bench", models["onnx"], "--rounds", "0", "--device", dev).exit_code == 2
    assert "Example:" in run("bench", "--help").stdout


@given(st.binary(max_size=600), st.sampled_from([".onnx", ".tflite"]))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_bytes_are_a_model_or_one_line(tmp_path, data, suffix):
    p = tmp_path / f"m{suffix}"
    p.write_bytes(data)
    try:
        check_model_file(p)
    except ModelFileError as exc:
        assert "\n" not in str(exc) and str(p) in str(exc)


def test_bench_model_refuses_both_or_neither(models, tmp_path):
    from ofa_profile.bench import bench_model
    dev = load_device(fast_spec(tmp_path, "onnxruntime"))
    with pytest.raises(OfaProfileError, match="one of them"):
        bench_model(dev)
    with pytest.raises(OfaProfileError, match="one of them"):
        bench_model(dev, models["onnx"], arch=models["arch"])


# -- adb: the real adb binary without a phone, and the benchmark_model profiler on this machine --------------

def test_phone_without_phone_is_one_line_before_any_work(models):
    adb = shutil.which("adb")
    if adb is None:
        pytest.skip("adb is not installed (apt-get install adb)")
    r = subprocess.run([adb, "devices"], capture_output=True, text=True, timeout=60)
    if [ln for ln in r.stdout.splitlines()[1:] if ln.strip()]:
        pytest.skip("a device is attached to this machine")
    res = subprocess.run([sys.executable, "-m", "ofa_profile.cli", "bench", str(models["tflite"]), "--device", "pixel"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith("error: no Android phone attached") and "adb devices lists: none" in res.stderr
    # an .onnx is refused before adb is asked at all
    res = run("bench", models["onnx"], "--device", "pixel")
    assert_one_line_error(res, "does not read onnx files")


def test_benchmark_model_profiler_times_the_file(models, tmp_path):
    """The adb profiler end to end on this machine (push = copy, the program's own output parsed), with
    ai-edge-litert's real litert-benchmark standing in for the phone's benchmark_model."""
    if not LITERT_BENCHMARK.exists():
        pytest.skip("litert-benchmark (ai-edge-litert wheel) is not installed")
    from dataclasses import replace

    from ofa_profile.bench import bench_model
    from ofa_profile.timing import TimingConfig
    d = load_device("android")
    dev = replace(d, name="local-bench", timing=TimingConfig(warmup_runs=2, min_runs=5, max_runs=5, max_time_s=1.0),
                  transport_options={**d.transport_options, "cores": [], "repeats": 2})
    res = bench_model(dev, models["tflite"], rounds=1,
                      profiler_options={"benchmark_binary": str(LITERT_BENCHMARK), "local": True})
    obj = res.as_dict()
    assert obj["runs"] == 2 and obj["median_ms"] > 0 and obj["transport"] == "adb"   # 2 invocations, each a mean
    assert obj["fingerprint"]["runtime_versions"]["litert-benchmark"].startswith("sha256:")
    assert obj["timed"]["graph"] == "ofa-profile"
    with pytest.raises(ModelFileError, match="reads .tflite"):
        from ofa_profile.transports import make_remote_profiler
        with make_remote_profiler(dev, benchmark_binary=str(LITERT_BENCHMARK), local=True) as prof:
            prof.measure_file(check_model_file(models["onnx"]), 0)


# -- ssh: a real sshd on loopback ----------------------------------------------------------------------------

from helpers import board_spec, needs_sshd  # noqa: E402  (the sshd fixture is conftest's)


@needs_sshd
def test_ssh_board_times_the_file(sshd, models, tmp_path):  # noqa: F811
    _, path = board_spec(sshd, tmp_path)
    res = run("bench", models["onnx"], "--device", path, "--rounds", "1", "--json")
    assert res.exit_code == 0, res.output
    obj = strict_json(res.stdout)
    assert obj["transport"] == "ssh" and obj["runtime"] == "onnxruntime" and obj["runs"] >= 5
    assert obj["fingerprint"]["transport"] == "ssh" and obj["timed"]["classes"] == 1000
    assert len(list((tmp_path / "board").glob("models/*.onnx"))) == 1        # copied by content digest
    res = run("bench", "--arch", models["arch"], "--device", path, "--classes", "10", "--rounds", "1", "--json")
    assert res.exit_code == 0, res.output
    assert strict_json(res.stdout)["model"]["classes"] == 10


@needs_sshd
def test_ssh_bad_file_is_refused_before_connecting(sshd, models, tmp_path):  # noqa: F811
    _, path = board_spec(sshd, tmp_path)
    bad = tmp_path / "bad.onnx"
    bad.write_text("nope")
    assert_one_line_error(run("bench", bad, "--device", path), "is not an ONNX model")
    assert not (tmp_path / "board").exists()
