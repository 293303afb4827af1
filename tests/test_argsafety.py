"""A device spec or --transport-option never makes ssh or adb run a command on this machine.

The injections go through the real command line and, where ssh is installed, the real OpenSSH client: a login
name that is an ssh option (``-oProxyCommand=...``), an ssh option that runs a command (``ProxyCommand``,
``LocalCommand``, ``KnownHostsCommand``, ``Match exec``; in any case), from a spec file and from
``--transport-option``.  Each must exit 2 with one ``error:`` line, and create no marker file.  The opt-in
(``--allow-ssh-option NAME`` on the command line) is shown to reach ssh: with it, the ProxyCommand does run.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
needs_ssh = pytest.mark.skipif(not shutil.which("ssh"), reason="OpenSSH client not installed "
                                                               "(apt-get install openssh-client)")


def _spec(tmp_path: Path, name: str = "board", **ssh) -> Path:
    obj = {"format": "ofa-profile-device", "schema_version": 1, "name": name, "description": "an ssh board (test)",
           "runtime": "onnxruntime", "transport": "ssh", "num_threads": 1, "batch_sizes": [1],
           "timing": {"warmup_runs": 1, "min_runs": 2, "max_runs": 3, "max_time_s": 0.2},
           "ssh": {"host": "127.0.0.1", "port": 1, "remote_python": sys.executable,
                   "remote_dir": str(tmp_path / "board"), **ssh}}
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(obj))
    return p


def _cli(*args, cwd=ROOT, timeout=120):
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", "ofa_profile.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd, env=env)


def _refused(r, marker: Path, *words):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    assert not marker.exists(), f"the injected command ran: {marker} exists"
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def _measure(spec: Path, tmp_path: Path, *extra):
    return _cli("measure", "--device", spec, "--resolutions", "128", "--out", tmp_path / "lut.json", "--limit", "1",
                "--quiet", *extra)


@needs_ssh
@pytest.mark.parametrize("user", ["-oProxyCommand=touch {m}", "-o ProxyCommand=touch {m}", "-FX", "a;touch {m}",
                                  "a b", "$(touch {m})"])
def test_a_user_that_is_an_option_is_refused(tmp_path, user):
    m = tmp_path / "marker"
    line = _refused(_measure(_spec(tmp_path, user=user.format(m=m)), tmp_path), m, "user")
    assert "login name" in line


@needs_ssh
@pytest.mark.parametrize("host", ["-oProxyCommand=touch {m}", "a b", "x@-oProxyCommand=touch {m}", "h;touch {m}"])
def test_a_host_that_is_an_option_is_refused(tmp_path, host):
    m = tmp_path / "marker"
    _refused(_measure(_spec(tmp_path, host=host.format(m=m)), tmp_path), m, "host")


@needs_ssh
@pytest.mark.parametrize("option", ["ProxyCommand=touch {m}", "proxycommand=touch {m}", "ProxyCommand touch {m}",
                                    "LocalCommand=touch {m}", "PermitLocalCommand=yes",
                                    "KnownHostsCommand=/bin/sh -c 'touch {m}'", "Match exec \"touch {m}\"",
                                    "ProxyJump=evil", "Include=/tmp/x"])
def test_options_that_run_commands_are_refused(tmp_path, option):
    m = tmp_path / "marker"
    name = option.split("=")[0].split()[0]
    spec = _spec(tmp_path, options=["StrictHostKeyChecking=no", option.format(m=m)])
    line = _refused(_measure(spec, tmp_path), m, "--allow-ssh-option")
    assert name.lower() in line.lower()


@needs_ssh
def test_a_harmless_option_with_an_odd_value_is_refused(tmp_path):
    m = tmp_path / "marker"
    _refused(_measure(_spec(tmp_path, options=["IdentityFile=a b"]), tmp_path), m, "IdentityFile")
    _refused(_measure(_spec(tmp_path, options=["-oProxyCommand=touch x"]), tmp_path), m, "ssh option")


@needs_ssh
@pytest.mark.parametrize("pair", ["user=-oProxyCommand=touch {m}", "host=-oProxyCommand=touch {m}",
                                  "options=ProxyCommand=touch {m}", "options=[\"LocalCommand=touch {m}\"]",
                                  "identity_file=-oProxyCommand=touch {m}", "remote_dir=-rf",
                                  "remote_python=-c"])
def test_transport_options_are_checked_the_same(tmp_path, pair):
    m = tmp_path / "marker"
    _refused(_measure(_spec(tmp_path), tmp_path, "--transport-option", pair.format(m=m)), m)


@needs_ssh
def test_the_command_line_opt_in_reaches_ssh(tmp_path):
    """--allow-ssh-option ProxyCommand lets the spec's ProxyCommand through: ssh runs it (and then fails to
    connect, exit 1); the same spec without the opt-in is refused, and the spec cannot opt itself in."""
    m = tmp_path / "marker"
    spec = _spec(tmp_path, options=["BatchMode=yes", f"ProxyCommand=touch {m}"])
    _refused(_measure(spec, tmp_path), m)
    r = _measure(spec, tmp_path, "--allow-ssh-option", "ProxyCommand")
    assert r.returncode == 1 and "cannot reach board" in r.stderr, r.stderr
    assert m.exists()
    obj = json.loads(spec.read_text())
    obj["allow_ssh_options"] = ["ProxyCommand"]
    spec.write_text(json.dumps(obj))
    m.unlink()
    r = _measure(spec, tmp_path)
    assert r.returncode == 1 and "allow_ssh_options" in r.stderr and not m.exists(), r.stderr


def test_safe_options_and_names_pass(tmp_path):
    from ofa_profile.devices import load_device
    from ofa_profile.transports import SshTarget

    spec = _spec(tmp_path, user="pi.user-1", host="board-7.local",
                 options=["UserKnownHostsFile=/tmp/kh", "StrictHostKeyChecking=accept-new", "ConnectTimeout=5",
                          "ServerAliveInterval=3", "Ciphers=+aes128-ctr,chacha20-poly1305@openssh.com", "Port=22",
                          "serveralivecountmax=2"])
    t = SshTarget.from_spec(load_device(spec))
    argv = t.argv("true")
    assert argv[-3:] == ["--", "pi.user-1@board-7.local", "true"]
    assert SshTarget("::1").argv("true")[-2] == "::1"


def test_allow_ssh_option_applies_to_ssh_only():
    r = _cli("measure", "--device", "cpu-ort", "--resolutions", "128", "--limit", "1", "--allow-ssh-option",
             "ProxyCommand", "--out", "/nonexistent-folder/x.json")
    assert r.returncode == 2 and "ssh boards" in r.stderr and r.stderr.count("\n") == 1, r.stderr


@pytest.mark.parametrize("pair", ["serial=-H evil", "serial=a;b", "benchmark_binary=-x", "remote_dir=-x",
                                  "remote_dir=/a\nb"])
def test_adb_arguments_are_checked(tmp_path, pair):
    m = tmp_path / "marker"
    _refused(_measure(Path("device_specs/android.json"), tmp_path, "--transport-option", pair), m)


def test_adb_serial_flag_is_checked(tmp_path):
    r = _measure(Path("device_specs/android.json"), tmp_path, "--serial", "-H")
    _refused(r, tmp_path / "marker", "serial")


def test_adb_target_refuses_a_bad_serial():
    from ofa_profile.devicespec import UnsafeDeviceError
    from ofa_profile.transports import AdbTarget

    with pytest.raises(UnsafeDeviceError):
        AdbTarget("-d")
    assert AdbTarget("emulator-5554")._argv("get-state")[1:3] == ["-s", "emulator-5554"]
