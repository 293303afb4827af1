import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("OMP_NUM_THREADS", "1")
# predict/pareto speed-check a shipped LUT on this machine (a few seconds, cached in the user's cache): off for the
# tests of other behaviour; tests/test_lut_check.py turns it on (with a cache folder of its own)
os.environ.setdefault("OFA_PROFILE_NO_SPEED_CHECK", "1")


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
