"""The ``ofa-profile`` command line.

Conventions (every command): ``--help`` shows an example; data goes to stdout,
logs and progress to stderr; ``--json`` where the output is data; a user error is
one line on stderr and exit 1 (usage errors exit 2), never a traceback.
Heavy imports happen inside the commands.
"""
from __future__ import annotations

import json
import sys
from typing import Any

import click

from .errors import OfaProfileError


class _Group(click.Group):
    """Turns :class:`OfaProfileError` (and a few OS errors) into one line on stderr, exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OfaProfileError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            click.echo(f"error: {exc.strerror or exc}: {exc.filename}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted; finished work is saved and a rerun resumes it", err=True)
            ctx.exit(130)


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
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


def fail(msg: str) -> None:
    raise OfaProfileError(msg)


SPACE_OPTION = click.option("--space", default="ofa-mbv3-w1.0", show_default=True,
                            help="search space: ofa-mbv3-w1.0, ofa-mbv3-w1.2 or compofa-mbv3-w1.0")


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
    return f"{device_name}.json"


@main.command("measure")
@click.option("--device", "device_name", required=True, help="device name (see `ofa-profile devices`) or spec file")
@click.option("--resolutions", default="all", show_default=True, help="e.g. 160,224 or 128-224 or all")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="LUT file to write or extend [default: ./DEVICE.json]")
@click.option("--batch-size", type=int, default=None, help="batch size [default: the device's first]")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the block weights and inputs")
@click.option("--fresh", is_flag=True, help="discard a journal or LUT at --out and start over")
@click.option("--limit", type=int, default=None, help="stop after N newly measured ops (rerun to continue)")
@click.option("--benchmark-binary", default=None, help="phones: path of a benchmark_model binary to push")
@click.option("--serial", default=None, help="phones: adb serial of the device to use")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary")
def measure_cmd(device_name: str, resolutions: str, out: str | None, batch_size: int | None, seed: int, fresh: bool,
                limit: int | None, benchmark_binary: str | None, serial: str | None, quiet: bool, as_json: bool) -> None:
    """Measure a latency LUT: every block configuration of the space on one device.

    Resumable: a killed run keeps every finished block in DEVICE.json.journal.jsonl and a
    rerun of the same command carries on. An existing LUT at --out is extended.

    \b
    Example:
      ofa-profile measure --device cpu-ort --resolutions 160,224 --out cpu-ort.json
      ofa-profile measure --device pixel --benchmark-binary ./benchmark_model
    """
    from pathlib import Path

    from .devices import load_device
    from .measure import make_profiler, measure_lut
    from .space import parse_resolutions

    dev = load_device(device_name)
    res = parse_resolutions(resolutions, dev.space)
    out_path = Path(out or _default_out(dev.lut_name(batch_size)))
    if not out_path.parent.exists():
        fail(f"output folder {out_path.parent} does not exist; create it or choose another --out")
    kw = {}
    if benchmark_binary:
        kw["benchmark_binary"] = benchmark_binary
    if serial:
        kw["serial"] = serial
    prof = make_profiler(dev, batch_size=batch_size, **kw)
    try:
        r = measure_lut(dev, out_path, res, batch_size=batch_size, seed=seed, progress=not quiet, fresh=fresh,
                        profiler=prof, limit=limit)
    finally:
        prof.close()
    summary = {"lut": str(r.lut_path), "device": dev.name, "measured": r.measured, "reused": r.reused,
               "total": r.total, "complete": r.measured + r.reused == r.total, "elapsed_s": round(r.elapsed_s, 1)}
    if as_json:
        echo_json(summary)
    else:
        state = "complete" if summary["complete"] else "partial (rerun to continue)"
        click.echo(f"{r.lut_path}: {r.measured} measured, {r.reused} reused of {r.total} ops, {state}, "
                   f"{r.elapsed_s:.1f} s")


@main.command("calibrate")
@click.option("--device", "device_name", required=True, help="device name or spec file")
@click.option("--lut", "lut_path", type=click.Path(dir_okay=False), default=None,
              help="the device's LUT to calibrate [default: ./DEVICE.json]")
@click.option("--samples", type=int, default=100, show_default=True, help="subnets measured to fit")
@click.option("--test-samples", type=int, default=50, show_default=True,
              help="further subnets measured only to report accuracy")
@click.option("--resolutions", default=None, help="resolutions to sample [default: all of the LUT]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def calibrate_cmd(device_name: str, lut_path: str | None, samples: int, test_samples: int, resolutions: str | None,
                  seed: int, quiet: bool, as_json: bool) -> None:
    """Fit LUT-sum -> measured whole-net latency and store it in the LUT.

    Measures SAMPLES + TEST-SAMPLES seeded random subnets end to end (resumable), fits a
    ridge regression on the first SAMPLES, and reports accuracy on the others.

    \b
    Example:
      ofa-profile calibrate --device cpu-ort --lut cpu-ort.json --samples 100 --test-samples 50
    """
    from pathlib import Path

    from .calibrate import calibrate_device
    from .devices import load_device
    from .measure import make_profiler
    from .space import parse_resolutions

    if samples < 10 or test_samples < 0:
        raise click.UsageError("--samples must be >= 10 and --test-samples >= 0")
    dev = load_device(device_name)
    path = Path(lut_path or _default_out(dev.lut_name()))
    if not path.exists():
        fail(f"LUT {path} does not exist; run `ofa-profile measure --device {dev.name} --out {path}` first")
    res = parse_resolutions(resolutions, dev.space) if resolutions else None
    with make_profiler(dev) as prof:
        rep = calibrate_device(path, prof, samples, test_samples, seed=seed, resolutions=res, progress=not quiet)
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
                       f"MAPE {t['mape_pct']:.2f} %; Spearman {t['spearman']:.4f}")


@main.command("devices")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def devices_cmd(as_json: bool) -> None:
    """List the device specs and whether each can be measured from here now.

    \b
    Example:
      ofa-profile devices
      ofa-profile devices --json
    """
    import json as _json

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
        click.echo(_json.dumps(rows, indent=2))
        return
    w = max(len(r["name"]) for r in rows) if rows else 4
    for r in rows:
        mark = "yes" if r["available"] else "no "
        click.echo(f"{r['name']:{w}s}  {r['runtime']:16s} {r['transport']:6s} {mark}  {r['reason']}")


if __name__ == "__main__":  # pragma: no cover
    main()
