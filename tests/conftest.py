"""Fixtures shared by every test; the helpers they use live in helpers.py."""
from pathlib import Path

import pytest

from helpers import make_evaluated_run, write_fer_csv  # tests/ is on the path by pyproject.toml's pythonpath

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fer_csv(tmp_path):
    return write_fer_csv(tmp_path / "fer2013.csv")


@pytest.fixture
def small_runs(tmp_path, monkeypatch):
    """A runs folder the app reads (FER_STUDIO_RUNS) holding one evaluated run, "small"."""
    make_evaluated_run(tmp_path / "runs", "small")
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


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


@pytest.fixture
def quick_patterns(monkeypatch):
    """Pattern synthesis in 12 steps instead of 96, for page tests that check what is drawn, not how well: a
    densenet201_fer layer's patterns took 90 s of the suite."""
    from fer_models.explain import features

    full = features.maximise_filters

    def quick(*args, **kwargs):
        kwargs["steps"] = 12
        return full(*args, **kwargs)
    monkeypatch.setattr(features, "maximise_filters", quick)


@pytest.fixture
def small_bundle(tmp_path, monkeypatch):
    """The shipped PublicTest bundle cut to its first 60 faces (ids 28709-28768), for page tests that rank or
    pick dataset faces: ranking a deep layer over all 3589 took a Filters test 15 s. Set where each module that
    read the name at import holds it; those are imported first, so none keeps the cut bundle after the test."""
    import importlib

    import numpy as np

    from fer_models.datasets import bundle

    with np.load(bundle.BUNDLED_PUBLICTEST) as z:
        faces = len(z["images"])
        arrays = {k: z[k][:60] if z[k].ndim and len(z[k]) == faces else z[k] for k in z.files}
    path = tmp_path / "fer2013_publictest.npz"
    np.savez(path, **arrays)
    monkeypatch.setattr(bundle, "BUNDLED_PUBLICTEST", path)
    for name in ("app_pages._dataset", "app_pages._face_picker", "app_pages._filters_view", "app_pages._lesson_steps"):
        monkeypatch.setattr(importlib.import_module(name), "BUNDLED_PUBLICTEST", path)
    return path


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a 1 MB tmpfs, for what happens when the disk fills (CI runs as root, which may mount)."""
    import subprocess

    folder = tmp_path / "full"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip()})")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)
