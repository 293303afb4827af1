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
