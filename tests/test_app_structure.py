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


def test_structure_computed_from_three_threads_at_once_matches_one_at_a_time(monkeypatch):
    """The layer table, shape walk and reach probe all hook into one shared instance; without the lock a walk
    run during the table's forward pass put the model in training mode mid-pass and failed."""
    from fer_models.nets import structure

    alone = structure.structure_of("densenet201_fer")
    monkeypatch.setattr(structure, "_KEPT", {})
    together, failures = [], []

    def compute():
        try:
            together.append(structure.structure_of("densenet201_fer"))
        except Exception as err:  # noqa: BLE001 - reported below
            failures.append(repr(err))

    threads = [threading.Thread(target=compute) for _ in range(3)]
    [t.start() for t in threads]
    [t.join(timeout=120) for t in threads]
    assert not failures and len(together) == 3
    assert together[0] is together[1] is together[2]  # computed once, by whichever thread came first
    got = together[0]
    assert got.layers.equals(alone.layers) and len(got.layers) == 619
    assert got.walk.equals(alone.walk) and got.findings == alone.findings and got.reach_table.equals(alone.reach_table)


def test_landing_page_prepares_the_picked_runs_architecture_and_checkpoint(tmp_path, monkeypatch, fresh_caches):
    from fer_models.nets import structure

    monkeypatch.setattr(structure, "_KEPT", {})  # nothing computed by an earlier test
    run = make_evaluated_run(tmp_path, "small")
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path))
    at = open_app(run="small")  # the landing page: Training history
    join_warm_up(run)

    def computed(*_):
        raise AssertionError("computed on the page, not behind the landing page")

    for name in ("layer_table", "block_chain_html", "unused_parts", "shape_walk"):
        monkeypatch.setattr(structure, name, computed)
    monkeypatch.setattr("fer_models.runs.checkpoints.load_model", computed)
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


def test_every_page_run_computes_on_one_intra_op_thread():
    """Off the main thread, OpenMP's team of two ran a face's work 2-3 times slower than one thread
    (bench/threads.py): the server's threads take one, as each page run's new thread does."""
    from app_pages._shared import _imports

    _imports().join(timeout=120)
    seen = []
    page_run = threading.Thread(target=lambda: seen.append(__import__("torch").get_num_threads()))
    page_run.start()
    page_run.join()
    assert seen == [1]


def test_a_full_collection_at_most_once_a_period_whichever_session_asks():
    from app_pages._shared import Collector

    now, collected = [100.0], []
    collector = Collector(period=2.0, clock=lambda: now[0], collect=collected.append)
    assert collector() and collected == [2]  # the first run's end collects, the oldest generation included
    now[0] += 1.9
    assert not collector() and len(collected) == 1
    now[0] += 0.1
    assert collector() and len(collected) == 2


def test_page_runs_end_with_the_throttled_collection_not_streamlits_own(monkeypatch):
    """Streamlit's collection after every run held a 30-user class's server 94 ms each time, 289 times
    (bench/load_server.py): the config turns it off and app.py asks the throttled collector instead."""
    import tomllib

    from app_pages import _shared

    config = tomllib.loads((_shared.ROOT / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False
    now, collected = [0.0], []
    monkeypatch.setattr(_shared, "collect_garbage", _shared.Collector(2.0, lambda: now[0], collected.append))
    at = open_app()
    at.run()
    assert len(collected) == 1  # two runs within the period
    now[0] = 5.0
    at.switch_page("app_pages/learn.py").run()
    assert not at.exception and len(collected) == 2


def test_the_dataset_faces_are_one_object_every_session_reads_not_a_copy_per_call():
    """As cached data each call unpickled a copy of the split's 8.8 MB: a tenth of the server's busy time and
    0.4 GiB with 30 users (bench/load_server.py)."""
    from app_pages._dataset import load_split
    from fer_models.datasets.bundle import BUNDLED_PUBLICTEST

    first, again = load_split(BUNDLED_PUBLICTEST, "PublicTest"), load_split(BUNDLED_PUBLICTEST, "PublicTest")
    assert first[0] is again[0] and first[3] is again[3]


def test_the_confusion_matrix_is_built_once_for_every_session_that_shows_it(tmp_path, monkeypatch, fresh_caches):
    """Built and restyled through plotly's validation on every visit, it held the server 25 ms a time."""
    import app_pages._confusion_view as view

    make_evaluated_run(tmp_path, "seen")
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path))
    built, real = [], view.confusion_figure
    monkeypatch.setattr(view, "confusion_figure", lambda *a, **k: built.append(a[1]) or real(*a, **k))
    for _ in range(2):  # two sessions
        at = open_app("app_pages/confusion.py", run="seen")
        assert len(at.get("plotly_chart")) == 1
    assert len(built) == 1
