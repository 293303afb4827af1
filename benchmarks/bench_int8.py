"""Int8 against fp32 on this CPU: per block type and resolution, whole-subnet ranking, and LUT build time.

Three parts (each can be skipped), run one after the other in this process, pinned to one core, 1 thread:

1. **Block ratios**: every distinct block of the space at ``--resolutions`` is compiled in fp32 and in int8
   (ONNX Runtime: QDQ; LiteRT: ai-edge-quantizer; :mod:`ofa_profile.quantize`) and timed *interleaved*:
   ``--rounds`` rounds, each ``--runs`` timed calls of the fp32 model then of the int8 one (after warm-up);
   a model's figure is its lowest round median.  Printed: per runtime, block type and resolution the geometric
   mean of int8/fp32 over the blocks of that type (< 1: int8 faster).
2. **Ranking**: ``--subnets`` seeded random subnets at the LUT resolutions, LUT sum in fp32 and in int8 (the two
   LUTs of part 3): Kendall tau between the two orders (1: int8 changes no choice), overall and per resolution.
3. **LUT build time**: ``measure_lut`` of an fp32 and an int8 LUT for each ``--lut-devices`` device at
   ``--lut-resolutions``, alternating fp32 and int8 resolution by resolution (so both see the same machine),
   with the wall time of each; the LUTs are written to ``--out-dir`` (and reused by part 2).

    python benchmarks/bench_int8.py --resolutions 128,160,192,224 \
        --lut-devices cpu-ort --lut-resolutions all --out-dir /tmp/int8-bench --json /tmp/int8-bench/result.json

Run under the machine's benchmark lock; the figures are ratios measured in one window, so a shared machine's
drift between windows cancels out.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def block_type(op) -> str:
    """A block's type: its kind, and for an MBConv block kernel, stride, SE, activation and identity skip."""
    if op.kind != "expanded_conv":
        return op.kind
    return (f"MBConv k{op.kernel} s{op.stride}{' SE' if op.se else ''} {'hs' if op.hs else 'relu'}"
            f"{' skip' if op.idskip else ''}")


def _median_ms(fn, runs: int) -> float:
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1e3 * statistics.median(ts)


