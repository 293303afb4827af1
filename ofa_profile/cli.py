"""The ``ofa-profile`` command line.

Conventions (every command): ``--help`` shows an example; data goes to stdout,
logs and progress to stderr; ``--json`` where the output is data; a user error is
one line on stderr and exit 1 (usage errors exit 2), never a traceback.
Heavy imports happen inside the commands.
"""
from __future__ import annotations

import json
from typing import Any

import click

from .clierrors import CliExitCodes
from .cliopts import (NON_NEGATIVE_INT, POSITIVE_INT, RESOLUTION, SEED, SPACE_NAME, TORCH_DEVICE, FiniteFloatRange,
                      NoEmptyValues, check_resolutions, count_range, option_value)
from .errors import OfaProfileError


class _Command(NoEmptyValues, click.Command):
    """A subcommand: an empty option value (``--out ''``) is a usage error (:class:`NoEmptyValues`)."""


class _Group(CliExitCodes, NoEmptyValues, click.Group):
    """Ends every command the same way (ofa_profile.clierrors): an :class:`OfaProfileError` or OS error is one
    line and exit 1, a usage error one line and exit 2, Ctrl-C/SIGTERM one line and 130/143."""

    command_class = _Command
    group_class = type      # `lut` and `plot` are groups of this class, their commands _Commands


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ofa-profile")
def main() -> None:
    """Profile Once-for-All MobileNetV3 subnets: build latency LUTs, predict, search.

    \b
    Example:
      ofa-profile measure --device cpu-ort --resolutions 160,224
      ofa-profile predict --lut cpu-ort --arch arch.json
    """


def echo_json(obj: Any) -> None:
    """Print strict JSON: never NaN/Infinity (an undefined figure is null)."""
    from .jsonio import dumps_strict
    click.echo(dumps_strict(obj, indent=2, sort_keys=False))


def fail(msg: str) -> None:
    raise OfaProfileError(msg)


def _space_help() -> str:
    from .space import SPACES
    return "search space: " + ", ".join(SPACES)


SPACE_OPTION = click.option("--space", type=SPACE_NAME, default="ofa-mbv3-w1.0", show_default=True,
                            help=_space_help())


@main.command("enumerate")
@SPACE_OPTION
@click.option("--resolutions", default="all", show_default=True, help="e.g. 160,224 or 128-224 or all")
@click.option("--json", "as_json", is_flag=True, help="print a JSON list of {key, resolution, ...}")
def enumerate_cmd(space: str, resolutions: str, as_json: bool) -> None:
    """List every distinct block configuration (LUT key) of a space.

    \b
    Example:
      ofa-profile enumerate --space ofa-mbv3-w1.0 --resolutions 128-224 --json
    """
    from .ops import enumerate_ops
    from .space import get_space, parse_resolutions

    sp = get_space(space)
    with option_value("--resolutions"):
        res = parse_resolutions(resolutions, sp)
    items = enumerate_ops(sp, res)
    if as_json:
        echo_json([{"key": op.key, "resolution": r, "kind": op.kind, "macs": op.macs(), "params": op.params()}
                   for r, op in items])
    else:
        for r, op in items:
            click.echo(f"{r}\t{op.key}")
        click.echo(f"{len(items)} distinct ops over {len(res)} resolution(s) of {sp.name}", err=True)


def _default_out(device_name: str) -> str:
    from .paths import safe_name
    return f"{safe_name(device_name)}.json"


def _store_wait(ctx: click.Context, param: Any, value: bool) -> None:
    ctx.meta["ofa_profile.wait"] = value


WAIT_OPTION = click.option("--wait", is_flag=True, expose_value=False, callback=_store_wait,
                           help="if another process is writing the output, wait for it to finish instead of failing")


def _lock(path: Any, folder: bool = False) -> Any:
    """Hold the output lock of ``path`` (ofa_profile.lock) until this command ends, on every exit path; a second
    writer is refused in one line naming this process, or waits with the command's --wait (WAIT_OPTION)."""
    from .lock import output_lock
    ctx = click.get_current_context()
    return ctx.with_resource(output_lock(path, wait=bool(ctx.meta.get("ofa_profile.wait")), folder=folder))


@main.command("measure")
@click.option("--device", "device_name", required=True, help="device name (see `ofa-profile devices`) or spec file")
@click.option("--space", type=SPACE_NAME, default=None,
              help="space to measure [default: the device spec's]; " + _space_help())
@click.option("--resolutions", default="all", show_default=True, help="e.g. 160,224 or 128-224 or all")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="LUT file to write or extend [default: ./DEVICE.json, ./DEVICE-SPACE.json for another space]")
@click.option("--batch-size", type=POSITIVE_INT, default=None, help="batch size [default: the device's first]")
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed of the block weights and inputs")
@click.option("--fresh", is_flag=True, help="discard a journal or LUT at --out and start over")
@click.option("--limit", type=POSITIVE_INT, default=None, help="stop after N new measurements (rerun to continue)")
@click.option("--passes", type=count_range(1, 1000), default=1, show_default=True,
              help="measure every block N times in passes over the list and keep the lowest median (a noisy, "
                   "shared machine: a block is then only inflated if it was slow in every pass)")
@click.option("--benchmark-binary", default=None, help="phones: path of a benchmark_model binary to push")
@click.option("--serial", default=None, help="phones: adb serial of the device to use")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary")
@WAIT_OPTION
def measure_cmd(device_name: str, space: str | None, resolutions: str, out: str | None, batch_size: int | None, seed: int, fresh: bool,
                limit: int | None, passes: int, benchmark_binary: str | None, serial: str | None, quiet: bool, as_json: bool) -> None:
    """Measure a latency LUT: every block configuration of the space on one device.

    Resumable: a killed run keeps every finished block in DEVICE.json.journal.jsonl and a
    rerun of the same command carries on. An existing LUT at --out is extended. The LUT is locked
    for the whole run: a second writer (measure, calibrate) is refused, or waits with --wait.

    \b
    Example:
      ofa-profile measure --device cpu-ort --resolutions 160,224 --out cpu-ort.json
      ofa-profile measure --device pixel --benchmark-binary ./benchmark_model
      ofa-profile measure --device cpu-ort --passes 3 --fresh
      ofa-profile measure --device cpu-ort --space ofa-proxyless-w1.3 --resolutions 160
    """
    from pathlib import Path

    from .devices import load_device
    from .lut import load_lut
    from .measure import block_noise, make_profiler, measure_lut
    from .space import parse_resolutions

    from .space import get_space

    dev = load_device(device_name)
    sp_name = get_space(space).name if space else dev.space
    with option_value("--resolutions"):
        res = parse_resolutions(resolutions, sp_name)
    stem = dev.lut_name(batch_size) + ("" if sp_name == get_space(dev.space).name else f"-{sp_name}")
    out_path = Path(out or _default_out(stem))
    if not out_path.parent.exists():
        fail(f"output folder {out_path.parent} does not exist; create it or choose another --out")
    _lock(out_path)          # the LUT and its journal: one writer for the whole run
    kw = {}
    if benchmark_binary:
        kw["benchmark_binary"] = benchmark_binary
    if serial:
        kw["serial"] = serial
    prof = make_profiler(dev, batch_size=batch_size, **kw)
    try:
        r = measure_lut(dev, out_path, res, space=sp_name, batch_size=batch_size, seed=seed, progress=not quiet, fresh=fresh,
                        profiler=prof, limit=limit, passes=passes)
    finally:
        prof.close()
    nz = block_noise(load_lut(r.lut_path)) if r.complete else None
    summary = {"lut": str(r.lut_path), "device": dev.name, "measured": r.measured, "reused": r.reused,
               "total": r.total, "passes": passes, "complete": r.complete, "elapsed_s": round(r.elapsed_s, 1),
               "noise": nz.as_dict() if nz else None}
    if nz:
        _log(f"noise: block IQR/median {100 * nz.iqr_rel_median:.1f} % (median over blocks); "
             + (f"{nz.share_at_max_runs:.0%} of blocks ran the {nz.max_runs}-run cap"
                if nz.share_at_max_runs is not None else "run cap not recorded")
             + ("; a noisy machine: --passes 3 and `calibrate --rounds 3` help, a quieter one helps more"
                if nz.noisy else ""))
    if as_json:
        echo_json(summary)
    else:
        state = "complete" if summary["complete"] else "partial (rerun to continue)"
        what = f"{r.measured} measurements ({passes} passes)" if passes > 1 else f"{r.measured} measured"
        click.echo(f"{r.lut_path}: {what}, {r.reused} reused of {r.total} ops, {state}, {r.elapsed_s:.1f} s")


@main.command("calibrate")
@click.option("--device", "device_name", required=True, help="device name or spec file")
@click.option("--lut", "lut_path", type=click.Path(dir_okay=False), default=None,
              help="the device's LUT to calibrate [default: ./DEVICE.json]")
@click.option("--samples", type=count_range(10, 100_000), default=100, show_default=True,
              help="subnets measured to fit")
@click.option("--test-samples", type=NON_NEGATIVE_INT, default=50, show_default=True,
              help="further subnets measured only to report accuracy")
@click.option("--resolutions", default=None, help="resolutions to sample [default: all of the LUT]")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--rounds", type=POSITIVE_INT, default=2, show_default=True,
              help="passes over the subnets, minutes apart; each subnet's figure is the lowest of its medians")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@WAIT_OPTION
