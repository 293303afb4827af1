"""``python -m ofa_profile``: the ``ofa-profile`` command line, started as the console script starts it (the
signal handlers of :mod:`ofa_profile.clierrors` first, then the command: :mod:`ofa_profile.console`)."""
import sys

from .console import console_main

if __name__ == "__main__":
    sys.exit(console_main())
