"""Fixtures shared by every test; the helpers they use live in helpers.py."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]  # the project, and helpers.py for tests in sub-folders

from helpers import write_fer_csv  # noqa: E402


@pytest.fixture
def fer_csv(tmp_path):
    return write_fer_csv(tmp_path / "fer2013.csv")


@pytest.fixture
def run_env():
    """Environment for CLI subprocesses: the project importable, one thread (2-core CI machine)."""
    import os
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env
