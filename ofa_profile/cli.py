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


if __name__ == "__main__":  # pragma: no cover
    main()
