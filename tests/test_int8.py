"""Int8 models: the ONNX Runtime and LiteRT quantizers on real blocks, the refusals, and int8 LUTs."""
import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from ofa_profile.blocks import op_input, op_module  # noqa: E402
from ofa_profile.errors import OfaProfileError  # noqa: E402
from ofa_profile.ops import ops_at_resolution  # noqa: E402
from ofa_profile.quantize import (CALIBRATION_SAMPLES, calibration_inputs, dequantize_output,  # noqa: E402
                                  int8_recipe, quantize_input)
from ofa_profile.runtimes import get_runtime  # noqa: E402

OPS = ops_at_resolution("ofa-mbv3-w1.0", 128)
SE_HS = next(o for o in OPS if o.kind == "expanded_conv" and o.se and o.hs and o.stride == 2)
RELU_SKIP = next(o for o in OPS if o.kind == "expanded_conv" and o.idskip and not o.se and not o.hs)
PICKED = [OPS[0], SE_HS, RELU_SKIP, OPS[-1]]       # stem, SE + h-swish, relu with identity skip, classifier


def _runtime(name):
    rt = get_runtime(name)
    ok, why = rt.check()
    if not ok:
        pytest.skip(why)
    ok, why = rt.check_precision("int8")
    if not ok:
        pytest.skip(why)
    return rt


def _mean_rel_err(out, ref):
    assert out.shape == ref.shape, (out.shape, ref.shape)
    return float(np.abs(out - ref).mean() / np.abs(ref).mean())


@pytest.mark.parametrize("name", ["onnxruntime", "litert"])
@pytest.mark.parametrize("op", PICKED, ids=lambda o: o.kind + ("-se-hs" if o.se else "-skip" if o.idskip else ""))
def test_int8_block_tracks_fp32(name, op):
    """An int8 block computes what the fp32 block does, to int8 accuracy (mean error a few %), and is not the
    float model (some error: it really was quantized)."""
    rt = _runtime(name)
    m, x = op_module(op, seed=3), op_input(op, seed=3)
    with torch.inference_mode():
        ref = m(x).numpy()
    with rt.compile(m, x, precision="int8", calibration=calibration_inputs(tuple(x.shape), seed=3)) as c:
        out = c.output()
        c.run()
    err = _mean_rel_err(out, ref)
    assert 1e-4 < err < 0.08, err


