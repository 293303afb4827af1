"""What every ``ofa-profile`` command shares: the command group, output helpers, the common options.

Conventions (every command): ``--help`` shows an example; data goes to stdout, logs and progress to stderr;
``--json`` where the output is data; a user error is one line on stderr and exit 1 (usage errors exit 2), never
a traceback (:mod:`ofa_profile.clierrors`).  Heavy imports happen inside the commands.
"""
from __future__ import annotations

import functools
from typing import Any

import click

from ofa_model.evaluate import EvalRequest

from ..atomic import write_json_atomic
from ..clierrors import CliExitCodes
from ..cliopts import NON_NEGATIVE_INT, POSITIVE_INT, SPACE_NAME, NoEmptyValues, NoRepeatedOptions
from ..devices import MAX_THREADS, DeviceError, allow_ssh_options, load_device, with_threads
from ..errors import OfaProfileError
from ..families import plugin_error
from ..jsonio import dumps_strict
from ..lock import output_lock
from ..paths import check_out_dir, safe_name
from ..space import DEFAULT_SPACE, SPACES

__all__ = ["main", "echo_json", "fail", "SPACE_OPTION", "WAIT_OPTION", "space_help", "default_out", "hold_lock", "log",
           "checked_out_dir", "pct", "with_options", "atomic_json", "SPEED_CHECK_OPTIONS", "check_speed_options",
           "THREADS_OPTION", "load_device_cli", "evaluation_options"]


class _Command(NoRepeatedOptions, NoEmptyValues, click.Command):
    """A subcommand: an empty option value (``--out ''``) is a usage error (:class:`NoEmptyValues`), and so is an
    option of one value given twice (:class:`NoRepeatedOptions`)."""


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
    if plugin_error() is not None:     # a family plug-in that failed to load: one line naming it
        raise plugin_error()


def echo_json(obj: Any) -> None:
    """Print strict JSON: never NaN/Infinity (an undefined figure is null)."""
    click.echo(dumps_strict(obj, indent=2, sort_keys=False))


def fail(msg: str) -> None:
    raise OfaProfileError(msg)


def space_help() -> str:
    return "search space: " + ", ".join(SPACES)


SPACE_OPTION = click.option("--space", type=SPACE_NAME, default=DEFAULT_SPACE, show_default=True,
                            help=space_help())


def default_out(device_name: str) -> str:
    return f"{safe_name(device_name)}.json"


def _store_wait(ctx: click.Context, param: Any, value: bool) -> None:
    ctx.meta["ofa_profile.wait"] = value


WAIT_OPTION = click.option("--wait", is_flag=True, expose_value=False, callback=_store_wait,
                           help="if another process is writing the output, wait for it to finish instead of failing")


ALLOW_SSH_OPTION = click.option(
    "--allow-ssh-option", "allow_ssh_option", multiple=True, metavar="NAME",
    help="ssh boards: let the device spec's ssh.options use the ssh option NAME although it is not on the safe "
         "list (e.g. ProxyCommand, which runs a command on this machine; repeatable; see docs/safety.md)")


THREADS_OPTION = click.option(
    "--threads", type=click.IntRange(1, MAX_THREADS), default=None,
    help="intra-op threads of this machine's CPU runtimes (torch, onnxruntime, litert) [default: the device spec's "
         "num_threads]; recorded in the LUT, and a LUT is only extended, calibrated or checked with its own")


def load_device_cli(name: str, allow_ssh_option: Any = (), threads: int | None = None) -> Any:
    """The device spec ``name`` with the command line's ``--allow-ssh-option`` names
    (:func:`ofa_profile.devices.allow_ssh_options`) and ``--threads`` (:func:`ofa_profile.devices.with_threads`:
    a device it does not apply to is a usage error)."""
    dev = allow_ssh_options(load_device(name), tuple(allow_ssh_option))
    try:
        return with_threads(dev, threads)
    except DeviceError as exc:
        raise click.BadParameter(str(exc), param_hint="'--threads'") from None


def hold_lock(path: Any, folder: bool = False) -> Any:
    """Hold the output lock of ``path`` (ofa_profile.lock) until this command ends, on every exit path; a second
    writer is refused in one line naming this process, or waits with the command's --wait (WAIT_OPTION)."""
    ctx = click.get_current_context()
    return ctx.with_resource(output_lock(path, wait=bool(ctx.meta.get("ofa_profile.wait")), folder=folder))


