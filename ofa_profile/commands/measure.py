"""The commands that build LUTs on a device: ``enumerate`` (the blocks of a space), ``measure`` (a LUT),
``calibrate`` (LUT sum -> whole-net latency) and ``devices`` (the device specs, and which can be measured now).
Each parses its options, calls one domain function (:mod:`ofa_profile.ops`, :mod:`ofa_profile.measure`,
:mod:`ofa_profile.calibrate`, :mod:`ofa_profile.devices`) and prints."""
from __future__ import annotations

from typing import Any

import click

from ..argsafety import shell_command
from ..calibrate import calibrate_on_device
from ..cliopts import KEY_VALUE, NON_NEGATIVE_INT, POSITIVE_INT, SEED, SPACE_NAME, count_range, option_value
from ..devices import device_table, transport_options_from_text
from ..lut import load_lut
from ..bench import bench_model
from ..measure import default_lut_stem, device_with_options, lut_space, measure_device
from ..ops import enumerate_ops
from ..transports.base import get_transport, transport_shorthands
from ..space import get_space, parse_resolutions
from ..timing import MAX_BATCH_SIZE
from ..timed import GRAPHS
from .base import (ALLOW_SSH_OPTION, SPACE_OPTION, THREADS_OPTION, WAIT_OPTION, default_out, echo_json, fail, hold_lock,
                   load_device_cli, log, main, space_help)


_SHORTHANDS = "ofa_profile.transport_shorthands"


