"""The ``ofa-profile`` commands, one module per area; :mod:`ofa_profile.commands.base` holds the group and what
they share.  Each command parses its options, calls one domain function and prints."""