def calibrate_cmd(device_name: str, lut_path: str | None, samples: int, test_samples: int, resolutions: str | None,
                  seed: int, rounds: int, quiet: bool, as_json: bool) -> None:
    """Fit LUT-sum -> measured whole-net latency and store it in the LUT.

    Measures SAMPLES + TEST-SAMPLES seeded random subnets end to end, ROUNDS passes each, keeping
    each subnet's lowest median (resumable), fits a ridge regression on the first SAMPLES, and
    reports accuracy on the others.

    \b
    Example:
      ofa-profile calibrate --device cpu-ort --lut cpu-ort.json --samples 100 --test-samples 50
    """
    from pathlib import Path

    from .calibrate import calibrate_device
    from .devices import load_device
    from .measure import make_profiler
    from .space import parse_resolutions

    dev = load_device(device_name)
    path = Path(lut_path or _default_out(dev.lut_name()))
    if not path.exists():
        fail(f"LUT {path} does not exist; run `ofa-profile measure --device {dev.name} --out {path}` first")
    _lock(path)          # the same lock as `measure`: no calibration while the LUT is being extended
    with option_value("--resolutions"):
        res = parse_resolutions(resolutions, dev.space) if resolutions else None
    with make_profiler(dev) as prof:
        rep = calibrate_device(path, prof, samples, test_samples, seed=seed, resolutions=res, progress=not quiet,
                               rounds=rounds)
    rep = {k: v for k, v in rep.items() if k != "samples"}
    if as_json:
        echo_json(rep)
        return
    click.echo(f"calibrated {path} on {samples} subnets (seed {seed}); measured in {rep['measure_s']} s")
    if rep["test_calibrated"]:
        for name in ("test_lut_sum", "test_calibrated"):
            t = rep[name]
            click.echo(f"  {name:16s} n={t['n']}: within 2/3/5/10 %: {t['within_2pct']:.0%} / {t['within_3pct']:.0%} / "
                       f"{t['within_5pct']:.0%} / {t['within_10pct']:.0%}; RMSE {t['rmse_ms']:.3f} ms; "
                       f"MAPE {t['mape_pct']:.2f} %; Spearman "
                       + (f"{t['spearman']:.4f}" if t["spearman"] is not None else "n/a (under 3 subnets)"))


@main.command("devices")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def devices_cmd(as_json: bool) -> None:
    """List the device specs and whether each can be measured from here now.

    \b
    Example:
      ofa-profile devices
      ofa-profile devices --json
    """
    from .devices import DeviceError, device_status, load_device
    from .paths import device_specs_dir

    rows = []
    for p in sorted(device_specs_dir().glob("*.json")):
        try:
            d = load_device(p)
        except DeviceError as exc:
            rows.append({"name": p.stem, "runtime": "?", "transport": "?", "available": False, "reason": str(exc)})
            continue
        try:
            ok, why = device_status(d)
        except Exception as exc:  # a probe must never break the listing
            ok, why = False, f"check failed: {exc}"
        rows.append({"name": d.name, "runtime": d.runtime, "transport": d.transport, "available": ok,
                     "reason": why, "description": d.description})
    if as_json:
        echo_json(rows)
        return
    w = max(len(r["name"]) for r in rows) if rows else 4
    for r in rows:
        mark = "yes" if r["available"] else "no "
        click.echo(f"{r['name']:{w}s}  {r['runtime']:16s} {r['transport']:6s} {mark}  {r['reason']}")


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
    from ofa_model.train import main as train_main

    ctx.exit(train_main(list(ctx.args), prog_name="ofa-profile train"))


def _default_data(kind: str, given: str | None) -> str:
    """--train-data / --val-data, defaulting to ../shared/data/imagenette2-224/{train,val}.tar when present."""
    if given:
        return given
    from .paths import shared_data_dir

    d = shared_data_dir()
    cand = d / "imagenette2-224" / f"{kind}.tar" if d is not None else None
    if cand is None or not cand.exists():
        fail(f"no --{kind}-data given and no Imagenette at ../shared/data; pass --{kind}-data ROOT "
             f"(ROOT/<class>/<image>.jpg, or a .tar of one, with the supernet's classes)")
    return str(cand)


def _supernet_caches(info: Any, train_data: str, val_data: str | None, cache_dir: str | None, size: int = 224):
    from pathlib import Path

    from ofa_model.data import build_cache, check_splits, check_val_classes, default_cache_dir

    def where(src: str, split: str) -> Path:
        return Path(cache_dir) / split if cache_dir else default_cache_dir(src, size)

    tr_list, _ = check_splits(train_data)      # listing only: refuse a wrong dataset before decoding it
    classes = tr_list[0]
    if info.classes is not None and tuple(info.classes) != tuple(classes):
        fail(f"{train_data} has other classes than the supernet ({len(classes)} vs {len(info.classes)} "
             f"{','.join(info.classes[:3])}...); pass the dataset it was trained on")
    if len(classes) != info.n_classes:
        fail(f"{train_data} has {len(classes)} classes, the supernet {info.n_classes}; pass its dataset")
    va_list = check_val_classes(val_data, classes) if val_data else None
    tr = build_cache(train_data, where(train_data, "train"), size, progress=True, listing=tr_list)
    va = build_cache(val_data, where(val_data, "val"), size, classes=tr.classes, progress=True,
                     listing=va_list) if val_data else None
    return tr, va


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
    import torch

    from .cliopts import require_torch_device

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    require_torch_device(name)
    return name


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
@click.option("--fresh", is_flag=True, help="discard rows already in --out or its .partial.csv")
@click.option("--merge", "merge", multiple=True, type=click.Path(dir_okay=False),
              help="instead of evaluating: join these shard CSVs into --out (repeat the option)")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary")
