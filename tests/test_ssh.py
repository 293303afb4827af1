"""Linux boards over SSH, end to end against a REAL OpenSSH server started here on 127.0.0.1.

The fixture runs Debian's `openssh-server` (`/usr/sbin/sshd -D -f cfg -e`) as the current user, on a free
port, with its own host key, a throw-away user key and a temporary known_hosts: the "board" is this
machine, its Python is this interpreter.  Needs `apt-get install openssh-server openssh-client`.
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ofa_profile.devices import DeviceError

from helpers import HAVE_SSH, NO_SSH, RUNTIME, board_spec, free_port

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.device, pytest.mark.skipif(not HAVE_SSH, reason=NO_SSH)]


def test_reachable(sshd, tmp_path):
    from ofa_profile.transports import reachable
    spec, _ = board_spec(sshd, tmp_path)
    ok, why = reachable(spec)
    assert ok, why
    bad, _ = board_spec(sshd, tmp_path, port=free_port())
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
    _, bad_path = board_spec(sshd, tmp_path, port=free_port())
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
