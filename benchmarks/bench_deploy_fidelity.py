"""Deploy fidelity: is the predicted latency what a user measures on the model file they ship?

Subnets: --n subnets spread evenly over the LUT-sum range (`sample_stratified`, another seed than
calibration's, so none is a calibration subnet), the space's smallest and largest subnet at the LUT's lowest and
highest resolution, and OFA's specialized w1.0 MobileNetV3 net.configs (--specialized, a folder of
``*/net.config``) whose resolution the LUT covers.  Each is built three ways, as a user ships it:

  export     `ofa-profile export --random-weights`: the project's graph, 1,000-class head
  export10   `ofa-profile export` with the bundled supernet: the project's graph, its 10-class head
  ofa        OFA's own `ofa` package: ``OFAMobileNetV3(...).set_active_subnet(...)``, ``get_active_subnet()``,
             ``torch.onnx.export`` (opset 17), as an OFA user exports it

and timed as a user times a model file: a plain ONNX Runtime session (1 thread, all graph optimisations),
``sess.run(None, {input: x})`` per call, the device's timing settings (warm-up, runs, stop rules:
`ofa_profile.timing.measure_callable`, the harness `calibrate` uses).  All (subnet, way) pairs are timed in one
shuffled, interleaved run, twice (two passes, the second in another order; --passes N: more): a subnet's figure is
the lowest of its medians, as calibration keeps, and the agreement of its first two timings is the run's own re-timing floor, printed
beside the errors (a prediction cannot be held to agree with a timing better than the timing agrees with itself).

Each way is predicted with the matching LUT (--lut: the project's graph, 1,000 classes; export10: --lut10, else
--lut's own 10-class head op where it holds one, `measure --classes 10`; ofa: --lut-ofa, a LUT of OFA's graph,
`measure --graph ofa`); a way without its own LUT is predicted with --lut, and the output says so.
--measure-lut RES first measures them all (--lut fresh, plus its 10-class head op; --lut-ofa, default
<lut>-ofa-graph.json); --calibrate then calibrates --lut and --lut-ofa (`calibrate_device`, --samples/
--test-samples), so that the timing follows directly.

    python benchmarks/bench_deploy_fidelity.py --lut cpu-ort.json --calibrate \\
        [--samples 100 --test-samples 50] [--n 60] [--ways export,export10,ofa] [--json FILE]
    ... --n 12 --ways export --max-time-s 0.5          # a quick run
    ... --measure-lut 160,224 --interleave             # calibrations timed in the same passes as the files
                                                       # (the VM's drift between the two taken out)
    ... --measure-lut 160,224 --calibrate --clock thread-cpu  # an oversubscribed machine: LUT, calibration
                                                              # and models all timed by thread CPU time

Pinned to one core at raised priority where permitted: run it alone.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WAYS = ("export", "export10", "ofa")
SPECIALIZED = Path(os.environ.get("OFA_PROFILE_SHARED_DATA", ROOT.parent / "shared" / "data")) / "reference" / \
    "ofa-specialized"


class Builders:
    """Writes one subnet's ONNX file the way a user of each way gets it."""

    def __init__(self, ways, seed: int = 0):
        self.ways, self.seed = ways, seed
        self._ours = self._theirs = None

    def write(self, way: str, spec, path: Path) -> None:
        import torch
        from ofa_model.export import example_input, export_random, export_subnet
        if way == "export":
            export_random(spec, "onnx", path, check=False, weights_seed=self.seed)
        elif way == "export10":
            if self._ours is None:
                from ofa_model.bundle import load_supernet
                self._ours = load_supernet(None, space=spec.space)[0]
            export_subnet(self._ours, spec, "onnx", path, check=False)
        elif way == "ofa":
            if self._theirs is None:
                from ofa_profile.ofa_graph import ofa_networks
                torch.manual_seed(self.seed)
                net = ofa_networks().OFAMobileNetV3(ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                                                    depth_list=[2, 3, 4], n_classes=1000)
                self._theirs = net.eval()
            self._theirs.set_active_subnet(ks=list(spec.ks), e=list(spec.e), d=list(spec.d))
            sub = self._theirs.get_active_subnet(preserve_weight=True).eval()
            x = example_input(spec, self.seed)
            with torch.no_grad():
                torch.onnx.export(sub, (x,), str(path), input_names=["input"], output_names=["logits"],
                                  opset_version=17, dynamo=False)
        else:
            raise ValueError(way)


