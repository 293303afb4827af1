"""What a device spec or ``--transport-option`` may put on another program's command line.

A device spec names a host (ssh) or a phone (adb) and the commands ofa-profile runs *there*; it must never make
a program on *this* machine do something else.  Every value that reaches an argv here (``ssh``, ``adb``) is
checked against what it may be: a user or host name made of the characters OpenSSH accepts and not starting
with ``-`` (which would turn it into an option), paths and serials without a leading ``-`` or control
characters, and ssh ``-o`` options limited to :data:`SAFE_SSH_OPTIONS`.  An ssh option that runs a command on
this machine (``ProxyCommand``, ``LocalCommand``, ``KnownHostsCommand``, ``Match exec``...) or any other option
off the list is refused unless the command line names it (``--allow-ssh-option NAME``; a spec file cannot opt
itself in).  Refusals are :class:`~ofa_profile.errors.UnsafeInputError` (one line, exit 2).
"""
from __future__ import annotations

import re
from typing import Any, Iterable

__all__ = ["SAFE_SSH_OPTIONS", "COMMAND_SSH_OPTIONS", "user_problem", "host_problem", "path_problem",
           "serial_problem", "ssh_option_syntax_problem", "ssh_option_name", "ssh_option_refusal",
           "shell_command"]

#: ssh ``-o`` options a device spec may set: connection, host-key, time-out, keep-alive, cipher and
#: authentication settings.  None of them runs a program, reads a command, or opens a socket for others.
SAFE_SSH_OPTIONS = (
    "AddressFamily", "BatchMode", "BindAddress", "CheckHostIP", "Ciphers", "Compression", "ConnectionAttempts",
    "ConnectTimeout", "GlobalKnownHostsFile", "HashKnownHosts", "HostKeyAlgorithms", "HostKeyAlias",
    "HostbasedAuthentication", "IdentitiesOnly", "IdentityFile", "IPQoS", "KbdInteractiveAuthentication",
    "KexAlgorithms", "LogLevel", "MACs", "NumberOfPasswordPrompts", "PasswordAuthentication", "Port",
    "PreferredAuthentications", "PubkeyAcceptedAlgorithms", "PubkeyAcceptedKeyTypes", "PubkeyAuthentication",
    "RekeyLimit", "ServerAliveCountMax", "ServerAliveInterval", "StrictHostKeyChecking", "TCPKeepAlive",
    "UpdateHostKeys", "User", "UserKnownHostsFile", "VerifyHostKeyDNS",
)
#: ssh options that run a program on this machine, or make ssh read configuration that can
#: (named in the refusal, so that a user sees why)
COMMAND_SSH_OPTIONS = ("ProxyCommand", "LocalCommand", "PermitLocalCommand", "KnownHostsCommand", "Match",
                       "ProxyJump", "ProxyUseFdpass", "Include", "RemoteCommand", "PKCS11Provider",
                       "SecurityKeyProvider", "SmartcardDevice", "ControlMaster", "ControlPath", "LocalForward",
                       "RemoteForward", "DynamicForward", "Tunnel", "TunnelDevice", "SendEnv", "SetEnv")

_SAFE = {n.lower(): n for n in SAFE_SSH_OPTIONS}
_COMMAND = {n.lower(): n for n in COMMAND_SSH_OPTIONS}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# OpenSSH's own rules (ssh.c valid_hostname / valid_ruser) refuse a leading '-' and shell metacharacters; these
# are narrower: what host names, addresses and login names are made of
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,255}")
_HOST = re.compile(r"[A-Za-z0-9_.:%][A-Za-z0-9_.:%-]{0,254}")
_SERIAL = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.:@-]{0,254}")
_OPTION = re.compile(r"([A-Za-z][A-Za-z0-9]*)(?:=|\s+)(.*)", re.S)
_SAFE_VALUE = re.compile(r"[A-Za-z0-9_.,:/@~+%=*^-]{1,4096}")


def _shown(value: Any) -> str:
    s = repr(value)
    return s if len(s) <= 60 else s[:57] + "..."


