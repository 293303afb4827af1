"""The torch-cuda runtime: a clear reason without a GPU; the real GPU path where one exists."""
import json
import subprocess
import sys

import pytest

from ofa_profile.cuda import CudaRuntime, cuda_status
from ofa_profile.errors import OfaProfileError

OK, WHY = cuda_status(0)
_skip_without_gpu = pytest.mark.skipif(not OK, reason=f"no CUDA GPU here: {WHY}")


def needs_gpu(f):
    """A CUDA GPU (a device marker: -m device selects these on a GPU machine)."""
    return pytest.mark.device(_skip_without_gpu(f))


def test_status_is_one_clear_line():
    import torch
    ok, why = CudaRuntime().check()
    assert ok is (torch.cuda.is_available() and torch.cuda.device_count() > 0) and why and "\n" not in why
    if ok:
        assert why.startswith("cuda:0 ") and torch.cuda.get_device_name(0) in why
    elif torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        assert "is a CPU-only build (torch.version.cuda is None)" in why, why        # this machine's CPU wheel
    else:
        assert "no usable CUDA GPU" in why or "CUDA initialisation failed" in why, why


def test_from_spec_and_bad_dtype():
    rt = CudaRuntime.from_spec({"device_index": 0, "cuda_graphs": True, "dtype": "float16"})
    assert (rt.name, rt.device_index, rt.cuda_graphs, rt.dtype) == ("torch-cuda", 0, True, "float16")
    assert callable(rt.sync)
    with pytest.raises(OfaProfileError, match="float32 or float16"):
        CudaRuntime(dtype="bfloat17")
    ok, why = CudaRuntime(device_index=99).check()
    # with GPUs: index 99 is named as missing; without: the same reason as device 0
    assert not ok and ("cuda:99 does not exist" in why if OK else why == WHY), why


@pytest.mark.skipif(OK, reason="a GPU is present: the unavailable path cannot be seen here")
def test_compile_without_gpu_says_why():
    import torch
    with pytest.raises(OfaProfileError, match="torch-cuda is unavailable"):
        CudaRuntime().compile(torch.nn.Identity(), torch.zeros(1), 1, None)


def test_devices_lists_cuda_with_reason(tmp_path):
    import os
    env = {**os.environ, "OFA_PROFILE_ADB": str(tmp_path / "no-adb")}   # do not start an adb server here
    r = subprocess.run([sys.executable, "-m", "ofa_profile.cli", "devices", "--json"], capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    row = next(x for x in json.loads(r.stdout) if x["name"] == "cuda")
    assert row["runtime"] == "torch-cuda" and row["available"] is OK
    if not OK:
        assert row["reason"] == WHY, row["reason"]


def test_cuda_spec_has_both_batch_sizes():
    from ofa_profile.devices import load_device
    d = load_device("cuda")
    assert d.batch_sizes == (1, 64) and d.runtime == "torch-cuda" and d.lut_name(64) == "cuda-b64"


# ---- the GPU path (a later session with a GPU runs these) -------------------------------------

OP_KEY = "expanded_conv-input:28x28x40-output:28x28x40-expand:160-kernel:5-stride:1-idskip:1-se:1-hs:0"


@needs_gpu
@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("graphs", [False, True])
def test_block_on_gpu_matches_cpu(batch, graphs):
    import numpy as np
    import torch

    from ofa_profile.blocks import op_input, op_module
    from ofa_profile.ops import parse_key
    from ofa_profile.timing import TimingConfig, measure_callable

    op = parse_key(OP_KEY)
    m, x = op_module(op, seed=0), op_input(op, seed=0, batch=batch)
    with torch.inference_mode():
        ref = m(x).numpy()
    rt = CudaRuntime(cuda_graphs=graphs)
    c = rt.compile(op_module(op, seed=0), x, num_threads=1)
    try:
        c.run()
        out = c.output()
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-3)
        meas = measure_callable(c.run, TimingConfig(warmup_runs=3, min_runs=10, max_runs=20), sync=rt.sync)
        assert meas.count >= 10 and meas.median_ms > 0
    finally:
        c.close()


@needs_gpu
def test_events_and_wall_clock_agree_roughly():
    from ofa_profile.blocks import op_input, op_module
    from ofa_profile.cuda import measure_cuda_events
    from ofa_profile.ops import parse_key
    from ofa_profile.timing import TimingConfig, measure_callable

    op = parse_key(OP_KEY)
    rt = CudaRuntime()
    c = rt.compile(op_module(op, seed=0), op_input(op, seed=0, batch=64), num_threads=1)
    cfg = TimingConfig(warmup_runs=5, min_runs=20, max_runs=50)
    ev = measure_cuda_events(c.run, cfg)
    wall = measure_callable(c.run, cfg, sync=rt.sync)
    c.close()
    # the wall clock includes launch + sync on top of the GPU time: never much less than the events
    assert ev.median_ms > 0 and wall.median_ms >= 0.8 * ev.median_ms


@needs_gpu
def test_local_profiler_measures_cuda_block(tmp_path):
    from ofa_profile.devices import load_device
    from ofa_profile.measure import make_profiler
    from ofa_profile.ops import parse_key

    with make_profiler(load_device("cuda"), batch_size=64) as prof:
        m = prof.measure_op(parse_key(OP_KEY), seed=0)
        assert m.median_ms > 0 and prof.batch_size == 64
        assert "gpu" in prof.versions()