@WAIT_OPTION
def accuracy_dataset_cmd(supernet: str | None, n_subnets: int | None, seed: int, out: str, shard: str | None,
                         resolutions: str, space: str | None, train_data: str | None, val_data: str | None,
                         cache_dir: str | None, n_val: int, n_calib: int, batch_size: int | None, device: str,
                         engine: str,
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
      torchrun --nproc_per_node 4 -m ofa_profile.cli accuracy-dataset --n-subnets 1000 --shard auto \\
          --out acc.csv
    """
    import time
    from pathlib import Path

    from ofa_profile.space import get_space, parse_resolutions

    check_resolutions(resolutions)
    out_path = Path(out)
    if not out_path.parent.exists():
        fail(f"output folder {out_path.parent} does not exist; create it or choose another --out")
    if merge:
        from ofa_model.evaluate import merge_shards

        for p in merge:
            if not Path(p).exists():
                fail(f"shard CSV {p} does not exist")
        _lock(out_path)
        merged = merge_shards(merge, out_path)
        n_rows = sum(1 for _ in open(merged)) - 1
        (echo_json({"out": str(merged), "rows": n_rows}) if as_json else click.echo(f"{merged}: {n_rows} rows"))
        return
    if n_subnets is None or n_subnets < 1:
        raise click.UsageError("--n N (>= 1) is required unless --merge is given")
    import os

    dist_auto = shard == "auto"
    k, n = (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))) if dist_auto \
        else _parse_shard(shard)
    target = out_path.with_name(f"{out_path.stem}.shard{k}of{n}{out_path.suffix}") if dist_auto and n > 1 \
        else out_path
    # one writer per CSV (and its .partial.csv): each torchrun process locks its own shard, rank 0 also --out
    if k == 0 or not dist_auto:
        _lock(out_path)
    if target != out_path:
        _lock(target)
    from ofa_model.bundle import load_supernet
    from ofa_model.evaluate import accuracy_dataset

    from .timing import fix_malloc
    fix_malloc()   # torch eager without it spends as long in the kernel (mmap/munmap) as in the convolutions
    dev = _torch_device(device)
    if dist_auto and device == "auto" and dev == "cuda":
        dev = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    if batch_size is None:
        batch_size = 25 if dev == "cpu" else 100
    model, info = load_supernet(supernet, space=space, device=dev)
    sp = get_space(space or info.space)
    with option_value("--resolutions"):
        res = parse_resolutions(resolutions, sp)
    tr, va = _supernet_caches(info, _default_data("train", train_data), _default_data("val", val_data), cache_dir)
    t0 = time.monotonic()
    if dist_auto and n > 1:
        import datetime

        import torch.distributed as dist

        dist.init_process_group("gloo", timeout=datetime.timedelta(days=2))   # a barrier only: gloo everywhere
    p = accuracy_dataset(model, tr, va, target, n_subnets, seed=seed, resolutions=res, n_val=n_val,
                         n_calib=n_calib, batch_size=batch_size, device=dev, shard=(k, n), space=sp.name,
                         progress=not quiet and k == 0, resume=not fresh, engine=engine)
    if dist_auto and n > 1:
        dist.barrier()
        if k == 0:
            from ofa_model.evaluate import merge_shards

            p = merge_shards([out_path.with_name(f"{out_path.stem}.shard{i}of{n}{out_path.suffix}")
                              for i in range(n)], out_path)
        dist.barrier()
        dist.destroy_process_group()
        if k != 0:
            return
    n_rows = sum(1 for _ in open(p)) - 1
    summary = {"out": str(p), "rows": n_rows, "shard": f"{k}/{n}", "seed": seed, "space": sp.name,
               "supernet": info.path, "supernet_sha256": info.sha256, "verified": info.verified,
               "elapsed_s": round(time.monotonic() - t0, 1)}
    if as_json:
        echo_json(summary)
    else:
        click.echo(f"{p}: {n_rows} rows (shard {k}/{n}, seed {seed}) in {summary['elapsed_s']} s")


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
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary")
@WAIT_OPTION
def export_cmd(arch: str, fmt: str, out: str, supernet: str | None, space: str | None, calib_data: str | None,
               n_calib: int, cache_dir: str | None, no_check: bool, random_weights: bool, seed: int,
               as_json: bool) -> None:
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
    """
    import dataclasses
    from pathlib import Path

    from ofa_profile.space import DEFAULT_SPACE, SubnetSpec

    out_path = Path(out)
    if not out_path.parent.exists():
        fail(f"output folder {out_path.parent} does not exist; create it or choose another --out")
    if random_weights and (supernet or calib_data):
        raise click.UsageError("--random-weights builds the subnet without a supernet: drop --supernet/--calib-data")
    _lock(out_path)
    if random_weights:
        from ofa_model.export import export_random
        spec = SubnetSpec.load(arch, space=space or DEFAULT_SPACE)
        res = export_random(spec, fmt, out_path, check=not no_check, weights_seed=seed)
        summary = {**dataclasses.asdict(res), "supernet": None, "weights": f"random (seed {seed})",
                   "space": spec.space}
        if as_json:
            echo_json(summary)
        else:
            chk = "" if res.max_abs_diff is None else f"; max |diff| vs torch {res.max_abs_diff:.2e}"
            click.echo(f"{res.path}: {fmt} of {spec.space} {res.arch} with random weights (seed {seed}), input "
                       f"{'x'.join(map(str, res.input_shape))}{chk}")
        return
    from ofa_model.bundle import load_supernet
    from ofa_model.export import export_subnet

    model, info = load_supernet(supernet, space=space)
    spec = SubnetSpec.load(arch, space=space or info.space)
    calib = None
    if calib_data:
        import numpy as np
        import torch

        from ofa_model.data import train_batch

        tr, _ = _supernet_caches(info, calib_data, None, cache_dir)
        order = np.random.default_rng(0).permutation(len(tr))[:max(1, n_calib)]
        gen = torch.Generator().manual_seed(0)
        calib = (train_batch(tr, np.sort(order[i:i + 100]), spec.r, gen)[0] for i in range(0, len(order), 100))
    else:
        click.echo("note: no --calib-data: the subnet keeps the supernet's BN statistics (lower accuracy); "
                   "pass the training set to recalibrate them", err=True)
    res = export_subnet(model, spec, fmt, out_path, calib=calib, n_calib=n_calib, check=not no_check,
                        metadata={"supernet_sha256": info.sha256, "classes": list(info.classes or [])})
    summary = {**dataclasses.asdict(res), "supernet": info.path, "supernet_sha256": info.sha256}
    if as_json:
        echo_json(summary)
    else:
        chk = "" if res.max_abs_diff is None else f"; max |diff| vs torch {res.max_abs_diff:.2e}"
        click.echo(f"{res.path}: {fmt} of {res.arch}, input {'x'.join(map(str, res.input_shape))}{chk}")


# -- LUT files: import/export OFA YAML, info, validate; prediction ---------------------------------

@main.group("lut")
def lut_group() -> None:
    """Inspect, validate and convert latency LUT files.

    \b
    Example:
      ofa-profile lut import-ofa ofa-note10-lut-w1.2/ --out note10.json
      ofa-profile lut info note10.json
    """


def _check_out_file(out: str) -> None:
    from pathlib import Path
    p = Path(out)
    if not p.parent.is_dir():
        fail(f"output folder {p.parent} does not exist; create it or choose another --out")
    if p.is_dir():
        fail(f"--out {p} is a folder; give a file path such as {p / 'lut.json'}")


@lut_group.command("import-ofa")
@click.argument("src", type=click.Path())
@click.option("--out", "out", required=True, help="LUT JSON file to write (replaced atomically)")
@click.option("--space", type=SPACE_NAME, default=None, help="space of the tables [default: inferred from the stem width]")
@click.option("--device", "device_name", default="imported", show_default=True, help="device name stored in the LUT")
@click.option("--allow-partial", is_flag=True,
              help="import tables that lack keys of their resolution, as partly covered resolutions (not listed "
                   "in the LUT's resolutions; a prediction there names the missing keys)")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary")
@WAIT_OPTION
def lut_import_ofa_cmd(src: str, out: str, space: str | None, device_name: str, allow_partial: bool,
                       as_json: bool) -> None:
    """Convert OFA's YAML latency tables (a folder of <r>_lookup_table.yaml, or one file) to a LUT.

    OFA stores {count, mean, std}: median_ms is OFA's mean (OFA stores no median) and
    iqr_ms is estimated as 1.349 * std; both are noted in the LUT's provenance.
    A table lacking keys of its resolution is refused, naming them, unless --allow-partial.

    \b
    Example:
      ofa-profile lut import-ofa ../shared/data/reference/ofa-note10-lut-w1.2 --out note10.json --device note10
    """
    from .lut import import_ofa_yaml, save_lut

    _check_out_file(out)
    _lock(out)
    lut = import_ofa_yaml(src, space=space, device=device_name, allow_partial=allow_partial)
    save_lut(lut, out)
    gaps = {r: m for r, m in lut.gaps().items() if r not in lut.resolutions}
    summary = {"lut": out, "space": lut.space, "device": lut.device, "resolutions": list(lut.resolutions),
               "entries": len(lut.entries), "partial_resolutions": {str(r): len(m) for r, m in gaps.items()}}
    if as_json:
        echo_json(summary)
    else:
        part = f"; partly covered: {lut.gaps_text(gaps)}" if gaps else ""
        click.echo(f"{out}: {len(lut.entries)} entries, space {lut.space}, resolutions "
                   f"{','.join(map(str, lut.resolutions)) or 'none complete'}{part}")


@lut_group.command("export-ofa")
@click.argument("lut_ref", metavar="FILE_OR_DEVICE")
@click.option("--out", "out", required=True, help="folder for the <r>_lookup_table.yaml files (made if its parent exists)")
@click.option("--value", type=click.Choice(["median", "mean"]), default="median", show_default=True,
              help="figure written into OFA's 'mean' field")
@click.option("--json", "as_json", is_flag=True, help="print the written files as JSON")
@WAIT_OPTION
def lut_export_ofa_cmd(lut_ref: str, out: str, value: str, as_json: bool) -> None:
    """Write a LUT as OFA YAML tables, one <r>_lookup_table.yaml per complete resolution.

    \b
    Example:
      ofa-profile lut export-ofa cpu-ort.json --out ofa-tables/
    """
    from .lut import export_ofa_yaml, load_lut
    from .paths import check_out_dir

    lut = load_lut(lut_ref)
    d, _ = check_out_dir(out, "--out")      # a folder, made if its parent exists, and writable
    _lock(d, folder=True)
    paths = export_ofa_yaml(lut, d, value=value)
    if as_json:
        echo_json({"files": [str(p) for p in paths], "value": value})
    else:
        for p in paths:
            click.echo(str(p))


def _lut_summary(lut: Any) -> dict[str, Any]:
    from collections.abc import Mapping

    from .measure import timing_summary

    fp = dict(lut.fingerprint)
    keep = ("cpu_model", "machine", "logical_cpus", "num_threads", "os", "python", "runtime_versions", "ofa_profile",
            "hardware", "device", "gpu")
    fp_sum = {k: fp[k] for k in keep if k in fp} or {k: fp[k] for k in list(fp)[:6]}
    cal = None
    if lut.calibration:
        c = lut.calibration
        cal = {k: c[k] for k in ("format", "model", "n_fit", "seed", "alpha") if k in c}
        rep = c.get("report") or {}
        t = rep.get("test_calibrated") if isinstance(rep, Mapping) else None
        if t and isinstance(t, Mapping):
            cal["test"] = {k: t[k] for k in ("n", "mape_pct", "within_5pct", "rmse_ms") if k in t}
    cov = lut.coverage()
    missing = {r: keys for r, keys in cov.items() if r in lut.resolutions and keys}
    partial = {r: len(keys) for r, keys in cov.items() if r not in lut.resolutions}
    return {
        "lut": lut.source, "space": lut.space, "device": lut.device, "runtime": lut.runtime,
        "batch_size": lut.batch_size, "num_threads": lut.num_threads, "schema_version": lut.schema_version,
        "created_utc": lut.created_utc, "resolutions": list(lut.resolutions), "entries": len(lut.entries),
        "resolution_entries": sum(len(m) for m in lut.resolution_entries.values()),
        "source": lut.provenance.get("source"), "tool": lut.provenance.get("tool"), "seed": lut.provenance.get("seed"),
        "fingerprint": fp_sum, "calibration": cal, "timing": timing_summary(lut),
        "coverage": {"complete": not missing,
                     "missing_keys": sum(len(v) for v in missing.values()),
                     "missing_by_resolution": {str(r): v for r, v in missing.items()},
                     "partial_resolutions": {str(r): n for r, n in partial.items()}},
    }


def _plain_json(obj: Any) -> Any:
    from collections.abc import Mapping

    if isinstance(obj, Mapping):
        return {str(k): _plain_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain_json(v) for v in obj]
    return obj


@lut_group.command("info")
@click.argument("lut_ref", metavar="FILE_OR_DEVICE")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def lut_info_cmd(lut_ref: str, as_json: bool) -> None:
    """Describe a LUT: space, device, runtime, resolutions, entries, fingerprint, calibration, coverage.

    \b
    Example:
      ofa-profile lut info cpu-ort
      ofa-profile lut info note10.json --json
    """
    from .lut import load_lut

    s = _lut_summary(load_lut(lut_ref))
    if as_json:
        echo_json(_plain_json(s))
        return
    click.echo(f"lut:          {s['lut']}")
    click.echo(f"space:        {s['space']}")
    click.echo(f"device:       {s['device']} (runtime {s['runtime']}, batch {s['batch_size']}, "
               f"threads {s['num_threads'] if s['num_threads'] is not None else 'unknown'})")
    click.echo(f"resolutions:  {','.join(map(str, s['resolutions'])) or 'none complete'}")
    extra = f" (+{s['resolution_entries']} per-resolution)" if s["resolution_entries"] else ""
    click.echo(f"entries:      {s['entries']}{extra}")
    click.echo(f"created:      {s['created_utc']} by {s['tool']}; source: {s['source']}; seed: {s['seed']}")
    click.echo("fingerprint:  " + "; ".join(f"{k}={v}" for k, v in _plain_json(s["fingerprint"]).items()))
    tm = s["timing"]
    if tm:
        st = tm["settings"] or {}
        rule = (f"{st.get('warmup_runs', '?')} warm-up, {st.get('min_runs', '?')}-{st.get('max_runs', '?')} runs, "
                f"{st.get('max_time_s', '?')} s cap, stop at IQR/median <= {st.get('target_iqr_rel', '?')}"
                + (f" or median +-{st['target_ci_rel']}" if st.get("target_ci_rel") else "")) if st else "not recorded"
        runs = (f"; runs per block: median {tm['runs_per_block_median']:g}"
                + (f", {tm['share_at_max_runs']:.0%} at the cap" if tm.get("share_at_max_runs") is not None else "")
                if "runs_per_block_median" in tm else "")
        click.echo(f"timing:       {rule}{runs}")
    cal = s["calibration"]
    click.echo("calibration:  " + ("none" if not cal else "; ".join(f"{k}={v}" for k, v in _plain_json(cal).items())))
    cov = s["coverage"]
    if cov["complete"]:
        click.echo(f"coverage:     complete for its {len(s['resolutions'])} resolution(s)")
    else:
        first = next(iter(cov["missing_by_resolution"].values()))
        click.echo(f"coverage:     {cov['missing_keys']} key(s) missing at r={','.join(cov['missing_by_resolution'])}, "
                   f"e.g. {first[0]}")
    part = cov["partial_resolutions"]
    if part:
        r0, n0 = next(iter(part.items()))
        click.echo(f"partly:       {len(part)} other resolution(s) partly covered, e.g. r={r0} "
                   f"({n0} key(s) missing; see --json)")


@lut_group.command("validate")
@click.argument("path", type=click.Path(dir_okay=True))
def lut_validate_cmd(path: str) -> None:
    """Check a LUT file (or OFA YAML tables) against the format, schema and space, and its coverage: every
    resolution it lists must have every key (a table every key of its resolution).

    Prints "ok: ..." and exits 0, or prints the one-line error (naming missing keys) and exits 1.

    \b
    Example:
      ofa-profile lut validate cpu-ort.json
    """
    from pathlib import Path

    from .lut import FORMAT, OFA_YAML, detect_format, import_ofa_yaml, load_lut

    p = Path(path)
    fmt = FORMAT if p.is_dir() else detect_format(p)
    if fmt == OFA_YAML or p.is_dir():
        lut = import_ofa_yaml(p)
        click.echo(f"ok: {p}: OFA MobileNetV3 YAML table(s), space {lut.space}, {len(lut.entries)} keys, "
                   f"resolutions {','.join(map(str, lut.resolutions))} (convert with `ofa-profile lut import-ofa`)")
        return
    lut = load_lut(p)
    gaps = lut.gaps()
    listed = {r: m for r, m in gaps.items() if r in lut.resolutions}
    if listed:
        fail(f"LUT {p} lists resolution(s) {','.join(map(str, listed))} but lacks keys there: {lut.gaps_text(listed)}; "
             f"measure them (`ofa-profile measure --device {lut.device} --resolutions "
             f"{','.join(map(str, listed))} --out {p}`) or drop those resolutions from 'resolutions'")
    part = {r: m for r, m in gaps.items() if r not in lut.resolutions}
    click.echo(f"ok: {p}: ofa-profile LUT schema_version {lut.schema_version}, space {lut.space}, device {lut.device}, "
               f"{len(lut.entries)} entries, resolutions {','.join(map(str, lut.resolutions)) or 'none complete'}"
               + (f"; partly covered (not listed): {lut.gaps_text(part)}" if part else ""))


@main.command("predict")
@click.option("--lut", "lut_ref", required=True, help="LUT file, or a device name with a shipped LUT")
@click.option("--arch", "arch_path", required=True, help="subnet: OFA spec JSON {ks, e, d, r} or a net.config")
@click.option("--space", type=SPACE_NAME, default=None, help="space of a plain spec JSON [default: the LUT's space]")
@click.option("--resolution", type=RESOLUTION, default=None, help="input resolution (overrides the arch's r)")
@click.option("--no-calibration", is_flag=True, help="report the plain LUT sum even if the LUT is calibrated")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def predict_cmd(lut_ref: str, arch_path: str, space: str | None, resolution: int | None, no_calibration: bool,
                as_json: bool) -> None:
    """Predict the latency of one subnet from a LUT (calibrated where the LUT holds a calibration).

    \b
    Example:
      ofa-profile predict --lut cpu-ort --arch examples/arch-r160.json
      ofa-profile predict --lut note10.json --arch net.config --json
    """
    from .lut import load_lut
    from .space import SubnetSpec

    lut = load_lut(lut_ref)
    spec = SubnetSpec.load(arch_path, space=space or lut.space, r=resolution)
    lut_sum = lut.lut_sum_ms(spec)
    calibrated = bool(lut.calibration) and not no_calibration
    latency = lut.predict_ms(spec, calibrated=calibrated)
    out = {"latency_ms": round(latency, 6), "lut_sum_ms": round(lut_sum, 6), "calibrated": calibrated,
           "arch": spec.to_ofa(), "resolution": spec.r, "space": spec.space, "lut": lut.source, "device": lut.device}
    if as_json:
        echo_json(out)
    else:
        how = "calibrated" if calibrated else "LUT sum, uncalibrated"
        click.echo(f"{latency:.3f} ms ({how}; LUT sum {lut_sum:.3f} ms) for {spec.short()} on {lut.device} "
                   f"[{lut.source}]")


# -- search, plots, few-shot adaptation, accuracy predictors (ofa_profile.search/plots/adapt/accuracy) -------

def _atomic_json(path: Any, obj: Any) -> None:
    from .atomic import write_json_atomic
    write_json_atomic(path, obj)


def _log(msg: str) -> None:
    click.echo(msg, err=True)


def _out_dir(path: str, option: str = "--out-dir") -> Any:
    """An output folder checked before any work (ofa_profile.paths.check_out_dir: made if its parent exists,
    writable); one this command made is removed again if the command ends without writing into it."""
    import os

    from .paths import check_out_dir
    d, created = check_out_dir(path, option)
    if created:
        def rmdir_if_empty() -> None:
            try:
                os.rmdir(d)
            except OSError:
                pass
        click.get_current_context().call_on_close(rmdir_if_empty)
    return d


def _search_resolutions(given: str | None, space: str, source_res: tuple, predictor: Any, lut: Any = None) -> tuple:
    """--resolutions, else the latency source's resolutions inside the predictor's trained range.  ``lut``
    (the LUT behind the source, if any) lets a refusal name the keys a partly covered resolution lacks."""
    from .space import parse_resolutions

    def gaps(rs: Any) -> str:
        g = lut.gaps([r for r in rs if r in lut.coverage()]) if lut is not None else {}
        return f"; it lacks {lut.gaps_text(g)}" if g else ""

    if given:
        with option_value("--resolutions"):
            res = parse_resolutions(given, space)
        missing = [r for r in res if r not in source_res]
        if missing:
            fail(f"the latency source does not cover resolution(s) {missing} (it covers "
                 f"{','.join(map(str, source_res)) or 'none'}{gaps(missing)}): measure them into the LUT or pick "
                 f"covered ones")
        return res
    res = tuple(source_res)
    if not res:
        fail(f"the latency source covers no resolution completely{gaps(lut.coverage() if lut is not None else ())}: "
             f"measure one into the LUT")
    tr = tuple(getattr(predictor, "trained_resolutions", ()) or ())
    if tr:
        inside = tuple(r for r in res if min(tr) <= r <= max(tr))
        if not inside:
            fail(f"the latency source covers resolutions {res[0]}..{res[-1]} but the accuracy predictor was fitted on "
                 f"{min(tr)}..{max(tr)}; pass --resolutions to extrapolate, or use a predictor fitted there")
        if inside != res:
            _log(f"searching resolutions {inside[0]}..{inside[-1]} (inside the predictor's trained range "
                 f"{min(tr)}..{max(tr)}; --resolutions overrides)")
        res = inside
    return res


def _pct(x: float) -> str:
    return f"{x * 100:.2f} %"


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


def _resolve_predictor(predictor: str | None, accuracy_data: str | None, accuracy: str | None,
                       space: str | None) -> tuple[Any, str]:
    """The accuracy predictor of a command and why it is that one (recorded in the output)."""
    from .accuracy import resolve_accuracy_predictor
    given = [n for n, v in (("--accuracy", accuracy), ("--predictor", predictor), ("--accuracy-data", accuracy_data))
             if v is not None]
    if len(given) > 1:
        raise click.UsageError(f"{' and '.join(given)} are alternatives: pass one")
    why = given[0] if given else "default (--accuracy imagenet)"
    pred = resolve_accuracy_predictor(predictor, accuracy_data, accuracy=accuracy, space=space, log=_log)
    if space is not None:
        pred.check_space(space)
    return pred, why


def _verify_predictor(supernet: str | None) -> Any:
    """pareto --verify without --accuracy/--predictor: the predictor of the supernet it evaluates with (the
    bundled one for the bundled weights); None (saying so) when those weights are absent."""
    from pathlib import Path

    from ofa_model.bundle import bundled_weights_path, sha256_file

    from .accuracy import own_supernet_predictor, predictor_label
    w = Path(supernet) if supernet else bundled_weights_path()
    if not w.is_file():
        _log(f"accuracy predictor: --verify has no supernet weights at {w}, so no predictor of its own: "
             f"the default (--accuracy imagenet)")
        return None
    pred = own_supernet_predictor(w, sha256_file(w))
    if pred is None:
        fail(f"--verify evaluates with {w}, which has no accuracy predictor of its own (an accuracy_predictor.json "
             f"beside it fitted for its sha256, by `ofa-profile accuracy-predictor --supernet {w}`): pass "
             f"--predictor FILE or --accuracy imagenet|bundled")
    _log(f"accuracy predictor: {w.parent / 'accuracy_predictor.json'} ({predictor_label(pred).text}), the "
         f"supernet --verify evaluates with")
    return pred


def _predictor_block(pred: Any, why: str, resolutions: Any) -> dict:
    """``accuracy_predictor`` of a command's JSON: what the accuracy is (dataset, the model it describes), how
    it was chosen, and the resolutions asked outside those it was fitted on (logged as well)."""
    from .accuracy import outside_trained_range, predictor_label
    lab = predictor_label(pred)
    outside = outside_trained_range(pred, resolutions)
    if outside:
        tr = pred.trained_resolutions
        _log(f"accuracy predictor: resolution(s) {','.join(map(str, outside))} lie outside those it was fitted on "
             f"({min(tr)}..{max(tr)}): its figures there are extrapolations")
    return {**dict(pred.info), "dataset": lab.dataset, "describes": lab.describes, "label": lab.text,
            "chosen_by": why, "model": pred.model, "encoding": pred.encoding, "space": pred.space,
            "trained_resolutions": list(pred.trained_resolutions), "outside_trained_range": outside}


def _with_options(options: list) -> Any:
    def deco(f: Any) -> Any:
        for o in reversed(options):
            f = o(f)
        return f
    return deco


@main.command("pareto")
@click.option("--budget", required=True, help="latency budget, e.g. 20ms, 20 (ms) or 0.02s")
@click.option("--device", "device_name", default=None, help="device with a shipped LUT [default: cpu-ort]")
@click.option("--lut", "lut_ref", default=None, help="a LUT file (instead of --device)")
@click.option("--adapter", default=None, type=click.Path(dir_okay=False),
              help="a few-shot latency adapter from `ofa-profile adapt` (instead of a LUT)")
@click.option("--space", type=SPACE_NAME, default=None,
              help="ofa-mbv3-w1.0 or compofa-mbv3-w1.0 [default: the LUT's space]")
@click.option("--resolutions", default=None,
              help="e.g. 160-192 [default: the LUT's, inside the accuracy predictor's trained range]")
@_with_options(PREDICTOR_OPTIONS)
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed of the search (recorded in the output)")
@click.option("--effort", type=click.Choice(["fast", "medium", "full"]), default="full", show_default=True,
              help="search effort for the budget")
@click.option("--n-budgets", type=count_range(1, 1000), default=20, show_default=True,
              help="budgets spread over the frontier search")
@click.option("--margin", default="0", show_default=True,
              help="safety margin: search under budget x (1 - PCT/100); 'auto' takes the 90th percentile of the "
                   "calibrated LUT's under-predictions on its held-out subnets")
@click.option("--no-calibration", is_flag=True, help="use plain LUT sums even if the LUT is calibrated")
@click.option("--refresh", type=count_range(0), default=0, show_default=True,
              help="before searching, measure this many of the calibrated LUT's held-out subnets again on the "
                   "device and scale the latency model by how much slower or faster it runs now than at "
                   "calibration (0: off)")
@click.option("--out-dir", default=".", show_default=True, type=click.Path(file_okay=False),
              help="folder for pareto-<device>-<budget>ms.json and .png (made if its parent exists; the device "
                   "name is reduced to a plain file name)")
@click.option("--no-plot", is_flag=True, help="do not write the PNG")
@click.option("--verify", is_flag=True,
              help="measure the chosen subnet on the device and evaluate it with the bundled supernet")
@click.option("--verify-device", default=None,
              help="device to measure on for --verify and --refresh [default: --device, or the LUT's device]")
@click.option("--verify-rounds", type=count_range(1), default=2, show_default=True,
              help="--verify: passes over the chosen subnet; the measured figure is their lowest median, as "
                   "calibration measures")
@click.option("--supernet", default=None,
              help="--verify: supernet weights [default: the bundled ofa_model/weights]; without --accuracy or "
                   "--predictor, --verify scores with this supernet's own accuracy predictor")
@click.option("--verify-images", type=NON_NEGATIVE_INT, default=1000, show_default=True,
              help="--verify: val images to evaluate on (0: all)")
@click.option("--verify-calib-images", type=POSITIVE_INT, default=2000, show_default=True,
              help="--verify: training images for BN recalibration")
@click.option("--train-data", default=None, help="--verify: training set [default: shared Imagenette]")
@click.option("--val-data", default=None, help="--verify: validation set [default: shared Imagenette]")
@click.option("--cache-dir", default=None, help="--verify: decoded-image cache")
@click.option("--json", "as_json", is_flag=True, help="print {best, frontier, ...} as JSON")
@WAIT_OPTION
def pareto_cmd(budget: str, device_name: str | None, lut_ref: str | None, adapter: str | None, space: str | None,
               resolutions: str | None, accuracy: str | None, predictor: str | None, accuracy_data: str | None,
               seed: int, effort: str,
               n_budgets: int, margin: str, no_calibration: bool, refresh: int, out_dir: str, no_plot: bool, verify: bool,
               verify_device: str | None, verify_rounds: int, supernet: str | None, verify_images: int,
               verify_calib_images: int, train_data: str | None, val_data: str | None, cache_dir: str | None, as_json: bool) -> None:
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
    """
    import random
    import time

    import numpy as np

    from .accuracy import same_macro_architecture
    from .paths import safe_name
    from .search import pareto_front, pareto_search, parse_budget_ms, resolve_latency_source, search
    from .space import get_space

    check_resolutions(resolutions)
    with option_value("--budget"):
        budget_ms = parse_budget_ms(budget)
    margin_pct: float | None = None       # None: auto, from the latency source
    if margin.strip().lower() != "auto":
        try:
            margin_pct = float(margin.strip().rstrip("%"))
        except ValueError:
            raise click.BadParameter(f"{margin!r}; give a percentage such as 5 or 'auto'", param_hint="--margin") \
                from None
        if not 0 <= margin_pct < 100:
            raise click.BadParameter(f"{margin!r}; need 0 <= PCT < 100", param_hint="--margin")
    if not (device_name or lut_ref or adapter):
        device_name = "cpu-ort"
    out = _out_dir(out_dir)                   # writable, before any work
    src = resolve_latency_source(device_name, lut_ref, adapter, calibrated=not no_calibration)
    # the LUT's / adapter's device name is file contents: reduced to a plain name, so every file lands in --out-dir
    stem = safe_name(f"pareto-{src.name}-{budget_ms:g}ms")
    _lock(out / f"{stem}.json")               # one writer of this stem's .json, .best.json and .png
    drift = None
    if refresh:
        drift = _refresh_drift(src, adapter, no_calibration, refresh, verify_device or device_name or src.name)
        src = src.scaled(drift.factor, f"drift on {len(drift.specs)} subnets re-measured now")
    _log(f"latency: {src.description}")
    sp = get_space(space or src.space)
    if not same_macro_architecture(sp.name, src.space):
        fail(f"the latency source is for {src.space}; space {sp.name} has other channel widths: use a LUT of {sp.name}")
    pred = None
    if verify and accuracy is None and predictor is None and accuracy_data is None:
        pred = _verify_predictor(supernet)
        why = "--verify: the predictor of the supernet it evaluates with"
    if pred is None:
        pred, why = _resolve_predictor(predictor, accuracy_data, accuracy, sp.name)
    pred.check_space(sp.name)
    res = _search_resolutions(resolutions, sp.name, src.resolutions, pred, src.lut)
    pblock = _predictor_block(pred, why, res)
    if margin_pct is None:
        margin_pct = src.auto_margin_pct()
        _log(f"margin: {margin_pct:.1f} % (90th percentile of the LUT's under-predictions on its "
             f"{len(src.held_out)} held-out calibration subnets)")
    search_budget_ms = budget_ms * (1 - margin_pct / 100)
    t0 = time.perf_counter()
    try:
        best = search(sp, src.fn, pred, search_budget_ms, seed=seed, resolutions=res, effort=effort)
    except OfaProfileError as exc:
        if margin_pct:
            raise OfaProfileError(f"{exc} (with the {margin_pct:.1f} % margin the search budget is "
                                  f"{search_budget_ms:.3f} ms of {budget_ms:g} ms)") from None
        raise
    t1 = time.perf_counter()
    front = pareto_search(sp, src.fn, pred, n_budgets=n_budgets, seed=seed, resolutions=res, effort="fast")
    t2 = time.perf_counter()
    pts = list(front.frontier) + [best]
    keep = pareto_front(np.array([p.latency_ms for p in pts]), np.array([p.accuracy for p in pts]))
    frontier = [pts[i] for i in keep]
    files = {"json": str(out / f"{stem}.json")}
    result = {"best": best.as_dict(), "frontier": [p.as_dict() for p in frontier], "budget_ms": budget_ms,
              "margin_pct": round(margin_pct, 3), "search_budget_ms": round(search_budget_ms, 4), "space": sp.name, "device": src.name, "latency_source": src.description,
              "accuracy_predictor": pblock,
              "resolutions": list(res), "seed": seed, "effort": effort,
              "drift": drift.as_dict() if drift else None,
              "seconds": {"search": round(t1 - t0, 3), "frontier": round(t2 - t1, 3)},
              "n_evaluated_frontier": front.n_evaluated}
    if not no_plot:
        from .plots import plot_frontier
        rng = random.Random(seed)
        cloud = [sp.sample(rng, resolution=list(res)) for _ in range(1000)]
        files["png"] = str(plot_frontier(out / f"{stem}.png", {src.name: frontier},
                                         {src.name: (src.fn(cloud), pred.predict(cloud))}, budget_ms=budget_ms,
                                         best={src.name: best}, title=f"{sp.name}, seed {seed}",
                                         accuracy_label=pblock["label"]))
    if verify:
        result["verify"] = _verify_best(best, budget_ms, verify_device or device_name or src.name, supernet,
                                        verify_images, verify_calib_images, seed, train_data, val_data, cache_dir,
                                        rounds=verify_rounds)
        vd = str(result["verify"].get("dataset") or "").lower()
        if result["verify"].get("top1") is not None and vd and vd != pblock["dataset"]:
            _log(f"note: the predicted accuracy is {pblock['label']}; the measured top-1 is on {vd}: not comparable "
                 f"(without --accuracy/--predictor, --verify predicts with the supernet's own predictor)")
    files["arch"] = str(out / f"{stem}.best.json")  # readable by --arch of predict / export
    result["files"] = files
    _atomic_json(files["arch"], {**best.as_dict(), "budget_ms": budget_ms, "device": src.name, "seed": seed})
    _atomic_json(files["json"], result)
    if as_json:
        echo_json(result)
        return
    click.echo(f"best under {budget_ms:g} ms on {src.name} ({sp.name}, seed {seed}"
               + (f", {margin_pct:.1f} % margin: searched under {search_budget_ms:.3f} ms" if margin_pct else "")
               + "):")
    click.echo(f"  arch      {best.spec.short()}")
    click.echo(f"  spec      {json.dumps(best.spec.canonical().to_ofa())}")
    click.echo(f"  latency   {best.latency_ms:.3f} ms (predicted)")
    click.echo(f"  accuracy  {_pct(best.accuracy)} ({pblock['label']}, predicted)")
    click.echo(f"  MACs      {best.macs / 1e6:.1f} M    params {best.params / 1e6:.2f} M")
    v = result.get("verify")
    if v:
        click.echo(f"  measured  {v['measured_latency_ms']:.3f} ms on {v['device']} (IQR {v['iqr_ms']:.3f} ms; "
                   f"{v['error_pct']:+.1f} % vs predicted; "
                   f"{'within' if v['within_budget_plus_3pct'] else 'OVER'} budget + 3 %)")
        if v.get("top1") is not None:
            click.echo(f"  top-1     {_pct(v['top1'])} on {v['n_val']} {v['dataset']} val images "
                       f"(supernet {v['supernet']}, BN recalibrated)")
        else:
            click.echo(f"  top-1     not evaluated: {v['top1_error']}")
    click.echo(f"frontier: {len(frontier)} subnets (search {t1 - t0:.2f} s, frontier {t2 - t1:.2f} s; accuracy: "
               f"{pblock['label']}, predicted)")
    click.echo(f"  {'latency_ms':>10}  {'accuracy':>9}  {'MMACs':>7}  {'Mparams':>7}  arch")
    step = max(1, len(frontier) // 25)
    for p in frontier[::step]:
        click.echo(f"  {p.latency_ms:10.3f}  {_pct(p.accuracy):>9}  {p.macs / 1e6:7.1f}  {p.params / 1e6:7.2f}  "
                   f"{p.spec.short()}")
    click.echo("wrote " + ", ".join(files.values()))


def _refresh_drift(src: Any, adapter: str | None, no_calibration: bool, n: int, device_ref: str) -> Any:
    """pareto --refresh: the device's drift since its LUT was calibrated (measure_drift)."""
    from .calibrate import measure_drift
    from .devices import load_device
    from .measure import make_profiler

    if adapter is not None or no_calibration or src.lut is None:
        fail("--refresh needs a calibrated LUT (--device or --lut) without --adapter or --no-calibration: "
             "it re-measures the LUT's held-out calibration subnets")
    lut = src.lut
    if not lut.calibration:  # before resolving any device: an uncalibrated LUT has nothing to re-measure
        fail(f"LUT {lut.source} is not calibrated: --refresh re-measures its held-out calibration subnets; run "
             f"`ofa-profile calibrate --device {lut.device} --lut {lut.source}` first")
    if not src.held_out:
        fail(f"LUT {lut.source}'s calibration holds no held-out subnets, which --refresh re-measures; re-run "
             f"`ofa-profile calibrate --device {lut.device} --lut {lut.source}` with --test-samples > 0")
    dev = load_device(device_ref)
    _log(f"refresh: measuring {min(n, len(src.held_out))} of {lut.source}'s held-out calibration subnets on "
         f"{dev.name} again ...")
    with make_profiler(dev) as prof:
        d = measure_drift(lut, prof, n)
    _log(f"refresh: {dev.name} runs {d.factor:.3f} x its speed at calibration ({d.calibrated_utc}); "
         f"predictions scaled by {d.factor:.3f}")
    return d


def _verify_best(best: Any, budget_ms: float, device_ref: str, supernet: str | None, n_val: int, n_calib: int,
                 seed: int, train_data: str | None, val_data: str | None, cache_dir: str | None,
                 rounds: int = 2) -> dict:
    """pareto --verify: measure ``best`` end to end on ``device_ref`` (the lowest median of ``rounds``
    passes, as calibration measures its subnets); evaluate it with the supernet.  Weights refused as unsafe or
    damaged (:class:`~ofa_model.safeload.RefusedWeightsError`) fail the command, before any device work; other
    reasons not to evaluate (no weights, no validation data) are recorded as ``top1_error``."""
    from ofa_model.bundle import load_supernet
    from ofa_model.safeload import RefusedWeightsError

    from .devices import load_device
    from .measure import make_profiler
    from .replicates import per_item, run_passes

    loaded, load_error = None, None
    try:
        loaded = load_supernet(supernet, space=best.spec.space)
    except RefusedWeightsError:
        raise
    except OfaProfileError as exc:
        load_error = str(exc)
    dev = load_device(device_ref)
    _log(f"verify: measuring the chosen subnet on {dev.name} ...")
    with make_profiler(dev) as prof:
        reps = run_passes([best.spec], max(1, rounds), per_item(lambda spec, _p: prof.measure_subnet(spec, seed)),
                          key=lambda _spec: 0)
    m = reps.lowest[0]
    med = m.median_ms
    out: dict = {"device": dev.name, "measured_latency_ms": round(med, 4), "iqr_ms": round(m.iqr_ms, 4),
                 "runs": m.count, "pass_medians_ms": [round(x, 4) for x in reps.medians(0)],
                 "predicted_latency_ms": round(best.latency_ms, 4),
                 "error_pct": round(100 * (best.latency_ms - med) / med, 3),
                 "within_budget": med <= budget_ms, "within_budget_plus_3pct": med <= budget_ms * 1.03,
                 "top1": None}
    try:
        from ofa_model.evaluate import evaluate_spec

        if loaded is None:
            raise OfaProfileError(load_error or "")
        model, info = loaded
        if info.classes is None:
            raise OfaProfileError("the supernet names no classes, so its validation set is unknown")
        tr, va = _supernet_caches(info, _default_data("train", train_data), _default_data("val", val_data),
                                  cache_dir)
        _log(f"verify: evaluating the chosen subnet with {info.path} ...")
        tm: dict = {}
        out["top1"] = round(evaluate_spec(model, best.spec, tr, va, n_val=n_val, n_calib=n_calib, timings=tm), 5)
        out.update({"n_val": tm.get("n_val"), "dataset": (info.manifest or {}).get("dataset") or "validation",
                    "supernet": info.path, "supernet_sha256": info.sha256})
    except (OfaProfileError, SystemExit) as exc:
        out["top1_error"] = str(exc) if str(exc) else "no validation data"
        _log(f"verify: top-1 not evaluated: {out['top1_error']}")
    return out


@main.group("plot")
def plot_group() -> None:
    """Figures: frontier per device, predicted vs measured, LUT heat maps, rankings across runtimes.

    \b
    Example:
      ofa-profile plot frontier --lut a.json --lut b.json --budget 20ms --out frontier.png
      ofa-profile plot heatmap --lut cpu-ort --lut cpu-tflite --out heat.png
    """


@plot_group.command("frontier")
@click.option("--device", "devices", multiple=True, help="device with a shipped LUT (repeatable)")
@click.option("--lut", "luts", multiple=True, help="LUT file (repeatable)")
@click.option("--budget", default=None, help="draw this budget and the best subnet under it")
@click.option("--space", type=SPACE_NAME, default=None, help="space to search [default: the LUTs']")
@click.option("--resolutions", default=None, help="[default: the LUT's, inside the predictor's trained range]")
@_with_options(PREDICTOR_OPTIONS)
@click.option("--n-random", type=count_range(1, 1_000_000), default=2000, show_default=True,
              help="random subnets in the cloud")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write")
def plot_frontier_cmd(devices: tuple, luts: tuple, budget: str | None, space: str | None, resolutions: str | None,
                      accuracy: str | None, predictor: str | None, accuracy_data: str | None, n_random: int,
                      seed: int, out: str) -> None:
    """The Pareto frontier of each device over a cloud of random subnets.

    \b
    Example:
      ofa-profile plot frontier --device cpu-ort --device cpu-tflite --budget 20ms --out frontier.png
    """
    import random

    from .plots import plot_frontier
    from .search import pareto_search, parse_budget_ms, resolve_latency_source
    from .space import get_space

    refs = [(d, None) for d in devices] + [(None, f) for f in luts]
    if not refs:
        fail("give at least one --device or --lut")
    check_resolutions(resolutions)
    with option_value("--budget"):
        b = parse_budget_ms(budget) if budget is not None else None
    fronts, clouds, best = {}, {}, {}
    pred = None
    for d, f in refs:
        src = resolve_latency_source(d, f)
        sp = get_space(space or src.space)
        if pred is None:
            pred, why = _resolve_predictor(predictor, accuracy_data, accuracy, sp.name)
        pred.check_space(sp.name)
        res = _search_resolutions(resolutions, sp.name, src.resolutions, pred, src.lut)
        label = _predictor_block(pred, why, res)["label"]
        pr = pareto_search(sp, src.fn, pred, seed=seed, resolutions=res, effort="fast")
        rng = random.Random(seed)
        cloud = [sp.sample(rng, resolution=list(res)) for _ in range(n_random)]
        name = src.name if src.name not in fronts else f"{src.name} ({f or d})"
        fronts[name], clouds[name] = pr.frontier, (src.fn(cloud), pred.predict(cloud))
        best[name] = pr.best_under(b) if b is not None else None
    click.echo(str(plot_frontier(out, fronts, clouds, budget_ms=b, best=best, accuracy_label=label)))


@plot_group.command("predicted")
@click.option("--measurements", required=True, type=click.Path(dir_okay=False),
              help="CSV of measured subnets (arch or d/ks/e/r columns + a latency column)")
@click.option("--column", default=None, help="latency column of the CSV [default: its only one]")
@click.option("--lut", "lut_ref", default=None, help="LUT file or device name to predict with")
@click.option("--adapter", default=None, type=click.Path(dir_okay=False), help="few-shot adapter to predict with")
@click.option("--band", type=FiniteFloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="relative band drawn around y = x")
@click.option("--no-calibration", is_flag=True, help="plain LUT sums")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write")
def plot_predicted_cmd(measurements: str, column: str | None, lut_ref: str | None, adapter: str | None, band: float,
                       no_calibration: bool, out: str) -> None:
    """Predicted vs measured latency with the +-5 % band.

    \b
    Example:
      ofa-profile plot predicted --lut cpu-ort --measurements measured.csv --out pvm.png
    """
    from .accuracy import ArchArrays
    from .adapt import read_latency_csv, score_latency
    from .plots import plot_predicted_vs_measured
    from .search import resolve_latency_source

    data = read_latency_csv(measurements)
    y = data.column(column)
    src = resolve_latency_source(None, lut_ref, adapter, calibrated=not no_calibration)
    pred = src.fn.on_arrays(ArchArrays.from_specs(list(data.specs)))
    sc = score_latency(pred, y)
    p = plot_predicted_vs_measured(out, pred, y, band=band,
                                   title=f"{src.name}: {sc.within_5pct * 100:.1f} % within +-5 %, "
                                         f"Spearman {sc.spearman:.3f} (n={sc.n})")
    click.echo(str(p))


@plot_group.command("heatmap")
@click.option("--device", "devices", multiple=True, help="device with a shipped LUT (repeatable)")
@click.option("--lut", "luts", multiple=True, help="LUT file (repeatable)")
@click.option("--resolution", type=RESOLUTION, default=None, help="[default: the largest all LUTs cover]")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write")
def plot_heatmap_cmd(devices: tuple, luts: tuple, resolution: int | None, out: str) -> None:
    """A heat map of each LUT: block latency by stage (first / later block) x kernel x expand.

    \b
    Example:
      ofa-profile plot heatmap --device cpu-ort --device cpu-tflite --resolution 224 --out heat.png
    """
    from .adapt import BlockTable
    from .lut import load_lut
    from .plots import plot_lut_heatmap

    lut_list = [load_lut(x) for x in (*devices, *luts)]
    if not lut_list:
        fail("give at least one --device or --lut")
    common = set.intersection(*(set(lt.resolutions) for lt in lut_list))
    r = resolution if resolution is not None else (max(common) if common else None)
    if r is None or r not in common:
        fail(f"resolution {r} is not covered by every LUT (common: {sorted(common) or 'none'}); pass --resolution")
    tables = {}
    for lt in lut_list:
        name = lt.device if lt.device not in tables else f"{lt.device} ({lt.source})"
        tables[name] = BlockTable.from_lut(lt, [r])
    click.echo(str(plot_lut_heatmap(out, tables, r)))


@plot_group.command("ranks")
@click.option("--device", "devices", multiple=True, help="device with a shipped LUT (repeatable)")
@click.option("--lut", "luts", multiple=True, help="LUT file (repeatable)")
@click.option("--n", "n_subnets", type=count_range(2, 100_000), default=25, show_default=True,
              help="random subnets to rank")
@click.option("--resolution", type=RESOLUTION, default=None, help="[default: random among those all LUTs cover]")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--no-calibration", is_flag=True, help="plain LUT sums")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write")
def plot_ranks_cmd(devices: tuple, luts: tuple, n_subnets: int, resolution: int | None, seed: int,
                   no_calibration: bool, out: str) -> None:
    """The same seeded random subnets ranked by latency on several runtimes (Kendall tau in the title).

    \b
    Example:
      ofa-profile plot ranks --device cpu-ort --device cpu-tflite --device cpu-torch --out ranks.png
    """
    import random

    from .lut import load_lut
    from .plots import plot_rank_comparison
    from .search import lut_latency_fn
    from .space import get_space

    lut_list = [load_lut(x) for x in (*devices, *luts)]
    if len(lut_list) < 2:
        fail("give at least two LUTs (--device / --lut) to compare rankings")
    common = sorted(set.intersection(*(set(lt.resolutions) for lt in lut_list)))
    if not common or (resolution is not None and resolution not in common):
        fail(f"the LUTs share no resolution{'' if resolution is None else f' {resolution}'} "
             f"(common: {common or 'none'})")
    sp = get_space(lut_list[0].space)
    rng = random.Random(seed)
    specs = [sp.sample(rng, resolution=[resolution] if resolution else common) for _ in range(n_subnets)]
    lats = {}
    for lt in lut_list:
        name = lt.device if lt.device not in lats else f"{lt.device} ({lt.source})"
        lats[name] = lut_latency_fn(lt, calibrated=not no_calibration)(specs)
    click.echo(str(plot_rank_comparison(out, lats, labels=[s.short()[:14] for s in specs])))