def user_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an ssh login name, or None."""
    if not isinstance(value, str) or not _USER.fullmatch(value):
        return (f"{_shown(value)} is not a login name: letters, digits, '_', '.', '@' and '-' only, not starting "
                f"with '-' (it would be read as an ssh option)")
    return None


def host_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an ssh host name or address, or None."""
    if not isinstance(value, str) or not _HOST.fullmatch(value):
        return (f"{_shown(value)} is not a host name or address: letters, digits, '.', '_', ':', '%' and '-' "
                f"only, not starting with '-' (it would be read as an ssh option)")
    return None


def path_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a path handed to ssh, adb or a remote shell, or None (``~/`` is fine)."""
    if not isinstance(value, str) or not value:
        return f"{_shown(value)} is not a path"
    if value.startswith("-"):
        return f"{_shown(value)} starts with '-' (it would be read as an option); write ./{value} for a relative path"
    if _CONTROL.search(value):
        return f"{_shown(value)} holds a control character (a new line, a tab...)"
    if len(value) > 4096:
        return f"a path of {len(value):,} characters is too long"
    return None


def serial_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an adb serial, or None."""
    if not isinstance(value, str) or not _SERIAL.fullmatch(value):
        return (f"{_shown(value)} is not an adb serial: letters, digits, '.', '_', ':', '@' and '-' only, not "
                f"starting with '-' (it would be read as an adb option)")
    return None


def ssh_option_syntax_problem(value: Any) -> str | None:
    """Why ``value`` is not an ssh ``-o`` option (``Name=value`` or ``Name value``) at all, or None.  Which names
    may be used is :func:`ssh_option_refusal`'s (it depends on the command line's opt-ins)."""
    if not isinstance(value, str) or not _OPTION.fullmatch(value):
        return f"{_shown(value)} is not an ssh option: write Name=value, e.g. ConnectTimeout=5"
    if _CONTROL.search(value):
        return f"{_shown(value)} holds a control character (a new line, a tab...)"
    return None


def ssh_option_name(value: str) -> str:
    """The option name of ``Name=value`` as ssh reads it (case-insensitively), in its usual spelling."""
    m = _OPTION.fullmatch(value)
    name = m.group(1) if m else value
    return _SAFE.get(name.lower()) or _COMMAND.get(name.lower()) or name


def ssh_option_refusal(value: str, allowed: Iterable[str] = (), where: str = "ssh.options") -> str | None:
    """Why the ssh option ``value`` may not be used, or None: its syntax (:func:`ssh_option_syntax_problem`), a
    name off :data:`SAFE_SSH_OPTIONS` that ``allowed`` (the command line's ``--allow-ssh-option``, any case)
    does not name, or an allowed name with a value of other characters than a path, a number or a list of
    algorithms is made of."""
    why = ssh_option_syntax_problem(value)
    if why:
        return f"{where}: {why}"
    m = _OPTION.fullmatch(value)
    assert m is not None
    raw_name, arg = m.group(1), m.group(2)
    name = ssh_option_name(value)
    opted_in = {a.lower() for a in allowed}
    if raw_name.lower() in opted_in:
        return None                   # the user named it on the command line: any value
    if raw_name.lower() in _SAFE:
        if not _SAFE_VALUE.fullmatch(arg) or arg.startswith("-"):
            return (f"{where}: the value of ssh option {name} {_shown(arg)} holds characters other than letters, "
                    f"digits and _.,:/@~+%=*^- (or starts with '-'); pass --allow-ssh-option {name} on the command "
                    f"line to use it as written")
        return None
    if raw_name.lower() in _COMMAND:
        return (f"{where}: ssh option {name} can run a command on this machine, and a device spec may not; pass "
                f"--allow-ssh-option {name} on the command line to use it (see docs/safety.md)")
    return (f"{where}: ssh option {raw_name} is not one a device spec may set ({', '.join(SAFE_SSH_OPTIONS)}); pass "
            f"--allow-ssh-option {raw_name} on the command line to use it (see docs/safety.md)")


def shell_command(*words: Any) -> str:
    """A command for a user to paste into a shell, each word quoted (:func:`shlex.quote`): a file name or a device
    name read from a file (``$(...)``, ``;``) stays one word and runs nothing when pasted."""
    import shlex

    return " ".join(shlex.quote(str(w)) for w in words)
