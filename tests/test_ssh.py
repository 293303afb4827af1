"""Linux boards over SSH, end to end against a REAL OpenSSH server started here on 127.0.0.1.

The fixture runs Debian's `openssh-server` (`/usr/sbin/sshd -D -f cfg -e`) as the current user, on a free
port, with its own host key, a throw-away user key and a temporary known_hosts: the "board" is this
machine, its Python is this interpreter.  Needs `apt-get install openssh-server openssh-client`.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ofa_profile.devices import DeviceError, parse_device

SSHD = "/usr/sbin/sshd"
ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (Path(SSHD).exists() and shutil.which("ssh") and shutil.which("ssh-keygen")),
                                reason="OpenSSH server/client not installed (apt-get install openssh-server "
                                       "openssh-client)")
RUNTIME = "onnxruntime"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    (d / "authorized_keys").chmod(0o600)
    port = _free_port()
    (d / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
AuthorizedKeysFile {d}/authorized_keys
PidFile {d}/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AcceptEnv LANG LC_*
LogLevel ERROR
""")
    if os.geteuid() == 0 and not Path("/run/sshd").is_dir():
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # sshd's privilege-separation dir when run as root
    log = open(d / "sshd.log", "wb")
    proc = subprocess.Popen([SSHD, "-D", "-f", str(d / "sshd_config"), "-e"], stdout=log, stderr=subprocess.STDOUT)
    t0 = time.time()
    while time.time() - t0 < 15:
        if proc.poll() is not None:
            pytest.skip(f"sshd did not start: {(d / 'sshd.log').read_text().strip()[:300]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.skip("sshd did not listen within 15 s")
    yield {"dir": d, "port": port, "pid": proc.pid, "key": str(d / "user_key"), "known_hosts": str(d / "known_hosts")}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def board_spec(sshd, tmp_path, port=None, host="127.0.0.1", **over):
    obj = {
        "format": "ofa-profile-device", "schema_version": 1, "name": "loopback-board",
        "description": "this machine as an SSH board (test)", "runtime": RUNTIME, "transport": "ssh",
        "num_threads": 1, "batch_sizes": [1],
        "timing": {"warmup_runs": 2, "min_runs": 5, "max_runs": 8, "max_time_s": 0.5, "target_iqr_rel": 0.5},
        "ssh": {"host": host, "port": port or sshd["port"], "user": os.environ.get("USER") or None,
                "identity_file": sshd["key"], "remote_python": sys.executable,
                "remote_dir": str(tmp_path / "board"),
                "options": [f"UserKnownHostsFile={sshd['known_hosts']}", "StrictHostKeyChecking=no"]},
    }
    obj["ssh"].update(over)
    if obj["ssh"]["user"] is None:
        del obj["ssh"]["user"]
    path = tmp_path / "loopback-board.json"
    path.write_text(json.dumps(obj))
    return parse_device(obj, str(path)), path


def test_reachable(sshd, tmp_path):
    from ofa_profile.transports import reachable
    spec, _ = board_spec(sshd, tmp_path)
    ok, why = reachable(spec)
    assert ok, why
    bad, _ = board_spec(sshd, tmp_path, port=_free_port())
    ok, why = reachable(bad)
    assert not ok and "Connection refused" in why and "\n" not in why


def test_remote_blocks_come_back_as_a_valid_lut(sshd, tmp_path):
    from ofa_profile.lut import load_lut
    from ofa_profile.measure import JOURNAL_SUFFIX, make_profiler, measure_lut

    spec, _ = board_spec(sshd, tmp_path)
    out = tmp_path / "board.json"
    with make_profiler(spec) as prof:
        fp = prof.fingerprint()
        assert fp["transport"] == "ssh" and fp["host"] == "127.0.0.1" and fp["num_threads"] == 1
        assert RUNTIME in fp["runtime_versions"]
        r = measure_lut(spec, out, [128], progress=False, profiler=prof, limit=4)
    assert r.measured == 4
    lut = load_lut(out)
    assert lut.runtime == RUNTIME and len(lut.entries) == 4 and lut.fingerprint["transport"] == "ssh"
    for key, e in lut.entries.items():
        assert e.count >= 5 and e.median_ms > 0 and len(e.raw_ms) == e.count
    jl = out.with_name(out.name + JOURNAL_SUFFIX).read_text().splitlines()
    assert sum('"entry"' in ln for ln in jl) == 4
    # the worker was copied once, by content digest
    assert len(list((tmp_path / "board").glob("pkg-*/.complete"))) == 1


def test_whole_subnet_remotely(sshd, tmp_path):
    from ofa_profile.measure import make_profiler
    from ofa_profile.space import get_space

    spec, _ = board_spec(sshd, tmp_path)
    with make_profiler(spec) as prof:
        m = prof.measure_subnet(get_space("ofa-mbv3-w1.0").smallest(128), seed=0)
    assert m.count >= 5 and m.median_ms > 0


def _connection_of(worker_pid: int, listener_pid: int) -> int | None:
    """The per-connection sshd process between the listening sshd and the worker (walk the parent chain)."""
    pid = worker_pid
    for _ in range(10):
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return None
        if ppid == listener_pid:
            return pid
        pid = ppid
    return None


def test_dropped_connection_keeps_finished_entries_and_resumes(sshd, tmp_path):
    from ofa_profile.lut import load_lut
    from ofa_profile.measure import JOURNAL_SUFFIX, measure_lut
    from ofa_profile.transports import SshProfiler

    spec, _ = board_spec(sshd, tmp_path)
    out = tmp_path / "board.json"
    killed, seen = [], []

    class DropAfterTwo(SshProfiler):
        """Kills this run's sshd connection process (started by our fixture) after two results arrived."""

        def measure_ops(self, ops, seed, on_result):
            def cb(op, m):
                on_result(op, m)
                seen.append(op.key)
                if len(seen) == 2 and self.worker_pid:
                    conn = _connection_of(self.worker_pid, sshd["pid"])
                    assert conn, "could not find the connection's sshd process"
                    os.kill(conn, signal.SIGKILL)
                    killed.append(conn)
            super().measure_ops(ops, seed, cb)

    prof = DropAfterTwo(spec)
    with pytest.raises(DeviceError) as ei:
        measure_lut(spec, out, [128], progress=False, profiler=prof, limit=6)
    prof.close()
    msg = str(ei.value)
    assert killed and "\n" not in msg and "rerun" in msg and ("lost" in msg or "stopped" in msg), msg
    journal = out.with_name(out.name + JOURNAL_SUFFIX)
    kept = sum('"entry"' in ln for ln in journal.read_text().splitlines())
    assert kept == 2 and not out.exists()
    # resume: the finished entries are reused, only the rest is measured
    r = measure_lut(spec, out, [128], progress=False, limit=6 - kept)
    assert r.measured == 6 - kept and len(load_lut(out).entries) == 6


def test_bad_port_is_one_clear_line_and_keeps_entries(sshd, tmp_path):
    from ofa_profile.measure import JOURNAL_SUFFIX, measure_lut

    spec, path = board_spec(sshd, tmp_path)
    out = tmp_path / "board.json"
    measure_lut(spec, out, [128], progress=False, limit=2)
    journal = out.with_name(out.name + JOURNAL_SUFFIX)
    before = journal.read_bytes()
    _, bad_path = board_spec(sshd, tmp_path, port=_free_port())
    r = subprocess.run([sys.executable, "-m", "ofa_profile.cli", "measure", "--device", str(bad_path),
                        "--resolutions", "128", "--out", str(out), "--quiet"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "cannot reach board loopback-board" in r.stderr and "Connection refused" in r.stderr
    assert journal.read_bytes() == before          # finished entries kept, untouched


def test_unknown_host_is_one_clear_line(sshd, tmp_path):
    from ofa_profile.measure import make_profiler
    spec, _ = board_spec(sshd, tmp_path, host="no-such-board.invalid")
    with pytest.raises(DeviceError) as ei:
        make_profiler(spec)
    msg = str(ei.value)
    assert "cannot reach board" in msg and "no-such-board.invalid" in msg and "\n" not in msg


def test_board_without_the_python_is_one_clear_line(sshd, tmp_path):
    from ofa_profile.measure import make_profiler
    spec, _ = board_spec(sshd, tmp_path, remote_python="/opt/no-python-here/python3")
    with pytest.raises(DeviceError) as ei:
        make_profiler(spec)
    msg = str(ei.value)
    assert "remote_python" in msg and "\n" not in msg


def test_serial_option_is_refused_for_boards(sshd, tmp_path):
    from ofa_profile.transports import make_remote_profiler
    spec, _ = board_spec(sshd, tmp_path)
    with pytest.raises(DeviceError, match="apply to adb phones"):
        make_remote_profiler(spec, serial="X")
