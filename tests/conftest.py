import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("OMP_NUM_THREADS", "1")
# predict/pareto speed-check a shipped LUT on this machine (a few seconds, cached in the user's cache): off for the
# tests of other behaviour; tests/test_lut_check.py turns it on (with a cache folder of its own)
os.environ.setdefault("OFA_PROFILE_NO_SPEED_CHECK", "1")

# tests write only under their temporary folders: hypothesis keeps its examples in memory (not in ./.hypothesis)
# and its other files (constants and unicode tables it caches) in a temporary folder removed at the end of the run
_HYP_DIR = None
if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:
    _HYP_DIR = tempfile.mkdtemp(prefix="ofa-profile-tests-hypothesis-")
    os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = _HYP_DIR
from hypothesis import settings as _hyp_settings  # noqa: E402
from hypothesis.database import InMemoryExampleDatabase  # noqa: E402

_hyp_settings.register_profile("suite", database=InMemoryExampleDatabase())
_hyp_settings.load_profile("suite")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds (deselect with -m 'not slow')")
    config.addinivalue_line("markers", "device: needs a device or service beyond this machine's CPU (a GPU, adb, "
                                       "an ssh server); skips where absent")
    config.addinivalue_line("markers", "serial: times something or races a signal or lock in real time, so needs a "
                                       "quiet core: `make test` runs these alone after the others (-m serial)")


def pytest_unconfigure(config):
    if _HYP_DIR is not None:
        shutil.rmtree(_HYP_DIR, ignore_errors=True)



def pytest_collection_modifyitems(config, items):
    """Files with more `slow` tests first (a stable sort: the order within a file is kept). `make test` hands whole
    files to its two workers in this order, so the long files start early and the workers finish together instead
    of one running a long file alone at the end."""
    n_slow: dict[str, int] = {}
    for item in items:
        n_slow[item.nodeid.split("::")[0]] = n_slow.get(item.nodeid.split("::")[0], 0) + (
            item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: -n_slow[item.nodeid.split("::")[0]])

# Under pytest-xdist (`make test` runs the suite on 2 workers) each worker talks to an adb server of its own, on a
# free port: the adb tests start and stop the server, which must not pull it from under the other worker's commands.
_OWN_ADB_PORT = None
if os.environ.get("PYTEST_XDIST_WORKER") and "ANDROID_ADB_SERVER_PORT" not in os.environ:
    with socket.socket() as _s:
        _s.bind(("127.0.0.1", 0))
        _OWN_ADB_PORT = _s.getsockname()[1]
    os.environ["ANDROID_ADB_SERVER_PORT"] = str(_OWN_ADB_PORT)


@pytest.fixture(scope="session", autouse=True)
def _own_adb_server_stopped():
    """The worker's own adb server (if a test started one) is stopped at the end of the run."""
    yield
    adb = shutil.which("adb")
    if _OWN_ADB_PORT is not None and adb:
        with socket.socket() as s:
            s.settimeout(0.5)
            running = s.connect_ex(("127.0.0.1", _OWN_ADB_PORT)) == 0
        if running:
            subprocess.run([adb, "kill-server"], capture_output=True, timeout=30)


@pytest.fixture(scope="session")
def shared_data():
    from ofa_profile.paths import shared_data_dir
    d = shared_data_dir()
    if d is None:
        pytest.skip("reference data ../shared/data is absent (set OFA_PROFILE_SHARED_DATA)")
    return d


@pytest.fixture(autouse=True)
def _one_thread():
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    yield


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real OpenSSH server on 127.0.0.1 (a free port, its own host key, a throw-away user key) run as the
    current user: the \"board\" of the ssh tests is this machine (see tests/test_ssh.py)."""
    from helpers import SSHD, free_port
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    (d / "authorized_keys").chmod(0o600)
    if os.geteuid() == 0 and not Path("/run/sshd").is_dir():
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # sshd's privilege-separation dir when run as root
    # the port is free when chosen; should another process take it before sshd binds it (two test workers), sshd
    # exits and a new port is tried
    for attempt in range(3):
        port = free_port()
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
        log = open(d / "sshd.log", "wb")
        proc = subprocess.Popen([SSHD, "-D", "-f", str(d / "sshd_config"), "-e"], stdout=log, stderr=subprocess.STDOUT)
        t0, listening = time.time(), False
        while not listening and time.time() - t0 < 15 and proc.poll() is None:
            with socket.socket() as s:
                listening = s.connect_ex(("127.0.0.1", port)) == 0
            if not listening:
                time.sleep(0.1)
        if proc.poll() is None:
            break
        log.close()
        if attempt == 2:
            pytest.skip(f"sshd did not start: {(d / 'sshd.log').read_text().strip()[:300]}")
    if not listening:
        proc.kill()
        pytest.skip("sshd did not listen within 15 s")
    yield {"dir": d, "port": port, "pid": proc.pid, "key": str(d / "user_key"), "known_hosts": str(d / "known_hosts")}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