@main.command("adapt")
@click.option("--device", "device_name", required=True, help="name of the new device (stored in the adapter)")
@click.option("--measurements", required=True, type=click.Path(dir_okay=False),
              help="CSV of measured whole subnets: arch (JSON) or d, ks, e, r columns, and a latency column")
@click.option("--column", default=None, help="latency column [default: the CSV's only latency_ms/median_ms/lat_ms_*]")
@click.option("--lut", "lut_ref", default=None,
              help="a LUT (file or device) whose prediction joins the features as a prior (optional)")
@click.option("--k", "k", type=POSITIVE_INT, default=None,
              help="fit on k seeded random rows and report on the others [default: fit on all, report cross-validated]")
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed of the k-sample")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="adapter JSON to write [default: <device>.adapter.json, the name reduced to a plain file name]")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@WAIT_OPTION
def adapt_cmd(device_name: str, measurements: str, column: str | None, lut_ref: str | None, k: int | None, seed: int,
              out: str | None, as_json: bool) -> None:
    """Few-shot latency model of a device you cannot profile, from a few measured subnets.

    Fits latency = non-negative mix of architecture features (blocks, SE blocks, 1x1 and depthwise MACs,
    expanded activations; optionally a LUT's prediction) with a robust relative-error fit, writes it as
    plain JSON, and reports Spearman and the share within +-5/10 % on subnets it did not see.

    \b
    Example:
      ofa-profile adapt --device titan-rtx-b64 --measurements gpu.csv --column lat_ms_titan_rtx_64 --k 20
      ofa-profile pareto --budget 10ms --adapter titan-rtx-b64.adapter.json
    """
    import dataclasses

    import numpy as np

    from .accuracy import ArchArrays
    from .adapt import evaluate_few_shot, fit_adapter, read_latency_csv, score_latency
    from .lut import load_lut
    from .paths import safe_name
    from .search import lut_latency_fn

    out = out or f"{safe_name(device_name)}.adapter.json"     # --device is free text: no path in the default name
    _lock(out)
    data = read_latency_csv(measurements)
    y = data.column(column)
    a = ArchArrays.from_specs(list(data.specs))
    prior = None
    prior_name = None
    if lut_ref:
        lt = load_lut(lut_ref)
        prior = lut_latency_fn(lt).on_arrays(a)
        prior_name = f"lut:{lt.device}"
    report: dict[str, Any] = {"device": device_name, "measurements": measurements, "column": column or data.columns[0],
                              "n_rows": len(y), "prior": prior_name}
    if k is not None:
        ad, sc = evaluate_few_shot(a, y, k, seed, prior_ms=prior, prior=prior_name, device=device_name)
        report.update({"k": k, "seed": seed, "held_out": sc.as_dict()})
        ad = dataclasses.replace(ad, info={**ad.info, "held_out": sc.as_dict()})
    else:
        n = len(y)
        folds = np.arange(n) % min(n, 10)
        np.random.default_rng(seed).shuffle(folds)
        cv = np.zeros(n)
        for f in np.unique(folds):
            tr, te = folds != f, folds == f
            m = fit_adapter(a.take(tr), y[tr], device_name, prior_ms=None if prior is None else prior[tr])
            cv[te] = m.predict_ms(a.take(te), None if prior is None else prior[te])
        sc = score_latency(cv, y)
        ad = fit_adapter(a, y, device_name, prior_ms=prior, prior=prior_name, seed=seed)
        ad = dataclasses.replace(ad, info={**ad.info, "cross_validated": sc.as_dict()})
        report.update({"cross_validated": sc.as_dict(), "folds": int(min(n, 10))})
    path = ad.save(out)
    report.update({"adapter": str(path), "features": list(ad.feature_names), "coef": list(ad.coef),
                   "intercept_ms": ad.intercept_ms})
    if as_json:
        echo_json(report)
        return
    what = f"held out ({sc.n} subnets not used in the fit)" if k is not None else f"{report['folds']}-fold cross-validated"
    click.echo(f"{device_name}: fitted on {ad.info['n_fit']} measured subnets; {what}:")
    click.echo(f"  Spearman {sc.spearman:.4f}   within +-5 % {sc.within_5pct * 100:.1f} %   "
               f"within +-10 % {sc.within_10pct * 100:.1f} %   mean abs error {sc.mape_pct:.2f} %")
    click.echo("  latency_ms = " + f"{ad.intercept_ms:.4g}" +
               "".join(f" + {c:.4g}*{n}" for n, c in zip(ad.feature_names, ad.coef)))
    click.echo(f"wrote {path}")


