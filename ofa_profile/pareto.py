"""``ofa-profile pareto`` as one function: the most accurate subnet under a latency budget and the latency/accuracy
frontier, with the policies around the search.

:func:`run_pareto` takes one frozen request (:class:`~ofa_profile.pareto_request.ParetoRequest`, which the command
builds from its options), resolves the latency source (``--device``/``--lut``/``--adapter``; a shipped LUT used on a device
of this machine is speed-checked, and scaled by the check with ``--rescale``: :func:`speed_check_source`; scaled by
the device's drift with ``--refresh``: :func:`refresh_drift`) and the accuracy predictor (:func:`resolve_predictor`,
:func:`verify_predictor`), picks the resolutions (:func:`search_resolutions`), applies the safety margin
(:func:`parse_margin`; ``auto``: the latency source's own under-predictions), searches, merges the best subnet into
the frontier, optionally measures and evaluates the best subnet (:func:`verify_best`: within the budget plus
:data:`VERIFY_TOLERANCE`), writes the JSON, the best subnet and the plot, and returns all of it as data
(:class:`ParetoRun`); the command prints it.

A wrong option value or combination found on the way is an :class:`OptionError`, which the command line reports as a
usage error (exit 2); every other refusal an :class:`~ofa_profile.errors.OfaProfileError` (exit 1).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ofa_model.evaluate import EvalRequest, evaluate_precisions, evaluate_spec
from ofa_model.safeload import RefusedWeightsError

from .accuracy import (BUNDLED_PREDICTOR, bundled_predictor_path, imagenet_predictor_path, outside_trained_range,
                       own_supernet_predictor, predictor_label, resolve_accuracy_predictor)
from .argsafety import shell_command
from .atomic import write_json_atomic
from .calibration import head_note
from .encodings import same_macro_architecture
from .errors import OfaProfileError, RequestError
from .lut import is_shipped, lut_identity
from .pareto_request import DEFAULT_DEVICE, ParetoRequest
from .paths import safe_name
from .plots import plot_frontier
from .replicates import per_item, run_passes
from .search import pareto_front, pareto_search, resolve_latency_source, search
from .space import get_space, parse_resolutions

__all__ = ["OptionError", "ParetoRun", "VERIFY_TOLERANCE", "VERIFY_NOISE_REL", "DEFAULT_DEVICE", "verify_sentence",
           "verify_noise", "parse_margin", "search_resolutions",
           "resolve_predictor", "verify_predictor", "predictor_block", "refresh_drift", "speed_check_source",
           "verify_best", "best_record", "source_title", "run_pareto", "ParetoRequest"]

VERIFY_TOLERANCE = 0.03    # --verify: a measured latency up to the budget + 3 % counts as meeting it
VERIFY_NOISE_REL = 0.05    # --verify warns when its IQR / median, or its passes' spread, is above this

Log = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


#: a wrong option value or combination found on the way (the command line's usage error, exit 2)
OptionError = RequestError


def parse_margin(margin: str) -> float | None:
    """``--margin``: a percentage of the budget (``5``, ``5%``; 0 <= PCT < 100), or None for ``auto`` (the 90th
    percentile of the calibrated LUT's under-predictions on its held-out subnets)."""
    if margin.strip().lower() == "auto":
        return None
    try:
        pct = float(margin.strip().rstrip("%"))
    except ValueError:
        raise OptionError(f"{margin!r}; give a percentage such as 5 or 'auto'", "--margin") from None
    if not 0 <= pct < 100:
        raise OptionError(f"{margin!r}; need 0 <= PCT < 100", "--margin")
    return pct


def search_resolutions(given: str | None, space: str, source_res: tuple, predictor: Any, lut: Any = None,
                       log: Log = _quiet) -> tuple:
    """--resolutions, else the latency source's resolutions among the supernet's (128..224: a LUT may also hold
    resolutions above them, for latency only) and inside the predictor's trained range.  ``lut`` (the LUT behind
    the source, if any) lets a refusal name the keys a partly covered resolution lacks."""
    def gaps(rs: Any) -> str:
        g = lut.gaps([r for r in rs if r in lut.coverage()]) if lut is not None else {}
        return f"; it lacks {lut.gaps_text(g)}" if g else ""

    if given:
        try:
            res = parse_resolutions(given, space)
        except (OfaProfileError, ValueError) as exc:
            raise OptionError(" ".join(str(exc).split()), "'--resolutions'") from None
        missing = [r for r in res if r not in source_res]
        if missing:
            raise OfaProfileError(f"the latency source does not cover resolution(s) {missing} (it covers "
                                  f"{','.join(map(str, source_res)) or 'none'}{gaps(missing)}): measure them into "
                                  f"the LUT or pick covered ones")
        return res
    res = tuple(source_res)
    if not res:
        raise OfaProfileError(f"the latency source covers no resolution completely"
                              f"{gaps(lut.coverage() if lut is not None else ())}: measure one into the LUT")
    supernet = get_space(space).resolutions
    if any(r not in supernet for r in res):
        above = [r for r in res if r not in supernet]
        res = tuple(r for r in res if r in supernet)
        if not res:
            raise OfaProfileError(f"the latency source covers only resolution(s) {','.join(map(str, above))}, above the "
                                  f"supernet's {supernet[0]}..{supernet[-1]}; pass --resolutions to search there anyway")
        log(f"searching the supernet's resolutions {res[0]}..{res[-1]} (the latency source also covers "
            f"{','.join(map(str, above))}; --resolutions overrides)")
    tr = tuple(getattr(predictor, "trained_resolutions", ()) or ())
    if tr:
        inside = tuple(r for r in res if min(tr) <= r <= max(tr))
        if not inside:
            raise OfaProfileError(f"the latency source covers resolutions {res[0]}..{res[-1]} but the accuracy "
                                  f"predictor was fitted on {min(tr)}..{max(tr)}; pass --resolutions to extrapolate, "
                                  f"or use a predictor fitted there")
        if inside != res:
            log(f"searching resolutions {inside[0]}..{inside[-1]} (inside the predictor's trained range "
                f"{min(tr)}..{max(tr)}; --resolutions overrides)")
        res = inside
    return res


def resolve_predictor(predictor: str | None, accuracy_data: str | None, accuracy: str | None,
                      space: str | None, log: Log = _quiet) -> tuple[Any, str]:
    """The accuracy predictor of a command (``--accuracy``, ``--predictor`` or ``--accuracy-data``, at most one)
    and why it is that one (recorded in the output)."""
    given = [n for n, v in (("--accuracy", accuracy), ("--predictor", predictor), ("--accuracy-data", accuracy_data))
             if v is not None]
    if len(given) > 1:
        raise OptionError(f"{' and '.join(given)} are alternatives: pass one")
    why = given[0] if given else "default (--accuracy imagenet)"
    pred = resolve_accuracy_predictor(predictor, accuracy_data, accuracy=accuracy, space=space, log=log)
    if space is not None:
        pred.check_space(space)
    return pred, why


def verify_predictor(supernet: str | None, log: Log = _quiet) -> Any:
    """pareto --verify without --accuracy/--predictor: the predictor of the supernet it evaluates with (the
    bundled one for the bundled weights); None (saying so) when those weights are absent."""
    from ofa_model.bundle import bundled_weights_path, sha256_file

    w = Path(supernet) if supernet else bundled_weights_path()
    if not w.is_file():
        log(f"accuracy predictor: --verify has no supernet weights at {w}, so no predictor of its own: "
            f"the default (--accuracy imagenet)")
        return None
    pred = own_supernet_predictor(w, sha256_file(w))
    if pred is None:
        raise OfaProfileError(f"--verify evaluates with {w}, which has no accuracy predictor of its own (an "
                              f"accuracy_predictor.json beside it fitted for its sha256, by `ofa-profile "
                              f"accuracy-predictor --supernet {w}`): pass --predictor FILE or --accuracy "
                              f"imagenet|bundled")
    log(f"accuracy predictor: {w.parent / 'accuracy_predictor.json'} ({predictor_label(pred).text}), the "
        f"supernet --verify evaluates with")
    return pred


def predictor_block(pred: Any, why: str, resolutions: Any, log: Log = _quiet) -> dict:
    """``accuracy_predictor`` of a command's JSON: what the accuracy is (dataset, the model it describes), how
    it was chosen, and the resolutions asked outside those it was fitted on (logged as well)."""
    lab = predictor_label(pred)
    outside = outside_trained_range(pred, resolutions)
    if outside:
        tr = pred.trained_resolutions
        log(f"accuracy predictor: resolution(s) {','.join(map(str, outside))} lie outside those it was fitted on "
            f"({min(tr)}..{max(tr)}): its figures there are extrapolations, not predictions")
    return {**dict(pred.info), "dataset": lab.dataset, "describes": lab.describes, "label": lab.text,
            "chosen_by": why, "model": pred.model, "encoding": pred.encoding, "space": pred.space,
            "trained_resolutions": list(pred.trained_resolutions), "fitted": lab.fitted,
            "outside_trained_range": outside}


def accuracy_precision(pred: Any, lut_precision: str, log: Log = _quiet) -> str:
    """The precision whose top-1 ``pred`` predicts (``info.precision`` of a predictor fitted on an accuracy
    dataset of ``accuracy-dataset --precision int8``; fp32 otherwise).  Int8 accuracy with an fp32 latency source is
    refused (one line); an int8 LUT with an fp32 predictor is said (the search trades int8 latency against fp32
    accuracy)."""
    p = str(pred.info.get("precision", "fp32"))
    if p not in ("fp32", "int8"):
        raise OfaProfileError(f"the accuracy predictor predicts {p!r}, not a top-1 of fp32 or int8 subnets; fit one on "
                              f"an accuracy dataset (accuracy-dataset, optionally --precision int8)")
    if p == "int8" and lut_precision != "int8":
        raise OfaProfileError(f"the accuracy data are int8 top-1 but the latency source times {lut_precision} "
                              f"blocks; search an int8 LUT (ofa-profile measure --precision int8) or pass fp32 "
                              f"accuracy data")
    if p == "fp32" and lut_precision == "int8":
        log("accuracy: the predictor's fp32 top-1 (int8 latency, fp32 accuracy); for int8 top-1 pass --accuracy-data "
            "of `ofa-profile accuracy-dataset --precision int8`")
    return p


def refresh_drift(src: Any, adapter: str | None, no_calibration: bool, n: int, device_ref: str,
                  log: Log = _quiet) -> Any:
    """pareto --refresh: the device's drift since its LUT was calibrated (measure_drift)."""
    from .calibrate import measure_drift        # the device stack (measure, devices, transports): only here
    from .devices import load_device
    from .measure import make_profiler

    if adapter is not None or no_calibration or src.lut is None:
        raise OfaProfileError("--refresh needs a calibrated LUT (--device or --lut) without --adapter or "
                              "--no-calibration: it re-measures the LUT's held-out calibration subnets")
    lut = src.lut
    cmd = shell_command("ofa-profile", "calibrate", "--device", lut.device, "--lut", lut.source)
    if not lut.calibration:  # before resolving any device: an uncalibrated LUT has nothing to re-measure
        raise OfaProfileError(f"LUT {lut.source} is not calibrated: --refresh re-measures its held-out calibration "
                              f"subnets; run `{cmd}` first")
    if not src.held_out:
        raise OfaProfileError(f"LUT {lut.source}'s calibration holds no held-out subnets, which --refresh "
                              f"re-measures; re-run `{cmd}` with --test-samples > 0")
    dev = load_device(device_ref)
    log(f"refresh: measuring {min(n, len(src.held_out))} of {lut.source}'s held-out calibration subnets on "
        f"{dev.name} again ...")
    with make_profiler(dev, precision=lut.timed.precision) as prof:     # the subnets as the LUT timed them
        prof.use_graph(lut.timed.graph)          # whole subnets built as the LUT's blocks were
        d = measure_drift(lut, prof, n)
    log(f"refresh: {dev.name} runs {d.factor:.3f} x its speed at calibration ({d.calibrated_utc}); "
        f"predictions scaled by {d.factor:.3f}")
    return d


def speed_check_source(src: Any, device: str | None, enabled: bool, rescale: bool, log: Log = _quiet) -> tuple:
    """The speed check of a shipped LUT behind ``src`` on a device of this machine
    (:func:`ofa_profile.speedcheck.shipped_lut_check`, cached), its one warning line when off by more than 15 %,
    and with ``rescale`` the source scaled by its factor: ``(the JSON's speed_check or None, source)``."""
    from .speedcheck import check_for_command   # the device stack: loaded when a check may run

    chk = check_for_command(src.lut, device, enabled=enabled, rescale=rescale, what="the latency source", log=log)
    if chk is None:
        return None, src
    if rescale:
        src = src.scaled(chk.factor, f"speed check of {len(chk.blocks)} blocks on this machine")
    return {**chk.as_dict(), "applied": rescale}, src


def verify_best(best: Any, budget_ms: float, device_ref: str, evaluation: EvalRequest, seed: int,
                rounds: int = 2, log: Log = _quiet, timed: Any = None) -> dict:
    """pareto --verify: measure ``best`` end to end on ``device_ref`` (the lowest median of ``rounds``
    passes, as calibration measures its subnets); evaluate it as ``evaluation`` says (its supernet, images and
    data sets, as ``ofa-profile evaluate``).  Weights refused as unsafe or
    damaged (:class:`~ofa_model.safeload.RefusedWeightsError`) fail the command, before any device work; other
    reasons not to evaluate (no weights, no validation data) are recorded as ``top1_error``.

    ``timed``: the LUT's record. The subnet is measured in its precision (a device of another thread count is
    refused); int8: ``top1`` stays the fp32 figure (what the predictor predicts) and ``top1_int8`` (ONNX Runtime
    int8, :func:`ofa_model.evaluate.evaluate_precisions`) is measured beside it."""
    from ofa_model.bundle import load_supernet

    from .calibrate import require_threads      # the device stack: only for --verify
    from .devices import load_device
    from .measure import make_profiler

    loaded, load_error = None, None
    try:
        loaded = load_supernet(evaluation.supernet, space=best.spec.space)
    except RefusedWeightsError:
        raise
    except OfaProfileError as exc:
        load_error = str(exc)
    dev = load_device(device_ref)
    precision = timed.precision if timed is not None else "fp32"
    if timed is not None:
        require_threads(timed, dev, "the LUT")
    log(f"verify: measuring the chosen subnet ({precision}) on {dev.name} ...")
    with make_profiler(dev, precision=precision) as prof:
        head = None                      # what the prediction is for (``timed``: the LUT's graph and head)
        if timed is not None:
            prof.use_graph(timed.graph)
            head = None if timed.classes == get_space(best.spec.space).n_classes else timed.classes
        reps = run_passes([best.spec], max(1, rounds),
                          per_item(lambda spec, _p: prof.measure_subnet(spec, seed) if head is None
                                   else prof.measure_subnet(spec, seed, head)), key=lambda _spec: 0)
    m = reps.lowest[0]
    med = m.median_ms
    passes = [x for x in reps.medians(0)]
    noise = verify_noise(m.iqr_ms, med, passes)
    out: dict = {"device": dev.name, "measured_latency_ms": round(med, 4), "iqr_ms": round(m.iqr_ms, 4),
                 "runs": m.count, "pass_medians_ms": [round(x, 4) for x in passes],
                 "predicted_latency_ms": round(best.latency_ms, 4),
                 "error_pct": round(100 * (best.latency_ms - med) / med, 3),
                 "measured_over_predicted_pct": round(100 * (med - best.latency_ms) / best.latency_ms, 3),
                 "iqr_rel": round(noise[0], 5), "pass_spread_rel": round(noise[1], 5), "noisy": noise[2],
                 "within_budget": med <= budget_ms,
                 "within_budget_plus_3pct": med <= budget_ms * (1 + VERIFY_TOLERANCE), "top1": None,
                 "precision": precision}
    log(f"verify: {verify_sentence(med, best.latency_ms)}")
    if noise[2]:
        log(f"warning: the verify measurement is noisy ({noise_text(noise)}, above "
            f"{VERIFY_NOISE_REL * 100:g} %): another load on this machine; rerun it on a quiet machine or with more "
            f"--verify-rounds before trusting the figure")
    try:
        if loaded is None:
            raise OfaProfileError(load_error or "")
        model, info = loaded
        if info.classes is None:
            raise OfaProfileError("the supernet names no classes, so its validation set is unknown")
        tr, va = evaluation.caches(info)
        n_val, n_calib = evaluation.n_val, evaluation.n_calib
        log(f"verify: evaluating the chosen subnet with {info.path} ...")
        tm: dict = {}
        if precision == "int8":
            both = evaluate_precisions(model, best.spec, tr, va, ("fp32", "int8"), n_val=n_val, n_calib=n_calib,
                                       timings=tm)
            out.update({"top1": round(both["fp32"], 5), "top1_int8": round(both["int8"], 5),
                        "int8_drop_points": round(100 * (both["fp32"] - both["int8"]), 3)})
        else:
            out["top1"] = round(evaluate_spec(model, best.spec, tr, va, n_val=n_val, n_calib=n_calib, timings=tm), 5)
        out.update({"n_val": tm.get("n_val"), "dataset": (info.manifest or {}).get("dataset") or "validation",
                    "supernet": info.path, "supernet_sha256": info.sha256})
    except (OfaProfileError, SystemExit) as exc:
        out["top1_error"] = str(exc) if str(exc) else "no validation data"
        log(f"verify: top-1 not evaluated: {out['top1_error']}")
    return out


def verify_sentence(measured_ms: float, predicted_ms: float) -> str:
    """The verify error as a user reads it: ``measured 9.390 ms, 88.2 % over the predicted 4.990 ms`` (or
    ``under``)."""
    d = 100 * (measured_ms - predicted_ms) / predicted_ms
    word = "over" if d > 0 else "under"
    return (f"measured {measured_ms:.3f} ms, {abs(d):.1f} % {word} the predicted {predicted_ms:.3f} ms"
            if round(abs(d), 1) else f"measured {measured_ms:.3f} ms, as predicted ({predicted_ms:.3f} ms)")


def verify_noise(iqr_ms: float, median_ms: float, pass_medians_ms: Any) -> tuple[float, float, bool]:
    """``(IQR / median, (slowest - fastest pass median) / fastest, noisy?)`` of a verify measurement: noisy when
    either is above :data:`VERIFY_NOISE_REL`."""
    iqr_rel = iqr_ms / median_ms if median_ms > 0 else float("inf")
    ps = [float(x) for x in pass_medians_ms]
    spread = (max(ps) - min(ps)) / min(ps) if ps and min(ps) > 0 else 0.0
    return iqr_rel, spread, bool(iqr_rel > VERIFY_NOISE_REL or spread > VERIFY_NOISE_REL)


def noise_text(noise: tuple[float, float, bool]) -> str:
    return f"IQR {noise[0] * 100:.1f} % of the median, passes {noise[1] * 100:.1f} % apart"


def source_title(src: Any) -> str:
    """The latency source as a figure names it: the LUT (or adapter) file, and how its figures are used."""
    if src.adapter is not None:
        return f"adapter {Path(src.adapter).name}"
    if src.lut is not None:
        how = "calibrated " if src.description.startswith("calibrated") else ""
        return f"{how}LUT {Path(src.lut.source).name}" + (" (shipped)" if is_shipped(src.lut) else "")
    return src.description


# what `.best.json` keeps of the accuracy predictor's block: what the accuracy is, and of which model and data
_BEST_PREDICTOR_KEYS = ("label", "dataset", "describes", "chosen_by", "model", "space", "trained_resolutions")


def best_record(best: Any, result: dict) -> dict:
    """``.best.json``: the best subnet (readable by ``--arch``) with its sources: the predicted accuracy with the
    predictor that predicted it (dataset, model described), the latency with the LUT (path, sha256, what was timed)
    or adapter, the budget, margin, seed and space."""
    pb = result["accuracy_predictor"]
    return {**best.as_dict(), "budget_ms": result["budget_ms"], "margin_pct": result["margin_pct"],
            "device": result["device"], "space": result["space"], "seed": result["seed"],
            "accuracy_predictor": {k: pb[k] for k in _BEST_PREDICTOR_KEYS if k in pb}
            | {"file": pb.get("file"), "fitted_on": pb.get("source"), "n_train": pb.get("n_train")},
            "latency_source": result["latency_source"], "lut": result["lut"], "adapter": result["adapter"],
            "speed_check_applied": bool((result.get("speed_check") or {}).get("applied")),
            "drift_factor": (result.get("drift") or {}).get("factor")}


@dataclass(frozen=True)
class ParetoRun:
    """What :func:`run_pareto` found and wrote.  ``result`` is the JSON (written to ``result["files"]["json"]``,
    printed by ``--json``); the rest are its unrounded figures and objects, for the text output."""
    result: dict
    best: Any                 # the best subnet (a search.SearchResult)
    frontier: list            # the frontier, the best subnet merged in (SearchResults, ascending latency)
    device: str               # the latency source's device name
    space: str
    margin_pct: float
    search_budget_ms: float
    search_s: float
    frontier_s: float


def run_pareto(request: ParetoRequest, *, log: Log = _quiet, hold: Callable[[Path], Any] | None = None) -> ParetoRun:
    """Search the best subnet under the request's budget and the frontier; write ``pareto-<source>-<budget>ms.json``
    (``<source>``: :attr:`~ofa_profile.latency.LatencySource.file_id`), ``.best.json`` (readable by ``--arch`` of
    predict and export) and, with the output's ``plot``, ``.png`` into its ``out_dir`` (an existing folder).
    ``hold(path)`` is called with the JSON's path once it is known, before any long work (the command holds its
    output lock there).  A shipped LUT used on a device of this machine is speed-checked first when the latency
    request asks (:func:`speed_check_source`)."""
    import random

    import numpy as np

    q, lat, ver, out = request.search, request.latency, request.verify, request.output.out_dir
    budget_ms, seed, device = q.budget_ms, q.seed, lat.device_or_default
    src = resolve_latency_source(device, lat.lut, lat.adapter, calibrated=not lat.no_calibration, classes=lat.classes,
                                 precision=lat.precision)
    # named by the LUT (or adapter) file, so that runs on different LUTs of one device never replace each other's
    # files; reduced to a plain name, so every file lands in `out`
    stem = safe_name(f"pareto-{src.file_id}-{budget_ms:g}ms")
    if hold is not None:
        hold(out / f"{stem}.json")               # one writer of this stem's .json, .best.json and .png
    check, src = speed_check_source(src, device, lat.speed_check and lat.adapter is None, lat.rescale, log=log)
    drift = None
    if ver.refresh:
        drift = refresh_drift(src, lat.adapter, lat.no_calibration, ver.refresh, ver.device or device or src.name,
                              log=log)
        src = src.scaled(drift.factor, f"drift on {len(drift.specs)} subnets re-measured now")
    log(f"latency: {src.description}")
    note = head_note(src.lut) if src.lut is not None and not lat.no_calibration else None
    if note:
        log(f"note: {note}")
    sp = get_space(q.space or src.space)
    if not same_macro_architecture(sp.name, src.space):
        dev = src.lut.device if src.lut is not None else "DEVICE"
        how = shell_command("ofa-profile", "measure", "--device", dev, "--space", sp.name)
        raise OfaProfileError(f"the latency source is for {src.space}; space {sp.name} has other channel widths: "
                              f"use a LUT of {sp.name} (`{how}` writes ./{safe_name(dev)}-{sp.name}.json; then pass "
                              f"--lut that file)")
    pred, pblock, res = _predictor_for(request, sp.name, src, log)
    auto, margin_pct = None, q.margin_pct
    if margin_pct is None:
        auto = src.auto_margin(budget_ms)
        margin_pct = auto.pct
        log(f"margin: {margin_pct:.1f} % (90th percentile of {auto.description})")
    search_budget_ms = budget_ms * (1 - margin_pct / 100)
    t0 = time.perf_counter()
    try:
        best = search(sp, src.fn, pred, search_budget_ms, seed=seed, resolutions=res, effort=q.effort)
    except OfaProfileError as exc:
        if margin_pct:
            raise OfaProfileError(f"{exc} (with the {margin_pct:.1f} % margin the search budget is "
                                  f"{search_budget_ms:.3f} ms of {budget_ms:g} ms)") from None
        raise
    t1 = time.perf_counter()
    front = pareto_search(sp, src.fn, pred, n_budgets=q.n_budgets, seed=seed, resolutions=res, effort="fast")
    t2 = time.perf_counter()
    pts = list(front.frontier) + [best]       # the best subnet joins the frontier it may extend
    keep = pareto_front(np.array([p.latency_ms for p in pts]), np.array([p.accuracy for p in pts]))
    frontier = [pts[i] for i in keep]
    files = {"json": str(out / f"{stem}.json")}
    lut_id = lut_identity(src.lut) if src.lut is not None else None
    result = {"best": best.as_dict(), "frontier": [p.as_dict() for p in frontier], "budget_ms": budget_ms,
              "margin_pct": round(margin_pct, 3), "margin_auto": auto.as_dict() if auto else None,
              "search_budget_ms": round(search_budget_ms, 4), "space": sp.name,
              "device": src.name, "latency_source": src.description, "lut": lut_id,
              "timed": src.lut.timed.to_json() if src.lut is not None else None,
              "timed_label": src.lut.timed.label(src.lut.runtime) if src.lut is not None else None,
              "adapter": src.adapter, "accuracy_predictor": pblock,
              "resolutions": list(res), "seed": seed, "effort": q.effort,
              "drift": drift.as_dict() if drift else None, "speed_check": check,
              "seconds": {"search": round(t1 - t0, 3), "frontier": round(t2 - t1, 3)},
              "n_evaluated_frontier": front.n_evaluated}
    if request.output.plot:
        rng = random.Random(seed)
        cloud = [sp.sample(rng, resolution=list(res)) for _ in range(1000)]
        files["png"] = str(plot_frontier(out / f"{stem}.png", {src.name: frontier},
                                         {src.name: (src.fn(cloud), pred.predict(cloud))}, budget_ms=budget_ms,
                                         best={src.name: best},
                                         title=f"{sp.name}, seed {seed}; latency: {source_title(src)}",
                                         accuracy_label=pblock["label"]))
    if ver.verify:
        result["verify"] = verify_best(best, budget_ms, ver.device or device or src.name, ver.evaluation, seed,
                                       rounds=ver.rounds, log=log,
                                       timed=src.lut.timed if src.lut is not None else None)
        vd = str(result["verify"].get("dataset") or "").lower()
        if result["verify"].get("top1") is not None and vd and vd != pblock["dataset"]:
            log(f"note: the predicted accuracy is {pblock['label']}; the measured top-1 is on {vd}: not comparable "
                f"(without --accuracy/--predictor, --verify predicts with the supernet's own predictor)")
    files["arch"] = str(out / f"{stem}.best.json")  # readable by --arch of predict / export
    result["files"] = files
    write_json_atomic(files["arch"], best_record(best, result))
    write_json_atomic(files["json"], result)
    return ParetoRun(result=result, best=best, frontier=frontier, device=src.name, space=sp.name,
                     margin_pct=margin_pct, search_budget_ms=search_budget_ms, search_s=t1 - t0, frontier_s=t2 - t1)


def _predictor_for(request: ParetoRequest, space: str, src: Any, log: Log) -> tuple[Any, dict, tuple]:
    """The accuracy predictor of a run (``--verify`` without an accuracy source: the supernet's own), its JSON
    block (``file``: the predictor file, or the CSV a predictor was fitted on) and the resolutions to search."""
    acc, ver = request.accuracy, request.verify
    pred = None
    if ver.verify and not acc.given:
        supernet = ver.evaluation.supernet
        pred = verify_predictor(supernet, log=log)
        why = "--verify: the predictor of the supernet it evaluates with"
        pfile = str(Path(supernet).parent / BUNDLED_PREDICTOR) if supernet else str(bundled_predictor_path())
    if pred is None:
        pred, why = resolve_predictor(acc.predictor, acc.accuracy_data, acc.accuracy, space, log=log)
        pfile = str(acc.predictor or acc.accuracy_data or (bundled_predictor_path() if acc.accuracy == "bundled"
                                                           else imagenet_predictor_path()))
    pred.check_space(space)
    precision = accuracy_precision(pred, src.lut.timed.precision if src.lut is not None else "fp32", log=log)
    res = search_resolutions(request.search.resolutions, space, src.resolutions, pred, src.lut, log=log)
    pblock = {**predictor_block(pred, why, res, log=log), "file": pfile, "precision": precision}
    if precision != "fp32":
        pblock["label"] = f"{precision} {pblock['label']}"
    return pred, pblock, res
