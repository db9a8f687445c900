"""Fixtures shared by every test; the helpers they use live in helpers.py."""
from pathlib import Path

import pytest

from helpers import write_fer_csv  # tests/ is on the path by pyproject.toml's pythonpath

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture(autouse=True)
def warm_up_finished():
    """The dashboard's warm-up threads (started by every AppTest run) end within the test that started them:
    none computes during the next test, nor when the interpreter exits."""
    yield
    import threading
    for thread in threading.enumerate():
        if thread.name.startswith("warm-up-"):
            thread.join(timeout=300)
