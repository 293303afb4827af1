"""Subnet export: ONNX (onnxruntime) and TFLite (the project's writer, ai_edge_litert) match torch; the extracted
subnet is built by the layer library (ofa_profile.blocks); the `ofa-profile export` command."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ofa_model.bundle import save_bundle
from ofa_model.export import example_input, export_subnet
from ofa_model.supernet import OFAMobileNetV3
from ofa_profile import blocks
from ofa_profile.space import SpaceError, get_space

from helpers import randomize, run_cli

ROOT = Path(__file__).resolve().parents[1]
HAVE_LITERT = importlib.util.find_spec("ai_edge_litert") is not None
needs_litert = pytest.mark.skipif(not HAVE_LITERT, reason="ai_edge_litert is not installed (TFLite runtime)")
SPACE = get_space("ofa-mbv3-w1.0")
SPECS = [SPACE.sample(s, resolution=r) for s, r in ((1, 128), (2, 160), (3, 224))]


@pytest.fixture(scope="module")
def supernet():
    torch.set_num_threads(1)
    return randomize(OFAMobileNetV3("ofa-mbv3-w1.0", n_classes=10))


def _subnet(model, spec):
    model.set_active_subnet(spec)
    return model.get_active_subnet().eval()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"r{s.r}")
def test_extracted_subnet_is_the_layer_librarys(supernet, spec):
    """What the exporters write is built by ofa_profile.blocks (the modules the profiler measures and the .tflite
    writer takes, no weight mapping in between) and computes the supernet's logits."""
    sub = _subnet(supernet, spec)
    layers = [sub.first_conv, *(b.conv for b in sub.blocks), sub.final_expand_layer, sub.pool, sub.feature_mix_layer,
              sub.classifier]
    lib = list(blocks.subnet_module(spec))
    assert [type(m) for m in layers] == [type(m) for m in lib]
    for a, b in zip(layers[:-1], lib):
        assert [tuple(t.shape) for t in a.state_dict().values()] == [tuple(t.shape) for t in b.state_dict().values()]
    x = example_input(spec, seed=4, batch=2)
    with torch.no_grad():
        ref, got = supernet(x), sub(x)
    assert ref.shape == (2, 10) and float(ref.std()) > 0.05      # not a constant output
    assert torch.allclose(ref, got, rtol=0, atol=1e-5)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"r{s.r}")
def test_onnx_export_matches_torch(supernet, spec, tmp_path):
    import onnx
    import onnxruntime as ort
    res = export_subnet(supernet, spec, "onnx", tmp_path / "net.onnx", metadata={"classes": ["a"]})
    assert res.max_rel_diff is not None and res.max_rel_diff < 1e-4 and res.input_shape == (1, 3, spec.r, spec.r)
    # independently of export_subnet's own check: a batch of 2 other inputs (the batch axis is dynamic)
    sess = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    x = example_input(spec, seed=9, batch=2)
    got = sess.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        ref = _subnet(supernet, spec)(x).numpy()
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "net.onnx")).metadata_props}
    assert json.loads(meta["ofa_profile.arch"])["d"] == list(spec.d) and json.loads(meta["classes"]) == ["a"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@needs_litert
@pytest.mark.parametrize("spec", SPECS[:2], ids=lambda s: f"r{s.r}")
def test_tflite_export_matches_torch(supernet, spec, tmp_path):
    from ai_edge_litert.interpreter import Interpreter
    res = export_subnet(supernet, spec, "tflite", tmp_path / "net.tflite")
    assert res.max_rel_diff is not None and res.max_rel_diff < 1e-4 and res.input_shape == (1, spec.r, spec.r, 3)
    it = Interpreter(model_path=str(tmp_path / "net.tflite"), num_threads=1)
    it.allocate_tensors()
    x = example_input(spec, seed=9)
    it.set_tensor(it.get_input_details()[0]["index"], np.ascontiguousarray(x.numpy().transpose(0, 2, 3, 1)))
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    with torch.no_grad():
        ref = _subnet(supernet, spec)(x).numpy()
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


def test_export_recalibrates_bn_and_refuses_other_spaces(supernet, tmp_path):
    spec = SPECS[0]
    calib = [torch.randn(4, 3, spec.r, spec.r, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    res = export_subnet(supernet, spec, "onnx", tmp_path / "cal.onnx", calib=iter(calib), n_calib=8)
    assert res.recalibrated_on == 8 and res.max_rel_diff < 1e-4
    w12 = get_space("ofa-mbv3-w1.2").sample(0, resolution=160)
    with pytest.raises(SpaceError, match="does not fit a supernet"):
        export_subnet(supernet, w12, "onnx", tmp_path / "w12.onnx")
    assert not (tmp_path / "w12.onnx").exists()


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "ofa_profile.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.slow
def test_export_command(supernet, tmp_path):
    """(run_cli re-raises any exception a command leaks, so "no traceback" holds for the in-process runs too.)"""
    save_bundle(supernet, tmp_path / "w", "tiny")           # a verified bundle (fp16) as --supernet
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(SPECS[1].to_ofa()))
    fmts = ["onnx"] + (["tflite"] if HAVE_LITERT else [])
    for fmt in fmts:            # the first through a real process (the entry point), the rest in this one (faster)
        out = tmp_path / f"net.{fmt}"
        run = _cli if fmt == "onnx" else run_cli
        r = run("export", "--arch", arch, "--format", fmt, "--out", out, "--supernet", tmp_path / "w" / "tiny.pt",
                 "--json")
        assert r.returncode == 0, r.stderr[-2000:]
        s = json.loads(r.stdout)
        assert s["max_rel_diff"] < 1e-4 and s["path"] == str(out) and out.stat().st_size > 1_000_000
        assert "no --calib-data" in r.stderr
    # BN recalibrated on a training folder of the supernet's class count
    from helpers import make_folder
    calib = make_folder(tmp_path / "calib", 1, n_classes=10)
    r = run_cli("export", "--arch", arch, "--format", "onnx", "--out", tmp_path / "cal.onnx", "--supernet",
             tmp_path / "w" / "tiny.pt", "--calib-data", calib, "--n-calib", 8, "--cache-dir", tmp_path / "c", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["recalibrated_on"] == 8 and "no --calib-data" not in r.stderr
    r = run_cli("export", "--arch", arch, "--format", "onnx", "--out", tmp_path / "cal3.onnx", "--supernet",
             tmp_path / "w" / "tiny.pt", "--calib-data", make_folder(tmp_path / "c3", 1), "--cache-dir", tmp_path / "c3c")
    assert r.returncode == 1 and "3 classes, the supernet 10" in r.stderr and not (tmp_path / "cal3.onnx").exists()
    # bad input: one line, exit 1, nothing written
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**SPECS[1].to_ofa(), "r": 100}))
    for args, needle in (
            (["--arch", bad, "--format", "onnx", "--out", tmp_path / "b.onnx"], "r=100"),
            (["--arch", arch, "--format", "onnx", "--out", tmp_path / "nodir" / "b.onnx"], "does not exist"),
            (["--arch", arch, "--format", "onnx", "--out", tmp_path / "b.onnx", "--supernet", tmp_path / "x.pt"],
             "does not exist")):
        r = run_cli("export", "--supernet", tmp_path / "w" / "tiny.pt", *args) if "--supernet" not in args \
            else run_cli("export", *args)
        assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("error:"), r.stderr
        assert needle in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "b.onnx").exists()
