"""A/B of LUTs of one device: calibrate each on the SAME whole-subnet measurements, report each on the same
held-out subnets.

Comparing two LUTs through their own calibrations mixes in how fast the machine was when each was
calibrated; measuring the subnets once and fitting every LUT on them isolates the LUTs themselves (e.g. two
timing stop rules, or one pass against three).  --n-fit + --n-test seeded random subnets (all 25
resolutions), each the lowest median of --rounds passes, as calibration measures; the measurements are
journalled to --journal and reused on rerun.

    python benchmarks/bench_lut_ab.py --device cpu-tflite LUT_A.json LUT_B.json [...] [--n-fit 60] [--n-test 50]

Pinned to one core at raised priority where permitted: run it alone.
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
    ap.add_argument("luts", nargs="+", help="LUT files (or shipped device names) of the same device and space")
    ap.add_argument("--device", required=True)
    ap.add_argument("--n-fit", type=int, default=60)
    ap.add_argument("--n-test", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--journal", default=None, help="[default: /tmp/ofa-profile-ab-<device>-s<seed>.jsonl]")
    ap.add_argument("--cpu", type=int, default=None)
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()
    from _pin import pin_to_one_core
    pin_to_one_core(args.cpu)

    from ofa_profile.calibrate import apply_calibration, evaluate, fit_calibration, measure_subnets, sample_specs
    from ofa_profile.devices import load_device
    from ofa_profile.lut import load_lut
    from ofa_profile.measure import make_profiler

    dev = load_device(args.device)
    luts = {p: load_lut(p) for p in args.luts}
    spaces = {lt.space for lt in luts.values()}
    if len(spaces) != 1:
        sys.exit(f"the LUTs are of different spaces: {sorted(spaces)}")
    space = spaces.pop()
    res = sorted(set.intersection(*(set(lt.resolutions) for lt in luts.values())))
    specs = sample_specs(space, args.n_fit + args.n_test, args.seed, res)
    journal = Path(args.journal or f"/tmp/ofa-profile-ab-{dev.name}-s{args.seed}.jsonl")
    reused = len(journal.read_bytes().splitlines()) if journal.exists() else 0
    t0 = time.perf_counter()
    with make_profiler(dev) as prof:
        meas = measure_subnets(prof, specs, journal, args.seed, progress=True, rounds=args.rounds)
    print(f"{dev.name}: {len(specs)} subnets x {args.rounds} passes in {time.perf_counter() - t0:.0f} s "
          f"({min(reused, len(specs) * args.rounds)} subnet passes reused from the journal {journal})")
    fit, test = slice(0, args.n_fit), slice(args.n_fit, None)
    report = {}
    for p, lut in luts.items():
        cal = fit_calibration(specs[fit], meas[fit], lut, seed=args.seed)
        r = evaluate([apply_calibration(cal, s, lut) for s in specs[test]], meas[test]).as_dict()
        raw = evaluate([lut.lut_sum_ms(s) for s in specs[test]], meas[test]).as_dict()
        timing = (lut.provenance or {}).get("timing") or {}
        report[p] = {"calibrated": r, "lut_sum": raw, "timing": dict(timing)}
        rho = "n/a" if r["spearman"] is None else f"{r['spearman']:.3f}"
        print(f"  {p}: calibrated within 2/3/5/10 %: {r['within_2pct']:.0%} / {r['within_3pct']:.0%} / "
              f"{r['within_5pct']:.0%} / {r['within_10pct']:.0%}, MAPE {r['mape_pct']:.2f} %, Spearman {rho}; "
              f"raw LUT sum MAPE {raw['mape_pct']:.1f} %; timing {dict(timing)}", flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
