import os
import shutil
import sys
import tempfile
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