def test_onnx_int8_model_is_qdq_per_channel(tmp_path):
    """The quantized ONNX graph: QuantizeLinear/DequantizeLinear pairs, int8 weights with one scale per output
    channel, uint8 activations."""
    onnx = pytest.importorskip("onnx")
    from ofa_profile.quantize import quantize_onnx
    from ofa_profile.runtimes import export_onnx
    m, x = op_module(SE_HS), op_input(SE_HS)
    export_onnx(m, x, tmp_path / "b.onnx")
    quantize_onnx(tmp_path / "b.onnx", tmp_path / "q.onnx", calibration_inputs(tuple(x.shape)))
    g = onnx.load(str(tmp_path / "q.onnx")).graph
    kinds = {n.op_type for n in g.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= kinds
    inits = {i.name: i for i in g.initializer}
    w = [inits[n.input[0]] for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
         and inits[n.input[0]].data_type == onnx.TensorProto.INT8]
    assert w, "no int8 weights"
    scales = [inits[n.input[1]] for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
              and inits[n.input[0]].data_type == onnx.TensorProto.INT8]
    assert any(len(s.dims) == 1 and s.dims[0] == SE_HS.mid for s in scales)     # per channel
    acts = [n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == "input"]
    zp = inits[acts[0].input[2]]
    assert zp.data_type == onnx.TensorProto.UINT8


def test_tflite_int8_model_is_per_channel_int8(tmp_path):
    """The quantized .tflite: int8 input, output and weights, per-channel weight scales; the interpreter runs it."""
    pytest.importorskip("ai_edge_quantizer")
    from ai_edge_litert.interpreter import Interpreter

    from ofa_profile.quantize import quantize_tflite
    from ofa_profile.tflite import load_schema, tflite_bytes
    m, x = op_module(SE_HS), op_input(SE_HS)
    nhwc = [c.transpose(0, 2, 3, 1) for c in calibration_inputs(tuple(x.shape))]
    quantize_tflite(tflite_bytes(m, x), tmp_path / "q.tflite", nhwc)
    s = load_schema()
    buf = (tmp_path / "q.tflite").read_bytes()
    model = s.ModelT.InitFromObj(s.Model.GetRootAs(buf, 0))
    tensors = model.subgraphs[0].tensors
    int8 = [t for t in tensors if t.type == s.TensorType.INT8]
    assert len(int8) >= len(tensors) // 2
    assert any(t.quantization is not None and t.quantization.scale is not None
               and len(t.quantization.scale) == SE_HS.mid for t in int8)       # per channel
    it = Interpreter(model_path=str(tmp_path / "q.tflite"), num_threads=1)
    it.allocate_tensors()
    d_in, d_out = it.get_input_details()[0], it.get_output_details()[0]
    assert np.dtype(d_in["dtype"]) == np.int8 and np.dtype(d_out["dtype"]) == np.int8
    it.set_tensor(d_in["index"], quantize_input(x.permute(0, 2, 3, 1).numpy(), d_in))
    it.invoke()
    y = dequantize_output(it.get_tensor(d_out["index"]), d_out)
    with torch.inference_mode():
        ref = m(x).permute(0, 2, 3, 1).numpy()
    assert _mean_rel_err(y, ref) < 0.08


def test_tflite_int8_scales_are_those_of_the_quantizers_default_calibration(tmp_path):
    """quantize_tflite calibrates in ai-edge-quantizer's profiler-based mode (min/max kept in LiteRT's C++
    engine): every tensor's scale and zero point are those its default mode (every tensor read in Python)
    gives, to float rounding, on a block with SE, h-swish and a classifier."""
    pytest.importorskip("ai_edge_quantizer")
    from ai_edge_quantizer import quantizer, recipe

    from ofa_profile.quantize import _quiet, quantize_tflite
    from ofa_profile.tflite import load_schema, tflite_bytes
    s = load_schema()

    def params(buf):
        model = s.ModelT.InitFromObj(s.Model.GetRootAs(buf, 0))
        return {t.name: (np.asarray(t.quantization.scale), np.asarray(t.quantization.zeroPoint))
                for t in model.subgraphs[0].tensors if t.quantization is not None and t.quantization.scale is not None}

    for op in (SE_HS, OPS[-1]):
        m, x = op_module(op), op_input(op)
        fb = tflite_bytes(m, x)
        nhwc = [c.transpose(0, 2, 3, 1) for c in calibration_inputs(tuple(x.shape))]
        ours = params(quantize_tflite(fb, tmp_path / "q.tflite", nhwc).read_bytes())
        with _quiet():
            q = quantizer.Quantizer(fb, recipe.static_wi8_ai8())
            cal = {"serving_default": [{"input": np.ascontiguousarray(a, dtype=np.float32)} for a in nhwc]}
            ref = params(bytes(q.quantize(q.calibrate(cal, num_threads=1), enable_progress_report=False)
                               .quantized_model))
        assert ours.keys() == ref.keys() and len(ref) >= 4
        for name, (scale, zp) in ref.items():
            np.testing.assert_allclose(ours[name][0], scale, rtol=1e-5, err_msg=name)
            assert np.abs(ours[name][1] - zp).max(initial=0) <= 1, name


def test_float_tflite_has_a_signature():
    """The writer's models carry the signature the quantizer calibrates through."""
    from ai_edge_litert.interpreter import Interpreter

    from ofa_profile.tflite import SIGNATURE_KEY, tflite_bytes
    m, x = op_module(RELU_SKIP), op_input(RELU_SKIP)
    it = Interpreter(model_content=tflite_bytes(m, x))
    assert it.get_signature_list() == {SIGNATURE_KEY: {"inputs": ["input"], "outputs": ["output"]}}


def test_calibration_inputs_are_seeded():
    a, b, c = calibration_inputs((1, 3, 8, 8), 0), calibration_inputs((1, 3, 8, 8), 0), calibration_inputs((1, 3, 8, 8), 1)
    assert len(a) == CALIBRATION_SAMPLES and all(x.dtype == np.float32 and x.shape == (1, 3, 8, 8) for x in a)
    assert all(np.array_equal(p, q) for p, q in zip(a, b)) and not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], a[1])
    # not the timed input itself
    from ofa_profile.ops import parse_key
    op = parse_key("Conv-input:8x8x3-output:4x4x16")
    assert not np.array_equal(calibration_inputs(tuple(op_input(op).shape), 0)[0], op_input(op).numpy())