@main.command("accuracy-predictor")
@click.option("--data", required=True, type=click.Path(dir_okay=False),
              help="accuracy CSV: d, ks, e, r (or image_size), accuracy [, space]")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="predictor JSON to write")
@click.option("--model", type=click.Choice(["ridge", "gbm", "mlp", "ridge+gbm"]), default="ridge+gbm",
              show_default=True)
@click.option("--encoding", type=click.Choice(["onehot-depth-r", "ofa-onehot"]), default="onehot-depth-r",
              show_default=True)
@click.option("--test-frac", type=FiniteFloatRange(0, 1, max_open=True), default=0.2, show_default=True,
              help="held-out share for the reported figures (0: none); the saved predictor is fitted on all rows")
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed of the split and the fit")
@click.option("--official", default=None, type=click.Path(dir_okay=False),
              help="OFA's acc_predictor.pth: also report it on the same held-out rows")
@click.option("--supernet", default=None,
              help="the supernet weights the CSV was measured with ('bundled': ofa_model/weights); its sha256 "
                   "is recorded, and a bundled predictor is only used with those weights")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@WAIT_OPTION
def accuracy_predictor_cmd(data: str, out: str, model: str, encoding: str, test_frac: float, seed: int,
                           official: str | None, supernet: str | None, as_json: bool) -> None:
    """Fit an accuracy predictor (plain JSON, no pickle) and report Kendall tau, Spearman and RMSE.

    \b
    Example:
      ofa-profile accuracy-predictor --data accuracy.csv --out acc.json
      ofa-profile accuracy-predictor --data ../shared/data/reference/ofa-w1.0-imagenet-accuracy.csv \\
          --out acc.json --official ../shared/data/reference/ofa-acc-predictor.pth
      ofa-profile accuracy-predictor --data ofa_model/weights/accuracy-dataset.csv --supernet bundled \\
          --out ofa_model/weights/accuracy_predictor.json
    """
    import dataclasses
    import time
    from pathlib import Path

    from .accuracy import (evaluate_accuracy_predictor, fit_accuracy_predictor, load_official_predictor,
                           read_accuracy_csv, split_dataset)

    _lock(out)
    supernet_sha = None
    if supernet is not None:
        from ofa_model.bundle import bundled_weights_path, sha256_file
        wpath = bundled_weights_path() if supernet == "bundled" else Path(supernet)
        if not wpath.is_file():
            fail(f"supernet weights {wpath} do not exist; pass the weights file the CSV was measured with")
        supernet_sha = sha256_file(wpath)
    ds = read_accuracy_csv(data)
    report: dict[str, Any] = {"data": data, "n": len(ds), "model": model, "encoding": encoding, "seed": seed,
                              "resolutions": list(ds.resolutions)}
    if test_frac > 0:
        tr, te = split_dataset(ds, test_frac, seed)
        t0 = time.perf_counter()
        held = fit_accuracy_predictor(tr, model=model, encoding=encoding, seed=seed)
        report["fit_seconds"] = round(time.perf_counter() - t0, 2)
        report["held_out"] = {"n_train": len(tr), **evaluate_accuracy_predictor(held, te).as_dict()}
        if official:
            off = load_official_predictor(official, space=te.specs[0].space)
            report["official_held_out"] = evaluate_accuracy_predictor(off, te).as_dict()
    import hashlib

    pred = fit_accuracy_predictor(ds, model=model, encoding=encoding, seed=seed)
    extra: dict[str, Any] = {"source_sha256": hashlib.sha256(Path(data).read_bytes()).hexdigest()}
    if supernet_sha:
        from .accuracy import supernet_label
        extra["supernet_sha256"] = supernet_sha
        extra.update(supernet_label(wpath, supernet_sha))     # dataset, describes, label: what it predicts
    if "held_out" in report:
        extra.update({"held_out": report["held_out"], "test_frac": test_frac})
    pred = dataclasses.replace(pred, info={**pred.info, **extra})
    report["out"] = str(pred.save(out))
    if as_json:
        echo_json(report)
        return
    click.echo(f"{model} on {encoding}: {len(ds)} subnets, resolutions {','.join(map(str, ds.resolutions))}")
    for key, label in (("held_out", "ours"), ("official_held_out", "OFA official")):
        if key in report:
            h = report[key]
            click.echo(f"  {label:13s} held-out n={h['n']}: Kendall tau {h['kendall_tau']:.4f}  Spearman "
                       f"{h['spearman']:.4f}  RMSE {h['rmse']:.5f}  tau within resolution {h['kendall_tau_within_r']:.4f}")
    click.echo(f"wrote {report['out']} (fitted on all {len(ds)} rows)")


