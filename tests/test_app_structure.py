"""The pages' shared untrained models: computed once per architecture, safe to compute from two threads at once,
and prepared in the background behind the landing page."""
import threading

import pytest
import streamlit as st

from helpers import make_evaluated_run, open_app


@pytest.fixture
def fresh_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def join_warm_up(run):
    """The background work the landing page started for `run` (the cached thread itself), once it is over."""
    from app_pages._shared import _prepare_in_background

    warm = _prepare_in_background("cnn3", str(run), (run / "model.safetensors").stat().st_mtime)
    warm.join(timeout=120)
    assert not warm.is_alive()


def test_structure_computed_from_three_threads_at_once_matches_one_at_a_time(fresh_caches):
    """The layer table, shape walk and reach probe all hook into one shared instance; without the lock a walk
    run during the table's forward pass put the model in training mode mid-pass and failed."""
    from app_pages import _structure

    alone = {}
    for name in ("layers", "walk", "reach"):
        alone[name] = getattr(_structure, name)("densenet201_fer")
    st.cache_data.clear()
    together, failures = {}, []

    def compute(name):
        try:
            together[name] = getattr(_structure, name)("densenet201_fer")
        except Exception as err:  # noqa: BLE001 - reported below
            failures.append(f"{name}: {err!r}")

    threads = [threading.Thread(target=compute, args=(name,)) for name in alone]
    [t.start() for t in threads]
    [t.join(timeout=120) for t in threads]
    assert not failures
    assert together["layers"][0].equals(alone["layers"][0]) and len(together["layers"][0]) == 619
    assert together["walk"].equals(alone["walk"])
    assert together["reach"][0] == alone["reach"][0] and together["reach"][1].equals(alone["reach"][1])


def test_landing_page_prepares_the_picked_runs_architecture_and_checkpoint(tmp_path, monkeypatch, fresh_caches):
    from app_pages import _structure

    run = make_evaluated_run(tmp_path, "small")
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path))
    at = open_app(run="small")  # the landing page: Training history
    join_warm_up(run)

    def computed(*_):
        raise AssertionError("computed on the page, not behind the landing page")

    for name in ("layer_table", "block_chain_html", "unused_parts", "shape_walk"):
        monkeypatch.setattr(_structure, name, computed)
    monkeypatch.setattr("fer_models.checkpoints.load_model", computed)
    at.switch_page("app_pages/architecture.py").run()
    assert not at.exception and at.title[0].value == "Architecture"
    assert len(next(d.value for d in at.dataframe if "output shape" in d.value.columns)) == 18
    at.switch_page("app_pages/saliency.py").run()  # the checkpoint was loaded
    assert not at.exception and not at.error


def test_warm_up_leaves_a_broken_checkpoint_for_the_page_to_report(tmp_path, monkeypatch, fresh_caches):
    make_evaluated_run(tmp_path, "broken")
    (tmp_path / "broken" / "model.safetensors").write_bytes(b"not a checkpoint")
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path))
    at = open_app(run="broken")
    join_warm_up(tmp_path / "broken")
    at.switch_page("app_pages/saliency.py").run()
    assert not at.exception and any("Cannot load run broken's checkpoint" in e.value for e in at.error)