def atomic_json(path: Any, obj: Any) -> None:
    write_json_atomic(path, obj)


def log(msg: str) -> None:
    click.echo(msg, err=True)


def checked_out_dir(path: str, option: str = "--out-dir") -> Any:
    """An output folder checked before any work (ofa_profile.paths.check_out_dir: made if its parent exists,
    writable); one this command made is removed again if the command ends without writing into it."""
    import os

    d, created = check_out_dir(path, option)
    if created:
        def rmdir_if_empty() -> None:
            try:
                os.rmdir(d)
            except OSError:
                pass
        click.get_current_context().call_on_close(rmdir_if_empty)
    return d


def pct(x: float) -> str:
    return f"{x * 100:.2f} %"


SPEED_CHECK_OPTIONS = [
    click.option("--rescale", is_flag=True,
                 help="scale the latencies by the speed check's factor (now/then on a few of the LUT's blocks; a "
                      "shipped LUT used on a device of this machine is checked, once per machine)"),
    click.option("--no-speed-check", is_flag=True,
                 help="do not speed-check a shipped LUT on this machine (also: OFA_PROFILE_NO_SPEED_CHECK=1)"),
]


def check_speed_options(rescale: bool, no_speed_check: bool) -> None:
    """--rescale needs the check that --no-speed-check skips: both at once is a usage error."""
    if rescale and no_speed_check:
        raise click.UsageError("--rescale applies the speed check's factor and --no-speed-check skips the check: "
                               "pass one")


def with_options(options: list) -> Any:
    def deco(f: Any) -> Any:
        for o in reversed(options):
            f = o(f)
        return f
    return deco


# how a subnet's top-1 is measured (ofa_model.evaluate.EvalRequest): `evaluate`'s options, and pareto's under --verify
# (two of them named --verify-*): (field, evaluate's flag, pareto's flag, help, its type, its default)
_EVALUATION = (
    ("supernet", "--supernet", "--supernet", "supernet weights [default: the bundled ofa_model/weights]", None, None),
    ("n_val", "--val-images", "--verify-images", "fixed seeded val subset to evaluate on (0: all), the same for "
     "evaluate, pareto --verify and the card", "non_negative", 1000),
    ("n_calib", "--calib-images", "--verify-calib-images", "training images for BN recalibration", "positive", 2000),
    ("train_data", "--train-data", "--train-data", "training set for BN recalibration [default: shared Imagenette]",
     None, None),
    ("val_data", "--val-data", "--val-data", "validation set [default: shared Imagenette]", None, None),
    ("cache_dir", "--cache-dir", "--cache-dir", "decoded-image cache [default: ~/.cache/ofa-profile/images]", None,
     None),
)


def evaluation_options(verify: bool = False, supernet_note: str = "") -> Any:
    """The one option group of how a subnet's top-1 is measured: ``--supernet``, ``--val-images``,
    ``--calib-images``, ``--train-data``, ``--val-data``, ``--cache-dir`` (``verify``: pareto's, the counts named
    ``--verify-images``/``--verify-calib-images`` and every help under ``--verify:``; ``supernet_note`` added to
    ``--supernet``'s help).  The decorated command gets them as one keyword argument, ``evaluation``
    (:class:`ofa_model.evaluate.EvalRequest`)."""
    types = {"non_negative": NON_NEGATIVE_INT, "positive": POSITIVE_INT}
    params = {name: f"evaluation_{name}" for name, *_ in _EVALUATION}

    def deco(f: Any) -> Any:
        @functools.wraps(f)
        def command(*args: Any, **kw: Any) -> Any:
            kw["evaluation"] = EvalRequest(**{name: kw.pop(param) for name, param in params.items()})
            return f(*args, **kw)

        for name, flag, vflag, help_, kind, default in reversed(_EVALUATION):
            text = ("--verify: " if verify else "") + help_ + (supernet_note if name == "supernet" else "")
            extra = {"type": types[kind], "show_default": True} if kind else {}
            command = click.option(vflag if verify else flag, params[name], default=default, help=text,
                                   **extra)(command)
        return command
    return deco
