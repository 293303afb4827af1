"""The commands around the supernet: ``train`` (``python -m ofa_model.train``), ``accuracy-dataset`` (measured
top-1 of seeded random subnets, sharded or under torchrun), ``export`` (a subnet as ONNX or TFLite) and
``evaluate`` (the measured top-1 of one subnet).  Each parses its options, calls one domain function
(:mod:`ofa_model.train`, :mod:`ofa_model.accuracy_run`, :mod:`ofa_model.export`, :mod:`ofa_model.evaluate`) and
prints."""
from __future__ import annotations

from pathlib import Path

import click

from ofa_model.accuracy_run import ShardPlan, merge_accuracy_shards, run_accuracy_dataset
from ofa_model.evaluate import EvalRequest, evaluate_arch
from ofa_model.export import export_arch
from ofa_model.train import main as train_main

from ..cliopts import (NON_NEGATIVE_INT, POSITIVE_INT, RESOLUTION, SEED, SPACE_NAME, TORCH_DEVICE, check_resolutions,
                       count_range, require_torch_device)
from .base import WAIT_OPTION, echo_json, evaluation_options, fail, hold_lock, log, main, pct


@main.command("train", context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
              add_help_option=False)
@click.pass_context
def train_cmd(ctx: click.Context) -> None:
    """Train the elastic supernet (progressive shrinking or CompOFA); same as `python -m ofa_model.train`.

    Every argument goes to ofa_model.train: `ofa-profile train --help` lists them. Rerun the
    same command to resume a killed run; `torchrun ... -m ofa_model.train` for several GPUs/nodes.

    \b
    Example:
      ofa-profile train --train-data ../shared/data/imagenette2-224/train.tar \\
          --val-data ../shared/data/imagenette2-224/val.tar --out runs/ps --epoch-scale 0.25
      ofa-profile train --help
    """

    ctx.exit(train_main(list(ctx.args), prog_name="ofa-profile train"))


def _parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return (0, 1)
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise click.BadParameter(f"{text!r}; write k/n, e.g. 0/4", param_hint="--shard") from None
    if not (n >= 1 and 0 <= k < n):
        raise click.BadParameter(f"{text!r}; need 0 <= k < n", param_hint="--shard")
    return k, n