def test_torch_runtime_refuses_int8():
    rt = get_runtime("torch")
    ok, why = rt.check_precision("int8")
    assert not ok and "fp32" in why and "\n" not in why
    m, x = op_module(RELU_SKIP), op_input(RELU_SKIP)
    with pytest.raises(OfaProfileError, match="int8"):
        rt.compile(m, x, precision="int8")


def test_int8_recipe_names_quantizer_and_inputs():
    r = int8_recipe("onnxruntime")
    assert r["format"] == "QDQ" and "per output channel" in r["weights"] and "uint8" in r["activations"]
    assert "seeded" in r["calibration_inputs"]
    assert "ai-edge-quantizer" in int8_recipe("litert")["quantizer"]
    with pytest.raises(OfaProfileError, match="int8 is available for"):
        int8_recipe("torch")


# -- int8 subnets: export and accuracy --------------------------------------------------------------------------

def test_evaluate_precisions_fp32_is_the_ort_figure_and_int8_runs(tmp_path):
    """fp32 and int8 top-1 on the same val images after one BN recalibration: the fp32 figure is
    evaluate_spec's ONNX Runtime one; the int8 runner is a different (quantized) model whose logits track fp32."""
    from ofa_model.data import build_cache
    from ofa_model.evaluate import _ort_runner, evaluate_precisions, evaluate_spec, int8_calibration_images
    from ofa_model.supernet import OFAMobileNetV3
    from ofa_profile.space import get_space
    from helpers import make_folder

    tr = build_cache(make_folder(tmp_path / "train", 4), tmp_path / "ctr", size=40)
    va = build_cache(make_folder(tmp_path / "val", 3, seed=2), tmp_path / "cva", size=40, classes=tr.classes)
    torch.manual_seed(0)
    model = OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=3).eval()
    spec = get_space("ofa-mbv3-w1.0").sample(4, resolution=128)
    tm = {}
    got = evaluate_precisions(model, spec, tr, va, n_calib=8, n_int8_calib=6, batch_size=8, timings=tm)
    assert set(got) == {"fp32", "int8"} and all(0.0 <= v <= 1.0 for v in got.values()) and tm["n_val"] == 9
    assert got["fp32"] == evaluate_spec(model, spec, tr, va, n_calib=8, batch_size=8, engine="onnxruntime")
    cal = int8_calibration_images(tr, 128, 6, chunk=4)
    assert [c.shape for c in cal] == [(4, 3, 128, 128), (2, 3, 128, 128)]
    assert all(np.array_equal(a, b) for a, b in zip(cal, int8_calibration_images(tr, 128, 6, chunk=4)))
    model.set_active_subnet(spec)
    sub = model.get_active_subnet().eval()
    x = cal[0]
    f, q = _ort_runner(sub, 128)(x), _ort_runner(sub, 128, calibration=cal)(x)
    assert not np.array_equal(f, q) and _mean_rel_err(q, f) < 0.25
    with pytest.raises(OfaProfileError, match="precision"):
        evaluate_precisions(model, spec, tr, va, ("fp16",))


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_export_int8_random_weights_cli(tmp_path, fmt):
    """`export --precision int8` writes a quantized model that its runtime runs (the check), says so in its JSON
    and (ONNX) in the model's metadata."""
    import json
    import subprocess
    import sys
    if fmt == "tflite":
        pytest.importorskip("ai_edge_quantizer")
    out = tmp_path / f"net.{fmt}"
    arch = tmp_path / "a.json"
    arch.write_text(json.dumps({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128}))
    p = subprocess.run([sys.executable, "-m", "ofa_profile", "export", "--arch", str(arch), "--format", fmt,
                        "--random-weights", "--precision", "int8", "--out", str(out), "--json"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["precision"] == "int8" and "seeded" in s["int8"]["calibration_inputs"] and out.exists()
    assert 0 < s["max_rel_diff"] < 1        # quantization error: there, and bounded
    if fmt == "onnx":
        import onnx
        m = onnx.load(str(out))
        meta = {p.key: p.value for p in m.metadata_props}
        assert meta["ofa_profile.precision"] == "int8"
        assert any(n.op_type == "DequantizeLinear" for n in m.graph.node)
    else:
        from ofa_profile.tflite import load_schema
        s_ = load_schema()
        model = s_.ModelT.InitFromObj(s_.Model.GetRootAs(out.read_bytes(), 0))
        assert model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]].type == s_.TensorType.INT8
    # --int8-calib-images without int8 is a usage error (exit 2, one line)
    p = subprocess.run([sys.executable, "-m", "ofa_profile", "export", "--arch", str(arch), "--format", fmt,
                        "--random-weights", "--int8-calib-images", "5", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "--precision int8" in p.stderr


# -- int8 LUTs: precision and threads in the timed record -------------------------------------------------------

import json as _json  # noqa: E402
import subprocess as _sp  # noqa: E402
import sys as _sys  # noqa: E402
from pathlib import Path as _Path  # noqa: E402

ROOT = _Path(__file__).resolve().parents[1]


def _cli(*args, cwd=None, timeout=600):
    return _sp.run([_sys.executable, "-m", "ofa_profile", *map(str, args)], capture_output=True, text=True,
                   timeout=timeout, cwd=cwd)


def _one_line_error(p, code=1, *words):
    assert p.returncode == code, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    err = [ln for ln in p.stderr.strip().splitlines() if ln.strip() and not ln.startswith("INFO:")]
    assert len(err) == 1, p.stderr
    for w in words:
        assert w in err[0], err[0]
    return err[0]


@pytest.fixture(scope="module")
def int8_lut(tmp_path_factory):
    """A small int8 LUT measured by the command line: 3 blocks of r=128 on cpu-ort (a partial LUT: --limit)."""
    d = tmp_path_factory.mktemp("int8lut")
    p = _cli("measure", "--device", "cpu-ort", "--precision", "int8", "--resolutions", "128", "--limit", "3",
             "--quiet", "--json", cwd=d)
    assert p.returncode == 0, p.stderr
    summary = _json.loads(p.stdout)
    assert summary["lut"].endswith("cpu-ort-int8.json") and summary["measured"] == 3     # the default name says int8
    return d / "cpu-ort-int8.json"


def test_int8_lut_header_keys_and_round_trip(int8_lut, tmp_path):
    from ofa_profile.lut import load_lut, save_lut
    from ofa_profile.ops import ops_at_resolution
    from ofa_profile.timed import Timed
    raw = _json.loads(int8_lut.read_text())
    assert raw["timed"] == {"graph": "ofa-profile", "classes": 1000, "precision": "int8", "threads": 1}
    assert raw["provenance"]["int8"]["format"] == "QDQ" and "seeded" in raw["provenance"]["int8"]["calibration_inputs"]
    lut = load_lut(int8_lut)
    keys_128 = {op.key for op in ops_at_resolution("ofa-mbv3-w1.0", 128)}
    assert len(lut.entries) == 3 and set(lut.entries) <= keys_128
    assert all(e.median_ms > 0 for e in lut.entries.values())
    assert lut.timed == Timed(precision="int8", threads=1)
    save_lut(lut, tmp_path / "copy.json")
    again = load_lut(tmp_path / "copy.json")
    assert again.timed == lut.timed and dict(again.entries) == dict(lut.entries)
    assert _json.loads((tmp_path / "copy.json").read_text())["timed"] == raw["timed"]
    info = _cli("lut", "info", int8_lut, "--json")
    assert info.returncode == 0 and _json.loads(info.stdout)["timed"]["precision"] == "int8"


def test_extending_an_int8_lut_with_fp32_or_other_threads_is_refused(int8_lut):
    before = int8_lut.read_bytes()
    _one_line_error(_cli("measure", "--device", "cpu-ort", "--resolutions", "128", "--limit", "1", "-q",
                         "--out", int8_lut), 1, "precision int8 vs fp32")
    _one_line_error(_cli("measure", "--device", "cpu-ort", "--precision", "int8", "--threads", "2", "--resolutions",
                         "128", "--limit", "1", "-q", "--out", int8_lut), 1, "threads 1 vs 2")
    assert int8_lut.read_bytes() == before


def test_int8_where_it_cannot_be_timed_is_refused(tmp_path):
    _one_line_error(_cli("measure", "--device", "cpu-torch", "--precision", "int8", "--resolutions", "128",
                         "--limit", "1", "-q", cwd=tmp_path), 1, "torch", "int8")
    assert not list(tmp_path.iterdir())


def test_calibration_of_another_precision_is_refused(int8_lut, tmp_path):
    """calibrate: subnets timed in fp32 are never fitted to int8 blocks (the profiler's record is compared)."""
    from ofa_profile.calibrate import calibrate_device
    from ofa_profile.devices import load_device
    from ofa_profile.timed import TimedError
    from ofa_profile.transports import make_profiler
    with make_profiler(load_device("cpu-ort")) as fp32:
        with pytest.raises(TimedError, match="precision int8 vs fp32"):
            calibrate_device(int8_lut, fp32, 10, 0)
    with make_profiler(load_device("cpu-ort"), precision="int8") as q:
        assert q.timed("ofa-mbv3-w1.0").precision == "int8"


def test_a_lut_whose_calibration_timed_another_precision_does_not_load(tmp_path):
    """predict/pareto load the LUT: a calibration fitted on fp32 subnets under int8 blocks is refused."""
    from ofa_profile.errors import LutError
    from ofa_profile.lut import load_lut
    obj = _json.loads((ROOT / "lut" / "cpu-ort.json").read_text())
    fp32 = {"graph": "ofa-profile", "classes": 1000, "precision": "fp32", "threads": 1}
    obj["calibration"]["report"]["timed"] = fp32
    (tmp_path / "ok.json").write_text(_json.dumps(obj))
    assert load_lut(tmp_path / "ok.json").timed.precision == "fp32"
    obj["timed"] = {**fp32, "precision": "int8"}
    (tmp_path / "mixed.json").write_text(_json.dumps(obj))
    with pytest.raises(LutError, match="precision int8 vs fp32"):
        load_lut(tmp_path / "mixed.json")
    _one_line_error(_cli("predict", "--lut", tmp_path / "mixed.json", "--arch", ROOT / "examples" / "arch-r160.json"),
                    1, "calibrate it again")


def test_threads_mismatch_is_refused_in_one_line(int8_lut, tmp_path):
    """--threads: a LUT is calibrated and checked only with its own thread count; --threads does not apply to a
    phone (usage error)."""
    _one_line_error(_cli("calibrate", "--device", "cpu-ort", "--lut", int8_lut, "--threads", "2", "--samples", "10",
                         "--test-samples", "0", "-q"), 1, "--threads 1")
    _one_line_error(_cli("lut", "check", "cpu-ort", "--device", "cpu-ort", "--threads", "2"), 1, "--threads 1")
    _one_line_error(_cli("lut", "check", "cpu-ort", "--device", "pixel", "--threads", "2"), 2, "--threads")
    _one_line_error(_cli("measure", "--device", "cpu-ort", "--threads", "0", "-q"), 2, "--threads")


def test_two_thread_lut_records_its_threads(tmp_path):
    p = _cli("measure", "--device", "cpu-ort", "--threads", "2", "--resolutions", "128", "--limit", "1", "-q",
             "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    raw = _json.loads((tmp_path / "cpu-ort-t2.json").read_text())
    assert raw["num_threads"] == 2 and raw["timed"]["threads"] == 2 and raw["timed"]["precision"] == "fp32"
    assert raw["fingerprint"]["num_threads"] == 2


def test_phone_profiler_times_int8_tflite_files(tmp_path):
    """adb phones: the benchmark program runs the quantized .tflite files as they are (here the LiteRT benchmark
    binary of the ai-edge-litert wheel on this machine, through the same profiler as a phone)."""
    import dataclasses
    import os
    bench = _Path(_sys.executable).with_name("litert-benchmark")
    if not bench.exists():
        pytest.skip("litert-benchmark (ai-edge-litert wheel) is not installed")
    pytest.importorskip("ai_edge_quantizer")
    from ofa_profile.devices import load_device
    from ofa_profile.lut import load_lut
    from ofa_profile.measure import measure_lut
    from ofa_profile.timed import Timed
    from ofa_profile.timing import TimingConfig
    from ofa_profile.transports import make_remote_profiler
    cpu = sorted(os.sched_getaffinity(0))[-1]
    d = load_device("android")
    spec = dataclasses.replace(d, name="local-bench", timing=TimingConfig(warmup_runs=2, min_runs=5, max_runs=5,
                                                                          max_time_s=1.0),
                               transport_options={**d.transport_options, "cores": [cpu], "repeats": 2})
    written = []
    with make_remote_profiler(spec, benchmark_binary=str(bench), local=True, precision="int8") as prof:
        orig = prof._write

        def spy(mi, path, seed=0):
            orig(mi, path, seed)
            written.append(path.read_bytes())
        prof._write = spy
        assert prof.timed("ofa-mbv3-w1.0").precision == "int8"
        assert "ai-edge-quantizer" in prof.fingerprint()["runtime_versions"]
        measure_lut(spec, tmp_path / "p.json", [128], progress=False, profiler=prof, limit=2,
                    timed=Timed(precision="int8"))
    lut = load_lut(tmp_path / "p.json")
    assert lut.timed.precision == "int8" and len(lut.entries) == 2 and lut.provenance["int8"]["format"] == "TFLite int8"
    from ofa_profile.tflite import load_schema
    s = load_schema()
    for b in written:
        m = s.ModelT.InitFromObj(s.Model.GetRootAs(b, 0))
        assert m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]].type == s.TensorType.INT8
    assert len(written) == 2


def test_bench_reads_an_int8_file_as_int8_and_builds_int8_subnets(tmp_path):
    """bench: the precision of a model file comes from the file (Q/DQ ops, int8 tensors); --arch --precision int8
    builds the subnet as export --precision int8 does; --threads is recorded."""
    from ofa_profile.model_file import check_model_file
    arch = tmp_path / "a.json"
    arch.write_text(_json.dumps({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128}))
    for fmt in ("onnx", "tflite"):
        for prec in ("fp32", "int8"):
            out = tmp_path / f"{prec}.{fmt}"
            p = _cli("export", "--arch", arch, "--format", fmt, "--random-weights", "--precision", prec, "--no-check",
                     "--out", out)
            assert p.returncode == 0, p.stderr
            assert check_model_file(out).precision == prec
    p = _cli("bench", tmp_path / "int8.onnx", "--device", "cpu-ort", "--rounds", "1", "--json")
    assert p.returncode == 0, p.stderr
    assert _json.loads(p.stdout)["timed"]["precision"] == "int8"
    p = _cli("bench", "--arch", arch, "--device", "cpu-ort", "--precision", "int8", "--threads", "2", "--rounds", "1",
             "--json")
    assert p.returncode == 0, p.stderr
    t = _json.loads(p.stdout)["timed"]
    assert t["precision"] == "int8" and t["threads"] == 2
    _one_line_error(_cli("bench", tmp_path / "int8.onnx", "--device", "cpu-ort", "--precision", "int8"), 2,
                    "precision")
    _one_line_error(_cli("bench", "--arch", arch, "--device", "cpu-torch", "--precision", "int8"), 1, "torch")


def test_pareto_verify_of_an_int8_lut_measures_and_evaluates_int8(shared_data):
    """pareto --verify with an int8 LUT: the chosen subnet is measured in int8 (not fp32: that would mix), its
    fp32 top-1 (what the predictor predicts) and its int8 top-1 are measured side by side; a device of another
    thread count is refused."""
    from ofa_model.evaluate import EvalRequest
    from ofa_profile.pareto import verify_best
    from ofa_profile.search import SearchResult
    from ofa_profile.space import get_space
    from ofa_profile.timed import Timed, TimedError
    spec = get_space("ofa-mbv3-w1.0").sample(3, resolution=128)
    best = SearchResult(spec, 5.0, 0.9, 1, 1)
    out = verify_best(best, 10.0, "cpu-ort", EvalRequest(n_val=20, n_calib=20), 0, rounds=1,
                      timed=Timed(precision="int8"))
    assert out["precision"] == "int8" and out["measured_latency_ms"] > 0, out
    assert out.get("top1_error") is None, out
    assert 0 <= out["top1_int8"] <= 1 and 0 <= out["top1"] <= 1 and out["n_val"] == 20
    assert out["int8_drop_points"] == pytest.approx(100 * (out["top1"] - out["top1_int8"]), abs=1e-3)
    with pytest.raises(TimedError, match="--threads 2"):
        verify_best(best, 10.0, "cpu-ort", EvalRequest(n_val=20, n_calib=20), 0, rounds=1,
                    timed=Timed(precision="int8", threads=2))


def test_pareto_precision_picks_and_checks_the_luts_precision(int8_lut, tmp_path):
    """pareto --precision: with --lut, a LUT of another precision is refused in one line naming both; with
    --device and int8, the LUT `measure --precision int8` wrote in this folder is the one searched (this partial
    one then lacks blocks, which the error names), and without one the error says how to make it."""
    common = ("--budget", "20ms", "--no-plot", "--effort", "fast", "--no-speed-check")
    p = _cli("pareto", *common, "--lut", "cpu-ort", "--precision", "int8", cwd=tmp_path)
    _one_line_error(p, 1, "fp32 blocks, not int8", "--precision int8")
    p = _cli("pareto", *common, "--device", "cpu-ort", "--precision", "int8", cwd=tmp_path)
    _one_line_error(p, 1, "no int8 LUT of device cpu-ort", "./cpu-ort-int8.json",
                    "ofa-profile measure --device cpu-ort --precision int8")
    (tmp_path / "cpu-ort-int8.json").write_bytes(int8_lut.read_bytes())
    p = _cli("pareto", *common, "--device", "cpu-ort", "--precision", "int8", cwd=tmp_path)
    assert "cpu-ort-int8.json" in _one_line_error(p, 1)
    p = _cli("pareto", *common, "--lut", "cpu-ort-int8.json", "--precision", "fp32", cwd=tmp_path)
    _one_line_error(p, 1, "int8 blocks, not fp32")
    p = _cli("pareto", *common, "--device", "cpu-ort", "--precision", "int4", cwd=tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    p = _cli("pareto", *common, "--device", "cpu-ort", "--precision", "fp32", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert _json.loads(p.stdout)["best"]["latency_ms"] > 0
