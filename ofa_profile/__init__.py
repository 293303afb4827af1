"""ofa-profile: hardware profiling and latency modelling for Once-for-All (OFA) supernets.

The map of the package (which module owns which fact, and the import rules) is docs/architecture.md.
"""
__version__ = "0.1.0"

from . import families  # noqa: E402,F401  (registers the spaces and key grammars)