def _torch_device(name: str) -> str:
    """``--device``: ``auto`` (cuda if present), else a device this machine has (one line and exit 1 if not)."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    require_torch_device(name)
    return name


def _check_out_parent(out_path: Path) -> None:
    if not out_path.parent.exists():
        fail(f"output folder {out_path.parent} does not exist; create it or choose another --out")


@main.command("accuracy-dataset")
@click.option("--supernet", default=None, help="supernet weights [default: the bundled ofa_model/weights]")
@click.option("--n", "--n-subnets", "n_subnets", type=count_range(1, 1_000_000), default=None,
              help="number of seeded random subnets (rows); under torchrun write --n-subnets")
@click.option("--seed", type=SEED, default=0, show_default=True, help="subnet i is drawn from Random(f'{seed}-{i}')")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="CSV to write (atomically)")
@click.option("--shard", default=None,
              help="evaluate only rows i % n == k (k/n; join with --merge), or 'auto' under torchrun: one shard "
                   "per process, merged into --out by rank 0")
@click.option("--resolutions", default="all", show_default=True, help="resolutions to sample, e.g. 128-224")
@click.option("--space", type=SPACE_NAME, default=None, help="space to sample [default: the supernet's]")
@click.option("--train-data", default=None, help="training set for BN recalibration [default: shared Imagenette]")
@click.option("--val-data", default=None, help="validation set [default: shared Imagenette]")
@click.option("--cache-dir", default=None, help="decoded-image cache [default: ~/.cache/ofa-profile/images]")
@click.option("--n-val", type=NON_NEGATIVE_INT, default=1000, show_default=True, help="fixed seeded val subset (0: all)")
@click.option("--n-calib", type=POSITIVE_INT, default=2000, show_default=True, help="BN recalibration images per subnet")
@click.option("--batch-size", type=POSITIVE_INT, default=None,
              help="images per BN-recalibration batch [default: 25 on CPU (twice the img/s of 100 on one core), "
                   "100 on CUDA]")
@click.option("--device", type=TORCH_DEVICE, default="auto", show_default=True,
              help="cpu, cuda, cuda:1 ... (auto: cuda if present)")
@click.option("--engine", type=click.Choice(["auto", "torch", "onnxruntime"]), default="auto", show_default=True,
              help="runs the val pass (auto: onnxruntime on CPU, ~3x faster than torch eager; BN recalibration "
                   "always runs in torch)")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True,
              help="int8: each subnet's int8 top-1 (as evaluate --precision int8: ONNX Runtime on the CPU) with its "
                   "fp32 top-1 beside it (column accuracy_fp32); the CSV records its precision")
@click.option("--int8-calib-images", type=POSITIVE_INT, default=None,
              help="--precision int8: seeded training images the activation ranges come from [default: 100]")
@click.option("--fresh", is_flag=True, help="discard rows already in --out or its .partial.csv")
@click.option("--merge", "merge", multiple=True, type=click.Path(dir_okay=False),
              help="instead of evaluating: join these shard CSVs into --out (repeat the option)")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary")
@WAIT_OPTION
def accuracy_dataset_cmd(supernet: str | None, n_subnets: int | None, seed: int, out: str, shard: str | None,
                         resolutions: str, space: str | None, train_data: str | None, val_data: str | None,
                         cache_dir: str | None, n_val: int, n_calib: int, batch_size: int | None, device: str,
                         engine: str, precision: str, int8_calib_images: int | None,
                         fresh: bool, merge: tuple[str, ...], quiet: bool, as_json: bool) -> None:
    """Evaluate N seeded random subnets of a supernet and write an accuracy CSV.

    Each row: subnet (space, r, d, ks, e), top-1 on a fixed val subset after BN recalibration,
    MACs and params. Resumable: rows already in --out or OUT.partial.csv are kept. Shards
    (--shard k/n, one process or GPU each) are joined with --merge; under torchrun, --shard auto
    does both (shard files OUT.shardKofN.csv are kept for resuming).

    \b
    Example:
      ofa-profile accuracy-dataset --n 1000 --seed 0 --out acc.csv
      ofa-profile accuracy-dataset --n 1000 --shard 1/4 --device cuda:1 --out acc-1.csv
      ofa-profile accuracy-dataset --merge acc-0.csv --merge acc-1.csv --out acc.csv
      ofa-profile accuracy-dataset --n 100 --precision int8 --resolutions 160 --n-val 300 --out acc-int8.csv
      torchrun --nproc_per_node 4 -m ofa_profile.cli accuracy-dataset --n-subnets 1000 --shard auto \\
          --out acc.csv
    """

    check_resolutions(resolutions)
    out_path = Path(out)
    _check_out_parent(out_path)
    if merge:
        for p in merge:
            if not Path(p).exists():
                fail(f"shard CSV {p} does not exist")
        hold_lock(out_path)
        merged = merge_accuracy_shards(merge, out_path)
        if as_json:
            echo_json(merged)
        else:
            click.echo(f"{merged['out']}: {merged['rows']} rows")
        return
    if n_subnets is None or n_subnets < 1:
        raise click.UsageError("--n N (>= 1) is required unless --merge is given")
    if int8_calib_images is not None and precision != "int8":
        raise click.UsageError("--int8-calib-images applies to --precision int8")
    if precision == "int8" and (engine == "torch" or device not in ("auto", "cpu")):
        raise click.UsageError("--precision int8 evaluates in ONNX Runtime on the CPU: drop --engine torch / --device")

    plan = ShardPlan.of(out_path, None if shard == "auto" else _parse_shard(shard))
    for p in plan.writes:       # one writer per CSV (and its .partial.csv)
        hold_lock(p)
    summary = run_accuracy_dataset(plan, n_subnets, device=_torch_device(device), device_auto=device == "auto",
                                   supernet=supernet, space=space, seed=seed, resolutions=resolutions,
                                   train_data=train_data, val_data=val_data, cache_dir=cache_dir, n_val=n_val,
                                   n_calib=n_calib, batch_size=batch_size, engine=engine, progress=not quiet,
                                   resume=not fresh, precision=precision, n_int8_calib=int8_calib_images)
    if summary is None:         # a torchrun rank other than 0: rank 0 reports the merged CSV
        return
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"{summary['out']}: {summary['rows']} rows of {precision} top-1 (shard {summary['shard']}, "
                   f"seed {seed}) in {summary['elapsed_s']} s")


@main.command("export")
@click.option("--arch", "arch", required=True, type=click.Path(dir_okay=False),
              help="subnet spec JSON ({ks, e, d, r}) or an OFA net.config")
@click.option("--format", "fmt", type=click.Choice(["onnx", "tflite"]), required=True)
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="file to write (atomically)")
@click.option("--supernet", default=None, help="supernet weights [default: the bundled ofa_model/weights]")
@click.option("--space", type=SPACE_NAME, default=None,
              help="space of the arch file when it names none [default: the supernet's]")
@click.option("--calib-data", default=None,
              help="training set to recalibrate BN on (recommended; without it the supernet's statistics are used)")
@click.option("--n-calib", type=POSITIVE_INT, default=2000, show_default=True)
@click.option("--cache-dir", default=None, help="decoded-image cache for --calib-data")
@click.option("--no-check", is_flag=True, help="do not run the written file once to compare it with torch")
@click.option("--random-weights", is_flag=True,
              help="seeded random weights instead of a supernet's (the shapes for latency work; any family, e.g. "
                   "an ofa-proxyless-w1.3 net.config)")
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed of --random-weights")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True,
              help="int8: quantized statically (ONNX: QDQ, float in/out; TFLite: int8 in/out), calibrated on seeded "
                   "training images (--calib-data, else the shared Imagenette; random images with --random-weights)")
@click.option("--int8-calib-images", type=POSITIVE_INT, default=None,
              help="training images the int8 activation ranges come from [default: 100]")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary")
@WAIT_OPTION
def export_cmd(arch: str, fmt: str, out: str, supernet: str | None, space: str | None, calib_data: str | None,
               n_calib: int, cache_dir: str | None, no_check: bool, random_weights: bool, seed: int, precision: str,
               int8_calib_images: int | None, as_json: bool) -> None:
    """Write a subnet with the supernet's weights as ONNX or TFLite.

    ONNX takes NCHW float input; TFLite (the project's own writer) takes NHWC. The written file
    is run once and compared with torch unless --no-check.

    \b
    Example:
      ofa-profile export --arch examples/arch-r160.json --format onnx --out net.onnx
      ofa-profile export --arch arch.json --format tflite --out net.tflite \\
          --calib-data ../shared/data/imagenette2-224/train.tar
      ofa-profile export --arch ofa-specialized/cpu_lat-10ms_top1-71.1_finetune-25/net.config \\
          --format onnx --out cpu10.onnx --random-weights
      ofa-profile export --arch examples/arch-r160.json --format tflite --precision int8 --out net-int8.tflite
    """

    out_path = Path(out)
    _check_out_parent(out_path)
    if random_weights and (supernet or calib_data):
        raise click.UsageError("--random-weights builds the subnet without a supernet: drop --supernet/--calib-data")
    if int8_calib_images is not None and precision != "int8":
        raise click.UsageError("--int8-calib-images applies to --precision int8")
    hold_lock(out_path)
    s = export_arch(arch, fmt, out_path, supernet=supernet, space=space, calib_data=calib_data, n_calib=n_calib,
                    cache_dir=cache_dir, check=not no_check, random_weights=random_weights, weights_seed=seed,
                    log=log, precision=precision, n_int8_calib=int8_calib_images)
    if as_json:
        echo_json(s)
        return
    chk = "" if s["max_abs_diff"] is None else f"; max |diff| vs torch {s['max_abs_diff']:.2e}"
    if s["precision"] == "int8" and s["max_rel_diff"] is not None:
        chk += f" ({100 * s['max_rel_diff']:.1f} % of the largest logit: int8 quantization error)"
    shape = "x".join(map(str, s["input_shape"]))
    if s["precision"] == "int8":
        fmt = f"int8 {fmt} (input {'int8: scale and zero point in its tensor' if fmt == 'tflite' else 'float32'})"
    if random_weights:
        click.echo(f"{s['path']}: {fmt} of {s['space']} {s['arch']} with random weights (seed {seed}), input "
                   f"{shape}{chk}")
    else:
        click.echo(f"{s['path']}: {fmt} of {s['arch']}, input {shape}{chk}")


@main.command("evaluate")
@click.option("--arch", "arch", required=True, type=click.Path(dir_okay=False),
              help="subnet: a spec JSON {ks, e, d, r} (pareto's .best.json too) or an OFA net.config")
@click.option("--resolution", type=RESOLUTION, default=None, help="evaluate at this resolution (overrides the arch's r)")
@evaluation_options()
@click.option("--device", type=TORCH_DEVICE, default="auto", show_default=True, help="torch device: auto, cpu, cuda")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True,
              help="int8: the subnet quantized for ONNX Runtime (as export --precision int8) and run on the CPU, "
                   "its fp32 top-1 measured beside it on the same images")
@click.option("--int8-calib-images", type=POSITIVE_INT, default=100, show_default=True,
              help="seeded training images the int8 activation ranges come from")
@click.option("--json", "as_json", is_flag=True, help="print {top1, n_val, supernet, ...} as JSON")
def evaluate_cmd(arch: str, resolution: int | None, evaluation: EvalRequest, device: str, precision: str,
                 int8_calib_images: int, as_json: bool) -> None:
    """Measured top-1 of one subnet with a supernet (BN recalibrated, as the model card and accuracy-dataset).

    The subnet is extracted from the supernet, its BatchNorm statistics recalibrated on --calib-images
    seeded training images, and its top-1 measured on a fixed seeded subset of --val-images val images
    (the same subset as pareto --verify, the card and accuracy-dataset).  This is a measurement on the
    supernet's own dataset (Imagenette for the bundled weights), not ImageNet.

    \b
    Example:
      ofa-profile evaluate --arch examples/arch-r160.json
      ofa-profile evaluate --arch pareto-cpu-ort-20ms.best.json --val-images 0 --json
      ofa-profile evaluate --arch examples/arch-r160.json --precision int8
    """

    calib_images = evaluation.n_calib
    out = evaluate_arch(arch, evaluation, device=_torch_device(device), resolution=resolution, log=log,
                        precision=precision, n_int8_calib=int8_calib_images)
    if as_json:
        echo_json(out)
        return
    if precision == "int8":
        click.echo(f"top-1 int8 {pct(out['top1'])}, fp32 {pct(out['top1_fp32'])} (drop "
                   f"{out['int8_drop_points']:.2f} points) on {out['n_val']} {out['dataset']} val images (measured "
                   f"in ONNX Runtime on the CPU; int8 calibrated on {int8_calib_images} seeded training images, BN "
                   f"recalibrated on {calib_images}) for {out['arch']} with supernet {out['supernet']} "
                   f"(sha256 {out['supernet_sha256'][:12]}...)")
        return
    click.echo(f"top-1 {pct(out['top1'])} on {out['n_val']} {out['dataset']} val images (measured; BN recalibrated "
               f"on {calib_images} training images) for {out['arch']} with supernet {out['supernet']} "
               f"(sha256 {out['supernet_sha256'][:12]}...)")
