"""The three CPU runtimes and the direct .tflite writer against torch eager, op by op and whole nets."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

from ofa_profile.blocks import op_input, op_module, subnet_input, subnet_module  # noqa: E402
from ofa_profile.errors import OfaProfileError  # noqa: E402
from ofa_profile.ops import ops_at_resolution  # noqa: E402
from ofa_profile.runtimes import RUNTIMES, Runtime, get_runtime  # noqa: E402
from ofa_profile.space import get_space  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-4  # max abs error relative to the output's scale


def _representative_ops(r=128):
    """stem, first block, the first block of every stage (stride 2 and the stride-1 stage 4) with varied
    k/e, SE (relu and h-swish), k=7, identity skip, Conv_1, AvgPool2D, Conv_2, Logits."""
    ops = ops_at_resolution("ofa-mbv3-w1.0", r)
    mb = [o for o in ops if o.kind == "expanded_conv"]
    first_block = mb[0]
    stage_firsts = []
    for i, width in enumerate((24, 40, 80, 112, 160)):
        cands = [o for o in mb if o.out_ch == width and o.in_ch != width]
        stage_firsts.append(cands[(2 * i) % len(cands)])  # varied kernel/expand per stage
    k7_idskip_se_hs = next(o for o in mb if o.kernel == 7 and o.idskip and o.se and o.hs)
    idskip_relu_se = next(o for o in mb if o.idskip and o.se and not o.hs and o.kernel == 5)
    idskip_plain = next(o for o in mb if o.idskip and not o.se and o.hs and o.kernel == 3 and o.in_ch == 80)
    picked = [ops[0], first_block, *stage_firsts, k7_idskip_se_hs, idskip_relu_se, idskip_plain, *ops[-4:]]
    kinds = [o.kind for o in picked]
    assert kinds[0] == "Conv" and kinds[-4:] == ["Conv_1", "AvgPool2D", "Conv_2", "Logits"]
    assert {o.stride for o in stage_firsts} == {1, 2} and any(o.se for o in picked) and any(o.hs for o in picked)
    return picked


OPS = _representative_ops()


def _runtime(name):
    rt = get_runtime(name)
    ok, why = rt.check()
    if not ok:
        pytest.skip(why)
    return rt


def _rel_err(out, ref):
    assert out.shape == ref.shape, (out.shape, ref.shape)
    return float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-6))


def _reference(module, x):
    with torch.inference_mode():
        return module(x).numpy()


@pytest.mark.parametrize("name", list(RUNTIMES))
def test_ops_match_torch(name, tmp_path):
    rt = _runtime(name)
    for op in OPS:
        m, x = op_module(op, seed=1), op_input(op, seed=1)
        ref = _reference(m, x)
        c = rt.compile(m, x, num_threads=1, workdir=tmp_path)
        try:
            c.run()
            out = c.output()
            c.run()
            again = c.output()  # the pre-set input survives runs
        finally:
            c.close()
        assert _rel_err(out, ref) < TOL, op.key
        assert np.array_equal(out, again), op.key
    assert list(tmp_path.iterdir()) == []  # close() removed every model file


@pytest.mark.parametrize("space", ["ofa-mbv3-w1.0", "ofa-mbv3-w1.2"])
@pytest.mark.parametrize("name", list(RUNTIMES))
def test_whole_subnet_matches_torch(name, space):
    rt = _runtime(name)
    spec = get_space(space).sample(17, 128)
    m, x = subnet_module(spec, seed=4), subnet_input(spec, seed=4)
    ref = _reference(m, x)
    c = rt.compile(m, x, num_threads=1)
    try:
        c.run()
        out = c.output()
    finally:
        c.close()
    assert out.shape == (1, 1000)
    assert _rel_err(out, ref) < TOL


@pytest.mark.parametrize("name", list(RUNTIMES))
def test_batch_and_threads(name):
    rt = _runtime(name)
    for op in (OPS[3], OPS[-1]):  # a stride-2 MBConv and the classifier, batch 2, two threads
        m, x = op_module(op, seed=2), op_input(op, seed=2, batch=2)
        ref = _reference(m, x)
        c = rt.compile(m, x, num_threads=2)
        try:
            assert _rel_err(c.output(), ref) < TOL, op.key
        finally:
            c.close()
    torch.set_num_threads(1)


def test_registry_and_errors():
    assert set(RUNTIMES) == {"torch", "onnxruntime", "litert"}
    for name, rt in RUNTIMES.items():
        assert rt.name == name and get_runtime(name) is rt
        ok, why = rt.check()
        installed = all(importlib.util.find_spec(mod.split(".")[0]) is not None for mod, _ in rt.requires)
        assert ok is installed and why and "\n" not in why, why       # available exactly where its packages are
        if ok:
            v = rt.versions()
            assert v["numpy"] and all(isinstance(k, str) and isinstance(s, str) and s for k, s in v.items())
    with pytest.raises(OfaProfileError, match="unknown runtime 'nope'") as e:
        get_runtime("nope")
    assert "\n" not in str(e.value)
    cuda = get_runtime("torch-cuda")
    ok, why = cuda.check()
    import torch
    assert ok is (torch.cuda.is_available() and torch.cuda.device_count() > 0) and "\n" not in why, why


def test_missing_package_is_reported_not_raised():
    class Fake(Runtime):
        name = "fake"
        requires = (("not_a_real_module_ofa_profile", "not-a-real-dist"),)

    ok, why = Fake().check()
    assert not ok and "pip install not-a-real-dist" in why and "\n" not in why


def test_imports_are_lazy_and_survive_without_litert():
    """On the GPU machine ai-edge-litert is absent: the package imports, litert says why, others still work."""
    code = (
        "import sys\n"
        "import ofa_profile.runtimes as R, ofa_profile.tflite\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'ai_edge_litert') if m in sys.modules]\n"
        "sys.modules['ai_edge_litert'] = None  # what an absent package looks like to import\n"
        "print(__import__('json').dumps({'heavy': heavy, 'litert': R.get_runtime('litert').check(),\n"
        "      'torch': R.get_runtime('torch').check()[0]}))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["heavy"] == []
    assert got["litert"][0] is False and "pip install ai-edge-litert" in got["litert"][1]
    assert got["torch"] is True


def test_tflite_writer_file(tmp_path):
    pytest.importorskip("ai_edge_litert")
    from ofa_profile.tflite import TfliteWriteError, tflite_bytes, write_tflite

    op = OPS[3]
    m, x = op_module(op), op_input(op)
    p = tmp_path / "sub" / "block.tflite"
    info = write_tflite(m, x, p)
    assert info.path == p and p.stat().st_size == info.n_bytes
    assert info.input_shape == (1, op.in_hw, op.in_hw, op.in_ch)  # NHWC
    assert info.output_shape == (1, op.out_hw, op.out_hw, op.out_ch)
    assert p.read_bytes()[4:8] == b"TFL3"
    assert p.read_bytes() == tflite_bytes(m, x)  # deterministic
    assert [q.name for q in p.parent.iterdir()] == ["block.tflite"]  # no temp files left
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(p), num_threads=1)
    it.allocate_tensors()
    names = {d["op_name"] for d in it._get_ops_details()}
    assert "PAD" in names and "DEPTHWISE_CONV_2D" in names  # stride 2: explicit PAD + VALID
    with pytest.raises(TfliteWriteError, match="MaxPool2d"):
        write_tflite(torch.nn.Sequential(torch.nn.MaxPool2d(2)), x, tmp_path / "x.tflite")
    assert not (tmp_path / "x.tflite").exists()
