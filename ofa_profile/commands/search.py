"""``ofa-profile pareto``: the best subnet under a latency budget and the frontier (:mod:`ofa_profile.pareto`), and
what the commands that score with an accuracy predictor share (:data:`PREDICTOR_OPTIONS`, :func:`resolve_predictor`,
:func:`predictor_block`, :func:`search_resolutions`)."""
from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any, Iterator

import click

from .. import pareto
from ofa_model.evaluate import EvalRequest

from ..cliopts import SEED, SPACE_NAME, check_resolutions, count_range, option_value
from ..pareto import VERIFY_TOLERANCE, OptionError, parse_margin, run_pareto, verify_sentence
from ..pareto_request import (AccuracyRequest, LatencyRequest, OutputRequest, ParetoRequest, SearchRequest,
                              VerifyRequest)
from ..search import parse_budget_ms
from .base import (SPEED_CHECK_OPTIONS, WAIT_OPTION, check_speed_options, checked_out_dir, echo_json,
                   evaluation_options, hold_lock, log, main, pct, space_help, with_options)

__all__ = ["PREDICTOR_OPTIONS", "usage_errors", "resolve_predictor", "predictor_block", "search_resolutions",
           "pareto_cmd"]

PREDICTOR_OPTIONS = [
    click.option("--accuracy", type=click.Choice(["imagenet", "bundled"]), default=None,
                 help="which accuracy to predict: imagenet = ImageNet top-1 of OFA's w1.0 supernet (the shipped "
                      "predictor; the default), bundled = Imagenette top-1 of the bundled supernet"),
    click.option("--predictor", default=None, type=click.Path(dir_okay=False),
                 help="accuracy predictor instead: a JSON of `ofa-profile accuracy-predictor`, or OFA's official "
                      "acc_predictor.pth (w1.2)"),
    click.option("--accuracy-data", default=None, type=click.Path(dir_okay=False),
                 help="accuracy CSV to fit a predictor on instead (cached)"),
]


@contextmanager
def usage_errors() -> Iterator[None]:
    """An :class:`~ofa_profile.pareto.OptionError` raised inside becomes click's usage error (exit 2)."""
    try:
        yield
    except OptionError as exc:
        if exc.param_hint is None:
            raise click.UsageError(exc.message) from None
        raise click.BadParameter(exc.message, param_hint=exc.param_hint) from None


def resolve_predictor(predictor: str | None, accuracy_data: str | None, accuracy: str | None,
                      space: str | None) -> tuple[Any, str]:
    """The accuracy predictor of a command and why it is that one (:func:`ofa_profile.pareto.resolve_predictor`)."""
    with usage_errors():
        return pareto.resolve_predictor(predictor, accuracy_data, accuracy, space, log=log)


def predictor_block(pred: Any, why: str, resolutions: Any) -> dict:
    """``accuracy_predictor`` of a command's JSON (:func:`ofa_profile.pareto.predictor_block`), logging."""
    return pareto.predictor_block(pred, why, resolutions, log=log)


def search_resolutions(given: str | None, space: str, source_res: tuple, predictor: Any, lut: Any = None) -> tuple:
    """The resolutions to search (:func:`ofa_profile.pareto.search_resolutions`), logging."""
    with usage_errors():
        return pareto.search_resolutions(given, space, source_res, predictor, lut, log=log)


@main.command("pareto")
@click.option("--budget", required=True, help="latency budget, e.g. 20ms, 20 (ms) or 0.02s")
@click.option("--device", "device_name", default=None, help="device with a shipped LUT [default: cpu-ort]")
@click.option("--lut", "lut_ref", default=None, help="a LUT file (instead of --device)")
@click.option("--adapter", default=None, type=click.Path(dir_okay=False),
              help="a few-shot latency adapter from `ofa-profile adapt` (instead of a LUT)")
@click.option("--space", type=SPACE_NAME, default=None,
              help=space_help() + " [default: the LUT's space]")
@click.option("--resolutions", default=None,
              help="e.g. 160-192 [default: the LUT's among the supernet's 128..224, inside the accuracy predictor's "
                   "fitted range (`ofa-profile predictor info`)]")
@with_options(PREDICTOR_OPTIONS)
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed of the search (recorded in the output)")
@click.option("--effort", type=click.Choice(["fast", "medium", "full"]), default="full", show_default=True,
              help="search effort for the budget")
@click.option("--n-budgets", type=count_range(1, 1000), default=20, show_default=True,
              help="budgets spread over the frontier search")
@click.option("--margin", default="0", show_default=True,
              help="safety margin: search under budget x (1 - PCT/100); 'auto' takes the 90th percentile of the "
                   "calibrated LUT's under-predictions on the held-out subnets predicted nearest the budget "
                   "(all of them when too few lie near it; the output says which)")