def stats(pred, meas, retimed=None):
    import numpy as np
    p, m = np.asarray(pred, float), np.asarray(meas, float)
    e = 100 * (p - m) / m
    out = {"n": int(len(m)), "mean_signed_error_pct": round(float(e.mean()), 3),
           "within_5pct": round(float((abs(e) <= 5).mean()), 4), "within_10pct": round(float((abs(e) <= 10).mean()), 4),
           "worst_error_pct": round(float(e[abs(e).argmax()]), 3)}
    if retimed is not None:
        d = 100 * (np.asarray(retimed[0], float) / np.asarray(retimed[1], float) - 1)
        out.update({"retime_within_5pct": round(float((abs(d) <= 5).mean()), 4),
                    "retime_within_10pct": round(float((abs(d) <= 10).mean()), 4),
                    "retime_worst_pct": round(float(d[abs(d).argmax()]), 3)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lut", required=True, help="the device's LUT (1,000 classes, the project's graph)")
    ap.add_argument("--lut10", default=None, help="a 10-class LUT to predict export10 with")
    ap.add_argument("--lut-ofa", default=None, help="an OFA-graph LUT to predict ofa with")
    ap.add_argument("--device", default="cpu-ort")
    ap.add_argument("--measure-lut", default=None, metavar="RES",
                    help="first measure --lut (fresh) at these resolutions, e.g. 160,224, on --device")
    ap.add_argument("--calibrate", action="store_true", help="calibrate --lut first (on --device)")
    ap.add_argument("--clock", default="wall",
                    help="wall | thread-cpu: what times the LUT, the calibration and the models (thread-cpu: an "
                         "oversubscribed machine, see _clock.py)")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--test-samples", type=int, default=50)
    ap.add_argument("--calib-rounds", type=int, default=2)
    ap.add_argument("--passes", type=int, default=2,
                    help="passes over all files (and --interleave's calibration subnets), each in a new shuffled "
                         "order; a figure is the lowest of its medians, the re-timing floor compares the first two")
    ap.add_argument("--interleave", action="store_true",
                    help="calibrate --lut (and --lut-ofa) within the timing run instead of before it: their "
                         "calibration subnets (--samples + --test-samples + the 4 extremes, drawn as `calibrate` "
                         "draws them, timed by its harness) are shuffled among the model files in both passes, and "
                         "the calibration is fitted from the lower of their two timings (in memory: the LUT files "
                         "are not changed).  Removes the machine's drift between calibrating and timing")
    ap.add_argument("--n", type=int, default=60, help="random subnets, spread over the size range")
    ap.add_argument("--ways", default=",".join(WAYS))
    ap.add_argument("--specialized", default=str(SPECIALIZED), help="folder of OFA's */net.config ('' : none)")
    ap.add_argument("--max-time-s", type=float, default=None, help="timing per model and pass [device's]")
    ap.add_argument("--drift", type=int, default=5, metavar="N",
                    help="before and after the timing, re-measure N held-out calibration subnets of each calibrated "
                         "LUT the way calibration did (`measure_drift`, as `pareto --refresh N` does) and print how "
                         "much faster or slower the machine runs than when it was calibrated; the errors are also "
                         "given for the predictions scaled by the drift measured before ('x drift', what `pareto "
                         "--refresh N` predicts) (0: off)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu", type=int, default=None, help="pin to this core [default: the last one]")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()
    ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    if not ways or set(ways) - set(WAYS):
        ap.error(f"--ways: choose from {','.join(WAYS)}")
    if args.passes < 2:
        ap.error("--passes: at least 2 (the re-timing floor compares two)")
    if args.interleave and args.calibrate:
        ap.error("--interleave calibrates within the timing run: leave out --calibrate")
    if args.interleave:
        args.drift = 0                     # no stored calibration's drift to measure

    from _pin import pin_to_one_core
    pin_to_one_core(args.cpu)

    import dataclasses

    import numpy as np

    from ofa_profile.calibrate import calibrate_device, extreme_specs_at, sample_stratified
    from ofa_profile.devices import load_device
    from ofa_profile.lut import load_lut
    from ofa_profile.space import SubnetSpec
    from ofa_profile.timing import fix_malloc, measure_callable, set_threads

    from _clock import make_clock, make_profiler_with_clock
    from _plain import plain_session
    clock = make_clock(args.clock)
    dev = load_device(args.device)
    t_start = time.time()
    calib = None
    if args.measure_lut and "ofa" in ways and not args.lut_ofa:
        args.lut_ofa = str(Path(args.lut).with_name(Path(args.lut).stem + "-ofa-graph.json"))
    if args.measure_lut:
        from ofa_profile.measure import measure_lut
        from ofa_profile.space import parse_resolutions
        res_m = parse_resolutions(args.measure_lut, dev.space)
        jobs = [(args.lut, "ofa-profile", None, True)]
        if "export10" in ways and not args.lut10:
            jobs.append((args.lut, "ofa-profile", 10, False))  # the 10-class head's op, beside the LUT's own
        if "ofa" in ways:
            jobs.append((args.lut_ofa, "ofa", None, True))
        for path, graph, classes, fresh in jobs:
            with make_profiler_with_clock(dev, args.clock) as prof:
                m = measure_lut(dev, Path(path), res_m, profiler=prof, fresh=fresh, progress=not args.quiet,
                                graph=graph, classes=classes)
            print(f"measured {path} at {args.measure_lut} ({args.clock} clock; graph {graph}"
                  f"{f', + the {classes}-class head' if classes else ''}): {m.measured} ops, {m.elapsed_s:.0f} s",
                  flush=True)
    if args.calibrate:
        for path in [args.lut] + ([args.lut_ofa] if args.lut_ofa and "ofa" in ways else []):
            with make_profiler_with_clock(dev, args.clock) as prof:
                prof.use_graph(load_lut(path).timed.graph)       # subnets built as the LUT's blocks were
                rep = calibrate_device(Path(path), prof, args.samples, args.test_samples, seed=args.seed,
                                       progress=not args.quiet, rounds=args.calib_rounds)
            rep = {k: v for k, v in rep.items() if k != "samples"}
            calib = calib or {}
            calib[path] = rep
            print(f"calibrated {path}: held-out {rep['test_calibrated']['n']} subnets within 5/10 %: "
                  f"{rep['test_calibrated']['within_5pct']:.0%} / {rep['test_calibrated']['within_10pct']:.0%} "
                  f"({rep['measure_s']} s)", flush=True)
    fix_malloc()
    set_threads(1)
    lut = load_lut(args.lut)
    from ofa_profile.errors import LutMissError
    luts = {"export": (lut, args.lut), "export10": (lut, args.lut), "ofa": (lut, args.lut)}
    own = {"export": True, "export10": False, "ofa": False}
    if args.lut10:
        luts["export10"], own["export10"] = (load_lut(args.lut10).with_classes(10), args.lut10), True
    else:
        try:                                       # the LUT's own 10-class head op, where it holds one
            luts["export10"], own["export10"] = (lut.with_classes(10), f"{args.lut} with its 10-class head"), True
        except LutMissError:
            pass
    if args.lut_ofa:
        luts["ofa"], own["ofa"] = (load_lut(args.lut_ofa), args.lut_ofa), True
    for w in ways:
        print(f"{w:<9} predicted with {luts[w][1]}" + ("" if own[w] else
              f" (NOT a LUT of this way's {'head' if w == 'export10' else 'graph'}: none given)"))

    res = list(lut.resolutions)
    ext = extreme_specs_at(lut.space, res)
    subnets = [(w, s, "extreme") for w, s in ext]
    subnets += [(f"random{i}", s, "random") for i, s in
                enumerate(sample_stratified(lut, args.n, args.seed + 7919, res, exclude=[s for _, s in ext]))]
    skipped = []
    if args.specialized:
        for cfg in sorted(Path(args.specialized).glob("*/net.config")):
            try:
                s = SubnetSpec.load(cfg)
            except Exception as exc:                 # w1.2, other families, r outside the space
                skipped.append(f"{cfg.parent.name} ({str(exc).splitlines()[0][:60]})")
                continue
            if s.space != lut.space:
                skipped.append(f"{cfg.parent.name} ({s.space})")
            elif s.r not in res:
                skipped.append(f"{cfg.parent.name} (r={s.r} not in the LUT)")
            else:
                subnets.append((cfg.parent.name, s, "specialized"))
    print(f"{len(subnets)} subnets ({sum(k == 'random' for *_, k in subnets)} random, "
          f"{sum(k == 'extreme' for *_, k in subnets)} extremes, {sum(k == 'specialized' for *_, k in subnets)} "
          f"OFA specialized; {len(skipped)} specialized net.configs skipped) x {len(ways)} ways x {args.passes} timings",
          flush=True)

    def drift_now(when: str) -> dict:
        """`measure_drift` of each way's calibrated LUT now (as `pareto --refresh N` measures it): {LUT: factor}."""
        from ofa_profile.calibrate import measure_drift
        got = {}
        if not args.drift:
            return got
        for w in ways:
            pl, name = luts[w]
            key = str(pl.source)
            if key in got or not pl.calibration:
                continue
            with make_profiler_with_clock(dev, args.clock) as prof:
                prof.use_graph(pl.timed.graph)
                d = measure_drift(pl, prof, args.drift, rounds=1, progress=False)
            got[key] = round(d.factor, 4)
            print(f"drift {when}: {pl.source} ({name}): {len(d.specs)} held-out calibration subnets now measure "
                  f"{d.factor:.3f} x their figures at calibration ({d.calibrated_utc})", flush=True)
        return got

    drift = {"before": drift_now("before the timing")}
    timing = dev.timing if args.max_time_s is None else dataclasses.replace(dev.timing, max_time_s=args.max_time_s)
    build = Builders(ways, args.seed)
    pairs = [(i, w) for i in range(len(subnets)) for w in ways]
    cal_sets = {}                            # --interleave: {LUT path: (lut, extremes, fit specs, test specs)}
    if args.interleave:
        from ofa_profile.calibrate import calibration_subnets
        targets = [(args.lut, None)] if "export" in ways else []
        if "export10" in ways and luts["export10"][1] == f"{args.lut} with its 10-class head":
            targets.append((args.lut, 10))   # calibrated on 10-class subnets: the head it predicts
        if args.lut_ofa and "ofa" in ways:
            targets.append((args.lut_ofa, None))
        for tgt in targets:
            stored = load_lut(tgt[0])
            pl = stored.with_classes(tgt[1])
            cal_sets[tgt] = (stored, pl, *calibration_subnets(pl, args.samples, args.test_samples, args.seed,
                                                              pl.resolutions))
        pairs += [("cal", tgt, j) for tgt, (*_, fit, test) in cal_sets.items() for j in range(len(fit + test))]
        print(f"+ {len(pairs) - len(subnets) * len(ways)} calibration subnets of {len(cal_sets)} LUT(s), timed by "
              f"calibrate's harness in the same passes", flush=True)
    medians: dict = {p: [] for p in pairs}
    rng = random.Random(args.seed)
    t0 = time.time()
    import contextlib
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp, contextlib.ExitStack() as stack:
        profs = {}
        for tgt, (_, pl, *_) in cal_sets.items():
            profs[tgt] = stack.enter_context(make_profiler_with_clock(dev, args.clock))
            profs[tgt].use_graph(pl.timed.graph)
        files = {}
        for i, w in pairs[:len(subnets) * len(ways)]:    # each file written once, timed in both passes
            f = Path(tmp) / f"{i}-{w}.onnx"
            build.write(w, subnets[i][1], f)
            files[(i, w)] = f
        t_build = time.time() - t0
        for p in range(args.passes):
            order = pairs[:]
            rng.shuffle(order)
            for k, item in enumerate(order):
                if item[0] == "cal":                 # a calibration subnet, as `calibrate` times it
                    _, tgt, j = item
                    *_, fit, test = cal_sets[tgt]
                    head = () if tgt[1] is None else (tgt[1],)
                    medians[item].append(profs[tgt].measure_subnet((fit + test)[j], args.seed, *head).median_ms)
                    continue
                i, w = item
                r = subnets[i][1].r
                x = np.random.default_rng(args.seed).standard_normal((1, 3, r, r)).astype(np.float32)
                sess, call = plain_session(files[(i, w)], x)
                medians[(i, w)].append(measure_callable(call, timing, clock=clock,
                                                        min_time_s=timing.subnet_min_time_s).median_ms)
                del sess, call
                if not args.quiet and k % 50 == 0:
                    print(f"  pass {p + 1}: {k}/{len(order)}", file=sys.stderr, flush=True)
    t_time = time.time() - t0 - t_build
    drift["after"] = drift_now("after the timing")
    if cal_sets:
        from ofa_profile.calibrate import evaluate, fit_calibration
        calib = {}
        for tgt, (stored, pl, ext, fit, test) in cal_sets.items():
            path, head = tgt
            m = [min(medians[("cal", tgt, j)]) for j in range(len(fit + test))]
            cal = fit_calibration(fit, m[:len(fit)], pl, seed=args.seed)
            fitted = stored.with_calibration(cal).with_classes(head)
            rep = evaluate([fitted.predict_ms(s_) for s_ in test], m[len(fit):]).as_dict()
            retimed = [medians[("cal", tgt, j)] for j in range(len(fit + test))]
            agree = float(np.mean([abs(t[1] / t[0] - 1) <= 0.05 for t in retimed]))
            name = path + (f", {head}-class head" if head else "")
            calib[name] = {"test_calibrated": rep, "n_fit": len(fit), "retime_within_5pct": round(agree, 4)}
            print(f"calibrated {name} in the run: held-out {rep['n']} subnets within 5/10 %: "
                  f"{rep['within_5pct']:.0%} / {rep['within_10pct']:.0%} (their two timings within 5 %: "
                  f"{agree:.0%})", flush=True)
            for w in ways:
                if head is None and luts[w][1] == path:
                    luts[w] = (fitted, path + " (calibrated in the run)")
                elif head == 10 and w == "export10":
                    luts[w] = (fitted, f"{path} with its 10-class head (calibrated in the run on 10-class subnets)")
            if tgt == (args.lut, None):
                lut = fitted

    rows = []
    for i, (name, s, kind) in enumerate(subnets):
        for w in ways:
            pl, _ = luts[w]
            rows.append({"subnet": name, "kind": kind, "way": w, "arch": s.to_ofa(), "r": s.r,
                         "lut_sum_ms": round(lut.lut_sum_ms(s), 5), "predicted_ms": round(pl.predict_ms(s), 5),
                         "timings_ms": [round(t, 5) for t in medians[(i, w)]],
                         "measured_ms": round(min(medians[(i, w)]), 5)})
            f = drift["before"].get(str(pl.source))
            if f is not None:                       # what `pareto --refresh N` predicts: scaled by the drift
                rows[-1]["predicted_refreshed_ms"] = round(pl.predict_ms(s) * f, 5)
    for r_ in rows:
        r_["error_pct"] = round(100 * (r_["predicted_ms"] - r_["measured_ms"]) / r_["measured_ms"], 3)
    variants = [("predicted_ms", "")]
    if rows and all("predicted_refreshed_ms" in r_ for r_ in rows):
        variants.append(("predicted_refreshed_ms", "  x drift"))

    import numpy as np
    summary = {}
    print("\nerror = (predicted - measured) / measured; measured = the lowest of the passes' timings; re-timing floor = "
          "the first two timings' agreement (t2 / t1 - 1)")
    hdr = (f"{'way':<9} {'group':<28} {'n':>3} {'mean err':>9} {'<=5%':>5} {'<=10%':>6} {'worst':>8}   "
           f"{'retime<=5%':>10} {'<=10%':>6} {'worst':>7}")
    print(hdr)
    for w in ways:
        mine = [r_ for r_ in rows if r_["way"] == w]
        order = np.argsort([r_["lut_sum_ms"] for r_ in mine], kind="stable")      # size: the LUT sum
        groups = {"all": mine}
        for t, idx in zip(("small third", "middle third", "large third"), np.array_split(order, 3)):
            groups[t] = [mine[j] for j in idx]
        groups["smallest subnets"] = [r_ for r_ in mine if r_["subnet"] == "smallest"]
        groups["largest subnets"] = [r_ for r_ in mine if r_["subnet"] == "largest"]
        groups["OFA specialized"] = [r_ for r_ in mine if r_["kind"] == "specialized"]
        summary[w] = {}
        for (field, tag), (g, rs) in ((v, gr) for v in variants for gr in groups.items()):
            if not rs:
                continue
            st = stats([r_[field] for r_ in rs], [r_["measured_ms"] for r_ in rs],
                       ([r_["timings_ms"][1] for r_ in rs], [r_["timings_ms"][0] for r_ in rs]))
            summary[w][g + tag.replace("  x ", ", x ")] = st
            g = g + tag
            print(f"{w:<9} {g:<28} {st['n']:>3} {st['mean_signed_error_pct']:>+8.2f}% {st['within_5pct']:>5.0%} "
                  f"{st['within_10pct']:>6.0%} {st['worst_error_pct']:>+7.1f}%   {st['retime_within_5pct']:>10.0%} "
                  f"{st['retime_within_10pct']:>6.0%} {st['retime_worst_pct']:>+6.1f}%")
        for r_ in mine:
            if r_["kind"] == "extreme":
                print(f"{'':<9}   {r_['subnet']} r={r_['r']}: measured {r_['measured_ms']:.3f} ms, predicted "
                      f"{r_['predicted_ms']:.3f} ms ({r_['error_pct']:+.1f} %)")
    if len(ways) > 1 and "export" in ways:
        for w in ways:
            if w != "export":
                rat = [a["measured_ms"] / b["measured_ms"] for a, b in
                       zip([r_ for r_ in rows if r_["way"] == w], [r_ for r_ in rows if r_["way"] == "export"])]
                print(f"measured {w} / export: median {np.median(rat):.3f} (range {min(rat):.3f}..{max(rat):.3f})")
    load = os.getloadavg()
    print(f"{args.clock} clock; timing {t_time:.0f} s, building {t_build:.0f} s; total {time.time() - t_start:.0f} s; load average after: "
          f"{', '.join(f'{v:.2f}' for v in load)}")
    if skipped:
        print(f"skipped: {'; '.join(skipped)}")
    if args.json_out:
        out = {"lut": args.lut, "clock": args.clock, "luts": {w: luts[w][1] for w in ways},
               "own_lut": {w: own[w] for w in ways}, "drift": drift, "device": dev.name, "ways": ways,
               "n_random": args.n, "seed": args.seed, "timing": timing.as_dict(), "calibration": calib,
               "lut_calibrated_utc": (lut.calibration or {}).get("calibrated_utc"), "summary": summary,
               "rows": rows, "skipped": skipped, "seconds": {"timing": round(t_time, 1), "build": round(t_build, 1)},
               "loadavg_after": list(load)}
        Path(args.json_out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
