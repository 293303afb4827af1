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


def pytest_unconfigure(config):
    if _HYP_DIR is not None:
        shutil.rmtree(_HYP_DIR, ignore_errors=True)


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
