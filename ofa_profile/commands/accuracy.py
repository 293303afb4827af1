"""The commands of the learned models: ``adapt`` (a few-shot latency model of a device from a few measured subnets),
``accuracy-predictor`` (fit and score an accuracy predictor) and ``predict-accuracy`` (the predicted top-1 of given
subnets).  Each parses its options, calls the domain (:mod:`ofa_profile.adapt`, :mod:`ofa_profile.accuracy`) and
prints."""
from __future__ import annotations

import math
from pathlib import Path

import click

from ..accuracy import (ENCODINGS, describe_predictor, fit_with_held_out, load_subnets, predicted_rows,
                        predictor_label, predictor_name)
from ..adapt import adapt_device, read_latency_csv
from ..cliopts import POSITIVE_INT, RESOLUTION, SEED, SPACE_NAME, FiniteFloatRange, count_range
from ..latency import lut_latency_fn
from ..latency_source import fit_source_model, load_source, shipped_source
from ..lut import load_lut
from ..paths import safe_name
from ..space import RUN_RESOLUTIONS
from .base import WAIT_OPTION, echo_json, hold_lock, main, pct, with_options
from .search import PREDICTOR_OPTIONS, predictor_block, resolve_predictor


@main.command("adapt")
@click.option("--device", "device_name", required=True, help="name of the new device (stored in the adapter)")
@click.option("--measurements", required=True, type=click.Path(dir_okay=False),
              help="CSV of measured whole subnets: arch (JSON) or d, ks, e, r columns, and a latency column")
@click.option("--column", default=None, help="latency column [default: the CSV's only latency_ms/median_ms/lat_ms_*]")
@click.option("--lut", "lut_ref", default=None,
              help="a LUT (file or device) whose prediction joins the features as a prior (optional)")
@click.option("--source", "source_ref", default="auto", show_default=True,
              help="latency model of other devices to transfer from: 'gpu' (shipped: two GPUs, batch 1/32/64), a "
                   "JSON file from `adapt-source`, 'none', or 'auto' (the shipped one where it fits the space, kept "
                   "only where it cross-validates better than the architecture features)")
@click.option("--k", "k", type=POSITIVE_INT, default=None,
              help="fit on k seeded random rows and report on the others [default: fit on all, report cross-validated]")
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed of the k-sample")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="adapter JSON to write [default: <device>.adapter.json, the name reduced to a plain file name]")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@WAIT_OPTION
def adapt_cmd(device_name: str, measurements: str, column: str | None, lut_ref: str | None, source_ref: str,
              k: int | None, seed: int, out: str | None, as_json: bool) -> None:
    """Few-shot latency model of a device you cannot profile, from a few measured subnets.

    Fits latency = non-negative mix of what other devices' latency looks like (a source model learned on
    them, --source) and/or architecture features (blocks, SE blocks, 1x1 and depthwise MACs, expanded
    activations; optionally a LUT's prediction) with a robust relative-error fit, picking the mix that
    cross-validates best on the measured subnets; writes it as plain JSON, and reports Spearman and the
    share within +-5/10 % on subnets it did not see.

    \b
    Example:
      ofa-profile adapt --device titan-rtx-b64 --measurements gpu.csv --column lat_ms_titan_rtx_64 --k 20
      ofa-profile pareto --budget 10ms --adapter titan-rtx-b64.adapter.json
    """

    out = out or f"{safe_name(device_name)}.adapter.json"     # --device is free text: no path in the default name
    hold_lock(out)

    def lut_prior():        # the LUT's prediction as a feature, loaded once the measurements are read
        lt = load_lut(lut_ref)
        return f"lut:{lt.device}", lut_latency_fn(lt).on_arrays

    source, choose = None, False
    if source_ref == "auto":
        source, choose = (None, False) if lut_ref else (shipped_source(), True)
    elif source_ref != "none":
        source = load_source(source_ref)
    run = adapt_device(measurements, device_name, out, column=column, k=k, seed=seed,
                       prior=lut_prior if lut_ref else None, source=source, choose=choose)
    report, ad, sc = run.report, run.adapter, run.score
    if as_json:
        echo_json(report)
        return
    what = f"held out ({sc.n} subnets not used in the fit)" if k is not None else f"{report['folds']}-fold cross-validated"
    model = {"transfer": f"the source model's columns ({report['source']})",
             "combined": f"the source model's columns ({report['source']}) and architecture features",
             "features": "architecture features"}[ad.info.get("model", "features")]
    click.echo(f"{device_name}: fitted on {ad.info['n_fit']} measured subnets with {model}; {what}:")
    click.echo(f"  Spearman {sc.spearman:.4f}   within +-5 % {sc.within_5pct * 100:.1f} %   "
               f"within +-10 % {sc.within_10pct * 100:.1f} %   mean abs error {sc.mape_pct:.2f} %")
    click.echo("  latency_ms = " + f"{ad.intercept_ms:.4g}" +
               "".join(f" + {c:.4g}*{n}" for n, c in zip(ad.feature_names, ad.coef)))
    click.echo(f"wrote {report['adapter']}")


