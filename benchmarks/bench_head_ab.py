"""What the classifier head, the weights and OFA's own export change in a whole subnet's latency: one A/B per cause.

For the space's smallest and largest subnet at --resolutions and --random seeded random ones at each, these files
are timed in plain ONNX Runtime sessions (1 thread), round-robin in one shuffled run (--rounds rounds of --runs
calls; a figure is the lowest round median):

  rand1000        `export --random-weights`: seeded random weights, the 1,000-class head
  rand1000_daz    the same file, the session flushing denormals to zero (`session.set_denormal_as_zero`)
  rand10          the same random weights with a 10-class head
  trained10       `export` with the bundled supernet's trained weights (10 classes)
  trained10_daz   that file with denormals flushed
  ofa_harness     OFA's graph as `measure --graph ofa` builds it (ofa_profile.ofa_graph), exported by the project
  ofa_package     OFA's own package: `set_active_subnet` + `get_active_subnet`, `torch.onnx` (as the fidelity
                  benchmark builds it)

and the two classifier ops alone (the LUT's `Logits` op with 1,000 and 10 outputs), in the same run.  Printed
per subnet and as medians: 10 / 1,000 classes (the head), trained / random weights, flushed / not (denormals),
OFA package / harness graph, and the 1,000 - 10 class difference in ms inside the network against the two ops'
difference alone.

    python benchmarks/bench_head_ab.py [--resolutions 160,224] [--random 3] [--rounds 8] [--runs 20] [--json FILE]

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


def flushed_session(path: Path, x):
    """A plain session like :func:`_plain.plain_session`, with denormals flushed to zero."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda: sess.run(None, {name: x})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolutions", default="160,224")
    ap.add_argument("--random", type=int, default=3, help="seeded random subnets per resolution besides the extremes")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cpu", type=int, default=None)
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()

    from _pin import pin_to_one_core
    from _plain import plain_session
    from bench_deploy_fidelity import Builders
    from bench_small_ab import build, interleaved
    pin_to_one_core(args.cpu)

    from ofa_model.bundle import load_supernet
    from ofa_model.export import export_subnet
    from ofa_profile.blocks import op_input, op_module, subnet_input
    from ofa_profile.ofa_graph import ofa_subnet_module
    from ofa_profile.ops import subnet_ops
    from ofa_profile.runtimes import OnnxRuntime, export_onnx
    from ofa_profile.space import get_space
    from ofa_profile.timing import fix_malloc, set_threads
    fix_malloc()
    set_threads(1)
    sp = get_space("ofa-mbv3-w1.0")
    rng = random.Random(args.seed)
    specs = []
    for r in (int(v) for v in args.resolutions.split(",")):
        specs += [sp.smallest(r), sp.largest(r)] + [sp.sample(rng, resolution=[r]) for _ in range(args.random)]
    supernet = load_supernet(None, space=sp)[0]
    ofa_way = Builders(["ofa"])
    t0 = time.time()
    fns = {}
    with tempfile.TemporaryDirectory(prefix="head-ab-") as tmp:
        tmp = Path(tmp)
        for j, s in enumerate(specs):
            x = subnet_input(s)
            xn = x.numpy()
            ours = build(s, ("export", "export10"), tmp)          # random weights, 1,000 and 10 classes
            fns[(j, "rand1000")], fns[(j, "rand10")] = ours["export"], ours["export10"]
            tag = s.short().replace("/", "_").replace(" ", "")[:80] + f"-r{s.r}"
            fns[(j, "rand1000_daz")] = flushed_session(tmp / f"{tag}-export.onnx", xn)
            p = tmp / f"{j}-trained.onnx"
            export_subnet(supernet, s, "onnx", p, check=False)
            fns[(j, "trained10")] = plain_session(p, xn)[1]
            fns[(j, "trained10_daz")] = flushed_session(p, xn)
            p = tmp / f"{j}-ofa-harness.onnx"
            export_onnx(ofa_subnet_module(s), x, p)
            fns[(j, "ofa_harness")] = plain_session(p, xn)[1]
            p = tmp / f"{j}-ofa-package.onnx"
            ofa_way.write("ofa", s, p)
            fns[(j, "ofa_package")] = plain_session(p, xn)[1]
        heads = {}
        for classes in (1000, 10):
            op = subnet_ops(specs[0], classes=classes)[-1]
            c = OnnxRuntime().compile(op_module(op), op_input(op), num_threads=1, workdir=tmp)
            heads[classes] = c
            fns[("head", classes)] = c.run
        res = interleaved(fns, args.rounds, args.runs, seed=args.seed)
        for c in heads.values():
            c.close()
    ms = {k: v[0] for k, v in res.items()}
    head_ops_ms = ms[("head", 1000)] - ms[("head", 10)]
    ratios = {"10 / 1,000 classes": ("rand10", "rand1000"), "trained / random weights": ("trained10", "rand10"),
              "flushed / not (random)": ("rand1000_daz", "rand1000"),
              "flushed / not (trained)": ("trained10_daz", "trained10"),
              "OFA package / harness graph": ("ofa_package", "ofa_harness")}
    rows = []
    print(f"{'r':>4} {'rand1000':>9} {'rand10':>8} {'trained10':>9} {'ofa_harn':>9} {'ofa_pkg':>8}  "
          + "  ".join(f"{k:>26}" for k in ratios) + f"  {'1000-10 in net':>14}")
    for j, s in enumerate(specs):
        rat = {k: ms[(j, a)] / ms[(j, b)] for k, (a, b) in ratios.items()}
        diff = ms[(j, "rand1000")] - ms[(j, "rand10")]
        rows.append({"arch": s.to_ofa(), "ms": {w: round(ms[(j, w)], 5) for w in
                                                ("rand1000", "rand1000_daz", "rand10", "trained10", "trained10_daz",
                                                 "ofa_harness", "ofa_package")},
                     "ratios": {k: round(v, 4) for k, v in rat.items()}, "head_diff_in_net_ms": round(diff, 5)})
        print(f"{s.r:>4} {ms[(j, 'rand1000')]:9.3f} {ms[(j, 'rand10')]:8.3f} {ms[(j, 'trained10')]:9.3f} "
              f"{ms[(j, 'ofa_harness')]:9.3f} {ms[(j, 'ofa_package')]:8.3f}  "
              + "  ".join(f"{v:>26.3f}" for v in rat.values()) + f"  {diff:14.3f}")
    med = {k: round(statistics.median(r["ratios"][k] for r in rows), 4) for k in ratios}
    print("medians: " + "; ".join(f"{k} {v:.3f}" for k, v in med.items()))
    print(f"1,000 - 10 classes: the two classifier ops alone {head_ops_ms:.3f} ms; inside the networks median "
          f"{statistics.median(r['head_diff_in_net_ms'] for r in rows):.3f} ms "
          f"({min(r['head_diff_in_net_ms'] for r in rows):.3f}..{max(r['head_diff_in_net_ms'] for r in rows):.3f})")
    print(f"{len(specs)} subnets, {args.rounds} rounds of {args.runs} calls, {time.time() - t0:.0f} s")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"rows": rows, "medians": med, "head_ops_ms": round(head_ops_ms, 5),
                                                   "rounds": args.rounds, "runs": args.runs, "seed": args.seed},
                                                  indent=1))


if __name__ == "__main__":
    main()