@main.command("predict-accuracy")
@click.option("--arch", "archs", multiple=True, type=click.Path(dir_okay=False),
              help="subnet: a spec JSON {ks, e, d, r} (pareto's .best.json too) or an OFA net.config (repeatable)")
@click.option("--csv", "csv_path", default=None, type=click.Path(dir_okay=False),
              help="CSV of subnets: an 'arch' JSON column, or d, ks, e (JSON lists) and r (or image_size) columns")
@click.option("--space", type=SPACE_NAME, default=None,
              help="space of specs that name none [default: ofa-mbv3-w1.0; a net.config names its own]")
@click.option("--resolution", type=RESOLUTION, default=None, help="score every subnet at this resolution instead")
@_with_options(PREDICTOR_OPTIONS)
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
    import dataclasses

    from .accuracy import read_specs_csv
    from .space import DEFAULT_SPACE, SubnetSpec, get_space

    if not archs and csv_path is None:
        raise click.UsageError("give the subnets: --arch FILE (repeatable) or --csv FILE")
    specs = [SubnetSpec.load(a, space=space or DEFAULT_SPACE, r=resolution) for a in archs]
    if csv_path is not None:
        specs += read_specs_csv(csv_path, space=space)
    if resolution is not None:
        specs = [dataclasses.replace(s, r=resolution) for s in specs]
    names = sorted({s.space for s in specs})
    if len(names) > 1:
        fail(f"the subnets belong to several spaces ({', '.join(names)}); score one space at a time")
    sp = get_space(names[0])
    pred, why = _resolve_predictor(predictor, accuracy_data, accuracy, sp.name)
    block = _predictor_block(pred, why, [s.r for s in specs])      # logs resolutions outside the fitted ones
    outside = set(block["outside_trained_range"])
    pname = str(predictor) if predictor else (f"fitted on {accuracy_data}" if accuracy_data else
                                              "bundled accuracy_predictor.json" if accuracy == "bundled" else
                                              "ofa-mbv3-w1.0-imagenet.json")
    acc = pred.predict(specs)
    rows = [{"arch": s.short(), "spec": s.canonical().to_ofa(), "space": s.space, "r": s.r,
             "accuracy": round(float(a), 6), "dataset": block["dataset"], "describes": block["describes"],
             "predictor": pname, "within_trained_range": s.r not in outside} for s, a in zip(specs, acc)]
    if as_json:
        echo_json(rows)
        return
    click.echo(f"accuracy: {block['label']}, predicted by {pname}")
    click.echo(f"  {'accuracy':>9}  arch")
    for r in rows:
        click.echo(f"  {_pct(r['accuracy']):>9}  {r['arch']}" + ("" if r["within_trained_range"] else
                                                                  "  (outside the fitted resolutions)"))


