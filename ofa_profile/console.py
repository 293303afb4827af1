"""The ``ofa-profile`` console script (setup.py's entry point; ``python -m ofa_profile`` too): the signal handlers
of :mod:`ofa_profile.clierrors` first, then the command line of :mod:`ofa_profile.cli`.

A module of its own, above both: :mod:`ofa_profile.clierrors` serves every command line of the project (the
trainer's and the card's too, which ``ofa-profile`` itself imports), so it must not import ``ofa-profile``'s.
Like clierrors it imports only the standard library at import time, so the handlers are in place before click,
numpy or torch is imported.
"""
from .clierrors import install_signal_handlers, report, stop_handling


def console_main() -> int:
    """The ``ofa-profile`` console script: the signal handlers first, then the command line."""
    install_signal_handlers()            # the handlers stay until the process ends
    try:
        from .cli import main
        return main.run_cli(prog_name="ofa-profile")
    except BaseException as exc:         # noqa: B902 - a signal while importing the command line
        return report(exc)
    finally:
        stop_handling()                  # from here the process only exits: a late signal is recorded only
