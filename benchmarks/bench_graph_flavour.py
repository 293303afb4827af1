"""How much slower OFA's own graph runs than the project's, per block type and for whole subnets.

The same blocks (same shapes, same seeded weights: the two flavours compute the same function) are built twice,
from the project's layer library (graph ``ofa-profile``: what ``ofa-profile export`` writes) and from OFA's own
layer classes (graph ``ofa``: :mod:`ofa_profile.ofa_graph`, what an OFA user's ``get_active_subnet()`` exports
through ``torch.onnx``), compiled by one runtime (default ONNX Runtime, 1 thread, the profiler's session
settings) and timed interleaved: every round times each item in both flavours back to back (the order
alternating), and each figure is the lowest of the rounds' medians, so a slow stretch of the machine hits both
flavours alike.  Printed: per block type the median ofa/ofa-profile time ratio over its blocks (and the range),
and per whole subnet the ratio; ``--json FILE`` writes every figure.

    python benchmarks/bench_graph_flavour.py [--resolution 224] [--subnets 6] [--rounds 5]

Pinned to one core at raised priority where permitted: run it alone.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def block_type(op) -> str:
    if op.kind == "expanded_conv":
        first = "first block, " if not op.has_expand_conv else ""
        return f"MBConv {first}{op.activation}{' + SE' if op.se else ''}"
    return {"Conv": "stem Conv 3x3 (h_swish)", "Conv_1": "final expand 1x1 (h_swish)", "AvgPool2D": "global pool",
            "Conv_2": "feature mix 1x1 (h_swish)", "Logits": "classifier"}[op.kind]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runtime", default="onnxruntime")
    ap.add_argument("--resolution", type=int, default=224, help="resolution of the blocks timed")
    ap.add_argument("--per-type", type=int, default=4, help="blocks per block type (seeded choice)")
    ap.add_argument("--subnets", type=int, default=6, help="whole subnets: the smallest, the largest, and random")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu", type=int, default=None)
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()
    from _pin import pin_to_one_core
    pin_to_one_core(args.cpu)

    from ofa_profile.blocks import op_input, op_module, subnet_input, subnet_module
    from ofa_profile.ofa_graph import ofa_op_module, ofa_subnet_module
    from ofa_profile.ops import ops_at_resolution
    from ofa_profile.runtimes import get_runtime
    from ofa_profile.space import get_space
    from ofa_profile.timing import TimingConfig, fingerprint, measure_callable, set_threads

    set_threads(1)
    rt = get_runtime(args.runtime)
    ok, why = rt.check()
    if not ok:
        sys.exit(why)
    cfg = TimingConfig(warmup_runs=10, min_runs=30, max_runs=200, max_time_s=1.0, target_iqr_rel=0.03)
    sp = get_space("ofa-mbv3-w1.0")
    rng = random.Random(args.seed)

    by_type: dict[str, list] = {}
    for op in ops_at_resolution(sp, args.resolution):
        by_type.setdefault(block_type(op), []).append(op)
    items = []      # (group, name, (lib module, example), (ofa module, example))
    for t, ops in by_type.items():
        for op in rng.sample(ops, min(args.per_type, len(ops))):
            x = op_input(op, seed=args.seed)
            items.append(("block", t, op.key, op_module(op, seed=args.seed), ofa_op_module(op, seed=args.seed), x))
    specs = [sp.smallest(args.resolution), sp.largest(args.resolution)]
    specs += [sp.sample(rng, resolution=[args.resolution]) for _ in range(max(0, args.subnets - 2))]
    for s in specs[:args.subnets]:
        x = subnet_input(s, seed=args.seed)
        items.append(("subnet", "whole subnet", s.short(), subnet_module(s, seed=args.seed),
                      ofa_subnet_module(s, seed=args.seed), x))

    t0 = time.perf_counter()
    compiled = [(rt.compile(lib, x, num_threads=1), rt.compile(ofa, x, num_threads=1)) for *_, lib, ofa, x in items]
    best = [[float("inf"), float("inf")] for _ in items]
    for rnd in range(args.rounds):
        for i, pair in enumerate(compiled):
            order = (0, 1) if (rnd + i) % 2 == 0 else (1, 0)
            for f in order:
                m = measure_callable(pair[f].run, cfg)
                best[i][f] = min(best[i][f], m.median_ms)
        print(f"round {rnd + 1}/{args.rounds} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    for a, b in compiled:
        a.close()
        b.close()

    rows = [{"group": g, "type": t, "name": n, "ofa_profile_ms": round(best[i][0], 5), "ofa_ms": round(best[i][1], 5),
             "ratio": round(best[i][1] / best[i][0], 4)} for i, (g, t, n, *_rest) in enumerate(items)]
    print(f"\n{args.runtime}, 1 thread, r={args.resolution}, lowest of {args.rounds} interleaved medians per item; "
          f"ratio = ofa graph time / ofa-profile graph time\n")
    print("| block type | blocks | ofa-profile ms (median) | ofa ms (median) | ratio median (range) |")
    print("|---|---|---|---|---|")
    summary = {}
    for t in list(by_type) + ["whole subnet"]:
        rs = [r for r in rows if r["type"] == t]
        if not rs:
            continue
        ratios = [r["ratio"] for r in rs]
        summary[t] = {"n": len(rs), "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
                      "ratio_max": max(ratios)}
        print(f"| {t} | {len(rs)} | {statistics.median(r['ofa_profile_ms'] for r in rs):.4f} | "
              f"{statistics.median(r['ofa_ms'] for r in rs):.4f} | {statistics.median(ratios):.2f} "
              f"({min(ratios):.2f}-{max(ratios):.2f}) |")
    print("\n| subnet | ofa-profile ms | ofa ms | ratio |\n|---|---|---|---|")
    for r in rows:
        if r["group"] == "subnet":
            print(f"| {r['name']} | {r['ofa_profile_ms']:.3f} | {r['ofa_ms']:.3f} | {r['ratio']:.2f} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"runtime": args.runtime, "resolution": args.resolution,
                                                   "rounds": args.rounds, "fingerprint": fingerprint(rt.versions(), 1),
                                                   "summary": summary, "items": rows}, indent=1))


if __name__ == "__main__":
    main()