@main.command("adapt-source")
@click.option("--measurements", required=True, type=click.Path(dir_okay=False),
              help="CSV of measured whole subnets of several devices: arch or d, ks, e, r columns and latency columns "
                   "named lat_ms_<device>_<batch> (one column per device and batch size)")
@click.option("--column", "columns", multiple=True, help="latency column to use (repeat; default: all)")
@click.option("--exclude-device", "exclude", multiple=True, help="leave this device's columns out (repeat)")
@click.option("--name", default=None, help="name stored in the model [default: the devices joined by '+']")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="source model JSON to write")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@WAIT_OPTION
def adapt_source_cmd(measurements: str, columns: tuple[str, ...], exclude: tuple[str, ...], name: str | None, out: str,
                     as_json: bool) -> None:
    """Fit a latency source model on devices you have measured, for `adapt --source FILE`.

    One additive model per batch size (a per-block constant plus a per-block part growing with the pixels, per
    stage, kernel and expand ratio), pooled over the devices; each device's fit is cross-validated (5 folds).
    The shipped source `gpu` was made this way from the two GPUs of HELP's measurements.

    \b
    Example:
      ofa-profile adapt-source --measurements ../shared/data/reference/help-ofa-gpu-latency.csv --out gpu.json
      ofa-profile adapt --device my-gpu --measurements mine.csv --source gpu.json --k 10
    """
    hold_lock(out)
    data = read_latency_csv(measurements)
    model = fit_source_model(data, columns=list(columns) or None, exclude_devices=exclude, name=name)
    model.save(out)
    summary = {"out": out, "name": model.info["name"], "space": model.space,
               "columns": [{"name": c.name, "batch_size": c.batch_size, "devices": list(c.devices),
                            "cross_validated": dict(c.info["cross_validated"])} for c in model.columns]}
    if as_json:
        echo_json(summary)
        return
    for c in summary["columns"]:
        cv = "; ".join(f"{d}: Spearman {v['spearman']:.3f}, within +-10 % {v['within_10pct']:.1%}"
                       for d, v in c["cross_validated"].items())
        click.echo(f"{c['name']}: {cv}")
    click.echo(f"wrote {out}")


def _resolution_weights(values: tuple[str, ...]) -> dict[int, float]:
    """``--resolution-weight 224=4`` (repeatable) as ``{224: 4.0}``; a malformed one is a usage error."""
    out: dict[int, float] = {}
    for v in values:
        r, sep, w = v.partition("=")
        try:
            ri, wf = int(r), float(w)
        except ValueError:
            ri, wf = -1, float("nan")
        if not sep or ri not in RUN_RESOLUTIONS or not (math.isfinite(wf) and wf > 0):
            raise click.BadParameter(f"{v!r}; write R=W, e.g. 224=4 (a resolution and a positive weight)",
                                     param_hint="'--resolution-weight'")
        out[ri] = wf
    return out


@main.command("accuracy-predictor")
@click.option("--data", "data", required=True, multiple=True, type=click.Path(dir_okay=False),
              help="accuracy CSV: d, ks, e, r (or image_size), accuracy [, space]; repeat to fit on several files")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="predictor JSON to write")
@click.option("--model", type=click.Choice(["ridge", "gbm", "mlp", "ridge+gbm"]), default="ridge+gbm",
              show_default=True)
@click.option("--encoding", type=click.Choice(list(ENCODINGS)), default="onehot-depth-r", show_default=True,
              help="features: onehot-depth-r (resolution as a quadratic), onehot-depth-rspline (an offset per "
                   "resolution 128/160/192/224, interpolated between), ofa-onehot (OFA's)")
@click.option("--gbm-trees", type=count_range(1, 5000), default=None,
              help="boosted trees [default: 100 on ridge residuals, 300 alone]")
@click.option("--gbm-learning-rate", type=FiniteFloatRange(0, 1, min_open=True), default=None,
              help="[default: 0.09 on ridge residuals, 0.03 alone]")
@click.option("--gbm-depth", type=count_range(1, 12), default=3, show_default=True, help="depth of each tree")
@click.option("--resolution-weight", "resolution_weight", multiple=True,
              help="R=W: the rows measured at resolution R weigh W in the fit (others 1); repeatable")
@click.option("--test-frac", type=FiniteFloatRange(0, 1, max_open=True), default=0.2, show_default=True,
              help="held-out share for the reported figures (0: none); the saved predictor is fitted on all rows")
