"""Why are the smallest subnets under-predicted?  One A/B per cause, timed interleaved in one run.

For the space's smallest and largest subnet and a few seeded random ones (at each --resolutions), the same
subnet is timed several ways, all in one process, 1 thread, round-robin over every (subnet, way) for --rounds
rounds of --runs calls (each way's figure: the lowest round median, as calibration keeps the lowest pass):

  harness    what `calibrate` and `measure` time: the layer-library graph exported by the runtime's own exporter,
             run through ONNX Runtime with I/O bound once (no input copy, no output allocation per call)
  plain      the same .onnx file in a plain `InferenceSession`, `sess.run(None, {input: x})` per call, as a user
             times a model (input copied in, output allocated per call)
  export     `ofa-profile export --random-weights` of the subnet (1,000-class head, dynamic batch axis), plain run
  export10   the same with the 10-class head of the bundled supernet, plain run

Ratios and differences are printed per subnet: plain - harness is the per-call overhead of a plain session
(a constant in ms would be a fixed overhead, which hurts small subnets most), export / plain the export's graph,
export10 / export the head.  The calibration's own part (the linear model's form, sampling) is measured from a
calibrated LUT's stored samples by benchmarks/bench_deploy_fidelity.py.

    python benchmarks/bench_small_ab.py [--resolutions 160,224] [--random 4]
                                                              [--rounds 15] [--runs 20] [--clock thread-cpu]
                                                              [--json FILE]

Pinned to one core at raised priority where permitted: run it alone.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WAYS = ("harness", "plain", "export", "export10")


def build(spec, ways, workdir: Path, seed: int = 0) -> dict:
    """``{way: callable}`` of one subnet."""
    import torch

    from ofa_model.export import export_random, onnx_export
    from ofa_profile.blocks import _init_weights, seeded_generator, subnet_input, subnet_layers, subnet_module
    from ofa_profile.runtimes import OnnxRuntime, export_onnx

    from _plain import plain_session

    x = subnet_input(spec, seed=seed)
    tag = spec.short().replace("/", "_").replace(" ", "")[:80] + f"-r{spec.r}"
    out = {}
    if "harness" in ways:
        c = OnnxRuntime().compile(subnet_module(spec, seed=seed), x, num_threads=1, workdir=workdir)
        out["harness"] = c.run
    if "plain" in ways:
        p = workdir / f"{tag}-plain.onnx"
        export_onnx(subnet_module(spec, seed=seed), x, p)
        out["plain"] = plain_session(p, x.numpy())[1]
    if "export" in ways:
        p = workdir / f"{tag}-export.onnx"
        export_random(spec, "onnx", p, check=False, weights_seed=seed)
        out["export"] = plain_session(p, x.numpy())[1]
    if "export10" in ways:
        mods = subnet_layers(spec, n_classes=10)
        for i, m in enumerate(mods):
            _init_weights(m, seeded_generator("subnet-weights", int(seed), i))
        net = torch.nn.Sequential(*mods).eval()
        p = workdir / f"{tag}-export10.onnx"
        onnx_export(net, x, str(p))
        out["export10"] = plain_session(p, x.numpy())[1]
    return out


def interleaved(fns: dict, rounds: int, runs: int, warmup: int = 20, seed: int = 0, clock=None) -> dict:
    """``{key: (lowest round median ms, median of round medians ms)}``, timed round-robin in a shuffled order
    (``clock``: wall time, or a :class:`_clock.ThreadCpuClock`)."""
    now = time.thread_time_ns if clock is not None else time.perf_counter_ns
    keys = list(fns)
    for k in keys:
        for _ in range(warmup):
            fns[k]()
    med: dict = {k: [] for k in keys}
    rng = random.Random(seed)
    for _ in range(rounds):
        rng.shuffle(keys)
        for k in keys:
            f = fns[k]
            ts = []
            for _ in range(runs):
                t0 = now()
                f()
                ts.append(now() - t0)
            med[k].append(statistics.median(ts) / 1e6)
    return {k: (min(v), statistics.median(v)) for k, v in med.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolutions", default="160,224")
    ap.add_argument("--random", type=int, default=4, help="seeded random subnets per resolution besides the extremes")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu", type=int, default=None, help="pin to this core [default: the last one]")
    ap.add_argument("--clock", default="wall", help="wall | thread-cpu (an oversubscribed machine: see _clock.py)")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()

    from _clock import make_clock
    from _pin import pin_to_one_core
    clock = make_clock(args.clock)
    pin_to_one_core(args.cpu)

    from ofa_profile.space import get_space
    from ofa_profile.timing import fix_malloc, set_threads
    fix_malloc()
    set_threads(1)
    sp = get_space("ofa-mbv3-w1.0")
    rng = random.Random(args.seed)
    specs = []
    for r in (int(v) for v in args.resolutions.split(",")):
        specs += [("smallest", sp.smallest(r)), ("largest", sp.largest(r))]
        specs += [(f"random{i}", sp.sample(rng, resolution=[r])) for i in range(args.random)]
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="ab-small-") as tmp:
        fns = {}
        for j, (_, s) in enumerate(specs):
            for w, f in build(s, WAYS, Path(tmp)).items():
                fns[(j, w)] = f
        res = interleaved(fns, args.rounds, args.runs, seed=args.seed, clock=clock)
    rows = []
    print(f"{'subnet':<10} {'r':>4} " + " ".join(f"{w:>9}" for w in WAYS)
          + f" {'plain-harn':>10} {'plain/harn':>10} {'exp/plain':>9} {'exp10/exp':>9} {'exp10-exp':>9}")
    for j, (name, s) in enumerate(specs):
        ms = {w: res[(j, w)][0] for w in WAYS}
        row = {"subnet": name, "arch": s.to_ofa(), "ms": {w: round(v, 5) for w, v in ms.items()},
               "round_median_ms": {w: round(res[(j, w)][1], 5) for w in WAYS},
               "plain_minus_harness_ms": round(ms["plain"] - ms["harness"], 5),
               "plain_over_harness": round(ms["plain"] / ms["harness"], 5),
               "export_over_plain": round(ms["export"] / ms["plain"], 5),
               "export10_over_export": round(ms["export10"] / ms["export"], 5),
               "export10_minus_export_ms": round(ms["export10"] - ms["export"], 5)}
        rows.append(row)
        print(f"{name:<10} {s.r:>4} " + " ".join(f"{ms[w]:9.4f}" for w in WAYS)
              + f" {row['plain_minus_harness_ms']:10.4f} {row['plain_over_harness']:10.3f}"
              f" {row['export_over_plain']:9.3f} {row['export10_over_export']:9.3f}"
              f" {row['export10_minus_export_ms']:9.4f}")
    import os
    out = {"rows": rows, "clock": args.clock, "rounds": args.rounds, "runs": args.runs, "seed": args.seed, "threads": 1,
           "loadavg_after": os.getloadavg(), "seconds": round(time.time() - t0, 1)}
    print(f"{args.clock} clock; {len(specs)} subnets x {len(WAYS)} ways, {args.rounds} rounds of {args.runs} runs, "
          f"{out['seconds']} s; load average after: {', '.join(f'{v:.2f}' for v in out['loadavg_after'])}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