def block_ratios(runtimes, resolutions, rounds: int, runs: int, warmup: int, seed: int = 0,
                 limit: int | None = None) -> list[dict]:
    """One row per (runtime, block): fp32 and int8 lowest round medians (interleaved), their ratio, compile times."""
    import tempfile

    from ofa_profile.blocks import op_input, op_module
    from ofa_profile.ops import enumerate_ops
    from ofa_profile.quantize import calibration_inputs
    from ofa_profile.runtimes import get_runtime

    ops = enumerate_ops("ofa-mbv3-w1.0", resolutions)[:limit]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-int8-") as tmp:
        for name in runtimes:
            rt = get_runtime(name)
            for i, (r, op) in enumerate(ops):
                m, x = op_module(op, seed=seed), op_input(op, seed=seed)
                t0 = time.perf_counter()
                c32 = rt.compile(m, x, num_threads=1, workdir=tmp)
                t1 = time.perf_counter()
                c8 = rt.compile(m, x, num_threads=1, workdir=tmp, precision="int8",
                                calibration=calibration_inputs(tuple(x.shape), seed))
                t2 = time.perf_counter()
                try:
                    for _ in range(warmup):
                        c32.run()
                        c8.run()
                    a = b = math.inf
                    for _ in range(rounds):
                        a = min(a, _median_ms(c32.run, runs))
                        b = min(b, _median_ms(c8.run, runs))
                finally:
                    c32.close()
                    c8.close()
                rows.append({"runtime": name, "r": r, "key": op.key, "type": block_type(op), "fp32_ms": a,
                             "int8_ms": b, "ratio": b / a, "compile_fp32_s": t1 - t0, "compile_int8_s": t2 - t1})
                print(f"\r{name} {i + 1}/{len(ops)} blocks", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
    return rows


def ratio_table(rows: list[dict]) -> dict:
    """``{runtime: {type: {r: geometric mean of int8/fp32}}}`` plus ``all`` per runtime and resolution."""
    groups: dict = defaultdict(list)
    for row in rows:
        groups[(row["runtime"], row["type"], row["r"])].append(row["ratio"])
        groups[(row["runtime"], "all blocks", row["r"])].append(row["ratio"])
    out: dict = defaultdict(lambda: defaultdict(dict))
    for (rt, ty, r), v in sorted(groups.items()):
        out[rt][ty][r] = math.exp(statistics.fmean(math.log(x) for x in v))
    return out


def print_ratio_table(table: dict, resolutions) -> None:
    for rt, types in table.items():
        print(f"\n{rt}: int8/fp32 block latency (geometric mean over the blocks of a type; < 1: int8 faster)")
        print(f"  {'block type':28s}" + "".join(f"{'r' + str(r):>8s}" for r in resolutions))
        for ty in sorted(types, key=lambda t: (t == "all blocks", t)):
            print(f"  {ty:28s}" + "".join(f"{types[ty][r]:8.2f}" if r in types[ty] else f"{'':>8s}"
                                          for r in resolutions))


def kendall_tau(a, b) -> float:
    from scipy.stats import kendalltau
    return float(kendalltau(a, b).statistic)


def build_luts(devices, resolutions, out_dir: Path, seed: int = 0) -> dict:
    """fp32 and int8 LUTs of each device, alternating resolution by resolution; wall seconds of each."""
    from ofa_profile.devices import load_device
    from ofa_profile.measure import make_profiler, measure_lut
    from ofa_profile.timed import Timed

    out = {}
    for name in devices:
        dev = load_device(name)
        paths = {p: out_dir / f"{name}-{p}.json" for p in ("fp32", "int8")}
        secs = {"fp32": 0.0, "int8": 0.0}
        profs = {p: make_profiler(dev, precision=p) for p in paths}
        try:
            for r in resolutions:
                for p in ("fp32", "int8"):
                    t = time.perf_counter()
                    measure_lut(dev, paths[p], [r], seed=seed, profiler=profs[p], progress=False,
                                timed=Timed.default_for(dev.space, threads=dev.num_threads).with_(precision=p))
                    secs[p] += time.perf_counter() - t
                print(f"\r{name}: r{r} done ({secs['fp32']:.0f} s fp32, {secs['int8']:.0f} s int8)", end="",
                      file=sys.stderr, flush=True)
            print(file=sys.stderr)
        finally:
            for prof in profs.values():
                prof.close()
        out[name] = {"fp32_s": secs["fp32"], "int8_s": secs["int8"], "ratio": secs["int8"] / secs["fp32"],
                     "resolutions": list(resolutions), "luts": {p: str(q) for p, q in paths.items()}}
    return out


def ranking(lut_paths: dict, n: int, seed: int = 0) -> dict:
    """Kendall tau of fp32 vs int8 LUT sums over ``n`` seeded random subnets (all, and per resolution)."""
    from ofa_profile.lut import load_lut
    from ofa_profile.space import get_space

    l32, l8 = load_lut(lut_paths["fp32"]), load_lut(lut_paths["int8"])
    res = sorted(set(l32.resolutions) & set(l8.resolutions))
    sp = get_space(l32.space)
    specs = [sp.sample(seed * 1_000_003 + i, resolution=res[i % len(res)]) for i in range(n)]
    a = [l32.lut_sum_ms(s) for s in specs]
    b = [l8.lut_sum_ms(s) for s in specs]
    per_r = {}
    for r in res:
        idx = [i for i, s in enumerate(specs) if s.r == r]
        if len(idx) >= 5:
            per_r[r] = kendall_tau([a[i] for i in idx], [b[i] for i in idx])
    ratios = [y / x for x, y in zip(a, b)]
    return {"n_subnets": n, "tau_all": kendall_tau(a, b),
            "tau_per_resolution_median": statistics.median(per_r.values()) if per_r else None,
            "tau_per_resolution_min": min(per_r.values()) if per_r else None,
            "subnet_int8_over_fp32": {"min": min(ratios), "median": statistics.median(ratios), "max": max(ratios)},
            "resolutions": res}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runtimes", default="onnxruntime,litert", help="part 1 runtimes ('' skips part 1)")
    ap.add_argument("--resolutions", default="128,160,192,224", help="part 1 resolutions")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None, help="part 1: only the first N blocks (a smoke run)")
    ap.add_argument("--lut-devices", default="cpu-ort", help="part 3 devices ('' skips parts 2 and 3)")
    ap.add_argument("--lut-resolutions", default="all")
    ap.add_argument("--subnets", type=int, default=500, help="part 2 subnets")
    ap.add_argument("--out-dir", default="/tmp/ofa-profile-int8-bench")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write every figure (and the per-block rows) here")
    ap.add_argument("--cpu", type=int, default=None, help="pin to this core [default: the last one]")
    args = ap.parse_args()

    from _pin import pin_to_one_core
    pin_to_one_core(args.cpu)
    from ofa_profile.space import parse_resolutions
    from ofa_profile.timing import fix_malloc, machine_info, set_threads
    fix_malloc()
    set_threads(1)

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"command": " ".join(sys.argv), "machine": machine_info().get("cpu_model"),
                    "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        result["loadavg_start"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    runtimes = [r for r in args.runtimes.split(",") if r]
    if runtimes:
        res = parse_resolutions(args.resolutions, "ofa-mbv3-w1.0")
        t = time.perf_counter()
        rows = block_ratios(runtimes, res, args.rounds, args.runs, args.warmup, args.seed, args.limit)
        table = ratio_table(rows)
        print_ratio_table(table, res)
        result["block_ratios"] = {"seconds": round(time.perf_counter() - t, 1), "table": table, "rows": rows}
        for rt in runtimes:
            rr = [x["ratio"] for x in rows if x["runtime"] == rt]
            c8 = [x["compile_int8_s"] for x in rows if x["runtime"] == rt]
            c32 = [x["compile_fp32_s"] for x in rows if x["runtime"] == rt]
            print(f"{rt}: {len(rr)} blocks, int8/fp32 min {min(rr):.2f} median {statistics.median(rr):.2f} "
                  f"max {max(rr):.2f}; int8 faster for {sum(x < 1 for x in rr) / len(rr):.0%}; compile median "
                  f"{statistics.median(c32):.3f} s fp32, {statistics.median(c8):.3f} s int8")
    devices = [d for d in args.lut_devices.split(",") if d]
    if devices:
        res = parse_resolutions(args.lut_resolutions, "ofa-mbv3-w1.0")
        luts = build_luts(devices, res, out_dir, args.seed)
        result["lut_build"] = luts
        for name, v in luts.items():
            print(f"\n{name}: {len(res)}-resolution LUT in {v['fp32_s']:.1f} s fp32, {v['int8_s']:.1f} s int8 "
                  f"(x{v['ratio']:.2f})")
            rk = ranking(v["luts"], args.subnets, args.seed)
            v["ranking"] = rk
            s = rk["subnet_int8_over_fp32"]
            print(f"{name}: Kendall tau of LUT-sum latency fp32 vs int8 over {rk['n_subnets']} random subnets: "
                  f"{rk['tau_all']:.3f} (all resolutions), per resolution median "
                  f"{rk['tau_per_resolution_median']:.3f}, min {rk['tau_per_resolution_min']:.3f}; subnet "
                  f"int8/fp32 {s['min']:.2f} .. {s['median']:.2f} .. {s['max']:.2f}")
    try:
        result["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    except OSError:
        pass
    if args.json:
        from ofa_profile.atomic import write_json_atomic
        write_json_atomic(args.json, json.loads(json.dumps(result, default=str)))


if __name__ == "__main__":
    main()
