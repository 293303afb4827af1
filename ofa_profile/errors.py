"""The one exception type the CLI turns into a one-line message (exit 1)."""
from __future__ import annotations


class OfaProfileError(Exception):
    """A user-facing error: its message is one line naming the problem and the fix."""
