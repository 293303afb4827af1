"""``ofa-profile plot``: frontier, predicted, heatmap, ranks (:mod:`ofa_profile.figures`)."""
from __future__ import annotations

import click

from ..cliopts import RESOLUTION, SEED, SPACE_NAME, FiniteFloatRange, check_resolutions, count_range, option_value
from ..figures import frontier_figure, heatmap_figure, predicted_figure, ranks_figure
from ..search import parse_budget_ms
from .base import SPEED_CHECK_OPTIONS, check_speed_options, fail, log, main, with_options
from .search import PREDICTOR_OPTIONS, usage_errors

__all__ = ["plot_group"]


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
@click.option("--resolutions", default=None,
              help="[default: the LUT's among 128..224, inside the predictor's fitted range]")
@with_options(PREDICTOR_OPTIONS)
@click.option("--n-random", type=count_range(1, 1_000_000), default=2000, show_default=True,
              help="random subnets in the cloud")
@click.option("--seed", type=SEED, default=0, show_default=True)
@with_options(SPEED_CHECK_OPTIONS)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG to write")
def plot_frontier_cmd(devices: tuple, luts: tuple, budget: str | None, space: str | None, resolutions: str | None,
                      accuracy: str | None, predictor: str | None, accuracy_data: str | None, n_random: int,
                      seed: int, rescale: bool, no_speed_check: bool, out: str) -> None:
    """The Pareto frontier of each device over a cloud of random subnets, one panel per LUT on one accuracy scale.

    A shipped LUT used on a device of this machine is speed-checked as in `pareto` (one warning line on stderr
    when this machine runs its blocks more than 15 % faster or slower; --rescale scales by the factor).

    \b
    Example:
      ofa-profile plot frontier --device cpu-ort --device cpu-tflite --budget 20ms --out frontier.png
      ofa-profile plot frontier --lut cpu-ort.json --device cpu-ort --budget 8ms --out mine-vs-shipped.png
    """
    refs = [(d, None) for d in devices] + [(None, f) for f in luts]
    if not refs:
        fail("give at least one --device or --lut")
    check_resolutions(resolutions)
    check_speed_options(rescale, no_speed_check)
    with option_value("--budget"):
        b = parse_budget_ms(budget) if budget is not None else None
    with usage_errors():
        p = frontier_figure(out, refs, b, space=space, resolutions=resolutions, accuracy=accuracy,
                            predictor=predictor, accuracy_data=accuracy_data, n_random=n_random, seed=seed,
                            speed_check=not no_speed_check, rescale=rescale, log=log)
    click.echo(str(p))


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
    click.echo(str(predicted_figure(out, measurements, column, lut_ref, adapter, band=band,
                                    calibrated=not no_calibration)))


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
    click.echo(str(heatmap_figure(out, (*devices, *luts), resolution)))


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
    click.echo(str(ranks_figure(out, (*devices, *luts), n_subnets, resolution, seed,
                                calibrated=not no_calibration)))