@click.option("--cv-folds", type=count_range(0, 100), default=0, show_default=True,
              help="also report K-fold cross-validation grouped by subnet (no subnet in both a training and its "
                   "test fold), per resolution; recorded in the predictor (0: none)")
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed of the split and the fit")
@click.option("--official", default=None, type=click.Path(dir_okay=False),
              help="OFA's acc_predictor.pth: also report it on the same held-out rows")
@click.option("--supernet", default=None,
              help="the supernet weights the CSV was measured with ('bundled': ofa_model/weights); its sha256 "
                   "is recorded, and a bundled predictor is only used with those weights")
@click.option("--dataset", type=click.Choice(["imagenet"]), default=None,
              help="what the accuracies are: imagenet = ImageNet top-1 of OFA's w1.0 supernet (OFA's reference "
                   "files); recorded as the predictor's label")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@WAIT_OPTION
def accuracy_predictor_cmd(data: tuple[str, ...], out: str, model: str, encoding: str, gbm_trees: int | None,
                           gbm_learning_rate: float | None, gbm_depth: int, resolution_weight: tuple[str, ...],
                           test_frac: float, cv_folds: int, seed: int, official: str | None, supernet: str | None,
                           dataset: str | None, as_json: bool) -> None:
    """Fit an accuracy predictor (plain JSON, no pickle) and report Kendall tau, Spearman and RMSE.

    \b
    Example:
      ofa-profile accuracy-predictor --data accuracy.csv --out acc.json
      ofa-profile accuracy-predictor --data ../shared/data/reference/ofa-w1.0-imagenet-accuracy.csv \\
          --out acc.json --official ../shared/data/reference/ofa-acc-predictor.pth
      ofa-profile accuracy-predictor --data ofa_model/weights/accuracy-dataset.csv --supernet bundled \\
          --out ofa_model/weights/accuracy_predictor.json

    The shipped ImageNet predictor (ofa_profile/predictors/ofa-mbv3-w1.0-imagenet.json) is the command
    recorded in its info ("made_by"; docs/accuracy.md), run on OFA's two reference CSVs.
    """
    if cv_folds == 1:
        raise click.BadParameter("1; give 0 (none) or at least 2 folds", param_hint="'--cv-folds'")
    weights = _resolution_weights(resolution_weight)
    hold_lock(out)
    made_by = " ".join(["ofa-profile accuracy-predictor"] + [f"--data {Path(d).name}" for d in data]
                       + [f"--model {model}", f"--encoding {encoding}"]
                       + ([f"--gbm-trees {gbm_trees}"] if gbm_trees else [])
                       + ([f"--gbm-learning-rate {gbm_learning_rate:g}"] if gbm_learning_rate else [])
                       + ([f"--gbm-depth {gbm_depth}"] if gbm_depth != 3 else [])
                       + [f"--resolution-weight {r}={w:g}" for r, w in sorted(weights.items())]
                       + [f"--test-frac {test_frac:g}", f"--cv-folds {cv_folds}", f"--seed {seed}"]
                       + ([f"--dataset {dataset}"] if dataset else []))
    fit_options: dict = {"gbm_trees": gbm_trees, "gbm_learning_rate": gbm_learning_rate, "gbm_max_depth": gbm_depth,
                         "resolution_weights": weights or None}
    pred, report = fit_with_held_out(list(data), model, encoding, test_frac=test_frac, seed=seed, official=official,
                                     supernet=supernet, cv_folds=cv_folds, dataset=dataset, made_by=made_by,
                                     **fit_options)
    report["out"] = str(pred.save(out))
    if as_json:
        echo_json(report)
        return
    n = report["n"]
    click.echo(f"{model} on {encoding}: {n} subnets, resolutions {','.join(map(str, report['resolutions']))}")
    for key, label in (("held_out", "ours"), ("official_held_out", "OFA official")):
        if key in report:
            h = report[key]
            click.echo(f"  {label:13s} held-out n={h['n']}: Kendall tau {h['kendall_tau']:.4f}  Spearman "
                       f"{h['spearman']:.4f}  RMSE {h['rmse']:.5f}  tau within resolution {h['kendall_tau_within_r']:.4f}")
    if "cross_validated" in report:
        cv = report["cross_validated"]
        click.echo(f"  {cv['folds']}-fold cross-validation grouped by subnet:")
        for name, b in cv["bands"].items():
            click.echo(f"    r={name:9s} n={b['n']:5d}  Kendall tau {b['kendall_tau']:.4f}  (within resolution "
                       f"{b['kendall_tau_within_r']:.4f})  MAE {b['mae_pt']:.3f} pt  bias {b['bias_pt']:+.3f} pt")
    click.echo(f"wrote {report['out']} (fitted on all {n} rows; {predictor_label(pred).fitted})")


