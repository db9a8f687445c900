"""What a conv layer's filters respond to, as the Filters page and the lesson draw it: the PublicTest faces ranked
by each filter (from the run's atlas, else computed once per layer) and the synthesized patterns, shared by all
sessions."""
import threading

import streamlit as st

from app_pages._dataset import load_split
from fer_models.datasets.bundle import BUNDLED_PUBLICTEST
from fer_models.explain.atlas import load_atlas
from fer_models.explain.features import filter_responses
from fer_models.runs.folder import ATLAS_FILE


@st.cache_resource(show_spinner=False, max_entries=32)
def pattern_store(key: str, layer: str, fft: bool) -> dict:
    """Activation-maximisation images by filter for one (checkpoint, layer, parametrisation), shared
    by all sessions; a filter's image does not depend on the others synthesized with it, so adding
    a filter to the selection only synthesizes that one."""
    return {}


def atlas_stamp(run_path) -> float:
    """When the run's atlas was written (0: none): made while the app runs, it is picked up."""
    try:
        return (run_path / ATLAS_FILE).lstat().st_mtime
    except OSError:
        return 0.0


@st.cache_data(show_spinner=False, max_entries=8)
def cached_atlas(key: str, run_path: str, layer: str, stamp: float):
    """The run's precomputed atlas for this layer (fer_models.explain.atlas), if it matches the weights; else None."""
    _, _, ids, _ = load_split(BUNDLED_PUBLICTEST, "PublicTest")
    return load_atlas(run_path, layer, ids)


@st.cache_resource(show_spinner=False)
def _rankings() -> tuple[dict, threading.Lock]:
    """Every filter's response to every PublicTest face, by (checkpoint, layer, from the atlas or live); shared
    by all sessions (the lock guards the dict, not the computing), the 8 latest kept."""
    return {}, threading.Lock()


def ranked_responses(key: str, model, meta, layer: str, atlas=None):
    """From the atlas, or computed now under a progress bar that moves batch by batch (a cached function
    could not draw one)."""
    store, lock = _rankings()
    entry = (key, layer, atlas is not None)
    found = store.get(entry)
    if found is not None:
        return found
    images, labels, ids, _ = load_split(BUNDLED_PUBLICTEST, "PublicTest")
    if atlas is not None:
        responses = atlas.responses
    else:
        text = f"Ranking the {len(images):,} PublicTest faces for every filter of {layer} (once per layer)"
        bar = st.progress(0.0, text=text + "…")
        norm = meta["normalisation"]
        responses = filter_responses(model, layer, images, norm["mean"], norm["std"],
                                     on_batch=lambda done, n: bar.progress(done / n, text=f"{text}: {done:,}"))
        bar.empty()
    found = (responses, images, labels, ids)
    with lock:
        while len(store) >= 8:
            store.pop(next(iter(store)))
        store[entry] = found
    return found
