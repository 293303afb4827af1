"""ai-edge-quantizer's two calibration modes on the LiteRT blocks of a LUT: CPU per block, and the ranges they give.

For every --every-th block of the space at --resolution: the block's float .tflite (the project's writer), its 8
seeded calibration inputs (`ofa_profile.quantize.calibration_inputs`), then, one process, alternating block by
block: calibration in the default mode (every tensor kept and read in Python), in the profiler-based mode (min/max
kept in LiteRT's C++ engine: what `quantize_tflite` uses), and quantization (process CPU seconds of each).  It
prints the mean CPU per block of each, and the largest relative difference between the two modes' min/max over
every calibrated tensor of every block.

    python benchmarks/bench_tflite_calibration.py [--resolution 160] [--every 7] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolution", type=int, default=160)
    ap.add_argument("--every", type=int, default=7, help="take every N-th block of the resolution")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()

    import numpy as np
    import torch
    from ai_edge_quantizer import calibrator, quantizer, recipe

    from ofa_profile.blocks import op_input, op_module
    from ofa_profile.ops import ops_at_resolution
    from ofa_profile.quantize import _quiet, calibration_inputs
    from ofa_profile.tflite import tflite_bytes

    ops = ops_at_resolution("ofa-mbv3-w1.0", args.resolution)[::args.every]
    cpu = {"default": 0.0, "profiler": 0.0, "quantize": 0.0}
    worst = 0.0
    for op in ops:
        m, x = op_module(op).eval(), op_input(op)
        with torch.inference_mode():
            fb = tflite_bytes(m, x)
        cal = {"serving_default": [{"input": np.ascontiguousarray(a.transpose(0, 2, 3, 1), dtype=np.float32)}
                                   for a in calibration_inputs(tuple(x.shape))]}
        with _quiet():
            q = quantizer.Quantizer(fb, recipe.static_wi8_ai8())
            t0 = time.process_time()
            a = q.calibrate(cal, num_threads=1)
            t1 = time.process_time()
            b = q.calibrate(cal, num_threads=1, mode=calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED)
            t2 = time.process_time()
            q.quantize(b, enable_progress_report=False)
            t3 = time.process_time()
        cpu["default"] += t1 - t0
        cpu["profiler"] += t2 - t1
        cpu["quantize"] += t3 - t2
        if set(a) != set(b):
            raise SystemExit(f"the two modes calibrated different tensors for {op.key}")
        for name in a:
            for stat in a[name]:
                ra, rb = np.asarray(a[name][stat], float), np.asarray(b[name][stat], float)
                scale = np.maximum(np.abs(ra), 1e-12)
                worst = max(worst, float(np.max(np.abs(ra - rb) / scale)))
    per = {k: 1000 * v / len(ops) for k, v in cpu.items()}
    print(f"{len(ops)} blocks of r={args.resolution}, process CPU per block: calibration {per['default']:.1f} ms "
          f"(default mode), {per['profiler']:.1f} ms (profiler-based); quantization {per['quantize']:.1f} ms")
    print(f"largest relative difference between the two modes' min/max: {worst:.2e}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"blocks": len(ops), "resolution": args.resolution,
                                                   "cpu_ms_per_block": {k: round(v, 3) for k, v in per.items()},
                                                   "max_rel_diff": worst}, indent=1))


if __name__ == "__main__":
    main()