@main.command("evaluate")
@click.option("--arch", "arch", required=True, type=click.Path(dir_okay=False),
              help="subnet: a spec JSON {ks, e, d, r} (pareto's .best.json too) or an OFA net.config")
@click.option("--supernet", default=None, help="supernet weights [default: the bundled ofa_model/weights]")
@click.option("--resolution", type=RESOLUTION, default=None, help="evaluate at this resolution (overrides the arch's r)")
@click.option("--val-images", type=NON_NEGATIVE_INT, default=1000, show_default=True,
              help="fixed seeded val subset (0: all), as pareto --verify and the card")
@click.option("--calib-images", type=POSITIVE_INT, default=2000, show_default=True,
              help="training images for BN recalibration")
@click.option("--train-data", default=None, help="training set for BN recalibration [default: shared Imagenette]")
@click.option("--val-data", default=None, help="validation set [default: shared Imagenette]")
@click.option("--cache-dir", default=None, help="decoded-image cache [default: ~/.cache/ofa-profile/images]")
@click.option("--device", type=TORCH_DEVICE, default="auto", show_default=True, help="torch device: auto, cpu, cuda")
@click.option("--json", "as_json", is_flag=True, help="print {top1, n_val, supernet, ...} as JSON")
def evaluate_cmd(arch: str, supernet: str | None, resolution: int | None, val_images: int, calib_images: int,
                 train_data: str | None, val_data: str | None, cache_dir: str | None, device: str,
                 as_json: bool) -> None:
    """Measured top-1 of one subnet with a supernet (BN recalibrated, as the model card and accuracy-dataset).

    The subnet is extracted from the supernet, its BatchNorm statistics recalibrated on --calib-images
    seeded training images, and its top-1 measured on a fixed seeded subset of --val-images val images
    (the same subset as pareto --verify, the card and accuracy-dataset).  This is a measurement on the
    supernet's own dataset (Imagenette for the bundled weights), not ImageNet.

    \b
    Example:
      ofa-profile evaluate --arch examples/arch-r160.json
      ofa-profile evaluate --arch pareto-cpu-ort-20ms.best.json --val-images 0 --json
    """
    import time

    from ofa_model.bundle import load_supernet
    from ofa_model.evaluate import evaluate_spec

    from .space import SubnetSpec

    model, info = load_supernet(supernet, device=_torch_device(device))
    spec = SubnetSpec.load(arch, space=info.space, r=resolution)
    if info.classes is None:
        fail(f"the supernet {info.path} names no classes, so its validation set is unknown; pass weights with a "
             f"manifest (a bundle) or a run's supernet.pt")
    tr, va = _supernet_caches(info, _default_data("train", train_data), _default_data("val", val_data), cache_dir)
    _log(f"evaluate: {spec.short()} with {info.path} ...")
    tm: dict = {}
    t0 = time.perf_counter()
    top1 = evaluate_spec(model, spec, tr, va, n_val=val_images, n_calib=calib_images, timings=tm)
    out = {"top1": round(float(top1), 5), "n_val": tm.get("n_val"), "n_calib": calib_images,
           "dataset": (info.manifest or {}).get("dataset") or "validation", "arch": spec.short(),
           "spec": spec.canonical().to_ofa(), "space": spec.space, "r": spec.r, "supernet": info.path,
           "supernet_sha256": info.sha256, "seconds": round(time.perf_counter() - t0, 2)}
    if as_json:
        echo_json(out)
        return
    click.echo(f"top-1 {_pct(out['top1'])} on {out['n_val']} {out['dataset']} val images (measured; BN recalibrated "
               f"on {calib_images} training images) for {spec.short()} with supernet {info.path} "
               f"(sha256 {info.sha256[:12]}...)")

if __name__ == "__main__":  # pragma: no cover
    main()   # _Group.main: the exit codes and signal handling of ofa_profile.clierrors