@main.command("predict-accuracy")
@click.option("--arch", "archs", multiple=True, type=click.Path(dir_okay=False),
              help="subnet: a spec JSON {ks, e, d, r} (pareto's .best.json too) or an OFA net.config (repeatable)")
@click.option("--csv", "csv_path", default=None, type=click.Path(dir_okay=False),
              help="CSV of subnets: an 'arch' JSON column, or d, ks, e (JSON lists) and r (or image_size) columns")
@click.option("--space", type=SPACE_NAME, default=None,
              help="space of specs that name none [default: ofa-mbv3-w1.0; a net.config names its own]")
@click.option("--resolution", type=RESOLUTION, default=None, help="score every subnet at this resolution instead")
@with_options(PREDICTOR_OPTIONS)
@click.option("--json", "as_json", is_flag=True, help="print a JSON list, one object per subnet")
def predict_accuracy_cmd(archs: tuple, csv_path: str | None, space: str | None, resolution: int | None,
                         accuracy: str | None, predictor: str | None, accuracy_data: str | None, as_json: bool) -> None:
    """Predicted top-1 of given subnets, and what that accuracy is.

    The predictor is the one pareto uses: by default the ImageNet top-1 of OFA's own w1.0 supernet
    (ofa_profile/predictors/ofa-mbv3-w1.0-imagenet.json); --accuracy bundled: the Imagenette top-1 of the
    bundled supernet; --predictor FILE: any predictor JSON or OFA's official acc_predictor.pth (w1.2).
    One row per subnet: the predicted accuracy (a fraction in JSON), the dataset, the predictor, and
    whether its resolution lies inside those the predictor was fitted on (outside: also a stderr line).

    \b
    Example:
      ofa-profile predict-accuracy --arch examples/arch-r160.json
      ofa-profile predict-accuracy --arch net.config --accuracy bundled --json
      ofa-profile predict-accuracy --csv subnets.csv --predictor ofa-acc-predictor.pth --space ofa-mbv3-w1.2
    """

    if not archs and csv_path is None:
        raise click.UsageError("give the subnets: --arch FILE (repeatable) or --csv FILE")
    specs, sp_name = load_subnets(archs, csv_path, space=space, resolution=resolution)
    pred, why = resolve_predictor(predictor, accuracy_data, accuracy, sp_name)
    block = predictor_block(pred, why, [s.r for s in specs])      # logs resolutions outside the fitted ones
    pname = predictor_name(predictor, accuracy_data, accuracy)
    rows = predicted_rows(specs, pred, block, pname)
    if as_json:
        echo_json(rows)
        return
    click.echo(f"accuracy: {block['label']}, predicted by {pname}")
    click.echo(f"  {'accuracy':>9}  arch")
    for r in rows:
        click.echo(f"  {pct(r['accuracy']):>9}  {r['arch']}" + ("" if r["within_trained_range"] else
                                                                  "  (outside the fitted resolutions)"))


@main.group("predictor")
def predictor_group() -> None:
    """Inspect accuracy predictors.

    \b
    Example:
      ofa-profile predictor info
      ofa-profile predictor info ofa_model/weights/accuracy_predictor.json --json
    """


@predictor_group.command("info")
@click.argument("predictor", required=False, default="imagenet")
@click.option("--json", "as_json", is_flag=True, help="print the description as JSON")
def predictor_info_cmd(predictor: str, as_json: bool) -> None:
    """Describe an accuracy predictor: what its accuracy is, the resolutions it was fitted on (measured, and
    interpolated between), its model, data and recorded figures.

    PREDICTOR: 'imagenet' (the shipped default), 'bundled', or a predictor file (our JSON or OFA's .pth).

    \b
    Example:
      ofa-profile predictor info
      ofa-profile predictor info bundled --json
    """
    d = describe_predictor(predictor)
    if as_json:
        echo_json(d)
        return
    click.echo(f"{d['name']}: {d['label']}")
    click.echo(f"  space       {d['space']}  (model {d['model']}, encoding {d['encoding']})")
    click.echo(f"  fitted on   {d['fitted'] or 'no recorded resolutions'}")
    if d["fitted_range"]:
        lo, hi = d["fitted_range"]
        click.echo(f"  range       r={lo}..{hi}: pareto and plot frontier search inside it by default; a subnet "
                   f"outside it is flagged as an extrapolation")
    if d.get("source"):
        click.echo(f"  data        {d['source']} ({d.get('n_train', '?')} rows)")
    for name, b in (d.get("cross_validated") or {}).get("bands", {}).items():
        click.echo(f"  grouped CV  r={name:9s} n={b['n']:5d}  Kendall tau {b['kendall_tau']:.4f}  MAE "
                   f"{b['mae_pt']:.3f} pt  bias {b['bias_pt']:+.3f} pt")
    if d.get("made_by"):
        click.echo(f"  made by     {d['made_by']}")