def _transport_options(dev: Any, transport_option: tuple[tuple[str, str], ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The device's transport options of --transport-option, and the values of the transports' shorthands given
    (``{option: value}``: :class:`_TransportCommand`), each checked against the other."""
    with option_value("--transport-option"):
        options = transport_options_from_text(dev, transport_option)
    ctx = click.get_current_context()
    flags = {s.option: s.flag for s in transport_shorthands()}
    shorthands = {}
    for key, text in ctx.meta.get(_SHORTHANDS, {}).items():
        if text:                  # text, or parsed by the option's type where the transport declares another
            typed = {o.name: o.type for o in get_transport(dev.transport).options}.get(key, "string") != "string"
            with option_value(flags.get(key, key)):
                shorthands[key] = transport_options_from_text(dev, [(key, text)])[key] if typed else text
    for key, value in shorthands.items():
        if key in options and options[key] != value:
            flag = flags.get(key, key)
            raise click.BadParameter(f"{flag} {value} and --transport-option {key}={options[key]} disagree; give one",
                                     param_hint=f"'{flag}'")
    return options, shorthands


class _TransportCommand(main.command_class):  # type: ignore[name-defined,misc]
    """A command that takes ``--transport-option`` and, after it, the shorthands the registered transports declare
    for their options (:func:`ofa_profile.transports.base.transport_shorthands`), looked up each time the command
    parses or shows its help, so that a transport added by a plug-in brings its own.  Their values reach the
    command through ``ctx.meta`` (:func:`_transport_options`)."""

    _made: dict[tuple[str, str, str, str | None], click.Option] = {}

    def _with_shorthands(self) -> None:
        own = getattr(self, "_own_params", None)
        if own is None:
            own = self._own_params = list(self.params)
        at = next(i + 1 for i, p in enumerate(own) if p.name == "transport_option")
        taken = {o for p in own for o in p.opts}
        extra = []
        for s in transport_shorthands():
            if s.flag in taken:       # a command's own option keeps its flag
                continue
            key = (s.flag, s.option, s.help, s.metavar)
            if key not in self._made:
                self._made[key] = click.Option([s.flag, f"shorthand__{s.option}"], default=None, help=s.help,
                                               metavar=s.metavar)
            extra.append(self._made[key])
        self.params = own[:at] + extra + own[at:]

    def get_params(self, ctx: click.Context) -> list:
        self._with_shorthands()
        return super().get_params(ctx)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        self._with_shorthands()
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        ctx.meta[_SHORTHANDS] = {k.removeprefix("shorthand__"): ctx.params.pop(k) for k in list(ctx.params)
                                 if k.startswith("shorthand__")}
        return super().invoke(ctx)


TRANSPORT_OPTION = click.option(
    "--transport-option", "transport_option", type=KEY_VALUE, multiple=True, metavar="KEY=VALUE",
    help="set one of the device's transport options for this run (repeatable; those of the spec's "
         "transport_options, e.g. cores=2,3 or repeats=5 for adb; the shorthands below set one too)")


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


@main.command("measure", cls=_TransportCommand)
@click.option("--device", "device_name", required=True, help="device name (see `ofa-profile devices`) or spec file")
@click.option("--space", type=SPACE_NAME, default=None,
              help="space to measure [default: the device spec's]; " + space_help())
@click.option("--resolutions", default="all", show_default=True, help="e.g. 160,224 or 128-224 or all")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="LUT file to write or extend [default: ./DEVICE.json, ./DEVICE-SPACE.json for another space]")
@click.option("--batch-size", type=count_range(1, MAX_BATCH_SIZE), default=None,
              help="batch size [default: the device's first]")
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed of the block weights and inputs")
@click.option("--fresh", is_flag=True, help="discard a journal or LUT at --out and start over")
@click.option("--limit", type=POSITIVE_INT, default=None, help="stop after N new measurements (rerun to continue)")
@click.option("--passes", type=count_range(1, 1000), default=1, show_default=True,
              help="measure every block N times in passes over the list and keep the lowest median (a noisy, "
                   "shared machine: a block is then only inflated if it was slow in every pass)")
@click.option("--classes", type=count_range(1, 1_000_000), default=None,
              help="outputs of the classifier head to measure; on an existing LUT, adds that head's one op beside "
                   "the LUT's own [default: the LUT's head, else the space's (1000 for OFA's nets)]")
@click.option("--graph", type=click.Choice(GRAPHS), default="ofa-profile", show_default=True,
              help="graph flavour of the blocks: ofa-profile = the project's layer library (what `export` writes), "
                   "ofa = OFA's own modules exported through torch.onnx (what an OFA user deploys)")
@TRANSPORT_OPTION
@ALLOW_SSH_OPTION
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True,
              help="int8: every block quantized statically before it is timed (onnxruntime: QDQ, per-channel int8 "
                   "weights, uint8 activations; litert: ai-edge-quantizer int8), calibrated on 8 seeded inputs of "
                   "its shape; recorded in the LUT, which is then used only with int8 figures")
@THREADS_OPTION
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary")
@WAIT_OPTION
def measure_cmd(device_name: str, space: str | None, resolutions: str, out: str | None, batch_size: int | None, seed: int, fresh: bool,
                limit: int | None, passes: int, classes: int | None, graph: str,
                transport_option: tuple[tuple[str, str], ...], allow_ssh_option: tuple[str, ...], precision: str,
                threads: int | None, quiet: bool, as_json: bool) -> None:
    """Measure a latency LUT: every block configuration of the space on one device.

    Resumable: a killed run keeps every finished block in DEVICE.json.journal.jsonl and a
    rerun of the same command carries on. An existing LUT at --out is extended. The LUT is locked
    for the whole run: a second writer (measure, calibrate) is refused, or waits with --wait.

    \b
    Example:
      ofa-profile measure --device cpu-ort --resolutions 160,224 --out cpu-ort.json
      ofa-profile measure --device pixel --benchmark-binary ./benchmark_model
      ofa-profile measure --device pixel --transport-option cores=7 --transport-option repeats=5
      ofa-profile measure --device cpu-ort --passes 3 --fresh
      ofa-profile measure --device cpu-ort --space ofa-proxyless-w1.3 --resolutions 160
      ofa-profile measure --device cpu-ort --graph ofa --out cpu-ort-ofa.json
      ofa-profile measure --device cpu-ort --classes 10 --out cpu-ort.json
      ofa-profile measure --device cpu-ort --precision int8      # writes ./cpu-ort-int8.json
      ofa-profile measure --device cpu-ort --threads 2           # writes ./cpu-ort-t2.json
    """
    from pathlib import Path

    spec_dev = load_device_cli(device_name, allow_ssh_option)
    dev = load_device_cli(device_name, allow_ssh_option, threads)
    options, shorthands = _transport_options(dev, transport_option)
    sp_name = lut_space(dev, space)
    with option_value("--resolutions"):
        res = parse_resolutions(resolutions, sp_name)
    out_path = Path(out or default_out(default_lut_stem(spec_dev, sp_name, batch_size, precision=precision,
                                                         threads=threads)))
    if not out_path.parent.exists():
        fail(f"output folder {out_path.parent} does not exist; create it or choose another --out")
    hold_lock(out_path)          # the LUT and its journal: one writer for the whole run
    run = measure_device(dev, out_path, res, space=sp_name, batch_size=batch_size, seed=seed, progress=not quiet,
                         fresh=fresh, limit=limit, passes=passes, transport_options=options,
                         shorthands=shorthands, graph=graph, classes=classes,
                         precision=precision)
    r = run.result
    if run.noise:
        log(run.noise.describe())
    if as_json:
        echo_json(run.as_dict())
    else:
        state = "complete" if r.complete else "partial (rerun to continue)"
        what = f"{r.measured} measurements ({passes} passes)" if passes > 1 else f"{r.measured} measured"
        click.echo(f"{r.lut_path}: {what}, {r.reused} reused of {r.total} ops, {state}, {r.elapsed_s:.1f} s")


@main.command("bench", cls=_TransportCommand)
@click.argument("model", required=False, type=click.Path(dir_okay=True), metavar="[MODEL]")
@click.option("--device", "device_name", required=True, help="device name (see `ofa-profile devices`) or spec file")
@click.option("--arch", "arch", default=None, type=click.Path(dir_okay=False),
              help="time a subnet instead (spec JSON {ks, e, d, r} or net.config), built as `ofa-profile export "
                   "--random-weights` builds it, in the format the device's runtime reads")
@click.option("--space", type=SPACE_NAME, default=None, help="--arch: space of a plain spec JSON [default: the device's]")
@click.option("--classes", type=count_range(1, 1_000_000), default=None,
              help="--arch: outputs of the classifier head [default: the space's, 1000 for OFA's nets]")
@click.option("--graph", type=click.Choice(GRAPHS), default="ofa-profile", show_default=True,
              help="--arch: the graph flavour to build (ofa-profile: the project's layer library, what `export` "
                   "writes)")
@click.option("--rounds", type=count_range(1, 100), default=2, show_default=True,
              help="passes, as calibrate measures; the figure is the pass with the lowest median")
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed of the inputs (and of --arch's weights)")
@click.option("--batch-size", type=POSITIVE_INT, default=None,
              help="batch of a model with a free batch dimension [default: the device's first]")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True,
              help="--arch: build the subnet int8 (as `export --random-weights --precision int8`); a MODEL file's "
                   "precision is read from the file")
@TRANSPORT_OPTION
@ALLOW_SSH_OPTION
@THREADS_OPTION
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def bench_cmd(model: str | None, device_name: str, arch: str | None, space: str | None, classes: int | None,
              graph: str, rounds: int, seed: int, batch_size: int | None, precision: str,
              transport_option: tuple[tuple[str, str], ...], allow_ssh_option: tuple[str, ...], threads: int | None,
              as_json: bool) -> None:
    """End-to-end latency of a model file (.onnx, .tflite) or a subnet on a device, as the device runs it.

    The device's own profiler times it (a runtime of this machine, a phone over adb, a board over ssh) with
    the device spec's timing settings and the harness calibrate uses (ROUNDS passes, the lowest median).
    Check any figure predict or pareto gives on the artefact you ship.

    \b
    Example:
      ofa-profile bench net.onnx --device cpu-ort
      ofa-profile bench net.tflite --device pixel --benchmark-binary ./benchmark_model --json
      ofa-profile bench --arch examples/arch-r160.json --device cpu-ort --classes 10
      ofa-profile bench --arch examples/arch-r160.json --device cpu-ort --precision int8 --threads 2
    """
    if (model is None) == (arch is None):
        raise click.UsageError("give a MODEL file or --arch FILE (one of them)")
    if model is not None and (classes is not None or graph != "ofa-profile" or space is not None
                              or precision != "fp32"):
        raise click.UsageError("--classes, --graph, --space and --precision describe a subnet built from --arch; a "
                               "MODEL file is timed as it is (its precision read from the file)")
    dev = load_device_cli(device_name, allow_ssh_option, threads)
    options, shorthands = _transport_options(dev, transport_option)
    dev, kw = device_with_options(dev, options, shorthands)
    res = bench_model(dev, model, arch=arch, space=space, classes=classes, graph=graph, rounds=rounds, seed=seed,
                      batch_size=batch_size, profiler_options=kw, log=log, precision=precision)
    if as_json:
        echo_json(res.as_dict())
    else:
        for line in res.describe():
            click.echo(line)


@main.command("calibrate")
@click.option("--device", "device_name", required=True, help="device name or spec file")
@click.option("--space", type=SPACE_NAME, default=None,
              help="space of the LUT [default: the LUT's; without --lut it names ./DEVICE-SPACE.json]")
@click.option("--lut", "lut_path", type=click.Path(dir_okay=False), default=None,
              help="the device's LUT to calibrate [default: ./DEVICE.json, ./DEVICE-SPACE.json with --space]")
@click.option("--samples", type=count_range(10, 100_000), default=100, show_default=True,
              help="subnets measured to fit")
@click.option("--test-samples", type=NON_NEGATIVE_INT, default=50, show_default=True,
              help="further subnets measured only to report accuracy")
@click.option("--resolutions", default=None, help="resolutions to sample [default: all of the LUT]")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--rounds", type=POSITIVE_INT, default=2, show_default=True,
              help="passes over the subnets, minutes apart; each subnet's figure is the lowest of its medians")
@click.option("--classes", type=count_range(1, 1_000_000), default=None,
              help="classifier head of the subnets measured (one the LUT holds) [default: the LUT's]")
@ALLOW_SSH_OPTION
@THREADS_OPTION
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@WAIT_OPTION
def calibrate_cmd(device_name: str, space: str | None, lut_path: str | None, samples: int, test_samples: int,
                  resolutions: str | None, seed: int, rounds: int, classes: int | None,
                  allow_ssh_option: tuple[str, ...], threads: int | None, quiet: bool, as_json: bool) -> None:
    """Fit LUT-sum -> measured whole-net latency and store it in the LUT.

    Measures SAMPLES + TEST-SAMPLES seeded subnets spread evenly over the size range, from the
    space's smallest to its largest subnet (plus those two at the lowest and highest resolution),
    end to end, ROUNDS passes each, keeping each subnet's lowest median (resumable); fits a ridge
    regression on SAMPLES of them and the extremes, and reports its error on the TEST-SAMPLES held
    out: overall, per size third, and on the extremes.  The subnets are timed as the LUT's
    blocks were (its precision; the threads of --threads or the device spec, which must be the LUT's).

    \b
    Example:
      ofa-profile calibrate --device cpu-ort --lut cpu-ort.json --samples 100 --test-samples 50
      ofa-profile calibrate --device cpu-ort --space ofa-proxyless-w1.3 --samples 100
      ofa-profile calibrate --device cpu-ort --lut cpu-ort-int8.json      # int8 subnets for an int8 LUT
      ofa-profile calibrate --device cpu-ort --threads 2                  # ./cpu-ort-t2.json
    """
    from pathlib import Path

    spec_dev = load_device_cli(device_name, allow_ssh_option)
    dev = load_device_cli(device_name, allow_ssh_option, threads)
    path = Path(lut_path or default_out(default_lut_stem(spec_dev, lut_space(dev, space), threads=threads)))
    if not path.exists():
        also = ("--space", space) if space else ()
        cmd = shell_command("ofa-profile", "measure", "--device", dev.name, *also, "--out", path)
        fail(f"LUT {path} does not exist; run `{cmd}` first")
    if space:
        have = load_lut(path).space
        if get_space(have).name != get_space(space).name:
            raise click.BadParameter(f"LUT {path} is for space {have}, not {space}", param_hint="'--space'")
    hold_lock(path)          # the same lock as `measure`: no calibration while the LUT is being extended
    with option_value("--resolutions"):
        res = parse_resolutions(resolutions, dev.space) if resolutions else None
    rep = calibrate_on_device(dev, path, samples, test_samples, seed=seed, resolutions=res, progress=not quiet,
                              rounds=rounds, classes=classes)
    if as_json:
        echo_json(rep)
        return
    click.echo(f"calibrated {path} on {samples} subnets and the space's {rep['n_extremes']} extremes (seed {seed}); "
               f"measured in {rep['measure_s']} s")
    click.echo(f"  timed: {rep['timed_label']}")
    if rep["test_calibrated"]:
        for name in ("test_lut_sum", "test_calibrated"):
            t = rep[name]
            click.echo(f"  {name:16s} n={t['n']}: within 2/3/5/10 %: {t['within_2pct']:.0%} / {t['within_3pct']:.0%} / "
                       f"{t['within_5pct']:.0%} / {t['within_10pct']:.0%}; RMSE {t['rmse_ms']:.3f} ms; "
                       f"MAPE {t['mape_pct']:.2f} %; Spearman "
                       + (f"{t['spearman']:.4f}" if t["spearman"] is not None else "n/a (under 3 subnets)"))
        for t in rep.get("test_by_size") or ():
            click.echo(f"  {t['tercile']:>6} third of the held-out subnets (LUT sum {t['size_range'][0]:.3f}.."
                       f"{t['size_range'][1]:.3f} ms, n={t['n']}): mean signed error "
                       f"{t['mean_signed_error_pct']:+.2f} %, within 5/10 %: {t['within_5pct']:.0%} / "
                       f"{t['within_10pct']:.0%}, worst {t['worst_error_pct']:+.1f} %")
    for x in rep.get("extremes") or ():
        click.echo(f"  the space's {x['subnet']} subnet at r={x['r']} (fitted on): measured {x['measured_ms']:.3f} ms, "
                   f"predicted {x['predicted_ms']:.3f} ms ({x['error_pct']:+.1f} %)")


@main.command("devices")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def devices_cmd(as_json: bool) -> None:
    """List the device specs and whether each can be measured from here now.

    \b
    Example:
      ofa-profile devices
      ofa-profile devices --json
    """
    rows = device_table()
    if as_json:
        echo_json(rows)
        return
    w = max(len(r["name"]) for r in rows) if rows else 4
    for r in rows:
        mark = "yes" if r["available"] else "no "
        click.echo(f"{r['name']:{w}s}  {r['runtime']:16s} {r['transport']:6s} {mark}  {r['reason']}")
