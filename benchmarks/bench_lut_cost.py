"""What an int8 LUT costs to measure against an fp32 one, in one run: wall and process CPU seconds.

Two parts (each can be skipped), one process, pinned to one core, 1 thread:

1. **Compile CPU per block** (``--compile-resolutions``): every distinct block at those resolutions compiled
   for ONNX Runtime in fp32, in int8 made in memory (:mod:`ofa_profile.qdq`, what ``measure`` runs) and in int8
   by ``quantize_static`` (the path before it, still the fallback), interleaved block by block; the process CPU
   seconds of each, per block.  The two int8 models are checked byte-identical as it goes.
2. **Full LUTs** (``--lut-resolutions``): ``measure_lut`` of an fp32 and an int8 LUT of ``--device`` (default
   ``cpu-ort``), alternating fp32 and int8 resolution by resolution (so both see the same machine), with the
   wall and process CPU seconds of each, and their int8/fp32 ratios; ``--static`` adds a third LUT whose int8
   blocks ``quantize_static`` makes (the cost before the in-memory path).

    python benchmarks/bench_lut_cost.py --lut-resolutions all              # the issue's figure: 25 resolutions
    python benchmarks/bench_lut_cost.py --compile-resolutions 128,224 --lut-resolutions 128 --static

Run it under the machine's benchmark lock.  On a loaded machine wall time follows the load; CPU time is this
process's own work, and the ratios are measured in one window.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def static_quantizer():
    """While active, int8 ONNX models are made by ``quantize_static`` (the in-memory path reports itself
    unavailable, so :func:`ofa_profile.quantize.quantize_onnx_bytes` falls back)."""
    import ofa_profile.qdq as qdq
    real = qdq._ort_parts

    def unavailable():
        raise qdq.FastPathUnavailable("benchmark: quantize_static asked for")
    qdq._ort_parts = unavailable
    try:
        yield
    finally:
        qdq._ort_parts = real


def compile_cpu(resolutions) -> dict:
    """Process CPU seconds per block of fp32 export, int8 in memory and int8 by quantize_static, interleaved."""
    from ofa_profile.blocks import op_input, op_module
    from ofa_profile.ops import enumerate_ops
    from ofa_profile.quantize import calibration_inputs, quantize_onnx_bytes
    from ofa_profile.runtimes import torch_to_onnx

    cpu = {"fp32_export": 0.0, "int8_in_memory": 0.0, "int8_quantize_static": 0.0}
    ops = enumerate_ops("ofa-mbv3-w1.0", resolutions)
    same = 0
    for i, (_, op) in enumerate(ops):
        m, x = op_module(op, seed=0), op_input(op, seed=0)
        cal = calibration_inputs(tuple(x.shape))
        t = time.process_time()
        buf = io.BytesIO()
        torch_to_onnx(m, x, buf)
        cpu["fp32_export"] += time.process_time() - t
        model = buf.getvalue()
        t = time.process_time()
        fast = quantize_onnx_bytes(model, cal)
        cpu["int8_in_memory"] += time.process_time() - t
        t = time.process_time()
        with static_quantizer():
            ref = quantize_onnx_bytes(model, cal)
        cpu["int8_quantize_static"] += time.process_time() - t
        same += fast == ref
        if (i + 1) % 20 == 0 or i + 1 == len(ops):
            print(f"compile: {i + 1}/{len(ops)} blocks", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    n = len(ops)
    return {"blocks": n, "byte_identical": same, "cpu_s": cpu,
            "cpu_ms_per_block": {k: 1e3 * v / n for k, v in cpu.items()}}


def lut_cost(device: str, resolutions, out_dir: Path, static: bool, seed: int = 0) -> dict:
    """fp32 and int8 (and with ``static`` int8 by quantize_static) LUTs, alternating resolution by resolution."""
    from ofa_profile.devices import load_device
    from ofa_profile.measure import make_profiler, measure_lut
    from ofa_profile.timed import Timed

    dev = load_device(device)
    kinds = ["fp32", "int8"] + (["int8_static"] if static else [])
    paths = {k: out_dir / f"{device}-{k}.json" for k in kinds}
    for p in paths.values():
        for q in (p, p.with_name(p.name + ".journal.jsonl")):
            q.unlink(missing_ok=True)
    wall = dict.fromkeys(kinds, 0.0)
    cpu = dict.fromkeys(kinds, 0.0)
    profs = {k: make_profiler(dev, precision=k.split("_")[0]) for k in kinds}
    try:
        for r in resolutions:
            for k in kinds:
                ctx = static_quantizer() if k == "int8_static" else contextlib.nullcontext()
                t, c = time.perf_counter(), time.process_time()
                with ctx:
                    measure_lut(dev, paths[k], [r], seed=seed, profiler=profs[k], progress=False,
                                timed=Timed.default_for(dev.space, threads=dev.num_threads)
                                .with_(precision=k.split("_")[0]))
                wall[k] += time.perf_counter() - t
                cpu[k] += time.process_time() - c
            print(f"\r{device}: r{r} done (" + ", ".join(f"{k} {wall[k]:.0f} s" for k in kinds) + ")", end="",
                  file=sys.stderr, flush=True)
        print(file=sys.stderr)
    finally:
        for prof in profs.values():
            prof.close()
    out = {"device": device, "resolutions": list(resolutions), "wall_s": wall, "cpu_s": cpu,
           "ratio_wall": {k: wall[k] / wall["fp32"] for k in kinds if k != "fp32"},
           "ratio_cpu": {k: cpu[k] / cpu["fp32"] for k in kinds if k != "fp32"}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compile-resolutions", default="", help="part 1 resolutions ('' skips part 1)")
    ap.add_argument("--lut-resolutions", default="all", help="part 2 resolutions ('' skips part 2)")
    ap.add_argument("--device", default="cpu-ort", help="part 2 device")
    ap.add_argument("--static", action="store_true", help="part 2: also an int8 LUT made by quantize_static")
    ap.add_argument("--out-dir", default=None, help="where the LUTs are written [default: a temporary folder]")
    ap.add_argument("--json", default=None, help="also write every figure here")
    ap.add_argument("--cpu", type=int, default=None, help="pin to this core [default: the last one]")
    args = ap.parse_args()

    from _pin import pin_to_one_core
    pin_to_one_core(args.cpu)
    from ofa_profile.space import parse_resolutions
    from ofa_profile.timing import fix_malloc, set_threads
    fix_malloc()
    set_threads(1)
    result: dict = {"command": " ".join(sys.argv), "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "loadavg_start": open("/proc/loadavg").read().split()[:3]}
    if args.compile_resolutions:
        c = compile_cpu(parse_resolutions(args.compile_resolutions, "ofa-mbv3-w1.0"))
        result["compile"] = c
        ms = c["cpu_ms_per_block"]
        print(f"compile CPU per block over {c['blocks']} blocks: fp32 export {ms['fp32_export']:.1f} ms; int8 "
              f"quantization in memory {ms['int8_in_memory']:.1f} ms, by quantize_static "
              f"{ms['int8_quantize_static']:.1f} ms (x{ms['int8_quantize_static'] / ms['int8_in_memory']:.2f}); "
              f"byte-identical models: {c['byte_identical']}/{c['blocks']}")
    if args.lut_resolutions:
        res = parse_resolutions(args.lut_resolutions, "ofa-mbv3-w1.0")
        with contextlib.ExitStack() as stack:
            out_dir = Path(args.out_dir) if args.out_dir else Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="bench-lut-cost-")))
            out_dir.mkdir(parents=True, exist_ok=True)
            lc = lut_cost(args.device, res, out_dir, args.static)
        result["lut"] = lc
        for k in lc["ratio_wall"]:
            print(f"{args.device}, {len(res)} resolution(s): {k} LUT {lc['wall_s'][k]:.1f} s wall, "
                  f"{lc['cpu_s'][k]:.1f} s CPU; fp32 LUT {lc['wall_s']['fp32']:.1f} s wall, "
                  f"{lc['cpu_s']['fp32']:.1f} s CPU: {k}/fp32 x{lc['ratio_wall'][k]:.2f} wall, "
                  f"x{lc['ratio_cpu'][k]:.2f} CPU")
    result["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    if args.json:
        from ofa_profile.atomic import write_json_atomic
        write_json_atomic(args.json, json.loads(json.dumps(result, default=str)))


if __name__ == "__main__":
    main()