@click.option("--no-calibration", is_flag=True, help="use plain LUT sums even if the LUT is calibrated")
@click.option("--classes", type=count_range(1, 1_000_000), default=None,
              help="classifier head of the subnets to predict (one the LUT holds; `measure --classes N` adds one) "
                   "[default: the LUT's]")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default=None,
              help="search a LUT of int8 (or fp32) blocks: with --device, the LUT `measure --device D --precision "
                   "int8` wrote here; with --lut, refused unless the LUT is of it [default: the LUT's]; --verify "
                   "then measures and evaluates the pick in it")
@click.option("--refresh", type=count_range(0), default=0, show_default=True,
              help="before searching, measure this many of the calibrated LUT's held-out subnets again on the "
                   "device and scale the latency model by how much slower or faster it runs now than at "
                   "calibration (0: off)")
@with_options(SPEED_CHECK_OPTIONS)
@click.option("--out-dir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="folder for pareto-<LUT file's stem>-<budget>ms.json, .best.json and .png (a shipped LUT: "
                   "pareto-<device>-shipped-...; made if its parent exists)")
@click.option("--no-plot", is_flag=True, help="do not write the PNG")
@click.option("--verify", is_flag=True,
              help="measure the chosen subnet on the device and evaluate it with the bundled supernet")
@click.option("--verify-device", default=None,
              help="device to measure on for --verify and --refresh [default: --device, or the LUT's device]")
@click.option("--verify-rounds", type=count_range(1), default=2, show_default=True,
              help="--verify: passes over the chosen subnet; the measured figure is their lowest median, as "
                   "calibration measures")
@evaluation_options(verify=True, supernet_note="; without --accuracy or --predictor, --verify scores with this "
                                               "supernet's own accuracy predictor")
@click.option("--json", "as_json", is_flag=True, help="print {best, frontier, ...} as JSON")
@WAIT_OPTION
def pareto_cmd(budget: str, device_name: str | None, lut_ref: str | None, adapter: str | None, space: str | None,
               resolutions: str | None, accuracy: str | None, predictor: str | None, accuracy_data: str | None,
               seed: int, effort: str, n_budgets: int, margin: str, no_calibration: bool, classes: int | None,
               precision: str | None, refresh: int, rescale: bool, no_speed_check: bool, out_dir: str, no_plot: bool,
               verify: bool, verify_device: str | None, verify_rounds: int, evaluation: EvalRequest,
               as_json: bool) -> None:
    """Most accurate subnet under a latency budget, and the latency/accuracy Pareto frontier.

    Latency comes from a device's LUT (calibrated where it holds a calibration) or a few-shot adapter;
    accuracy from an accuracy predictor: by default the ImageNet top-1 of OFA's own w1.0 supernet (what a
    user deploys; --accuracy bundled: the bundled Imagenette supernet's; --predictor FILE: any other, e.g.
    OFA's official acc_predictor.pth for the w1.2 space).  Every output names what the accuracy is.
    Prints the best subnet (spec, predicted latency and accuracy, MACs, params) and the frontier; writes
    the same as JSON, the best subnet alone (<stem>.best.json, readable by `--arch` of predict and export)
    and a frontier plot to --out-dir.
    A budget nothing meets is one error line naming the fastest latency.  --verify then measures the chosen
    subnet end to end on the device (over any transport) and evaluates its top-1 with the supernet
    (bundled weights, BN recalibrated, on the validation set it was trained for); without --accuracy or
    --predictor it then searches with that supernet's own predictor, so predicted and measured compare.
    A shipped LUT used on a device of this machine is speed-checked first (a few of its blocks timed, once
    per machine; see `ofa-profile lut check`): one warning line on stderr when this machine runs them more
    than 15 % faster or slower than the LUT says; --rescale then scales the latency model by that factor.

    \b
    Example:
      ofa-profile pareto --budget 20ms --device cpu-ort
      ofa-profile pareto --budget 20ms --device cpu-ort --accuracy bundled
      ofa-profile pareto --budget 30ms --lut note10-w1.2.json --predictor ofa-acc-predictor.pth
      ofa-profile pareto --budget 15 --lut my-lut.json --space compofa-mbv3-w1.0 --json
      ofa-profile pareto --budget 8ms --adapter titan.adapter.json --predictor acc.json
      ofa-profile pareto --budget 20ms --device cpu-ort --verify
      ofa-profile pareto --budget 20ms --device cpu-ort --margin auto --verify
      ofa-profile pareto --budget 20ms --device cpu-ort --refresh 5 --margin auto --verify
      ofa-profile pareto --budget 20ms --device cpu-ort --rescale
      ofa-profile pareto --budget 20ms --device cpu-ort --precision int8 --verify
    """
    check_resolutions(resolutions)
    check_speed_options(rescale, no_speed_check)
    with option_value("--budget"):
        budget_ms = parse_budget_ms(budget)
    with usage_errors():
        margin_pct = parse_margin(margin)        # None: auto, from the latency source
    out = checked_out_dir(out_dir)                   # writable, before any work
    with usage_errors():
        request = ParetoRequest(
            SearchRequest(budget_ms, space=space, resolutions=resolutions, seed=seed, effort=effort,
                          n_budgets=n_budgets, margin_pct=margin_pct),
            latency=LatencyRequest(device=device_name, lut=lut_ref, adapter=adapter, no_calibration=no_calibration,
                                   classes=classes, speed_check=not no_speed_check, rescale=rescale,
                                   precision=precision),
            accuracy=AccuracyRequest(accuracy=accuracy, predictor=predictor, accuracy_data=accuracy_data),
            verify=VerifyRequest(verify=verify, refresh=refresh, device=verify_device, rounds=verify_rounds,
                                 evaluation=evaluation),
            output=OutputRequest(out, plot=not no_plot))
        run = run_pareto(request, log=log, hold=hold_lock)
    if as_json:
        echo_json(run.result)
    else:
        _echo_run(run, seed)


def _echo_run(run: Any, seed: int) -> None:
    """The text output of a pareto run: the best subnet, the verify figures, the frontier (sampled to ~25 rows)."""
    result = run.result
    best, frontier, label = run.best, run.frontier, result["accuracy_predictor"]["label"]
    click.echo(f"best under {result['budget_ms']:g} ms on {run.device} ({run.space}, seed {seed}"
               + (f", {run.margin_pct:.1f} % margin: searched under {run.search_budget_ms:.3f} ms"
                  if run.margin_pct else "")
               + "):")
    click.echo(f"  arch      {best.spec.short()}")
    click.echo(f"  spec      {json.dumps(best.spec.canonical().to_ofa())}")
    sc = result.get("speed_check")
    scaled = f", x {sc['factor']:.3f} by the speed check" if sc and sc.get("applied") else ""
    click.echo(f"  latency   {best.latency_ms:.3f} ms (predicted{scaled})")
    if result.get("timed_label"):
        click.echo(f"  timed     {result['timed_label']}")
    click.echo(f"  accuracy  {pct(best.accuracy)} ({label}, predicted)")
    click.echo(f"  MACs      {best.macs / 1e6:.1f} M    params {best.params / 1e6:.2f} M")
    v = result.get("verify")
    if v:
        said = verify_sentence(v["measured_latency_ms"], v["predicted_latency_ms"]).removeprefix("measured ")
        click.echo(f"  measured  {said}, on {v['device']} (IQR {v['iqr_ms']:.3f} ms"
                   f"{', NOISY' if v.get('noisy') else ''}; "
                   f"{'within' if v['within_budget_plus_3pct'] else 'OVER'} budget + {VERIFY_TOLERANCE * 100:g} %)")
        if v.get("top1") is not None:
            click.echo(f"  top-1     {pct(v['top1'])} on {v['n_val']} {v['dataset']} val images "
                       f"(supernet {v['supernet']}, BN recalibrated)")
            if v.get("top1_int8") is not None:
                click.echo(f"  int8      top-1 {pct(v['top1_int8'])} ({v['int8_drop_points']:.2f} points below fp32; "
                           f"ONNX Runtime int8 on the same images; the predicted accuracy is the fp32 one)")
        else:
            click.echo(f"  top-1     not evaluated: {v['top1_error']}")
    step = max(1, len(frontier) // 25)
    shown = frontier[::step]
    sample = (f"; the table shows {len(shown)} of them, one in {step} by latency: all are in "
              f"{result['files']['json']}" if step > 1 else "")
    click.echo(f"frontier: {len(frontier)} subnets (search {run.search_s:.2f} s, frontier {run.frontier_s:.2f} s; "
               f"accuracy: {label}, predicted{sample})")
    click.echo(f"  {'latency_ms':>10}  {'accuracy':>9}  {'MMACs':>7}  {'Mparams':>7}  arch")
    for p in shown:
        click.echo(f"  {p.latency_ms:10.3f}  {pct(p.accuracy):>9}  {p.macs / 1e6:7.1f}  {p.params / 1e6:7.2f}  "
                   f"{p.spec.short()}")
    click.echo("wrote " + ", ".join(result["files"].values()))
